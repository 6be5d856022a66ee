"""The delivery plumbing on a real Redis and real databases (SQLite and PostgreSQL):
outbox, inbox, consumer groups, batches with savepoints, the DLQ, reclaim, lost groups."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from faststream.redis import RedisBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy import Column, String, Table, delete, func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from iomflow.shared import db, wire
from iomflow.shared.contracts import (
    Event,
    MunicipalityUpserted,
    RecordRemoved,
    Streams,
    new_event,
)
from iomflow.shared.errors import Rejected
from iomflow.shared.outbox import Outbox, OutboxRelay
from iomflow.shared.redisconn import NotReplicated
from iomflow.shared.service import Tables
from iomflow.shared.streams import (
    Consumer,
    DeliverySettings,
    Subscription,
    ensure_group,
    errors_key,
)
from iomflow.shared.unit import Deps, Unit

STREAM = "test.events"
ECHO = "test.echoes"
TYPE = "registry.municipality.upserted"
REMOVED = "registry.municipality.removed"


@dataclass
class Bench:
    """A consumer of STREAM whose handler records an effect row per event."""

    redis: Redis
    engine: AsyncEngine
    consumer: Consumer
    outbox: Outbox
    relay: OutboxRelay
    effects: Table
    tables: Tables
    url: str
    calls: list[list[str]]
    outage: dict[str, int]

    async def effect_count(self, subject: str | None = None) -> int:
        query = select(func.count()).select_from(self.effects)
        if subject is not None:
            query = query.where(self.effects.c.subject == subject)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def pending(self) -> int:
        info = await self.redis.xpending(STREAM, self.consumer.group)
        return int(info["pending"])

    async def dlq(self) -> list[dict[str, str]]:
        return [wire.text_fields(f) for _, f in await self.redis.xrange(Streams.dlq(STREAM))]


def event(subject: str, name: str = "Тестовый район") -> Event[Any]:
    return new_event(
        TYPE,
        MunicipalityUpserted(municipality_id=subject, name=name),
        source="test",
        subject=subject,
    )


async def xadd(redis: Redis, *events: Event[Any] | dict[str, str]) -> list[str]:
    ids = []
    for item in events:
        fields = wire.encode(item) if isinstance(item, Event) else item
        ids.append(wire.as_text(await redis.xadd(STREAM, fields)))
    return ids


@pytest.fixture
async def bench(clean_redis: str, database_url: str) -> AsyncIterator[Bench]:
    metadata = db.new_metadata()
    tables = Tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("subject", String(100), nullable=False),
    )
    engine = db.create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    redis = Redis.from_url(clean_redis)
    tracer = TracerProvider().get_tracer("test")
    outbox = Outbox(tables.outbox)
    sessions = db.sessionmaker(engine)

    calls: list[list[str]] = []
    outage = {"left": 0}

    async def handle(events: Sequence[Event[Any]], deps: Deps[Any]) -> None:
        calls.append([ev.subject for ev in events])
        rows = []
        for ev in events:
            if ev.subject.startswith("boom"):
                raise RuntimeError(f"handler cannot apply {ev.subject}")
            if ev.subject.startswith("down") and outage["left"] > 0:
                outage["left"] -= 1
                raise OperationalError("INSERT …", {}, ConnectionRefusedError("database down"))
            if ev.subject.startswith("never-raised"):
                raise Rejected(f"{ev.subject} breaks a rule")
            if ev.subject.startswith("never"):
                deps.reject(ev, Rejected(f"{ev.subject} breaks a rule", "breaks_a_rule"))
                continue
            rows.append({"event_id": str(ev.event_id), "subject": ev.subject})
            deps.stage(ECHO, event(f"echo-{ev.subject}"), cause=ev)
        if rows:  # one multi-row statement for the batch
            await deps.session.execute(insert(effects), rows)

    async def removed(events: Sequence[Event[Any]], deps: Deps[Any]) -> None:
        calls.append([f"removed {ev.payload.record_id}" for ev in events])
        await deps.session.execute(
            delete(effects).where(effects.c.subject.in_([ev.payload.record_id for ev in events]))
        )

    consumer = Consumer(
        group="testers",
        consumer="tester-1",
        redis=redis,
        sessions=sessions,
        inbox_table=tables.inbox,
        outbox=outbox,
        tracer=tracer,
        subscriptions=[Subscription(STREAM, {TYPE: handle, REMOVED: removed})],
        settings=DeliverySettings(
            batch_size=50, poll_ms=50, max_deliveries=3, reclaim_idle_ms=100, reclaim_interval_s=0.1
        ),
    )
    relay = OutboxRelay(outbox, sessions, redis, tracer, batch=100, poll_s=0.05)
    yield Bench(redis, engine, consumer, outbox, relay, effects, tables, clean_redis, calls, outage)
    await redis.aclose()
    await engine.dispose()


async def read_as(
    bench: Bench, consumer: str, count: int = 100
) -> list[tuple[str, dict[str, str]]]:
    """XREADGROUP as ``consumer``: the entries become pending under that name."""
    reply = await bench.redis.xreadgroup(bench.consumer.group, consumer, {STREAM: ">"}, count=count)
    return [(wire.as_text(i), wire.text_fields(f)) for i, f in reply[0][1]] if reply else []


async def eventually(check: Any, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


# --- groups -----------------------------------------------------------------------------


async def test_group_created_at_zero_sees_entries_written_before_it(bench: Bench) -> None:
    await xadd(bench.redis, event("m-early"))
    await bench.consumer.ensure_groups()
    entries = await read_as(bench, "tester-1")
    assert [f["subject"] for _, f in entries] == ["m-early"]
    assert await ensure_group(bench.redis, STREAM, "testers") is False  # idempotent


# --- outbox -----------------------------------------------------------------------------


async def test_outbox_row_exists_only_if_the_transaction_commits(bench: Bench) -> None:
    sessions = db.sessionmaker(bench.engine)
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            unit = Unit(session, bench.outbox)
            unit.stage(STREAM, event("m-rolled-back"))
            await unit.flush()
            raise RuntimeError("state change failed")
    async with sessions() as session, session.begin():
        unit = Unit(session, bench.outbox)
        unit.stage(STREAM, event("m-committed"))
        await unit.flush()
    assert await bench.relay.publish_pending() == 1
    assert await bench.relay.publish_pending() == 0  # marked sent: published once
    entries = await bench.redis.xrange(STREAM)
    assert [wire.text_fields(f)["subject"] for _, f in entries] == ["m-committed"]


async def test_with_replicas_asked_for_a_row_is_sent_only_once_a_replica_has_it(
    bench: Bench,
) -> None:
    """``IOMFLOW_REDIS_WAIT_REPLICAS``: on a server with no replica, WAIT 1 is never
    answered, so the row stays unsent (and goes again: the consumers drop the copy)."""
    sessions = db.sessionmaker(bench.engine)
    async with sessions() as session, session.begin():
        unit = Unit(session, bench.outbox)
        unit.stage(STREAM, event("m-waiting"))
        await unit.flush()
    waiting = OutboxRelay(
        bench.outbox, sessions, bench.redis, bench.relay.tracer, replicas=1, replica_timeout_ms=20
    )
    with pytest.raises(NotReplicated, match="reached 0 of 1 replicas"):
        await waiting.publish_pending()
    assert len(await bench.redis.xrange(STREAM)) == 1  # on the primary, not confirmed
    assert await bench.relay.publish_pending() == 1  # still unsent: it goes again
    assert await bench.relay.publish_pending() == 0


async def test_relay_writes_plain_fields_with_the_producers_trace(bench: Bench) -> None:
    provider = TracerProvider()
    sessions = db.sessionmaker(bench.engine)
    with provider.get_tracer("t").start_as_current_span("producer") as span:
        async with sessions() as session, session.begin():
            unit = Unit(session, bench.outbox)
            unit.stage(STREAM, event("m-traced"))
            await unit.flush()
        trace_id = f"{span.get_span_context().trace_id:032x}"
    await bench.relay.publish_pending()
    ((_, raw),) = await bench.redis.xrange(STREAM)
    fields = wire.text_fields(raw)
    assert set(fields) >= {
        "event_id",
        "type",
        "version",
        "source",
        "occurred_at",
        "subject",
        "data",
        "traceparent",
    }
    assert "__data__" not in fields
    assert json.loads(fields["data"]) == {
        "municipality_id": "m-traced",
        "name": "Тестовый район",
        "remote": False,
    }
    assert fields["traceparent"].split("-")[1] == trace_id


# --- inbox, batches ---------------------------------------------------------------------


async def test_duplicate_event_has_one_effect(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    same = event("m-dup")
    await xadd(bench.redis, same, same)
    entries = await read_as(bench, "tester-1")
    outcome = await bench.consumer.process(STREAM, entries)
    assert len(outcome.applied) == 1 and len(outcome.duplicates) == 1
    # and again later, from another delivery path
    await xadd(bench.redis, same)
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert outcome.duplicates and not outcome.applied
    assert await bench.effect_count("m-dup") == 1
    assert await bench.pending() == 0


async def test_one_failing_entry_does_not_sink_its_batch(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    await xadd(bench.redis, event("m-1"), event("boom-1"), event("m-2"))
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 2 and len(outcome.failed) == 1
    assert await bench.effect_count() == 2
    assert await bench.pending() == 1  # the failing one waits for reclaim
    error = await bench.redis.hget(errors_key(STREAM, "testers"), next(iter(outcome.failed)))
    assert b"handler cannot apply boom-1" in error


async def test_rejected_event_is_dead_lettered_at_once(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    await xadd(bench.redis, event("never-raised-1"), event("m-3"))
    await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    (dead,) = await bench.dlq()
    assert dead["dlq_reason"] == "rejected" and "breaks a rule" in dead["dlq_error"]
    assert await bench.effect_count("m-3") == 1
    assert await bench.pending() == 0


async def test_an_event_the_handler_rejects_costs_only_itself_and_its_replay_applies(
    bench: Bench,
) -> None:
    await bench.consumer.ensure_groups()
    refused = event("never-1")
    await xadd(bench.redis, event("m-4"), refused, event("m-5"))
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 2 and len(outcome.rejected) == 1
    # one call for the whole batch: the rejection did not send it entry by entry
    assert bench.calls == [["m-4", "never-1", "m-5"]]
    (dead,) = await bench.dlq()
    assert dead["dlq_reason"] == "breaks_a_rule" and dead["subject"] == "never-1"
    assert await bench.pending() == 0
    # never applied, so not in the inbox: the same event again is applied, not a duplicate
    renamed = event("m-fixed")
    fixed = wire.encode(refused) | {"subject": "m-fixed", "data": wire.encode(renamed)["data"]}
    await xadd(bench.redis, fixed)
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 1 and not outcome.duplicates
    assert await bench.effect_count("m-fixed") == 1


async def test_a_batch_is_one_call_per_run_of_one_type_in_stream_order(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    gone = new_event(REMOVED, RecordRemoved(record_id="m-7"), source="test", subject="m-7")
    await xadd(bench.redis, event("m-6"), event("m-7"), gone, event("m-7"), event("m-8"))
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 5
    assert bench.calls == [["m-6", "m-7"], ["removed m-7"], ["m-7", "m-8"]]
    assert await bench.effect_count("m-7") == 1  # upserted, removed, upserted again


async def test_a_failing_entry_sends_its_batch_entry_by_entry(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    await xadd(bench.redis, event("m-9"), event("boom-2"), event("m-10"))
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert bench.calls == [["m-9", "boom-2", "m-10"], ["m-9"], ["boom-2"], ["m-10"]]
    assert len(outcome.applied) == 2 and len(outcome.failed) == 1
    # what the failed fast path staged is gone; the isolated entries staged theirs once
    async with bench.engine.connect() as conn:
        staged = (await conn.execute(select(bench.tables.outbox.c.fields))).scalars().all()
    assert sorted(f["subject"] for f in staged) == ["echo-m-10", "echo-m-9"]


async def test_events_staged_in_a_batch_go_into_the_outbox_in_one_statement(
    bench: Bench,
) -> None:
    await bench.consumer.ensure_groups()
    await xadd(bench.redis, *[event(f"m-s{i}") for i in range(20)])
    entries = await read_as(bench, "tester-1")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    from sqlalchemy import event as sa_event

    sa_event.listen(bench.engine.sync_engine, "before_cursor_execute", seen)
    try:
        outcome = await bench.consumer.process(STREAM, entries)
    finally:
        sa_event.remove(bench.engine.sync_engine, "before_cursor_execute", seen)
    assert len(outcome.applied) == 20
    writes = [
        s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    # the inbox, the effects, the outbox: one statement each for the 20 entries
    assert len(writes) == 3, writes


async def test_a_unit_of_work_writes_what_it_staged_only_when_it_flushes(bench: Bench) -> None:
    sessions = db.sessionmaker(bench.engine)
    async with sessions() as session, session.begin():
        unit = Unit(session, bench.outbox)
        unit.stage(STREAM, event("m-u1"), event("m-u2"))
        assert unit.staged == 2
        unit.discard()
        unit.stage(STREAM, event("m-u3"))
        assert await unit.flush() == 1 and unit.staged == 0
    assert await bench.relay.publish_pending() == 1
    entries = await bench.redis.xrange(STREAM)
    assert [wire.text_fields(f)["subject"] for _, f in entries] == ["m-u3"]


# --- the DLQ and reclaim through the real subscriber --------------------------------------


@pytest.fixture
async def running(bench: Bench) -> AsyncIterator[Bench]:
    """The consumer attached to a started FastStream broker, with its supervisor."""
    broker = RedisBroker(bench.url, message_format=wire.PlainFieldsFormat)
    bench.consumer.attach(broker)
    await bench.consumer.ensure_groups()
    await broker.start()
    supervisor = asyncio.create_task(bench.consumer.supervise())
    yield bench
    supervisor.cancel()
    try:
        # Bounded: a stop that hangs (seen twice under heavy load, cause not found) must say
        # where, not hold the session's loop until pytest's timeout and leave the consumer
        # running into the next tests.
        async with asyncio.timeout(60):
            await asyncio.gather(supervisor, return_exceptions=True)
            await broker.stop()
    except TimeoutError:
        pytest.fail(f"the consumer did not stop within 60 s; its tasks:\n{task_stacks()}")


def task_stacks() -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=out)
    return out.getvalue()


async def test_malformed_entry_goes_to_dlq_with_its_reason_and_neighbours_are_processed(
    running: Bench,
) -> None:
    bad = {
        "event_id": str(uuid.uuid4()),
        "type": TYPE,
        "source": "x",
        "subject": "m-bad",
        "occurred_at": "2026-11-22T10:00:00+00:00",
        "data": '{"municipality_id": 5}',
    }
    await xadd(running.redis, event("m-before"), bad, {"hello": "world"}, event("m-after"))

    async def settled() -> bool:
        return await running.effect_count() == 2 and len(await running.dlq()) == 2

    await eventually(settled)
    dead = await running.dlq()
    assert {d["dlq_reason"] for d in dead} == {"invalid"}
    invalid = next(d for d in dead if d.get("subject") == "m-bad")
    errors = json.loads(invalid["dlq_error"])["errors"]
    assert {tuple(e["loc"]) for e in errors} >= {("municipality_id",), ("name",)}
    assert invalid["dlq_group"] == "testers" and invalid["dlq_stream"] == STREAM
    assert "missing fields" in next(d for d in dead if "hello" in d)["dlq_error"]
    assert await running.pending() == 0


async def test_handler_that_keeps_failing_is_dead_lettered_after_max_deliveries(
    running: Bench,
) -> None:
    await xadd(running.redis, event("boom-forever"), event("m-fine"))

    async def dead_lettered() -> bool:
        return len(await running.dlq()) == 1

    await eventually(dead_lettered)
    (dead,) = await running.dlq()
    assert dead["dlq_reason"] == "max_deliveries"
    assert dead["dlq_deliveries"] == "3"
    assert "handler cannot apply boom-forever" in dead["dlq_error"]
    assert dead["subject"] == "boom-forever" and dead["dlq_group"] == "testers"
    assert await running.effect_count("m-fine") == 1
    assert await running.pending() == 0


async def test_entries_of_a_dead_consumer_are_reclaimed(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    await xadd(bench.redis, event("m-orphan-1"), event("m-orphan-2"))
    assert len(await read_as(bench, "crashed-replica")) == 2  # read, never acknowledged
    assert await bench.pending() == 2
    await asyncio.sleep(0.15)  # past reclaim_idle_ms
    outcome = await bench.consumer.reclaim(STREAM)
    assert len(outcome.applied) == 2
    assert await bench.effect_count() == 2
    assert await bench.pending() == 0


async def test_entries_pending_with_no_recorded_error_say_so_in_the_dlq(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    await xadd(bench.redis, event("m-cursed"))
    for _ in range(3):  # three consumers died holding it
        await read_as(bench, "crashed")
        await asyncio.sleep(0.12)
        await bench.redis.xclaim(
            STREAM, "testers", "crashed", 100, [(await bench.redis.xrange(STREAM))[0][0]]
        )
    await asyncio.sleep(0.12)
    outcome = await bench.consumer.reclaim(STREAM)
    assert len(outcome.dead) == 1
    (dead,) = await bench.dlq()
    assert "consumer died" in dead["dlq_error"]
    assert await bench.effect_count() == 0


async def test_lost_group_is_recreated_and_consuming_resumes(running: Bench) -> None:
    await xadd(running.redis, event("m-before-flush"))

    async def first() -> bool:
        return await running.effect_count("m-before-flush") == 1

    await eventually(first)
    await running.redis.flushall()  # Redis lost everything: streams and groups
    await asyncio.sleep(0.5)  # the subscriber hits NOGROUP and stops
    await xadd(running.redis, event("m-after-flush"))

    async def resumed() -> bool:
        return await running.effect_count("m-after-flush") == 1

    await eventually(resumed, within=20)
    assert await running.consumer.groups_exist()


async def test_no_entry_is_ever_trimmed(running: Bench) -> None:
    await xadd(running.redis, *[event(f"m-{i}") for i in range(120)])

    async def all_applied() -> bool:
        return await running.effect_count() == 120

    await eventually(all_applied)
    assert await running.redis.xlen(STREAM) == 120


async def test_span_per_entry_continues_the_producers_trace(bench: Bench) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bench.consumer.tracer = provider.get_tracer("consumer")
    producer = provider.get_tracer("producer")
    await bench.consumer.ensure_groups()
    with producer.start_as_current_span("produce") as span:
        carrier: dict[str, str] = {}
        from opentelemetry import propagate

        propagate.inject(carrier)
        trace_id = span.get_span_context().trace_id
    await xadd(bench.redis, wire.encode(event("m-t1"), carrier), event("m-t2"))
    await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    spans = [s for s in exporter.get_finished_spans() if s.name == f"{STREAM} process"]
    assert len(spans) == 2
    traced = [s for s in spans if s.context.trace_id == trace_id]
    assert len(traced) == 1 and traced[0].kind == trace.SpanKind.CONSUMER


async def test_only_sampled_entries_get_a_span_and_what_they_cause_carries_their_trace(
    bench: Bench,
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bench.consumer.tracer = provider.get_tracer("consumer")
    await bench.consumer.ensure_groups()
    sampled = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    unsampled = "00-" + "c" * 32 + "-" + "d" * 16 + "-00"
    await xadd(
        bench.redis,
        wire.encode(event("m-sampled"), {"traceparent": sampled}),
        wire.encode(event("m-unsampled"), {"traceparent": unsampled}),
    )
    await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    spans = [s for s in exporter.get_finished_spans() if s.name == f"{STREAM} process"]
    assert [f"{s.context.trace_id:032x}" for s in spans] == ["a" * 32]
    async with bench.engine.connect() as conn:
        staged = {
            f["subject"]: f.get("traceparent", "")
            for f in (await conn.execute(select(bench.tables.outbox.c.fields))).scalars()
        }
    # the echo of the sampled entry is a child of its consumer span; the other goes on as
    # it came (not sampled), so nothing downstream samples it either
    assert staged["echo-m-sampled"].split("-")[1:3] == [
        "a" * 32,
        f"{spans[0].context.span_id:016x}",
    ]
    assert staged["echo-m-sampled"].endswith("-01")
    assert staged["echo-m-unsampled"] == unsampled


async def test_poison_in_a_batch_costs_only_itself_and_is_invalid_at_once(bench: Bench) -> None:
    """A payload nested past the parser, a NUL, a NaN: each dead-lettered as invalid in
    the same pass, the valid entries around them applied (one MULTI, as a publisher might)."""
    await bench.consumer.ensure_groups()
    good = wire.encode(event("m-good"))
    poison = {
        "nested": {**wire.encode(event("m-deep")), "data": "[" * 2000 + "]" * 2000},
        "nul": wire.encode(event("m-nul\x00")),
        "nul_escaped": {**wire.encode(event("m-nul2")), "data": '{"municipality_id": "a\\u0000"}'},
        "nan": {**wire.encode(event("m-nan")), "data": '{"municipality_id": "x", "name": NaN}'},
    }
    pipe = bench.redis.pipeline(transaction=True)
    for fields in (good, *poison.values(), wire.encode(event("m-good-2"))):
        pipe.xadd(STREAM, fields)  # type: ignore[arg-type]
    await pipe.execute()
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 2 and len(outcome.dead) == len(poison)
    assert await bench.effect_count() == 2
    dead = await bench.dlq()
    assert {d["dlq_reason"] for d in dead} == {"invalid"}
    assert all(d["dlq_deliveries"] == "1" for d in dead)
    assert await bench.pending() == 0


async def test_a_known_type_on_the_wrong_stream_is_dead_lettered_not_skipped(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    course = {**wire.encode(event("m-x")), "type": "courses.course.completed"}
    await xadd(bench.redis, course, event("m-right"))
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 1 and not outcome.skipped
    (dead,) = await bench.dlq()
    assert dead["dlq_reason"] == "wrong_stream"
    assert "iomflow.routes.courses.inbound" in dead["dlq_error"]
    assert await bench.pending() == 0


async def test_an_entry_waiting_for_the_database_is_never_dead_lettered_for_it(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twice max_deliveries failures that say the database is down: the entry waits and is
    applied when it is back, with nothing in the DLQ; a real failure still counts."""
    from iomflow.shared import streams

    monkeypatch.setattr(streams, "BACKOFF_START_S", 0.01)
    monkeypatch.setattr(streams, "BACKOFF_MAX_S", 0.01)
    bench.outage["left"] = 2 * bench.consumer.settings.max_deliveries
    await bench.consumer.ensure_groups()
    await xadd(bench.redis, event("down-1"))
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.unavailable) == 1 and not outcome.failed
    for _ in range(3 * bench.consumer.settings.max_deliveries):
        await asyncio.sleep(0.12)  # past reclaim_idle_ms
        total = await bench.consumer.reclaim(STREAM)
        if total.applied:
            break
    assert total.applied and not total.dead
    assert bench.outage["left"] == 0
    assert await bench.effect_count("down-1") == 1
    assert await bench.dlq() == []
    assert await bench.pending() == 0
    assert await bench.redis.hlen(streams.unavailable_key(STREAM, "testers")) == 0


def test_what_counts_as_the_database_being_unavailable() -> None:
    from sqlalchemy.exc import IntegrityError

    from iomflow.shared.streams import unavailable

    assert unavailable(OperationalError("SELECT 1", {}, Exception("server closed")))
    assert unavailable(ConnectionRefusedError())
    wrapped = RuntimeError("handler")
    wrapped.__cause__ = OperationalError("x", {}, Exception("database is locked"))
    assert unavailable(wrapped)
    assert not unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not unavailable(ValueError("bad data"))


async def test_after_commit_actions_run_only_for_what_committed(bench: Bench) -> None:
    sessions = db.sessionmaker(bench.engine)
    ran: list[str] = []
    from iomflow.shared.unit import unit_of_work

    async with unit_of_work(sessions, bench.outbox, None) as deps:
        deps.after_commit(lambda: ran.append("kept"))
        mark = deps.mark()
        deps.after_commit(lambda: ran.append("rolled back"))
        deps.discard(mark)
        assert ran == []  # not before the commit
    assert ran == ["kept"]
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions, bench.outbox, None) as deps:
            deps.after_commit(lambda: ran.append("never"))
            raise RuntimeError("the transaction fails")
    assert ran == ["kept"]


async def test_tables_that_grew_are_analysed_on_postgresql(bench: Bench) -> None:
    """The planner takes a batch's key lookups to the index only with statistics: a table
    that grew by half since its last ANALYZE gets one (PostgreSQL; SQLite has no such step)."""
    rows = [{"event_id": str(uuid.uuid4()), "subject": f"m-{n}"} for n in range(3000)]
    async with bench.engine.begin() as conn:
        await conn.execute(insert(bench.effects), rows)
    grown = await db.analyze_grown(bench.engine)
    if bench.engine.dialect.name != "postgresql":
        assert grown == []
        return
    for _ in range(50):  # a backend reports what it changed when idle, within a second
        if "effects" in grown:
            break
        await asyncio.sleep(0.1)
        grown = await db.analyze_grown(bench.engine)
    assert "effects" in grown
    assert "effects" not in await db.analyze_grown(bench.engine)  # analysed: not again


async def test_an_entry_over_the_size_limit_is_dead_lettered_cut_short(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    limit = bench.consumer.settings.max_entry_bytes
    huge = {**wire.encode(event("m-huge")), "data": '{"name": "' + "x" * limit + '"}'}
    await xadd(bench.redis, huge, event("m-small"))
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 1 and len(outcome.rejected) == 1
    (dead,) = await bench.dlq()
    assert dead["dlq_reason"] == "too_large"
    assert len(dead["data"]) < 3_000 and "[cut:" in dead["data"]  # the letter is small
    assert dead["subject"] == "m-huge"  # what identifies it is kept whole
    assert await bench.pending() == 0


async def test_types_of_its_stream_a_service_does_not_apply_are_skipped_only_if_declared(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    """A type the subscription declares it ignores is acknowledged and logged with its id;
    one it neither handles nor declares is dead-lettered: nothing is dropped silently."""
    from dataclasses import replace as replaced

    from iomflow.shared.contracts import types_of

    registry = Streams.REGISTRY
    sub = bench.consumer.subscriptions[STREAM]
    bench.consumer.subscriptions[registry] = replaced(
        sub, stream=registry, ignores={"registry.tutor.upserted"}
    )
    await ensure_group(bench.redis, registry, "testers")
    assert {"registry.tutor.upserted", "registry.mentor.upserted"} <= types_of(registry)
    tutor = {**wire.encode(event("m-t")), "type": "registry.tutor.upserted"}
    mentor = {**wire.encode(event("m-m")), "type": "registry.mentor.upserted"}
    ids = [wire.as_text(await bench.redis.xadd(registry, f)) for f in (tutor, mentor)]
    reply = await bench.redis.xreadgroup("testers", "tester-1", {registry: ">"})
    entries = [(wire.as_text(i), wire.text_fields(f)) for i, f in reply[0][1]]
    with caplog.at_level("INFO", logger="iomflow.shared.streams"):
        outcome = await bench.consumer.process(registry, entries)
    assert outcome.skipped == [ids[0]]
    assert set(outcome.rejected) == {ids[1]}
    assert outcome.rejected[ids[1]].code == "not_handled"
    assert tutor["event_id"] in caplog.text  # the skip is said, with the event's id
    dead = [wire.text_fields(f) for _, f in await bench.redis.xrange(Streams.dlq(registry))]
    assert [d["dlq_reason"] for d in dead] == ["not_handled"]


async def test_an_occurred_at_without_a_time_zone_is_invalid(bench: Bench) -> None:
    await bench.consumer.ensure_groups()
    naive = {**wire.encode(event("m-naive")), "occurred_at": "2026-11-22T10:00:00"}
    await xadd(bench.redis, naive, event("m-aware"))
    outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 1 and len(outcome.dead) == 1
    (dead,) = await bench.dlq()
    assert dead["dlq_reason"] == "invalid" and "occurred_at" in dead["dlq_error"]


async def test_a_malformed_traceparent_is_dropped_and_said_and_the_event_applied(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await bench.consumer.ensure_groups()
    bad = wire.encode(event("m-bad-trace"), {"traceparent": "00-not-a-trace-01"})
    await xadd(bench.redis, bad)
    with caplog.at_level("WARNING", logger="iomflow.shared.streams"):
        outcome = await bench.consumer.process(STREAM, await read_as(bench, "tester-1"))
    assert len(outcome.applied) == 1
    assert "malformed traceparent" in caplog.text and bad["event_id"] in caplog.text
    async with bench.engine.connect() as conn:
        staged = (await conn.execute(select(bench.tables.outbox.c.fields))).scalars().all()
    (echo,) = staged
    assert echo["traceparent"] != "00-not-a-trace-01"  # a trace of its own from here
    assert len(echo["traceparent"].split("-")[1]) == 32


async def test_old_inbox_and_published_outbox_rows_are_pruned_and_nothing_else(
    bench: Bench,
) -> None:
    from datetime import UTC, datetime, timedelta

    from iomflow.shared import inbox
    from iomflow.shared import outbox as outboxes

    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=1)
    inbox_rows = [
        {"consumer": "g", "event_id": f"old-{n}", "received_at": old} for n in range(3)
    ] + [{"consumer": "g", "event_id": "recent", "received_at": recent}]
    out = bench.tables.outbox
    outbox_rows = [
        {"event_id": "sent-old", "stream": STREAM, "type": TYPE, "fields": {}, "created_at": old,
         "sent_at": old},
        {"event_id": "unsent-old", "stream": STREAM, "type": TYPE, "fields": {}, "created_at": old,
         "sent_at": None},
        {"event_id": "sent-recent", "stream": STREAM, "type": TYPE, "fields": {},
         "created_at": recent, "sent_at": recent},
    ]  # fmt: skip
    async with bench.engine.begin() as conn:
        await conn.execute(insert(bench.tables.inbox), inbox_rows)
        await conn.execute(insert(out), outbox_rows)
    sessions = db.sessionmaker(bench.engine)
    async with sessions() as session, session.begin():
        assert await inbox.prune(session, bench.tables.inbox, now - timedelta(days=30)) == 3
        assert await outboxes.prune(session, out, now - timedelta(days=7)) == 1
    async with bench.engine.connect() as conn:
        left = (await conn.execute(select(bench.tables.inbox.c.event_id))).scalars().all()
        kept = (await conn.execute(select(out.c.event_id))).scalars().all()
    assert left == ["recent"]
    assert sorted(kept) == ["sent-recent", "unsent-old"]  # an unsent row is never dropped
