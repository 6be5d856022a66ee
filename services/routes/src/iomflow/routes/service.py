"""Routes use cases: draft on a diagnosis, seat a methodist, the lifecycle, course events,
edits, rebalance and effectiveness. Each runs inside the caller's transaction and stages
its events in the outbox; nothing is published before the commit."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import domain, drafting, repository
from iomflow.shared.contracts import (
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    MethodistAssigned,
    MethodistUnavailable,
    RouteCancelled,
    RouteDrafted,
    Streams,
    new_event,
)
from iomflow.shared.outbox import Outbox


class UnknownTeacher(Exception):
    """Retryable: the teacher's registry event has not reached the read model yet."""

    def __init__(self, teacher_id: str) -> None:
        super().__init__(f"teacher {teacher_id} is not in the registries' read model")


class SeatTaken(Exception):
    """Retryable: a resource filled up between reading its load and taking the seat."""


@dataclass
class Routes:
    """What the use cases need besides the session: rules, outbox, today's date, and the
    registries' offer kept for ``offer_ttl_s`` (programs and communities change rarely;
    this process forgets it at once when their events arrive, other replicas within the
    TTL)."""

    rules: domain.Rules
    outbox: Outbox
    today: Any = None  # a callable returning today's date; tests move the clock
    offer_ttl_s: float = 30.0
    _offer: tuple[float, repository.Offer] | None = field(default=None, repr=False)

    def day(self) -> date:
        return self.today() if self.today is not None else datetime.now(UTC).date()

    async def offer(self, session: AsyncSession) -> repository.Offer:
        kept = self._offer
        if kept is None or time.monotonic() - kept[0] > self.offer_ttl_s:
            kept = self._offer = (time.monotonic(), await repository.offer(session))
        return kept[1]

    def forget_offer(self) -> None:
        self._offer = None

    async def methodists(self, session: AsyncSession) -> list[domain.MethodistView]:
        """Every methodist with their load now (what they serve from the kept offer; a
        methodist the offer does not know yet makes it reload)."""
        loads = await repository.methodist_loads(session)
        known = (await self.offer(session)).methodists
        if any(row.methodist_id not in known for row in loads):
            self.forget_offer()
            known = (await self.offer(session)).methodists
        return [
            replace(known[row.methodist_id], capacity=row.capacity, load=row.load)
            for row in loads
            if row.methodist_id in known
        ]

    async def stage(self, session: AsyncSession, *events: Event[Any]) -> None:
        await self.outbox.stage(session, Streams.ROUTES, *events)


def routes_event(type_: str, payload: Any, teacher_id: str) -> Event[Any]:
    return new_event(type_, payload, source="routes", subject=teacher_id)


def history(route: Any, action: str, by: str, **details: Any) -> list[dict[str, Any]]:
    entry = {"at": datetime.now(UTC).isoformat(), "action": action, "by": by, **details}
    return [*route.history, entry]


# --- seats of a route's steps --------------------------------------------------------------

STEP_SEATS = (("tutor", "tutor_id"), ("mentor", "mentor_id"), ("site", "site_id"))


async def take_step_seats(session: AsyncSession, step: dict[str, Any]) -> None:
    for kind, key in STEP_SEATS:
        if step.get(key) and await repository.take_seat(session, kind, step[key]) is None:
            raise SeatTaken(f"{kind} {step[key]} filled up meanwhile")


async def free_step_seats(session: AsyncSession, step: dict[str, Any]) -> None:
    if step.get("status") in ("removed",):
        return
    for kind, key in STEP_SEATS:
        await repository.free_seat(session, kind, step.get(key))


async def _release(session: AsyncSession, route: Any) -> None:
    """A route leaves the open set: its methodist's seat and its steps' seats are freed."""
    await repository.free_seat(session, "methodist", route.methodist_id)
    for step in route.steps:
        await free_step_seats(session, step)


# --- drafting ------------------------------------------------------------------------------


async def assign_methodist(
    ctx: Routes,
    session: AsyncSession,
    route: Any,
    teacher: domain.TeacherView,
    exclude: str | None = None,
) -> Event[Any] | None:
    """Seat the route with the best eligible methodist; None when nobody has room."""
    codes = {step["competency"] for step in route.steps}
    candidates = [m for m in await ctx.methodists(session) if m.methodist_id != exclude]
    for candidate in domain.eligible_methodists(teacher, codes, candidates):
        load = await repository.take_seat(session, "methodist", candidate.methodist_id)
        if load is None:
            continue  # filled up meanwhile (another replica)
        await repository.change(
            session,
            route.route_id,
            methodist_id=candidate.methodist_id,
            assigned_at=datetime.now(UTC),
            history=history(
                route,
                "methodist_assigned",
                "routes",
                methodist_id=candidate.methodist_id,
                reason=domain.methodist_reason(candidate, teacher, codes),
            ),
        )
        return routes_event(
            "routes.methodist.assigned",
            MethodistAssigned(
                route_id=route.route_id,
                teacher_id=route.teacher_id,
                methodist_id=candidate.methodist_id,
                municipality_id=route.municipality_id,
                load=load,
                capacity=candidate.capacity,
                previous_methodist_id=exclude,
                reason=domain.methodist_reason(candidate, teacher, codes),
            ),
            route.teacher_id,
        )
    return None


def _unavailable(route: Any) -> Event[Any]:
    return routes_event(
        "routes.methodist.unavailable",
        MethodistUnavailable(
            route_id=route.route_id,
            teacher_id=route.teacher_id,
            municipality_id=route.municipality_id,
            reason="нет свободного методиста, обслуживающего муниципалитет педагога: "
            "маршрут ждёт в очереди",
        ),
        route.teacher_id,
    )


async def draft_for_diagnosis(
    ctx: Routes, session: AsyncSession, diagnosis: DiagnosisCompleted
) -> str | None:
    """Draft the route of a completed diagnosis and seat a methodist; the route id.

    A diagnosis with no deficits drafts nothing (and retires an older draft). The
    teacher's earlier draft is superseded; agreed and active routes stay until the new
    one is agreed.
    """
    if await repository.route_for_diagnosis(session, diagnosis.diagnosis_id) is not None:
        return None
    await attribute_effects(ctx, session, diagnosis)
    return await _draft(ctx, session, diagnosis)


async def _draft(ctx: Routes, session: AsyncSession, diagnosis: DiagnosisCompleted) -> str | None:
    teacher = await repository.get_teacher(session, diagnosis.teacher_id, lock="share")
    if teacher is None:
        raise UnknownTeacher(diagnosis.teacher_id)
    drafts = await repository.open_routes_of(session, teacher.teacher_id, "drafted")
    if not drafting.ordered_deficits(diagnosis.deficits):
        for old in drafts:  # nothing left to work on: the draft goes, and says so
            await cancel(ctx, session, old, "новая диагностика не выявила дефицитов", "replaced")
        return None
    previous = None
    for old in drafts:  # the new route's drafted event names the one it supersedes
        previous = old
        await close_route(ctx, session, old, "superseded", "заменён маршрутом по новой диагностике")

    draft = drafting.draft_route(
        teacher,
        diagnosis.deficits,
        await repository.catalogue(session, teacher, await ctx.offer(session)),
        ctx.rules,
        ctx.day(),
        await repository.completed_programs(session, teacher.teacher_id),
    )
    steps = [{**s.model_dump(mode="json"), "status": "planned"} for s in draft.steps]
    for step in steps:
        await take_step_seats(session, step)
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
            "steps": steps,
            "total_hours": draft.total_hours,
            "methodist_id": None,
            "created_at": datetime.now(UTC),
            "starts_on": draft.starts_on,
            "ends_on": draft.ends_on,
            "hours_by_period": draft.hours_by_period,
            "rules_version": ctx.rules.version,
            "supersedes": previous.route_id if previous is not None else None,
            "approvals": [],
            "history": [
                {
                    "at": datetime.now(UTC).isoformat(),
                    "action": "drafted",
                    "by": "routes",
                    "diagnosis_id": diagnosis.diagnosis_id,
                    "rules_version": ctx.rules.version,
                }
            ],
        },
    )
    events = [
        routes_event(
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
                starts_on=draft.starts_on,
                ends_on=draft.ends_on,
                hours_by_period=draft.hours_by_period,
                rules_version=ctx.rules.version,
            ),
            teacher.teacher_id,
        )
    ]
    route = await repository.get_route(session, route_id)
    events.append(await assign_methodist(ctx, session, route, teacher) or _unavailable(route))
    await ctx.stage(session, *events)
    return route_id


async def diagnosis_revised(ctx: Routes, session: AsyncSession, revised: DiagnosisRevised) -> None:
    """A re-scored diagnosis: its draft is redrafted; an agreed or active route keeps its
    steps and records the revision for the methodist to review."""
    route = await repository.route_for_diagnosis(session, revised.diagnosis_id)
    if route is None:
        await _draft(ctx, session, revised)
    elif route.status == "drafted":
        await _draft(ctx, session, revised)  # supersedes the draft, like a newer diagnosis
    elif route.status in ("agreed", "active"):
        await repository.change(
            session,
            route.route_id,
            history=history(
                route,
                "diagnosis_revised",
                "routes",
                revision=revised.revision,
                reason=revised.reason,
                deficits=[d.code for d in revised.deficits],
                note="маршрут согласован — методисту пересмотреть шаги",
            ),
        )


async def diagnosis_cancelled(
    ctx: Routes, session: AsyncSession, cancelled: DiagnosisCancelled
) -> None:
    route = await repository.route_for_diagnosis(session, cancelled.diagnosis_id)
    if route is not None and route.status in domain.OPEN:
        await cancel(
            ctx, session, route, f"диагностика отменена: {cancelled.reason}", "diagnosis_cancelled"
        )


# --- lifecycle -----------------------------------------------------------------------------


async def close_route(
    ctx: Routes, session: AsyncSession, route: Any, status: str, reason: str, by: str = "routes"
) -> None:
    """Move an open route to a final status and free its seats; waiting routes may fill
    the methodist's seat."""
    await repository.change(
        session,
        route.route_id,
        status=status,
        status_reason=reason,
        closed_at=datetime.now(UTC),
        history=history(route, status, by, reason=reason),
    )
    await _release(session, route)
    if route.methodist_id is not None:
        await drain_queue(ctx, session)


async def cancel(
    ctx: Routes, session: AsyncSession, route: Any, reason: str, code: str, by: str = "routes"
) -> None:
    await close_route(ctx, session, route, "cancelled", reason, by)
    await ctx.stage(
        session,
        routes_event(
            "routes.route.cancelled",
            RouteCancelled(
                route_id=route.route_id,
                teacher_id=route.teacher_id,
                municipality_id=route.municipality_id,
                reason=reason,
                code=code,  # type: ignore[arg-type]
            ),
            route.teacher_id,
        ),
    )


# --- the queue and rebalance ---------------------------------------------------------------


async def drain_queue(ctx: Routes, session: AsyncSession) -> int:
    """Seat waiting routes now that capacity may have appeared; how many were seated."""
    events: list[Event[Any]] = []
    if not any(m.load < m.capacity for m in await ctx.methodists(session)):
        return 0  # nobody has room: a long queue is not walked for nothing
    waiting = await repository.unassigned(session)
    known = await repository.teachers_by_id(session, [r.teacher_id for r in waiting])
    for route in waiting:
        teacher = known.get(route.teacher_id)
        if teacher is None:
            continue
        assigned = await assign_methodist(ctx, session, route, teacher)
        if assigned is not None:
            events.append(assigned)
        elif not any(m.load < m.capacity for m in await ctx.methodists(session)):
            break  # the room is gone
    await ctx.stage(session, *events)
    return len(events)


async def rebalance(
    ctx: Routes, session: AsyncSession, even: bool = True, by: str = "routes"
) -> list[domain.Move]:
    """Bring every methodist within capacity (and, with ``even``, level the loads); the
    moves made. Loads are recounted from the routes, repairing any drift."""
    rows = await repository.open_routes(session)
    known = await repository.teachers_by_id(session, [r.teacher_id for r in rows])
    seats = [
        domain.Seat(
            r.route_id,
            r.methodist_id,
            known[r.teacher_id],
            frozenset(s["competency"] for s in r.steps),
        )
        for r in rows
        if r.teacher_id in known
    ]
    # Routes of a teacher the read model no longer has (removed meanwhile) stay where they
    # are, but still fill their methodist's seat.
    pinned = Counter(r.methodist_id for r in rows if r.teacher_id not in known and r.methodist_id)
    methodists = await repository.all_methodists(session)
    moves = domain.plan_rebalance(seats, methodists, even=even, pinned=pinned)
    loads = {m.methodist_id: pinned.get(m.methodist_id, 0) for m in methodists}
    final = {s.route_id: s.methodist_id for s in seats}
    final.update({m.route_id: m.to_methodist for m in moves})
    for methodist_id in final.values():
        if methodist_id in loads:
            loads[methodist_id] += 1
    await repository.set_loads(session, "methodist", loads)
    capacity = {m.methodist_id: m.capacity for m in methodists}
    events = []
    for move in moves:
        # open_routes reads only what the plan needs; a moved route's history and
        # municipality come from its full row.
        route = await repository.get_route(session, move.route_id)
        await repository.change(
            session,
            move.route_id,
            methodist_id=move.to_methodist,
            assigned_at=datetime.now(UTC) if move.to_methodist else None,
            history=history(
                route,
                "rebalanced",
                by,
                reason=move.reason,
                **{"from": move.from_methodist, "to": move.to_methodist},
            ),
        )
        if move.to_methodist is None:
            events.append(_unavailable(route))
        else:
            events.append(
                routes_event(
                    "routes.methodist.assigned",
                    MethodistAssigned(
                        route_id=move.route_id,
                        teacher_id=route.teacher_id,
                        methodist_id=move.to_methodist,
                        municipality_id=route.municipality_id,
                        load=loads[move.to_methodist],
                        capacity=capacity[move.to_methodist],
                        previous_methodist_id=move.from_methodist,
                        reason=move.reason,
                    ),
                    route.teacher_id,
                )
            )
    await ctx.stage(session, *events)
    return moves


# --- the registries change -----------------------------------------------------------------


async def teacher_removed(ctx: Routes, session: AsyncSession, teacher_id: str) -> None:
    # The teacher row is locked first: a replica drafting for this teacher at the same
    # moment holds it for share, so its route is either seen here or never drafted.
    await repository.get_teacher(session, teacher_id, lock="update")
    for route in await repository.open_routes_of(session, teacher_id):
        await cancel(ctx, session, route, "педагог выбыл из реестра", "teacher_removed")
    await repository.remove(session, "teacher", teacher_id)


async def methodist_changed(ctx: Routes, session: AsyncSession) -> None:
    """A methodist arrived, left or changed capacity: nobody above capacity, the queue
    drains into the room there is."""
    await rebalance(ctx, session, even=False)


# --- effectiveness -------------------------------------------------------------------------


async def attribute_effects(
    ctx: Routes, session: AsyncSession, diagnosis: DiagnosisCompleted
) -> int:
    """A re-diagnosis credits (or not) the done steps of the route built on the previous
    diagnosis; how many steps it judged."""
    if not diagnosis.previous_diagnosis_id or not diagnosis.changes:
        return 0
    route = await repository.route_for_diagnosis(session, diagnosis.previous_diagnosis_id)
    if route is None:
        return 0
    found = domain.attribute(route.steps, diagnosis.changes)
    await repository.add_attributions(
        session,
        [
            {
                "diagnosis_id": diagnosis.diagnosis_id,
                "route_id": route.route_id,
                "step_id": a.step_id,
                "kind": a.kind,
                "competency": a.competency,
                "change": a.change,
                "program_id": a.program_id,
                "site_id": a.site_id,
                "mentor_id": a.mentor_id,
                "community_id": a.community_id,
                "methodist_id": route.methodist_id,
                "at": datetime.now(UTC),
            }
            for a in found
        ],
    )
    return len(found)


async def effectiveness(session: AsyncSession, by: str) -> list[dict[str, Any]]:
    rows = await repository.attribution_rows(session, by)
    grouped: dict[str, list[str]] = {}
    for row in rows:
        grouped.setdefault(row.key, []).append(row.change)
    return sorted(
        ({by: key, **domain.effectiveness(changes)} for key, changes in grouped.items()),
        key=lambda r: (-(r["effective_share"] or 0), -r["evaluated"], r[by]),
    )
