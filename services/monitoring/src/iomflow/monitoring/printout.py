"""The yearly report as a printable HTML page in Russian (A4; the municipal matrix on a
landscape page): a title page, the conclusions, the region's KPIs beside last year's with a
chart, the municipalities, the recommendations and the sources. Everything is in the page
(styles and inline SVG): it prints, and turns into a PDF, on a closed network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from html import escape
from typing import Any

from iomflow.monitoring import diagrams
from iomflow.monitoring.report import NOT_RECORDED, SHORT_NOTE, TRACKED_SECTION, status_summary
from iomflow.monitoring.wording import amount, change, number, ru_date, status_name

COUNT_NAMES = {
    "teachers": "Педагогов в реестре",
    "diagnosed": "Прошли диагностику",
    "with_route": "Реализуют ИОМ",
    "supported": "Получают поддержку методиста",
}
COMPARISONS = {">=": "не менее", "<=": "не более", "growth": "рост к прошлому году"}
SYSTEM = (
    "Региональная система научно-методического сопровождения педагогических работников "
    "и управленческих кадров (РС НМС)"
)
TRENDS = {"better": "улучшение", "worse": "ухудшение", "same": "без изменений"}

CSS = """
@page { size: A4; margin: 15mm 12mm; }
body { font-family: "PT Serif", "Times New Roman", serif; font-size: 11pt; color: #000;
       margin: 0; }
h1 { font-size: 15pt; text-align: center; margin: 0 0 4mm; }
h2 { font-size: 13pt; margin: 6mm 0 2mm; break-after: avoid; }
h3 { font-size: 11.5pt; margin: 4mm 0 1mm; break-after: avoid; }
h4 { font-size: 10.5pt; margin: 3mm 0 1mm; break-after: avoid; }
p.meta { text-align: center; margin: 0 0 1mm; }
section.title-page { height: 262mm; display: flex; flex-direction: column;
                     justify-content: space-between; text-align: center; break-after: page; }
.title-page .system { font-size: 11pt; margin: 8mm 10mm 0; }
.title-page h1 { font-size: 20pt; margin: 0 0 6mm; }
.title-page .region { font-size: 17pt; font-weight: bold; margin: 0 0 6mm; }
.title-page .when { font-size: 12.5pt; margin: 0 0 2mm; }
.title-page .by { text-align: left; font-size: 11pt; margin: 0 0 10mm; }
.title-page .by p { margin: 0 0 1.5mm; }
table { border-collapse: collapse; width: 100%; margin: 2mm 0; font-size: 9pt; }
th, td { border: 0.5pt solid #555; padding: 1mm 1.5mm; vertical-align: top; }
th { background: #eee; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
td.n { text-align: right; white-space: nowrap; }
td small, .note { color: #444; }
td small { display: block; font-size: 7.5pt; }
.missed, .at_risk { background: #f4d6d6; }
.no_data { color: #777; }
.better { color: #1b5e20; }
.worse { color: #b71c1c; }
section.matrix { break-before: page; }
table.matrix { font-size: 6.5pt; table-layout: fixed; }
table.matrix th, table.matrix td { padding: 0.4mm 0.5mm; }
table.matrix th { font-weight: normal; vertical-align: bottom; height: 44mm; }
table.matrix th.v > span { writing-mode: vertical-rl; transform: rotate(180deg);
                           display: inline-block; max-height: 43mm; text-align: left; }
table.matrix col.name { width: 27mm; }
table.matrix col.teachers { width: 6.5mm; }
table.kpis { font-size: 8.5pt; table-layout: fixed; }
table.kpis td.n { white-space: normal; }
table.kpis th { font-size: 7.5pt; padding: 1mm 0.8mm; }
table.tracked { font-size: 8.5pt; table-layout: fixed; }
table.tracked td.evidence { overflow-wrap: anywhere; }
svg.chart { width: 100%; height: auto; display: block; margin: 2mm 0 4mm; }
figure { margin: 0; break-inside: avoid; }
figcaption { font-size: 9.5pt; font-style: italic; margin: 2mm 0 0; }
ul { margin: 1mm 0; padding-left: 6mm; }
li { margin-bottom: 1mm; }
ol.conclusions > li { margin-bottom: 2mm; }
@media screen { body { padding: 10mm; max-width: 190mm; margin: 0 auto; }
                section.title-page { height: auto; min-height: 200mm;
                                     border-bottom: 1px dashed #999; margin-bottom: 10mm; } }
"""


def _e(value: Any) -> str:
    return escape(str(value))


def _table(
    header: list[str],
    rows: Iterable[str],
    titles: Mapping[int, str] | None = None,
    name: str = "",
    widths: list[int] | None = None,
) -> str:
    """A table; ``titles``: tooltips of header cells by column; ``widths``: of the columns,
    in per cent."""
    tips = titles or {}
    head = "".join(
        f'<th title="{_e(tips[i])}">{_e(h)}</th>' if i in tips else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    kind = f' class="{name}"' if name else ""
    cols = "".join(f'<col style="width: {w}%">' for w in widths or [])
    group = f"<colgroup>{cols}</colgroup>" if cols else ""
    return (
        f"<table{kind}>{group}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _title_page(report: Mapping[str, Any]) -> str:
    on = date.fromisoformat(report["as_of"])
    kind = (
        "Итоговая: отчётный год завершён"
        if report["final"]
        else "Промежуточная: отчётный год не завершён"
    )
    made = report.get("made_on")
    lines = [f"<p>Подготовлено: {_e(report.get('prepared_by') or '—')}</p>"]
    if made:
        lines.append(f"<p>Дата формирования: {ru_date(date.fromisoformat(made))}</p>")
    lines.append(f"<p>Показатели и цели: {_e(report['source'])}</p>")
    region = report.get("region_name")
    return f"""<section class="title-page">
<p class="system">{_e(SYSTEM)}</p>
<div>
<h1>{_e(report["title"])}</h1>
{f'<p class="region">{_e(region)}</p>' if region else ""}
<p class="when">по состоянию на {ru_date(on)}</p>
<p class="when">{_e(kind)}</p>
</div>
<div class="by">{"".join(lines)}</div>
</section>"""


def _conclusions(report: Mapping[str, Any]) -> str:
    found = report.get("conclusions") or []
    if not found:
        return "<p>Выводы не сформулированы: данных мониторинга на эту дату нет.</p>"
    items = []
    for c in found:
        sub = "".join(f"<li>{_e(line)}</li>" for line in c["items"])
        items.append(
            f'<li data-kind="{_e(c["kind"])}">{_e(c["text"])}'
            + (f"<ul>{sub}</ul>" if sub else "")
            + "</li>"
        )
    return f'<ol class="conclusions">{"".join(items)}</ol>'


def _target_cell(k: Mapping[str, Any]) -> str:
    if k["comparison"] == "growth":
        return COMPARISONS["growth"]
    deadline = date.fromisoformat(k["deadline"]) if k["deadline"] else None
    until = f" к {ru_date(deadline)}" if deadline else ""
    return f"{COMPARISONS.get(k['comparison'], '')} {amount(k['target'], k['unit'])}{until}"


def _status_cell(k: Mapping[str, Any]) -> str:
    text = _e(k["status_name"])
    period = k.get("period") or {}
    then = k.get("at_deadline")
    if period.get("label") and not (then and period.get("passed")):  # said below, once
        text += f"<small>{_e(period['label'])}</small>"
    if then:
        met = then.get("met")
        verdict = "достигнут" if met else "не достигнут" if met is False else "нет данных"
        on = ru_date(date.fromisoformat(then["on"]))
        value = then.get("value")
        said = f"{amount(value, k['unit'])} — {verdict}" if value is not None else "нет данных"
        text += f"<small>на {on}: {_e(said)} (срок прошёл)</small>"
    return text


def _region_table(report: Mapping[str, Any]) -> str:
    then = report.get("previous_as_of")
    earlier = f"На {ru_date(date.fromisoformat(then))}" if then else "Годом ранее"

    def row(k: Mapping[str, Any]) -> str:
        was = k["previous"] or {}
        delta = (
            f'<span class="{_e(k["trend"])}">{_e(change(k["change"], k["unit"]))}</span>'
            if k["change"] is not None
            else "—"
        )
        return (
            f'<tr><td class="n">{k["number"]}</td>'
            f'<td title="Код показателя: {_e(k["code"])}">{_e(k["name"])}</td>'
            f'<td class="n {_e(k["status"])}">{_e(amount(k["value"], k["unit"]))}</td>'
            f'<td class="n">{_e(amount(was.get("value"), k["unit"]))}</td>'
            f'<td class="n">{delta}</td>'
            f"<td>{_e(k['basis'])}</td>"
            f"<td>{_e(_target_cell(k))}</td>"
            f'<td class="{_e(k["status"])}">{_status_cell(k)}</td>'
            f'<td class="n">{_e(amount(k["forecast"], k["unit"]))}</td></tr>'
        )

    return _table(
        [
            "№",
            "Показатель",
            "Значение",
            earlier,
            "Изме\u00adнение",
            "Основа расчёта",
            "Цель",
            "Статус",
            "Про\u00adгноз",
        ],
        (row(k) for k in report["kpis"]),
        name="kpis",
        widths=[4, 28, 8, 10, 9, 12, 11, 11, 7],
    )


def _tracked(report: Mapping[str, Any]) -> str:
    """The tracked items of Appendix 1 (measures, not numbers): a row per period, the
    status in words as the KPIs have it, the evidence and who recorded it when; nothing
    without items."""
    items = report.get("tracked") or []
    if not items:
        return ""
    rows = []
    for item in items:
        periods = item["periods"]
        span = f' rowspan="{len(periods)}"' if len(periods) > 1 else ""
        head = (
            f'<td{span} title="Код: {_e(item["code"])}">{_e(item["name"])}'
            f"<small>{_e(item['clause'])}</small></td><td{span}>{_e(item['target'])}</td>"
        )
        if not periods:  # a yearly item whose first year is still to come
            rows.append(f'<tr>{head}<td colspan="4" class="no_data">периодов ещё нет</td></tr>')
        for i, p in enumerate(periods):
            cells = f"<td>{_e(p['label'])}</td>"
            status = _e(p["status"])
            if p.get("recorded") is None:
                cells += f'<td colspan="3" class="{status}">{_e(NOT_RECORDED)}</td>'
            else:
                said = f"отмечено «{p['recorded_words']}»" if p.get("recorded_words") else ""
                day = p.get("recorded_date")
                when = ru_date(date.fromisoformat(day)) if day else ""
                who = ", ".join(w for w in (p.get("recorded_by") or "", when) if w)
                cells += (
                    f'<td class="{status}">{_e(p["status_name"])}'
                    + (f"<small>{_e(said)}</small>" if said else "")
                    + f'</td><td class="evidence">{_e(p.get("evidence") or "")}</td>'
                    f"<td>{_e(who or '—')}</td>"
                )
            rows.append(f"<tr>{head if i == 0 else ''}{cells}</tr>")
    table = _table(
        ["Мера", "Показатель (индикатор)", "Период", "Статус", "Подтверждение", "Внесено"],
        rows,
        name="tracked",
        widths=[27, 17, 11, 12, 21, 12],
    )
    return f'<section class="tracked"><h3>{_e(TRACKED_SECTION)}</h3>{table}</section>'


def _matrix(report: Mapping[str, Any]) -> str:
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
    rows = []
    for m in report["municipalities"]:
        cells = [
            f"<td>{_e(m['name'])}</td>",
            f'<td class="n">{m["counts"].get("teachers", 0)}</td>',
        ]
        for v in m["kpis"]:
            status = _e(v["status"])
            cells.append(
                f'<td class="n {status}" title="{_e(status_name(v["status"]))}">'
                f"{_e(number(v['value']))}</td>"
            )
            if v["code"] in loads:
                cells.append(f'<td class="n">{_e(number(v["population"]))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    notes = [SHORT_NOTE, "Цветом выделены значения «не достигнут» и «под угрозой»."]
    if loads:
        notes.insert(
            0,
            "Нагрузка на методиста — наибольшее число педагогов, закреплённых за одним "
            "региональным методистом; «Методистов» — сколько методистов ведут педагогов "
            "муниципалитета.",
        )
    # Upright headers for the names, the KPIs' written upwards: a column as wide as its
    # numbers, and the whole matrix on a portrait page (a wider table would make Chromium
    # shrink every page of the PDF to fit it).
    head = "".join(
        f"<th>{_e(h)}</th>"
        if i == 0
        else f'<th class="v" title="{_e(titles.get(i, h))}"><span>{_e(h)}</span></th>'
        for i, h in enumerate(header)
    )
    cols = '<col class="name"><col class="teachers">' + "<col>" * (len(header) - 2)
    return (
        f'<table class="matrix"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        f'<p class="note"><small>{_e(" ".join(notes))}</small></p>'
    )


def _recommendations(report: Mapping[str, Any]) -> tuple[str, str]:
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
            + (f"<li>{_e(m['tied']['text'])}.</li>" if m["tied"] else "")
            + "</ul>"
            for m in recs["municipalities"]
        )
        or "<p>Муниципалитетов, отстающих от других по отдельным показателям, нет.</p>"
    )
    return by_kpi, by_mun


FIGURE_SHARES = "Рис. 1. Показатели региона в процентах."
FIGURE_MUNICIPALITIES = (
    "Рис. 2. Муниципалитеты: число показателей по статусам (сначала — с наибольшим числом "
    "достигнутых)."
)


def _figure(chart: str, caption: str, heading: str = "") -> str:
    """A chart with its caption (nothing without a chart); with a heading, a section."""
    if not chart:
        return ""
    figure = f"<figure>{chart}<figcaption>{_e(caption)}</figcaption></figure>"
    return f"<section><h3>{_e(heading)}</h3>{figure}</section>" if heading else figure


def html(report: Mapping[str, Any]) -> str:
    """The report as a printable HTML page in Russian."""
    on = date.fromisoformat(report["as_of"])
    counts = "".join(
        f'<tr><td>{_e(name)}</td><td class="n">{number(report["counts"].get(key, 0))}</td></tr>'
        for key, name in COUNT_NAMES.items()
    )
    by_kpi, by_mun = _recommendations(report)
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
    shares = diagrams.shares(report)
    spread = diagrams.municipalities(report)
    title = _e(report["title"])
    region = report.get("region_name")
    head_title = f"{title} — {_e(region)}" if region else title
    return f"""<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>{head_title}</title>
<style>{CSS}</style>
</head>
<body>
{_title_page(report)}
<section>
<h2>1. Общие сведения</h2>
{_table(["Показатель", "Число"], [counts])}
<p>Статусы показателей региона на {ru_date(on)}: {_e(status_summary(report))}.</p>
</section>
<section>
<h2>2. Выводы</h2>
{_conclusions(report)}
</section>
<section>
<h2>3. Показатели региона</h2>
{_region_table(report)}
{_figure(shares, FIGURE_SHARES)}
{_tracked(report)}
</section>
<section class="matrix">
<h2>4. Показатели по муниципалитетам</h2>
<h3>4.1. Значения показателей</h3>
{_matrix(report)}
</section>
{_figure(spread, FIGURE_MUNICIPALITIES, "4.2. Муниципалитеты по статусам показателей")}
<section>
<h2>5. Рекомендации</h2>
<h3>5.1. По показателям, не выполняемым в регионе</h3>
{by_kpi}
<h3>5.2. По муниципалитетам: показатели, по которым муниципалитет отстаёт от других</h3>
{by_mun}
</section>
<section>
<h2>6. Источники целевых значений</h2>
{sources}
</section>
</body>
</html>
"""
