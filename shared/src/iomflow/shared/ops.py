"""What an operator asks of the suite: per stream and consumer group, how far behind it is;
and which traces mention an id.

``stream_stats`` reads ``XINFO GROUPS`` / ``XPENDING`` / ``XLEN`` only (no entry is read or
changed), so it is safe against a production Redis; ``iomflow streams`` prints it and the
services' ``/metrics`` export it.

Lag is what Redis 7 reports (``lag``: entries not yet delivered to the group). Redis 6.2 has
no such counter; there it is counted with ``XRANGE (<last-delivered> + COUNT`` up to
``LAG_SCAN_LIMIT`` (a larger lag is reported as that limit, with ``lag_exact`` False).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from iomflow.shared.contracts import Streams
from iomflow.shared.telemetry import iter_spans
from iomflow.shared.wire import as_text

LAG_SCAN_LIMIT = 10_000

ALL_STREAMS = Streams.all()
"""Every stream of the suite (dead-letter streams are ``Streams.dlq`` of these)."""


@dataclass(frozen=True)
class GroupStats:
    """One consumer group of one stream (``group`` is empty for a stream nobody reads)."""

    stream: str
    group: str
    length: int
    dlq_length: int
    consumers: int = 0
    pending: int = 0
    lag: int = 0
    lag_exact: bool = True
    last_delivered_id: str = ""


async def stream_length(redis: Redis, stream: str) -> int:
    return int(await redis.xlen(stream))


async def stream_stats(
    redis: Redis, streams: Iterable[str] = ALL_STREAMS, groups: Iterable[str] | None = None
) -> list[GroupStats]:
    """Stats per (stream, group) for ``streams``; only ``groups`` when given."""
    wanted = set(groups) if groups is not None else None
    result: list[GroupStats] = []
    for stream in streams:
        length = await stream_length(redis, stream)
        dlq_length = await stream_length(redis, Streams.dlq(stream))
        try:
            infos = await redis.xinfo_groups(stream)
        except NoPermissionError:
            raise  # a user that may not look is not told "nobody reads it"
        except ResponseError:  # no such stream yet
            infos = []
        found = False
        for info in infos:
            group = as_text(info["name"])
            if wanted is not None and group not in wanted:
                continue
            found = True
            last = as_text(info["last-delivered-id"])
            lag, exact = await _lag(redis, stream, info, last)
            result.append(
                GroupStats(
                    stream=stream,
                    group=group,
                    length=length,
                    dlq_length=dlq_length,
                    consumers=int(info["consumers"]),
                    pending=int(info["pending"]),
                    lag=lag,
                    lag_exact=exact,
                    last_delivered_id=last,
                )
            )
        if not found and wanted is None:
            result.append(GroupStats(stream=stream, group="", length=length, dlq_length=dlq_length))
    return result


async def _lag(redis: Redis, stream: str, info: dict[str, object], last: str) -> tuple[int, bool]:
    reported = info.get("lag")
    if reported is not None:  # Redis 7+
        return int(reported), True  # type: ignore[call-overload]
    start = "-" if last in ("0-0", "0") else f"({last}"
    entries = await redis.xrange(stream, min=start, max="+", count=LAG_SCAN_LIMIT) or []
    return len(entries), len(entries) < LAG_SCAN_LIMIT


# --- traces ------------------------------------------------------------------------------

Span = dict[str, Any]
"""A span record as ``iomflow.shared.telemetry.span_record`` writes it."""

SQL_PREFIXES = ("SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "connect")


def mentions(span: Span, ident: str) -> bool:
    """Whether ``ident`` is the span's trace id or the value of one of its attributes (a
    teacher id, a diagnosis id, an event id)."""
    if span.get("trace_id") == ident:
        return True
    for value in (span.get("attributes") or {}).values():
        if value == ident or (isinstance(value, list) and ident in value):
            return True
    return False


def spans_from_files(traces_dir: Path, ident: str) -> list[Span]:
    """Every span of every trace that mentions ``ident`` (two passes: the files can be
    large, only the matching traces are kept in memory)."""
    wanted = {str(s["trace_id"]) for s in iter_spans(traces_dir) if mentions(s, ident)}
    return [s for s in iter_spans(traces_dir) if s.get("trace_id") in wanted]


def by_trace(spans: Iterable[Span]) -> list[tuple[str, list[Span]]]:
    """Spans grouped per trace, the traces in the order they started."""
    traces: dict[str, list[Span]] = {}
    for span in spans:
        traces.setdefault(str(span["trace_id"]), []).append(span)
    return sorted(traces.items(), key=lambda t: min(int(s["start_ns"]) for s in t[1]))


def is_sql(span: Span) -> bool:
    attributes = span.get("attributes") or {}
    return "db.system" in attributes or str(span.get("name", "")).startswith(SQL_PREFIXES)


def tree(spans: list[Span], *, sql: bool = False) -> list[tuple[Span, int]]:
    """One trace as a tree, flattened: each span with its depth, children after their
    parent in start order. SQL spans are left out unless ``sql`` (their children take
    their place): the tree shows the hops between services."""
    by_id = {s["span_id"]: s for s in spans}
    children: dict[Any, list[Span]] = {}
    for span in spans:
        parent = span.get("parent_id") if span.get("parent_id") in by_id else None
        children.setdefault(parent, []).append(span)
    out: list[tuple[Span, int]] = []

    def walk(parent: Any, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: int(s["start_ns"])):
            if is_sql(span) and not sql:
                walk(span["span_id"], depth)
                continue
            out.append((span, depth))
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return out
