"""The life of a route after its draft: approvals, the start, steps done (by the
methodist or by course events from outside), the methodist's edits, completion. Each runs
inside the caller's transaction and stages its events in the outbox."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import domain, repository
from iomflow.routes.service import (
    Routes,
    cancel,
    close_route,
    drain_queue,
    free_step_seats,
    history,
    routes_event,
    take_step_seats,
)
from iomflow.shared.contracts import (
    Approval,
    CourseEvent,
    Event,
    RouteAgreed,
    RouteCompleted,
    RouteStep,
    StepCompleted,
)
from iomflow.shared.errors import Refused


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
        "history": history(route, "approved", by, role=role),
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
            routes_event(
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
        history=history(route, "activated", "routes"),
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
    await close_route(
        ctx,
        session,
        route,
        "completed",
        "все шаги выполнены" if by == "all_steps" else "срок маршрута истёк",
    )
    await ctx.stage(
        session,
        routes_event(
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
        history=history(route, "step_completed", by, step_id=step_id, via=completed_by),
    )
    await ctx.stage(
        session,
        routes_event(
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
        await take_step_seats(session, new)
        steps.append(new)
    if old is not None:
        await free_step_seats(session, old)
        old["status"] = "removed"
        old["removed_reason"] = reason
    values: dict[str, Any] = {
        "steps": steps,
        "total_hours": sum(s["hours"] for s in steps if s.get("status") != "removed"),
        "history": history(
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
    return await _take_course(
        ctx, session, str(event.event_id), event.source, event.payload, kind, datetime.now(UTC)
    )


async def _take_course(
    ctx: Routes,
    session: AsyncSession,
    event_id: str,
    source: str,
    course: CourseEvent,
    kind: str,
    received_at: datetime,
) -> str:
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
        "event_id": event_id,
        "kind": kind,
        "teacher_id": course.teacher_id,
        "program_id": program_id or course.program_id,
        "federal_number": course.federal_number,
        "on": course.on,
        "passed": course.passed,
        "hours": course.hours,
        "source": source,
        "external_id": course.external_id,
        "received_at": received_at,
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
    for route in reversed(await repository.open_routes_of(session, teacher_id)):
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
                history=history(route, "enrolled", "course_event", step_id=step["step_id"]),
            )
        elif course.passed:
            await complete_step(
                ctx, session, route, step["step_id"], "course_event", course.on, "course_event"
            )
        else:
            await repository.change(
                session,
                route.route_id,
                history=history(
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
        status = await _take_course(
            ctx, session, row.event_id, row.source, course, row.kind, row.received_at
        )
        if status != "held":
            released += 1
    return released
