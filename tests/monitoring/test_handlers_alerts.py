"""The alerts' list on a real database (SQLite and PostgreSQL): a page at a time, newest
first, to its end, the total told with each page; the open ones alone; a page past the end
empty."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from iomflow.monitoring import repository, service
from iomflow.shared import migrations

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    await asyncio.to_thread(migrations.upgrade, "iomflow.monitoring", database_url)
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as found:
            yield found
    finally:
        await engine.dispose()


async def raise_alerts(session: AsyncSession, n: int) -> None:
    for i in range(n):
        await session.execute(
            repository.alerts.insert().values(
                alert_id=f"kpi_off_path:k{i}:region",
                kind="kpi_off_path",
                severity="warning",
                subject=f"k{i}",
                message="отстаёт от графика",
                raised_at=T0 + timedelta(hours=i),
                # every third one is resolved already
                resolved_at=T0 + timedelta(days=1) if i % 3 == 0 else None,
            )
        )
    await session.commit()


async def test_the_alerts_are_paged_newest_first_to_their_end(session: AsyncSession) -> None:
    await raise_alerts(session, 7)
    seen: list[str] = []
    while True:
        items, total = await service.alerts(session, False, offset=len(seen), limit=3)
        assert total == 7
        if not items:
            break
        seen += [a["alert_id"] for a in items]
    assert seen == [f"kpi_off_path:k{i}:region" for i in reversed(range(7))]

    open_ones, total = await service.alerts(session, True, offset=0, limit=100)
    assert total == 4 and {a["subject"] for a in open_ones} == {"k1", "k2", "k4", "k5"}
    assert all(a["resolved_at"] is None for a in open_ones)
    assert open_ones[0]["raised_at"] == (T0 + timedelta(hours=5)).isoformat()

    past, total = await service.alerts(session, False, offset=10**20, limit=3)
    assert (past, total) == ([], 7)
    assert await repository.open_alerts_by_kind(session) == {"kpi_off_path": 4}
