"""The registers' rules (``iomflow.registries.domain``), pure: every register's template
example is a record its rules take, and a record's references are checked against what
the registers hold."""

from __future__ import annotations

import io

import pytest

from iomflow.registries.domain import REGISTRY, Known, check_record
from iomflow.registries.examples import EXAMPLES
from iomflow.registries.personal import PERSONAL_FIELDS


def split(spec_name: str) -> tuple[dict[str, object], dict[str, object] | None]:
    row = dict(EXAMPLES[spec_name])
    personal = {n: row.pop(n) for n in PERSONAL_FIELDS if n in row}
    return row, personal or None


def everything_known() -> Known:
    """Every id any example refers to, as if the registers held it."""
    records: dict[str, dict[str, dict[str, object]]] = {n: {} for n in REGISTRY}
    for spec in REGISTRY.values():
        for ref in spec.references:
            for row in EXAMPLES.values():
                value = row.get(ref.field)
                # A list of objects (a practice's replications) says each one's municipality.
                items = value if ref.item and isinstance(value, list) else [row]
                for item in items:
                    for one in ref.ids([item] if ref.item else value):
                        where = {"municipality_id": item.get("municipality_id")}
                        records[ref.register][one] = where
    for org in records["organizations"].values():
        org.setdefault("kind", "school")
    return Known(records)


def test_every_register_has_an_example() -> None:
    assert set(EXAMPLES) == set(REGISTRY)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_example_passes_its_registers_rules(name: str) -> None:
    values, personal = split(name)
    data, person, problems = check_record(REGISTRY[name], values, personal, everything_known())
    assert problems == [] and data is not None
    assert (person is None) == (not REGISTRY[name].person)


def test_a_reference_to_a_record_the_registers_lack_is_a_problem() -> None:
    values, personal = split("teachers")
    data, _, problems = check_record(REGISTRY["teachers"], values, personal, Known())
    assert data is None
    assert ("organization_id", "«org-0001» нет в реестре «Образовательные организации»") in problems


def test_a_worksheet_takes_a_record_with_control_characters() -> None:
    from openpyxl import load_workbook

    from iomflow.registries.tabular import write_xlsx

    content = write_xlsx([("Лист", ["Название"], [["г.\x1c Иркутск"], [3]])])
    sheet = load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    assert [c.value for c in sheet["A"]] == ["Название", "г. Иркутск", 3]
