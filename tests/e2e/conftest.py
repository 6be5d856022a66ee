"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import infra
import pytest

from e2e.test_chain import start_suite
from iomflow.cli.launcher import Suite


@pytest.fixture(params=["sqlite", "postgresql"])
def chain(request: pytest.FixtureRequest, clean_redis: str, tmp_path: Path) -> Iterator[Suite]:
    databases: dict[str, str] = {}
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        for name in ("registries", "diagnostics", "routes", "monitoring"):
            db_name = infra.unique_database_name(f"e2e_{name}")
            databases[name] = asyncio.run(server.create_database(db_name))
    suite = start_suite(tmp_path, clean_redis, databases)
    try:
        yield suite
    finally:
        suite.stop()
