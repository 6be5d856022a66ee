"""Two replicas of routes at the same moment, on PostgreSQL: two sessions interleaved by
hand where one commits while the other is still open — the orders a burst produces only
sometimes.

- A teacher removed while a replica drafts their route: the removal waits for the draft
  (the teacher row is locked), then cancels it; the methodist's seat adds up.
- A seat freed while a replica queues a route: the freeing replica cannot see the queued
  route; the periodic tick seats it.
- A rebalance counts the seats of routes whose teacher is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.routes import domain, handlers, lifecycle, repository, service
from iomflow.routes.ledger import Ledger, ledger_of
from iomflow.shared import migrations
from iomflow.shared.contracts import (
    Audience,
    CompetencyResult,
    Contract,
    DiagnosisCompleted,
    Level,
    MethodistUpserted,
    RecordRemoved,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.db import create_engine, sessionmaker
from iomflow.shared.outbox import Outbox
from iomflow.shared.unit import Deps

T = TypeVar("T")


@dataclass
class Replicas:
    sessions: async_sessionmaker[AsyncSession]
    ctx: service.Routes
    outbox: Outbox

    async def deliver(
        self, type_: str, payload: Contract, session: AsyncSession | None = None
    ) -> None:
        """One entry through its handler, as the consumer applies a batch of one: in
        ``session`` (left open) or in a transaction of its own."""
        event = new_event(type_, payload, source="test", subject="s")
        if session is not None:
            deps = Deps(session, self.outbox, self.ctx)
            await handlers.HANDLERS[type_]([event], deps)
            await deps.flush()
            return
        async with self.sessions() as s, s.begin():
            deps = Deps(s, self.outbox, self.ctx)
            await handlers.HANDLERS[type_]([event], deps)
            await deps.flush()

    async def command(self, work: Callable[[Ledger], Awaitable[T]]) -> T:
        """A command in one transaction, as the HTTP API and the tick run them."""
        async with self.sessions() as s, s.begin():
            deps = Deps(s, self.outbox, self.ctx)
            async with ledger_of(deps) as ledger:
                result = await work(ledger)
            await deps.flush()
        return result

    async def seats(self) -> dict[str, tuple[int, int, int]]:
        """methodist -> (load, capacity, open routes it holds)."""
        async with self.sessions() as s:
            held = [r.methodist_id for r in await repository.find_open_routes(s)]
            return {
                m.methodist_id: (m.load, m.capacity, held.count(m.methodist_id))
                for m in await repository.get_all_methodists(s)
            }

    async def open_routes(self) -> list[tuple[str, str | None]]:
        async with self.sessions() as s:
            return [(r.teacher_id, r.methodist_id) for r in await repository.find_open_routes(s)]


@pytest.fixture
async def replicas(pg_database_url: str) -> AsyncIterator[Replicas]:
    await asyncio.to_thread(migrations.upgrade, "iomflow.routes", pg_database_url)
    engine = create_engine(pg_database_url)
    ctx = service.Routes(rules=domain.load_rules())
    r = Replicas(sessionmaker(engine), ctx, Outbox(repository.tables.outbox))
    for teacher_id in ("t0", "t1", "t2"):
        await r.deliver("registry.teacher.upserted", teacher(teacher_id))
    await r.deliver(
        "registry.methodist.upserted",
        MethodistUpserted(methodist_id="m1", specialisations=[], municipalities=[], capacity=1),
    )
    try:
        yield r
    finally:
        await engine.dispose()


def teacher(teacher_id: str) -> TeacherUpserted:
    return TeacherUpserted(
        teacher_id=teacher_id,
        organization_id="org-1",
        municipality_id="mun-1",
        position="учитель",
        audience=Audience.GENERAL,
        age_band="35-44",
        experience_band="10-20",
    )


def diagnosis(n: int, teacher_id: str) -> DiagnosisCompleted:
    deficits = [CompetencyResult(code="assessment", score=20, level=Level.CRITICAL)]
    return DiagnosisCompleted(
        diagnosis_id=f"d-{n}",
        teacher_id=teacher_id,
        organization_id="org-1",
        municipality_id="mun-1",
        campaign_id="c",
        framework_version="f",
        competencies=deficits,
        deficits=deficits,
    )


async def test_a_teacher_removed_while_a_replica_drafts_their_route_cancels_it(
    replicas: Replicas,
) -> None:
    drafting = replicas.sessions()
    await drafting.begin()  # replica B: t1's route takes m1's only seat, not committed yet
    await replicas.deliver("diagnostics.diagnosis.completed", diagnosis(1, "t1"), drafting)
    # replica A: the removal waits on the teacher row until B commits, then sees the route
    removal = asyncio.create_task(
        replicas.deliver("registry.teacher.removed", RecordRemoved(record_id="t1"))
    )
    await asyncio.sleep(0.5)
    assert not removal.done(), "the removal must wait for the open draft"
    await drafting.commit()
    await drafting.close()
    await asyncio.wait_for(removal, 10)

    assert await replicas.open_routes() == []
    assert await replicas.seats() == {"m1": (0, 1, 0)}
    await replicas.deliver("diagnostics.diagnosis.completed", diagnosis(2, "t2"))
    assert await replicas.seats() == {"m1": (1, 1, 1)}


async def test_a_seat_freed_while_a_replica_queues_a_route_is_taken_at_the_tick(
    replicas: Replicas,
) -> None:
    await replicas.deliver("diagnostics.diagnosis.completed", diagnosis(0, "t0"))  # m1 full
    queueing = replicas.sessions()
    await queueing.begin()  # replica B: t1's route finds nobody with room, not committed
    await replicas.deliver("diagnostics.diagnosis.completed", diagnosis(1, "t1"), queueing)

    async def cancel_t0(ledger: Ledger) -> None:  # replica A frees the seat meanwhile
        await ledger.load_routes(open_of=["t0"])
        (route,) = ledger.open_of("t0")
        await ledger.cancel(route, "отмена оператором", "operator", None)

    await replicas.command(cancel_t0)
    await queueing.commit()
    await queueing.close()
    assert await replicas.open_routes() == [("t1", None)]  # room, and a route waiting

    done = await replicas.command(lifecycle.tick)
    assert done["seated"] == 1
    assert await replicas.open_routes() == [("t1", "m1")]
    assert await replicas.seats() == {"m1": (1, 1, 1)}


async def test_a_rebalance_counts_the_seat_of_a_route_whose_teacher_is_gone(
    replicas: Replicas,
) -> None:
    await replicas.deliver("diagnostics.diagnosis.completed", diagnosis(1, "t1"))
    await replicas.deliver("diagnostics.diagnosis.completed", diagnosis(2, "t2"))  # queued
    async with replicas.sessions() as s, s.begin():  # the read model lost the teacher alone
        await s.execute(delete(repository.teachers).where(repository.teachers.c.teacher_id == "t1"))
    assert await replicas.command(service.rebalance) == []  # m1 is still full
    assert await replicas.open_routes() == [("t1", "m1"), ("t2", None)]
    assert await replicas.seats() == {"m1": (1, 1, 1)}
