"""Diagnostics use cases: take results (or hold them), complete, close, revise and cancel
diagnoses. Each works on a batch in one unit of work (``Deps``): set-based reads, decisions
in memory in stream order, multi-row writes, events staged in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeVar

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.diagnostics import domain, repository
from iomflow.diagnostics.book import SOURCE, Book, levels_of, traced, utc
from iomflow.diagnostics.domain import Campaign, Diagnosis
from iomflow.shared import inbox, wire
from iomflow.shared.contracts import (
    Audience,
    DiagnosisCompleted,
    Event,
    NeedsRecorded,
    NeedsSubmitted,
    ResultSubmitted,
    Streams,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.db import RawJSON
from iomflow.shared.errors import Refused
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import dead_letter_fields
from iomflow.shared.unit import Deps, utc_now

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Diagnostics:
    """The service's context (``deps.ctx``): the framework in force, the hold period, the
    consumer group (whose inbox a dead-lettered held result leaves)."""

    framework: domain.Framework
    hold_for: timedelta = timedelta(days=30)
    group: str = "diagnostics"
    _applicable: dict[tuple[bool, Audience], set[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def applicable(self, *, is_manager: bool, audience: Audience) -> set[str]:
        """``framework.applicable``, worked out once per kind of teacher."""
        key = (is_manager, audience)
        found = self._applicable.get(key)
        if found is None:
            found = self._applicable[key] = self.framework.applicable(
                is_manager=is_manager, audience=audience
            )
        return found


Transaction = Callable[[], AbstractAsyncContextManager[Deps[Diagnostics]]]
"""Opens one unit of work (``Runtime.transaction``, or ``transactions`` for admin commands)."""


def transactions(
    sessions: async_sessionmaker[AsyncSession], outbox: Outbox, ctx: Diagnostics
) -> Transaction:
    """Units of work over ``sessions`` outside a running service (the admin commands, which
    publish what they staged when they finish): staged rows are flushed before commit."""

    @asynccontextmanager
    async def transaction() -> Any:
        async with sessions() as session, session.begin():
            deps = Deps(session, outbox, ctx)
            yield deps
            await deps.flush()

    return transaction


@dataclass(frozen=True)
class Submission:
    """What became of a result that was not refused (and its diagnosis, if it has one)."""

    status: Literal["stored", "held", "late"]
    diagnosis_id: str | None = None
    diagnosis: Diagnosis | None = field(default=None, compare=False, repr=False)
    """The diagnosis it completed, as stored (None when it completed none)."""


Refuse = Callable[[Event[ResultSubmitted], Refused], None]


def refused(exc: domain.Refusal) -> Refused:
    """A rule's refusal as the use cases raise it (an HTTP problem, a dead letter)."""
    return Refused(exc.code, exc.detail, exc.status)


def as_contract(row: Any) -> DiagnosisCompleted:
    """A diagnosis (the aggregate, or anything with its attributes) as its contract."""
    if isinstance(row, Diagnosis):
        return row.completed()
    fields = {k: getattr(row, k) for k in DiagnosisCompleted.model_fields}
    if fields["evidence_at"] is not None:  # SQLite keeps no zone: it was written in UTC
        fields["evidence_at"] = utc(fields["evidence_at"])
    return DiagnosisCompleted.model_validate(fields)


# --- results and needs answers: the steps they share ----------------------------------------


E = TypeVar("E", Event[ResultSubmitted], Event[NeedsSubmitted])
X = TypeVar("X")


async def _in_campaigns(
    session: AsyncSession,
    items: Sequence[tuple[E, X]],
    day: Callable[[E], date],
    refuse: Callable[[E, Refused], None],
) -> list[tuple[E, X, Campaign]]:
    """The items (an event and what was worked out of it) whose campaign admits them on
    their ``day``, in order, each with its campaign: one read of the campaigns for the
    batch; the others go to ``refuse``."""
    found = await repository.find_campaigns(session, {e.payload.campaign_id for e, _ in items})
    out: list[tuple[E, X, Campaign]] = []
    for event, worked in items:
        campaign_id = event.payload.campaign_id
        try:
            campaign = domain.admit(found.get(campaign_id), campaign_id, day(event))
        except domain.Refusal as exc:
            refuse(event, refused(exc))
            continue
        out.append((event, worked, campaign))
    return out


def _held(event: E, kind: str, at: datetime, hold_for: timedelta) -> dict[str, Any]:
    """The held row of an event (of type ``kind``) whose teacher the registries do not know
    yet: taken when the teacher arrives, dead-lettered after ``at + hold_for``."""
    return {
        "event_id": str(event.event_id),
        "teacher_id": event.payload.teacher_id,
        "campaign_id": event.payload.campaign_id,
        "fields": wire.encode(event),
        "type": kind,
        "received_at": at,
        "hold_until": at + hold_for,
    }


# --- results ---------------------------------------------------------------------------------


@dataclass
class _Checked:
    """A result that passed what can be checked without its teacher."""

    event: Event[ResultSubmitted]
    scores: dict[str, float]
    campaign: Campaign


async def take_results(
    deps: Deps[Diagnostics],
    events: Sequence[Event[ResultSubmitted]],
    refuse: Refuse | None = None,
    causes: Mapping[str, Event[Any]] | None = None,
) -> dict[str, Submission]:
    """Check and store a batch of results, in stream order, as if one after the other;
    complete each diagnosis whose campaign's required instruments are in. A result for a
    teacher the registries have not announced yet is held (taken when the teacher arrives,
    dead-lettered after ``hold_for``). A result that breaks a rule goes to ``refuse``
    (``deps.reject`` unless told) and changes nothing. What a result causes continues the
    trace of ``causes[its event id]`` (default: its own). Returns what became of the
    others, by event id.

    Set-based: one read per table for the whole batch (campaigns, taken external ids,
    teachers, diagnoses, earlier results), one write per table (results, held results,
    the current-diagnosis flag, diagnoses, levels)."""
    refuse = refuse or deps.reject
    framework = deps.ctx.framework
    scored_: list[tuple[Event[ResultSubmitted], dict[str, float]]] = []
    for event in events:
        result = event.payload
        try:
            scores = domain.instrument_scores(
                framework, result.instrument, result.scores, result.items
            )
        except domain.Refusal as exc:
            refuse(event, refused(exc))
            continue
        scored_.append((event, scores))
    if not scored_:
        return {}
    if len(events) == 1:
        trace.get_current_span().set_attribute("iomflow.teacher_id", events[0].payload.teacher_id)

    session = deps.session
    checked = [
        _Checked(event, scores, campaign)
        for event, scores, campaign in await _in_campaigns(
            session, scored_, lambda e: (e.payload.taken_at or e.occurred_at).date(), refuse
        )
    ]
    if not checked:
        return {}

    keys = {(c.event.source, x) for c in checked if (x := c.event.payload.external_id)}
    taken = await repository.find_taken_external_ids(session, keys)
    book = await Book.load(
        deps, {(c.event.payload.teacher_id, c.event.payload.campaign_id) for c in checked}
    )
    out: dict[str, Submission] = {}
    held: list[dict[str, Any]] = []
    for item in checked:  # in stream order: each sees what the ones before it did
        event, campaign = item.event, item.campaign
        result = event.payload
        key = (event.source, result.external_id) if result.external_id else None
        if key is not None and key in taken:
            refuse(event, refused(domain.duplicate_result(*key)))
            continue
        teacher = book.teachers.get(result.teacher_id)
        if teacher is None:
            held.append(_held(event, repository.RESULT_TYPE, book.clock(), deps.ctx.hold_for))
            out[str(event.event_id)] = Submission("held")
            continue
        sheet = book.sheets[(result.teacher_id, result.campaign_id)]
        try:
            campaign.admit_teacher(result.teacher_id, teacher)
            sheet.admit(result.teacher_id, campaign)
        except domain.Refusal as exc:
            refuse(event, refused(exc))
            continue
        book.take(event, item.scores)
        if key is not None:
            taken.add(key)
        if sheet.diagnosis_id is not None:
            # Kept as evidence; it counts when the diagnosis is revised.
            out[str(event.event_id)] = Submission("late", sheet.diagnosis_id)
        elif sheet.ready(campaign.required):
            cause = causes.get(str(event.event_id), event) if causes else event
            diagnosis = book.complete(result.teacher_id, result.campaign_id, "instruments", cause)
            out[str(event.event_id)] = Submission("stored", diagnosis.diagnosis_id, diagnosis)
        else:
            out[str(event.event_id)] = Submission("stored")
    await book.save()
    await repository.add_held(session, held)
    return out


# --- needs answers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NeedsTaken:
    """What became of a needs answer that was not refused: stored (with its row, as
    written) or held for a teacher the registries do not know yet."""

    status: Literal["stored", "held"]
    row: dict[str, Any] | None = field(default=None, compare=False, repr=False)


RefuseNeeds = Callable[[Event[NeedsSubmitted], Refused], None]


async def take_needs(
    deps: Deps[Diagnostics],
    events: Sequence[Event[NeedsSubmitted]],
    refuse: RefuseNeeds | None = None,
    causes: Mapping[str, Event[Any]] | None = None,
) -> dict[str, NeedsTaken]:
    """Check and store a batch of needs answers, in stream order, with the same rules as
    results: the framework knows the competencies asked for; the campaign exists, is open
    and the day of the answer is in its window; the teacher is in its target; a publisher's
    external id names one answer (sent again: 409 ``duplicate_external_id``). An answer of
    a teacher the registries have not announced yet is held as a result is (taken when the
    teacher arrives, dead-lettered after ``hold_for``). Each stored answer stages
    ``diagnostics.needs.recorded`` with where the teacher works (continuing the trace of
    ``causes[its event id]``, default its own). Returns what became of the others.

    Set-based: one read per table (campaigns, taken external ids, teachers), one write
    per table (needs, held)."""
    refuse = refuse or deps.reject
    framework = deps.ctx.framework
    session = deps.session
    asked: list[tuple[Event[NeedsSubmitted], list[str]]] = []
    for event in events:
        try:
            asked.append((event, domain.needs_competencies(framework, event.payload.competencies)))
        except domain.Refusal as exc:
            refuse(event, refused(exc))
    if not asked:
        return {}
    checked = await _in_campaigns(
        session, asked, lambda e: (e.payload.answered_at or e.occurred_at).date(), refuse
    )
    if not checked:
        return {}
    keys = {(e.source, x) for e, _, _ in checked if (x := e.payload.external_id)}
    taken = await repository.find_taken_needs_ids(session, keys)
    teachers = await repository.find_teachers(
        session, {e.payload.teacher_id for e, _, _ in checked}
    )
    clock = deps.now()
    out: dict[str, NeedsTaken] = {}
    rows: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for tick, (event, codes, campaign) in enumerate(checked, 1):
        answer = event.payload
        at = clock + timedelta(microseconds=tick)  # the order of arrival, kept when read back
        key = (event.source, answer.external_id) if answer.external_id else None
        if key is not None and key in taken:
            refuse(event, refused(domain.duplicate_needs(*key)))
            continue
        teacher = teachers.get(answer.teacher_id)
        if teacher is None:
            held.append(_held(event, repository.NEEDS_TYPE, at, deps.ctx.hold_for))
            out[str(event.event_id)] = NeedsTaken("held")
            continue
        try:
            campaign.admit_teacher(answer.teacher_id, teacher)
        except domain.Refusal as exc:
            refuse(event, refused(exc))
            continue
        if key is not None:
            taken.add(key)
        answered = answer.answered_at or event.occurred_at
        entry = deps.fields_of(event)
        row = {
            "response_id": str(event.event_id),
            "teacher_id": answer.teacher_id,
            "organization_id": teacher.organization_id,
            "municipality_id": teacher.municipality_id,
            "campaign_id": answer.campaign_id,
            "external_id": answer.external_id,
            "source": event.source,
            "answered_at": utc(answered),  # SQLite keeps no zone: written in UTC
            "answered_on": answered.date(),  # the day where the teacher answered
            "competencies": codes,
            "themes": [t.value for t in answer.themes],
            "formats": list(dict.fromkeys(answer.formats)),
            # As it came on the stream, text as it is; over HTTP, as validated.
            "submitted": RawJSON(entry["data"])
            if entry is not None
            else answer.model_dump(mode="json"),
            "received_at": at,
        }
        rows.append(row)
        recorded = NeedsRecorded(
            response_id=row["response_id"],
            teacher_id=answer.teacher_id,
            organization_id=teacher.organization_id,
            municipality_id=teacher.municipality_id,
            campaign_id=answer.campaign_id,
            answered_on=row["answered_on"],
            competencies=codes,
            themes=list(dict.fromkeys(answer.themes)),
            formats=row["formats"],
        )
        deps.stage(
            Streams.DIAGNOSTICS,
            new_event(
                "diagnostics.needs.recorded", recorded, source=SOURCE, subject=answer.teacher_id
            ),
            cause=causes.get(str(event.event_id), event) if causes else event,
        )
        out[str(event.event_id)] = NeedsTaken("stored", row)
    await repository.add_needs(session, rows)
    await repository.add_held(session, held)
    return out


# --- held results ----------------------------------------------------------------------------


async def teachers_arrived(
    deps: Deps[Diagnostics], arrived: Sequence[Event[TeacherUpserted]]
) -> int:
    """Take the results and needs answers held for teachers the registries have just
    announced, through the same batches as those from the stream (what they cause continues
    the trace of their teacher's event); each one that now breaks a rule is dead-lettered
    with its reason. Returns how many were taken."""
    teachers = {e.payload.teacher_id: e for e in arrived}
    rows = await repository.find_held(deps.session, teachers)
    if not rows:
        return 0
    await repository.remove_held(deps.session, [row.event_id for row in rows])
    by_id = {row.event_id: row for row in rows}
    refused: list[tuple[Any, str, str]] = []

    def dead(event: Event[Any], exc: Refused) -> None:
        refused.append((by_id[str(event.event_id)], exc.code, exc.detail))

    causes = {row.event_id: teachers[row.teacher_id] for row in rows}
    results = [wire.decode(r.fields) for r in rows if r.type != repository.NEEDS_TYPE]
    answers = [wire.decode(r.fields) for r in rows if r.type == repository.NEEDS_TYPE]
    taken = len(await take_results(deps, results, dead, causes)) if results else 0
    if answers:
        taken += len(await take_needs(deps, answers, dead, causes))
    await _dead_letter(deps, refused)
    return taken


async def expire_held(transaction: Transaction, now: datetime | None = None) -> int:
    """Dead-letter the results and needs answers held past their deadline (the teacher
    never came)."""
    now = now or utc_now()
    expired = 0
    while True:
        async with transaction() as deps:
            rows = await repository.find_held_expired(deps.session, now)
            await _dead_letter(
                deps,
                [
                    (
                        row,
                        "unknown_teacher",
                        f"Педагог «{row.teacher_id}» не появился в региональном реестре до "
                        f"{row.hold_until:%d.%m.%Y %H:%M} UTC; "
                        + (
                            "анкета потребностей не учтена."
                            if row.type == repository.NEEDS_TYPE
                            else "результат не учтён."
                        ),
                    )
                    for row in rows
                ],
            )
            await repository.remove_held(deps.session, [r.event_id for r in rows])
        expired += len(rows)
        if len(rows) < 500:
            return expired


async def _dead_letter(deps: Deps[Diagnostics], letters: Sequence[tuple[Any, str, str]]) -> None:
    """Dead-letter held results and needs answers: (held row, reason, error) each."""
    if not letters:
        return
    stream = Streams.RESULTS_INBOUND
    # A held result was recorded in the inbox when it was taken (held); it was never
    # applied, so forget it there: `iomflow dlq replay` of this letter (once the teacher is
    # in the registries) must be applied, not dropped as a duplicate.
    await inbox.forget_many(
        deps.session,
        repository.tables.inbox,
        deps.ctx.group,
        [str(row.event_id) for row, _, _ in letters],
    )
    for row, reason, error in letters:
        deps.stage_entry(
            Streams.dlq(stream),
            row.fields["type"],
            dead_letter_fields(
                row.fields,
                stream=stream,
                group=deps.ctx.group,
                entry_id="held",
                reason=reason,
                error=error,
                deliveries=1,
            ),
        )


# --- operator commands -----------------------------------------------------------------------


async def close_diagnosis(deps: Deps[Diagnostics], teacher_id: str, campaign_id: str) -> Diagnosis:
    """An operator completes a teacher's diagnosis with the evidence that is in."""
    book = await Book.load(deps, [(teacher_id, campaign_id)])
    try:
        book.sheets[(teacher_id, campaign_id)].closable(
            teacher_id, campaign_id, known=teacher_id in book.teachers
        )
    except domain.Refusal as exc:
        raise refused(exc) from exc
    diagnosis = book.complete(teacher_id, campaign_id, "operator")
    await book.save()
    return diagnosis


async def close_campaign(
    transaction: Transaction,
    campaign_id: str,
    progress: Progress | None = None,
    chunk: int = 500,
) -> int:
    """Close a campaign: no more results; every teacher with results but no diagnosis is
    completed with what is in, ``chunk`` teachers per transaction (set-based each).
    Returns how many."""
    async with transaction() as deps:
        campaign = await repository.get_campaign(deps.session, campaign_id)
        try:
            if campaign is None:
                raise domain.unknown_campaign(campaign_id, 404)
            campaign.close(deps.now())
        except domain.Refusal as exc:
            raise refused(exc) from exc
        await repository.save_campaign(deps.session, campaign)
        pending = await repository.find_pending_teachers(deps.session, campaign_id)
    done = 0
    for start in range(0, len(pending), chunk):
        async with transaction() as deps:
            part = pending[start : start + chunk]
            book = await Book.load(deps, [(t, campaign_id) for t in part])
            for teacher_id in part:
                sheet = book.sheets[(teacher_id, campaign_id)]
                known = teacher_id in book.teachers
                if sheet.closing_refusal(teacher_id, campaign_id, known=known) is None:
                    book.complete(teacher_id, campaign_id, "operator")
                    done += 1
            await book.save()
        if progress:
            progress(min(start + chunk, len(pending)), len(pending))
    return done


async def revise_many(
    deps: Deps[Diagnostics], diagnosis_ids: Sequence[str], reason: str
) -> list[Diagnosis]:
    """Re-score diagnoses from their stored results with the framework in force (a fixed
    framework, late evidence); each earlier revision is kept in its history. Set-based:
    one read per table, one write per table. Returns the diagnoses revised, in order."""
    session = deps.session
    ctx = deps.ctx
    found = await repository.find_diagnoses(session, diagnosis_ids)
    chosen: list[Diagnosis] = []
    for diagnosis_id in diagnosis_ids:
        diagnosis = found.get(diagnosis_id)
        if diagnosis is None:
            raise Refused("not_found", f"Диагностика «{diagnosis_id}» не найдена.", 404)
        try:
            diagnosis.revisable()
        except domain.Refusal as exc:
            raise refused(exc) from exc
        chosen.append(diagnosis)
    if len(chosen) == 1:
        traced(deps, None, chosen[0].diagnosis_id, chosen[0].teacher_id)
    teachers = await repository.find_teachers(session, {d.teacher_id for d in chosen})
    for d in chosen:
        if d.teacher_id not in teachers:
            raise Refused("unknown_teacher", f"Педагог «{d.teacher_id}» не найден в реестре.", 409)
    evidence = await repository.find_evidence(
        session, {(d.teacher_id, d.campaign_id) for d in chosen}
    )
    previous = await repository.find_diagnoses(
        session, {d.previous_diagnosis_id for d in chosen if d.previous_diagnosis_id}
    )
    now = deps.now()
    for d in chosen:
        before = previous.get(d.previous_diagnosis_id) if d.previous_diagnosis_id else None
        teacher = teachers[d.teacher_id]
        revised = d.revise(
            ctx.framework,
            teacher,
            evidence[(d.teacher_id, d.campaign_id)],
            levels_of(before.competencies) if before else None,
            reason,
            now,
            ctx.applicable(
                is_manager=bool(teacher.is_manager), audience=domain.AUDIENCES[teacher.audience]
            ),
        )
        deps.stage(
            Streams.DIAGNOSTICS,
            new_event(
                "diagnostics.diagnosis.revised", revised, source=SOURCE, subject=d.teacher_id
            ),
        )
    await repository.save_diagnoses(session, chosen)
    return chosen


async def revise(deps: Deps[Diagnostics], diagnosis_id: str, reason: str) -> Diagnosis:
    """Re-score one diagnosis (``revise_many``); the diagnosis as it is now."""
    [diagnosis] = await revise_many(deps, [diagnosis_id], reason)
    return diagnosis


async def revise_version(
    transaction: Transaction,
    framework_version: str,
    reason: str,
    progress: Progress | None = None,
    chunk: int = 500,
) -> int:
    """Revise every completed diagnosis scored with ``framework_version``, ``chunk`` per
    transaction, with progress."""
    async with transaction() as deps:
        ids = await repository.find_diagnosis_ids(deps.session, framework_version)
    for start in range(0, len(ids), chunk):
        async with transaction() as deps:
            await revise_many(deps, ids[start : start + chunk], reason)
        if progress:
            progress(min(start + chunk, len(ids)), len(ids))
    return len(ids)


async def cancel(deps: Deps[Diagnostics], diagnosis_id: str, reason: str) -> Diagnosis:
    """Cancel a diagnosis; if it was the teacher's current one, their previous completed
    one is again. The diagnosis as it is now."""
    session = deps.session
    diagnosis = await repository.get_diagnosis(session, diagnosis_id)
    if diagnosis is None:
        raise Refused("not_found", f"Диагностика «{diagnosis_id}» не найдена.", 404)
    traced(deps, None, diagnosis_id, diagnosis.teacher_id)
    was_current = diagnosis.latest
    try:
        cancelled = diagnosis.cancel(reason, deps.now())
    except domain.Refusal as exc:
        raise refused(exc) from exc
    await repository.save_diagnoses(session, [diagnosis])
    if was_current:
        await repository.restore_current(session, diagnosis.teacher_id)
    deps.stage(
        Streams.DIAGNOSTICS,
        new_event(
            "diagnostics.diagnosis.cancelled",
            cancelled,
            source=SOURCE,
            subject=diagnosis.teacher_id,
        ),
    )
    return diagnosis
