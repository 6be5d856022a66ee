"""``iomflow streams``: every stream and consumer group, how far behind it is, dead letters.

Reads ``XINFO GROUPS`` / ``XPENDING`` / ``XLEN`` only (``iomflow.shared.ops.stream_stats``),
so it is safe against a production Redis. Also the home of what every operator command
shares: the Redis URL option and the Russian message for a Redis that does not answer.

Exit codes of the operator commands: 0 done; 1 not everything asked for was found or done;
2 the command line is wrong; 3 Redis does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from iomflow.shared.ops import ALL_STREAMS, GroupStats, stream_stats

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_REDIS = 0, 1, 2, 3


def add_redis_option(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """``--redis-url``; ``suppress`` for a subcommand's copy of its parent's option."""
    parser.add_argument(
        "--redis-url",
        default=argparse.SUPPRESS if suppress else None,
        help=f"Redis URL (default: IOMFLOW_REDIS_URL or {DEFAULT_REDIS_URL})",
    )


def redis_url(args: argparse.Namespace) -> str:
    url: str = args.redis_url or os.environ.get("IOMFLOW_REDIS_URL") or DEFAULT_REDIS_URL
    return url


def redis_unreachable(url: str, exc: Exception) -> int:
    print(f"Redis не отвечает ({_safe(url)}): {exc}", file=sys.stderr)
    return EXIT_REDIS


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """A plain text table (no colours, stable for scripts and tests): ``right`` are the
    indexes of right-aligned (numeric) columns."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


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
    redis = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
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
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    url = redis_url(args)
    streams = [s.removesuffix(".dlq") for s in args.stream] if args.stream else ALL_STREAMS
    try:
        stats = asyncio.run(collect(url, streams))
    except (RedisError, OSError) as exc:
        return redis_unreachable(url, exc)
    if args.json:
        print(json.dumps({"streams": [asdict(s) for s in stats]}, ensure_ascii=False, indent=2))
    else:
        print("\n".join(render(stats)))
    return EXIT_OK
