"""HTTP ingestion for outside publishers, in process on a real Redis and SQLite/PostgreSQL:
per-publisher keys (only hashes kept) and event types, 401/403/413/422/429 with codes, each
request audited in its own transaction; an accepted event is on the inbound stream with the
publisher as source, continues the request's trace and is applied once however often it is
posted. The 0003 migrations give the schema the code declares."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from sqlalchemy import select
from waiting import wait_for

from iomflow.diagnostics import app as diagnostics_app
from iomflow.diagnostics import repository as diagnostics_repository
from iomflow.diagnostics.settings import Settings as DiagnosticsSettings
from iomflow.routes import app as routes_app
from iomflow.routes import repository as routes_repository
from iomflow.routes.settings import Settings as RoutesSettings
from iomflow.shared import contracts, ingest, publishers, wire
from iomflow.shared.contracts import Streams, TeacherUpserted, new_event
from iomflow.shared.publishers import IngestTables
from iomflow.shared.telemetry import read_spans

ADMIN = {"Authorization": "Bearer iomf_test_admin_key"}
RESULT = "diagnostics.result.submitted"
ENROLLED = "courses.course.enrolled"
COMPLETED = "courses.course.completed"
MAX_BYTES = 4096


def common(redis_url: str, tmp_path: Path, database_url: str) -> dict[str, Any]:
    return {
        "redis_url": redis_url,
        "data_dir": tmp_path,
        "database_url": database_url,
        "migrate_on_start": True,
        "relay_poll_s": 0.05,
        "poll_ms": 20,
        "admin_key": "iomf_test_admin_key",
        "traces_dir": tmp_path / "traces",
        "ingest_max_bytes": MAX_BYTES,
    }


@pytest.fixture
async def diagnostics(
    clean_redis: str, tmp_path: Path, database_url: str
) -> AsyncIterator[FastAPI]:
    app = diagnostics_app.create_app(
        DiagnosticsSettings(**common(clean_redis, tmp_path, database_url))
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def routes(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    app = routes_app.create_app(RoutesSettings(**common(clean_redis, tmp_path, database_url)))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(diagnostics: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=diagnostics)
    async with httpx.AsyncClient(transport=transport, base_url="http://diagnostics") as c:
        yield c


@pytest.fixture
async def routes_client(routes: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=routes)
    async with httpx.AsyncClient(transport=transport, base_url="http://routes") as c:
        yield c


def tables_of(app: FastAPI) -> IngestTables:
    name = app.state.runtime.settings.service
    repository = diagnostics_repository if name == "diagnostics" else routes_repository
    return repository.ingest_tables


def ingests_of(app: FastAPI) -> list[str]:
    name = app.state.runtime.settings.service
    return list((diagnostics_app if name == "diagnostics" else routes_app).INGESTS)


async def add_publisher(
    app: FastAPI,
    publisher_id: str,
    types: list[str],
    rate: int | None = None,
    allowed: Sequence[str] | None = None,
) -> dict[str, str]:
    """A registered publisher's key header (``allowed``: by default what the app ingests,
    as its admin command checks)."""
    runtime = app.state.runtime
    async with runtime.sessions() as session, session.begin():
        key = await publishers.add_publisher(
            session,
            tables_of(app),
            publisher_id,
            types,
            rate_per_minute=rate,
            allowed=ingests_of(app) if allowed is None else allowed,
        )
    assert key is not None and key.startswith(publishers.KEY_PREFIX)
    return {"X-API-Key": key}


async def audit_rows(app: FastAPI) -> list[dict[str, Any]]:
    t = tables_of(app).audit
    async with app.state.runtime.sessions() as session:
        return [dict(r._mapping) for r in await session.execute(select(t).order_by(t.c.id))]


async def entries(redis_url: str, stream: str) -> list[dict[str, str]]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        return [fields for _, fields in await redis.xrange(stream)]


def result(teacher: str = "t-1", event_id: str | None = None, **data: Any) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": RESULT,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject": teacher,
        "data": {
            "teacher_id": teacher,
            "instrument": "self_diagnosis",
            "scores": {"digital": 70, "assessment": 80},
            **data,
        },
    }


def course(type_: str = ENROLLED, teacher: str = "t-9") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "occurred_at": "2026-10-01T09:00:00+08:00",
        "subject": teacher,
        "data": {"teacher_id": teacher, "program_id": "prog-0042", "on": "2026-10-01"},
    }


async def stats(client: httpx.AsyncClient) -> dict[str, int]:
    response = await client.get("/v1/stats")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# --- who may post ---------------------------------------------------------------------------


async def test_without_a_key_or_with_an_unknown_or_revoked_one_401_and_audited(
    client: httpx.AsyncClient, diagnostics: FastAPI, clean_redis: str
) -> None:
    response = await client.post("/v1/events", json=result())
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert "ключ" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"

    unknown = await client.post(
        "/v1/events", json=result(), headers={"Authorization": "Bearer iomfp_nobody"}
    )
    assert unknown.status_code == 401 and unknown.json()["code"] == "invalid_key"

    headers = await add_publisher(diagnostics, "cop-testing", [RESULT])
    async with diagnostics.state.runtime.sessions() as session, session.begin():
        assert await publishers.revoke_publisher(session, tables_of(diagnostics), "cop-testing")
    revoked = await client.post("/v1/events", json=result(), headers=headers)
    assert revoked.status_code == 401 and revoked.json()["code"] == "invalid_key"
    # An API key of a person is no publisher key: the admin key holds every role, not this.
    assert (await client.post("/v1/events", json=result(), headers=ADMIN)).status_code == 401

    rows = await audit_rows(diagnostics)
    assert [(r["outcome"], r["status"]) for r in rows] == [("unauthenticated", 401)] * 4
    assert rows[0]["publisher_id"] is None and rows[0]["key_hint"] is None
    assert rows[1]["key_hint"] == hashlib.sha256(b"iomfp_nobody").hexdigest()[:12]
    assert rows[2]["publisher_id"] == "cop-testing" and "отозван" in rows[2]["detail"]
    assert all(r["remote_addr"] for r in rows)
    assert await entries(clean_redis, Streams.RESULTS_INBOUND) == []


async def test_a_type_the_publisher_may_not_send_is_refused_403_and_audited(
    routes_client: httpx.AsyncClient, routes: FastAPI, clean_redis: str
) -> None:
    headers = await add_publisher(routes, "iro-enrolments", [ENROLLED])
    sent = course(COMPLETED)
    response = await routes_client.post("/v1/events", json=sent, headers=headers)
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "type_not_allowed" and body["allowed"] == [ENROLLED]
    assert "не разрешено" in body["detail"]
    [row] = await audit_rows(routes)
    assert row["outcome"] == "forbidden" and row["status"] == 403
    assert row["publisher_id"] == "iro-enrolments"
    assert (row["event_type"], row["event_id"]) == (COMPLETED, sent["event_id"])
    assert await entries(clean_redis, Streams.COURSES_INBOUND) == []

    # the operator sees it in the audit; a publisher's key is not an operator's
    listed = await routes_client.get("/v1/ingest/audit?outcome=forbidden", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [r["event_id"] for r in page["items"]] == [sent["event_id"]]
    assert (page["total"], page["offset"]) == (1, 0)
    assert (await routes_client.get("/v1/ingest/audit", headers=headers)).status_code == 401
    assert (await routes_client.get("/v1/ingest/audit")).status_code == 401


async def test_a_type_this_service_does_not_ingest_is_422_whatever_the_key_may_send(
    client: httpx.AsyncClient, diagnostics: FastAPI
) -> None:
    # A publisher of results posting a course event to diagnostics: the type is not one this
    # service takes at all (the key's own list is not the question), so 422, not 403.
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT])
    response = await client.post("/v1/events", json=course(), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "type_not_ingested"
    assert response.json()["accepted"] == sorted(ingests_of(diagnostics))  # results, needs
    # registered before this service stopped ingesting the type, say (its admin command
    # refuses it now: the publisher may send only what the service ingests)
    with pytest.raises(ValueError, match="не принимаются"):
        await add_publisher(diagnostics, "federal-portal", [ENROLLED])
    headers = await add_publisher(diagnostics, "federal-portal", [ENROLLED], allowed=[ENROLLED])
    response = await client.post("/v1/events", json=course(), headers=headers)
    assert response.status_code == 422 and response.json()["code"] == "type_not_ingested"
    assert [r["outcome"] for r in await audit_rows(diagnostics)] == ["invalid"] * 2


async def test_keys_are_kept_only_as_hashes(
    client: httpx.AsyncClient, diagnostics: FastAPI
) -> None:
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT], rate=50)
    key = headers["X-API-Key"]
    assert (await client.post("/v1/events", json=result(), headers=headers)).status_code == 202
    t = tables_of(diagnostics)
    async with diagnostics.state.runtime.sessions() as session:
        [row] = (await session.execute(select(t.publishers))).mappings().all()
        audit = (await session.execute(select(t.audit))).mappings().all()
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    stored = json.dumps([dict(row), *map(dict, audit)], default=str)
    assert key not in stored and key[len(publishers.KEY_PREFIX) :] not in stored
    assert row["event_types"] == [RESULT] and row["rate_per_minute"] == 50

    listed = await client.get("/v1/ingest/publishers", headers=ADMIN)
    assert listed.status_code == 200
    [publisher] = listed.json()
    assert "key_hash" not in publisher and publisher["effective_rate_per_minute"] == 50


# --- an accepted event -------------------------------------------------------------------------


async def test_an_accepted_event_is_on_the_stream_applied_once_and_one_trace(
    client: httpx.AsyncClient, diagnostics: FastAPI, clean_redis: str, tmp_path: Path
) -> None:
    teacher = TeacherUpserted(
        teacher_id="t-1",
        organization_id="org-1",
        municipality_id="mun-01",
        position="учитель",
        audience="general",
        age_band="35-44",
        experience_band="10-20",
    )
    async with Redis.from_url(clean_redis, decode_responses=True) as redis:
        registry = new_event(
            "registry.teacher.upserted", teacher, source="registries", subject="t-1"
        )
        await redis.xadd(Streams.REGISTRY, wire.encode(registry))  # type: ignore[arg-type]

    async def teacher_known() -> bool:
        return (await stats(client))["teachers"] == 1

    await wait_for(teacher_known, "the teacher in the read model")

    headers = await add_publisher(diagnostics, "cop-testing", [RESULT])
    sent = result(source="ignored")  # a payload field, not the envelope's: refused below
    assert (await client.post("/v1/events", json=sent, headers=headers)).status_code == 422

    sent = result()
    response = await client.post("/v1/events", json=sent, headers=headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["event_id"] == sent["event_id"] and body["source"] == "cop-testing"
    assert body["stream"] == Streams.RESULTS_INBOUND and body["entry_id"]
    [entry] = await entries(clean_redis, Streams.RESULTS_INBOUND)
    assert entry["event_id"] == sent["event_id"] and entry["source"] == "cop-testing"
    assert entry["traceparent"]
    assert wire.decode(entry).payload.scores == {"digital": 70, "assessment": 80}

    # posted again (a retry): accepted again, applied once
    again = await client.post("/v1/events", json={**sent, "source": "cop-testing"}, headers=headers)
    assert again.status_code == 202 and again.json()["entry_id"] != body["entry_id"]
    later = result(instrument="burnout_survey", scores={"emotional_exhaustion": 40})
    assert (await client.post("/v1/events", json=later, headers=headers)).status_code == 202

    async def both_applied() -> bool:
        return (await stats(client))["results"] >= 2

    await wait_for(both_applied, "the results applied")  # the stream is read in order
    assert (await stats(client))["results"] == 2
    results = diagnostics_repository.results
    async with diagnostics.state.runtime.sessions() as session:
        sources = (await session.execute(select(results.c.source))).scalars().all()
    assert sources == ["cop-testing", "cop-testing"]

    rows = await audit_rows(diagnostics)
    assert [r["outcome"] for r in rows] == ["invalid", "accepted", "accepted", "accepted"]
    assert rows[1]["event_id"] == rows[2]["event_id"] == sent["event_id"]

    # one trace: request (SERVER) -> the append (PRODUCER) -> the consumer's processing
    diagnostics.state.runtime.tracer_provider.force_flush()
    spans = {s["span_id"]: s for s in read_spans(tmp_path / "traces")}
    processed = [
        s
        for s in spans.values()
        if s["name"] == f"{Streams.RESULTS_INBOUND} process"
        and s["attributes"].get("messaging.message.id") == sent["event_id"]  # type: ignore[union-attr]
        and s["parent_id"] in spans
        and spans[s["parent_id"]]["kind"] == "PRODUCER"
    ]
    assert processed  # (a duplicate may be skipped in a batch without its own span)
    for span in processed:
        producer = spans[span["parent_id"]]  # type: ignore[index]
        request = spans[producer["parent_id"]]  # type: ignore[index]
        assert request["kind"] == "SERVER" and request["name"] == "POST /v1/events"
        assert span["trace_id"] == producer["trace_id"] == request["trace_id"]


async def test_a_batch_is_all_or_nothing(
    client: httpx.AsyncClient, diagnostics: FastAPI, clean_redis: str
) -> None:
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT])
    bad = [result("t-1"), result("t-2", scores={"digital": 150}), result("t-3")]
    response = await client.post("/v1/events/batch", json=bad, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_event"
    assert [e["loc"] for e in response.json()["errors"]] == [[1, "data", "scores", "digital"]]
    assert await entries(clean_redis, Streams.RESULTS_INBOUND) == []

    good = [result("t-1"), result("t-2"), result("t-3")]
    response = await client.post("/v1/events/batch", json=good, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3
    on_stream = await entries(clean_redis, Streams.RESULTS_INBOUND)
    assert [e["event_id"] for e in on_stream] == [e["event_id"] for e in good]
    assert {e["source"] for e in on_stream} == {"cop-testing"}
    assert [r["outcome"] for r in await audit_rows(diagnostics)] == ["invalid"] + ["accepted"] * 3

    foreign = [result(), course()]  # a course event: diagnostics does not take it at all
    response = await client.post("/v1/events/batch", json=foreign, headers=headers)
    assert response.status_code == 422 and response.json()["index"] == 1
    assert response.json()["code"] == "type_not_ingested"
    assert (await client.post("/v1/events/batch", json={}, headers=headers)).status_code == 422


async def test_a_batch_is_appended_in_one_transaction_or_not_at_all(clean_redis: str) -> None:
    # A user that may not XADD to the second stream: refused while queued, the EXEC is
    # aborted and the first stream stays empty; without the transaction it would not.
    url = urlsplit(clean_redis)
    fields = {"event_id": str(uuid.uuid4())}
    entries = [("iomflow.test.allowed", fields), ("iomflow.test.forbidden", fields)]
    async with Redis.from_url(clean_redis, decode_responses=True) as admin:
        await admin.acl_setuser(
            "ingest-test",
            enabled=True,
            passwords=["+secret"],
            keys=["iomflow.test.allowed"],
            commands=["+xadd", "+multi", "+exec", "+discard", "+ping", "+hello", "+client"],
        )
        try:
            as_user = f"redis://ingest-test:secret@{url.hostname}:{url.port}{url.path}"
            async with Redis.from_url(as_user) as redis:
                with pytest.raises(RedisError):
                    await wire.xadd_many(redis, entries, transaction=True)
                assert await admin.xlen("iomflow.test.allowed") == 0
                with pytest.raises(RedisError):
                    await wire.xadd_many(redis, entries)  # the outbox relay's way
                assert await admin.xlen("iomflow.test.allowed") == 1
        finally:
            await admin.acl_deluser("ingest-test")


async def test_an_unavailable_stream_gets_503_and_gives_the_rate_back(
    client: httpx.AsyncClient,
    diagnostics: FastAPI,
    clean_redis: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest.ratelimit, "clock", lambda: 1_800_000_000.0 + 15)
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT], rate=3)
    append = wire.xadd_many

    async def down(*args: Any, **kwargs: Any) -> list[str]:
        raise RedisConnectionError("the stream's Redis is down")

    monkeypatch.setattr(wire, "xadd_many", down)
    batch = [result("t-1"), result("t-2"), result("t-3")]
    response = await client.post("/v1/events/batch", json=batch, headers=headers)
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "unavailable" and response.headers["retry-after"] == "5"
    assert await entries(clean_redis, Streams.RESULTS_INBOUND) == []

    # our outage did not use the publisher's 3 events of this minute up
    monkeypatch.setattr(wire, "xadd_many", append)
    response = await client.post("/v1/events/batch", json=batch, headers=headers)
    assert response.status_code == 202, response.text
    assert len(await entries(clean_redis, Streams.RESULTS_INBOUND)) == 3
    outcomes = [r["outcome"] for r in await audit_rows(diagnostics)]
    assert outcomes == ["unavailable"] + ["accepted"] * 3


async def test_with_replicas_asked_for_an_append_no_replica_confirms_is_503(
    clean_redis: str, tmp_path: Path, database_url: str
) -> None:
    """``IOMFLOW_REDIS_WAIT_REPLICAS`` (behind Sentinel): a 202 only once a replica has the
    events; on a server with none, 503 and the rate given back (the publisher sends again)."""
    settings = DiagnosticsSettings(
        **common(clean_redis, tmp_path, database_url),
        redis_wait_replicas=1,
        redis_wait_timeout_ms=20,
    )
    app = diagnostics_app.create_app(settings)
    async with app.router.lifespan_context(app):
        headers = await add_publisher(app, "cop-replicated", [RESULT], rate=2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for _ in range(3):  # refused each time: the rate of 2 is never used up
                response = await client.post("/v1/events", json=result("t-1"), headers=headers)
                assert response.status_code == 503, response.text
                assert response.json()["code"] == "unavailable"
                assert response.headers["ratelimit-remaining"] == "2"
        notes = [r["detail"] for r in await audit_rows(app)]
        assert all("reached 0 of 1 replicas" in n for n in notes), notes


async def test_an_audit_failing_after_the_append_still_answers_202(
    client: httpx.AsyncClient,
    diagnostics: FastAPI,
    clean_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT])
    audit = ingest.Call.audit

    async def failing(self: Any, rows: Sequence[dict[str, Any]]) -> None:
        if any(row["outcome"] == "accepted" for row in rows):
            raise OSError("the database went away")
        await audit(self, rows)

    monkeypatch.setattr(ingest.Call, "audit", failing)
    sent = result(instrument="burnout_survey", external_id="cop-2026-secret-42")
    with caplog.at_level("ERROR", logger=ingest.router.__name__):
        response = await client.post("/v1/events", json=sent, headers=headers)
    assert response.status_code == 202, response.text  # the events are on the stream
    [entry] = await entries(clean_redis, Streams.RESULTS_INBOUND)
    assert entry["event_id"] == sent["event_id"] == response.json()["event_id"]
    assert await audit_rows(diagnostics) == []

    [record] = [r for r in caplog.records if r.name == ingest.router.__name__]
    logged = record.getMessage()
    assert "audit failed" in logged and sent["event_id"] in logged and "cop-testing" in logged
    assert "burnout_survey" not in logged and "secret" not in logged  # ids, no payload


async def test_the_version_is_by_default_the_types_current_one(
    client: httpx.AsyncClient,
    diagnostics: FastAPI,
    clean_redis: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(contracts.EVENT_VERSIONS, RESULT, 2)
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT])
    unversioned = {k: v for k, v in result().items() if k != "version"}
    response = await client.post("/v1/events", json=unversioned, headers=headers)
    assert response.status_code == 202, response.text
    [entry] = await entries(clean_redis, Streams.RESULTS_INBOUND)
    assert entry["version"] == "2"
    refused = await client.post("/v1/events", json=result(), headers=headers)  # version 1
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["errors"]] == [["version"]]


def test_each_ingested_type_goes_to_the_stream_whose_subscription_applies_it(
    tmp_path: Path,
) -> None:
    # The router finds the stream in the consumer's subscriptions; INGESTS names it for
    # `iomflow acl`. Built, never started: nothing connects.
    settings = {
        "redis_url": "redis://127.0.0.1:6379/0",
        "data_dir": tmp_path,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        "traces_dir": None,
        "migrate_on_start": False,
    }
    for module, app in [
        (diagnostics_app, diagnostics_app.create_app(DiagnosticsSettings(**settings))),
        (routes_app, routes_app.create_app(RoutesSettings(**settings))),
    ]:
        runtime = app.state.runtime
        try:
            subscriptions = runtime.consumer.subscriptions
            assert ingest.inbound_streams(subscriptions, module.INGESTS) == module.INGESTS
            schema = app.openapi()["paths"]["/v1/events"]["post"]["requestBody"]
            posted = schema["content"]["application/json"]["schema"]
            assert posted["properties"]["type"]["enum"] == sorted(module.INGESTS)
            assert [e["type"] for e in posted["examples"]] == sorted(module.INGESTS)
            assert all(ingest.validate(e, "a-publisher")[0] for e in posted["examples"])
        finally:
            runtime.tracer_provider.shutdown()
    with pytest.raises(LookupError):
        ingest.inbound_streams(subscriptions, [RESULT])  # routes applies no results


# --- what a bad request gets ------------------------------------------------------------------


async def test_an_invalid_event_gets_422_with_the_fields(
    client: httpx.AsyncClient, diagnostics: FastAPI, clean_redis: str
) -> None:
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT])

    async def refused(body: Any, **kwargs: Any) -> dict[str, Any]:
        response = await client.post("/v1/events", json=body, headers=headers, **kwargs)
        assert response.status_code == 422, response.text
        return response.json()  # type: ignore[no-any-return]

    def locs(body: dict[str, Any]) -> list[list[Any]]:
        assert body["code"] == "invalid_event" and body["detail"]
        return [e["loc"] for e in body["errors"]]

    assert locs(await refused(result(scores={"digital": 150}))) == [["data", "scores", "digital"]]
    assert locs(await refused({**result(), "event_id": "not-a-uuid"})) == [["event_id"]]
    missing = {k: v for k, v in result().items() if k != "subject"}
    assert locs(await refused(missing)) == [["subject"]]
    assert locs(await refused({**result(), "source": "someone-else"})) == [["source"]]
    assert locs(await refused({**result(), "version": 2})) == [["version"]]
    assert locs(await refused({**result(), "extra": 1})) == [["extra"]]
    no_scores = result()
    no_scores["data"].pop("scores")
    assert locs(await refused(no_scores)) == [["data"]]
    assert locs(await refused([result()])) == [[]]
    response = await client.post(
        "/v1/events", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_json"

    rows = await audit_rows(diagnostics)
    assert {r["outcome"] for r in rows} == {"invalid"} and len(rows) == 9
    assert await entries(clean_redis, Streams.RESULTS_INBOUND) == []


async def test_a_body_over_the_size_limit_gets_413(
    client: httpx.AsyncClient, diagnostics: FastAPI, clean_redis: str
) -> None:
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT])
    big = result(scores={f"c{n:04d}": 50 for n in range(400)})
    response = await client.post("/v1/events", json=big, headers=headers)
    assert response.status_code == 413
    assert response.json()["code"] == "too_large" and response.json()["max_bytes"] == MAX_BYTES

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the read body counts
        text = json.dumps(big).encode()
        for start in range(0, len(text), 1000):
            yield text[start : start + 1000]

    response = await client.post("/v1/events", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert [r["outcome"] for r in await audit_rows(diagnostics)] == ["too_large"] * 2
    assert await entries(clean_redis, Streams.RESULTS_INBOUND) == []


async def test_the_rate_is_a_sliding_window_of_what_was_accepted(
    client: httpx.AsyncClient,
    diagnostics: FastAPI,
    clean_redis: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = 1_800_000_000.0  # a minute's boundary
    now = [start + 15]  # 45 s to the end of this minute
    monkeypatch.setattr(ingest.ratelimit, "clock", lambda: now[0])
    headers = await add_publisher(diagnostics, "cop-testing", [RESULT], rate=5)
    other = await add_publisher(diagnostics, "mms-irkutsk", [RESULT])

    async def post(batch: int = 0, who: dict[str, str] = headers, **data: Any) -> httpx.Response:
        if batch:
            body = [result(**data) for _ in range(batch)]
            return await client.post("/v1/events/batch", json=body, headers=who)
        return await client.post("/v1/events", json=result(**data), headers=who)

    def rate(response: httpx.Response) -> tuple[str, str, str, str]:
        h = response.headers
        return (
            h["ratelimit-limit"],
            h["ratelimit-remaining"],
            h["ratelimit-reset"],
            h["ratelimit-policy"],
        )

    too_many = await post(batch=6)  # could never pass: split it
    assert too_many.status_code == 413 and too_many.json()["code"] == "too_large"
    assert rate(too_many)[1] == "5"
    accepted = await post(batch=3)
    assert accepted.status_code == 202
    assert rate(accepted) == ("5", "2", "45", "5;w=60")
    refused = await post(batch=3)  # would be 6 of 5
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited" and refused.json()["limit"] == 5
    assert 1 <= int(refused.headers["retry-after"]) <= 120
    assert rate(refused)[1] == "2"  # refused: it used nothing
    invalid = await post(scores={"digital": "много"})  # 422: it uses nothing either
    assert invalid.status_code == 422 and rate(invalid)[1] == "2"
    assert (await post(scores={f"c{n:04d}": 50 for n in range(400)})).status_code == 413
    assert rate(await post())[1] == "1"  # 4 of 5
    assert rate(await post())[1] == "0"  # 5 of 5
    full = await post()
    assert full.status_code == 429 and rate(full)[1] == "0"
    assert (await post(who=other)).status_code == 202  # each publisher has its own

    async with Redis.from_url(clean_redis, decode_responses=True) as redis:
        counter = ingest.rate_key("diagnostics", "cop-testing", int(start // 60))
        assert await redis.get(counter) == "5"  # what was accepted, nothing refused
        assert 0 < await redis.ttl(counter) <= 120

    # A second into the next minute the last one's five still weigh 5 × 59/60: no twice the
    # limit across the boundary. Room comes back as they fade: one event's worth in 11 s.
    now[0] = start + 61
    early = await post()
    assert early.status_code == 429 and early.headers["retry-after"] == "11"
    now[0] = start + 61 + 11
    assert (await post()).status_code == 202
    assert (await post()).status_code == 429
    now[0] = start + 60 + 30  # half of the last minute's five left: 2.5 + 1 + 1 ≤ 5
    assert (await post()).status_code == 202
    assert (await post()).status_code == 429

    outcomes = [r["outcome"] for r in await audit_rows(diagnostics)]
    assert outcomes.count("accepted") == 3 + 2 + 1 + 1 + 1
    assert outcomes.count("rate_limited") == 5


# --- diagnostics' own form: POST /v1/results ----------------------------------------------


async def test_results_over_http_need_a_publisher_key_with_the_type_or_an_operator(
    client: httpx.AsyncClient, diagnostics: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.ratelimit, "clock", lambda: 1_800_000_000.0 + 15)
    body = {"teacher_id": "t-1", "instrument": "self_diagnosis", "scores": {"digital": 70}}
    nobody = await client.post("/v1/results", json={**body, "source": "anyone-at-all"})
    assert nobody.status_code == 401 and nobody.json()["code"] == "unauthenticated"
    unknown = await client.post("/v1/results", json=body, headers={"X-API-Key": "iomfp_x"})
    assert unknown.status_code == 401 and unknown.json()["code"] == "invalid_key"
    courses = await add_publisher(diagnostics, "iro", [ENROLLED], allowed=[ENROLLED])
    wrong = await client.post("/v1/results", json=body, headers=courses)
    assert wrong.status_code == 403 and wrong.json()["code"] == "type_not_allowed"

    cop = await add_publisher(diagnostics, "cop-testing", [RESULT], rate=2)
    taken = await client.post("/v1/results", json=body, headers=cop)
    assert taken.status_code == 202, taken.text
    assert taken.json()["source"] == "cop-testing" and taken.json()["status"] == "held"
    assert taken.headers["ratelimit-remaining"] == "1"
    forged = await client.post("/v1/results", json={**body, "source": "other"}, headers=cop)
    assert forged.status_code == 422 and forged.json()["code"] == "source_mismatch"
    broken = await client.post(
        "/v1/results", json={**body, "scores": {"digital": 150}}, headers=cop
    )
    assert broken.status_code == 422 and broken.json()["code"] == "validation_error"
    assert broken.json()["errors"][0]["loc"][:2] == ["body", "scores"]
    rule = await client.post("/v1/results", json={**body, "scores": {"astrology": 5}}, headers=cop)
    assert rule.status_code == 422 and rule.json()["code"] == "unknown_competency"
    assert rule.headers["ratelimit-remaining"] == "1"  # refusals use no rate
    assert (await client.post("/v1/results", json=body, headers=cop)).status_code == 202
    over = await client.post("/v1/results", json=body, headers=cop)
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"

    # an operator by hand: not rated, audited under their name
    by_hand = await client.post("/v1/results", json=body, headers=ADMIN)
    assert by_hand.status_code == 202 and by_hand.json()["source"] == "operator:администратор"
    assert "ratelimit-limit" not in by_hand.headers
    assert (await client.post("/v1/results", json=body, headers=ADMIN)).status_code == 202

    rows = await audit_rows(diagnostics)
    assert [(r["outcome"], r["status"]) for r in rows] == [
        ("unauthenticated", 401),
        ("unauthenticated", 401),
        ("forbidden", 403),
        ("accepted", 202),
        ("invalid", 422),
        ("invalid", 422),
        ("invalid", 422),
        ("accepted", 202),
        ("rate_limited", 429),
        ("accepted", 202),
        ("accepted", 202),
    ]
    assert rows[3]["publisher_id"] == "cop-testing" and rows[3]["event_type"] == RESULT
    assert rows[-1]["publisher_id"] is None and "оператор администратор" in rows[-1]["detail"]


# --- the routes service -------------------------------------------------------------------------


async def test_routes_ingests_course_events_with_the_publisher_as_source(
    routes_client: httpx.AsyncClient, routes: FastAPI, clean_redis: str
) -> None:
    headers = await add_publisher(routes, "federal-portal", [ENROLLED, COMPLETED])
    sent = [course(ENROLLED), course(COMPLETED)]
    for body in sent:
        response = await routes_client.post("/v1/events", json=body, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["stream"] == Streams.COURSES_INBOUND

    async def kept() -> bool:
        response = await routes_client.get("/v1/courses?teacher_id=t-9")
        return len(response.json()["items"]) == 2

    await wait_for(kept, "the course events kept (held: the teacher is not known yet)")
    rows = (await routes_client.get("/v1/courses?teacher_id=t-9")).json()["items"]
    assert {r["source"] for r in rows} == {"federal-portal"}
    assert {r["event_id"] for r in rows} == {b["event_id"] for b in sent}


# --- the admin commands ------------------------------------------------------------------------


def test_publishers_are_managed_from_the_command_line(tmp_path: Path, clean_redis: str) -> None:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "IOMFLOW_DATA_DIR": str(tmp_path / "var"),
        "IOMFLOW_MIGRATE_ON_START": "true",
        "IOMFLOW_REDIS_URL": clean_redis,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "iomflow.routes", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    added = run("publishers", "add", "iro", "--types", f"{ENROLLED},{COMPLETED}", "--rate", "30")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith(publishers.KEY_PREFIX) and "не показывается повторно" in added.stderr
    assert run("publishers", "add", "iro", "--types", ENROLLED).returncode == 1  # taken
    wrong = run("publishers", "add", "cop", "--types", RESULT)
    assert wrong.returncode != 0 and "не принимаются" in wrong.stderr

    listed = run("publishers", "list")
    assert listed.returncode == 0 and "iro" in listed.stdout and "30/мин" in listed.stdout
    assert key not in listed.stdout
    assert run("publishers", "set", "iro", "--types", ENROLLED).returncode == 0
    rotated = run("publishers", "rotate", "iro")
    assert rotated.returncode == 0 and rotated.stdout.strip() != key
    assert run("publishers", "revoke", "iro").returncode == 0
    listed = run("publishers", "list")
    assert "отозван" in listed.stdout and f"{ENROLLED} " in listed.stdout
    audit = run("audit", "--outcome", "forbidden")
    assert audit.returncode == 0 and audit.stdout == ""
