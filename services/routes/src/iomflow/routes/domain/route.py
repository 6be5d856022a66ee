"""The route (ИОМ) as an aggregate: its approvals, steps, edits and closing, each returning
its facts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol, TypeAlias

from iomflow.routes import wording
from iomflow.routes.domain.catalogue import Draft
from iomflow.routes.domain.rules import Rules
from iomflow.shared.contracts import (
    Approval,
    RouteAgreed,
    RouteCancelled,
    RouteCompleted,
    RouteDrafted,
    RouteStep,
    StepCompleted,
    TrainingCompleted,
)
from iomflow.shared.errors import Refused

# --- lifecycle -----------------------------------------------------------------------------

OPEN = ("drafted", "agreed", "active")
"""Statuses in which a route holds its methodist's seat and can change."""


class Diagnosed(Protocol):
    """What a route is drafted for: a diagnosis's ids (a completed or revised diagnosis, or
    its digest)."""

    @property
    def diagnosis_id(self) -> str: ...
    @property
    def teacher_id(self) -> str: ...
    @property
    def organization_id(self) -> str: ...
    @property
    def municipality_id(self) -> str: ...


@dataclass(frozen=True)
class SeatsChanged:
    """Seats a route took or gave up, as (kind, resource id) — a fact of the domain the
    ledger books against the resources' capacities (``STEP_SEATS``, and "methodist").
    ``vacated``: the route left the open set holding a methodist's seat, so the waiting
    routes may fill it."""

    taken: tuple[tuple[str, str], ...] = ()
    freed: tuple[tuple[str, str], ...] = ()
    vacated: bool = False


RouteEvent: TypeAlias = (
    RouteDrafted | RouteAgreed | StepCompleted | TrainingCompleted | RouteCompleted | RouteCancelled
)
"""The wire events a route's rules cause: the payloads of the shared contracts (the ledger
wraps each in its envelope — id, time, trace — and stages it)."""

Fact: TypeAlias = RouteEvent | SeatsChanged
"""What a method of ``Route`` returns: in the order it happened."""


@dataclass(eq=False)
class Route:
    """A route (ИОМ), the aggregate: its steps (plain dicts, as stored), its methodist,
    approvals and history, and the rules of its life. Each method checks its rule (a
    ``Refused`` with a Russian detail otherwise, before anything changes), changes the
    route, appends to its history and returns the facts it causes (``Fact``). It never
    reads a clock: the caller passes ``at`` (now) and ``today``. The fields it changed
    are kept for the writer (``changes``)."""

    route_id: str
    diagnosis_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    status: str
    steps: list[dict[str, Any]]
    total_hours: int
    created_at: datetime
    methodist_id: str | None = None
    assigned_at: datetime | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    hours_by_period: dict[str, int] = field(default_factory=dict)
    rules_version: str | None = None
    supersedes: str | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    status_reason: str | None = None
    agreed_at: datetime | None = None
    activated_at: datetime | None = None
    closed_at: datetime | None = None
    _changed: set[str] = field(default_factory=set, init=False, repr=False)

    @property
    def is_open(self) -> bool:
        """It holds (or waits for) a methodist's seat and can still change."""
        return self.status in OPEN

    @property
    def waiting(self) -> bool:
        """Open with no methodist: in the unassigned queue."""
        return self.methodist_id is None and self.status in OPEN

    def competencies(self) -> set[str]:
        """The competencies its steps work on."""
        return {step["competency"] for step in self.steps}

    def live_steps(self) -> list[dict[str, Any]]:
        """Its steps, the removed ones left out."""
        return [s for s in self.steps if s.get("status") != "removed"]

    def seats(self) -> list[tuple[str, str]]:
        """Every seat it holds: its methodist's and its steps' (``seats_of``)."""
        held = [("methodist", self.methodist_id)] if self.methodist_id is not None else []
        return held + [seat for step in self.steps for seat in seats_of(step)]

    def changes(self) -> set[str]:
        """The fields changed since the last call (what the writer must save)."""
        changed, self._changed = self._changed, set()
        return changed

    # --- birth -------------------------------------------------------------------------

    @classmethod
    def draft(
        cls,
        route_id: str,
        diagnosis: Diagnosed,
        plan: Draft,
        *,
        rules_version: str,
        supersedes: str | None,
        at: datetime,
    ) -> tuple[Route, list[Fact]]:
        """A new route from a diagnosis (its ids, teacher, organisation, municipality) and
        the drafting plan: the seats its steps take and ``routes.route.drafted``."""
        steps = [{**s.model_dump(mode="json"), "status": "planned"} for s in plan.steps]
        route = cls(
            route_id=route_id,
            diagnosis_id=diagnosis.diagnosis_id,
            teacher_id=diagnosis.teacher_id,
            organization_id=diagnosis.organization_id,
            municipality_id=diagnosis.municipality_id,
            status="drafted",
            steps=steps,
            total_hours=plan.total_hours,
            created_at=at,
            starts_on=plan.starts_on,
            ends_on=plan.ends_on,
            hours_by_period=plan.hours_by_period,
            rules_version=rules_version,
            supersedes=supersedes,
        )
        route._log(
            at,
            "drafted",
            "routes",
            diagnosis_id=diagnosis.diagnosis_id,
            rules_version=rules_version,
            **({"notes": plan.notes} if plan.notes else {}),
        )
        route.changes()  # a new route is written whole
        drafted = RouteDrafted(
            route_id=route_id,
            diagnosis_id=diagnosis.diagnosis_id,
            teacher_id=diagnosis.teacher_id,
            organization_id=diagnosis.organization_id,
            municipality_id=diagnosis.municipality_id,
            steps=plan.steps,
            total_hours=plan.total_hours,
            supersedes=supersedes,
            starts_on=plan.starts_on,
            ends_on=plan.ends_on,
            hours_by_period=plan.hours_by_period,
            rules_version=rules_version,
        )
        taken = tuple(seat for step in steps for seat in seats_of(step))
        return route, [SeatsChanged(taken=taken), drafted]

    # --- the methodist -------------------------------------------------------------------

    def assign(self, methodist_id: str, reason: str, *, at: datetime) -> list[Fact]:
        """Seated with a methodist (chosen by ``best_methodist``): the seat it takes. The
        ``routes.methodist.assigned`` it causes carries the methodist's load, final only
        once the seats are written: the ledger builds it then."""
        self._require_open()
        self._set(methodist_id=methodist_id, assigned_at=at)
        self._log(at, "methodist_assigned", "routes", methodist_id=methodist_id, reason=reason)
        return [SeatsChanged(taken=(("methodist", methodist_id),))]

    def reassign(self, to: str | None, reason: str, *, by: str, at: datetime) -> list[Fact]:
        """Moved by a rebalance (``plan_rebalance``) to another methodist, or back to the
        queue (``to`` None). The rebalance counts the loads itself: no seat facts."""
        self._require_open()
        previous = self.methodist_id
        self._set(methodist_id=to, assigned_at=at if to else None)
        self._log(at, "rebalanced", by, reason=reason, **{"from": previous, "to": to})
        return []

    def check_methodist(self, by: str, what: str) -> None:
        """Only the route's own methodist changes it; a route still waiting has nobody."""
        if self.methodist_id is None:
            raise Refused("no_methodist", "Маршруту ещё не назначен методист.", 409)
        if by != self.methodist_id:
            raise Refused("not_the_methodist", f"{what} может только методист маршрута.", 403)

    # --- approvals and the start -------------------------------------------------------

    def approve(
        self,
        role: str,
        by: str,
        *,
        is_manager: bool,
        rules: Rules,
        at: datetime,
        today: date,
    ) -> list[Fact]:
        """One party's approval; the last one (``rules.approvals``) agrees the route:
        ``routes.route.agreed``, ``active`` when its start has come (the caller then
        ``activate``s it). Who may approve: the teacher themself; the route's methodist;
        a member of the school's management team (``is_manager``: the caller looked it
        up, excluding the teacher's own membership) who is not the teacher."""
        self._require_open()
        if self.status != "drafted":
            raise Refused(
                "not_drafted",
                f"Маршрут в статусе «{wording.status(self.status)}»: "
                "согласование уже не требуется.",
                409,
            )
        if role == "teacher" and by != self.teacher_id:
            raise Refused(
                "not_the_teacher", "Согласовать как педагог может только сам педагог.", 403
            )
        if role == "methodist":
            if self.methodist_id is None:
                raise Refused("no_methodist", "Маршруту ещё не назначен методист.", 409)
            if by != self.methodist_id:
                raise Refused(
                    "not_the_methodist", "Согласовать может только методист маршрута.", 403
                )
        if role == "management" and (by == self.teacher_id or not is_manager):
            raise Refused(
                "not_management",
                "Согласовать от администрации может только член управленческой команды школы "
                "педагога.",
                403,
            )
        if any(a["role"] == role for a in self.approvals):
            raise Refused(
                "already_approved", f"Согласование «{wording.role(role)}» уже получено.", 409
            )
        self._set(approvals=[*self.approvals, {"role": role, "by": by, "at": at.isoformat()}])
        self._log(at, "approved", by, role=role)
        if missing_approvals(self.approvals, rules):
            return []
        self._set(status="agreed", agreed_at=at)
        return [
            RouteAgreed(
                route_id=self.route_id,
                teacher_id=self.teacher_id,
                municipality_id=self.municipality_id,
                methodist_id=self.methodist_id,
                approvals=[Approval.model_validate(a) for a in self.approvals],
                active=starts_now(self.starts_on, today),
            )
        ]

    def activate(self, *, rules: Rules, at: datetime, today: date) -> list[Fact]:
        """An agreed route starts (the caller cancels the teacher's previous active route,
        ``replaced``). Steps completed before the start (courses taken meanwhile) may
        already complete it."""
        if self.status != "agreed":
            raise Refused(
                "not_agreed",
                f"Маршрут в статусе «{wording.status(self.status)}» начать нельзя.",
                409,
            )
        self._set(status="active", activated_at=at)
        self._log(at, "activated", "routes")
        return self.complete_if_done(rules=rules, at=at, today=today)

    # --- steps -------------------------------------------------------------------------

    def complete_step(
        self,
        step_id: str,
        by: str,
        on: date,
        completed_by: str,
        *,
        rules: Rules,
        at: datetime,
        today: date,
        source: str | None = None,
        hours: int | None = None,
        note: str | None = None,
        activity_id: str | None = None,
    ) -> list[Fact]:
        """A step done: ``routes.step.completed``, and for a program or internship step
        ``routes.training.completed`` too — once, here, whoever completed it (``source``:
        the provider's event, course_event or internship_event; a methodist's mark is
        methodist). ``hours``: as the provider reported them; otherwise the step's.
        ``note``: the methodist's word on it, kept in the history. ``activity_id``: the
        activity whose attendance completed it (``completed_by`` attendance). The last step
        done completes an active route."""
        self._require_open()
        steps = [dict(s) for s in self.steps]
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
        self._set(steps=steps)
        self._log(
            at,
            "step_completed",
            by,
            step_id=step_id,
            via=completed_by,
            **({"reason": note} if note else {}),
            **({"activity_id": activity_id} if activity_id else {}),
        )
        facts: list[Fact] = [
            StepCompleted(
                route_id=self.route_id,
                teacher_id=self.teacher_id,
                municipality_id=self.municipality_id,
                step_id=step_id,
                kind=step["kind"],
                competency=step["competency"],
                program_id=step.get("program_id"),
                site_id=step.get("site_id") if step["kind"] == "internship" else None,
                completed_by=completed_by,  # type: ignore[arg-type]
                activity_id=activity_id,
                completed_on=on,
            )
        ]
        kind, ref = trained_in(step)
        if kind is not None and ref:
            facts.append(
                training(
                    self.teacher_id,
                    self.organization_id,
                    self.municipality_id,
                    kind,
                    ref,
                    on,
                    hours if hours is not None else (step.get("hours") or None),
                    source or ("methodist" if completed_by == "methodist" else "course_event"),
                    self.route_id,
                    step_id,
                )
            )
        return facts + self.complete_if_done(rules=rules, at=at, today=today)

    def enrol(self, step_id: str, on: date, *, at: datetime) -> list[Fact]:
        """The teacher enrolled on the course of a program step (a provider's event)."""
        self._require_open()
        self._set(
            steps=[
                {**s, "status": "enrolled", "enrolled_on": on.isoformat()}
                if s["step_id"] == step_id
                else s
                for s in self.steps
            ]
        )
        self._log(at, "enrolled", "course_event", step_id=step_id)
        return []

    def note(self, action: str, by: str, *, at: datetime, **details: Any) -> list[Fact]:
        """Something the history keeps that changes nothing else (a course failed, the
        diagnosis revised under an agreed route)."""
        self._log(at, action, by, **details)
        return []

    def edit(
        self,
        action: Literal["add", "remove", "replace"],
        by: str,
        reason: str,
        *,
        rules: Rules,
        at: datetime,
        today: date,
        step_id: str | None = None,
        step: Mapping[str, Any] | None = None,
        program_known: bool = True,
    ) -> tuple[str | None, list[Fact]]:
        """The methodist adds, removes or replaces a step, with a reason the history keeps;
        the step it added (or ``step_id``) and the facts. A drafted route's approvals are
        reset (they approved another plan). A new step's tutor, mentor or site takes a seat
        (the write refuses it when full); a removed one frees its own. ``program_known``:
        the new step's program is in the registry (the caller looked)."""
        self._require_open()
        self.check_methodist(by, "Изменять маршрут")
        steps = [dict(s) for s in self.steps]
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
            if step.get("program_id") and not program_known:
                raise Refused(
                    "unknown_program", f"Программы «{step['program_id']}» нет в реестре.", 422
                )
            number = 1 + max(
                (int(s["step_id"][1:]) for s in steps if s["step_id"][1:].isdigit()), default=0
            )
            new = {
                **RouteStep.model_validate(
                    {**step, "step_id": f"s{number}", "reason": f"методист: {reason}"}
                ).model_dump(mode="json"),
                "status": "planned",
            }
            steps.append(new)
        freed: tuple[tuple[str, str], ...] = ()
        if old is not None:
            freed = tuple(seats_of(old))
            old["status"] = "removed"
            old["removed_reason"] = reason
        self._set(
            steps=steps,
            total_hours=sum(s["hours"] for s in steps if s.get("status") != "removed"),
        )
        self._log(
            at,
            f"step_{action}",
            by,
            reason=reason,
            step_id=step_id,
            new_step=new["step_id"] if new else None,
        )
        if self.status == "drafted" and self.approvals:
            self._set(approvals=[])
        facts: list[Fact] = [SeatsChanged(taken=tuple(seats_of(new)) if new else (), freed=freed)]
        if self.status == "active":
            facts += self.complete_if_done(rules=rules, at=at, today=today)
        return (new["step_id"] if new else step_id), facts

    # --- the end -----------------------------------------------------------------------

    def complete_if_done(self, *, rules: Rules, at: datetime, today: date) -> list[Fact]:
        """An active route whose steps are all done (or whose end date passed, by policy:
        ``completion``) completes: ``routes.route.completed``, its seats freed. Nothing
        otherwise."""
        if self.status != "active":
            return []
        by = completion(self.steps, self.ends_on, today, rules)
        if by is None:
            return []
        live = self.live_steps()
        completed = RouteCompleted(
            route_id=self.route_id,
            teacher_id=self.teacher_id,
            municipality_id=self.municipality_id,
            methodist_id=self.methodist_id,
            by=by,
            steps_done=sum(1 for s in live if s.get("status") == "done"),
            steps_total=len(live),
        )
        reason = "все шаги выполнены" if by == "all_steps" else "срок маршрута истёк"
        return [*self.close("completed", reason, at=at), completed]

    def close(
        self,
        status: Literal["completed", "cancelled", "superseded"],
        reason: str,
        *,
        at: datetime,
        by: str = "routes",
    ) -> list[Fact]:
        """The route leaves the open set for a final status: every seat it holds is freed
        (``superseded`` says so in the successor's ``routes.route.drafted``; ``complete_if_done``
        and ``cancel`` add their events)."""
        self._require_open()
        freed = tuple(self.seats())
        vacated = self.methodist_id is not None
        self._set(status=status, status_reason=reason, closed_at=at)
        self._log(at, status, by, reason=reason)
        return [SeatsChanged(freed=freed, vacated=vacated)]

    def cancel(self, reason: str, code: str, *, at: datetime, by: str = "routes") -> list[Fact]:
        """Cancelled (``code``: replaced, diagnosis_cancelled, teacher_removed, operator):
        ``routes.route.cancelled``, its seats freed."""
        facts = self.close("cancelled", reason, at=at, by=by)
        return [
            *facts,
            RouteCancelled(
                route_id=self.route_id,
                teacher_id=self.teacher_id,
                municipality_id=self.municipality_id,
                reason=reason,
                code=code,  # type: ignore[arg-type]
            ),
        ]

    # --- inside ------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self.is_open:
            raise Refused(
                "route_closed",
                f"Маршрут в статусе «{wording.status(self.status)}» изменить нельзя.",
                409,
            )

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)
        self._changed.update(values)

    def _log(self, at: datetime, action: str, by: str, **details: Any) -> None:
        self._set(
            history=[*self.history, {"at": at.isoformat(), "action": action, "by": by, **details}]
        )


def trained_in(step: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """What training a step is (course or internship) and its program or site; (None,
    None) for the other kinds."""
    if step["kind"] == "program":
        return "course", step.get("program_id")
    if step["kind"] == "internship":
        return "internship", step.get("site_id")
    return None, None


def training(
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
) -> TrainingCompleted:
    """``routes.training.completed`` of a course (``ref`` its program) or an internship
    (``ref`` its site)."""
    return TrainingCompleted(
        training_id=training_id(teacher_id, kind, ref),
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
    )


def seats_of(step: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, resource id) of the seats a step holds: its tutor, mentor and internship site
    (a removed step holds none)."""
    if step.get("status") == "removed":
        return []
    return [(kind, step[key]) for kind, key in STEP_SEATS if step.get(key)]


STEP_SEATS = (("tutor", "tutor_id"), ("mentor", "mentor_id"), ("site", "site_id"))
"""Resources with a capacity a step may name, by the step field that names them."""


def missing_approvals(approvals: Iterable[Mapping[str, Any]], rules: Rules) -> list[str]:
    """Roles whose approval the route still needs."""
    have = {a["role"] for a in approvals}
    return [role for role in rules.approvals if role not in have]


def starts_now(starts_on: date | None, today: date) -> bool:
    """An agreed route becomes active on its start date."""
    return starts_on is None or starts_on <= today


def completion(
    steps: Sequence[Mapping[str, Any]], ends_on: date | None, today: date, rules: Rules
) -> Literal["all_steps", "end_date"] | None:
    """Whether an active route completes now, and why (None: not yet).

    All steps done completes it; by policy, so does its end date passing (plus grace).
    """
    live = [s for s in steps if s.get("status") != "removed"]
    if live and all(s.get("status") == "done" for s in live):
        return "all_steps"
    if (
        rules.completion.at_end_date
        and ends_on is not None
        and today > ends_on + timedelta(days=rules.completion.grace_days)
    ):
        return "end_date"
    return None


def step_for_course(
    steps: Sequence[Mapping[str, Any]], program_id: str
) -> Mapping[str, Any] | None:
    """The route's open program step for a course, the earliest planned first."""
    candidates = [
        s
        for s in steps
        if s["kind"] == "program"
        and s.get("program_id") == program_id
        and s.get("status") not in ("done", "removed")
    ]
    return min(candidates, key=lambda s: str(s.get("starts_on") or ""), default=None)


def step_for_internship(
    steps: Sequence[Mapping[str, Any]], site_id: str
) -> Mapping[str, Any] | None:
    """The route's open internship step at a site, the earliest planned first."""
    candidates = [
        s
        for s in steps
        if s["kind"] == "internship"
        and s.get("site_id") == site_id
        and s.get("status") not in ("done", "removed")
    ]
    return min(candidates, key=lambda s: str(s.get("starts_on") or ""), default=None)


def training_id(teacher_id: str, kind: str, ref: str) -> str:
    """The name of a training, not of the event that reports it
    (``routes.training.completed``): a course (``kind`` course) is the teacher's program, an
    internship the teacher's site, so a step's completion and the provider's event of the
    same course name one training."""
    return f"{teacher_id}:{'program' if kind == 'course' else 'site'}:{ref}"
