"""The inbox: which events a consumer has already applied, recorded in its transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.shared.db import insert_ignore


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    )


async def record_many(
    session: AsyncSession, table: Table, consumer: str, event_ids: list[uuid.UUID]
) -> set[str]:
    """Record many events in one statement; the ids that were new (not duplicates)."""
    if not event_ids:
        return set()
    now = datetime.now(UTC)
    rows = [
        {"consumer": consumer, "event_id": str(i), "received_at": now}
        for i in dict.fromkeys(event_ids)
    ]
    # executemany: the statement compiles once and is cached (SQLAlchemy sends it as one
    # multi-row INSERT … RETURNING); ``.values(rows)`` would compile anew for every size.
    result = await session.execute(insert_ignore(session, table).returning(table.c.event_id), rows)
    return {row.event_id for row in result}


async def record(session: AsyncSession, table: Table, consumer: str, event_id: uuid.UUID) -> bool:
    """Record the event as applied by ``consumer``; False when it already was (a duplicate).

    Called inside the handler's transaction, so the record and the effect commit together.
    """
    result = await session.execute(
        insert_ignore(session, table).values(
            consumer=consumer, event_id=str(event_id), received_at=datetime.now(UTC)
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def forget(session: AsyncSession, table: Table, consumer: str, event_id: str) -> None:
    """Drop an event recorded but never applied (a held entry dead-lettered later), so
    replaying it with the same id is applied, not dropped as a duplicate."""
    await session.execute(
        delete(table).where(table.c.consumer == consumer, table.c.event_id == str(event_id))
    )


async def forget_many(
    session: AsyncSession, table: Table, consumer: str, event_ids: list[str]
) -> None:
    """``forget`` for many events, in one statement."""
    if event_ids:
        await session.execute(
            delete(table).where(table.c.consumer == consumer, table.c.event_id.in_(event_ids))
        )


PRUNE_CHUNK = 10_000


async def prune(session: AsyncSession, table: Table, before: datetime) -> int:
    """Forget up to ``PRUNE_CHUNK`` events applied before ``before``; how many. An event
    sent again after its row is gone is applied again: the retention must be longer than
    any publisher retries (``IOMFLOW_INBOX_RETENTION_DAYS``)."""
    old = (
        select(table.c.consumer, table.c.event_id)
        .where(table.c.received_at < before)
        .limit(PRUNE_CHUNK)
    )
    result = await session.execute(
        delete(table).where(tuple_(table.c.consumer, table.c.event_id).in_(old))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
