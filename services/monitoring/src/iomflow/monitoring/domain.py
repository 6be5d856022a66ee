"""KPIs with no I/O: the catalogue as data, facts over time, values as of a date, status
against the path to the target, and a forecast at the current pace.

The projections keep two things, both dated:
- **members**: who a KPI counts over (teachers, organisations), each with attributes and
  the interval they were in the registry;
- **facts**: what happened to a member (diagnosed, a route held, a methodist's support, a
  program completed …), each with attributes and the interval it holds (an event that
  happened once holds from then on).

A KPI in the catalogue names a numerator (members with a matching fact), a population
(members matching attributes, or holding a fact), a target (several, with their sources,
where the documents disagree), a comparison, a deadline and how facts accumulate
(cumulative, within the year, or current). A new KPI of these forms is a new entry in
``data/kpis.json``, with no code change.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# --- the catalogue -------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Where = dict[str, Any]
"""Attribute conditions, all of which must hold: a value = equal (or, for a list attribute,
contained); a list = any of; ``{"nonempty": true}`` = a non-empty list attribute."""


class Numerator(_Strict):
    fact: str = Field(description="Fact kind counted, e.g. program_completed")
    where: Where = Field(default_factory=dict, description="Conditions on the fact's attributes")


class Population(_Strict):
    of: Literal["teachers", "organizations", "management_teams"] = "teachers"
    where: Where = Field(default_factory=dict, description="Conditions on the member")
    holding: str | None = Field(
        default=None, description="Only members holding this fact at the date (e.g. route)"
    )


class Target(_Strict):
    value: float
    source: str = Field(description="Where the target is written")


class Kpi(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    unit: str
    measure: Literal["share", "max_per_holder", "count"] = "share"
    numerator: Numerator
    population: Population = Field(default_factory=Population)
    comparison: Literal[">=", "<=", "growth"]
    targets: list[Target] = Field(min_length=1, description="The first is in force")
    accumulation: Literal["cumulative", "yearly", "current"]
    deadline: date | None = None
    clause: str
    holder: str | None = Field(
        default=None, description="max_per_holder: the fact attribute that names the holder"
    )

    @model_validator(mode="after")
    def _holder_for_max(self) -> Kpi:
        if self.measure == "max_per_holder" and not self.holder:
            raise ValueError(f"{self.code}: max_per_holder needs holder")
        return self

    @property
    def target(self) -> float:
        return self.targets[0].value


class Catalogue(_Strict):
    source: str
    start: date = Field(description="When the system's paths to the targets begin")
    kpis: list[Kpi] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        codes = [k.code for k in self.kpis]
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise ValueError(f"KPI codes repeated: {', '.join(twice)}")
        return self


def load_catalogue(path: Path) -> Catalogue:
    """Read and validate the KPI catalogue file."""
    return Catalogue.model_validate(json.loads(path.read_text(encoding="utf-8")))


# --- members and facts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A teacher or an organisation over the time it is in the registry."""

    kind: Literal["teachers", "organizations", "management_teams"]
    member_id: str
    municipality_id: str
    organization_id: str
    attrs: Mapping[str, Any]
    start: datetime
    end: datetime | None = None

    def present(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


@dataclass(frozen=True)
class Fact:
    """Something that holds for a member from ``start`` until ``end`` (None: for good)."""

    kind: str
    member_id: str
    start: datetime
    attrs: Mapping[str, Any] = field(default_factory=dict)
    end: datetime | None = None

    def holds(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def matches(attrs: Mapping[str, Any], where: Where) -> bool:
    """Whether attributes meet every condition of ``where``."""
    for key, wanted in where.items():
        value = attrs.get(key)
        if isinstance(wanted, dict):
            if wanted.get("nonempty") is not None and bool(value) != wanted["nonempty"]:
                return False
        elif isinstance(wanted, list):
            if isinstance(value, list):
                if not set(value) & set(wanted):
                    return False
            elif value not in wanted:
                return False
        elif isinstance(value, list):
            if wanted not in value:
                return False
        elif value != wanted:
            return False
    return True


def end_of(day: date) -> datetime:
    """The last moment of a day (UTC): values "as of" a day include all of it."""
    return datetime.combine(day, time.max, tzinfo=UTC)


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """A level: the region (both None), a municipality, or an organisation."""

    municipality_id: str | None = None
    organization_id: str | None = None

    def holds(self, member: Member) -> bool:
        return (
            self.municipality_id is None or member.municipality_id == self.municipality_id
        ) and (self.organization_id is None or member.organization_id == self.organization_id)


@dataclass(frozen=True)
class Value:
    value: float | None
    numerator: int
    population: int


class Facts:
    """Members and facts, indexed for evaluation."""

    def __init__(self, members: Iterable[Member], facts: Iterable[Fact]) -> None:
        self.members: dict[str, list[Member]] = defaultdict(list)
        for m in members:
            self.members[m.kind].append(m)
        self.by_kind: dict[str, list[Fact]] = defaultdict(list)
        for f in facts:
            self.by_kind[f.kind].append(f)
        self._populations: dict[Any, list[Member]] = {}

    def population(self, kpi: Kpi, scope: Scope, at: datetime) -> list[Member]:
        # KPIs share populations (most count over all teachers): found once per date.
        key = (kpi.population.model_dump_json(), scope, at)
        if key not in self._populations:
            self._populations[key] = self._population(kpi, scope, at)
        return self._populations[key]

    def _population(self, kpi: Kpi, scope: Scope, at: datetime) -> list[Member]:
        pop = kpi.population
        found = [
            m
            for m in self.members[pop.of]
            if m.present(at) and scope.holds(m) and matches(m.attrs, pop.where)
        ]
        if pop.holding is not None:
            holding = {f.member_id for f in self.by_kind[pop.holding] if f.holds(at)}
            found = [m for m in found if m.member_id in holding]
        return found

    def counted(self, kpi: Kpi, at: datetime) -> list[Fact]:
        """Facts of the numerator that count at ``at`` under the KPI's accumulation."""
        facts = (
            f for f in self.by_kind[kpi.numerator.fact] if matches(f.attrs, kpi.numerator.where)
        )
        if kpi.accumulation == "current":
            return [f for f in facts if f.holds(at)]
        since = (
            datetime(at.year, 1, 1, tzinfo=UTC)
            if kpi.accumulation == "yearly"
            else datetime.min.replace(tzinfo=UTC)
        )
        return [f for f in facts if since <= f.start <= at]

    def value(self, kpi: Kpi, scope: Scope, at: datetime) -> Value:
        return self.values(kpi, scope, at, "region")[None]

    def values(self, kpi: Kpi, scope: Scope, at: datetime, by: GroupBy) -> dict[str | None, Value]:
        """The KPI within ``scope`` at ``at``, for the whole scope (``by`` = "region": key
        None) or per municipality / organisation in it."""
        population = self.population(kpi, scope, at)
        group = {m.member_id: _group(m, by) for m in population}
        counted = [f for f in self.counted(kpi, at) if f.member_id in group]
        sizes: dict[str | None, int] = defaultdict(int)
        for key in group.values():
            sizes[key] += 1
        out: dict[str | None, Value] = {}
        if kpi.measure == "max_per_holder":
            assert kpi.holder is not None
            per: dict[str | None, dict[Any, set[str]]] = defaultdict(lambda: defaultdict(set))
            for f in counted:
                holder = f.attrs.get(kpi.holder)
                if holder is not None:
                    per[group[f.member_id]][holder].add(f.member_id)
            for key in sizes.keys() | per.keys():
                most = max((len(v) for v in per.get(key, {}).values()), default=0)
                out[key] = Value(float(most), most, len(per.get(key, {})))
            if not out and by == "region":
                out[None] = Value(0.0, 0, 0)
            return out
        hits: dict[str | None, set[str]] = defaultdict(set)
        for f in counted:
            hits[group[f.member_id]].add(f.member_id)
        for key, size in sizes.items():
            hit = len(hits.get(key, ()))
            value = float(hit) if kpi.measure == "count" else (100.0 * hit / size if size else None)
            out[key] = Value(value, hit, size)
        if None not in out and by == "region":
            out[None] = Value(0.0 if kpi.measure == "count" else None, 0, 0)
        return out


GroupBy = Literal["region", "municipality", "organization"]


def _group(member: Member, by: GroupBy) -> str | None:
    if by == "municipality":
        return member.municipality_id
    if by == "organization":
        return member.organization_id
    return None


# --- status and forecast -------------------------------------------------------------------

Status = Literal["on_track", "at_risk", "missed", "met", "no_data"]


def met(kpi: Kpi, value: float | None, previous: float | None = None) -> bool | None:
    """Whether the value meets the target in force; None when there is no value."""
    if value is None:
        return None
    if kpi.comparison == ">=":
        return value >= kpi.target
    if kpi.comparison == "<=":
        return value <= kpi.target
    return previous is None or value > previous  # growth: positive dynamics


def path_value(kpi: Kpi, start: date, on: date) -> float:
    """Where a ">=" KPI should stand on ``on`` to reach its target on its deadline, rising
    in a straight line from 0 (from the catalogue's start; for a yearly KPI, from 1 January)."""
    if kpi.accumulation == "yearly":
        begin, end = date(on.year, 1, 1), date(on.year, 12, 31)
    else:
        begin, end = start, kpi.deadline or on
    if end <= begin or on >= end:
        return kpi.target
    return kpi.target * max(0, (on - begin).days) / (end - begin).days


def status(
    kpi: Kpi, value: float | None, on: date, start: date, previous: float | None = None
) -> Status:
    """On track / at risk before the deadline; met / missed after it (or always, for a
    limit or a current share)."""
    if value is None:
        return "no_data"
    ok = met(kpi, value, previous)
    if kpi.comparison != ">=" or kpi.accumulation == "current":
        return "on_track" if ok else "missed"
    deadline = kpi.deadline if kpi.accumulation == "cumulative" else date(on.year, 12, 31)
    if deadline is not None and on >= deadline:
        return "met" if ok else "missed"
    if ok:
        return "met"
    return "on_track" if value >= path_value(kpi, start, on) else "at_risk"


def forecast(
    kpi: Kpi, value: float | None, earlier: float | None, days: int, on: date
) -> float | None:
    """The value at the deadline (or the year's end) at the pace of the last ``days``."""
    if value is None or earlier is None or days <= 0 or kpi.comparison == "growth":
        return None
    deadline = kpi.deadline if kpi.accumulation == "cumulative" else date(on.year, 12, 31)
    if kpi.accumulation == "current" or deadline is None or deadline <= on:
        return value
    pace = (value - earlier) / days
    ahead = value + pace * (deadline - on).days
    return min(ahead, 100.0) if kpi.unit == "%" else ahead


PACE_DAYS = 90


def evaluate(
    catalogue: Catalogue, facts: Facts, on: date, scope: Scope = Scope(), by: GroupBy = "region"
) -> dict[str | None, list[dict[str, Any]]]:
    """Every KPI as of the end of ``on`` within ``scope`` — for the scope as a whole
    (``by="region"``: key None) or per municipality / organisation in it: value, counts,
    targets, status and the forecast at the pace of the last 90 days."""
    at = end_of(on)
    before = end_of(on - timedelta(days=PACE_DAYS))
    last_year = end_of(on - timedelta(days=365))
    out: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    current = {kpi.code: facts.values(kpi, scope, at, by) for kpi in catalogue.kpis}
    keys = sorted({k for values in current.values() for k in values}, key=lambda k: k or "")
    empty = Value(None, 0, 0)
    for kpi in catalogue.kpis:
        now = current[kpi.code]
        earlier = facts.values(kpi, scope, before, by)
        previous = facts.values(kpi, scope, last_year, by) if kpi.comparison == "growth" else {}
        for key in keys:
            value = now.get(key, empty)
            was = previous.get(key)
            prior = was.value if was is not None else None
            then = earlier.get(key)
            out[key].append(
                {
                    "code": kpi.code,
                    "name": kpi.name,
                    "unit": kpi.unit,
                    "value": _round(value.value),
                    "numerator": value.numerator,
                    "population": value.population,
                    "target": kpi.target,
                    "targets": [t.model_dump() for t in kpi.targets],
                    "comparison": kpi.comparison,
                    "deadline": kpi.deadline.isoformat() if kpi.deadline else None,
                    "accumulation": kpi.accumulation,
                    "met": met(kpi, value.value, prior),
                    "status": status(kpi, value.value, on, catalogue.start, prior),
                    "forecast": _round(
                        forecast(
                            kpi,
                            value.value,
                            then.value if then is not None else None,
                            PACE_DAYS,
                            on,
                        )
                    ),
                    "clause": kpi.clause,
                }
            )
    return dict(out)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def series(
    catalogue: Catalogue, facts: Facts, scope: Scope, days: Sequence[date], code: str
) -> list[dict[str, Any]]:
    """One KPI at several dates (charts)."""
    kpi = next(k for k in catalogue.kpis if k.code == code)
    return [
        {"on": d.isoformat(), "value": _round(facts.value(kpi, scope, end_of(d)).value)}
        for d in days
    ]
