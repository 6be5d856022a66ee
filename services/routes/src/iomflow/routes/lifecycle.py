"""The life of a route after its draft: approvals, the start, steps done (by the
methodist or by course events from outside), the methodist's edits, completion. Each works
on the caller's ``Ledger``: the route in memory, written with the rest of the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from iomflow.routes import domain, repository
from iomflow.routes.domain import Route
from iomflow.routes.ledger import Ledger, routes_event
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


async def approve(ledger: Ledger, route_id: str, role: str, by: str) -> dict[str, Any]:
    """One party's approval; the last one agrees the route (and activates it when its
    start has come). Checks who may approve: the teacher themself, the route's methodist,
    a member of the school's management team."""
    route = await open_route(ledger, route_id)
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
            ledger.session, by, route.organization_id, not_teacher=route.teacher_id
        )
    ):
        raise Refused(
            "not_management",
            "Согласовать от администрации может только член управленческой команды школы педагога.",
            403,
        )
    if any(a["role"] == role for a in route.approvals):
        raise Refused("already_approved", f"Согласование роли «{role}» уже получено.", 409)
    now = ledger.now()
    approvals = [*route.approvals, {"role": role, "by": by, "at": now.isoformat()}]
    values: dict[str, Any] = {
        "approvals": approvals,
        "history": ledger.record(route, "approved", by, role=role),
    }
    missing = domain.missing_approvals(approvals, ledger.ctx.rules)
    if not missing:
        values["status"] = "agreed"
        values["agreed_at"] = now
    ledger.change(route, **values)
    if not missing:
        active = domain.starts_now(route.starts_on, ledger.ctx.day())
        ledger.emit(
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
            None,
        )
        if active:
            await activate(ledger, route)
    return {"status": "agreed" if not missing else "drafted", "missing": missing}


async def activate(ledger: Ledger, route: Route, cause: Event[Any] | None = None) -> None:
    """An agreed route starts: the teacher's previous active route ends (replaced)."""
    await ledger.load_routes(open_of=[route.teacher_id])
    for other in ledger.open_of(route.teacher_id, "active", "agreed"):
        if other.route_id != route.route_id:
            await ledger.cancel(other, f"заменён маршрутом {route.route_id}", "replaced", cause)
    ledger.change(
        route,
        status="active",
        activated_at=ledger.now(),
        history=ledger.record(route, "activated", "routes"),
    )
    # Steps completed before the start (courses taken meanwhile) may already finish it.
    await maybe_complete(ledger, route, cause)


async def maybe_complete(ledger: Ledger, route: Route, cause: Event[Any] | None = None) -> bool:
    """An active route whose steps are all done (or whose end date passed, by policy)
    completes now; whether it did."""
    if route.status != "active":
        return False
    by = domain.completion(route.steps, route.ends_on, ledger.ctx.day(), ledger.ctx.rules)
    if by is None:
        return False
    live = [s for s in route.steps if s.get("status") != "removed"]
    completed = routes_event(
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
    )
    reason = "все шаги выполнены" if by == "all_steps" else "срок маршрута истёк"
    await ledger.close(route, "completed", reason, cause, event=completed)
    return True


async def tick(ledger: Ledger) -> dict[str, int]:
    """The periodic pass: agreed routes whose start came become active; active routes past
    their end date complete by policy; waiting routes take any room there is (a seat
    freed by one replica while another was queueing a route is found here)."""
    started = completed = 0
    for route in ledger.adopt(await repository.due(ledger.session, ledger.ctx.day())):
        if route.status == "agreed":
            await activate(ledger, route)
            started += 1
        elif await maybe_complete(ledger, route):
            completed += 1
    seated = await ledger.drain(None)
    return {"activated": started, "completed": completed, "seated": seated}


async def open_route(ledger: Ledger, route_id: str) -> Route:
    route = await ledger.route(route_id, lock=True)
    if route is None:
        raise Refused("route_not_found", f"Маршрут «{route_id}» не найден.", 404)
    if not route.is_open:
        raise Refused("route_closed", f"Маршрут в статусе «{route.status}» изменить нельзя.", 409)
    return route


async def complete_step(
    ledger: Ledger,
    route: Route,
    step_id: str,
    by: str,
    on: date,
    completed_by: str,
    cause: Event[Any] | None = None,
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
    ledger.change(
        route,
        steps=steps,
        history=ledger.record(route, "step_completed", by, step_id=step_id, via=completed_by),
    )
    ledger.emit(
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
        cause,
    )
    await maybe_complete(ledger, route, cause)


# --- methodist's edits ---------------------------------------------------------------------


def its_methodist(route: Route, by: str, what: str) -> None:
    """Only the route's own methodist changes it; a route still waiting has nobody."""
    if route.methodist_id is None:
        raise Refused("no_methodist", "Маршруту ещё не назначен методист.", 409)
    if by != route.methodist_id:
        raise Refused("not_the_methodist", f"{what} может только методист маршрута.", 403)


async def edit(
    ledger: Ledger,
    route_id: str,
    action: str,
    by: str,
    reason: str,
    step_id: str | None = None,
    step: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add, remove or replace a step, with the methodist's reason; history keeps it all.

    A drafted route's approvals are reset by an edit (they approved another plan). A new
    step's tutor, mentor or site must have room (``SeatTaken`` otherwise, at the write).
    """
    route = await open_route(ledger, route_id)
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
            and await repository.get_program(ledger.session, step["program_id"]) is None
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
        ledger.take_steps([new])
        steps.append(new)
    if old is not None:
        for kind, resource_id in domain.seats_of(old):
            ledger.free(kind, resource_id)
        old["status"] = "removed"
        old["removed_reason"] = reason
    values: dict[str, Any] = {
        "steps": steps,
        "total_hours": sum(s["hours"] for s in steps if s.get("status") != "removed"),
        "history": ledger.record(
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
    ledger.change(route, **values)
    if route.status == "active":
        await maybe_complete(ledger, route)
    return {"step_id": new["step_id"] if new else step_id}


# --- course events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Course:
    """A course event to take: as it arrived, or held earlier and tried again."""

    event_id: str
    source: str
    kind: str  # enrolled | completed
    course: CourseEvent
    received_at: datetime
    cause: Event[Any] | None


async def courses_received(
    ledger: Ledger, events: Sequence[Event[CourseEvent]], kind: str
) -> list[str]:
    """Enrolments or completions from providers: each marks or completes the matching
    program step of the teacher's open route. A course or teacher not known yet is held
    (retried when the registries send them); a course matching no open step is kept as the
    teacher's history (a completed program is not offered again). The status each got."""
    now = ledger.now()
    return await take_courses(
        ledger, [Course(str(e.event_id), e.source, kind, e.payload, now, e) for e in events]
    )


async def take_courses(ledger: Ledger, items: Sequence[Course]) -> list[str]:
    """Courses in order, after one read of the programs they name, their teachers and
    the teachers' open routes."""
    named = await repository.programs_named(
        ledger.session,
        [i.course.program_id for i in items if i.course.program_id],
        [i.course.federal_number for i in items if i.course.federal_number],
    )
    known = {p.program_id for p in named}
    by_number: dict[str, str] = {}
    for p in named:
        if p.federal_number:
            by_number.setdefault(p.federal_number, p.program_id)
    teacher_ids = {i.course.teacher_id for i in items}
    await ledger.load_teachers(teacher_ids)
    await ledger.load_routes(open_of=[t for t in teacher_ids if t in ledger.teachers])
    return [await _take_course(ledger, item, known, by_number) for item in items]


async def _take_course(
    ledger: Ledger, item: Course, known: set[str], by_number: dict[str, str]
) -> str:
    course = item.course
    program_id = course.program_id
    if program_id is None and course.federal_number:
        program_id = by_number.get(course.federal_number)
    elif program_id is not None and program_id not in known:
        program_id = None
    held_for = (
        "курс неизвестен реестру программ"
        if program_id is None
        else "педагог неизвестен реестру"
        if course.teacher_id not in ledger.teachers
        else None
    )
    row = {
        "event_id": item.event_id,
        "kind": item.kind,
        "teacher_id": course.teacher_id,
        "program_id": program_id or course.program_id,
        "federal_number": course.federal_number,
        "on": course.on,
        "passed": course.passed,
        "hours": course.hours,
        "source": item.source,
        "external_id": course.external_id,
        "received_at": item.received_at,
        "status": "held" if held_for else "unmatched",
        "reason": held_for,
        "route_id": None,
        "step_id": None,
    }
    if held_for is None:
        assert program_id is not None
        matched = await _apply_course(ledger, item, program_id)
        if matched is not None:
            row.update(status="applied", route_id=matched[0], step_id=matched[1])
        else:
            row["reason"] = "нет открытого шага маршрута с этой программой"
    ledger.course(row)
    return str(row["status"])


async def _apply_course(ledger: Ledger, item: Course, program_id: str) -> tuple[str, str] | None:
    course = item.course
    for route in reversed(ledger.open_of(course.teacher_id)):
        step = domain.step_for_course(route.steps, program_id)
        if step is None:
            continue
        if item.kind == "enrolled":
            if step.get("status") == "enrolled":
                return route.route_id, step["step_id"]
            steps = [
                {**s, "status": "enrolled", "enrolled_on": course.on.isoformat()}
                if s["step_id"] == step["step_id"]
                else s
                for s in route.steps
            ]
            ledger.change(
                route,
                steps=steps,
                history=ledger.record(route, "enrolled", "course_event", step_id=step["step_id"]),
            )
        elif course.passed:
            await complete_step(
                ledger,
                route,
                step["step_id"],
                "course_event",
                course.on,
                "course_event",
                item.cause,
            )
        else:
            ledger.change(
                route,
                history=ledger.record(
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
    ledger: Ledger,
    teacher_ids: Iterable[str] = (),
    programs: Iterable[tuple[str, str | None]] = (),
    cause: Event[Any] | None = None,
) -> int:
    """Retry the held course events of teachers or programs (id, federal number) that
    have arrived, in one read; how many were applied or kept as history."""
    rows = await repository.held_courses(ledger.session, teacher_ids, programs)
    if not rows:
        return 0
    items = [
        Course(
            row.event_id,
            row.source,
            row.kind,
            CourseEvent(
                teacher_id=row.teacher_id,
                program_id=row.program_id,
                federal_number=row.federal_number,
                external_id=row.external_id,
                on=row.on,
                hours=row.hours,
                passed=row.passed,
            ),
            row.received_at,
            cause,
        )
        for row in rows
    ]
    return sum(status != "held" for status in await take_courses(ledger, items))
