"""Routes (ИОМ): drafting, pace, methodist and tutor choice, lifecycle rules, effectiveness.

Pure rules, no I/O. The service loads views of the read models, calls these functions and
saves what they return. Every choice carries its reason in Russian, written for the
teacher and the methodist: which deficit, which competency, why this item over the
alternatives. Rule parameters (weights, hours, pace, budget) come from ``data/rules.json``.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from iomflow.shared.contracts import CompetencyChange, Level, RouteStep

# --- rules ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramWeights(_Strict):
    federal_registry: float
    subject_match: float
    format_remote: dict[str, float]
    format_near: dict[str, float]
    per_100_hours: float


class StepHours(_Strict):
    consultation: int = Field(ge=1)
    internship: int = Field(ge=1)
    mentoring: int = Field(ge=1)
    community: int = Field(ge=1)
    post_course_support: int = Field(ge=1)


class Pace(_Strict):
    hours_per_week: int = Field(ge=1)
    parallel_weeks: dict[Literal["mentoring", "community"], int]
    post_course_gap_days: int = Field(ge=0)


class Budget(_Strict):
    yearly_hours: int = Field(ge=1)
    period_starts: str = Field(pattern=r"^\d\d-\d\d$", description="MM-DD of a budget year")

    @model_validator(mode="after")
    def _a_real_day(self) -> Budget:
        self.period_start(2024)  # a leap year: 02-29 passes, 13-45 does not
        return self

    def period_start(self, year: int) -> date:
        return _period_start(self.period_starts, year)


@functools.lru_cache(maxsize=512)
def _period_start(starts: str, year: int) -> date:
    """The day a budget year begins (``MM-DD`` of ``year``): asked for every step paced."""
    month, day = (int(x) for x in starts.split("-"))
    return date(year, month, day)


class InternshipRule(_Strict):
    for_levels: list[Level]


class CommunityRule(_Strict):
    level_order: list[Literal["municipal", "regional", "federal"]]
    per_route: int = Field(ge=0)


class CompletionRule(_Strict):
    at_end_date: bool = Field(description="A route also completes when its end date passes")
    grace_days: int = Field(ge=0)


class Rules(_Strict):
    """The drafting rules as data (``data/rules.json``), validated at load."""

    version: str
    comment: str = ""
    program_weights: ProgramWeights
    hours: StepHours
    pace: Pace
    budget: Budget
    internship: InternshipRule
    community: CommunityRule
    approvals: list[Literal["teacher", "methodist", "management"]] = Field(min_length=1)
    completion: CompletionRule


def load_rules(path: Path | None = None) -> Rules:
    """The rules file: ``path``, or the one shipped with the service."""
    if path is None:
        text = resources.files("iomflow.routes").joinpath("data/rules.json").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return Rules.model_validate(json.loads(text))


# --- views of the read models --------------------------------------------------------------


@dataclass(frozen=True)
class TeacherView:
    teacher_id: str
    organization_id: str
    municipality_id: str
    audience: str
    subjects: tuple[str, ...] = ()
    young: bool = False
    remote: bool = False  # the teacher's municipality is remote


@dataclass(frozen=True)
class ProgramView:
    program_id: str
    title: str
    hours: int
    federal_registry: bool
    competencies: tuple[str, ...]
    audiences: tuple[str, ...]
    format: str = "in_person"
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class SiteView:
    site_id: str
    title: str
    municipality_id: str
    competencies: tuple[str, ...]
    capacity: int
    load: int = 0


@dataclass(frozen=True)
class MentorView:
    mentor_id: str
    organization_id: str
    municipality_id: str
    subjects: tuple[str, ...]
    capacity: int
    load: int = 0


@dataclass(frozen=True)
class CommunityView:
    community_id: str
    title: str
    level: str
    municipality_id: str | None
    subjects: tuple[str, ...]
    competencies: tuple[str, ...]


@dataclass(frozen=True)
class MethodistView:
    methodist_id: str
    specialisations: tuple[str, ...]
    municipalities: tuple[str, ...]  # empty: the whole region
    capacity: int
    load: int
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class TutorView:
    tutor_id: str
    specialisations: tuple[str, ...]
    programs: tuple[str, ...]  # empty: any program
    municipalities: tuple[str, ...]  # empty: the whole region
    capacity: int
    load: int = 0


@dataclass(frozen=True)
class Catalogue:
    """What the registries offer, as the routes service's read models hold it.

    ``by_competency`` optionally indexes ``programs`` by the competencies they address
    (built once for many drafts); without it every program is looked at per deficit."""

    programs: Sequence[ProgramView] = ()
    sites: Sequence[SiteView] = ()
    mentors: Sequence[MentorView] = ()
    communities: Sequence[CommunityView] = ()
    tutors: Sequence[TutorView] = ()
    by_competency: Mapping[str, Sequence[ProgramView]] | None = None
    rank_cache: dict[Any, Any] | None = None
    """Programs ranked per competency and teacher profile (``drafting.ranked_for``), kept
    as long as the offer they rank is."""

    def programs_on(self, code: str) -> Sequence[ProgramView]:
        """The programs that may address ``code`` (all of them without an index)."""
        if self.by_competency is None:
            return self.programs
        return self.by_competency.get(code, ())


def index_programs(programs: Iterable[ProgramView]) -> dict[str, list[ProgramView]]:
    """Programs by each competency they address, in their order."""
    index: dict[str, list[ProgramView]] = {}
    for program in programs:
        for code in dict.fromkeys(program.competencies):
            index.setdefault(code, []).append(program)
    return index


@dataclass(frozen=True)
class Draft:
    steps: list[RouteStep]
    total_hours: int
    starts_on: date | None
    ends_on: date | None
    hours_by_period: dict[str, int] = field(default_factory=dict)


# --- methodists ----------------------------------------------------------------------------


def serves(methodist: MethodistView, municipality_id: str) -> bool:
    return not methodist.municipalities or municipality_id in methodist.municipalities


def eligible_methodists(
    teacher: TeacherView, competencies: set[str], methodists: Sequence[MethodistView]
) -> list[MethodistView]:
    """Methodists with room who serve the teacher's municipality, best first.

    Best = a specialisation among the route's competencies, then a subject of the teacher,
    then the least loaded, then by id (stable). Never one at capacity.
    """
    serving = [m for m in methodists if m.load < m.capacity and serves(m, teacher.municipality_id)]
    return sorted(serving, key=lambda m: _methodist_key(m, teacher, competencies))


def best_methodist(
    teacher: TeacherView, competencies: set[str], methodists: Iterable[MethodistView]
) -> MethodistView | None:
    """The first of ``eligible_methodists`` (None: nobody serving the teacher has room),
    found without sorting them all."""
    serving = (m for m in methodists if m.load < m.capacity and serves(m, teacher.municipality_id))
    return min(serving, key=lambda m: _methodist_key(m, teacher, competencies), default=None)


def _methodist_key(
    m: MethodistView, teacher: TeacherView, competencies: set[str]
) -> tuple[bool, bool, int, str]:
    return (
        not competencies & set(m.specialisations),
        not set(m.subjects) & set(teacher.subjects),
        m.load,
        m.methodist_id,
    )


def methodist_reason(m: MethodistView, teacher: TeacherView, competencies: set[str]) -> str:
    """Why this methodist, in Russian."""
    why = []
    if competencies & set(m.specialisations):
        why.append("специализация по компетенциям маршрута")
    if set(m.subjects) & set(teacher.subjects):
        why.append("предмет педагога")
    why.append("обслуживает муниципалитет" if m.municipalities else "работает по всему региону")
    why.append(f"нагрузка {m.load + 1} из {m.capacity}")
    return ", ".join(why)


@dataclass(frozen=True)
class Seat:
    """A route held by a methodist, as the rebalance sees it."""

    route_id: str
    methodist_id: str | None
    teacher: TeacherView
    competencies: frozenset[str]


@dataclass(frozen=True)
class Move:
    route_id: str
    from_methodist: str | None
    to_methodist: str | None  # None: back to the unassigned queue
    reason: str


def plan_rebalance(
    seats: Sequence[Seat],
    methodists: Sequence[MethodistView],
    even: bool = True,
    pinned: Mapping[str, int] | None = None,
) -> list[Move]:
    """Moves that bring every methodist within capacity and even the loads out.

    1. A methodist above capacity (capacity lowered, or removed: absent from
       ``methodists``) gives up its newest routes: to the best eligible methodist with room,
       or to the unassigned queue.
    2. Waiting routes (no methodist) are seated where there is room.
    3. A route moves from a methodist to an eligible one whose load after the move stays
       at least 2 below the giver's (each move strictly narrows the gap), until none can;
       only with ``even`` (an operator's rebalance; capacity changes do steps 1 and 2).
    No move ever takes a methodist above capacity. ``seats`` come oldest first;
    ``pinned`` counts seats per methodist that hold but cannot move (their teacher is not
    in the read model): they fill capacity all the same.
    """
    by_id = {m.methodist_id: m for m in methodists}
    # Loads are recounted from the seats: a rebalance also repairs a drifted counter.
    load = {mid: (pinned or {}).get(mid, 0) for mid in by_id}
    held: dict[str | None, list[Seat]] = {}
    for seat in seats:
        held.setdefault(seat.methodist_id, []).append(seat)
        if seat.methodist_id in load:
            load[seat.methodist_id] += 1
    moves: list[Move] = []
    current: dict[str, str | None] = {s.route_id: s.methodist_id for s in seats}

    def view(mid: str) -> MethodistView:
        return replace(by_id[mid], load=load[mid])

    def best_for(seat: Seat, exclude: str | None) -> MethodistView | None:
        candidates = [view(mid) for mid in by_id if mid != exclude]
        found = eligible_methodists(seat.teacher, set(seat.competencies), candidates)
        return found[0] if found else None

    def move(seat: Seat, to: MethodistView | None, why: str) -> None:
        source = current[seat.route_id]
        if source in load:
            load[source] -= 1  # type: ignore[index]
        if to is not None:
            load[to.methodist_id] += 1
        current[seat.route_id] = to.methodist_id if to else None
        moves.append(Move(seat.route_id, source, to.methodist_id if to else None, why))

    # 1. over capacity, or gone: the newest routes leave first
    for owner, owned in held.items():
        if owner is None:
            continue
        if owner not in by_id:
            leaving, why = owned, "методист выбыл из реестра"
        else:
            excess = load[owner] - by_id[owner].capacity
            leaving = owned[-excess:] if excess > 0 else []
            why = f"нагрузка методиста выше ёмкости ({by_id[owner].capacity})"
        for seat in reversed(leaving):
            move(seat, best_for(seat, owner), why)
    # 2. the queue
    for seat in held.get(None, []):
        if current[seat.route_id] is None:
            target = best_for(seat, None)
            if target is not None:
                move(seat, target, "появилось место у подходящего методиста")
    # 3. even out
    changed = even
    while changed:
        changed = False
        for seat in seats:
            owner = current[seat.route_id]
            if owner is None or owner not in by_id:
                continue
            mine = _methodist_key(view(owner), seat.teacher, set(seat.competencies))[:2]
            # The lightest eligible methodist that is no worse a match than the owner.
            target = min(
                (
                    m
                    for m in eligible_methodists(
                        seat.teacher,
                        set(seat.competencies),
                        [view(mid) for mid in by_id if mid != owner],
                    )
                    if _methodist_key(m, seat.teacher, set(seat.competencies))[:2] <= mine
                ),
                key=lambda m: (m.load, m.methodist_id),
                default=None,
            )
            if target is None or target.load + 1 > load[owner] - 1:
                continue
            move(seat, target, f"выравнивание нагрузки: {load[owner]} → {target.load + 1}")
            changed = True
    # Collapse a route's moves into one: where it was, where it ends.
    first: dict[str, Move] = {}
    last: dict[str, Move] = {}
    for m in moves:
        first.setdefault(m.route_id, m)
        last[m.route_id] = m
    return [
        Move(rid, first[rid].from_methodist, last[rid].to_methodist, last[rid].reason)
        for rid in first
        if first[rid].from_methodist != last[rid].to_methodist
    ]


# --- lifecycle -----------------------------------------------------------------------------

OPEN = ("drafted", "agreed", "active")
"""Statuses in which a route holds its methodist's seat and can change."""


@dataclass(eq=False)
class Route:
    """A route (ИОМ) as the service keeps it: its steps (plain dicts, as stored), its
    methodist, approvals and history. Mutable: a transaction changes it in memory and
    writes what changed once (``iomflow.routes.ledger``)."""

    route_id: str
    diagnosis_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    status: str
    steps: list[dict[str, Any]]
    total_hours: int
    created_at: datetime
    methodist_id: str | None = None
    assigned_at: datetime | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    hours_by_period: dict[str, int] = field(default_factory=dict)
    rules_version: str | None = None
    supersedes: str | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    status_reason: str | None = None
    agreed_at: datetime | None = None
    activated_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """It holds (or waits for) a methodist's seat and can still change."""
        return self.status in OPEN

    @property
    def waiting(self) -> bool:
        """Open with no methodist: in the unassigned queue."""
        return self.methodist_id is None and self.status in OPEN

    def competencies(self) -> set[str]:
        return {step["competency"] for step in self.steps}


def seats_of(step: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, resource id) of the seats a step holds: its tutor, mentor and internship site
    (a removed step holds none)."""
    if step.get("status") == "removed":
        return []
    return [(kind, step[key]) for kind, key in STEP_SEATS if step.get(key)]


STEP_SEATS = (("tutor", "tutor_id"), ("mentor", "mentor_id"), ("site", "site_id"))
"""Resources with a capacity a step may name, by the step field that names them."""


def missing_approvals(approvals: Iterable[Mapping[str, Any]], rules: Rules) -> list[str]:
    """Roles whose approval the route still needs."""
    have = {a["role"] for a in approvals}
    return [role for role in rules.approvals if role not in have]


def starts_now(starts_on: date | None, today: date) -> bool:
    """An agreed route becomes active on its start date."""
    return starts_on is None or starts_on <= today


def completion(
    steps: Sequence[Mapping[str, Any]], ends_on: date | None, today: date, rules: Rules
) -> Literal["all_steps", "end_date"] | None:
    """Whether an active route completes now, and why (None: not yet).

    All steps done completes it; by policy, so does its end date passing (plus grace).
    """
    live = [s for s in steps if s.get("status") != "removed"]
    if live and all(s.get("status") == "done" for s in live):
        return "all_steps"
    if (
        rules.completion.at_end_date
        and ends_on is not None
        and today > ends_on + timedelta(days=rules.completion.grace_days)
    ):
        return "end_date"
    return None


def step_for_course(
    steps: Sequence[Mapping[str, Any]], program_id: str
) -> Mapping[str, Any] | None:
    """The route's open program step for a course, the earliest planned first."""
    candidates = [
        s
        for s in steps
        if s["kind"] == "program"
        and s.get("program_id") == program_id
        and s.get("status") not in ("done", "removed")
    ]
    return min(candidates, key=lambda s: str(s.get("starts_on") or ""), default=None)


def step_for_internship(
    steps: Sequence[Mapping[str, Any]], site_id: str
) -> Mapping[str, Any] | None:
    """The route's open internship step at a site, the earliest planned first."""
    candidates = [
        s
        for s in steps
        if s["kind"] == "internship"
        and s.get("site_id") == site_id
        and s.get("status") not in ("done", "removed")
    ]
    return min(candidates, key=lambda s: str(s.get("starts_on") or ""), default=None)


def training_id(teacher_id: str, kind: str, ref: str) -> str:
    """The name of a training, not of the event that reports it
    (``routes.training.completed``): a course (``kind`` course) is the teacher's program, an
    internship the teacher's site, so a step's completion and the provider's event of the
    same course name one training."""
    return f"{teacher_id}:{'program' if kind == 'course' else 'site'}:{ref}"


# --- effectiveness -------------------------------------------------------------------------

GOOD = ("closed", "improved")


@dataclass(frozen=True)
class Attribution:
    step_id: str
    kind: str
    competency: str
    change: str
    program_id: str | None
    site_id: str | None
    mentor_id: str | None
    community_id: str | None


def attribute(
    steps: Sequence[Mapping[str, Any]], changes: Iterable[CompetencyChange]
) -> list[Attribution]:
    """What a re-diagnosis says of a route's steps: each done step gets the change of its
    competency (closed / improved / unchanged / worse). Steps not done are not credited or
    blamed; a competency the new diagnosis does not mention is not attributed."""
    by_code = {c.code: c.change for c in changes}
    return [
        Attribution(
            step_id=s["step_id"],
            kind=s["kind"],
            competency=s["competency"],
            change=by_code[s["competency"]],
            program_id=s.get("program_id") if s["kind"] == "program" else None,
            site_id=s.get("site_id"),
            mentor_id=s.get("mentor_id"),
            community_id=s.get("community_id"),
        )
        for s in steps
        if s.get("status") == "done"
        and s["competency"] in by_code
        and by_code[s["competency"]] != "new"
    ]


def effectiveness(changes: Iterable[str]) -> dict[str, Any]:
    """Counts of outcomes and the share of closed or improved deficits among them."""
    counts = Counter(changes)
    evaluated = sum(counts.values())
    good = sum(counts[c] for c in GOOD)
    return {
        "evaluated": evaluated,
        **{c: counts[c] for c in ("closed", "improved", "unchanged", "worse")},
        "effective_share": round(100 * good / evaluated, 1) if evaluated else None,
    }
