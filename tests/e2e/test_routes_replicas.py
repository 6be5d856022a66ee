"""Two routes processes in one consumer group, on one PostgreSQL database and a real Redis,
under a burst of diagnoses: no methodist ever exceeds capacity.

Three methodists of capacity 5 (15 seats) and 60 diagnoses of 60 teachers arrive at once;
the replicas share the work, every diagnosis gets exactly one route, exactly 15 routes get
a methodist and 45 wait in the queue; a methodist arriving later with capacity 10 takes
10 of them. Registry and diagnostics events are written to their streams as those
services would (``wire.encode``), so only the two routes processes run.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import infra
import pytest
import redis

from e2e.test_chain import get, wait_until
from iomflow.cli.launcher import ServiceProcess, Suite
from iomflow.shared import migrations, wire
from iomflow.shared.contracts import (
    Audience,
    CompetencyResult,
    Contract,
    DiagnosisCompleted,
    Level,
    MethodistUpserted,
    MunicipalityUpserted,
    ProgramUpserted,
    Streams,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.telemetry import read_spans

MUNICIPALITIES = ("mun-north", "mun-south")
TEACHERS = [f"t-{n:03d}" for n in range(60)]
CAPACITY = 5
METHODISTS = [
    MethodistUpserted(
        methodist_id="m-north",
        specialisations=["assessment"],
        municipalities=["mun-north"],
        capacity=CAPACITY,
    ),
    MethodistUpserted(
        methodist_id="m-south",
        specialisations=["digital"],
        municipalities=["mun-south"],
        capacity=CAPACITY,
    ),
    MethodistUpserted(
        methodist_id="m-region", specialisations=[], municipalities=[], capacity=CAPACITY
    ),
]
SEATS = CAPACITY * len(METHODISTS)
LATECOMER = MethodistUpserted(
    methodist_id="m-late", specialisations=["assessment"], municipalities=[], capacity=10
)
PROGRAMS = [
    ProgramUpserted(
        program_id="p-assess",
        title="Оценивание образовательных результатов",
        kind="pk",
        hours=36,
        format="distance",
        federal_registry=True,
        competencies=["assessment"],
        audiences=[Audience.GENERAL],
    ),
    ProgramUpserted(
        program_id="p-digital",
        title="Цифровая образовательная среда",
        kind="pk",
        hours=24,
        format="in_person",
        competencies=["digital"],
        audiences=[Audience.GENERAL],
    ),
]
CONSUMERS = ("routes-a", "routes-b")
OPEN = ("drafted", "agreed", "active")


def municipality(teacher_id: str) -> str:
    return MUNICIPALITIES[int(teacher_id[2:]) % 2]


def entry(type_: str, payload: Contract, subject: str, source: str) -> dict[str, str]:
    return wire.encode(new_event(type_, payload, source=source, subject=subject))


def registry_entries() -> list[dict[str, str]]:
    entries = [
        entry(
            "registry.municipality.upserted",
            MunicipalityUpserted(municipality_id=m, name=m),
            m,
            "registries",
        )
        for m in MUNICIPALITIES
    ]
    entries += [entry("registry.program.upserted", p, p.program_id, "registries") for p in PROGRAMS]
    entries += [
        entry(
            "registry.teacher.upserted",
            TeacherUpserted(
                teacher_id=t,
                organization_id=f"org-{municipality(t)}-{int(t[2:]) % 5}",
                municipality_id=municipality(t),
                position="учитель",
                audience=Audience.GENERAL,
                subjects=["math"],
                age_band="35-44",
                experience_band="10-20",
            ),
            t,
            "registries",
        )
        for t in TEACHERS
    ]
    entries += [
        entry("registry.methodist.upserted", m, m.methodist_id, "registries") for m in METHODISTS
    ]
    return entries


def diagnosis_entry(n: int, teacher_id: str) -> dict[str, str]:
    deficits = [
        CompetencyResult(code="assessment", score=20 + n % 10, level=Level.CRITICAL),
        CompetencyResult(code="digital", score=45, level=Level.DEFICIT),
    ]
    diagnosis = DiagnosisCompleted(
        diagnosis_id=f"diag-{n:03d}",
        teacher_id=teacher_id,
        organization_id=f"org-{municipality(teacher_id)}-{int(teacher_id[2:]) % 5}",
        municipality_id=municipality(teacher_id),
        campaign_id="2026-autumn",
        framework_version="test",
        competencies=[
            *deficits,
            CompetencyResult(code="upbringing", score=80, level=Level.SUFFICIENT),
        ],
        deficits=deficits,
    )
    return entry("diagnostics.diagnosis.completed", diagnosis, teacher_id, "diagnostics")


@dataclass
class Replicas:
    processes: list[ServiceProcess]
    redis: redis.Redis
    workdir: Path

    def url(self, n: int) -> str:
        return self.processes[n].url

    def stats(self) -> dict[str, int]:
        return get(f"{self.url(0)}/v1/stats")  # type: ignore[no-any-return]

    def routes(self) -> list[dict[str, Any]]:
        page = get(f"{self.url(1)}/v1/routes?limit=1000")
        assert page["total"] == len(page["items"]), page["total"]  # one page holds them all
        return page["items"]  # type: ignore[no-any-return]

    def methodists(self) -> dict[str, dict[str, Any]]:
        return {
            m["methodist_id"]: m for m in get(f"{self.url(0)}/v1/methodists?limit=1000")["items"]
        }

    def published(self) -> list[tuple[str, dict[str, Any]]]:
        """(type, payload) of every routes event on the stream, each event once."""
        seen: dict[str, tuple[str, dict[str, Any]]] = {}
        entries: list[tuple[bytes, dict[bytes, bytes]]] = self.redis.xrange(Streams.ROUTES)  # type: ignore[assignment]
        for _, raw in entries:
            fields = wire.text_fields(raw)  # type: ignore[arg-type]
            seen[fields["event_id"]] = (fields["type"], json.loads(fields["data"]))
        return list(seen.values())

    def processed(self, consumer: str) -> Counter[str]:
        """Event types the replica applied (its per-entry spans, OK status)."""
        spans = read_spans(self.workdir / "traces" / consumer)
        return Counter(
            str(s["attributes"].get("iomflow.event.type"))  # type: ignore[union-attr]
            for s in spans
            if s["name"] == f"{Streams.DIAGNOSTICS} process" and s["status"] != "ERROR"
        )

    def logs(self) -> str:
        return "\n".join(
            p.log_path.read_text(errors="replace") for p in self.processes if p.log_path.exists()
        )


@pytest.fixture
def replicas(
    clean_redis: str, postgres_server: infra.PostgresServer, tmp_path: Path
) -> Iterator[Replicas]:
    name = infra.unique_database_name("e2e_routes_replicas")
    url = asyncio.run(postgres_server.create_database(name))
    # Migrated once, before either starts: two processes migrating one database at once
    # would race on Alembic's version table.
    migrations.upgrade("iomflow.routes", url)
    suite = Suite(
        tmp_path,
        clean_redis,
        database_urls={"routes": url},
        extra_env={
            "IOMFLOW_MIGRATE_ON_START": "false",
            "IOMFLOW_POLL_MS": "50",
            "IOMFLOW_BATCH_SIZE": "5",  # small batches: the burst is shared and interleaved
            "IOMFLOW_RECLAIM_IDLE_MS": "3000",
            "IOMFLOW_RECLAIM_INTERVAL_S": "0.5",
            "IOMFLOW_RELAY_POLL_S": "0.2",
        },
    )
    processes = [
        ServiceProcess(
            "routes",
            {
                **suite.env_for("routes"),
                "IOMFLOW_CONSUMER": consumer,
                "IOMFLOW_TRACES_DIR": str(tmp_path / "traces" / consumer),
            },
            tmp_path / "logs" / f"{consumer}.log",
        )
        for consumer in CONSUMERS
    ]
    client = redis.Redis.from_url(clean_redis)
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready()
        yield Replicas(processes, client, tmp_path)
    finally:
        for process in processes:
            process.stop()
        client.close()
        asyncio.run(postgres_server.drop_database(name))


def assert_seats_add_up(replicas: Replicas) -> dict[str, dict[str, Any]]:
    methodists = replicas.methodists()
    routes = replicas.routes()
    held = Counter(r["methodist_id"] for r in routes if r["status"] in OPEN and r["methodist_id"])
    for m in methodists.values():
        assert m["load"] <= m["capacity"], m
        assert m["load"] == held[m["methodist_id"]], (m, held)
    assert set(held) <= set(methodists), held
    return methodists


def test_two_replicas_under_a_burst_of_diagnoses_never_exceed_capacity(
    replicas: Replicas,
) -> None:
    publisher = replicas.redis
    for fields in registry_entries():
        publisher.xadd(Streams.REGISTRY, fields)  # type: ignore[arg-type]

    def registries_seen() -> bool:
        s = replicas.stats()
        return s["teachers"] == len(TEACHERS) and s["methodists"] == 3 and s["programs"] == 2

    wait_until(registries_seen, "the registries to reach the read models", within=60)

    # The burst: one pipelined round trip, both replicas blocked on the group.
    pipe = publisher.pipeline(transaction=False)
    for n, teacher_id in enumerate(TEACHERS):
        pipe.xadd(Streams.DIAGNOSTICS, diagnosis_entry(n, teacher_id))  # type: ignore[arg-type]
    pipe.execute()

    def settled() -> bool:
        s = replicas.stats()
        types = Counter(t for t, _ in replicas.published())
        pending = int(publisher.xpending(Streams.DIAGNOSTICS, "routes")["pending"])
        return (
            s["routes"] == len(TEACHERS)
            and types["routes.route.drafted"] == len(TEACHERS)
            and types["routes.methodist.assigned"] + types["routes.methodist.unavailable"]
            == len(TEACHERS)
            and pending == 0
        )

    wait_until(settled, "every diagnosis to get a route and its events", within=120)

    # Exactly one route per diagnosis, each teacher's.
    routes = replicas.routes()
    assert len(routes) == len(TEACHERS)
    assert Counter(r["diagnosis_id"] for r in routes) == {
        f"diag-{n:03d}": 1 for n in range(len(TEACHERS))
    }
    assert {r["teacher_id"] for r in routes} == set(TEACHERS)
    assert all(r["status"] == "drafted" for r in routes)

    # Every seat filled, none twice: loads within capacity and equal to the routes held.
    methodists = assert_seats_add_up(replicas)
    assert {m: v["load"] for m, v in methodists.items()} == {
        m.methodist_id: CAPACITY for m in METHODISTS
    }
    stats = replicas.stats()
    assert (stats["assigned"], stats["unassigned"]) == (SEATS, len(TEACHERS) - SEATS)

    published = replicas.published()
    assigned = [p for t, p in published if t == "routes.methodist.assigned"]
    unavailable = [p for t, p in published if t == "routes.methodist.unavailable"]
    assert len(assigned) == SEATS
    assert len(unavailable) == len(TEACHERS) - SEATS
    assert len({p["route_id"] for p in assigned + unavailable}) == len(TEACHERS)
    assert all(1 <= p["load"] <= p["capacity"] == CAPACITY for p in assigned), assigned
    assert Counter(p["methodist_id"] for p in assigned) == {
        m.methodist_id: CAPACITY for m in METHODISTS
    }
    # A methodist serves only its municipalities.
    area = {m.methodist_id: set(m.municipalities) for m in METHODISTS}
    assert all(
        not area[p["methodist_id"]] or p["municipality_id"] in area[p["methodist_id"]]
        for p in assigned
    )

    # Both replicas took part: the group has both consumers, each applied diagnoses.
    consumers = {
        wire.as_text(c["name"]): c for c in publisher.xinfo_consumers(Streams.DIAGNOSTICS, "routes")
    }
    assert set(consumers) == set(CONSUMERS), consumers

    def both_applied() -> bool:
        done = [replicas.processed(c)["diagnostics.diagnosis.completed"] for c in CONSUMERS]
        return all(done) and sum(done) >= len(TEACHERS)

    wait_until(both_applied, "both replicas' spans of applied diagnoses", within=30)

    # A methodist arrives: the queue drains into exactly its room, nobody else's.
    publisher.xadd(
        Streams.REGISTRY,
        entry("registry.methodist.upserted", LATECOMER, LATECOMER.methodist_id, "registries"),  # type: ignore[arg-type]
    )

    def drained() -> bool:
        s = replicas.stats()
        types = Counter(t for t, _ in replicas.published())
        return s["assigned"] == SEATS + LATECOMER.capacity and (
            types["routes.methodist.assigned"] == SEATS + LATECOMER.capacity
        )

    wait_until(drained, "the queue to drain into the new methodist", within=60)
    methodists = assert_seats_add_up(replicas)
    assert methodists[LATECOMER.methodist_id]["load"] == LATECOMER.capacity
    assert all(methodists[m.methodist_id]["load"] == CAPACITY for m in METHODISTS)
    stats = replicas.stats()
    assert stats["unassigned"] == len(TEACHERS) - SEATS - LATECOMER.capacity
    late = [
        p
        for t, p in replicas.published()
        if t == "routes.methodist.assigned" and p["methodist_id"] == LATECOMER.methodist_id
    ]
    assert sorted(p["load"] for p in late) == list(range(1, LATECOMER.capacity + 1))
    assert not {p["route_id"] for p in late} & {p["route_id"] for p in assigned}

    # Nothing went to the dead-letter stream.
    assert publisher.xlen(Streams.dlq(Streams.DIAGNOSTICS)) == 0
    assert publisher.xlen(Streams.dlq(Streams.REGISTRY)) == 0
