"""What every fault scenario checks once the suite is at rest, and how it says so.

The ledger is the results inbound stream (what outside publishers write): every event
published there is either applied (a row of diagnostics' ``results``) or dead-lettered
(``{<stream>}.dlq``), never both and never twice; downstream, one diagnosis per teacher and
campaign, one live route per diagnosis, no methodist seat taken twice, monitoring's counts
those of diagnostics and routes; no entry pending in any consumer group; every service
ready again by itself.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import infra
import redis
from e2e.test_chain import get, settled, wait_until
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from iomflow.cli.launcher import SERVICES, Suite
from iomflow.shared import wire
from iomflow.shared.contracts import Streams

REPORT_ENV = "IOMFLOW_FAULT_REPORT"
FAST_RECLAIM = {"IOMFLOW_RECLAIM_IDLE_MS": "1000", "IOMFLOW_BATCH_SIZE": "10"}
"""A killed consumer's pending entries are claimed again after a second, not 30."""

DUPLICATED_DIAGNOSES = """select count(*) from (select teacher_id from diagnoses
    where status = 'completed' group by teacher_id, campaign_id having count(*) > 1) twice"""
DUPLICATED_ROUTES = """select count(*) from (select diagnosis_id from routes
    where status <> 'superseded' group by diagnosis_id having count(*) > 1) twice"""


def fresh_databases(server: infra.PostgresServer, hint: str) -> dict[str, str]:
    """One new database per service on ``server``: service -> its asyncpg URL."""
    return {
        name: asyncio.run(server.create_database(infra.unique_database_name(f"{hint}_{name}")))
        for name in SERVICES
    }


def database_url(suite: Suite, service: str) -> str:
    """The service's database: its PostgreSQL one, or its SQLite file under the suite."""
    default = f"sqlite+aiosqlite:///{suite.workdir / 'data' / f'{service}.db'}"
    return suite.database_urls.get(service, default)


def column(url: str, sql: str) -> list[Any]:
    """The first column of a query's rows, on a database of a service."""

    async def query() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text(sql))).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(query())


def scalar(url: str, sql: str) -> int:
    return int(column(url, sql)[0])


def pending(client: redis.Redis) -> dict[str, int]:
    """``stream/group`` -> entries read but not acknowledged, for every group of every
    stream (XPENDING's summary)."""
    out: dict[str, int] = {}
    for key in client.scan_iter(_type="stream"):
        stream = wire.as_text(key)
        for group in client.xinfo_groups(stream):
            name = wire.as_text(group["name"])
            out[f"{stream}/{name}"] = int(client.xpending(stream, name)["pending"])
    return out


def idle(client: redis.Redis) -> bool:
    """Every group has been delivered its stream's last entry and acknowledged them all."""
    for key in client.scan_iter(_type="stream"):
        stream = wire.as_text(key)
        last = wire.as_text(client.xinfo_stream(stream)["last-generated-id"])
        for group in client.xinfo_groups(stream):
            if wire.as_text(group["last-delivered-id"]) != last or int(group["pending"]):
                return False
    return True


def all_ready(suite: Suite) -> bool:
    for service in suite.services.values():
        try:
            if httpx.get(f"{service.url}/health/ready", timeout=5).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


def dead_letters(
    client: redis.Redis, stream: str = Streams.RESULTS_INBOUND
) -> list[dict[str, str]]:
    entries = client.xrange(Streams.dlq(stream)) or []
    return [wire.text_fields(fields) for _, fields in entries if fields is not None]


@dataclass
class Figures:
    name: str
    db: str
    published: int
    applied: int
    dead_lettered: int
    twice: int
    pending: int
    note: str = ""

    def line(self) -> str:
        line = (
            f"FAULT {self.name} [{self.db}]: published={self.published} applied={self.applied} "
            f"dead_lettered={self.dead_lettered} twice={self.twice} pending={self.pending}"
        )
        return f"{line} ({self.note})" if self.note else line

    def report(self) -> None:
        print(self.line())
        path = os.environ.get(REPORT_ENV)
        if path:
            with Path(path).open("a", encoding="utf-8") as out:
                out.write(self.line() + "\n")


def db_kind(suite: Suite) -> str:
    return "postgresql" if suite.database_urls else "sqlite"


def at_rest(
    suite: Suite,
    client: redis.Redis,
    name: str,
    published: int,
    *,
    applied_before: int = 0,
    dead_before: int = 0,
    note: str = "",
    within: float = 180,
) -> Figures:
    """Wait for the suite to settle after ``published`` more results (of which some may be
    meant for the DLQ), then check and report everything the module docstring says."""

    def accounted() -> bool:
        applied = get(f"{suite.url('diagnostics')}/v1/stats")["results"] - applied_before
        dead = client.xlen(Streams.dlq(Streams.RESULTS_INBOUND)) - dead_before
        return applied + dead >= published and idle(client)

    wait_until(lambda: all_ready(suite), f"{name}: every service ready again", within)
    wait_until(accounted, f"{name}: every published result applied or dead-lettered", within)
    diagnosed = get(f"{suite.url('diagnostics')}/v1/stats")["diagnoses"]
    wait_until(settled(suite, diagnosed), f"{name}: routes and monitoring to settle", within)
    wait_until(lambda: idle(client), f"{name}: nothing left to read or pending", within)

    stats = get(f"{suite.url('diagnostics')}/v1/stats")
    routes = get(f"{suite.url('routes')}/v1/stats")["routes"]
    seats = sum(m["load"] for m in get(f"{suite.url('routes')}/v1/methodists?limit=1000")["items"])
    twice = (
        scalar(database_url(suite, "diagnostics"), DUPLICATED_DIAGNOSES)
        + scalar(database_url(suite, "routes"), DUPLICATED_ROUTES)
        + abs(seats - routes)
    )
    figures = Figures(
        name,
        db_kind(suite),
        published=published,
        applied=stats["results"] - applied_before,
        dead_lettered=client.xlen(Streams.dlq(Streams.RESULTS_INBOUND)) - dead_before,
        twice=twice,
        pending=sum(pending(client).values()),
        note=note,
    )
    figures.report()
    assert figures.applied + figures.dead_lettered == published, figures.line()
    assert figures.twice == 0, figures.line()
    assert figures.pending == 0, (figures.line(), pending(client))
    assert stats["held"] == 0, stats
    assert all_ready(suite)
    return figures
