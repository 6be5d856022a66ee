"""kill -9 of each service at its worst moment, then started again: registries while it
loads the region, diagnostics, routes and monitoring while each holds entries it has read
but not acknowledged. Everything converges: each result applied once, one diagnosis per
teacher, one route per diagnosis, monitoring's counts those of the chain."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from e2e.test_chain import REGION, get, wait_until

from faults.common import FAST_RECLAIM, at_rest, pending
from iomflow.cli.demo import open_campaign, result_entries
from iomflow.cli.launcher import Suite
from iomflow.shared.contracts import Streams

pytestmark = pytest.mark.faults

READ_MODELS = ("diagnostics", "routes", "monitoring")


def kill_holding(suite: Suite, client: redis.Redis, victim: str) -> int:
    """SIGKILL ``victim`` as soon as it holds pending entries, start it again; how many it
    held when it died."""
    deadline = time.monotonic() + 60
    while not (held := _held(client, victim)):
        assert time.monotonic() < deadline, f"{victim} never held pending entries"
    suite.services[victim].kill()
    held = max(held, _held(client, victim))
    suite.services[victim].start()
    return held


def _held(client: redis.Redis, victim: str) -> int:
    return sum(n for key, n in pending(client).items() if key.endswith(f"/{victim}"))


def load_killing_registries(suite: Suite, client: redis.Redis) -> tuple[dict[str, Any], str]:
    """POST the region to registries and kill it once the first register is on the stream;
    the operator posts it again after the restart. (the load's answer, what happened)"""
    admin = {"Authorization": f"Bearer {suite.admin_key}"}
    url = f"{suite.url('registries')}/v1/load"
    first: list[httpx.Response | Exception] = []

    def post() -> None:
        try:
            first.append(httpx.post(url, json=REGION, headers=admin, timeout=120))
        except httpx.HTTPError as exc:
            first.append(exc)

    loading = threading.Thread(target=post)
    loading.start()
    deadline = time.monotonic() + 60
    while not client.xlen(Streams.REGISTRY) and loading.is_alive():
        assert time.monotonic() < deadline, "registries published nothing of the load"
    suite.services["registries"].kill()
    loading.join()
    what = "killed mid-load" if isinstance(first[0], Exception) else "killed after the load"
    suite.services["registries"].start()
    suite.services["registries"].wait_ready()
    again = httpx.post(url, json=REGION, headers=admin, timeout=120)
    assert again.status_code == 200, again.text
    return again.json()["received"], what


def test_kill_9_of_each_service_mid_work_converges(
    databases: dict[str, str], clean_redis: str, tmp_path: Path
) -> None:
    suite = Suite(
        tmp_path,
        clean_redis,
        database_urls=databases,
        extra_env={"IOMFLOW_RECLAIM_INTERVAL_S": "0.5", "IOMFLOW_POLL_MS": "50", **FAST_RECLAIM},
    )
    client = redis.Redis.from_url(clean_redis)
    try:
        suite.start()
        received, registries = load_killing_registries(suite, client)
        wait_until(
            lambda: all(
                get(f"{suite.url(name)}/v1/stats")["teachers"] == received["teachers"]
                for name in READ_MODELS
            ),
            "the region to reach every read model after registries' restart",
        )
        with httpx.Client() as http:
            assert open_campaign(http, suite.url("diagnostics"), suite.admin_key)["required"]

        teachers = [t["teacher_id"] for t in REGION["teachers"]][:150]
        held: dict[str, int] = {}
        published = 0
        for chunk, victim in enumerate(READ_MODELS):
            entries = result_entries(teachers[chunk * 50 : (chunk + 1) * 50])
            with client.pipeline(transaction=False) as pipe:
                for stream, fields in entries:
                    pipe.xadd(stream, fields)  # type: ignore[arg-type]
                published += len(pipe.execute())
            held[victim] = kill_holding(suite, client, victim)
        figures = at_rest(
            suite,
            client,
            "kill-9",
            published,
            note=f"registries {registries}; pending at kill: "
            + " ".join(f"{name}={n}" for name, n in held.items()),
        )
        assert figures.dead_lettered == 0
        assert get(f"{suite.url('diagnostics')}/v1/stats")["diagnoses"] == len(teachers)
    finally:
        suite.stop()
