"""What drafting sees of the read models: teachers, programs, sites, mentors, communities,
methodists, tutors, mentoring pairs and the bank of effective practices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from iomflow.shared.contracts import (
    RouteStep,
)

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
    themes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PracticeView:
    """An effective practice of the bank (included or replicated): drafting may cite it in
    a consultation step's reason."""

    practice_id: str
    title: str
    organization_id: str
    municipality_id: str
    competencies: tuple[str, ...]
    themes: tuple[str, ...] = ()
    year: int = 0


@dataclass(frozen=True)
class PairView:
    """A mentoring pair of a school's program (mentor ↔ mentee) as the read model keeps it."""

    pair_id: str
    mentor_id: str
    mentee_id: str
    organization_id: str
    kind: str
    starts_on: date
    ends_on: date | None = None
    focus: str = ""


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
    practices: Sequence[PracticeView] = ()
    by_competency: Mapping[str, Sequence[ProgramView]] | None = None
    rank_cache: dict[Any, Any] | None = None
    """Programs ranked per competency and teacher profile (``drafting.ranked_for``), kept
    as long as the offer they rank is."""

    practice_index: Mapping[tuple[str, str], Sequence[PracticeView]] | None = None
    """``practices`` by ("competency", code) and ("theme", theme) (``index_practices``)."""

    def programs_on(self, code: str) -> Sequence[ProgramView]:
        """The programs that may address ``code`` (all of them without an index)."""
        if self.by_competency is None:
            return self.programs
        return self.by_competency.get(code, ())

    def practices_on(self, key: str, by: str = "competency") -> Sequence[PracticeView]:
        """The bank's practices on a competency (or, ``by="theme"``, of a theme)."""
        if self.practice_index is not None:
            return self.practice_index.get((by, key), ())
        attr = "competencies" if by == "competency" else "themes"
        return [p for p in self.practices if key in getattr(p, attr)]


def for_audience(programs: Iterable[ProgramView], audience: str) -> list[ProgramView]:
    """The programs open to a teacher's audience (preschool, general, college), in order:
    a route never offers a program of another category of learners."""
    return [p for p in programs if audience in p.audiences]


def index_programs(programs: Iterable[ProgramView]) -> dict[str, list[ProgramView]]:
    """Programs by each competency they address, in their order."""
    index: dict[str, list[ProgramView]] = {}
    for program in programs:
        for code in dict.fromkeys(program.competencies):
            index.setdefault(code, []).append(program)
    return index


def index_practices(
    practices: Iterable[PracticeView],
) -> dict[tuple[str, str], list[PracticeView]]:
    """Practices by each competency and each theme they are on, in their order."""
    index: dict[tuple[str, str], list[PracticeView]] = {}
    for practice in practices:
        keys = [("competency", c) for c in practice.competencies]
        keys += [("theme", t) for t in practice.themes]
        for key in dict.fromkeys(keys):
            index.setdefault(key, []).append(practice)
    return index


@dataclass(frozen=True)
class Draft:
    steps: list[RouteStep]
    total_hours: int
    starts_on: date | None
    ends_on: date | None
    hours_by_period: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What drafting decided not to add, and why (kept in the route's history)."""
