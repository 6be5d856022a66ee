"""Issue 16's acceptance: each piece of the support outside a route, on a real Redis and a real
database (SQLite and PostgreSQL), acted through the services' HTTP APIs and the inbound
stream, reaches monitoring's KPIs (and alerts) by the amount it must.

One suite per database serves the whole module (``suite``); each test measures the KPIs it
moves before it acts, on teachers and organisations no other test touches, and asserts the
move exactly, so that a fact missed or counted twice fails it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from e2e.support import Api, Region, activity, previous_month, shared_suite, today, token
from iomflow.cli.demo import CAMPAIGN_ID
from iomflow.cli.launcher import Suite
from iomflow.shared.contracts import NeedsSubmitted, Streams, new_event

NO_PROGRAM = ("inclusive_education", "updated_fgos")
"""Competencies of every general-school teacher that may have no program in the region: a
deficit in one of them is met by methodist consultations."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Suite]:
    yield from shared_suite(request, tmp_path_factory)


@pytest.fixture(scope="module")
def api(suite: Suite) -> Iterator[Api]:
    client = Api(suite)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def nothing_dead_lettered(api: Api) -> Iterator[None]:
    """Every event the test caused was taken: none of the suite's dead-letter streams grew
    (a new type a consumer neither applies nor ignores would land there)."""
    yield
    letters = {
        name: api.publisher.xlen(name)
        for name in (Streams.dlq(stream) for stream in Streams.all())
        if api.publisher.exists(name)
    }
    assert not any(letters.values()), letters


@pytest.fixture(scope="module")
def region(suite: Suite) -> Region:
    """Who the module's tests took, for this suite."""
    return Region()


def consultation_code(region: Region) -> str:
    """A competency no program of the region addresses and no practice of it covers."""
    covered = region.program_competencies() | {
        c for p in region.rows["practices"] for c in p.get("competencies", [])
    }
    free = [code for code in NO_PROGRAM if code not in covered]
    assert free, f"every one of {NO_PROGRAM} has a program or a practice in the region"
    return free[0]


# --- 1. activities --------------------------------------------------------------------------


def test_regional_events_count_and_attendance_completes_a_route_step(
    api: Api, region: Region
) -> None:
    managed = {m["organization_id"] for m in region.rows["management_teams"]}
    teacher = region.teacher(lambda t: not region.young(t) and t["organization_id"] in managed)[
        "teacher_id"
    ]
    code = consultation_code(region)
    api.diagnose(teacher, low=(code,))
    route = api.route_of(teacher)
    step = next(
        (s for s in route["steps"] if s["kind"] == "consultation" and s["competency"] == code),
        None,
    )
    assert step is not None, route["steps"]
    assert step.get("status") in (None, "planned"), step
    api.agree(route, region)

    before = api.kpi("regional_activities")
    held = api.post(
        "routes",
        "/v1/activities",
        activity(
            "consultation",
            "Консультация по инклюзивному образованию",
            [teacher],
            competencies=[code],
        ),
        201,
    )
    assert held["attendees"] == 1, held
    assert {"route_id": route["route_id"], "step_id": step["step_id"], "teacher_id": teacher} in [
        {k: c[k] for k in ("route_id", "step_id", "teacher_id")} for c in held["completed_steps"]
    ], held
    # Re-posting the same activity adds nobody; a municipal seminar is no regional event, nor
    # is a consultation (support, not an event of roadmap 34); a regional webinar is one.
    again = api.post(
        "routes",
        "/v1/activities",
        {
            **activity("consultation", "x", [teacher], competencies=[code]),
            "activity_id": held["activity_id"],
            "title": held["title"],
        },
        (200, 201),
    )
    assert again["attendees"] == 1, again
    municipal = region.teacher()
    api.post(
        "routes",
        "/v1/activities",
        activity(
            "seminar",
            "Муниципальный семинар",
            [municipal["teacher_id"]],
            level="municipal",
            organiser_id=municipal["municipality_id"],
            municipality_id=municipal["municipality_id"],
        ),
        201,
    )
    api.post(
        "routes",
        "/v1/activities",
        activity("webinar", "Региональный вебинар о наставничестве", [municipal["teacher_id"]]),
        201,
    )
    listed = api.get("routes", "/v1/activities", level="regional", limit=1000)
    assert held["activity_id"] in {a["activity_id"] for a in listed["items"]}

    after = api.moved("regional_activities", before, numerator=1, population=None)
    assert after["value"] == before["value"] + 1, (before, after)

    (done,) = [
        s
        for s in api.get("routes", f"/v1/routes/{route['route_id']}")["steps"]
        if s["step_id"] == step["step_id"]
    ]
    assert done["status"] == "done", done


# --- 2. the School of the Ministry's teams ---------------------------------------------------


def test_a_school_of_the_ministry_team_counts_for_the_month_of_its_consultation(
    api: Api, region: Region
) -> None:
    # A school of the project without a team yet, or else a school that joins it.
    free = [
        o
        for o in region.rows["organizations"]
        if o["kind"] == "school"
        and o["organization_id"] not in region.taken
        and len(region.staff_of(o["organization_id"])) >= 2
    ]
    assert free, "every school of the region has a team"
    chosen = next((o for o in free if "school_of_ministry" in o["projects"]), free[0])
    org = region.pick(lambda o: o is chosen, "organizations")
    members = region.staff_of(org["organization_id"])[:3]
    region.taken.update(members)
    methodist = region.rows["methodists"][0]["methodist_id"]
    team_id = token("team-e2e")
    before = api.kpi("school_of_ministry_consultations")

    # The team as a register's history is loaded: held since the month before last, so the
    # last full month is one it went without a consultation.
    since = previous_month(previous_month(today())).replace(day=1)
    team = {
        "team_id": team_id,
        "organization_id": org["organization_id"],
        "municipality_id": org["municipality_id"],
        "project": "school_of_ministry",
        "members": members,
        "methodists": [methodist],
    }
    loaded = api.call(
        "POST",
        "registries",
        "/v1/load",
        200,
        json={"school_teams": [team]},
        params={"since": since.isoformat()},
    )
    assert loaded["received"]["school_teams"] == 1, loaded
    # No consultation last month nor since: one more team, none more counted, an alert.
    api.moved("school_of_ministry_consultations", before, population=1)
    raised = api.wait_alert("team_without_consultation", team_id)
    assert raised["municipality_id"] in (None, org["municipality_id"]), raised

    held = api.post(
        "routes",
        "/v1/activities",
        activity(
            "consultation",
            "Консультация школьной команды проекта «Школа Минпросвещения России»",
            members[:2],
            target="school_team",
            team_id=team_id,
            project="school_of_ministry",
            organization_id=org["organization_id"],
            municipality_id=org["municipality_id"],
        ),
        201,
    )
    assert held["attendees"] == 2, held
    after = api.moved("school_of_ministry_consultations", before, numerator=1, population=1)
    assert after["value"] is not None and after["value"] > 0, after
    api.wait_alert("team_without_consultation", team_id, open_=False)

    month = today().strftime("%Y-%m")
    counts = api.get("routes", f"/v1/teams/{team_id}/consultations", year=today().year)
    assert month_count(counts, month) == 1, counts


def month_count(answer: Any, month: str) -> int:
    """A month's consultations in ``GET /v1/teams/{id}/consultations``: a list (or a page, or
    a document with ``months``) of rows naming the month (``YYYY-MM`` or its number)."""
    rows = answer
    if isinstance(answer, dict):
        rows = answer.get("items", answer.get("months", answer))
    if isinstance(rows, dict):
        return int(rows.get(month, rows.get(str(int(month[5:])), 0)))
    for row in rows:
        named = str(row.get("month"))
        if named in (month, str(int(month[5:]))):
            return int(row.get("consultations", row.get("count", 0)))
    return 0


# --- 3. the needs survey ---------------------------------------------------------------------


def test_needs_answers_by_api_and_stream_reach_needs_surveyed_share_and_analytics(
    api: Api, region: Region
) -> None:
    by_http, by_stream = region.teacher()["teacher_id"], region.teacher()["teacher_id"]
    code = "career_guidance"
    before = api.kpi("needs_surveyed_share")
    asked_before = needs_count(api, code)

    api.post(
        "diagnostics",
        "/v1/needs",
        {
            "teacher_id": by_http,
            "campaign_id": CAMPAIGN_ID,
            "external_id": f"needs-{by_http}",
            "competencies": [code, "digital"],
            "themes": ["functional_literacy"],
            "formats": ["course", "mentoring"],
        },
        201,
    )
    answer = NeedsSubmitted(
        teacher_id=by_stream,
        campaign_id=CAMPAIGN_ID,
        external_id=f"needs-{by_stream}",
        competencies=[code],
        formats=["webinar"],
    )
    api.xadd(
        [
            new_event(
                "diagnostics.needs.submitted", answer, source="survey-platform", subject=by_stream
            )
        ]
    )

    after = api.moved("needs_surveyed_share", before, numerator=2)
    assert after["value"] > (before["value"] or 0), (before, after)
    listed = api.get("diagnostics", "/v1/needs", campaign_id=CAMPAIGN_ID, limit=1000)
    assert {by_http, by_stream} <= {n["teacher_id"] for n in listed["items"]}, listed
    answered, asking = asked_before
    assert needs_count(api, code) == (answered + 2, asking + 2)


def needs_count(api: Api, code: str) -> tuple[int, int]:
    """Teachers who answered, and who ask for ``code``, in the needs section of
    ``GET /v1/analytics`` (beside the program gap)."""
    needs = api.get("diagnostics", "/v1/analytics", campaign_id=CAMPAIGN_ID)["needs"]
    asking = next((c["asking"] for c in needs["competencies"] if c["code"] == code), 0)
    return needs["answered"], asking


# --- 4. burnout ------------------------------------------------------------------------------


def test_high_burnout_adds_a_prevention_step_and_prevention_attendance_moves_the_share(
    api: Api, region: Region
) -> None:
    strained, attendee = region.teacher()["teacher_id"], region.teacher()["teacher_id"]
    high_before = api.settled_kpi("burnout_high_share")
    analytics_before = burnout_high(api, missing_ok=True)

    api.diagnose(strained, low=("communication",), burnout=88.0)
    route = api.route_of(strained)
    prevention = [s for s in route["steps"] if s.get("purpose") == "burnout_prevention"]
    assert len(prevention) == 1, route["steps"]
    assert prevention[0]["kind"] in ("community", "consultation"), prevention
    assert "выгоран" in prevention[0]["reason"], prevention

    api.moved("burnout_high_share", high_before, numerator=1, population=1)

    before = api.kpi("burnout_prevention_share")
    api.post(
        "routes",
        "/v1/activities",
        activity(
            "seminar",
            "Профилактика профессионального выгорания педагогов",
            [strained, attendee],
            themes=["burnout_prevention"],
        ),
        201,
    )
    api.moved("burnout_prevention_share", before, numerator=2)

    assert analytics_before is not None, "diagnostics has no GET /v1/analytics/burnout"
    assert burnout_high(api) == analytics_before + 1


def burnout_high(api: Api, missing_ok: bool = False) -> int | None:
    """Teachers with a high burnout level in the region, as ``/v1/analytics/burnout`` has it
    (``missing_ok``: None when diagnostics has no such page)."""
    response = api.client.get(
        api.url("diagnostics", "/v1/analytics/burnout"), params={"campaign_id": CAMPAIGN_ID}
    )
    if missing_ok and response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    answer = response.json()
    region = answer.get("region", answer)
    levels = region.get("levels", region)
    return int(levels.get("high", 0))


# --- 5. mentoring pairs ----------------------------------------------------------------------


def test_mentoring_pairs_move_young_and_org_shares_and_drafting_adds_no_second_mentor(
    api: Api, region: Region
) -> None:
    mentoring = {m["organization_id"] for m in region.rows["mentors"]} | {
        p["organization_id"] for p in region.rows["mentoring_pairs"]
    }
    schools = [
        o
        for o in region.rows["organizations"]
        if o["kind"] == "school" and o["organization_id"] not in mentoring
    ]
    assert len(schools) >= 3, schools
    others = {o["organization_id"] for o in schools[2:]}
    manager = region.pick(lambda t: t["is_manager"] and t["organization_id"] in others)
    young_before = api.settled_kpi("young_supported_share")
    orgs_before = api.kpi("mentoring_orgs_share")
    # Two young teachers join their schools: one gets a mentor of the school's program.
    mentee_id, control_id = api.new_teachers(schools[:2])
    mentee = {
        "teacher_id": mentee_id,
        **{k: schools[0][k] for k in ("organization_id", "municipality_id")},
    }
    mentor = max(region.rows["mentors"], key=lambda m: m["capacity"])
    starts = (today() - timedelta(days=30)).isoformat()

    young_pair = token("pair-e2e")
    for pair, teacher, kind in (
        (young_pair, mentee, "young_teacher"),
        (token("pair-e2e"), manager, "management_team"),
    ):
        api.record(
            "mentoring_pairs",
            {
                "pair_id": pair,
                "organization_id": teacher["organization_id"],
                "municipality_id": teacher["municipality_id"],
                "mentor_id": mentor["mentor_id"],
                "mentee_id": teacher["teacher_id"],
                "kind": kind,
                "focus": "адаптация в профессии" if kind == "young_teacher" else "управление",
                "competencies": ["teaching_methods"],
                "starts_on": starts,
            },
        )
    api.moved("young_supported_share", young_before, numerator=1, population=2)
    api.moved("mentoring_orgs_share", orgs_before, numerator=2)

    # Both young teachers diagnosed: the one in a pair gets no second mentor from drafting,
    # the other one a mentoring step as ever (and is supported by the route).
    for teacher_id in (mentee_id, control_id):
        api.diagnose(teacher_id, low=("communication",))
    paired = api.route_of(mentee_id)
    control = api.route_of(control_id)
    assert [s for s in control["steps"] if s["kind"] == "mentoring"], control["steps"]
    assert not [s for s in paired["steps"] if s["kind"] == "mentoring"], paired["steps"]
    assert any(young_pair in s["reason"] for s in paired["steps"]), paired["steps"]
    api.moved("young_supported_share", young_before, numerator=2, population=2)  # the mentee once


TITLE = "Тьюторское сопровождение обучающихся с ОВЗ в общеобразовательном классе"


# --- 6. effective practices ------------------------------------------------------------------


def practice_expert(api: Api, region: Region) -> str:
    """A teacher with a practice_review expert role in force (the region's, or one recorded
    now): only such an expert may review a practice."""
    on = today().isoformat()
    for role in region.rows["expert_roles"]:
        if (
            role["kind"] == "practice_review"
            and role["starts_on"] <= on
            and (role.get("ends_on") is None or role["ends_on"] >= on)
        ):
            return str(role["teacher_id"])
    teacher = region.teacher()
    api.record(
        "expert_roles",
        {
            "role_id": token("role-e2e"),
            "teacher_id": teacher["teacher_id"],
            "organization_id": teacher["organization_id"],
            "municipality_id": teacher["municipality_id"],
            "kind": "practice_review",
            "body": "Экспертный совет банка эффективных практик",
            "starts_on": (today() - timedelta(days=5)).isoformat(),
        },
    )
    return str(teacher["teacher_id"])


def test_a_practice_moves_through_review_into_the_bank_and_is_cited_by_drafting(
    api: Api, region: Region
) -> None:
    code = consultation_code(region)
    author = region.teacher()
    replicator = region.teacher(lambda t: t["organization_id"] != author["organization_id"])
    expert = practice_expert(api, region)
    bank_before = api.kpi("practices_in_bank")
    replicated_before = api.kpi("practices_replicated")

    def submit(title: str) -> str:
        practice_id = token("prc-e2e")
        body = {
            "practice_id": practice_id,
            "title": title,
            "organization_id": author["organization_id"],
            "municipality_id": author["municipality_id"],
            "competencies": [code],
            "themes": [],
            "year": today().year,
            "author_id": author["teacher_id"],
        }
        submitted = api.post("registries", "/v1/practices", body, 201)
        assert submitted["status"] == "submitted", submitted
        return practice_id

    good = submit(TITLE)
    poor = submit("Практика без описания результатов")
    reviewed = api.post(
        "registries",
        f"/v1/practices/{good}/review",
        {"reviewed_by": expert, "verdict": "include", "review": "Результаты подтверждены"},
    )
    assert reviewed["status"] == "reviewed", reviewed
    rejected = api.post(
        "registries",
        f"/v1/practices/{poor}/review",
        {"reviewed_by": expert, "verdict": "reject", "review": "Нет данных о результатах"},
    )
    assert rejected["status"] == "rejected", rejected
    included = api.post("registries", f"/v1/practices/{good}/include", {})
    assert included["status"] == "included", included
    api.moved("practices_in_bank", bank_before, numerator=1, population=None)

    replication = api.post(
        "registries",
        f"/v1/practices/{good}/replications",
        {
            "organization_id": replicator["organization_id"],
            "by": replicator["teacher_id"],
            "on": today().isoformat(),
        },
    )
    assert replication["status"] == "replicated", replication
    api.moved("practices_replicated", replicated_before, numerator=1, population=None)
    api.moved(
        "practices_in_bank", bank_before, numerator=1, population=None
    )  # replicated: still in the bank
    bank = api.get("registries", "/v1/practices/bank", competency=code, limit=100)
    assert [p["practice_id"] for p in bank["items"]] == [good], bank

    teacher = region.teacher(lambda t: not region.young(t))["teacher_id"]
    api.diagnose(teacher, low=(code,))
    route = api.route_of(teacher)
    cited = [s for s in route["steps"] if s["kind"] == "consultation" and s["competency"] == code]
    assert cited and cited[0].get("practice_id") == good, route["steps"]
    assert TITLE in cited[0]["reason"], cited


# --- 7. expert activity and contests ---------------------------------------------------------


def test_expert_roles_and_contest_entries_count_distinct_teachers(api: Api, region: Region) -> None:
    first, second = (region.teacher(lambda t: not t["expert"]) for _ in range(2))
    entrants = [region.teacher(), region.teacher()]
    experts_before = api.kpi("expert_involvement")
    contests_before = api.kpi("contest_participants")
    starts = (today() - timedelta(days=10)).isoformat()

    for teacher, kind, body in (
        (first, "attestation", "Аттестационная комиссия министерства"),
        (first, "contest_jury", "Жюри конкурса «Учитель года»"),  # the same teacher again
        (second, "program_review", "Экспертный совет по программам ДПО"),
    ):
        api.record(
            "expert_roles",
            {
                "role_id": token("role-e2e"),
                "teacher_id": teacher["teacher_id"],
                "organization_id": teacher["organization_id"],
                "municipality_id": teacher["municipality_id"],
                "kind": kind,
                "body": body,
                "starts_on": starts,
            },
        )
    api.moved("expert_involvement", experts_before, numerator=2, population=None)

    contest_id = token("contest-e2e")
    api.record(
        "contests",
        {
            "contest_id": contest_id,
            "title": "Региональный конкурс «Учитель года»",
            "level": "regional",
            "year": today().year,
            "held_on": today().isoformat(),
        },
    )
    for teacher, result in zip(entrants, ("participant", "prize_winner"), strict=True):
        api.record(
            "contest_entries",
            {
                "entry_id": token("entry-e2e"),
                "contest_id": contest_id,
                "teacher_id": teacher["teacher_id"],
                "organization_id": teacher["organization_id"],
                "municipality_id": teacher["municipality_id"],
                "result": result,
            },
        )
    api.moved("contest_participants", contests_before, numerator=2, population=None)


# --- 8. support plans of low-results schools -------------------------------------------------


def test_a_support_plan_counts_for_its_school_and_an_overdue_action_raises_an_alert(
    api: Api, region: Region
) -> None:
    flagged = region.pick(
        lambda o: o["low_results"] or o["unfavorable_conditions"], "organizations"
    )
    plain = region.pick(
        lambda o: not (o["low_results"] or o["unfavorable_conditions"]), "organizations"
    )
    methodist = region.rows["methodists"][0]["methodist_id"]
    on = today()

    def plan(organization_id: str) -> dict[str, Any]:
        return {
            "organization_id": organization_id,
            "methodist_id": methodist,
            "starts_on": (on - timedelta(days=30)).isoformat(),
            "actions": [
                {
                    "kind": "activity",
                    "title": "Методический семинар для учителей школы",
                    "due_on": (on - timedelta(days=3)).isoformat(),
                    "responsible_id": methodist,
                },
                {
                    "kind": "internship",
                    "title": "Стажировка управленческой команды",
                    "due_on": (on + timedelta(days=60)).isoformat(),
                    "responsible_id": methodist,
                },
            ],
        }

    refused = api.post("routes", "/v1/plans", plan(plain["organization_id"]), 409)
    assert refused["detail"], refused

    before = api.kpi("support_plans_share")
    made = api.post("routes", "/v1/plans", plan(flagged["organization_id"]), 201)
    plan_id = made["plan_id"]
    overdue = next(a for a in made["actions"] if a["kind"] == "activity")
    api.moved("support_plans_share", before, numerator=1)
    api.wait_alert("plan_action_overdue", plan_id)

    done = api.post(
        "routes",
        f"/v1/plans/{plan_id}/actions/{overdue['action_id']}/done",
        {"done_on": on.isoformat()},
    )
    assert next(a for a in done["actions"] if a["action_id"] == overdue["action_id"])["done_on"]
    api.wait_alert("plan_action_overdue", plan_id, open_=False)

    closed = api.post("routes", f"/v1/plans/{plan_id}/close", {})
    assert closed["status"] == "closed", closed
    api.moved("support_plans_share", before)
