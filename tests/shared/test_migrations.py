"""Every service's migrations give the schema of its code: after ``upgrade head`` on an
empty database, alembic finds nothing between the database and the service's SQLAlchemy
metadata (what its ``migrations/env.py`` migrates), on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import asyncio
import importlib
from importlib import resources

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from iomflow.cli.launcher import SERVICES
from iomflow.shared import db, migrations

KEPT = {"registries": {"records_v1"}}
"""Tables the migrations keep on purpose, that the code no longer has: registries' 0002
keeps the records of before the full registers as ``records_v1``, for reference."""


def migrated_metadata(service: str) -> MetaData:
    """The metadata the service's ``migrations/env.py`` hands to ``run_env``: read from its
    ``from <module> import metadata``, so the test follows where the tables live."""
    env = resources.files(f"iomflow.{service}").joinpath("migrations", "env.py").read_text()
    for node in ast.walk(ast.parse(env)):
        if isinstance(node, ast.ImportFrom) and any(a.name == "metadata" for a in node.names):
            metadata = importlib.import_module(node.module or "").metadata
            assert isinstance(metadata, MetaData), node.module
            return metadata
    raise AssertionError(f"{service}: migrations/env.py imports no metadata")


def test_every_service_is_covered() -> None:
    assert sorted(SERVICES) == ["diagnostics", "monitoring", "registries", "routes"]
    for service in SERVICES:
        assert migrated_metadata(service).tables, service


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrations_give_the_schema_of_the_code(database_url: str, service: str) -> None:
    await asyncio.to_thread(migrations.upgrade, f"iomflow.{service}", database_url)
    metadata = migrated_metadata(service)
    kept = KEPT.get(service, set())

    def include(obj: object, name: str | None, type_: str, reflected: bool, _: object) -> bool:
        return not (type_ == "table" and reflected and name in kept)

    engine = db.create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"include_object": include}), metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], f"{service}: the migrations and the code differ: {diff}"
