"""The yearly monitoring report (информационно-аналитическая справка): pure, over hand-made
facts (the year's end, the weakest municipalities, each municipality's weakest KPIs), and
in process on a real Redis and SQLite/PostgreSQL: the JSON, the workbook and the printable
page agree with ``/v1/kpis`` for the same date."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI

# tests/ is on sys.path (as for ``import infra`` in conftest): share the chain of events.
from test_monitoring_api import TODAY, load_chain, make_app

from iomflow.monitoring import report
from iomflow.monitoring.domain import Catalogue, Fact, Facts, Member
from iomflow.shared.errors import Refused

# --- pure ----------------------------------------------------------------------------------


def day(d: str) -> datetime:
    return datetime.fromisoformat(d).replace(tzinfo=UTC)


def teacher(tid: str, mun: str) -> Member:
    return Member("teachers", tid, mun, f"o-{mun}", {"audience": "general"}, day("2023-01-01"))


CATALOGUE = Catalogue.model_validate(
    {
        "source": "Положение о РС НМС",
        "start": "2023-01-01",
        "kpis": [
            {
                "code": "trained_share",
                "name": "Доля педагогов, повысивших квалификацию",
                "unit": "%",
                "numerator": {"fact": "trained"},
                "comparison": ">=",
                "accumulation": "cumulative",
                "deadline": "2024-12-31",
                "targets": [
                    {"value": 50, "source": "Положение, прил. 1"},
                    {"value": 60, "source": "Дорожная карта"},
                ],
                "clause": "п. 1",
            },
            {
                "code": "diag_share",
                "name": "Доля педагогов, прошедших диагностику",
                "unit": "%",
                "numerator": {"fact": "diagnosed"},
                "comparison": ">=",
                "accumulation": "yearly",
                "targets": [{"value": 10, "source": "Положение, прил. 1"}],
                "clause": "п. 2",
            },
            {
                "code": "load_max",
                "name": "Наибольшее число педагогов у одного методиста",
                "unit": "чел.",
                "measure": "max_per_holder",
                "holder": "methodist_id",
                "numerator": {"fact": "support"},
                "comparison": "<=",
                "accumulation": "current",
                "targets": [{"value": 2, "source": "Положение, прил. 1"}],
                "clause": "п. 3",
            },
        ],
    }
)
NAMES = {"m1": "Город", "m2": "Район", "m3": "Посёлок <Лесной>"}
TODAY_2026 = date(2026, 3, 1)


def hand_made() -> Facts:
    """m1: 3 of 4 trained, one methodist holds all three; m2: 1 of 4 trained; m3: 0 of 2;
    one diagnosis (t1) in 2024."""
    mun = {**dict.fromkeys(["t1", "t2", "t3", "t4"], "m1"), "t5": "m2", "t6": "m2"}
    mun |= {"t7": "m2", "t8": "m2", "t9": "m3", "t10": "m3"}
    trained = [Fact("trained", t, day("2024-03-01")) for t in ("t1", "t2", "t3", "t5")]
    support = [
        *(Fact("support", t, day("2024-04-01"), {"methodist_id": "A"}) for t in ("t1", "t2", "t3")),
        Fact("support", "t5", day("2024-04-01"), {"methodist_id": "B"}),
    ]
    return Facts(
        [teacher(t, m) for t, m in mun.items()],
        [*trained, *support, Fact("diagnosed", "t1", day("2024-05-01"))],
    )


def by_code(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["code"]: r for r in rows}


def test_a_past_year_is_reported_as_of_its_last_day() -> None:
    found = report.yearly(CATALOGUE, hand_made(), NAMES, 2024, TODAY_2026)
    assert (found["as_of"], found["final"], found["year"]) == ("2024-12-31", True, 2024)
    assert found["title"] == "Информационно-аналитическая справка о мониторинге РС НМС за 2024 год"
    kpis = by_code(found["kpis"])
    trained = kpis["trained_share"]
    assert (trained["value"], trained["numerator"], trained["population"]) == (40.0, 4, 10)
    assert (trained["target"], trained["status"], trained["status_name"]) == (
        50,
        "missed",
        "не достигнут",
    )
    assert [t["source"] for t in trained["targets"]] == ["Положение, прил. 1", "Дорожная карта"]
    assert kpis["diag_share"]["status"] == "met"  # the yearly KPI counts 2024's diagnosis
    assert kpis["load_max"]["value"] == 3
    assert found["summary"] == {"missed": 2, "met": 1}
    assert [m["municipality_id"] for m in found["municipalities"]] == ["m1", "m2", "m3"]
    m3 = by_code(found["municipalities"][2]["kpis"])
    assert (m3["trained_share"]["value"], m3["trained_share"]["population"]) == (0.0, 2)


def test_the_current_year_is_as_of_today_and_a_year_to_come_is_refused() -> None:
    found = report.yearly(CATALOGUE, hand_made(), NAMES, 2026, TODAY_2026)
    assert (found["as_of"], found["final"]) == ("2026-03-01", False)
    assert by_code(found["kpis"])["diag_share"]["value"] == 0.0  # none in 2026
    with pytest.raises(Refused) as refused:
        report.yearly(CATALOGUE, hand_made(), NAMES, 2027, TODAY_2026)
    assert (refused.value.code, refused.value.status) == ("future_year", 422)
    assert "2027" in refused.value.detail


def test_recommendations_name_the_weakest_municipalities_of_each_unmet_kpi() -> None:
    found = report.yearly(CATALOGUE, hand_made(), NAMES, 2024, TODAY_2026)
    recs = by_code(found["recommendations"]["kpis"])
    assert set(recs) == {"trained_share", "load_max"}  # diag_share is met
    trained = recs["trained_share"]
    # lowest first; m1 (75 %) meets the target and is not named
    assert [m["municipality_id"] for m in trained["municipalities"]] == ["m3", "m2"]
    first = trained["municipalities"][0]
    assert first["text"].startswith(
        "Доля педагогов, повысивших квалификацию в муниципалитете «Посёлок <Лесной>» — "
        "0\u00a0% при цели 50\u00a0%: рекомендуется направить педагогов на обучение"
    )
    assert first["gap"] == 1.0 and trained["municipalities"][1]["gap"] == 0.5
    assert "40\u00a0% при цели 50\u00a0%" in trained["text"]
    load = recs["load_max"]  # a limit: the highest value is the weakest
    assert [(m["municipality_id"], m["value"]) for m in load["municipalities"]] == [("m1", 3)]
    assert "при пределе 2\u00a0чел." in load["municipalities"][0]["text"]
    assert "перераспределить" in load["municipalities"][0]["text"]


def test_each_municipality_gets_its_kpis_furthest_from_the_target() -> None:
    found = report.yearly(CATALOGUE, hand_made(), NAMES, 2024, TODAY_2026)
    weakest = {
        m["municipality_id"]: [(k["code"], k["gap"]) for k in m["kpis"]]
        for m in found["recommendations"]["municipalities"]
    }
    assert weakest == {
        "m1": [("load_max", 0.5)],  # 3 against at most 2
        "m2": [("diag_share", 1.0), ("trained_share", 0.5)],
        "m3": [("diag_share", 1.0), ("trained_share", 1.0)],
    }
    m2 = found["recommendations"]["municipalities"][1]
    assert "(отставание 50\u00a0% от цели)" in m2["kpis"][1]["text"]
    m1 = found["recommendations"]["municipalities"][0]
    assert "(предел превышен на 50\u00a0%)" in m1["kpis"][0]["text"]


def test_a_year_with_no_data_still_gives_a_report() -> None:
    found = report.yearly(CATALOGUE, hand_made(), NAMES, 2022, TODAY_2026)
    kpis = by_code(found["kpis"])
    assert kpis["trained_share"]["status"] == kpis["diag_share"]["status"] == "no_data"
    assert found["municipalities"] == []
    recs = by_code(found["recommendations"]["kpis"])
    assert recs["trained_share"]["municipalities"] == []
    assert "нет данных" in recs["trained_share"]["text"]
    assert found["recommendations"]["municipalities"] == []
    report.workbook(found)
    assert "нет данных" in report.html(found)


def test_the_workbook_keeps_numbers_as_numbers_and_the_page_escapes_names() -> None:
    found = report.yearly(CATALOGUE, hand_made(), NAMES, 2024, TODAY_2026)
    book = openpyxl.load_workbook(io.BytesIO(report.workbook(found)))
    assert book.sheetnames == [
        "Справка", "Показатели", "Муниципалитеты", "Рекомендации", "Источники",
    ]  # fmt: skip
    title = dict(book["Справка"].iter_rows(min_row=3, values_only=True))
    assert book["Справка"]["A1"].value == found["title"] == book.properties.title
    assert "2024" in found["title"] and title["Отчётный год"] == 2024
    assert title["По состоянию на"] == datetime(2024, 12, 31)  # a date, as of the year's end
    assert title["Вид"].startswith("итоговая") and title["Показатели и цели"] == found["source"]
    rows = list(book["Показатели"].iter_rows(min_row=2, values_only=True))
    assert [(r[1], r[4], r[5], r[6], r[7]) for r in rows] == [
        ("trained_share", 40.0, 4, 10, 50),
        ("diag_share", 10.0, 1, 10, 10),
        ("load_max", 3.0, 3, 2, 2),
    ]
    assert rows[0][9] == datetime(2024, 12, 31)  # the deadline, as a date
    sources = list(book["Источники"].iter_rows(min_row=2, values_only=True))
    assert [(r[1], r[4], r[6], r[7]) for r in sources[:2]] == [
        ("trained_share", 50, "да", "Положение, прил. 1"),
        ("trained_share", 60, "нет", "Дорожная карта"),
    ]
    assert sources[-1][-1] == "Положение о РС НМС"
    recs = list(book["Рекомендации"].iter_rows(min_row=2, values_only=True))
    assert ("по показателю", "trained_share", "Посёлок <Лесной>", 0.0, 50, 100.0) in [
        (r[0], r[1], r[3], r[4], r[5], r[6]) for r in recs
    ]
    page = report.html(found)
    assert "Посёлок &lt;Лесной&gt;" in page and "<Лесной>" not in page
    assert "@page" in page and "A4" in page


# --- in process ----------------------------------------------------------------------------


@pytest.fixture
async def client(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[Any]:
    app: FastAPI = make_app(clean_redis, tmp_path, database_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://monitoring") as c:
            yield c


async def test_the_reports_agree_with_the_kpis_of_the_same_date(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_chain(client, clean_redis)
    year = TODAY.year
    kpis = (await client.get("/v1/kpis")).json()  # today
    found = (await client.get(f"/v1/reports/{year}")).json()
    assert found["as_of"] == kpis["as_of"] == TODAY.isoformat() and found["final"] is False
    region = {k["code"]: k for k in kpis["region"]["kpis"]}

    answer = await client.get(f"/v1/reports/{year}.xlsx")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == report.XLSX
    assert f'filename="monitoring-report-{year}.xlsx"' in answer.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    rows = list(book["Показатели"].iter_rows(min_row=2, values_only=True))
    assert [r[1] for r in rows] == list(region)
    for row in rows:
        k = region[row[1]]
        assert (row[4], row[5], row[6], row[7]) == (
            k["value"],
            k["numerator"],
            k["population"],
            k["target"],
        ), row[1]
        assert row[10] == report.STATUS_NAMES[k["status"]]

    muns = list(book["Муниципалитеты"].iter_rows(min_row=2, values_only=True))
    assert [list(r) for r in muns] == [
        [
            m["municipality_id"],
            m["name"],
            m["counts"]["teachers"],
            *(k["value"] for k in m["kpis"]),
        ]
        for m in kpis["municipalities"]
    ]
    assert {r[1] for r in muns} == {"г. Иркутск", "Катангский район"}

    # no teacher of org-2's school (Катангский район) has trained: its KPI is not met, and
    # the recommendation names the municipality
    recs = {r["code"]: r for r in found["recommendations"]["kpis"]}
    low = recs["low_results_schools_share"]
    assert low["municipalities"][0]["name"] == "Катангский район"
    assert "«Катангский район» — 0\u00a0% при цели 80\u00a0%" in low["municipalities"][0]["text"]
    by_mun = {
        m["municipality_id"]: {k["code"]: k for k in m["kpis"]} for m in kpis["municipalities"]
    }
    for rec in found["recommendations"]["kpis"]:
        assert region[rec["code"]]["status"] not in ("met", "on_track")
        behind = [
            by_mun[mun][rec["code"]]["value"]
            for mun in by_mun
            if by_mun[mun][rec["code"]]["population"] and by_mun[mun][rec["code"]]["met"] is False
        ]
        assert [m["value"] for m in rec["municipalities"]] == sorted(
            behind, reverse=region[rec["code"]]["comparison"] == "<="
        )[: report.WEAKEST]

    page = await client.get(f"/v1/reports/{year}/print")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert text.startswith("<!DOCTYPE html>")
    assert f"Информационно-аналитическая справка о мониторинге РС НМС за {year} год" in text
    for k in region.values():
        assert k["name"] in text, k["code"]


async def test_a_past_year_is_as_of_its_last_day_and_a_year_to_come_is_refused(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_chain(client, clean_redis)
    last = date(TODAY.year - 1, 12, 31)
    kpis = (await client.get("/v1/kpis", params={"as_of": last.isoformat()})).json()
    found = (await client.get(f"/v1/reports/{last.year}")).json()
    assert (found["as_of"], found["final"]) == (last.isoformat(), True)
    assert [(k["code"], k["value"], k["status"]) for k in found["kpis"]] == [
        (k["code"], k["value"], k["status"]) for k in kpis["region"]["kpis"]
    ]

    # three years ago the registry was empty: every share has no data, the report is there
    empty = await client.get(f"/v1/reports/{TODAY.year - 3}")
    assert empty.status_code == 200
    shares = [k for k in empty.json()["kpis"] if k["unit"] == "%"]
    assert shares and all(k["status"] == "no_data" for k in shares)
    assert empty.json()["municipalities"] == []
    xlsx = await client.get(f"/v1/reports/{TODAY.year - 3}.xlsx")
    assert xlsx.status_code == 200 and openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert (await client.get(f"/v1/reports/{TODAY.year - 3}/print")).status_code == 200

    for path in ("", ".xlsx", "/print"):
        future = await client.get(f"/v1/reports/{TODAY.year + 1}{path}")
        assert (future.status_code, future.json()["code"]) == (422, "future_year"), path
        assert "ещё не наступил" in future.json()["detail"]
