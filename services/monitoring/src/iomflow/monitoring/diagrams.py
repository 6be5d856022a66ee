"""The printable report's charts as inline SVG, drawn here (nothing is fetched at run time:
the page prints the same on a closed network): the region's shares against their targets
and last year's values, and the municipalities' KPIs by status."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from html import escape
from typing import Any

from iomflow.monitoring.wording import amount, number, ru_date

COLOURS = {
    "met": "#1b7f3b",
    "on_track": "#43a047",
    "at_risk": "#e0a100",
    "missed": "#c62828",
    "no_data": "#9e9e9e",
    "not_judged": "#78909c",
}
"""The dashboard's status colours."""
PREVIOUS = "#b0bec5"
TARGET = "#263238"
WIDTH = 700
FONT = 'font-family="PT Sans, DejaVu Sans, Arial, sans-serif"'


def _e(value: Any) -> str:
    return escape(str(value))


def _axis_max(value: float) -> float:
    """A round upper bound (1, 2, 2.5 or 5 times a power of ten), at most 100 %."""
    if value <= 0:
        return 10.0
    raised = value * 1.05
    power = 10 ** math.floor(math.log10(raised))
    found = next(s * power for s in (1, 2, 2.5, 5, 10) if s * power >= raised)
    return min(found, 100.0)


def _lines(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, at word breaks."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def shares(report: Mapping[str, Any]) -> str:
    """The region's KPIs in percent: a bar per KPI in its status colour, last year's value
    as a grey bar under it, the target as a dark mark; empty when there is none."""
    rows = [
        k
        for k in report["kpis"]
        if k["unit"] == "%" and k["comparison"] not in ("growth", "decline")
    ]
    if not rows:
        return ""
    then = report.get("previous_as_of")
    values = [
        v for k in rows for v in (k["value"], k["target"], (k["previous"] or {}).get("value"))
    ]
    top = _axis_max(max((v for v in values if v is not None), default=0.0))
    left, right, head, row_h = 230, 130, 26, 26
    plot = WIDTH - left - right
    height = head + row_h * len(rows) + 34

    def x(v: float) -> float:
        return left + plot * min(v, top) / top

    parts = []
    for i in range(6):
        t = top * i / 5
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{head - 6}" y2="{height - 30}" '
            'stroke="#d9dee4" stroke-width="0.6"/>'
            f'<text x="{x(t):.1f}" y="{head - 10}" text-anchor="middle" font-size="9" '
            f'fill="#616e7c">{_e(number(t))}</text>'
        )
    for n, k in enumerate(rows):
        y = head + n * row_h
        lines = _lines(k["short_name"], 40)[:2]
        label = "".join(
            f'<tspan x="{left - 8}" dy="{0 if j == 0 else 11}">{_e(line)}</tspan>'
            for j, line in enumerate(lines)
        )
        first = y + row_h / 2 + 3 - (len(lines) - 1) * 5.5
        colour = COLOURS.get(k["status"], COLOURS["no_data"])
        value = k["value"]
        tip = f"{k['name']}: {amount(value, '%')}, цель {amount(k['target'], '%')}"
        bar = ""
        if value is not None:
            bar = (
                f'<rect x="{left}" y="{y + 5}" width="{max(x(value) - left, 0.8):.1f}" '
                f'height="10" fill="{colour}"/>'
            )
        was = (k["previous"] or {}).get("value")
        if was is not None:
            bar += (
                f'<rect x="{left}" y="{y + 17}" width="{max(x(was) - left, 0.8):.1f}" '
                f'height="4" fill="{PREVIOUS}"/>'
            )
        mark = x(k["target"])
        parts.append(
            f'<g class="kpi"><title>{_e(tip)}</title>'
            f'<text y="{first:.1f}" text-anchor="end" font-size="9.5">{label}</text>{bar}'
            f'<line x1="{mark:.1f}" x2="{mark:.1f}" y1="{y + 2}" y2="{y + 24}" '
            f'stroke="{TARGET}" stroke-width="1.6"/>'
            f'<text x="{WIDTH - right + 10}" y="{y + 14}" font-size="9">'
            f"{_e(amount(value, '%'))}"
            f'<tspan fill="#616e7c"> · цель {_e(amount(k["target"], "%"))}</tspan></text></g>'
        )
    legend_y = height - 12
    legend = [
        f'<rect x="{left}" y="{legend_y - 8}" width="14" height="9" fill="{COLOURS["met"]}"/>'
        f'<text x="{left + 18}" y="{legend_y}" font-size="9">значение (цвет — статус)</text>',
        f'<line x1="{left + 160}" x2="{left + 160}" y1="{legend_y - 10}" y2="{legend_y + 2}" '
        f'stroke="{TARGET}" stroke-width="1.6"/>'
        f'<text x="{left + 166}" y="{legend_y}" font-size="9">цель</text>',
    ]
    if then:
        legend.append(
            f'<rect x="{left + 210}" y="{legend_y - 6}" width="14" height="4" fill="{PREVIOUS}"/>'
            f'<text x="{left + 228}" y="{legend_y}" font-size="9">'
            f"на {_e(ru_date(date.fromisoformat(then)))}</text>"
        )
    return _svg(
        "chart-shares",
        height,
        "Показатели региона в процентах: значение, цель и значение годом ранее",
        parts + legend,
    )


STATUS_BANDS = [
    ("достигнут / в графике", ("met", "on_track"), COLOURS["met"]),
    ("под угрозой", ("at_risk",), COLOURS["at_risk"]),
    ("не достигнут", ("missed",), COLOURS["missed"]),
    ("нет данных", ("no_data",), COLOURS["no_data"]),
]


def municipalities(report: Mapping[str, Any]) -> str:
    """Each municipality's KPIs by status, as a stacked bar (most met first); empty when
    there is no municipality."""
    rows = []
    for m in report["municipalities"]:
        counts = [sum(v["status"] in s for v in m["kpis"]) for _, s, _ in STATUS_BANDS]
        rows.append((m["name"], counts))
    if not rows:
        return ""
    rows.sort(key=lambda r: (-r[1][0], r[1][2], r[0]))
    total = max(sum(c) for _, c in rows) or 1
    left, right, head, row_h = 210, 40, 24, 15
    plot = WIDTH - left - right
    height = head + row_h * len(rows) + 30
    parts = []
    step = 5 if total > 12 else 1
    for i in range(0, total + 1, step):
        gx = left + plot * i / total
        parts.append(
            f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{head - 4}" y2="{height - 26}" '
            'stroke="#d9dee4" stroke-width="0.6"/>'
            f'<text x="{gx:.1f}" y="{head - 8}" text-anchor="middle" font-size="9" '
            f'fill="#616e7c">{i}</text>'
        )
    for n, (name, counts) in enumerate(rows):
        y = head + n * row_h
        short = name if len(name) <= 38 else name[:37] + "…"
        bars, at = [], float(left)
        for (label, _, colour), count in zip(STATUS_BANDS, counts, strict=True):
            if not count:
                continue
            w = plot * count / total
            bars.append(
                f'<rect x="{at:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" '
                f'fill="{colour}"><title>{_e(f"{name}: {label} — {count}")}</title></rect>'
            )
            at += w
        parts.append(
            f'<g class="municipality"><text x="{left - 6}" y="{y + row_h - 4}" '
            f'text-anchor="end" font-size="9">{_e(short)}</text>{"".join(bars)}</g>'
        )
    legend_y, lx = height - 8, float(left)
    for label, _, colour in STATUS_BANDS:
        parts.append(
            f'<rect x="{lx:.1f}" y="{legend_y - 8}" width="12" height="9" fill="{colour}"/>'
            f'<text x="{lx + 16:.1f}" y="{legend_y}" font-size="9">{_e(label)}</text>'
        )
        lx += 30 + 5.2 * len(label)
    return _svg(
        "chart-municipalities",
        height,
        "Муниципалитеты: число показателей по статусам",
        parts,
    )


def _svg(name: str, height: float, title: str, parts: list[str]) -> str:
    return (
        f'<svg class="chart {name}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" {FONT} aria-label="{_e(title)}">'
        f"<title>{_e(title)}</title>{''.join(parts)}</svg>"
    )
