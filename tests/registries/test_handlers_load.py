"""Loading registers in bulk (``POST /v1/load``, the demo region, imports) is set-based: a
chunk of rows costs the same few statements whatever its size (one upsert of its records,
one of its personal data, one outbox INSERT of its events), on SQLite and PostgreSQL; a
reload of unchanged rows writes and publishes nothing and leaves ``verified_at`` alone; a
failure in the last chunk leaves nothing of the register written."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from iomflow.cli import region as demo
from iomflow.registries import repository, service
from iomflow.registries.domain import REGISTRY
from iomflow.shared import db, migrations
from iomflow.shared.contracts import Streams
from iomflow.shared.outbox import Outbox

ADMIN = "iomf_test_admin_key"
CHUNK = 20

BASE = {
    "municipalities": [{"municipality_id": "mun-01", "name": "г. Иркутск"}],
    "organizations": [
        {"organization_id": "org-1", "municipality_id": "mun-01", "name": "СОШ № 1",
         "kind": "school"},
    ],
}  # fmt: skip


def teachers(n: int, prefix: str = "t", position: str = "учитель") -> list[dict[str, Any]]:
    return [
        {"teacher_id": f"{prefix}-{i:04d}", "organization_id": "org-1", "position": position,
         "subjects": ["математика"], "birth_date": "1988-05-01", "hire_date": "2012-09-01",
         "full_name": "Петрова Анна Ивановна", "snils": "112-233-445 95",
         "email": f"{prefix}{i}@school.ru", "phone": "89140000000"}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(migrations.upgrade, "iomflow.registries", database_url)
    engine = db.create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def transaction(engine: AsyncEngine) -> service.Transaction:
    return service.transactions(db.sessionmaker(engine), Outbox(repository.tables.outbox))


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement sent to the database meanwhile (an executemany is one)."""
    sent: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(" ".join(statement.split()).upper())

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)


def kinds(sent: list[str]) -> Counter[str]:
    """Statements by what they write: INSERT INTO <table>, UPDATE <table>."""
    out: Counter[str] = Counter()
    for text in sent:
        words = text.split()
        if words[:2] == ["INSERT", "INTO"]:
            out[f"insert {words[2].strip(chr(34)).lower()}"] += 1
        elif words[0] == "UPDATE":
            out[f"update {words[1].strip(chr(34)).lower()}"] += 1
    return out


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def verifications(conn: Any) -> dict[str, Any]:
    records = repository.records
    rows = await conn.execute(select(records.c.record_id, records.c.verified_at))
    return {record_id: at for record_id, at in rows}


async def load(transaction: service.Transaction, region: dict[str, Any]) -> dict[str, Any]:
    reports = await service.load_region(transaction, region, actor="тест")
    assert all(r.applied for r in reports.values()), {n: r.errors for n, r in reports.items()}
    return reports


async def test_a_chunk_of_the_load_costs_three_statements_whatever_its_size(
    engine: AsyncEngine, transaction: service.Transaction, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CHUNK", CHUNK)
    await load(transaction, BASE)
    spent = {}
    for chunks, prefix in ((2, "a"), (5, "b")):
        rows = teachers(chunks * CHUNK - 3, prefix)  # the last chunk is not full
        before = await count(engine, repository.tables.outbox)
        with statements(engine) as sent:
            reports = await load(transaction, {"teachers": rows})
        assert reports["teachers"].created == len(rows)
        written = kinds(sent)
        # Per chunk: the records, their personal data, their events; each one statement.
        assert written == {
            "insert records": chunks,
            "insert personal_data": chunks,
            "insert outbox": chunks,
        }, written
        assert await count(engine, repository.tables.outbox) == before + len(rows)
        spent[chunks] = len(sent)
    # Everything else (the reads of the references and of the register) does not grow.
    assert spent[5] - spent[2] == 3 * (5 - 2), spent


async def test_the_demo_region_loads_in_a_few_statements_per_chunk(
    engine: AsyncEngine, transaction: service.Transaction
) -> None:
    region = demo.generate(seed=38, teachers=2500)
    with statements(engine) as sent:
        reports = await load(transaction, region)
    events = sum(r.published for r in reports.values())
    chunks = {name: math.ceil(len(rows) / service.CHUNK) for name, rows in region.items() if rows}
    written = kinds(sent)
    assert written["insert outbox"] == sum(chunks.values())
    assert written["insert records"] == sum(chunks.values())
    persons = sum(c for name, c in chunks.items() if REGISTRY[name].person)
    assert written["insert personal_data"] == persons
    assert sum(written.values()) == 2 * sum(chunks.values()) + persons
    assert await count(engine, repository.tables.outbox) == events
    assert events == sum(len(rows) for rows in region.values())


async def test_an_unchanged_reload_writes_and_publishes_nothing(
    engine: AsyncEngine, transaction: service.Transaction, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CHUNK", CHUNK)
    region = {**BASE, "teachers": teachers(3 * CHUNK)}
    await load(transaction, region)
    outbox = await count(engine, repository.tables.outbox)
    async with engine.connect() as conn:
        verified = await verifications(conn)

    with statements(engine) as sent:
        reports = await load(transaction, region)
    assert {n: (r.created, r.updated, r.unchanged) for n, r in reports.items()} == {
        "municipalities": (0, 0, 1),
        "organizations": (0, 0, 1),
        "teachers": (0, 0, 3 * CHUNK),
    }
    assert kinds(sent) == {}, sent  # no INSERT, no UPDATE at all
    assert await count(engine, repository.tables.outbox) == outbox
    async with engine.connect() as conn:
        again = await verifications(conn)
    assert again == verified  # a reload is not a re-verification

    # One teacher changed, one teacher's phone: one event, the other only its personal data.
    changed = teachers(3 * CHUNK)
    changed[7]["position"] = "заместитель директора"
    changed[41]["phone"] = "+7 914 555-55-55"
    with statements(engine) as sent:
        reports = await load(transaction, {"teachers": changed})
    report = reports["teachers"]
    assert (report.updated, report.personal_updated, report.published) == (1, 1, 1)
    assert kinds(sent) == {"insert records": 1, "insert personal_data": 1, "insert outbox": 1}
    assert await count(engine, repository.tables.outbox) == outbox + 1


async def test_a_failure_in_the_last_chunk_leaves_nothing_of_the_register(
    engine: AsyncEngine, transaction: service.Transaction, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CHUNK", CHUNK)
    await load(transaction, BASE)
    outbox = await count(engine, repository.tables.outbox)
    calls = []
    write_personal = repository.write_personal

    async def failing(session: AsyncSession, *args: Any) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        await write_personal(session, *args)

    monkeypatch.setattr(repository, "write_personal", failing)
    with pytest.raises(RuntimeError, match="went away"):
        await service.load_region(transaction, {"teachers": teachers(3 * CHUNK)}, actor="тест")
    assert len(calls) == 3  # two chunks were written before it failed
    async with engine.connect() as conn:
        stored = await conn.execute(
            select(func.count()).where(repository.records.c.register == "teachers")
        )
        assert stored.scalar_one() == 0
        people = await conn.execute(select(func.count()).select_from(repository.personal_data))
        assert people.scalar_one() == 0
    assert await count(engine, repository.tables.outbox) == outbox


# --- through the service ----------------------------------------------------------------------


async def published(redis_url: str) -> list[dict[str, str]]:
    await asyncio.sleep(0.5)  # the relay publishes after the commit
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        return [fields for _, fields in await redis.xrange(Streams.REGISTRY)]


async def test_the_demo_load_publishes_once_and_a_reload_nothing(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    first = await client.post("/v1/load", json=demo.generate(teachers=60))
    assert first.status_code == 200, first.text
    received, changed = first.json()["received"], first.json()["changed"]
    assert received == changed and received["teachers"] == 60
    entries = await published(clean_redis)
    assert len(entries) == sum(received.values())
    assert sum(e["type"] == "registry.teacher.upserted" for e in entries) == 60
    everything = json.dumps(entries, ensure_ascii=False)
    assert "snils" not in everything and "full_name" not in everything

    again = await client.post("/v1/load", json=demo.generate(teachers=60))
    assert again.status_code == 200
    assert set(again.json()["changed"].values()) == {0}
    assert len(await published(clean_redis)) == len(entries)


async def test_a_load_of_a_history_is_dated_by_its_since(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    """``since``: the registers held these records from that day — their events say so, so
    KPIs as of an earlier day count them; a day in the future is refused."""
    future = await client.post("/v1/load", params={"since": "2999-01-01"}, json=BASE)
    assert future.status_code == 422 and future.json()["code"] == "future_date"
    loaded = await client.post("/v1/load", params={"since": "2025-08-01"}, json=BASE)
    assert loaded.status_code == 200, loaded.text
    entries = await published(clean_redis)
    assert len(entries) == 2
    assert {e["occurred_at"] for e in entries} == {"2025-08-01T00:00:00+00:00"}


async def test_a_bad_row_keeps_its_whole_register_out_of_a_load(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    rows = teachers(45)
    rows[44]["birth_date"] = "31.02.1990"
    response = await client.post("/v1/load", json={**BASE, "teachers": rows})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "rows_invalid" and "Педагогические работники" in body["detail"]
    assert [(e["register"], e["row"], e["field"]) for e in body["errors"]] == [
        ("teachers", 46, "birth_date")
    ]
    assert body["errors"][0]["reason"] == "такой даты нет: 31.02.1990 — в феврале 1990 года 28 дней"
    counts = (await client.get("/v1/stats")).json()
    assert counts == {"municipalities": 1, "organizations": 1}  # each register on its own
    types = {e["type"] for e in await published(clean_redis)}
    assert types == {"registry.municipality.upserted", "registry.organization.upserted"}
