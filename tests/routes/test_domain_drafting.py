"""Pure rules of routes (ИОМ): drafting from deficits, pace within the hours budget, tutors,
communities, methodist choice and rebalance, lifecycle and effectiveness. No I/O."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from iomflow.routes import domain, drafting
from iomflow.routes.domain import (
    Catalogue,
    CommunityView,
    Draft,
    MentorView,
    MethodistView,
    Move,
    ProgramView,
    Rules,
    Seat,
    SiteView,
    TeacherView,
    TutorView,
)
from iomflow.shared.contracts import CompetencyChange, CompetencyResult, Level, RouteStep

RULES = domain.load_rules()
START = date(2026, 9, 1)
RULES_FILE = Path(domain.__file__).parents[1] / "data" / "rules.json"


# --- factories -----------------------------------------------------------------------------


def teacher(
    *,
    teacher_id: str = "t-1",
    organization_id: str = "org-1",
    municipality_id: str = "mun-1",
    audience: str = "general",
    subjects: tuple[str, ...] = ("math",),
    young: bool = False,
    remote: bool = False,
) -> TeacherView:
    return TeacherView(
        teacher_id, organization_id, municipality_id, audience, subjects, young, remote
    )


def deficit(code: str, score: float = 40.0, level: Level = Level.DEFICIT) -> CompetencyResult:
    return CompetencyResult(code=code, score=score, level=level)


def critical(code: str, score: float = 20.0) -> CompetencyResult:
    return deficit(code, score, Level.CRITICAL)


def program(
    program_id: str,
    competencies: tuple[str, ...] = ("a",),
    *,
    title: str | None = None,
    hours: int = 36,
    federal: bool = False,
    audiences: tuple[str, ...] = ("general",),
    format: str = "in_person",
    subjects: tuple[str, ...] = (),
) -> ProgramView:
    return ProgramView(
        program_id,
        title or f"Программа {program_id}",
        hours,
        federal,
        competencies,
        audiences,
        format,
        subjects,
    )


def site(
    site_id: str,
    *,
    municipality_id: str = "mun-1",
    competencies: tuple[str, ...] = ("a",),
    capacity: int = 10,
    load: int = 0,
) -> SiteView:
    return SiteView(site_id, f"Площадка {site_id}", municipality_id, competencies, capacity, load)


def mentor(
    mentor_id: str,
    *,
    organization_id: str = "org-9",
    municipality_id: str = "mun-9",
    subjects: tuple[str, ...] = (),
    capacity: int = 3,
    load: int = 0,
) -> MentorView:
    return MentorView(mentor_id, organization_id, municipality_id, subjects, capacity, load)


def community(
    community_id: str,
    *,
    level: str = "regional",
    municipality_id: str | None = None,
    subjects: tuple[str, ...] = (),
    competencies: tuple[str, ...] = ("a",),
) -> CommunityView:
    return CommunityView(
        community_id, f"Сообщество {community_id}", level, municipality_id, subjects, competencies
    )


def methodist(
    methodist_id: str,
    *,
    specialisations: tuple[str, ...] = (),
    municipalities: tuple[str, ...] = (),
    capacity: int = 250,
    load: int = 0,
    subjects: tuple[str, ...] = (),
) -> MethodistView:
    return MethodistView(methodist_id, specialisations, municipalities, capacity, load, subjects)


def tutor(
    tutor_id: str,
    *,
    specialisations: tuple[str, ...] = (),
    programs: tuple[str, ...] = (),
    municipalities: tuple[str, ...] = (),
    capacity: int = 5,
    load: int = 0,
) -> TutorView:
    return TutorView(tutor_id, specialisations, programs, municipalities, capacity, load)


def seat(
    route_id: str,
    methodist_id: str | None,
    *,
    municipality_id: str = "mun-1",
    competencies: Iterable[str] = ("a",),
) -> Seat:
    return Seat(
        route_id,
        methodist_id,
        teacher(teacher_id=f"t-{route_id}", municipality_id=municipality_id),
        frozenset(competencies),
    )


def draft(
    who: TeacherView,
    deficits: list[CompetencyResult],
    *,
    rules: Rules = RULES,
    completed: Iterable[str] = (),
    **catalogue: Any,
) -> Draft:
    return drafting.draft_route(who, deficits, Catalogue(**catalogue), rules, START, completed)


def of_kind(d: Draft, kind: str) -> list[RouteStep]:
    return [s for s in d.steps if s.kind == kind]


def with_budget(yearly_hours: int) -> Rules:
    return RULES.model_copy(
        update={"budget": RULES.budget.model_copy(update={"yearly_hours": yearly_hours})}
    )


def initial_loads(seats: Iterable[Seat]) -> Counter[str | None]:
    return Counter(s.methodist_id for s in seats)


def apply_moves(loads: Counter[str | None], moves: Iterable[Move]) -> Counter[str | None]:
    """Loads after the moves; the key None counts the unassigned queue."""
    after = Counter(loads)
    for m in moves:
        after[m.from_methodist] -= 1
        after[m.to_methodist] += 1
    return after


# --- deficits and an empty route ----------------------------------------------------------


def test_deficits_are_ordered_critical_first_then_lowest_score() -> None:
    results = [
        deficit("b", 45),
        critical("c", 25),
        deficit("a", 30),
        critical("d", 10),
        CompetencyResult(code="ok", score=80, level=Level.SUFFICIENT),
    ]
    assert [d.code for d in drafting.ordered_deficits(results)] == ["d", "c", "a", "b"]


def test_no_deficits_make_an_empty_route_even_for_a_young_teacher() -> None:
    sufficient = CompetencyResult(code="a", score=80, level=Level.SUFFICIENT)
    d = draft(teacher(young=True), [sufficient], mentors=[mentor("m-1")])
    assert d.steps == [] and d.total_hours == 0 and d.starts_on is None


# --- 1. mentoring --------------------------------------------------------------------------


def test_young_teacher_gets_one_mentoring_step_with_a_mentor_of_the_same_organisation() -> None:
    same_municipality = mentor("m-mun", organization_id="org-2", municipality_id="mun-1")
    same_organisation = mentor("m-org", organization_id="org-1", municipality_id="mun-1", load=2)
    d = draft(
        teacher(young=True),
        [deficit("a"), critical("b")],
        mentors=[same_municipality, same_organisation],
    )
    [step] = of_kind(d, "mentoring")
    assert step.mentor_id == "m-org"
    assert step.competency == "b"  # the most severe deficit
    assert step.hours == RULES.hours.mentoring
    assert "молодой педагог" in step.reason
    assert "из той же организации" in step.reason
    assert "занято мест 2 из 3" in step.reason


def test_mentor_of_the_same_municipality_is_preferred_over_one_from_the_region() -> None:
    region = mentor("m-reg", organization_id="org-2", municipality_id="mun-2")
    municipality = mentor("m-mun", organization_id="org-3", municipality_id="mun-1", load=2)
    [step] = of_kind(
        draft(teacher(young=True), [deficit("a")], mentors=[region, municipality]), "mentoring"
    )
    assert step.mentor_id == "m-mun"
    assert "из того же муниципалитета" in step.reason


def test_teacher_who_is_not_young_gets_no_mentoring() -> None:
    d = draft(
        teacher(young=False), [deficit("a")], mentors=[mentor("m-1", organization_id="org-1")]
    )
    assert of_kind(d, "mentoring") == []


def test_mentoring_without_a_free_mentor_has_no_mentor_and_says_so() -> None:
    full = mentor("m-full", organization_id="org-1", capacity=2, load=2)
    [step] = of_kind(draft(teacher(young=True), [deficit("a")], mentors=[full]), "mentoring")
    assert step.mentor_id is None
    assert "свободного наставника" in step.reason and "назначит методист" in step.reason


# --- 2. internships ------------------------------------------------------------------------


def test_critical_deficit_gets_an_internship_in_the_teachers_municipality_over_a_freer_one() -> (
    None
):
    near = site("s-near", municipality_id="mun-1", load=8)
    far = site("s-far", municipality_id="mun-2", load=0)
    [step] = of_kind(draft(teacher(), [critical("a")], sites=[far, near]), "internship")
    assert step.site_id == "s-near"
    assert step.hours == RULES.hours.internship
    assert "критический дефицит" in step.reason
    assert "в муниципалитете педагога" in step.reason
    assert "подходящих площадок с местами: 2" in step.reason


def test_plain_deficit_gets_no_internship() -> None:
    d = draft(teacher(), [deficit("a")], sites=[site("s-near")])
    assert of_kind(d, "internship") == []


def test_full_site_is_never_chosen_for_an_internship() -> None:
    full_near = site("s-near", municipality_id="mun-1", capacity=5, load=5)
    far = site("s-far", municipality_id="mun-2", capacity=5, load=4)
    [step] = of_kind(draft(teacher(), [critical("a")], sites=[full_near, far]), "internship")
    assert step.site_id == "s-far"
    assert "в другом муниципалитете" in step.reason
    only_full = draft(teacher(), [critical("a")], sites=[full_near])
    assert of_kind(only_full, "internship") == []


def test_site_places_taken_within_one_draft_count() -> None:
    one_place = site("s-1", competencies=("a", "b"), capacity=1)
    d = draft(teacher(), [critical("a"), critical("b")], sites=[one_place])
    assert [s.competency for s in of_kind(d, "internship")] == ["a"]


# --- 3. format for remote municipalities ---------------------------------------------------


def test_remote_municipality_gets_a_distance_program_over_an_equal_in_person_one() -> None:
    programs = [program("p-dist", format="distance"), program("p-live", format="in_person")]
    [step] = of_kind(draft(teacher(remote=True), [deficit("a")], programs=programs), "program")
    assert step.program_id == "p-dist"
    assert "удалённый" in step.reason
    assert "формат подходит муниципалитету" in step.reason


def test_teacher_not_in_a_remote_municipality_gets_the_in_person_program() -> None:
    assert RULES.program_weights.format_near["in_person"] == 0.5
    programs = [program("p-dist", format="distance"), program("p-live", format="in_person")]
    [step] = of_kind(draft(teacher(remote=False), [deficit("a")], programs=programs), "program")
    assert step.program_id == "p-live"
    assert "удалённый" not in step.reason


# --- 4. the Federal registry ---------------------------------------------------------------


def test_federal_registry_program_wins_over_an_equal_regional_one_and_names_the_runner_up() -> None:
    federal = program("p-z-fed", ("digital",), title="Федеральная программа", federal=True)
    regional = program("p-a-reg", ("digital",), title="Региональная программа")
    [step] = of_kind(
        draft(teacher(), [deficit("digital")], programs=[regional, federal]), "program"
    )
    assert step.program_id == "p-z-fed"
    assert "Федеральный реестр" in step.reason
    # The runner-up is named as the one passed over, with what the chosen one has more of.
    assert (
        "подходящих программ: 2; выбрана вместо следующей по баллам «Региональная программа» "
        "(36 ч, очно): входит в Федеральный реестр ДПП (баллы 3,14 против 0,14)"
    ) in step.reason
    assert "лучше" not in step.reason
    assert step.reason.startswith(
        "дефицит по компетенции «Цифровая образовательная среда» (балл 40); "
        "программа «Федеральная программа» (36 ч, очно) адресует компетенцию и подходит "
        "категории слушателей «педагоги общего образования»"
    )


def test_a_competency_the_names_do_not_know_is_shown_as_its_code() -> None:
    [step] = of_kind(draft(teacher(), [deficit("a")], programs=[program("p-1")]), "program")
    assert step.reason.startswith("дефицит по компетенции «a» (балл 40)")


def test_programs_equal_in_score_and_hours_say_the_registry_order_decided() -> None:
    first, second = program("p-1", title="Первая"), program("p-2", title="Вторая")
    [step] = of_kind(draft(teacher(), [deficit("a")], programs=[second, first]), "program")
    assert step.program_id == "p-1"
    assert (
        "выбрана вместо следующей по баллам «Вторая» (36 ч, очно): при равных баллах и "
        "часах — первая по номеру в реестре"
    ) in step.reason


# --- 5. the yearly hours budget ------------------------------------------------------------


def assert_within_periods(d: Draft, rules: Rules) -> None:
    for step in d.steps:
        assert step.period is not None and step.starts_on is not None
        assert rules.budget.period_start(step.period) <= step.starts_on
        assert step.starts_on < rules.budget.period_start(step.period + 1)


def test_steps_over_the_yearly_budget_move_to_the_next_budget_year() -> None:
    rules = with_budget(72)
    programs = [program("p-a", ("a",)), program("p-b", ("b",)), program("p-c", ("c",))]
    d = draft(teacher(), [deficit("a"), deficit("b"), deficit("c")], rules=rules, programs=programs)
    first = d.steps[0].period
    assert first is not None
    moved = [s for s in d.steps if "перенесено" in s.reason]
    assert [s.program_id for s in moved] == ["p-b", "p-c"]
    for step in moved:
        assert step.period is not None and step.period > first
        assert step.starts_on is not None
        assert step.starts_on >= rules.budget.period_start(step.period)
        assert "бюджет 72 ч" in step.reason
    assert d.hours_by_period == {str(first): 40, str(first + 1): 40, str(first + 2): 40}
    assert all(hours <= 72 for hours in d.hours_by_period.values())
    assert sum(d.hours_by_period.values()) == d.total_hours
    assert_within_periods(d, rules)


def test_step_longer_than_the_whole_budget_gets_a_year_of_its_own() -> None:
    rules = with_budget(72)
    programs = [program("p-short", ("a",), hours=36), program("p-long", ("b",), hours=100)]
    d = draft(teacher(), [deficit("a"), deficit("b")], rules=rules, programs=programs)
    by_period: dict[int, list[RouteStep]] = {}
    for step in d.steps:
        assert step.period is not None
        by_period.setdefault(step.period, []).append(step)
    for period, hours in d.hours_by_period.items():
        if hours > 72:
            [alone] = by_period[int(period)]
            assert alone.program_id == "p-long" and alone.hours == 100
            assert "длиннее годового бюджета" in alone.reason
    assert sorted(d.hours_by_period.values()) == [4, 40, 100]
    assert_within_periods(d, rules)


def test_a_long_first_step_stays_in_the_first_year_and_the_rest_moves_on() -> None:
    rules = with_budget(72)
    d = draft(teacher(), [deficit("a")], rules=rules, programs=[program("p-long", hours=100)])
    long_step, support = d.steps
    assert long_step.period is not None and "перенесено" not in long_step.reason
    assert support.period == long_step.period + 1 and "перенесено" in support.reason


# --- 6. the shape of a whole route ---------------------------------------------------------


def full_draft() -> Draft:
    return draft(
        teacher(young=True),
        [critical("a"), deficit("b"), deficit("c", 35)],
        programs=[program("p-a", ("a",), federal=True), program("p-b", ("b",), hours=72)],
        sites=[site("s-1")],
        mentors=[mentor("m-1")],
        communities=[community("c-1", competencies=("a", "b"))],
        tutors=[tutor("tu-1")],
    )


def test_every_step_has_a_reason_and_a_unique_id() -> None:
    d = full_draft()
    kinds = {s.kind for s in d.steps}
    assert kinds == {
        "mentoring",
        "program",
        "post_course_support",
        "internship",
        "community",
        "consultation",
    }
    assert all(s.reason.strip() for s in d.steps)
    assert len({s.step_id for s in d.steps}) == len(d.steps)


def test_each_program_is_followed_by_post_course_support_after_the_gap() -> None:
    d = full_draft()
    programs = of_kind(d, "program")
    assert len(programs) == 2
    for prog in programs:
        n = d.steps.index(prog)
        support = d.steps[n + 1]
        assert support.kind == "post_course_support"
        assert support.follows == prog.step_id
        assert support.program_id == prog.program_id
        assert support.hours == RULES.hours.post_course_support
        assert prog.ends_on is not None and support.starts_on is not None
        gap = timedelta(days=RULES.pace.post_course_gap_days)
        assert support.starts_on >= prog.ends_on + gap
        assert "посткурсовое сопровождение" in support.reason


def test_sequential_steps_do_not_overlap_and_hours_add_up() -> None:
    d = full_draft()
    sequential = [s for s in d.steps if s.kind not in drafting.PARALLEL]
    for before, after in pairwise(sequential):
        assert before.ends_on is not None and after.starts_on is not None
        assert before.ends_on < after.starts_on
    assert d.total_hours == sum(s.hours for s in d.steps)
    assert d.starts_on == START
    assert d.ends_on == max(s.ends_on for s in d.steps if s.ends_on)


def test_parallel_steps_run_for_their_weeks() -> None:
    d = full_draft()
    [mentoring] = of_kind(d, "mentoring")
    assert mentoring.starts_on == START
    weeks = RULES.pace.parallel_weeks["mentoring"]
    assert mentoring.ends_on == START + timedelta(weeks=weeks, days=-1)


# --- 7. what a program must fit ------------------------------------------------------------


def test_completed_program_is_not_chosen_again() -> None:
    programs = [program("p-done", federal=True), program("p-new")]
    [step] = of_kind(
        draft(teacher(), [deficit("a")], programs=programs, completed=["p-done"]), "program"
    )
    assert step.program_id == "p-new"


def test_all_fitting_programs_completed_gives_a_consultation_that_says_so() -> None:
    d = draft(teacher(), [deficit("a")], programs=[program("p-done")], completed=["p-done"])
    assert of_kind(d, "program") == []
    [step] = of_kind(d, "consultation")
    assert step.hours == RULES.hours.consultation
    assert "уже прошёл" in step.reason and "консультации" in step.reason


def test_program_for_other_subjects_is_not_chosen() -> None:
    programs = [program("p-math", subjects=("math",), federal=True), program("p-any")]
    [step] = of_kind(
        draft(teacher(subjects=("history",)), [deficit("a")], programs=programs), "program"
    )
    assert step.program_id == "p-any"
    only_math = draft(teacher(subjects=("history",)), [deficit("a")], programs=programs[:1])
    [consultation] = of_kind(only_math, "consultation")
    assert "в реестре нет программы" in consultation.reason


def test_program_for_the_teachers_subject_earns_the_subject_weight() -> None:
    programs = [program("p-a-any"), program("p-z-math", subjects=("math",))]
    [step] = of_kind(
        draft(teacher(subjects=("math",)), [deficit("a")], programs=programs), "program"
    )
    assert step.program_id == "p-z-math"
    assert "по предмету педагога" in step.reason


def test_program_for_another_audience_is_not_chosen() -> None:
    programs = [program("p-pre", audiences=("preschool",), federal=True), program("p-gen")]
    [step] = of_kind(
        draft(teacher(audience="general"), [deficit("a")], programs=programs), "program"
    )
    assert step.program_id == "p-gen"


# A program already chosen in this route for an earlier deficit is not "completed".
def test_program_taken_by_an_earlier_deficit_is_not_called_completed() -> None:
    d = draft(
        teacher(), [deficit("a", 30), deficit("b", 40)], programs=[program("p-ab", ("a", "b"))]
    )
    [consultation] = of_kind(d, "consultation")
    assert consultation.competency == "b"
    assert "уже прошёл" not in consultation.reason


# --- 8. tutors of federal programs ---------------------------------------------------------


def test_federal_program_gets_a_tutor_who_tutors_it_serves_the_municipality_and_has_room() -> None:
    tutors = [
        tutor("tu-busy", programs=("p-fed",), capacity=1, load=1),
        tutor("tu-elsewhere", programs=("p-fed",), municipalities=("mun-2",)),
        tutor("tu-other-program", programs=("p-other",)),
        tutor("tu-any", programs=()),
        tutor("tu-named", programs=("p-fed",), municipalities=("mun-1",), load=4),
    ]
    programs = [program("p-fed", federal=True)]
    [step] = of_kind(draft(teacher(), [deficit("a")], programs=programs, tutors=tutors), "program")
    assert step.tutor_id == "tu-named"  # names the program: before one tutoring any
    assert "тьютор ЦНППМ" in step.reason
    [step] = of_kind(
        draft(teacher(), [deficit("a")], programs=programs, tutors=tutors[:4]), "program"
    )
    assert step.tutor_id == "tu-any"


def test_regional_program_gets_no_tutor() -> None:
    [step] = of_kind(
        draft(teacher(), [deficit("a")], programs=[program("p-reg")], tutors=[tutor("tu-1")]),
        "program",
    )
    assert step.tutor_id is None
    assert "тьютор" not in step.reason


def test_tutor_at_capacity_is_not_chosen() -> None:
    full = tutor("tu-full", capacity=2, load=2)
    [step] = of_kind(
        draft(teacher(), [deficit("a")], programs=[program("p", federal=True)], tutors=[full]),
        "program",
    )
    assert step.tutor_id is None
    assert "свободного тьютора ЦНППМ нет" in step.reason


def test_tutor_places_taken_within_one_draft_count() -> None:
    programs = [program("p-a", ("a",), federal=True), program("p-b", ("b",), federal=True)]
    d = draft(
        teacher(),
        [deficit("a", 30), deficit("b", 40)],
        programs=programs,
        tutors=[tutor("tu", capacity=1)],
    )
    first, second = of_kind(d, "program")
    assert (first.program_id, first.tutor_id) == ("p-a", "tu")
    assert (second.program_id, second.tutor_id) == ("p-b", None)
    assert "свободного тьютора ЦНППМ нет" in second.reason


# --- 9. communities ------------------------------------------------------------------------


def test_communities_are_limited_per_route() -> None:
    communities = [community(f"c-{code}", competencies=(code,)) for code in "abc"]
    d = draft(teacher(), [deficit("a"), deficit("b"), deficit("c")], communities=communities)
    steps = of_kind(d, "community")
    assert len(steps) == RULES.community.per_route == 2
    assert len({s.community_id for s in steps}) == 2
    none = RULES.model_copy(
        update={"community": RULES.community.model_copy(update={"per_route": 0})}
    )
    assert (
        of_kind(draft(teacher(), [deficit("a")], rules=none, communities=communities), "community")
        == []
    )


def test_municipal_community_of_another_municipality_is_never_offered() -> None:
    other = community("c-other", level="municipal", municipality_id="mun-2")
    d = draft(teacher(municipality_id="mun-1"), [deficit("a")], communities=[other])
    assert of_kind(d, "community") == []
    own = community("c-own", level="municipal", municipality_id="mun-1")
    regional = community("c-a-reg", level="regional")
    [step] = of_kind(
        draft(teacher(), [deficit("a")], communities=[other, regional, own]), "community"
    )
    assert step.community_id == "c-own"  # municipal first by the level order


def test_community_on_the_competency_wins_over_a_subject_only_one() -> None:
    subject_only = community("c-a-subject", competencies=(), subjects=("math",))
    on_competency = community("c-z-competency", competencies=("a",), level="federal")
    [step] = of_kind(
        draft(teacher(), [deficit("a")], communities=[subject_only, on_competency]), "community"
    )
    assert step.community_id == "c-z-competency"
    assert step.reason.endswith("(федеральный уровень) по компетенции")
    [step] = of_kind(draft(teacher(), [deficit("a")], communities=[subject_only]), "community")
    assert step.community_id == "c-a-subject"
    assert "по предмету педагога" in step.reason


def test_a_community_of_other_subjects_is_not_offered_even_on_the_competency() -> None:
    d = draft(
        teacher(subjects=("math",)),
        [deficit("a", 30)],
        communities=[
            community("c-geo", subjects=("geography",)),
            community("c-math", subjects=("math",)),
        ],
    )
    assert [s.community_id for s in of_kind(d, "community")] == ["c-math"]


# --- 10. choosing a methodist --------------------------------------------------------------


def test_eligible_methodists_never_include_one_at_capacity() -> None:
    full = methodist("m-full", specialisations=("a",), capacity=3, load=3)
    free = methodist("m-free", capacity=3, load=2)
    assert [m.methodist_id for m in domain.eligible_methodists(teacher(), {"a"}, [full, free])] == [
        "m-free"
    ]


def test_eligible_methodists_serve_the_municipality_or_the_whole_region() -> None:
    methodists = [
        methodist("m-other", municipalities=("mun-2",)),
        methodist("m-own", municipalities=("mun-1", "mun-2")),
        methodist("m-region", municipalities=()),
    ]
    found = domain.eligible_methodists(teacher(municipality_id="mun-1"), set(), methodists)
    assert {m.methodist_id for m in found} == {"m-own", "m-region"}


def test_eligible_methodists_specialisation_first_then_subject_then_least_loaded() -> None:
    methodists = [
        methodist("m-light", load=0),
        methodist("m-subject", subjects=("math",), load=50),
        methodist("m-special", specialisations=("a",), load=200),
        methodist("m-heavy", load=10),
    ]
    found = domain.eligible_methodists(teacher(subjects=("math",)), {"a", "b"}, methodists)
    assert [m.methodist_id for m in found] == ["m-special", "m-subject", "m-light", "m-heavy"]
    reason = domain.methodist_reason(found[0], teacher(), {"a"})
    assert "специализация" in reason and "нагрузка 201 из 250" in reason


# --- 11. rebalance -------------------------------------------------------------------------


def test_methodist_with_lowered_capacity_gives_its_newest_routes_to_one_with_room() -> None:
    seats = [seat(f"r{n}", "m-a") for n in range(1, 5)]  # oldest first
    methodists = [methodist("m-a", capacity=2), methodist("m-b")]
    moves = domain.plan_rebalance(seats, methodists)
    assert sorted(m.route_id for m in moves) == ["r3", "r4"]
    assert all((m.from_methodist, m.to_methodist) == ("m-a", "m-b") for m in moves)
    assert all("выше ёмкости" in m.reason for m in moves)


def test_methodist_over_capacity_sends_routes_to_the_queue_when_nobody_has_room() -> None:
    seats = [seat("r1", "m-a"), seat("r2", "m-a"), seat("r3", "m-a"), seat("b1", "m-b")]
    methodists = [methodist("m-a", capacity=2), methodist("m-b", capacity=1)]
    moves = domain.plan_rebalance(seats, methodists)
    assert [(m.route_id, m.from_methodist, m.to_methodist) for m in moves] == [("r3", "m-a", None)]


def test_removed_methodist_gives_up_all_its_routes() -> None:
    seats = [seat("r1", "m-gone"), seat("r2", "m-gone"), seat("r3", "m-b")]
    moves = domain.plan_rebalance(seats, [methodist("m-b"), methodist("m-c")])
    assert {m.route_id for m in moves} == {"r1", "r2"}
    assert all(m.from_methodist == "m-gone" and m.to_methodist in ("m-b", "m-c") for m in moves)
    assert all("выбыл" in m.reason for m in moves)
    # each goes to the least loaded at the time: m-c (0), then the two even out
    assert apply_moves(initial_loads(seats), moves)["m-gone"] == 0


def test_queued_routes_are_seated_where_there_is_room() -> None:
    seats = [seat("q1", None), seat("q2", None), seat("q3", None, municipality_id="mun-2")]
    methodists = [
        methodist("m-a", municipalities=("mun-1",), capacity=1),
        methodist("m-b", municipalities=("mun-3",)),
    ]
    moves = domain.plan_rebalance(seats, methodists)
    assert [(m.route_id, m.from_methodist, m.to_methodist) for m in moves] == [("q1", None, "m-a")]
    assert "появилось место" in moves[0].reason


def test_rebalance_evens_the_loads_out() -> None:
    seats = [seat(f"r{n}", "m-a") for n in range(10)]
    moves = domain.plan_rebalance(seats, [methodist("m-a"), methodist("m-b")])
    after = apply_moves(initial_loads(seats), moves)
    assert abs(after["m-a"] - after["m-b"]) <= 1
    assert all(m.to_methodist == "m-b" and "выравнивание" in m.reason for m in moves)


def test_rebalance_never_trades_a_better_specialisation_for_a_lighter_load() -> None:
    seats = [seat(f"r{n}", "m-special", competencies=("a",)) for n in range(10)]
    methodists = [methodist("m-special", specialisations=("a",)), methodist("m-other")]
    assert domain.plan_rebalance(seats, methodists) == []


def test_rebalance_moves_a_route_to_a_better_match_only_when_it_is_lighter() -> None:
    seats = [seat(f"r{n}", "m-other", competencies=("a",)) for n in range(4)]
    methodists = [methodist("m-other"), methodist("m-special", specialisations=("a",))]
    after = apply_moves(initial_loads(seats), domain.plan_rebalance(seats, methodists))
    assert after == Counter({"m-other": 2, "m-special": 2})


# A heavier, better-matching methodist does not block a move to an equal, lighter one:
# A (no specialisation) holds 10 routes on "a", B (specialised) 10, C (none) 0.
def test_rebalance_evens_out_past_a_heavier_better_matching_methodist() -> None:
    seats = [seat(f"a{n}", "m-a", competencies=("a",)) for n in range(10)]
    seats += [seat(f"b{n}", "m-b", competencies=("a",)) for n in range(10)]
    methodists = [methodist("m-a"), methodist("m-b", specialisations=("a",)), methodist("m-c")]
    after = apply_moves(initial_loads(seats), domain.plan_rebalance(seats, methodists))
    assert abs(after["m-a"] - after["m-c"]) <= 1


def test_after_rebalance_no_methodist_exceeds_capacity() -> None:
    seats = [seat(f"a{n}", "m-a") for n in range(6)]
    seats += [seat("b1", "m-b"), seat("g1", "m-gone"), seat("g2", "m-gone")]
    seats += [seat("q1", None), seat("q2", None)]
    methodists = [
        methodist("m-a", capacity=3),
        methodist("m-b", capacity=2),
        methodist("m-c", capacity=2),
    ]
    moves = domain.plan_rebalance(seats, methodists)
    after = apply_moves(initial_loads(seats), moves)
    assert all(after[m.methodist_id] <= m.capacity for m in methodists)
    assert after["m-gone"] == 0
    assert sum(after[m.methodist_id] for m in methodists) == 7  # every place is taken
    assert after[None] == 4


# --- 12. rebalance properties --------------------------------------------------------------

MUNICIPALITIES = ("mun-1", "mun-2", "mun-3")


@st.composite
def rebalance_cases(draw: st.DrawFn) -> tuple[list[Seat], list[MethodistView]]:
    municipalities = MUNICIPALITIES[: draw(st.integers(2, 3))]
    methodists = [
        methodist(
            f"m-{n}",
            capacity=draw(st.integers(1, 5)),
            municipalities=tuple(draw(st.sets(st.sampled_from(municipalities), max_size=2))),
            specialisations=tuple(draw(st.sets(st.sampled_from(("a", "b")), max_size=1))),
        )
        for n in range(draw(st.integers(1, 4)))
    ]
    owners = [m.methodist_id for m in methodists] + [None, "m-gone"]
    seats = [
        seat(
            f"r{n}",
            draw(st.sampled_from(owners)),
            municipality_id=draw(st.sampled_from(municipalities)),
            competencies=draw(st.sets(st.sampled_from(("a", "b")), min_size=1)),
        )
        for n in range(draw(st.integers(0, 20)))
    ]
    return seats, methodists


@settings(max_examples=300, deadline=None)
@given(case=rebalance_cases())
def test_rebalance_keeps_capacity_serves_the_municipality_and_moves_a_route_once(
    case: tuple[list[Seat], list[MethodistView]],
) -> None:
    seats, methodists = case
    moves = domain.plan_rebalance(seats, methodists)
    by_id = {m.methodist_id: m for m in methodists}
    by_route = {s.route_id: s for s in seats}
    after = apply_moves(initial_loads(seats), moves)
    assert all(after[m.methodist_id] <= m.capacity for m in methodists)
    assert after["m-gone"] == 0
    assert len({m.route_id for m in moves}) == len(moves)
    for m in moves:
        assert m.from_methodist == by_route[m.route_id].methodist_id
        assert m.from_methodist != m.to_methodist
        assert m.reason
        if m.to_methodist is not None:
            target = by_id[m.to_methodist]
            assert domain.serves(target, by_route[m.route_id].teacher.municipality_id)


# --- 13. lifecycle -------------------------------------------------------------------------


def test_missing_approvals_are_the_roles_not_yet_approved_in_rule_order() -> None:
    assert domain.missing_approvals([], RULES) == ["teacher", "methodist", "management"]
    assert domain.missing_approvals([{"role": "methodist"}], RULES) == ["teacher", "management"]
    everyone = [{"role": r} for r in ("management", "teacher", "methodist")]
    assert domain.missing_approvals(everyone, RULES) == []
    teacher_only = RULES.model_copy(update={"approvals": ["teacher"]})
    assert domain.missing_approvals([{"role": "teacher"}], teacher_only) == []


def test_agreed_route_starts_on_its_start_date() -> None:
    today = date(2026, 9, 1)
    assert domain.starts_now(today, today)
    assert domain.starts_now(today - timedelta(days=1), today)
    assert not domain.starts_now(today + timedelta(days=1), today)
    assert domain.starts_now(None, today)


def test_route_completes_when_all_live_steps_are_done() -> None:
    today = date(2026, 9, 1)
    done = {"status": "done"}
    assert domain.completion([done, done], None, today, RULES) == "all_steps"
    assert domain.completion([done, {"status": "removed"}], None, today, RULES) == "all_steps"
    assert domain.completion([done, {"status": "active"}], None, today, RULES) is None
    assert domain.completion([{"status": "removed"}], None, today, RULES) is None
    assert domain.completion([], None, today, RULES) is None


def test_route_completes_at_its_end_date_plus_grace_only_by_policy() -> None:
    ends = date(2027, 5, 31)
    grace = timedelta(days=RULES.completion.grace_days)
    open_steps = [{"status": "done"}, {"status": "active"}]
    assert domain.completion(open_steps, ends, ends + grace, RULES) is None
    assert domain.completion(open_steps, ends, ends + grace + timedelta(days=1), RULES) == (
        "end_date"
    )
    off = RULES.model_copy(
        update={"completion": RULES.completion.model_copy(update={"at_end_date": False})}
    )
    assert domain.completion(open_steps, ends, ends + timedelta(days=365), off) is None


def test_course_event_finds_the_earliest_open_program_step_of_its_program() -> None:
    steps = [
        {"step_id": "s1", "kind": "program", "program_id": "p", "status": "done",
         "starts_on": "2026-09-01"},
        {"step_id": "s2", "kind": "post_course_support", "program_id": "p", "status": "active",
         "starts_on": "2026-09-02"},
        {"step_id": "s3", "kind": "program", "program_id": "p", "status": "active",
         "starts_on": date(2027, 2, 1)},
        {"step_id": "s4", "kind": "program", "program_id": "p", "status": "active",
         "starts_on": date(2026, 11, 1)},
        {"step_id": "s5", "kind": "program", "program_id": "p", "status": "removed",
         "starts_on": "2026-10-01"},
        {"step_id": "s6", "kind": "program", "program_id": "q", "status": "active",
         "starts_on": "2026-09-01"},
    ]  # fmt: skip
    found = domain.step_for_course(steps, "p")
    assert found is not None and found["step_id"] == "s4"
    assert domain.step_for_course(steps, "missing") is None
    assert domain.step_for_course(steps[:2], "p") is None


def test_an_internship_completes_the_earliest_open_internship_step_at_its_site() -> None:
    steps = [
        {"step_id": "s1", "kind": "internship", "site_id": "a", "status": "done",
         "starts_on": "2026-09-01"},
        {"step_id": "s2", "kind": "internship", "site_id": "a", "status": "planned",
         "starts_on": "2026-12-01"},
        {"step_id": "s3", "kind": "internship", "site_id": "a", "status": "planned",
         "starts_on": "2026-10-01"},
        {"step_id": "s4", "kind": "internship", "site_id": "b", "status": "planned",
         "starts_on": "2026-09-01"},
        {"step_id": "s5", "kind": "internship", "site_id": "b", "status": "removed",
         "starts_on": "2026-08-01"},
        {"step_id": "s6", "kind": "program", "program_id": "a", "status": "planned",
         "starts_on": "2026-08-01"},
    ]  # fmt: skip
    found = domain.step_for_internship(steps, "a")
    assert found is not None and found["step_id"] == "s3"
    assert domain.step_for_internship(steps[3:], "b") == steps[3]
    assert domain.step_for_internship(steps, "missing") is None
    assert domain.step_for_internship(steps[4:], "b") is None  # removed
    assert domain.step_for_course(steps, "a") == steps[5]  # a program, not the site


def test_a_training_is_named_by_the_teacher_and_its_program_or_site_not_by_its_event() -> None:
    assert domain.training_id("t-1", "course", "p-42") == "t-1:program:p-42"
    assert domain.training_id("t-1", "internship", "site-7") == "t-1:site:site-7"


# --- 14. effectiveness ---------------------------------------------------------------------


def change(code: str, what: str) -> CompetencyChange:
    return CompetencyChange(code=code, change=what, level=Level.SUFFICIENT, score=70)  # type: ignore[arg-type]


def test_attribution_credits_done_steps_with_their_competencys_change() -> None:
    steps = [
        {"step_id": "s1", "kind": "program", "competency": "a", "status": "done",
         "program_id": "p-a"},
        {"step_id": "s2", "kind": "post_course_support", "competency": "a", "status": "done",
         "program_id": "p-a"},
        {"step_id": "s3", "kind": "internship", "competency": "a", "status": "active",
         "site_id": "site-1"},
        {"step_id": "s4", "kind": "community", "competency": "b", "status": "done",
         "community_id": "c-1"},
        {"step_id": "s5", "kind": "consultation", "competency": "c", "status": "done"},
        {"step_id": "s6", "kind": "mentoring", "competency": "d", "status": "done",
         "mentor_id": "m-1"},
        {"step_id": "s7", "kind": "internship", "competency": "d", "status": "done",
         "site_id": "site-2"},
    ]  # fmt: skip
    changes = [change("a", "improved"), change("b", "new"), change("d", "worse")]
    found = {a.step_id: a for a in domain.attribute(steps, changes)}
    assert sorted(found) == ["s1", "s2", "s6", "s7"]
    assert (found["s1"].change, found["s1"].program_id) == ("improved", "p-a")
    assert found["s2"].program_id is None  # only a program step credits its program
    assert (found["s6"].change, found["s6"].mentor_id, found["s6"].kind) == (
        "worse",
        "m-1",
        "mentoring",
    )
    assert (found["s7"].site_id, found["s7"].competency) == ("site-2", "d")
    assert found["s1"].site_id is None and found["s1"].community_id is None


def test_effectiveness_counts_outcomes_and_the_effective_share() -> None:
    result = domain.effectiveness(
        ["closed", "improved", "unchanged", "worse", "improved", "closed"]
    )
    assert result == {
        "evaluated": 6,
        "closed": 2,
        "improved": 2,
        "unchanged": 1,
        "worse": 1,
        "effective_share": 66.7,
    }
    assert domain.effectiveness(["closed", "unchanged", "worse"])["effective_share"] == 33.3
    assert domain.effectiveness(["worse"])["effective_share"] == 0.0


def test_effectiveness_has_no_share_when_nothing_was_evaluated() -> None:
    result = domain.effectiveness([])
    assert result["evaluated"] == 0 and result["effective_share"] is None


# --- 15. the rules file --------------------------------------------------------------------


def shipped() -> dict[str, Any]:
    return json.loads(RULES_FILE.read_text("utf-8"))


def test_shipped_rules_load_and_match_the_file() -> None:
    assert Rules.model_validate(shipped()) == RULES
    assert RULES.version and RULES.approvals == ["teacher", "methodist", "management"]


def test_rules_load_from_a_given_path(tmp_path: Path) -> None:
    raw = shipped() | {"version": "test-1"}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), "utf-8")
    assert domain.load_rules(path).version == "test-1"


def test_rules_with_an_unknown_key_are_refused() -> None:
    with pytest.raises(ValidationError):
        Rules.model_validate(shipped() | {"unknown": 1})
    raw = shipped()
    raw["hours"]["typo_hours"] = 4
    with pytest.raises(ValidationError):
        Rules.model_validate(raw)


@pytest.mark.parametrize("section", ["program_weights", "hours", "pace", "budget", "completion"])
def test_rules_without_a_section_are_refused(section: str) -> None:
    raw = shipped()
    del raw[section]
    with pytest.raises(ValidationError):
        Rules.model_validate(raw)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("budget", "period_starts", "1 октября"),
        ("budget", "yearly_hours", 0),
        ("hours", "consultation", 0),
        ("community", "level_order", ["municipal", "district"]),
    ],
)
def test_rules_with_an_invalid_value_are_refused(section: str, key: str, value: Any) -> None:
    raw = shipped()
    raw[section][key] = value
    with pytest.raises(ValidationError):
        Rules.model_validate(raw)


def test_rules_are_frozen() -> None:
    with pytest.raises(ValidationError):
        RULES.budget.yearly_hours = 1  # type: ignore[misc]


def test_a_kept_ranking_drafts_what_a_fresh_one_drafts_for_every_profile() -> None:
    """The ranking is kept per teacher profile; drafts for teachers of one profile who have
    completed different programs, and for other profiles, are the same with and without it."""
    programs = [
        program("p1", ("a",), federal=True, hours=72),
        program("p2", ("a",), format="distance"),
        program("p3", ("a", "b"), subjects=("math",)),
        program("p4", ("b",), hours=16),
    ]
    kept: dict[Any, Any] = {}
    teachers = [
        (teacher(teacher_id="t-1"), ()),
        (teacher(teacher_id="t-2"), ("p1",)),  # same profile, another history
        (teacher(teacher_id="t-3", remote=True), ()),
        (teacher(teacher_id="t-4", subjects=("history",)), ("p2",)),
    ]
    for round_ in range(2):  # the second round is served from what the first kept
        for person, done in teachers:
            deficits = [critical("a"), deficit("b")]
            fresh = drafting.draft_route(
                person, deficits, Catalogue(programs=programs), RULES, START, done
            )
            cached = drafting.draft_route(
                person,
                deficits,
                Catalogue(programs=programs, rank_cache=kept),
                RULES,
                START,
                done,
            )
            assert cached == fresh, (round_, person.teacher_id)
    assert kept  # it was used
