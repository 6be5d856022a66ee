"""The periodic alert check: detect, raise what is new, resolve what is gone.

KPIs off their path come from the KPI snapshot (``projection``), so an alert and the
dashboard say the same; the other alerts from the loaded facts (``views.Cache``), which are
reloaded only when the projections changed.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text

from iomflow.monitoring import alerts, repository
from iomflow.monitoring.context import Context
from iomflow.shared.contracts import AlertResolved, Streams, new_event
from iomflow.shared.service import Runtime

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


def levels(answer: dict[str, Any]) -> dict[str | None, list[dict[str, Any]]]:
    """A ``/v1/kpis`` answer as KPI rows per level (None: the region)."""
    return {
        None: answer["region"]["kpis"],
        **{m["municipality_id"]: m["kpis"] for m in answer["municipalities"]},
    }


async def check(
    runtime: Runtime[Context],
    redis: Redis,
    limits: alerts.Limits | None = None,
    now: datetime | None = None,
) -> tuple[list[str], list[str]]:
    """Raise new alerts and resolve gone ones; the ids raised and resolved."""
    ctx = runtime.context
    limits = limits or ctx.limits
    now = now or ctx.clock()
    dlq = await dead_letter_sizes(redis)
    async with runtime.sessions() as holder:
        # PostgreSQL: the lock is held by this session until the check is done. (SQLite: one
        # process; this session never takes the one connection the others need.)
        if holder.get_bind().dialect.name != "sqlite":
            got = await holder.execute(text(f"SELECT pg_try_advisory_xact_lock({LOCK})"))
            if not got.scalar_one():
                return [], []  # another replica is checking right now
        answer = await ctx.kpis.answer(runtime.sessions)
        facts = await ctx.cache.facts(runtime.sessions)
        async with runtime.sessions() as session:
            names = await repository.municipality_names(session)
            schools = await repository.organization_names(session)
            capacities = await repository.capacities(session)
            stale = [
                alerts.Stale(r.registry, r.owner, r.stale, r.total)
                for r in await repository.stale_registers(session)
            ]
        current = await asyncio.to_thread(
            alerts.detect,
            levels(answer),
            names,
            facts,
            capacities,
            stale,
            dlq,
            now,
            limits,
            schools,
        )
        async with runtime.transaction() as deps:
            session = deps.session
            known = await repository.open_alerts(session)
            raised = [a for a in current if a.alert_id not in known]
            gone = [aid for aid in known if aid not in {a.alert_id for a in current}]
            await repository.raise_alerts(
                session,
                [
                    {
                        **a.model_dump(),
                        "raised_at": now,
                        "resolved_at": None,
                        # raised again after it was resolved: nobody has seen this one yet
                        "acknowledged_by": None,
                        "acknowledged_at": None,
                    }
                    for a in raised
                ],
            )
            await repository.resolve_alerts(session, gone, now)
            deps.stage(
                Streams.MONITORING,
                *(
                    new_event("monitoring.alert.raised", a, source="monitoring", subject=a.subject)
                    for a in raised
                ),
                *(
                    new_event(
                        "monitoring.alert.resolved",
                        AlertResolved(
                            alert_id=aid, kind=known[aid].kind, subject=known[aid].subject
                        ),
                        source="monitoring",
                        subject=known[aid].subject,
                    )
                    for aid in gone
                ),
            )
    return [a.alert_id for a in raised], gone
