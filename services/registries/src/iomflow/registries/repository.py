"""The registries' tables and queries.

``records`` holds every register's records as validated documents, with the columns people
filter and group by (municipality, organisation, owner, verification) lifted out and
indexed. Personal data is in ``personal_data`` only, and every read of it leaves a row in
``personal_data_access``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from iomflow.registries.domain import Register
from iomflow.registries.importing import Candidate
from iomflow.shared.db import new_metadata, upsert_many
from iomflow.shared.service import Tables

metadata = new_metadata()
tables = Tables(metadata, auth=True)


Document = JSON().with_variant(JSONB(), "postgresql")

records = Table(
    "records",
    metadata,
    Column("register", String(40), primary_key=True),
    Column("record_id", String(100), primary_key=True),
    Column("data", Document, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("municipality_id", String(100), nullable=True),
    Column("organization_id", String(100), nullable=True),
    Column("owner", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("verified_at", DateTime(timezone=True), nullable=False),
    Column("verified_by", String(200), nullable=False),
    Index("ix_records_register_municipality", "register", "municipality_id"),
    Index("ix_records_register_organization", "register", "organization_id"),
    Index("ix_records_register_owner_verified", "register", "owner", "verified_at"),
)

personal_data = Table(
    "personal_data",
    metadata,
    Column("register", String(40), primary_key=True),
    Column("record_id", String(100), primary_key=True),
    Column("full_name", String(200), nullable=False),
    Column("snils", String(14), nullable=True, index=True),
    Column("email", String(200), nullable=True),
    Column("phone", String(20), nullable=True),
    Column("digest", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

personal_data_access = Table(
    "personal_data_access",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("register", String(40), nullable=False),
    Column("record_id", String(100), nullable=False),
    Column("purpose", String(500), nullable=False),
    Index("ix_personal_data_access_record", "register", "record_id"),
)

imports = Table(
    "imports",
    metadata,
    Column("import_id", String(36), primary_key=True),
    Column("register", String(40), nullable=False),
    Column("filename", String(300), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("confirm", Boolean, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("total_rows", Integer, nullable=True),
    Column("summary", JSON, nullable=True),
    Column("errors", JSON, nullable=True),
    # The uploaded file until the import is done: it may hold personal data.
    Column("content", LargeBinary, nullable=True),
)

stale_notices = Table(
    "stale_notices",
    metadata,
    Column("register", String(40), primary_key=True),
    Column("owner", String(200), primary_key=True),
    Column("stale", Integer, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
)


# --- records -------------------------------------------------------------------------------


async def existing(
    session: AsyncSession, register: str, ids: Sequence[str] | None = None
) -> dict[str, tuple[str, str | None]]:
    """record id -> (digest of the record, digest of its personal data or None), of a
    register or only of ``ids`` of it (one query)."""
    query = (
        select(records.c.record_id, records.c.digest, personal_data.c.digest.label("pd"))
        .select_from(
            records.outerjoin(
                personal_data,
                and_(
                    personal_data.c.register == records.c.register,
                    personal_data.c.record_id == records.c.record_id,
                ),
            )
        )
        .where(records.c.register == register)
    )
    if ids is not None:
        query = query.where(records.c.record_id.in_(list(ids)))
    return {row.record_id: (row.digest, row.pd) for row in await session.execute(query)}


async def documents(
    session: AsyncSession, register: str, ids: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """record id -> record data, of a register (or only ``ids`` of it)."""
    query = select(records.c.record_id, records.c.data).where(records.c.register == register)
    if ids is not None:
        query = query.where(records.c.record_id.in_(list(ids)))
    return {row.record_id: row.data for row in await session.execute(query)}


async def record_ids(session: AsyncSession, register: str) -> set[str]:
    rows = await session.execute(select(records.c.record_id).where(records.c.register == register))
    return set(rows.scalars())


BATCH = 1000
"""Rows per statement of a bulk write."""


def _insert(session: AsyncSession, table: Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT."""
    if session.get_bind().dialect.name == "sqlite":
        return sqlite_insert(table)
    return pg_insert(table)


_REWRITTEN = [
    c.name for c in records.columns if c.name not in ("register", "record_id", "created_at")
]


async def write(
    session: AsyncSession,
    spec: Register,
    candidates: Sequence[Candidate],
    *,
    actor: str,
    now: datetime,
) -> None:
    """Store records (new or changed) as verified now by ``actor``: one INSERT … ON
    CONFLICT DO UPDATE per batch, which keeps a changed record's ``created_at``. Personal
    data is written apart (``write_personal``), only where it changed."""
    if not candidates:
        return
    rows = [
        {
            "register": spec.name,
            "record_id": c.record_id,
            "data": c.data,
            "digest": c.digest,
            "municipality_id": c.data.get("municipality_id"),
            "organization_id": c.data.get("organization_id"),
            "owner": spec.owner(c.data),
            "created_at": now,
            "updated_at": now,
            "verified_at": now,
            "verified_by": actor,
        }
        for c in candidates
    ]
    statement = _insert(session, records)
    statement = statement.on_conflict_do_update(
        index_elements=[records.c.register, records.c.record_id],
        set_={name: statement.excluded[name] for name in _REWRITTEN},
    )
    for start in range(0, len(rows), BATCH):
        await session.execute(statement, rows[start : start + BATCH])


async def write_personal(
    session: AsyncSession, spec: Register, candidates: Sequence[Candidate], now: datetime
) -> None:
    """Store the personal data of ``candidates`` (those that carry it)."""
    rows = [
        {
            "register": spec.name,
            "record_id": c.record_id,
            "full_name": c.personal["full_name"],
            "snils": c.personal.get("snils"),
            "email": c.personal.get("email"),
            "phone": c.personal.get("phone"),
            "digest": c.personal_digest,
            "updated_at": now,
        }
        for c in candidates
        if c.personal is not None
    ]
    for start in range(0, len(rows), BATCH):
        await upsert_many(
            session, personal_data, rows[start : start + BATCH], ["register", "record_id"]
        )


async def verify(
    session: AsyncSession, register: str, ids: Sequence[str], *, actor: str, now: datetime
) -> int:
    """Mark records as checked and still true; returns how many."""
    total = 0
    for start in range(0, len(ids), BATCH):
        result = await session.execute(
            update(records)
            .where(
                records.c.register == register, records.c.record_id.in_(ids[start : start + BATCH])
            )
            .values(verified_at=now, verified_by=actor)
        )
        total += result.rowcount  # type: ignore[attr-defined]
    return total


async def remove(session: AsyncSession, register: str, record_id: str) -> bool:
    await session.execute(
        delete(personal_data).where(
            personal_data.c.register == register, personal_data.c.record_id == record_id
        )
    )
    result = await session.execute(
        delete(records).where(records.c.register == register, records.c.record_id == record_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def field_filter(session: AsyncSession, name: str, kind: str, value: Any) -> ColumnElement[bool]:
    """``data.<name>`` equals ``value`` (scalar kinds) or contains it (``list``)."""
    dialect = session.get_bind().dialect.name
    element = records.c.data[name]
    if kind == "list":
        if dialect == "postgresql":
            return element.op("?")(bindparam(None, value, type_=String))  # type: ignore[no-any-return]
        each = func.json_each(records.c.data, f"$.{name}").table_valued("value")
        return exists(select(literal_column("1")).select_from(each).where(each.c.value == value))
    if kind == "bool":
        return element.as_boolean() == value  # type: ignore[no-any-return]
    if kind == "int":
        return element.as_integer() == value  # type: ignore[no-any-return]
    return element.as_string() == value  # type: ignore[no-any-return]


def field_in(name: str, values: Sequence[str], *, missing: bool = False) -> ColumnElement[bool]:
    """``data.<name>`` is one of ``values`` (or, with ``missing``, not there at all)."""
    element = records.c.data[name].as_string()
    if missing:
        return or_(element.is_(None), element.in_(list(values)))
    return element.in_(list(values))


async def get_document(
    session: AsyncSession, register: str, record_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    """One record's data; ``lock``: its row locked until the transaction ends (a change
    read, decided and written in one transaction is not lost to another's)."""
    query = select(records.c.data).where(
        records.c.register == register, records.c.record_id == record_id
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_documents(
    session: AsyncSession, register: str, conditions: Sequence[ColumnElement[bool]] = ()
) -> list[dict[str, Any]]:
    """The data of every record of a register matching ``conditions``, in id order."""
    rows = await session.execute(
        select(records.c.data)
        .where(records.c.register == register, true(), *conditions)
        .order_by(records.c.record_id)
    )
    return list(rows.scalars())


async def page(
    session: AsyncSession,
    register: str,
    *,
    conditions: Sequence[ColumnElement[bool]] = (),
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page of records with their verification) ordered by id."""
    where = and_(records.c.register == register, true(), *conditions)
    total = (
        await session.execute(select(func.count()).select_from(records).where(where))
    ).scalar_one()
    rows = await session.execute(
        select(records.c.data, records.c.verified_at, records.c.verified_by, records.c.updated_at)
        .where(where)
        .order_by(records.c.record_id)
        .offset(offset)
        .limit(limit)
    )
    return total, [_shown(row) for row in rows]


def _shown(row: Any) -> dict[str, Any]:
    return {
        **row.data,
        "verified_at": row.verified_at,
        "verified_by": row.verified_by,
        "updated_at": row.updated_at,
    }


async def one(session: AsyncSession, register: str, record_id: str) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(
                records.c.data, records.c.verified_at, records.c.verified_by, records.c.updated_at
            ).where(records.c.register == register, records.c.record_id == record_id)
        )
    ).first()
    return None if row is None else _shown(row)


async def referrers(
    session: AsyncSession, register: str, column: str, record_id: str, limit: int = 5
) -> list[str]:
    """Ids of ``register`` records whose lifted ``column`` names ``record_id``."""
    rows = await session.execute(
        select(records.c.record_id)
        .where(records.c.register == register, records.c[column] == record_id)
        .limit(limit)
    )
    return list(rows.scalars())


async def records_after(
    session: AsyncSession, register: str, after: str, limit: int
) -> list[tuple[str, dict[str, Any]]]:
    """The next ``limit`` records of a register in id order after ``after`` (keyset paging)."""
    rows = await session.execute(
        select(records.c.record_id, records.c.data)
        .where(records.c.register == register, records.c.record_id > after)
        .order_by(records.c.record_id)
        .limit(limit)
    )
    return [(row.record_id, row.data) for row in rows]


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(records.c.register, func.count()).group_by(records.c.register)
    )
    return {register: count for register, count in rows}


# --- personal data -------------------------------------------------------------------------


async def read_personal(
    session: AsyncSession,
    register: str,
    record_id: str,
    *,
    actor: str,
    purpose: str,
    now: datetime,
) -> dict[str, Any] | None:
    """The person's data; the read is audited in the same transaction."""
    row = (
        await session.execute(
            select(
                personal_data.c.full_name,
                personal_data.c.snils,
                personal_data.c.email,
                personal_data.c.phone,
            ).where(personal_data.c.register == register, personal_data.c.record_id == record_id)
        )
    ).first()
    if row is None:
        return None
    await session.execute(
        insert(personal_data_access).values(
            at=now, actor=actor, register=register, record_id=record_id, purpose=purpose
        )
    )
    return dict(row._mapping)


DATES_READ = "даты рождения и начала работы: "
"""How the access log tells a read of a record's personal dates from one of its person."""


async def audit_dates(
    session: AsyncSession,
    register: str,
    ids: Sequence[str],
    *,
    actor: str,
    purpose: str,
    now: datetime,
) -> None:
    """Audit a read of the personal dates of records: one ``personal_data_access`` row per
    record shown (so the log answers «who saw this person's data» as for ``read_personal``),
    its purpose prefixed with ``DATES_READ``; multi-row statements."""
    rows = [
        {
            "at": now,
            "actor": actor,
            "register": register,
            "record_id": i,
            "purpose": DATES_READ + purpose,
        }
        for i in ids
    ]
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(personal_data_access), rows[start : start + BATCH])


async def access_log(
    session: AsyncSession,
    *,
    register: str | None = None,
    record_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    """(how many reads match, one page of them, the latest first)."""
    where = and_(
        true(),
        *([personal_data_access.c.register == register] if register else []),
        *([personal_data_access.c.record_id == record_id] if record_id else []),
    )
    total = (
        await session.execute(select(func.count()).select_from(personal_data_access).where(where))
    ).scalar_one()
    query = select(personal_data_access).where(where).order_by(personal_data_access.c.id.desc())
    rows = await session.execute(query.offset(offset).limit(limit))
    return total, [dict(row._mapping) for row in rows]


# --- verification --------------------------------------------------------------------------


async def staleness(
    session: AsyncSession, cutoff: datetime, register: str | None = None
) -> list[dict[str, Any]]:
    """Per register and owner: records, how many verified before ``cutoff``, the oldest."""
    stale = func.sum(case((records.c.verified_at < cutoff, 1), else_=0))
    query = select(
        records.c.register,
        records.c.owner,
        func.count().label("total"),
        stale.label("stale"),
        func.min(records.c.verified_at).label("oldest"),
    ).group_by(records.c.register, records.c.owner)
    if register:
        query = query.where(records.c.register == register)
    rows = await session.execute(query.order_by(records.c.register, records.c.owner))
    return [dict(row._mapping) for row in rows]


async def stale_ids(
    session: AsyncSession, register: str, cutoff: datetime, owner: str | None, limit: int
) -> list[dict[str, Any]]:
    query = (
        select(records.c.record_id, records.c.owner, records.c.verified_at, records.c.verified_by)
        .where(records.c.register == register, records.c.verified_at < cutoff)
        .order_by(records.c.verified_at, records.c.record_id)
        .limit(limit)
    )
    if owner:
        query = query.where(records.c.owner == owner)
    return [dict(row._mapping) for row in await session.execute(query)]


async def notices(session: AsyncSession) -> dict[tuple[str, str], int]:
    rows = await session.execute(
        select(stale_notices.c.register, stale_notices.c.owner, stale_notices.c.stale)
    )
    return {(row.register, row.owner): row.stale for row in rows}


async def save_notices(
    session: AsyncSession, notices_: Mapping[tuple[str, str], int], now: datetime
) -> None:
    rows = [
        {"register": r, "owner": o, "stale": n, "published_at": now}
        for (r, o), n in notices_.items()
    ]
    if rows:
        await upsert_many(session, stale_notices, rows, ["register", "owner"])
