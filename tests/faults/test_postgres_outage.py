"""PostgreSQL stopped under load (fast shutdown: every connection dropped, new ones
refused), then started again on the same port and data: the entries read meanwhile wait
for it, none valid is dead-lettered for it, and everything is applied once it is back. The
services' readiness comes back by itself. PostgreSQL only (the server is this module's own
process, so that it can be stopped)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import infra
import pytest
import redis
from e2e.test_chain import REGION, get, start_suite, wait_until

from faults.common import at_rest, fresh_databases
from iomflow.cli.demo import result_entries

pytestmark = pytest.mark.faults

TEACHERS = [t["teacher_id"] for t in REGION["teachers"]][:150]


@contextlib.contextmanager
def stopped(server: infra.PostgresServer) -> Iterator[None]:
    """The server down for the block, up again after it whatever happens."""
    # A process of ours (``stoppable_postgres``): its postmaster, and how it is started.
    assert isinstance(server, infra._ProcessPostgres)
    infra._stop_process(server._proc, signal.SIGINT)  # "fast" shutdown
    try:
        yield
    finally:
        server._start()


def outage(
    server: infra.PostgresServer, redis_url: str, workdir: Path, name: str, seconds: float
) -> None:
    """A burst of results, PostgreSQL stopped for ``seconds`` once diagnoses are being made,
    the rest of the burst published while it is down; then everything at rest."""
    suite = start_suite(workdir, redis_url, fresh_databases(server, name), env=ENV[name])
    try:
        client = redis.Redis.from_url(redis_url)
        entries = result_entries(TEACHERS)
        first, rest = entries[:300], entries[300:]
        for stream, fields in first:
            client.xadd(stream, fields)  # type: ignore[arg-type]
        wait_until(
            lambda: get(f"{suite.url('diagnostics')}/v1/stats")["diagnoses"] > 0,
            "diagnoses being made",
        )
        with stopped(server):
            for stream, fields in rest:
                client.xadd(stream, fields)  # type: ignore[arg-type]
            time.sleep(seconds)
        figures = at_rest(
            suite, client, name, len(entries), note=f"PostgreSQL down {seconds:.0f} s", within=240
        )
        assert figures.dead_lettered == 0, "a valid result was dead-lettered for the outage"
        assert get(f"{suite.url('diagnostics')}/v1/stats")["diagnoses"] == len(TEACHERS)
    finally:
        suite.stop()


ENV = {
    "postgres-stopped-20s": {},
    # Reclaim every 0.5 s (start_suite's), an entry idle 1 s claimed again, dead-lettered
    # after 3 deliveries: 3 × 1 s is far shorter than the 30 s outage, so each entry read
    # while PostgreSQL is down is claimed and retried many times over; only its deliveries
    # that failed for the database do not count (streams.unavailable).
    "postgres-down-past-reclaim": {
        "IOMFLOW_RECLAIM_IDLE_MS": "1000",
        "IOMFLOW_MAX_DELIVERIES": "3",
        "IOMFLOW_BATCH_SIZE": "10",
    },
}


def test_postgres_stopped_20_s_under_load_dead_letters_nothing_valid(
    stoppable_postgres: infra.PostgresServer, clean_redis: str, tmp_path: Path
) -> None:
    outage(stoppable_postgres, clean_redis, tmp_path, "postgres-stopped-20s", 20)


def test_postgres_down_longer_than_the_reclaim_cycle_dead_letters_nothing_valid(
    stoppable_postgres: infra.PostgresServer, clean_redis: str, tmp_path: Path
) -> None:
    """The suite's reclaim is shortened (IOMFLOW_RECLAIM_IDLE_MS=1000,
    IOMFLOW_MAX_DELIVERIES=3, IOMFLOW_RECLAIM_INTERVAL_S=0.5) so that the ~30 s outage is
    ten times max_deliveries × reclaim idle: were a transient database failure counted as
    a delivery, every entry read during it would be dead-lettered."""
    outage(stoppable_postgres, clean_redis, tmp_path, "postgres-down-past-reclaim", 30)
