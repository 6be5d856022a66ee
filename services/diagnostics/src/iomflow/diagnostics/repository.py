"""Diagnostics tables: a teacher read model, results as submitted, diagnoses."""

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
    UniqueConstraint,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

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
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

results = Table(
    "results",
    metadata,
    Column("result_id", String(36), primary_key=True),  # the event id
    Column("teacher_id", String(100), nullable=False, index=True),
    Column("campaign_id", String(100), nullable=False),
    Column("instrument", String(40), nullable=False),
    Column("scores", JSON, nullable=False),
    Column("source", String(200), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

diagnoses = Table(
    "diagnoses",
    metadata,
    Column("diagnosis_id", String(36), primary_key=True),
    Column("teacher_id", String(100), nullable=False),
    Column("campaign_id", String(100), nullable=False),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("framework_version", String(40), nullable=False),
    Column("competencies", JSON, nullable=False),
    Column("deficits", JSON, nullable=False),
    Column("deficit_count", Integer, nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("teacher_id", "campaign_id"),
)


async def save_teacher(session: AsyncSession, teacher_id: str, org: str, mun: str) -> None:
    values = {
        "teacher_id": teacher_id,
        "organization_id": org,
        "municipality_id": mun,
        "updated_at": datetime.now(UTC),
    }
    await session.execute(upsert(session, teachers, values, keys=["teacher_id"]))


async def get_teacher(session: AsyncSession, teacher_id: str) -> Any:
    return (
        await session.execute(select(teachers).where(teachers.c.teacher_id == teacher_id))
    ).first()


async def add_result(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(results).values(**values))


async def campaign_results(session: AsyncSession, teacher_id: str, campaign_id: str) -> list[Any]:
    rows = await session.execute(
        select(results.c.instrument, results.c.scores)
        .where(results.c.teacher_id == teacher_id, results.c.campaign_id == campaign_id)
        .order_by(results.c.received_at)
    )
    return list(rows)


async def find_diagnosis(session: AsyncSession, teacher_id: str, campaign_id: str) -> Any:
    return (
        await session.execute(
            select(diagnoses).where(
                diagnoses.c.teacher_id == teacher_id, diagnoses.c.campaign_id == campaign_id
            )
        )
    ).first()


async def add_diagnosis(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(diagnoses).values(**values))


async def get_diagnosis(session: AsyncSession, diagnosis_id: str) -> Any:
    return (
        await session.execute(select(diagnoses).where(diagnoses.c.diagnosis_id == diagnosis_id))
    ).first()


async def teacher_diagnoses(session: AsyncSession, teacher_id: str) -> list[Any]:
    rows = await session.execute(
        select(diagnoses)
        .where(diagnoses.c.teacher_id == teacher_id)
        .order_by(diagnoses.c.completed_at)
    )
    return list(rows)


async def counts(session: AsyncSession) -> dict[str, int]:
    out = {}
    for name, table in (("teachers", teachers), ("results", results), ("diagnoses", diagnoses)):
        out[name] = (await session.execute(select(func.count()).select_from(table))).scalar_one()
    out["with_deficits"] = (
        await session.execute(
            select(func.count()).select_from(diagnoses).where(diagnoses.c.deficit_count > 0)
        )
    ).scalar_one()
    return out
