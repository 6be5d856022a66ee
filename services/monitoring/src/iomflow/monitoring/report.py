"""The yearly monitoring report (информационно-аналитическая справка): the region's KPIs
as of the end of a year (or today, for the current one), every KPI per municipality, and
recommendations — the weakest municipalities of each KPI the region does not meet, and
each municipality's weakest KPIs; written as a workbook and as a printable page.

Pure: ``yearly`` takes the catalogue, the loaded facts and the municipality names and
returns plain data that the API serves as JSON; ``workbook`` and ``html`` only write it.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date
from html import escape
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from iomflow.monitoring import domain, views
from iomflow.shared.errors import Refused

STATUS_NAMES = {
    "met": "достигнут",
    "on_track": "в графике",
    "at_risk": "под угрозой",
    "missed": "не достигнут",
    "no_data": "нет данных",
    "not_judged": "без цели на этом уровне",
}
WELL = frozenset({"met", "on_track", "not_judged"})
WEAKEST = 5
"""How many municipalities a KPI's recommendation names."""
WEAKEST_KPIS = 3
"""How many KPIs a municipality's recommendation names."""

ACTIONS = {
    "diagnosed": "организовать диагностику профессиональных дефицитов педагогов",
    "route": "разработать индивидуальные образовательные маршруты по результатам диагностики",
    "support": "закрепить региональных методистов за педагогами, реализующими ИОМ",
    "trained": "направить педагогов на обучение по программам ДПО соответствующей тематики",
    "tutor": "обеспечить тьюторское сопровождение педагогов при повышении квалификации",
    "team_trained": "организовать повышение квалификации управленческих команд",
    "mentoring_org": "внедрить программы наставничества педагогических работников",
    "expert": "вовлекать педагогов в экспертную деятельность на региональном уровне",
}
"""What to do about a KPI, by the fact its numerator counts (a KPI of a new kind gets the
general sentence)."""
LOAD_ACTION = "перераспределить педагогов между методистами или привлечь новых методистов"
GENERAL_ACTION = "принять меры для достижения целевого значения"


# --- the content ---------------------------------------------------------------------------


def as_of(year: int, today: date) -> date:
    """The day a year's report is made as of: its last day, or today for the current year;
    a year still to come is refused."""
    if year > today.year:
        raise Refused(
            "future_year",
            f"Справку за {year} год нельзя сформировать: этот год ещё не наступил.",
            422,
        )
    return today if year == today.year else date(year, 12, 31)


def yearly(
    catalogue: domain.Catalogue,
    facts: domain.Facts,
    names: Mapping[str, str],
    year: int,
    today: date,
) -> dict[str, Any]:
    """The report for ``year``: the region's KPIs, every KPI per municipality and the
    recommendations, as of the end of the year (today, if the year is the current one)."""
    on = as_of(year, today)
    answer = views.region(catalogue, facts, dict(names), on)
    return content(catalogue, answer, year, on, final=year < today.year)


def content(
    catalogue: domain.Catalogue, answer: Mapping[str, Any], year: int, on: date, final: bool
) -> dict[str, Any]:
    """The report from ``views.region``'s answer as of ``on``."""
    kpis = {k.code: k for k in catalogue.kpis}
    region = [
        {"number": n, **row, "status_name": STATUS_NAMES[row["status"]]}
        for n, row in enumerate(answer["region"]["kpis"], 1)
    ]
    municipalities = [
        {
            "municipality_id": m["municipality_id"],
            "name": m["name"],
            "counts": m["counts"],
            "kpis": [
                {
                    key: row[key]
                    for key in ("code", "value", "numerator", "population", "met", "status")
                }
                for row in m["kpis"]
            ],
        }
        for m in answer["municipalities"]
        if m["municipality_id"] is not None  # with no members at all, a limit KPI says None
    ]
    return {
        "year": year,
        "as_of": on.isoformat(),
        "final": final,
        "title": f"Информационно-аналитическая справка о мониторинге РС НМС за {year} год",
        "source": catalogue.source,
        "counts": answer["region"]["counts"],
        "summary": {s: n for s, n in Counter(r["status"] for r in region).items()},
        "kpis": region,
        "municipalities": municipalities,
        "recommendations": {
            "kpis": [
                _kpi_recommendation(kpis[row["code"]], row, municipalities)
                for row in region
                if row["status"] not in WELL
            ],
            "municipalities": [
                found
                for m in municipalities
                if (found := _municipality_recommendation(kpis, region, m))["kpis"]
            ],
        },
        "sources": [
            {
                "number": row["number"],
                "code": row["code"],
                "name": row["name"],
                "clause": row["clause"],
                "targets": [
                    {**t, "in_force": i == 0, "unit": row["unit"]}
                    for i, t in enumerate(row["targets"])
                ],
            }
            for row in region
        ],
    }


def number(value: float | None) -> str:
    """A value the Russian way: 3,1 · 10 · 1 250; a dash for none."""
    if value is None:
        return "—"
    text = f"{value:,.1f}".replace(",", "\u00a0").replace(".", ",")
    return text.removesuffix(",0")


def amount(value: float | None, unit: str) -> str:
    return number(value) if value is None else f"{number(value)}\u00a0{unit}"


def target_text(kpi: domain.Kpi) -> str:
    if kpi.comparison == "growth":
        return "цели — положительная динамика к прошлому году"
    if kpi.comparison == "<=":
        return f"пределе {amount(kpi.target, kpi.unit)}"
    return f"цели {amount(kpi.target, kpi.unit)}"


def action(kpi: domain.Kpi) -> str:
    if kpi.comparison == "<=" and kpi.measure == "max_per_holder":
        return LOAD_ACTION
    return ACTIONS.get(kpi.numerator.fact, GENERAL_ACTION)


def gap(kpi: domain.Kpi, value: float | None) -> float | None:
    """How far a value stands from the target, relative to the target (0 = on it, 1 = as
    far as the target itself); None when it cannot be said (no value, a growth KPI)."""
    if value is None or kpi.comparison == "growth" or not kpi.target:
        return None
    short = kpi.target - value if kpi.comparison == ">=" else value - kpi.target
    return round(max(short, 0.0) / kpi.target, 3)


def _weakness(kpi: domain.Kpi, value: float) -> float:
    """Smaller is weaker: the lowest values of a ">=" or growth KPI, the highest of a limit."""
    return -value if kpi.comparison == "<=" else value


def _kpi_recommendation(
    kpi: domain.Kpi, row: Mapping[str, Any], municipalities: list[dict[str, Any]]
) -> dict[str, Any]:
    behind = []
    for m in municipalities:
        value = next(v for v in m["kpis"] if v["code"] == kpi.code)
        if value["population"] > 0 and value["value"] is not None and value["met"] is False:
            behind.append((m, value))
    behind.sort(key=lambda mv: (_weakness(kpi, mv[1]["value"]), mv[0]["name"]))
    todo = action(kpi)
    if row["value"] is None:
        text = (
            f"Показатель «{kpi.name}» не рассчитан: в регионе нет данных для него; "
            "рекомендуется обеспечить полноту данных мониторинга."
        )
    else:
        text = (
            f"{kpi.name} по региону — {amount(row['value'], kpi.unit)} при "
            f"{target_text(kpi)} (статус: {STATUS_NAMES[row['status']]}): рекомендуется "
            f"{todo}"
            + (", прежде всего в муниципалитетах с наибольшим отставанием." if behind else ".")
        )
    return {
        "code": kpi.code,
        "name": kpi.name,
        "status": row["status"],
        "status_name": STATUS_NAMES[row["status"]],
        "value": row["value"],
        "target": kpi.target,
        "unit": kpi.unit,
        "text": text,
        "municipalities": [
            {
                "municipality_id": m["municipality_id"],
                "name": m["name"],
                "value": value["value"],
                "numerator": value["numerator"],
                "population": value["population"],
                "gap": gap(kpi, value["value"]),
                "text": (
                    f"{kpi.name} в муниципалитете «{m['name']}» — "
                    f"{amount(value['value'], kpi.unit)} при {target_text(kpi)}: "
                    f"рекомендуется {todo}."
                ),
            }
            for m, value in behind[:WEAKEST]
        ],
    }


def _municipality_recommendation(
    kpis: Mapping[str, domain.Kpi], region: list[dict[str, Any]], m: Mapping[str, Any]
) -> dict[str, Any]:
    """The municipality's KPIs furthest from their targets (relative to the target)."""
    behind = []
    for value in m["kpis"]:
        kpi = kpis[value["code"]]
        far = gap(kpi, value["value"])
        if value["population"] > 0 and value["met"] is False and far:
            behind.append((far, kpi, value))
    behind.sort(key=lambda fkv: (-fkv[0], fkv[1].code))
    numbers = {row["code"]: row["number"] for row in region}
    return {
        "municipality_id": m["municipality_id"],
        "name": m["name"],
        "kpis": [
            {
                "number": numbers[kpi.code],
                "code": kpi.code,
                "name": kpi.name,
                "value": value["value"],
                "target": kpi.target,
                "unit": kpi.unit,
                "gap": far,
                "text": (
                    f"{kpi.name} — {amount(value['value'], kpi.unit)} при {target_text(kpi)} "
                    f"({_shortfall(kpi, far)}): рекомендуется {action(kpi)}."
                ),
            }
            for far, kpi, value in behind[:WEAKEST_KPIS]
        ],
    }


def _shortfall(kpi: domain.Kpi, far: float) -> str:
    if kpi.comparison == "<=":
        return f"предел превышен на {number(100 * far)}\u00a0%"
    return f"отставание {number(100 * far)}\u00a0% от цели"


# --- the workbook --------------------------------------------------------------------------

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COMPARISONS = {">=": "не менее", "<=": "не более", "growth": "рост к прошлому году"}


def _sheet(
    book: Workbook,
    title: str,
    header: list[str],
    rows: Iterable[list[Any]],
    widths: Mapping[int, int] | None = None,
) -> Any:
    sheet = book.create_sheet(title)
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "C2"
    for i, name in enumerate(header, 1):
        width = (widths or {}).get(i) or min(max(len(name) + 2, 10), 45)
        sheet.column_dimensions[get_column_letter(i)].width = width
    return sheet


def _date(iso: str | None) -> date | None:
    return date.fromisoformat(iso) if iso else None


def status_summary(report: Mapping[str, Any]) -> str:
    """«достигнут — 3, под угрозой — 6, …»: the region's KPIs by status."""
    return ", ".join(
        f"{STATUS_NAMES[s]} — {report['summary'][s]}"
        for s in STATUS_NAMES
        if s in report["summary"]
    )


def _title_sheet(book: Workbook, report: Mapping[str, Any]) -> None:
    """The first sheet: what the workbook is, for which year and as of when — a file sent
    on by mail must say so itself (and its document properties say the same)."""
    as_of = date.fromisoformat(report["as_of"])
    summary = status_summary(report)
    sheet = book.create_sheet("Справка")
    rows: list[tuple[str, Any]] = [
        ("Отчётный год", report["year"]),
        ("По состоянию на", as_of),
        (
            "Вид",
            "итоговая (год завершён)" if report["final"] else "промежуточная (год не завершён)",
        ),
        ("Показатели и цели", report["source"]),
        ("Статусы показателей региона", summary),
    ]
    sheet.append([report["title"]])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([])
    for label, value in rows:
        sheet.append([label, value])
    for row in sheet.iter_rows(min_row=3, max_col=1):
        row[0].font = Font(bold=True)
    sheet["B4"].number_format = "DD.MM.YYYY"
    sheet.column_dimensions["A"].width = 30
    sheet.column_dimensions["B"].width = 90
    for row in sheet.iter_rows(min_row=3, min_col=2, max_col=2):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
    book.properties.title = report["title"]
    book.properties.subject = f"По состоянию на {as_of:%d.%m.%Y}"


def workbook(report: Mapping[str, Any]) -> bytes:
    """The report as an XLSX workbook in Russian: its title, year and as-of date, the
    region's KPIs, municipalities × KPIs, recommendations and the sources of the targets.
    Numbers are numbers."""
    book = Workbook()
    assert book.active is not None
    book.remove(book.active)
    _title_sheet(book, report)
    sheet = _sheet(
        book,
        "Показатели",
        [
            "№",
            "Код",
            "Показатель",
            "Ед. изм.",
            "Значение",
            "Числитель",
            "Численность",
            "Цель",
            "Условие",
            "Срок",
            "Статус",
            "Прогноз",
            "Пункт",
        ],
        (
            [
                k["number"],
                k["code"],
                k["name"],
                k["unit"],
                k["value"],
                k["numerator"],
                k["population"],
                k["target"],
                COMPARISONS[k["comparison"]],
                _date(k["deadline"]),
                k["status_name"],
                k["forecast"],
                k["clause"],
            ]
            for k in report["kpis"]
        ),
        widths={3: 60, 13: 40},
    )
    for cell in sheet["J"][1:]:
        cell.number_format = "DD.MM.YYYY"
    for cell in sheet["C"][1:]:
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    kpis = report["kpis"]
    _sheet(
        book,
        "Муниципалитеты",
        [
            "Код",
            "Муниципалитет",
            "Педагогов",
            *(f"{k['number']}. {k['name']}, {k['unit']}" for k in kpis),
        ],
        (
            [
                m["municipality_id"],
                m["name"],
                m["counts"].get("teachers", 0),
                *(v["value"] for v in m["kpis"]),
            ]
            for m in report["municipalities"]
        ),
        widths={2: 30, **{i: 18 for i in range(4, 4 + len(kpis))}},
    )
    recs = report["recommendations"]
    rows: list[list[Any]] = []
    for r in recs["kpis"]:
        rows.append(
            ["по показателю", r["code"], r["name"], "", r["value"], r["target"], "", r["text"]]
        )
        rows.extend(
            [
                "по показателю",
                r["code"],
                r["name"],
                m["name"],
                m["value"],
                r["target"],
                _percent(m["gap"]),
                m["text"],
            ]
            for m in r["municipalities"]
        )
    for m in recs["municipalities"]:
        rows.extend(
            [
                "по муниципалитету",
                k["code"],
                k["name"],
                m["name"],
                k["value"],
                k["target"],
                _percent(k["gap"]),
                k["text"],
            ]
            for k in m["kpis"]
        )
    _sheet(
        book,
        "Рекомендации",
        [
            "Раздел",
            "Код",
            "Показатель",
            "Муниципалитет",
            "Значение",
            "Цель",
            "Отставание от цели, %",
            "Рекомендация",
        ],
        rows,
        widths={3: 50, 4: 30, 8: 100},
    )
    sources = _sheet(
        book,
        "Источники",
        ["№", "Код", "Показатель", "Пункт", "Цель", "Ед. изм.", "В силе", "Источник"],
        (
            [
                s["number"],
                s["code"],
                s["name"],
                s["clause"],
                t["value"],
                t["unit"],
                "да" if t["in_force"] else "нет",
                t["source"],
            ]
            for s in report["sources"]
            for t in s["targets"]
        ),
        widths={3: 60, 4: 40, 8: 80},
    )
    sources.append([])
    sources.append(["", "", "Каталог показателей", "", None, "", "", report["source"]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _percent(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


# --- the printable page --------------------------------------------------------------------

COUNT_NAMES = {
    "teachers": "Педагогов в реестре",
    "diagnosed": "Прошли диагностику",
    "with_route": "Реализуют ИОМ",
    "supported": "Получают поддержку методиста",
}

CSS = """
@page { size: A4; margin: 15mm 12mm; }
@page wide { size: A4 landscape; margin: 12mm; }
body { font-family: "PT Serif", "Times New Roman", serif; font-size: 11pt; color: #000;
       margin: 0 auto; max-width: 190mm; }
h1 { font-size: 15pt; text-align: center; margin: 0 0 4mm; }
h2 { font-size: 13pt; margin: 6mm 0 2mm; break-after: avoid; }
h3 { font-size: 11.5pt; margin: 4mm 0 1mm; break-after: avoid; }
h4 { font-size: 10.5pt; margin: 3mm 0 1mm; break-after: avoid; }
p.meta { text-align: center; margin: 0 0 1mm; }
table { border-collapse: collapse; width: 100%; margin: 2mm 0; font-size: 9pt; }
th, td { border: 0.5pt solid #555; padding: 1mm 1.5mm; vertical-align: top; }
th { background: #eee; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
td.n { text-align: right; white-space: nowrap; }
.missed, .at_risk { background: #f4d6d6; }
.no_data { color: #777; }
section.wide { page: wide; break-before: page; max-width: none; }
section.wide table { font-size: 7pt; }
section.wide th, section.wide td { padding: 0.5mm 0.8mm; }
ul { margin: 1mm 0; padding-left: 6mm; }
li { margin-bottom: 1mm; }
@media screen { body { padding: 10mm; } section.wide { max-width: 277mm; } }
"""


def _e(value: Any) -> str:
    return escape(str(value))


def _table(header: list[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def html(report: Mapping[str, Any]) -> str:
    """The report as a printable HTML page in Russian (A4; the municipality table on a
    landscape page)."""
    on = date.fromisoformat(report["as_of"])
    kpis = report["kpis"]
    state = (
        f"Данные на конец дня {on:%d.%m.%Y}"
        if report["final"]
        else f"Год не завершён: данные на {on:%d.%m.%Y}"
    )
    counts = "".join(
        f'<tr><td>{_e(name)}</td><td class="n">{number(report["counts"].get(key, 0))}</td></tr>'
        for key, name in COUNT_NAMES.items()
    )
    summary = status_summary(report)
    region = _table(
        ["№", "Показатель", "Значение", "Числитель / численность", "Цель", "Статус", "Прогноз"],
        (
            f'<tr class="{_e(k["status"])}"><td class="n">{k["number"]}</td>'
            f"<td>{_e(k['name'])}</td>"
            f'<td class="n">{_e(amount(k["value"], k["unit"]))}</td>'
            f'<td class="n">{k["numerator"]} / {k["population"]}</td>'
            f"<td>{_e(_target_cell(k))}</td><td>{_e(k['status_name'])}</td>"
            f'<td class="n">{_e(amount(k["forecast"], k["unit"]))}</td></tr>'
            for k in kpis
        ),
    )
    units = {k["code"]: k["unit"] for k in kpis}
    matrix = _table(
        ["Муниципалитет", "Педагогов", *(str(k["number"]) for k in kpis)],
        (
            f"<tr><td>{_e(m['name'])}</td>"
            f'<td class="n">{m["counts"].get("teachers", 0)}</td>'
            + "".join(
                f'<td class="n {_e(v["status"])}">{_e(_cell(v, units[v["code"]]))}</td>'
                for v in m["kpis"]
            )
            + "</tr>"
            for m in report["municipalities"]
        ),
    )
    legend = "; ".join(f"{k['number']} — {k['name']}" for k in kpis)
    recs = report["recommendations"]
    by_kpi = (
        "".join(
            f"<h4>{_e(r['name'])}</h4><p>{_e(r['text'])}</p>"
            + (
                "<ul>" + "".join(f"<li>{_e(m['text'])}</li>" for m in r["municipalities"]) + "</ul>"
                if r["municipalities"]
                else ""
            )
            for r in recs["kpis"]
        )
        or "<p>Все показатели региона достигнуты или выполняются в графике.</p>"
    )
    by_mun = (
        "".join(
            f"<h4>{_e(m['name'])}</h4><ul>"
            + "".join(f"<li>{_e(k['text'])}</li>" for k in m["kpis"])
            + "</ul>"
            for m in recs["municipalities"]
        )
        or "<p>Отставаний муниципалитетов от целевых значений нет.</p>"
    )
    sources = _table(
        ["№", "Показатель", "Пункт", "Цель", "Источник"],
        (
            f'<tr><td class="n">{s["number"]}</td><td>{_e(s["name"])}</td>'
            f"<td>{_e(s['clause'])}</td>"
            f'<td class="n">{_e(amount(t["value"], t["unit"]))}'
            f"{'' if t['in_force'] else ' (справочно)'}</td><td>{_e(t['source'])}</td></tr>"
            for s in report["sources"]
            for t in s["targets"]
        ),
    )
    title = _e(report["title"])
    return f"""<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">{_e(state)}</p>
<p class="meta">Показатели: {_e(report["source"])}</p>
<section>
<h2>1. Общие сведения</h2>
{_table(["Показатель", "Число"], [counts])}
<p>Статусы показателей региона: {_e(summary)}.</p>
</section>
<section>
<h2>2. Показатели региона</h2>
{region}
</section>
<section class="wide">
<h2>3. Показатели по муниципалитетам</h2>
{matrix}
<p><small>Номера столбцов: {_e(legend)}.</small></p>
</section>
<section>
<h2>4. Рекомендации</h2>
<h3>4.1. По показателям, не выполняемым в регионе</h3>
{by_kpi}
<h3>4.2. По муниципалитетам: наибольшее отставание от целей</h3>
{by_mun}
</section>
<section>
<h2>5. Источники целевых значений</h2>
{sources}
</section>
</body>
</html>
"""


def _target_cell(k: Mapping[str, Any]) -> str:
    if k["comparison"] == "growth":
        return COMPARISONS["growth"]
    deadline = _date(k["deadline"])
    until = f" к {deadline:%d.%m.%Y}" if deadline else ""
    return f"{COMPARISONS[k['comparison']]} {amount(k['target'], k['unit'])}{until}"


def _cell(value: Mapping[str, Any], unit: str) -> str:
    if value["value"] is None:
        return "—"
    return number(value["value"]) if unit == "%" else amount(value["value"], unit)
