"""What the commands share: exit codes, the Redis URL option, plain tables, and a service's
app built without connecting to anything.

Exit codes of the operator commands (``streams``, ``dlq``, ``trace``, ``acl``): 0 done;
1 not everything asked for was found or done; 2 the command line is wrong; 3 Redis does not
answer. A command's ``main(argv)`` returns its code; an argparse error leaves by
``SystemExit(2)`` itself, which ``iomflow.cli.main`` lets through.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from iomflow.shared.settings import BaseServiceSettings

if TYPE_CHECKING:  # the operator commands do not pay for importing a service's stack
    from fastapi import FastAPI

    from iomflow.shared.service import Runtime

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_REDIS = 0, 1, 2, 3

DEFAULT_REDIS_URL: str = BaseServiceSettings.model_fields["redis_url"].default
"""The services' own default, so that a command and a service left on defaults meet."""


class UsageError(Exception):
    """A command line that cannot be carried out (exit code 2), with a Russian message."""


# --- Redis ---------------------------------------------------------------------------------


def add_redis_option(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """``--redis-url``; ``suppress`` for a subcommand's copy of its parent's option."""
    parser.add_argument(
        "--redis-url",
        default=argparse.SUPPRESS if suppress else None,
        help=f"Redis URL (default: IOMFLOW_REDIS_URL or {DEFAULT_REDIS_URL})",
    )


def redis_url(args: argparse.Namespace) -> str:
    """``--redis-url``, else ``IOMFLOW_REDIS_URL``, else the services' default; checked as
    the services check theirs. Raises ``UsageError`` for a URL Redis clients cannot take."""
    if args.redis_url:
        return checked_redis_url(args.redis_url, "--redis-url")
    if os.environ.get("IOMFLOW_REDIS_URL"):
        return checked_redis_url(os.environ["IOMFLOW_REDIS_URL"], "IOMFLOW_REDIS_URL")
    return DEFAULT_REDIS_URL


def checked_redis_url(url: str, source: str) -> str:
    """``url`` if it passes the services' own check (``BaseServiceSettings``: a scheme
    Redis clients know); else ``UsageError`` naming ``source`` (the option or variable)."""
    try:
        BaseServiceSettings._redis_scheme(url)
    except ValueError:
        raise UsageError(
            f"{source}: адрес Redis «{safe_url(url)}» должен начинаться с redis://, rediss:// "
            "или unix:// (например redis://127.0.0.1:6379/0), redis+sentinel:// (узлы Sentinel "
            "и имя мастера: redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/iomflow) или "
            "redis+cluster:// (узлы кластера: redis+cluster://10.0.0.1:6379,10.0.0.2:6379)."
        ) from None
    return url


def redis_unreachable(url: str, exc: Exception) -> int:
    print(f"Redis не отвечает ({safe_url(url)}): {exc}", file=sys.stderr)
    return EXIT_REDIS


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:  # no scheme: ``user:password@host``
        scheme, rest = "", url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


# --- output --------------------------------------------------------------------------------


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


# --- a service's app, built but never started ----------------------------------------------

PLACEHOLDER_CONSUMER = "{hostname}-{pid}"
"""The consumer name of a built app: what a real one is made of, not this machine's."""


@contextlib.contextmanager
def built_app(name: str, tmp: Path) -> Iterator[FastAPI]:
    """The service's FastAPI app as ``create_app`` builds it, for reading what the code
    defines (its routes, AsyncAPI, subscriptions). Its lifespan, which connects to Redis and
    the database, never runs; its database would be a SQLite file under ``tmp``. On leaving,
    everything ``create_app`` built is closed. Call it outside an event loop (it runs one to
    close the asynchronous clients)."""
    app_module = importlib.import_module(f"iomflow.{name}.app")
    settings_module = importlib.import_module(f"iomflow.{name}.settings")
    settings = settings_module.Settings(
        service=name,
        redis_url=DEFAULT_REDIS_URL,
        data_dir=tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / name}.db",
        consumer=PLACEHOLDER_CONSUMER,
        traces_dir=None,
        sql_tracing=False,
        migrate_on_start=False,
    )
    app: FastAPI = app_module.create_app(settings)
    try:
        yield app
    finally:
        close_runtime(app.state.runtime)


def close_runtime(runtime: Runtime) -> None:
    """Close what ``build_runtime`` made, as a stopping service does, for a runtime that
    never started: its Redis client and engine (no connection to close, only their pools)
    and its tracer and meter providers."""

    async def close_clients() -> None:
        await runtime.redis.aclose()
        await runtime.engine.dispose()

    try:
        asyncio.run(close_clients())
    finally:
        runtime.tracer_provider.shutdown()
        runtime.metrics.shutdown()
