"""The registries' load endpoint, in process on a real Redis and SQLite: all or nothing,
Russian row errors, and a re-load of the same data publishes nothing."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from iomflow.registries.app import create_app
from iomflow.registries.demo import generate
from iomflow.registries.settings import Settings
from iomflow.shared.contracts import Streams

REGION = generate(seed=3, teachers=20)


@pytest.fixture
async def client(clean_redis: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(redis_url=clean_redis, data_dir=tmp_path, migrate_on_start=True, relay_poll_s=0.05)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registries") as c:
            yield c


async def test_a_bad_row_loads_nothing_and_says_why_in_russian(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    region = copy.deepcopy(REGION)
    region["teachers"][4]["age_band"] = "сто лет"
    response = await client.post("/v1/load", json=region)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "rows_invalid" and "не загружены" in body["detail"]
    assert body["errors"] == [
        {
            "register": "teachers",
            "row": 5,
            "field": "age_band",
            "reason": body["errors"][0]["reason"],
        }
    ]
    assert "недопустимое значение" in body["errors"][0]["reason"]
    assert (await client.get("/v1/stats")).json() == {}
    async with Redis.from_url(clean_redis) as redis:
        assert await redis.xlen(Streams.REGISTRY) == 0


async def test_reloading_the_same_data_changes_and_publishes_nothing(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    first = (await client.post("/v1/load", json=REGION)).json()
    assert first["changed"]["teachers"] == 20
    second = (await client.post("/v1/load", json=REGION)).json()
    assert set(second["changed"].values()) == {0}
    async with Redis.from_url(clean_redis) as redis:
        published = sum(first["changed"].values())
        for _ in range(100):
            if await redis.xlen(Streams.REGISTRY) == published:
                break
            await asyncio.sleep(0.05)
        assert await redis.xlen(Streams.REGISTRY) == published
