"""Pure rules of diagnostics: the framework file, combining instruments, levels, deficits."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from iomflow.diagnostics.domain import (
    Evidence,
    Framework,
    combine,
    deficits,
    is_complete,
    load_framework,
)
from iomflow.shared.contracts import CompetencyResult, Instrument, Level

SHIPPED = Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))

ST = Instrument.STANDARDIZED_TEST
EXPERT = Instrument.EXPERT_EVALUATION
RESULTS = Instrument.PROFESSIONAL_RESULTS
SELF = Instrument.SELF_DIAGNOSIS
BURNOUT = Instrument.BURNOUT_SURVEY


def _raw() -> dict[str, Any]:
    """A small valid framework (same bands and weights as the shipped one)."""
    return {
        "version": "test-1",
        "title": "Тестовая рамка",
        "groups": [
            {"code": "digital", "name": "Цифровые"},
            {"code": "assessment_literacy", "name": "Оценочные"},
            {"code": "upbringing", "name": "Воспитание"},
        ],
        "competencies": [
            {"code": "digital", "name": "Цифровая среда", "group": "digital"},
            {"code": "assessment", "name": "Оценка", "group": "assessment_literacy"},
            {"code": "upbringing", "name": "Воспитание", "group": "upbringing"},
        ],
        "levels": [
            {"level": "critical_deficit", "below": 40},
            {"level": "deficit", "below": 60},
            {"level": "sufficient", "below": 85},
            {"level": "advanced", "below": 100.0001},
        ],
        "instrument_weights": {
            "standardized_test": 0.5,
            "expert_evaluation": 0.3,
            "professional_results": 0.2,
            "self_diagnosis": 0.1,
        },
        "required_instruments": ["standardized_test", "self_diagnosis"],
        "burnout": {
            "scales": {
                "emotional_exhaustion": "Истощение",
                "depersonalization": "Деперсонализация",
            },
            "bands": [
                {"level": "low", "below": 40},
                {"level": "moderate", "below": 65},
                {"level": "high", "below": 100.0001},
            ],
        },
    }


@pytest.fixture
def framework() -> Framework:
    return Framework.model_validate(_raw())


@pytest.fixture(scope="module")
def shipped() -> Framework:
    return load_framework(SHIPPED)


def _result(code: str, score: float, level: Level) -> CompetencyResult:
    return CompetencyResult(code=code, score=score, level=level)


def _plain(results: list[CompetencyResult]) -> list[CompetencyResult]:
    """Results without their explanation, to compare scores and levels only."""
    return [_result(r.code, r.score, r.level) for r in results]


# --- the shipped framework file -----------------------------------------------------------


def test_shipped_framework_keeps_the_codes_the_registries_use(shipped: Framework) -> None:
    assert shipped.version == "2026.2"
    assert len(shipped.competencies) == 16
    assert shipped.codes >= {
        "subject_content",
        "teaching_methods",
        "psych_pedagogy",
        "upbringing",
        "functional_literacy",
        "assessment",
        "digital",
        "communication",
        "career_guidance",
        "gifted_children",
    }


def test_shipped_framework_competency_codes_are_unique(shipped: Framework) -> None:
    codes = [c.code for c in shipped.competencies]
    assert len(codes) == len(set(codes))


def test_shipped_framework_levels_go_from_critical_to_advanced(shipped: Framework) -> None:
    assert [b.level for b in shipped.levels] == [
        Level.CRITICAL,
        Level.DEFICIT,
        Level.SUFFICIENT,
        Level.ADVANCED,
    ]
    assert [b.below for b in shipped.levels] == [40, 60, 85, 100.0001]


def test_shipped_framework_requires_test_and_self_diagnosis(shipped: Framework) -> None:
    assert shipped.required_instruments == [ST, SELF]
    assert shipped.instrument_weights[ST] == 0.4
    assert shipped.instrument_weights[SELF] == 0.1
    assert BURNOUT not in shipped.instrument_weights


def test_shipped_framework_file_is_the_validated_model(shipped: Framework) -> None:
    raw = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert shipped == Framework.model_validate(raw)


def test_load_framework_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "framework.json"
    path.write_text(json.dumps(_raw(), ensure_ascii=False), encoding="utf-8")
    loaded = load_framework(path)
    assert loaded.version == "test-1"
    assert loaded.codes == {"digital", "assessment", "upbringing"}


def test_load_framework_refuses_an_invalid_file(tmp_path: Path) -> None:
    raw = _raw()
    raw["levels"] = list(reversed(raw["levels"]))
    path = tmp_path / "framework.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValidationError, match="levels must be ordered"):
        load_framework(path)


# --- bad frameworks are refused ------------------------------------------------------------


def test_unordered_levels_are_refused() -> None:
    raw = _raw()
    raw["levels"][0]["below"], raw["levels"][1]["below"] = 60, 40
    with pytest.raises(ValidationError, match="levels must be ordered by their upper bound"):
        Framework.model_validate(raw)


def test_required_instrument_without_weight_is_refused() -> None:
    raw = _raw()
    del raw["instrument_weights"]["self_diagnosis"]
    with pytest.raises(ValidationError, match="required instrument self_diagnosis"):
        Framework.model_validate(raw)


def test_required_instrument_with_zero_weight_is_refused() -> None:
    raw = _raw()
    raw["instrument_weights"]["standardized_test"] = 0
    with pytest.raises(ValidationError, match="no positive weight"):
        Framework.model_validate(raw)


@pytest.mark.parametrize("field", ["competencies", "levels", "required_instruments"])
def test_empty_lists_are_refused(field: str) -> None:
    raw = _raw()
    raw[field] = []
    with pytest.raises(ValidationError):
        Framework.model_validate(raw)


def test_unknown_level_name_is_refused() -> None:
    raw = _raw()
    raw["levels"][0]["level"] = "catastrophic"
    with pytest.raises(ValidationError):
        Framework.model_validate(raw)


def test_unknown_instrument_weight_is_refused() -> None:
    raw = _raw()
    raw["instrument_weights"]["tarot"] = 1.0
    with pytest.raises(ValidationError):
        Framework.model_validate(raw)


def test_negative_weight_of_an_optional_instrument_is_refused() -> None:
    raw = _raw()
    raw["instrument_weights"]["expert_evaluation"] = -0.3
    with pytest.raises(ValidationError):
        Framework.model_validate(raw)


def test_levels_in_reverse_severity_are_refused() -> None:
    raw = _raw()
    labels = [b["level"] for b in raw["levels"]]
    for bound, label in zip(raw["levels"], reversed(labels), strict=True):
        bound["level"] = label
    with pytest.raises(ValidationError):
        Framework.model_validate(raw)


# --- level thresholds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0, Level.CRITICAL),
        (39.9, Level.CRITICAL),
        (40, Level.DEFICIT),
        (59.9, Level.DEFICIT),
        (60, Level.SUFFICIENT),
        (84.9, Level.SUFFICIENT),
        (85, Level.ADVANCED),
        (100, Level.ADVANCED),
    ],
)
def test_level_bounds_are_exclusive_upper_limits(
    shipped: Framework, score: float, level: Level
) -> None:
    assert shipped.level(score) is level


def test_score_above_every_bound_gets_the_last_level(framework: Framework) -> None:
    assert framework.level(150) is Level.ADVANCED


# --- completeness --------------------------------------------------------------------------


def test_diagnosis_is_complete_with_every_required_instrument(framework: Framework) -> None:
    required = framework.required_instruments
    assert is_complete(required, {ST, SELF}) is True
    assert is_complete(required, {ST, SELF, EXPERT, BURNOUT}) is True


def test_diagnosis_is_incomplete_without_a_required_instrument(framework: Framework) -> None:
    required = framework.required_instruments
    assert is_complete(required, {ST}) is False
    assert is_complete(required, {SELF, EXPERT, RESULTS}) is False
    assert is_complete(required, set()) is False


# --- combining instruments -----------------------------------------------------------------


def test_combine_is_the_weighted_mean(framework: Framework) -> None:
    results = _plain(
        combine(
            framework,
            [Evidence(ST, {"digital": 30}), Evidence(SELF, {"digital": 90})],
        )
    )
    # (0.5*30 + 0.1*90) / 0.6 = 40.0
    assert results == [_result("digital", 40.0, Level.DEFICIT)]


def test_combine_rounds_to_one_decimal(framework: Framework) -> None:
    results = combine(
        framework,
        [Evidence(ST, {"digital": 50}), Evidence(EXPERT, {"digital": 51})],
    )
    # (25 + 15.3) / 0.8 = 50.375
    assert results[0].score == 50.4


def test_single_instrument_score_is_kept_as_is(framework: Framework) -> None:
    [result] = _plain(combine(framework, [Evidence(EXPERT, {"assessment": 72.5})]))
    assert result == _result("assessment", 72.5, Level.SUFFICIENT)


def test_combine_follows_framework_order_and_skips_unscored(framework: Framework) -> None:
    results = combine(
        framework,
        [Evidence(ST, {"upbringing": 20, "digital": 90}), Evidence(SELF, {"upbringing": 20})],
    )
    assert [(r.code, r.score, r.level) for r in results] == [
        ("digital", 90.0, Level.ADVANCED),
        ("upbringing", 20.0, Level.CRITICAL),
    ]


def test_codes_outside_the_framework_are_ignored(framework: Framework) -> None:
    results = combine(framework, [Evidence(ST, {"digital": 70, "astrology": 5})])
    assert [r.code for r in results] == ["digital"]


def test_instrument_without_weight_does_not_count(framework: Framework) -> None:
    results = _plain(
        combine(
            framework,
            [Evidence(ST, {"digital": 80}), Evidence(BURNOUT, {"digital": 0, "assessment": 0})],
        )
    )
    assert results == [_result("digital", 80.0, Level.SUFFICIENT)]


def test_combine_of_no_evidence_is_empty(framework: Framework) -> None:
    assert combine(framework, []) == []


def test_combined_level_uses_the_rounded_score(framework: Framework) -> None:
    # 39.96 is shown as 40.0, and 40.0 is a deficit, not a critical one
    [result] = combine(framework, [Evidence(ST, {"digital": 39.96})])
    assert result.score == 40.0
    assert result.level is Level.DEFICIT


# --- deficits ------------------------------------------------------------------------------


def test_deficits_drop_sufficient_and_advanced() -> None:
    results = [
        _result("a", 70, Level.SUFFICIENT),
        _result("b", 90, Level.ADVANCED),
        _result("c", 50, Level.DEFICIT),
    ]
    assert [r.code for r in deficits(results)] == ["c"]


def test_critical_deficit_comes_first() -> None:
    results = [
        _result("digital", 41, Level.DEFICIT),
        _result("upbringing", 39, Level.CRITICAL),
    ]
    assert [r.code for r in deficits(results)] == ["upbringing", "digital"]


def test_critical_deficit_comes_first_even_with_a_higher_score() -> None:
    # levels decide before scores (a framework's bands could be anything)
    results = [
        _result("digital", 10, Level.DEFICIT),
        _result("upbringing", 30, Level.CRITICAL),
    ]
    assert [r.code for r in deficits(results)] == ["upbringing", "digital"]


def test_deficits_of_one_level_are_lowest_score_then_code_first() -> None:
    results = [
        _result("b", 55, Level.DEFICIT),
        _result("c", 45, Level.DEFICIT),
        _result("a", 55, Level.DEFICIT),
    ]
    assert [r.code for r in deficits(results)] == ["c", "a", "b"]


def test_no_deficits_when_everything_is_sufficient() -> None:
    assert deficits([_result("a", 60, Level.SUFFICIENT)]) == []


def test_end_to_end_diagnosis_of_the_shipped_framework(shipped: Framework) -> None:
    evidence = [
        Evidence(ST, {"digital": 20, "assessment": 50, "upbringing": 90}),
        Evidence(SELF, {"digital": 50, "assessment": 50, "upbringing": 90}),
    ]
    assert is_complete(shipped.required_instruments, {e.instrument for e in evidence})
    found = _plain(deficits(combine(shipped, evidence)))
    # digital: (8 + 5) / 0.5 = 26.0 -> critical; assessment: 50 -> deficit
    assert found == [
        _result("digital", 26.0, Level.CRITICAL),
        _result("assessment", 50.0, Level.DEFICIT),
    ]
