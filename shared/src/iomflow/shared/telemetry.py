"""Tracing set up from the standard ``OTEL_*`` variables.

- service name and resource attributes: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``
  (the service's own name is the default);
- sampling: ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (parent-based always-on
  by default; under load use ``parentbased_traceidratio``);
- export: OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-specific
  variable) is set; ``OTEL_TRACES_EXPORTER=none`` turns export off; otherwise, when a
  traces directory is configured, spans go to ``<dir>/<service>.jsonl`` so a person can
  read a trace without a collector.

Metrics are configured the same way: each service gets its own ``MeterProvider`` (never the
global one) with the readers it is given (the ``/metrics`` reader, see
``iomflow.shared.metrics``) plus an OTLP (HTTP) exporting reader when
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is set or
``OTEL_METRICS_EXPORTER=otlp`` (``none`` turns it off); its interval is
``OTEL_METRIC_EXPORT_INTERVAL`` (ms, 60 s by default).

Each service gets its own ``TracerProvider`` (never the global one), so several services
can share a process in tests and still report under their own names.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from sqlalchemy.ext.asyncio import AsyncEngine


class JsonlSpanExporter(SpanExporter):
    """One JSON object per finished span, appended to a file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_record(span), ensure_ascii=False) for span in spans]
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_record(span: ReadableSpan) -> dict[str, object]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get(SERVICE_NAME),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "links": [f"{link.context.trace_id:032x}" for link in span.links],
    }


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def service_resource(service: str) -> Resource:
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over these.
    return Resource.create(attributes)


def create_tracer_provider(service: str, traces_dir: Path | None) -> TracerProvider:
    provider = TracerProvider(resource=service_resource(service))
    exporter = _exporter(service, traces_dir)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    return provider


def _exporter(service: str, traces_dir: Path | None) -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if choice == "none":
        return None
    otlp = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if otlp or choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # reads the OTEL_EXPORTER_OTLP_* variables itself
    if traces_dir is not None:
        return JsonlSpanExporter(Path(traces_dir) / f"{service}.jsonl")
    return None


def create_meter_provider(service: str, readers: Sequence[MetricReader] = ()) -> MeterProvider:
    """The service's own ``MeterProvider``: ``readers`` plus OTLP export when configured.

    It is shut down by its owner (the service's stop), not at interpreter exit."""
    exporter = metric_exporter()
    all_readers = list(readers)
    if exporter is not None:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        # The interval comes from OTEL_METRIC_EXPORT_INTERVAL (default 60 s).
        all_readers.append(PeriodicExportingMetricReader(exporter))
    return MeterProvider(
        resource=service_resource(service), metric_readers=all_readers, shutdown_on_exit=False
    )


def metrics_exported() -> bool:
    """Whether metrics go out by OTLP: an endpoint is set or ``OTEL_METRICS_EXPORTER=otlp``
    (``OTEL_METRICS_EXPORTER=none`` wins)."""
    choice = os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    if choice == "none":
        return False
    otlp = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(otlp) or choice == "otlp"


def metric_exporter() -> MetricExporter | None:
    """OTLP over HTTP when ``metrics_exported()``, else none."""
    if not metrics_exported():
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()  # reads the OTEL_EXPORTER_OTLP_* variables itself


def iter_spans(traces_dir: Path) -> Iterator[dict[str, Any]]:
    """Every span the services wrote under ``traces_dir`` (``<service>.jsonl``), file by
    file, one at a time (the files can be large). A line that is not a JSON object is
    skipped, wherever it is: the usual one is the last line of a file a running service is
    still writing, which may end inside a UTF-8 character (hence ``errors="replace"``)."""
    for path in sorted(Path(traces_dir).glob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    span = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(span, dict):
                    yield span


def read_spans(traces_dir: Path) -> list[dict[str, Any]]:
    """Every span of ``iter_spans(traces_dir)``, at once (for the demo and tests)."""
    return list(iter_spans(traces_dir))


def instrument_sql(engine: AsyncEngine, provider: TracerProvider) -> None:
    """A span per SQL statement of ``engine``, reported by ``provider`` (statements with
    their placeholders, never the bound values).

    The instrumentation's ``EngineTracer`` is attached to this one engine. Its
    ``SQLAlchemyInstrumentor().instrument()`` is not used: it is a process-wide singleton
    (a second service in the process is not instrumented, and every engine created later
    is wrapped with the first service's tracer), and 0.66b1 declares SQLAlchemy ``< 2.1``,
    so on 2.1 it logs an error and instruments nothing. The cursor events it listens to
    are the same in 2.1 (``tests/shared/test_telemetry.py`` checks the spans).
    """
    from opentelemetry.instrumentation.sqlalchemy import __name__ as scope
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    usage = NoOpMeterProvider().get_meter(scope).create_up_down_counter("db.client.connections")
    EngineTracer(provider.get_tracer(scope), engine.sync_engine, usage)
