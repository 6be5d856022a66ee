"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import infra
import pytest
from playwright.sync_api import Browser, sync_playwright

from e2e.test_chain import start_suite
from iomflow.cli.launcher import Suite

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium: the browser tests drive it (Playwright's own download does not work on
a closed network)."""


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


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, through Playwright. Without it the test fails saying how
    to install it (``make test`` installs it as root), never skips: here, since the fixture
    is set up before a test's own check could run."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is absent: apt-get install chromium (or run make test as root)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()
