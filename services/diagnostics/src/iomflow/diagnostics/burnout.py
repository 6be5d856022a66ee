"""Regional burnout analytics (roadmap 42: the study and its report): the levels of the
burnout survey (low / moderate / high, counts and shares, the mean index) in the region, by
municipality, organisation, age band and experience band, and the trend between waves
(campaigns in order: the share with a high level and the mean index of each, the change
since the wave before).

``analyse`` is pure: it takes the surveys (each completed diagnosis's ``BurnoutResult``, with
where the teacher worked then and their bands) and the campaigns, and returns plain rows the
API serves as JSON, ``workbook`` writes as Russian sheets and ``html`` prints as a page
(Jinja2 templates under ``templates/`` with autoescape; everything is in the page, nothing
is fetched: it prints on a closed network). ``report`` loads the inputs."""

from __future__ import annotations

import functools
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import jinja2
from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics import repository
from iomflow.diagnostics.analytics import add_sheet
from iomflow.diagnostics.domain import Campaign, utc

LEVELS = ("low", "moderate", "high")
LEVEL_NAMES = {"low": "низкий", "moderate": "умеренный", "high": "высокий"}
AGE_BANDS = ("<25", "25-34", "35-44", "45-54", "55+")
AGE_NAMES = {
    "<25": "до 25 лет",
    "25-34": "25–34 года",
    "35-44": "35–44 года",
    "45-54": "45–54 года",
    "55+": "55 лет и старше",
}
EXPERIENCE_BANDS = ("<3", "3-10", "10-20", "20+")
EXPERIENCE_NAMES = {
    "<3": "менее 3 лет",
    "3-10": "3–10 лет",
    "10-20": "10–20 лет",
    "20+": "более 20 лет",
}
UNKNOWN_BAND = ""
UNKNOWN_NAME = "не указано"
TRENDS = {"better": "снижение (лучше)", "worse": "рост (хуже)", "same": "без изменений"}


@dataclass(frozen=True)
class Survey:
    """One completed diagnosis's burnout result, with where and who the teacher was."""

    teacher_id: str
    campaign_id: str
    organization_id: str
    municipality_id: str
    index: float
    level: str
    completed_at: datetime
    age_band: str | None = None
    experience_band: str | None = None


def _share(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def levels(surveys: Sequence[Survey]) -> dict[str, Any]:
    """Counts and shares of each level and the mean index of a group of surveys."""
    n = len(surveys)
    counts = {lv: sum(s.level == lv for s in surveys) for lv in LEVELS}
    return {
        "surveyed": n,
        **counts,
        **{f"share_{lv}": _share(counts[lv], n) for lv in LEVELS},
        "mean_index": round(sum(s.index for s in surveys) / n, 1) if n else None,
    }


def by_group(
    surveys: Sequence[Survey],
    key: Callable[[Survey], str],
    names: Mapping[str, str],
    order: Sequence[str] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per group: ``order`` (the bands) first in that order, then by name."""
    groups: dict[str, list[Survey]] = defaultdict(list)
    for s in surveys:
        groups[key(s)].append(s)
    rank = {k: i for i, k in enumerate(order or ())}

    def sort_key(k: str) -> tuple[int, str, str]:
        return (rank.get(k, len(rank)), names.get(k, k), k)

    return [
        {
            "id": k,
            "name": names.get(k, k) or UNKNOWN_NAME,
            **(extra or {}).get(k, {}),
            **levels(groups[k]),
        }
        for k in sorted(groups, key=sort_key)
    ]


def _latest(surveys: Iterable[Survey]) -> list[Survey]:
    """Each teacher's latest survey."""
    out: dict[str, Survey] = {}
    for s in surveys:
        before = out.get(s.teacher_id)
        if before is None or utc(s.completed_at) >= utc(before.completed_at):
            out[s.teacher_id] = s
    return [out[t] for t in sorted(out)]


def _wave_day(c: Campaign) -> tuple[date, datetime]:
    created = utc(c.created_at) if c.created_at else datetime.min
    return (c.starts_on or created.date(), created)


def waves(surveys: Sequence[Survey], campaigns: Sequence[Campaign]) -> list[dict[str, Any]]:
    """The campaigns with burnout surveys, in order (by start, else when opened): share
    high and mean index of each, the change since the one before; the trend is read from
    the share with a high level (down: better)."""
    by_campaign: dict[str, list[Survey]] = defaultdict(list)
    for s in surveys:
        by_campaign[s.campaign_id].append(s)
    rows: list[dict[str, Any]] = []
    for c in sorted(campaigns, key=_wave_day):
        part = _latest(by_campaign.get(c.campaign_id, ()))
        if not part:
            continue
        found = levels(part)
        before = rows[-1] if rows else None
        change_high = round(found["share_high"] - before["share_high"], 1) if before else None
        change_index = round(found["mean_index"] - before["mean_index"], 1) if before else None
        rows.append(
            {
                "campaign_id": c.campaign_id,
                "name": c.name,
                "surveyed": found["surveyed"],
                "high": found["high"],
                "share_high": found["share_high"],
                "mean_index": found["mean_index"],
                "change_share_high": change_high,
                "change_mean_index": change_index,
                "trend": None
                if change_high is None
                else "worse"
                if change_high > 0
                else "better"
                if change_high < 0
                else "same",
            }
        )
    return rows


def analyse(
    surveys: Sequence[Survey],
    campaigns: Sequence[Campaign],
    municipalities: Mapping[str, str],
    organizations: Sequence[Any] = (),
    campaign_id: str | None = None,
) -> dict[str, Any]:
    """The burnout analytics over each teacher's latest survey (or their survey in
    ``campaign_id``), and the waves over all the campaigns."""
    chosen = _latest(s for s in surveys if campaign_id is None or s.campaign_id == campaign_id)
    orgs = {o.organization_id: o for o in organizations}
    return {
        "campaign_id": campaign_id,
        "region": levels(chosen),
        "municipalities": by_group(chosen, lambda s: s.municipality_id, municipalities),
        "organizations": by_group(
            chosen,
            lambda s: s.organization_id,
            {k: o.name for k, o in orgs.items()},
            extra={
                k: {"municipality": municipalities.get(o.municipality_id, o.municipality_id)}
                for k, o in orgs.items()
            },
        ),
        "age_bands": by_group(
            chosen, lambda s: s.age_band or UNKNOWN_BAND, AGE_NAMES, [*AGE_BANDS, UNKNOWN_BAND]
        ),
        "experience_bands": by_group(
            chosen,
            lambda s: s.experience_band or UNKNOWN_BAND,
            EXPERIENCE_NAMES,
            [*EXPERIENCE_BANDS, UNKNOWN_BAND],
        ),
        "waves": waves(surveys, campaigns),
    }


async def report(session: AsyncSession, campaign_id: str | None = None) -> dict[str, Any]:
    """``analyse`` over what diagnostics stores."""
    surveys = [
        Survey(
            r.teacher_id,
            r.campaign_id,
            r.organization_id,
            r.municipality_id,
            float(r.burnout["index"]),
            str(r.burnout["level"]),
            r.completed_at,
            r.age_band,
            r.experience_band,
        )
        for r in await repository.burnout_rows(session)
    ]
    municipalities = {
        m.municipality_id: m.name
        for m in await repository.all_rows(session, repository.municipalities)
    }
    organizations = await repository.all_rows(session, repository.organizations)
    campaigns = await repository.list_campaigns(session)
    found = analyse(surveys, campaigns, municipalities, organizations, campaign_id)
    names = {c.campaign_id: c.name for c in campaigns}
    found["campaign_name"] = names.get(campaign_id) if campaign_id else None
    return found


# --- the workbook ----------------------------------------------------------------------------

LEVELS_HEADER = [
    "Обследовано",
    "Низкий",
    "Умеренный",
    "Высокий",
    "Низкий, %",
    "Умеренный, %",
    "Высокий, %",
    "Средний индекс",
]


def _levels_cells(r: Mapping[str, Any]) -> list[Any]:
    return [
        r["surveyed"],
        r["low"],
        r["moderate"],
        r["high"],
        r["share_low"],
        r["share_moderate"],
        r["share_high"],
        r["mean_index"],
    ]


def workbook(found: Mapping[str, Any]) -> bytes:
    """The burnout analytics as an XLSX workbook, in Russian, one sheet per breakdown."""
    book = Workbook()
    assert book.active is not None
    book.remove(book.active)
    add_sheet(
        book,
        "Регион",
        ["Территория", *LEVELS_HEADER],
        [["Регион", *_levels_cells(found["region"])]],
    )
    for title, key, lead in (
        ("Муниципалитеты", "municipalities", ["Код", "Муниципалитет"]),
        ("Организации", "organizations", ["Код", "Организация", "Муниципалитет"]),
        ("Возраст", "age_bands", ["Код", "Возраст"]),
        ("Стаж", "experience_bands", ["Код", "Педагогический стаж"]),
    ):
        add_sheet(
            book,
            title,
            lead + LEVELS_HEADER,
            (
                [
                    r["id"],
                    r["name"],
                    *([r.get("municipality") or ""] if len(lead) > 2 else []),
                    *_levels_cells(r),
                ]
                for r in found[key]
            ),
        )
    add_sheet(
        book,
        "Динамика по волнам",
        [
            "Кампания",
            "Название",
            "Обследовано",
            "Высокий уровень",
            "Высокий, %",
            "Средний индекс",
            "Изменение доли высокого, п. п.",
            "Изменение среднего индекса",
            "Динамика",
        ],
        (
            [
                w["campaign_id"],
                w["name"],
                w["surveyed"],
                w["high"],
                w["share_high"],
                w["mean_index"],
                w["change_share_high"],
                w["change_mean_index"],
                TRENDS[w["trend"]] if w["trend"] else "первая волна",
            ]
            for w in found["waves"]
        ),
    )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- the printable page ----------------------------------------------------------------------


def number(value: float | None) -> str:
    """A value the Russian way: 3,1 · 10 · 1 250; a dash for none."""
    if value is None:
        return "—"
    text = f"{value:,.1f}".replace(",", "\u00a0").replace(".", ",")
    return text.removesuffix(",0")


def signed(value: float | None) -> str:
    """A change with its sign: +2,5 · −1 · 0; a dash for none."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    return ("+" if value > 0 else "\u2212") + number(abs(value))


@functools.cache
def templates() -> jinja2.Environment:
    """The page's templates (built on first use, not at import)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("iomflow.diagnostics", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(
        LEVELS_HEADER=LEVELS_HEADER,
        TRENDS=TRENDS,
        number=number,
        signed=signed,
    )
    return env


def html(found: Mapping[str, Any], on: date) -> str:
    """The burnout analytics as a printable HTML page in Russian (A4)."""
    return templates().get_template("burnout.html").render(report=found, on=on)
