"""The registries service in process, as its API tests use it: on a real Redis and
SQLite/PostgreSQL (``database_url``), migrated on start, the outbox relayed every 50 ms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from iomflow.registries.app import create_app
from iomflow.registries.settings import Settings

ADMIN = "iomf_test_admin_key"


@pytest.fixture
async def app(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    """The service started (its lifespan run: migrated, relaying), its admin key ``ADMIN``."""
    app = create_app(
        Settings(
            redis_url=clean_redis,
            data_dir=tmp_path,
            database_url=database_url,
            migrate_on_start=True,
            relay_poll_s=0.05,
            admin_key=ADMIN,
        )
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the started service with the admin key; the registers empty (a module
    loads its region by overriding this fixture)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://registries",
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as c:
        yield c
