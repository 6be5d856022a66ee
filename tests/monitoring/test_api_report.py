"""The yearly monitoring report (информационно-аналитическая справка): pure, over hand-made
facts (the year's end, last year's values, the conclusions, the municipalities clearly
behind and ties reported as ties, the title page, charts and named columns of the workbook
and the page), and in process on a real Redis and SQLite/PostgreSQL: the JSON, the workbook,
the printable page and the PDF agree with ``/v1/kpis`` for the same date."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI

from iomflow.monitoring import pdf, printout, report, spreadsheet, views, wording
from iomflow.monitoring.app import create_app
from iomflow.monitoring.context import catalogue as shipped_catalogue
from iomflow.monitoring.domain import Catalogue, Fact, Facts, Member, tracked
from iomflow.monitoring.settings import Settings
from iomflow.shared.errors import Refused

# tests/ is on sys.path (as for ``import infra`` in conftest): share the chain of events.
from monitoring.test_api import TODAY, load_chain, make_app

SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
"""A code as the API writes it (``trained_share``): never in front of a person."""

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
        m["municipality_id"]: {(k["code"], k["gap"]) for k in m["kpis"]}
        for m in found["recommendations"]["municipalities"]
    }
    assert weakest == {
        "m1": {("load_max", 0.5)},  # 3 against at most 2 (m2's methodist has one)
        "m2": {("diag_share", 1.0), ("trained_share", 0.5)},
        "m3": {("diag_share", 1.0), ("trained_share", 1.0)},  # a tie, named whole
    }
    m2 = found["recommendations"]["municipalities"][1]
    assert "(отставание 50\u00a0% от цели)" in by_code(m2["kpis"])["trained_share"]["text"]
    m1 = found["recommendations"]["municipalities"][0]
    assert "(предел превышен на 50\u00a0%)" in m1["kpis"][0]["text"]


def test_a_year_with_no_data_still_gives_a_report_without_conclusions() -> None:
    found = report.yearly(CATALOGUE, hand_made(), NAMES, 2022, TODAY_2026)
    kpis = by_code(found["kpis"])
    assert kpis["trained_share"]["status"] == kpis["diag_share"]["status"] == "no_data"
    assert found["municipalities"] == []
    recs = by_code(found["recommendations"]["kpis"])
    assert recs["trained_share"]["municipalities"] == []
    assert "нет данных" in recs["trained_share"]["text"]
    assert found["recommendations"]["municipalities"] == []
    assert found["conclusions"] == []  # nothing the data would support
    book = openpyxl.load_workbook(io.BytesIO(spreadsheet.workbook(found)))
    assert "Выводы не сформулированы" in str(list(book["Справка"].values))
    page = printout.html(found)
    assert "нет данных" in page and "Выводы не сформулированы" in page


def test_conclusions_say_what_improved_since_the_same_day_a_year_earlier() -> None:
    found = report.yearly(CATALOGUE, hand_made(), NAMES, 2024, TODAY_2026)
    assert found["previous_as_of"] == "2023-12-31"
    kpis = by_code(found["kpis"])
    trained = kpis["trained_share"]
    assert trained["previous"]["value"] == 0.0 and trained["change"] == 40.0
    assert trained["trend"] == "better"
    # no methodist held anyone a year earlier: a load of 0 then is no value to compare
    assert kpis["load_max"]["trend"] is None and kpis["load_max"]["change"] is None
    said = {c["kind"]: c for c in found["conclusions"]}
    assert said["summary"]["text"] == (
        "На 31.12.2024 из 3 показателей региона: достигнуто — 1, не достигнуто — 2."
    )
    assert said["better"]["text"] == ("Улучшение по сравнению с 31.12.2023 — 2\u00a0показателя:")
    assert said["better"]["items"][0] == (
        "Доля педагогов, повысивших квалификацию — с 0\u00a0% до 40\u00a0% (+40\u00a0п.\u00a0п.)"
    )
    assert "worse" not in said
    assert said["reached"]["items"] == ["Доля педагогов, прошедших диагностику — 10\u00a0%"]
    off = said["off_track"]["items"]
    assert off[0].startswith("Доля педагогов, повысивших квалификацию — 40\u00a0% (не достигнут)")
    assert "наибольшее отставание — «Посёлок <Лесной>» (0\u00a0%), «Район» (25\u00a0%)" in off[0]
    assert "цели не достигают 2 из 3 муниципалитетов" in off[0]
    assert not any(SNAKE.search(c["text"] + " ".join(c["items"])) for c in found["conclusions"])


def test_the_workbook_has_a_title_page_charts_and_named_columns() -> None:
    found = report.yearly(
        CATALOGUE, hand_made(), NAMES, 2024, TODAY_2026,
        region_name="Иркутская область", prepared_by="ЦНППМ ИРО",
    )  # fmt: skip
    book = openpyxl.load_workbook(io.BytesIO(spreadsheet.workbook(found)))
    assert book.sheetnames == [
        "Справка", "Показатели", "Диаграммы", "Муниципалитеты", "Рекомендации", "Источники",
    ]  # fmt: skip
    cover = book["Справка"]
    assert cover["A1"].value == found["title"] == book.properties.title
    assert cover["A2"].value == "Иркутская область"
    title = dict(cover.iter_rows(min_row=3, max_row=10, values_only=True))
    assert "2024" in found["title"] and title["Отчётный год"] == 2024
    assert title["Регион"] == "Иркутская область" and title["Подготовлено"] == "ЦНППМ ИРО"
    assert title["По состоянию на"] == datetime(2024, 12, 31)  # a date, as of the year's end
    assert title["Дата формирования"] == datetime(2026, 3, 1)
    assert title["Вид"].startswith("итоговая") and title["Показатели и цели"] == found["source"]
    assert (
        "Иркутская область" in book.properties.subject and "31.12.2024" in book.properties.subject
    )
    texts = [r[1] for r in cover.iter_rows(min_row=13, values_only=True)]
    assert cover["A12"].value == "Выводы"
    assert [c["text"] for c in found["conclusions"]] == [t for t in texts if t[0] != "—"]

    assert len(book["Диаграммы"]._charts) == 2  # the region's shares; the municipalities

    rows = list(book["Показатели"].iter_rows(min_row=2))
    header = [c.value for c in book["Показатели"][1]]
    assert header[:6] == [
        "№", "Показатель", "Ед. изм.", "Значение", "Годом ранее (31.12.2023)", "Изменение",
    ]  # fmt: skip
    codes = [r[1].comment.text.removeprefix("Код показателя: ") for r in rows]
    assert codes == ["trained_share", "diag_share", "load_max"]  # codes only in the notes
    values = [[c.value for c in r] for r in rows]
    assert [(r[1], r[3], r[4], r[5], r[7], r[8], r[9]) for r in values] == [
        ("Доля педагогов, повысивших квалификацию", 40.0, 0.0, 40.0, 4, 10, 50),
        ("Доля педагогов, прошедших диагностику", 10.0, 0.0, 10.0, 1, 10, 10),
        ("Наибольшее число педагогов у одного методиста", 3.0, 0.0, None, 3, 2, 2),
    ]
    assert values[2][6] == "3\u00a0педагога у одного из 2 методистов"  # not «3 / 2»
    assert values[0][11] == datetime(2024, 12, 31)  # the deadline, as a date
    assert not any(SNAKE.search(str(v)) for r in values for v in r if isinstance(v, str))

    matrix = book["Муниципалитеты"]
    assert [c.value for c in matrix[1]] == [
        "Код",
        "Муниципалитет",
        "Педагогов",
        "Доля педагогов, повысивших квалификацию, %",
        "Доля педагогов, прошедших диагностику, %",
        "Наибольшее число педагогов у одного методиста, чел.",
        "Методистов, чел.",
    ]
    assert [list(r) for r in matrix.iter_rows(min_row=2, max_row=4, values_only=True)] == [
        ["m1", "Город", 4, 75.0, 25.0, 3.0, 1],
        ["m2", "Район", 4, 25.0, 0.0, 1.0, 1],
        ["m3", "Посёлок <Лесной>", 2, 0.0, 0.0, 0.0, 0],
    ]

    sources = list(book["Источники"].iter_rows(min_row=2, values_only=True))
    assert [(r[1], r[3], r[5], r[6]) for r in sources[:2]] == [
        ("Доля педагогов, повысивших квалификацию", 50, "да", "Положение, прил. 1"),
        ("Доля педагогов, повысивших квалификацию", 60, "нет", "Дорожная карта"),
    ]
    assert sources[-1][-1] == "Положение о РС НМС"
    recs = list(book["Рекомендации"].iter_rows(min_row=2, values_only=True))
    assert (
        "по показателю", "Доля педагогов, повысивших квалификацию", "Посёлок <Лесной>", 0.0, 50,
        100.0,
    ) in [r[:6] for r in recs]  # fmt: skip


def test_the_page_has_a_title_page_conclusions_charts_and_escapes_names() -> None:
    found = report.yearly(
        CATALOGUE, hand_made(), NAMES, 2024, TODAY_2026, region_name="Иркутская <область>"
    )
    page = printout.html(found)
    assert "Посёлок &lt;Лесной&gt;" in page and "<Лесной>" not in page
    assert "@page" in page and "A4" in page
    cover = page[page.index('<section class="title-page">') : page.index("</section>")]
    assert found["title"] in cover and "Иркутская &lt;область&gt;" in cover
    assert "по состоянию на 31.12.2024" in cover and "Подготовлено: ЦНППМ" in cover
    assert (
        page.count("<svg") == 2
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "Годом ранее" not in page and "На 31.12.2023" in page  # last year's column
    assert "3\u00a0педагога у одного из 2 методистов" in page
    # the matrix is headed by short names with units, never by numbers or codes
    matrix = page[page.index('<table class="matrix">') :]
    heads = re.findall(r"<th(?: [^>]*)?>(?:<span>)?([^<]*)", matrix[: matrix.index("</thead>")])
    assert heads[2:] == [
        "Доля педагогов, повысивших квалификацию, %",
        "Доля педагогов, прошедших диагностику, %",
        "Наибольшее число педагогов у одного методиста, чел.",
        "Методистов",
    ]
    for c in found["conclusions"]:
        assert escape(c["text"]) in page
    shown = re.sub(
        r'<[^>]*title="[^"]*"[^>]*>|<title>.*?</title>|<style>.*?</style>', "", page, flags=re.S
    )
    assert not SNAKE.findall(re.sub(r"<[^>]+>", " ", shown))  # codes at most in a tooltip


# --- tracked items (rows of Appendix 1 without a number) ------------------------------------

WITH_TRACKED = CATALOGUE.model_copy(update={"tracked": shipped_catalogue().tracked})
"""The hand-made KPIs and the shipped catalogue's tracked items: the roadmap (once, by
31.12.2024) and the monitoring system (yearly since 2023)."""


def recorded(**rows: tuple[str, str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """``code__period=(status, evidence, day)`` as ``repository.tracked_evidence`` has it."""
    out = {}
    for key, (status, evidence, when) in rows.items():
        code, period = key.split("__")
        out[(code, period)] = {
            "code": code,
            "period": period,
            "status": status,
            "evidence": evidence,
            "recorded_by": "Иванова И. И.",
            "recorded_at": day(when),
        }
    return out


EVIDENCE = recorded(
    roadmap_implemented__once=("not_done", "Отчёт <b>№ 7</b> от 20.01.2025", "2025-01-20"),
    monitoring_system__2023=("done", "Приказ № 12 от 01.02.2023", "2023-02-01"),
    monitoring_system__2024=("in_progress", "Проект положения о мониторинге", "2024-06-01"),
)


def periods(found: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    return {t["code"]: {p["period"]: p for p in t["periods"]} for t in found["tracked"]}


def test_the_report_has_the_tracked_items_as_of_its_day_up_to_its_year() -> None:
    found = report.yearly(WITH_TRACKED, hand_made(), NAMES, 2025, TODAY_2026, recorded=EVIDENCE)
    assert [t["code"] for t in found["tracked"]] == ["roadmap_implemented", "monitoring_system"]
    roadmap = found["tracked"][0]
    assert roadmap["target"] == "Реализация комплекса мер до 31.12.2024 года"
    got = periods(found)
    assert list(got["roadmap_implemented"]) == ["once"]
    assert list(got["monitoring_system"]) == ["2023", "2024", "2025"]  # not 2026: the year's
    once = got["roadmap_implemented"]["once"]
    assert (once["label"], once["status"], once["status_name"]) == (
        "к 31.12.2024",
        "missed",
        "не достигнут",
    )
    assert (once["recorded_words"], once["recorded_by"], once["recorded_date"]) == (
        "не выполнено",
        "Иванова И. И.",
        "2025-01-20",
    )
    years = got["monitoring_system"]
    assert [(p["label"], p["status"]) for p in years.values()] == [
        ("за 2023 год", "met"),
        ("за 2024 год", "missed"),  # still «in progress» after its year
        ("за 2025 год", "no_data"),  # nothing recorded: no data, not a failure
    ]
    assert years["2025"]["evidence"] is None
    assert years["2025"]["evidence_text"] == "нет данных — сведения не внесены"

    # what is not done, and a past period still in progress, are in the conclusions
    said = {c["kind"]: c for c in found["conclusions"]}
    assert said["tracked"]["items"] == [
        "Комплекс мер («дорожная карта») РС НМС к 31.12.2024: не выполнено "
        "(Отчёт <b>№ 7</b> от 20.01.2025)",
        "Система мониторинга эффективности РС НМС за 2024 год: срок 31.12.2024 прошёл, "
        "отмечено «выполняется» (Проект положения о мониторинге)",
    ]
    assert not any(SNAKE.search(c["text"] + " ".join(c["items"])) for c in found["conclusions"])

    # as of a year's end the year's own period in progress is on track: nothing to say
    found = report.yearly(WITH_TRACKED, hand_made(), NAMES, 2024, TODAY_2026, recorded=EVIDENCE)
    assert list(periods(found)["monitoring_system"]) == ["2023", "2024"]
    assert periods(found)["monitoring_system"]["2024"]["status"] == "on_track"
    (tracked_said,) = [c for c in found["conclusions"] if c["kind"] == "tracked"]
    assert [line.split(":")[0] for line in tracked_said["items"]] == [
        "Комплекс мер («дорожная карта») РС НМС к 31.12.2024"  # recorded as not done
    ]


def test_the_report_keeps_the_periods_up_to_its_year_and_says_nothing_of_what_is_well() -> None:
    done = recorded(
        roadmap_implemented__once=("done", "Распоряжение № 55-мр от 20.01.2025", "2025-01-20"),
        monitoring_system__2026=("not_done", "Не начат", "2026-02-01"),
    )
    # what /v1/tracked says today (2026), in the report of 2025: 2026 is not the report's
    on = date(2025, 12, 31)
    answer = views.region(CATALOGUE, hand_made(), NAMES, on)
    found = report.content(
        WITH_TRACKED, answer, 2025, on, final=True, tracked=tracked(WITH_TRACKED, done, TODAY_2026)
    )
    assert list(periods(found)["monitoring_system"]) == ["2023", "2024", "2025"]
    assert periods(found)["roadmap_implemented"]["once"]["status"] == "met"
    assert "tracked" not in {c["kind"] for c in found["conclusions"]}  # nothing not done
    # nothing recorded at all: the items are there, without data, and not in the conclusions
    found = report.yearly(WITH_TRACKED, hand_made(), NAMES, 2025, TODAY_2026)
    assert {p["status"] for t in found["tracked"] for p in t["periods"]} == {"no_data"}
    assert "tracked" not in {c["kind"] for c in found["conclusions"]}
    # a catalogue without tracked items: no section, no sheet
    plain = report.yearly(CATALOGUE, hand_made(), NAMES, 2025, TODAY_2026)
    assert plain["tracked"] == []
    assert "Меры (строки" not in printout.html(plain)
    book = openpyxl.load_workbook(io.BytesIO(spreadsheet.workbook(plain)))
    assert "Меры" not in book.sheetnames


def test_the_page_shows_the_tracked_items_after_the_kpis_and_escapes_the_evidence() -> None:
    found = report.yearly(WITH_TRACKED, hand_made(), NAMES, 2025, TODAY_2026, recorded=EVIDENCE)
    page = printout.html(found)
    heading = "<h3>Меры (строки приложения 1 без числового показателя)</h3>"
    assert heading in page
    assert page.index('<table class="kpis">') < page.index(heading) < page.index("4. Показатели")
    section = page[page.index(heading) : page.index("</section>", page.index(heading))]
    assert "Отчёт &lt;b&gt;№ 7&lt;/b&gt; от 20.01.2025" in section
    assert "<b>" not in page  # the evidence is text, never markup
    for item in found["tracked"]:
        assert escape(item["name"], quote=False) in section
        assert escape(item["target"], quote=False) in section
    for label in ("к 31.12.2024", "за 2023 год", "за 2024 год", "за 2025 год"):
        assert f"<td>{label}</td>" in section
    assert "не достигнут<small>отмечено «не выполнено»</small>" in section
    assert "достигнут<small>отмечено «выполнено»</small>" in section
    assert "Иванова И. И., 20.01.2025" in section and "Приказ № 12 от 01.02.2023" in section
    assert section.count("нет данных — сведения не внесены") == 1  # 2025
    # the conclusions say it too, escaped
    assert "(Отчёт &lt;b&gt;№ 7&lt;/b&gt; от 20.01.2025)" in page[: page.index(heading)]
    shown = re.sub(
        r'<[^>]*title="[^"]*"[^>]*>|<title>.*?</title>|<style>.*?</style>', "", page, flags=re.S
    )
    assert not SNAKE.findall(re.sub(r"<[^>]+>", " ", shown))  # codes at most in a tooltip


def test_the_workbook_has_a_sheet_of_the_tracked_items() -> None:
    found = report.yearly(WITH_TRACKED, hand_made(), NAMES, 2025, TODAY_2026, recorded=EVIDENCE)
    book = openpyxl.load_workbook(io.BytesIO(spreadsheet.workbook(found)))
    assert book.sheetnames[:3] == ["Справка", "Показатели", "Меры"]
    sheet = book["Меры"]
    assert [c.value for c in sheet[1]] == [
        "Мера", "Показатель (индикатор)", "Пункт", "Период", "Срок", "Статус", "Отмечено",
        "Подтверждение", "Кем внесено", "Когда внесено",
    ]  # fmt: skip
    rows = list(sheet.iter_rows(min_row=2, max_row=5))
    values = [[c.value for c in r] for r in rows]
    roadmap, monitoring = found["tracked"]
    assert [r[0] for r in values] == [roadmap["name"], *[monitoring["name"]] * 3]
    assert [r[0].comment.text for r in rows] == [
        "Код пункта: roadmap_implemented",
        *["Код пункта: monitoring_system"] * 3,
    ]  # codes only in the notes
    assert [(r[3], r[4], r[5], r[6], r[7], r[8], r[9]) for r in values] == [
        ("к 31.12.2024", datetime(2024, 12, 31), "не достигнут", "не выполнено",
         "Отчёт <b>№ 7</b> от 20.01.2025", "Иванова И. И.", datetime(2025, 1, 20)),
        ("за 2023 год", datetime(2023, 12, 31), "достигнут", "выполнено",
         "Приказ № 12 от 01.02.2023", "Иванова И. И.", datetime(2023, 2, 1)),
        ("за 2024 год", datetime(2024, 12, 31), "не достигнут", "выполняется",
         "Проект положения о мониторинге", "Иванова И. И.", datetime(2024, 6, 1)),
        ("за 2025 год", datetime(2025, 12, 31), "нет данных", None,
         "нет данных — сведения не внесены", None, None),
    ]  # fmt: skip
    assert values[0][1] == roadmap["target"] and values[0][2] == roadmap["clause"]
    assert rows[0][5].fill.fgColor.rgb.endswith("F4D6D6")  # missed, as the KPIs
    assert not any(SNAKE.search(str(v)) for r in values for v in r if isinstance(v, str))
    cover = [r[1] for r in book["Справка"].iter_rows(min_row=13, values_only=True)]
    assert any(t and "Комплекс мер («дорожная карта») РС НМС к 31.12.2024" in t for t in cover)


# --- ties ------------------------------------------------------------------------------------


def share(code: str, fact: str, target: float) -> dict[str, Any]:
    return {
        "code": code,
        "name": f"Доля педагогов: {fact}",
        "unit": "%",
        "numerator": {"fact": fact},
        "comparison": ">=",
        "accumulation": "cumulative",
        "targets": [{"value": target, "source": "Положение"}],
        "clause": "п. 1",
    }


TIES = Catalogue.model_validate(
    {
        "source": "Положение",
        "start": "2023-01-01",
        "kpis": [share("k1", "f1", 50), *(share(f"k{n}", f"f{n}", 100) for n in range(2, 6))],
    }
)


def tied_region() -> tuple[Facts, dict[str, str]]:
    """Eight municipalities of two teachers. k1: m07 has half, m08 all, m01..m06 nothing;
    k2..k4: everyone has all but m03; k5: everyone but m03 (nothing) and m05 (half)."""
    muns = [f"m0{n}" for n in range(1, 9)]
    members = [teacher(f"{m}-{i}", m) for m in muns for i in "ab"]
    on = day("2024-02-01")
    facts = [Fact("f1", "m07-a", on), Fact("f1", "m08-a", on), Fact("f1", "m08-b", on)]
    facts += [
        Fact(f"f{n}", f"{m}-{i}", on) for n in (2, 3, 4) for m in muns if m != "m03" for i in "ab"
    ]
    facts += [
        Fact("f5", f"{m}-{i}", on)
        for m in muns
        if m != "m03"
        for i in "ab"
        if (m, i) != ("m05", "b")
    ]
    return Facts(members, facts), {m: f"Муниципалитет {m[-1]}" for m in muns}


def assert_no_tie_is_split(found: dict[str, Any]) -> None:
    """Whoever a recommendation names stands strictly worse than everyone behind it is
    silent about: no unit is named while another with the same value is not."""
    values = {
        (m["municipality_id"], k["code"]): k for m in found["municipalities"] for k in m["kpis"]
    }
    for rec in found["recommendations"]["kpis"]:
        named = {m["municipality_id"] for m in rec["municipalities"]}
        behind = {
            mun: k["value"]
            for (mun, code), k in values.items()
            if code == rec["code"] and k["met"] is False and k["population"]
        }
        for mun in named:
            assert all(behind[mun] < v for m, v in behind.items() if m not in named), rec["code"]
    for rec in found["recommendations"]["municipalities"]:
        named = {k["code"]: k["gap"] for k in rec["kpis"]}
        tied = set(rec["tied"]["kpis"]) if rec["tied"] else set()
        assert not named.keys() & tied
        for gap_ in named.values():
            assert all(gap_ > rec["tied"]["gap"] for _ in tied), rec["municipality_id"]


def test_ties_are_reported_as_ties_and_only_a_unit_clearly_behind_is_named() -> None:
    facts, names = tied_region()
    found = report.yearly(TIES, facts, names, 2024, TODAY_2026)
    assert_no_tie_is_split(found)
    recs = by_code(found["recommendations"]["kpis"])
    # k1: six municipalities at 0 % — more than a recommendation names: none is singled out
    assert recs["k1"]["municipalities"] == []
    assert recs["k1"]["tied"] == {
        "count": 6,
        "value": 0.0,
        "text": "6\u00a0муниципалитетов — 0\u00a0%",
    }
    assert "наименьшее значение одинаково: 6\u00a0муниципалитетов — 0\u00a0%" in recs["k1"]["text"]
    # k2: m03 alone is behind everyone else: it is named, and only it
    assert [m["municipality_id"] for m in recs["k2"]["municipalities"]] == ["m03"]
    assert recs["k2"]["tied"] is None
    # k5: m03 (0 %) and m05 (50 %) are behind the rest (100 %), worst first
    assert [(m["municipality_id"], m["value"]) for m in recs["k5"]["municipalities"]] == [
        ("m03", 0.0),
        ("m05", 50.0),
    ]

    by_mun = {m["municipality_id"]: m for m in found["recommendations"]["municipalities"]}
    # one of six at 0 % on k1 is no distinction: m01, m02, m04, m06 get no recommendation
    assert set(by_mun) == {"m03", "m05"}
    # m03 is behind on k2..k5 alike (0 %): a tie of four, more than named — none singled out
    assert by_mun["m03"]["kpis"] == [] and by_mun["m03"]["tied"]["count"] == 4
    assert by_mun["m03"]["tied"]["text"].startswith(
        "4\u00a0показателя с одинаковым отставанием от цели — 100\u00a0%"
    )
    assert [k["code"] for k in by_mun["m05"]["kpis"]] == ["k5"] and by_mun["m05"]["tied"] is None

    said = {c["kind"]: c for c in found["conclusions"]}
    assert said["municipalities"]["text"] == (
        "Больше всего показателей с отставанием от целей — в муниципалитетах "
        "«Муниципалитет 3» (5), «Муниципалитет 5» (2)."
    )
    off = {line.split(" — ")[0]: line for line in said["off_track"]["items"]}
    assert off["Доля педагогов: f1"].endswith(
        "наименьшее значение одинаково: 6\u00a0муниципалитетов — 0\u00a0%"
    )
    page = printout.html(found)
    assert "6\u00a0муниципалитетов — 0\u00a0%" in page


def test_the_worst_never_splits_a_tie() -> None:
    scored = [(3.0, "a"), (3.0, "b"), (2.0, "c"), (1.0, "d"), (0.0, "e")]
    assert report.worst(scored, 2) == (["a", "b"], None)
    assert report.worst(scored, 1) == ([], (3.0, ["a", "b"]))  # «2 муниципалитета — …»
    assert report.worst(scored, 4, floor=0.0) == (["a", "b", "c", "d"], None)
    assert report.worst(scored, 5, floor=0.0) == (["a", "b", "c", "d"], None)  # not the best
    assert report.worst([(1.0, "a"), (1.0, "b")], 5, floor=1.0) == ([], (1.0, ["a", "b"]))
    assert report.worst([], 5) == ([], None)


def test_russian_plural_forms() -> None:
    assert [wording.plural(n, wording.MUNICIPALITIES) for n in (1, 2, 5, 11, 21, 41, 112)] == [
        f"{n}\u00a0{w}"
        for n, w in (
            (1, "муниципалитет"), (2, "муниципалитета"), (5, "муниципалитетов"),
            (11, "муниципалитетов"), (21, "муниципалитет"), (41, "муниципалитет"),
            (112, "муниципалитетов"),
        )
    ]  # fmt: skip
    assert wording.amount(3, "команд") == "3\u00a0команды"
    assert wording.amount(7.25, "%") == "7,2\u00a0%" or wording.amount(7.25, "%") == "7,3\u00a0%"
    assert wording.change(-2.5, "%") == "−2,5\u00a0п.\u00a0п."


# --- the PDF ---------------------------------------------------------------------------------


def test_without_chromium_or_weasyprint_the_pdf_is_refused_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pdf, "chromium", lambda: None)
    monkeypatch.setattr(pdf.importlib.util, "find_spec", lambda name: None)
    assert pdf.engine() is None
    with pytest.raises(Refused) as refused:
        pdf.render("<html></html>")
    assert (refused.value.code, refused.value.status) == ("pdf_unavailable", 503)
    assert "apt-get install chromium" in refused.value.detail
    assert "weasyprint" in refused.value.detail


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


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
    assert (found["region_name"], found["prepared_by"]) == ("Иркутская область", "ЦНППМ")
    region = {k["code"]: k for k in kpis["region"]["kpis"]}
    last = report.a_year_before(TODAY).isoformat()
    before = (await client.get("/v1/kpis", params={"as_of": last})).json()
    assert found["previous_as_of"] == last
    assert [k["previous"]["value"] for k in found["kpis"]] == [
        k["value"] for k in before["region"]["kpis"]
    ]

    answer = await client.get(f"/v1/reports/{year}.xlsx")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == spreadsheet.XLSX
    assert f'filename="monitoring-report-{year}.xlsx"' in answer.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    title = dict(book["Справка"].iter_rows(min_row=3, max_row=10, values_only=True))
    assert (title["Регион"], title["Отчётный год"]) == ("Иркутская область", year)
    assert title["По состоянию на"] == datetime.combine(TODAY, datetime.min.time())
    assert book["Диаграммы"]._charts
    sheet = book["Показатели"]
    codes = [r[1].comment.text.removeprefix("Код показателя: ") for r in sheet.iter_rows(min_row=2)]
    assert codes == list(region)
    for code, row in zip(codes, sheet.iter_rows(min_row=2, values_only=True), strict=True):
        k = region[code]
        assert (row[1], row[3], row[7], row[8], row[9]) == (
            k["name"],
            k["value"],
            k["numerator"],
            k["population"],
            k["target"],
        ), code
        assert row[13] == report.STATUS_NAMES[k["status"]]

    matrix = book["Муниципалитеты"]
    header = [c.value for c in matrix[1]]
    columns = {
        c.comment.text.rsplit("Код показателя: ", 1)[1]: i
        for i, c in enumerate(matrix[1])
        if c.comment and "Код показателя" in c.comment.text
    }
    assert list(columns) == list(region)
    by_name = {f["code"]: f for f in found["kpis"]}
    for code, i in columns.items():
        assert header[i].startswith(by_name[code]["short_name"]), code  # named, not numbered
    muns = list(
        matrix.iter_rows(min_row=2, max_row=1 + len(found["municipalities"]), values_only=True)
    )
    assert [(r[0], r[1], r[2]) for r in muns] == [
        (m["municipality_id"], m["name"], m["counts"]["teachers"]) for m in kpis["municipalities"]
    ]
    for row, m in zip(muns, kpis["municipalities"], strict=True):
        assert [row[columns[k["code"]]] for k in m["kpis"]] == [k["value"] for k in m["kpis"]]
    assert {r[1] for r in muns} == {"г. Иркутск", "Катангский район"}

    # no teacher of org-2's school (Катангский район) has trained: its KPI is not met, and
    # the recommendation names the municipality (г. Иркутск does better)
    recs = {r["code"]: r for r in found["recommendations"]["kpis"]}
    low = recs["low_results_schools_share"]
    assert low["municipalities"][0]["name"] == "Катангский район"
    assert "«Катангский район» — 0\u00a0% при цели 80\u00a0%" in low["municipalities"][0]["text"]
    for rec in found["recommendations"]["kpis"]:
        assert region[rec["code"]]["status"] not in ("met", "on_track")
    assert_no_tie_is_split(found)

    page = await client.get(f"/v1/reports/{year}/print")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert text.startswith("<!DOCTYPE html>")
    assert f"Информационно-аналитическая справка о мониторинге РС НМС за {year} год" in text
    assert "Иркутская область" in text and "Подготовлено: ЦНППМ" in text
    for k in region.values():
        assert escape(k["name"], quote=False) in text, k["code"]
    # the tracked rows of Appendix 1, as /v1/tracked has them (nothing recorded here)
    listed = (await client.get("/v1/tracked")).json()
    assert [(t["code"], len(t["periods"])) for t in found["tracked"]] == [
        (t["code"], len(t["periods"])) for t in listed
    ]
    assert "Меры (строки приложения 1 без числового показателя)" in text
    assert "нет данных — сведения не внесены" in text and "Меры" in book.sheetnames

    # who prepared it, as the request says, on every form
    by = {"prepared_by": "Отдел мониторинга ЦНППМ"}
    assert (await client.get(f"/v1/reports/{year}", params=by)).json()["prepared_by"] == by[
        "prepared_by"
    ]
    assert (
        "Подготовлено: Отдел мониторинга ЦНППМ"
        in (await client.get(f"/v1/reports/{year}/print", params=by)).text
    )


def needs_chromium() -> None:
    """The PDF is printed by Chromium (tests/tools.sh installs it): only without it is this
    skipped."""
    if pdf.chromium() is None:
        pytest.skip("no Chromium here: apt-get install chromium (tests/tools.sh does)")


async def test_the_pdf_is_the_printable_page_with_its_title_page(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    needs_chromium()
    await load_chain(client, clean_redis)
    year = TODAY.year
    answer = await client.get(f"/v1/reports/{year}.pdf", timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == pdf.PDF
    assert f'filename="monitoring-report-{year}.pdf"' in answer.headers["content-disposition"]
    assert answer.content.startswith(b"%PDF")
    text = pdf_text(answer.content)
    title = f"Информационно-аналитическая справка о мониторинге РС НМС за {year} год"
    assert title in text and "Иркутская область" in text
    assert f"по состоянию на {TODAY:%d.%m.%Y}" in text and "Подготовлено: ЦНППМ" in text
    assert "Катангский район" in text  # the matrix and the recommendations are in it too


async def test_the_reports_index_links_the_analytics_only_when_its_address_is_set(
    tmp_path: Path,
) -> None:
    for url, expected in (
        (None, None),
        ("https://diag.example.ru/", "https://diag.example.ru/v1/analytics.xlsx"),
    ):
        settings = Settings(
            data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", diagnostics_public_url=url
        )
        transport = httpx.ASGITransport(app=create_app(settings))  # no lifespan: no I/O
        async with httpx.AsyncClient(transport=transport, base_url="http://monitoring") as c:
            found = (await c.get("/v1/reports")).json()
        assert found["analytics_xlsx"] == expected
        assert found["yearly"]["pdf"] == "v1/reports/{year}.pdf"
        assert found["prepared_by"] == "ЦНППМ"


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
    assert empty.json()["municipalities"] == [] and empty.json()["conclusions"] == []
    xlsx = await client.get(f"/v1/reports/{TODAY.year - 3}.xlsx")
    assert xlsx.status_code == 200 and openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert (await client.get(f"/v1/reports/{TODAY.year - 3}/print")).status_code == 200

    for path in ("", ".xlsx", "/print", ".pdf"):
        future = await client.get(f"/v1/reports/{TODAY.year + 1}{path}")
        assert (future.status_code, future.json()["code"]) == (422, "future_year"), path
        assert "ещё не наступил" in future.json()["detail"]
