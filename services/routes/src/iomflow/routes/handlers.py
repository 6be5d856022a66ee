"""Stream subscribers of routes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import repository, service
from iomflow.shared.contracts import (
    DiagnosisCompleted,
    Event,
    MethodistUpserted,
    ProgramUpserted,
    Streams,
    TeacherUpserted,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Subscription


async def teacher_upserted(session: AsyncSession, event: Event[TeacherUpserted], _: Outbox) -> None:
    t = event.payload
    await repository.save_teacher(
        session,
        {
            "teacher_id": t.teacher_id,
            "organization_id": t.organization_id,
            "municipality_id": t.municipality_id,
            "audience": t.audience.value,
        },
    )


async def program_upserted(session: AsyncSession, event: Event[ProgramUpserted], _: Outbox) -> None:
    p = event.payload
    await repository.save_program(
        session,
        {
            "program_id": p.program_id,
            "title": p.title,
            "hours": p.hours,
            "federal_registry": int(p.federal_registry),
            "competencies": p.competencies,
            "audiences": [a.value for a in p.audiences],
        },
    )


async def methodist_upserted(
    session: AsyncSession, event: Event[MethodistUpserted], outbox: Outbox
) -> None:
    m = event.payload
    await repository.save_methodist(
        session,
        {
            "methodist_id": m.methodist_id,
            "specialisations": m.specialisations,
            "municipalities": m.municipalities,
            "capacity": m.capacity,
        },
    )
    await service.drain_queue(session, outbox)


async def diagnosis_completed(
    session: AsyncSession, event: Event[DiagnosisCompleted], outbox: Outbox
) -> None:
    await service.draft_for_diagnosis(session, outbox, event)


SUBSCRIPTIONS = [
    Subscription(
        Streams.REGISTRY,
        {
            "registry.teacher.upserted": teacher_upserted,
            "registry.program.upserted": program_upserted,
            "registry.methodist.upserted": methodist_upserted,
        },
        "Teachers, programs and methodists for the read models",
    ),
    Subscription(
        Streams.DIAGNOSTICS,
        {
            "diagnostics.diagnosis.completed": diagnosis_completed,
        },
        "Completed diagnoses: each drafts a route",
    ),
]
