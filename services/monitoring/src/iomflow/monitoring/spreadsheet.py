"""The yearly report as an XLSX workbook in Russian: a title sheet with the conclusions, the
region's KPIs beside last year's, the measures of Appendix 1 (tracked items), charts,
municipalities × KPIs, recommendations and the sources of the targets. Numbers are numbers;
KPI codes only in the cells' notes."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from iomflow.monitoring.report import NOT_RECORDED, SHORT_NOTE, TRACKED_SECTION, status_summary
from iomflow.monitoring.wording import COMPARED, STATUS_NAMES, ru_date, status_name

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UNIT_HEADERS = {"команд": "ед."}
"""A unit as a column header says it (a header has no number to agree with)."""
FILLS = {
    "missed": PatternFill("solid", fgColor="F4D6D6"),
    "at_risk": PatternFill("solid", fgColor="FBEBC8"),
}
AUTHOR = "iomflow"
LOAD_NOTE = (
    "Нагрузка на методиста — наибольшее число педагогов, закреплённых за одним региональным "
    "методистом; «методистов» — сколько методистов ведут педагогов муниципалитета."
)
STATUS_GROUPS = [
    ("Достигнут / в графике", ("met", "on_track"), "1B7F3B"),
    ("Под угрозой", ("at_risk",), "E0A100"),
    ("Не достигнут", ("missed",), "C62828"),
    ("Нет данных", ("no_data",), "9E9E9E"),
]
"""The municipalities' chart: KPIs by status (a value without a target there is not counted)."""


def _note(text: str) -> Comment:
    comment = Comment(text, AUTHOR)
    comment.width, comment.height = 300, 60
    return comment


def _code(code: str) -> Comment:
    return _note(f"Код показателя: {code}")


def _sheet(
    book: Workbook,
    title: str,
    header: list[str],
    rows: Iterable[list[Any]],
    widths: Mapping[int, int] | None = None,
    freeze: str = "C2",
) -> Worksheet:
    sheet = book.create_sheet(title)
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = freeze
    for i, name in enumerate(header, 1):
        width = (widths or {}).get(i) or min(max(len(name) + 2, 10), 45)
        sheet.column_dimensions[get_column_letter(i)].width = width
    return sheet


def _date(iso: str | None) -> date | None:
    return date.fromisoformat(iso) if iso else None


def _unit_header(unit: str) -> str:
    return UNIT_HEADERS.get(unit, unit)


def _title_sheet(book: Workbook, report: Mapping[str, Any]) -> None:
    """The first sheet, the title page: what the workbook is, for which region and year, as
    of when and who prepared it — a file sent on by mail must say so itself (and its
    document properties say the same); then the conclusions."""
    as_of = date.fromisoformat(report["as_of"])
    sheet = book.create_sheet("Справка")
    rows: list[tuple[str, Any]] = [
        ("Регион", report.get("region_name") or "—"),
        ("Отчётный год", report["year"]),
        ("По состоянию на", as_of),
        (
            "Вид",
            "итоговая (год завершён)" if report["final"] else "промежуточная (год не завершён)",
        ),
        ("Подготовлено", report.get("prepared_by") or "—"),
        ("Дата формирования", _date(report.get("made_on")) or "—"),
        ("Показатели и цели", report["source"]),
        ("Статусы показателей региона", status_summary(report)),
    ]
    sheet.append([report["title"]])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([report.get("region_name") or ""])
    sheet["A2"].font = Font(bold=True, size=12)
    for label, value in rows:
        sheet.append([label, value])
    for row in sheet.iter_rows(min_row=3, max_row=2 + len(rows)):
        row[0].font = Font(bold=True)
        row[1].alignment = Alignment(wrap_text=True, vertical="top", horizontal="left")
        if isinstance(row[1].value, date):
            row[1].number_format = "DD.MM.YYYY"
    sheet.append([])
    sheet.append(["Выводы"])
    sheet.cell(sheet.max_row, 1).font = Font(bold=True, size=12)
    found = report.get("conclusions") or []
    if not found:
        sheet.append(["", "Выводы не сформулированы: данных мониторинга на эту дату нет."])
    for n, item in enumerate(found, 1):
        sheet.append([n, item["text"]])
        for line in item["items"]:
            sheet.append(["", f"— {line}"])
    for row in sheet.iter_rows(min_row=3 + len(rows)):
        row[1].alignment = Alignment(wrap_text=True, vertical="top")
        row[0].alignment = Alignment(vertical="top", horizontal="left")
    sheet.column_dimensions["A"].width = 30
    sheet.column_dimensions["B"].width = 110
    book.properties.title = report["title"]
    book.properties.subject = " · ".join(
        p for p in (report.get("region_name"), f"По состоянию на {ru_date(as_of)}") if p
    )
    book.properties.creator = report.get("prepared_by") or AUTHOR


def _kpi_sheet(book: Workbook, report: Mapping[str, Any]) -> None:
    then = _date(report.get("previous_as_of"))
    sheet = _sheet(
        book,
        "Показатели",
        [
            "№",
            "Показатель",
            "Ед. изм.",
            "Значение",
            f"Годом ранее ({ru_date(then)})" if then else "Годом ранее",
            "Изменение",
            "Основа расчёта",
            "Числитель",
            "Численность (база)",
            "Цель",
            "Условие",
            "Срок",
            "Период",
            "Статус",
            "Статус годом ранее",
            "Прогноз",
            "Пункт",
        ],
        (
            [
                k["number"],
                k["name"],
                k["unit"],
                k["value"],
                (k["previous"] or {}).get("value"),
                k["change"],
                k["basis"],
                k["numerator"],
                k["population"],
                k["target"],
                COMPARED.get(k["comparison"], k["comparison"]),
                _date(k["deadline"]),
                (k.get("period") or {}).get("label", ""),
                k["status_name"],
                (k["previous"] or {}).get("status_name", ""),
                k["forecast"],
                k["clause"],
            ]
            for k in report["kpis"]
        ),
        widths={2: 60, 7: 34, 13: 18, 17: 40},
    )
    for row, k in zip(sheet.iter_rows(min_row=2), report["kpis"], strict=True):
        row[1].comment = _code(k["code"])
        row[1].alignment = row[6].alignment = Alignment(wrap_text=True, vertical="top")
        row[11].number_format = "DD.MM.YYYY"
        if k["status"] in FILLS:
            row[13].fill = FILLS[k["status"]]
    sheet["H1"].comment = _note(
        "Сколько учтено; для нагрузки на методиста — педагогов у самого загруженного методиста"
    )
    sheet["I1"].comment = _note("Из скольких; для нагрузки на методиста — число методистов")


NO_PERIOD: Mapping[str, Any] = {"label": "периодов ещё нет", "status": "", "status_name": ""}


def _tracked_sheet(book: Workbook, report: Mapping[str, Any]) -> None:
    """«Меры»: the tracked items of Appendix 1, a row per period — as the page has them
    (the item's code in the note of its name); no sheet without items."""
    items = report.get("tracked") or []
    if not items:
        return
    # a yearly item whose first year is still to come: one row saying so
    pairs = [(item, p) for item in items for p in item["periods"] or [NO_PERIOD]]
    sheet = _sheet(
        book,
        "Меры",
        [
            "Мера",
            "Показатель (индикатор)",
            "Пункт",
            "Период",
            "Срок",
            "Статус",
            "Отмечено",
            "Подтверждение",
            "Кем внесено",
            "Когда внесено",
        ],
        (
            [
                item["name"],
                item["target"],
                item["clause"],
                p["label"],
                _date(p.get("due")),
                p["status_name"],
                p.get("recorded_words") or "",
                "" if p is NO_PERIOD else p.get("evidence_text") or NOT_RECORDED,
                p.get("recorded_by") or "",
                _date(p.get("recorded_date")),
            ]
            for item, p in pairs
        ),
        widths={1: 60, 2: 36, 3: 30, 4: 16, 5: 12, 6: 14, 7: 14, 8: 60, 9: 20, 10: 14},
        freeze="B2",
    )
    for row, (item, p) in zip(sheet.iter_rows(min_row=2), pairs, strict=True):
        row[0].comment = _note(f"Код пункта: {item['code']}")
        for i in (0, 1, 2, 7):
            row[i].alignment = Alignment(wrap_text=True, vertical="top")
        row[4].number_format = row[9].number_format = "DD.MM.YYYY"
        if p["status"] in FILLS:
            row[5].fill = FILLS[p["status"]]
    sheet.append([])
    sheet.append([TRACKED_SECTION + ": статус — по сведениям, внесённым оператором."])


def _matrix_sheet(book: Workbook, report: Mapping[str, Any]) -> None:
    """Municipalities × KPIs, each column by the KPI's short name and unit (the full name in
    the header's note); the methodist load beside the number of methodists."""
    kpis = report["kpis"]
    header = ["Код", "Муниципалитет", "Педагогов"]
    notes: dict[int, str] = {}
    loads = {k["code"] for k in kpis if k["measure"] == "max_per_holder"}
    for k in kpis:
        header.append(f"{k['short_name']}, {_unit_header(k['unit'])}")
        notes[len(header)] = f"{k['name']}\nКод показателя: {k['code']}"
        if k["code"] in loads:
            header.append("Методистов, чел.")
            notes[len(header)] = "Сколько региональных методистов ведут педагогов муниципалитета"
    rows = []
    for m in report["municipalities"]:
        row: list[Any] = [m["municipality_id"], m["name"], m["counts"].get("teachers", 0)]
        for v in m["kpis"]:
            row.append(v["value"])
            if v["code"] in loads:
                row.append(v["population"])
        rows.append(row)
    sheet = _sheet(
        book,
        "Муниципалитеты",
        header,
        rows,
        widths={2: 30, **{i: 16 for i in range(4, len(header) + 1)}},
    )
    sheet.row_dimensions[1].height = 60
    for column, text in notes.items():
        sheet.cell(1, column).comment = _note(text)
    for r, m in enumerate(report["municipalities"], 2):
        column = 4
        for v in m["kpis"]:
            if v["status"] in FILLS:
                sheet.cell(r, column).fill = FILLS[v["status"]]
            column += 2 if v["code"] in loads else 1
    sheet.append([])
    legend = [SHORT_NOTE, "Цветом выделены значения «не достигнут» и «под угрозой»."]
    if loads:
        legend.insert(0, LOAD_NOTE)
    for line in legend:
        sheet.append(["", line])


def _recommendation_sheet(book: Workbook, report: Mapping[str, Any]) -> None:
    recs = report["recommendations"]
    rows: list[list[Any]] = []
    codes: list[str | None] = []
    for r in recs["kpis"]:
        rows.append(["по показателю", r["name"], "", r["value"], r["target"], None, r["text"]])
        codes.append(r["code"])
        for m in r["municipalities"]:
            rows.append(
                [
                    "по показателю",
                    r["name"],
                    m["name"],
                    m["value"],
                    r["target"],
                    _percent(m["gap"]),
                    m["text"],
                ]
            )
            codes.append(r["code"])
        if r["tied"]:
            rows.append(
                [
                    "по показателю",
                    r["name"],
                    "—",
                    r["tied"]["value"],
                    r["target"],
                    None,
                    f"Наименьшее значение одинаково: {r['tied']['text']}; "
                    "отдельные муниципалитеты не выделяются.",
                ]
            )
            codes.append(r["code"])
    for m in recs["municipalities"]:
        for k in m["kpis"]:
            rows.append(
                [
                    "по муниципалитету",
                    k["name"],
                    m["name"],
                    k["value"],
                    k["target"],
                    _percent(k["gap"]),
                    k["text"],
                ]
            )
            codes.append(k["code"])
        if m["tied"]:
            rows.append(
                [
                    "по муниципалитету",
                    "",
                    m["name"],
                    None,
                    None,
                    _percent(m["tied"]["gap"]),
                    m["tied"]["text"],
                ]
            )
            codes.append(None)
    sheet = _sheet(
        book,
        "Рекомендации",
        [
            "Раздел",
            "Показатель",
            "Муниципалитет",
            "Значение",
            "Цель",
            "Отставание от цели, %",
            "Рекомендация",
        ],
        rows,
        widths={2: 50, 3: 30, 7: 100},
    )
    for row, code in zip(sheet.iter_rows(min_row=2), codes, strict=True):
        if code:
            row[1].comment = _code(code)
        row[1].alignment = row[6].alignment = Alignment(wrap_text=True, vertical="top")


def _sources_sheet(book: Workbook, report: Mapping[str, Any]) -> None:
    pairs = [(s, t) for s in report["sources"] for t in s["targets"]]
    sheet = _sheet(
        book,
        "Источники",
        ["№", "Показатель", "Пункт", "Цель", "Ед. изм.", "В силе", "Источник"],
        (
            [
                s["number"],
                s["name"],
                s["clause"],
                t["value"],
                t["unit"],
                "да" if t["in_force"] else "нет",
                t["source"],
            ]
            for s, t in pairs
        ),
        widths={2: 60, 3: 40, 7: 80},
    )
    for row, (s, _) in zip(sheet.iter_rows(min_row=2), pairs, strict=True):
        row[1].comment = _code(s["code"])
    sheet.append([])
    sheet.append(["", "Каталог показателей", "", None, "", "", report["source"]])


def _charts_sheet(book: Workbook, report: Mapping[str, Any]) -> None:
    """Two charts, each beside the table it is drawn from: the region's shares against
    their targets (and last year's), and the municipalities' KPIs by status."""
    sheet = book.create_sheet("Диаграммы")
    shares = [
        k
        for k in report["kpis"]
        if k["unit"] == "%" and k["comparison"] not in ("growth", "decline")
    ]
    then = _date(report.get("previous_as_of"))
    header = ["Показатель", "Значение, %", "Цель, %"]
    if then:
        header.insert(2, f"На {ru_date(then)}, %")
    sheet.append(["Показатели региона в процентах: значение и цель"])
    sheet["A1"].font = Font(bold=True)
    sheet.append(header)
    for k in shares:
        row = [k["short_name"], k["value"], k["target"]]
        if then:
            row.insert(2, (k["previous"] or {}).get("value"))
        sheet.append(row)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 34
    for column in "BCDEFG":
        sheet.column_dimensions[column].width = 14
    if shares:
        last = 2 + len(shares)
        chart = BarChart()
        chart.type = "bar"
        chart.style = 10
        chart.title = "Показатели региона, %: значение и цель"
        chart.y_axis.title = "%"
        chart.y_axis.scaling.min = 0
        chart.y_axis.scaling.max = 100
        chart.x_axis.scaling.orientation = "maxMin"  # the first KPI on top, as in the table
        chart.add_data(
            Reference(sheet, min_col=2, max_col=len(header), min_row=2, max_row=last),
            titles_from_data=True,
        )
        chart.set_categories(Reference(sheet, min_col=1, min_row=3, max_row=last))
        for series, colour in zip(
            chart.series,
            ["1565C0", "90A4AE", "C62828"] if then else ["1565C0", "C62828"],
            strict=False,
        ):
            series.graphicalProperties.solidFill = colour
            series.graphicalProperties.line.solidFill = colour
        chart.height = max(8.0, 0.75 * len(shares))
        chart.width = 22
        sheet.add_chart(chart, "F2")

    start = 4 + len(shares) + 2
    sheet.cell(start - 1, 1, "Муниципалитеты: показатели по статусам").font = Font(bold=True)
    sheet.cell(start, 1, "Муниципалитет").font = Font(bold=True)
    for i, (label, _, _) in enumerate(STATUS_GROUPS, 2):
        sheet.cell(start, i, label).font = Font(bold=True)
    municipalities = report["municipalities"]
    for r, m in enumerate(municipalities, start + 1):
        sheet.cell(r, 1, m["name"])
        for i, (_, statuses, _) in enumerate(STATUS_GROUPS, 2):
            sheet.cell(r, i, sum(v["status"] in statuses for v in m["kpis"]))
    if municipalities:
        last = start + len(municipalities)
        chart = BarChart()
        chart.type = "bar"
        chart.grouping = "stacked"
        chart.overlap = 100
        chart.title = "Муниципалитеты: число показателей по статусам"
        chart.x_axis.scaling.orientation = "maxMin"
        chart.add_data(
            Reference(
                sheet, min_col=2, max_col=1 + len(STATUS_GROUPS), min_row=start, max_row=last
            ),
            titles_from_data=True,
        )
        chart.set_categories(Reference(sheet, min_col=1, min_row=start + 1, max_row=last))
        for series, (_, _, colour) in zip(chart.series, STATUS_GROUPS, strict=True):
            series.graphicalProperties.solidFill = colour
            series.graphicalProperties.line.solidFill = colour
        chart.height = max(8.0, 0.55 * len(municipalities))
        chart.width = 22
        sheet.add_chart(chart, f"F{start}")


def workbook(report: Mapping[str, Any]) -> bytes:
    """The report as an XLSX workbook in Russian: the title sheet (region, year, as-of date,
    who prepared it, the conclusions), the region's KPIs beside last year's, the measures
    of Appendix 1, the charts, municipalities × KPIs, recommendations and the sources of
    the targets."""
    book = Workbook()
    assert book.active is not None
    book.remove(book.active)
    _title_sheet(book, report)
    _kpi_sheet(book, report)
    _tracked_sheet(book, report)
    _charts_sheet(book, report)
    _matrix_sheet(book, report)
    _recommendation_sheet(book, report)
    _sources_sheet(book, report)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _percent(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


__all__ = ["STATUS_NAMES", "XLSX", "status_name", "workbook"]
