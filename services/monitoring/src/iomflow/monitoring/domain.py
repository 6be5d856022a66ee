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
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
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


Level = Literal["region", "municipality", "organization"]

MemberKind = Literal[
    "teachers", "organizations", "management_teams", "school_teams", "activities", "practices"
]
"""Who a KPI can count over: teachers and organisations; school teams (a project's), and
activities and practices (a count of them: each is a member of its own kind)."""

Accumulation = Literal["cumulative", "yearly", "monthly", "current", "held_in_year"]
"""Which facts count at a date: begun by it (cumulative), begun in its year or its calendar
month (yearly, monthly), holding at it (current), or holding at any time of its year up to
it (held_in_year: a role held for a period)."""


class Also(_Strict):
    """Another fact kind that counts, with conditions of its own."""

    fact: str
    where: Where = Field(default_factory=dict)


class Numerator(_Strict):
    fact: str = Field(description="Fact kind counted, e.g. trained")
    also: tuple[str, ...] = Field(
        default=(), description="Other fact kinds that count as well (any of them)"
    )
    where: Where = Field(default_factory=dict, description="Conditions on the fact's attributes")
    also_with: tuple[Also, ...] = Field(
        default=(),
        description="Other fact kinds that count as well, each with conditions of its own "
        "(attendance of a prevention activity beside a course on prevention)",
    )

    @property
    def parts(self) -> tuple[tuple[str, Where], ...]:
        """Each fact kind counted with its conditions."""
        return (
            (self.fact, self.where),
            *((kind, self.where) for kind in self.also),
            *((a.fact, a.where) for a in self.also_with),
        )

    @property
    def plain(self) -> bool:
        """One kind with no conditions: its facts are the kind's."""
        return not self.where and not self.also and not self.also_with

    @property
    def signature(self) -> str:
        return _key([[kind, where] for kind, where in self.parts])

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.parts)


class Population(_Strict):
    of: MemberKind = "teachers"
    where: Where = Field(default_factory=dict, description="Conditions on the member")
    holding: str | None = Field(
        default=None, description="Only members holding this fact at the date (e.g. route)"
    )
    having: Numerator | None = Field(
        default=None,
        description="Only members with a fact of these that counts at the date under the "
        "KPI's accumulation (e.g. diagnosed in the year with a burnout result)",
    )


class Target(_Strict):
    value: float
    source: str = Field(description="Where the target is written")


class Kpi(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    unit: str
    measure: Literal["share", "max_per_holder", "count", "holders"] = "share"
    numerator: Numerator
    population: Population = Field(default_factory=Population)
    comparison: Literal[">=", "<=", "growth", "decline"]
    targets: list[Target] = Field(min_length=1, description="The first is in force")
    accumulation: Accumulation
    deadline: date | None = None
    clause: str
    holder: str | None = Field(
        default=None,
        description="max_per_holder, holders: the fact attribute that names the holder (or "
        "the holders: a list)",
    )
    breakdown: str | None = Field(
        default=None,
        description="A fact attribute the value is also given by (``breakdown``: distinct "
        "members counted per value of it, e.g. an expert role's kind)",
    )
    judged_at: list[Level] | None = Field(
        default=None,
        description="The levels its target is set for; elsewhere the value is shown without "
        'a status. Default: an absolute count ("не менее 93 орг.") is the region\'s, a share '
        "or a limit is every level's",
    )

    kept_after_deadline: bool | None = Field(
        default=None,
        description="Whether the target stays in force after its deadline («ежегодно», «на "
        "дату»). Default: a current value or a limit does, an accumulated total does not — "
        "its status is then the one it had at the deadline",
    )
    appendix_rows: list[int] = Field(
        default_factory=list, description="Rows of Appendix 1 it answers (1-25, in order)"
    )

    @model_validator(mode="after")
    def _holder_for_max(self) -> Kpi:
        if self.measure in ("max_per_holder", "holders") and not self.holder:
            raise ValueError(f"{self.code}: {self.measure} needs holder")
        return self

    @property
    def target(self) -> float:
        return self.targets[0].value

    def lapsed(self, on: date) -> bool:
        """Its deadline has passed and its target is not in force after it."""
        if self.deadline is None or on <= self.deadline:
            return False
        if self.kept_after_deadline is not None:
            return not self.kept_after_deadline
        return self.accumulation == "cumulative" and self.comparison == ">="

    def judged(self, level: Level) -> bool:
        """Whether the target applies at ``level`` (a municipality is not held to the
        region's count of 93 organisations)."""
        if self.judged_at is not None:
            return level in self.judged_at
        return self.measure not in ("count", "holders") or level == "region"


class Tracked(_Strict):
    """A row of Appendix 1 that is a measure taken, not a number the suite counts: its
    status is what an operator records, with the evidence (``/v1/tracked``)."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(description="The result, as Appendix 1 words it")
    target: str = Field(description="The indicator, as Appendix 1 words it")
    recurrence: Literal["once", "yearly"]
    deadline: date | None = Field(default=None, description="once: by when")
    since: int | None = Field(default=None, description="yearly: the first year")
    clause: str
    appendix_rows: list[int] = Field(default_factory=list)

    def periods(self, on: date) -> list[str]:
        """The periods evidence is recorded for, up to ``on``: one, or each year since."""
        if self.recurrence == "once":
            return ["once"]
        first = self.since or on.year
        return [str(y) for y in range(first, on.year + 1)]

    def due(self, period: str) -> date:
        if period == "once":
            assert self.deadline is not None
            return self.deadline
        return date(int(period), 12, 31)


class Catalogue(_Strict):
    source: str
    start: date = Field(description="When the system's paths to the targets begin")
    kpis: list[Kpi] = Field(min_length=1)
    tracked: list[Tracked] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        codes = [k.code for k in self.kpis] + [t.code for t in self.tracked]
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise ValueError(f"KPI codes repeated: {', '.join(twice)}")
        return self


def load_catalogue(path: Path) -> Catalogue:
    """Read and validate the KPI catalogue file."""
    return Catalogue.model_validate(json.loads(path.read_text(encoding="utf-8")))


# --- members and facts ---------------------------------------------------------------------


# Members and facts are values (nothing changes one once built) but not frozen dataclasses:
# a load builds 200,000 of them, and a frozen one costs four times as much to build.


@dataclass(slots=True)
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


@dataclass(slots=True)
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

    @property
    def whole(self) -> bool:
        return self.municipality_id is None and self.organization_id is None

    @property
    def level(self) -> Level:
        if self.organization_id is not None:
            return "organization"
        return "region" if self.municipality_id is None else "municipality"


@dataclass(frozen=True)
class Value:
    value: float | None
    numerator: int
    population: int


def _key(where: Any) -> str:
    return json.dumps(where, sort_keys=True, default=str)


_BEGINNING = datetime.min.replace(tzinfo=UTC)


class Facts:
    """Members and facts, indexed for evaluation.

    Every KPI for the region and each municipality at three dates asks the same questions
    many times: most KPIs count over all teachers, several count one fact kind, a level's
    value is a count within a population. Each question is answered once and kept — the
    members matching a population's conditions and the facts matching a numerator's (for
    any date); who of them is in the registry, holds a fact, or is counted at a date; each
    population's sizes per level — so a value is a set intersection and a count, not a
    scan of every member and fact per KPI. Answers per date are kept for the last
    ``DATES`` dates asked about.
    """

    DATES = 16

    def __init__(self, members: Iterable[Member], facts: Iterable[Fact]) -> None:
        self.members: dict[str, list[Member]] = defaultdict(list)
        for m in members:
            self.members[m.kind].append(m)
        self.by_kind: dict[str, list[Fact]] = defaultdict(list)
        for f in facts:
            self.by_kind[f.kind].append(f)
        self._static: dict[Any, Any] = {}
        self._dated: dict[datetime, dict[Any, Any]] = {}
        self._lock = threading.Lock()  # answers are computed in worker threads

    # --- memory ---------------------------------------------------------------------------

    def _memo(self, at: datetime | None, key: Any, compute: Callable[[], Any]) -> Any:
        table = self._static if at is None else self._of_date(at)
        found = table.get(key, _MISSING)
        if found is _MISSING:
            found = table[key] = compute()
        return found

    def _of_date(self, at: datetime) -> dict[Any, Any]:
        table = self._dated.get(at)
        if table is None:
            with self._lock:
                table = self._dated.get(at)
                if table is None:
                    while len(self._dated) >= self.DATES:
                        del self._dated[next(iter(self._dated))]
                    table = self._dated[at] = {}
        return table

    # --- members --------------------------------------------------------------------------

    def _in_scope(self, of: str, scope: Scope) -> list[Member]:
        if scope.whole:
            return self.members[of]
        return self._memo(
            None, ("scope", of, scope), lambda: [m for m in self.members[of] if scope.holds(m)]
        )

    def _matching(self, of: str, where: Where, scope: Scope) -> list[Member]:
        """Members of a kind in ``scope`` meeting ``where`` (at any date)."""

        def compute() -> list[Member]:
            seen: dict[int, bool] = {}  # members loaded together share equal attributes
            out = []
            for m in self._in_scope(of, scope):
                ok = seen.get(id(m.attrs))
                if ok is None:
                    ok = seen[id(m.attrs)] = matches(m.attrs, where)
                if ok:
                    out.append(m)
            return out

        if not where:
            return self._in_scope(of, scope)
        return self._memo(None, ("matching", of, _key(where), scope), compute)  # type: ignore[no-any-return]

    def _absent(self, of: str, at: datetime) -> set[str]:
        """Members of a kind not in the registry at ``at`` (usually none)."""
        return self._memo(
            at,
            ("absent", of),
            lambda: {  # type: ignore[no-any-return]
                m.member_id for m in self.members[of] if not m.present(at)
            },
        )

    def holding(self, kind: str, at: datetime) -> set[str]:
        """Members holding a fact of ``kind`` at ``at``."""
        return self._memo(
            at,
            ("holding", kind),
            lambda: {  # type: ignore[no-any-return]
                f.member_id for f in self.by_kind[kind] if f.holds(at)
            },
        )

    def ever(self, kind: str, at: datetime) -> set[str]:
        """Members with a fact of ``kind`` begun by ``at``."""
        return self._memo(
            at,
            ("ever", kind),
            lambda: {  # type: ignore[no-any-return]
                f.member_id for f in self.by_kind[kind] if f.start <= at
            },
        )

    def present(self, of: str, scope: Scope, at: datetime) -> list[Member]:
        """Members of a kind in ``scope`` in the registry at ``at``."""
        return self._population(of, {}, None, scope, at)[0]

    def tally(
        self, of: str, scope: Scope, at: datetime, among: set[str] | None = None
    ) -> Counter[str]:
        """Members of a kind in ``scope`` in the registry at ``at`` (and in ``among``), per
        municipality."""
        _, ids = self._population(of, {}, None, scope, at)
        if among is not None:
            ids = ids & among
        return Counter(map(self._groups(of, "municipality").__getitem__, ids))

    def population(self, kpi: Kpi, scope: Scope, at: datetime) -> list[Member]:
        return self._population_of(kpi, scope, at)[0]

    def _population_of(self, kpi: Kpi, scope: Scope, at: datetime) -> tuple[list[Member], set[str]]:
        pop = kpi.population
        having = (pop.having, kpi.accumulation) if pop.having is not None else None
        return self._population(pop.of, pop.where, pop.holding, scope, at, having)

    def _population(
        self,
        of: str,
        where: Where,
        holding: str | None,
        scope: Scope,
        at: datetime,
        having: tuple[Numerator, Accumulation] | None = None,
    ) -> tuple[list[Member], set[str]]:
        def compute() -> tuple[list[Member], set[str]]:
            found = self._matching(of, where, scope)
            absent = self._absent(of, at)
            if len(absent) == len(self.members[of]):
                found = []  # before the registry was there
            elif absent:
                found = [m for m in found if m.member_id not in absent]
            if holding is not None:
                holders = self.holding(holding, at)
                found = [m for m in found if m.member_id in holders]
            if having is not None:
                counted = self._counted_ids(having[0], having[1], at)
                found = [m for m in found if m.member_id in counted]
            return found, {m.member_id for m in found}

        condition = None if having is None else (having[0].signature, having[1])
        key = ("population", of, _key(where), holding, condition, scope)
        return self._memo(at, key, compute)  # type: ignore[no-any-return]

    def _groups(self, of: str, by: GroupBy) -> dict[str, str]:
        """Each member's level key (municipality or organisation)."""
        return self._memo(
            None,
            ("groups", of, by),
            lambda: {  # type: ignore[no-any-return]
                m.member_id: _group(m, by) for m in self.members[of]
            },
        )

    def _grouped(self, of: str, by: GroupBy, scope: Scope) -> dict[str | None, set[str]]:
        """The members of a kind in ``scope``, per level key (municipality or organisation):
        a level's count is then one set intersection."""

        def compute() -> dict[str | None, set[str]]:
            out: dict[str | None, set[str]] = defaultdict(set)
            for m in self._in_scope(of, scope):
                out[_group(m, by)].add(m.member_id)
            return dict(out)

        return self._memo(None, ("grouped", of, by, scope), compute)  # type: ignore[no-any-return]

    def _sizes(self, kpi: Kpi, scope: Scope, at: datetime, by: GroupBy) -> dict[str | None, int]:
        pop = kpi.population

        def compute() -> dict[str | None, int]:
            _, ids = self._population_of(kpi, scope, at)
            if by == "region":
                return {None: len(ids)} if ids else {}
            return _per_group(self._grouped(pop.of, by, scope), ids)

        having = None if pop.having is None else (pop.having.signature, kpi.accumulation)
        key = ("sizes", pop.of, _key(pop.where), pop.holding, having, scope, by)
        return self._memo(at, key, compute)  # type: ignore[no-any-return]

    # --- facts ----------------------------------------------------------------------------

    def _numerator(self, num: Numerator) -> list[Fact]:
        """Facts of the numerator's kinds meeting their conditions (at any date)."""
        if num.plain:
            return self.by_kind[num.fact]

        def compute() -> list[Fact]:
            out: list[Fact] = []
            for kind, where in num.parts:
                for attrs, facts in self._by_attrs(kind):
                    if matches(attrs, where):
                        out += facts
            return out

        return self._memo(None, ("numerator", num.signature), compute)  # type: ignore[no-any-return]

    def _by_attrs(self, kind: str) -> list[tuple[Mapping[str, Any], list[Fact]]]:
        """The facts of a kind by their attributes: facts loaded together share equal
        attributes (a completion's program), so conditions are tested once per value."""

        def compute() -> list[tuple[Mapping[str, Any], list[Fact]]]:
            out: dict[int, tuple[Mapping[str, Any], list[Fact]]] = {}
            for f in self.by_kind[kind]:
                found = out.get(id(f.attrs))
                if found is None:
                    found = out[id(f.attrs)] = (f.attrs, [])
                found[1].append(f)
            return list(out.values())

        return self._memo(None, ("by attrs", kind), compute)  # type: ignore[no-any-return]

    def counted(self, kpi: Kpi, at: datetime) -> list[Fact]:
        """Facts of the numerator that count at ``at`` under the KPI's accumulation."""
        return self._counted(kpi.numerator, kpi.accumulation, at)

    def _counted(self, num: Numerator, accumulation: Accumulation, at: datetime) -> list[Fact]:
        def compute() -> list[Fact]:
            facts = self._numerator(num)
            if accumulation == "current":
                return [f for f in facts if f.holds(at)]
            if accumulation == "held_in_year":
                year = datetime(at.year, 1, 1, tzinfo=UTC)
                return [
                    f
                    for f in facts
                    if f.start <= at and (f.end is None or (f.end > year and f.end > f.start))
                ]
            if accumulation == "yearly":
                since = datetime(at.year, 1, 1, tzinfo=UTC)
            elif accumulation == "monthly":
                since = datetime(at.year, at.month, 1, tzinfo=UTC)
            else:
                since = _BEGINNING
            # A fact that ended before it began (a record removed before its period) never
            # held: it counts nowhere.
            return [
                f for f in facts if since <= f.start <= at and (f.end is None or f.end > f.start)
            ]

        key = ("counted", num.signature, accumulation)
        return self._memo(at, key, compute)  # type: ignore[no-any-return]

    def _counted_ids(self, num: Numerator, accumulation: Accumulation, at: datetime) -> set[str]:
        return self._memo(
            at,
            ("counted members", num.signature, accumulation),
            lambda: {  # type: ignore[no-any-return]
                f.member_id for f in self._counted(num, accumulation, at)
            },
        )

    def _counted_members(self, kpi: Kpi, at: datetime) -> set[str]:
        return self._counted_ids(kpi.numerator, kpi.accumulation, at)

    def _holders(self, kpi: Kpi, at: datetime) -> dict[Any, set[str]]:
        """max_per_holder, holders: per holder (a methodist), the members of its counted
        facts (an attribute that is a list names several)."""
        return self._per_attribute(kpi, kpi.holder, at)

    def _per_attribute(self, kpi: Kpi, name: str | None, at: datetime) -> dict[Any, set[str]]:
        """Per value of a counted fact's attribute, the members of those facts."""
        num = kpi.numerator
        assert name is not None

        def compute() -> dict[Any, set[str]]:
            out: dict[Any, set[str]] = defaultdict(set)
            for f in self.counted(kpi, at):
                value = f.attrs.get(name)
                for one in value if isinstance(value, list) else (value,):
                    if one is not None:
                        out[one].add(f.member_id)
            return out

        key = ("per attribute", num.signature, kpi.accumulation, name)
        return self._memo(at, key, compute)  # type: ignore[no-any-return]

    def breakdown(
        self, kpi: Kpi, scope: Scope, at: datetime, by: GroupBy
    ) -> dict[str | None, dict[str, int]]:
        """``Kpi.breakdown``: per level key, distinct members counted per value of the
        attribute (empty when the KPI has none)."""
        if kpi.breakdown is None:
            return {}
        _, ids = self._population_of(kpi, scope, at)
        groups = self._groups(kpi.population.of, by) if by != "region" else None
        out: dict[str | None, dict[str, int]] = defaultdict(dict)
        for value, members in sorted(self._per_attribute(kpi, kpi.breakdown, at).items()):
            inside = members & ids
            if groups is None:
                if inside:
                    out[None][str(value)] = len(inside)
                continue
            for group, n in Counter(map(groups.__getitem__, inside)).items():
                out[group][str(value)] = n
        return dict(out)

    # --- values ---------------------------------------------------------------------------

    def value(self, kpi: Kpi, scope: Scope, at: datetime) -> Value:
        return self.values(kpi, scope, at, "region")[None]

    def values(self, kpi: Kpi, scope: Scope, at: datetime, by: GroupBy) -> dict[str | None, Value]:
        """The KPI within ``scope`` at ``at``, for the whole scope (``by`` = "region": key
        None) or per municipality / organisation in it."""
        key = ("values", _kpi_key(kpi), scope, by)
        found = self._of_date(at).get(key)
        if found is None:
            found = self._of_date(at)[key] = self._values(kpi, scope, at, by)
        return found  # type: ignore[no-any-return]

    def _values(self, kpi: Kpi, scope: Scope, at: datetime, by: GroupBy) -> dict[str | None, Value]:
        if by == "region" and kpi.measure not in ("max_per_holder", "holders"):
            # Members are in one municipality each: the whole is the sum of its parts,
            # when those are known already (the region is asked after its municipalities).
            parts = self._of_date(at).get(("values", _kpi_key(kpi), scope, "municipality"))
            if parts is not None:
                return _whole(kpi, parts)
        pop = kpi.population
        _, ids = self._population_of(kpi, scope, at)
        sizes = self._sizes(kpi, scope, at, by)
        groups = self._groups(pop.of, by) if by != "region" else None
        out: dict[str | None, Value] = {}
        if kpi.measure == "max_per_holder":
            per: dict[str | None, dict[Any, int]] = defaultdict(dict)
            for holder, counted in self._holders(kpi, at).items():
                inside = counted & ids
                if not inside:
                    continue
                if groups is None:
                    per[None][holder] = len(inside)
                    continue
                for group, n in Counter(map(groups.__getitem__, inside)).items():
                    per[group][holder] = n
            for key in sizes.keys() | per.keys():
                most = max(per.get(key, {}).values(), default=0)
                out[key] = Value(float(most), most, len(per.get(key, {})))
            if not out and by == "region":
                out[None] = Value(0.0, 0, 0)
            return out
        if kpi.measure == "holders":
            named: dict[str | None, set[Any]] = defaultdict(set)
            for holder, counted in self._holders(kpi, at).items():
                inside = counted & ids
                if groups is None:
                    if inside:
                        named[None].add(holder)
                    continue
                for group in {groups[m] for m in inside}:
                    named[group].add(holder)
            for key, size in sizes.items():
                n = len(named.get(key, ()))
                out[key] = Value(float(n), n, size)
            if None not in out and by == "region":
                out[None] = Value(0.0, 0, 0)
            return out
        hit_ids = ids & self._counted_members(kpi, at)
        hits: Mapping[str | None, int] = (
            {None: len(hit_ids)}
            if groups is None
            else _per_group(self._grouped(pop.of, by, scope), hit_ids)
        )
        for key, size in sizes.items():
            hit = hits.get(key, 0)
            value = float(hit) if kpi.measure == "count" else (100.0 * hit / size if size else None)
            out[key] = Value(value, hit, size)
        if None not in out and by == "region":
            out[None] = Value(0.0 if kpi.measure == "count" else None, 0, 0)
        return out


_MISSING = object()


def _per_group(grouped: Mapping[str | None, set[str]], ids: set[str]) -> dict[str | None, int]:
    """How many of ``ids`` each level holds (levels holding none left out)."""
    out = {}
    for key, members in grouped.items():
        n = len(members & ids)
        if n:
            out[key] = n
    return out


def _kpi_key(kpi: Kpi) -> tuple[Any, ...]:
    """What a KPI's values depend on (its code, name and targets do not)."""
    num, pop = kpi.numerator, kpi.population
    return (
        kpi.measure,
        num.signature,
        kpi.accumulation,
        kpi.holder,
        pop.of,
        _key(pop.where),
        pop.holding,
        None if pop.having is None else pop.having.signature,
    )


def _whole(kpi: Kpi, parts: Mapping[str | None, Value]) -> dict[str | None, Value]:
    hit = sum(v.numerator for v in parts.values())
    size = sum(v.population for v in parts.values())
    if not size:
        return {None: Value(0.0 if kpi.measure == "count" else None, 0, 0)}
    value = float(hit) if kpi.measure == "count" else 100.0 * hit / size
    return {None: Value(value, hit, size)}


GroupBy = Literal["region", "municipality", "organization"]


def _group(member: Member, by: GroupBy) -> str | None:
    if by == "municipality":
        return member.municipality_id
    if by == "organization":
        return member.organization_id
    return None


# --- status and forecast -------------------------------------------------------------------

Status = Literal["on_track", "at_risk", "missed", "met", "no_data", "not_judged"]
"""``not_judged``: the value at a level the KPI's target is not set for (``Kpi.judged``)."""


def met(kpi: Kpi, value: float | None, previous: float | None = None) -> bool | None:
    """Whether the value meets the target in force; None when there is no value."""
    if value is None:
        return None
    if kpi.comparison == ">=":
        return value >= kpi.target
    if kpi.comparison == "<=":
        return value <= kpi.target
    if kpi.comparison == "decline":  # a risk's positive dynamics: lower than a year ago
        return previous is None or value < previous or value == 0
    return previous is None or value > previous  # growth: positive dynamics


def window(kpi: Kpi, on: date) -> tuple[date, date] | None:
    """The period a yearly or monthly KPI accumulates over, around ``on`` (its first and
    last day); None for the others."""
    if kpi.accumulation in ("yearly", "held_in_year"):
        return date(on.year, 1, 1), date(on.year, 12, 31)
    if kpi.accumulation == "monthly":
        first = on.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following - timedelta(days=1)
    return None


def path_value(kpi: Kpi, start: date, on: date) -> float:
    """Where a ">=" KPI should stand on ``on`` to reach its target on its deadline, rising
    in a straight line from 0 (from the catalogue's start; for a yearly KPI, from 1 January)."""
    period = window(kpi, on)
    if period is not None:
        begin, end = period
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
    period = window(kpi, on)
    deadline = kpi.deadline if period is None else period[1]
    if deadline is not None and on >= deadline:
        return "met" if ok else "missed"
    if ok:
        return "met"
    return "on_track" if value >= path_value(kpi, start, on) else "at_risk"


def forecast(
    kpi: Kpi, value: float | None, earlier: float | None, days: int, on: date
) -> float | None:
    """The value at the deadline (or the year's end) at the pace of the last ``days``."""
    if value is None or earlier is None or days <= 0 or kpi.comparison in ("growth", "decline"):
        return None
    period = window(kpi, on)
    deadline = kpi.deadline if period is None else period[1]
    if kpi.accumulation == "current" or deadline is None or deadline <= on:
        return value
    if kpi.accumulation == "monthly" and period is not None:
        days = (on - period[0]).days + 1  # the pace within the month, since it began
        earlier = 0.0
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
    # Members of no municipality or organisation (a regional activity) count for the
    # whole only.
    keys = sorted(
        {k for values in current.values() for k in values if by == "region" or k != ""},
        key=lambda k: k or "",
    )
    level = scope.level if by == "region" else by
    empty = Value(None, 0, 0)
    for kpi in catalogue.kpis:
        targets = [t.model_dump() for t in kpi.targets]  # the same for every level
        deadline = kpi.deadline.isoformat() if kpi.deadline else None
        now = current[kpi.code]
        earlier = facts.values(kpi, scope, before, by)
        previous = (
            facts.values(kpi, scope, last_year, by)
            if kpi.comparison in ("growth", "decline")
            else {}
        )
        broken = facts.breakdown(kpi, scope, at, by)
        lapsed = kpi.lapsed(on)
        then_values = (
            facts.values(kpi, scope, end_of(kpi.deadline), by)
            if kpi.deadline is not None and on > kpi.deadline
            else None
        )
        for key in keys:
            value = now.get(key, empty)
            was = previous.get(key)
            prior = was.value if was is not None else None
            then = earlier.get(key)
            judged = kpi.judged(level)
            at_deadline = None
            if then_values is not None:
                assert kpi.deadline is not None
                was_then = then_values.get(key, empty).value
                at_deadline = {
                    "on": kpi.deadline.isoformat(),
                    "value": _round(was_then),
                    "met": met(kpi, was_then) if judged else None,
                }
            row_status: Status = (
                status(kpi, value.value, on, catalogue.start, prior) if judged else "not_judged"
            )
            if lapsed and judged and at_deadline is not None:
                then_status = status(
                    kpi,
                    then_values.get(key, empty).value if then_values else None,
                    kpi.deadline or on,
                    catalogue.start,
                )
                row_status = then_status
            out[key].append(
                {
                    "code": kpi.code,
                    "name": kpi.name,
                    "unit": kpi.unit,
                    "value": _round(value.value),
                    "numerator": value.numerator,
                    "population": value.population,
                    "target": kpi.target,
                    "targets": targets,
                    "comparison": kpi.comparison,
                    "deadline": deadline,
                    "accumulation": kpi.accumulation,
                    "met": (
                        (
                            at_deadline["met"]
                            if lapsed and at_deadline
                            else met(kpi, value.value, prior)
                        )
                        if judged
                        else None
                    ),
                    "status": row_status,
                    "period": period_of(kpi, on),
                    "at_deadline": at_deadline,
                    "forecast": None
                    if lapsed
                    else _round(
                        forecast(
                            kpi,
                            value.value,
                            then.value if then is not None else None,
                            PACE_DAYS,
                            on,
                        )
                    ),
                    "clause": kpi.clause,
                    "breakdown": broken.get(key, {}) if kpi.breakdown else None,
                }
            )
    return dict(out)


TrackedState = Literal["done", "in_progress", "not_done"]
TRACKED_WORDS: dict[str, str] = {
    "done": "выполнено",
    "in_progress": "выполняется",
    "not_done": "не выполнено",
}


def tracked_status(item: Tracked, period: str, recorded: str | None, on: date) -> Status:
    """A tracked item's status for a period from what was recorded: done is met, not done
    is missed, in progress is on track until the period's due day and missed after it;
    nothing recorded is no data (an absence of evidence is not a failure)."""
    if recorded == "done":
        return "met"
    if recorded == "not_done":
        return "missed"
    if recorded == "in_progress":
        return "on_track" if on <= item.due(period) else "missed"
    return "no_data"


def tracked(
    catalogue: Catalogue, recorded: Mapping[tuple[str, str], Mapping[str, Any]], on: date
) -> list[dict[str, Any]]:
    """Every tracked item with each of its periods up to ``on``: status and evidence."""
    out = []
    for item in catalogue.tracked:
        periods = []
        for period in item.periods(on):
            row = recorded.get((item.code, period)) or {}
            state = row.get("status")
            at = row.get("recorded_at")
            periods.append(
                {
                    "period": period,
                    "label": f"к {_ru(item.due(period))}"
                    if period == "once"
                    else f"за {period} год",
                    "due": item.due(period).isoformat(),
                    "status": tracked_status(item, period, state, on),
                    "recorded": state,
                    "recorded_words": TRACKED_WORDS.get(state or ""),
                    "evidence": row.get("evidence"),
                    "recorded_by": row.get("recorded_by"),
                    "recorded_at": at.isoformat() if isinstance(at, datetime) else at,
                }
            )
        out.append({**item.model_dump(mode="json"), "periods": periods})
    return out


MONTHS = (
    "январь", "февраль", "март", "апрель", "май", "июнь",
    "июль", "август", "сентябрь", "октябрь", "ноябрь", "декабрь",
)  # fmt: skip


def _ru(day: date) -> str:
    return day.strftime("%d.%m.%Y")


def period_of(kpi: Kpi, on: date) -> dict[str, Any]:
    """Which period a KPI's status is about, in words: the year (a yearly total), its
    deadline (an accumulated total, before it and after it: «срок прошёл»), or the day
    (a current value or a limit)."""
    if kpi.lapsed(on):
        assert kpi.deadline is not None
        return {"label": f"на {_ru(kpi.deadline)}, срок прошёл", "passed": True}
    if kpi.accumulation in ("yearly", "held_in_year"):
        return {"label": f"за {on.year} год", "passed": False}
    if kpi.accumulation == "monthly":
        return {"label": f"за {MONTHS[on.month - 1]} {on.year} года", "passed": False}
    if kpi.accumulation == "cumulative" and kpi.deadline is not None:
        return {"label": f"к {_ru(kpi.deadline)}", "passed": False}
    return {"label": f"на {_ru(on)}", "passed": False}


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
