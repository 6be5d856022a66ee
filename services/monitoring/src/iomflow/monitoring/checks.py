"""The periodic alert check: detect, raise what is new, resolve what is gone."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.monitoring import alerts, domain, repository
from iomflow.shared.contracts import AlertResolved, Streams, new_event
from iomflow.shared.outbox import Outbox

DLQ_STREAMS = (
    Streams.REGISTRY,
    Streams.RESULTS_INBOUND,
    Streams.DIAGNOSTICS,
    Streams.ROUTES,
    Streams.COURSES_INBOUND,
)
LOCK = 7_204_611  # one checker at a time across replicas (PostgreSQL advisory lock)


async def dead_letter_sizes(redis: Redis) -> dict[str, int]:
    return {Streams.dlq(s): int(await redis.xlen(Streams.dlq(s))) for s in DLQ_STREAMS}


async def check(
    sessions: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    redis: Redis,
    catalogue: domain.Catalogue,
    limits: alerts.Limits,
    now: datetime | None = None,
) -> tuple[list[str], list[str]]:
    """Raise new alerts and resolve gone ones; the ids raised and resolved."""
    now = now or datetime.now(UTC)
    dlq = await dead_letter_sizes(redis)
    async with sessions() as session, session.begin():
        if session.get_bind().dialect.name != "sqlite":
            got = await session.execute(text(f"SELECT pg_try_advisory_xact_lock({LOCK})"))
            if not got.scalar_one():
                return [], []  # another replica is checking right now
        facts = await repository.load(session)
        names = await repository.municipality_names(session)
        on = now.date()
        evaluated = {
            None: domain.evaluate(catalogue, facts, on)[None],
            **domain.evaluate(catalogue, facts, on, by="municipality"),
        }
        stale = [
            alerts.Stale(r.registry, r.owner, r.stale, r.total)
            for r in await repository.stale_registers(session)
        ]
        current = alerts.detect(
            evaluated,
            names,
            facts,
            await repository.capacities(session),
            stale,
            dlq,
            now,
            limits,
        )
        known = await repository.open_alerts(session)
        raised = [a for a in current if a.alert_id not in known]
        gone = [aid for aid in known if aid not in {a.alert_id for a in current}]
        events = []
        for alert in raised:
            await repository.raise_alert(
                session, {**alert.model_dump(), "raised_at": now, "resolved_at": None}
            )
            events.append(
                new_event(
                    "monitoring.alert.raised", alert, source="monitoring", subject=alert.subject
                )
            )
        for alert_id in gone:
            row = known[alert_id]
            await repository.resolve_alert(session, alert_id, now)
            events.append(
                new_event(
                    "monitoring.alert.resolved",
                    AlertResolved(alert_id=alert_id, kind=row.kind, subject=row.subject),
                    source="monitoring",
                    subject=row.subject,
                )
            )
        await outbox.stage(session, Streams.MONITORING, *events)
    return [a.alert_id for a in raised], gone
