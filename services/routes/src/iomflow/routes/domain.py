"""Route drafting and methodist choice: pure rules, no I/O.

The foundation's rules are deliberately simple (issue 5 deepens them): for each deficit,
most severe first, the best program that addresses the competency and fits the teacher's
audience — Federal-registry programs first, then the shorter — or, when the registries
hold none, methodist consultations. Every step says why it was chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iomflow.shared.contracts import CompetencyResult, Level, RouteStep

CONSULTATION_HOURS = 4


@dataclass(frozen=True)
class TeacherView:
    teacher_id: str
    organization_id: str
    municipality_id: str
    audience: str


@dataclass(frozen=True)
class ProgramView:
    program_id: str
    title: str
    hours: int
    federal_registry: bool
    competencies: tuple[str, ...]
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class MethodistView:
    methodist_id: str
    specialisations: tuple[str, ...]
    municipalities: tuple[str, ...]  # empty: the whole region
    capacity: int
    load: int


@dataclass(frozen=True)
class Draft:
    steps: list[RouteStep]
    total_hours: int


def draft_route(
    teacher: TeacherView, deficits: Sequence[CompetencyResult], programs: Sequence[ProgramView]
) -> Draft:
    """One step per deficit, most severe first, each with its reason."""
    steps: list[RouteStep] = []
    below = [d for d in deficits if d.level in (Level.CRITICAL, Level.DEFICIT)]
    ordered = sorted(below, key=lambda d: (d.level != Level.CRITICAL, d.score, d.code))
    for deficit in ordered:
        fitting = [
            p
            for p in programs
            if deficit.code in p.competencies and teacher.audience in p.audiences
        ]
        severity = "критический дефицит" if deficit.level == Level.CRITICAL else "дефицит"
        if fitting:
            best = min(fitting, key=lambda p: (not p.federal_registry, p.hours, p.program_id))
            why = [
                f"{severity} по компетенции {deficit.code} (балл {deficit.score:g})",
                f"программа адресует эту компетенцию и подходит для аудитории «{teacher.audience}»",
            ]
            if best.federal_registry:
                why.append("входит в Федеральный реестр ДПП")
            if len(fitting) > 1:
                why.append(f"выбрана из {len(fitting)} подходящих")
            steps.append(
                RouteStep(
                    competency=deficit.code,
                    kind="program",
                    program_id=best.program_id,
                    hours=best.hours,
                    reason="; ".join(why),
                )
            )
        else:
            steps.append(
                RouteStep(
                    competency=deficit.code,
                    kind="consultation",
                    hours=CONSULTATION_HOURS,
                    reason=f"{severity} по компетенции {deficit.code} (балл {deficit.score:g}); "
                    "в реестре нет подходящей программы — консультации методиста",
                )
            )
    return Draft(steps=steps, total_hours=sum(s.hours for s in steps))


def eligible_methodists(
    teacher: TeacherView, competencies: set[str], methodists: Sequence[MethodistView]
) -> list[MethodistView]:
    """Methodists with room who serve the teacher's municipality, best first.

    Best = a specialisation among the route's competencies, then the least loaded, then
    by id (stable). Never one at capacity.
    """
    codes = competencies
    serving = [
        m
        for m in methodists
        if m.load < m.capacity
        and (not m.municipalities or teacher.municipality_id in m.municipalities)
    ]
    return sorted(
        serving,
        key=lambda m: (not codes & set(m.specialisations), m.load, m.methodist_id),
    )
