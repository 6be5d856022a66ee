"""The analytics breakdowns and workbook as pure functions: areas the read models do not
name (an organisation removed from the registries) still count and still print."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import openpyxl

from iomflow.diagnostics.analytics import Level, by_area, by_competency, workbook
from iomflow.diagnostics.domain import load_framework

FRAMEWORK = load_framework(
    Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))
)


def test_an_organisation_unknown_to_the_read_model_is_counted_under_its_id() -> None:
    levels = [
        Level("t-1", "org-gone", "mun-01", "digital", "critical_deficit", True),
        Level("t-1", "org-gone", "mun-01", "assessment", "sufficient", False),
        Level("t-2", "org-1", "mun-01", "digital", "sufficient", False),
    ]
    organizations = by_area(
        FRAMEWORK,
        levels,
        lambda lv: [lv.organization_id],
        {"org-1": "СОШ № 1"},
        {"org-1": {"municipality": "г. Иркутск"}},
    )
    assert [(o["id"], o["name"], o["diagnosed"], o["with_deficits"]) for o in organizations] == [
        ("org-gone", "org-gone", 1, 1),
        ("org-1", "СОШ № 1", 1, 0),
    ]
    report = {
        "competencies": by_competency(FRAMEWORK, levels),
        "municipalities": [],
        "organizations": organizations,
        "subjects": [],
        "program_gap": [],
    }
    book = openpyxl.load_workbook(io.BytesIO(workbook(FRAMEWORK, report)))
    rows = list(book["Организации"].iter_rows(min_row=2, values_only=True))
    assert [r[:5] for r in rows] == [
        ("org-gone", "org-gone", None, 1, 1),
        ("org-1", "СОШ № 1", "г. Иркутск", 1, 0),
    ]
