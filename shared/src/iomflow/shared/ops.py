"""What an operator asks of the streams: per stream and consumer group, how far behind it is.

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

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from iomflow.shared.contracts import Streams
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
