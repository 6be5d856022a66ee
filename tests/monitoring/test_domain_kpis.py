"""Pure rules of monitoring: the KPI catalogue as data, dated members and facts, values as
of a date by level, status against the path to the target, the forecast."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from iomflow.monitoring import domain
from iomflow.monitoring.domain import Catalogue, Fact, Facts, Kpi, Member, Scope, load_catalogue

SHIPPED = Path(str(resources.files("iomflow.monitoring").joinpath("data/kpis.json")))
DOMAIN_TABLE = (
    "diagnosed_share route_share methodist_support_share federal_programs_share "
    "tutor_support_share management_teams_trained subject_training_share "
    "functional_literacy_share updated_fgos_share digital_env_share quality_assessment_share "
    "low_results_schools_share gifted_share career_guidance_share upbringing_share "
    "preschool_quality_share retraining_share young_supported_share mentoring_orgs_share "
    "methodist_load_max expert_involvement burnout_prevention_share "
    "personal_potential_orgs school_of_ministry_teams "
    # issue 16: the support outside routes
    "school_of_ministry_methodists school_of_ministry_consultations regional_activities "
    "needs_surveyed_share burnout_high_share practices_in_bank practices_replicated "
    "contest_participants support_plans_share"
).split()


def day(d: str) -> datetime:
    return datetime.fromisoformat(d).replace(tzinfo=UTC)


def teacher(
    tid: str, mun: str = "m1", org: str = "o1", start: str = "2023-01-01", **attrs: Any
) -> Member:
    return Member("teachers", tid, mun, org, {"audience": "general", **attrs}, day(start))


def kpi(**fields: Any) -> Kpi:
    base: dict[str, Any] = {
        "code": "k",
        "name": "Показатель",
        "unit": "%",
        "numerator": {"fact": "trained"},
        "comparison": ">=",
        "targets": [{"value": 10, "source": "прил. 1"}],
        "accumulation": "cumulative",
        "clause": "п. 1",
    }
    return Kpi.model_validate({**base, **fields})


@pytest.fixture(scope="module")
def shipped() -> Catalogue:
    return load_catalogue(SHIPPED)


def test_the_shipped_catalogue_has_every_row_of_the_kpi_table_and_the_other_seeds(
    shipped: Catalogue,
) -> None:
    assert [k.code for k in shipped.kpis] == DOMAIN_TABLE
    federal = next(k for k in shipped.kpis if k.code == "federal_programs_share")
    assert [t.value for t in federal.targets] == [9.5, 30]  # both sources kept
    assert all(t.source for k in shipped.kpis for t in k.targets)


def test_a_new_kpi_of_the_same_form_is_an_entry_in_the_file(tmp_path: Path) -> None:
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    data["kpis"].append(
        {
            "code": "communities_share",
            "name": "Доля педагогов в профессиональных сообществах",
            "unit": "%",
            "numerator": {"fact": "trained", "where": {"step_kind": "community"}},
            "comparison": ">=",
            "targets": [{"value": 15, "source": "решение коллегии"}],
            "accumulation": "cumulative",
            "clause": "доп.",
        }
    )
    path = tmp_path / "kpis.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert load_catalogue(path).kpis[-1].code == "communities_share"


@pytest.mark.parametrize(
    "change",
    [
        {"measure": "max_per_holder"},  # without a holder
        {"comparison": "~"},
        {"targets": []},
        {"accumulation": "forever"},
        {"surprise": 1},
    ],
)
def test_a_malformed_kpi_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        kpi(**change)


def test_repeated_codes_are_refused(shipped: Catalogue) -> None:
    with pytest.raises(ValidationError, match="repeated"):
        Catalogue.model_validate(
            {**shipped.model_dump(), "kpis": [shipped.kpis[0].model_dump()] * 2}
        )


@pytest.mark.parametrize(
    ("attrs", "where", "expected"),
    [
        ({"themes": ["subject", "digital"]}, {"themes": "subject"}, True),
        ({"themes": ["digital"]}, {"themes": "subject"}, False),
        ({"audience": "general"}, {"audience": ["general", "college"]}, True),
        ({"subjects": []}, {"subjects": {"nonempty": True}}, False),
        ({"subjects": ["физика"]}, {"subjects": {"nonempty": True}}, True),
        ({"federal_registry": True, "from_route": True}, {"federal_registry": True}, True),
        ({}, {"federal_registry": True}, False),
    ],
)
def test_conditions_on_attributes(attrs: dict[str, Any], where: Any, expected: bool) -> None:
    assert domain.matches(attrs, where) is expected


def test_a_share_counts_members_with_a_matching_fact_in_the_population_as_of_a_date() -> None:
    facts = Facts(
        [
            teacher("t1"),
            teacher("t2"),
            teacher("t3", audience="preschool"),
            teacher("t4", start="2025-06-01"),  # not yet there on 2025-01-01
        ],
        [
            Fact("trained", "t1", day("2024-03-01"), {"themes": ["subject"]}),
            Fact("trained", "t2", day("2025-03-01"), {"themes": ["subject"]}),
            Fact("trained", "t3", day("2024-03-01"), {"themes": ["digital"]}),
        ],
    )
    k = kpi(numerator={"fact": "trained", "where": {"themes": "subject"}})
    on_2025 = facts.value(k, Scope(), domain.end_of(date(2025, 1, 1)))
    assert (on_2025.numerator, on_2025.population) == (1, 3)
    later = facts.value(k, Scope(), domain.end_of(date(2025, 12, 31)))
    assert (later.numerator, later.population, later.value) == (2, 4, 50.0)
    general = kpi(
        numerator={"fact": "trained", "where": {"themes": "subject"}},
        population={"where": {"audience": "general"}},
    )
    assert facts.value(general, Scope(), domain.end_of(date(2025, 12, 31))).population == 3


def test_a_yearly_kpi_counts_only_this_years_facts_and_a_current_one_what_holds_now() -> None:
    facts = Facts(
        [teacher("t1"), teacher("t2")],
        [
            Fact("diagnosed", "t1", day("2025-05-01")),
            Fact("diagnosed", "t2", day("2026-02-01")),
            Fact("route", "t1", day("2025-05-02"), end=day("2025-09-01")),
            Fact("route", "t2", day("2026-02-02")),
        ],
    )
    yearly = kpi(numerator={"fact": "diagnosed"}, accumulation="yearly")
    assert facts.value(yearly, Scope(), domain.end_of(date(2026, 3, 1))).numerator == 1
    assert facts.value(yearly, Scope(), domain.end_of(date(2025, 12, 31))).numerator == 1
    current = kpi(numerator={"fact": "route"}, accumulation="current")
    assert facts.value(current, Scope(), domain.end_of(date(2025, 6, 1))).numerator == 1
    assert facts.value(current, Scope(), domain.end_of(date(2025, 10, 1))).numerator == 0


def test_support_share_is_over_teachers_holding_a_route_and_load_is_the_largest_holder() -> None:
    facts = Facts(
        [teacher(f"t{n}", mun="m1" if n < 3 else "m2") for n in range(5)],
        [
            *(Fact("route", f"t{n}", day("2026-01-01")) for n in range(4)),
            Fact("support", "t0", day("2026-01-02"), {"methodist_id": "A"}),
            Fact("support", "t1", day("2026-01-02"), {"methodist_id": "A"}),
            Fact("support", "t3", day("2026-01-02"), {"methodist_id": "B"}),
        ],
    )
    at = domain.end_of(date(2026, 2, 1))
    support = kpi(
        numerator={"fact": "support"}, population={"holding": "route"}, accumulation="current"
    )
    assert facts.value(support, Scope(), at).value == 75.0
    by_mun = facts.values(support, Scope(), at, "municipality")
    assert (by_mun["m1"].value, by_mun["m2"].value) == (pytest.approx(200 / 3), 100.0)
    load = kpi(
        measure="max_per_holder",
        holder="methodist_id",
        numerator={"fact": "support"},
        comparison="<=",
        accumulation="current",
        unit="чел.",
    )
    assert facts.value(load, Scope(), at).value == 2
    assert facts.values(load, Scope(), at, "municipality")["m2"].value == 1


def test_an_organisation_level_is_a_drill_down_of_a_municipality() -> None:
    facts = Facts(
        [teacher("t1", org="o1"), teacher("t2", org="o2"), teacher("t3", mun="m2", org="o3")],
        [Fact("trained", "t1", day("2025-01-01"))],
    )
    values = facts.values(kpi(), Scope(municipality_id="m1"), day("2026-01-01"), "organization")
    assert {k: v.value for k, v in values.items()} == {"o1": 100.0, "o2": 0.0}


def test_status_follows_the_straight_path_to_the_deadline() -> None:
    k = kpi(deadline="2024-12-31", targets=[{"value": 10, "source": "прил. 1"}])
    start = date(2023, 1, 1)
    assert domain.path_value(k, start, date(2024, 1, 1)) == pytest.approx(10 * 365 / 730)
    assert domain.status(k, 6.0, date(2024, 1, 1), start) == "on_track"
    assert domain.status(k, 4.0, date(2024, 1, 1), start) == "at_risk"
    assert domain.status(k, 10.0, date(2024, 1, 1), start) == "met"
    assert domain.status(k, 9.0, date(2025, 1, 1), start) == "missed"
    assert domain.status(k, None, date(2025, 1, 1), start) == "no_data"
    limit = kpi(comparison="<=", targets=[{"value": 250, "source": "п. 20"}], unit="чел.")
    assert domain.status(limit, 251, date(2024, 1, 1), start) == "missed"
    growth = kpi(comparison="growth", measure="count", unit="чел.")
    assert domain.status(growth, 12, date(2026, 1, 1), start, previous=10) == "on_track"
    assert domain.status(growth, 9, date(2026, 1, 1), start, previous=10) == "missed"


def test_the_forecast_extends_the_last_pace_to_the_deadline() -> None:
    k = kpi(deadline="2024-12-31")
    # 2 points in 90 days, 180 days left: +4
    assert domain.forecast(k, 5.0, 3.0, 90, date(2024, 7, 4)) == pytest.approx(9.0)
    assert domain.forecast(k, 99.0, 50.0, 90, date(2024, 7, 4)) == 100.0  # a share stops at 100
    assert domain.forecast(k, 5.0, None, 90, date(2024, 7, 4)) is None


def test_evaluate_gives_every_kpi_for_every_level_even_without_data(shipped: Catalogue) -> None:
    facts = Facts(
        [teacher("t1", mun="m1"), teacher("t2", mun="m2", audience="preschool")],
        [Fact("diagnosed", "t1", day("2026-03-01"))],
    )
    per_mun = domain.evaluate(shipped, facts, date(2026, 6, 1), by="municipality")
    assert set(per_mun) == {"m1", "m2"}
    for values in per_mun.values():
        assert [v["code"] for v in values] == DOMAIN_TABLE
    m2 = {v["code"]: v for v in per_mun["m2"]}
    assert m2["subject_training_share"]["status"] == "no_data"  # no general-school teachers
    region = {v["code"]: v for v in domain.evaluate(shipped, facts, date(2026, 6, 1))[None]}
    assert region["diagnosed_share"]["value"] == 50.0
    assert region["diagnosed_share"]["numerator"] == 1


def test_a_regions_count_target_is_judged_for_the_region_only(shipped: Catalogue) -> None:
    """«не менее 93 организаций» is the region's: a municipality or a school shows its
    count with no status (and so raises no alert); a share is judged at every level."""
    facts = Facts(
        [teacher("t1", mun="m1", org="o1"), teacher("t2", mun="m2", org="o2")],
        [Fact("diagnosed", "t1", day("2026-03-01"))],
    )
    on = date(2026, 6, 1)
    region = {v["code"]: v for v in domain.evaluate(shipped, facts, on)[None]}
    assert region["personal_potential_orgs"]["status"] == "missed"  # 0 of 93, deadline past
    assert region["personal_potential_orgs"]["met"] is False
    for by in ("municipality", "organization"):
        for values in domain.evaluate(shipped, facts, on, by=by).values():  # type: ignore[arg-type]
            got = {v["code"]: v for v in values}
            assert got["personal_potential_orgs"]["status"] == "not_judged", by
            assert got["personal_potential_orgs"]["met"] is None
            assert got["diagnosed_share"]["status"] != "not_judged"
    in_m1 = {v["code"]: v for v in domain.evaluate(shipped, facts, on, Scope("m1"))[None]}
    assert in_m1["personal_potential_orgs"]["status"] == "not_judged"
    assert in_m1["diagnosed_share"]["status"] != "not_judged"
    assert in_m1["diagnosed_share"]["met"] is not None
    # … unless the catalogue says at which levels a target is set
    assert kpi(measure="count", unit="орг.").judged("municipality") is False
    assert kpi(measure="count", unit="орг.", judged_at=["region", "municipality"]).judged(
        "municipality"
    )
    assert kpi(judged_at=["region"]).judged("organization") is False


def test_a_series_gives_one_kpi_at_several_dates(shipped: Catalogue) -> None:
    facts = Facts([teacher("t1"), teacher("t2")], [Fact("diagnosed", "t1", day("2026-03-01"))])
    days = [date(2026, 2, 1) + timedelta(days=30 * n) for n in range(3)]
    points = domain.series(shipped, facts, Scope(), days, "diagnosed_share")
    assert [p["value"] for p in points] == [0.0, 50.0, 50.0]


# --- the indexed evaluation gives what the plain reading of the catalogue gives -------------


def plainly(
    members: list[Member], facts: list[Fact], k: Kpi, scope: Scope, at: datetime, by: str
) -> dict[str | None, domain.Value]:
    """A KPI's values read straight from the catalogue, member by member and fact by fact
    (how ``Facts.values`` was written before it kept what it found)."""

    def level(m: Member) -> str | None:
        return {"municipality": m.municipality_id, "organization": m.organization_id}.get(by)

    pop = k.population
    population = [
        m
        for m in members
        if m.kind == pop.of
        and m.present(at)
        and scope.holds(m)
        and domain.matches(m.attrs, pop.where)
    ]
    if pop.holding is not None:
        holding = {f.member_id for f in facts if f.kind == pop.holding and f.holds(at)}
        population = [m for m in population if m.member_id in holding]
    year = datetime(at.year, 1, 1, tzinfo=UTC)
    since = {
        "yearly": year,
        "monthly": datetime(at.year, at.month, 1, tzinfo=UTC),
    }.get(k.accumulation, datetime.min.replace(tzinfo=UTC))

    def counts(f: Fact, num: domain.Numerator) -> bool:
        if not any(f.kind == kind and domain.matches(f.attrs, w) for kind, w in num.parts):
            return False
        if k.accumulation == "current":
            return f.holds(at)
        never = f.end is not None and f.end <= f.start
        if k.accumulation == "held_in_year":
            return f.start <= at and (f.end is None or (f.end > year and not never))
        return since <= f.start <= at and not never

    if pop.having is not None:
        having = {f.member_id for f in facts if counts(f, pop.having)}
        population = [m for m in population if m.member_id in having]
    group = {m.member_id: level(m) for m in population}
    counted = [f for f in facts if counts(f, k.numerator) and f.member_id in group]
    sizes: dict[str | None, int] = {}
    for key in group.values():
        sizes[key] = sizes.get(key, 0) + 1
    out: dict[str | None, domain.Value] = {}
    if k.measure == "max_per_holder":
        per: dict[str | None, dict[Any, set[str]]] = {}
        for f in counted:
            holder = f.attrs.get(k.holder or "")
            if holder is not None:
                per.setdefault(group[f.member_id], {}).setdefault(holder, set()).add(f.member_id)
        for key in sizes.keys() | per.keys():
            most = max((len(v) for v in per.get(key, {}).values()), default=0)
            out[key] = domain.Value(float(most), most, len(per.get(key, {})))
        if not out and by == "region":
            out[None] = domain.Value(0.0, 0, 0)
        return out
    if k.measure == "holders":
        named: dict[str | None, set[Any]] = {}
        for f in counted:
            value = f.attrs.get(k.holder or "")
            for one in value if isinstance(value, list) else [value]:
                if one is not None:
                    named.setdefault(group[f.member_id], set()).add(one)
        for key, size in sizes.items():
            n = len(named.get(key, ()))
            out[key] = domain.Value(float(n), n, size)
        if None not in out and by == "region":
            out[None] = domain.Value(0.0, 0, 0)
        return out
    hits: dict[str | None, set[str]] = {}
    for f in counted:
        hits.setdefault(group[f.member_id], set()).add(f.member_id)
    for key, size in sizes.items():
        hit = len(hits.get(key, ()))
        value = float(hit) if k.measure == "count" else (100.0 * hit / size if size else None)
        out[key] = domain.Value(value, hit, size)
    if None not in out and by == "region":
        out[None] = domain.Value(0.0 if k.measure == "count" else None, 0, 0)
    return out


KINDS = (
    "diagnosed route support tutor trained expert mentored team_trained mentoring_org project team"
).split()


def random_region(seed: int) -> tuple[list[Member], list[Fact]]:
    """Teachers and organisations coming and going, facts of every kind the shipped KPIs
    count, with attributes they test, beginning and ending at random."""
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)

    def moment() -> datetime:
        return base + timedelta(days=rng.randrange(1000), hours=rng.randrange(24))

    def interval() -> tuple[datetime, datetime | None]:
        start = moment()
        return start, (
            start + timedelta(days=rng.randrange(1, 400))
        ) if rng.random() < 0.3 else None

    members: list[Member] = []
    for n in range(40):
        start, end = interval()
        members.append(
            Member(
                "organizations",
                f"o{n}",
                f"m{n % 4}",
                f"o{n}",
                {
                    "kind": "school",
                    "projects": rng.sample(
                        ["personal_potential", "school_of_ministry"], rng.randrange(3)
                    ),
                },
                start,
                end,
            )
        )
    for n in range(400):
        start, end = interval()
        org = rng.randrange(40)
        members.append(
            Member(
                "teachers",
                f"t{n}",
                f"m{org % 4}",
                f"o{org}",
                {
                    "audience": rng.choice(["general", "preschool", "college"]),
                    "subjects": rng.choice([[], ["физика"]]),
                    "young": rng.random() < 0.2,
                    "school_at_risk": org % 7 == 0,
                },
                start,
                end,
            )
        )
    themes = ["subject", "functional_literacy", "updated_fgos", "digital_environment",
              "quality_assessment", "gifted_children", "career_guidance", "upbringing",
              "preschool_quality", "burnout_prevention", "management"]  # fmt: skip
    facts: list[Fact] = []
    for _ in range(1500):
        kind = rng.choice(KINDS)
        owner = (
            f"o{rng.randrange(40)}"
            if kind in ("team_trained", "mentoring_org", "project", "team")
            else f"t{rng.randrange(400)}"
        )
        attrs: dict[str, Any] = {}
        if kind == "support":
            attrs = {"methodist_id": rng.choice(["A", "B", "C", None])}
        elif kind == "trained":
            attrs = {
                "themes": rng.sample(themes, rng.randrange(3)),
                "federal_registry": rng.random() < 0.5,
                "from_route": rng.random() < 0.5,
                "program_kind": rng.choice(["pk", "pp"]),
            }
        elif kind == "project":
            attrs = {"project": rng.choice(["personal_potential", "school_of_ministry"])}
        start, end = interval()
        facts.append(Fact(kind, owner, start, attrs, end))
    return members, facts


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_indexed_evaluation_gives_what_the_plain_reading_gives(
    shipped: Catalogue, seed: int
) -> None:
    members, facts = random_region(seed)
    indexed = Facts(members, facts)  # one instance: what it keeps serves every question
    days = [date(2024, 6, 30), date(2025, 1, 1), date(2025, 12, 31), date(2026, 6, 1)]
    scopes = [
        Scope(),
        Scope(municipality_id="m1"),
        Scope(municipality_id="m2", organization_id="o2"),
    ]
    for on in days:
        at = domain.end_of(on)
        for scope in scopes:
            for by in ("municipality", "region", "organization"):
                for k in shipped.kpis:
                    assert indexed.values(k, scope, at, by) == plainly(
                        members, facts, k, scope, at, by
                    ), (k.code, on, scope, by)
