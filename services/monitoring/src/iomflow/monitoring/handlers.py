"""Stream subscribers of monitoring: every event moves a projection."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.monitoring import repository
from iomflow.shared.contracts import (
    DiagnosisCompleted,
    Event,
    MethodistAssigned,
    MunicipalityUpserted,
    RouteDrafted,
    Streams,
    TeacherUpserted,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Subscription


async def municipality_upserted(
    session: AsyncSession, event: Event[MunicipalityUpserted], _: Outbox
) -> None:
    await repository.save_municipality(session, event.payload.municipality_id, event.payload.name)


async def teacher_upserted(session: AsyncSession, event: Event[TeacherUpserted], _: Outbox) -> None:
    t = event.payload
    await repository.save_teacher(
        session,
        {
            "teacher_id": t.teacher_id,
            "municipality_id": t.municipality_id,
            "organization_id": t.organization_id,
            "registered": 1,
        },
    )


async def diagnosis_completed(
    session: AsyncSession, event: Event[DiagnosisCompleted], _: Outbox
) -> None:
    d = event.payload
    await repository.save_teacher(
        session,
        {
            "teacher_id": d.teacher_id,
            "municipality_id": d.municipality_id,
            "organization_id": d.organization_id,
            "diagnosis_id": d.diagnosis_id,
            "diagnosed_at": event.occurred_at,
        },
    )


async def route_drafted(session: AsyncSession, event: Event[RouteDrafted], _: Outbox) -> None:
    r = event.payload
    await repository.route_drafted(session, r.teacher_id, r.route_id, event.occurred_at)


async def methodist_assigned(
    session: AsyncSession, event: Event[MethodistAssigned], _: Outbox
) -> None:
    a = event.payload
    await repository.methodist_assigned(
        session, a.teacher_id, a.route_id, a.methodist_id, event.occurred_at
    )


SUBSCRIPTIONS = [
    Subscription(
        Streams.REGISTRY,
        {
            "registry.municipality.upserted": municipality_upserted,
            "registry.teacher.upserted": teacher_upserted,
        },
        "Populations: municipalities and teachers",
    ),
    Subscription(
        Streams.DIAGNOSTICS,
        {
            "diagnostics.diagnosis.completed": diagnosis_completed,
        },
        "Diagnosed teachers",
    ),
    Subscription(
        Streams.ROUTES,
        {
            "routes.route.drafted": route_drafted,
            "routes.methodist.assigned": methodist_assigned,
        },
        "Routes and methodist support",
    ),
]
