"""Course and internship events from outside (providers, internship sites, the federal
portal): each completes the matching step of the teacher's open route, or is kept as the
teacher's history, or is held until the registries send what it names. Every course or
internship completed — in a route or not — is published once as
``routes.training.completed``, staged with the rest of the transaction: here for training
outside a route, by ``lifecycle.complete_step`` for a step it completes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iomflow.routes import domain, repository
from iomflow.routes.ledger import Ledger, event_of
from iomflow.routes.lifecycle import complete_step
from iomflow.shared.contracts import CourseEvent, Event, InternshipEvent


@dataclass(frozen=True)
class Course:
    """A course or internship event to take: as it arrived, or held earlier and tried
    again."""

    event_id: str
    source: str
    kind: str  # enrolled | completed (a CourseEvent) | internship (an InternshipEvent)
    course: CourseEvent | InternshipEvent
    received_at: datetime
    cause: Event[Any] | None


@dataclass(frozen=True)
class _Known:
    """What a batch of course events found in the read models, in one read each."""

    programs: dict[str, int]  # program id -> its hours
    by_number: dict[str, str]  # Federal-registry number -> program id
    sites: set[str]


async def courses_received(
    ledger: Ledger, events: Sequence[Event[CourseEvent]], kind: str
) -> list[str]:
    """Enrolments or completions from providers: each marks or completes the matching
    program step of the teacher's open route. A course or teacher not known yet is held
    (retried when the registries send them); a course matching no open step is kept as the
    teacher's history (a completed program is not offered again). The status each got."""
    now = ledger.now()
    return await take_courses(
        ledger, [Course(str(e.event_id), e.source, kind, e.payload, now, e) for e in events]
    )


async def internships_received(
    ledger: Ledger, events: Sequence[Event[InternshipEvent]]
) -> list[str]:
    """Internships completed, from the sites or the provider: each completes the teacher's
    open internship step at that site; a site or teacher the read models do not know yet is
    held, an internship matching no open step is kept as history. The status each got."""
    now = ledger.now()
    return await take_courses(
        ledger,
        [Course(str(e.event_id), e.source, "internship", e.payload, now, e) for e in events],
    )


async def take_courses(ledger: Ledger, items: Sequence[Course]) -> list[str]:
    """Course and internship events in order, after one read of the programs and sites
    they name, their teachers and the teachers' open routes."""
    courses = [i.course for i in items if isinstance(i.course, CourseEvent)]
    named = await repository.find_programs(
        ledger.session,
        [c.program_id for c in courses if c.program_id],
        [c.federal_number for c in courses if c.federal_number],
    )
    by_number: dict[str, str] = {}
    for p in named:
        if p.federal_number:
            by_number.setdefault(p.federal_number, p.program_id)
    sites = await repository.find_known_sites(
        ledger.session, [i.course.site_id for i in items if isinstance(i.course, InternshipEvent)]
    )
    known = _Known({p.program_id: p.hours for p in named}, by_number, sites)
    teacher_ids = {i.course.teacher_id for i in items}
    await ledger.load_teachers(teacher_ids)
    await ledger.load_routes(open_of=[t for t in teacher_ids if t in ledger.teachers])
    return [
        await (
            _take_internship(ledger, item, item.course, known)
            if isinstance(item.course, InternshipEvent)
            else _take_course(ledger, item, item.course, known)
        )
        for item in items
    ]


def _row(item: Course, held_for: str | None, **values: Any) -> dict[str, Any]:
    """The course_events row of an event (every column: the rows of a batch are written in
    one statement)."""
    event = item.course
    return {
        "event_id": item.event_id,
        "kind": item.kind,
        "teacher_id": event.teacher_id,
        "program_id": None,
        "federal_number": None,
        "site_id": None,
        "on": event.on,
        "passed": True,
        "hours": event.hours,
        "source": item.source,
        "external_id": event.external_id,
        "received_at": item.received_at,
        "status": "held" if held_for else "unmatched",
        "reason": held_for,
        "route_id": None,
        "step_id": None,
        **values,
    }


async def _take_course(ledger: Ledger, item: Course, course: CourseEvent, known: _Known) -> str:
    program_id = course.program_id
    if program_id is None and course.federal_number:
        program_id = known.by_number.get(course.federal_number)
    elif program_id is not None and program_id not in known.programs:
        program_id = None
    held_for = (
        "курс неизвестен реестру программ"
        if program_id is None
        else "педагог неизвестен реестру"
        if course.teacher_id not in ledger.teachers
        else None
    )
    row = _row(
        item,
        held_for,
        program_id=program_id or course.program_id,
        federal_number=course.federal_number,
        passed=course.passed,
    )
    if held_for is None:
        assert program_id is not None
        # Hours as the provider reported them, or else the program's in the registry.
        hours = course.hours or known.programs.get(program_id)
        matched = await _apply_course(ledger, item, course, program_id, hours)
        if matched is not None:
            row.update(status="applied", route_id=matched[0], step_id=matched[1])
        else:
            row["reason"] = "нет открытого шага маршрута с этой программой"
            if item.kind == "completed" and course.passed:
                _trained_outside(ledger, item, "course", program_id, hours)
    ledger.course(row)
    return str(row["status"])


async def _apply_course(
    ledger: Ledger, item: Course, course: CourseEvent, program_id: str, hours: int | None
) -> tuple[str, str] | None:
    for route in reversed(ledger.open_of(course.teacher_id)):
        step = domain.step_for_course(route.steps, program_id)
        if step is None:
            continue
        if item.kind == "enrolled":
            if step.get("status") == "enrolled":
                return route.route_id, step["step_id"]
            facts = route.enrol(step["step_id"], course.on, at=ledger.now())
            await ledger.apply(route, facts, item.cause)
        elif course.passed:
            await complete_step(
                ledger,
                route,
                step["step_id"],
                "course_event",
                course.on,
                "course_event",
                item.cause,
                source="course_event",
                hours=hours,
            )
        else:
            facts = route.note(
                "course_failed",
                "course_event",
                at=ledger.now(),
                step_id=step["step_id"],
                note="итоговая аттестация не пройдена — шаг остаётся открытым",
            )
            await ledger.apply(route, facts, item.cause)
        return route.route_id, step["step_id"]
    return None


async def _take_internship(
    ledger: Ledger, item: Course, internship: InternshipEvent, known: _Known
) -> str:
    held_for = (
        "площадка неизвестна реестру стажировочных площадок"
        if internship.site_id not in known.sites
        else "педагог неизвестен реестру"
        if internship.teacher_id not in ledger.teachers
        else None
    )
    row = _row(item, held_for, site_id=internship.site_id)
    if held_for is None:
        matched = None
        for route in reversed(ledger.open_of(internship.teacher_id)):
            step = domain.step_for_internship(route.steps, internship.site_id)
            if step is not None:
                await complete_step(
                    ledger,
                    route,
                    step["step_id"],
                    "internship_event",
                    internship.on,
                    "course_event",
                    item.cause,
                    source="internship_event",
                    hours=internship.hours,
                )
                matched = route.route_id, step["step_id"]
                break
        if matched is not None:
            row.update(status="applied", route_id=matched[0], step_id=matched[1])
        else:
            row["reason"] = "нет открытого шага-стажировки маршрута на этой площадке"
            _trained_outside(ledger, item, "internship", internship.site_id, internship.hours)
    ledger.course(row)
    return str(row["status"])


def _trained_outside(ledger: Ledger, item: Course, kind: str, ref: str, hours: int | None) -> None:
    """A training no route step is waiting for: published all the same, with the teacher's
    organisation and municipality as the registry has them now."""
    teacher = ledger.teachers[item.course.teacher_id]
    source = "internship_event" if kind == "internship" else "course_event"
    ledger.emit(
        event_of(
            domain.training(
                teacher.teacher_id,
                teacher.organization_id,
                teacher.municipality_id,
                kind,
                ref,
                item.course.on,
                hours,
                source,
            )
        ),
        item.cause,
    )


def _held_item(row: Any, cause: Event[Any] | None) -> Course:
    event: CourseEvent | InternshipEvent
    if row.kind == "internship":
        event = InternshipEvent(
            teacher_id=row.teacher_id,
            site_id=row.site_id,
            external_id=row.external_id,
            on=row.on,
            hours=row.hours,
        )
    else:
        event = CourseEvent(
            teacher_id=row.teacher_id,
            program_id=row.program_id,
            federal_number=row.federal_number,
            external_id=row.external_id,
            on=row.on,
            hours=row.hours,
            passed=row.passed,
        )
    return Course(row.event_id, row.source, row.kind, event, row.received_at, cause)


async def release_held_courses(
    ledger: Ledger,
    teacher_ids: Iterable[str] = (),
    programs: Iterable[tuple[str, str | None]] = (),
    cause: Event[Any] | None = None,
    site_ids: Iterable[str] = (),
) -> int:
    """Retry the held course and internship events of teachers, programs (id, federal
    number) or internship sites that have arrived, in one read; how many were applied or
    kept as history (and, if completed, published as training)."""
    rows = await repository.find_held_courses(ledger.session, teacher_ids, programs, site_ids)
    if not rows:
        return 0
    items = [_held_item(row, cause) for row in rows]
    return sum(status != "held" for status in await take_courses(ledger, items))
