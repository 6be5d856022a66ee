"""Routes use cases: draft on a diagnosis, seat a methodist, the lifecycle, course events,
edits, rebalance and effectiveness. Each runs inside the caller's transaction and stages
its events in the outbox; nothing is published before the commit."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import domain, repository
from iomflow.shared.contracts import (
    Approval,
    CourseEvent,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    MethodistAssigned,
    MethodistUnavailable,
    RouteAgreed,
    RouteCancelled,
    RouteCompleted,
    RouteDrafted,
    RouteStep,
    StepCompleted,
    Streams,
    new_event,
)
from iomflow.shared.errors import Refused
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


def _event(type_: str, payload: Any, teacher_id: str) -> Event[Any]:
    return new_event(type_, payload, source="routes", subject=teacher_id)


def _history(route: Any, action: str, by: str, **details: Any) -> list[dict[str, Any]]:
    entry = {"at": datetime.now(UTC).isoformat(), "action": action, "by": by, **details}
    return [*route.history, entry]


# --- seats of a route's steps --------------------------------------------------------------

STEP_SEATS = (("tutor", "tutor_id"), ("mentor", "mentor_id"), ("site", "site_id"))


async def _take_step_seats(session: AsyncSession, step: dict[str, Any]) -> None:
    for kind, key in STEP_SEATS:
        if step.get(key) and await repository.take_seat(session, kind, step[key]) is None:
            raise SeatTaken(f"{kind} {step[key]} filled up meanwhile")


async def _free_step_seats(session: AsyncSession, step: dict[str, Any]) -> None:
    if step.get("status") in ("removed",):
        return
    for kind, key in STEP_SEATS:
        await repository.free_seat(session, kind, step.get(key))


async def _release(session: AsyncSession, route: Any) -> None:
    """A route leaves the open set: its methodist's seat and its steps' seats are freed."""
    await repository.free_seat(session, "methodist", route.methodist_id)
    for step in route.steps:
        await _free_step_seats(session, step)


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
            history=_history(
                route,
                "methodist_assigned",
                "routes",
                methodist_id=candidate.methodist_id,
                reason=domain.methodist_reason(candidate, teacher, codes),
            ),
        )
        return _event(
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
    return _event(
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
    previous = None
    for old in await repository.open_routes_of(session, teacher.teacher_id, "drafted"):
        previous = old
        await _close(ctx, session, old, "superseded", "заменён маршрутом по новой диагностике")
    if not domain.ordered_deficits(diagnosis.deficits):
        return None

    draft = domain.draft_route(
        teacher,
        diagnosis.deficits,
        await repository.catalogue(session, teacher, await ctx.offer(session)),
        ctx.rules,
        ctx.day(),
        await repository.completed_programs(session, teacher.teacher_id),
    )
    steps = [{**s.model_dump(mode="json"), "status": "planned"} for s in draft.steps]
    for step in steps:
        await _take_step_seats(session, step)
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
            history=_history(
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


async def _close(
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
        history=_history(route, status, by, reason=reason),
    )
    await _release(session, route)
    if route.methodist_id is not None:
        await drain_queue(ctx, session)


async def cancel(
    ctx: Routes, session: AsyncSession, route: Any, reason: str, code: str, by: str = "routes"
) -> None:
    await _close(ctx, session, route, "cancelled", reason, by)
    await ctx.stage(
        session,
        _event(
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


async def approve(
    ctx: Routes, session: AsyncSession, route_id: str, role: str, by: str
) -> dict[str, Any]:
    """One party's approval; the last one agrees the route (and activates it when its
    start has come). Checks who may approve: the teacher themself, the route's methodist,
    a member of the school's management team."""
    route = await open_route(session, route_id)
    if route.status != "drafted":
        raise Refused(
            "not_drafted",
            f"Маршрут в статусе «{route.status}»: согласование уже не требуется.",
            409,
        )
    if role == "teacher" and by != route.teacher_id:
        raise Refused("not_the_teacher", "Согласовать как педагог может только сам педагог.", 403)
    if role == "methodist":
        if route.methodist_id is None:
            raise Refused("no_methodist", "Маршруту ещё не назначен методист.", 409)
        if by != route.methodist_id:
            raise Refused("not_the_methodist", "Согласовать может только методист маршрута.", 403)
    if role == "management" and (
        by == route.teacher_id
        or not await repository.is_manager_of(
            session, by, route.organization_id, not_teacher=route.teacher_id
        )
    ):
        raise Refused(
            "not_management",
            "Согласовать от администрации может только член управленческой команды школы педагога.",
            403,
        )
    if any(a["role"] == role for a in route.approvals):
        raise Refused("already_approved", f"Согласование роли «{role}» уже получено.", 409)
    approvals = [*route.approvals, {"role": role, "by": by, "at": datetime.now(UTC).isoformat()}]
    values: dict[str, Any] = {
        "approvals": approvals,
        "history": _history(route, "approved", by, role=role),
    }
    missing = domain.missing_approvals(approvals, ctx.rules)
    if not missing:
        values["status"] = "agreed"
        values["agreed_at"] = datetime.now(UTC)
    await repository.change(session, route.route_id, **values)
    if not missing:
        active = domain.starts_now(route.starts_on, ctx.day())
        await ctx.stage(
            session,
            _event(
                "routes.route.agreed",
                RouteAgreed(
                    route_id=route.route_id,
                    teacher_id=route.teacher_id,
                    municipality_id=route.municipality_id,
                    methodist_id=route.methodist_id,
                    approvals=[Approval.model_validate(a) for a in approvals],
                    active=active,
                ),
                route.teacher_id,
            ),
        )
        if active:
            await activate(ctx, session, await repository.get_route(session, route.route_id))
    return {"status": "agreed" if not missing else "drafted", "missing": missing}


async def activate(ctx: Routes, session: AsyncSession, route: Any) -> None:
    """An agreed route starts: the teacher's previous active route ends (replaced)."""
    for other in await repository.open_routes_of(session, route.teacher_id, "active", "agreed"):
        if other.route_id != route.route_id:
            await cancel(ctx, session, other, f"заменён маршрутом {route.route_id}", "replaced")
    await repository.change(
        session,
        route.route_id,
        status="active",
        activated_at=datetime.now(UTC),
        history=_history(route, "activated", "routes"),
    )
    # Steps completed before the start (courses taken meanwhile) may already finish it.
    await _maybe_complete(ctx, session, route.route_id)


async def _maybe_complete(ctx: Routes, session: AsyncSession, route_id: str) -> bool:
    route = await repository.get_route(session, route_id)
    if route.status != "active":
        return False
    by = domain.completion(route.steps, route.ends_on, ctx.day(), ctx.rules)
    if by is None:
        return False
    live = [s for s in route.steps if s.get("status") != "removed"]
    await _close(
        ctx,
        session,
        route,
        "completed",
        "все шаги выполнены" if by == "all_steps" else "срок маршрута истёк",
    )
    await ctx.stage(
        session,
        _event(
            "routes.route.completed",
            RouteCompleted(
                route_id=route.route_id,
                teacher_id=route.teacher_id,
                municipality_id=route.municipality_id,
                methodist_id=route.methodist_id,
                by=by,
                steps_done=sum(1 for s in live if s.get("status") == "done"),
                steps_total=len(live),
            ),
            route.teacher_id,
        ),
    )
    return True


async def tick(ctx: Routes, session: AsyncSession) -> dict[str, int]:
    """The periodic pass: agreed routes whose start came become active; active routes past
    their end date complete by policy; waiting routes take any room there is (a seat
    freed by one replica while another was queueing a route is found here)."""
    started = completed = 0
    for route in await repository.due(session, ctx.day()):
        if route.status == "agreed":
            await activate(ctx, session, route)
            started += 1
        elif await _maybe_complete(ctx, session, route.route_id):
            completed += 1
    seated = await drain_queue(ctx, session)
    return {"activated": started, "completed": completed, "seated": seated}


async def open_route(session: AsyncSession, route_id: str) -> Any:
    route = await repository.get_route(session, route_id, lock=True)
    if route is None:
        raise Refused("route_not_found", f"Маршрут «{route_id}» не найден.", 404)
    if route.status not in domain.OPEN:
        raise Refused("route_closed", f"Маршрут в статусе «{route.status}» изменить нельзя.", 409)
    return route


async def complete_step(
    ctx: Routes,
    session: AsyncSession,
    route: Any,
    step_id: str,
    by: str,
    on: date,
    completed_by: str,
) -> None:
    steps = [dict(s) for s in route.steps]
    step = next((s for s in steps if s["step_id"] == step_id), None)
    if step is None:
        raise Refused("step_not_found", f"В маршруте нет шага «{step_id}».", 404)
    if step.get("status") in ("done", "removed"):
        raise Refused(
            "step_closed",
            f"Шаг «{step_id}» уже {'выполнен' if step['status'] == 'done' else 'удалён'}.",
            409,
        )
    step.update(status="done", done_on=on.isoformat(), completed_by=completed_by)
    await repository.change(
        session,
        route.route_id,
        steps=steps,
        history=_history(route, "step_completed", by, step_id=step_id, via=completed_by),
    )
    await ctx.stage(
        session,
        _event(
            "routes.step.completed",
            StepCompleted(
                route_id=route.route_id,
                teacher_id=route.teacher_id,
                municipality_id=route.municipality_id,
                step_id=step_id,
                kind=step["kind"],
                competency=step["competency"],
                program_id=step.get("program_id"),
                completed_by=completed_by,  # type: ignore[arg-type]
                completed_on=on,
            ),
            route.teacher_id,
        ),
    )
    await _maybe_complete(ctx, session, route.route_id)


# --- methodist's edits ---------------------------------------------------------------------


def its_methodist(route: Any, by: str, what: str) -> None:
    """Only the route's own methodist changes it; a route still waiting has nobody."""
    if route.methodist_id is None:
        raise Refused("no_methodist", "Маршруту ещё не назначен методист.", 409)
    if by != route.methodist_id:
        raise Refused("not_the_methodist", f"{what} может только методист маршрута.", 403)


async def edit(
    ctx: Routes,
    session: AsyncSession,
    route_id: str,
    action: str,
    by: str,
    reason: str,
    step_id: str | None = None,
    step: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add, remove or replace a step, with the methodist's reason; history keeps it all.

    A drafted route's approvals are reset by an edit (they approved another plan).
    """
    route = await open_route(session, route_id)
    its_methodist(route, by, "Изменять маршрут")
    steps = [dict(s) for s in route.steps]
    old = None
    if action in ("remove", "replace"):
        old = next((s for s in steps if s["step_id"] == step_id), None)
        if old is None:
            raise Refused("step_not_found", f"В маршруте нет шага «{step_id}».", 404)
        if old.get("status") in ("done", "removed"):
            raise Refused("step_closed", f"Шаг «{step_id}» уже закрыт.", 409)
    new = None
    if action in ("add", "replace"):
        assert step is not None
        if (
            step.get("program_id")
            and await repository.get_program(session, step["program_id"]) is None
        ):
            raise Refused(
                "unknown_program", f"Программы «{step['program_id']}» нет в реестре.", 422
            )
        number = (
            1 + max(int(s["step_id"][1:]) for s in steps if s["step_id"][1:].isdigit())
            if steps
            else 1
        )
        new = {
            **RouteStep.model_validate(
                {**step, "step_id": f"s{number}", "reason": f"методист: {reason}"}
            ).model_dump(mode="json"),
            "status": "planned",
        }
        await _take_step_seats(session, new)
        steps.append(new)
    if old is not None:
        await _free_step_seats(session, old)
        old["status"] = "removed"
        old["removed_reason"] = reason
    values: dict[str, Any] = {
        "steps": steps,
        "total_hours": sum(s["hours"] for s in steps if s.get("status") != "removed"),
        "history": _history(
            route,
            f"step_{action}",
            by,
            reason=reason,
            step_id=step_id,
            new_step=new["step_id"] if new else None,
        ),
    }
    if route.status == "drafted" and route.approvals:
        values["approvals"] = []
    await repository.change(session, route_id, **values)
    if route.status == "active":
        await _maybe_complete(ctx, session, route_id)
    return {"step_id": new["step_id"] if new else step_id}


# --- course events -------------------------------------------------------------------------


async def course_event(
    ctx: Routes, session: AsyncSession, event: Event[CourseEvent], kind: str
) -> str:
    """An enrolment or completion from a provider: it marks or completes the matching
    program step of the teacher's open route. A course or teacher not known yet is held
    (retried when the registries send them); a course matching no open step is kept as the
    teacher's history (a completed program is not offered again). The status it got."""
    course = event.payload
    program_id = course.program_id
    if program_id is None and course.federal_number:
        found = await repository.program_by_federal_number(session, course.federal_number)
        program_id = found.program_id if found else None
    elif program_id is not None and await repository.get_program(session, program_id) is None:
        program_id = None
    teacher = await repository.get_teacher(session, course.teacher_id)
    held_for = (
        "курс неизвестен реестру программ"
        if program_id is None
        else "педагог неизвестен реестру"
        if teacher is None
        else None
    )
    row = {
        "event_id": str(event.event_id),
        "kind": kind,
        "teacher_id": course.teacher_id,
        "program_id": program_id or course.program_id,
        "federal_number": course.federal_number,
        "on": course.on,
        "passed": course.passed,
        "hours": course.hours,
        "source": event.source,
        "external_id": course.external_id,
        "received_at": datetime.now(UTC),
        "status": "held" if held_for else "unmatched",
        "reason": held_for,
        "route_id": None,
        "step_id": None,
    }
    if held_for is None:
        assert program_id is not None
        matched = await _apply_course(ctx, session, course.teacher_id, program_id, kind, course)
        if matched is not None:
            row.update(status="applied", route_id=matched[0], step_id=matched[1])
        else:
            row["reason"] = "нет открытого шага маршрута с этой программой"
    await repository.add_course(session, row)
    return str(row["status"])


async def _apply_course(
    ctx: Routes,
    session: AsyncSession,
    teacher_id: str,
    program_id: str,
    kind: str,
    course: CourseEvent,
) -> tuple[str, str] | None:
    for route in reversed(await repository.routes_with_program_step(session, teacher_id)):
        step = domain.step_for_course(route.steps, program_id)
        if step is None:
            continue
        if kind == "enrolled":
            if step.get("status") == "enrolled":
                return route.route_id, step["step_id"]
            steps = [
                {**s, "status": "enrolled", "enrolled_on": course.on.isoformat()}
                if s["step_id"] == step["step_id"]
                else s
                for s in route.steps
            ]
            await repository.change(
                session,
                route.route_id,
                steps=steps,
                history=_history(route, "enrolled", "course_event", step_id=step["step_id"]),
            )
        elif course.passed:
            await complete_step(
                ctx, session, route, step["step_id"], "course_event", course.on, "course_event"
            )
        else:
            await repository.change(
                session,
                route.route_id,
                history=_history(
                    route,
                    "course_failed",
                    "course_event",
                    step_id=step["step_id"],
                    note="итоговая аттестация не пройдена — шаг остаётся открытым",
                ),
            )
        return route.route_id, step["step_id"]
    return None


async def release_held_courses(
    ctx: Routes,
    session: AsyncSession,
    teacher_id: str | None = None,
    program: tuple[str, str | None] | None = None,
) -> int:
    """Retry the held course events of a teacher or a program (id, federal number) that
    has arrived; how many were applied."""
    released = 0
    for row in await repository.held_courses(session, teacher_id, program):
        course = CourseEvent(
            teacher_id=row.teacher_id,
            program_id=row.program_id,
            federal_number=row.federal_number,
            external_id=row.external_id,
            on=row.on,
            hours=row.hours,
            passed=row.passed,
        )
        fake = Event[CourseEvent](
            event_id=uuid.UUID(row.event_id),
            type=f"courses.course.{row.kind}",
            version=1,
            source=row.source,
            occurred_at=datetime.now(UTC),
            subject=row.teacher_id,
            payload=course,
        )
        if await course_event(ctx, session, fake, row.kind) != "held":
            released += 1
    return released


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
            history=_history(
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
                _event(
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


def step_ids(steps: Iterable[dict[str, Any]]) -> list[str]:
    return [s["step_id"] for s in steps]
