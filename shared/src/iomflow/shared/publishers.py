"""Outside publishers of inbound events: who they are, which types each may send, and what
each was told.

A publisher has an id (the ``source`` of its events, and its rate-limit key), a key (shown
once; only its SHA-256 is kept, as for people's API keys), its event types and optionally
its own rate. ``ingest_audit`` keeps one row per event (or refused request) posted over
HTTP (``iomflow.shared.ingest``). The admin commands (``iomflow <service> publishers …``,
``audit``) call the functions here.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.shared.auth import hash_key

KEY_PREFIX = "iomfp_"
"""Publisher keys start with it (API keys of people start with ``iomf_``)."""
PUBLISHER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


# --- tables ----------------------------------------------------------------------------------


def publishers_table(metadata: MetaData) -> Table:
    return Table(
        "publishers",
        metadata,
        Column("publisher_id", String(100), primary_key=True),  # the events' source
        Column("name", String(200), nullable=False),
        Column("key_hash", String(64), nullable=False, unique=True),
        Column("event_types", JSON, nullable=False),
        Column("rate_per_minute", Integer, nullable=True),  # null: the service's default
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
    )


def ingest_audit_table(metadata: MetaData) -> Table:
    return Table(
        "ingest_audit",
        metadata,
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("at", DateTime(timezone=True), nullable=False, index=True),
        Column("publisher_id", String(100), nullable=True, index=True),
        # First 12 hex digits of the presented key's SHA-256: which key, never the key.
        Column("key_hint", String(12), nullable=True),
        Column("remote_addr", String(100), nullable=True),
        Column("event_type", String(200), nullable=True),
        Column("event_id", String(36), nullable=True),
        Column("outcome", String(20), nullable=False, index=True),
        Column("status", Integer, nullable=False),
        Column("detail", String(1000), nullable=True),
    )


@dataclass
class IngestTables:
    """The ingestion tables of a service's database (beside ``Tables``)."""

    metadata: MetaData

    def __post_init__(self) -> None:
        self.publishers = publishers_table(self.metadata)
        self.audit = ingest_audit_table(self.metadata)


# --- publishers (admin) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Publisher:
    publisher_id: str
    name: str
    event_types: frozenset[str]
    rate_per_minute: int | None


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_types(types: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The types, sorted and unique, if each is ``allowed`` (what the service ingests);
    ValueError otherwise."""
    chosen = sorted({t.strip() for t in types if t.strip()})
    allowed = set(allowed)
    unknown = [t for t in chosen if t not in allowed]
    if unknown or not chosen:
        raise ValueError(
            f"типы событий {', '.join(unknown) or '(не указаны)'} не принимаются; "
            f"допустимы: {', '.join(sorted(allowed))}"
        )
    return chosen


async def add_publisher(
    session: AsyncSession,
    tables: IngestTables,
    publisher_id: str,
    types: Iterable[str],
    *,
    name: str | None = None,
    rate_per_minute: int | None = None,
    allowed: Iterable[str],
) -> str | None:
    """Register a publisher; its key (shown once, not stored), or None if the id is taken.

    ``types`` must be among ``allowed``: the types the service ingests (its ``INGESTS``)."""
    if not PUBLISHER_ID.match(publisher_id):
        raise ValueError("код издателя: латинские буквы, цифры, «.», «_», «-», до 100 знаков")
    if rate_per_minute is not None and rate_per_minute < 1:
        raise ValueError("лимит в минуту — целое число не меньше 1")
    chosen = check_types(types, allowed)
    table = tables.publishers
    taken = await session.execute(
        select(table.c.publisher_id).where(table.c.publisher_id == publisher_id)
    )
    if taken.first() is not None:
        return None
    key = _new_key()
    await session.execute(
        insert(table).values(
            publisher_id=publisher_id,
            name=name or publisher_id,
            key_hash=hash_key(key),
            event_types=chosen,
            rate_per_minute=rate_per_minute,
            created_at=datetime.now(UTC),
        )
    )
    return key


async def rotate_key(session: AsyncSession, tables: IngestTables, publisher_id: str) -> str | None:
    """A new key for an active publisher (the old one stops working at once), or None."""
    key = _new_key()
    table = tables.publishers
    result = await session.execute(
        update(table)
        .where(table.c.publisher_id == publisher_id, table.c.revoked_at.is_(None))
        .values(key_hash=hash_key(key))
    )
    return key if result.rowcount else None  # type: ignore[attr-defined]


async def revoke_publisher(session: AsyncSession, tables: IngestTables, publisher_id: str) -> bool:
    table = tables.publishers
    result = await session.execute(
        update(table)
        .where(table.c.publisher_id == publisher_id, table.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def change_publisher(
    session: AsyncSession,
    tables: IngestTables,
    publisher_id: str,
    *,
    types: Iterable[str] | None = None,
    rate_per_minute: int | None = None,
    default_rate: bool = False,
    allowed: Iterable[str],
) -> bool:
    """Change an active publisher's types (among ``allowed``, as for ``add_publisher``) or
    rate (``default_rate``: the service's)."""
    values: dict[str, Any] = {}
    if types is not None:
        values["event_types"] = check_types(types, allowed)
    if default_rate:
        values["rate_per_minute"] = None
    elif rate_per_minute is not None:
        if rate_per_minute < 1:
            raise ValueError("лимит в минуту — целое число не меньше 1")
        values["rate_per_minute"] = rate_per_minute
    if not values:
        raise ValueError("нечего менять: укажите --types или --rate")
    table = tables.publishers
    result = await session.execute(
        update(table)
        .where(table.c.publisher_id == publisher_id, table.c.revoked_at.is_(None))
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_publishers(session: AsyncSession, tables: IngestTables) -> list[dict[str, Any]]:
    """Publishers without their key hashes, oldest first."""
    t = tables.publishers
    rows = await session.execute(
        select(
            t.c.publisher_id,
            t.c.name,
            t.c.event_types,
            t.c.rate_per_minute,
            t.c.created_at,
            t.c.revoked_at,
        ).order_by(t.c.created_at, t.c.publisher_id)
    )
    return [dict(row._mapping) for row in rows]


def _audit_filters(
    tables: IngestTables, outcome: str | None, publisher_id: str | None, before: int | None
) -> list[Any]:
    t = tables.audit
    where: list[Any] = []
    if outcome:
        where.append(t.c.outcome == outcome)
    if publisher_id:
        where.append(t.c.publisher_id == publisher_id)
    if before is not None:
        where.append(t.c.id < before)
    return where


async def list_audit(
    session: AsyncSession,
    tables: IngestTables,
    *,
    outcome: str | None = None,
    publisher_id: str | None = None,
    before: int | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit rows, newest first; ``before`` (an id) or ``offset`` pages on."""
    t = tables.audit
    query = (
        select(t)
        .where(*_audit_filters(tables, outcome, publisher_id, before))
        .order_by(t.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [dict(row._mapping) for row in await session.execute(query)]


async def count_audit(
    session: AsyncSession,
    tables: IngestTables,
    *,
    outcome: str | None = None,
    publisher_id: str | None = None,
    before: int | None = None,
) -> int:
    """How many audit rows ``list_audit`` pages through with these filters."""
    query = (
        select(func.count())
        .select_from(tables.audit)
        .where(*_audit_filters(tables, outcome, publisher_id, before))
    )
    return int((await session.execute(query)).scalar_one())
