"""The yearly report as a printable HTML page in Russian (A4; the municipal matrix on a
landscape page): a title page, the conclusions, the region's KPIs beside last year's with a
chart, the municipalities, the recommendations and the sources. Everything is in the page
(styles and inline SVG): it prints, and turns into a PDF, on a closed network.

The page is the Jinja2 templates under ``templates/`` (``report.html``, its pieces in
``macros.html``, its style sheet ``report.css``) with autoescape: every text of the report
is escaped where it is written. What the page says is ``report.content``'s; here are only
the few phrasings of the page itself (a cell's target, a deadline's note)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import jinja2
from markupsafe import Markup

from iomflow.monitoring import diagrams
from iomflow.monitoring.report import NOT_RECORDED, SHORT_NOTE, TRACKED_SECTION, status_summary
from iomflow.monitoring.wording import amount, change, goal, number, ru_date, status_name

COUNT_NAMES = {
    "teachers": "Педагогов в реестре",
    "diagnosed": "Прошли диагностику",
    "with_route": "Реализуют ИОМ",
    "supported": "Получают поддержку методиста",
}
SYSTEM = (
    "Региональная система научно-методического сопровождения педагогических работников "
    "и управленческих кадров (РС НМС)"
)
TRENDS = {"better": "улучшение", "worse": "ухудшение", "same": "без изменений"}
TRACKED_HEADER = ["Мера", "Показатель (индикатор)", "Период", "Статус", "Подтверждение", "Внесено"]
SOURCES_HEADER = ["№", "Показатель", "Пункт", "Цель", "Источник"]
FIGURE_SHARES = "Рис. 1. Показатели региона в процентах."
FIGURE_MUNICIPALITIES = (
    "Рис. 2. Муниципалитеты: число показателей по статусам (сначала — с наибольшим числом "
    "достигнутых)."
)


def target_cell(k: Mapping[str, Any]) -> str:
    """«не менее 10 % к 31.12.2024»: a KPI's target as its row says it."""
    if k["comparison"] in ("growth", "decline"):
        return goal(k["comparison"], None, k["unit"])
    deadline = date.fromisoformat(k["deadline"]) if k["deadline"] else None
    until = f" к {ru_date(deadline)}" if deadline else ""
    return f"{goal(k['comparison'], k['target'], k['unit'])}{until}"


def deadline_note(k: Mapping[str, Any]) -> str:
    """«на 31.12.2024: 7,2 % — не достигнут (срок прошёл)» for a KPI past its deadline."""
    then = k["at_deadline"]
    met = then.get("met")
    verdict = "достигнут" if met else "не достигнут" if met is False else "нет данных"
    on = ru_date(date.fromisoformat(then["on"]))
    value = then.get("value")
    said = f"{amount(value, k['unit'])} — {verdict}" if value is not None else "нет данных"
    return f"на {on}: {said} (срок прошёл)"


def region_header(report: Mapping[str, Any]) -> list[str]:
    then = report.get("previous_as_of")
    earlier = f"На {ru_date(date.fromisoformat(then))}" if then else "Годом ранее"
    return [
        "№",
        "Показатель",
        "Значение",
        earlier,
        "Изме\u00adнение",
        "Основа расчёта",
        "Цель",
        "Статус",
        "Про\u00adгноз",
    ]


def recorded_by(p: Mapping[str, Any]) -> str:
    """Who recorded a tracked period and on which day, as far as known."""
    day = p.get("recorded_date")
    when = ru_date(date.fromisoformat(day)) if day else ""
    return ", ".join(w for w in (p.get("recorded_by") or "", when) if w)


@dataclass(frozen=True)
class Matrix:
    header: list[str]
    titles: dict[int, str]
    """Tooltips of the header cells, by column."""
    loads: set[str]
    """The load KPIs: a column of how many methodists follows theirs."""
    notes: str


def matrix_of(report: Mapping[str, Any]) -> Matrix:
    kpis = report["kpis"]
    loads = {k["code"] for k in kpis if k["measure"] == "max_per_holder"}
    header = ["Муниципалитет", "Педагогов"]
    titles: dict[int, str] = {}
    for k in kpis:
        unit = "ед." if k["unit"] == "команд" else k["unit"]
        titles[len(header)] = k["name"]
        header.append(f"{k['short_name']}, {unit}")
        if k["code"] in loads:
            titles[len(header)] = "Сколько региональных методистов ведут педагогов"
            header.append("Методистов")
    notes = [SHORT_NOTE, "Цветом выделены значения «не достигнут» и «под угрозой»."]
    if loads:
        notes.insert(
            0,
            "Нагрузка на методиста — наибольшее число педагогов, закреплённых за одним "
            "региональным методистом; «Методистов» — сколько методистов ведут педагогов "
            "муниципалитета.",
        )
    # Upright headers for the names, the KPIs' written upwards (the template): a column as
    # wide as its numbers, and the whole matrix on a portrait page (a wider table would
    # make Chromium shrink every page of the PDF to fit it).
    return Matrix(header, titles, loads, " ".join(notes))


@functools.cache
def templates() -> jinja2.Environment:
    """The page's templates (built on first use, not at import)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("iomflow.monitoring", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(
        COUNT_NAMES=COUNT_NAMES,
        SYSTEM=SYSTEM,
        NOT_RECORDED=NOT_RECORDED,
        TRACKED_SECTION=TRACKED_SECTION,
        TRACKED_HEADER=TRACKED_HEADER,
        SOURCES_HEADER=SOURCES_HEADER,
        FIGURE_SHARES=FIGURE_SHARES,
        FIGURE_MUNICIPALITIES=FIGURE_MUNICIPALITIES,
        amount=amount,
        change=change,
        number=number,
        ru_date=ru_date,
        status_name=status_name,
        status_summary=status_summary,
        target_cell=target_cell,
        deadline_note=deadline_note,
        region_header=region_header,
        recorded_by=recorded_by,
        matrix_of=matrix_of,
        day=date.fromisoformat,
    )
    return env


def html(report: Mapping[str, Any]) -> str:
    """The report as a printable HTML page in Russian."""
    return (
        templates()
        .get_template("report.html")
        .render(
            report=report,
            on=date.fromisoformat(report["as_of"]),
            # The charts are SVG drawn (and escaped) by ``diagrams``.
            shares=Markup(diagrams.shares(report)),
            spread=Markup(diagrams.municipalities(report)),
        )
    )
