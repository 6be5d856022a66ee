"""Operational metrics of a service: OpenTelemetry instruments, ``/metrics`` for Prometheus.

Each service has its own ``MeterProvider`` (``telemetry.create_meter_provider``, never the
global one) with two readers: an in-memory pull reader that ``GET /metrics`` renders in
the Prometheus text format into a private ``CollectorRegistry`` (several services in one
process never meet in prometheus-client's global registry), and, when configured, the OTLP
exporting reader. The measures (labels in braces):

- ``iomflow_stream_lag{stream,group}``: entries of a subscribed stream not yet delivered to
  the service's group; ``iomflow_stream_pending{stream,group}``: delivered, not yet
  acknowledged (a failing handler keeps its entry pending until it is retried or
  dead-lettered); ``iomflow_stream_dlq_length{stream,group}``: entries in the stream's
  dead-letter stream (all groups' dead letters: it is one stream per stream);
  ``iomflow_stream_length{stream,group}``, ``iomflow_stream_consumers{stream,group}``;
- ``iomflow_outbox_backlog{stream}``: staged events not yet published (outbox rows with no
  ``sent_at``); ``iomflow_outbox_published_total``: published by this process's relay;
- ``iomflow_consumer_handler_duration_seconds{stream,group,type}``: a handler's run (the
  events of one type in a batch);
  ``iomflow_consumer_batch_size{stream,group}``: entries per processed batch;
  ``iomflow_consumer_entries_total{stream,group,type,outcome}``: outcome one of applied,
  duplicate, skipped, failed, dead_lettered (``type`` is ``unknown`` for an entry whose type
  is not one of the contracts);
- ``iomflow_http_requests_total{method,route,status_class}``, the same for
  ``iomflow_http_errors_total`` (status 400 and over, or an unhandled exception) and
  ``iomflow_http_request_duration_seconds``; ``route`` is the route template
  (``/v1/routes/{route_id}``), ``unmatched`` for paths no route serves. ``/metrics`` and
  ``/health/*`` are not counted.
- ``iomflow_sql_statements_total``: statements sent to the service's database;
  ``iomflow_pruned_rows_total{table}``: inbox and outbox rows the retention job removed;
  ``iomflow_process_cpu_seconds_total``, ``iomflow_process_resident_memory_bytes``;
- ``iomflow_metrics_source_up{source}``: 1 when the last read of a source (``streams``,
  ``outbox``, or a service's own collector) worked.

Stream statistics and the outbox backlog are read (``refresh``) when ``/metrics`` is
scraped, and periodically when an OTLP exporter is on; the observable gauges report the
last values read. Labels never carry personal data: streams, groups, event types, route
templates, status classes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iomflow.shared import telemetry
from iomflow.shared.contracts import EVENT_TYPES
from iomflow.shared.ops import GroupStats, stream_stats

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from iomflow.shared.outbox import Outbox, OutboxRelay

log = logging.getLogger(__name__)

SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
EXCLUDED_PATHS = ("/metrics", "/health/")
"""Paths not counted in the HTTP measures (nor traced: see ``service.py``)."""


def event_type_label(type_: str) -> str:
    """A contract's type as it is; anything else (a publisher's typo) as ``unknown``, so a
    bad publisher cannot grow the label set."""
    return type_ if type_ in EVENT_TYPES else "unknown"


class ConsumerMetrics:
    """What ``Consumer`` records: handler latency, batch sizes, entries by outcome."""

    def __init__(self, meter: Meter | None, group: str) -> None:
        meter = meter or NoOpMeter("iomflow.consumer")
        self.group = group
        self.handler_duration = meter.create_histogram(
            "iomflow_consumer_handler_duration_seconds",
            unit="s",
            description="Time a handler took to apply a run of events of one type (a batch)",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.batch_size = meter.create_histogram(
            "iomflow_consumer_batch_size",
            description="Entries per processed batch",
            explicit_bucket_boundaries_advisory=BATCH_BUCKETS,
        )
        self.entries = meter.create_counter(
            "iomflow_consumer_entries",
            description="Entries processed, by outcome",
        )

    def handled(self, stream: str, type_: str, seconds: float) -> None:
        self.handler_duration.record(
            seconds, {"stream": stream, "group": self.group, "type": event_type_label(type_)}
        )

    def batch(self, stream: str, size: int) -> None:
        self.batch_size.record(size, {"stream": stream, "group": self.group})

    def outcomes(self, stream: str, counts: Mapping[tuple[str, str], int]) -> None:
        """``counts``: (outcome, event type) → entries."""
        for (outcome, type_), n in counts.items():
            self.entries.add(
                n,
                {
                    "stream": stream,
                    "group": self.group,
                    "type": event_type_label(type_),
                    "outcome": outcome,
                },
            )


@dataclass
class Sources:
    """Where the observable gauges read from (set by the host once the runtime exists)."""

    redis: Redis
    group: str
    streams: Sequence[str]
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    relay: OutboxRelay
    published: Sequence[str] = ()  # streams the service publishes: backlog 0 when none


@dataclass
class Snapshot:
    """The last values read by ``ServiceMetrics.refresh``."""

    streams: list[GroupStats] = field(default_factory=list)
    backlog: dict[str, int] = field(default_factory=dict)
    up: dict[str, bool] = field(default_factory=dict)


ExtraCollector = Callable[[Any], Awaitable[Collector]]
"""A service's own collector for ``/metrics`` (e.g. monitoring's KPIs), built per scrape
from the runtime."""


class ServiceMetrics:
    """One service's meter provider, its instruments and its ``/metrics`` rendering."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.reader = InMemoryMetricReader()
        self.provider: MeterProvider = telemetry.create_meter_provider(service, [self.reader])
        self.exporting = telemetry.metrics_exported()  # then refreshed periodically too
        self.meter = self.provider.get_meter(f"iomflow.{service}")
        self.sources: Sources | None = None
        self.snapshot = Snapshot()
        self.sql_statements = 0
        self.pruned: dict[str, int] = {}  # table -> rows pruned by the retention job
        self._observe()
        self.http_requests = self.meter.create_counter(
            "iomflow_http_requests", description="HTTP requests, by route template and status"
        )
        self.http_errors = self.meter.create_counter(
            "iomflow_http_errors",
            description="HTTP requests answered with status 400 or over, or failed",
        )
        self.http_duration = self.meter.create_histogram(
            "iomflow_http_request_duration_seconds",
            unit="s",
            description="Time to answer an HTTP request",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )

    # --- observable gauges -----------------------------------------------------------

    def _observe(self) -> None:
        def per_group(attr: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def observe(_: CallbackOptions) -> Iterable[Observation]:
                return [
                    Observation(getattr(s, attr), {"stream": s.stream, "group": s.group})
                    for s in self.snapshot.streams
                ]

            return observe

        for name, attr, description in (
            ("iomflow_stream_lag", "lag", "Entries not yet delivered to the group"),
            ("iomflow_stream_pending", "pending", "Entries delivered, not yet acknowledged"),
            ("iomflow_stream_dlq_length", "dlq_length", "Entries in the dead-letter stream"),
            ("iomflow_stream_length", "length", "Entries in the stream"),
            ("iomflow_stream_consumers", "consumers", "Consumers of the group"),
        ):
            self.meter.create_observable_gauge(
                name, callbacks=[per_group(attr)], description=description
            )

        def backlog(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(n, {"stream": s}) for s, n in self.snapshot.backlog.items()]

        def published(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(self.sources.relay.published)] if self.sources else []

        def up(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(int(ok), {"source": s}) for s, ok in self.snapshot.up.items()]

        self.meter.create_observable_gauge(
            "iomflow_outbox_backlog",
            callbacks=[backlog],
            description="Staged events not yet published",
        )
        self.meter.create_observable_counter(
            "iomflow_outbox_published",
            callbacks=[published],
            description="Events published by this process's outbox relay",
        )

        def statements(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(self.sql_statements)]

        def pruned(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(n, {"table": table}) for table, n in self.pruned.items()]

        self.meter.create_observable_counter(
            "iomflow_pruned_rows",
            callbacks=[pruned],
            description="Inbox rows (events applied long ago) and outbox rows (published long "
            "ago) the retention job removed",
        )

        def cpu(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(time.process_time())]

        def rss(_: CallbackOptions) -> Iterable[Observation]:
            found = resident_bytes()
            return [] if found is None else [Observation(found)]

        self.meter.create_observable_counter(
            "iomflow_sql_statements",
            callbacks=[statements],
            description="SQL statements this process sent to its database (an executemany "
            "counts once)",
        )
        self.meter.create_observable_counter(
            "iomflow_process_cpu_seconds",
            callbacks=[cpu],
            unit="s",
            description="CPU time of this process, user and system",
        )
        self.meter.create_observable_gauge(
            "iomflow_process_resident_memory_bytes",
            callbacks=[rss],
            unit="By",
            description="Resident memory of this process",
        )
        self.meter.create_observable_gauge(
            "iomflow_metrics_source_up",
            callbacks=[up],
            description="1 when the last read of the source worked",
        )

    def count_statements(self, engine: AsyncEngine) -> None:
        """Count every statement ``engine`` sends (``iomflow_sql_statements_total``): what
        a batch costs in round trips is then visible, and benchmarks read it."""

        def counted(*_: Any) -> None:
            self.sql_statements += 1

        event.listen(engine.sync_engine, "before_cursor_execute", counted)

    async def refresh(self) -> None:
        """Read the stream statistics and the outbox backlog now."""
        sources = self.sources
        if sources is None:
            return
        try:
            self.snapshot.streams = await stream_stats(
                sources.redis, sources.streams, [sources.group]
            )
            self.snapshot.up["streams"] = True
        except Exception as exc:
            # Stale values would look healthy: report none, and the source as down.
            self.snapshot.streams = []
            self.snapshot.up["streams"] = False
            log.warning("metrics: stream statistics unavailable: %s", type(exc).__name__)
        try:
            async with sources.sessions() as session:
                counts = await sources.outbox.backlog(session)
            known = {*sources.published, *self.snapshot.backlog}
            self.snapshot.backlog = {stream: 0 for stream in known} | counts
            self.snapshot.up["outbox"] = True
        except Exception as exc:
            self.snapshot.backlog = {}
            self.snapshot.up["outbox"] = False
            log.warning("metrics: outbox backlog unavailable: %s", type(exc).__name__)

    # --- HTTP ------------------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = {"method": method, "route": route, "status_class": f"{status // 100}xx"}
        self.http_requests.add(1, labels)
        self.http_duration.record(seconds, labels)
        if status >= 400:
            self.http_errors.add(1, labels)

    # --- Prometheus ------------------------------------------------------------------

    def collector(self) -> Collector:
        return _OtelCollector(self.reader)

    async def render(self, extras: Sequence[tuple[str, Collector | None]] = ()) -> bytes:
        """The Prometheus text of this service (refreshed now) and of ``extras``."""
        await self.refresh()
        for name, extra in extras:
            self.snapshot.up[name] = extra is not None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector())
        for _, extra in extras:
            if extra is not None:
                registry.register(extra)
        return generate_latest(registry)

    def shutdown(self) -> None:
        self.provider.shutdown()


CONTENT_TYPE = CONTENT_TYPE_LATEST


def resident_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc``), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class _OtelCollector(Collector):
    """The reader's current data as Prometheus metric families."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.reader = reader

    def collect(self) -> Iterable[Metric]:
        return prometheus_families(self.reader.get_metrics_data())


def prometheus_families(data: MetricsData | None) -> list[Metric]:
    """OpenTelemetry data (cumulative) as Prometheus families: monotonic sums as counters
    (``_total``), other sums and gauges as gauges, histograms as histograms."""
    families: dict[str, Metric] = {}
    if data is None:
        return []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                point_data = metric.data
                name = _sanitize(metric.name)
                if isinstance(point_data, Sum) and point_data.is_monotonic:
                    name = name.removesuffix("_total")
                    family = families.setdefault(
                        name, Metric(name, metric.description or "", "counter")
                    )
                    for p in point_data.data_points:
                        assert isinstance(p, NumberDataPoint)
                        family.add_sample(f"{name}_total", _labels(p.attributes), p.value)
                elif isinstance(point_data, Sum | Gauge):
                    family = families.setdefault(
                        name, Metric(name, metric.description or "", "gauge")
                    )
                    for p in point_data.data_points:
                        assert isinstance(p, NumberDataPoint)
                        family.add_sample(name, _labels(p.attributes), p.value)
                elif isinstance(point_data, Histogram):
                    family = families.setdefault(
                        name, Metric(name, metric.description or "", "histogram")
                    )
                    for h in point_data.data_points:
                        assert isinstance(h, HistogramDataPoint)
                        _add_histogram(family, name, h)
    return list(families.values())


def _add_histogram(family: Metric, name: str, point: HistogramDataPoint) -> None:
    labels = _labels(point.attributes)
    total = 0
    bounds = [*(_float_text(b) for b in point.explicit_bounds), "+Inf"]
    for bound, count in zip(bounds, point.bucket_counts, strict=True):
        total += count
        family.add_sample(f"{name}_bucket", {**labels, "le": bound}, total)
    family.add_sample(f"{name}_count", labels, point.count)
    family.add_sample(f"{name}_sum", labels, point.sum)


def _float_text(value: float) -> str:
    return repr(float(value))


def _labels(attributes: Any) -> dict[str, str]:
    return {_sanitize(str(k)): str(v) for k, v in (attributes or {}).items()}


def _sanitize(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


class HttpMetricsMiddleware:
    """Counts requests and errors and times them, by route template and status class."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(EXCLUDED_PATHS):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = 500
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.request(
                scope.get("method", ""), template, status, time.perf_counter() - started
            )
