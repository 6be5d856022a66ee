"""Periods, tracked items and the facts derived when values are computed (issue 14):
a total past its deadline is judged at the deadline and raises no alert; a tracked row of
Appendix 1 takes its status from what was recorded; a tutor supports from the agreement;
a team is trained when each member is; an internship counts by its site's themes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from iomflow.monitoring import alerts, domain
from iomflow.monitoring.domain import Fact, Facts, Member
from iomflow.monitoring.repository import Rows

CATALOGUE = domain.load_catalogue(
    Path(__file__).resolve().parents[2]
    / "services/monitoring/src/iomflow/monitoring/data/kpis.json"
)
KPIS = {k.code: k for k in CATALOGUE.kpis}


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 12, tzinfo=UTC)


def teachers(n: int, **attrs: object) -> list[Member]:
    return [
        Member("teachers", f"t-{i}", "m1", "o1", {"audience": "general", **attrs}, day(2023, 1, 1))
        for i in range(n)
    ]


def trained(tid: str, on: datetime, themes: list[str], **more: object) -> Fact:
    return Fact("trained", tid, on, {"themes": themes, "from_route": False, **more})


def row(evaluated: dict[str | None, list[dict]], code: str) -> dict:
    return next(v for v in evaluated[None] if v["code"] == code)


def test_a_total_past_its_deadline_is_judged_at_the_deadline() -> None:
    # digital_env_share: 2 % by 31.12.2024. 1 of 10 then (10 %: met), 0 more since.
    facts = Facts(teachers(10), [trained("t-0", day(2024, 6, 1), ["digital_environment"])])
    v = row(domain.evaluate(CATALOGUE, facts, date(2026, 12, 7)), "digital_env_share")
    assert v["period"] == {"label": "на 31.12.2024, срок прошёл", "passed": True}
    assert v["at_deadline"] == {"on": "2024-12-31", "value": 10.0, "met": True}
    assert (v["status"], v["met"], v["forecast"]) == ("met", True, None)
    # a share missed then stays missed then, and raises no alert now
    facts = Facts(teachers(10), [trained("t-0", day(2025, 6, 1), ["digital_environment"])])
    evaluated = domain.evaluate(CATALOGUE, facts, date(2026, 12, 7))
    v = row(evaluated, "digital_env_share")
    assert (v["at_deadline"]["value"], v["status"], v["value"]) == (0.0, "missed", 10.0)
    raised = alerts.kpis_off_path(evaluated, {})
    assert not any(a.subject == "digital_env_share" for a in raised)
    # before the deadline: the deadline named, the status is about the path to it
    v = row(domain.evaluate(CATALOGUE, facts, date(2024, 6, 30)), "digital_env_share")
    assert v["period"] == {"label": "к 31.12.2024", "passed": False}
    assert v["at_deadline"] is None


def test_a_yearly_total_and_a_current_value_name_their_period() -> None:
    facts = Facts(teachers(4), [])
    evaluated = domain.evaluate(CATALOGUE, facts, date(2026, 12, 7))
    assert row(evaluated, "diagnosed_share")["period"]["label"] == "за 2026 год"
    # a limit «на дату» stays in force after 31.12.2024: today's value, judged today
    load = row(evaluated, "methodist_load_max")
    assert load["period"] == {"label": "на 07.12.2026", "passed": False}
    assert load["at_deadline"] == {"on": "2024-12-31", "value": 0.0, "met": True}


def test_a_tracked_item_takes_the_status_recorded() -> None:
    on = date(2026, 12, 7)
    recorded = {
        ("roadmap_implemented", "once"): {
            "status": "done",
            "evidence": "Распоряжение министерства № 55-мр от 20.01.2025",
            "recorded_by": "operator",
            "recorded_at": datetime(2026, 12, 1, tzinfo=UTC),
        },
        ("monitoring_system", "2026"): {
            "status": "in_progress",
            "evidence": "iomflow, показатели на 07.12.2026",
            "recorded_by": "operator",
            "recorded_at": datetime(2026, 12, 7, tzinfo=UTC),
        },
        ("monitoring_system", "2024"): {
            "status": "in_progress",
            "evidence": "начат",
            "recorded_by": "operator",
            "recorded_at": datetime(2024, 6, 1, tzinfo=UTC),
        },
    }
    items = {t["code"]: t for t in domain.tracked(CATALOGUE, recorded, on)}
    (once,) = items["roadmap_implemented"]["periods"]
    assert (once["status"], once["label"], once["recorded_words"]) == (
        "met",
        "к 31.12.2024",
        "выполнено",
    )
    years = {p["period"]: p for p in items["monitoring_system"]["periods"]}
    assert list(years) == ["2023", "2024", "2025", "2026"]
    assert years["2023"]["status"] == "no_data"  # nothing recorded is not a failure
    assert years["2024"]["status"] == "missed"  # still «in progress» after its year
    assert years["2026"]["status"] == "on_track"


def _rows(facts: list[tuple], teams: dict[str, set[str]], sites: dict[str, list[str]]) -> Rows:
    members = [
        ("teachers", f"t-{i}", "m1", "o1", '{"audience": "general"}', day(2023, 1, 1), None)
        for i in range(4)
    ] + [("organizations", "o1", "m1", "o1", "{}", day(2023, 1, 1), None)]
    return Rows(members, facts, set(), {"p-man": (False, ["management"], "pk", None)}, teams, sites)


def _kinds(built: Facts, kind: str) -> list[Fact]:
    return list(built.by_kind[kind])


def test_derived_facts_tutor_team_and_internship() -> None:
    f = [
        # r-1's tutor: drafted on 1 March, agreed on 10 March; r-2's never agreed
        ("tutor_planned", "t-0", day(2026, 3, 1), None, '{"tutor_ids": ["tu"]}', "r-1"),
        ("agreed", "t-0", day(2026, 3, 10), None, "{}", "r-1"),
        ("tutor_planned", "t-1", day(2026, 3, 1), None, '{"tutor_ids": ["tu"]}', "r-2"),
        # o1's team is t-2 and t-3: trained on 1 April and 1 May
        ("trained", "t-2", day(2026, 4, 1), None, '{"program_id": "p-man"}', None),
        ("trained", "t-3", day(2026, 5, 1), None, '{"program_id": "p-man"}', None),
        # an internship at a site teaching functional literacy
        ("trained", "t-1", day(2026, 6, 1), None, '{"site_id": "s-1"}', None),
        # a route drafted today from a diagnosis of results taken in February
        ("diagnosed", "t-1", day(2026, 2, 1), None, "{}", "d-1"),
        ("route", "t-1", day(2026, 12, 7), None, '{"diagnosis_id": "d-1"}', "r-3"),
    ]
    built = _rows(f, {"o1": {"t-2", "t-3"}}, {"s-1": ["functional_literacy"]}).build()
    (tutor,) = _kinds(built, "tutor")
    assert (tutor.member_id, tutor.start) == ("t-0", day(2026, 3, 10))
    (team,) = _kinds(built, "team_trained")
    assert (team.member_id, team.start) == ("o1", day(2026, 5, 1))  # when the last one was
    internship = next(x for x in _kinds(built, "trained") if x.attrs.get("site_id"))
    assert internship.attrs["themes"] == ["functional_literacy"]
    (route,) = _kinds(built, "route")
    assert route.start == day(2026, 2, 1)
    # one member not trained: no team trained
    built = _rows(f[:4], {"o1": {"t-2", "t-3"}}, {}).build()
    assert _kinds(built, "team_trained") == []
