"""The course of an effective practice (roadmap 49–52, ``004_*`` 4.11) and the count of
expert activity (Appendix 1, «привлечение к экспертной деятельности»). No I/O.

A practice is submitted → reviewed by an expert (with the review) → included in the bank
→ replicated (where, by whom); or rejected at review, or sent back for revision (it stays
submitted, its review kept, until it is reviewed again). Each move takes the practice's
stored data and gives the data it has after it; a move its status does not allow is
refused (409), a move that contradicts its dates is a bad request (422). A practice kept
before the course (no status) is one of the bank.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from iomflow.shared.contracts import ExpertKind
from iomflow.shared.errors import Refused

Verdict = Literal["include", "revise", "reject"]

BANK = ("included", "replicated")
"""The statuses of a practice of the bank."""

SAID = {
    "submitted": "подана и ждёт экспертизы",
    "reviewed": "прошла экспертизу и ждёт включения в банк",
    "included": "уже включена в банк",
    "replicated": "уже включена в банк и тиражирована",
    "rejected": "отклонена по итогам экспертизы",
}
"""Where a practice is, as a sentence says it («Практика … <said>»)."""


def status_of(practice: Mapping[str, Any]) -> str:
    """A practice's status; one kept before the course has none and is of the bank."""
    return str(practice.get("status") or "included")


def _refuse(practice: Mapping[str, Any], wanted: str) -> Refused:
    status = status_of(practice)
    return Refused(
        "practice_status",
        f"Практика «{practice['practice_id']}» {SAID[status]}: {wanted}.",
        409,
        practice_status=status,
    )


def _not_before(day: date, earlier: Any, what: str, field: str) -> None:
    if earlier is not None and day < date.fromisoformat(str(earlier)):
        raise Refused(
            "date_out_of_order",
            f"Дата {day:%d.%m.%Y} раньше {what} ({date.fromisoformat(str(earlier)):%d.%m.%Y}).",
            422,
            field=field,
        )


def submission(values: Mapping[str, Any], today: date) -> dict[str, Any]:
    """A practice as submitted: status «submitted», dated today unless it says its day."""
    return {**values, "status": "submitted", "submitted_on": values.get("submitted_on") or today}


def reviewed(
    practice: Mapping[str, Any], *, reviewer: str, verdict: Verdict, review: str, on: date
) -> dict[str, Any]:
    """The practice after an expert's review: «include» → reviewed (to be included),
    «reject» → rejected, «revise» → submitted again (sent back to its author). Only a
    submitted practice is reviewed."""
    if status_of(practice) != "submitted":
        raise _refuse(practice, "на экспертизу принимается только поданная практика")
    _not_before(on, practice.get("submitted_on"), "подачи практики", "on")
    _not_before(on, practice.get("reviewed_on"), "прошлой экспертизы", "on")
    status = {"include": "reviewed", "reject": "rejected", "revise": "submitted"}[verdict]
    return {
        **practice,
        "status": status,
        "reviewed_by": reviewer,
        "reviewed_on": on.isoformat(),
        "review": review,
    }


def included(practice: Mapping[str, Any], on: date) -> dict[str, Any]:
    """The practice included in the bank: only after a review that recommended it."""
    if status_of(practice) != "reviewed":
        raise _refuse(
            practice, "в банк включается практика, прошедшая экспертизу с решением «включить»"
        )
    _not_before(on, practice.get("reviewed_on"), "экспертизы", "on")
    return {**practice, "status": "included", "included_on": on.isoformat()}


def replicated(
    practice: Mapping[str, Any], organization_id: str, by: str | None, on: date
) -> tuple[dict[str, Any], bool]:
    """The practice replicated in ``organization_id`` (by ``by``, on ``on``), and whether
    that is new: the same replication again changes nothing; another one in the same
    organisation is refused. Only a practice of the bank is replicated, elsewhere than
    its own organisation."""
    if status_of(practice) not in BANK:
        raise _refuse(practice, "тиражируется только практика, включённая в банк")
    if organization_id == practice["organization_id"]:
        raise Refused(
            "own_organization",
            f"Практика «{practice['practice_id']}» — практика организации «{organization_id}»: "
            "тиражирование — это её перенос в другую организацию.",
            422,
            field="organization_id",
        )
    _not_before(on, practice.get("included_on"), "включения в банк", "on")
    replications = [dict(r) for r in practice.get("replications") or []]
    for known in replications:
        if known["organization_id"] != organization_id:
            continue
        if known.get("by") == by and str(known["on"]) == on.isoformat():
            return dict(practice), False
        raise Refused(
            "already_replicated",
            f"Практика «{practice['practice_id']}» уже тиражирована в «{organization_id}» "
            f"({date.fromisoformat(str(known['on'])):%d.%m.%Y}).",
            409,
        )
    replications.append({"organization_id": organization_id, "by": by, "on": on.isoformat()})
    replications.sort(key=lambda r: (str(r["on"]), r["organization_id"]))
    return {**practice, "status": "replicated", "replications": replications}, True


def matches(practice: Mapping[str, Any], query: str) -> bool:
    """A text query over a practice's title: every word of it, in any case, ё as е."""
    title = _folded(str(practice.get("title", "")))
    return all(word in title for word in _folded(query).split())


def _folded(text: str) -> str:
    return text.replace("ё", "е").replace("Ё", "Е").casefold()


# --- expert activity -------------------------------------------------------------------------


def active_in(role: Mapping[str, Any], first: date, last: date) -> bool:
    """An expert role (a stored record's data) held some day of ``first``..``last``."""
    starts = date.fromisoformat(str(role["starts_on"]))
    ends = role.get("ends_on")
    return starts <= last and (ends is None or date.fromisoformat(str(ends)) >= first)


def expert_on(roles: Iterable[Mapping[str, Any]], kind: ExpertKind, day: date) -> bool:
    """Whether one of ``roles`` (a teacher's) is of ``kind`` and held on ``day``."""
    return any(r["kind"] == kind.value and active_in(r, day, day) for r in roles)


@dataclass(frozen=True)
class KindCount:
    kind: ExpertKind
    teachers: int
    roles: int


@dataclass(frozen=True)
class Activity:
    """The expert activity of a year: distinct teachers in all, and by kind (a teacher of
    two kinds counts in each, once in all)."""

    year: int
    teachers: int
    roles: int
    by_kind: list[KindCount]


def expert_activity(roles: Iterable[Mapping[str, Any]], year: int) -> Activity:
    """Distinct teachers with an expert role held in ``year``, by kind (every kind listed)."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    held = [r for r in roles if active_in(r, first, last)]
    by_kind = [
        KindCount(
            kind,
            len({r["teacher_id"] for r in held if r["kind"] == kind.value}),
            sum(1 for r in held if r["kind"] == kind.value),
        )
        for kind in ExpertKind
    ]
    return Activity(year, len({r["teacher_id"] for r in held}), len(held), by_kind)
