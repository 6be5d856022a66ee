"""The routes service under test for the HTTP tests: its app on a real Redis and
SQLite/PostgreSQL (started, migrated, its day fixed to ``TODAY``), and a client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from routes.test_api import make_app


@pytest.fixture
async def app(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    app = make_app(clean_redis, tmp_path, database_url)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://routes") as c:
        yield c
