"""HTTP API of the support plans of low-results schools (roadmap 40–41): a plan per
flagged school, its actions with the responsible methodist and due dates.

Reading is open inside the perimeter; every change needs a ``methodist`` key and publishes
the whole plan as ``routes.plan.updated``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from iomflow.routes import plans, repository, service
from iomflow.routes.api import Ctx, Methodist, Paged
from iomflow.routes.domain import ActionKind, Plan
from iomflow.shared.errors import Refused
from iomflow.shared.problems import Page, page, problems
from iomflow.shared.service import RuntimeDep, SessionDep
from iomflow.shared.unit import Deps

router = APIRouter(prefix="/v1", tags=["plans"])

PATTERN = r"^[A-Za-z0-9._:-]+$"
ID = Field(min_length=1, max_length=100, pattern=PATTERN)


def _given_id(description: str) -> Any:
    """An id the request may leave out (one is given then)."""
    return Field(
        default=None, min_length=1, max_length=100, pattern=PATTERN, description=description
    )


# --- what the API takes and answers ---------------------------------------------------------


class ActionCreate(BaseModel):
    action_id: str | None = _given_id("Stable within the plan; a<n> when left out")
    kind: ActionKind
    title: str = Field(min_length=1, max_length=500)
    due_on: date = Field(description="Not before the plan starts")
    responsible_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The responsible methodist; the plan's methodist when left out",
    )


class PlanCreate(BaseModel):
    plan_id: str | None = _given_id("A new id is given when left out")
    organization_id: str = ID
    methodist_id: str = Field(min_length=1, max_length=100, description="Responsible methodist")
    starts_on: date
    actions: list[ActionCreate] = Field(default_factory=list, max_length=200)


class ActionDone(BaseModel):
    done_on: date | None = Field(default=None, description="Today when left out")


class ActionRead(BaseModel):
    action_id: str
    kind: str = Field(description="activity, internship, mentoring, consultation, course, other")
    title: str
    due_on: date
    done_on: date | None
    responsible_id: str
    overdue: bool = Field(description="Not done and its due date has passed")


class PlanRead(BaseModel):
    plan_id: str
    organization_id: str
    municipality_id: str
    methodist_id: str
    status: Literal["active", "closed"]
    starts_on: date
    closed_on: date | None
    actions: list[ActionRead]
    overdue: int = Field(description="Actions overdue")


def plan_read(plan: Plan, today: date) -> PlanRead:
    late = {a.action_id for a in plan.overdue(today)}
    return PlanRead(
        **plan.head(),
        closed_on=plan.closed_on,
        actions=[ActionRead(**a.model_dump(), overdue=a.action_id in late) for a in plan.actions],
        overdue=len(late),
    )


def _draft(a: ActionCreate) -> plans.ActionDraft:
    return plans.ActionDraft(a.kind, a.title, a.due_on, a.action_id, a.responsible_id)


async def _command(
    runtime: RuntimeDep, ctx: service.Routes, work: Callable[[Deps[Any]], Awaitable[Plan]]
) -> PlanRead:
    """One change in one transaction; the plan staged is published after the commit. A
    plan another request opened meanwhile for the same school is a 409."""
    try:
        async with runtime.transaction() as deps:
            plan = await work(deps)
    except IntegrityError as exc:
        raise Refused(
            "plan_conflict",
            "План этой организации (или план с этим номером) только что создан другим "
            "запросом: обновите список планов.",
            409,
        ) from exc
    return plan_read(plan, ctx.day())


PLAN_404 = "нет такого плана (plan_not_found)"
CHANGE_409 = "план закрыт (plan_closed)"


# --- reading --------------------------------------------------------------------------------


@router.get(
    "/plans",
    summary="Support plans of low-results schools, oldest first",
    response_model=Page[PlanRead],
)
async def list_plans(
    session: SessionDep,
    ctx: Ctx,
    paged: Paged,
    organization_id: str | None = None,
    municipality_id: str | None = None,
    methodist_id: str | None = None,
    status: Literal["active", "closed"] | None = None,
) -> Page[PlanRead]:
    p = repository.support_plans.c
    filters = (
        (p.organization_id, organization_id),
        (p.municipality_id, municipality_id),
        (p.methodist_id, methodist_id),
        (p.status, status),
    )
    where = [c == v for c, v in filters if v is not None]
    rows, total = await repository.find_plans_page(session, paged.offset, paged.limit, *where)
    today = ctx.day()
    return page([plan_read(Plan.of(r), today) for r in rows], total, paged)


@router.get(
    "/plans/{plan_id}",
    summary="A support plan with its actions",
    response_model=PlanRead,
    responses=problems(404, s404=PLAN_404),
)
async def get_plan(plan_id: str, session: SessionDep, ctx: Ctx) -> PlanRead:
    row = await repository.get_plan(session, plan_id)
    if row is None:
        raise plans.plan_404(plan_id)
    return plan_read(Plan.of(row), ctx.day())


# --- commands -------------------------------------------------------------------------------


@router.post(
    "/plans",
    summary="Open the support plan of a flagged school (methodist)",
    status_code=201,
    response_model=PlanRead,
    responses=problems(
        403,
        409,
        422,
        s409="организация не отмечена как школа с низкими результатами или в неблагоприятных "
        "условиях (not_flagged), у неё уже есть действующий план (plan_active), план с "
        "этим номером есть (plan_exists, plan_conflict), номер мероприятия повторён "
        "(action_exists)",
        s422="поля (validation_error), организации нет в реестре (unknown_organization), "
        "методиста нет в реестре (unknown_methodist), срок раньше начала плана "
        "(due_before_start)",
    ),
)
async def open_plan(body: PlanCreate, runtime: RuntimeDep, ctx: Ctx, _: Methodist) -> PlanRead:
    return await _command(
        runtime,
        ctx,
        lambda deps: plans.open_plan(
            deps,
            body.organization_id,
            body.methodist_id,
            body.starts_on,
            [_draft(a) for a in body.actions],
            body.plan_id,
        ),
    )


@router.post(
    "/plans/{plan_id}/actions",
    summary="Add an action to a plan (methodist)",
    status_code=201,
    response_model=PlanRead,
    responses=problems(
        403,
        404,
        409,
        422,
        s404=PLAN_404,
        s409=f"{CHANGE_409}, номер мероприятия уже есть (action_exists)",
        s422="поля (validation_error), методиста нет в реестре (unknown_methodist), срок "
        "раньше начала плана (due_before_start)",
    ),
)
async def add_action(
    plan_id: str, body: ActionCreate, runtime: RuntimeDep, ctx: Ctx, _: Methodist
) -> PlanRead:
    return await _command(runtime, ctx, lambda deps: plans.add_action(deps, plan_id, _draft(body)))


@router.post(
    "/plans/{plan_id}/actions/{action_id}/done",
    summary="Mark an action of a plan done (methodist)",
    response_model=PlanRead,
    responses=problems(
        403,
        404,
        409,
        422,
        s404=f"{PLAN_404} или мероприятия (action_not_found)",
        s409=f"{CHANGE_409}, мероприятие уже выполнено (action_done)",
        s422="поля (validation_error), дата раньше начала плана (done_before_start)",
    ),
)
async def mark_done(
    plan_id: str, action_id: str, body: ActionDone, runtime: RuntimeDep, ctx: Ctx, _: Methodist
) -> PlanRead:
    on = body.done_on or ctx.day()
    return await _command(runtime, ctx, lambda deps: plans.mark_done(deps, plan_id, action_id, on))


@router.post(
    "/plans/{plan_id}/close",
    summary="Close a plan (methodist)",
    response_model=PlanRead,
    responses=problems(403, 404, 409, s404=PLAN_404, s409=CHANGE_409),
)
async def close_plan(plan_id: str, runtime: RuntimeDep, ctx: Ctx, _: Methodist) -> PlanRead:
    return await _command(runtime, ctx, lambda deps: plans.close_plan(deps, plan_id, ctx.day()))
