"""What one transaction does to routes and seats: decided in memory, written at the end.

A handler (or an HTTP command) opens a ``Ledger`` over its unit of work and loads what its
batch needs in set-based reads (``load_teachers``, ``load_routes``, ``load_offer``); then
it decides event by event in memory: the route aggregate's methods (``domain.Route``)
decide and return their facts, and ``apply`` books them — the fields the route changed,
the seats it took or freed, the events to stage. Every decision sees the earlier ones of
the same transaction: the loads they took, the routes they drafted or closed. Nothing is
read back after it is written. ``write`` saves it all in multi-row
statements: the routes changed (executemany), the routes added (one insert), attributions
and course rows, and, per resource table, one conditional statement that adds the seats
only where they stay within capacity; then it stages the events.

Seats across replicas: loads are read without a lock, and the seat statement checks the
capacity on each row as it locks it. If another replica took the room meanwhile the
statement comes short and ``SeatTaken`` is raised: the batch is rolled back and redone
entry by entry, each entry reading the loads afresh. No capacity is ever exceeded.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from iomflow.routes import domain, repository
from iomflow.routes.domain import (
    Catalogue,
    Fact,
    MethodistView,
    Route,
    RouteEvent,
    SeatsChanged,
    TeacherView,
)
from iomflow.shared.contracts import (
    EVENT_TYPES,
    Contract,
    Event,
    MethodistAssigned,
    MethodistUnavailable,
    Streams,
    new_event,
)
from iomflow.shared.unit import Deps

if TYPE_CHECKING:
    from iomflow.routes.service import Routes


class SeatTaken(Exception):
    """Retryable: a resource filled up between reading its load and taking the seat."""


def routes_event(type_: str, payload: Any, teacher_id: str) -> Event[Any]:
    return new_event(type_, payload, source="routes", subject=teacher_id)


TYPE_OF: dict[type[Contract], str] = {
    model: type_ for type_, model in EVENT_TYPES.items() if type_.startswith("routes.")
}
"""The event type of each routes contract."""


def event_of(payload: RouteEvent) -> Event[Any]:
    """A route's event in its envelope: a fresh id and time, the teacher as its subject."""
    return routes_event(TYPE_OF[type(payload)], payload, payload.teacher_id)


def unavailable(route: Route) -> Event[Any]:
    return routes_event(
        "routes.methodist.unavailable",
        MethodistUnavailable(
            route_id=route.route_id,
            teacher_id=route.teacher_id,
            municipality_id=route.municipality_id,
            reason="нет свободного методиста, обслуживающего муниципалитет педагога: "
            "маршрут ждёт в очереди",
        ),
        route.teacher_id,
    )


@dataclass
class _Seated:
    """A ``routes.methodist.assigned`` whose load is final once the seats are written (a
    replica that took seats of the methodist meanwhile moves it up)."""

    route: Route
    methodist_id: str
    load: int
    capacity: int
    reason: str
    type: str = "routes.methodist.assigned"

    def event(self, offset: int) -> Event[Any]:
        return routes_event(
            self.type,
            MethodistAssigned(
                route_id=self.route.route_id,
                teacher_id=self.route.teacher_id,
                methodist_id=self.methodist_id,
                municipality_id=self.route.municipality_id,
                load=self.load + offset,
                capacity=self.capacity,
                reason=self.reason,
            ),
            self.route.teacher_id,
        )


Out = tuple[Event[Any] | _Seated, Event[Any] | None]  # an event to stage, and its cause

RANK = {
    "routes.route.cancelled": 0,
    "routes.route.drafted": 1,
    "routes.methodist.assigned": 2,
    "routes.methodist.unavailable": 3,
}
"""The order of a drafting batch's events, type by type."""


def _route_of(item: Event[Any] | _Seated) -> tuple[str, str | None]:
    if isinstance(item, _Seated):
        return item.route.route_id, None
    return item.payload.route_id, getattr(item.payload, "supersedes", None)


def grouped(out: Sequence[Out]) -> list[Out]:
    """The events of a batch grouped by type (``RANK``), each route's in its causal order.

    A consumer applies a run of one type in one call, so drafted, assigned, drafted,
    assigned… would cost it a call per event. The events are cut into segments, each
    output type by type: a new segment starts where grouping would reorder a route's own
    events (its unavailable, then its assigned once room appeared) or put a route's
    events after the draft that supersedes it. Distinct teachers make one segment.
    """
    result: list[Out] = []
    segment: list[list[Out]] = [[] for _ in RANK]
    last: dict[str, int] = {}  # route -> the rank of its last event in the segment

    def cut() -> None:
        for group in segment:
            result.extend(group)
            group.clear()
        last.clear()

    for item in out:
        rank = RANK.get(item[0].type)
        if rank is None:  # not a drafting event: it keeps its place
            cut()
            result.append(item)
            continue
        route_id, supersedes = _route_of(item[0])
        if last.get(route_id, -1) >= rank or (supersedes is not None and supersedes in last):
            cut()
        segment[rank].append(item)
        last[route_id] = rank
    cut()
    return result


def _room(methodists: Iterable[MethodistView]) -> set[str] | None:
    """The municipalities some methodist with room serves; None: everywhere."""
    served: set[str] = set()
    for m in methodists:
        if m.load < m.capacity:
            if not m.municipalities:
                return None
            served.update(m.municipalities)
    return served


class Ledger:
    """The routes and seats one transaction changes, in memory; ``write`` saves them."""

    def __init__(self, deps: Deps[Routes], *, grouped: bool = False) -> None:
        self.deps = deps
        self.session = deps.session
        self.ctx = deps.ctx
        self.grouped = grouped  # stage the events by type (``grouped``)
        self.known: dict[str, Route] = {}  # every route read or drafted: the one copy
        self.teachers: dict[str, TeacherView] = {}
        self.completed: dict[str, set[str]] = {}  # programs each teacher completed
        self.pairs: dict[str, list[domain.PairView]] = {}  # mentoring pairs of each mentee
        self._by_teacher: defaultdict[str, list[Route]] = defaultdict(list)
        self._by_diagnosis: defaultdict[str, list[Route]] = defaultdict(list)
        self._looked_up: set[str] = set()  # teachers read (found or not)
        self._covered: set[str] = set()  # teachers whose open routes are all known
        self._diagnoses: set[str] = set()  # diagnoses whose routes are all known
        self._queued = False  # the unassigned queue is known
        self._new: dict[str, Route] = {}
        self._dirty: dict[str, set[str]] = {}
        self._seats: dict[str, Counter[str]] = {kind: Counter() for kind in repository.SEATS}
        self._took: dict[str, set[str]] = {kind: set() for kind in repository.SEATS}
        self._methodists: dict[str, MethodistView] | None = None
        self._resources: dict[str, dict[str, Any]] = {}  # tutor / site / mentor views
        self._mentors_in: dict[str, list[str]] = {}  # municipality -> its mentors
        self._offer: repository.Offer | None = None
        self._out: list[Out] = []
        self._attributions: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._courses: dict[str, dict[str, Any]] = {}
        self._stamp: datetime | None = None

    def now(self) -> datetime:
        return self.deps.now()

    def created_at(self) -> datetime:
        """Now, and later than any route this ledger drafted: routes drafted in one batch
        keep their order (the queue, and "the newest route of a diagnosis", go by it)."""
        now = self.now()
        if self._stamp is not None and now <= self._stamp:
            now = self._stamp + timedelta(microseconds=1)
        self._stamp = now
        return now

    # --- reading, once per transaction -------------------------------------------------

    def adopt(self, routes: Iterable[Route]) -> list[Route]:
        """Routes read from the database, as this ledger knows them: a route it already
        holds keeps its copy (with this transaction's changes)."""
        out = []
        for route in routes:
            held = self.known.get(route.route_id)
            if held is None:
                held = self.known[route.route_id] = route
                self._by_teacher[route.teacher_id].append(route)
                self._by_diagnosis[route.diagnosis_id].append(route)
            out.append(held)
        return out

    async def load_teachers(self, ids: Iterable[str], lock: str | None = None) -> None:
        """The teachers' views (``lock``: "share" or "update" locks their rows)."""
        missing = set(ids) - self._looked_up
        if missing:
            self.teachers.update(await repository.find_teachers(self.session, missing, lock))
            self._looked_up |= missing

    async def load_routes(
        self, diagnosis_ids: Iterable[str] = (), open_of: Iterable[str] = ()
    ) -> None:
        """In one read: the routes of these diagnoses and the open routes of these teachers."""
        diagnoses = set(diagnosis_ids) - self._diagnoses
        teachers = set(open_of) - self._covered
        if diagnoses or teachers:
            self.adopt(await repository.find_routes(self.session, diagnoses, teachers))
            self._diagnoses |= diagnoses
            self._covered |= teachers

    async def load_completed(self, teacher_ids: Iterable[str]) -> None:
        missing = set(teacher_ids) - self.completed.keys()
        if missing:
            found = await repository.find_completed_programs(self.session, missing)
            self.completed.update({t: found.get(t, set()) for t in missing})

    async def load_pairs(self, teacher_ids: Iterable[str]) -> None:
        """The mentoring pairs these teachers are the mentees of, in one read."""
        missing = set(teacher_ids) - self.pairs.keys()
        if missing:
            found = await repository.find_mentee_pairs(self.session, missing)
            self.pairs.update({t: found.get(t, []) for t in missing})

    async def route(self, route_id: str, lock: bool = False) -> Route | None:
        held = self.known.get(route_id)
        if held is not None:
            return held
        found = await repository.get_route(self.session, route_id, lock=lock)
        return None if found is None else self.adopt([found])[0]

    def for_diagnosis(self, diagnosis_id: str) -> Route | None:
        """The newest route drafted for a diagnosis (a revision may have redrafted it)."""
        assert diagnosis_id in self._diagnoses, "load_routes(diagnosis_ids=…) first"
        return max(self._by_diagnosis.get(diagnosis_id, ()), key=_created, default=None)

    def open_of(self, teacher_id: str, *statuses: str) -> list[Route]:
        """The teacher's open routes (or those in ``statuses``), oldest first."""
        assert teacher_id in self._covered, "load_routes(open_of=…) first"
        wanted = statuses or domain.OPEN
        mine = [r for r in self._by_teacher.get(teacher_id, ()) if r.status in wanted]
        return sorted(mine, key=_created)

    async def methodists(self) -> dict[str, MethodistView]:
        """Every methodist with their load now, as this transaction's seats leave it."""
        if self._methodists is None:
            found = await self.ctx.methodists(self.session)
            self._methodists = {m.methodist_id: m for m in found}
            self._pending("methodist", self._methodists)
        return self._methodists

    async def load_offer(self, municipality_ids: Iterable[str]) -> None:
        """What drafts choose from, with loads: methodists, the kept offer, internship
        sites, tutors and the mentors of these municipalities (young teachers') — each
        read once."""
        await self.methodists()
        if self._offer is None:
            self._offer = await self.ctx.offer(self.session)
        if "site" not in self._resources:
            found = await repository.get_all_sites(self.session)
            self._resources["site"] = {s.site_id: s for s in found}
            self._pending("site", self._resources["site"])
        if "tutor" not in self._resources:
            found_tutors = await repository.get_all_tutors(self.session)
            self._resources["tutor"] = {t.tutor_id: t for t in found_tutors}
            self._pending("tutor", self._resources["tutor"])
        mentors = self._resources.setdefault("mentor", {})
        missing = set(municipality_ids) - self._mentors_in.keys()
        if missing:
            fresh = {}
            for m in await repository.find_mentors(self.session, missing):
                fresh[m.mentor_id] = m
            self._pending("mentor", fresh)
            mentors.update(fresh)
            for municipality_id in missing:
                self._mentors_in[municipality_id] = []
            for m in fresh.values():
                self._mentors_in[m.municipality_id].append(m.mentor_id)

    def catalogue(self, teacher: TeacherView) -> Catalogue:
        """What a route for this teacher may draw on now: the offer, and the sites, mentors
        (of a young teacher's municipality) and tutors with room."""
        assert self._offer is not None, "load_offer first"
        programs, index = self._offer.catalogue_programs(teacher.audience)
        sites = self._resources["site"]
        tutors = self._resources["tutor"]
        mentors = self._resources["mentor"]
        return Catalogue(
            programs=programs,
            sites=[s for s in sites.values() if s.load < s.capacity],
            mentors=[
                mentors[i]
                for i in (self._mentors_in[teacher.municipality_id] if teacher.young else ())
                if mentors[i].load < mentors[i].capacity
            ],
            communities=self._offer.communities,
            tutors=[t for t in tutors.values() if t.load < t.capacity],
            by_competency=index,
            rank_cache=self._offer.ranked,
            practices=self._offer.practices,
            practice_index=self._offer.practice_index,
        )

    async def _load_queue(self) -> None:
        if self._queued:
            return
        self._queued = True
        waiting = self.adopt(await repository.find_unassigned(self.session))
        await self.load_teachers(r.teacher_id for r in waiting)

    def _views(self, kind: str) -> dict[str, Any] | None:
        return self._methodists if kind == "methodist" else self._resources.get(kind)

    def _pending(self, kind: str, views: dict[str, Any]) -> None:
        """Views read after this transaction moved seats: the moves count too."""
        for resource_id, n in self._seats[kind].items():
            view = views.get(resource_id)
            if view is not None and n:
                views[resource_id] = replace(view, load=max(0, view.load + n))

    def forget_methodists(self) -> None:
        """Loads were set in the database (a rebalance): read them again when needed."""
        self._methodists = None

    # --- deciding ----------------------------------------------------------------------

    def add(
        self, route: Route, facts: Sequence[Fact] = (), cause: Event[Any] | None = None
    ) -> None:
        """A route drafted in this transaction (``Route.draft``), and what its draft caused."""
        self.adopt([route])
        self._new[route.route_id] = route
        self._book(route, facts, cause)

    async def apply(
        self, route: Route, facts: Sequence[Fact], cause: Event[Any] | None = None
    ) -> None:
        """What a method of the route decided: the fields it changed kept for ``write``,
        its seats booked, its events staged (``cause``: the event whose trace they
        continue); a route that gave up its methodist's seat lets the waiting ones fill
        it."""
        if self._book(route, facts, cause):
            await self.drain(cause)

    def _book(self, route: Route, facts: Sequence[Fact], cause: Event[Any] | None) -> bool:
        changed = route.changes()
        if changed and route.route_id not in self._new:
            self._dirty.setdefault(route.route_id, set()).update(changed)
        vacated = False
        for fact in facts:
            if isinstance(fact, SeatsChanged):
                for kind, resource_id in fact.taken:
                    self.take(kind, resource_id)
                for kind, resource_id in fact.freed:
                    self.free(kind, resource_id)
                vacated = vacated or fact.vacated
            else:
                self.emit(event_of(fact), cause)
        return vacated

    def emit(self, event: Event[Any], cause: Event[Any] | None) -> None:
        """An event to stage at ``write``; ``cause`` is the event whose trace it continues."""
        self._out.append((event, cause))

    def take(self, kind: str, resource_id: str) -> None:
        self._took[kind].add(resource_id)  # its capacity is checked at the write
        self._move(kind, resource_id, 1)

    def free(self, kind: str, resource_id: str | None) -> None:
        if resource_id is not None:
            self._move(kind, resource_id, -1)

    def _move(self, kind: str, resource_id: str, n: int) -> None:
        self._seats[kind][resource_id] += n
        views = self._views(kind)
        if views is not None and resource_id in views:
            view = views[resource_id]
            views[resource_id] = replace(view, load=max(0, view.load + n))

    async def assign(self, route: Route, teacher: TeacherView, cause: Event[Any] | None) -> bool:
        """Seat the route with the best eligible methodist; False when nobody has room."""
        methodists = await self.methodists()
        codes = route.competencies()
        best = domain.best_methodist(teacher, codes, methodists.values())
        if best is None:
            return False
        reason = domain.methodist_reason(best, teacher, codes)
        await self.apply(route, route.assign(best.methodist_id, reason, at=self.now()), cause)
        self._out.append(
            (_Seated(route, best.methodist_id, best.load + 1, best.capacity, reason), cause)
        )
        return True

    async def drain(self, cause: Event[Any] | None) -> int:
        """Seat waiting routes in the room there is now, oldest first; how many."""
        methodists = await self.methodists()
        room = _room(methodists.values())
        if room is not None and not room:
            return 0  # nobody has room: a long queue is not walked for nothing
        await self._load_queue()
        seated = 0
        for route in sorted((r for r in self.known.values() if r.waiting), key=_created):
            teacher = self.teachers.get(route.teacher_id)
            if teacher is None or (room is not None and teacher.municipality_id not in room):
                continue
            if await self.assign(route, teacher, cause):
                seated += 1
                room = _room(methodists.values())
                if room is not None and not room:
                    break  # the room is gone
        return seated

    async def close(
        self,
        route: Route,
        status: Literal["completed", "cancelled", "superseded"],
        reason: str,
        cause: Event[Any] | None,
        by: str = "routes",
    ) -> None:
        """Move an open route to a final status and free its seats; waiting routes may
        fill its methodist's seat."""
        await self.apply(route, route.close(status, reason, at=self.now(), by=by), cause)

    async def cancel(
        self, route: Route, reason: str, code: str, cause: Event[Any] | None, by: str = "routes"
    ) -> None:
        """``Route.cancel``, applied: ``routes.route.cancelled``, the seats freed."""
        await self.apply(route, route.cancel(reason, code, at=self.now(), by=by), cause)

    def attribute(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._attributions[(row["diagnosis_id"], row["route_id"], row["step_id"])] = row

    def course(self, row: dict[str, Any]) -> None:
        self._courses[row["event_id"]] = row

    # --- writing -----------------------------------------------------------------------

    async def write(self) -> None:
        """Save what was decided, in multi-row statements, and stage its events. The
        routes go first (a superseded draft leaves before its successor arrives, for the
        one-draft-per-teacher index), the seats last (their rows stay locked until the
        commit: the shorter, the better for other replicas)."""
        session = self.session
        # One statement for every changed route: the columns any of them changed (the
        # others' values are rewritten as they are).
        columns = set().union(*self._dirty.values()) if self._dirty else set()
        await repository.save_routes(session, [self.known[i] for i in self._dirty], columns)
        await repository.add_routes(session, list(self._new.values()))
        await repository.save_attributions(session, list(self._attributions.values()))
        await repository.save_courses(session, list(self._courses.values()))
        self._dirty, self._new, self._attributions, self._courses = {}, {}, {}, {}
        offsets = await self._write_seats()
        out, self._out = self._out, []
        for item, cause in grouped(out) if self.grouped else out:
            event = (
                item.event(offsets.get(item.methodist_id, 0)) if isinstance(item, _Seated) else item
            )
            self.deps.stage(Streams.ROUTES, event, cause=cause)

    async def _write_seats(self) -> dict[str, int]:
        """Per resource table one conditional statement; the methodists' offsets (how far
        other replicas moved their loads since they were read)."""
        offsets: dict[str, int] = {}
        for kind in repository.SEATS:
            deltas = {i: n for i, n in self._seats[kind].items() if n}
            took, self._took[kind] = self._took[kind], set()
            self._seats[kind] = Counter()
            if not deltas and not took:
                continue
            loads = await repository.save_seats(self.session, kind, deltas, took)
            short = sorted(i for i in took if i not in loads)
            if short:
                raise SeatTaken(f"{kind} {', '.join(short)}: filled up meanwhile")
            views = self._views(kind)
            for resource_id, load in loads.items():
                if views is not None and resource_id in views:
                    if kind == "methodist":
                        offsets[resource_id] = load - views[resource_id].load
                    views[resource_id] = replace(views[resource_id], load=load)
        return offsets


def _created(route: Route) -> datetime:
    return route.created_at


@contextlib.asynccontextmanager
async def ledger_of(deps: Deps[Routes], *, grouped: bool = False) -> AsyncIterator[Ledger]:
    """A ledger over ``deps``, written when the block ends without an error."""
    ledger = Ledger(deps, grouped=grouped)
    yield ledger
    await ledger.write()
