"""The needs questionnaire's rules and its aggregation, pure: the competencies asked for are
the framework's; the section counts each teacher once per competency, by municipality and
organisation, beside the deficits and the programs; its sheets say the same in Russian."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pytest

from iomflow.diagnostics import analytics, domain
from iomflow.diagnostics.analytics import Answer, Level

FRAMEWORK = domain.load_framework(
    Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))
)


def program(program_id: str, competencies: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        program_id=program_id, competencies=competencies, themes=[], audiences=["general"]
    )


def org(organization_id: str, municipality_id: str, name: str) -> SimpleNamespace:
    return SimpleNamespace(
        organization_id=organization_id, municipality_id=municipality_id, name=name
    )


def test_a_needs_answer_asks_for_the_frameworks_competencies_each_once() -> None:
    asked = domain.needs_competencies(FRAMEWORK, ["digital", "assessment", "digital"])
    assert asked == ["digital", "assessment"]
    with pytest.raises(domain.Refusal) as caught:
        domain.needs_competencies(FRAMEWORK, ["digital", "astrology"])
    assert caught.value.code == "unknown_competency" and "astrology" in caught.value.detail
    duplicate = domain.duplicate_needs("mms", "n-1")
    assert (duplicate.code, duplicate.status) == ("duplicate_external_id", 409)
    assert "n-1" in duplicate.detail and "mms" in duplicate.detail


ANSWERS = [
    Answer("t-1", "org-1", "mun-01", ["digital", "assessment"], ["functional_literacy"],
           ["course", "mentoring"]),
    Answer("t-2", "org-1", "mun-01", ["digital"], [], ["course"]),
    Answer("t-3", "org-2", "mun-02", ["digital", "upbringing"], ["upbringing"], ["webinar"]),
]  # fmt: skip
LEVELS = [
    Level("t-1", "org-1", "mun-01", "digital", "deficit", True),
    Level("t-2", "org-1", "mun-01", "digital", "critical_deficit", True),
    Level("t-4", "org-2", "mun-02", "upbringing", "sufficient", False),
]
PROGRAMS = [program("p-digital", ["digital"]), program("p-other", ["communication"])]
MUNICIPALITIES = {"mun-01": "г. Иркутск", "mun-02": "Катангский район"}
ORGANIZATIONS = [org("org-1", "mun-01", "СОШ № 1"), org("org-2", "mun-02", "СОШ № 2")]


def section() -> dict[str, object]:
    competencies = analytics.by_competency(FRAMEWORK, LEVELS)
    gap = [{"code": "upbringing"}]  # as the program gap names it
    return analytics.needs(
        FRAMEWORK, ANSWERS, competencies, PROGRAMS, gap, MUNICIPALITIES, ORGANIZATIONS
    )


def test_the_needs_section_counts_teachers_asking_beside_deficits_and_programs() -> None:
    found = section()
    assert found["answered"] == 3
    rows = {r["code"]: r for r in found["competencies"]}  # type: ignore[attr-defined]
    assert [r["code"] for r in found["competencies"]] == [  # type: ignore[attr-defined]
        "digital", "assessment", "upbringing",
    ]  # fmt: skip
    assert rows["digital"] == {
        "code": "digital",
        "name": FRAMEWORK.competency("digital").name,
        "asking": 3,
        "share": 100.0,
        "deficits": 2,
        "programs": ["p-digital"],
        "in_program_gap": False,
    }
    assert (rows["upbringing"]["asking"], rows["upbringing"]["deficits"]) == (1, 0)
    assert rows["upbringing"]["programs"] == [] and rows["upbringing"]["in_program_gap"]
    assert rows["assessment"]["share"] == 33.3


def test_the_needs_section_by_municipality_organisation_theme_and_format() -> None:
    found = section()
    [katanga, irkutsk] = found["municipalities"]  # type: ignore[misc]  # by name
    assert (irkutsk["id"], irkutsk["name"], irkutsk["answered"]) == ("mun-01", "г. Иркутск", 2)
    assert irkutsk["competencies"] == {"assessment": 1, "digital": 2}
    assert irkutsk["formats"] == {"course": 2, "mentoring": 1}
    assert katanga["competencies"] == {"digital": 1, "upbringing": 1}
    [school1, school2] = found["organizations"]  # type: ignore[misc]
    assert (school1["name"], school1["municipality"], school1["answered"]) == (
        "СОШ № 1", "г. Иркутск", 2,
    )  # fmt: skip
    assert school2["municipality"] == "Катангский район"
    assert [(f["code"], f["count"]) for f in found["formats"]] == [  # type: ignore[attr-defined]
        ("course", 2), ("mentoring", 1), ("webinar", 1),
    ]  # fmt: skip
    themes = {t["code"]: t for t in found["themes"]}  # type: ignore[attr-defined]
    assert themes["upbringing"]["name"] == "воспитание" and themes["upbringing"]["count"] == 1


def test_a_teacher_naming_a_competency_twice_counts_once() -> None:
    twice = [Answer("t-1", "org-1", "mun-01", ["digital", "digital"], [], ["course", "course"])]
    found = analytics.needs(FRAMEWORK, twice, [], [], [], {}, [])
    assert found["competencies"][0]["asking"] == 1  # type: ignore[index]
    assert found["formats"][0]["count"] == 1  # type: ignore[index]
    assert found["municipalities"][0]["name"] == "mun-01"  # type: ignore[index]


def test_the_workbook_has_the_russian_needs_sheet_with_the_same_numbers() -> None:
    competencies = analytics.by_competency(FRAMEWORK, LEVELS)
    report = {
        "competencies": competencies,
        "municipalities": [],
        "organizations": [],
        "subjects": [],
        "program_gap": [],
        "needs": section(),
    }
    book = openpyxl.load_workbook(io.BytesIO(analytics.workbook(FRAMEWORK, report)))
    assert "Образовательные потребности" in book.sheetnames
    rows = list(book["Образовательные потребности"].iter_rows(values_only=True))
    assert rows[0][:5] == (
        "Код", "Компетенция", "Запрашивают, педагогов", "Доля ответивших, %",
        "Дефицитов по диагностике",
    )  # fmt: skip
    by_code = {r[0]: r for r in rows[1:]}
    assert by_code["digital"][2:8] == (3, 100, 2, 1, "p-digital", "нет")
    assert by_code["upbringing"][7] == "да"
    municipal = list(book["Потребности — муниципалитеты"].iter_rows(values_only=True))
    header = municipal[0]
    irkutsk = dict(zip(header, municipal[2], strict=True))  # by name: after Катангский
    assert irkutsk["Муниципалитет"] == "г. Иркутск" and irkutsk["Ответили, педагогов"] == 2
    assert irkutsk[FRAMEWORK.competency("digital").name] == 2
    assert irkutsk["Формат: курсы повышения квалификации"] == 2
