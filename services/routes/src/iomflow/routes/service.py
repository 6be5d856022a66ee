"""Routes use cases on a batch: draft on diagnoses (the hot path), revised and cancelled
diagnoses, the registries changing, rebalance and effectiveness. Each works on a
``Ledger`` over the caller's transaction: set-based reads first, decisions in memory in
stream order, multi-row writes and staged events at the end; nothing is published before
the commit."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import domain, drafting, repository
from iomflow.routes.domain import Route
from iomflow.routes.ledger import Ledger, routes_event, unavailable
from iomflow.shared.contracts import (
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    MethodistAssigned,
    RecordRemoved,
)


class UnknownTeacher(Exception):
    """Retryable: the teacher's registry event has not reached the read model yet."""

    def __init__(self, teacher_id: str) -> None:
        super().__init__(f"teacher {teacher_id} is not in the registries' read model")


@dataclass
class Routes:
    """The service's context, built once: the rules, today's date, and the registries'
    offer kept for ``offer_ttl_s`` (programs and communities change rarely; this process
    forgets it at once when their events arrive, other replicas within the TTL)."""

    rules: domain.Rules
    today: Any = None  # a callable returning today's date; tests move the clock
    offer_ttl_s: float = 30.0
    _offer: tuple[float, repository.Offer] | None = field(default=None, repr=False)

    def day(self) -> date:
        return self.today() if self.today is not None else datetime.now(UTC).date()

    async def offer(self, session: AsyncSession) -> repository.Offer:
        kept = self._offer
        if kept is None or time.monotonic() - kept[0] > self.offer_ttl_s:
            kept = self._offer = (time.monotonic(), await repository.get_offer(session))
        return kept[1]

    def forget_offer(self) -> None:
        self._offer = None

    async def methodists(self, session: AsyncSession) -> list[domain.MethodistView]:
        """Every methodist with their load now (what they serve from the kept offer; a
        methodist the offer does not know yet makes it reload)."""
        loads = await repository.get_methodist_loads(session)
        known = (await self.offer(session)).methodists
        if any(row.methodist_id not in known for row in loads):
            self.forget_offer()
            known = (await self.offer(session)).methodists
        views = []
        for row in loads:
            base = known.get(row.methodist_id)
            if base is None:
                continue
            if (base.load, base.capacity) != (row.load, row.capacity):
                base = known[row.methodist_id] = replace(base, capacity=row.capacity, load=row.load)
            views.append(base)  # kept with its load: unchanged next time, not rebuilt
        return views


# --- drafting: the hot path ----------------------------------------------------------------


async def prepare(
    ledger: Ledger, diagnoses: Sequence[DiagnosisCompleted], previous: Sequence[str] = ()
) -> None:
    """Everything drafting for these diagnoses reads, one statement per table for the whole
    batch: the teachers (their rows held for share, so a removal waits for these drafts),
    the routes of these diagnoses and of ``previous`` ones and the teachers' open routes,
    the programs they completed, and the offer with loads."""
    teacher_ids = {d.teacher_id for d in diagnoses}
    await ledger.load_teachers(teacher_ids, lock="share")
    await ledger.load_routes(
        diagnosis_ids=[*(d.diagnosis_id for d in diagnoses), *previous], open_of=teacher_ids
    )
    await ledger.load_completed(teacher_ids)
    # Only a young teacher's route gets a mentor, from the teacher's municipality — unless
    # a mentoring pair of the school already mentors them.
    young = [t for t in ledger.teachers.values() if t.young]
    await ledger.load_pairs(t.teacher_id for t in young)
    await ledger.load_offer({t.municipality_id for t in young})


async def diagnoses_completed(ledger: Ledger, events: Sequence[Event[DiagnosisCompleted]]) -> None:
    """Draft the route of each completed diagnosis and seat a methodist, in stream order.

    A diagnosis that already has a route drafts nothing. A diagnosis with no deficits
    drafts nothing (and retires the teacher's older draft). The teacher's earlier draft is
    superseded; agreed and active routes stay until the new one is agreed. A re-diagnosis
    first credits (or not) the done steps of the previous diagnosis's route.
    """
    diagnoses = [e.payload for e in events]
    previous = [d.previous_diagnosis_id for d in diagnoses if d.previous_diagnosis_id and d.changes]
    await prepare(ledger, diagnoses, previous)
    for event in events:
        diagnosis = event.payload
        if ledger.for_diagnosis(diagnosis.diagnosis_id) is not None:
            continue
        attribute_effects(ledger, diagnosis)
        await draft(ledger, diagnosis, event)


async def draft(ledger: Ledger, diagnosis: DiagnosisCompleted, cause: Event[Any]) -> Route | None:
    """The route of one diagnosis, in memory (``prepare`` has read what it needs)."""
    ctx = ledger.ctx
    teacher = ledger.teachers.get(diagnosis.teacher_id)
    if teacher is None:
        raise UnknownTeacher(diagnosis.teacher_id)
    drafts = ledger.open_of(teacher.teacher_id, "drafted")
    if not drafting.ordered_deficits(diagnosis.deficits):
        for old in drafts:  # nothing left to work on: the draft goes, and says so
            await ledger.cancel(old, "новая диагностика не выявила дефицитов", "replaced", cause)
        return None
    previous = None
    for old in drafts:  # the new route's drafted event names the one it supersedes
        previous = old
        await ledger.close(old, "superseded", "заменён маршрутом по новой диагностике", cause)

    plan = drafting.draft_route(
        teacher,
        diagnosis.deficits,
        ledger.catalogue(teacher),
        ctx.rules,
        ctx.day(),
        ledger.completed.get(teacher.teacher_id, ()),
        burnout=diagnosis.burnout,
        pairs=ledger.pairs.get(teacher.teacher_id, ()),
    )
    route, facts = Route.draft(
        str(uuid.uuid4()),
        diagnosis,
        plan,
        rules_version=ctx.rules.version,
        supersedes=previous.route_id if previous is not None else None,
        at=ledger.created_at(),
    )
    ledger.add(route, facts, cause)
    if not await ledger.assign(route, teacher, cause):
        ledger.emit(unavailable(route), cause)
    return route


async def diagnoses_revised(ledger: Ledger, events: Sequence[Event[DiagnosisRevised]]) -> None:
    """Re-scored diagnoses: a draft is redrafted (like a newer diagnosis, it supersedes);
    an agreed or active route keeps its steps and records the revision for the methodist
    to review."""
    await prepare(ledger, [e.payload for e in events])
    for event in events:
        revised = event.payload
        route = ledger.for_diagnosis(revised.diagnosis_id)
        if route is None or route.status == "drafted":
            await draft(ledger, revised, event)
        elif route.status in ("agreed", "active"):
            facts = route.note(
                "diagnosis_revised",
                "routes",
                at=ledger.now(),
                revision=revised.revision,
                reason=revised.reason,
                deficits=[d.code for d in revised.deficits],
                note="маршрут согласован — методисту пересмотреть шаги",
            )
            await ledger.apply(route, facts, event)


async def diagnoses_cancelled(ledger: Ledger, events: Sequence[Event[DiagnosisCancelled]]) -> None:
    await ledger.load_routes(diagnosis_ids=[e.payload.diagnosis_id for e in events])
    for event in events:
        cancelled = event.payload
        route = ledger.for_diagnosis(cancelled.diagnosis_id)
        if route is not None and route.is_open:
            await ledger.cancel(
                route, f"диагностика отменена: {cancelled.reason}", "diagnosis_cancelled", event
            )


# --- rebalance -----------------------------------------------------------------------------


async def rebalance(
    ledger: Ledger, even: bool = True, by: str = "routes", cause: Event[Any] | None = None
) -> list[domain.Move]:
    """Bring every methodist within capacity (and, with ``even``, level the loads); the
    moves made. Loads are recounted from the routes, repairing any drift."""
    await ledger.write()  # what this transaction decided so far is what is counted
    session = ledger.session
    rows = await repository.find_open_routes(session)
    known = await repository.find_teachers(session, [r.teacher_id for r in rows])
    seats = [
        domain.Seat(
            r.route_id,
            r.methodist_id,
            known[r.teacher_id],
            frozenset(s["competency"] for s in r.steps),
        )
        for r in rows
        if r.teacher_id in known
    ]
    # Routes of a teacher the read model no longer has (removed meanwhile) stay where they
    # are, but still fill their methodist's seat.
    pinned = Counter(r.methodist_id for r in rows if r.teacher_id not in known and r.methodist_id)
    methodists = await repository.get_all_methodists(session)
    moves = domain.plan_rebalance(seats, methodists, even=even, pinned=pinned)
    loads = {m.methodist_id: pinned.get(m.methodist_id, 0) for m in methodists}
    final = {s.route_id: s.methodist_id for s in seats}
    final.update({m.route_id: m.to_methodist for m in moves})
    for methodist_id in final.values():
        if methodist_id in loads:
            loads[methodist_id] += 1
    await repository.save_loads(session, "methodist", loads)
    ledger.forget_methodists()
    capacity = {m.methodist_id: m.capacity for m in methodists}
    # open_routes reads only what the plan needs; the moved routes' history and
    # municipality come from their full rows, in one read.
    moved = {
        r.route_id: r
        for r in ledger.adopt(await repository.get_routes(session, [m.route_id for m in moves]))
    }
    for move in moves:
        route = moved[move.route_id]
        await ledger.apply(
            route, route.reassign(move.to_methodist, move.reason, by=by, at=ledger.now()), cause
        )
        if move.to_methodist is None:
            ledger.emit(unavailable(route), cause)
        else:
            ledger.emit(
                routes_event(
                    "routes.methodist.assigned",
                    MethodistAssigned(
                        route_id=move.route_id,
                        teacher_id=route.teacher_id,
                        methodist_id=move.to_methodist,
                        municipality_id=route.municipality_id,
                        load=loads[move.to_methodist],
                        capacity=capacity[move.to_methodist],
                        previous_methodist_id=move.from_methodist,
                        reason=move.reason,
                    ),
                    route.teacher_id,
                ),
                cause,
            )
    return moves


# --- the registries change -----------------------------------------------------------------


async def teachers_removed(ledger: Ledger, events: Sequence[Event[RecordRemoved]]) -> None:
    """Teachers leave the registry: their open routes are cancelled (the rows go after)."""
    ids = [e.payload.record_id for e in events]
    # The teacher rows are locked first: a replica drafting for them at the same moment
    # holds them for share, so its route is either seen here or never drafted.
    await ledger.load_teachers(ids, lock="update")
    await ledger.load_routes(open_of=ids)
    for event in events:
        for route in ledger.open_of(event.payload.record_id):
            if route.is_open:  # a drain meanwhile may have seated it, not closed it
                await ledger.cancel(route, "педагог выбыл из реестра", "teacher_removed", event)


async def methodists_changed(ledger: Ledger, ids: Sequence[str], cause: Event[Any]) -> None:
    """Methodists arrived or changed: one whose capacity dropped below its load gives
    routes up (the rebalance, which also seats the queue); otherwise the queue drains
    into the room there is."""
    methodists = await ledger.methodists()
    if any(methodists[i].load > methodists[i].capacity for i in ids if i in methodists):
        await rebalance(ledger, even=False, cause=cause)
    else:
        await ledger.drain(cause)


# --- effectiveness -------------------------------------------------------------------------


def attribute_effects(ledger: Ledger, diagnosis: DiagnosisCompleted) -> int:
    """A re-diagnosis credits (or not) the done steps of the route built on the previous
    diagnosis; how many steps it judged."""
    if not diagnosis.previous_diagnosis_id or not diagnosis.changes:
        return 0
    route = ledger.for_diagnosis(diagnosis.previous_diagnosis_id)
    if route is None:
        return 0
    found = domain.attribute(route.steps, diagnosis.changes)
    at = ledger.now()
    ledger.attribute(
        {
            "diagnosis_id": diagnosis.diagnosis_id,
            "route_id": route.route_id,
            "step_id": a.step_id,
            "kind": a.kind,
            "competency": a.competency,
            "change": a.change,
            "program_id": a.program_id,
            "site_id": a.site_id,
            "mentor_id": a.mentor_id,
            "community_id": a.community_id,
            "methodist_id": route.methodist_id,
            "at": at,
        }
        for a in found
    )
    return len(found)


async def effectiveness(session: AsyncSession, by: str) -> list[dict[str, Any]]:
    rows = await repository.find_attributions(session, by)
    grouped: dict[str, list[str]] = {}
    for row in rows:
        grouped.setdefault(row.key, []).append(row.change)
    return sorted(
        ({by: key, **domain.effectiveness(changes)} for key, changes in grouped.items()),
        key=lambda r: (-(r["effective_share"] or 0), -r["evaluated"], r[by]),
    )
