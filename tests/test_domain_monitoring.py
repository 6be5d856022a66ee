"""Pure rules of monitoring: shares, measures, targets and the shipped KPI catalogue."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from iomflow.monitoring.domain import (
    Catalogue,
    Counts,
    KpiDefinition,
    load_catalogue,
    measures,
    met,
    share,
)

SHIPPED = Path(str(resources.files("iomflow.monitoring").joinpath("data/kpis.json")))


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(SHIPPED)


def kpi(comparison: str, target: float) -> KpiDefinition:
    return KpiDefinition(
        code="k",
        name="Показатель",
        measure="diagnosed_share",
        unit="%",
        comparison=comparison,  # type: ignore[arg-type]
        target=target,
        period="yearly",
        clause="п. 1",
    )


# --- share ---------------------------------------------------------------------------------


def test_share_is_an_exact_percentage() -> None:
    assert share(1, 3) == pytest.approx(33.3333, abs=1e-3)
    assert share(2, 3) == pytest.approx(66.6667, abs=1e-3)
    assert share(1, 8) == 12.5


def test_share_of_everyone_is_one_hundred() -> None:
    assert share(42, 42) == 100.0


def test_share_of_nobody_is_zero() -> None:
    assert share(0, 3000) == 0.0


def test_share_of_an_empty_population_is_none() -> None:
    assert share(0, 0) is None
    assert share(5, 0) is None


# --- measures ------------------------------------------------------------------------------


def test_measures_of_a_region() -> None:
    values = measures(
        Counts(teachers=3000, diagnosed=450, with_route=300, supported=297, max_load=180)
    )
    assert values == {
        "diagnosed_share": 15.0,
        "route_share": 10.0,
        "methodist_support_share": 99.0,
        "methodist_load_max": 180.0,
    }


def test_support_share_is_of_teachers_with_a_route_not_of_all() -> None:
    values = measures(Counts(teachers=1000, diagnosed=10, with_route=4, supported=1, max_load=1))
    assert values["methodist_support_share"] == 25.0


def test_measures_of_an_empty_municipality_have_no_shares() -> None:
    values = measures(Counts(teachers=0, diagnosed=0, with_route=0, supported=0, max_load=0))
    assert values == {
        "diagnosed_share": None,
        "route_share": None,
        "methodist_support_share": None,
        "methodist_load_max": 0.0,
    }


def test_support_share_is_none_without_routes() -> None:
    values = measures(Counts(teachers=50, diagnosed=5, with_route=0, supported=0, max_load=0))
    assert values["diagnosed_share"] == 10.0
    assert values["route_share"] == 0.0
    assert values["methodist_support_share"] is None


def test_load_max_is_a_float() -> None:
    value = measures(Counts(1, 1, 1, 1, 250))["methodist_load_max"]
    assert isinstance(value, float)
    assert value == 250.0


# --- met -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(9.9, False), (10.0, True), (10.1, True), (100.0, True)]
)
def test_at_least_target_is_met_from_the_target_up(value: float, expected: bool) -> None:
    assert met(kpi(">=", 10), value) is expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0.0, True), (250.0, True), (250.5, False), (251.0, False)]
)
def test_at_most_target_is_met_up_to_the_target(value: float, expected: bool) -> None:
    assert met(kpi("<=", 250), value) is expected


def test_no_value_is_neither_met_nor_missed() -> None:
    assert met(kpi(">=", 10), None) is None
    assert met(kpi("<=", 250), None) is None


def test_zero_is_a_value_not_a_missing_one() -> None:
    assert met(kpi(">=", 10), 0.0) is False
    assert met(kpi("<=", 250), 0.0) is True


def test_unknown_comparison_is_refused() -> None:
    with pytest.raises(ValidationError):
        kpi("==", 10)


# --- the shipped catalogue -----------------------------------------------------------------


def test_shipped_catalogue_has_the_four_kpis(catalogue: Catalogue) -> None:
    assert [k.code for k in catalogue.kpis] == [
        "diagnosed_share",
        "route_share",
        "methodist_support_share",
        "methodist_load_max",
    ]


def test_shipped_catalogue_targets(catalogue: Catalogue) -> None:
    by_code = {k.code: k for k in catalogue.kpis}
    assert (by_code["diagnosed_share"].comparison, by_code["diagnosed_share"].target) == (">=", 10)
    assert (by_code["route_share"].comparison, by_code["route_share"].target) == (">=", 10)
    assert (
        by_code["methodist_support_share"].comparison,
        by_code["methodist_support_share"].target,
    ) == (">=", 100)
    assert (by_code["methodist_load_max"].comparison, by_code["methodist_load_max"].target) == (
        "<=",
        250,
    )
    assert by_code["methodist_load_max"].unit == "чел."
    assert by_code["diagnosed_share"].unit == "%"


def test_every_shipped_kpi_names_a_known_measure(catalogue: Catalogue) -> None:
    known = set(measures(Counts(1, 1, 1, 1, 1)))
    assert {k.measure for k in catalogue.kpis} <= known


def test_shipped_catalogue_cites_its_source(catalogue: Catalogue) -> None:
    assert "Иркутской области" in catalogue.source
    assert all(k.clause.startswith("прил. 1") for k in catalogue.kpis)


def test_shipped_kpis_on_a_region_that_meets_everything(catalogue: Catalogue) -> None:
    values = measures(
        Counts(teachers=3000, diagnosed=600, with_route=400, supported=400, max_load=250)
    )
    assert {k.code: met(k, values[k.measure]) for k in catalogue.kpis} == {
        "diagnosed_share": True,
        "route_share": True,
        "methodist_support_share": True,
        "methodist_load_max": True,
    }


def test_shipped_kpis_on_a_region_that_misses_everything(catalogue: Catalogue) -> None:
    values = measures(
        Counts(teachers=3000, diagnosed=290, with_route=10, supported=9, max_load=251)
    )
    assert {k.code: met(k, values[k.measure]) for k in catalogue.kpis} == {
        "diagnosed_share": False,
        "route_share": False,
        "methodist_support_share": False,
        "methodist_load_max": False,
    }


def test_a_share_just_below_the_target_is_not_met(catalogue: Catalogue) -> None:
    [diagnosed] = [k for k in catalogue.kpis if k.code == "diagnosed_share"]
    values = measures(Counts(teachers=3000, diagnosed=299, with_route=0, supported=0, max_load=0))
    assert met(diagnosed, values["diagnosed_share"]) is False


# --- bad catalogues ------------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def test_empty_catalogue_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kpis.json"
    path.write_text(json.dumps({"source": "s", "kpis": []}), encoding="utf-8")
    with pytest.raises(ValidationError):
        load_catalogue(path)


def test_kpi_without_target_is_refused() -> None:
    raw = _raw()
    del raw["kpis"][0]["target"]
    with pytest.raises(ValidationError):
        Catalogue.model_validate(raw)


def test_kpi_with_an_unknown_measure_is_refused() -> None:
    raw = _raw()
    raw["kpis"][0]["measure"] = "diagnosed_shar"
    with pytest.raises(ValidationError):
        Catalogue.model_validate(raw)
