"""Activities held outside a route (ЦНППМ, ММС, schools): their rules, no I/O.

An activity is an event, seminar, webinar, consultation or community meeting with its
attendance. What is described here: whether an activity says what it must (a team's
consultation names the team, a community meeting its community), whether a second
recording of it is the same activity, which step of an attendee's open route its
attendance completes, and how a school team's consultations fall by month.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from iomflow.routes.domain.route import Route
from iomflow.shared.contracts import ActivityHeld, Theme

PREVENTION = Theme.BURNOUT_PREVENTION.value
ROUTE_OPEN = ("agreed", "active")
"""The routes whose steps an attendance may complete: agreed by every party (a drafted
route may still change, a closed one may not)."""

COMPARED = (
    "kind",
    "title",
    "level",
    "organiser_id",
    "format",
    "held_on",
    "hours",
    "municipality_id",
    "organization_id",
    "competencies",
    "themes",
    "target",
    "team_id",
    "community_id",
    "project",
)
"""What makes an activity itself: a second recording must say the same."""

TITLES = {
    "kind": "вид",
    "title": "название",
    "level": "уровень",
    "organiser_id": "организатор",
    "format": "формат",
    "held_on": "дата",
    "hours": "часы",
    "municipality_id": "муниципалитет",
    "organization_id": "организация",
    "competencies": "компетенции",
    "themes": "темы",
    "target": "для кого",
    "team_id": "команда",
    "community_id": "сообщество",
    "project": "проект",
}


def attendance_id(activity_id: str, teacher_id: str) -> str:
    """The key of one teacher's attendance of one activity."""
    return f"{activity_id}:{teacher_id}"


def problems(activity: ActivityHeld) -> list[tuple[str, str]]:
    """What the activity lacks for what it says it is, as (field, Russian reason): a school
    team's activity names the team, a community's (and every community meeting) its
    community, a municipal one its municipality, a school one its organisation."""
    found: list[tuple[str, str]] = []
    if activity.target == "school_team" and not activity.team_id:
        found.append(("team_id", "мероприятие для школьной команды: укажите команду (team_id)"))
    if (activity.target == "community" or activity.kind == "community_meeting") and (
        not activity.community_id
    ):
        found.append(("community_id", "встреча профессионального сообщества: укажите сообщество"))
    if activity.level == "municipal" and not activity.municipality_id:
        found.append(("municipality_id", "муниципальное мероприятие: укажите муниципалитет"))
    if activity.level == "school" and not activity.organization_id:
        found.append(("organization_id", "школьное мероприятие: укажите организацию"))
    return found


def differences(stored: Mapping[str, Any], activity: ActivityHeld) -> list[str]:
    """The fields in which ``activity`` differs from the one stored under its id (empty:
    the same activity recorded again)."""
    fresh = activity.model_dump(mode="json")
    out = []
    for name in COMPARED:
        old, new = _plain(stored.get(name)), fresh.get(name)
        if isinstance(old, list) and isinstance(new, list):
            old, new = sorted(old), sorted(new)
        if old != new:
            out.append(name)
    return out


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def differences_said(names: Sequence[str]) -> str:
    """The fields that differ, in Russian."""
    return ", ".join(TITLES.get(n, n) for n in names)


def matches(step: Mapping[str, Any], activity: ActivityHeld) -> bool:
    """Whether attending ``activity`` does ``step``: a consultation on one of the
    activity's competencies; a community step by a meeting of its own community; a
    burnout-prevention consultation or community step by any activity of that theme."""
    if step.get("status") in ("done", "removed"):
        return False
    kind = step.get("kind")
    if kind == "consultation" and step.get("competency") in activity.competencies:
        return True
    if (
        kind == "community"
        and activity.kind == "community_meeting"
        and step.get("community_id") is not None
        and step.get("community_id") == activity.community_id
    ):
        return True
    return (
        step.get("purpose") == "burnout_prevention"
        and kind in ("consultation", "community")
        and PREVENTION in activity.themes
    )


def step_for(routes: Iterable[Route], activity: ActivityHeld) -> tuple[Route, str] | None:
    """The route and step an attendance completes: the first matching step (in route
    order) of the attendee's agreed or active routes, the oldest route first; None."""
    for route in routes:
        if route.status not in ROUTE_OPEN:
            continue
        for step in route.steps:
            if matches(step, activity):
                return route, str(step["step_id"])
    return None


@dataclass(frozen=True)
class Month:
    month: int
    consultations: int

    @property
    def held(self) -> bool:
        return self.consultations > 0


def by_month(days: Iterable[date], year: int) -> list[Month]:
    """How many consultations fell in each month (1..12) of ``year``."""
    counts = Counter(d.month for d in days if d.year == year)
    return [Month(m, counts[m]) for m in range(1, 13)]
