"""Alerts: what operators should look at, detected from the projections with no I/O.

Each alert has a stable id (kind and subject): a periodic check raises the ones that are
new (``monitoring.alert.raised``) and resolves the ones whose condition is gone
(``monitoring.alert.resolved``); the same condition is never raised twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from iomflow.monitoring import domain, wording
from iomflow.shared.contracts import AlertRaised

RECORDS: wording.Forms = ("запись", "записи", "записей")

STATUS_WORDS = {"at_risk": "отстаёт от графика", "missed": "не достигнут"}


@dataclass(frozen=True)
class Limits:
    """The alerts' thresholds: the service's settings (``Settings``, ``IOMFLOW_<NAME>``)."""

    route_wait_days: int = 14
    diagnosis_route_days: int = 7
    burnout_rise_points: float = 5.0
    """How many percentage points the share of high burnout may rise from one wave to the
    next before it is an alert (``IOMFLOW_BURNOUT_RISE_POINTS``)."""
    burnout_min_surveyed: int = 10
    """A wave with fewer teachers surveyed for burnout says nothing of the trend
    (``IOMFLOW_BURNOUT_MIN_SURVEYED``)."""


@dataclass(frozen=True)
class Stale:
    registry: str
    owner: str
    stale: int
    total: int


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:g}".replace(".", ",")


def _goal(v: Mapping[str, Any]) -> str:
    """«не менее 95 %», «не более 250 чел.», «рост к прошлому году» (a message is plain
    text: plain spaces, as its value's)."""
    return wording.goal(v["comparison"], v["target"], v["unit"]).replace("\u00a0", " ")


NAMED = 10
"""Municipalities named in a grouped alert's message; the rest are counted."""


def _actionable(v: Mapping[str, Any]) -> bool:
    return v["status"] in STATUS_WORDS and not (v.get("period") or {}).get("passed")


def kpis_off_path(
    evaluated: Mapping[str | None, list[dict[str, Any]]], names: Mapping[str, str]
) -> list[AlertRaised]:
    """A KPI at risk or missed: one alert for the region (key None), and one per KPI for
    the municipalities (every other key) naming those behind it, worst first. A value at a
    level its target is not set for (``not_judged``) raises nothing, nor does a total whose
    deadline has passed (``Kpi.lapsed``: nobody can act on it now; the report says it)."""
    out = []
    for v in evaluated.get(None, []):
        if _actionable(v):
            out.append(
                AlertRaised(
                    alert_id=f"kpi_off_path:{v['code']}:region",
                    kind="kpi_off_path",
                    severity="critical" if v["status"] == "missed" else "warning",
                    subject=v["code"],
                    message=f"{v['name']} (регион): {_fmt(v['value'])} {v['unit']} при цели "
                    f"{_goal(v)} — {STATUS_WORDS[v['status']]}",
                    value=v["value"],
                    threshold=v["target"],
                )
            )
    behind: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for level, values in evaluated.items():
        if level is None:
            continue
        for v in values:
            if _actionable(v):
                behind[v["code"]].append((names.get(level, level), v))
    for code, found in behind.items():
        first = found[0][1]
        worst = sorted(found, key=lambda nv: (nv[1]["status"] != "missed", _order(nv[1]), nv[0]))
        named = ", ".join(f"{name} ({_fmt(v['value'])} {v['unit']})" for name, v in worst[:NAMED])
        more = f" и ещё {len(worst) - NAMED}" if len(worst) > NAMED else ""
        missed = sum(1 for _, v in found if v["status"] == "missed")
        out.append(
            AlertRaised(
                alert_id=f"kpi_off_path:{code}:municipalities",
                kind="kpi_off_path",
                severity="critical" if missed else "warning",
                subject=code,
                message=f"{first['name']}: цель {_goal(first)} "
                f"не в графике в {municipalities(len(found))} "
                f"(не достигнута в {missed}): {named}{more}",
                value=float(len(found)),  # municipalities behind; the target is in the text
            )
        )
    return out


def _order(v: Mapping[str, Any]) -> float:
    """Furthest from the target first: the lowest of a ">=" KPI, the highest of a limit."""
    value = v["value"] if v["value"] is not None else 0.0
    return -value if v["comparison"] == "<=" else value


def municipalities(n: int) -> str:
    """«1 муниципалитете», «3 муниципалитетах» (the prepositional case after «в»)."""
    return f"{n} муниципалитете" if n % 10 == 1 and n % 100 != 11 else f"{n} муниципалитетах"


def methodists_over_capacity(
    facts: domain.Facts, capacities: Mapping[str, int], at: datetime
) -> list[AlertRaised]:
    """A methodist supporting more teachers than their capacity."""
    load: dict[str, set[str]] = defaultdict(set)
    for f in facts.by_kind["support"]:
        if f.holds(at) and f.attrs.get("methodist_id"):
            load[f.attrs["methodist_id"]].add(f.member_id)
    return [
        AlertRaised(
            alert_id=f"methodist_over_capacity:{mid}",
            kind="methodist_over_capacity",
            severity="critical",
            subject=mid,
            message=f"Методист {mid} сопровождает {len(teachers)} педагогов при ёмкости "
            f"{capacities.get(mid, 250)}",
            value=len(teachers),
            threshold=capacities.get(mid, 250),
        )
        for mid, teachers in sorted(load.items())
        if len(teachers) > capacities.get(mid, 250)
    ]


def routes_waiting(facts: domain.Facts, at: datetime, limits: Limits) -> list[AlertRaised]:
    """Routes without a methodist for longer than the limit, per municipality."""
    supported = {f.member_id for f in facts.by_kind["support"] if f.holds(at)}
    where = {m.member_id: m.municipality_id for m in facts.members["teachers"]}
    late = at - timedelta(days=limits.route_wait_days)
    waiting: dict[str, list[domain.Fact]] = defaultdict(list)
    for f in facts.by_kind["route"]:
        if f.holds(at) and f.start <= late and f.member_id not in supported:
            waiting[where.get(f.member_id, "")].append(f)
    return [
        AlertRaised(
            alert_id=f"routes_waiting:{mun}",
            kind="routes_waiting",
            severity="warning",
            subject=mun,
            municipality_id=mun or None,
            message=f"{len(routes)} маршрутов ждут методиста дольше "
            f"{limits.route_wait_days} дней (самый давний — с "
            f"{min(r.start for r in routes):%d.%m.%Y})",
            value=len(routes),
            threshold=limits.route_wait_days,
        )
        for mun, routes in sorted(waiting.items())
    ]


def diagnoses_without_route(facts: domain.Facts, at: datetime, limits: Limits) -> list[AlertRaised]:
    """Diagnoses with deficits older than the limit whose teacher has no route since."""
    routed: dict[str, datetime] = {}
    for f in facts.by_kind["route"]:
        routed[f.member_id] = max(routed.get(f.member_id, f.start), f.start)
    where = {m.member_id: m.municipality_id for m in facts.members["teachers"]}
    late = at - timedelta(days=limits.diagnosis_route_days)
    missing: dict[str, int] = defaultdict(int)
    for f in facts.by_kind["diagnosed"]:
        last_route = routed.get(f.member_id)
        if (
            f.attrs.get("deficits")
            and f.start <= late
            and (last_route is None or last_route < f.start)
        ):
            missing[where.get(f.member_id, "")] += 1
    return [
        AlertRaised(
            alert_id=f"diagnosis_without_route:{mun}",
            kind="diagnosis_without_route",
            severity="warning",
            subject=mun,
            municipality_id=mun or None,
            message=f"{n} диагностик с дефицитами старше {limits.diagnosis_route_days} дней "
            "без маршрута",
            value=n,
            threshold=limits.diagnosis_route_days,
        )
        for mun, n in sorted(missing.items())
    ]


def stale_registries(stale: list[Stale]) -> list[AlertRaised]:
    return [
        AlertRaised(
            alert_id=f"registry_stale:{s.registry}:{s.owner}",
            kind="registry_stale",
            severity="warning",
            subject=f"{s.registry}:{s.owner}",
            message=f"Реестр «{s.registry}» ({s.owner}): {s.stale} из {s.total} записей давно "
            "не подтверждались",
            value=s.stale,
            threshold=0,
        )
        for s in stale
        if s.stale > 0
    ]


def dead_letters(sizes: Mapping[str, int]) -> list[AlertRaised]:
    return [
        AlertRaised(
            alert_id=f"dead_letters:{stream}",
            kind="dead_letters",
            severity="critical",
            subject=stream,
            message=f"В очереди недоставленных {stream}: {wording.plural(n, RECORDS)}",
            value=n,
            threshold=0,
        )
        for stream, n in sorted(sizes.items())
        if n > 0
    ]


SCHOOL_OF_MINISTRY = "school_of_ministry"


def _month_before(at: datetime) -> datetime:
    """The first moment of the last full calendar month before ``at``."""
    first = datetime(at.year, at.month, 1, tzinfo=UTC)
    before = first - timedelta(days=1)
    return datetime(before.year, before.month, 1, tzinfo=UTC)


def teams_without_consultation(
    facts: domain.Facts, at: datetime, schools: Mapping[str, str] | None = None
) -> list[AlertRaised]:
    """A School of the Ministry team (003 item 18: at least one consultation a month) that
    had no consultation in the last full calendar month, nor any since: resolved once one
    is held. A team registered during that month is not judged on it. Its school is named
    by ``schools`` (organisation id → name: the organisations' read model), else by id."""
    schools = schools or {}
    since = _month_before(at)
    # An activity is dated by its day (its fact at the day's noon): one held today counts
    # from the day's first moment, not only from noon on.
    consulted = {
        f.member_id
        for f in facts.by_kind["team_activity"]
        if f.attrs.get("kind") == "consultation"
        and since <= f.start
        and f.start.date() <= at.date()
    }
    out = []
    for team in facts.members["school_teams"]:
        if (
            team.attrs.get("project") != SCHOOL_OF_MINISTRY
            or not team.present(at)
            or team.start > since
            or team.member_id in consulted
        ):
            continue
        school = _school(schools, team.organization_id, "организации")
        out.append(
            AlertRaised(
                alert_id=f"team_without_consultation:{team.member_id}",
                kind="team_without_consultation",
                severity="warning",
                subject=team.member_id,
                municipality_id=team.municipality_id or None,
                message=f"Школьная команда {school} ({team.member_id}) проекта «Школа "
                "Минпросвещения России» не получила ни одной консультации за "
                f"{domain.MONTHS[since.month - 1]} {since.year} года (не менее 1 консультации "
                "в месяц)",
                value=0,
                threshold=1,
            )
        )
    return out


def _school(schools: Mapping[str, str], organization_id: str, case: str) -> str:
    """«организации «СОШ № 1»», or the id where the name is not known."""
    name = schools.get(organization_id)
    return f"{case} «{name}»" if name else f"{case} {organization_id}"


def plan_actions_overdue(
    facts: domain.Facts, at: datetime, schools: Mapping[str, str] | None = None
) -> list[AlertRaised]:
    """An action of an active support plan past its due day and not done; its school named
    by ``schools`` as for ``teams_without_consultation``."""
    schools = schools or {}
    today = at.date()
    out = []
    for f in facts.by_kind["plan_action"]:
        a = f.attrs
        if not f.holds(at) or a.get("done_on") or date.fromisoformat(a["due_on"]) >= today:
            continue
        due = date.fromisoformat(a["due_on"])
        out.append(
            AlertRaised(
                alert_id=f"plan_action_overdue:{a['plan_id']}:{a['action_id']}",
                kind="plan_action_overdue",
                severity="warning",
                subject=f"{a['plan_id']}:{a['action_id']}",
                municipality_id=a.get("municipality_id"),
                message=f"План адресного сопровождения {a['plan_id']} "
                f"({_school(schools, f.member_id, 'организация')}"
                + (f", {f.member_id}" if f.member_id in schools else "")
                + f"): мероприятие «{a['title']}» не выполнено в срок "
                f"{wording.ru_date(due)}, ответственный {a['responsible_id']}",
                value=(today - due).days,
                threshold=0,
            )
        )
    return sorted(out, key=lambda a: a.alert_id)


def burnout_waves(facts: domain.Facts, at: datetime) -> list[tuple[str, datetime, int, int]]:
    """The burnout survey by wave (a diagnostic campaign; a year where none is named): its
    first day, teachers surveyed and teachers with a high level (the last level each had
    in it), in the order the waves began."""
    last: dict[str, dict[str, tuple[datetime, str]]] = defaultdict(dict)
    for f in facts.by_kind["diagnosed"]:
        level = f.attrs.get("burnout")
        if level is None or f.start > at:
            continue
        wave = f.attrs.get("campaign_id") or str(f.start.year)
        seen = last[wave].get(f.member_id)
        if seen is None or seen[0] <= f.start:
            last[wave][f.member_id] = (f.start, level)
    out = []
    for wave, teachers in last.items():
        first = min(day for day, _ in teachers.values())
        high = sum(1 for _, level in teachers.values() if level == "high")
        out.append((wave, first, len(teachers), high))
    return sorted(out, key=lambda w: (w[1], w[0]))


def burnout_risk_rising(facts: domain.Facts, at: datetime, limits: Limits) -> list[AlertRaised]:
    """The share of teachers with a high burnout level in the latest wave above the
    previous wave's by more than the limit (roadmap 45: the risk should decline)."""
    waves = [w for w in burnout_waves(facts, at) if w[2] >= limits.burnout_min_surveyed]
    if len(waves) < 2:
        return []
    (before, _, n0, h0), (latest, _, n1, h1) = waves[-2], waves[-1]
    was, now = 100.0 * h0 / n0, 100.0 * h1 / n1
    if now - was <= limits.burnout_rise_points:
        return []
    return [
        AlertRaised(
            alert_id="burnout_risk_rising:region",
            kind="burnout_risk_rising",
            severity="warning",
            subject="region",
            message=f"Доля педагогов с высоким уровнем выгорания выросла с {_fmt(round(was, 1))} % "
            f"(волна «{before}», {n0} чел.) до {_fmt(round(now, 1))} % (волна «{latest}», "
            f"{n1} чел.) — более чем на {_fmt(limits.burnout_rise_points)} п. п.",
            value=round(now, 1),
            threshold=round(was + limits.burnout_rise_points, 1),
        )
    ]


def detect(
    evaluated: Mapping[str | None, list[dict[str, Any]]],
    names: Mapping[str, str],
    facts: domain.Facts,
    capacities: Mapping[str, int],
    stale: list[Stale],
    dlq: Mapping[str, int],
    at: datetime,
    limits: Limits,
    schools: Mapping[str, str] | None = None,
) -> list[AlertRaised]:
    """Every alert that holds now (``names``: municipalities', ``schools``: organisations')."""
    return [
        *kpis_off_path(evaluated, names),
        *methodists_over_capacity(facts, capacities, at),
        *routes_waiting(facts, at, limits),
        *diagnoses_without_route(facts, at, limits),
        *stale_registries(stale),
        *dead_letters(dlq),
        *teams_without_consultation(facts, at, schools),
        *plan_actions_overdue(facts, at, schools),
        *burnout_risk_rising(facts, at, limits),
    ]
