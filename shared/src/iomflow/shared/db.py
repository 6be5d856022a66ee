"""Engines and sessions for SQLite (the embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import JSON, MetaData, Table, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class RawJSON(str):
    """JSON text already serialized (e.g. a payload exactly as a publisher sent it): a
    ``JSONText`` column stores it as it is, without parsing and dumping it again."""


class JSONText(TypeDecorator[Any]):
    """A JSON column that also takes ``RawJSON`` text as it is; read back, it is JSON like
    any other (the database type is the same: no migration)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        inner = self.load_dialect_impl(dialect).bind_processor(dialect)

        def process(value: Any) -> Any:
            if isinstance(value, RawJSON):
                return str(value)
            return inner(value) if inner is not None else value

        return process


def new_metadata() -> MetaData:
    """A MetaData with a naming convention, so Alembic migrations are stable."""
    return MetaData(naming_convention=NAMING)


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, AsyncEngine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets real transactions, SAVEPOINTs and WAL."""
    if not is_sqlite(url):
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, **kwargs)

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # One connection: SQLite has one writer anyway, and queueing in the pool is cheaper
    # than "database is locked" retries between our own tasks.
    engine = create_async_engine(
        url, pool_size=1, max_overflow=0, connect_args={"timeout": 30}, **kwargs
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        # pysqlite's own transaction handling breaks SAVEPOINT; take it over (SQLAlchemy
        # documents this recipe for pysqlite and aiosqlite alike).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def insert_ignore(session: AsyncSession, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the session's dialect."""
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    return insert(table).on_conflict_do_nothing()


def upsert(session: AsyncSession, table: Table, values: dict[str, Any], keys: list[str]) -> Any:
    """INSERT … ON CONFLICT (keys) DO UPDATE for the session's dialect."""
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = insert(table).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in keys}
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=keys)
    return stmt.on_conflict_do_update(index_elements=keys, set_=update)


def upsert_many(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], keys: list[str]
) -> Any:
    """One executemany INSERT … ON CONFLICT (keys) DO UPDATE of every column in ``rows``."""
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = insert(table)
    columns = [k for k in rows[0] if k not in keys]
    return session.execute(
        stmt.on_conflict_do_update(
            index_elements=keys, set_={k: stmt.excluded[k] for k in columns}
        ),
        rows,
    )


GROWN = text(
    """
    SELECT relname FROM pg_stat_user_tables
    WHERE n_mod_since_analyze > greatest(1000, n_live_tup / 2)
    ORDER BY relname
    """
)


async def analyze_grown(engine: AsyncEngine) -> list[str]:
    """PostgreSQL: ``ANALYZE`` the tables that changed by half since they were last
    analysed (never analysed, and over 1,000 rows changed, included); the ones analysed.

    Set-based reads of a batch look rows up by key; the planner only takes the indexes for
    them once it has statistics. A table that grows from nothing during a wave has none
    until autovacuum comes by (a minute or more), and meanwhile a lookup of a batch's 500
    keys scanned the whole table (150 ms a batch on 20,000 results, 1.5 ms analysed)."""
    if engine.dialect.name != "postgresql":
        return []
    async with engine.connect() as conn:
        grown = [name for (name,) in await conn.execute(GROWN)]
        for name in grown:
            await conn.execute(text(f'ANALYZE "{name}"'))
        await conn.commit()
    return grown
