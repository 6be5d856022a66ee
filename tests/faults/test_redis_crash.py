"""Redis SIGKILLed mid-burst and started again on its append-only file (fsync always): what
Redis acknowledged to the publisher survives and is applied; what it never acknowledged is
the only possible loss, and once the publisher sends that again everything is applied
once. The services find Redis again by themselves."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from e2e.test_chain import REGION, start_suite, wait_until

from faults.common import FAST_RECLAIM, at_rest, column, database_url, pending
from iomflow.cli.demo import result_entries
from iomflow.cli.launcher import LocalRedis, Suite
from iomflow.shared.contracts import Streams

pytestmark = pytest.mark.faults

KILL_AFTER = 300
"""Acknowledged XADDs before Redis is killed (of 900)."""

WAITING = "Redis не отвечает при запуске"
"""What a starting service logs while it waits for Redis."""


def restart_after(server: LocalRedis, seconds: float) -> None:
    time.sleep(seconds)
    server.start()


def test_redis_killed_and_restarted_on_its_aof_loses_nothing_acknowledged(
    databases: dict[str, str], tmp_path: Path
) -> None:
    server = LocalRedis(tmp_path / "redis", extra_args=["--appendfsync", "always"])
    server.start()
    try:
        suite = start_suite(tmp_path / "suite", server.url, databases, env=FAST_RECLAIM)
        try:
            client = redis.Redis.from_url(server.url, socket_timeout=5)
            entries = result_entries([t["teacher_id"] for t in REGION["teachers"]][:150])
            acked: list[str] = []
            unacked: list[tuple[str, dict[str, str]]] = []
            restarted = threading.Thread(target=restart_after, args=(server, 2.0))
            for stream, fields in entries:
                if len(acked) == KILL_AFTER and not restarted.is_alive() and not unacked:
                    assert server.proc is not None
                    server.proc.kill()  # SIGKILL: no shutdown, the AOF as it was fsynced
                    server.proc.wait()
                    restarted.start()
                try:
                    client.xadd(stream, fields)  # type: ignore[arg-type]
                except (redis.ConnectionError, redis.TimeoutError):
                    unacked.append((stream, fields))
                    time.sleep(0.01)
                else:
                    acked.append(fields["event_id"])
            restarted.join()
            assert unacked, "Redis was never down while the publisher wrote"

            def acknowledged_applied() -> bool:
                if any(pending(client).values()):
                    return False
                rows = set(
                    column(database_url(suite, "diagnostics"), "select result_id from results")
                )
                return set(acked) <= rows

            wait_until(acknowledged_applied, "every acknowledged result to be applied", 180)
            for stream, fields in unacked:  # the publisher retries what was not acknowledged
                client.xadd(stream, fields)  # type: ignore[arg-type]
            figures = at_rest(
                suite,
                client,
                "redis-sigkill-aof",
                len(entries),
                note=f"acknowledged={len(acked)} never acknowledged={len(unacked)}, sent again",
            )
            assert figures.dead_lettered == 0
        finally:
            suite.stop()
    finally:
        server.stop()


def test_a_service_started_before_its_redis_waits_for_it_and_says_so(tmp_path: Path) -> None:
    """A failover or a Redis still starting must not make a starting service exit: it
    retries its first Redis steps (a PING, its consumer groups) and logs each wait."""
    server = LocalRedis(tmp_path / "redis")  # its port is chosen, nothing listens there yet
    suite = Suite(tmp_path / "suite", server.url)
    log = suite.workdir / "logs" / "diagnostics.log"

    def start_once_the_service_waits() -> None:
        wait_until(
            lambda: log.exists() and WAITING in log.read_text(encoding="utf-8"),
            "the service to say it waits for Redis",
            60,
        )
        server.start()

    late = threading.Thread(target=start_once_the_service_waits)
    late.start()
    try:
        suite.start(("diagnostics",))
        groups = redis.Redis.from_url(server.url).xinfo_groups(Streams.RESULTS_INBOUND)
        assert [g["name"] for g in groups] == [b"diagnostics"]
    finally:
        late.join()
        suite.stop()
        server.stop()
