"""The life of a route after its draft: approvals, the start, steps done (by the
methodist or by course and internship events from outside, ``iomflow.routes.courses``),
the methodist's edits, completion. Each works on the caller's ``Ledger``: the route in
memory, written with the rest of the transaction."""

from __future__ import annotations

from datetime import date
from typing import Any

from iomflow.routes import domain, repository, wording
from iomflow.routes.domain import Route
from iomflow.routes.ledger import Ledger, routes_event
from iomflow.shared.contracts import (
    Approval,
    Event,
    RouteAgreed,
    RouteCompleted,
    RouteStep,
    StepCompleted,
    TrainingCompleted,
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
            f"Маршрут в статусе «{wording.status(route.status)}»: согласование уже не требуется.",
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
        raise Refused("already_approved", f"Согласование «{wording.role(role)}» уже получено.", 409)
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
        raise Refused(
            "route_closed",
            f"Маршрут в статусе «{wording.status(route.status)}» изменить нельзя.",
            409,
        )
    return route


async def complete_step(
    ledger: Ledger,
    route: Route,
    step_id: str,
    by: str,
    on: date,
    completed_by: str,
    cause: Event[Any] | None = None,
    *,
    source: str | None = None,
    hours: int | None = None,
    note: str | None = None,
) -> None:
    """A step done: ``routes.step.completed``, and for a program or internship step
    ``routes.training.completed`` too — once, here, whoever completed it (``source``: the
    provider's event, course_event or internship_event; a methodist's mark is methodist).
    ``hours``: as the provider reported them; otherwise the step's. ``note``: the
    methodist's word on it, kept in the history."""
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
        history=ledger.record(
            route,
            "step_completed",
            by,
            step_id=step_id,
            via=completed_by,
            **({"reason": note} if note else {}),
        ),
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
                site_id=step.get("site_id") if step["kind"] == "internship" else None,
                completed_by=completed_by,  # type: ignore[arg-type]
                completed_on=on,
            ),
            route.teacher_id,
        ),
        cause,
    )
    kind, ref = _trained_in(step)
    if kind is not None and ref:
        ledger.emit(
            trained(
                route.teacher_id,
                route.organization_id,
                route.municipality_id,
                kind,
                ref,
                on,
                hours if hours is not None else (step.get("hours") or None),
                source or ("methodist" if completed_by == "methodist" else "course_event"),
                route.route_id,
                step_id,
            ),
            cause,
        )
    await maybe_complete(ledger, route, cause)


def _trained_in(step: dict[str, Any]) -> tuple[str | None, str | None]:
    """What training a step is (course or internship) and its program or site; (None,
    None) for the other kinds."""
    if step["kind"] == "program":
        return "course", step.get("program_id")
    if step["kind"] == "internship":
        return "internship", step.get("site_id")
    return None, None


def trained(
    teacher_id: str,
    organization_id: str,
    municipality_id: str,
    kind: str,
    ref: str,
    on: date,
    hours: int | None,
    source: str,
    route_id: str | None = None,
    step_id: str | None = None,
) -> Event[Any]:
    """``routes.training.completed`` of a course (``ref`` its program) or an internship
    (``ref`` its site)."""
    return routes_event(
        "routes.training.completed",
        TrainingCompleted(
            training_id=domain.training_id(teacher_id, kind, ref),
            teacher_id=teacher_id,
            municipality_id=municipality_id,
            organization_id=organization_id,
            kind=kind,  # type: ignore[arg-type]
            program_id=ref if kind == "course" else None,
            site_id=ref if kind == "internship" else None,
            completed_on=on,
            hours=hours,
            route_id=route_id,
            step_id=step_id,
            source=source,  # type: ignore[arg-type]
        ),
        teacher_id,
    )


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
