"""Tracing is configured by the standard OTEL_* variables; without a collector, JSONL."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from iomflow.shared.telemetry import (
    JsonlSpanExporter,
    _exporter,
    create_tracer_provider,
    instrument_sql,
    read_spans,
)


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
    ):
        monkeypatch.delenv(name, raising=False)


def test_otlp_endpoint_selects_the_otlp_exporter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert isinstance(_exporter("routes", tmp_path), OTLPSpanExporter)


def test_exporter_none_turns_export_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert _exporter("routes", tmp_path) is None


def test_without_a_collector_spans_go_to_a_jsonl_file_per_service(tmp_path: Path) -> None:
    assert isinstance(_exporter("routes", tmp_path), JsonlSpanExporter)
    assert _exporter("routes", None) is None
    provider = create_tracer_provider("routes", tmp_path)
    with provider.get_tracer("t").start_as_current_span("outer"):
        with provider.get_tracer("t").start_as_current_span("inner"):
            pass
    provider.shutdown()
    spans = read_spans(tmp_path)
    assert (tmp_path / "routes.jsonl").exists()
    assert {s["name"] for s in spans} == {"outer", "inner"}
    assert {s["service"] for s in spans} == {"routes"}
    inner = next(s for s in spans if s["name"] == "inner")
    outer = next(s for s in spans if s["name"] == "outer")
    assert inner["parent_id"] == outer["span_id"] and inner["trace_id"] == outer["trace_id"]


def test_otel_service_name_overrides_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "routes-eu")
    provider = create_tracer_provider("routes", None)
    assert provider.resource.attributes["service.name"] == "routes-eu"


@pytest.mark.parametrize("services", [1, 2])
async def test_each_services_sql_is_a_span_of_its_own_provider(
    tmp_path: Path, services: int
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sqlalchemy import text

    from iomflow.shared import db

    seen = []
    for n in range(services):  # several services in one process, each with its own tracer
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / f'{n}.db'}")
        instrument_sql(engine, provider)
        async with engine.connect() as conn:
            await conn.execute(text("select :answer"), {"answer": 4242})
        await engine.dispose()
        seen.append(exporter.get_finished_spans())
    for spans in seen:
        statements = [s.attributes.get("db.statement") for s in spans if s.attributes]
        assert "select ?" in statements, [s.name for s in spans]
        assert all("4242" not in str(s.attributes) for s in spans)
