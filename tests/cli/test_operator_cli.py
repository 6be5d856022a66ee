"""The operator commands on a real Redis: ``iomflow streams``, ``iomflow dlq
list|show|replay|drop`` and ``iomflow trace``.

The point of ``dlq replay``: a dead-lettered entry goes through once its cause is fixed,
with one effect; replayed again (or a duplicate of it), it has none. Shown on the real
diagnostics service (a result for a campaign not opened yet; a result held for a teacher
who came too late) and on two consumer groups of one stream, one of which dead-lettered it.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy import Column, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from waiting import wait_for

from iomflow.cli import dlq as dlq_cli
from iomflow.cli import trace as trace_cli
from iomflow.cli.main import main as iomflow_main
from iomflow.diagnostics import service as diagnostics_service
from iomflow.diagnostics.app import create_app
from iomflow.diagnostics.settings import Settings
from iomflow.shared import db, wire
from iomflow.shared.contracts import (
    Event,
    MunicipalityUpserted,
    OrganizationUpserted,
    ResultSubmitted,
    Streams,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.ops import stream_stats
from iomflow.shared.outbox import Outbox
from iomflow.shared.service import Tables
from iomflow.shared.streams import (
    Consumer,
    DeliverySettings,
    Rejected,
    Subscription,
    dead_letter_fields,
)
from iomflow.shared.telemetry import create_tracer_provider
from iomflow.shared.unit import Deps

ADMIN = {"Authorization": "Bearer iomf_test_admin_key"}
RESULTS = Streams.RESULTS_INBOUND
RESULTS_DLQ = Streams.dlq(RESULTS)


@pytest.fixture(autouse=True)
def jsonl_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans go to the JSONL files of ``traces_dir``, whatever the environment says."""
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_SERVICE_NAME",
        "IOMFLOW_REDIS_URL",
        "IOMFLOW_TRACES_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


# --- running the command line ------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def iomflow(capsys: pytest.CaptureFixture[str]) -> Callable[..., Awaitable[Run]]:
    """``iomflow …`` in process, through the real entry point (``iomflow.cli.main``), in a
    thread: the commands are synchronous and the services under test share this loop."""

    async def run(*argv: str) -> Run:
        capsys.readouterr()

        def call() -> int:
            try:
                iomflow_main(list(argv))
            except SystemExit as exc:
                return int(exc.code or 0)
            return 0

        code = await asyncio.to_thread(call)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


async def xadd(redis_url: str, stream: str, entries: list[dict[str, str]]) -> list[str]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        added: list[Any] = [await redis.xadd(stream, e) for e in entries]  # type: ignore[arg-type,misc]
        return [str(i) for i in added]


async def entries_of(redis_url: str, stream: str) -> list[tuple[str, dict[str, str]]]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        reply: Any = await redis.xrange(stream)
        return [(str(i), dict(f)) for i, f in reply]


async def settled(redis_url: str, stream: str, group: str) -> bool:
    """Every entry of ``stream`` delivered to ``group`` and acknowledged."""
    async with Redis.from_url(redis_url) as redis:
        [stats] = await stream_stats(redis, [stream], [group])
    return stats.lag == 0 and stats.pending == 0


# --- the diagnostics service in process ---------------------------------------------------


def registry_events(*teachers: str) -> list[Event[Any]]:
    out: list[Event[Any]] = [
        new_event(
            "registry.municipality.upserted",
            MunicipalityUpserted(municipality_id="mun-01", name="г. Иркутск"),
            source="registries",
            subject="mun-01",
        ),
        new_event(
            "registry.organization.upserted",
            OrganizationUpserted(
                organization_id="org-1", municipality_id="mun-01", name="СОШ № 1", kind="school"
            ),
            source="registries",
            subject="org-1",
        ),
    ]
    for teacher_id in teachers:
        teacher = TeacherUpserted(
            teacher_id=teacher_id, organization_id="org-1", municipality_id="mun-01",
            position="учитель", audience="general", subjects=["математика"],
            age_band="35-44", experience_band="10-20",
        )  # fmt: skip
        out.append(
            new_event("registry.teacher.upserted", teacher, source="registries", subject=teacher_id)
        )
    return out


def two_results(teacher_id: str, campaign_id: str | None) -> list[Event[ResultSubmitted]]:
    """The standardized test and the self-diagnosis of one teacher, weak in ``digital``."""
    common: dict[str, Any] = {"teacher_id": teacher_id, "taken_at": "2026-10-15T10:00:00+08:00"}
    if campaign_id:
        common["campaign_id"] = campaign_id
    results = [
        ResultSubmitted.model_validate(
            {**common, "instrument": "standardized_test", "items": [
                {"item": "A1", "competency": "digital", "score": 0, "max_score": 2},
                {"item": "B1", "competency": "assessment", "score": 2, "max_score": 2},
            ]}
        ),
        ResultSubmitted.model_validate(
            {**common, "instrument": "self_diagnosis", "scores": {"digital": 30, "assessment": 90}}
        ),
    ]  # fmt: skip
    return [
        new_event("diagnostics.result.submitted", r, source="test-publisher", subject=teacher_id)
        for r in results
    ]


@dataclass
class Diagnostics:
    app: FastAPI
    client: httpx.AsyncClient
    redis_url: str

    async def diagnoses(self, teacher_id: str) -> list[dict[str, Any]]:
        reply = await self.client.get(f"/v1/teachers/{teacher_id}/diagnoses")
        reply.raise_for_status()
        found: list[dict[str, Any]] = reply.json()
        return found

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.client.get("/v1/stats")).json()
        return stats

    async def completed_events(self) -> list[dict[str, Any]]:
        return [
            json.loads(f["data"])
            for _, f in await entries_of(self.redis_url, Streams.DIAGNOSTICS)
            if f["type"] == "diagnostics.diagnosis.completed"
        ]

    async def dead_letters(self) -> list[dict[str, str]]:
        return [f for _, f in await entries_of(self.redis_url, RESULTS_DLQ)]


@asynccontextmanager
async def diagnostics(redis_url: str, tmp_path: Path, *teachers: str) -> AsyncIterator[Diagnostics]:
    app = create_app(
        Settings(
            redis_url=redis_url,
            data_dir=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'diagnostics.db'}",
            migrate_on_start=True,
            relay_poll_s=0.05,
            poll_ms=20,
            admin_key="iomf_test_admin_key",
            traces_dir=tmp_path / "traces",
            sql_tracing=False,
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://diagnostics") as c:
            svc = Diagnostics(app, c, redis_url)
            registry = [wire.encode(e) for e in registry_events(*teachers)]
            await xadd(redis_url, Streams.REGISTRY, registry)

            async def known() -> bool:
                return (await svc.stats())["teachers"] == len(teachers)

            await wait_for(known, "the registries' read model")
            yield svc


async def test_replay_brings_a_result_through_once_its_campaign_is_opened_with_one_effect(
    clean_redis: str, tmp_path: Path, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    url = ["--redis-url", clean_redis]
    async with diagnostics(clean_redis, tmp_path, "t-1") as svc:
        # The assessment centre publishes results for a campaign nobody has opened yet.
        events = two_results("t-1", "spring")
        await xadd(clean_redis, RESULTS, [wire.encode(e) for e in events])

        async def dead() -> bool:
            return len(await svc.dead_letters()) == 2

        await wait_for(dead, "the results to be dead-lettered")
        assert {f["dlq_reason"] for f in await svc.dead_letters()} == {"unknown_campaign"}

        listed = await iomflow("dlq", "list", "results", "--json", *url)
        assert listed.code == 0, listed.err
        [dlq] = json.loads(listed.out)["dlqs"]
        assert (dlq["dlq"], dlq["count"], dlq["reasons"]) == (
            RESULTS_DLQ,
            2,
            {"unknown_campaign": 2},
        )
        assert {e["event_id"] for e in dlq["entries"]} == {str(e.event_id) for e in events}
        assert all(e["group"] == "diagnostics" and e["deliveries"] == 1 for e in dlq["entries"])
        assert "data" not in dlq["entries"][0]  # no payload in the list

        # An operator opens the campaign (the cause), then replays the letters.
        opened = await svc.client.post(
            "/v1/campaigns",
            headers=ADMIN,
            json={"campaign_id": "spring", "name": "Весенняя диагностика",
                  "starts_on": "2026-09-01", "ends_on": "2026-12-31",
                  "required": ["standardized_test", "self_diagnosis"]},
        )  # fmt: skip
        assert opened.status_code == 201, opened.text
        replayed = await iomflow(
            "dlq", "replay", "--all", "--stream", RESULTS, "--reason", "unknown_campaign", *url
        )
        assert replayed.code == 0, replayed.out + replayed.err
        assert "Переиграно: 2" in replayed.out

        async def diagnosed() -> bool:
            return len(await svc.completed_events()) == 1

        await wait_for(diagnosed, "the diagnosis from the replayed results")
        [diagnosis] = await svc.diagnoses("t-1")
        assert diagnosis["campaign_id"] == "spring"
        assert [d["code"] for d in diagnosis["deficits"]][:1] == ["digital"]
        assert await svc.dead_letters() == []
        # Same event ids as published: the replay is the publisher's event, not a new one.
        replayed_ids = [f["event_id"] for _, f in await entries_of(clean_redis, RESULTS)][2:]
        assert sorted(replayed_ids) == sorted(str(e.event_id) for e in events)
        assert (await svc.stats())["results"] == 2

        # Replaying again: nothing left; a letter of a duplicate (the same event again,
        # e.g. dead-lettered by a second copy) goes through the inbox with no effect.
        again = await iomflow("dlq", "replay", "--all", "--stream", "results", *url)
        assert again.code == 0 and "Нечего переигрывать" in again.out
        original = wire.encode(events[1])
        [letter_id] = await xadd(
            clean_redis,
            RESULTS_DLQ,
            [dead_letter_fields(original, stream=RESULTS, group="diagnostics", entry_id="1-1",
                                reason="unknown_campaign", error="test", deliveries=1)],
        )  # fmt: skip
        duplicate = await iomflow("dlq", "replay", letter_id, *url)
        assert duplicate.code == 0, duplicate.out + duplicate.err
        assert f"Переиграно {letter_id}" in duplicate.out

        async def consumed() -> bool:
            return await settled(clean_redis, RESULTS, "diagnostics")

        await wait_for(consumed, "the duplicate to be consumed")
        assert (await svc.stats())["results"] == 2
        assert len(await svc.diagnoses("t-1")) == 1
        assert await svc.dead_letters() == []  # acknowledged as a duplicate, not refused
        replayed_again = await iomflow("dlq", "replay", letter_id, *url)
        assert replayed_again.code == 1 and "не найдена" in replayed_again.out
    assert len(await svc.completed_events()) == 1  # one diagnosis published, ever

    # The whole story is in the spans the service wrote: by teacher and by diagnosis.
    traces = tmp_path / "traces"
    by_teacher = await iomflow("trace", "t-1", "--traces-dir", str(traces), "--limit", "0")
    assert by_teacher.code == 0, by_teacher.err
    assert f"{RESULTS} process" in by_teacher.out
    assert "diagnostics.result.submitted" in by_teacher.out
    assert "ошибка" in by_teacher.out  # the first deliveries, refused
    by_diagnosis = await iomflow("trace", diagnosis["diagnosis_id"], "--traces-dir", str(traces))
    assert by_diagnosis.code == 0, by_diagnosis.err
    assert by_diagnosis.out.count("Трасса ") == 1
    assert f"диагностика {diagnosis['diagnosis_id']}" in by_diagnosis.out
    assert f"{Streams.DIAGNOSTICS} publish" in by_diagnosis.out
    assert "diagnostics.diagnosis.completed" in by_diagnosis.out


async def held_then_expired(
    svc: Diagnostics, teacher: str, on: datetime
) -> list[Event[ResultSubmitted]]:
    """Two results for a teacher the registries do not know: held, then expired on ``on``
    and dead-lettered as ``unknown_teacher``."""
    events = two_results(teacher, None)
    await xadd(svc.redis_url, RESULTS, [wire.encode(e) for e in events])
    await wait_for(lambda: held(svc, 2), "the results to be held")
    runtime = svc.app.state.runtime
    assert await diagnostics_service.expire_held(runtime.transaction, on) == 2
    await wait_for(lambda: letters(svc, 2), "the expired results to be dead-lettered")
    return events


async def held(svc: Diagnostics, n: int) -> bool:
    return (await svc.stats())["held"] == n


async def letters(svc: Diagnostics, n: int) -> bool:
    return len(await svc.dead_letters()) == n


async def test_replay_of_a_result_held_for_a_teacher_who_came_too_late_is_applied(
    clean_redis: str, tmp_path: Path, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    """A held result was taken into the inbox; expiring it forgets it there, so the
    replay (after the teacher is registered) is applied, not dropped as a duplicate."""
    async with diagnostics(clean_redis, tmp_path, "t-1") as svc:
        await held_then_expired(svc, "t-late", datetime.now(UTC) + timedelta(days=31))
        listed = await iomflow("dlq", "list", "--redis-url", clean_redis)
        assert "unknown_teacher 2" in listed.out and "t-late" in listed.out

        # The registries announce the teacher (late); the operator replays.
        await xadd(clean_redis, Streams.REGISTRY, [wire.encode(registry_events("t-late")[-1])])

        async def known() -> bool:
            return (await svc.stats())["teachers"] == 2

        await wait_for(known, "the late teacher")
        replayed = await iomflow(
            "dlq", "replay", "--all", "--reason", "unknown_teacher", "--redis-url", clean_redis
        )
        assert replayed.code == 0 and "Переиграно: 2" in replayed.out, replayed.out

        async def diagnosed() -> bool:
            return len(await svc.diagnoses("t-late")) == 1

        await wait_for(diagnosed, "the diagnosis from the replayed held results")
        assert await svc.dead_letters() == []
        assert (await svc.stats())["results"] == 2


async def test_a_result_replayed_too_early_is_held_and_dead_lettered_again(
    clean_redis: str, tmp_path: Path, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    """Replayed while its teacher is still unknown, a held result is held again and, when
    it expires again, dead-lettered again: the second letter is a row of its own in the
    outbox (not refused as the same event), and the expiry after it goes on."""
    async with diagnostics(clean_redis, tmp_path, "t-1") as svc:
        later = datetime.now(UTC) + timedelta(days=31)
        events = await held_then_expired(svc, "t-never", later)
        replayed = await iomflow("dlq", "replay", "--all", "--redis-url", clean_redis)
        assert replayed.code == 0, replayed.out + replayed.err
        await wait_for(lambda: held(svc, 2), "the replayed results to be held again")
        runtime = svc.app.state.runtime
        much_later = later + timedelta(days=31)
        expired = await diagnostics_service.expire_held(runtime.transaction, much_later)
        assert expired == 2
        await wait_for(lambda: letters(svc, 2), "the results to be dead-lettered again")
        again = await svc.dead_letters()
        assert sorted(d["event_id"] for d in again) == sorted(str(e.event_id) for e in events)
        assert {d["dlq_reason"] for d in again} == {"unknown_teacher"}


# --- two consumer groups on one stream ----------------------------------------------------

STREAM = "test.operator.events"
TYPE = "registry.municipality.upserted"


@dataclass
class Groups:
    """Two groups on STREAM; ``beta`` refuses events until ``ready``. Each effect is a row
    (group, event id)."""

    redis: Redis
    engine: AsyncEngine
    consumers: dict[str, Consumer]
    effects: Table
    ready: dict[str, bool]

    async def deliver(self) -> dict[str, Any]:
        """Each group reads what is new for it and processes it; the outcomes by group."""
        outcomes = {}
        for group, consumer in self.consumers.items():
            reply: Any = await self.redis.xreadgroup(group, f"{group}-1", {STREAM: ">"}, count=100)
            entries = (
                [(wire.as_text(i), wire.text_fields(f)) for i, f in reply[0][1]] if reply else []
            )
            outcomes[group] = await consumer.process(STREAM, entries)
        return outcomes

    async def effects_of(self, group: str) -> int:
        query = select(func.count()).select_from(self.effects).where(self.effects.c.group == group)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


@pytest.fixture
async def groups(clean_redis: str, tmp_path: Path) -> AsyncIterator[Groups]:
    metadata = db.new_metadata()
    tables = Tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("group", String(20), primary_key=True),
        Column("event_id", String(36), primary_key=True),
    )
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'groups.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    redis = Redis.from_url(clean_redis)
    ready = {"beta": False}
    consumers = {}
    for group in ("alpha", "beta"):

        async def handle(events: Sequence[Event[Any]], deps: Deps[Any], group: str = group) -> None:
            for ev in events:
                if group == "beta" and not ready["beta"]:
                    deps.reject(ev, Rejected("beta is not ready for it", code="not_ready"))
                    continue
                await deps.session.execute(
                    insert(effects).values(group=group, event_id=str(ev.event_id))
                )

        consumers[group] = Consumer(
            group=group,
            consumer=f"{group}-1",
            redis=redis,
            sessions=db.sessionmaker(engine),
            inbox_table=tables.inbox,
            outbox=Outbox(tables.outbox),
            tracer=TracerProvider().get_tracer("test"),
            subscriptions=[Subscription(STREAM, {TYPE: handle})],
            settings=DeliverySettings(),
        )
        await consumers[group].ensure_groups()
    yield Groups(redis, engine, consumers, effects, ready)
    await redis.aclose()
    await engine.dispose()


def municipality(subject: str) -> dict[str, str]:
    payload = MunicipalityUpserted(municipality_id=subject, name="Район")
    return wire.encode(new_event(TYPE, payload, source="test", subject=subject))


async def test_replay_reaches_every_group_and_only_the_one_that_failed_applies_it(
    groups: Groups, clean_redis: str, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    url = ["--redis-url", clean_redis]
    await xadd(clean_redis, STREAM, [municipality("m-1")])
    first = await groups.deliver()
    assert len(first["alpha"].applied) == 1 and len(first["beta"].rejected) == 1
    [(letter_id, letter)] = await entries_of(clean_redis, Streams.dlq(STREAM))
    assert (letter["dlq_group"], letter["dlq_reason"]) == ("beta", "not_ready")

    groups.ready["beta"] = True  # the cause is fixed
    replayed = await iomflow("dlq", "replay", letter_id, "--stream", STREAM, *url)
    assert replayed.code == 0, replayed.out + replayed.err
    assert "читают группы alpha, beta" in replayed.out
    second = await groups.deliver()
    assert len(second["alpha"].duplicates) == 1 and not second["alpha"].applied
    assert len(second["beta"].applied) == 1
    assert (await groups.effects_of("alpha"), await groups.effects_of("beta")) == (1, 1)
    assert await entries_of(clean_redis, Streams.dlq(STREAM)) == []

    # The same letter again (as if it had been left behind): both groups drop it.
    await xadd(clean_redis, Streams.dlq(STREAM), [letter])
    again = await iomflow("dlq", "replay", "--all", "--stream", STREAM, *url)
    assert again.code == 0 and "Переиграно: 1" in again.out
    third = await groups.deliver()
    assert all(len(o.duplicates) == 1 and not o.applied for o in third.values())
    assert (await groups.effects_of("alpha"), await groups.effects_of("beta")) == (1, 1)


async def test_letters_of_one_event_from_two_groups_go_back_as_one_entry(
    groups: Groups, clean_redis: str, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    fields = municipality("m-2")
    letters = [
        dead_letter_fields(fields, stream=STREAM, group=g, entry_id="5-0", reason="invalid",
                           error="bad", deliveries=1)
        for g in ("alpha", "beta")
    ]  # fmt: skip
    await xadd(clean_redis, Streams.dlq(STREAM), letters)
    replayed = await iomflow(
        "dlq", "replay", "--all", "--stream", STREAM, "--redis-url", clean_redis
    )
    assert replayed.code == 0, replayed.out
    assert "то же событие" in replayed.out and "invalid" in replayed.out
    assert [f["event_id"] for _, f in await entries_of(clean_redis, STREAM)] == [fields["event_id"]]
    assert await entries_of(clean_redis, Streams.dlq(STREAM)) == []


# --- streams ------------------------------------------------------------------------------


async def test_streams_shows_length_consumers_pending_lag_and_dead_letters(
    clean_redis: str, iomflow: Callable[..., Awaitable[Run]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Redis.from_url(clean_redis) as redis:
        for n in range(5):
            await redis.xadd(Streams.REGISTRY, municipality(f"m-{n}"))  # type: ignore[arg-type]
        await redis.xgroup_create(Streams.REGISTRY, "routes", id="0")
        await redis.xreadgroup("routes", "routes-1", {Streams.REGISTRY: ">"}, count=2)
        await redis.xadd(Streams.dlq(Streams.REGISTRY), {"type": "x", "dlq_reason": "invalid"})
    monkeypatch.setenv("IOMFLOW_REDIS_URL", clean_redis)  # no --redis-url: the variable
    shown = await iomflow("streams")
    assert shown.code == 0, shown.err
    [row] = [line.split() for line in shown.out.splitlines() if " routes " in line]
    assert row == [Streams.REGISTRY, "routes", "5", "1", "2", "3", "1"]
    assert "iomflow dlq list" in shown.out
    assert any(
        line.split()[:2] == [Streams.ROUTES, "—"] for line in shown.out.splitlines()
    )  # a stream nobody reads yet is listed too

    as_json = await iomflow("streams", "--json", "--stream", Streams.REGISTRY)
    [stats] = json.loads(as_json.out)["streams"]
    assert stats | {"last_delivered_id": ""} == {
        "stream": Streams.REGISTRY, "group": "routes", "length": 5, "dlq_length": 1,
        "consumers": 1, "pending": 2, "lag": 3, "lag_exact": True, "last_delivered_id": "",
    }  # fmt: skip


async def test_an_unreachable_redis_is_said_in_russian_with_exit_code_3(
    iomflow: Callable[..., Awaitable[Run]],
) -> None:
    for argv in (["streams"], ["dlq", "list"]):
        run = await iomflow(*argv, "--redis-url", "redis://127.0.0.1:1/0")
        assert run.code == 3 and "Redis не отвечает" in run.err


async def test_a_redis_user_that_may_not_look_is_told_so_not_that_redis_is_down(
    iomflow: Callable[..., Awaitable[Run]], clean_redis: str
) -> None:
    user, password = "streams-test-blind", "streams-test-password"
    async with Redis.from_url(clean_redis) as r:
        await r.execute_command(
            "ACL", "SETUSER", user, "reset", "on", f">{password}", "~*", "+@connection", "+xlen"
        )
    try:
        limited = clean_redis.replace("redis://", f"redis://{user}:{password}@", 1)
        run = await iomflow("streams", "--redis-url", limited)
        assert run.code == 2, run
        assert "не разрешено" in run.err and "iomflow-operator" in run.err
        assert "не отвечает" not in run.err and password not in run.err
    finally:
        async with Redis.from_url(clean_redis) as r:
            await r.execute_command("ACL", "DELUSER", user)


async def test_a_redis_url_without_a_scheme_is_a_command_line_mistake_with_exit_code_2(
    iomflow: Callable[..., Awaitable[Run]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a service refuses it at start (``BaseServiceSettings``), said in Russian, without
    a traceback and without the password."""
    for argv in (["streams"], ["dlq", "list"]):
        run = await iomflow(*argv, "--redis-url", "operator:s3cret@localhost:6379")
        assert run.code == 2, run
        assert "--redis-url" in run.err and "redis://" in run.err and "должен" in run.err
        assert "Traceback" not in run.err and "s3cret" not in run.err
    monkeypatch.setenv("IOMFLOW_REDIS_URL", "localhost:6379")
    run = await iomflow("dlq", "list")
    assert run.code == 2 and "IOMFLOW_REDIS_URL" in run.err and "localhost:6379" in run.err


async def test_argparse_mistakes_and_help_leave_with_their_own_exit_code(
    iomflow: Callable[..., Awaitable[Run]],
) -> None:
    for argv in (["streams", "--bogus"], ["dlq"], ["dlq", "list", "--limit", "x"], ["trace"]):
        run = await iomflow(*argv)
        assert run.code == 2 and "error:" in run.err, (argv, run)
    helped = await iomflow("dlq", "replay", "--help")
    assert helped.code == 0 and "--all" in helped.out


def test_a_letter_decodes_its_fields_once() -> None:
    letter = dlq_cli.Letter(RESULTS_DLQ, "1-0", {b"event_id": b"e-1", b"dlq_reason": b"invalid"})
    assert letter.fields is letter.fields
    assert letter.event_id == "e-1" and letter.summary()["reason"] == "invalid"


# --- dlq list, show, drop -----------------------------------------------------------------


async def letter_in(redis_url: str, stream: str, reason: str, group: str, **data: Any) -> str:
    payload = MunicipalityUpserted(municipality_id="m-9", name=data.get("name", "Р"))
    fields = wire.encode(new_event(TYPE, payload, source="test", subject="m-9"))
    error = json.dumps({"reason": "validation failed", "errors": [{"loc": ["data", "name"]}]})
    [entry_id] = await xadd(
        redis_url,
        Streams.dlq(stream),
        [dead_letter_fields(fields, stream=stream, group=group, entry_id="7-0", reason=reason,
                            error=error, deliveries=5)],
    )  # fmt: skip
    return entry_id


async def test_dlq_list_show_and_drop(
    clean_redis: str, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    url = ["--redis-url", clean_redis]
    a = await letter_in(clean_redis, Streams.REGISTRY, "max_deliveries", "routes", name="Секрет")
    b = await letter_in(clean_redis, Streams.REGISTRY, "invalid", "monitoring")
    c = await letter_in(clean_redis, RESULTS, "unknown_campaign", "diagnostics")

    listed = await iomflow("dlq", "list", *url)
    assert listed.code == 0
    assert f"{Streams.dlq(Streams.REGISTRY)}: 2; причины: invalid 1, max_deliveries 1" in listed.out
    assert f"{RESULTS_DLQ}: 1" in listed.out and all(i in listed.out for i in (a, b, c))
    assert "Секрет" not in listed.out  # the payload is not listed
    assert "Всего недоставленных: 3" in listed.out
    by_group = await iomflow("dlq", "list", "registry", "--group", "routes", "--json", *url)
    only = json.loads(by_group.out)["dlqs"]
    assert [(d["count"], d["matching"], [e["id"] for e in d["entries"]]) for d in only] == [
        (2, 1, [a])
    ]

    shown = await iomflow("dlq", "show", a, *url)
    assert shown.code == 0
    assert "max_deliveries" in shown.out and "Секрет" in shown.out and "routes" in shown.out
    assert '"validation failed"' in shown.out  # the error, pretty
    doc = json.loads((await iomflow("dlq", "show", a, "--json", *url)).out)
    assert doc["data"]["name"] == "Секрет" and doc["error"]["reason"] == "validation failed"
    assert doc["deliveries"] == 5 and doc["envelope"]["type"] == TYPE
    missing = await iomflow("dlq", "show", "1-1", *url)
    assert missing.code == 1 and "не найдена" in missing.err
    bad = await iomflow("dlq", "show", "nonsense", *url)
    assert bad.code == 2

    # drop: prints what, then wants --yes (no terminal to ask in CI)
    unconfirmed = await iomflow("dlq", "drop", a, *url)
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.err and a in unconfirmed.out
    assert len(await entries_of(clean_redis, Streams.dlq(Streams.REGISTRY))) == 2
    dropped = await iomflow("dlq", "drop", a, "1-1", "--yes", *url)
    assert dropped.code == 1  # one of the two was not found
    assert "Удалено: 1; не найдено: 1" in dropped.out and "Запись 1-1 не найдена" in dropped.out
    by_reason = await iomflow("dlq", "drop", "--all", "--reason", "unknown_campaign", "--yes", *url)
    assert by_reason.code == 0 and "Удалено: 1" in by_reason.out
    assert [i for i, _ in await entries_of(clean_redis, Streams.dlq(Streams.REGISTRY))] == [b]
    assert await entries_of(clean_redis, RESULTS_DLQ) == []


async def test_dlq_migrate_moves_the_letters_of_the_old_names_once(
    clean_redis: str, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    """Before the hash tag a DLQ was ``<stream>.dlq``: ``migrate`` renames one whose new name
    is still free (ids kept), and moves the letters of one whose new name already has some."""
    url = ["--redis-url", clean_redis]
    registry, results = Streams.legacy_dlq(Streams.REGISTRY), Streams.legacy_dlq(RESULTS)
    old = await xadd(clean_redis, registry, [{"event_id": "e-1"}, {"event_id": "e-2"}])
    await xadd(clean_redis, results, [{"event_id": "e-3"}])
    await xadd(clean_redis, RESULTS_DLQ, [{"event_id": "e-4"}])  # dead-lettered since

    run = await iomflow("dlq", "migrate", *url)
    assert run.code == 0 and "Перенесено записей: 3." in run.out, run
    assert [i for i, _ in await entries_of(clean_redis, Streams.dlq(Streams.REGISTRY))] == old
    moved = [f["event_id"] for _, f in await entries_of(clean_redis, RESULTS_DLQ)]
    assert moved == ["e-4", "e-3"]
    assert await entries_of(clean_redis, registry) == [] == await entries_of(clean_redis, results)
    again = await iomflow("dlq", "migrate", *url)
    assert again.code == 0 and "DLQ со старыми именами нет." in again.out
    assert len(await entries_of(clean_redis, RESULTS_DLQ)) == 2


async def test_dlq_command_line_mistakes_get_exit_code_2(
    clean_redis: str, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    url = ["--redis-url", clean_redis]
    for argv, says in (
        (["replay"], "Укажите идентификаторы записей или --all"),
        (["replay", "1-0", "--all"], "Укажите идентификаторы записей или --all"),
        (["replay", "1-0", "--reason", "invalid"], "только вместе с --all"),
        (["list", "iomflow"], "неоднозначен"),
        (["list", "no.such.stream"], "не найден"),
    ):
        run = await iomflow("dlq", *argv, *url)
        assert run.code == 2 and says in run.err, (argv, run)


async def test_replay_all_of_many_letters_shows_progress(
    clean_redis: str, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    letters = [
        dead_letter_fields(municipality(f"m-{n}"), stream=STREAM, group="g", entry_id="1-0",
                           reason="max_deliveries", error="down", deliveries=5)
        for n in range(45)
    ]  # fmt: skip
    await xadd(clean_redis, Streams.dlq(STREAM), letters)
    run = await iomflow("dlq", "replay", "--all", "--stream", Streams.dlq(STREAM),
                        "--redis-url", clean_redis)  # fmt: skip
    assert run.code == 0 and "Переиграно: 45" in run.out
    assert "переиграно: 45 из 45" in run.err
    assert len(await entries_of(clean_redis, STREAM)) == 45


# --- trace --------------------------------------------------------------------------------


TREE_LINE = re.compile(
    r"^\s+[\d.]+ ms  (?P<indent> *)(?P<service>\S+)\s+(?P<name>.+?)  [\d.]+ ms  (?P<status>\S+)"
)


def write_spans(traces_dir: Path) -> tuple[str, str]:
    """A diagnosis handed from diagnostics to routes, as the services write it: real
    TracerProviders with the JSONL exporter, the context carried in the entry's fields."""
    diag = create_tracer_provider("diagnostics", traces_dir)
    routes = create_tracer_provider("routes", traces_dir)
    diagnosis_id = str(uuid.uuid4())
    fields: dict[str, str] = {}
    tracer = diag.get_tracer("t")
    with tracer.start_as_current_span(
        f"{RESULTS} process",
        kind=trace.SpanKind.CONSUMER,
        attributes={"iomflow.event.type": "diagnostics.result.submitted",
                    "iomflow.event.subject": "t-7", "messaging.consumer.group.name":
                    "diagnostics"},
    ) as span:  # fmt: skip
        span.set_attribute("iomflow.diagnosis_id", diagnosis_id)
        trace_id = f"{span.get_span_context().trace_id:032x}"
        with tracer.start_as_current_span("INSERT diagnoses", attributes={"db.system": "sqlite"}):
            pass
        with tracer.start_as_current_span(
            f"{Streams.DIAGNOSTICS} publish",
            attributes={"iomflow.event.type": "diagnostics.diagnosis.completed"},
        ):
            propagate.inject(fields)
    with routes.get_tracer("t").start_as_current_span(
        f"{Streams.DIAGNOSTICS} process",
        context=propagate.extract(fields),
        attributes={"iomflow.event.type": "diagnostics.diagnosis.completed",
                    "iomflow.event.subject": "t-7", "messaging.consumer.group.name": "routes"},
    ) as failing:  # fmt: skip
        failing.set_status(trace.StatusCode.ERROR, "boom")
    # an unrelated trace of another teacher
    with tracer.start_as_current_span(
        f"{RESULTS} process", attributes={"iomflow.event.subject": "t-8"}
    ):
        pass
    diag.shutdown()
    routes.shutdown()
    return trace_id, diagnosis_id


async def test_trace_prints_the_span_tree_across_services(
    tmp_path: Path, iomflow: Callable[..., Awaitable[Run]], monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = tmp_path / "traces"
    trace_id, diagnosis_id = write_spans(traces)
    run = await iomflow("trace", diagnosis_id, "--traces-dir", str(traces))
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == f"Трасса {trace_id}: 4 спанов, сервисы: diagnostics, routes"
    assert "diagnostics.diagnosis.completed, diagnostics.result.submitted" in lines[1]
    assert "спанов с ошибкой: 1" in lines[1]
    tree = [TREE_LINE.match(line) for line in lines[2:] if line.strip()]
    assert all(tree), lines
    assert [(len(m["indent"]), m["service"], m["name"], m["status"]) for m in tree if m] == [
        (0, "diagnostics", f"{RESULTS} process", "ok"),
        (2, "diagnostics", f"{Streams.DIAGNOSTICS} publish", "ok"),
        (4, "routes", f"{Streams.DIAGNOSTICS} process", "ошибка"),
    ]  # parent first, each child indented under it; the SQL span left out
    assert f"диагностика {diagnosis_id}" in lines[2] and "группа routes" in lines[4]
    with_sql = await iomflow("trace", diagnosis_id, "--sql", "--traces-dir", str(traces))
    assert "INSERT diagnoses" in with_sql.out

    monkeypatch.setenv("IOMFLOW_TRACES_DIR", str(traces))
    by_teacher = await iomflow("trace", "t-7")
    assert by_teacher.out.count("Трасса ") == 1  # t-8's trace is not shown
    assert (await iomflow("trace", trace_id)).out.splitlines()[0] == lines[0]
    as_json = json.loads((await iomflow("trace", "t-7", "--json")).out)
    assert [t["trace_id"] for t in as_json] == [trace_id] and len(as_json[0]["spans"]) == 4

    nothing = await iomflow("trace", "t-404")
    assert nothing.code == 1 and "не найдено" in nothing.err
    no_dir = await iomflow("trace", "t-7", "--traces-dir", str(tmp_path / "nowhere"))
    assert no_dir.code == 2 and "нет файлов спанов" in no_dir.err


async def test_trace_skips_a_line_a_service_is_still_writing(
    tmp_path: Path, iomflow: Callable[..., Awaitable[Run]]
) -> None:
    traces = tmp_path / "traces"
    trace_id, _ = write_spans(traces)
    with (traces / "routes.jsonl").open("ab") as half:  # cut inside a UTF-8 character
        half.write(f'{{"trace_id": "{trace_id}", "name": "запись'.encode()[:-1])
    run = await iomflow("trace", trace_id, "--traces-dir", str(traces))
    assert run.code == 0, run.err
    assert run.out.splitlines()[0] == f"Трасса {trace_id}: 4 спанов, сервисы: diagnostics, routes"


def test_jaeger_traces_are_read_as_span_records() -> None:
    """The conversion of the Jaeger query API's JSON (as documented; no live Jaeger here)."""
    jaeger = {
        "traceID": "abc123",
        "spans": [
            {"traceID": "abc123", "spanID": "1", "operationName": "a process", "references": [],
             "startTime": 1_000, "duration": 5, "processID": "p1",
             "tags": [{"key": "iomflow.event.subject", "type": "string", "value": "t-1"}]},
            {"traceID": "abc123", "spanID": "2", "operationName": "b process",
             "references": [{"refType": "CHILD_OF", "traceID": "abc123", "spanID": "1"}],
             "startTime": 1_002, "duration": 2, "processID": "p2",
             "tags": [{"key": "otel.status_code", "type": "string", "value": "ERROR"}]},
        ],
        "processes": {"p1": {"serviceName": "diagnostics"}, "p2": {"serviceName": "routes"}},
    }  # fmt: skip
    spans = trace_cli.from_jaeger(jaeger)
    assert [(s["service"], s["parent_id"], s["status"]) for s in spans] == [
        ("diagnostics", None, "UNSET"),
        ("routes", "0000000000000001", "ERROR"),
    ]
    assert spans[0]["trace_id"] == "abc123".zfill(32) and spans[1]["end_ns"] == 1_004_000
    lines = trace_cli.tree_lines(spans)
    assert "diagnostics  a process" in lines[0] and "  routes" in lines[1]
