"""The support plan of a school with low results (roadmap 40–41): its actions (activities,
internships, mentoring, consultations, courses), the responsible methodist and due dates.

Pure rules: the ``Plan`` aggregate checks each change (``Refused`` with a Russian detail
before anything changes) and the use case (``plans``) saves it whole and publishes it whole
as ``routes.plan.updated``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from iomflow.shared.contracts import PlanAction, SupportPlanUpdated
from iomflow.shared.errors import Refused

ActionKind = Literal["activity", "internship", "mentoring", "consultation", "course", "other"]


@dataclass(frozen=True)
class School:
    """What a plan needs of an organisation of the read model."""

    organization_id: str
    municipality_id: str
    name: str
    low_results: bool
    unfavorable_conditions: bool

    @property
    def flagged(self) -> bool:
        return self.low_results or self.unfavorable_conditions


HEAD = ("plan_id", "organization_id", "municipality_id", "methodist_id", "status", "starts_on")
"""A plan's members other than its actions and the day it closed."""


@dataclass
class Plan:
    plan_id: str
    organization_id: str
    municipality_id: str
    methodist_id: str
    starts_on: date
    status: Literal["active", "closed"] = "active"
    actions: list[PlanAction] = field(default_factory=list)
    closed_on: date | None = None

    @classmethod
    def open(cls, plan_id: str, school: School, methodist_id: str, starts_on: date) -> Plan:
        """A new plan for a flagged school (low results or unfavourable conditions)."""
        if not school.flagged:
            raise Refused(
                "not_flagged",
                f"Организация «{school.organization_id}» не отмечена как школа с низкими "
                "результатами или в неблагоприятных условиях: план поддержки для неё не "
                "составляется.",
                409,
            )
        return cls(plan_id, school.organization_id, school.municipality_id, methodist_id, starts_on)

    def _require_active(self) -> None:
        if self.status != "active":
            raise Refused("plan_closed", f"План «{self.plan_id}» закрыт: менять его нельзя.", 409)

    def _action(self, action_id: str) -> PlanAction:
        for action in self.actions:
            if action.action_id == action_id:
                return action
        raise Refused(
            "action_not_found", f"В плане «{self.plan_id}» нет мероприятия «{action_id}».", 404
        )

    def next_action_id(self) -> str:
        """``a<n>``: the first free one after the plan's count."""
        taken = {a.action_id for a in self.actions}
        n = len(self.actions) + 1
        while f"a{n}" in taken:
            n += 1
        return f"a{n}"

    def add_action(
        self,
        kind: ActionKind,
        title: str,
        due_on: date,
        *,
        action_id: str | None = None,
        responsible_id: str | None = None,
    ) -> PlanAction:
        """An action of the plan, due within it (not before it starts); the plan's
        methodist is responsible unless another is named."""
        self._require_active()
        action_id = action_id or self.next_action_id()
        if any(a.action_id == action_id for a in self.actions):
            raise Refused("action_exists", f"В плане уже есть мероприятие «{action_id}».", 409)
        if due_on < self.starts_on:
            raise Refused(
                "due_before_start",
                f"Срок мероприятия «{title}» ({due_on:%d.%m.%Y}) раньше начала плана "
                f"({self.starts_on:%d.%m.%Y}).",
                422,
            )
        action = PlanAction(
            action_id=action_id,
            kind=kind,
            title=title,
            due_on=due_on,
            responsible_id=responsible_id or self.methodist_id,
        )
        self.actions.append(action)
        return action

    def mark_done(self, action_id: str, on: date) -> PlanAction:
        """An action done on a day within the plan; done once."""
        self._require_active()
        action = self._action(action_id)
        if action.done_on is not None:
            raise Refused(
                "action_done",
                f"Мероприятие «{action_id}» уже выполнено {action.done_on:%d.%m.%Y}.",
                409,
            )
        if on < self.starts_on:
            raise Refused(
                "done_before_start",
                f"Дата выполнения ({on:%d.%m.%Y}) раньше начала плана ({self.starts_on:%d.%m.%Y}).",
                422,
            )
        done = action.model_copy(update={"done_on": on})
        self.actions = [done if a.action_id == action_id else a for a in self.actions]
        return done

    def close(self, on: date) -> None:
        self._require_active()
        self.status = "closed"
        self.closed_on = on

    def overdue(self, today: date) -> list[PlanAction]:
        """Actions not done whose due date has passed (an active plan's)."""
        if self.status != "active":
            return []
        return [a for a in self.actions if a.done_on is None and a.due_on < today]

    def head(self) -> dict[str, Any]:
        """The plan's own members (``HEAD``), which its row, its event and its answer share."""
        return {name: getattr(self, name) for name in HEAD}

    def contract(self) -> SupportPlanUpdated:
        """The plan whole, as ``routes.plan.updated`` carries it."""
        return SupportPlanUpdated(**self.head(), actions=list(self.actions))

    def values(self) -> dict[str, Any]:
        """The plan as its row holds it."""
        actions = [a.model_dump(mode="json") for a in self.actions]
        return {**self.head(), "actions": actions, "closed_on": self.closed_on}

    @classmethod
    def of(cls, row: Any) -> Plan:
        return cls(
            **{name: getattr(row, name) for name in HEAD},
            actions=[PlanAction.model_validate(a) for a in row.actions],
            closed_on=row.closed_on,
        )
