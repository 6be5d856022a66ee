"""``iomflow trace <id>``: the span tree of a diagnosis, a teacher or an event across services.

The id is looked up in every span's trace id and attribute values, so it can be:

- a teacher id (``iomflow.event.subject`` of every consumed event about the teacher, and
  ``iomflow.teacher_id`` of the diagnostics spans that take a result);
- a diagnosis id (``iomflow.diagnosis_id``, set where diagnostics completes, revises or
  cancels it);
- an event id (``messaging.message.id``) or a trace id.

Spans are read from the JSONL files the services write without a collector
(``<traces dir>/<service>.jsonl``, ``iomflow.shared.telemetry``), or, with ``--jaeger URL``,
from the Jaeger query API (``/api/traces``; not tested against a live Jaeger here).
Every trace that mentions the id is printed whole, oldest first. SQL spans are left out
unless ``--sql``. Sampling (``OTEL_TRACES_SAMPLER``) decides which traces exist at all.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iomflow.cli.common import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from iomflow.shared.ops import Span, by_trace, spans_from_files, tree

DEFAULT_TRACES_DIR = Path("var/demo/traces")
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
STATUS = {"ERROR": "ошибка", "OK": "ok", "UNSET": "ok"}


# --- printing --------------------------------------------------------------------------


def header(trace_id: str, spans: list[Span]) -> list[str]:
    """Two lines: ``Трасса <id>: N спанов, сервисы: a, b`` (scripts read that line), then
    when it started, the event types and the spans with an error."""
    services = sorted({str(s.get("service")) for s in spans})
    start = min((int(s["start_ns"]) for s in spans), default=0)
    when = datetime.fromtimestamp(start / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    errors = sum(1 for s in spans if s.get("status") == "ERROR")
    types = sorted(
        {str(t) for s in spans if (t := (s.get("attributes") or {}).get("iomflow.event.type"))}
    )
    second = f"  начало {when}"
    if types:
        second += f"; события: {', '.join(types)}"
    if errors:
        second += f"; спанов с ошибкой: {errors}"
    return [f"Трасса {trace_id}: {len(spans)} спанов, сервисы: {', '.join(services)}", second]


def tree_lines(spans: list[Span], *, sql: bool = False) -> list[str]:
    """One trace as an indented tree, children after their parent in start order: the
    offset from the trace's start, service, span name, duration, status, the event type
    (and the consumer group that processed it)."""
    t0 = min((int(s["start_ns"]) for s in spans), default=0)
    lines: list[str] = []
    for span, depth in tree(spans, sql=sql):
        attributes = span.get("attributes") or {}
        start = (int(span["start_ns"]) - t0) / 1e6
        took = (int(span["end_ns"]) - int(span["start_ns"])) / 1e6
        status = STATUS.get(str(span.get("status")), str(span.get("status")))
        line = (
            f"{start:9.1f} ms  {'  ' * depth}{span.get('service')!s:<12} "
            f"{span['name']}  {took:.1f} ms  {status}"
        )
        extra = [str(attributes[k]) for k in ("iomflow.event.type",) if attributes.get(k)]
        if attributes.get("messaging.consumer.group.name"):
            extra.append(f"группа {attributes['messaging.consumer.group.name']}")
        if attributes.get("iomflow.diagnosis_id"):
            extra.append(f"диагностика {attributes['iomflow.diagnosis_id']}")
        if extra:
            line += f"  [{'; '.join(extra)}]"
        lines.append(line)
    return lines


# --- Jaeger ----------------------------------------------------------------------------

SEARCH_TAGS = ("iomflow.event.subject", "iomflow.teacher_id", "iomflow.diagnosis_id",
               "messaging.message.id")  # fmt: skip


def from_jaeger(trace: dict[str, Any]) -> list[Span]:
    """A trace of the Jaeger query API (``{"traceID", "spans", "processes"}``) as span
    records of ``iomflow.shared.telemetry.span_record``."""
    processes = trace.get("processes") or {}
    out = []
    for s in trace.get("spans") or []:
        tags = {t["key"]: t.get("value") for t in s.get("tags") or []}
        parent = next(
            (r["spanID"] for r in s.get("references") or [] if r.get("refType") == "CHILD_OF"),
            None,
        )
        code = str(tags.get("otel.status_code", "")).upper()
        error = code == "ERROR" or tags.get("error") in (True, "true")
        start_ns = int(s["startTime"]) * 1000
        out.append(
            {
                "trace_id": str(s.get("traceID", trace.get("traceID", ""))).zfill(32),
                "span_id": str(s["spanID"]).zfill(16),
                "parent_id": str(parent).zfill(16) if parent else None,
                "name": s.get("operationName", ""),
                "kind": str(tags.get("span.kind", "")).upper(),
                "service": (processes.get(s.get("processID")) or {}).get("serviceName", "?"),
                "start_ns": start_ns,
                "end_ns": start_ns + int(s.get("duration", 0)) * 1000,
                "status": "ERROR" if error else (code or "UNSET"),
                "attributes": tags,
                "links": [],
            }
        )
    return out


def spans_from_jaeger(url: str, ident: str, lookback: str, limit: int) -> list[Span]:
    """Search every service Jaeger knows for spans tagged with ``ident`` (or fetch the
    trace by id). Untested against a live Jaeger: written to its query API's JSON."""
    import httpx

    traces: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as client:
        if TRACE_ID.match(ident):
            reply = client.get(f"/api/traces/{ident}")
            if reply.status_code != 404:
                reply.raise_for_status()
                for trace in reply.json().get("data") or []:
                    traces[str(trace["traceID"])] = trace
        else:
            services = client.get("/api/services")
            services.raise_for_status()
            for service in services.json().get("data") or []:
                for tag in SEARCH_TAGS:
                    reply = client.get(
                        "/api/traces",
                        params={
                            "service": service,
                            "tags": json.dumps({tag: ident}),
                            "lookback": lookback,
                            "limit": limit,
                        },
                    )
                    reply.raise_for_status()
                    for trace in reply.json().get("data") or []:
                        traces[str(trace["traceID"])] = trace
    return [span for trace in traces.values() for span in from_jaeger(trace)]


# --- the command -----------------------------------------------------------------------


def traces_dir_default() -> Path:
    return Path(os.environ.get("IOMFLOW_TRACES_DIR") or DEFAULT_TRACES_DIR)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iomflow trace",
        description="The span tree across the services of every trace that mentions an id: "
        "a teacher id, a diagnosis id, an event id or a trace id.",
    )
    p.add_argument("id", help="teacher id, diagnosis id, event id or trace id")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--traces-dir",
        type=Path,
        default=None,
        help=f"the services' JSONL spans (default: IOMFLOW_TRACES_DIR or {DEFAULT_TRACES_DIR})",
    )
    where.add_argument(
        "--jaeger",
        metavar="URL",
        help="read from the Jaeger query API at URL (e.g. http://jaeger:16686) instead; "
        "untested against a live Jaeger",
    )
    p.add_argument("--lookback", default="168h", help="with --jaeger: how far back (168h)")
    p.add_argument(
        "--limit", type=int, default=20, help="at most this many traces, the latest (20; 0: all)"
    )
    p.add_argument("--sql", action="store_true", help="show the SQL spans too")
    p.add_argument("--json", action="store_true", help="the spans as JSON, one trace each")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    ident = args.id.strip()
    if args.jaeger:
        try:
            spans = spans_from_jaeger(args.jaeger, ident, args.lookback, max(args.limit, 20))
        except Exception as exc:  # any failure of the HTTP API is the operator's message
            print(f"Jaeger ({args.jaeger}) не ответил: {exc}", file=sys.stderr)
            return EXIT_PARTIAL
        source = f"Jaeger {args.jaeger}"
    else:
        traces_dir = args.traces_dir or traces_dir_default()
        if not traces_dir.is_dir() or not any(traces_dir.glob("*.jsonl")):
            print(
                f"В каталоге {traces_dir} нет файлов спанов (*.jsonl): укажите --traces-dir "
                "или IOMFLOW_TRACES_DIR (сервисы пишут туда спаны без OTLP-коллектора).",
                file=sys.stderr,
            )
            return EXIT_USAGE
        spans = spans_from_files(traces_dir, ident)
        source = str(traces_dir)
    traces = by_trace(spans)
    if not traces:
        print(
            f"Трасс с «{ident}» не найдено ({source}). Ищется по trace_id и значениям "
            "атрибутов спанов: педагог (iomflow.event.subject, iomflow.teacher_id), "
            "диагностика (iomflow.diagnosis_id), событие (messaging.message.id). "
            "Трасса могла не попасть в выборку (OTEL_TRACES_SAMPLER).",
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    shown = traces[-args.limit :] if args.limit else traces
    if args.json:
        print(
            json.dumps(
                [{"trace_id": t, "spans": s} for t, s in shown], ensure_ascii=False, indent=2
            )
        )
        return EXIT_OK
    if len(shown) < len(traces):
        print(f"Трасс с «{ident}»: {len(traces)}, показаны последние {len(shown)} (--limit 0: все)")
    for trace_id, trace_spans in shown:
        print("\n".join(header(trace_id, trace_spans)))
        for line in tree_lines(trace_spans, sql=args.sql):
            print(f"  {line}")
        print()
    return EXIT_OK
