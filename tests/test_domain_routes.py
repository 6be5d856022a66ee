"""Pure rules of routes: drafting a route from deficits and choosing a methodist."""

from __future__ import annotations

import pytest

from iomflow.routes.domain import (
    CONSULTATION_HOURS,
    MethodistView,
    ProgramView,
    TeacherView,
    draft_route,
    eligible_methodists,
)
from iomflow.shared.contracts import CompetencyResult, Level

TEACHER = TeacherView("t-000001", "org-0001", "mun-01", "general")
PRESCHOOL_TEACHER = TeacherView("t-000002", "org-0002", "mun-01", "preschool")


def deficit(code: str, score: float, level: Level = Level.DEFICIT) -> CompetencyResult:
    return CompetencyResult(code=code, score=score, level=level)


def program(
    program_id: str,
    competencies: tuple[str, ...],
    *,
    hours: int = 36,
    federal: bool = False,
    audiences: tuple[str, ...] = ("general", "college"),
) -> ProgramView:
    return ProgramView(
        program_id, f"Программа {program_id}", hours, federal, competencies, audiences
    )


def methodist(
    methodist_id: str,
    *,
    load: int = 0,
    capacity: int = 250,
    municipalities: tuple[str, ...] = ("mun-01",),
    specialisations: tuple[str, ...] = (),
) -> MethodistView:
    return MethodistView(methodist_id, specialisations, municipalities, capacity, load)


# --- draft_route: steps and their order ----------------------------------------------------


def test_one_step_per_deficit() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("digital", 50), deficit("assessment", 45), deficit("upbringing", 30)],
        [program("p-digital", ("digital",)), program("p-assess", ("assessment",))],
    )
    assert len(draft.steps) == 3
    assert sorted(s.competency for s in draft.steps) == ["assessment", "digital", "upbringing"]


def test_critical_deficit_comes_first() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("digital", 41), deficit("upbringing", 39, Level.CRITICAL)],
        [],
    )
    assert [s.competency for s in draft.steps] == ["upbringing", "digital"]


def test_critical_deficit_comes_first_even_with_a_higher_score() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("digital", 10), deficit("upbringing", 35, Level.CRITICAL)],
        [],
    )
    assert [s.competency for s in draft.steps] == ["upbringing", "digital"]


def test_deficits_of_one_level_lowest_score_first_then_code() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("b", 55), deficit("c", 42), deficit("a", 55)],
        [],
    )
    assert [s.competency for s in draft.steps] == ["c", "a", "b"]


def test_no_deficits_no_steps() -> None:
    draft = draft_route(TEACHER, [], [program("p", ("digital",))])
    assert draft.steps == []
    assert draft.total_hours == 0


def test_total_hours_is_the_sum_of_the_steps() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("digital", 50), deficit("upbringing", 30, Level.CRITICAL)],
        [program("p-digital", ("digital",), hours=72)],
    )
    assert [s.hours for s in draft.steps] == [CONSULTATION_HOURS, 72]
    assert draft.total_hours == 72 + CONSULTATION_HOURS


# --- draft_route: choosing the program -----------------------------------------------------


def test_program_addressing_the_competency_is_chosen() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("digital", 50)],
        [program("p-other", ("assessment",), hours=16), program("p-digital", ("digital",))],
    )
    [step] = draft.steps
    assert step.kind == "program"
    assert step.program_id == "p-digital"
    assert step.hours == 36


def test_federal_registry_program_is_preferred_over_a_shorter_one() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("digital", 50)],
        [
            program("p-short", ("digital",), hours=16),
            program("p-federal", ("digital",), hours=72, federal=True),
        ],
    )
    [step] = draft.steps
    assert step.program_id == "p-federal"
    assert step.hours == 72
    assert "входит в Федеральный реестр ДПП" in step.reason


def test_among_equals_the_shorter_program_is_chosen() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("digital", 50)],
        [
            program("p-long", ("digital",), hours=72, federal=True),
            program("p-short", ("digital",), hours=24, federal=True),
        ],
    )
    assert draft.steps[0].program_id == "p-short"


def test_among_equal_programs_the_lowest_id_is_chosen() -> None:
    programs = [program("p-b", ("digital",)), program("p-a", ("digital",))]
    first = draft_route(TEACHER, [deficit("digital", 50)], programs)
    again = draft_route(TEACHER, [deficit("digital", 50)], list(reversed(programs)))
    assert first.steps[0].program_id == "p-a"
    assert again.steps[0].program_id == "p-a"


def test_program_for_another_audience_is_never_chosen() -> None:
    draft = draft_route(
        PRESCHOOL_TEACHER,
        [deficit("digital", 50)],
        [
            program("p-school", ("digital",), hours=16, federal=True),
            program("p-preschool", ("digital",), hours=72, audiences=("preschool",)),
        ],
    )
    [step] = draft.steps
    assert step.program_id == "p-preschool"
    assert "«preschool»" in step.reason


def test_consultation_when_no_program_fits_the_audience() -> None:
    draft = draft_route(
        PRESCHOOL_TEACHER,
        [deficit("digital", 50)],
        [program("p-school", ("digital",), federal=True)],
    )
    [step] = draft.steps
    assert step.kind == "consultation"
    assert step.program_id is None
    assert step.hours == CONSULTATION_HOURS == 4


def test_consultation_when_no_program_addresses_the_competency() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("gifted_children", 30, Level.CRITICAL)],
        [program("p-digital", ("digital",))],
    )
    [step] = draft.steps
    assert step.kind == "consultation"
    assert step.competency == "gifted_children"
    assert "в реестре нет подходящей программы — консультации методиста" in step.reason


def test_program_addressing_several_competencies_serves_each() -> None:
    pp = program("prg-pp", ("teaching_methods", "psych_pedagogy"), hours=288)
    draft = draft_route(
        TEACHER, [deficit("teaching_methods", 50), deficit("psych_pedagogy", 45)], [pp]
    )
    assert [(s.competency, s.program_id) for s in draft.steps] == [
        ("psych_pedagogy", "prg-pp"),
        ("teaching_methods", "prg-pp"),
    ]
    assert draft.total_hours == 576


# --- draft_route: reasons ------------------------------------------------------------------


def test_reason_names_the_competency_and_score_in_russian() -> None:
    draft = draft_route(TEACHER, [deficit("digital", 47.5)], [program("p", ("digital",))])
    reason = draft.steps[0].reason
    assert reason.startswith("дефицит по компетенции digital (балл 47.5)")
    assert "программа адресует эту компетенцию и подходит для аудитории «general»" in reason


def test_reason_of_a_critical_deficit_says_critical() -> None:
    draft = draft_route(TEACHER, [deficit("upbringing", 12, Level.CRITICAL)], [])
    assert draft.steps[0].reason.startswith(
        "критический дефицит по компетенции upbringing (балл 12)"
    )


def test_reason_of_a_non_federal_program_does_not_claim_the_registry() -> None:
    draft = draft_route(TEACHER, [deficit("digital", 50)], [program("p", ("digital",))])
    assert "Федеральный реестр" not in draft.steps[0].reason
    assert "выбрана из" not in draft.steps[0].reason


def test_reason_counts_the_fitting_programs() -> None:
    draft = draft_route(
        TEACHER,
        [deficit("digital", 50)],
        [
            program("p1", ("digital",)),
            program("p2", ("digital",)),
            program("p3", ("digital",)),
            program("p-pre", ("digital",), audiences=("preschool",)),
        ],
    )
    assert "выбрана из 3 подходящих" in draft.steps[0].reason


@pytest.mark.parametrize("score", [0, 33.3, 59.9])
def test_every_step_reason_mentions_its_competency(score: float) -> None:
    draft = draft_route(
        TEACHER,
        [deficit("assessment", score), deficit("career_guidance", score)],
        [program("p", ("assessment",))],
    )
    for step in draft.steps:
        assert f"по компетенции {step.competency}" in step.reason
        assert f"(балл {score:g})" in step.reason


# --- eligible_methodists -------------------------------------------------------------------


def test_methodist_at_capacity_is_never_chosen() -> None:
    full = methodist("met-001", load=250, capacity=250, specialisations=("digital",))
    over = methodist("met-002", load=300, capacity=250)
    room = methodist("met-003", load=249, capacity=250)
    found = eligible_methodists(TEACHER, {"digital"}, [full, over, room])
    assert [m.methodist_id for m in found] == ["met-003"]


def test_nobody_eligible_when_everyone_is_full() -> None:
    found = eligible_methodists(TEACHER, {"digital"}, [methodist("met-001", load=5, capacity=5)])
    assert found == []


def test_methodist_of_another_municipality_is_never_chosen() -> None:
    elsewhere = methodist(
        "met-001", municipalities=("mun-02", "mun-03"), specialisations=("digital",)
    )
    here = methodist("met-002", municipalities=("mun-02", "mun-01"))
    found = eligible_methodists(TEACHER, {"digital"}, [elsewhere, here])
    assert [m.methodist_id for m in found] == ["met-002"]


def test_region_wide_methodist_serves_every_municipality() -> None:
    regional = methodist("met-001", municipalities=())
    teacher = TeacherView("t-1", "org-9", "mun-42", "general")
    assert eligible_methodists(teacher, set(), [regional]) == [regional]


def test_specialisation_match_is_preferred_over_a_lighter_load() -> None:
    specialist = methodist("met-002", load=200, specialisations=("assessment", "digital"))
    idle = methodist("met-001", load=0, specialisations=("upbringing",))
    found = eligible_methodists(TEACHER, {"digital", "communication"}, [idle, specialist])
    assert [m.methodist_id for m in found] == ["met-002", "met-001"]


def test_least_loaded_first_among_equals() -> None:
    busy = methodist("met-001", load=120)
    light = methodist("met-002", load=3)
    medium = methodist("met-003", load=50)
    found = eligible_methodists(TEACHER, {"digital"}, [busy, light, medium])
    assert [m.methodist_id for m in found] == ["met-002", "met-003", "met-001"]


def test_ties_are_broken_by_methodist_id() -> None:
    ms = [methodist("met-003", load=7), methodist("met-001", load=7), methodist("met-002", load=7)]
    found = eligible_methodists(TEACHER, set(), ms)
    assert [m.methodist_id for m in found] == ["met-001", "met-002", "met-003"]


def test_full_ordering_specialisation_then_load_then_id() -> None:
    ms = [
        methodist("met-005", load=0),
        methodist("met-004", load=10, specialisations=("digital",)),
        methodist("met-003", load=10, specialisations=("digital",), municipalities=()),
        methodist("met-002", load=1, specialisations=("digital",)),
        methodist("met-001", load=1, capacity=1, specialisations=("digital",)),  # full
        methodist("met-000", load=0, municipalities=("mun-07",)),  # elsewhere
    ]
    found = eligible_methodists(TEACHER, {"digital"}, ms)
    assert [m.methodist_id for m in found] == ["met-002", "met-003", "met-004", "met-005"]
