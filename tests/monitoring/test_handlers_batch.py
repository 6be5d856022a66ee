"""Monitoring's handlers on batches, on a real Redis and SQLite/PostgreSQL: a batch costs
the same SQL statements whatever its length; a batch writes the members and facts that its
events written one at a time write; today's KPI snapshot is renewed after a change — once
the projections are quiet, not per event — and served as it is meanwhile; the migrations
give the schema of the code."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from iomflow.monitoring import handlers, projection, repository
from iomflow.monitoring.app import create_app
from iomflow.monitoring.settings import Settings
from iomflow.shared import migrations, wire
from iomflow.shared.contracts import (
    DiagnosisCancelled,
    Event,
    MentorUpserted,
    MethodistAssigned,
    MethodistUnavailable,
    OrganizationUpserted,
    Project,
    RecordRemoved,
    RouteCancelled,
    RouteCompleted,
    RouteDrafted,
    RouteStep,
    StepCompleted,
    Streams,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.service import Runtime

# tests/ is on sys.path (as for ``import infra`` in conftest): share the chain of events.
from monitoring.test_api import diagnosis, registry, route_events

T0 = datetime.now(UTC) - timedelta(days=30)


@pytest.fixture
async def runtime(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[Runtime]:
    """The service's runtime, not started: its consumer is driven by the test."""
    await asyncio.to_thread(migrations.upgrade, "iomflow.monitoring", database_url)
    app = create_app(
        Settings(
            redis_url=clean_redis,
            data_dir=tmp_path,
            database_url=database_url,
            kpi_worker="thread",  # the worker process has a test of its own
        )
    )
    runtime: Runtime = app.state.runtime
    try:
        yield runtime
    finally:
        await runtime.redis.aclose()
        await runtime.engine.dispose()


@contextlib.contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends meanwhile (SQLite's BEGIN aside: the driver's)."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement != "BEGIN":
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listen)


async def consume(runtime: Runtime, stream: str, events: list[Event[Any]]) -> None:
    """One batch through the service's consumer, as FastStream hands it over."""
    entries = [(f"{n + 1}-0", wire.encode(e)) for n, e in enumerate(events)]
    outcome = await runtime.consumer.process(stream, entries)
    assert len(outcome.applied) == len(events), outcome


def diagnosed(n: int, teacher: int) -> Event[Any]:
    return new_event(
        "diagnostics.diagnosis.completed",
        diagnosis(n, f"t-{teacher}"),
        source="diagnostics",
        subject=f"t-{teacher}",
    )


# --- statements --------------------------------------------------------------------------------


async def test_a_batch_of_diagnoses_costs_the_same_statements_for_10_or_60(
    runtime: Runtime,
) -> None:
    await consume(runtime, Streams.REGISTRY, registry())  # ten teachers, t-1 … t-10
    cost: dict[int, tuple[int, int]] = {}
    for size, first in ((10, 1000), (60, 2000)):
        numbers = range(first, first + size)
        with statements(runtime.engine) as diagnoses:
            await consume(runtime, Streams.DIAGNOSTICS, [diagnosed(n, n % 10 + 1) for n in numbers])
        routes = [e for n in numbers for e in route_events(n, f"t-{n % 10 + 1}", "A")]
        # as routes publishes a batch: its drafted routes, then their methodists
        routes.sort(key=lambda e: e.type != "routes.route.drafted")
        with statements(runtime.engine) as routed:
            await consume(runtime, Streams.ROUTES, routes)
        cost[size] = (len(diagnoses), len(routed))
    assert cost[10] == cost[60], cost
    # inbox, the diagnosed facts, the mark; inbox, the routes' facts, the methodists' ends
    # and facts, the mark
    assert cost[10] == (3, 5), cost
    assert sum(cost[10]) / 10 <= 3  # per diagnosis (it reaches monitoring as 3 events)

    async with runtime.sessions() as session:
        counts = await repository.counts(session)
    assert (counts["facts_diagnosed"], counts["facts_route"], counts["facts_support"]) == (
        70,
        70,
        70,
    )


async def test_a_superseding_route_costs_one_statement_more_per_batch_not_per_route(
    runtime: Runtime,
) -> None:
    await consume(runtime, Streams.REGISTRY, registry())
    cost = {}
    for size in (3, 9):
        first = [e for n in range(size) for e in route_events(100 + n, f"t-{n + 1}", "A")]
        await consume(runtime, Streams.ROUTES, first)
        again = []
        for n in range(size):
            drafted, assigned = route_events(200 + n, f"t-{n + 1}", "B")
            payload = drafted.payload.model_copy(update={"supersedes": f"r-{100 + n}"})
            again.append((drafted.model_copy(update={"payload": payload}), assigned))
        with statements(runtime.engine) as seen:
            await consume(runtime, Streams.ROUTES, [d for d, _ in again] + [a for _, a in again])
        cost[size] = len(seen)
    assert cost[3] == cost[9] == 6, cost


# --- a batch writes what one event at a time writes ---------------------------------------------


def script(seed: int) -> dict[str, list[Event[Any]]]:
    """Random events of every kind monitoring turns into members and facts, per stream, in
    runs of one type (so that one run holds the same record many times), with times in no
    order: a teacher upserted again and again, an expert no more and again, organisations'
    projects changing, mentors moving and leaving, routes drafted and superseded in one
    batch, methodists assigned twice, routes closed, diagnoses cancelled."""
    rng = random.Random(seed)

    def when() -> datetime:
        return T0 + timedelta(hours=rng.randrange(500))

    def ev(type_: str, payload: Any, subject: str) -> Event[Any]:
        e = new_event(type_, payload, source="test", subject=subject)
        return e.model_copy(update={"occurred_at": when()})

    teachers = [f"t-{n}" for n in range(1, 6)]
    orgs = ["o-1", "o-2", "o-3"]

    def teacher() -> Event[Any]:
        t = rng.choice(teachers)
        payload = TeacherUpserted(
            teacher_id=t,
            organization_id=rng.choice(orgs),
            municipality_id="m-1",
            position="учитель",
            audience=rng.choice(["general", "preschool"]),  # type: ignore[arg-type]
            subjects=rng.choice([[], ["физика"]]),
            age_band="35-44",
            experience_band="10-20",
            expert=rng.random() < 0.5,
        )
        return ev("registry.teacher.upserted", payload, t)

    def organization() -> Event[Any]:
        o = rng.choice(orgs)
        payload = OrganizationUpserted(
            organization_id=o,
            municipality_id="m-1",
            name=o,
            kind="school",  # type: ignore[arg-type]
            projects=rng.sample(list(Project), rng.randrange(3)),
        )
        return ev("registry.organization.upserted", payload, o)

    def mentor() -> Event[Any]:
        m = rng.choice(["mn-1", "mn-2"])
        payload = MentorUpserted(mentor_id=m, organization_id=rng.choice(orgs), municipality_id="m")
        return ev("registry.mentor.upserted", payload, m)

    def removed(entity: str, ids: list[str]) -> Event[Any]:
        record = rng.choice(ids)
        payload = RecordRemoved(record_id=record)
        return ev(f"registry.{entity}.removed", payload, record)

    registry_kinds = [
        teacher,
        organization,
        mentor,
        lambda: removed("mentor", ["mn-1", "mn-2"]),
        lambda: removed("teacher", teachers),
    ]
    routes_of: dict[str, list[str]] = {}
    routes: list[Event[Any]] = []

    def drafted() -> Event[Any]:
        t = rng.choice(teachers)
        route = f"r-{len(routes)}"
        old = routes_of.get(t, [])
        steps = [
            RouteStep(
                competency="digital",
                kind=rng.choice(["program", "mentoring"]),
                tutor_id=rng.choice([None, "tu-1"]),
                hours=10,
                reason="дефицит",
            )
        ]
        payload = RouteDrafted(
            route_id=route,
            diagnosis_id=f"d-{route}",
            teacher_id=t,
            organization_id="o-1",
            municipality_id="m-1",
            steps=steps,
            total_hours=10,
            supersedes=old[-1] if old and rng.random() < 0.7 else None,
        )
        routes_of.setdefault(t, []).append(route)
        return ev("routes.route.drafted", payload, t)

    def some_route() -> tuple[str, str]:
        t = rng.choice([t for t in teachers if t in routes_of] or teachers)
        return t, rng.choice(routes_of.get(t, ["r-none"]))

    def assigned() -> Event[Any]:
        t, r = some_route()
        payload = MethodistAssigned(
            route_id=r,
            teacher_id=t,
            methodist_id=rng.choice(["A", "B"]),
            municipality_id="m-1",
            load=1,
            capacity=250,
        )
        return ev("routes.methodist.assigned", payload, t)

    def unavailable() -> Event[Any]:
        t, r = some_route()
        payload = MethodistUnavailable(route_id=r, teacher_id=t, municipality_id="m", reason="x")
        return ev("routes.methodist.unavailable", payload, t)

    def closed() -> Event[Any]:
        t, r = some_route()
        if rng.random() < 0.5:
            payload: Any = RouteCompleted(
                route_id=r,
                teacher_id=t,
                municipality_id="m-1",
                methodist_id=None,
                by="all_steps",
                steps_done=1,
                steps_total=1,
            )
            return ev("routes.route.completed", payload, t)
        payload = RouteCancelled(
            route_id=r,
            teacher_id=t,
            municipality_id="m-1",
            reason="x",
            code=rng.choice(["diagnosis_cancelled", "operator"]),
        )
        return ev("routes.route.cancelled", payload, t)

    def step() -> Event[Any]:
        t, r = some_route()
        payload = StepCompleted(
            route_id=r,
            teacher_id=t,
            municipality_id="m-1",
            step_id=rng.choice(["s1", "s2"]),
            kind=rng.choice(["program", "internship", "community"]),
            competency="digital",
            completed_by="methodist",
            completed_on=when().date(),
        )
        return ev("routes.step.completed", payload, t)

    route_kinds = [drafted, assigned, unavailable, closed, step]
    diagnoses: list[Event[Any]] = []

    def diagnosis_event() -> Event[Any]:
        n = rng.randrange(6)
        if rng.random() < 0.3:
            payload = DiagnosisCancelled(
                diagnosis_id=f"d-{n}", teacher_id="t-1", campaign_id="c", reason="x"
            )
            return ev("diagnostics.diagnosis.cancelled", payload, "t-1")
        return ev("diagnostics.diagnosis.completed", diagnosis(n, f"t-{n % 5 + 1}"), "t-1")

    def runs(kinds: list[Any], into: list[Event[Any]], n: int) -> list[Event[Any]]:
        while len(into) < n:
            make = rng.choice(kinds)
            for _ in range(rng.randrange(1, 8)):  # a run of one type
                into.append(make())
        return into

    return {
        Streams.REGISTRY: runs(registry_kinds, [], 60),
        Streams.DIAGNOSTICS: runs([diagnosis_event], diagnoses, 20),
        Streams.ROUTES: runs(route_kinds, routes, 80),
    }


async def apply(runtime: Runtime, stream: str, events: list[Event[Any]], batch: bool) -> None:
    """Through the service's handlers: in one batch of runs, or one event at a time."""
    table = {s.stream: s.handlers for s in handlers.SUBSCRIPTIONS}[stream]
    groups: list[list[Event[Any]]] = []
    for e in events:
        if batch and groups and groups[-1][0].type == e.type:
            groups[-1].append(e)
        else:
            groups.append([e])
    if batch:
        async with runtime.transaction() as deps:
            for run in groups:
                await table[run[0].type](run, deps)
        return
    for run in groups:
        async with runtime.transaction() as deps:
            await table[run[0].type](run, deps)


async def projected(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    async with runtime.sessions() as session:
        return {
            "members": list(
                await session.execute(
                    select(repository.members).order_by(
                        repository.members.c.kind, repository.members.c.member_id
                    )
                )
            ),
            "facts": list(
                await session.execute(select(repository.facts).order_by(repository.facts.c.fact_id))
            ),
        }


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_writes_what_its_events_one_at_a_time_write(
    runtime: Runtime, seed: int
) -> None:
    events = script(seed)
    found = {}
    for batch in (False, True):
        async with runtime.transaction() as deps:
            await repository.empty(deps.session)
        for stream in (Streams.REGISTRY, Streams.DIAGNOSTICS, Streams.ROUTES):
            await apply(runtime, stream, events[stream], batch)
        found[batch] = await projected(runtime)
    assert found[False]["facts"], "the script made facts"
    assert any(f.end is not None for f in found[False]["facts"]), "and ended some"
    assert found[True] == found[False]


async def test_a_batch_marks_the_projections_changed_once(runtime: Runtime) -> None:
    await consume(runtime, Streams.REGISTRY, registry())
    async with runtime.sessions() as session:
        before = await repository.signature(session)
        rows = list(await session.execute(select(repository.changes)))
    assert [r.changes for r in rows] == [1]  # one batch of many runs: one mark
    await consume(runtime, Streams.DIAGNOSTICS, [diagnosed(n, 1) for n in range(5)])
    async with runtime.sessions() as session:
        assert await repository.signature(session) != before


# --- today's snapshot --------------------------------------------------------------------------


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_snapshot_is_renewed_once_the_projections_are_quiet_not_per_event(
    runtime: Runtime,
) -> None:
    kpis = runtime.context.kpis
    ticks = kpis.ticks = Ticks()
    kpis.policy = projection.Policy(quiet_s=10, max_lag_s=3600, inline_s=0, budget=1)
    await consume(runtime, Streams.REGISTRY, registry())

    assert await kpis.refresh(runtime.sessions)  # none yet: made at once
    first = await kpis.answer(runtime.sessions)
    assert first["region"]["counts"]["diagnosed"] == 0 and first["computed_at"]
    assert not await kpis.refresh(runtime.sessions)  # nothing changed

    for n in range(3):  # a burst: three batches, a look after each
        await consume(
            runtime, Streams.DIAGNOSTICS, [diagnosed(10 * n + k, k + 1) for k in range(3)]
        )
        ticks.now += 4
        assert not await kpis.refresh(runtime.sessions)
        # meanwhile a request gets the snapshot there is (renewing is not cheap here)
        assert (await kpis.answer(runtime.sessions))["computed_at"] == first["computed_at"]
    assert kpis.renewals == 1

    ticks.now += 10  # quiet
    assert await kpis.refresh(runtime.sessions)
    assert kpis.renewals == 2
    renewed = await kpis.answer(runtime.sessions)
    assert renewed["region"]["counts"]["diagnosed"] == 3  # t-1, t-2, t-3
    assert renewed["computed_at"] > first["computed_at"]
    assert not await kpis.refresh(runtime.sessions)

    # Another replica takes the stored snapshot rather than computing one.
    other = projection.Projection(kpis.catalogue, runtime.context.cache, kpis.policy)
    assert not await other.refresh(runtime.sessions)
    assert other.renewals == 0 and await other.answer(runtime.sessions) == renewed


async def test_a_snapshot_behind_a_burst_is_renewed_when_it_is_max_lag_old(
    runtime: Runtime,
) -> None:
    kpis = runtime.context.kpis
    ticks = kpis.ticks = Ticks()
    kpis.policy = projection.Policy(quiet_s=10, max_lag_s=0.001, inline_s=0, budget=1)
    await consume(runtime, Streams.REGISTRY, registry())
    assert await kpis.refresh(runtime.sessions)
    await asyncio.sleep(0.01)  # (max_lag_s is measured on the wall clock)
    await consume(runtime, Streams.DIAGNOSTICS, [diagnosed(1, 1)])
    ticks.now += 1  # never quiet
    assert await kpis.refresh(runtime.sessions)  # but the snapshot is too old
    assert (await kpis.answer(runtime.sessions))["region"]["counts"]["diagnosed"] == 1


async def test_a_request_renews_the_snapshot_when_that_is_cheap(runtime: Runtime) -> None:
    kpis = runtime.context.kpis
    kpis.policy = projection.Policy(quiet_s=3600, inline_s=60)
    await consume(runtime, Streams.REGISTRY, registry())
    assert (await kpis.answer(runtime.sessions))["region"]["counts"]["teachers"] == 10
    await consume(runtime, Streams.DIAGNOSTICS, [diagnosed(1, 1), diagnosed(2, 2)])
    # no job ran: the request renewed it (a few events, a few milliseconds)
    assert (await kpis.answer(runtime.sessions))["region"]["counts"]["diagnosed"] == 2
    assert kpis.renewals == 2


# --- the schema --------------------------------------------------------------------------------


def test_every_handler_takes_a_batch() -> None:
    """Functions of (events, deps), built once: nothing of a runtime is captured."""
    for subscription in handlers.SUBSCRIPTIONS:
        for type_, handler in subscription.handlers.items():
            assert handler.__code__.co_varnames[:2] == ("events", "deps"), type_


async def test_a_worker_process_evaluates_the_snapshot_the_service_would(
    runtime: Runtime,
) -> None:
    """Renewals run in a process of their own (the consumer keeps its pace): what it
    evaluates from the database is what the service evaluates itself."""
    kpis = runtime.context.kpis
    await consume(runtime, Streams.REGISTRY, registry())
    await consume(runtime, Streams.DIAGNOSTICS, [diagnosed(n, n % 4 + 1) for n in range(6)])
    here = await kpis._renew(runtime.sessions, 0)
    assert here is not None and kpis.worker is None
    worker = projection.Worker(runtime.settings.resolved_database_url(), kpis.catalogue)
    try:
        kpis.worker = worker
        there = await kpis._renew(runtime.sessions, 1)
    finally:
        kpis.worker = None
        worker.close()
    assert there is not None and there.stored.version == here.stored.version
    strip = {"computed_at"}
    assert {k: v for k, v in there.answer.items() if k not in strip} == {
        k: v for k, v in here.answer.items() if k not in strip
    }
    assert there.answer["region"]["counts"]["diagnosed"] == 4  # teachers t-1 .. t-4
