"""Diagnostics use cases: take results (or hold them), complete, close, revise and cancel
diagnoses. Each works on a batch in one unit of work (``Deps``): set-based reads, decisions
in memory in stream order, multi-row writes, events staged in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.diagnostics import domain, repository
from iomflow.diagnostics.book import (
    INSTRUMENTS,
    SOURCE,
    Book,
    columns,
    levels_of,
    scored,
    traced,
    utc,
)
from iomflow.diagnostics.campaigns import DEFAULT_CAMPAIGN, in_target
from iomflow.shared import inbox, wire
from iomflow.shared.contracts import (
    Audience,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    Instrument,
    ResultSubmitted,
    Streams,
    TeacherUpserted,
    new_event,
)
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


Refuse = Callable[[Event[ResultSubmitted], Refused], None]


def as_contract(row: Any) -> DiagnosisCompleted:
    fields = {k: getattr(row, k) for k in DiagnosisCompleted.model_fields}
    if fields["evidence_at"] is not None:  # SQLite keeps no zone: it was written in UTC
        fields["evidence_at"] = utc(fields["evidence_at"])
    return DiagnosisCompleted.model_validate(fields)


# --- results ---------------------------------------------------------------------------------


@dataclass
class _Checked:
    """A result that passed what can be checked without its teacher."""

    event: Event[ResultSubmitted]
    scores: dict[str, float]
    campaign: Any
    required: list[Instrument]


def _window(campaign: Any) -> str:
    start = f"{campaign.starts_on:%d.%m.%Y}" if campaign.starts_on else "…"
    end = f"{campaign.ends_on:%d.%m.%Y}" if campaign.ends_on else "…"
    return f"{start} — {end}"


def _campaign_refusal(event: Event[ResultSubmitted], campaign: Any) -> Refused | None:
    result = event.payload
    if campaign is None:
        return Refused("unknown_campaign", f"Кампания «{result.campaign_id}» не найдена.")
    if campaign.status != "open":
        return Refused(
            "campaign_closed", f"Кампания «{campaign.name}» закрыта: результаты не принимаются."
        )
    day = (result.taken_at or event.occurred_at).date()
    if (campaign.starts_on and day < campaign.starts_on) or (
        campaign.ends_on and day > campaign.ends_on
    ):
        return Refused(
            "outside_campaign_window",
            f"Результат от {day:%d.%m.%Y} вне сроков кампании «{campaign.name}» "
            f"({_window(campaign)}).",
        )
    return None


async def submit_results(
    events: Sequence[Event[ResultSubmitted]],
    deps: Deps[Diagnostics],
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
        except domain.ResultError as exc:
            refuse(event, Refused(exc.code, exc.detail))
            continue
        scored_.append((event, scores))
    if not scored_:
        return {}
    if len(events) == 1:
        trace.get_current_span().set_attribute("iomflow.teacher_id", events[0].payload.teacher_id)

    session = deps.session
    found = await repository.campaigns_by_id(session, {e.payload.campaign_id for e, _ in scored_})
    required = {c.campaign_id: [INSTRUMENTS[i] for i in c.required] for c in found.values()}
    checked: list[_Checked] = []
    for event, scores in scored_:
        campaign = found.get(event.payload.campaign_id)
        refused = _campaign_refusal(event, campaign)
        if refused is not None:
            refuse(event, refused)
        else:
            checked.append(_Checked(event, scores, campaign, required[campaign.campaign_id]))
    if not checked:
        return {}

    keys = {(c.event.source, x) for c in checked if (x := c.event.payload.external_id)}
    taken = await repository.taken_external_ids(session, keys)
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
            refuse(
                event,
                Refused(
                    "duplicate_external_id",
                    f"Результат с внешним идентификатором «{result.external_id}» от "
                    f"«{event.source}» уже принят; повторная отправка не меняет диагностику.",
                    409,
                ),
            )
            continue
        teacher = book.teachers.get(result.teacher_id)
        if teacher is None:
            at = book.clock()
            held.append(
                {
                    "event_id": str(event.event_id),
                    "teacher_id": result.teacher_id,
                    "campaign_id": result.campaign_id,
                    "fields": wire.encode(event),
                    "received_at": at,
                    "hold_until": at + deps.ctx.hold_for,
                }
            )
            out[str(event.event_id)] = Submission("held")
            continue
        if not in_target(campaign, teacher):
            refuse(
                event,
                Refused(
                    "not_in_campaign",
                    f"Педагог «{result.teacher_id}» не входит в охват кампании «{campaign.name}».",
                ),
            )
            continue
        sheet = book.sheets[(result.teacher_id, result.campaign_id)]
        if sheet.status == "cancelled":
            refuse(
                event,
                Refused(
                    "diagnosis_cancelled",
                    f"Диагностика педагога «{result.teacher_id}» в кампании "
                    f"«{campaign.name}» отменена.",
                    409,
                ),
            )
            continue
        book.take(event, item.scores)
        if key is not None:
            taken.add(key)
        if sheet.diagnosis_id is not None:
            # Kept as evidence; it counts when the diagnosis is revised.
            out[str(event.event_id)] = Submission("late", sheet.diagnosis_id)
        elif domain.is_complete(item.required, sheet.instruments):
            cause = causes.get(str(event.event_id), event) if causes else event
            diagnosis = book.complete(result.teacher_id, result.campaign_id, "instruments", cause)
            out[str(event.event_id)] = Submission("stored", diagnosis.diagnosis_id)
        else:
            out[str(event.event_id)] = Submission("stored")
    await book.save()
    await repository.hold(session, held)
    return out


# --- held results ----------------------------------------------------------------------------


async def teachers_arrived(
    deps: Deps[Diagnostics], arrived: Sequence[Event[TeacherUpserted]]
) -> int:
    """Take the results held for teachers the registries have just announced, through the
    same batch as results from the stream (what they complete continues the trace of their
    teacher's event); each one that now breaks a rule is dead-lettered with its reason.
    Returns how many were taken."""
    teachers = {e.payload.teacher_id: e for e in arrived}
    rows = await repository.held_for(deps.session, teachers)
    if not rows:
        return 0
    await repository.release(deps.session, [row.event_id for row in rows])
    by_id = {row.event_id: row for row in rows}
    refused: list[tuple[Any, str, str]] = []

    def dead(event: Event[ResultSubmitted], exc: Refused) -> None:
        refused.append((by_id[str(event.event_id)], exc.code, exc.detail))

    causes = {row.event_id: teachers[row.teacher_id] for row in rows}
    taken = await submit_results([wire.decode(row.fields) for row in rows], deps, dead, causes)
    await _dead_letter(deps, refused)
    return len(taken)


async def expire_held(transaction: Transaction, now: datetime | None = None) -> int:
    """Dead-letter the results held past their deadline (the teacher never came)."""
    now = now or utc_now()
    expired = 0
    while True:
        async with transaction() as deps:
            rows = await repository.held_expired(deps.session, now)
            await _dead_letter(
                deps,
                [
                    (
                        row,
                        "unknown_teacher",
                        f"Педагог «{row.teacher_id}» не появился в региональном реестре до "
                        f"{row.hold_until:%d.%m.%Y %H:%M} UTC; результат не учтён.",
                    )
                    for row in rows
                ],
            )
            await repository.release(deps.session, [r.event_id for r in rows])
        expired += len(rows)
        if len(rows) < 500:
            return expired


async def _dead_letter(deps: Deps[Diagnostics], letters: Sequence[tuple[Any, str, str]]) -> None:
    """Dead-letter held results: (held row, reason, error) each."""
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


async def close_diagnosis(deps: Deps[Diagnostics], teacher_id: str, campaign_id: str) -> Any:
    """An operator completes a teacher's diagnosis with the evidence that is in."""
    book = await Book.load(deps, [(teacher_id, campaign_id)])
    sheet = book.sheets[(teacher_id, campaign_id)]
    if sheet.diagnosis_id is not None:
        raise Refused("already_completed", "Диагностика уже завершена или отменена.", 409)
    if teacher_id not in book.teachers or not sheet.results:
        raise Refused(
            "no_results",
            f"У педагога «{teacher_id}» нет результатов в кампании «{campaign_id}».",
            404,
        )
    diagnosis = book.complete(teacher_id, campaign_id, "operator")
    await book.save()
    return await repository.get_diagnosis(deps.session, diagnosis.diagnosis_id)


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
        if campaign is None:
            raise Refused("unknown_campaign", f"Кампания «{campaign_id}» не найдена.", 404)
        if campaign_id == DEFAULT_CAMPAIGN:
            raise Refused("standing_campaign", "Постоянную диагностику закрыть нельзя.", 409)
        await repository.close_campaign(deps.session, campaign_id, deps.now())
        pending = await repository.pending_teachers(deps.session, campaign_id)
    done = 0
    for start in range(0, len(pending), chunk):
        async with transaction() as deps:
            part = pending[start : start + chunk]
            book = await Book.load(deps, [(t, campaign_id) for t in part])
            for teacher_id in part:
                sheet = book.sheets[(teacher_id, campaign_id)]
                if teacher_id in book.teachers and sheet.diagnosis_id is None and sheet.results:
                    book.complete(teacher_id, campaign_id, "operator")
                    done += 1
            await book.save()
        if progress:
            progress(min(start + chunk, len(pending)), len(pending))
    return done


async def revise_many(
    deps: Deps[Diagnostics], diagnosis_ids: Sequence[str], reason: str
) -> list[str]:
    """Re-score diagnoses from their stored results with the framework in force (a fixed
    framework, late evidence); each earlier revision is kept in its history. Set-based:
    one read per table, one write per table. Returns the ids revised."""
    session = deps.session
    found = await repository.diagnoses_by_id(session, diagnosis_ids)
    rows = []
    for diagnosis_id in diagnosis_ids:
        row = found.get(diagnosis_id)
        if row is None:
            raise Refused("not_found", f"Диагностика «{diagnosis_id}» не найдена.", 404)
        if row.status == "cancelled":
            raise Refused("diagnosis_cancelled", "Отменённую диагностику нельзя пересчитать.", 409)
        rows.append(row)
    if len(rows) == 1:
        traced(deps, None, rows[0].diagnosis_id, rows[0].teacher_id)
    teachers = await repository.teachers_by_id(session, {r.teacher_id for r in rows})
    for row in rows:
        if row.teacher_id not in teachers:
            raise Refused(
                "unknown_teacher", f"Педагог «{row.teacher_id}» не найден в реестре.", 409
            )
    evidence = await repository.evidence(session, {(r.teacher_id, r.campaign_id) for r in rows})
    previous = await repository.diagnoses_by_id(
        session, {r.previous_diagnosis_id for r in rows if r.previous_diagnosis_id}
    )
    now = deps.now()
    replaced: list[dict[str, Any]] = []
    levels: list[dict[str, Any]] = []
    for row in rows:
        before = previous.get(row.previous_diagnosis_id) if row.previous_diagnosis_id else None
        fields = scored(
            deps.ctx,
            teachers[row.teacher_id],
            evidence[(row.teacher_id, row.campaign_id)],
            levels_of(before.competencies) if before else None,
        )
        revised = DiagnosisRevised(
            diagnosis_id=row.diagnosis_id,
            teacher_id=row.teacher_id,
            campaign_id=row.campaign_id,
            completed_by=row.completed_by,
            previous_diagnosis_id=row.previous_diagnosis_id,
            **fields,
            revision=row.revision + 1,
            reason=reason,
        )
        earlier = {
            k: getattr(row, k)
            for k in ("revision", "framework_version", "rule", "competencies", "burnout", "changes")
        }
        replaced.append(
            {
                **columns(revised),
                "history": [
                    *row.history,
                    {**earlier, "replaced_at": now.isoformat(), "reason": reason},
                ],
                "revised_at": now,
            }
        )
        levels += repository.level_rows_of(row.diagnosis_id, revised.competencies)
        deps.stage(
            Streams.DIAGNOSTICS,
            new_event(
                "diagnostics.diagnosis.revised", revised, source=SOURCE, subject=row.teacher_id
            ),
        )
    await repository.replace_diagnoses(session, replaced)
    await repository.remove_levels(session, [r.diagnosis_id for r in rows])
    await repository.add_levels(session, levels)
    return [r.diagnosis_id for r in rows]


async def revise(deps: Deps[Diagnostics], diagnosis_id: str, reason: str) -> Any:
    """Re-score one diagnosis (``revise_many``); the diagnosis as it is now."""
    await revise_many(deps, [diagnosis_id], reason)
    return await repository.get_diagnosis(deps.session, diagnosis_id)


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
        ids = await repository.diagnosis_ids(deps.session, framework_version)
    for start in range(0, len(ids), chunk):
        async with transaction() as deps:
            await revise_many(deps, ids[start : start + chunk], reason)
        if progress:
            progress(min(start + chunk, len(ids)), len(ids))
    return len(ids)


async def cancel(deps: Deps[Diagnostics], diagnosis_id: str, reason: str) -> Any:
    session = deps.session
    row = await repository.get_diagnosis(session, diagnosis_id)
    if row is None:
        raise Refused("not_found", f"Диагностика «{diagnosis_id}» не найдена.", 404)
    traced(deps, None, diagnosis_id, row.teacher_id)
    if row.status == "cancelled":
        raise Refused("already_cancelled", "Диагностика уже отменена.", 409)
    await repository.cancel_diagnosis(session, row, deps.now(), reason)
    deps.stage(
        Streams.DIAGNOSTICS,
        new_event(
            "diagnostics.diagnosis.cancelled",
            DiagnosisCancelled(
                diagnosis_id=diagnosis_id,
                teacher_id=row.teacher_id,
                campaign_id=row.campaign_id,
                reason=reason,
            ),
            source=SOURCE,
            subject=row.teacher_id,
        ),
    )
    return await repository.get_diagnosis(session, diagnosis_id)
