"""Structured JSON logs: a line written while an event is handled carries the trace, the
span and the event's id; no line the plumbing writes about a bad entry or a failing
handler quotes the entry's values (they may be personal data)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError
from redis.asyncio import Redis

from iomflow.shared import db, logs, wire
from iomflow.shared.contracts import Event, Streams, TeacherUpserted, new_event
from iomflow.shared.outbox import Outbox
from iomflow.shared.service import Tables
from iomflow.shared.streams import Consumer, DeliverySettings, Subscription
from iomflow.shared.unit import Deps

STREAM = "test.logs"
TYPE = "registry.teacher.upserted"
SECRET = "Иванова Мария Петровна"  # what a publisher wrongly put into a payload
handler_log = logging.getLogger("tests.logs.handler")


def teacher(subject: str, **changes: Any) -> dict[str, Any]:
    payload = {
        "teacher_id": subject,
        "organization_id": "org-1",
        "municipality_id": "mun-01",
        "position": "учитель",
        "audience": "general",
        "age_band": "35-44",
        "experience_band": "10-20",
    }
    return payload | changes


def fields(subject: str, **changes: Any) -> dict[str, str]:
    event = new_event(
        TYPE, TeacherUpserted.model_validate(teacher(subject)), source="test", subject=subject
    )
    entry = wire.encode(event)
    entry["data"] = json.dumps(teacher(subject, **changes), ensure_ascii=False)
    return entry


@dataclass
class Bench:
    consumer: Consumer
    redis: Redis
    spans: InMemorySpanExporter
    lines: io.StringIO

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines.getvalue().splitlines()]

    async def process(self, *entries: dict[str, str]) -> list[str]:
        batch = []
        for entry in entries:
            entry_id = wire.as_text(await self.redis.xadd(STREAM, entry))  # type: ignore[arg-type]
            batch.append((entry_id, entry))
        await self.consumer.ensure_groups()
        await self.redis.xreadgroup(self.consumer.group, "loggers-1", {STREAM: ">"})
        await self.consumer.process(STREAM, batch)
        return [entry_id for entry_id, _ in batch]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record of the plumbing and of the test handler, as JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter("loggers"))
    watched = [logging.getLogger("iomflow"), handler_log]
    for logger in watched:
        logger.addHandler(handler)
    old_levels = [logger.level for logger in watched]
    for logger in watched:
        logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        for logger, level in zip(watched, old_levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture
async def bench(clean_redis: str, tmp_path: Path, captured: io.StringIO) -> AsyncIterator[Bench]:
    metadata = db.new_metadata()
    tables = Tables(metadata)
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    async def handle(events: Sequence[Event[Any]], deps: Deps[Any]) -> None:
        for ev in events:
            handler_log.info("applying %s", ev.subject)
            if ev.subject.startswith("boom"):
                # A handler's own validation, quoting the value like pydantic does.
                TeacherUpserted.model_validate(teacher(ev.subject, age_band=SECRET))

    redis = Redis.from_url(clean_redis)
    consumer = Consumer(
        group="loggers",
        consumer="loggers-1",
        redis=redis,
        sessions=db.sessionmaker(engine),
        inbox_table=tables.inbox,
        outbox=Outbox(tables.outbox),
        tracer=provider.get_tracer("test"),
        subscriptions=[Subscription(STREAM, {TYPE: handle})],
        settings=DeliverySettings(reclaim_idle_ms=600_000),
    )
    yield Bench(consumer, redis, spans, captured)
    await redis.aclose()
    await engine.dispose()


async def test_a_line_written_while_handling_carries_trace_span_and_event(bench: Bench) -> None:
    entry = fields("t-1")
    await bench.process(entry)
    (line,) = [r for r in bench.records() if r["logger"] == handler_log.name]
    (span,) = [s for s in bench.spans.get_finished_spans() if s.name == f"{STREAM} process"]
    assert line["message"] == "applying t-1"
    assert line["level"] == "INFO" and line["service"] == "loggers"
    assert line["trace_id"] == f"{span.context.trace_id:032x}"
    assert line["span_id"] == f"{span.context.span_id:016x}"
    assert line["event_id"] == entry["event_id"]
    assert line["time"].endswith("+00:00")
    # Outside the handler there is no event.
    handler_log.info("after")
    after = bench.records()[-1]
    assert after["message"] == "after" and "event_id" not in after and "trace_id" not in after


async def test_a_validation_failure_is_logged_without_the_payloads_values(
    bench: Bench,
) -> None:
    (entry_id,) = await bench.process(fields("t-2", audience=SECRET, position=SECRET))
    dead = await bench.redis.xrange(Streams.dlq(STREAM))
    assert len(dead) == 1
    # The dead letter keeps the details for its readers (so the value was at hand to leak).
    assert SECRET in wire.text_fields(dead[0][1])["dlq_error"]
    text = bench.lines.getvalue()
    warning = next(r for r in bench.records() if r["message"].startswith("dead-lettered"))
    assert warning["level"] == "WARNING" and "invalid" in warning["message"]
    assert f"{entry_id} (invalid)" in warning["message"]
    assert SECRET not in text and "Иванова" not in text


async def test_a_failing_handler_is_logged_without_the_values_it_quotes(bench: Bench) -> None:
    entry = fields("boom-1")
    await bench.process(entry)
    failed = next(r for r in bench.records() if r["message"].startswith("handler failed"))
    assert "ValidationError" in failed["message"] and "input_value=<hidden>" in failed["message"]
    assert failed["event_id"] == entry["event_id"] and failed["stream"] == STREAM
    assert SECRET not in bench.lines.getvalue()


def test_exception_texts_are_scrubbed_of_input_values() -> None:
    formatter = logs.JsonFormatter("routes")
    try:
        TeacherUpserted.model_validate(teacher("t-3", age_band=SECRET))
    except ValidationError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(formatter.format(record))
    assert "ValidationError" in line["exception"] and SECRET not in line["exception"]
    sql = "IntegrityError: UNIQUE failed\n[SQL: INSERT INTO t VALUES (?)]\n[parameters: ('x',)]"
    assert logs.scrub(sql).endswith("[parameters: <hidden>]")
    pg = "duplicate key value\nDETAIL:  Key (teacher_id)=(t-(1)) already exists."
    assert logs.scrub(pg).endswith("Key (teacher_id)=(<hidden>) already exists.")


def test_serve_logging_is_json_and_uvicorn_access_lines_lose_query_and_client() -> None:
    script = """
import logging, logging.config
from iomflow.shared import logs
logs.configure("routes")
logging.config.dictConfig(logs.uvicorn_log_config())
access = logging.getLogger("uvicorn.access")
line = '%s - "%s %s HTTP/%s" %d'
access.info(line, "10.1.2.3:5555", "GET", "/v1/teachers?name=Ivanova", "1.1", 200)
access.info(line, "10.1.2.3:5555", "GET", "/health/ready", "1.1", 200)
logging.getLogger("uvicorn.error").info("Application startup complete.")
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "IOMFLOW_LOG_FORMAT": "json"},
        check=True,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [r["message"] for r in lines] == [
        "GET /v1/teachers 200",
        "Application startup complete.",
    ]
    assert lines[0]["http_path"] == "/v1/teachers" and lines[0]["service"] == "routes"
    assert "10.1.2.3" not in done.stderr and "Ivanova" not in done.stderr
