"""How fast the shared consumer applies entries, as a ratio of raw Redis stream throughput.

    uv run python bench/consume.py --redis-url redis://127.0.0.1:6379/15 [--database-url URL]

Baseline, same run, same Redis: XREADGROUP in batches + XACK with no work at all. Then
``Consumer.process`` in batches (one inbox statement and one multi-row effect statement per
batch, one transaction per batch) on the given database (default: a SQLite file), without and
then with the service's metrics. The stream and group are created fresh; the Redis database
given is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy import Column, String, Table, insert

from iomflow.shared import db, wire
from iomflow.shared.contracts import MunicipalityUpserted, new_event
from iomflow.shared.outbox import Outbox
from iomflow.shared.service import Tables
from iomflow.shared.streams import Consumer, DeliverySettings, Subscription, ensure_group

STREAM = "bench.events"
TYPE = "registry.municipality.upserted"


async def fill(redis: Redis, n: int) -> None:
    await redis.delete(STREAM)
    for start in range(0, n, 1000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(n, start + 1000)):
            event = new_event(
                TYPE,
                MunicipalityUpserted(municipality_id=f"m{i}", name="x"),
                source="bench",
                subject=f"m{i}",
            )
            pipe.xadd(STREAM, wire.encode(event))
        await pipe.execute()


async def raw(redis: Redis, n: int, batch: int) -> float:
    await ensure_group(redis, STREAM, "raw")
    started = time.perf_counter()
    done = 0
    while done < n:
        reply = await redis.xreadgroup("raw", "c", {STREAM: ">"}, count=batch)
        ids = [i for i, _ in reply[0][1]]
        await redis.xack(STREAM, "raw", *ids)
        done += len(ids)
    return n / (time.perf_counter() - started)


async def consumer(
    redis: Redis, url: str, n: int, batch: int, tracer: Any, meter: Any = None
) -> float:
    metadata = db.new_metadata()
    tables = Tables(metadata)
    effects = Table("effects", metadata, Column("event_id", String(36), primary_key=True))
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)

    async def handle(events: Any, deps: Any) -> None:  # one multi-row statement a batch
        await deps.session.execute(insert(effects), [{"event_id": str(e.event_id)} for e in events])

    c = Consumer(
        group="bench",
        consumer="c",
        redis=redis,
        sessions=db.sessionmaker(engine),
        inbox_table=tables.inbox,
        outbox=Outbox(tables.outbox),
        tracer=tracer,
        subscriptions=[Subscription(STREAM, {TYPE: handle})],
        settings=DeliverySettings(batch_size=batch),
        meter=meter,
    )
    await c.ensure_groups()
    started = time.perf_counter()
    done = 0
    while done < n:
        reply = await redis.xreadgroup("bench", "c", {STREAM: ">"}, count=batch)
        entries = [(wire.as_text(i), wire.text_fields(f)) for i, f in reply[0][1]]
        outcome = await c.process(STREAM, entries)
        assert len(outcome.applied) == len(entries), outcome
        done += len(entries)
    rate = n / (time.perf_counter() - started)
    await engine.dispose()
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()
    await fill(redis, args.n)
    baseline = await raw(redis, args.n, args.batch)
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'b.db'}"
    untraced = await consumer(redis, url, args.n, args.batch, TracerProvider().get_tracer("b"))
    await redis.flushdb()
    await fill(redis, args.n)
    # The same with the service's metrics recorded (what /metrics serves).
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("b")
    metered = await consumer(
        redis, url, args.n, args.batch, TracerProvider().get_tracer("b"), meter
    )
    print(f"entries {args.n}, batch {args.batch}, database {url.split('://')[0]}")
    print(f"raw XREADGROUP+XACK: {baseline:,.0f}/s (baseline = 1.00)")
    print(
        f"Consumer.process (inbox + effects, a statement each and a transaction per batch): "
        f"{untraced:,.0f}/s "
        f"= {untraced / baseline:.3f} of baseline"
    )
    print(
        f"the same with metrics (handler latency, batch size, outcomes): {metered:,.0f}/s "
        f"= {metered / baseline:.3f} of baseline, {metered / untraced:.3f} of without"
    )
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
