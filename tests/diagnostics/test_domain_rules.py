"""Pure rules of diagnostics beyond the basics: combination rules with their explanation
(property tests), items and experts, applicability, burnout, re-diagnosis changes."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from iomflow.diagnostics.domain import (
    SCORED,
    Evidence,
    Framework,
    ResultError,
    burnout,
    changes,
    combine,
    instrument_scores,
    load_framework,
)
from iomflow.shared.contracts import (
    Audience,
    CompetencyResult,
    Instrument,
    ItemScore,
    Level,
)

SHIPPED = load_framework(
    Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))
)
ST, EXPERT, RESULTS, SELF = (
    Instrument.STANDARDIZED_TEST,
    Instrument.EXPERT_EVALUATION,
    Instrument.PROFESSIONAL_RESULTS,
    Instrument.SELF_DIAGNOSIS,
)
RULES = ["weighted_mean", "highest", "latest", "prioritised"]


def with_rule(rule: str) -> Framework:
    combination = {"rule": rule, "version": 2, "priority": [EXPERT, ST]}
    return Framework.model_validate({**SHIPPED.model_dump(mode="json"), "combination": combination})


FRAMEWORKS = {rule: with_rule(rule) for rule in RULES}
score = st.floats(min_value=0, max_value=100, allow_nan=False)
evidence_lists = st.lists(
    st.tuples(st.sampled_from(SCORED), st.sampled_from([None, "e1", "e2"]), score),
    min_size=1,
    max_size=8,
)


def as_evidence(raw: list[tuple[Instrument, str | None, float]]) -> list[Evidence]:
    return [
        Evidence(i, {"digital": s}, result_id=f"r{n}", seq=n, expert_id=x)
        for n, (i, x, s) in enumerate(raw)
    ]


# --- property tests of the combination rule -----------------------------------------------


@settings(max_examples=300, deadline=None)
@given(raw=evidence_lists, pick=st.integers(min_value=0), rise=score, rule=st.sampled_from(RULES))
def test_a_higher_score_never_lowers_the_level(
    raw: list[tuple[Instrument, str | None, float]], pick: int, rise: float, rule: str
) -> None:
    framework = FRAMEWORKS[rule]
    i = pick % len(raw)
    higher = list(raw)
    higher[i] = (raw[i][0], raw[i][1], min(100.0, raw[i][2] + rise))
    [before] = combine(framework, as_evidence(raw))
    [after] = combine(framework, as_evidence(higher))
    severity = [b.level for b in framework.levels]
    assert after.score >= before.score
    assert severity.index(after.level) >= severity.index(before.level)


@settings(max_examples=300, deadline=None)
@given(raw=evidence_lists, data=st.data())
def test_weighted_mean_does_not_depend_on_the_order_of_evidence(
    raw: list[tuple[Instrument, str | None, float]], data: st.DataObject
) -> None:
    evidence = as_evidence(raw)
    shuffled = data.draw(st.permutations(evidence))
    assert combine(SHIPPED, evidence) == combine(SHIPPED, shuffled)


@settings(max_examples=300, deadline=None)
@given(raw=evidence_lists, rule=st.sampled_from(RULES))
@example(raw=[(ST, None, 0.0), (SELF, None, 3.75)], rule="weighted_mean")  # 0.75 -> 0.8
def test_explanation_weights_sum_to_one(
    raw: list[tuple[Instrument, str | None, float]], rule: str
) -> None:
    [result] = combine(FRAMEWORKS[rule], as_evidence(raw))
    assert math.isclose(sum(e.weight for e in result.evidence), 1.0, abs_tol=1e-9)
    assert all(0 < e.weight <= 1 for e in result.evidence)
    assert result.rule == f"{rule}/2"
    # the combined score is what the explanation says it is, rounded to a tenth (a mean of
    # exactly x.x5 moves by 0.05 and a float's error)
    explained = sum(e.weight * e.score for e in result.evidence)
    assert result.score == pytest.approx(explained, abs=0.05 + 1e-9)


# --- worked examples of each rule --------------------------------------------------------


def test_weighted_mean_explains_every_instrument_and_its_share() -> None:
    evidence = [
        Evidence(ST, {"digital": 30}, "r-test", 0),
        Evidence(EXPERT, {"digital": 60}, "r-e1", 1, "e1"),
        Evidence(EXPERT, {"digital": 80}, "r-e2", 2, "e2"),
        Evidence(RESULTS, {"digital": 50}, "r-res", 3),
        Evidence(SELF, {"digital": 90}, "r-self", 4),
    ]
    [result] = combine(SHIPPED, evidence)
    shares = {(e.instrument, e.expert_id): round(e.weight, 4) for e in result.evidence}
    # weights 0.4 / 0.3 shared by two experts / 0.2 / 0.1 over a total of 1.0
    assert shares == {
        (ST, None): 0.4,
        (EXPERT, "e1"): 0.15,
        (EXPERT, "e2"): 0.15,
        (RESULTS, None): 0.2,
        (SELF, None): 0.1,
    }
    assert result.score == 0.4 * 30 + 0.15 * 60 + 0.15 * 80 + 0.2 * 50 + 0.1 * 90  # 52.0
    assert result.level is Level.DEFICIT and result.rule == "weighted_mean/1"


def test_a_retake_replaces_the_earlier_result_of_the_same_instrument() -> None:
    evidence = [
        Evidence(ST, {"digital": 20}, "first", 0),
        Evidence(ST, {"digital": 70}, "retake", 1),
    ]
    [result] = combine(SHIPPED, evidence)
    assert result.score == 70 and [e.result_id for e in result.evidence] == ["retake"]


def test_highest_latest_and_prioritised_rules_pick_one_piece_of_evidence() -> None:
    # Each rule picks another piece: the highest (self, 90) came in the middle, the latest
    # (the test, 30) is the lowest, the priority list puts the expert first. Swapping any
    # two rules fails this test.
    evidence = [
        Evidence(EXPERT, {"digital": 55}, "expert", 0, "e1"),
        Evidence(SELF, {"digital": 90}, "self", 1),
        Evidence(ST, {"digital": 30}, "test", 2),
    ]
    found = {
        rule: combine(FRAMEWORKS[rule], evidence)[0]
        for rule in ("highest", "latest", "prioritised")
    }
    picked = {rule: [(e.result_id, e.weight) for e in r.evidence] for rule, r in found.items()}
    assert picked == {
        "highest": [("self", 1.0)],
        "latest": [("test", 1.0)],
        "prioritised": [("expert", 1.0)],
    }
    assert {rule: r.score for rule, r in found.items()} == {
        "highest": 90,
        "latest": 30,
        "prioritised": 55,
    }


def test_latest_goes_by_arrival_not_by_the_order_given() -> None:
    # the latest result (seq 5) is listed first and is not the highest
    evidence = [
        Evidence(SELF, {"digital": 40}, "late", 5),
        Evidence(ST, {"digital": 80}, "early", 1),
    ]
    [latest] = combine(FRAMEWORKS["latest"], evidence)
    [highest] = combine(FRAMEWORKS["highest"], evidence)
    assert (latest.score, [e.result_id for e in latest.evidence]) == (40, ["late"])
    assert (highest.score, [e.result_id for e in highest.evidence]) == (80, ["early"])


def test_per_competency_weights_override_the_framework() -> None:
    raw = SHIPPED.model_dump(mode="json")
    for c in raw["competencies"]:
        if c["code"] == "digital":
            c["weights"] = {"self_diagnosis": 0.0}
    framework = Framework.model_validate(raw)
    [result] = combine(
        framework, [Evidence(ST, {"digital": 40}, "t"), Evidence(SELF, {"digital": 100}, "s")]
    )
    assert result.score == 40 and [e.instrument for e in result.evidence] == [ST]


def test_competencies_that_do_not_apply_to_the_teacher_are_left_out() -> None:
    scores = {"management_quality": 20.0, "preschool_environment": 20.0, "digital": 20.0}
    teacher = SHIPPED.applicable(is_manager=False, audience=Audience.GENERAL)
    director = SHIPPED.applicable(is_manager=True, audience=Audience.GENERAL)
    kindergarten = SHIPPED.applicable(is_manager=False, audience=Audience.PRESCHOOL)
    codes = {
        name: [r.code for r in combine(SHIPPED, [Evidence(ST, scores, "r")], applicable)]
        for name, applicable in (
            ("teacher", teacher),
            ("director", director),
            ("kindergarten", kindergarten),
        )
    }
    assert codes == {
        "teacher": ["digital"],
        "director": ["digital", "management_quality"],
        "kindergarten": ["preschool_environment", "digital"],
    }


# --- one result's scores -----------------------------------------------------------------


def test_items_count_as_the_share_of_their_points() -> None:
    items = [
        ItemScore(item="A1", competency="digital", score=1, max_score=1),
        ItemScore(item="A2", competency="digital", score=0, max_score=1),
        ItemScore(item="B1", competency="assessment", score=1, max_score=2),
        ItemScore(item="B2", competency="assessment", score=2, max_score=2),
    ]
    assert instrument_scores(SHIPPED, ST, {"upbringing": 64}, items) == {
        "digital": 50.0,
        "assessment": 75.0,
        "upbringing": 64,
    }


@pytest.mark.parametrize(
    ("instrument", "scores", "items", "code"),
    [
        (ST, {"astrology": 50}, [], "unknown_competency"),
        (
            ST,
            {},
            [ItemScore(item="X", competency="astrology", score=1, max_score=1)],
            "unknown_competency",
        ),
        (
            ST,
            {"digital": 50},
            [ItemScore(item="X", competency="digital", score=1, max_score=1)],
            "conflicting_scores",
        ),
        (Instrument.BURNOUT_SURVEY, {"digital": 50}, [], "unknown_scale"),
    ],
)
def test_results_that_break_the_framework_are_refused_with_a_code(
    instrument: Instrument, scores: dict[str, float], items: list[ItemScore], code: str
) -> None:
    with pytest.raises(ResultError) as caught:
        instrument_scores(SHIPPED, instrument, scores, items)
    assert caught.value.code == code and caught.value.detail


def test_burnout_is_the_mean_of_its_scales_on_its_own_bands() -> None:
    assert burnout(SHIPPED, {"emotional_exhaustion": 80, "depersonalization": 50}).model_dump() == {
        "index": 65.0,
        "level": "high",
        "scales": {"emotional_exhaustion": 80, "depersonalization": 50},
    }
    assert burnout(SHIPPED, {"emotional_exhaustion": 20}).level == "low"


# --- re-diagnosis: a worked example ------------------------------------------------------


def test_rediagnosis_changes_closed_improved_unchanged_worse_and_new() -> None:
    def r(code: str, score: float) -> CompetencyResult:
        return CompetencyResult(code=code, score=score, level=SHIPPED.level(score))

    before = [
        r("digital", 35),  # critical deficit ...
        r("assessment", 45),  # deficit ...
        r("upbringing", 62),  # sufficient ...
        r("communication", 70),
        r("career_guidance", 88),
    ]
    now = [
        r("digital", 72),  # ... now sufficient: closed
        r("assessment", 58),  # ... still a deficit, 13 points up: improved
        r("upbringing", 64),  # ... 2 points, within the tolerance of 5: unchanged
        r("communication", 55),  # sufficient -> deficit: worse
        r("career_guidance", 80),  # advanced -> sufficient: worse
        r("gifted_children", 50),  # not assessed before: new
    ]
    found = {c.code: (c.change, c.previous_level, c.level) for c in changes(SHIPPED, before, now)}
    assert found == {
        "digital": ("closed", Level.CRITICAL, Level.SUFFICIENT),
        "assessment": ("improved", Level.DEFICIT, Level.DEFICIT),
        "upbringing": ("unchanged", Level.SUFFICIENT, Level.SUFFICIENT),
        "communication": ("worse", Level.SUFFICIENT, Level.DEFICIT),
        "career_guidance": ("worse", Level.ADVANCED, Level.SUFFICIENT),
        "gifted_children": ("new", None, Level.DEFICIT),
    }


def test_critical_to_deficit_is_an_improvement_not_a_closure() -> None:
    before = [CompetencyResult(code="digital", score=30, level=Level.CRITICAL)]
    now = [CompetencyResult(code="digital", score=45, level=Level.DEFICIT)]
    [change] = changes(SHIPPED, before, now)
    assert change.change == "improved"
