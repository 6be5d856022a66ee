"""The demo says every KPI's target in words, whatever its comparison (the monitoring
catalogue's ``>=``, ``<=``, ``growth`` and ``decline``) or none, and every status."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from iomflow.cli import demo
from iomflow.monitoring import wording as kpi_words
from iomflow.monitoring.domain import Kpi, Status

COUNTS = ("teachers", "diagnosed", "with_route", "supported")


def kpi(comparison: str, target: float | None = 80.0, status: str = "on_track") -> dict[str, Any]:
    return {
        "name": "Доля",
        "value": 12.5,
        "unit": "%",
        "comparison": comparison,
        "target": target,
        "status": status,
    }


@pytest.mark.parametrize(
    ("comparison", "said"),
    [
        (">=", "не менее 80"),
        ("<=", "не более 80"),
        ("growth", "рост к прошлому году"),
        ("decline", "снижение к прошлому году"),
    ],
)
def test_every_comparison_in_words(comparison: str, said: str) -> None:
    assert demo.target_words(kpi(comparison)).startswith(said)
    assert f"цель — {said}" in demo.kpi_line(kpi(comparison))


def test_every_comparison_of_the_catalogue_is_known() -> None:
    assert set(get_args(Kpi.model_fields["comparison"].annotation)) <= set(kpi_words.COMPARED)


def test_no_target_and_every_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.target_words(kpi(">=", None)) == "без цели"
    statuses = get_args(Status)
    region = {
        "kpis": [kpi("decline", status=s) for s in statuses],
        "counts": dict.fromkeys(COUNTS, 1),
    }
    for s in statuses:
        assert demo.kpi_line(kpi("<=", status=s))
    demo.print_kpis({"as_of": "2026-12-01T00:00:00", "region": region, "municipalities": []})
    printed = capsys.readouterr().out
    assert "снижение к прошлому году" in printed and "без цели на этом уровне" in printed
