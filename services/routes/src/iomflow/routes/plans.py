"""Support plans of low-results schools, the use cases: each reads the plan (its row held
for update), lets the ``Plan`` aggregate decide, saves the plan whole and stages it whole
as ``routes.plan.updated`` in the same transaction (the relay publishes it after the
commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from iomflow.routes import repository
from iomflow.routes.domain import ActionKind, Plan, School
from iomflow.shared.contracts import Streams, new_event
from iomflow.shared.errors import Refused
from iomflow.shared.unit import Deps

if TYPE_CHECKING:
    from iomflow.routes.service import Routes


@dataclass(frozen=True)
class ActionDraft:
    """An action as a request asks for it."""

    kind: ActionKind
    title: str
    due_on: date
    action_id: str | None = None
    responsible_id: str | None = None


def plan_404(plan_id: str) -> Refused:
    return Refused("plan_not_found", f"План поддержки «{plan_id}» не найден.", 404)


async def _check_methodists(deps: Deps[Routes], ids: Sequence[str]) -> None:
    unknown = sorted(
        set(ids)
        - await repository.find_known(deps.session, repository.methodists, "methodist_id", ids)
    )
    if unknown:
        raise Refused(
            "unknown_methodist",
            f"Методиста нет в реестре: {', '.join(unknown)}.",
            422,
        )


async def _school(deps: Deps[Routes], organization_id: str) -> School:
    row = await repository.get_organization(deps.session, organization_id)
    if row is None:
        raise Refused(
            "unknown_organization", f"Организации «{organization_id}» нет в реестре.", 422
        )
    return School(
        row.organization_id,
        row.municipality_id,
        row.name,
        bool(row.low_results),
        bool(row.unfavorable_conditions),
    )


def _publish(deps: Deps[Routes], plan: Plan) -> None:
    event = new_event(
        "routes.plan.updated", plan.contract(), source="routes", subject=plan.organization_id
    )
    deps.stage(Streams.ROUTES, event)


async def _held(deps: Deps[Routes], plan_id: str) -> Plan:
    row = await repository.get_plan(deps.session, plan_id, lock=True)
    if row is None:
        raise plan_404(plan_id)
    return Plan.of(row)


async def _save(deps: Deps[Routes], plan: Plan) -> None:
    await repository.save_plan(deps.session, {**plan.values(), "updated_at": deps.now()})
    _publish(deps, plan)


async def open_plan(
    deps: Deps[Routes],
    organization_id: str,
    methodist_id: str,
    starts_on: date,
    actions: Sequence[ActionDraft] = (),
    plan_id: str | None = None,
) -> Plan:
    """A flagged school's new plan with its first actions: one active plan per school."""
    session = deps.session
    school = await _school(deps, organization_id)
    await _check_methodists(
        deps, [methodist_id, *(a.responsible_id for a in actions if a.responsible_id)]
    )
    plan = Plan.open(plan_id or str(uuid.uuid4()), school, methodist_id, starts_on)
    for a in actions:
        plan.add_action(
            a.kind, a.title, a.due_on, action_id=a.action_id, responsible_id=a.responsible_id
        )
    if plan_id is not None and await repository.get_plan(session, plan_id) is not None:
        raise Refused("plan_exists", f"План «{plan_id}» уже есть.", 409)
    active = await repository.get_active_plan_of(session, organization_id)
    if active is not None:
        raise Refused(
            "plan_active",
            f"У организации «{organization_id}» уже есть действующий план «{active.plan_id}»: "
            "добавьте мероприятия в него или закройте его.",
            409,
        )
    now = deps.now()
    await repository.add_plan(session, {**plan.values(), "created_at": now, "updated_at": now})
    _publish(deps, plan)
    return plan


async def add_action(deps: Deps[Routes], plan_id: str, action: ActionDraft) -> Plan:
    plan = await _held(deps, plan_id)
    if action.responsible_id:
        await _check_methodists(deps, [action.responsible_id])
    plan.add_action(
        action.kind,
        action.title,
        action.due_on,
        action_id=action.action_id,
        responsible_id=action.responsible_id,
    )
    await _save(deps, plan)
    return plan


async def mark_done(deps: Deps[Routes], plan_id: str, action_id: str, on: date) -> Plan:
    plan = await _held(deps, plan_id)
    plan.mark_done(action_id, on)
    await _save(deps, plan)
    return plan


async def close_plan(deps: Deps[Routes], plan_id: str, on: date) -> Plan:
    plan = await _held(deps, plan_id)
    plan.close(on)
    await _save(deps, plan)
    return plan
