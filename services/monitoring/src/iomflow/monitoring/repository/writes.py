"""A run's changes to members and facts, written in as few statements as stream order allows.

A handler says, event by event and in stream order, what happens to facts: one begins
(``add``), ones that hold stop holding (``end``), ones are forgotten (``drop``); and which
members appear (``Members.add``). ``write`` sends them as *phases*, each one ``DELETE``,
one ``UPDATE`` (executemany, one row of parameters per event) and one multi-row upsert —
usually a whole run is one phase. A new phase begins only where putting an operation
into the current one would change the outcome:

- an ``end`` or ``drop`` that could touch a fact *added* earlier in the phase (a route
  drafted and superseded in one batch) — in a phase, drops and ends run before the adds;
- an ``end`` or ``drop`` of another shape (other columns in its condition) than the
  phase's, since each is one statement.

A fact said twice in one phase is one row (PostgreSQL refuses to upsert a row twice in
one statement): it begins at the earlier time and takes the later attributes, which is
what two upserts in a row leave. A member upserted twice in a run likewise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.monitoring.repository import facts, members

F = facts.c
EMPTY: Mapping[str, Any] = {}

Shape = tuple[tuple[str, ...], tuple[str, ...]]
"""The columns a condition tests (``~early``: an end of facts due to end later too)."""


@dataclass(frozen=True)
class Where:
    """Which facts an ``end`` or a ``drop`` applies to: columns equal to ``eq``'s values
    and different from ``ne``'s (``fact_id``, ``kind``, ``member_id``, ``key``)."""

    eq: tuple[tuple[str, str], ...]
    ne: tuple[tuple[str, str], ...] = ()
    early: bool = False
    """An end: also of facts due to end later (a period's end known ahead: a pair until
    June, removed in March, ends in March)."""

    @property
    def shape(self) -> Shape:
        eq = tuple(c for c, _ in self.eq) + (("~early",) if self.early else ())
        return eq, tuple(c for c, _ in self.ne)

    def holds(self, row: Mapping[str, Any]) -> bool:
        return all(row[c] == v for c, v in self.eq) and all(row[c] != v for c, v in self.ne)

    def params(self) -> dict[str, Any]:
        return {f"w_{c}": v for c, v in self.eq} | {f"n_{c}": v for c, v in self.ne}

    def clauses(self) -> list[Any]:
        return [F[c] == bindparam(f"w_{c}") for c, _ in self.eq] + [
            F[c] != bindparam(f"n_{c}") for c, _ in self.ne
        ]


@dataclass
class _Phase:
    adds: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_key: dict[str, list[str]] = field(default_factory=dict)  # key -> fact ids added
    ends: list[dict[str, Any]] = field(default_factory=list)
    end_shape: Shape | None = None
    drops: list[dict[str, Any]] = field(default_factory=list)
    drop_shape: Shape | None = None
    dated: set[str] = field(default_factory=set)  # fact ids added with their own period

    def touches_added(self, where: Where) -> bool:
        eq = dict(where.eq)
        if "fact_id" in eq:
            candidates = [eq["fact_id"]]
        elif "key" in eq:
            candidates = self.by_key.get(eq["key"], [])
        else:
            candidates = list(self.adds)
        return any(where.holds(self.adds[c]) for c in candidates if c in self.adds)


class Changes:
    """The fact changes of a run, in stream order (see the module's docstring)."""

    def __init__(self) -> None:
        self._phases = [_Phase()]

    @property
    def phases(self) -> int:
        """How many phases the changes take (each up to three statements)."""
        return sum(1 for p in self._phases if p.adds or p.ends or p.drops)

    def add(
        self,
        fact_id: str,
        kind: str,
        member_id: str,
        at: datetime,
        attrs: Mapping[str, Any] | None = None,
        key: str | None = None,
        *,
        until: datetime | None = None,
        dated: bool = False,
    ) -> None:
        """A fact begins at ``at``. Said again while it holds, it keeps when it began; said
        again after it ended, it begins anew. ``dated``: its period is the record's own
        (a pair's start and end, an activity's day), written as said each time (``until``:
        when it ends, None for good)."""
        phase = self._phases[-1]
        row = {
            "fact_id": fact_id,
            "kind": kind,
            "member_id": member_id,
            "start": at,
            "end": until,
            "attrs": attrs or EMPTY,
            "key": key,
        }
        before = phase.adds.get(fact_id)
        if dated:
            phase.dated.add(fact_id)
        else:
            phase.dated.discard(fact_id)
        if before is not None and not dated:
            row["start"] = min(before["start"], at)
            if before["key"] != key and before["key"] is not None:
                phase.by_key[before["key"]].remove(fact_id)
        if key is not None and (before is None or before["key"] != key):
            phase.by_key.setdefault(key, []).append(fact_id)
        phase.adds[fact_id] = row

    def end(
        self,
        at: datetime,
        *,
        ne: Mapping[str, str] | None = None,
        early: bool = False,
        **eq: str,
    ) -> None:
        """Facts matching ``eq`` (and differing from ``ne``) that still hold stop at ``at``
        (``early``: and those due to end after it)."""
        where = Where(tuple(eq.items()), tuple((ne or {}).items()), early)
        phase = self._phase_for(where, "end")
        phase.ends.append({**where.params(), "w_at": at})
        phase.end_shape = where.shape

    def drop(self, **eq: str) -> None:
        """Facts matching ``eq`` are forgotten (they never were)."""
        where = Where(tuple(eq.items()))
        phase = self._phase_for(where, "drop")
        phase.drops.append(where.params())
        phase.drop_shape = where.shape

    def _phase_for(self, where: Where, op: str) -> _Phase:
        phase = self._phases[-1]
        shape = phase.end_shape if op == "end" else phase.drop_shape
        if (shape is not None and shape != where.shape) or phase.touches_added(where):
            phase = _Phase()
            self._phases.append(phase)
        return phase

    async def write(self, session: AsyncSession) -> int:
        """Send the changes; how many statements that took. Rows go in key order, so that
        replicas writing the same facts lock them in one order (no deadlock); the ends and
        drops of a phase touch disjoint facts but for the same key, whose stream order a
        stable sort keeps."""
        sent = 0
        for phase in self._phases:
            if phase.drops:
                assert phase.drop_shape is not None
                where = _where(phase.drop_shape)
                await session.execute(delete(facts).where(*where), sorted(phase.drops, key=_order))
                sent += 1
            if phase.ends:
                assert phase.end_shape is not None
                eq, ne = phase.end_shape
                where = _where((tuple(c for c in eq if c != "~early"), ne))
                holding = F.end.is_(None)
                if "~early" in eq:
                    holding = or_(holding, F.end > bindparam("w_at"))
                stmt = update(facts).where(holding, *where).values(end=bindparam("w_at"))
                await session.execute(stmt, sorted(phase.ends, key=_order))
                sent += 1
            for dated in (False, True):
                rows = [
                    phase.adds[fact_id]
                    for fact_id in sorted(phase.adds)
                    if (fact_id in phase.dated) == dated
                ]
                if rows:
                    await session.execute(_add_facts(session, dated=dated), rows)
                    sent += 1
        return sent


def _order(params: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(v) for k, v in sorted(params.items()) if k != "w_at")


def _where(shape: Shape) -> list[Any]:
    eq, ne = shape
    return Where(tuple((c, "") for c in eq), tuple((c, "") for c in ne)).clauses()


def _insert(session: AsyncSession) -> Any:
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert


def _add_facts(session: AsyncSession, *, dated: bool = False) -> Any:
    stmt = _insert(session)(facts)
    new = stmt.excluded
    period = (
        {"start": new.start, "end": new.end}  # its own period, as said
        if dated
        else {
            # Said again while it holds: it keeps when it began.
            "start": case((and_(F.end.is_(None), F.start < new.start), F.start), else_=new.start),
            "end": None,
        }
    )
    return stmt.on_conflict_do_update(
        index_elements=["fact_id"],
        set_={"member_id": new.member_id, "attrs": new.attrs, "key": new.key, **period},
    )


class Members:
    """Members upserted in a run (one statement), and members removed (another)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._ends: list[dict[str, Any]] = []

    def add(
        self,
        kind: str,
        member_id: str,
        municipality_id: str,
        organization_id: str,
        attrs: Mapping[str, Any],
        at: datetime,
    ) -> None:
        """A member appears (from ``at``) or changes its attributes, keeping when it first
        came."""
        before = self._rows.get((kind, member_id))
        self._rows[(kind, member_id)] = {
            "kind": kind,
            "member_id": member_id,
            "municipality_id": municipality_id,
            "organization_id": organization_id,
            "attrs": attrs,
            "start": at if before is None else min(before["start"], at),
            "end": None,
        }

    def end(self, kind: str, member_id: str, at: datetime) -> None:
        """A member leaves the registry at ``at`` (if it is still there)."""
        self._ends.append({"w_kind": kind, "w_member_id": member_id, "w_at": at})

    async def write(self, session: AsyncSession) -> int:
        sent = 0
        if self._rows:
            stmt = _insert(session)(members)
            stmt = stmt.on_conflict_do_update(
                index_elements=["kind", "member_id"],
                set_={
                    "municipality_id": stmt.excluded.municipality_id,
                    "organization_id": stmt.excluded.organization_id,
                    "attrs": stmt.excluded.attrs,
                    "start": case(
                        (members.c.start < stmt.excluded.start, members.c.start),
                        else_=stmt.excluded.start,
                    ),
                    "end": None,
                },
            )
            await session.execute(stmt, [self._rows[k] for k in sorted(self._rows)])
            sent += 1
        if self._ends:
            m = members.c
            stmt = (
                update(members)
                .where(
                    m.kind == bindparam("w_kind"),
                    m.member_id == bindparam("w_member_id"),
                    m.end.is_(None),
                )
                .values(end=bindparam("w_at"))
            )
            await session.execute(stmt, self._ends)
            sent += 1
        return sent
