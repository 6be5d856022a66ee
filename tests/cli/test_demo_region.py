"""The generated demo region: deterministic, at the real region's scale, and every row one an
operator could import (the registers' own checks pass it)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import pytest

from iomflow.cli import demo as cli_demo
from iomflow.cli import region as demo
from iomflow.registries.domain import REGISTRY, Known, check_record
from iomflow.registries.personal import PERSONAL_FIELDS, normalise_snils

Region = dict[str, list[dict[str, Any]]]
CODES = set(demo.COMPETENCY_GROUPS)
AUDIENCES = ("preschool", "general", "college")
PERSON_REGISTERS = [name for name, spec in REGISTRY.items() if spec.person]


@cache
def full() -> Region:
    return demo.generate()  # how long it takes: bench/region.py


@cache
def small() -> Region:
    return demo.generate(seed=38, teachers=300)


@cache
def tiny() -> Region:
    return demo.generate(seed=5, teachers=10)


REGIONS: dict[str, Callable[[], Region]] = {"full": full, "small": small, "tiny": tiny}


def years(start: str, end: date = demo.REFERENCE_DATE) -> int:
    born = date.fromisoformat(start)
    return end.year - born.year - ((end.month, end.day) < (born.month, born.day))


def split(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    values = {k: v for k, v in row.items() if k not in PERSONAL_FIELDS}
    return values, {k: v for k, v in row.items() if k in PERSONAL_FIELDS}


def known(region: Region) -> Known:
    return Known(
        {
            name: {row[REGISTRY[name].key]: split(row)[0] for row in rows}
            for name, rows in region.items()
        }
    )


def people(region: Region) -> list[dict[str, Any]]:
    return [row for name in PERSON_REGISTERS for row in region[name]]


def young(teacher: dict[str, Any]) -> bool:
    return years(teacher["birth_date"]) < 35 and years(teacher["hire_date"]) < 3


# --- determinism and shape -----------------------------------------------------------------


def test_the_same_seed_gives_the_same_region() -> None:
    assert demo.generate(seed=7, teachers=300) == demo.generate(seed=7, teachers=300)


def test_another_seed_gives_another_region() -> None:
    assert demo.generate(seed=7, teachers=300) != demo.generate(seed=8, teachers=300)


def test_every_register_is_there_in_registry_order() -> None:
    assert list(small()) == list(REGISTRY)
    assert list(full()) == list(REGISTRY)


def test_the_region_is_json_friendly() -> None:
    region = small()
    assert json.loads(json.dumps(region, ensure_ascii=False)) == region


def test_ids_are_unique_in_every_register() -> None:
    for name, rows in full().items():
        ids = [row[REGISTRY[name].key] for row in rows]
        assert len(ids) == len(set(ids)), name


# --- scale ---------------------------------------------------------------------------------


def test_the_default_region_has_the_real_regions_scale() -> None:
    counts = {name: len(rows) for name, rows in full().items()}
    assert counts["municipalities"] == 42
    assert 1_400 <= counts["organizations"] <= 1_600
    assert 39_000 <= counts["teachers"] <= 41_000
    assert 140 <= counts["methodists"] <= 180
    assert 250 <= counts["programs"] <= 350
    assert 40 <= counts["tutors"] <= 80
    assert 700 <= counts["mentors"] <= 900  # about 2 % of teachers
    assert 3 * 42 <= counts["municipal_staff"] <= 6 * 42
    assert 30 <= counts["internship_sites"] <= 50
    assert 50 <= counts["innovation_sites"] <= 70
    assert 40 <= counts["communities"] <= 60
    assert 150 <= counts["practices"] <= 250


def test_organisations_follow_the_regions_kinds_and_population() -> None:
    region = full()
    kinds = Counter(o["kind"] for o in region["organizations"])
    total = sum(kinds.values())
    assert 0.55 <= kinds["school"] / total <= 0.65
    assert 0.28 <= kinds["kindergarten"] / total <= 0.38
    assert 0.02 <= kinds["college"] / total <= 0.06
    assert 0.01 <= kinds["other"] / total <= 0.05
    teachers = Counter(t["municipality_id"] for t in region["teachers"])
    assert [m for m, _ in teachers.most_common(3)] == ["mun-01", "mun-02", "mun-03"]
    schools = [o for o in region["organizations"] if o["kind"] == "school"]
    assert 0.08 <= sum(o["low_results"] for o in schools) / len(schools) <= 0.16
    assert 0.05 <= sum(o["unfavorable_conditions"] for o in schools) / len(schools) <= 0.12
    projects = Counter(p for o in region["organizations"] for p in o["projects"])
    assert projects["personal_potential"] >= 93
    assert all(projects[p] > 0 for p in ("school_of_ministry", "tochka_rosta"))
    assert all(projects[p] > 0 for p in ("professionalitet", "kindergarten_of_ministry"))


def test_a_small_region_keeps_what_the_chain_needs() -> None:
    for region in (small(), tiny()):
        assert len(region["municipalities"]) == 42
        served = {o["municipality_id"] for o in region["organizations"]}
        assert served == {m["municipality_id"] for m in region["municipalities"]}
        assert len(region["programs"]) >= 10
        assert len(region["methodists"]) >= 5
    assert len(small()["teachers"]) == 300
    assert len(demo.generate(teachers=1)["methodists"]) >= 5
    assert len(tiny()["teachers"]) == 10


# --- every row is a valid register row -----------------------------------------------------


@pytest.mark.parametrize("which", ["small", "tiny"])
def test_every_row_passes_the_register_checks(which: str) -> None:
    region = small() if which == "small" else tiny()
    everything = known(region)
    for name, rows in region.items():
        spec = REGISTRY[name]
        for row in rows:
            values, personal = split(row)
            assert bool(personal) == spec.person, (name, row)
            data, person, problems = check_record(
                spec, values, personal if spec.person else None, everything
            )
            assert problems == [], (name, row[spec.key], problems)
            # Complete and already normalised: what is stored is what was generated.
            assert data == values, (name, row[spec.key])
            assert person == (personal or None), (name, row[spec.key])


def test_organisation_bound_rows_carry_their_organisations_municipality() -> None:
    region = full()
    where = {o["organization_id"]: o["municipality_id"] for o in region["organizations"]}
    for name, rows in region.items():
        if not REGISTRY[name].located:
            continue
        for row in rows:
            assert row["municipality_id"] == where[row["organization_id"]], (name, row)


# --- people --------------------------------------------------------------------------------


def test_every_snils_is_valid_and_unique() -> None:
    numbers = [row["snils"] for row in people(full())]
    assert len(numbers) == len(set(numbers))
    for number in numbers:
        assert normalise_snils(number) == number  # raises on a bad check number
        assert int(number.replace("-", "").replace(" ", "")[:9]) > 1_001_998


def test_emails_and_phones_are_unique() -> None:
    persons = people(full())
    assert len({p["email"] for p in persons}) == len(persons)
    assert len({p["phone"] for p in persons}) == len(persons)
    assert all(p["phone"].startswith("+7 9") for p in persons)


def test_names_are_russian_and_gendered_consistently() -> None:
    for person in people(full()):
        surname, first, patronymic = person["full_name"].split()
        if patronymic.endswith("на"):
            assert not surname.endswith(("ов", "ев", "ин", "ий")), person["full_name"]
            assert first.endswith(("а", "я", "ь")) or first == "Туяна", person["full_name"]
        else:
            assert patronymic.endswith("ич"), person["full_name"]
            assert not surname.endswith(("ова", "ева", "ина", "ая")), person["full_name"]


def test_no_personal_value_appears_in_a_record_field() -> None:
    region = full()
    personal = {v for row in people(region) for k, v in row.items() if k in PERSONAL_FIELDS}
    for name, rows in region.items():
        for row in rows:
            for field, value in row.items():
                if field in PERSONAL_FIELDS:
                    continue
                for item in value if isinstance(value, list) else [value]:
                    # a practice's replications: where, by whom (a pseudonymous id)
                    for part in item.values() if isinstance(item, dict) else [item]:
                        assert part not in personal, (name, field, part)


# --- teachers and managers -----------------------------------------------------------------


def test_teachers_are_plausible() -> None:
    region = full()
    kinds = {o["organization_id"]: o["kind"] for o in region["organizations"]}
    audience = {"kindergarten": "preschool", "college": "college"}
    ages: Counter[int] = Counter()
    for t in region["teachers"]:
        age = years(t["birth_date"])
        ages[age] += 1
        assert 22 <= age <= 68, t
        assert t["hire_date"] <= demo.REFERENCE_DATE.isoformat(), t
        assert years(t["birth_date"], date.fromisoformat(t["hire_date"])) >= 20, t
        assert t["audience"] == audience.get(kinds[t["organization_id"]], "general"), t
        assert set(t["subjects"]) <= set(demo.SUBJECTS), t
        if t["position"] == "учитель":
            assert 1 <= len(t["subjects"]) <= 2, t
    assert 42 <= ages.most_common(1)[0][0] <= 48
    share = Counter(t["expert"] for t in region["teachers"])[True] / len(region["teachers"])
    assert 0.03 <= share <= 0.07
    categories = Counter(t["category"] for t in region["teachers"])
    assert set(categories) == {"none", "first", "highest", "methodist", "mentor"}


def test_young_teachers_are_about_one_in_twelve() -> None:
    teachers = full()["teachers"]
    assert 0.06 <= sum(map(young, teachers)) / len(teachers) <= 0.10
    assert any(map(young, small()["teachers"]))


def test_management_teams_are_their_organisations_own_managers() -> None:
    region = full()
    teachers = {t["teacher_id"]: t for t in region["teachers"]}
    teams: dict[str, list[dict[str, Any]]] = {}
    for member in region["management_teams"]:
        teams.setdefault(member["organization_id"], []).append(member)
        teacher = teachers[member["teacher_id"]]
        assert teacher["organization_id"] == member["organization_id"]
        assert teacher["is_manager"]
    kinds = {o["organization_id"]: o["kind"] for o in region["organizations"]}
    staffed = Counter(t["organization_id"] for t in region["teachers"])
    for org, kind in kinds.items():
        if kind in ("school", "college") and staffed[org] >= 2:
            team = teams[org]
            assert 2 <= len(team) <= 4, org
            assert [m["role"] for m in team].count("director") == 1, org
        else:
            assert org not in teams, org
    in_teams = {m["teacher_id"] for m in region["management_teams"]}
    assert in_teams == {t["teacher_id"] for t in region["teachers"] if t["is_manager"]}


# --- methodists, programs and the competency framework -------------------------------------


def test_only_the_frameworks_competency_codes_are_used() -> None:
    path = resources.files("iomflow.diagnostics").joinpath("data/framework.json")
    framework = json.loads(path.read_text(encoding="utf-8"))
    # The registers use the framework's codes only; the framework has more (management,
    # inclusion, ФГОС, preschool environment) that no demo program covers: the program gap.
    assert CODES < {c["code"] for c in framework["competencies"]}
    for name, rows in full().items():
        for row in rows:
            for field in ("specialisations", "competencies"):
                assert set(row.get(field, [])) <= CODES, (name, row)


@pytest.mark.parametrize("which", ["full", "small", "tiny"])
def test_methodists_cover_every_competency_in_every_municipality(which: str) -> None:
    region = REGIONS[which]()
    methodists = region["methodists"]
    assert sum(1 for m in methodists if not m["municipalities"]) >= 2
    assert all(m["capacity"] == 250 for m in methodists)
    teachers = Counter(t["municipality_id"] for t in region["teachers"])
    for mun in (m["municipality_id"] for m in region["municipalities"]):
        serving = [m for m in methodists if not m["municipalities"] or mun in m["municipalities"]]
        assert {c for m in serving for c in m["specialisations"]} == CODES, mun
    # Each territory's own methodists have room for all its teachers, so the region-wide
    # ones are spare: a route never waits for a methodist for want of capacity.
    territories: dict[tuple[str, ...], int] = Counter()
    for m in methodists:
        if m["municipalities"]:
            territories[tuple(m["municipalities"])] += m["capacity"]
    covered = [mun for territory in territories for mun in territory]
    assert len(covered) == len(set(covered)), "territories do not overlap"
    assert set(teachers) <= set(covered)
    for territory, capacity in territories.items():
        assert sum(teachers[mun] for mun in territory) <= capacity, territory


@pytest.mark.parametrize("which", ["full", "small"])
def test_programs_cover_every_competency_for_every_audience(which: str) -> None:
    programs = full()["programs"] if which == "full" else small()["programs"]
    offered = {(c, a) for p in programs for c in p["competencies"] for a in p["audiences"]}
    assert offered == {(c, a) for c in CODES for a in AUDIENCES}


def test_programs_look_like_the_regions_catalogue() -> None:
    programs = full()["programs"]
    for p in programs:
        assert (p["federal_number"] is not None) == p["federal_registry"], p
        assert 1 <= len(p["competencies"]) <= 3, p
        if p["kind"] == "pk":
            assert 16 <= p["hours"] <= 144, p
        else:
            assert 250 <= p["hours"] <= 520, p
    federal = [p["federal_number"] for p in programs if p["federal_registry"]]
    assert 0.3 <= len(federal) / len(programs) <= 0.5
    assert len(federal) == len(set(federal))
    formats = Counter(p["format"] for p in programs)
    assert formats["distance"] >= max(formats["in_person"], formats["network"])
    assert 0 < Counter(p["kind"] for p in programs)["pp"] < len(programs) * 0.2
    themes = {t for p in programs for t in p["themes"]}
    assert {"updated_fgos", "burnout_prevention", "preschool_quality", "management"} <= themes


def test_tutors_tutor_federal_programs() -> None:
    region = full()
    federal = {p["program_id"] for p in region["programs"] if p["federal_registry"]}
    for tutor in region["tutors"]:
        assert set(tutor["programs"]) <= federal, tutor["tutor_id"]


def test_communities_are_regional_or_municipal() -> None:
    for community in full()["communities"]:
        regional = community["level"] == "regional"
        assert (community["municipality_id"] is None) == regional, community


# --- the demo's year over the region (iomflow demo) ----------------------------------------

TODAY = date.today()


def chosen(count: int = 400) -> list[str]:
    return cli_demo.sample([t["teacher_id"] for t in full()["teachers"]], count)


def test_the_demo_samples_its_teachers_across_every_municipality() -> None:
    teachers = {t["teacher_id"]: t for t in full()["teachers"]}
    picked = chosen()
    assert picked == chosen() and len(set(picked)) == 400  # deterministic, no repeats
    assert picked == sorted(picked, key=list(teachers).index)  # in registry order
    first_page = {teachers[t]["municipality_id"] for t in list(teachers)[:400]}
    assert len(first_page) == 1  # what the demo used to diagnose: one municipality
    assert len({teachers[t]["municipality_id"] for t in picked}) >= 30
    assert cli_demo.traced_teacher(picked) in picked
    assert cli_demo.sample(picked[:5], 10) == picked[:5]


def test_the_demos_results_are_dated_inside_their_campaigns_over_the_past_year() -> None:
    windows = {w.campaign_id: (w.starts_on, w.ends_on) for w in cli_demo.HISTORY}
    months: Counter[tuple[int, int]] = Counter()
    campaigns: Counter[str] = Counter()
    for _, fields in cli_demo.history_entries(chosen()):
        result = json.loads(fields["data"])
        taken = datetime.fromisoformat(result["taken_at"]).date()
        starts, ends = windows[result["campaign_id"]]
        assert starts <= taken <= ends and taken < TODAY, result
        months[(taken.year, taken.month)] += 1
        campaigns[result["campaign_id"]] += 1
    assert set(campaigns) == set(windows)
    assert min(campaigns.values()) > 0.2 * sum(campaigns.values())
    assert len(months) >= 10 and min(months) == cli_demo.HISTORY[0].months[0]
    assert cli_demo.month_before(max(months), 14) <= min(months), "over the past year or so"
    # what other tests publish: the current campaign's middle month
    [test, *_] = cli_demo.results_for("t-000001")
    assert test.campaign_id == cli_demo.CAMPAIGN_ID and test.taken_at is not None
    assert (test.taken_at.year, test.taken_at.month) == cli_demo.SAT_IN


@pytest.mark.parametrize(
    "today", [date(2026, 12, 7), date(2027, 1, 1), date(2027, 3, 15), date(2028, 8, 31)]
)
def test_the_demos_year_is_dated_back_from_the_day_it_runs(today: date) -> None:
    """Run on any day, the demo's three campaigns lie in the 16 months before it, the
    current one open today, the others over; their months in order, none after last month;
    their ids distinct; the registers loaded a month before the first."""
    last, earlier, current = cli_demo.history(today)
    this = (today.year, today.month)
    assert current.starts_on <= today <= current.ends_on
    assert last.ends_on < earlier.starts_on <= earlier.ends_on < current.starts_on
    months = [m for w in (last, earlier, current) for m in w.months]
    assert months == sorted(months) and max(months) == cli_demo.month_before(this, 1)
    assert min(months) == cli_demo.month_before(this, 15)
    assert (last.ends_on.year, last.ends_on.month) == cli_demo.month_before(this, 12)
    assert len({w.campaign_id for w in (last, earlier, current)}) == 3
    assert current.campaign_id == f"demo-{current.starts_on.year}"
    assert all(w.name.endswith(f" {w.starts_on.year}") for w in (last, earlier, current))


def test_course_completions_follow_the_routes_and_cover_the_programs_themes() -> None:
    region = full()
    teachers = {t["teacher_id"]: t for t in region["teachers"]}
    programs = region["programs"]
    picked = chosen()
    # a route for most of them, its program step one that fits the teacher's audience
    routes = {}
    for n, teacher_id in enumerate(picked):
        if n % 10 == 9:
            continue
        audience = teachers[teacher_id]["audience"]
        program = [p for p in programs if audience in p["audiences"]][n % 7]
        routes[teacher_id] = {
            "status": "drafted",
            "steps": [
                {"kind": "consultation", "program_id": None, "starts_on": "2026-12-07"},
                {"kind": "program", "program_id": program["program_id"], "starts_on": "2026-12-21"},
            ],
        }
    diagnosed_on = {
        t: date(2025, 10, 1) if n % 2 else date(2026, 11, 25) for n, t in enumerate(picked)
    }
    # of those with no route read, half are known to have none (no deficits)
    routeless = {t for n, t in enumerate(picked) if n % 20 == 9}
    unknown = set(picked) - set(routes) - routeless
    args = ([teachers[t] for t in picked], routes, programs, diagnosed_on, TODAY, routeless)
    done = cli_demo.completions(*args)
    assert done == cli_demo.completions(*args)
    assert not {c.course.teacher_id for c in done} & unknown
    assert {c.course.teacher_id for c in done} & routeless
    by_number = {p["federal_number"]: p["program_id"] for p in programs if p["federal_number"]}
    matched = [c for c in done if c.in_route]
    outside = [c for c in done if not c.in_route]
    assert 0.3 * len(routes) <= len(matched) <= 0.5 * len(routes)
    assert 0.1 * len(picked) <= len(outside) <= 0.3 * (len(picked) - len(unknown))
    assert len({c.course.teacher_id for c in done}) == len(done)  # one each
    for c in done:
        course = c.course
        program_id = course.program_id or by_number[course.federal_number]
        in_route = {s["program_id"] for s in routes.get(course.teacher_id, {"steps": []})["steps"]}
        assert (program_id in in_route) == c.in_route, c
        assert TODAY - timedelta(days=365) <= course.on < TODAY, c
        if c.in_route:
            assert course.on >= min(
                diagnosed_on[course.teacher_id] + timedelta(days=21), TODAY - timedelta(days=1)
            ), c
        assert course.passed and course.hours
        assert c.entry()[0] == "iomflow.routes.courses.inbound"
    themes = {t for c in outside for t in c.themes}
    assert {"updated_fgos", "functional_literacy", "digital_environment", "management"} <= themes
    assert any(c.course.federal_number for c in done) and any(c.course.program_id for c in done)
    assert len({c.course.on.month for c in outside}) == 12  # over the whole year
