"""Routes use cases: draft on a diagnosis, assign a methodist, drain the waiting queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import domain, repository
from iomflow.shared.contracts import (
    DiagnosisCompleted,
    Event,
    MethodistAssigned,
    MethodistUnavailable,
    RouteDrafted,
    Streams,
    new_event,
)
from iomflow.shared.outbox import Outbox


class UnknownTeacher(Exception):
    def __init__(self, teacher_id: str) -> None:
        super().__init__(f"teacher {teacher_id} is not in the registries' read model")


def _event(type_: str, payload: Any, teacher_id: str) -> Event[Any]:
    return new_event(type_, payload, source="routes", subject=teacher_id)


async def assign_methodist(
    session: AsyncSession, route: Any, teacher: domain.TeacherView
) -> Event[Any] | None:
    """Seat the route with the best eligible methodist; None when nobody has room."""
    codes = {step["competency"] for step in route.steps}
    for candidate in domain.eligible_methodists(
        teacher, codes, await repository.all_methodists(session)
    ):
        load = await repository.take_seat(session, candidate.methodist_id)
        if load is None:
            continue  # filled up meanwhile (another replica)
        await repository.assign(session, route.route_id, candidate.methodist_id)
        return _event(
            "routes.methodist.assigned",
            MethodistAssigned(
                route_id=route.route_id,
                teacher_id=route.teacher_id,
                methodist_id=candidate.methodist_id,
                municipality_id=route.municipality_id,
                load=load,
                capacity=candidate.capacity,
            ),
            route.teacher_id,
        )
    return None


async def draft_for_diagnosis(
    session: AsyncSession, outbox: Outbox, event: Event[DiagnosisCompleted]
) -> str | None:
    """Draft the route of a completed diagnosis and seat a methodist; the route id."""
    diagnosis = event.payload
    if await repository.route_for_diagnosis(session, diagnosis.diagnosis_id) is not None:
        return None
    if not diagnosis.deficits:
        return None  # nothing to work on: no route
    teacher = await repository.get_teacher(session, diagnosis.teacher_id)
    if teacher is None:
        raise UnknownTeacher(diagnosis.teacher_id)

    previous = await repository.current_draft(session, diagnosis.teacher_id)
    if previous is not None:  # a newer diagnosis supersedes the older draft
        await repository.set_status(session, previous.route_id, "superseded")
        if previous.methodist_id:
            await repository.free_seat(session, previous.methodist_id)

    draft = domain.draft_route(
        teacher, diagnosis.deficits, await repository.programs_for(session, teacher.audience)
    )
    route_id = str(uuid.uuid4())
    await repository.add_route(
        session,
        {
            "route_id": route_id,
            "diagnosis_id": diagnosis.diagnosis_id,
            "teacher_id": teacher.teacher_id,
            "organization_id": diagnosis.organization_id,
            "municipality_id": diagnosis.municipality_id,
            "status": "drafted",
            "steps": [s.model_dump(mode="json") for s in draft.steps],
            "total_hours": draft.total_hours,
            "methodist_id": None,
            "created_at": datetime.now(UTC),
        },
    )
    events = [
        _event(
            "routes.route.drafted",
            RouteDrafted(
                route_id=route_id,
                diagnosis_id=diagnosis.diagnosis_id,
                teacher_id=teacher.teacher_id,
                organization_id=diagnosis.organization_id,
                municipality_id=diagnosis.municipality_id,
                steps=draft.steps,
                total_hours=draft.total_hours,
                supersedes=previous.route_id if previous is not None else None,
            ),
            teacher.teacher_id,
        )
    ]
    route = await repository.get_route(session, route_id)
    assigned = await assign_methodist(session, route, teacher)
    events.append(
        assigned
        or _event(
            "routes.methodist.unavailable",
            MethodistUnavailable(
                route_id=route_id,
                teacher_id=teacher.teacher_id,
                municipality_id=diagnosis.municipality_id,
                reason="no methodist serving the municipality has room (capacity 250)",
            ),
            teacher.teacher_id,
        )
    )
    await outbox.stage(session, Streams.ROUTES, *events)
    return route_id


async def drain_queue(session: AsyncSession, outbox: Outbox) -> int:
    """Seat waiting routes now that capacity may have appeared; how many were seated."""
    events = []
    for route in await repository.unassigned(session):
        teacher = await repository.get_teacher(session, route.teacher_id)
        if teacher is None:
            continue
        assigned = await assign_methodist(session, route, teacher)
        if assigned is not None:
            events.append(assigned)
    await outbox.stage(session, Streams.ROUTES, *events)
    return len(events)
