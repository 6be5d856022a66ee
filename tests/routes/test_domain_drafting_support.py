"""Pure rules of drafting with the support outside a route (issue 16): a prevention step
for a high burnout level, no second mentor for a young teacher already in a school's
mentoring pair, and consultations citing an effective practice of the bank. No I/O."""

from __future__ import annotations

from datetime import date
from typing import Any

from iomflow.routes import domain, drafting
from iomflow.routes.domain import (
    Catalogue,
    CommunityView,
    Draft,
    PairView,
    PracticeView,
    TeacherView,
    index_practices,
)
from iomflow.shared.contracts import BurnoutResult, CompetencyChange, RouteStep
from routes.test_domain_drafting import (
    RULES,
    START,
    critical,
    deficit,
    mentor,
    program,
    teacher,
)

HIGH = BurnoutResult(index=72.5, level="high", scales={"exhaustion": 80.0, "cynicism": 65.0})
MODERATE = BurnoutResult(index=48.0, level="moderate", scales={"exhaustion": 48.0})


def prevention_community(
    community_id: str,
    *,
    level: str = "regional",
    municipality_id: str | None = None,
    subjects: tuple[str, ...] = (),
    themes: tuple[str, ...] = ("burnout_prevention",),
) -> CommunityView:
    return CommunityView(
        community_id,
        f"Сообщество {community_id}",
        level,
        municipality_id,
        subjects,
        (),
        themes,
    )


def practice(
    practice_id: str,
    *,
    competencies: tuple[str, ...] = ("a",),
    municipality_id: str = "mun-1",
    themes: tuple[str, ...] = (),
    year: int = 2025,
) -> PracticeView:
    return PracticeView(
        practice_id,
        f"Практика {practice_id}",
        "org-7",
        municipality_id,
        competencies,
        themes,
        year,
    )


def pair(
    pair_id: str = "pair-1",
    *,
    mentee_id: str = "t-1",
    kind: str = "young_teacher",
    ends_on: date | None = None,
) -> PairView:
    return PairView(
        pair_id, "mentor-7", mentee_id, "org-1", kind, date(2026, 1, 10), ends_on, "методика"
    )


def draft(
    who: TeacherView,
    deficits: list[Any],
    *,
    burnout: BurnoutResult | None = None,
    pairs: tuple[PairView, ...] = (),
    **catalogue: Any,
) -> Draft:
    return drafting.draft_route(
        who, deficits, Catalogue(**catalogue), RULES, START, burnout=burnout, pairs=pairs
    )


def prevention_steps(d: Draft) -> list[RouteStep]:
    return [s for s in d.steps if s.purpose == "burnout_prevention"]


# --- burnout -------------------------------------------------------------------------------


def test_high_burnout_adds_a_prevention_community_with_its_index_in_the_reason() -> None:
    d = draft(
        teacher(),
        [deficit("a")],
        burnout=HIGH,
        programs=[program("p1")],
        communities=[prevention_community("c-prev")],
    )
    (step,) = prevention_steps(d)
    assert step.kind == "community"
    assert step.community_id == "c-prev"
    assert step.competency == RULES.burnout.competency == "psych_pedagogy"
    assert step.hours == RULES.burnout.community_hours
    assert "высокий уровень профессионального выгорания" in step.reason
    assert "индекс 72,5 из 100" in step.reason
    assert step.starts_on is not None  # paced like any step
    # the deficit's own steps are still there, for their deficit
    assert [s.kind for s in d.steps if s.purpose == "deficit"] == ["program", "post_course_support"]


def test_moderate_or_no_burnout_adds_no_prevention_step() -> None:
    for burnout in (MODERATE, None):
        d = draft(
            teacher(),
            [deficit("a")],
            burnout=burnout,
            communities=[prevention_community("c-prev")],
        )
        assert prevention_steps(d) == []


def test_prevention_community_of_the_teachers_municipality_goes_before_a_regional_one() -> None:
    d = draft(
        teacher(),
        [deficit("a")],
        burnout=HIGH,
        communities=[
            prevention_community("c-reg"),
            prevention_community("c-other", level="municipal", municipality_id="mun-2"),
            prevention_community("c-mine", level="municipal", municipality_id="mun-1"),
            prevention_community("c-fed", level="federal"),
        ],
    )
    (step,) = prevention_steps(d)
    assert step.community_id == "c-mine"
    assert "муниципальный уровень" in step.reason


def test_regional_prevention_community_before_federal_and_other_themes_do_not_count() -> None:
    d = draft(
        teacher(),
        [deficit("a")],
        burnout=HIGH,
        communities=[
            prevention_community("c-fed", level="federal"),
            prevention_community("c-other-theme", themes=("digital_environment",)),
            prevention_community("c-elsewhere", level="municipal", municipality_id="mun-2"),
            prevention_community("c-reg"),
        ],
    )
    assert prevention_steps(d)[0].community_id == "c-reg"


def test_without_a_prevention_community_a_consultation_is_the_prevention_step() -> None:
    d = draft(
        teacher(),
        [deficit("a")],
        burnout=HIGH,
        communities=[prevention_community("c-other", themes=("subject",))],
    )
    (step,) = prevention_steps(d)
    assert step.kind == "consultation"
    assert step.hours == RULES.burnout.consultation_hours
    assert "консультации регионального методиста" in step.reason
    assert "индекс 72,5" in step.reason
    assert step.practice_id is None


def test_the_prevention_consultation_cites_a_practice_of_the_prevention_theme() -> None:
    bank = [
        practice("pr-x", competencies=("other",), municipality_id="mun-5", themes=("subject",)),
        practice("pr-prev", competencies=(), themes=("burnout_prevention",)),
    ]
    d = draft(teacher(), [deficit("a")], burnout=HIGH, practices=bank)
    (step,) = prevention_steps(d)
    assert step.practice_id == "pr-prev"
    assert "«Практика pr-prev»" in step.reason


def test_the_prevention_community_does_not_use_up_the_routes_communities_for_deficits() -> None:
    deficit_communities = [
        CommunityView(f"c{i}", f"С{i}", "regional", None, (), ("a", "b", "c"))
        for i in range(RULES.community.per_route)
    ]
    d = draft(
        teacher(),
        [deficit("a"), deficit("b"), deficit("c")],
        burnout=HIGH,
        communities=[prevention_community("c-prev"), *deficit_communities],
    )
    communities = [s for s in d.steps if s.kind == "community"]
    assert [s.community_id for s in communities if s.purpose == "deficit"] == [
        c.community_id for c in deficit_communities
    ]
    assert [s.community_id for s in prevention_steps(d)] == ["c-prev"]


def test_a_diagnosis_without_deficits_drafts_nothing_even_with_high_burnout() -> None:
    d = draft(teacher(), [], burnout=HIGH, communities=[prevention_community("c-prev")])
    assert d.steps == []


def test_a_done_prevention_step_is_not_credited_to_its_competency() -> None:
    steps = [
        {"step_id": "s1", "kind": "community", "competency": "psych_pedagogy", "status": "done"},
        {
            "step_id": "s2",
            "kind": "community",
            "competency": "psych_pedagogy",
            "status": "done",
            "purpose": "burnout_prevention",
        },
    ]
    change = CompetencyChange(
        code="psych_pedagogy", change="improved", level="sufficient", score=80
    )
    assert [a.step_id for a in domain.attribute(steps, [change])] == ["s1"]


def test_the_prevention_competency_is_a_code_of_the_framework() -> None:
    from iomflow.routes import wording

    assert RULES.burnout.competency in wording.competency_names()


# --- mentoring pairs -----------------------------------------------------------------------


def test_a_young_teacher_in_an_active_pair_gets_no_mentoring_step_and_the_route_says_why() -> None:
    young = teacher(young=True)
    d = draft(young, [deficit("a")], mentors=[mentor("m-1")], pairs=(pair(),))
    assert [s for s in d.steps if s.kind == "mentoring"] == []
    assert "в паре наставничества «pair-1»" in d.steps[0].reason
    assert "наставник mentor-7" in d.steps[0].reason
    assert d.notes and "pair-1" in d.notes[0]


def test_a_pair_ended_another_kind_or_another_mentee_leaves_the_mentoring_step() -> None:
    young = teacher(young=True)
    for other in (
        pair(ends_on=date(2026, 8, 31)),  # ended before the route starts (START)
        pair(kind="peer"),
        pair(kind="management_team"),
        pair(mentee_id="t-2"),
    ):
        d = draft(young, [deficit("a")], mentors=[mentor("m-1")], pairs=(other,))
        (step,) = [s for s in d.steps if s.kind == "mentoring"]
        assert step.mentor_id == "m-1"
        assert d.notes == []


def test_a_pair_ending_on_the_first_day_still_counts() -> None:
    d = draft(
        teacher(young=True),
        [deficit("a")],
        mentors=[mentor("m-1")],
        pairs=(pair(ends_on=START),),
    )
    assert [s for s in d.steps if s.kind == "mentoring"] == []
    assert f"по {START:%d.%m.%Y}" in d.steps[0].reason


def test_a_teacher_not_young_is_untouched_by_a_pair() -> None:
    d = draft(teacher(), [deficit("a")], mentors=[mentor("m-1")], pairs=(pair(),))
    assert d.notes == []
    assert "наставничества" not in d.steps[0].reason


# --- the bank of practices -----------------------------------------------------------------


def test_a_consultation_cites_a_practice_on_its_competency_of_the_teachers_municipality() -> None:
    bank = [
        practice("pr-far", municipality_id="mun-2", year=2026),
        practice("pr-near", year=2024),
        practice("pr-off", competencies=("b",)),
    ]
    d = draft(teacher(), [deficit("a")], practices=bank)
    (step,) = [s for s in d.steps if s.kind == "consultation"]
    assert step.practice_id == "pr-near"
    assert "эффективную практику «Практика pr-near»" in step.reason
    assert "муниципалитета педагога" in step.reason


def test_a_consultation_cites_a_practice_of_the_region_when_the_municipality_has_none() -> None:
    bank = [
        practice("pr-old", municipality_id="mun-2", year=2023),
        practice("pr-new", municipality_id="mun-3", year=2025),
    ]
    catalogue = Catalogue(practices=bank, practice_index=index_practices(bank))
    d = drafting.draft_route(teacher(), [deficit("a")], catalogue, RULES, START)
    (step,) = [s for s in d.steps if s.kind == "consultation"]
    assert step.practice_id == "pr-new"
    assert "другого муниципалитета региона" in step.reason


def test_no_matching_practice_leaves_the_consultation_without_one() -> None:
    d = draft(teacher(), [critical("a")], practices=[practice("pr-b", competencies=("b",))])
    (step,) = [s for s in d.steps if s.kind == "consultation"]
    assert step.practice_id is None
    assert "практик" not in step.reason


def test_a_program_step_cites_no_practice() -> None:
    d = draft(teacher(), [deficit("a")], programs=[program("p1")], practices=[practice("pr")])
    assert all(s.practice_id is None for s in d.steps)


def test_the_practice_index_finds_what_a_scan_finds() -> None:
    bank = [
        practice("p1", competencies=("a", "b"), themes=("subject",)),
        practice("p2", competencies=("b",), themes=("burnout_prevention", "subject")),
    ]
    indexed = Catalogue(practices=bank, practice_index=index_practices(bank))
    scanned = Catalogue(practices=bank)
    for key, by in (("a", "competency"), ("b", "competency"), ("subject", "theme"), ("x", "theme")):
        assert list(indexed.practices_on(key, by)) == list(scanned.practices_on(key, by))
