"""Diagnostics use cases: take a result (or hold it), complete, close, revise and cancel
diagnoses, run campaigns. Every change stages its event in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.diagnostics import domain, repository
from iomflow.diagnostics.campaigns import DEFAULT_CAMPAIGN, in_target
from iomflow.shared import inbox, wire
from iomflow.shared.contracts import (
    Audience,
    CompetencyResult,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    Instrument,
    ResultSubmitted,
    Streams,
    new_event,
)
from iomflow.shared.errors import Refused
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import dead_letter_fields

SOURCE = "diagnostics"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Diagnostics:
    """What the use cases need: the framework in force, the outbox, the hold period."""

    framework: domain.Framework
    outbox: Outbox
    hold_for: timedelta = timedelta(days=30)
    group: str = "diagnostics"


@dataclass(frozen=True)
class Submission:
    status: Literal["stored", "held", "late"]
    diagnosis: Any | None = None


# --- results ---------------------------------------------------------------------------------


async def _check(
    session: AsyncSession, framework: domain.Framework, event: Event[ResultSubmitted]
) -> tuple[Any, dict[str, float], datetime]:
    """What can be checked without the teacher: scores, campaign, window, external id."""
    result = event.payload
    try:
        scores = domain.instrument_scores(framework, result.instrument, result.scores, result.items)
    except domain.ResultError as exc:
        raise Refused(exc.code, exc.detail) from exc
    campaign = await repository.get_campaign(session, result.campaign_id)
    if campaign is None:
        raise Refused("unknown_campaign", f"Кампания «{result.campaign_id}» не найдена.")
    if campaign.status != "open":
        raise Refused(
            "campaign_closed", f"Кампания «{campaign.name}» закрыта: результаты не принимаются."
        )
    taken_at = result.taken_at or event.occurred_at
    day = taken_at.date()
    if (campaign.starts_on and day < campaign.starts_on) or (
        campaign.ends_on and day > campaign.ends_on
    ):
        raise Refused(
            "outside_campaign_window",
            f"Результат от {day:%d.%m.%Y} вне сроков кампании «{campaign.name}» "
            f"({_window(campaign)}).",
        )
    if result.external_id and await repository.external_id_taken(
        session, event.source, result.external_id
    ):
        raise Refused(
            "duplicate_external_id",
            f"Результат с внешним идентификатором «{result.external_id}» от «{event.source}» "
            "уже принят; повторная отправка не меняет диагностику.",
            409,
        )
    return campaign, scores, taken_at


def _window(campaign: Any) -> str:
    start = f"{campaign.starts_on:%d.%m.%Y}" if campaign.starts_on else "…"
    end = f"{campaign.ends_on:%d.%m.%Y}" if campaign.ends_on else "…"
    return f"{start} — {end}"


async def submit_result(
    session: AsyncSession, ctx: Diagnostics, event: Event[ResultSubmitted]
) -> Submission:
    """Check and store one result; complete the diagnosis when the campaign's required
    instruments are in. A teacher the registries have not announced yet: the result is
    held (and taken when the teacher arrives, or dead-lettered after ``hold_for``)."""
    result = event.payload
    trace.get_current_span().set_attribute("iomflow.teacher_id", result.teacher_id)
    campaign, scores, taken_at = await _check(session, ctx.framework, event)
    teacher = await repository.get_teacher(session, result.teacher_id)
    if teacher is None:
        now = datetime.now(UTC)
        await repository.hold(
            session,
            {
                "event_id": str(event.event_id),
                "teacher_id": result.teacher_id,
                "campaign_id": result.campaign_id,
                "fields": wire.encode(event),
                "received_at": now,
                "hold_until": now + ctx.hold_for,
            },
        )
        return Submission("held")
    if not in_target(campaign, teacher):
        raise Refused(
            "not_in_campaign",
            f"Педагог «{result.teacher_id}» не входит в охват кампании «{campaign.name}».",
        )
    existing = await repository.find_diagnosis(session, result.teacher_id, result.campaign_id)
    if existing is not None and existing.status == "cancelled":
        raise Refused(
            "diagnosis_cancelled",
            f"Диагностика педагога «{result.teacher_id}» в кампании «{campaign.name}» отменена.",
            409,
        )
    await repository.add_result(
        session,
        {
            "result_id": str(event.event_id),
            "teacher_id": result.teacher_id,
            "campaign_id": result.campaign_id,
            "instrument": result.instrument.value,
            "expert_id": result.expert_id,
            "external_id": result.external_id,
            "submitted": result.model_dump(mode="json"),
            "scores": scores,
            "source": event.source,
            "taken_at": taken_at,
            "received_at": datetime.now(UTC),
        },
    )
    if existing is not None:
        # Kept as evidence; it counts when the diagnosis is revised.
        return Submission("late", existing)
    rows = await repository.campaign_results(session, result.teacher_id, result.campaign_id)
    if not domain.is_complete(
        [Instrument(i) for i in campaign.required], {Instrument(r.instrument) for r in rows}
    ):
        return Submission("stored")
    return Submission(
        "stored", await _complete(session, ctx, teacher, result.campaign_id, rows, "instruments")
    )


def evidence_of(rows: Sequence[Any]) -> list[domain.Evidence]:
    return [
        domain.Evidence(
            instrument=Instrument(r.instrument),
            scores=r.scores,
            result_id=r.result_id,
            seq=seq,
            expert_id=r.expert_id,
        )
        for seq, r in enumerate(rows)
    ]


def scored(
    framework: domain.Framework, teacher: Any, rows: Sequence[Any], previous: Any | None
) -> dict[str, Any]:
    """The fields of a diagnosis that follow from its evidence: where the teacher works,
    levels with their explanation, deficits, instruments used, burnout, and the change
    since ``previous`` (the teacher's earlier diagnosis, if any)."""
    evidence = evidence_of(rows)
    applicable = framework.applicable(
        is_manager=bool(teacher.is_manager), audience=Audience(teacher.audience)
    )
    competencies = domain.combine(framework, evidence, applicable)
    used = {e.instrument for c in competencies for e in c.evidence}
    surveys = [r for r in rows if r.instrument == Instrument.BURNOUT_SURVEY.value]
    burnout = domain.burnout(framework, surveys[-1].scores) if surveys else None
    if burnout is not None:
        used.add(Instrument.BURNOUT_SURVEY)
    before = [CompetencyResult.model_validate(c) for c in previous.competencies] if previous else []
    return {
        "organization_id": teacher.organization_id,
        "municipality_id": teacher.municipality_id,
        "framework_version": framework.version,
        "competencies": competencies,
        "deficits": domain.deficits(competencies),
        "rule": framework.combination.label,
        "instruments": sorted(used, key=list(Instrument).index),
        "burnout": burnout,
        "changes": domain.changes(framework, before, competencies) if previous else [],
    }


async def _complete(
    session: AsyncSession,
    ctx: Diagnostics,
    teacher: Any,
    campaign_id: str,
    rows: Sequence[Any],
    by: Literal["instruments", "operator"],
) -> Any:
    previous = await repository.latest_diagnosis(session, teacher.teacher_id)
    diagnosis = DiagnosisCompleted(
        diagnosis_id=str(uuid.uuid4()),
        teacher_id=teacher.teacher_id,
        campaign_id=campaign_id,
        completed_by=by,
        previous_diagnosis_id=previous.diagnosis_id if previous else None,
        **scored(ctx.framework, teacher, rows, previous),
    )
    _traced(diagnosis.diagnosis_id, teacher.teacher_id)
    await repository.add_diagnosis(
        session,
        {
            **_columns(diagnosis),
            "status": "completed",
            "revision": 0,
            "history": [],
            "completed_at": datetime.now(UTC),
        },
    )
    await ctx.outbox.stage(
        session,
        Streams.DIAGNOSTICS,
        new_event(
            "diagnostics.diagnosis.completed",
            diagnosis,
            source=SOURCE,
            subject=teacher.teacher_id,
        ),
    )
    return await repository.get_diagnosis(session, diagnosis.diagnosis_id)


def _traced(diagnosis_id: str, teacher_id: str) -> None:
    """Name the diagnosis on the span at work (the result's consumer span, the HTTP
    request): ``iomflow trace <diagnosis id>`` finds its trace by it."""
    span = trace.get_current_span()
    span.set_attribute("iomflow.diagnosis_id", diagnosis_id)
    span.set_attribute("iomflow.teacher_id", teacher_id)


def _columns(diagnosis: DiagnosisCompleted) -> dict[str, Any]:
    data = diagnosis.model_dump(mode="json")
    return {
        **{k: data[k] for k in repository.diagnoses.c.keys() if k in data},
        "deficit_count": len(diagnosis.deficits),
        "rule": diagnosis.rule or "",
    }


def as_contract(row: Any) -> DiagnosisCompleted:
    return DiagnosisCompleted.model_validate(
        {k: getattr(row, k) for k in DiagnosisCompleted.model_fields}
    )


# --- held results ----------------------------------------------------------------------------


async def teacher_arrived(session: AsyncSession, ctx: Diagnostics, teacher_id: str) -> int:
    """Take the results held for a teacher the registries have just announced; each one
    that now breaks a rule is dead-lettered with its reason. Returns how many were taken."""
    taken = 0
    for row in await repository.held_for(session, teacher_id):
        await repository.release(session, [row.event_id])
        event = wire.decode(row.fields)
        try:
            async with session.begin_nested():
                await submit_result(session, ctx, event)
            taken += 1
        except Refused as exc:
            await _dead_letter(session, ctx, row, exc.code, exc.detail)
    return taken


async def expire_held(
    sessions: async_sessionmaker[AsyncSession], ctx: Diagnostics, now: datetime | None = None
) -> int:
    """Dead-letter the results held past their deadline (the teacher never came)."""
    now = now or datetime.now(UTC)
    expired = 0
    while True:
        async with sessions() as session, session.begin():
            rows = await repository.held_expired(session, now)
            for row in rows:
                await _dead_letter(
                    session,
                    ctx,
                    row,
                    "unknown_teacher",
                    f"Педагог «{row.teacher_id}» не появился в региональном реестре до "
                    f"{row.hold_until:%d.%m.%Y %H:%M} UTC; результат не учтён.",
                )
            await repository.release(session, [r.event_id for r in rows])
        expired += len(rows)
        if len(rows) < 500:
            break
    if expired:
        ctx.outbox.wake()
    return expired


async def _dead_letter(
    session: AsyncSession, ctx: Diagnostics, row: Any, reason: str, error: str
) -> None:
    stream = Streams.RESULTS_INBOUND
    # The held result was recorded in the inbox when it was taken (held); it was never
    # applied, so forget it there: `iomflow dlq replay` of this letter (once the teacher is
    # in the registries) must be applied, not dropped as a duplicate.
    await inbox.forget(session, repository.tables.inbox, ctx.group, str(row.event_id))
    await ctx.outbox.stage_entry(
        session,
        Streams.dlq(stream),
        row.fields["type"],
        dead_letter_fields(
            row.fields,
            stream=stream,
            group=ctx.group,
            entry_id="held",
            reason=reason,
            error=error,
            deliveries=1,
        ),
    )


# --- operator commands -----------------------------------------------------------------------


async def close_diagnosis(
    session: AsyncSession, ctx: Diagnostics, teacher_id: str, campaign_id: str
) -> Any:
    """An operator completes a teacher's diagnosis with the evidence that is in."""
    if await repository.find_diagnosis(session, teacher_id, campaign_id) is not None:
        raise Refused("already_completed", "Диагностика уже завершена или отменена.", 409)
    teacher = await repository.get_teacher(session, teacher_id)
    rows = await repository.campaign_results(session, teacher_id, campaign_id)
    if teacher is None or not rows:
        raise Refused(
            "no_results",
            f"У педагога «{teacher_id}» нет результатов в кампании «{campaign_id}».",
            404,
        )
    return await _complete(session, ctx, teacher, campaign_id, rows, "operator")


async def close_campaign(
    sessions: async_sessionmaker[AsyncSession],
    ctx: Diagnostics,
    campaign_id: str,
    progress: Progress | None = None,
    chunk: int = 500,
) -> int:
    """Close a campaign: no more results; every teacher with results but no diagnosis is
    completed with what is in, ``chunk`` teachers per transaction. Returns how many."""
    async with sessions() as session, session.begin():
        campaign = await repository.get_campaign(session, campaign_id)
        if campaign is None:
            raise Refused("unknown_campaign", f"Кампания «{campaign_id}» не найдена.", 404)
        if campaign_id == DEFAULT_CAMPAIGN:
            raise Refused("standing_campaign", "Постоянную диагностику закрыть нельзя.", 409)
        await repository.close_campaign(session, campaign_id, datetime.now(UTC))
        pending = await repository.pending_teachers(session, campaign_id)
    done = 0
    for start in range(0, len(pending), chunk):
        async with sessions() as session, session.begin():
            for teacher_id in pending[start : start + chunk]:
                teacher = await repository.get_teacher(session, teacher_id)
                if teacher is None:
                    continue
                rows = await repository.campaign_results(session, teacher_id, campaign_id)
                await _complete(session, ctx, teacher, campaign_id, rows, "operator")
                done += 1
        ctx.outbox.wake()
        if progress:
            progress(min(start + chunk, len(pending)), len(pending))
    return done


async def revise(session: AsyncSession, ctx: Diagnostics, diagnosis_id: str, reason: str) -> Any:
    """Re-score a diagnosis from its stored results with the framework in force (a fixed
    framework, late evidence); the earlier revision is kept in its history."""
    row = await repository.get_diagnosis(session, diagnosis_id)
    if row is None:
        raise Refused("not_found", f"Диагностика «{diagnosis_id}» не найдена.", 404)
    _traced(diagnosis_id, row.teacher_id)
    if row.status == "cancelled":
        raise Refused("diagnosis_cancelled", "Отменённую диагностику нельзя пересчитать.", 409)
    teacher = await repository.get_teacher(session, row.teacher_id)
    if teacher is None:
        raise Refused("unknown_teacher", f"Педагог «{row.teacher_id}» не найден в реестре.", 409)
    rows = await repository.campaign_results(session, row.teacher_id, row.campaign_id)
    previous = (
        await repository.get_diagnosis(session, row.previous_diagnosis_id)
        if row.previous_diagnosis_id
        else None
    )
    fields = scored(ctx.framework, teacher, rows, previous)
    revised = DiagnosisRevised(
        **as_contract(row).model_dump(exclude=set(fields)),
        **fields,
        revision=row.revision + 1,
        reason=reason,
    )
    earlier = {
        k: getattr(row, k)
        for k in ("revision", "framework_version", "rule", "competencies", "burnout", "changes")
    }
    now = datetime.now(UTC)
    await repository.replace_diagnosis(
        session,
        diagnosis_id,
        {
            **_columns(revised),
            "revision": revised.revision,
            "history": [
                *row.history,
                {**earlier, "replaced_at": now.isoformat(), "reason": reason},
            ],
            "revised_at": now,
        },
    )
    await ctx.outbox.stage(
        session,
        Streams.DIAGNOSTICS,
        new_event("diagnostics.diagnosis.revised", revised, source=SOURCE, subject=row.teacher_id),
    )
    return await repository.get_diagnosis(session, diagnosis_id)


async def revise_version(
    sessions: async_sessionmaker[AsyncSession],
    ctx: Diagnostics,
    framework_version: str,
    reason: str,
    progress: Progress | None = None,
    chunk: int = 500,
) -> int:
    """Revise every completed diagnosis scored with ``framework_version``, ``chunk`` per
    transaction, with progress."""
    async with sessions() as session:
        ids = await repository.diagnosis_ids(session, framework_version)
    for start in range(0, len(ids), chunk):
        async with sessions() as session, session.begin():
            for diagnosis_id in ids[start : start + chunk]:
                await revise(session, ctx, diagnosis_id, reason)
        ctx.outbox.wake()
        if progress:
            progress(min(start + chunk, len(ids)), len(ids))
    return len(ids)


async def cancel(session: AsyncSession, ctx: Diagnostics, diagnosis_id: str, reason: str) -> Any:
    row = await repository.get_diagnosis(session, diagnosis_id)
    if row is None:
        raise Refused("not_found", f"Диагностика «{diagnosis_id}» не найдена.", 404)
    _traced(diagnosis_id, row.teacher_id)
    if row.status == "cancelled":
        raise Refused("already_cancelled", "Диагностика уже отменена.", 409)
    await repository.cancel_diagnosis(session, row, datetime.now(UTC), reason)
    await ctx.outbox.stage(
        session,
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
