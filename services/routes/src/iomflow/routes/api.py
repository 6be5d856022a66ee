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

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import domain, lifecycle, repository, service
from iomflow.routes.ledger import Ledger, SeatTaken, ledger_of
from iomflow.shared.auth import Operator, Principal, presented, require
from iomflow.shared.contracts import StepKind
from iomflow.shared.errors import Refused
from iomflow.shared.problems import Page, Paging, page, paging, problems
from iomflow.shared.service import Runtime, RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["routes"])
Methodist = Annotated[Principal, Depends(require("methodist"))]
Paged = Annotated[Paging, Depends(paging(max_limit=1000, default=100))]
T = TypeVar("T")

RouteStatus = Literal["drafted", "agreed", "active", "completed", "cancelled", "superseded"]
Role = Literal["teacher", "methodist", "management"]


def _ctx(runtime: RuntimeDep) -> service.Routes:
    ctx = runtime.context
    assert isinstance(ctx, service.Routes)
    return ctx


Ctx = Annotated[service.Routes, Depends(_ctx)]


# --- what the API answers ------------------------------------------------------------------


class StepRead(BaseModel):
    """One step of a route as stored (other members the drafting keeps pass through)."""

    model_config = ConfigDict(extra="allow")

    step_id: str = Field(description="Stable within the route, e.g. s1")
    competency: str
    kind: str = Field(description="program, internship, mentoring, community, consultation, …")
    hours: int
    status: str | None = Field(default=None, description="planned, enrolled, done, removed")
    program_id: str | None = None
    site_id: str | None = None
    mentor_id: str | None = None
    community_id: str | None = None
    tutor_id: str | None = None
    follows: str | None = None
    starts_on: str | None = Field(default=None, description="ISO date")
    ends_on: str | None = Field(default=None, description="ISO date")
    period: int | None = Field(default=None, description="Budget year the hours count in")
    reason: str | None = Field(default=None, description="Why the step is there")
    done_on: str | None = Field(default=None, description="ISO date it was done")
    completed_by: str | None = Field(default=None, description="methodist, course_event, …")
    removed_reason: str | None = None


class ApprovalRead(BaseModel):
    role: str = Field(description="teacher, methodist or management")
    by: str = Field(description="Pseudonymous id of who approved")
    at: str = Field(description="ISO date-time")


class HistoryRead(BaseModel):
    """One entry of a route's history (an action's own details pass through)."""

    model_config = ConfigDict(extra="allow")

    at: str | None = Field(default=None, description="ISO date-time")
    action: str | None = Field(default=None, description="drafted, approved, step_add, …")
    by: str | None = Field(default=None, description="Who acted (a pseudonym or a service)")


class RouteRead(BaseModel):
    """A route; ``missing_approvals`` and ``history`` only where the operation says so."""

    route_id: str
    diagnosis_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    status: str = Field(description="drafted, agreed, active, completed, cancelled, superseded")
    status_reason: str | None = None
    steps: list[StepRead]
    total_hours: int
    hours_by_period: dict[str, int] = Field(description="Budget year -> hours planned in it")
    starts_on: date | None = None
    ends_on: date | None = None
    methodist_id: str | None = None
    approvals: list[ApprovalRead]
    supersedes: str | None = Field(default=None, description="The route this one replaced")
    rules_version: str | None = None
    created_at: str | None = Field(default=None, description="ISO date-time")
    missing_approvals: list[str] | None = Field(
        default=None, description="Roles still to approve (a drafted route)"
    )
    history: list[HistoryRead] | None = None


class MethodistRead(BaseModel):
    methodist_id: str
    specialisations: list[str]
    municipalities: list[str] = Field(description="Served municipalities; empty: the region")
    capacity: int
    load: int = Field(description="Open routes held")
    subjects: list[str]
    free: int = Field(description="capacity - load")


class TeacherOfMethodistRead(BaseModel):
    teacher_id: str
    route_id: str
    status: str
    municipality_id: str
    steps_done: int
    steps_total: int


class EffectivenessRead(BaseModel):
    """Outcomes of the steps of one program, site, methodist, … (the key named by ``by``)."""

    program_id: str | None = None
    site_id: str | None = None
    methodist_id: str | None = None
    mentor_id: str | None = None
    community_id: str | None = None
    kind: str | None = None
    evaluated: int
    closed: int
    improved: int
    unchanged: int
    worse: int
    effective_share: float | None = Field(description="Percent closed or improved")


class CourseRead(BaseModel):
    """A course or internship event received, and what became of it."""

    event_id: str
    kind: str = Field(description="enrolled, completed or internship")
    teacher_id: str
    program_id: str | None
    federal_number: str | None
    site_id: str | None
    on: date
    passed: bool
    hours: int | None
    source: str
    external_id: str | None
    status: str = Field(description="applied, held or unmatched")
    reason: str | None
    route_id: str | None
    step_id: str | None
    received_at: str = Field(description="ISO date-time")


class StatsRead(BaseModel):
    """Counts; ``routes_<status>`` for each status present are extra members."""

    model_config = ConfigDict(extra="allow")

    teachers: int
    programs: int
    methodists: int
    tutors: int
    mentors: int
    internship_sites: int
    communities: int
    routes: int = Field(description="Open routes")
    assigned: int
    unassigned: int
    courses_held: int


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


async def routes_page(session: AsyncSession, paged: Paging, *where: Any) -> tuple[list[Any], int]:
    """A page of the routes matching ``where``, oldest first, and how many match in all."""
    r = repository.routes
    query = (
        select(r)
        .where(*where)
        .order_by(r.c.created_at, r.c.route_id)
        .offset(paged.offset)
        .limit(paged.limit)
    )
    rows = list(await session.execute(query))
    total = (await session.execute(select(func.count()).select_from(r).where(*where))).scalar_one()
    return rows, int(total)


async def _command(runtime: Runtime[Any], work: Callable[[Ledger], Awaitable[T]]) -> T:
    """Run a command in one transaction; what it decided is written at the end and its
    events go out after the commit. A seat another request took meanwhile is a 409."""
    try:
        async with runtime.transaction() as deps, ledger_of(deps) as ledger:
            return await work(ledger)
    except SeatTaken as exc:
        raise Refused(
            "no_room",
            "У наставника, стажировочной площадки или тьютора нет свободного места "
            f"({exc}): выберите другого.",
            409,
        ) from exc


ROUTE_404 = "нет такого маршрута (route_not_found)"
STEP_404 = "нет такого маршрута (route_not_found) или шага (step_not_found)"


# --- reading -------------------------------------------------------------------------------


@router.get(
    "/routes/{route_id}",
    summary="A route: steps with their reasons, approvals, history",
    response_model=RouteRead,
    response_model_exclude_unset=True,
    responses=problems(404, s404=ROUTE_404),
)
async def get_route(route_id: str, session: SessionDep, ctx: Ctx) -> dict[str, Any]:
    row = await repository.get_route(session, route_id)
    if row is None:
        raise Refused("route_not_found", f"Маршрут «{route_id}» не найден.", 404)
    return route_read(row, ctx.rules)


@router.get(
    "/routes",
    summary="Routes by status, methodist, municipality or organisation, oldest first",
    response_model=Page[RouteRead],
    response_model_exclude_unset=True,
)
async def list_routes(
    session: SessionDep,
    paged: Paged,
    status: RouteStatus | None = None,
    methodist_id: str | None = None,
    municipality_id: str | None = None,
    organization_id: str | None = None,
) -> Page[Any]:
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
    rows, total = await routes_page(session, paged, *where)
    return page([route_read(row) for row in rows], total, paged)


@router.get(
    "/teachers/{teacher_id}/routes",
    summary="A teacher's routes, oldest first",
    response_model=Page[RouteRead],
    response_model_exclude_unset=True,
)
async def teacher_routes(teacher_id: str, session: SessionDep, paged: Paged) -> Page[Any]:
    rows, total = await routes_page(session, paged, repository.routes.c.teacher_id == teacher_id)
    return page([route_read(r) for r in rows], total, paged)


@router.get(
    "/methodists",
    summary="Methodists with their load and capacity",
    response_model=Page[MethodistRead],
)
async def methodists(session: SessionDep, paged: Paged) -> Page[Any]:
    everyone = await repository.get_all_methodists(session)
    chosen = everyone[paged.offset : paged.offset + paged.limit]
    return page(
        [
            MethodistRead(
                methodist_id=m.methodist_id,
                specialisations=list(m.specialisations),
                municipalities=list(m.municipalities),
                capacity=m.capacity,
                load=m.load,
                subjects=list(m.subjects),
                free=m.capacity - m.load,
            )
            for m in chosen
        ],
        len(everyone),
        paged,
    )


@router.get(
    "/methodists/{methodist_id}/teachers",
    summary="A methodist's teachers: their open routes and how far they went",
    response_model=Page[TeacherOfMethodistRead],
)
async def my_teachers(methodist_id: str, session: SessionDep, paged: Paged) -> Page[Any]:
    r = repository.routes.c
    rows, total = await routes_page(
        session, paged, r.methodist_id == methodist_id, r.status.in_(domain.OPEN)
    )
    return page(
        [
            TeacherOfMethodistRead(
                teacher_id=row.teacher_id,
                route_id=row.route_id,
                status=row.status,
                municipality_id=row.municipality_id,
                steps_done=sum(1 for s in row.steps if s.get("status") == "done"),
                steps_total=sum(1 for s in row.steps if s.get("status") != "removed"),
            )
            for row in rows
        ],
        total,
        paged,
    )


@router.get(
    "/methodists/{methodist_id}/queue",
    summary="A methodist's drafted routes awaiting approval",
    response_model=Page[RouteRead],
    response_model_exclude_unset=True,
)
async def my_queue(methodist_id: str, session: SessionDep, ctx: Ctx, paged: Paged) -> Page[Any]:
    r = repository.routes.c
    rows, total = await routes_page(
        session, paged, r.methodist_id == methodist_id, r.status == "drafted"
    )
    return page([route_read(row, ctx.rules) for row in rows], total, paged)


@router.get(
    "/queue",
    summary="Routes waiting for a methodist, oldest first",
    response_model=Page[RouteRead],
    response_model_exclude_unset=True,
)
async def queue(session: SessionDep, paged: Paged) -> Page[Any]:
    r = repository.routes.c
    rows, total = await routes_page(
        session, paged, r.status.in_(domain.OPEN), r.methodist_id.is_(None)
    )
    return page([route_read(row) for row in rows], total, paged)


@router.get(
    "/effectiveness",
    summary="Closed and improved deficits per program, site, methodist",
    response_model=Page[EffectivenessRead],
    response_model_exclude_unset=True,
)
async def effectiveness(
    session: SessionDep,
    paged: Paged,
    by: Literal["program_id", "site_id", "methodist_id", "mentor_id", "community_id", "kind"] = (
        "program_id"
    ),
) -> Page[Any]:
    rows = await service.effectiveness(session, by)
    return page(rows[paged.offset : paged.offset + paged.limit], len(rows), paged)


@router.get(
    "/courses",
    summary="Course and internship events received: applied, held, unmatched",
    response_model=Page[CourseRead],
)
async def courses(
    session: SessionDep,
    paged: Paged,
    status: Literal["applied", "held", "unmatched"] | None = None,
    teacher_id: str | None = None,
    kind: Literal["enrolled", "completed", "internship"] | None = None,
) -> Page[Any]:
    c = repository.courses
    filters = ((c.c.status, status), (c.c.teacher_id, teacher_id), (c.c.kind, kind))
    where = [col == v for col, v in filters if v is not None]
    query = (
        select(c)
        .where(*where)
        .order_by(c.c.received_at, c.c.event_id)
        .offset(paged.offset)
        .limit(paged.limit)
    )
    rows = await session.execute(query)
    total = (await session.execute(select(func.count()).select_from(c).where(*where))).scalar_one()
    return page(
        [
            {k: (v.isoformat() if k == "received_at" else v) for k, v in row._mapping.items()}
            for row in rows
        ],
        int(total),
        paged,
    )


@router.get("/rules", summary="The drafting rules in force", response_model=domain.Rules)
async def rules(ctx: Ctx) -> domain.Rules:
    return ctx.rules


@router.get(
    "/stats",
    summary="Counts of read models, routes by status, held courses",
    response_model=StatsRead,
)
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.get_counts(session)


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


class ApprovalCreate(BaseModel):
    role: Role = Field(description="The party approving; the key must hold this role")
    by: str | None = BY


class ApprovalStateRead(BaseModel):
    status: Literal["drafted", "agreed"] = Field(description="agreed: the last approval came")
    missing: list[str] = Field(description="Roles still to approve")


class StepRefRead(BaseModel):
    step_id: str = Field(description="The step added, removed or replaced (the new one)")


class MoveRead(BaseModel):
    route_id: str
    from_methodist: str | None
    to_methodist: str | None = Field(description="None: back to the queue")
    reason: str


class RebalanceRead(BaseModel):
    moved: int
    moves: list[MoveRead]


APPROVE = problems(
    403,
    404,
    409,
    s403="ключ без роли стороны (forbidden), чужой ключ (not_your_key), не тот педагог "
    "(not_the_teacher), методист (not_the_methodist) или не член управленческой команды "
    "(not_management)",
    s404=ROUTE_404,
    s409="маршрут закрыт (route_closed), уже не составлен (not_drafted), без методиста "
    "(no_methodist), эта сторона уже согласовала (already_approved)",
)


@router.post(
    "/routes/{route_id}/approvals",
    summary="Approve a drafted route (one party)",
    dependencies=[Depends(presented)],  # the key is checked below, for the body's role
    response_model=ApprovalStateRead,
    responses=APPROVE,
)
async def approve(
    route_id: str, body: ApprovalCreate, request: Request, runtime: RuntimeDep
) -> dict[str, Any]:
    principal = await require(body.role)(request)  # the key must hold the party's role
    by = acting(principal, body.by)
    return await _command(
        runtime, lambda ledger: lifecycle.approve(ledger, route_id, body.role, by)
    )


class StepCreate(BaseModel):
    competency: str = Field(min_length=1, max_length=100)
    kind: StepKind
    hours: int = Field(ge=0, le=2000)
    program_id: str | None = None
    site_id: str | None = None
    mentor_id: str | None = None
    community_id: str | None = None
    starts_on: date | None = None
    ends_on: date | None = None


class StepChange(BaseModel):
    """A step removed: who and why."""

    by: str | None = BY
    reason: str = Field(min_length=3, max_length=1000, description="Why, for the history")


class StepUpdate(StepChange):
    """A step added or replaced: who, why, and the new step."""

    step: StepCreate = Field(description="The new step")


def _step(body: StepUpdate) -> dict[str, Any]:
    return body.step.model_dump(exclude_none=True)


EDIT_403 = "чужой ключ (not_your_key) или не методист маршрута (not_the_methodist)"
EDIT_409 = (
    "маршрут закрыт (route_closed), без методиста (no_methodist), шаг уже закрыт "
    "(step_closed), нет места у наставника, площадки или тьютора (no_room)"
)
EDIT_422 = (
    "поля (validation_error), программы нет в реестре "
    "(unknown_program), не сказано, кто действует (by_required)"
)


def edit_problems(not_found: str) -> dict[int | str, dict[str, Any]]:
    """The statuses of a step's edit (add, remove, replace), with what is not found."""
    return problems(403, 404, 409, 422, s403=EDIT_403, s404=not_found, s409=EDIT_409, s422=EDIT_422)


@router.post(
    "/routes/{route_id}/steps",
    summary="Add a step (methodist)",
    response_model=StepRefRead,
    responses=edit_problems(ROUTE_404),
)
async def add_step(
    route_id: str, body: StepUpdate, runtime: RuntimeDep, who: Methodist
) -> dict[str, Any]:
    step, by = _step(body), acting(who, body.by)
    return await _command(
        runtime,
        lambda ledger: lifecycle.edit(ledger, route_id, "add", by, body.reason, step=step),
    )


@router.post(
    "/routes/{route_id}/steps/{step_id}/remove",
    summary="Remove a step (methodist)",
    response_model=StepRefRead,
    responses=edit_problems(STEP_404),
)
async def remove_step(
    route_id: str, step_id: str, body: StepChange, runtime: RuntimeDep, who: Methodist
) -> dict[str, Any]:
    by = acting(who, body.by)
    return await _command(
        runtime,
        lambda ledger: lifecycle.edit(ledger, route_id, "remove", by, body.reason, step_id=step_id),
    )


@router.post(
    "/routes/{route_id}/steps/{step_id}/replace",
    summary="Replace a step (methodist)",
    response_model=StepRefRead,
    responses=edit_problems(STEP_404),
)
async def replace_step(
    route_id: str, step_id: str, body: StepUpdate, runtime: RuntimeDep, who: Methodist
) -> dict[str, Any]:
    step, by = _step(body), acting(who, body.by)
    return await _command(
        runtime,
        lambda ledger: lifecycle.edit(
            ledger, route_id, "replace", by, body.reason, step_id=step_id, step=step
        ),
    )


class CompletionCreate(BaseModel):
    by: str | None = BY
    on: date | None = Field(default=None, description="When it was done; today if left out")
    reason: str | None = Field(
        default=None, min_length=3, max_length=1000, description="How it went, for the history"
    )


@router.post(
    "/routes/{route_id}/steps/{step_id}/complete",
    summary="Mark a step done (methodist): consultations, internships, mentoring, communities",
    response_model=RouteRead,
    response_model_exclude_unset=True,
    responses=problems(
        403,
        404,
        409,
        422,
        s403=EDIT_403,
        s404=STEP_404,
        s409="маршрут закрыт (route_closed), без методиста (no_methodist), шаг уже закрыт "
        "(step_closed)",
        s422="поля (validation_error), не сказано, кто действует (by_required)",
    ),
)
async def complete_step(
    route_id: str,
    step_id: str,
    body: CompletionCreate,
    runtime: RuntimeDep,
    ctx: Ctx,
    who: Methodist,
) -> dict[str, Any]:
    by = acting(who, body.by)

    async def work(ledger: Ledger) -> dict[str, Any]:
        route = await lifecycle.open_route(ledger, route_id)
        route.check_methodist(by, "Отметить шаг")
        await lifecycle.complete_step(
            ledger, route, step_id, by, body.on or ctx.day(), "methodist", note=body.reason
        )
        return route_read(route)

    return await _command(runtime, work)


class CancellationCreate(BaseModel):
    reason: str = Field(min_length=3, max_length=1000, description="Why, for the history")


@router.post(
    "/routes/{route_id}/cancel",
    summary="Cancel a route (operator)",
    response_model=RouteRead,
    response_model_exclude_unset=True,
    responses=problems(
        403,
        404,
        409,
        s404=ROUTE_404,
        s409="маршрут уже закрыт (route_closed)",
    ),
)
async def cancel(
    route_id: str, body: CancellationCreate, runtime: RuntimeDep, who: Operator
) -> dict[str, Any]:
    async def work(ledger: Ledger) -> dict[str, Any]:
        route = await lifecycle.open_route(ledger, route_id)
        await ledger.cancel(route, body.reason, "operator", None, by=who.name)
        return route_read(route)

    return await _command(runtime, work)


@router.post(
    "/rebalance",
    summary="Even out methodists' loads within capacity (operator)",
    response_model=RebalanceRead,
    responses=problems(403),
)
async def rebalance(runtime: RuntimeDep, who: Operator) -> RebalanceRead:
    moves = await _command(runtime, lambda ledger: service.rebalance(ledger, by=who.name))
    return RebalanceRead(
        moved=len(moves),
        moves=[
            MoveRead(
                route_id=m.route_id,
                from_methodist=m.from_methodist,
                to_methodist=m.to_methodist,
                reason=m.reason,
            )
            for m in moves
        ],
    )
