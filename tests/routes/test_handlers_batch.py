"""The batch path of routes on real databases (SQLite and PostgreSQL): a batch of diagnoses
drafts as if its diagnoses were applied one after the other, in a constant number of SQL
statements, and its seats never exceed a capacity even when another replica takes them
between the batch's reads and its writes (on PostgreSQL, through the real consumer on a
real Redis: the batch falls back to entry by entry)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import infra
import pytest
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy import event as sa_event
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from iomflow.routes import domain, handlers, repository, service
from iomflow.routes.ledger import RANK
from iomflow.shared import db, wire
from iomflow.shared.contracts import (
    CompetencyChange,
    CompetencyResult,
    DiagnosisCompleted,
    Event,
    Level,
    Streams,
    new_event,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Consumer, DeliverySettings
from iomflow.shared.unit import Deps

COMPLETED = "diagnostics.diagnosis.completed"
RESOURCE_TABLES = ("methodist", "tutor", "mentor", "site")


# --- a small region, written as the registries' events leave the read models ---------------


def region(
    teachers: int, methodists: Sequence[tuple[str, int]], resources: int = 1
) -> dict[Any, list[dict[str, Any]]]:
    """Teachers t-0… in mun-1 (young: they get a mentor), a Federal-registry program on
    digital (its step gets a tutor) and a regional one on assessment, an internship site on
    both, ``resources`` seats at the site, the mentor and the tutor."""
    return {
        repository.municipalities: [{"municipality_id": "mun-1", "name": "М", "remote": False}],
        repository.teachers: [
            {
                "teacher_id": f"t-{n}",
                "organization_id": "org-1",
                "municipality_id": "mun-1",
                "audience": "general",
                "subjects": ["math"],
                "young": True,
                "is_manager": False,
            }
            for n in range(teachers)
        ],
        repository.programs: [
            {
                "program_id": "p-digital",
                "title": "Цифровая среда (ФР)",
                "hours": 36,
                "federal_registry": 1,
                "competencies": ["digital"],
                "audiences": ["general"],
                "format": "distance",
                "subjects": [],
                "federal_number": None,
            },
            {
                "program_id": "p-assess",
                "title": "Оценивание",
                "hours": 24,
                "federal_registry": 0,
                "competencies": ["assessment"],
                "audiences": ["general"],
                "format": "in_person",
                "subjects": [],
                "federal_number": None,
            },
        ],
        repository.methodists: [
            {
                "methodist_id": m,
                "specialisations": ["digital"],
                "municipalities": [],
                "subjects": [],
                "capacity": capacity,
            }
            for m, capacity in methodists
        ],
        repository.sites: [
            {
                "site_id": "site-1",
                "title": "Лицей",
                "organization_id": "org-9",
                "municipality_id": "mun-1",
                "competencies": ["digital", "assessment"],
                "capacity": resources,
            }
        ],
        repository.mentors: [
            {
                "mentor_id": "mentor-1",
                "organization_id": "org-1",
                "municipality_id": "mun-1",
                "subjects": ["math"],
                "capacity": resources,
            }
        ],
        repository.tutors: [
            {
                "tutor_id": "tutor-1",
                "specialisations": ["digital"],
                "programs": [],
                "municipalities": [],
                "capacity": resources,
            }
        ],
    }


def diagnosis(
    n: int,
    teacher: int,
    previous: str | None = None,
    *,
    codes: tuple[str, ...] = ("digital", "assessment"),
) -> Event[Any]:
    deficits = [
        CompetencyResult(code=code, score=20 + i, level=Level.CRITICAL)
        for i, code in enumerate(codes)
    ]
    payload = DiagnosisCompleted(
        diagnosis_id=f"d-{n}",
        teacher_id=f"t-{teacher}",
        organization_id="org-1",
        municipality_id="mun-1",
        campaign_id="c",
        framework_version="f",
        competencies=deficits,
        deficits=deficits,
        previous_diagnosis_id=previous,
        changes=[
            CompetencyChange(
                code=c, change="improved", level=Level.DEFICIT, score=45, previous_score=20
            )
            for c in codes
        ]
        if previous
        else [],
    )
    return new_event(COMPLETED, payload, source="diagnostics", subject=f"t-{teacher}")


@dataclass
class Routes:
    """A routes database and the service's context, with its handlers called as the
    consumer calls them."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    ctx: service.Routes
    outbox: Outbox

    async def deliver(self, events: Sequence[Event[Any]]) -> None:
        """One batch: one transaction, each run of one type one handler call."""
        async with self.sessions() as session, session.begin():
            deps = Deps(session, self.outbox, self.ctx)
            runs: list[list[Event[Any]]] = []
            for e in events:
                if runs and runs[-1][0].type == e.type:
                    runs[-1].append(e)
                else:
                    runs.append([e])
            for run in runs:
                await handlers.HANDLERS[run[0].type](run, deps)
            await deps.flush()

    async def routes(self) -> dict[str, Any]:
        """Routes by diagnosis."""
        async with self.sessions() as session:
            rows = await session.execute(select(repository.routes))
            return {r.diagnosis_id: r for r in rows}

    async def loads(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(kind, id) -> (load, capacity) of every resource."""
        found = {}
        async with self.sessions() as session:
            for kind, (table, key) in repository.SEATS.items():
                for row in await session.execute(select(table)):
                    found[(kind, row._mapping[key])] = (row.load, row.capacity)
        return found

    async def published(self) -> list[tuple[str, dict[str, Any]]]:
        """(type, payload) of the staged events, in outbox order."""
        outbox = repository.tables.outbox
        async with self.sessions() as session:
            rows = await session.execute(
                select(outbox.c.type, outbox.c.fields).order_by(outbox.c.id)
            )
            return [(r.type, json.loads(r.fields["data"])) for r in rows]


async def open_routes_db(url: str, rows: dict[Any, list[dict[str, Any]]]) -> Routes:
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(repository.metadata.drop_all)
        await conn.run_sync(repository.metadata.create_all)
    sessions = db.sessionmaker(engine)
    async with sessions() as session, session.begin():
        for table, values in rows.items():
            await session.execute(insert(table), values)
    return Routes(
        engine,
        sessions,
        service.Routes(rules=domain.load_rules()),
        Outbox(repository.tables.outbox),
    )


@pytest.fixture
async def two_databases(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str]]:
    """Two fresh databases of one kind: one applies entry by entry, the other in a batch."""
    if database_url.startswith("sqlite"):
        yield database_url, f"sqlite+aiosqlite:///{tmp_path / 'batch.db'}"
        return
    server: infra.PostgresServer = request.getfixturevalue("postgres_server")
    name = infra.unique_database_name("routes_batch")
    other = await server.create_database(name)
    try:
        yield database_url, other
    finally:
        await server.drop_database(name)


def routes_consumer(world: Routes, redis: Redis) -> Consumer:
    """The real consumer of routes (group ``routes``, batches of 10) over ``world``."""
    return Consumer(
        group="routes",
        consumer="routes-a",
        redis=redis,
        sessions=world.sessions,
        inbox_table=repository.tables.inbox,
        outbox=world.outbox,
        tracer=TracerProvider().get_tracer("test"),
        subscriptions=handlers.SUBSCRIPTIONS,
        settings=DeliverySettings(batch_size=10),
        context=world.ctx,
    )


def assert_seats_add_up(
    routes: dict[str, Any], loads: dict[tuple[str, str], tuple[int, int]]
) -> None:
    held: Counter[tuple[str, str]] = Counter()
    for r in routes.values():
        if r.status in domain.OPEN:
            if r.methodist_id:
                held[("methodist", r.methodist_id)] += 1
            held.update(seat for s in r.steps for seat in domain.seats_of(s))
    for resource, (load, capacity) in loads.items():
        assert 0 <= load <= capacity, (resource, load, capacity)
        assert load == held[resource], (resource, load, held[resource])


# --- a batch is its diagnoses one after the other ------------------------------------------


async def test_two_diagnoses_of_one_teacher_in_a_batch_end_as_if_applied_one_after_the_other(
    two_databases: tuple[str, str],
) -> None:
    """t-0 twice in one batch, with t-1 and t-2 between: the second draft supersedes the
    first, whose freed seats (methodist, site, mentor, tutor) go first to the route queued
    meanwhile and then to the new draft — exactly as four transactions one after the other.
    Its events keep each route's order, grouped by type where that changes nothing."""
    rows = region(teachers=3, methodists=[("m-1", 2)], resources=2)
    batch = [diagnosis(0, 0), diagnosis(1, 1), diagnosis(2, 2), diagnosis(3, 0)]
    one_by_one = await open_routes_db(two_databases[0], rows)
    together = await open_routes_db(two_databases[1], rows)
    try:
        for e in batch:
            await one_by_one.deliver([e])
        await together.deliver(batch)

        for world in (one_by_one, together):
            routes = await world.routes()
            assert {d: (r.status, r.methodist_id) for d, r in routes.items()} == {
                "d-0": ("superseded", "m-1"),  # kept on the row, its seat freed
                "d-1": ("drafted", "m-1"),
                "d-2": ("drafted", "m-1"),  # queued, seated from the seat d-0 freed
                "d-3": ("drafted", None),  # m-1 full again: it waits
            }
            assert routes["d-3"].supersedes == routes["d-0"].route_id
            assert_seats_add_up(routes, await world.loads())

        # The same steps (programs, site, mentor, tutor), loads and history, route by route.
        def shape(routes: dict[str, Any]) -> dict[str, Any]:
            return {
                d: (
                    [(s["kind"], s["competency"], s.get("program_id"), s.get("site_id"),
                      s.get("mentor_id"), s.get("tutor_id"), s["starts_on"]) for s in r.steps],
                    [h["action"] for h in r.history],
                )
                for d, r in routes.items()
            }  # fmt: skip

        assert shape(await together.routes()) == shape(await one_by_one.routes())
        assert await together.loads() == await one_by_one.loads()

        # Events: each route's in the same order either way; in the batch grouped by type,
        # cut where a route's own events or a supersession would be reordered.
        by_diagnosis = {r.route_id: d for d, r in (await together.routes()).items()}
        by_diagnosis.update({r.route_id: d for d, r in (await one_by_one.routes()).items()})

        def per_route(events: list[tuple[str, dict[str, Any]]]) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for type_, payload in events:
                out.setdefault(by_diagnosis[payload["route_id"]], []).append(type_)
            return out

        batched = await together.published()
        assert per_route(batched) == per_route(await one_by_one.published())
        assert [(t.split(".")[-1], by_diagnosis[p["route_id"]]) for t, p in batched] == [
            ("drafted", "d-0"),
            ("drafted", "d-1"),
            ("drafted", "d-2"),
            ("assigned", "d-0"),
            ("assigned", "d-1"),
            ("unavailable", "d-2"),
            # d-3 supersedes d-0: d-2 is seated in the room d-0 left, then d-3 is drafted
            ("drafted", "d-3"),
            ("assigned", "d-2"),
            ("unavailable", "d-3"),
        ]
        loads = [p["load"] for t, p in batched if t == "routes.methodist.assigned"]
        assert loads == [1, 2, 2]
    finally:
        await one_by_one.engine.dispose()
        await together.engine.dispose()


# --- what a batch costs ---------------------------------------------------------------------


async def test_a_batch_of_diagnoses_costs_a_constant_number_of_statements(
    database_url: str,
) -> None:
    """10 and 60 re-diagnoses cost the same statements: one read per table for the batch,
    one write per table. Each supersedes a draft whose steps were done (attributions), frees
    its seats (the queue is read to seat waiting routes), drafts with a site, a mentor and a
    tutor and seats a methodist or queues."""
    world = await open_routes_db(
        database_url, region(teachers=70, methodists=[("m-1", 20), ("m-2", 20)], resources=200)
    )
    try:
        await world.deliver([diagnosis(n, n) for n in range(70)])  # also warms the kept offer
        async with world.sessions() as session, session.begin():
            for r in (await world.routes()).values():  # every step done
                steps = [{**s, "status": "done"} for s in r.steps]
                await session.execute(
                    update(repository.routes)
                    .where(repository.routes.c.route_id == r.route_id)
                    .values(steps=steps)
                )
        statements: list[str] = []

        def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        sa_event.listen(world.engine.sync_engine, "before_cursor_execute", counted)
        costs = {}
        for first, size in ((0, 10), (10, 60)):
            statements.clear()
            outbox_before = len(await world.published())
            statements.clear()
            await world.deliver(
                [diagnosis(100 + n, n, previous=f"d-{n}") for n in range(first, first + size)]
            )
            costs[size] = list(statements)
            types = [t for t, _ in (await world.published())[outbox_before:]]
            # Grouped by type for monitoring: a handful of runs, not one per event (a route
            # queued earlier, seated here by a drain and then superseded by its teacher's
            # re-diagnosis, cuts the batch once).
            runs = [t for n, t in enumerate(types) if n == 0 or types[n - 1] != t]
            assert len(runs) <= 2 * len(RANK), runs
            assert {"routes.route.drafted", "routes.methodist.assigned"} <= set(types)
        sa_event.remove(world.engine.sync_engine, "before_cursor_execute", counted)

        def short(statements: list[str]) -> list[str]:
            return [" ".join(s.split()[:3])[:40] for s in statements]

        assert len(costs[10]) == len(costs[60]), "\n".join(
            f"{a!r:45} {b!r}" for a, b in itertools.zip_longest(short(costs[10]), short(costs[60]))
        )
        assert len(costs[60]) <= 20, costs[60]
        async with world.sessions() as session:
            attributed = await session.execute(select(repository.attributions.c.diagnosis_id))
            assert len({r.diagnosis_id for r in attributed}) == 70
        routes = await world.routes()
        assert sum(r.status == "superseded" for r in routes.values()) == 70
        assert_seats_add_up(routes, await world.loads())
    finally:
        await world.engine.dispose()


# --- seats another replica took -------------------------------------------------------------


async def test_seats_taken_by_another_replica_meanwhile_send_the_batch_entry_by_entry(
    pg_database_url: str, clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of three diagnoses plans three seats of m-1 (capacity 3); between its reads
    and its writes another replica drafts t-0's route on m-1 and commits. The batch's seat
    statement comes short: it is rolled back and redone entry by entry, each reading the
    loads again — two seated, one queued, nothing over capacity, no entry left failed."""
    world = await open_routes_db(pg_database_url, region(teachers=4, methodists=[("m-1", 3)]))
    redis = Redis.from_url(clean_redis)
    consumer = routes_consumer(world, redis)
    real_add_seats = repository.save_seats
    drafted: list[int] = []  # sizes of the runs drafted by the consumer under test
    seat_writes: list[tuple[str, dict[str, int], dict[str, int]]] = []
    other_replica = asyncio.Event()
    real_completed = service.diagnoses_completed

    async def spied_completed(ledger: Any, events: Sequence[Event[Any]]) -> None:
        if events[0].payload.teacher_id != "t-0":  # not the other replica's
            drafted.append(len(events))
        await real_completed(ledger, events)

    async def add_seats(
        session: AsyncSession, kind: str, deltas: Any, checked: Any = ()
    ) -> dict[str, int]:
        if kind == "methodist" and not other_replica.is_set():
            other_replica.set()  # the other replica drafts t-0's route and commits now
            await world.deliver([diagnosis(9, 0)])
        loads = await real_add_seats(session, kind, deltas, checked)
        seat_writes.append((kind, dict(deltas), loads))
        return loads

    monkeypatch.setattr(repository, "save_seats", add_seats)
    monkeypatch.setattr(service, "diagnoses_completed", spied_completed)
    try:
        await consumer.ensure_groups()
        for n in (1, 2, 3):
            await redis.xadd(Streams.DIAGNOSTICS, wire.encode(diagnosis(n, n)))  # type: ignore[arg-type]
        reply = await redis.xreadgroup("routes", "routes-a", {Streams.DIAGNOSTICS: ">"})
        entries = [(wire.as_text(i), wire.text_fields(f)) for i, f in reply[0][1]]
        outcome = await consumer.process(Streams.DIAGNOSTICS, entries)

        assert outcome.failed == {} and len(outcome.applied) == 3, outcome
        assert drafted == [3, 1, 1, 1]  # the batch, then each entry alone
        short = [w for w in seat_writes if w[0] == "methodist" and sum(w[1].values()) == 3]
        assert short and "m-1" not in short[0][2]  # the batch's seat statement came short
        routes = await world.routes()
        assert {d: r.methodist_id for d, r in routes.items()} == {
            "d-9": "m-1",  # the other replica's
            "d-1": "m-1",
            "d-2": "m-1",
            "d-3": None,  # m-1 is full: it waits
        }
        loads = await world.loads()
        assert loads[("methodist", "m-1")] == (3, 3)
        assert_seats_add_up(routes, loads)
        assigned = [p["load"] for t, p in await world.published() if t.endswith(".assigned")]
        assert sorted(assigned) == [1, 2, 3]
        assert int((await redis.xpending(Streams.DIAGNOSTICS, "routes"))["pending"]) == 0
    finally:
        await redis.aclose()
        await world.engine.dispose()
