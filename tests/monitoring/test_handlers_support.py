"""The support outside routes reaching monitoring's KPIs and alerts, on a real Redis and
SQLite/PostgreSQL, through the service's consumer (issue 16): a consultation held for a
School of the Ministry team counts for that month, and a month without one raises the
alert; a mentoring pair moves young_supported_share and mentoring_orgs_share; prevention
attendance and a prevention step move burnout_prevention_share; a support plan moves
support_plans_share and its overdue action is an alert; expert roles, contests, needs
answers and the practices' course reach their KPIs; a removed record's facts end; and a
redelivered or replayed run writes the same rows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import uuid4

from sqlalchemy import select

from iomflow.monitoring import alerts, domain, repository
from iomflow.shared.contracts import (
    ActivityAttended,
    ActivityHeld,
    ContestEntryUpserted,
    ContestUpserted,
    Contract,
    Event,
    ExpertKind,
    ExpertRoleUpserted,
    MentoringPairUpserted,
    NeedsRecorded,
    OrganizationUpserted,
    PlanAction,
    PracticeReplication,
    PracticeUpserted,
    RecordRemoved,
    RouteDrafted,
    RouteStep,
    SchoolTeamUpserted,
    StepCompleted,
    Streams,
    SupportPlanUpdated,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.service import Runtime

# tests/ is on sys.path: the service's runtime, driven by the test, and one batch through it.
from monitoring.test_handlers_batch import consume, runtime  # noqa: F401

CATALOGUE = domain.load_catalogue(
    Path(str(resources.files("iomflow.monitoring").joinpath("data/kpis.json")))
)
REGISTERED = datetime(2025, 9, 1, tzinfo=UTC)
LATER = datetime(2026, 8, 1, tzinfo=UTC)
O1: dict[str, Any] = {"organization_id": "o-1", "municipality_id": "m-1"}
"""Where most records of these tests are: school o-1 of municipality m-1."""


def ev(type_: str, payload: Contract, when: datetime = REGISTERED) -> Event[Any]:
    made = new_event(type_, payload, source="test", subject=type_)
    return made.model_copy(update={"occurred_at": when})


def registry() -> list[Event[Any]]:
    orgs = [
        OrganizationUpserted(
            organization_id=o,
            municipality_id="m-1",
            name=o,
            kind="school",  # type: ignore[arg-type]
            low_results=o != "o-3",
            projects=["school_of_ministry"],  # type: ignore[list-item]
        )
        for o in ("o-1", "o-2", "o-3")
    ]
    teachers = [
        TeacherUpserted(
            teacher_id=f"t-{n}",
            **O1,
            position="учитель",
            audience="general",  # type: ignore[arg-type]
            age_band="25-34",
            experience_band="<3",
            young=n <= 2,
        )
        for n in range(1, 5)
    ]
    teams = [
        SchoolTeamUpserted(
            team_id=f"team-{n}",
            organization_id=f"o-{n}",
            municipality_id="m-1",
            members=["t-1"],
            methodists=["meth-1", f"meth-{n + 1}"],
        )
        for n in (1, 2)
    ]
    return [
        *(ev("registry.organization.upserted", o) for o in orgs),
        *(ev("registry.teacher.upserted", t) for t in teachers),
        *(ev("registry.school_team.upserted", t) for t in teams),
    ]


async def load(runtime: Runtime) -> domain.Facts:  # noqa: F811
    async with runtime.sessions() as session:
        return await repository.load(session)


def kpi(facts: domain.Facts, code: str, on: date) -> dict[str, Any]:
    return next(r for r in domain.evaluate(CATALOGUE, facts, on)[None] if r["code"] == code)


def held(aid: str, on: date, **fields: Any) -> Event[Any]:
    base: dict[str, Any] = {
        "activity_id": aid,
        "kind": "consultation",
        "title": "Консультация",
        "level": "regional",
        "organiser_id": "cnppm",
        "format": "distance",
        "held_on": on,
        "attendees": 0,
    }
    return ev("routes.activity.held", ActivityHeld(**{**base, **fields}), LATER)


def attended(aid: str, teacher: str, on: date, themes: list[str]) -> Event[Any]:
    payload = ActivityAttended(
        attendance_id=f"{aid}:{teacher}",
        activity_id=aid,
        teacher_id=teacher,
        **O1,
        kind="seminar",
        level="regional",
        held_on=on,
        themes=themes,  # type: ignore[arg-type]
    )
    return ev("routes.activity.attended", payload, LATER)


async def test_a_consultation_counts_for_its_month_and_a_month_without_one_is_an_alert(
    runtime: Runtime,  # noqa: F811
) -> None:
    await consume(runtime, Streams.REGISTRY, registry())
    await consume(
        runtime,
        Streams.ROUTES,
        [
            held("c-1", date(2026, 5, 12), team_id="team-1", project="school_of_ministry"),
            held("c-2", date(2026, 6, 3), team_id="team-1"),
            held("c-3", date(2026, 6, 20), level="school", team_id="team-2"),
            held("w-1", date(2026, 6, 21), kind="webinar", team_id="team-2"),
            held("s-1", date(2026, 7, 1), kind="seminar", level="municipal", municipality_id="m-1"),
        ],
    )
    facts = await load(runtime)
    may = kpi(facts, "school_of_ministry_consultations", date(2026, 5, 31))
    assert (may["value"], may["numerator"], may["population"]) == (50.0, 1, 2)
    assert kpi(facts, "school_of_ministry_consultations", date(2026, 6, 30))["value"] == 100.0
    assert kpi(facts, "school_of_ministry_methodists", date(2026, 6, 30))["value"] == 3.0
    # four regional events a year (roadmap 34): the webinar only so far — consultations are
    # support, not its events, and the municipal seminar is not regional
    regional = kpi(facts, "regional_activities", date(2026, 7, 31))
    assert regional["value"] == 1.0

    # June 2: team-2 had no consultation in May (team-1 had): an alert, until one is held
    june = alerts.teams_without_consultation(facts, datetime(2026, 6, 2, 9, tzinfo=UTC))
    assert [a.subject for a in june] == ["team-2"]
    later = alerts.teams_without_consultation(facts, datetime(2026, 6, 25, 9, tzinfo=UTC))
    assert later == []
    # August: neither team had one in July
    august = alerts.teams_without_consultation(facts, datetime(2026, 8, 3, 9, tzinfo=UTC))
    assert sorted(a.subject for a in august) == ["team-1", "team-2"]

    # a team removed: no longer counted, no longer alerted
    await consume(
        runtime,
        Streams.REGISTRY,
        [ev("registry.school_team.removed", RecordRemoved(record_id="team-2"), LATER)],
    )
    facts = await load(runtime)
    august = alerts.teams_without_consultation(facts, datetime(2026, 8, 3, 9, tzinfo=UTC))
    assert [a.subject for a in august] == ["team-1"]
    assert kpi(facts, "school_of_ministry_methodists", date(2026, 8, 31))["value"] == 2.0


async def test_pairs_prevention_and_plans_move_their_kpis(runtime: Runtime) -> None:  # noqa: F811
    await consume(runtime, Streams.REGISTRY, registry())
    on = date(2026, 9, 30)
    facts = await load(runtime)
    assert kpi(facts, "young_supported_share", on)["value"] == 0.0
    assert kpi(facts, "mentoring_orgs_share", on)["value"] == 0.0

    pair = MentoringPairUpserted(
        pair_id="p-1",
        **O1,
        mentor_id="mentor-1",
        mentee_id="t-1",
        starts_on=date(2026, 2, 1),
        ends_on=date(2026, 12, 31),
    )
    peers = pair.model_copy(update={"pair_id": "p-2", "mentee_id": "t-2", "kind": "peer"})
    await consume(
        runtime,
        Streams.REGISTRY,
        [ev("registry.mentoring_pair.upserted", p, LATER) for p in (pair, peers)],
    )
    facts = await load(runtime)
    assert kpi(facts, "young_supported_share", on)["value"] == 50.0  # t-1 of t-1, t-2
    assert kpi(facts, "young_supported_share", date(2026, 1, 15))["value"] == 0.0
    assert kpi(facts, "mentoring_orgs_share", on)["value"] == 33.3  # o-1 of three

    # prevention: a seminar on burnout prevention attended, a prevention step done
    step = RouteStep(
        step_id="s9",
        competency="wellbeing",
        kind="community",
        hours=4,
        reason="Высокий уровень выгорания",
        purpose="burnout_prevention",
    )
    drafted = RouteDrafted(
        route_id="r-3",
        diagnosis_id="d-3",
        teacher_id="t-3",
        **O1,
        steps=[step],
        total_hours=4,
    )
    done = StepCompleted(
        route_id="r-3",
        teacher_id="t-3",
        municipality_id="m-1",
        step_id="s9",
        kind="community",
        competency="wellbeing",
        completed_by="attendance",
        activity_id="a-9",
        completed_on=date(2026, 4, 2),
    )
    plan = SupportPlanUpdated(
        plan_id="plan-1",
        **O1,
        methodist_id="meth-1",
        starts_on=date(2026, 3, 1),
        actions=[
            PlanAction(
                action_id="a1",
                kind="internship",
                title="Стажировка управленческой команды",
                due_on=date(2026, 5, 1),
                responsible_id="meth-1",
            ),
            PlanAction(
                action_id="a2",
                kind="consultation",
                title="Консультация",
                due_on=date(2026, 4, 1),
                done_on=date(2026, 3, 20),
                responsible_id="meth-1",
            ),
        ],
    )
    routes = [
        attended("a-7", "t-1", date(2026, 3, 5), ["burnout_prevention"]),
        attended("a-8", "t-2", date(2026, 3, 5), ["digital_environment"]),
        ev("routes.route.drafted", drafted, LATER),
        ev("routes.step.completed", done, LATER),
        ev("routes.plan.updated", plan, LATER),
    ]
    await consume(runtime, Streams.ROUTES, routes)
    facts = await load(runtime)
    assert kpi(facts, "burnout_prevention_share", on)["value"] == 50.0  # t-1, t-3 of four
    assert kpi(facts, "support_plans_share", on)["value"] == 50.0  # o-1 of o-1, o-2
    overdue = alerts.plan_actions_overdue(facts, datetime(2026, 6, 1, tzinfo=UTC))
    assert [a.alert_id for a in overdue] == ["plan_action_overdue:plan-1:a1"]

    # published again (a re-post, a replay past the inbox): the same rows
    async with runtime.sessions() as session:
        before = sorted(map(tuple, await session.execute(select(repository.facts))))
    again = [e.model_copy(update={"event_id": uuid4()}) for e in routes]
    await consume(runtime, Streams.ROUTES, again)
    async with runtime.sessions() as session:
        after = sorted(map(tuple, await session.execute(select(repository.facts))))
    assert after == before

    # the action done, then the plan closed: no alert, no active plan
    a1 = plan.actions[0].model_copy(update={"done_on": date(2026, 5, 20)})
    done_plan = plan.model_copy(update={"actions": [a1, plan.actions[1]]})
    closed = done_plan.model_copy(update={"status": "closed"})
    await consume(runtime, Streams.ROUTES, [ev("routes.plan.updated", done_plan, LATER)])
    facts = await load(runtime)
    assert alerts.plan_actions_overdue(facts, datetime(2026, 6, 1, tzinfo=UTC)) == []
    await consume(
        runtime,
        Streams.ROUTES,
        [ev("routes.plan.updated", closed, datetime(2026, 10, 1, tzinfo=UTC))],
    )
    facts = await load(runtime)
    assert kpi(facts, "support_plans_share", date(2026, 10, 2))["value"] == 0.0
    assert kpi(facts, "support_plans_share", on)["value"] == 50.0  # as it was then

    # the pair removed in June: its organisation runs no program from then on
    await consume(
        runtime,
        Streams.REGISTRY,
        [
            ev(
                "registry.mentoring_pair.removed",
                RecordRemoved(record_id="p-1"),
                datetime(2026, 6, 1, tzinfo=UTC),
            )
        ],
    )
    facts = await load(runtime)
    assert kpi(facts, "mentoring_orgs_share", on)["value"] == 33.3  # p-2 is still o-1's
    assert kpi(facts, "young_supported_share", on)["value"] == 50.0  # it happened


def practice_of(practice_id: str, **fields: Any) -> PracticeUpserted:
    return PracticeUpserted(practice_id=practice_id, title="Практика", year=2026, **O1, **fields)


async def test_experts_contests_needs_and_practices_reach_their_kpis(
    runtime: Runtime,  # noqa: F811
) -> None:
    await consume(runtime, Streams.REGISTRY, registry())
    role = ExpertRoleUpserted(
        role_id="er-1",
        teacher_id="t-1",
        **O1,
        kind=ExpertKind.ATTESTATION,
        starts_on=date(2025, 10, 1),
        ends_on=date(2026, 2, 28),
    )
    jury = role.model_copy(
        update={"role_id": "er-2", "teacher_id": "t-2", "kind": ExpertKind.CONTEST_JURY}
    )
    contest = ContestUpserted(
        contest_id="k-1",
        title="Учитель года",
        level="regional",  # type: ignore[arg-type]
        year=2026,
        held_on=date(2026, 4, 10),
    )
    entry = ContestEntryUpserted(
        entry_id="e-1",
        contest_id="k-1",
        teacher_id="t-3",
        **O1,
        result="winner",
    )
    practice = practice_of(
        "pr-1",
        status="replicated",
        included_on=date(2026, 3, 1),
        replications=[
            PracticeReplication(organization_id="o-2", municipality_id="m-1", on=date(2026, 5, 5))
        ],
    )
    submitted = practice_of("pr-2", status="submitted")
    # the entry before its contest: it is dated by the contest all the same
    await consume(
        runtime,
        Streams.REGISTRY,
        [
            ev("registry.expert_role.upserted", role, LATER),
            ev("registry.expert_role.upserted", jury, LATER),
            ev("registry.contest_entry.upserted", entry, LATER),
            ev("registry.contest.upserted", contest, LATER),
            ev("registry.practice.upserted", practice, LATER),
            ev("registry.practice.upserted", submitted, LATER),
        ],
    )
    needs = NeedsRecorded(
        response_id="n-1",
        teacher_id="t-4",
        **O1,
        campaign_id="2026",
        answered_on=date(2026, 3, 3),
        competencies=["assessment"],
    )
    await consume(runtime, Streams.DIAGNOSTICS, [ev("diagnostics.needs.recorded", needs, LATER)])
    facts = await load(runtime)
    on = date(2026, 6, 30)
    experts = kpi(facts, "expert_involvement", on)
    assert experts["value"] == 2.0
    assert experts["breakdown"] == {"attestation": 1, "contest_jury": 1}
    assert kpi(facts, "contest_participants", on)["value"] == 1.0
    assert kpi(facts, "contest_participants", date(2026, 4, 1))["value"] == 0.0
    assert kpi(facts, "needs_surveyed_share", on)["value"] == 25.0
    assert kpi(facts, "practices_in_bank", on)["value"] == 1.0
    assert kpi(facts, "practices_in_bank", date(2026, 2, 1))["value"] == 0.0
    assert kpi(facts, "practices_replicated", on)["value"] == 1.0

    # the replication taken back and the jury role removed in March
    practice = practice.model_copy(update={"status": "included", "replications": []})
    await consume(
        runtime,
        Streams.REGISTRY,
        [
            ev("registry.practice.upserted", practice, LATER),
            ev(
                "registry.expert_role.removed",
                RecordRemoved(record_id="er-2"),
                datetime(2026, 3, 1, tzinfo=UTC),
            ),
        ],
    )
    facts = await load(runtime)
    assert kpi(facts, "practices_replicated", on)["value"] == 0.0
    assert kpi(facts, "practices_in_bank", on)["value"] == 1.0
    assert kpi(facts, "expert_involvement", date(2027, 6, 30))["value"] == 0.0
    assert kpi(facts, "expert_involvement", on)["value"] == 2.0  # both held one in 2026
