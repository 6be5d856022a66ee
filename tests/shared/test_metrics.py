"""``/metrics`` of the service host on a real Redis: stream lag, pending entries and the
dead-letter stream's size follow what a test drives through a service, next to the
handler latency and batch-size histograms, the entries by outcome, the outbox backlog and
the HTTP requests; monitoring adds its KPIs to the same page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from sqlalchemy import Column, String, Table, insert

from iomflow.monitoring import views
from iomflow.monitoring.app import create_app as create_monitoring
from iomflow.monitoring.settings import Settings as MonitoringSettings
from iomflow.shared import db, wire
from iomflow.shared.contracts import Event, MunicipalityUpserted, Streams, new_event
from iomflow.shared.errors import Rejected
from iomflow.shared.service import ServiceSpec, Tables, create_service_app
from iomflow.shared.settings import BaseServiceSettings
from iomflow.shared.streams import Subscription
from iomflow.shared.telemetry import create_meter_provider, metric_exporter
from iomflow.shared.unit import Deps, Unit

STREAM = "test.metrics"
OUT = "test.metrics.out"
TYPE = "registry.municipality.upserted"
GROUP = "probe"


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_METRICS_EXPORTER",
    ):
        monkeypatch.delenv(name, raising=False)


def event(subject: str) -> Event[Any]:
    return new_event(
        TYPE,
        MunicipalityUpserted(municipality_id=subject, name="Тестовый район"),
        source="test",
        subject=subject,
    )


class Scrape:
    """One ``/metrics`` answer, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of the samples named ``name`` whose labels include ``labels``; None when
        there is none."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        return sum(found) if found else None


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def until(
    client: httpx.AsyncClient, check: Callable[[Scrape], bool], what: str, within: float = 60
) -> Scrape:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        page = await scrape(client)
        if check(page):
            return page
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}; last page:\n{page.text}")
        await asyncio.sleep(0.1)


# --- a service of the host, with a handler the test controls ----------------------------


@dataclass
class Probe:
    app: FastAPI
    client: httpx.AsyncClient
    redis: Redis

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def xadd(self, fields: dict[str, str]) -> str:
        return wire.as_text(await self.redis.xadd(STREAM, fields))  # type: ignore[arg-type]

    def at(self, page: Scrape, name: str) -> float | None:
        return page.value(name, stream=STREAM, group=GROUP)


def probe_app(redis_url: str, tmp_path: Path) -> FastAPI:
    metadata = db.new_metadata()
    tables = Tables(metadata)
    effects = Table("effects", metadata, Column("event_id", String(36), primary_key=True))

    async def handle(events: Sequence[Event[Any]], deps: Deps[Any]) -> None:
        for ev in events:
            if ev.subject.startswith("boom"):
                raise RuntimeError("the handler cannot apply it now")
            if ev.subject.startswith("never"):
                deps.reject(ev, Rejected("it breaks a rule"))
                continue
            await deps.session.execute(insert(effects).values(event_id=str(ev.event_id)))

    spec = ServiceSpec(
        name=GROUP,
        title="probe",
        package="iomflow.shared",
        tables=tables,
        subscriptions=[Subscription(STREAM, {TYPE: handle})],
        publishes=[(OUT, [TYPE])],
    )
    settings = BaseServiceSettings(
        redis_url=redis_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}",
        consumer="probe-1",
        poll_ms=20,
        relay_poll_s=0.05,
        reclaim_idle_ms=600_000,  # a failed entry stays pending for the whole test
        reclaim_interval_s=60,
    )
    app = create_service_app(spec, settings)
    app.state.metadata = metadata
    app.state.tables = tables
    return app


@pytest.fixture
async def probe(clean_redis: str, tmp_path: Path) -> AsyncIterator[Probe]:
    app = probe_app(clean_redis, tmp_path)
    async with app.state.runtime.engine.begin() as conn:
        await conn.run_sync(app.state.metadata.create_all)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://probe") as client,
        Redis.from_url(clean_redis) as redis,
    ):
        yield Probe(app, client, redis)
    await app.state.runtime.engine.dispose()
    await app.state.runtime.redis.aclose()


async def test_lag_pending_and_dlq_follow_the_consumer(probe: Probe) -> None:
    runtime = probe.runtime
    # Before the service starts: the group exists, three entries wait, two events are staged.
    await runtime.consumer.ensure_groups()
    for n in range(3):
        await probe.xadd(wire.encode(event(f"m-{n}")))
    async with runtime.sessions() as session, session.begin():
        unit = Unit(session, runtime.outbox)
        unit.stage(OUT, event("out-1"), event("out-2"))
        await unit.flush()

    page = await scrape(probe.client)
    assert probe.at(page, "iomflow_stream_lag") == 3
    assert probe.at(page, "iomflow_stream_length") == 3
    assert probe.at(page, "iomflow_stream_pending") == 0
    assert probe.at(page, "iomflow_stream_dlq_length") == 0
    assert page.value("iomflow_outbox_backlog", stream=OUT) == 2
    assert page.value("iomflow_metrics_source_up", source="streams") == 1
    assert page.value("iomflow_metrics_source_up", source="outbox") == 1
    assert page.value("iomflow_consumer_handler_duration_seconds_count") is None

    async with probe.app.router.lifespan_context(probe.app):
        page = await until(
            probe.client,
            lambda p: (
                probe.at(p, "iomflow_stream_lag") == 0
                and probe.at(p, "iomflow_stream_pending") == 0
                and p.value("iomflow_outbox_backlog", stream=OUT) == 0
                and p.value("iomflow_consumer_entries_total", outcome="applied") == 3
            ),
            "the three entries applied and the outbox published",
        )
        assert probe.at(page, "iomflow_stream_consumers") == 1
        assert page.value("iomflow_outbox_published_total") == 2
        latency = {"stream": STREAM, "group": GROUP, "type": TYPE}
        batches = probe.at(page, "iomflow_consumer_batch_size_count")
        assert batches is not None and batches >= 1
        # one handler run per batch here (its entries are of one type), however many entries
        runs = page.value("iomflow_consumer_handler_duration_seconds_count", **latency)
        assert runs == batches
        assert page.value("iomflow_consumer_handler_duration_seconds_sum", **latency) > 0
        assert (
            page.value("iomflow_consumer_handler_duration_seconds_bucket", **latency, le="+Inf")
            == runs
        )
        assert probe.at(page, "iomflow_consumer_batch_size_sum") == 3
        assert page.families["iomflow_consumer_handler_duration_seconds"].type == "histogram"
        assert page.families["iomflow_stream_lag"].type == "gauge"
        assert page.families["iomflow_consumer_entries"].type == "counter"

        # An invalid entry goes to the dead-letter stream at once; a rejected one too.
        await probe.xadd({"event_id": "not-a-uuid", "type": TYPE, "data": "{}"})
        await probe.xadd(wire.encode(event("never-1")))
        page = await until(
            probe.client,
            lambda p: (
                probe.at(p, "iomflow_stream_dlq_length") == 2
                and probe.at(p, "iomflow_stream_pending") == 0
                and p.value("iomflow_consumer_entries_total", outcome="dead_lettered") == 2
            ),
            "two dead letters",
        )

        # A failing handler leaves its entry pending (it is retried later).
        await probe.xadd(wire.encode(event("boom-1")))
        page = await until(
            probe.client,
            lambda p: (
                probe.at(p, "iomflow_stream_pending") == 1
                and (p.value("iomflow_consumer_entries_total", outcome="failed") or 0) >= 1
            ),
            "one pending entry",
        )
        assert probe.at(page, "iomflow_stream_lag") == 0
        assert probe.at(page, "iomflow_stream_dlq_length") == 2


async def test_http_requests_and_errors_by_route_template(probe: Probe) -> None:
    client = probe.client
    assert (await client.get("/asyncapi.json")).status_code == 200
    assert (await client.get("/asyncapi.json")).status_code == 200
    assert (await client.get("/no/such/page")).status_code == 404
    assert (await client.get("/health/live")).status_code == 200
    await client.get("/metrics")

    page = await scrape(client)
    ok = {"method": "GET", "route": "/asyncapi.json", "status_class": "2xx"}
    assert page.value("iomflow_http_requests_total", **ok) == 2
    assert page.value("iomflow_http_errors_total", **ok) is None
    assert page.value("iomflow_http_request_duration_seconds_count", **ok) == 2
    missing = {"route": "unmatched", "status_class": "4xx"}
    assert page.value("iomflow_http_requests_total", **missing) == 1
    assert page.value("iomflow_http_errors_total", **missing) == 1
    # Probes and scrapes are not counted.
    routes = {s.labels.get("route") for s in page.samples if s.name.startswith("iomflow_http")}
    assert routes == {"/asyncapi.json", "unmatched"}


async def test_monitoring_shows_its_kpis_beside_the_stream_metrics(
    clean_redis: str, tmp_path: Path, probe: Probe
) -> None:
    app = create_monitoring(
        MonitoringSettings(
            redis_url=clean_redis,
            data_dir=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'monitoring.db'}",
            migrate_on_start=True,
            relay_poll_s=0.05,
            poll_ms=20,
            kpi_worker="thread",
        )
    )
    app.state.runtime.context.cache = views.Cache(min_age_s=0, max_age_s=0)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://monitoring") as client,
    ):
        # Two services in one process: each page has its own group only.
        await probe.runtime.consumer.ensure_groups()
        page = await scrape(client)
        probe_page = await scrape(probe.client)
    assert page.value("iomflow_kpi_target", code="methodist_load_max") == 250
    assert page.value("iomflow_metrics_source_up", source="kpis") == 1
    for stream in (Streams.REGISTRY, Streams.DIAGNOSTICS, Streams.ROUTES):
        assert page.value("iomflow_stream_lag", stream=stream, group="monitoring") == 0
        assert page.value("iomflow_stream_dlq_length", stream=stream, group="monitoring") == 0
    assert {s.labels["group"] for s in page.samples if s.name == "iomflow_stream_lag"} == {
        "monitoring"
    }
    assert {s.labels["group"] for s in probe_page.samples if s.name == "iomflow_stream_lag"} == {
        GROUP
    }
    assert page.value("iomflow_kpi_target") is not None
    assert probe_page.value("iomflow_kpi_target") is None
    # prometheus-client's global registry is never used.
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("iomflow") for name in names)


def test_otlp_export_of_metrics_follows_the_otel_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert metric_exporter() is None
    create_meter_provider("routes").shutdown()  # no exporter, no reader: fine
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert isinstance(metric_exporter(), OTLPMetricExporter)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    assert metric_exporter() is None
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    assert isinstance(metric_exporter(), OTLPMetricExporter)


async def test_the_retention_job_prunes_old_rows_and_counts_them(probe: Probe) -> None:
    from datetime import UTC, datetime, timedelta

    from iomflow.shared.service import retention_job

    runtime = probe.runtime
    tables = probe.app.state.tables
    long_ago = datetime.now(UTC) - timedelta(days=runtime.settings.inbox_retention_days + 1)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            insert(tables.inbox),
            [{"consumer": GROUP, "event_id": f"e-{n}", "received_at": long_ago} for n in range(3)],
        )
    await retention_job(runtime, tables)()
    page = await scrape(probe.client)
    assert page.value("iomflow_pruned_rows_total", table="inbox") == 3
    assert page.value("iomflow_pruned_rows_total", table="outbox") == 0
