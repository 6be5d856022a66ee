"""Stream subscribers of monitoring: every event becomes dated members and facts.

Facts are keyed by what they are about (a diagnosis, a route, a step), so a redelivered or
replayed event writes the same rows again. Their times are the events' ``occurred_at``
(a step's completion day), so values "as of" a date and a replay agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.monitoring import repository as repo
from iomflow.shared.contracts import (
    CommunityUpserted,
    DiagnosisCancelled,
    DiagnosisCompleted,
    Event,
    InternshipSiteUpserted,
    ManagementMemberUpserted,
    MentorUpserted,
    MethodistAssigned,
    MethodistUnavailable,
    MethodistUpserted,
    MunicipalityUpserted,
    OrganizationUpserted,
    ProgramUpserted,
    RecordRemoved,
    RegistryStale,
    RouteCancelled,
    RouteCompleted,
    RouteDrafted,
    StepCompleted,
    Streams,
    TeacherUpserted,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Subscription

Handler = Callable[[AsyncSession, Event[Any], Outbox], Awaitable[None]]
F = repo.facts.c


# --- registries ----------------------------------------------------------------------------


async def municipality(
    session: AsyncSession, event: Event[MunicipalityUpserted], _: Outbox
) -> None:
    m = event.payload
    await repo.save(
        session,
        repo.municipalities,
        {"municipality_id": m.municipality_id, "name": m.name, "remote": m.remote},
        "municipality_id",
    )


async def organization(
    session: AsyncSession, event: Event[OrganizationUpserted], _: Outbox
) -> None:
    o = event.payload
    at_risk = o.low_results or o.unfavorable_conditions
    await repo.save(
        session,
        repo.organizations,
        {
            "organization_id": o.organization_id,
            "municipality_id": o.municipality_id,
            "name": o.name,
            "at_risk": at_risk,
        },
        "organization_id",
    )
    await repo.save_member(
        session,
        "organizations",
        o.organization_id,
        o.municipality_id,
        o.organization_id,
        {"kind": o.kind.value, "at_risk": at_risk, "projects": [p.value for p in o.projects]},
        event.occurred_at,
    )
    # Each project the organisation takes part in, from when the registry says so.
    projects = [p.value for p in o.projects]
    await repo.end_facts(
        session,
        event.occurred_at,
        F.kind == "project",
        F.member_id == o.organization_id,
        F.key.not_in(projects),
    )
    for project in projects:
        await repo.add_fact(
            session,
            f"project:{o.organization_id}:{project}",
            "project",
            o.organization_id,
            event.occurred_at,
            {"project": project},
            key=project,
        )


async def teacher(session: AsyncSession, event: Event[TeacherUpserted], _: Outbox) -> None:
    t = event.payload
    await repo.save_member(
        session,
        "teachers",
        t.teacher_id,
        t.municipality_id,
        t.organization_id,
        {
            "audience": t.audience.value,
            "subjects": t.subjects,
            "young": t.young,
            "is_manager": t.is_manager,
        },
        event.occurred_at,
    )
    if t.expert:
        await repo.add_fact(
            session, f"expert:{t.teacher_id}", "expert", t.teacher_id, event.occurred_at
        )
    else:
        await repo.end_facts(session, event.occurred_at, F.fact_id == f"expert:{t.teacher_id}")


async def program(session: AsyncSession, event: Event[ProgramUpserted], _: Outbox) -> None:
    p = event.payload
    await repo.save(
        session,
        repo.programs,
        {
            "program_id": p.program_id,
            "federal_registry": p.federal_registry,
            "themes": [t.value for t in p.themes],
            "kind": p.kind,
        },
        "program_id",
    )


async def site(session: AsyncSession, event: Event[InternshipSiteUpserted], _: Outbox) -> None:
    s = event.payload
    await repo.save(
        session,
        repo.sites,
        {"site_id": s.site_id, "themes": [t.value for t in s.themes]},
        "site_id",
    )


async def mentor(session: AsyncSession, event: Event[MentorUpserted], _: Outbox) -> None:
    """An organisation with a registered mentor runs a mentoring program; a mentor who
    moved stops counting for the old one."""
    m = event.payload
    await repo.end_facts(
        session,
        event.occurred_at,
        F.kind == "mentoring_org",
        F.key == m.mentor_id,
        F.member_id != m.organization_id,
    )
    await repo.add_fact(
        session,
        f"mentoring_org:{m.mentor_id}:{m.organization_id}",
        "mentoring_org",
        m.organization_id,
        event.occurred_at,
        key=m.mentor_id,
    )


async def mentor_removed(session: AsyncSession, event: Event[RecordRemoved], _: Outbox) -> None:
    await repo.end_facts(
        session, event.occurred_at, F.kind == "mentoring_org", F.key == event.payload.record_id
    )


async def management_member(
    session: AsyncSession, event: Event[ManagementMemberUpserted], _: Outbox
) -> None:
    m = event.payload
    await repo.save(
        session,
        repo.management,
        {
            "member_id": m.member_id,
            "teacher_id": m.teacher_id,
            "organization_id": m.organization_id,
        },
        "member_id",
    )
    await repo.add_fact(
        session, f"team:{m.organization_id}", "team", m.organization_id, event.occurred_at
    )


async def methodist(session: AsyncSession, event: Event[MethodistUpserted], _: Outbox) -> None:
    m = event.payload
    await repo.save(
        session,
        repo.methodists,
        {"methodist_id": m.methodist_id, "capacity": m.capacity},
        "methodist_id",
    )


async def registry_stale(session: AsyncSession, event: Event[RegistryStale], _: Outbox) -> None:
    s = event.payload
    await repo.save_stale(session, s.registry, s.owner, s.stale, s.total, event.occurred_at)


async def community(session: AsyncSession, event: Event[CommunityUpserted], _: Outbox) -> None:
    """Communities carry no KPI yet; known so that a replay reads the same stream."""


def removed(kind: str) -> Handler:
    async def handle(session: AsyncSession, event: Event[RecordRemoved], _: Outbox) -> None:
        record_id = event.payload.record_id
        await repo.end_member(session, kind, record_id, event.occurred_at)

    return handle  # type: ignore[return-value]


# --- diagnostics ---------------------------------------------------------------------------


async def diagnosed(session: AsyncSession, event: Event[DiagnosisCompleted], _: Outbox) -> None:
    d = event.payload
    await repo.add_fact(
        session,
        f"diagnosed:{d.diagnosis_id}",
        "diagnosed",
        d.teacher_id,
        event.occurred_at,
        {"burnout": d.burnout.level if d.burnout else None, "deficits": len(d.deficits)},
    )


async def diagnosis_cancelled(
    session: AsyncSession, event: Event[DiagnosisCancelled], _: Outbox
) -> None:
    # A cancelled diagnosis was never one: it leaves no trace in any KPI.
    await repo.drop_facts(session, F.fact_id == f"diagnosed:{event.payload.diagnosis_id}")


# --- routes --------------------------------------------------------------------------------


async def route_drafted(session: AsyncSession, event: Event[RouteDrafted], _: Outbox) -> None:
    r = event.payload
    at = event.occurred_at
    if r.supersedes:
        await repo.end_facts(session, at, F.key == r.supersedes)
    await repo.add_fact(session, f"route:{r.route_id}", "route", r.teacher_id, at, key=r.route_id)
    tutors = sorted({s.tutor_id for s in r.steps if s.tutor_id})
    if tutors:
        await repo.add_fact(
            session,
            f"tutor:{r.route_id}",
            "tutor",
            r.teacher_id,
            at,
            {"tutor_ids": tutors},
            key=r.route_id,
        )
    if any(s.kind == "mentoring" for s in r.steps):
        await repo.add_fact(
            session, f"mentored:{r.route_id}", "mentored", r.teacher_id, at, key=r.route_id
        )


async def methodist_assigned(
    session: AsyncSession, event: Event[MethodistAssigned], _: Outbox
) -> None:
    a = event.payload
    at = event.occurred_at
    await repo.end_facts(session, at, F.kind == "support", F.key == a.route_id)
    await repo.add_fact(
        session,
        f"support:{a.route_id}:{a.methodist_id}",
        "support",
        a.teacher_id,
        at,
        {"methodist_id": a.methodist_id},
        key=a.route_id,
    )


async def methodist_unavailable(
    session: AsyncSession, event: Event[MethodistUnavailable], _: Outbox
) -> None:
    # Back in the queue (a rebalance): the route has no methodist from now.
    u = event.payload
    await repo.end_facts(session, event.occurred_at, F.kind == "support", F.key == u.route_id)


async def route_closed(
    session: AsyncSession, event: Event[RouteCompleted] | Event[RouteCancelled], _: Outbox
) -> None:
    payload = event.payload
    if isinstance(payload, RouteCancelled) and payload.code == "diagnosis_cancelled":
        await repo.drop_facts(session, F.key == payload.route_id)  # never a real route
        return
    await repo.end_facts(session, event.occurred_at, F.key == payload.route_id)


async def step_completed(session: AsyncSession, event: Event[StepCompleted], _: Outbox) -> None:
    s = event.payload
    if s.kind not in ("program", "internship"):
        return
    # What the program or site teaches is looked up when values are computed: the
    # registries' stream and this one are read independently, in any order.
    await repo.add_fact(
        session,
        f"trained:{s.route_id}:{s.step_id}",
        "trained",
        s.teacher_id,
        datetime.combine(s.completed_on, time(12, 0), tzinfo=UTC),
        {
            "from_route": True,
            "step_kind": s.kind,
            "competency": s.competency,
            "program_id": s.program_id,
        },
    )


REGISTRY: dict[str, Handler] = {
    "registry.municipality.upserted": municipality,  # type: ignore[dict-item]
    "registry.organization.upserted": organization,  # type: ignore[dict-item]
    "registry.teacher.upserted": teacher,  # type: ignore[dict-item]
    "registry.program.upserted": program,  # type: ignore[dict-item]
    "registry.internship_site.upserted": site,  # type: ignore[dict-item]
    "registry.mentor.upserted": mentor,  # type: ignore[dict-item]
    "registry.management_member.upserted": management_member,  # type: ignore[dict-item]
    "registry.community.upserted": community,  # type: ignore[dict-item]
    "registry.methodist.upserted": methodist,  # type: ignore[dict-item]
    "registry.stale": registry_stale,  # type: ignore[dict-item]
    "registry.teacher.removed": removed("teachers"),
    "registry.organization.removed": removed("organizations"),
    "registry.mentor.removed": mentor_removed,  # type: ignore[dict-item]
}
DIAGNOSTICS: dict[str, Handler] = {
    "diagnostics.diagnosis.completed": diagnosed,  # type: ignore[dict-item]
    "diagnostics.diagnosis.cancelled": diagnosis_cancelled,  # type: ignore[dict-item]
}
ROUTES: dict[str, Handler] = {
    "routes.route.drafted": route_drafted,  # type: ignore[dict-item]
    "routes.methodist.assigned": methodist_assigned,  # type: ignore[dict-item]
    "routes.methodist.unavailable": methodist_unavailable,  # type: ignore[dict-item]
    "routes.route.completed": route_closed,  # type: ignore[dict-item]
    "routes.route.cancelled": route_closed,  # type: ignore[dict-item]
    "routes.step.completed": step_completed,  # type: ignore[dict-item]
}

SUBSCRIPTIONS = [
    Subscription(Streams.REGISTRY, REGISTRY, "Members (teachers, organisations) and read models"),
    Subscription(Streams.DIAGNOSTICS, DIAGNOSTICS, "Diagnosed teachers"),
    Subscription(Streams.ROUTES, ROUTES, "Routes, methodist support, training completed"),
]
