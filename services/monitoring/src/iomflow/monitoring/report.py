"""The yearly monitoring report (информационно-аналитическая справка): the region's KPIs
as of the end of a year (or today, for the current one) beside their values a year
earlier, every KPI per municipality, conclusions in prose and recommendations — the
municipalities clearly behind on each KPI the region does not meet, and the KPIs each
municipality is clearly behind on.

Ties are reported as ties: where several units share the worst value none of them is
singled out («41 муниципалитет — 0 %»), and a unit is named only where it stands worse than
others (never for a tie-break by name or code).

The rows of Appendix 1 that are measures taken, not numbers (``domain.Tracked``: the
roadmap, the monitoring system) are reported as an operator recorded them, as of the
report's date, each period up to the report's year; the conclusions mention them only where
one was recorded as not done or a past period is still «in progress».

Pure: ``yearly`` takes the catalogue, the loaded facts and the municipality names and
returns plain data that the API serves as JSON; ``spreadsheet``, ``printout`` and ``pdf``
only write it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, TypeVar

from iomflow.monitoring import domain, views
from iomflow.monitoring.wording import (
    KPIS,
    MUNICIPALITIES,
    STATUS_NAMES,
    Forms,
    amount,
    change,
    form,
    number,
    plural,
    ru_date,
    status_name,
)
from iomflow.shared.errors import Refused

__all__ = ["STATUS_NAMES", "as_of", "content", "yearly"]

WELL = frozenset({"met", "on_track", "not_judged"})
OFF_TRACK = frozenset({"missed", "at_risk"})
WEAKEST = 5
"""At most how many municipalities a KPI's recommendation names (a tie is never split)."""
WEAKEST_KPIS = 3
"""At most how many KPIs a municipality's recommendation names (a tie is never split)."""
PREPARED_BY = "ЦНППМ"
"""Who prepared the report, unless the settings or the request say otherwise."""

SHORT_NAMES = {
    "diagnosed_share": "Прошли диагностику дефицитов",
    "route_share": "ИОМ по итогам диагностики",
    "methodist_support_share": "Поддержка методиста при ИОМ",
    "federal_programs_share": "ДПО из Федерального реестра",
    "tutor_support_share": "Тьюторское сопровождение",
    "management_teams_trained": "ПК управленческих команд",
    "subject_training_share": "ПК: предметная компетентность",
    "functional_literacy_share": "ПК: функциональная грамотность",
    "updated_fgos_share": "ПК: обновлённые ФГОС",
    "digital_env_share": "ПК: цифровая среда",
    "quality_assessment_share": "ПК: оценка качества",
    "low_results_schools_share": "ПК: школы с низкими результатами",
    "gifted_share": "ПК: способности и таланты",
    "career_guidance_share": "ПК: профориентация",
    "upbringing_share": "ПК: воспитание",
    "preschool_quality_share": "ПК: дошкольное образование",
    "retraining_share": "Профпереподготовка",
    "young_supported_share": "Поддержка молодых педагогов",
    "mentoring_orgs_share": "Организации с наставничеством",
    "methodist_load_max": "Нагрузка на методиста",
    "expert_involvement": "Педагоги-эксперты",
    "burnout_prevention_share": "Профилактика выгорания",
    "personal_potential_orgs": "Сеть «Персональный потенциал»",
    "school_of_ministry_teams": "Команды «Школы Минпросвещения»",
    "school_of_ministry_methodists": "Методисты «Школы Минпросвещения»",
    "school_of_ministry_consultations": "Консультации команд «Школы Минпросвещения»",
    "regional_activities": "Региональные мероприятия",
    "needs_surveyed_share": "Сбор образовательных потребностей",
    "burnout_high_share": "Высокий уровень выгорания",
    "practices_in_bank": "Банк эффективных практик",
    "practices_replicated": "Тиражирование практик",
    "contest_participants": "Участники профессиональных конкурсов",
    "support_plans_share": "Планы сопровождения школ с низкими результатами",
}
"""Column names of the municipal matrix and the charts («ПК» — повышение квалификации); a
KPI not listed is called by its full name."""
SHORT_NOTE = "ПК — повышение квалификации."

TRACKED_SHORT_NAMES = {
    "roadmap_implemented": "Комплекс мер («дорожная карта») РС НМС",
    "monitoring_system": "Система мониторинга эффективности РС НМС",
}
"""What the conclusions call a tracked item (one not listed: by its full name)."""
TRACKED_SECTION = "Меры (строки приложения 1 без числового показателя)"
NOT_RECORDED = "нет данных — сведения не внесены"
"""A tracked item's period with nothing recorded (an absence of evidence is no failure)."""

ACTIONS = {
    "diagnosed": "организовать диагностику профессиональных дефицитов педагогов",
    "route": "разработать индивидуальные образовательные маршруты по результатам диагностики",
    "support": "закрепить региональных методистов за педагогами, реализующими ИОМ",
    "trained": "направить педагогов на обучение по программам ДПО соответствующей тематики",
    "tutor": "обеспечить тьюторское сопровождение педагогов при повышении квалификации",
    "team_trained": "организовать повышение квалификации управленческих команд",
    "mentoring_org": "внедрить программы наставничества педагогических работников",
    "expert": "вовлекать педагогов в экспертную деятельность на региональном уровне",
    "team_activity": "проводить со школьными командами не менее одной консультации в месяц",
    "school_team": "закрепить региональных методистов за школьными командами проекта",
    "activity_held": "провести мероприятия регионального уровня",
    "needs": "организовать сбор образовательных потребностей педагогов",
    "in_bank": "выявлять и проводить экспертизу эффективных практик для банка",
    "replicated": "организовать тиражирование эффективных практик",
    "contest_entry": "привлекать педагогов к участию в профессиональных конкурсах",
    "support_plan": "разработать планы адресного сопровождения школ с низкими результатами",
}
"""What to do about a KPI, by the fact its numerator counts (a KPI of a new kind gets the
general sentence)."""
CODE_ACTIONS = {
    "burnout_high_share": "усилить профилактику профессионального выгорания в организациях",
    "school_of_ministry_teams": "сформировать школьные и управленческие команды проекта "
    "«Школа Минпросвещения России» и внести их в реестр",
}
"""What to do about a KPI whose numerator's fact says too little (a risk counted from
diagnoses, the teams counted by the fact that names their methodists)."""
LOAD_ACTION = "перераспределить педагогов между методистами или привлечь новых методистов"
GENERAL_ACTION = "принять меры для достижения целевого значения"

OF_POPULATION: dict[str, Forms] = {
    "teachers": ("педагога", "педагогов", "педагогов"),
    "organizations": ("организации", "организаций", "организаций"),
    "management_teams": ("команды", "команд", "команд"),
    "school_teams": ("команды", "команд", "команд"),
    "activities": ("мероприятия", "мероприятий", "мероприятий"),
    "practices": ("практики", "практик", "практик"),
}
"""«… из 320 педагогов»: the population's word after «из N»."""
OF_METHODISTS: Forms = ("методиста", "методистов", "методистов")
OF_KPIS: Forms = ("показателя", "показателей", "показателей")
IN_MUNICIPALITIES: Forms = ("муниципалитете", "муниципалитетах", "муниципалитетах")


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


def a_year_before(on: date) -> date:
    """The same day a year earlier (28 February for a 29th)."""
    try:
        return on.replace(year=on.year - 1)
    except ValueError:
        return date(on.year - 1, 2, 28)


def yearly(
    catalogue: domain.Catalogue,
    facts: domain.Facts,
    names: Mapping[str, str],
    year: int,
    today: date,
    *,
    region_name: str = "",
    prepared_by: str = PREPARED_BY,
    recorded: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report for ``year``: the region's KPIs (beside their values on the same day a
    year earlier), every KPI per municipality, the tracked items of the catalogue (from
    what was ``recorded`` of them: ``repository.tracked_evidence``), the conclusions and
    the recommendations, as of the end of the year (today, if the year is the current
    one)."""
    on = as_of(year, today)
    answer = views.region(catalogue, facts, dict(names), on)
    before = views.region(catalogue, facts, dict(names), a_year_before(on))
    return content(
        catalogue,
        answer,
        year,
        on,
        final=year < today.year,
        before=before,
        region_name=region_name,
        prepared_by=prepared_by,
        made_on=today,
        tracked=domain.tracked(catalogue, recorded or {}, on),
    )


def content(
    catalogue: domain.Catalogue,
    answer: Mapping[str, Any],
    year: int,
    on: date,
    final: bool,
    *,
    before: Mapping[str, Any] | None = None,
    region_name: str = "",
    prepared_by: str = PREPARED_BY,
    made_on: date | None = None,
    tracked: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report from ``views.region``'s answer as of ``on`` (and, as ``before``, its
    answer a year earlier, for the comparison) and ``domain.tracked``'s as of ``on``."""
    kpis = {k.code: k for k in catalogue.kpis}
    earlier = {r["code"]: r for r in before["region"]["kpis"]} if before else {}
    region = [
        _region_row(n, row, kpis.get(row["code"]), earlier.get(row["code"]))
        for n, row in enumerate(answer["region"]["kpis"], 1)
    ]
    municipalities = [
        {
            "municipality_id": m["municipality_id"],
            "name": m["name"],
            "counts": m["counts"],
            "kpis": [
                {
                    key: row.get(key)
                    for key in ("code", "value", "numerator", "population", "met", "status")
                }
                for row in m["kpis"]
            ],
        }
        for m in answer["municipalities"]
        if m["municipality_id"] is not None  # with no members at all, a limit KPI says None
    ]
    standing = {row["code"]: _standing(kpis[row["code"]], municipalities) for row in region}
    recommendations = {
        "kpis": [
            _kpi_recommendation(kpis[row["code"]], row, standing[row["code"]])
            for row in region
            if row["status"] not in WELL
        ],
        "municipalities": [
            found
            for m in municipalities
            if (found := _municipality_recommendation(kpis, region, standing, m))["kpis"]
            or found["tied"]
        ],
    }
    report = {
        "year": year,
        "as_of": on.isoformat(),
        "final": final,
        "title": f"Информационно-аналитическая справка о мониторинге РС НМС за {year} год",
        "region_name": region_name,
        "prepared_by": prepared_by,
        "made_on": made_on.isoformat() if made_on else None,
        "previous_as_of": a_year_before(on).isoformat() if before else None,
        "source": catalogue.source,
        "counts": answer["region"]["counts"],
        "summary": dict(Counter(r["status"] for r in region)),
        "kpis": region,
        "municipalities": municipalities,
        "recommendations": recommendations,
        "tracked": tracked_items(tracked, year),
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
    report["conclusions"] = conclusions(report, standing)
    return report


def short_name(code: str, name: str) -> str:
    return SHORT_NAMES.get(code, name)


def tracked_items(tracked: Sequence[Mapping[str, Any]], year: int) -> list[dict[str, Any]]:
    """The tracked items as the report shows them: each with its periods up to ``year`` (a
    yearly item's years to ``year``; a once item's one period), each period's status in
    words and, where nothing was recorded, «нет данных — сведения не внесены»."""
    out = []
    for item in tracked:
        periods = [
            {
                **p,
                "status_name": status_name(p["status"]),
                "recorded_date": _day_of(p.get("recorded_at")),
                "evidence_text": p.get("evidence") or NOT_RECORDED,
            }
            for p in item["periods"]
            if item.get("recurrence") != "yearly" or int(p["period"]) <= year
        ]
        out.append(
            {
                key: item.get(key)
                for key in ("code", "name", "target", "recurrence", "clause", "appendix_rows")
            }
            | {
                "short_name": TRACKED_SHORT_NAMES.get(item["code"], item["name"]),
                "periods": periods,
            }
        )
    return out


def _day_of(moment: Any) -> str | None:
    """The day of a recorded moment (ISO), as an ISO date; None for none."""
    if not moment:
        return None
    return str(moment)[:10]


def _region_row(
    n: int, row: Mapping[str, Any], kpi: domain.Kpi | None, was: Mapping[str, Any] | None
) -> dict[str, Any]:
    previous = None
    if was is not None:
        previous = {key: was.get(key) for key in ("value", "numerator", "population", "status")} | {
            "status_name": status_name(was["status"])
        }
    delta = (
        round(row["value"] - was["value"], 1)
        if was is not None and _known(row) and _known(was)
        else None
    )
    return {
        "number": n,
        **row,
        "short_name": short_name(row["code"], row["name"]),
        "measure": kpi.measure if kpi else "share",
        "status_name": status_name(row["status"]),
        "basis": basis(kpi, row) if kpi else "",
        "previous": previous,
        "change": delta,
        "trend": None if delta is None or kpi is None else _trend(kpi, delta),
    }


def _known(row: Mapping[str, Any]) -> bool:
    """A value there is data for (a count or a limit with nothing counted says 0 without)."""
    return row.get("value") is not None and bool(row.get("population"))


def _trend(kpi: domain.Kpi, delta: float) -> str:
    if delta == 0:
        return "same"
    return "better" if (delta < 0) == (kpi.comparison in ("<=", "decline")) else "worse"


def basis(kpi: domain.Kpi, row: Mapping[str, Any]) -> str:
    """What a value is made of, in words: «45 из 320 педагогов»; for a methodist's load
    «78 педагогов у одного из 13 методистов»."""
    hit, size = row.get("numerator") or 0, row.get("population") or 0
    if kpi.measure == "max_per_holder":
        if not size:
            return "педагоги за методистами не закреплены"
        return f"{plural(hit, ('педагог', 'педагога', 'педагогов'))} у одного из {size} " + form(
            size, OF_METHODISTS
        )
    of = OF_POPULATION.get(kpi.population.of, ("", "", ""))
    return f"{number(hit)} из {number(size)} {form(size, of)}".rstrip()


def target_text(kpi: domain.Kpi) -> str:
    if kpi.comparison == "growth":
        return "цели — положительная динамика к прошлому году"
    if kpi.comparison == "decline":
        return "цели — снижение к прошлому году"
    if kpi.comparison == "<=":
        return f"пределе {amount(kpi.target, kpi.unit)}"
    return f"цели {amount(kpi.target, kpi.unit)}"


def action(kpi: domain.Kpi) -> str:
    if kpi.comparison == "<=" and kpi.measure == "max_per_holder":
        return LOAD_ACTION
    return CODE_ACTIONS.get(kpi.code) or ACTIONS.get(kpi.numerator.fact, GENERAL_ACTION)


def gap(kpi: domain.Kpi, value: float | None) -> float | None:
    """How far a value stands from the target, relative to the target (0 = on it, 1 = as
    far as the target itself); None when it cannot be said (no value, a growth KPI)."""
    if value is None or kpi.comparison in ("growth", "decline") or not kpi.target:
        return None
    short = kpi.target - value if kpi.comparison == ">=" else value - kpi.target
    return round(max(short, 0.0) / kpi.target, 3)


def _badness(kpi: domain.Kpi, value: float) -> float:
    """Larger is worse: the lowest values of a ">=" KPI, the highest of a limit."""
    return value if kpi.comparison in ("<=", "decline") else -value


# --- ties ------------------------------------------------------------------------------------

T = TypeVar("T")


def worst(
    scored: Sequence[tuple[float, T]], most: int, floor: float | None = None
) -> tuple[list[T], tuple[float, list[T]] | None]:
    """The worst of ``scored`` (larger score = worse), whole ties only: the worst groups of
    equal scores while together at most ``most``, and only those scoring above ``floor``
    (the best score among all compared: a unit is named only where some other does better).
    Also the first group not named that holds several — a tie to be reported as a number
    («41 муниципалитет — 0 %») — if nothing worse was named."""
    groups: dict[float, list[T]] = defaultdict(list)
    for score, item in scored:
        groups[score].append(item)
    named: list[T] = []
    for score in sorted(groups, reverse=True):
        group = groups[score]
        if (floor is not None and score <= floor) or len(named) + len(group) > most:
            tied = (score, group) if not named and len(group) > 1 else None
            return named, tied
        named += group
    return named, None


class Standing:
    """Where the municipalities stand on one KPI: those with data, those behind the target,
    and the few clearly behind the others — the worst whole ties, at most ``WEAKEST`` of
    them, each worse than the best (a growth KPI is each one's own: nobody is ranked)."""

    def __init__(self, kpi: domain.Kpi, rows: list[Pair]) -> None:
        self.rows = rows
        """(municipality, its row) with data and a target at the municipal level."""
        scores = [_badness(kpi, v["value"]) for _, v in rows]
        # With one municipality alone (where the KPI's population is) it is named if behind.
        best = min(scores) if len(scores) > 1 else None
        self.behind = [(m, v) for m, v in rows if v["met"] is False]
        self.named: list[Pair] = []
        self.tied: tuple[float, list[Pair]] | None = None
        if kpi.comparison not in ("growth", "decline"):
            self.named, self.tied = worst(
                [(_badness(kpi, v["value"]), (m, v)) for m, v in self.behind], WEAKEST, best
            )
        self.singled = {m["municipality_id"] for m, _ in self.named}


Pair = tuple[Mapping[str, Any], Mapping[str, Any]]
"""A municipality and its row of one KPI."""


def _standing(kpi: domain.Kpi, municipalities: list[dict[str, Any]]) -> Standing:
    rows: list[Pair] = []
    for m in municipalities:
        value = next((v for v in m["kpis"] if v["code"] == kpi.code), None)
        if (
            value is not None
            and value["population"]
            and value["value"] is not None
            and value["status"] != "not_judged"
        ):
            rows.append((m, value))
    return Standing(kpi, rows)


def _tie_text(count: int, value: float | None, unit: str, words: Forms = MUNICIPALITIES) -> str:
    return f"{plural(count, words)} — {amount(value, unit)}"


# --- recommendations -------------------------------------------------------------------------


def _kpi_recommendation(
    kpi: domain.Kpi, row: Mapping[str, Any], standing: Standing
) -> dict[str, Any]:
    behind, named, found = standing.behind, standing.named, standing.tied
    tied = None
    if found is not None:
        value = found[1][0][1]["value"]
        tied = {
            "count": len(found[1]),
            "value": value,
            "text": _tie_text(len(found[1]), value, kpi.unit),
        }
    todo = action(kpi)
    if row["value"] is None:
        text = (
            f"Показатель «{kpi.name}» не рассчитан: в регионе нет данных для него; "
            "рекомендуется обеспечить полноту данных мониторинга."
        )
    else:
        where = "."
        if named:
            where = ", прежде всего в муниципалитетах с наибольшим отставанием."
        elif tied is not None:
            where = f"; наименьшее значение одинаково: {tied['text']}."
        text = (
            f"{kpi.name} по региону — {amount(row['value'], kpi.unit)} при "
            f"{target_text(kpi)} (статус: {status_name(row['status'])}"
            f"{at_deadline(row, kpi.unit)}): рекомендуется "
            f"{todo}{where}"
        )
    return {
        "code": kpi.code,
        "name": kpi.name,
        "short_name": short_name(kpi.code, kpi.name),
        "status": row["status"],
        "status_name": status_name(row["status"]),
        "value": row["value"],
        "target": kpi.target,
        "unit": kpi.unit,
        "text": text,
        "behind": len(behind),
        "compared": len(standing.rows),
        "tied": tied,
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
            for m, value in named
        ],
    }


def _municipality_recommendation(
    kpis: Mapping[str, domain.Kpi],
    region: list[dict[str, Any]],
    standing: Mapping[str, Standing],
    m: Mapping[str, Any],
) -> dict[str, Any]:
    """The municipality's KPIs furthest from their targets (relative to the target), of
    those it is clearly behind the other municipalities on (``Standing.singled``: being one
    of 38 at 0 % is no distinction); a tie of more than ``WEAKEST_KPIS`` is reported as a
    number."""
    behind = []
    for value in m["kpis"]:
        kpi = kpis[value["code"]]
        far = gap(kpi, value["value"])
        if far and m["municipality_id"] in standing[kpi.code].singled:
            behind.append((far, (kpi, value)))
    named, found = worst(behind, WEAKEST_KPIS)
    numbers = {row["code"]: row["number"] for row in region}
    tied = None
    if found is not None:
        far, group = found
        tied = {
            "count": len(group),
            "gap": far,
            "kpis": [kpi.code for kpi, _ in group],
            "text": (
                f"{plural(len(group), KPIS)} с одинаковым отставанием от цели — "
                f"{number(100 * far)}\u00a0% (значения — в разделе «Показатели по "
                "муниципалитетам»)"
            ),
        }
    return {
        "municipality_id": m["municipality_id"],
        "name": m["name"],
        "tied": tied,
        "kpis": [
            {
                "number": numbers[kpi.code],
                "code": kpi.code,
                "name": kpi.name,
                "value": value["value"],
                "target": kpi.target,
                "unit": kpi.unit,
                "gap": gap(kpi, value["value"]),
                "text": (
                    f"{kpi.name} — {amount(value['value'], kpi.unit)} при {target_text(kpi)} "
                    f"({_shortfall(kpi, gap(kpi, value['value']) or 0.0)}): "
                    f"рекомендуется {action(kpi)}."
                ),
            }
            for kpi, value in named
        ],
    }


def at_deadline(row: Mapping[str, Any], unit: str) -> str:
    """«; к сроку 31.12.2024 — 7,2 %» for a KPI judged by where it stood on its deadline,
    when the row says so (``period.passed`` and ``at_deadline``); else nothing."""
    then, period = row.get("at_deadline"), row.get("period") or {}
    if not then or not period.get("passed"):
        return ""
    value = then.get("value")
    said = amount(value, unit) if value is not None else "нет данных"
    return f"; к сроку {ru_date(date.fromisoformat(then['on']))} — {said}"


def _shortfall(kpi: domain.Kpi, far: float) -> str:
    if kpi.comparison == "<=":
        return f"предел превышен на {number(100 * far)}\u00a0%"
    return f"отставание {number(100 * far)}\u00a0% от цели"


def status_summary(report: Mapping[str, Any]) -> str:
    """«достигнут — 3, под угрозой — 6, …»: the region's KPIs by status."""
    summary = report["summary"]
    known = [s for s in STATUS_NAMES if s in summary] + [
        s for s in summary if s not in STATUS_NAMES
    ]
    return ", ".join(f"{status_name(s)} — {summary[s]}" for s in known)


# --- conclusions -----------------------------------------------------------------------------


def conclusions(
    report: Mapping[str, Any], standing: Mapping[str, Standing]
) -> list[dict[str, Any]]:
    """What the data says, in sentences: the region's statuses; what improved and what
    worsened since the same day a year earlier; what is off track and where; which
    municipalities fall behind on the most KPIs; what has no data; the tracked items
    recorded as not done or still in progress past their period. Nothing of the KPIs when
    there is no data of them at all."""
    out = _kpi_conclusions(report, standing)
    lapsed = _tracked_behind(report.get("tracked") or [])
    if lapsed:
        out.append(
            {
                "kind": "tracked",
                "text": "Меры приложения 1, отмеченные как не выполненные или не завершённые "
                "в срок:",
                "items": lapsed,
            }
        )
    return out


def _tracked_behind(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """«Комплекс мер («дорожная карта») РС НМС к 31.12.2024: не выполнено (…)»: each period
    recorded as not done, and each still «in progress» after its due day."""
    out = []
    for item in items:
        for p in item["periods"]:
            if p.get("recorded") == "not_done":
                said = "не выполнено"
            elif p.get("recorded") == "in_progress" and p["status"] == "missed":
                due = ru_date(date.fromisoformat(p["due"]))
                said = f"срок {due} прошёл, отмечено «выполняется»"
            else:
                continue
            evidence = f" ({p['evidence']})" if p.get("evidence") else ""
            out.append(f"{item['short_name']} {p['label']}: {said}{evidence}")
    return out


def _kpi_conclusions(
    report: Mapping[str, Any], standing: Mapping[str, Standing]
) -> list[dict[str, Any]]:
    rows = report["kpis"]
    if not any(_known(r) for r in rows):
        return []
    on = date.fromisoformat(report["as_of"])
    out: list[dict[str, Any]] = []

    def say(kind: str, text: str, items: Sequence[str] = ()) -> None:
        out.append({"kind": kind, "text": text, "items": list(items)})

    tally = Counter(r["status"] for r in rows)
    parts = [
        f"{'достигнуто' if s == 'met' else 'не достигнуто' if s == 'missed' else status_name(s)}"
        f" — {tally[s]}"
        for s in ("met", "on_track", "at_risk", "missed", "not_judged")
        if tally[s]
    ]
    no_data = [r for r in rows if r["status"] == "no_data"]
    say(
        "summary",
        f"На {ru_date(on)} из {len(rows)} {form(len(rows), OF_KPIS)} региона: "
        + ", ".join(parts)
        + (f"; нет данных — {len(no_data)}" if no_data else "")
        + ".",
    )

    if report["previous_as_of"]:
        then = ru_date(date.fromisoformat(report["previous_as_of"]))
        compared = [r for r in rows if r["trend"] is not None]
        if not compared:
            say(
                "no_comparison",
                f"Сравнить с прошлым годом нельзя: на {then} данных мониторинга не было.",
            )
        for trend, word in (("better", "Улучшение"), ("worse", "Ухудшение")):
            moved = [r for r in compared if r["trend"] == trend]
            if moved:
                say(
                    trend,
                    f"{word} по сравнению с {then} — {plural(len(moved), KPIS)}:",
                    [_moved(r) for r in moved],
                )
        same = [r for r in compared if r["trend"] == "same"]
        if same:
            say("same", f"Без изменений с {then} — {plural(len(same), KPIS)}.")
        reached = [
            r
            for r in rows
            if r["status"] == "met"
            and r["previous"] is not None
            and r["previous"]["status"] not in ("met", "no_data")
        ]
        if reached:
            say(
                "reached",
                f"Цели, не достигнутые на {then}, теперь достигнуты — "
                f"{plural(len(reached), KPIS)}:",
                [f"{r['name']} — {amount(r['value'], r['unit'])}" for r in reached],
            )

    recs = {r["code"]: r for r in report["recommendations"]["kpis"]}
    off = [r for r in rows if r["status"] in OFF_TRACK]
    if off:
        say(
            "off_track",
            f"Отставание от целей (не достигнут или под угрозой) — {plural(len(off), KPIS)}:",
            [_off_track(r, recs.get(r["code"])) for r in off],
        )
    lagging = _lagging(report["municipalities"])
    if lagging:
        say("municipalities", lagging)
    if no_data:
        say(
            "no_data",
            f"Нет данных — {plural(len(no_data), KPIS)}:",
            [r["name"] for r in no_data],
        )
    return out


def _moved(row: Mapping[str, Any]) -> str:
    unit = row["unit"]
    assert row["previous"] is not None and row["change"] is not None
    return (
        f"{row['name']} — с {amount(row['previous']['value'], unit)} до "
        f"{amount(row['value'], unit)} ({change(row['change'], unit)})"
    )


def _off_track(row: Mapping[str, Any], rec: Mapping[str, Any] | None) -> str:
    text = (
        f"{row['name']} — {amount(row['value'], row['unit'])} "
        f"({row['status_name']}{at_deadline(row, row['unit'])})"
    )
    if rec is None or not rec["compared"]:
        return text
    if rec["compared"] == 1 and rec["municipalities"]:
        alone = rec["municipalities"][0]
        return (
            f"{text}: данные есть только по одному муниципалитету — «{alone['name']}» "
            f"({amount(alone['value'], row['unit'])})"
        )
    where = []
    of = form(rec["compared"], ("муниципалитета", "муниципалитетов", "муниципалитетов"))
    if rec["behind"] == rec["compared"]:
        where.append(f"цели не достигает ни один из {rec['compared']} {of}")
    elif rec["behind"]:
        where.append(f"цели не достигают {rec['behind']} из {rec['compared']} {of}")
    if rec["municipalities"]:
        named = ", ".join(
            f"«{m['name']}» ({amount(m['value'], row['unit'])})" for m in rec["municipalities"]
        )
        where.append(f"наибольшее отставание — {named}")
    elif rec["tied"]:
        where.append(f"наименьшее значение одинаково: {rec['tied']['text']}")
    return text + (": " + "; ".join(where) if where else "")


def _lagging(municipalities: list[dict[str, Any]]) -> str | None:
    """The municipalities with clearly the most KPIs off track (whole ties only)."""
    counts = [(float(sum(v["status"] in OFF_TRACK for v in m["kpis"])), m) for m in municipalities]
    if not counts or not any(c for c, _ in counts):
        return None
    best = min(c for c, _ in counts)
    named, tied = worst(counts, WEAKEST, best)
    if named:
        listed = ", ".join(f"«{m['name']}» ({number(c)})" for c, m in _scored(counts, named))
        return (
            "Больше всего показателей с отставанием от целей — в "
            f"{form(len(named), IN_MUNICIPALITIES)} {listed}."
        )
    if tied is not None:
        count, group = tied
        if len(group) == len(municipalities):
            return (
                f"Во всех {plural(len(group), IN_MUNICIPALITIES)} одинаковое число показателей "
                f"с отставанием от целей — {number(count)}; отдельно никто не выделяется."
            )
        return (
            f"Больше всего показателей с отставанием от целей — по {number(count)} — "
            f"в {plural(len(group), IN_MUNICIPALITIES)}; их слишком много, чтобы выделять "
            "отдельные."
        )
    return None


def _scored(scored: list[tuple[float, T]], chosen: list[T]) -> list[tuple[float, T]]:
    ids = {id(c) for c in chosen}
    return sorted(((s, c) for s, c in scored if id(c) in ids), key=lambda sc: -sc[0])
