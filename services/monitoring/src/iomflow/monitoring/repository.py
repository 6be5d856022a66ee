"""Monitoring projections: per teacher where they are in the chain; methodists."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    String,
    Table,
    and_,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.monitoring.domain import Counts
from iomflow.shared.db import new_metadata, upsert
from iomflow.shared.service import Tables

metadata = new_metadata()
tables = Tables(metadata)

municipalities = Table(
    "municipalities",
    metadata,
    Column("municipality_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
)

teachers = Table(
    "teachers",
    metadata,
    Column("teacher_id", String(100), primary_key=True),
    Column("municipality_id", String(100), nullable=False, index=True),
    Column("organization_id", String(100), nullable=False),
    Column("registered", Integer, nullable=False, default=0),
    Column("diagnosis_id", String(36), nullable=True),
    Column("diagnosed_at", DateTime(timezone=True), nullable=True),
    Column("route_id", String(36), nullable=True),
    Column("route_at", DateTime(timezone=True), nullable=True),
    Column("methodist_id", String(100), nullable=True, index=True),
    Column("assigned_at", DateTime(timezone=True), nullable=True),
)


async def save_municipality(session: AsyncSession, municipality_id: str, name: str) -> None:
    await session.execute(
        upsert(
            session,
            municipalities,
            {"municipality_id": municipality_id, "name": name},
            keys=["municipality_id"],
        )
    )


async def save_teacher(session: AsyncSession, values: dict[str, Any]) -> None:
    """Upsert only the given columns: registry and chain facts arrive in any order."""
    await session.execute(upsert(session, teachers, values, keys=["teacher_id"]))


async def route_drafted(session: AsyncSession, teacher_id: str, route_id: str, at: Any) -> None:
    # A new route has no methodist yet, unless its assignment was applied first (retries
    # can reorder): then the row already names this route and is left as it is.
    await session.execute(
        update(teachers)
        .where(
            teachers.c.teacher_id == teacher_id,
            or_(teachers.c.route_id.is_(None), teachers.c.route_id != route_id),
        )
        .values(route_id=route_id, route_at=at, methodist_id=None, assigned_at=None)
    )


async def methodist_assigned(
    session: AsyncSession, teacher_id: str, route_id: str, methodist_id: str, at: Any
) -> None:
    await session.execute(
        update(teachers)
        .where(teachers.c.teacher_id == teacher_id)
        .values(route_id=route_id, methodist_id=methodist_id, assigned_at=at)
    )


async def counts(session: AsyncSession) -> tuple[Counts, dict[str, Counts], dict[str, str]]:
    """Counts for the region and for every municipality, and municipality names."""
    registered = teachers.c.registered == 1

    def flag(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    columns = (
        flag(registered),
        flag(and_(registered, teachers.c.diagnosed_at.isnot(None))),
        flag(and_(registered, teachers.c.route_id.isnot(None))),
        flag(
            and_(registered, teachers.c.route_id.isnot(None), teachers.c.methodist_id.isnot(None))
        ),
    )
    per_mun_rows = await session.execute(
        select(teachers.c.municipality_id, *columns).group_by(teachers.c.municipality_id)
    )
    loads = (
        select(teachers.c.municipality_id, teachers.c.methodist_id, func.count().label("n"))
        .where(teachers.c.methodist_id.isnot(None))
        .group_by(teachers.c.municipality_id, teachers.c.methodist_id)
        .subquery()
    )
    mun_load = dict(
        (
            await session.execute(
                select(loads.c.municipality_id, func.max(loads.c.n)).group_by(
                    loads.c.municipality_id
                )
            )
        )
        .tuples()
        .all()
    )
    per_methodist = (
        select(func.count().label("n"))
        .where(teachers.c.methodist_id.isnot(None))
        .group_by(teachers.c.methodist_id)
        .subquery()
    )
    region_load = (
        await session.execute(select(func.coalesce(func.max(per_methodist.c.n), 0)))
    ).scalar_one()
    per_mun = {
        mun: Counts(int(t), int(d), int(r), int(s), int(mun_load.get(mun, 0)))
        for mun, t, d, r, s in per_mun_rows.tuples()
    }
    region = Counts(
        teachers=sum(c.teachers for c in per_mun.values()),
        diagnosed=sum(c.diagnosed for c in per_mun.values()),
        with_route=sum(c.with_route for c in per_mun.values()),
        supported=sum(c.supported for c in per_mun.values()),
        max_load=int(region_load or 0),
    )
    names = dict(
        (await session.execute(select(municipalities.c.municipality_id, municipalities.c.name)))
        .tuples()
        .all()
    )
    return region, per_mun, names
