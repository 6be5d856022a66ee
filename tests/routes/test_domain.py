"""The Route aggregate's rules without I/O: each transition, each refusal (code, status,
Russian detail), the facts returned (contract payloads and seats) and the history kept.
And the capacities in the rules data agree with the contracts' bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from iomflow.routes import domain
from iomflow.routes.domain import Draft, Route, SeatsChanged
from iomflow.shared.contracts import (
    InternshipSiteUpserted,
    MentorUpserted,
    MethodistUpserted,
    RouteAgreed,
    RouteCancelled,
    RouteCompleted,
    RouteDrafted,
    RouteStep,
    StepCompleted,
    TrainingCompleted,
    TutorUpserted,
)
from iomflow.shared.errors import Refused

RULES = domain.load_rules()
AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
TODAY = date(2026, 3, 1)


def step(n: int, kind: str = "program", **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "step_id": f"s{n}",
        "kind": kind,
        "competency": f"C{n}",
        "hours": 10,
        "reason": "дефицит",
        "status": "planned",
    }
    if kind == "program":
        base["program_id"] = f"p{n}"
    if kind == "internship":
        base["site_id"] = f"site-{n}"
    return base | values


def route(status: str = "drafted", **values: Any) -> Route:
    fields: dict[str, Any] = {
        "route_id": "r1",
        "diagnosis_id": "d1",
        "teacher_id": "t1",
        "organization_id": "o1",
        "municipality_id": "mun1",
        "status": status,
        "steps": [step(1), step(2, "internship"), step(3, "consultation")],
        "total_hours": 30,
        "created_at": AT,
        "methodist_id": "m1",
    }
    return Route(**(fields | values))


def approve(r: Route, role: str, by: str, is_manager: bool = False, today: date = TODAY) -> list:
    return r.approve(role, by, is_manager=is_manager, rules=RULES, at=AT, today=today)


def refused(code: str, status: int) -> Any:
    class Check:
        def __enter__(self) -> None:
            self.ctx = pytest.raises(Refused)
            self.info = self.ctx.__enter__()

        def __exit__(self, *exc: Any) -> bool:
            result = self.ctx.__exit__(*exc)
            assert self.info.value.code == code and self.info.value.status == status
            assert self.info.value.detail  # for people, in Russian
            return bool(result)

    return Check()


# --- drafting --------------------------------------------------------------------------


def test_a_draft_takes_its_steps_seats_and_says_drafted() -> None:
    plan = Draft(
        steps=[
            RouteStep(
                step_id="s1",
                kind="program",
                competency="C1",
                hours=36,
                reason="р",
                program_id="p1",
                tutor_id="tu1",
            ),
            RouteStep(
                step_id="s2",
                kind="mentoring",
                competency="C1",
                hours=36,
                reason="р",
                mentor_id="me1",
            ),
        ],
        total_hours=72,
        starts_on=TODAY,
        ends_on=date(2026, 12, 1),
        hours_by_period={"2025": 72},
    )
    diagnosis = route()  # anything with the diagnosis's ids
    new, facts = Route.draft("r9", diagnosis, plan, rules_version="v", supersedes="r0", at=AT)
    assert new.status == "drafted" and new.methodist_id is None and new.waiting
    assert [s["status"] for s in new.steps] == ["planned", "planned"]
    assert new.history == [
        {
            "at": AT.isoformat(),
            "action": "drafted",
            "by": "routes",
            "diagnosis_id": "d1",
            "rules_version": "v",
        }
    ]
    assert facts[0] == SeatsChanged(taken=(("tutor", "tu1"), ("mentor", "me1")))
    drafted = facts[1]
    assert isinstance(drafted, RouteDrafted)
    assert (drafted.route_id, drafted.supersedes, drafted.total_hours) == ("r9", "r0", 72)
    assert new.changes() == set()  # a new route is written whole


def test_assign_takes_the_methodists_seat_and_keeps_the_reason() -> None:
    r = route(methodist_id=None)
    facts = r.assign("m7", "по всему региону", at=AT)
    assert facts == [SeatsChanged(taken=(("methodist", "m7"),))]
    assert (r.methodist_id, r.assigned_at) == ("m7", AT)
    assert r.history[-1] == {
        "at": AT.isoformat(),
        "action": "methodist_assigned",
        "by": "routes",
        "methodist_id": "m7",
        "reason": "по всему региону",
    }
    assert r.changes() == {"methodist_id", "assigned_at", "history"}
    assert r.changes() == set()


def test_a_rebalance_moves_a_route_back_to_the_queue() -> None:
    r = route()
    assert r.reassign(None, "методист выбыл", by="operator", at=AT) == []
    assert r.methodist_id is None and r.assigned_at is None and r.waiting
    assert r.history[-1]["from"] == "m1" and r.history[-1]["to"] is None


# --- approvals -------------------------------------------------------------------------


def test_three_approvals_agree_the_route_and_the_last_says_agreed() -> None:
    r = route(starts_on=date(2026, 9, 1))
    assert approve(r, "teacher", "t1") == []
    assert approve(r, "methodist", "m1") == []
    assert r.status == "drafted"
    facts = approve(r, "management", "dir-o1", is_manager=True)
    assert r.status == "agreed" and r.agreed_at == AT
    [agreed] = facts
    assert isinstance(agreed, RouteAgreed)
    assert [a.role for a in agreed.approvals] == ["teacher", "methodist", "management"]
    assert agreed.active is False  # it starts in September
    assert [h["role"] for h in r.history if h["action"] == "approved"] == [
        "teacher",
        "methodist",
        "management",
    ]


def test_the_last_approval_on_the_start_day_says_active() -> None:
    r = route(
        starts_on=TODAY,
        approvals=[
            {"role": "teacher", "by": "t1", "at": AT.isoformat()},
            {"role": "methodist", "by": "m1", "at": AT.isoformat()},
        ],
    )
    [agreed] = approve(r, "management", "dir", is_manager=True)
    assert isinstance(agreed, RouteAgreed) and agreed.active


def test_only_the_teacher_approves_as_the_teacher() -> None:
    r = route()
    with refused("not_the_teacher", 403):
        approve(r, "teacher", "t2")
    assert r.approvals == [] and r.history == [] and r.changes() == set()


def test_only_the_routes_methodist_approves_as_methodist() -> None:
    with refused("not_the_methodist", 403):
        approve(route(), "methodist", "m2")
    with refused("no_methodist", 409):
        approve(route(methodist_id=None), "methodist", "m1")


def test_management_needs_a_membership_and_not_the_teacher() -> None:
    with refused("not_management", 403):
        approve(route(), "management", "dir-o1", is_manager=False)
    with refused("not_management", 403):
        approve(route(), "management", "t1", is_manager=True)  # not for their own route


def test_an_approval_is_given_once() -> None:
    r = route()
    approve(r, "teacher", "t1")
    with refused("already_approved", 409):
        approve(r, "teacher", "t1")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("agreed", "not_drafted"),
        ("active", "not_drafted"),
        ("completed", "route_closed"),
        ("cancelled", "route_closed"),
        ("superseded", "route_closed"),
    ],
)
def test_only_a_draft_is_approved(status: str, code: str) -> None:
    with refused(code, 409):
        approve(route(status), "teacher", "t1")


# --- the start and the end -------------------------------------------------------------


def test_activation_starts_an_agreed_route() -> None:
    r = route("agreed")
    assert r.activate(rules=RULES, at=AT, today=TODAY) == []
    assert (r.status, r.activated_at, r.history[-1]["action"]) == ("active", AT, "activated")
    with refused("not_agreed", 409):
        r.activate(rules=RULES, at=AT, today=TODAY)


def test_activation_completes_a_route_whose_steps_were_all_done_meanwhile() -> None:
    r = route("agreed", steps=[step(1, status="done"), step(2, "consultation", status="removed")])
    facts = r.activate(rules=RULES, at=AT, today=TODAY)
    assert r.status == "completed"
    seats, completed = facts
    assert seats == SeatsChanged(freed=(("methodist", "m1"),), vacated=True)
    assert isinstance(completed, RouteCompleted)
    assert (completed.by, completed.steps_done, completed.steps_total) == ("all_steps", 1, 1)


def test_an_active_route_past_its_end_and_grace_completes_by_date() -> None:
    r = route("active", ends_on=date(2026, 1, 1))
    grace = RULES.completion.grace_days
    assert r.complete_if_done(rules=RULES, at=AT, today=date(2026, 1, 1)) == []
    facts = r.complete_if_done(
        rules=RULES, at=AT, today=date.fromordinal(date(2026, 1, 1).toordinal() + grace + 1)
    )
    assert isinstance(facts[-1], RouteCompleted) and facts[-1].by == "end_date"
    assert r.status_reason == "срок маршрута истёк"


def test_a_draft_is_not_completed() -> None:
    r = route(steps=[step(1, status="done")])
    assert r.complete_if_done(rules=RULES, at=AT, today=TODAY) == []


def test_cancel_frees_every_seat_and_says_cancelled() -> None:
    r = route(
        steps=[
            step(1, tutor_id="tu1"),
            step(2, "internship"),
            step(3, "mentoring", mentor_id="me1", status="removed"),
        ]
    )
    facts = r.cancel("педагог выбыл из реестра", "teacher_removed", at=AT)
    seats, cancelled = facts
    assert seats == SeatsChanged(
        freed=(("methodist", "m1"), ("tutor", "tu1"), ("site", "site-2")), vacated=True
    )
    assert isinstance(cancelled, RouteCancelled) and cancelled.code == "teacher_removed"
    assert (r.status, r.status_reason, r.closed_at) == ("cancelled", "педагог выбыл из реестра", AT)
    assert r.history[-1]["action"] == "cancelled"
    assert not r.is_open
    with refused("route_closed", 409):
        r.cancel("ещё раз", "operator", at=AT)


def test_a_waiting_route_superseded_vacates_no_methodist_seat() -> None:
    r = route(methodist_id=None, steps=[])
    assert r.close("superseded", "заменён", at=AT) == [SeatsChanged(freed=(), vacated=False)]
    assert r.status == "superseded"


# --- steps -----------------------------------------------------------------------------


def test_a_program_step_done_says_step_and_training_completed() -> None:
    r = route("active")
    facts = r.complete_step(
        "s1", "m1", TODAY, "methodist", rules=RULES, at=AT, today=TODAY, note="сертификат"
    )
    done, trained = facts
    assert isinstance(done, StepCompleted) and done.program_id == "p1" and done.site_id is None
    assert isinstance(trained, TrainingCompleted)
    assert (trained.training_id, trained.kind, trained.source, trained.hours) == (
        "t1:program:p1",
        "course",
        "methodist",
        10,
    )
    assert r.steps[0]["status"] == "done" and r.steps[0]["done_on"] == TODAY.isoformat()
    assert r.history[-1] == {
        "at": AT.isoformat(),
        "action": "step_completed",
        "by": "m1",
        "step_id": "s1",
        "via": "methodist",
        "reason": "сертификат",
    }
    assert r.status == "active"


def test_an_internship_done_by_its_event_names_the_site_and_the_reported_hours() -> None:
    r = route("active")
    done, trained = r.complete_step(
        "s2",
        "internship_event",
        TODAY,
        "course_event",
        rules=RULES,
        at=AT,
        today=TODAY,
        source="internship_event",
        hours=7,
    )
    assert isinstance(done, StepCompleted) and done.site_id == "site-2"
    assert isinstance(trained, TrainingCompleted)
    assert (trained.site_id, trained.hours, trained.source) == ("site-2", 7, "internship_event")


def test_a_consultation_done_is_no_training() -> None:
    facts = route("active").complete_step(
        "s3", "m1", TODAY, "methodist", rules=RULES, at=AT, today=TODAY
    )
    assert [type(f) for f in facts] == [StepCompleted]


def test_the_last_step_done_completes_an_active_route() -> None:
    r = route("active", steps=[step(1, status="done"), step(3, "consultation")])
    facts = r.complete_step("s3", "m1", TODAY, "methodist", rules=RULES, at=AT, today=TODAY)
    assert [type(f) for f in facts] == [StepCompleted, SeatsChanged, RouteCompleted]
    assert r.status == "completed" and [h["action"] for h in r.history] == [
        "step_completed",
        "completed",
    ]


def test_a_step_is_done_once_and_must_exist() -> None:
    r = route("active", steps=[step(1, status="done"), step(2, "consultation", status="removed")])
    with refused("step_closed", 409):
        r.complete_step("s1", "m1", TODAY, "methodist", rules=RULES, at=AT, today=TODAY)
    with refused("step_closed", 409):
        r.complete_step("s2", "m1", TODAY, "methodist", rules=RULES, at=AT, today=TODAY)
    with refused("step_not_found", 404):
        r.complete_step("s9", "m1", TODAY, "methodist", rules=RULES, at=AT, today=TODAY)


def test_enrolment_marks_the_step_and_a_failed_course_only_the_history() -> None:
    r = route("active")
    assert r.enrol("s1", TODAY, at=AT) == []
    assert r.steps[0]["status"] == "enrolled" and r.steps[1]["status"] == "planned"
    r.changes()
    r.note("course_failed", "course_event", at=AT, step_id="s1")
    assert r.changes() == {"history"} and r.history[-1]["action"] == "course_failed"


# --- the methodist's edits ------------------------------------------------------------

NEW = {
    "kind": "consultation",
    "competency": "C4",
    "hours": 4,
    "reason": "",
    "tutor_id": "tu9",
}


def edit(r: Route, action: str, by: str = "m1", **kw: Any) -> tuple[str | None, list]:
    return r.edit(action, by, "по итогам беседы", rules=RULES, at=AT, today=TODAY, **kw)  # type: ignore[arg-type]


def test_adding_a_step_numbers_it_and_takes_its_seat() -> None:
    r = route(approvals=[{"role": "teacher", "by": "t1", "at": AT.isoformat()}])
    added, facts = edit(r, "add", step=NEW)
    assert added == "s4"
    assert facts == [SeatsChanged(taken=(("tutor", "tu9"),), freed=())]
    new = r.steps[-1]
    assert (new["status"], new["reason"]) == ("planned", "методист: по итогам беседы")
    assert r.total_hours == 34
    assert r.approvals == []  # they approved another plan
    assert r.history[-1]["action"] == "step_add" and r.history[-1]["new_step"] == "s4"


def test_removing_a_step_frees_its_seat_and_keeps_the_reason() -> None:
    r = route("agreed")
    added, facts = edit(r, "remove", step_id="s2")
    assert added == "s2"
    assert facts == [SeatsChanged(taken=(), freed=(("site", "site-2"),))]
    assert r.steps[1]["status"] == "removed"
    assert r.steps[1]["removed_reason"] == "по итогам беседы"
    assert r.total_hours == 20


def test_removing_the_last_open_step_of_an_active_route_completes_it() -> None:
    r = route("active", steps=[step(1, status="done"), step(2, "consultation")])
    _, facts = edit(r, "remove", step_id="s2")
    assert [type(f) for f in facts] == [SeatsChanged, SeatsChanged, RouteCompleted]
    assert r.status == "completed"


def test_replacing_a_step_removes_it_and_adds_the_new_one() -> None:
    r = route()
    added, _ = edit(r, "replace", step_id="s3", step=NEW)
    assert added == "s4" and r.steps[2]["status"] == "removed" and len(r.steps) == 4


def test_edits_are_the_routes_methodists_and_of_open_steps_of_known_programs() -> None:
    with refused("not_the_methodist", 403):
        edit(route(), "add", by="m2", step=NEW)
    with refused("no_methodist", 409):
        edit(route(methodist_id=None), "add", step=NEW)
    with refused("step_not_found", 404):
        edit(route(), "remove", step_id="s9")
    with refused("step_closed", 409):
        edit(route(steps=[step(1, status="done")]), "replace", step_id="s1", step=NEW)
    with refused("unknown_program", 422):
        edit(
            route(),
            "add",
            step={**NEW, "kind": "program", "program_id": "p-x"},
            program_known=False,
        )
    with refused("route_closed", 409):
        edit(route("completed"), "add", step=NEW)


def test_a_refused_edit_changes_nothing() -> None:
    r = route(steps=[step(1, status="removed"), step(2)])
    before = [dict(s) for s in r.steps]
    with refused("step_closed", 409):
        edit(r, "replace", step_id="s1", step=NEW)
    assert r.steps == before and r.history == [] and r.changes() == set()


# --- the capacities in the rules data --------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "contract"),
    [
        ("methodist", MethodistUpserted),
        ("tutor", TutorUpserted),
        ("mentor", MentorUpserted),
        ("site", InternshipSiteUpserted),
    ],
)
def test_the_contracts_capacity_bounds_agree_with_the_rules_data(kind: str, contract: Any) -> None:
    rule = RULES.capacity.of(kind)
    field = contract.model_fields["capacity"]
    assert field.default == rule.default
    most = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    assert most == rule.most


def test_methodist_capacity_is_250() -> None:
    assert RULES.capacity.methodist.default == RULES.capacity.methodist.most == 250


def test_a_default_capacity_above_the_most_is_refused() -> None:
    with pytest.raises(ValidationError):
        domain.Capacity(default=300, most=250)


def test_a_teacher_is_offered_only_the_programs_of_their_audience() -> None:
    def program(pid: str, *audiences: str) -> domain.ProgramView:
        return domain.ProgramView(pid, pid, 36, False, ("C1",), audiences)

    programs = [
        program("a", "general"),
        program("b", "preschool"),
        program("c", "general", "college"),
    ]
    assert [p.program_id for p in domain.for_audience(programs, "general")] == ["a", "c"]
    assert [p.program_id for p in domain.for_audience(programs, "college")] == ["c"]
