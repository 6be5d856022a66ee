"""Routes tables: read models of teachers, programs and methodists; the routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes.domain import MethodistView, ProgramView, TeacherView
from iomflow.shared.db import new_metadata, upsert
from iomflow.shared.service import Tables

metadata = new_metadata()
tables = Tables(metadata)

teachers = Table(
    "teachers",
    metadata,
    Column("teacher_id", String(100), primary_key=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("audience", String(20), nullable=False),
)

programs = Table(
    "programs",
    metadata,
    Column("program_id", String(100), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("hours", Integer, nullable=False),
    Column("federal_registry", Integer, nullable=False),
    Column("competencies", JSON, nullable=False),
    Column("audiences", JSON, nullable=False),
)

methodists = Table(
    "methodists",
    metadata,
    Column("methodist_id", String(100), primary_key=True),
    Column("specialisations", JSON, nullable=False),
    Column("municipalities", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("load", Integer, nullable=False, default=0),
)

routes = Table(
    "routes",
    metadata,
    Column("route_id", String(36), primary_key=True),
    Column("diagnosis_id", String(36), nullable=False, unique=True),
    Column("teacher_id", String(100), nullable=False, index=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("status", String(20), nullable=False),  # drafted | superseded
    Column("steps", JSON, nullable=False),
    Column("total_hours", Integer, nullable=False),
    Column("methodist_id", String(100), nullable=True, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=True),
)


async def save_teacher(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(upsert(session, teachers, values, keys=["teacher_id"]))


async def save_program(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(upsert(session, programs, values, keys=["program_id"]))


async def save_methodist(session: AsyncSession, values: dict[str, Any]) -> None:
    # The load is ours (counted from assignments), never overwritten by the registry.
    await session.execute(upsert(session, methodists, values, keys=["methodist_id"]))


async def get_teacher(session: AsyncSession, teacher_id: str) -> TeacherView | None:
    row = (
        await session.execute(select(teachers).where(teachers.c.teacher_id == teacher_id))
    ).first()
    return (
        TeacherView(row.teacher_id, row.organization_id, row.municipality_id, row.audience)
        if row
        else None
    )


async def programs_for(session: AsyncSession, audience: str) -> list[ProgramView]:
    rows = await session.execute(select(programs))
    found = [
        ProgramView(
            r.program_id,
            r.title,
            r.hours,
            bool(r.federal_registry),
            tuple(r.competencies),
            tuple(r.audiences),
        )
        for r in rows
    ]
    return [p for p in found if audience in p.audiences]


async def all_methodists(session: AsyncSession) -> list[MethodistView]:
    rows = await session.execute(select(methodists))
    return [
        MethodistView(
            r.methodist_id, tuple(r.specialisations), tuple(r.municipalities), r.capacity, r.load
        )
        for r in rows
    ]


async def take_seat(session: AsyncSession, methodist_id: str) -> int | None:
    """Add one route to a methodist if under capacity; the new load, or None if full.

    One conditional UPDATE, so replicas assigning at once never exceed the capacity.
    """
    result = await session.execute(
        update(methodists)
        .where(methodists.c.methodist_id == methodist_id, methodists.c.load < methodists.c.capacity)
        .values(load=methodists.c.load + 1)
        .returning(methodists.c.load)
    )
    row = result.first()
    return row.load if row else None


async def free_seat(session: AsyncSession, methodist_id: str) -> None:
    await session.execute(
        update(methodists)
        .where(methodists.c.methodist_id == methodist_id)
        .values(load=methodists.c.load - 1)
    )


async def route_for_diagnosis(session: AsyncSession, diagnosis_id: str) -> Any:
    return (
        await session.execute(select(routes).where(routes.c.diagnosis_id == diagnosis_id))
    ).first()


async def current_draft(session: AsyncSession, teacher_id: str) -> Any:
    return (
        await session.execute(
            select(routes).where(routes.c.teacher_id == teacher_id, routes.c.status == "drafted")
        )
    ).first()


async def add_route(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(routes).values(**values))


async def set_status(session: AsyncSession, route_id: str, status: str) -> None:
    await session.execute(update(routes).where(routes.c.route_id == route_id).values(status=status))


async def assign(session: AsyncSession, route_id: str, methodist_id: str) -> None:
    await session.execute(
        update(routes)
        .where(routes.c.route_id == route_id)
        .values(methodist_id=methodist_id, assigned_at=datetime.now(UTC))
    )


async def unassigned(session: AsyncSession, limit: int = 1000) -> list[Any]:
    rows = await session.execute(
        select(routes)
        .where(routes.c.status == "drafted", routes.c.methodist_id.is_(None))
        .order_by(routes.c.created_at)
        .limit(limit)
    )
    return list(rows)


async def get_route(session: AsyncSession, route_id: str) -> Any:
    return (await session.execute(select(routes).where(routes.c.route_id == route_id))).first()


async def teacher_routes(session: AsyncSession, teacher_id: str) -> list[Any]:
    return list(
        await session.execute(
            select(routes).where(routes.c.teacher_id == teacher_id).order_by(routes.c.created_at)
        )
    )


async def counts(session: AsyncSession) -> dict[str, int]:
    async def count(*where: Any) -> int:
        query = select(func.count()).select_from(routes).where(*where)
        return (await session.execute(query)).scalar_one()

    return {
        "teachers": (
            await session.execute(select(func.count()).select_from(teachers))
        ).scalar_one(),
        "programs": (
            await session.execute(select(func.count()).select_from(programs))
        ).scalar_one(),
        "methodists": (
            await session.execute(select(func.count()).select_from(methodists))
        ).scalar_one(),
        "routes": await count(routes.c.status == "drafted"),
        "assigned": await count(routes.c.status == "drafted", routes.c.methodist_id.isnot(None)),
        "unassigned": await count(routes.c.status == "drafted", routes.c.methodist_id.is_(None)),
    }
