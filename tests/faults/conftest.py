"""Fixtures of the fault suite: the databases of the four services, on SQLite files or on
fresh PostgreSQL databases (as ``e2e``'s ``chain``, without starting the suite: each
scenario starts it with its own settings, or around a server of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import infra
import pytest

from faults.common import fresh_databases


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Service -> database URL; empty on SQLite (each service's file under its data dir)."""
    if request.param == "sqlite":
        yield {}
        return
    yield fresh_databases(request.getfixturevalue("postgres_server"), "faults")


@pytest.fixture(scope="module")
def stoppable_postgres() -> Iterator[infra.PostgresServer]:
    """A PostgreSQL server process of this module's own, which a test may stop and start
    (the session's server may be a container or a URL it does not own)."""
    server = infra.start_postgres(["binary", "embedded"])
    try:
        yield server
    finally:
        server.stop()
