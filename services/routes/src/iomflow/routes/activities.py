"""Activities and their attendance, recorded by methodists and municipal services (over
HTTP, one by one or a spreadsheet of them) on a ``Ledger``.

A batch of activities costs a fixed number of reads, however many attendees they have:
the activities stored under their ids (locked), their attendance so far, the teachers,
the school teams and communities they name, and the attendees' open routes — one read
each. Then, in order, each activity is decided in memory: stored or its attendance
grown, each new attendee's matching route step completed through the route
(``lifecycle.complete_step``, ``completed_by`` attendance), and its events staged:
``routes.activity.held`` (again, with the new count, when the attendance grows) and one
``routes.activity.attended`` per new attendee. Recording an attendance again is the same
fact: no row, no event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from iomflow.routes import lifecycle, repository
from iomflow.routes.domain import activities as rules
from iomflow.routes.ledger import Ledger, routes_event
from iomflow.shared.contracts import ActivityAttended, ActivityHeld
from iomflow.shared.errors import Refused


@dataclass(frozen=True)
class Entry:
    """An activity as recorded (its ``attendees`` count is ignored: the list counts) and the
    teachers recorded as attending it."""

    activity: ActivityHeld
    teachers: Sequence[str] = ()


@dataclass(frozen=True)
class Problem:
    """Why an entry cannot be recorded: its code and status over HTTP, the field, the
    reason in Russian."""

    code: str
    status: int
    field: str
    reason: str


@dataclass(frozen=True)
class CompletedStep:
    route_id: str
    step_id: str
    teacher_id: str


@dataclass
class Recorded:
    """What recording an entry did."""

    activity: ActivityHeld  # as stored now, with its attendance count
    created: bool
    added: list[str] = field(default_factory=list)  # the attendees new to it
    completed: list[CompletedStep] = field(default_factory=list)  # steps this recording did


@dataclass
class _Known:
    stored: dict[str, Any]
    attended: dict[str, set[str]]
    teams: set[str]
    communities: set[str]


async def _load(ledger: Ledger, entries: Sequence[Entry]) -> _Known:
    session = ledger.session
    ids = [e.activity.activity_id for e in entries]
    stored = await repository.find_activities(session, ids, lock=True)
    attended: dict[str, set[str]] = {i: set() for i in ids}
    for row in await repository.find_attendances(session, stored):
        attended[row.activity_id].add(row.teacher_id)
    await ledger.load_teachers({t for e in entries for t in e.teachers})
    teams = await repository.find_known(
        session, repository.school_teams, "team_id", [e.activity.team_id for e in entries]
    )
    communities = await repository.find_known(
        session,
        repository.communities,
        "community_id",
        [e.activity.community_id for e in entries],
    )
    return _Known(stored, attended, teams, communities)


def _problems(entry: Entry, known: _Known, ledger: Ledger) -> list[Problem]:
    activity = entry.activity
    found = [
        Problem("activity_incomplete", 422, name, reason)
        for name, reason in rules.problems(activity)
    ]
    stored = known.stored.get(activity.activity_id)
    if stored is not None:
        differ = rules.differences(stored._mapping, activity)
        if differ:
            found.append(
                Problem(
                    "activity_conflict",
                    409,
                    "activity_id",
                    f"мероприятие «{activity.activity_id}» уже записано с другими данными "
                    f"({rules.differences_said(differ)}): новых участников добавляют с теми "
                    "же данными, другое мероприятие записывают под другим кодом",
                )
            )
    if activity.team_id and activity.team_id not in known.teams:
        found.append(
            Problem(
                "unknown_team",
                422,
                "team_id",
                f"школьной команды «{activity.team_id}» нет в реестре команд",
            )
        )
    if activity.community_id and activity.community_id not in known.communities:
        found.append(
            Problem(
                "unknown_community",
                422,
                "community_id",
                f"сообщества «{activity.community_id}» нет в реестре сообществ",
            )
        )
    unknown = sorted({t for t in entry.teachers if t not in ledger.teachers})
    if unknown:
        shown = ", ".join(f"«{t}»" for t in unknown[:10])
        more = f" и ещё {len(unknown) - 10}" if len(unknown) > 10 else ""
        found.append(
            Problem(
                "unknown_teacher",
                422,
                "attendees",
                f"педагогов {shown}{more} нет в реестре педагогов: проверьте коды участников"
                if len(unknown) > 1
                else f"педагога {shown} нет в реестре педагогов: проверьте код участника",
            )
        )
    return found


async def check(ledger: Ledger, entries: Sequence[Entry]) -> list[list[Problem]]:
    """Each entry's problems (empty: it can be recorded), after the batch's reads."""
    known = await _load(ledger, entries)
    return [_problems(e, known, ledger) for e in entries]


async def record(ledger: Ledger, entries: Sequence[Entry], by: str) -> list[Recorded]:
    """Record the entries (each a distinct activity) in this transaction; ``Refused`` with
    the first entry's problems, before anything is written, when any cannot be. ``by``:
    who recorded them, for the routes' history."""
    known = await _load(ledger, entries)
    for entry in entries:
        found = _problems(entry, known, ledger)
        if found:
            first = found[0]
            said = "; ".join(p.reason for p in found if p.code == first.code)
            raise Refused(
                first.code,
                said[:1].upper() + said[1:] + ".",
                first.status,
                errors=[{"loc": ["body", p.field], "msg": p.reason, "type": p.code} for p in found],
            )
    fresh = {
        t for e in entries for t in e.teachers if t not in known.attended[e.activity.activity_id]
    }
    await ledger.load_routes(open_of=fresh)  # every new attendee's open routes: one read
    now = ledger.now()
    added_rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    attendances: list[dict[str, Any]] = []
    out: list[Recorded] = []
    for entry in entries:
        activity = entry.activity
        activity_id = activity.activity_id
        stored = known.stored.get(activity_id)
        seen = known.attended[activity_id]
        added = [t for t in dict.fromkeys(entry.teachers) if t not in seen]
        seen.update(added)
        total = len(seen)
        done = Recorded(activity.model_copy(update={"attendees": total}), stored is None, added)
        if stored is None:
            added_rows.append(
                {**done.activity.model_dump(mode="python"), "recorded_at": now}
                | {"themes": [str(t) for t in activity.themes]}
                | {"project": activity.project.value if activity.project else None}
            )
        elif added:
            counts[activity_id] = total
        if stored is None or added:
            ledger.emit(routes_event("routes.activity.held", done.activity, activity_id), None)
        for teacher_id in added:
            teacher = ledger.teachers[teacher_id]
            route_id = step_id = None
            match = rules.step_for(ledger.open_of(teacher_id, *rules.ROUTE_OPEN), activity)
            if match is not None:
                route, step_id = match
                route_id = route.route_id
                await lifecycle.complete_step(
                    ledger,
                    route,
                    step_id,
                    by,
                    activity.held_on,
                    "attendance",
                    activity_id=activity_id,
                )
                done.completed.append(CompletedStep(route_id, step_id, teacher_id))
            key = rules.attendance_id(activity_id, teacher_id)
            attended = ActivityAttended(
                attendance_id=key,
                activity_id=activity_id,
                teacher_id=teacher_id,
                organization_id=teacher.organization_id,
                municipality_id=teacher.municipality_id,
                kind=activity.kind,
                level=activity.level,
                held_on=activity.held_on,
                competencies=activity.competencies,
                themes=activity.themes,
                team_id=activity.team_id,
                community_id=activity.community_id,
                route_id=route_id,
                step_id=step_id,
            )
            ledger.emit(routes_event("routes.activity.attended", attended, teacher_id), None)
            attendances.append(
                {
                    "attendance_id": key,
                    "activity_id": activity_id,
                    "teacher_id": teacher_id,
                    "organization_id": teacher.organization_id,
                    "municipality_id": teacher.municipality_id,
                    "route_id": route_id,
                    "step_id": step_id,
                    "recorded_at": now,
                }
            )
        out.append(done)
    session = ledger.session
    await repository.add_activities(session, added_rows)
    await repository.save_activity_counts(session, counts)
    await repository.add_attendances(session, attendances)
    return out


def activity_of(row: Any) -> ActivityHeld:
    """A stored activity as its contract says it."""
    values = {c: getattr(row, c) for c in repository.ACTIVITY_COLUMNS if c != "recorded_at"}
    return ActivityHeld.model_validate(values)
