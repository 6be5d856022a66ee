"""HTTP API of routes, for methodists, schools, teachers' portals and operators.

Reading is open inside the perimeter (pseudonymous ids only). Changing needs a key with a
role: ``methodist`` (edits, step completion, methodist approval), ``teacher`` and
``management`` (their approvals; the key belongs to the portal or school system that
authenticates the person), ``operator`` (cancel, rebalance).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from iomflow.routes import domain, lifecycle, repository, service
from iomflow.routes.ledger import Ledger, ledger_of
from iomflow.shared.auth import Operator, Principal, presented, require
from iomflow.shared.contracts import StepKind
from iomflow.shared.errors import Refused
from iomflow.shared.service import Runtime, RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["routes"])
Methodist = Annotated[Principal, Depends(require("methodist"))]
T = TypeVar("T")


def _ctx(runtime: RuntimeDep) -> service.Routes:
    ctx = runtime.context
    assert isinstance(ctx, service.Routes)
    return ctx


Ctx = Annotated[service.Routes, Depends(_ctx)]


def route_read(row: Any, rules: domain.Rules | None = None) -> dict[str, Any]:
    """A route as the API answers it (with its history and missing approvals when
    ``rules`` are given); the workplace adds words to the same answer."""
    out = {
        "route_id": row.route_id,
        "diagnosis_id": row.diagnosis_id,
        "teacher_id": row.teacher_id,
        "organization_id": row.organization_id,
        "municipality_id": row.municipality_id,
        "status": row.status,
        "status_reason": row.status_reason,
        "steps": row.steps,
        "total_hours": row.total_hours,
        "hours_by_period": row.hours_by_period,
        "starts_on": row.starts_on.isoformat() if row.starts_on else None,
        "ends_on": row.ends_on.isoformat() if row.ends_on else None,
        "methodist_id": row.methodist_id,
        "approvals": row.approvals,
        "supersedes": row.supersedes,
        "rules_version": row.rules_version,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }
    if rules is not None:
        out["missing_approvals"] = (
            domain.missing_approvals(row.approvals, rules) if row.status == "drafted" else []
        )
        out["history"] = row.history
    return out


async def _command(runtime: Runtime[Any], work: Callable[[Ledger], Awaitable[T]]) -> T:
    """Run a command in one transaction; what it decided is written at the end and its
    events go out after the commit."""
    async with runtime.transaction() as deps, ledger_of(deps) as ledger:
        return await work(ledger)


# --- reading -------------------------------------------------------------------------------


@router.get("/routes/{route_id}", summary="A route: steps with their reasons, approvals, history")
async def get_route(route_id: str, session: SessionDep, ctx: Ctx) -> dict[str, Any]:
    row = await repository.get_route(session, route_id)
    if row is None:
        raise Refused("route_not_found", f"Маршрут «{route_id}» не найден.", 404)
    return route_read(row, ctx.rules)


@router.get("/routes", summary="Routes by status, methodist, municipality or organisation")
async def list_routes(
    session: SessionDep,
    status: str | None = None,
    methodist_id: str | None = None,
    municipality_id: str | None = None,
    organization_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    r = repository.routes.c
    where = [
        c == v
        for c, v in (
            (r.status, status),
            (r.methodist_id, methodist_id),
            (r.municipality_id, municipality_id),
            (r.organization_id, organization_id),
        )
        if v is not None
    ]
    return [route_read(row) for row in await repository.routes_where(session, *where, limit=limit)]


@router.get("/teachers/{teacher_id}/routes", summary="A teacher's routes, oldest first")
async def teacher_routes(teacher_id: str, session: SessionDep) -> list[dict[str, Any]]:
    return [route_read(r) for r in await repository.teacher_routes(session, teacher_id)]


@router.get("/methodists", summary="Methodists with their load and capacity")
async def methodists(session: SessionDep) -> list[dict[str, Any]]:
    return [
        {**m.__dict__, "free": m.capacity - m.load}
        for m in await repository.all_methodists(session)
    ]


@router.get("/methodists/{methodist_id}/teachers", summary="A methodist's teachers")
async def my_teachers(methodist_id: str, session: SessionDep) -> list[dict[str, Any]]:
    r = repository.routes.c
    rows = await repository.routes_where(
        session, r.methodist_id == methodist_id, r.status.in_(domain.OPEN), limit=1000
    )
    return [
        {
            "teacher_id": row.teacher_id,
            "route_id": row.route_id,
            "status": row.status,
            "municipality_id": row.municipality_id,
            "steps_done": sum(1 for s in row.steps if s.get("status") == "done"),
            "steps_total": sum(1 for s in row.steps if s.get("status") != "removed"),
        }
        for row in rows
    ]


@router.get(
    "/methodists/{methodist_id}/queue", summary="A methodist's drafted routes awaiting approval"
)
async def my_queue(methodist_id: str, session: SessionDep, ctx: Ctx) -> list[dict[str, Any]]:
    r = repository.routes.c
    rows = await repository.routes_where(
        session, r.methodist_id == methodist_id, r.status == "drafted", limit=1000
    )
    return [route_read(row, ctx.rules) for row in rows]


@router.get("/queue", summary="Routes waiting for a methodist")
async def queue(session: SessionDep) -> list[dict[str, Any]]:
    return [route_read(r) for r in await repository.unassigned(session)]


@router.get("/effectiveness", summary="Closed and improved deficits per program, site, methodist")
async def effectiveness(
    session: SessionDep,
    by: Literal["program_id", "site_id", "methodist_id", "mentor_id", "community_id", "kind"] = (
        "program_id"
    ),
) -> list[dict[str, Any]]:
    return await service.effectiveness(session, by)


@router.get("/courses", summary="Course and internship events received: applied, held, unmatched")
async def courses(
    session: SessionDep,
    status: Literal["applied", "held", "unmatched"] | None = None,
    teacher_id: str | None = None,
    kind: Literal["enrolled", "completed", "internship"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    c = repository.courses.c
    filters = ((c.status, status), (c.teacher_id, teacher_id), (c.kind, kind))
    where = [col == v for col, v in filters if v]
    rows = await repository.course_list(session, *where, limit=limit)
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row._mapping.items()}
        for row in rows
    ]


@router.get("/rules", summary="The drafting rules in force")
async def rules(ctx: Ctx) -> dict[str, Any]:
    return ctx.rules.model_dump(mode="json")


@router.get("/stats", summary="Counts of read models, routes by status, held courses")
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.counts(session)


# --- commands ------------------------------------------------------------------------------


BY = Field(
    default=None,
    min_length=1,
    max_length=100,
    description="Who acts (pseudonymous id). Taken from the key when it is a person's "
    "(`keys add … --person`): then it may be left out, and another id is refused (403 "
    "`not_your_key`); required with a key of no person (an operator's, a system's).",
)


def acting(
    principal: Principal, said: str | None, *, field: str = "by", code: str = "by_required"
) -> str:
    """Who does it: the key's own person (a methodist's key *is* that methodist, whatever
    the request says), or, for a key of no person, whom the request names in ``field``
    (422 ``code`` when it names nobody)."""
    if principal.person_id is not None:
        if said not in (None, principal.person_id):
            raise Refused(
                "not_your_key",
                f"Ключ выдан {principal.person_id}: действовать от имени «{said}» им нельзя.",
                403,
            )
        return principal.person_id
    if said is None:
        raise Refused(code, f"Укажите, кто действует ({field}): ключ не привязан к человеку.", 422)
    return said


class ApprovalIn(BaseModel):
    role: Literal["teacher", "methodist", "management"]
    by: str | None = BY


@router.post(
    "/routes/{route_id}/approvals",
    summary="Approve a drafted route (one party)",
    dependencies=[Depends(presented)],  # the key is checked below, for the body's role
)
async def approve(
    route_id: str, body: ApprovalIn, request: Request, runtime: RuntimeDep
) -> dict[str, Any]:
    principal = await require(body.role)(request)  # the key must hold the party's role
    by = acting(principal, body.by)
    return await _command(
        runtime, lambda ledger: lifecycle.approve(ledger, route_id, body.role, by)
    )


class StepIn(BaseModel):
    competency: str = Field(min_length=1, max_length=100)
    kind: StepKind
    hours: int = Field(ge=0, le=2000)
    program_id: str | None = None
    site_id: str | None = None
    mentor_id: str | None = None
    community_id: str | None = None
    starts_on: date | None = None
    ends_on: date | None = None


class EditIn(BaseModel):
    by: str | None = BY
    reason: str = Field(min_length=3, max_length=1000, description="Why, for the history")
    step: StepIn | None = None


def _step(body: EditIn) -> dict[str, Any]:
    if body.step is None:
        raise Refused("step_required", "Укажите новый шаг (step).", 422)
    return body.step.model_dump(exclude_none=True)


@router.post("/routes/{route_id}/steps", summary="Add a step (methodist)")
async def add_step(
    route_id: str, body: EditIn, runtime: RuntimeDep, who: Methodist
) -> dict[str, Any]:
    step, by = _step(body), acting(who, body.by)
    return await _command(
        runtime,
        lambda ledger: lifecycle.edit(ledger, route_id, "add", by, body.reason, step=step),
    )


@router.post("/routes/{route_id}/steps/{step_id}/remove", summary="Remove a step (methodist)")
async def remove_step(
    route_id: str, step_id: str, body: EditIn, runtime: RuntimeDep, who: Methodist
) -> dict[str, Any]:
    by = acting(who, body.by)
    return await _command(
        runtime,
        lambda ledger: lifecycle.edit(ledger, route_id, "remove", by, body.reason, step_id=step_id),
    )


@router.post("/routes/{route_id}/steps/{step_id}/replace", summary="Replace a step (methodist)")
async def replace_step(
    route_id: str, step_id: str, body: EditIn, runtime: RuntimeDep, who: Methodist
) -> dict[str, Any]:
    step, by = _step(body), acting(who, body.by)
    return await _command(
        runtime,
        lambda ledger: lifecycle.edit(
            ledger, route_id, "replace", by, body.reason, step_id=step_id, step=step
        ),
    )


class CompleteIn(BaseModel):
    by: str | None = BY
    on: date | None = None
    reason: str | None = Field(
        default=None, min_length=3, max_length=1000, description="How it went, for the history"
    )


@router.post(
    "/routes/{route_id}/steps/{step_id}/complete",
    summary="Mark a step done (methodist): consultations, internships, mentoring, communities",
)
async def complete_step(
    route_id: str, step_id: str, body: CompleteIn, runtime: RuntimeDep, ctx: Ctx, who: Methodist
) -> dict[str, Any]:
    by = acting(who, body.by)

    async def work(ledger: Ledger) -> dict[str, Any]:
        route = await lifecycle.open_route(ledger, route_id)
        lifecycle.its_methodist(route, by, "Отметить шаг")
        await lifecycle.complete_step(
            ledger, route, step_id, by, body.on or ctx.day(), "methodist", note=body.reason
        )
        return route_read(route)

    return await _command(runtime, work)


class CancelIn(BaseModel):
    reason: str = Field(min_length=3, max_length=1000)


@router.post("/routes/{route_id}/cancel", summary="Cancel a route (operator)")
async def cancel(
    route_id: str, body: CancelIn, runtime: RuntimeDep, who: Operator
) -> dict[str, Any]:
    async def work(ledger: Ledger) -> dict[str, Any]:
        route = await lifecycle.open_route(ledger, route_id)
        await ledger.cancel(route, body.reason, "operator", None, by=who.name)
        return route_read(route)

    return await _command(runtime, work)


@router.post("/rebalance", summary="Even out methodists' loads within capacity (operator)")
async def rebalance(runtime: RuntimeDep, who: Operator) -> dict[str, Any]:
    moves = await _command(runtime, lambda ledger: service.rebalance(ledger, by=who.name))
    return {"moved": len(moves), "moves": [m.__dict__ for m in moves]}
