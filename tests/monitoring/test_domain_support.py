"""The KPIs and alerts of the support outside routes, pure (issue 16): a School of the
Ministry team's consultations counted per calendar month, regional activities a year,
burnout risk among the surveyed (lower is better), expert roles held in the year by kind,
prevention in forms other than courses, methodists named by teams; and the alerts of a
team left a month without a consultation, an overdue plan action, a rising burnout risk."""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from iomflow.monitoring import alerts, domain
from iomflow.monitoring.context import Context
from iomflow.monitoring.domain import Fact, Facts, Member
from iomflow.monitoring.settings import Settings
from iomflow.shared.contracts import AlertRaised

CATALOGUE = domain.load_catalogue(
    Path(str(resources.files("iomflow.monitoring").joinpath("data/kpis.json")))
)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def at(d: str) -> datetime:
    return datetime.fromisoformat(d).replace(tzinfo=UTC)


def teacher(tid: str, mun: str = "m1", **attrs: Any) -> Member:
    return Member("teachers", tid, mun, "o1", {"audience": "general", **attrs}, LONG_AGO)


def team(tid: str, mun: str = "m1", start: datetime = LONG_AGO, **attrs: Any) -> Member:
    attrs = {"project": "school_of_ministry", **attrs}
    return Member("school_teams", tid, mun, f"org-{tid}", attrs, start)


def row(facts: Facts, code: str, on: str, by: domain.GroupBy = "region") -> dict[str, Any]:
    found = domain.evaluate(CATALOGUE, facts, date.fromisoformat(on), by=by)
    return next(r for r in found[None] if r["code"] == code) if by == "region" else found  # type: ignore[return-value]


def value(facts: Facts, code: str, on: str) -> float | None:
    return row(facts, code, on)["value"]  # type: ignore[no-any-return]


def consultation(team_id: str, on: str) -> Fact:
    return Fact("team_activity", team_id, at(f"{on}T12:00"), {"kind": "consultation"})


def test_a_team_counts_in_the_month_of_its_consultation_only() -> None:
    facts = Facts(
        [team("a"), team("b"), team("c", project="other")],
        [
            consultation("a", "2026-06-10"),
            Fact("team_activity", "b", at("2026-06-12T12:00"), {"kind": "seminar"}),
        ],
    )
    june = row(facts, "school_of_ministry_consultations", "2026-06-30")
    assert (june["value"], june["numerator"], june["population"]) == (50.0, 1, 2)
    assert june["period"]["label"] == "за июнь 2026 года"
    assert june["status"] == "missed"  # the month is over, one team had none
    july = row(facts, "school_of_ministry_consultations", "2026-07-20")
    assert july["value"] == 0.0 and july["status"] == "at_risk"  # the path of the month
    assert value(facts, "school_of_ministry_consultations", "2026-06-05") == 0.0


def test_regional_activities_are_counted_in_their_year_for_the_region_only() -> None:
    def activity(aid: str, on: str, level: str, mun: str = "") -> tuple[Member, Fact]:
        attrs = {"level": level, "kind": "seminar"}
        start = at(f"{on}T12:00")
        return Member("activities", aid, mun, "", attrs, start), Fact(
            "activity_held", aid, start, attrs
        )

    made = [
        activity("a1", "2026-02-01", "regional"),
        activity("a2", "2026-03-01", "regional", "m1"),
        activity("a3", "2026-04-01", "regional"),
        activity("a4", "2026-05-01", "municipal", "m1"),
        activity("a5", "2025-11-01", "regional"),
    ]
    facts = Facts([teacher("t1"), *(m for m, _ in made)], [f for _, f in made])
    may = row(facts, "regional_activities", "2026-05-31")
    assert (may["value"], may["status"]) == (3.0, "on_track")
    assert row(facts, "regional_activities", "2026-12-31")["status"] == "missed"
    per = row(facts, "regional_activities", "2026-05-31", by="municipality")
    assert "" not in per  # a regional activity of no municipality makes no municipality
    m1 = next(r for r in per["m1"] if r["code"] == "regional_activities")  # type: ignore[index]
    assert (m1["value"], m1["status"]) == (1.0, "not_judged")


def test_burnout_risk_is_the_share_of_the_surveyed_and_should_decline() -> None:
    def surveyed(tid: str, on: str, level: str | None) -> Fact:
        return Fact("diagnosed", tid, at(f"{on}T12:00"), {"burnout": level, "deficits": 0})

    teachers = [teacher(f"t{n}") for n in range(6)]
    facts = Facts(
        teachers,
        [
            surveyed("t0", "2025-03-01", "high"),
            surveyed("t1", "2025-03-01", "low"),
            surveyed("t2", "2025-03-01", "moderate"),
            surveyed("t3", "2025-03-01", "low"),
            surveyed("t4", "2025-03-01", None),  # no burnout survey: not in the population
            surveyed("t0", "2026-03-01", "high"),
            surveyed("t1", "2026-03-01", "high"),
            surveyed("t2", "2026-03-01", "low"),
            surveyed("t3", "2026-03-01", "low"),
        ],
    )
    was = row(facts, "burnout_high_share", "2025-12-31")
    assert (was["value"], was["population"]) == (25.0, 4)
    now = row(facts, "burnout_high_share", "2026-12-31")
    assert now["value"] == 50.0 and now["met"] is False and now["status"] == "missed"
    assert now["forecast"] is None
    # the alert compares the waves (here, years): 25 % → 50 %, above the 5 points allowed

    def rising(points: float, surveyed: int) -> list[AlertRaised]:
        limits = alerts.Limits(burnout_rise_points=points, burnout_min_surveyed=surveyed)
        return alerts.burnout_risk_rising(facts, at("2026-12-31T00:00"), limits)

    raised = rising(5.0, 4)
    assert [a.kind for a in raised] == ["burnout_risk_rising"]
    assert raised[0].value == 50.0
    assert rising(30, 4) == []
    assert rising(5, 5) == []  # too few surveyed in a wave: no trend


def test_the_burnout_thresholds_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """5 points and 10 surveyed unless the environment says otherwise."""
    kept = Context.of(Settings(kpi_worker="thread")).limits
    assert (kept.burnout_rise_points, kept.burnout_min_surveyed) == (5.0, 10)
    monkeypatch.setenv("IOMFLOW_BURNOUT_RISE_POINTS", "7.5")
    monkeypatch.setenv("IOMFLOW_BURNOUT_MIN_SURVEYED", "40")
    limits = Context.of(Settings(kpi_worker="thread")).limits
    assert (limits.burnout_rise_points, limits.burnout_min_surveyed) == (7.5, 40)
    monkeypatch.setenv("IOMFLOW_BURNOUT_MIN_SURVEYED", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_expert_roles_count_teachers_who_held_one_in_the_year_by_kind() -> None:
    def role(tid: str, kind: str, start: str, end: str | None) -> Fact:
        return Fact(
            "expert", tid, at(f"{start}T00:00"), {"kind": kind}, at(f"{end}T00:00") if end else None
        )

    facts = Facts(
        [teacher(f"t{n}") for n in range(5)],
        [
            role("t0", "attestation", "2025-09-01", "2026-03-01"),  # held in 2026 till March
            role("t0", "contest_jury", "2026-04-01", None),
            role("t1", "attestation", "2024-01-01", "2025-06-01"),  # not in 2026
            role("t2", "program_review", "2026-02-01", None),
            role("t3", "program_review", "2026-05-01", "2026-04-01"),  # removed before it began
            Fact("expert", "t4", at("2025-01-01T00:00")),  # the register's flag
        ],
    )
    now = row(facts, "expert_involvement", "2026-12-31")
    assert now["value"] == 3.0  # t0, t2 and the flagged t4
    assert now["breakdown"] == {"attestation": 1, "contest_jury": 1, "program_review": 1}
    assert row(facts, "expert_involvement", "2025-12-31")["value"] == 3.0  # t0, t1, t4
    assert row(facts, "diagnosed_share", "2026-12-31")["breakdown"] is None


def test_prevention_counts_in_any_form_not_only_a_course() -> None:
    facts = Facts(
        [teacher(f"t{n}") for n in range(10)],
        [
            Fact("trained", "t0", at("2026-02-01T12:00"), {"themes": ["burnout_prevention"]}),
            Fact("attended", "t1", at("2026-03-01T12:00"), {"themes": ["burnout_prevention"]}),
            Fact("attended", "t2", at("2026-03-01T12:00"), {"themes": ["digital_environment"]}),
            Fact("step_done", "t3", at("2026-04-01T12:00"), {"purpose": "burnout_prevention"}),
            Fact("step_done", "t4", at("2026-04-01T12:00"), {"purpose": "deficit"}),
        ],
    )
    assert value(facts, "burnout_prevention_share", "2026-12-31") == 30.0


def test_the_project_s_methodists_are_the_distinct_ones_its_teams_name() -> None:
    def named(tid: str, project: str, methodists: list[str]) -> Fact:
        return Fact("school_team", tid, LONG_AGO, {"project": project, "methodists": methodists})

    facts = Facts(
        [team("a"), team("b"), team("c", project="other")],
        [
            named("a", "school_of_ministry", ["m1", "m2"]),
            named("b", "school_of_ministry", ["m2", "m3"]),
            named("c", "other", ["m9"]),
        ],
    )
    found = row(facts, "school_of_ministry_methodists", "2026-01-31")
    assert (found["value"], found["population"], found["status"]) == (3.0, 2, "missed")
    # The project's teams are the register's, not the organisations flagged with the project.
    teams = row(facts, "school_of_ministry_teams", "2026-01-31")
    assert (teams["value"], teams["numerator"], teams["status"]) == (2.0, 2, "missed")
    flagged = Facts(
        [team("a"), Member("organizations", "o9", "m1", "o9", {}, LONG_AGO)],
        [
            named("a", "school_of_ministry", ["m1"]),
            Fact("project", "o9", LONG_AGO, {"project": "school_of_ministry"}),
        ],
    )
    assert value(flagged, "school_of_ministry_teams", "2026-01-31") == 1.0


def test_support_plans_and_mentoring_pairs_count_while_they_are_active() -> None:
    orgs = [
        Member("organizations", o, "m1", o, {"at_risk": risky}, LONG_AGO)
        for o, risky in (("o1", True), ("o2", True), ("o3", False))
    ]
    facts = Facts(
        [*orgs, teacher("t1", young=True), teacher("t2", young=True)],
        [
            Fact("support_plan", "o1", at("2026-02-01T00:00"), {}, at("2026-09-01T00:00")),
            Fact("support_plan", "o3", at("2026-02-01T00:00"), {}),
            Fact("mentoring_org", "o2", at("2026-01-10T00:00"), {}, at("2026-06-01T00:00")),
            Fact("mentored", "t1", at("2026-01-10T00:00"), {}, at("2026-06-01T00:00")),
        ],
    )
    assert value(facts, "support_plans_share", "2026-05-01") == 50.0
    assert value(facts, "support_plans_share", "2026-10-01") == 0.0
    assert value(facts, "mentoring_orgs_share", "2026-05-01") == 33.3
    assert value(facts, "mentoring_orgs_share", "2026-07-01") == 0.0
    assert value(facts, "young_supported_share", "2026-07-01") == 50.0  # cumulative


def test_a_team_left_a_month_without_a_consultation_is_an_alert_until_one_is_held() -> None:
    teams = [team("a"), team("b"), team("late", start=at("2026-05-20T00:00"))]
    facts = Facts(teams, [consultation("a", "2026-05-10")])
    found = alerts.teams_without_consultation(facts, at("2026-06-03T09:00"))
    assert [a.alert_id for a in found] == ["team_without_consultation:b"]
    assert "май 2026" in found[0].message
    assert "организации org-b (b)" in found[0].message  # no name known: its id
    named = alerts.teams_without_consultation(
        facts, at("2026-06-03T09:00"), {"org-b": "МБОУ СОШ № 5"}
    )
    assert named[0].message.startswith("Школьная команда организации «МБОУ СОШ № 5» (b) ")
    facts = Facts(teams, [consultation("a", "2026-05-10"), consultation("b", "2026-06-02")])
    assert alerts.teams_without_consultation(facts, at("2026-06-03T09:00")) == []
    # One held today counts before its fact's noon: the check just after midnight.
    today = Facts(teams[:2], [consultation("a", "2026-05-10"), consultation("b", "2026-06-03")])
    assert alerts.teams_without_consultation(today, at("2026-06-03T00:30")) == []
    # July: May's consultation is no longer in the last full month (June) for a
    july = alerts.teams_without_consultation(facts, at("2026-07-01T09:00"))
    assert [a.subject for a in july] == ["a", "late"]


def test_an_action_past_due_and_not_done_is_an_alert() -> None:
    def action(aid: str, due: str, done: str | None, end: datetime | None = None) -> Fact:
        attrs = {
            "plan_id": "p1",
            "action_id": aid,
            "title": f"Мероприятие {aid}",
            "due_on": due,
            "done_on": done,
            "responsible_id": "meth-1",
            "municipality_id": "m1",
        }
        return Fact("plan_action", "o1", at("2026-01-10T00:00"), attrs, end)

    facts = Facts(
        [],
        [
            action("a1", "2026-03-01", None),
            action("a2", "2026-03-01", "2026-02-20"),
            action("a3", "2026-09-01", None),
        ],
    )
    found = alerts.plan_actions_overdue(facts, at("2026-04-01T00:00"))
    assert [a.alert_id for a in found] == ["plan_action_overdue:p1:a1"]
    assert found[0].municipality_id == "m1" and found[0].value == 31
    assert "(организация o1)" in found[0].message  # no name known: the id
    (named,) = alerts.plan_actions_overdue(facts, at("2026-04-01T00:00"), {"o1": "СОШ № 1"})
    assert "(организация «СОШ № 1», o1)" in named.message
    closed = Facts([], [action("a1", "2026-03-01", None, at("2026-03-15T00:00"))])
    assert alerts.plan_actions_overdue(closed, at("2026-04-01T00:00")) == []


def test_the_new_kpis_are_in_the_catalogue_with_their_sources() -> None:
    codes = {k.code: k for k in CATALOGUE.kpis}
    for code, target in {
        "regional_activities": 4,
        "school_of_ministry_consultations": 100,
        "school_of_ministry_methodists": 11,
        "school_of_ministry_teams": 16,
        "practices_replicated": 1,
        "support_plans_share": 100,
    }.items():
        assert codes[code].target == target, code
    assert "п. 34" in codes["regional_activities"].targets[0].source
    assert "п. 18" in codes["school_of_ministry_consultations"].targets[0].source
    assert codes["burnout_high_share"].comparison == "decline"
    for code in ("needs_surveyed_share", "practices_in_bank", "contest_participants"):
        assert codes[code].comparison == "growth", code
