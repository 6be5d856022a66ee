"""The registries' tables. Personal data will live in its own table (issue 3); the demo
records carry none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.registries.domain import Change
from iomflow.shared.db import new_metadata, upsert
from iomflow.shared.service import Tables

metadata = new_metadata()
tables = Tables(metadata)

records = Table(
    "records",
    metadata,
    Column("register", String(40), primary_key=True),
    Column("record_id", String(100), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("verified_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


async def digests(session: AsyncSession, register: str) -> dict[str, str]:
    rows = await session.execute(
        select(records.c.record_id, records.c.digest).where(records.c.register == register)
    )
    return {row.record_id: row.digest for row in rows}


async def save(session: AsyncSession, change: Change) -> None:
    now = datetime.now(UTC)
    await session.execute(
        upsert(
            session,
            records,
            {
                "register": change.entity.plural,
                "record_id": change.record_id,
                "data": change.record.model_dump(mode="json"),
                "digest": change.digest,
                "verified_at": now,
                "updated_at": now,
            },
            keys=["register", "record_id"],
        )
    )


async def get_all(
    session: AsyncSession, register: str, *, offset: int, limit: int
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(records.c.data)
        .where(records.c.register == register)
        .order_by(records.c.record_id)
        .offset(offset)
        .limit(limit)
    )
    return [row.data for row in rows]


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(records.c.register, func.count()).group_by(records.c.register)
    )
    return {register: count for register, count in rows.tuples()}
