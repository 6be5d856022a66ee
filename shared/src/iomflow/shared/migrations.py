"""Alembic, run the same way for every service: each has its own ``migrations/`` folder.

A service's ``migrations/env.py`` is two lines: import its metadata and call ``run_env``.
``upgrade(package, url)`` applies them from code (the ``migrate`` command, tests, the demo).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from iomflow.shared.db import create_engine


def alembic_config(package: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    # Passed as an attribute, not an ini option: URLs may hold '%' (configparser syntax).
    config.attributes["database_url"] = url
    return config


def upgrade(package: str, url: str, revision: str = "head") -> None:
    """Bring ``url``'s schema to ``revision``; blocking (call via ``asyncio.to_thread``)."""
    command.upgrade(alembic_config(package, url), revision)


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``env.py``."""
    url = (
        context.config.attributes.get("database_url")
        or context.config.get_main_option("sqlalchemy.url")
        or os.environ.get("IOMFLOW_DATABASE_URL")
    )
    if not url:
        raise RuntimeError("no database URL: set IOMFLOW_DATABASE_URL or sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata))


async def _run_online(url: str, metadata: MetaData) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, metadata)
            await connection.commit()
    finally:
        await engine.dispose()


def _migrate(connection: Connection, metadata: MetaData, **_: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
