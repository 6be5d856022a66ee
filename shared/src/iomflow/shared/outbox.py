"""Transactional outbox: events are staged with the state change and published after commit.

A unit of work (``iomflow.shared.unit.Unit``) inserts the rows in the caller's
transaction, with the trace context to continue, so the event exists if and only if the
state change does. ``OutboxRelay`` reads unsent rows
in order, appends them to their streams in one pipelined round trip per batch, and marks
them sent. A crash between the XADD and the mark publishes the batch again; consumers
dedupe on ``event_id`` through their inbox, so the effect stays once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from opentelemetry import propagate, trace
from redis.asyncio import Redis
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.shared import redisconn, wire

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    table = Table(
        "outbox",
        metadata,
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("stream", String(200), nullable=False),
        Column("type", String(200), nullable=False),
        Column("fields", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True, index=True),
    )
    # The relay reads unsent rows in id order, a batch at a time; with only the sent_at
    # index PostgreSQL sorted every unsent row (fields and all) for each batch.
    Index(
        "ix_outbox_unsent",
        table.c.id,
        postgresql_where=table.c.sent_at.is_(None),
        sqlite_where=table.c.sent_at.is_(None),
    )
    return table


class Outbox:
    """The outbox table and the relay's wake-up call. Events are staged through a unit of
    work (``iomflow.shared.unit``), which writes them in the caller's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.wakeup = asyncio.Event()

    def wake(self) -> None:
        self.wakeup.set()

    async def backlog(self, session: AsyncSession) -> dict[str, int]:
        """Staged rows not yet published (``sent_at`` is null), per stream."""
        table = self.table
        query = (
            select(table.c.stream, func.count())
            .where(table.c.sent_at.is_(None))
            .group_by(table.c.stream)
        )
        return {stream: int(n) for stream, n in (await session.execute(query)).all()}


PRUNE_CHUNK = 10_000


async def prune(session: AsyncSession, table: Table, before: datetime) -> int:
    """Drop up to ``PRUNE_CHUNK`` rows published before ``before``; how many (unsent rows
    are never dropped)."""
    old = (
        select(table.c.id)
        .where(table.c.sent_at.is_not(None), table.c.sent_at < before)
        .limit(PRUNE_CHUNK)
    )
    result = await session.execute(delete(table).where(table.c.id.in_(old)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class OutboxRelay:
    """Publishes staged rows; several replicas may run it (PostgreSQL: SKIP LOCKED)."""

    def __init__(
        self,
        outbox: Outbox,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        tracer: trace.Tracer,
        *,
        batch: int = 500,
        poll_s: float = 0.5,
        replicas: int = 0,
        replica_timeout_ms: int = 1000,
    ) -> None:
        self.outbox = outbox
        self.sessions = sessions
        self.redis = redis
        self.tracer = tracer
        self.batch = batch
        self.poll_s = poll_s
        self.replicas = replicas
        self.replica_timeout_ms = replica_timeout_ms
        self.published = 0

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; returns how many were published."""
        table = self.outbox.table
        async with self.sessions() as session, session.begin():
            query = select(table.c.id, table.c.stream, table.c.type, table.c.fields)
            query = query.where(table.c.sent_at.is_(None)).order_by(table.c.id).limit(self.batch)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if not rows:
                return 0
            entries = [(row.stream, self._continue_trace(row.stream, row.fields)) for row in rows]
            await wire.xadd_many(self.redis, entries)
            # With replicas asked for, a row is marked sent only once they have its entry;
            # else it stays unsent and goes again (the consumers drop the copy).
            await redisconn.replicated(
                self.redis, self.replicas, self.replica_timeout_ms, len(rows)
            )
            await session.execute(
                update(table)
                .where(table.c.id.in_([row.id for row in rows]))
                .values(sent_at=datetime.now(UTC))
            )
        self.published += len(rows)
        return len(rows)

    def _continue_trace(self, stream: str, fields: dict[str, str]) -> dict[str, str]:
        parent = propagate.extract(fields)
        context = trace.get_current_span(parent).get_span_context()
        if not context.is_valid or not context.trace_flags.sampled:
            return fields  # an unsampled trace goes on unsampled, at no cost
        with self.tracer.start_as_current_span(
            f"{stream} publish",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "redis",
                "messaging.destination.name": stream,
                "messaging.message.id": fields.get("event_id", ""),
                "iomflow.event.type": fields.get("type", ""),
            },
        ):
            carrier = dict(fields)
            propagate.inject(carrier)
            return carrier

    async def run(self) -> None:
        while True:
            self.outbox.wakeup.clear()
            try:
                while await self.publish_pending() >= self.batch:
                    pass
            except asyncio.CancelledError:
                raise
            except redisconn.NotReplicated as exc:
                log.warning("outbox relay: %s; they will be published again", exc)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(1.0)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the task's
            # cancellation when the wakeup lands at the same moment, and the service's stop
            # would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self.outbox.wakeup.wait()
