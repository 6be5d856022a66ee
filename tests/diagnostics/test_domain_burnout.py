"""The burnout analytics, pure: levels (counts, shares, mean index) by municipality,
organisation, age and experience band over each teacher's latest survey; the waves in
campaign order with the change since the one before; the workbook's Russian sheets and the
printable page (escaped, nothing external)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import openpyxl

from iomflow.diagnostics import burnout
from iomflow.diagnostics.burnout import Survey
from iomflow.diagnostics.domain import Campaign

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def survey(
    teacher: str, campaign: str, index: float, level: str, *, days: int = 0, **extra: str
) -> Survey:
    where = {"organization_id": "org-1", "municipality_id": "mun-01"}
    bands = {"age_band": "35-44", "experience_band": "10-20"}
    chosen = {**where, **bands, **extra}
    return Survey(
        teacher, campaign, chosen["organization_id"], chosen["municipality_id"], index, level,
        T0 + timedelta(days=days), chosen["age_band"] or None, chosen["experience_band"] or None,
    )  # fmt: skip


SPRING = Campaign("spring", "Весна 2026", starts_on=date(2026, 3, 1), created_at=T0)
# opened earlier than spring, but its wave starts later: the waves go by their start
AUTUMN = Campaign(
    "autumn", "Осень 2026", starts_on=date(2026, 9, 1), created_at=T0 - timedelta(days=30)
)
EMPTY = Campaign("winter", "Зима", starts_on=date(2026, 12, 1), created_at=T0)
SURVEYS = [
    survey("t-1", "spring", 70, "high"),
    survey("t-2", "spring", 50, "moderate", municipality_id="mun-02", organization_id="org-2"),
    survey("t-3", "spring", 20, "low", age_band="<25", experience_band="<3"),
    survey("t-4", "spring", 80, "high", age_band=""),  # a band the read model does not know
    survey("t-1", "autumn", 30, "low", days=200),
    survey("t-2", "autumn", 45, "moderate", days=200,
           municipality_id="mun-02", organization_id="org-2"),
    survey("t-3", "autumn", 75, "high", days=200, age_band="<25", experience_band="<3"),
]  # fmt: skip
NAMES = {"mun-01": "г. Иркутск", "mun-02": "Катангский район"}
ORGS = [
    SimpleNamespace(organization_id="org-1", municipality_id="mun-01", name="СОШ № 1"),
    SimpleNamespace(organization_id="org-2", municipality_id="mun-02", name="Школа <№ 2>"),
]


def test_levels_count_share_and_average_a_group() -> None:
    assert burnout.levels(SURVEYS[:4]) == {
        "surveyed": 4, "low": 1, "moderate": 1, "high": 2,
        "share_low": 25.0, "share_moderate": 25.0, "share_high": 50.0, "mean_index": 55.0,
    }  # fmt: skip
    assert burnout.levels([])["mean_index"] is None and burnout.levels([])["share_high"] == 0


def test_each_teachers_latest_survey_by_municipality_organisation_and_band() -> None:
    found = burnout.analyse(SURVEYS, [SPRING, AUTUMN], NAMES, ORGS)
    # t-4 answered in spring only; the others' latest is autumn's
    assert found["region"]["surveyed"] == 4 and found["region"]["high"] == 2
    assert found["region"]["mean_index"] == round((30 + 45 + 75 + 80) / 4, 1)
    [katanga, irkutsk] = found["municipalities"]  # by name
    assert (irkutsk["name"], irkutsk["surveyed"], irkutsk["high"]) == ("г. Иркутск", 3, 2)
    assert (katanga["id"], katanga["moderate"], katanga["share_moderate"]) == ("mun-02", 1, 100)
    assert [(o["name"], o["municipality"]) for o in found["organizations"]] == [
        ("СОШ № 1", "г. Иркутск"), ("Школа <№ 2>", "Катангский район"),
    ]  # fmt: skip
    ages = [(a["id"], a["name"], a["surveyed"]) for a in found["age_bands"]]
    assert ages == [("<25", "до 25 лет", 1), ("35-44", "35–44 года", 2), ("", "не указано", 1)]
    [young] = [e for e in found["experience_bands"] if e["id"] == "<3"]
    assert (young["name"], young["high"], young["share_high"]) == ("менее 3 лет", 1, 100.0)


def test_one_campaign_counts_its_own_surveys_only() -> None:
    found = burnout.analyse(SURVEYS, [SPRING, AUTUMN], NAMES, ORGS, campaign_id="spring")
    assert found["campaign_id"] == "spring"
    assert (found["region"]["surveyed"], found["region"]["high"]) == (4, 2)
    assert found["region"]["mean_index"] == 55.0


def test_waves_go_in_campaign_order_with_the_change_since_the_one_before() -> None:
    found = burnout.waves(SURVEYS, [AUTUMN, EMPTY, SPRING])
    assert [w["campaign_id"] for w in found] == ["spring", "autumn"]  # winter has no surveys
    spring, autumn = found
    assert (spring["share_high"], spring["mean_index"]) == (50.0, 55.0)
    assert spring["change_share_high"] is None and spring["trend"] is None
    assert (autumn["surveyed"], autumn["high"], autumn["share_high"]) == (3, 1, 33.3)
    assert autumn["mean_index"] == 50.0
    assert (autumn["change_share_high"], autumn["change_mean_index"]) == (-16.7, -5.0)
    assert autumn["trend"] == "better"
    worse = burnout.waves(
        [*SURVEYS, survey("t-9", "autumn", 90, "high", days=200)], [SPRING, AUTUMN]
    )
    assert worse[1]["share_high"] == 50.0 and worse[1]["trend"] == "same"


def test_the_workbook_has_russian_sheets_with_the_same_numbers() -> None:
    found = burnout.analyse(SURVEYS, [SPRING, AUTUMN], NAMES, ORGS)
    book = openpyxl.load_workbook(io.BytesIO(burnout.workbook(found)))
    assert book.sheetnames == [
        "Регион", "Муниципалитеты", "Организации", "Возраст", "Стаж", "Динамика по волнам",
    ]  # fmt: skip
    region = list(book["Регион"].iter_rows(values_only=True))
    assert region[0][:5] == ("Территория", "Обследовано", "Низкий", "Умеренный", "Высокий")
    assert region[1][1:5] == (4, 1, 1, 2)
    waves = list(book["Динамика по волнам"].iter_rows(values_only=True))
    assert waves[1][0] == "spring" and waves[1][8] == "первая волна"
    assert waves[2][:2] == ("autumn", "Осень 2026") and waves[2][6] == -16.7
    assert waves[2][8] == "снижение (лучше)"
    orgs = list(book["Организации"].iter_rows(values_only=True))
    assert orgs[2][:3] == ("org-2", "Школа <№ 2>", "Катангский район")


def test_the_printable_page_is_russian_escaped_and_self_contained() -> None:
    found = {**burnout.analyse(SURVEYS, [SPRING, AUTUMN], NAMES, ORGS), "campaign_name": None}
    page = burnout.html(found, date(2026, 12, 20))
    assert "<h1>Профессиональное выгорание педагогических работников</h1>" in page
    assert "Сформировано 20.12.2026" in page
    assert "Школа &lt;№ 2&gt;" in page and "Школа <№ 2>" not in page
    assert "Осень 2026" in page and "\u221216,7" in page  # the change, the Russian way
    assert "снижение (лучше)" in page
    for external in ("http://", "https://", "<script", "<link", "src="):
        assert external not in page
