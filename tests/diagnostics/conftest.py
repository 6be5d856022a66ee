"""The diagnostics service in process for the HTTP tests (``test_api*.py``): ``app`` on a
real Redis and SQLite/PostgreSQL, ``client`` once the registries' six teachers and two
programs (``test_api.registry_events``) are in its read model; ``serving`` for a test
file that announces other registry events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from waiting import wait_for

from diagnostics.test_api import make_app, publish, registry_events
from iomflow.shared.contracts import Streams


@pytest.fixture
async def app(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    app = make_app(clean_redis, tmp_path, database_url)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def serving(
    app: FastAPI, redis_url: str, events: Sequence[Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` once the registry ``events`` (six teachers, two programs) are in
    its read model."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://diagnostics") as c:
        await publish(redis_url, Streams.REGISTRY, list(events))

        async def known() -> bool:
            stats = (await c.get("/v1/stats")).json()
            return stats["teachers"] == 6 and stats["programs"] == 2

        await wait_for(known, "the registries' read model")
        yield c


@pytest.fixture
async def client(app: FastAPI, clean_redis: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service with the registries' six teachers and two programs."""
    async with serving(app, clean_redis, registry_events()) as c:
        yield c
