"""``iomflow streams``: every stream and consumer group, how far behind it is, dead letters.

Reads ``XINFO GROUPS`` / ``XPENDING`` / ``XLEN`` only (``iomflow.shared.ops.stream_stats``),
so it is safe against a production Redis. Exit codes: ``iomflow.cli.common``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from redis.exceptions import NoPermissionError, RedisError

from iomflow.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_redis_option,
    redis_unreachable,
    redis_url,
    table,
)
from iomflow.shared import redisconn
from iomflow.shared.contracts import Streams
from iomflow.shared.ops import ALL_STREAMS, GroupStats, stream_stats


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iomflow streams",
        description="Streams and consumer groups: length, consumers, pending, lag, DLQ size. "
        "Read-only: safe against a production Redis.",
    )
    add_redis_option(p)
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    p.add_argument(
        "--stream",
        action="append",
        default=None,
        help="only this stream (repeatable; default: every stream of the suite)",
    )
    return p


async def collect(url: str, streams: Sequence[str]) -> list[GroupStats]:
    redis = redisconn.async_client(url, socket_connect_timeout=5, socket_timeout=30)
    try:
        return await stream_stats(redis, streams)
    finally:
        await redis.aclose()


def render(stats: Sequence[GroupStats]) -> list[str]:
    rows = [
        [
            s.stream,
            s.group or "—",
            str(s.length),
            str(s.consumers) if s.group else "—",
            str(s.pending) if s.group else "—",
            (str(s.lag) if s.lag_exact else f"≥{s.lag}") if s.group else "—",
            str(s.dlq_length),
        ]
        for s in stats
    ]
    headers = ["поток", "группа", "длина", "потребители", "в работе", "отставание", "DLQ"]
    lines = table(headers, rows, right={2, 3, 4, 5, 6})
    dead = {s.stream: s.dlq_length for s in stats if s.dlq_length}
    behind = sum(s.lag + s.pending for s in stats)
    lines.append("")
    lines.append(
        f"Потоков: {len({s.stream for s in stats})}, групп: {sum(1 for s in stats if s.group)}; "
        f"не обработано (в работе + отставание): {behind}; "
        f"недоставленных (DLQ): {sum(dead.values())}"
    )
    if dead:
        lines.append("Разобрать недоставленные: iomflow dlq list")
    return lines


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        url = redis_url(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    streams = [Streams.of_dlq(s) for s in args.stream] if args.stream else ALL_STREAMS
    try:
        stats = asyncio.run(collect(url, streams))
    except NoPermissionError as exc:
        print(
            f"Пользователю Redis не разрешено смотреть потоки ({exc}): нужен пользователь "
            "iomflow-operator (deploy/redis/README.md).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except (RedisError, OSError) as exc:
        return redis_unreachable(url, exc)
    if args.json:
        print(json.dumps({"streams": [asdict(s) for s in stats]}, ensure_ascii=False, indent=2))
    else:
        print("\n".join(render(stats)))
    return EXIT_OK
