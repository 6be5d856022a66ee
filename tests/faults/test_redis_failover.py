"""Redis behind Sentinel: the primary SIGKILLed mid-burst, Sentinel promotes one of its two
replicas, and the services — told only ``redis+sentinel://<sentinel>/iomflow`` — find the
new primary by themselves. Replication is asynchronous, so what counts as acknowledged is
what a replica has (``WAIT``): the publisher's XADDs that a replica confirmed, and the
outbox rows that the services' relays marked sent only after ``WAIT``
(``IOMFLOW_REDIS_WAIT_REPLICAS=1``). All of it is applied once; what was never confirmed
the publisher sends again until it is, and any copy is dropped by its event id."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from e2e.test_chain import REGION, start_suite, wait_until

from faults.common import FAST_RECLAIM, at_rest
from iomflow.cli.demo import result_entries
from iomflow.cli.launcher import LocalRedis, free_port
from iomflow.shared import redisconn

pytestmark = pytest.mark.faults

MASTER = "iomflow"
BATCH = 20
"""The publisher's XADDs per pipeline, each pipeline followed by ``WAIT 1``."""
KILL_AFTER = 240
"""Confirmed XADDs before the primary is killed (of 720)."""


class LocalSentinel:
    """One ``redis-sentinel`` watching ``MASTER`` (quorum 1: it decides alone)."""

    def __init__(self, workdir: Path, primary_port: int) -> None:
        exe = shutil.which("redis-sentinel") or shutil.which("redis-server")
        if exe is None:
            pytest.fail(
                "redis-sentinel not found: apt-get install redis-sentinel (or redis-server)"
            )
        self.workdir = workdir
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "sentinel.conf"  # Sentinel rewrites it: its own copy
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\nprotected-mode no\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        log = (workdir / "sentinel.log").open("ab")
        self.proc = subprocess.Popen(
            [exe, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
        )
        self.client = redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)
        wait_until(self._answers, "Sentinel to answer", 10)

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def primary_port(self) -> int:
        _, port = self.client.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def replicas(self) -> int:
        return len(self.client.sentinel_slaves(MASTER))

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def wait_calls(port: int) -> int:
    """How many WAIT commands the Redis on ``port`` has answered since it started."""
    node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        return int(node.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
    finally:
        node.close()


def test_primary_killed_mid_burst_sentinel_promotes_the_replica_nothing_confirmed_is_lost(
    databases: dict[str, str], tmp_path: Path
) -> None:
    primary = LocalRedis(tmp_path / "primary")
    primary.start()
    # Two replicas: one is promoted, the other then replicates the new primary, so that
    # WAIT 1 can be answered after the failover too (with one replica it could not).
    replicas = [
        LocalRedis(
            tmp_path / f"replica{n}", extra_args=["--replicaof", "127.0.0.1", str(primary.port)]
        )
        for n in (1, 2)
    ]
    for replica in replicas:
        replica.start()
    sentinel = LocalSentinel(tmp_path / "sentinel", primary.port)
    try:
        wait_until(lambda: sentinel.replicas() == 2, "Sentinel to find the replicas", 30)
        url = f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER}"
        env = {**FAST_RECLAIM, "IOMFLOW_REDIS_WAIT_REPLICAS": "1"}
        suite = start_suite(tmp_path / "suite", url, databases, env=env)
        try:
            client = redisconn.sync_client(url, socket_timeout=5, socket_connect_timeout=2)
            entries = result_entries([t["teacher_id"] for t in REGION["teachers"]][:120])
            confirmed: list[str] = []
            refused = 0
            asked_after_kill = 0  # the publisher's WAITs sent after the kill
            killed_at = back_at = 0.0
            for start in range(0, len(entries), BATCH):
                batch = entries[start : start + BATCH]
                if len(confirmed) >= KILL_AFTER and not killed_at:
                    assert primary.proc is not None
                    primary.proc.kill()  # SIGKILL: the replica has what WAIT confirmed
                    primary.proc.wait()
                    killed_at = time.monotonic()
                while True:  # the publisher sends a batch until a replica confirms it
                    try:
                        pipe = client.pipeline(transaction=False)
                        for stream, fields in batch:
                            pipe.xadd(stream, fields)  # type: ignore[arg-type]
                        pipe.execute()
                        asked_after_kill += bool(killed_at)
                        if int(client.wait(1, 2000)) < 1:
                            raise redis.ConnectionError("not confirmed by a replica")
                    except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
                        refused += 1  # maybe on the new primary, maybe lost: sent again
                        assert time.monotonic() - killed_at < 120, "no primary for 2 minutes"
                        time.sleep(0.2)
                    else:
                        break
                if killed_at and not back_at:
                    back_at = time.monotonic()
                confirmed += [fields["event_id"] for _, fields in batch]
            assert killed_at and refused, "the primary was never down while the publisher wrote"
            promoted = sentinel.primary_port()
            assert promoted in {r.port for r in replicas}, "Sentinel did not promote a replica"

            figures = at_rest(
                suite,
                client,
                "redis-sentinel-failover",
                len(entries),
                note=(
                    f"killed after {KILL_AFTER} confirmed; {refused} batches of {BATCH} refused "
                    f"or unconfirmed and sent again; writes confirmed again "
                    f"{back_at - killed_at:.1f} s after the kill"
                ),
            )
            assert figures.dead_lettered == 0
            # The relays asked the new primary for their replicas too, not only the publisher.
            # Counted on every surviving node: on a loaded machine Sentinel may fail over a
            # second time (the promoted replica missed its pings for a second), and the WAITs
            # before that went to the node promoted first. The surviving nodes count only
            # WAITs sent to them after the kill (WAIT is not replicated); of those the
            # publisher sent at most ``asked_after_kill``. The results confirmed after the
            # kill became diagnoses and routes after it: diagnostics' relay and routes' relay
            # each published, so each waited at least once.
            waits = sum(wait_calls(r.port) for r in replicas)
            relays = waits - asked_after_kill
            assert relays >= 2, (
                f"WAIT called {waits} times after the kill, the publisher's at most "
                f"{asked_after_kill}: the relays {relays}"
            )
            client.close()
        finally:
            suite.stop()
    finally:
        sentinel.stop()
        for replica in replicas:
            replica.stop()
        primary.stop()
