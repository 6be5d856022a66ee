"""The life of a route after its draft: approvals, the start, steps done (by the
methodist or by course and internship events from outside, ``iomflow.routes.courses``),
the methodist's edits, completion. The rules are the methods of ``domain.Route``; each use
case here loads what the rule needs (the route, locked; a management membership; whether a
program exists), calls the aggregate and hands what it returns to the caller's ``Ledger``:
the route in memory, written with the rest of the transaction."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from iomflow.routes import domain, repository, wording
from iomflow.routes.domain import Route
from iomflow.routes.ledger import Ledger
from iomflow.shared.contracts import Event, RouteAgreed
from iomflow.shared.errors import Refused


async def approve(ledger: Ledger, route_id: str, role: str, by: str) -> dict[str, Any]:
    """One party's approval (``Route.approve``: who may approve); the last one agrees the
    route, and activates it when its start has come. Whether ``by`` is on the school's
    management team is read only when it is what the rule asks."""
    route = await open_route(ledger, route_id)
    is_manager = (
        role == "management"
        and route.status == "drafted"
        and by != route.teacher_id
        and await repository.is_manager_of(
            ledger.session, by, route.organization_id, not_teacher=route.teacher_id
        )
    )
    ctx = ledger.ctx
    facts = route.approve(
        role, by, is_manager=is_manager, rules=ctx.rules, at=ledger.now(), today=ctx.day()
    )
    await ledger.apply(route, facts)
    if any(isinstance(f, RouteAgreed) and f.active for f in facts):
        await activate(ledger, route)
    missing = domain.missing_approvals(route.approvals, ctx.rules)
    return {"status": "agreed" if not missing else "drafted", "missing": missing}


async def activate(ledger: Ledger, route: Route, cause: Event[Any] | None = None) -> None:
    """An agreed route starts: the teacher's previous active route ends (replaced)."""
    await ledger.load_routes(open_of=[route.teacher_id])
    for other in ledger.open_of(route.teacher_id, "active", "agreed"):
        if other.route_id != route.route_id:
            await ledger.cancel(other, f"заменён маршрутом {route.route_id}", "replaced", cause)
    ctx = ledger.ctx
    await ledger.apply(
        route, route.activate(rules=ctx.rules, at=ledger.now(), today=ctx.day()), cause
    )


async def maybe_complete(ledger: Ledger, route: Route, cause: Event[Any] | None = None) -> bool:
    """An active route whose steps are all done (or whose end date passed, by policy)
    completes now; whether it did."""
    ctx = ledger.ctx
    facts = route.complete_if_done(rules=ctx.rules, at=ledger.now(), today=ctx.day())
    await ledger.apply(route, facts, cause)
    return bool(facts)


async def tick(ledger: Ledger) -> dict[str, int]:
    """The periodic pass: agreed routes whose start came become active; active routes past
    their end date complete by policy; waiting routes take any room there is (a seat
    freed by one replica while another was queueing a route is found here)."""
    started = completed = 0
    for route in ledger.adopt(await repository.find_due(ledger.session, ledger.ctx.day())):
        if route.status == "agreed":
            await activate(ledger, route)
            started += 1
        elif await maybe_complete(ledger, route):
            completed += 1
    seated = await ledger.drain(None)
    return {"activated": started, "completed": completed, "seated": seated}


async def open_route(ledger: Ledger, route_id: str) -> Route:
    """The route, its row locked, if it is open (``route_not_found``, ``route_closed``)."""
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
    activity_id: str | None = None,
) -> None:
    """A step done (``Route.complete_step``): ``routes.step.completed``, the training
    for a program or internship step, and the route's completion when it was the last."""
    ctx = ledger.ctx
    facts = route.complete_step(
        step_id,
        by,
        on,
        completed_by,
        rules=ctx.rules,
        at=ledger.now(),
        today=ctx.day(),
        source=source,
        hours=hours,
        note=note,
        activity_id=activity_id,
    )
    await ledger.apply(route, facts, cause)


# --- methodist's edits ---------------------------------------------------------------------


async def edit(
    ledger: Ledger,
    route_id: str,
    action: str,
    by: str,
    reason: str,
    step_id: str | None = None,
    step: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add, remove or replace a step (``Route.edit``), with the methodist's reason. A new
    step's tutor, mentor or site must have room (``SeatTaken`` otherwise, at the write)."""
    route = await open_route(ledger, route_id)
    program_id = (step or {}).get("program_id")
    known = not program_id or await repository.get_program(ledger.session, program_id) is not None
    ctx = ledger.ctx
    added, facts = route.edit(
        _action(action),
        by,
        reason,
        rules=ctx.rules,
        at=ledger.now(),
        today=ctx.day(),
        step_id=step_id,
        step=step,
        program_known=known,
    )
    await ledger.apply(route, facts)
    return {"step_id": added}


def _action(action: str) -> Literal["add", "remove", "replace"]:
    if action not in ("add", "remove", "replace"):
        raise ValueError(f"unknown edit {action!r}")
    return action  # type: ignore[return-value]
