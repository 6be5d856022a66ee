"""Which methodist serves a teacher, and how a rebalance moves routes between methodists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from iomflow.routes.domain.catalogue import MethodistView, TeacherView

# --- methodists ----------------------------------------------------------------------------


def serves(methodist: MethodistView, municipality_id: str) -> bool:
    """Whether the methodist works in the municipality (no municipalities: the region)."""
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
