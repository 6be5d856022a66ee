"""Read models of the registries, declared once per service and kept in bulk.

A service that needs a registry entity declares a ``ReadModel``: the entity, its table, the
key and, per column, the payload field it comes from (or a function of the payload). Its
``registry.<entity>.upserted`` events are then one multi-row upsert per batch (the last
event of a key wins, as in stream order), its ``.removed`` events one ``DELETE … IN``. What
a service does on top (release held results when a teacher arrives, drain the queue when a
methodist gets room) is a hook: ``after_upsert`` runs after the rows are written,
``before_remove`` before they go and ``after_remove`` after, each with the batch's events of
its run.

Consecutive events of one type form a run (``iomflow.shared.streams.runs``), so a record
upserted and then removed in one batch is written, then removed, in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import Table, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.shared.contracts import Event
from iomflow.shared.streams import Handler
from iomflow.shared.unit import Deps

Column = str | Callable[[Any], Any]
"""A column's source: the payload field of that name, or a function of the payload."""


def plain(value: Any) -> Any:
    """A payload value as a column takes it: enumerations by their value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [v.value if isinstance(v, Enum) else v for v in value]
    return value


@dataclass(frozen=True)
class ReadModel:
    """A table kept from one registry entity's events."""

    entity: str  # "teacher": registry.teacher.upserted / registry.teacher.removed
    table: Table
    key: str  # the key column; the removed event's record_id is its value
    columns: Mapping[str, Column]
    after_upsert: Handler | None = None
    before_remove: Handler | None = None
    after_remove: Handler | None = None

    @property
    def upserted(self) -> str:
        return f"registry.{self.entity}.upserted"

    @property
    def removed(self) -> str:
        return f"registry.{self.entity}.removed"

    def row(self, payload: Any) -> dict[str, Any]:
        return {
            column: plain(getattr(payload, source)) if isinstance(source, str) else source(payload)
            for column, source in self.columns.items()
        }

    async def save(self, session: AsyncSession, events: Sequence[Event[Any]]) -> None:
        """Upsert the rows of ``events`` in one statement; the last event of a key wins."""
        rows = {}
        for event in events:
            row = self.row(event.payload)
            rows[row[self.key]] = row
        if not rows:
            return
        insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
        stmt = insert(self.table)
        others = [c for c in self.columns if c != self.key]
        stmt = (
            stmt.on_conflict_do_update(
                index_elements=[self.key], set_={c: stmt.excluded[c] for c in others}
            )
            if others
            else stmt.on_conflict_do_nothing(index_elements=[self.key])
        )
        # In key order: row locks are then taken in the order every other batch takes
        # them (PostgreSQL would otherwise deadlock two batches now and then).
        await session.execute(stmt, [rows[k] for k in sorted(rows)])

    async def delete(self, session: AsyncSession, record_ids: Sequence[str]) -> None:
        if record_ids:
            key = self.table.c[self.key]
            await session.execute(delete(self.table).where(key.in_(sorted(set(record_ids)))))

    def handlers(self) -> dict[str, Handler]:
        """The handlers of this entity's upserted and removed events."""

        async def upserted(events: Sequence[Event[Any]], deps: Deps[Any]) -> None:
            await self.save(deps.session, events)
            if self.after_upsert is not None:
                await self.after_upsert(events, deps)

        async def removed(events: Sequence[Event[Any]], deps: Deps[Any]) -> None:
            if self.before_remove is not None:
                await self.before_remove(events, deps)
            await self.delete(deps.session, [e.payload.record_id for e in events])
            if self.after_remove is not None:
                await self.after_remove(events, deps)

        upserted.__name__ = f"{self.entity}_upserted"
        removed.__name__ = f"{self.entity}_removed"
        return {self.upserted: upserted, self.removed: removed}


def handlers(models: Sequence[ReadModel]) -> dict[str, Handler]:
    """The upserted and removed handlers of every model."""
    out: dict[str, Handler] = {}
    for model in models:
        out.update(model.handlers())
    return out
