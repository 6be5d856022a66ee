"""The operator's console's JSON API (``/v1/ops/…`` of monitoring), in process on a real Redis
and a real database: stream lag and pending per consumer group, dead letters listed by
reason, replayed onto their stream (the real consumer reads them again) and dropped, alerts
acknowledged (who and when), and a diagnosis's traces read from the span files. Only an
operator may; every refusal is said in Russian with a code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from redis.asyncio import Redis
from waiting import wait_for

from iomflow.monitoring import checks, repository
from iomflow.monitoring.app import create_app
from iomflow.monitoring.settings import Settings
from iomflow.shared import auth, wire
from iomflow.shared.contracts import Streams, TeacherUpserted, new_event
from iomflow.shared.streams import dead_letter_fields
from iomflow.shared.telemetry import create_tracer_provider

ADMIN_KEY = "iomf_test_admin_key"
REGISTRY = Streams.REGISTRY
REGISTRY_DLQ = Streams.dlq(REGISTRY)
OPERATOR_NAME = "Дежурный оператор"


@pytest.fixture(autouse=True)
def jsonl_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans go to the JSONL files of ``traces_dir``, whatever the environment says."""
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


def settings(redis_url: str, tmp_path: Path, database_url: str, **extra: Any) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path,
        database_url=database_url,
        migrate_on_start=True,
        relay_poll_s=0.05,
        poll_ms=20,
        kpi_worker="thread",
        admin_key=ADMIN_KEY,
        alert_check_interval_s=3600,  # the test checks when it wants to
        traces_dir=tmp_path / "traces",
        sql_tracing=False,
        **extra,
    )


class Console:
    """The monitoring app running, a client, and keys: an operator's and an analyst's."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, redis_url: str) -> None:
        self.app, self.client, self.redis_url = app, client, redis_url
        self.operator: dict[str, str] = {}
        self.analyst: dict[str, str] = {}

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def issue(self, name: str, *roles: str) -> dict[str, str]:
        async with self.runtime.sessions() as session:
            _, key = await auth.issue(session, self.runtime.api_keys, name, roles)
            await session.commit()
        return {"Authorization": f"Bearer {key}"}

    async def get(self, path: str, **params: Any) -> Any:
        reply = await self.client.get(path, params=params, headers=self.operator)
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def letters(self) -> list[dict[str, Any]]:
        answer = await self.get("/v1/ops/dead-letters", stream=REGISTRY)
        [dlq] = answer["dlqs"]
        return dlq["entries"]  # type: ignore[no-any-return]


@pytest.fixture
async def console(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[Console]:
    async with running(settings(clean_redis, tmp_path, database_url)) as found:
        yield found


@pytest.fixture
async def console_sqlite(clean_redis: str, tmp_path: Path) -> AsyncIterator[Console]:
    """The same on SQLite only: what is tested is Redis and the span files."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'monitoring.db'}"
    async with running(settings(clean_redis, tmp_path, url)) as found:
        yield found


class running:
    def __init__(self, given: Settings) -> None:
        self.settings = given
        self.app = create_app(given)

    async def __aenter__(self) -> Console:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://monitoring")
        found = Console(self.app, self._client, self.settings.redis_url)
        found.operator = await found.issue(OPERATOR_NAME, "operator")
        found.analyst = await found.issue("Аналитик", "analyst")
        return found

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)


def teacher_event(teacher_id: str) -> Any:
    teacher = TeacherUpserted(
        teacher_id=teacher_id, organization_id="org-1", municipality_id="mun-01",
        position="учитель", audience="general", subjects=["математика"],
        age_band="35-44", experience_band="10-20",
    )  # fmt: skip
    return new_event("registry.teacher.upserted", teacher, source="registries", subject=teacher_id)


async def dead_letter(
    redis_url: str, fields: dict[str, str], reason: str, group: str = "monitoring"
) -> str:
    """A letter on the registry stream's DLQ, as the consumers write it."""
    async with Redis.from_url(redis_url, decode_responses=True) as r:
        letter = dead_letter_fields(
            fields,
            stream=REGISTRY,
            group=group,
            entry_id="1700000000000-0",
            reason=reason,
            error="Сервис был недоступен",
            deliveries=5,
        )
        return str(await r.xadd(REGISTRY_DLQ, letter))  # type: ignore[arg-type]


async def ids_of(redis_url: str, stream: str) -> dict[str, dict[str, str]]:
    async with Redis.from_url(redis_url, decode_responses=True) as r:
        reply: Any = await r.xrange(stream)
    return {str(i): dict(f) for i, f in reply}


def refused(reply: httpx.Response, status: int, code: str) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["code"] == code, body
    assert any("а" <= ch <= "я" for ch in body["detail"].lower()), body  # said in Russian
    return str(body["detail"])


# --- streams ------------------------------------------------------------------------------


async def test_streams_show_each_groups_lag_pending_and_dead_letters(
    console_sqlite: Console,
) -> None:
    c = console_sqlite
    courses = Streams.COURSES_INBOUND
    async with Redis.from_url(c.redis_url) as r:
        for n in range(5):
            await r.xadd(courses, {"n": str(n)})
        await r.xgroup_create(courses, "someone", id="0")
        await r.xreadgroup("someone", "c1", {courses: ">"}, count=2)  # 2 pending, 3 behind
        await r.xadd(Streams.dlq(courses), {"dlq_reason": "invalid"})
    answer = await c.get("/v1/ops/streams")
    rows = {(s["stream"], s["group"]): s for s in answer["streams"]}
    row = rows[(courses, "someone")]
    assert (row["length"], row["pending"], row["lag"], row["consumers"]) == (5, 2, 3, 1)
    assert (row["dlq_length"], row["dlq"]) == (1, Streams.dlq(courses))
    assert rows[(REGISTRY, "monitoring")]["lag"] == 0  # the service's own group, caught up
    assert {s for s, _ in rows} == set(Streams.all())  # every stream, read or not


async def test_only_an_operator_reaches_the_console_and_is_told_why_in_russian(
    console_sqlite: Console,
) -> None:
    c = console_sqlite
    for method, path in (
        ("GET", "/v1/ops/streams"),
        ("GET", "/v1/ops/dead-letters"),
        ("GET", "/v1/ops/dead-letters/1-0"),
        ("POST", "/v1/ops/dead-letters/1-0/replay"),
        ("DELETE", "/v1/ops/dead-letters/1-0"),
        ("POST", "/v1/ops/alerts/dead_letters:x/acknowledge"),
        ("GET", "/v1/ops/traces?id=x"),
    ):
        refused(await c.client.request(method, path), 401, "unauthenticated")
        refused(await c.client.request(method, path, headers=c.analyst), 403, "forbidden")
    page = await c.client.get("/console")  # the page itself signs in by script
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )


async def test_a_redis_user_that_may_not_look_or_replay_is_said_so_not_shown_as_empty(
    clean_redis: str, tmp_path: Path
) -> None:
    """The console's Redis is the operator's user (``ops_redis_url``): with the service's own
    user, or any that lacks a command, the answer is 403 naming the setting, never a stream
    shown as unread or a replay half done."""
    user, password = "console-test-viewer", "console-test-password"
    async with Redis.from_url(clean_redis) as r:
        await r.execute_command(
            "ACL", "SETUSER", user, "reset", "on", f">{password}", "~*",
            "+@connection", "+xlen", "+xrange", "+xrevrange", "+exists", "+watch", "+unwatch",
            "+multi", "+exec", "+discard", "+xdel",
        )  # fmt: skip
    try:
        limited = clean_redis.replace("redis://", f"redis://{user}:{password}@", 1)
        url = f"sqlite+aiosqlite:///{tmp_path / 'monitoring.db'}"
        async with running(settings(clean_redis, tmp_path, url, ops_redis_url=limited)) as c:
            letter_id = await dead_letter(c.redis_url, wire.encode(teacher_event("t-5")), "x")
            streams = await c.client.get("/v1/ops/streams", headers=c.operator)
            assert "IOMFLOW_OPS_REDIS_URL" in refused(streams, 403, "redis_forbidden")
            listed = await c.client.get("/v1/ops/dead-letters", headers=c.operator)
            assert listed.status_code == 200, listed.text  # it may look at the letters
            replay = await c.client.post(
                f"/v1/ops/dead-letters/{letter_id}/replay", headers=c.operator
            )
            refused(replay, 403, "redis_forbidden")
            assert list(await ids_of(c.redis_url, REGISTRY_DLQ)) == [letter_id]  # still there
            assert await ids_of(c.redis_url, REGISTRY) == {}
    finally:
        async with Redis.from_url(clean_redis) as r:
            await r.execute_command("ACL", "DELUSER", user)


# --- dead letters -------------------------------------------------------------------------


async def test_a_letter_the_consumer_dead_lettered_is_listed_by_reason_and_replayed_onto_its_stream(
    console_sqlite: Console,
) -> None:
    c = console_sqlite
    bad = {**wire.encode(teacher_event("t-1")), "data": json.dumps({"teacher_id": "t-1"})}
    async with Redis.from_url(c.redis_url, decode_responses=True) as r:
        original = str(await r.xadd(REGISTRY, bad))  # type: ignore[arg-type]

    async def dead_lettered() -> bool:
        return bool(await c.letters())

    await wait_for(dead_lettered, "the monitoring consumer to dead-letter the bad entry")
    answer = await c.get("/v1/ops/dead-letters")
    by_stream = {d["stream"]: d for d in answer["dlqs"]}
    assert by_stream[REGISTRY]["count"] == 1 and by_stream[REGISTRY]["reasons"] == {"invalid": 1}
    assert all(d["count"] == 0 for s, d in by_stream.items() if s != REGISTRY)
    [letter] = by_stream[REGISTRY]["entries"]
    assert (letter["entry_id"], letter["group"], letter["reason"]) == (
        original,
        "monitoring",
        "invalid",
    )
    assert letter["event_id"] == bad["event_id"] and letter["type"] == "registry.teacher.upserted"
    assert "organization_id" in letter["error"]  # what the contract missed

    shown = await c.get(f"/v1/ops/dead-letters/{letter['id']}", stream="registry")
    assert (
        shown["data"] == {"teacher_id": "t-1"} and shown["envelope"]["event_id"] == bad["event_id"]
    )

    reply = await c.client.post(
        f"/v1/ops/dead-letters/{letter['id']}/replay", params={"stream": REGISTRY},
        headers=c.operator,
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    done = reply.json()
    assert (done["id"], done["stream"], done["groups"]) == (letter["id"], REGISTRY, ["monitoring"])
    on_stream = await ids_of(c.redis_url, REGISTRY)
    assert on_stream[done["entry_id"]]["event_id"] == bad["event_id"]  # back, the same event
    assert not any(k.startswith("dlq_") for k in on_stream[done["entry_id"]])
    assert letter["id"] not in await ids_of(c.redis_url, REGISTRY_DLQ)

    # The consumer reads it again and, the cause not fixed, dead-letters it anew.
    async def again() -> list[dict[str, Any]]:
        return [x for x in await c.letters() if x["entry_id"] == done["entry_id"]]

    await wait_for(again, "the consumer to read the replayed entry")
    [anew] = await again()
    assert anew["id"] != letter["id"] and anew["event_id"] == bad["event_id"]

    gone = await c.client.post(
        f"/v1/ops/dead-letters/{letter['id']}/replay", params={"stream": REGISTRY},
        headers=c.operator,
    )  # fmt: skip
    assert "уже вернули в поток или удалили" in refused(gone, 404, "letter_not_found")


async def test_a_replayed_letter_whose_cause_is_gone_is_applied_once(
    console_sqlite: Console,
) -> None:
    c = console_sqlite
    letter_id = await dead_letter(
        c.redis_url, wire.encode(teacher_event("t-7")), reason="max_deliveries"
    )
    assert (await c.get("/v1/stats"))["teachers"] == 0
    reply = await c.client.post(f"/v1/ops/dead-letters/{letter_id}/replay", headers=c.operator)
    assert reply.status_code == 200, reply.text  # found without naming its stream

    async def applied() -> bool:
        return bool((await c.get("/v1/stats"))["teachers"] == 1)

    await wait_for(applied, "the replayed teacher to be applied")
    assert await c.letters() == []


async def test_the_letters_of_one_event_from_two_groups_go_back_as_one_entry(
    console_sqlite: Console,
) -> None:
    c = console_sqlite
    fields = wire.encode(teacher_event("t-11"))
    other = await dead_letter(c.redis_url, wire.encode(teacher_event("t-12")), "invalid")
    first = await dead_letter(c.redis_url, fields, "max_deliveries")
    second = await dead_letter(c.redis_url, fields, "max_deliveries", group="somebody")
    before = len(await ids_of(c.redis_url, REGISTRY))
    reply = await c.client.post(f"/v1/ops/dead-letters/{second}/replay", headers=c.operator)
    assert reply.status_code == 200, reply.text
    assert reply.json()["also"] == [first]
    assert list(await ids_of(c.redis_url, REGISTRY_DLQ)) == [other]  # another event's stays
    on_stream = await ids_of(c.redis_url, REGISTRY)
    assert len(on_stream) == before + 1
    assert [f["event_id"] for f in on_stream.values()].count(fields["event_id"]) == 1


async def test_a_dropped_letter_is_gone_for_good_and_not_put_back(console_sqlite: Console) -> None:
    c = console_sqlite
    letter_id = await dead_letter(c.redis_url, wire.encode(teacher_event("t-8")), "invalid")
    before = await ids_of(c.redis_url, REGISTRY)
    reply = await c.client.delete(
        f"/v1/ops/dead-letters/{letter_id}", params={"stream": "registry"}, headers=c.operator
    )
    assert reply.status_code == 204, reply.text
    assert await ids_of(c.redis_url, REGISTRY_DLQ) == {}
    assert await ids_of(c.redis_url, REGISTRY) == before
    again = await c.client.delete(f"/v1/ops/dead-letters/{letter_id}", headers=c.operator)
    assert "ни в одной очереди" in refused(again, 404, "letter_not_found")


async def test_a_wrong_letter_id_or_stream_is_refused_in_russian(console_sqlite: Console) -> None:
    c = console_sqlite
    refused(
        await c.client.get("/v1/ops/dead-letters/abc", headers=c.operator), 422, "validation_error"
    )
    unknown = await c.client.get(
        "/v1/ops/dead-letters", params={"stream": "nowhere"}, headers=c.operator
    )
    assert "Потоки iomflow" in refused(unknown, 404, "unknown_stream")
    ambiguous = await c.client.get(
        "/v1/ops/dead-letters", params={"stream": "inbound"}, headers=c.operator
    )
    assert "неоднозначен" in refused(ambiguous, 404, "unknown_stream")


# --- alerts -------------------------------------------------------------------------------


async def test_an_operator_acknowledges_an_alert_and_a_raised_again_one_is_unacknowledged(
    console: Console,
) -> None:
    c = console
    runtime = c.runtime
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    letter_id = await dead_letter(c.redis_url, wire.encode(teacher_event("t-9")), "invalid")
    raised, _ = await checks.check(runtime, runtime.redis, now=at)
    alert_id = f"dead_letters:{REGISTRY_DLQ}"
    assert alert_id in raised  # beside the KPIs of an empty region, off their path

    listed = {a["alert_id"]: a for a in (await c.get("/v1/alerts"))["items"]}
    assert (listed[alert_id]["acknowledged_by"], listed[alert_id]["acknowledged_at"]) == (
        None,
        None,
    )
    reply = await c.client.post(f"/v1/ops/alerts/{alert_id}/acknowledge", headers=c.operator)
    assert reply.status_code == 200, reply.text
    seen = reply.json()
    assert seen["alert_id"] == alert_id and seen["acknowledged_by"] == OPERATOR_NAME
    first = datetime.fromisoformat(seen["acknowledged_at"])
    assert abs((first - datetime.now(UTC)).total_seconds()) < 60
    # acknowledged again, by someone else: the first acknowledgement holds
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    again = await c.client.post(f"/v1/ops/alerts/{alert_id}/acknowledge", headers=admin)
    assert again.status_code == 200 and again.json()["acknowledged_by"] == OPERATOR_NAME
    listed = {a["alert_id"]: a for a in (await c.get("/v1/alerts"))["items"]}
    assert listed[alert_id]["acknowledged_at"] == seen["acknowledged_at"]

    # the letter dropped: the alert is resolved, and a resolved one is not acknowledged
    await c.client.delete(f"/v1/ops/dead-letters/{letter_id}", headers=c.operator)
    _, resolved = await checks.check(runtime, runtime.redis, now=at)
    assert resolved == [alert_id]  # only it: the KPIs' alerts hold
    late = await c.client.post(f"/v1/ops/alerts/{alert_id}/acknowledge", headers=c.operator)
    assert "уже снято" in refused(late, 404, "alert_not_found")
    # a new letter: the same alert raised again, seen by nobody yet
    await dead_letter(c.redis_url, wire.encode(teacher_event("t-10")), "invalid")
    raised, _ = await checks.check(runtime, runtime.redis, now=at)
    assert raised == [alert_id]  # the others are still open: not raised again
    listed = {a["alert_id"]: a for a in (await c.get("/v1/alerts"))["items"]}
    assert (listed[alert_id]["acknowledged_by"], listed[alert_id]["acknowledged_at"]) == (
        None,
        None,
    )
    async with runtime.sessions() as session:
        assert (await repository.open_alerts(session))[alert_id].acknowledged_at is None
    unknown = await c.client.post("/v1/ops/alerts/nothing:here/acknowledge", headers=c.operator)
    refused(unknown, 404, "alert_not_found")


# --- traces -------------------------------------------------------------------------------


def write_trace(traces_dir: Path, diagnosis_id: str) -> str:
    """A diagnosis across two services, as their tracer providers write it: diagnostics
    takes a result (with an SQL statement) and completes the diagnosis; routes consumes
    the event. Returns the trace id."""
    diagnostics = create_tracer_provider("diagnostics", traces_dir)
    routes = create_tracer_provider("routes", traces_dir)
    tracer = diagnostics.get_tracer("test")
    with tracer.start_as_current_span("diagnostics.result.submitted process") as root:
        with tracer.start_as_current_span("INSERT diagnoses", attributes={"db.system": "sqlite"}):
            with tracer.start_as_current_span(
                "diagnosis completed", attributes={"iomflow.diagnosis_id": diagnosis_id}
            ):
                pass
        context = trace.set_span_in_context(root)
        with routes.get_tracer("test").start_as_current_span(
            "iomflow.diagnostics process",
            context=context,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "iomflow.event.type": "diagnostics.diagnosis.completed",
                "messaging.consumer.group.name": "routes",
            },
        ):
            pass
    with tracer.start_as_current_span(
        "another diagnosis", attributes={"iomflow.diagnosis_id": "d-other"}
    ):
        pass
    for provider in (diagnostics, routes):
        provider.force_flush()
        provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


async def test_a_diagnosis_trace_is_shown_across_services_from_the_span_files(
    console_sqlite: Console, tmp_path: Path
) -> None:
    c = console_sqlite
    trace_id = await asyncio.to_thread(write_trace, tmp_path / "traces", "d-42")
    answer = await c.get("/v1/ops/traces", id="d-42")
    [found] = answer["traces"]
    assert (found["trace_id"], found["services"]) == (trace_id, ["diagnostics", "routes"])
    tree = [(s["depth"], s["service"], s["name"]) for s in found["spans"]]
    assert tree == [
        (0, "diagnostics", "diagnostics.result.submitted process"),
        (1, "diagnostics", "diagnosis completed"),  # the SQL span between is left out
        (1, "routes", "iomflow.diagnostics process"),
    ]
    consumed = found["spans"][2]
    assert (consumed["event_type"], consumed["group"], consumed["kind"]) == (
        "diagnostics.diagnosis.completed",
        "routes",
        "CONSUMER",
    )
    assert found["spans"][1]["diagnosis_id"] == "d-42"
    assert all(s["offset_ms"] >= 0 and s["duration_ms"] >= 0 for s in found["spans"])
    with_sql = await c.get("/v1/ops/traces", id=trace_id, sql="true")  # by trace id too
    assert [s["name"] for s in with_sql["traces"][0]["spans"]][1] == "INSERT diagnoses"
    assert (await c.get("/v1/ops/traces", id="d-nobody"))["traces"] == []


async def test_traces_without_span_files_or_from_a_collector_are_refused_in_russian(
    clean_redis: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'monitoring.db'}"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    no_files = settings(clean_redis, tmp_path, url).model_copy(update={"traces_dir": None})
    async with running(no_files) as c:
        reply = await c.client.get("/v1/ops/traces", params={"id": "d-1"}, headers=admin)
        assert "IOMFLOW_TRACES_DIR" in refused(reply, 503, "traces_unavailable")
    collector = settings(clean_redis, tmp_path, url, traces_query_url="http://jaeger:16686")
    async with running(collector) as c:
        reply = await c.client.get("/v1/ops/traces", params={"id": "d-1"}, headers=admin)
        assert "IOMFLOW_TRACES_QUERY_URL" in refused(reply, 501, "traces_source_unsupported")
