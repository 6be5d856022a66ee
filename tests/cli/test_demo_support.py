"""The demo region's support outside a route (issue 16): School of the Ministry teams, mentoring
pairs, expert roles, the practices' course and contests, generated deterministically and
consistent with the rest of the region (every reference to a row that is there, and to the
right one: a team's members are its school's teachers, a pair's mentee works beside the
mentor, a practice's reviewer is an expert of the bank's council)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from functools import cache
from typing import Any

from iomflow.cli import region as demo
from iomflow.registries.domain import REGISTRY, Known, check_record
from iomflow.registries.personal import PERSONAL_FIELDS

Region = dict[str, list[dict[str, Any]]]
SUPPORT = ("school_teams", "mentoring_pairs", "expert_roles", "contests", "contest_entries")


@cache
def full() -> Region:
    return demo.generate()


def by(region: Region, name: str) -> dict[str, dict[str, Any]]:
    return {row[REGISTRY[name].key]: row for row in region[name]}


def young(teacher: dict[str, Any]) -> bool:
    def years(since: str) -> int:
        d, end = date.fromisoformat(since), demo.REFERENCE_DATE
        return end.year - d.year - ((end.month, end.day) < (d.month, d.day))

    return years(teacher["birth_date"]) < 35 and years(teacher["hire_date"]) < 3


def test_the_support_registers_are_the_same_for_the_same_seed_and_not_for_another() -> None:
    first, again = demo.generate(seed=11, teachers=2000), demo.generate(seed=11, teachers=2000)
    other = demo.generate(seed=12, teachers=2000)
    for name in (*SUPPORT, "practices"):
        assert first[name] == again[name], name
    assert any(first[name] != other[name] for name in SUPPORT)


def test_the_support_leaves_the_rest_of_the_region_as_it_was() -> None:
    # Drawn after everything else: the teachers, programs and methodists of a seed stay put
    # (the demo's numbers and the registers' other tests depend on them).
    region = full()
    assert region["teachers"][0]["teacher_id"] == "t-000001"
    assert len(region["teachers"]) == demo.FULL_SCALE
    practice = region["practices"][0]
    assert practice["practice_id"] == "prc-0001" and practice["year"] >= 2019


def test_the_full_regions_support_rows_pass_the_register_checks() -> None:
    region = full()
    known = Known(
        {
            name: {
                row[REGISTRY[name].key]: {k: v for k, v in row.items() if k not in PERSONAL_FIELDS}
                for row in rows
            }
            for name, rows in region.items()
        }
    )
    for name in (*SUPPORT, "practices"):
        spec = REGISTRY[name]
        for row in region[name]:
            data, _, problems = check_record(spec, row, None, known)
            assert problems == [], (name, row[spec.key], problems)
            assert data == row, (name, row[spec.key])


def test_sixteen_school_of_ministry_teams_with_eleven_methodists() -> None:
    region = full()
    organizations, teachers = by(region, "organizations"), by(region, "teachers")
    methodists = by(region, "methodists")
    teams = region["school_teams"]
    assert len(teams) == demo.SCHOOL_TEAMS == 16
    assert len({t["organization_id"] for t in teams}) == 16  # a team per school
    assigned = Counter(m for t in teams for m in t["methodists"])
    assert len(assigned) == demo.TEAM_METHODISTS == 11
    for team in teams:
        school = organizations[team["organization_id"]]
        assert school["kind"] == "school" and "school_of_ministry" in school["projects"]
        assert team["project"] == "school_of_ministry"
        assert team["municipality_id"] == school["municipality_id"]
        assert 3 <= len(team["members"]) <= 7
        assert {teachers[m]["organization_id"] for m in team["members"]} == {
            school["organization_id"]
        }
        assert any(teachers[m]["is_manager"] for m in team["members"])  # the management team
        assert 1 <= len(team["methodists"]) <= 2
        assert all(m in methodists for m in team["methodists"])
    # Where a methodist serves the team's municipality, the team has one of those.
    local = [
        t
        for t in teams
        if any(t["municipality_id"] in methodists[m]["municipalities"] for m in assigned)
    ]
    assert all(
        any(t["municipality_id"] in methodists[m]["municipalities"] for m in t["methodists"])
        for t in local
    )


def test_mentoring_pairs_are_young_teachers_and_managers_beside_their_mentor() -> None:
    region = full()
    teachers, mentors = by(region, "teachers"), by(region, "mentors")
    deputies = {
        (m["organization_id"], m["teacher_id"])
        for m in region["management_teams"]
        if m["role"] == "deputy"
    }
    pairs = region["mentoring_pairs"]
    kinds = Counter(p["kind"] for p in pairs)
    assert kinds["young_teacher"] > 500 and kinds["management_team"] > 10
    per_mentor = Counter(p["mentor_id"] for p in pairs)
    assert all(n <= mentors[m]["capacity"] for m, n in per_mentor.items())
    mentees = Counter(p["mentee_id"] for p in pairs)
    assert max(mentees.values()) == 1  # nobody has two mentors
    all_young = sum(young(t) for t in teachers.values())
    assert kinds["young_teacher"] / all_young > 0.25  # the KPI has something to count
    for pair in pairs:
        mentor, mentee = mentors[pair["mentor_id"]], teachers[pair["mentee_id"]]
        assert pair["organization_id"] == mentor["organization_id"] == mentee["organization_id"]
        assert pair["municipality_id"] == mentee["municipality_id"]
        if pair["kind"] == "young_teacher":
            assert young(mentee)
            assert pair["starts_on"] >= mentee["hire_date"]
        else:
            assert (pair["organization_id"], pair["mentee_id"]) in deputies
        assert pair["starts_on"] <= demo.REFERENCE_DATE.isoformat()
        assert pair["ends_on"] is None or pair["ends_on"] > pair["starts_on"]
        assert pair["focus"] and pair["competencies"]
    # Most programs go on at the reference date: the pairs count now.
    assert sum(p["ends_on"] is None for p in pairs) / len(pairs) > 0.8


def test_expert_roles_are_the_experts_of_several_kinds() -> None:
    region = full()
    teachers = by(region, "teachers")
    roles = region["expert_roles"]
    assert {r["teacher_id"] for r in roles} == {t for t, row in teachers.items() if row["expert"]}
    kinds = Counter(r["kind"] for r in roles)
    assert len(kinds) >= 6 and kinds["attestation"] == max(kinds.values())
    for role in roles:
        teacher = teachers[role["teacher_id"]]
        assert role["organization_id"] == teacher["organization_id"]
        assert role["body"]
        assert role["starts_on"] <= demo.REFERENCE_DATE.isoformat()
        assert role["ends_on"] is None or role["ends_on"] > role["starts_on"]
    # Active at the reference date: most of them.
    active = [r for r in roles if r["ends_on"] is None or r["ends_on"] >= "2026-01-01"]
    assert len(active) / len(roles) > 0.7


def test_practices_are_in_every_stage_of_their_course() -> None:
    region = full()
    teachers, organizations = by(region, "teachers"), by(region, "organizations")
    reviewers = {r["teacher_id"] for r in region["expert_roles"] if r["kind"] == "practice_review"}
    stages = Counter(p["status"] for p in region["practices"])
    assert set(stages) == {"submitted", "reviewed", "included", "replicated", "rejected"}
    assert stages["included"] + stages["replicated"] > len(region["practices"]) / 2
    reference = demo.REFERENCE_DATE.isoformat()
    for p in region["practices"]:
        assert teachers[p["author_id"]]["organization_id"] == p["organization_id"]
        assert p["submitted_on"] <= reference and int(p["submitted_on"][:4]) == p["year"]
        if p["status"] == "submitted":
            assert (p["reviewed_by"], p["reviewed_on"], p["review"]) == (None, None, "")
            continue
        assert p["reviewed_by"] in reviewers and p["reviewed_by"] != p["author_id"]
        assert p["submitted_on"] < p["reviewed_on"] <= reference and p["review"]
        included = p["status"] in ("included", "replicated")
        assert (p["included_on"] is not None) == included
        if included:
            assert p["reviewed_on"] < p["included_on"] <= reference
        assert bool(p["replications"]) == (p["status"] == "replicated")
        for r in p["replications"]:
            there = organizations[r["organization_id"]]
            assert r["organization_id"] != p["organization_id"]
            assert r["municipality_id"] == there["municipality_id"]
            assert there["kind"] == organizations[p["organization_id"]]["kind"]
            assert teachers[r["by"]]["organization_id"] == r["organization_id"]
            assert p["included_on"] <= r["on"] <= reference


def test_contests_have_fitting_entrants_and_one_winner_each() -> None:
    region = full()
    teachers, organizations = by(region, "teachers"), by(region, "organizations")
    contests = by(region, "contests")
    assert {c["year"] for c in contests.values()} == {2025, 2026}
    entries: dict[str, list[dict[str, Any]]] = {}
    for entry in region["contest_entries"]:
        entries.setdefault(entry["contest_id"], []).append(entry)
    assert set(entries) == set(contests)
    for contest_id, rows in entries.items():
        contest = contests[contest_id]
        assert contest["held_on"][:4] == str(contest["year"])
        assert contest["held_on"] <= demo.REFERENCE_DATE.isoformat()
        results = Counter(r["result"] for r in rows)
        assert results["winner"] == 1 and results["prize_winner"] == 2
        assert len({r["teacher_id"] for r in rows}) == len(rows)
        for r in rows:
            teacher = teachers[r["teacher_id"]]
            assert r["organization_id"] == teacher["organization_id"]
            kind = organizations[r["organization_id"]]["kind"]
            if contest["title"].startswith("Учитель года"):
                assert kind == "school"
            elif contest["title"].startswith("Педагогический дебют"):
                assert young(teacher)


def test_a_small_region_has_what_it_can_of_the_support() -> None:
    small = demo.generate(seed=38, teachers=300)
    assert 1 <= len(small["school_teams"]) <= 16
    assert len({m for t in small["school_teams"] for m in t["methodists"]}) == min(
        11, len(small["methodists"])
    )
    assert {p["status"] for p in small["practices"]} >= {
        "submitted",
        "reviewed",
        "included",
        "replicated",
    }
    tiny = demo.generate(seed=5, teachers=10)
    assert tiny["school_teams"] == [] or all(t["members"] for t in tiny["school_teams"])
