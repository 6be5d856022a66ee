"""The registries' API in process on a real Redis and SQLite/PostgreSQL: editing records
publishes their events through the outbox, filters and pages, personal data behind a role
with every read audited, stale records found with a moved clock, resync."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from iomflow.registries import service
from iomflow.registries.domain import age_band, experience_band
from iomflow.registries.repository import tables
from iomflow.registries.tabular import read_table
from iomflow.shared import auth
from iomflow.shared.contracts import Streams

REGION = {
    "municipalities": [
        {"municipality_id": "mun-01", "name": "г. Иркутск"},
        {"municipality_id": "mun-02", "name": "Катангский район", "remote": True},
    ],
    "organizations": [
        {"organization_id": "org-1", "municipality_id": "mun-01", "name": "СОШ № 1",
         "kind": "school", "low_results": True, "projects": ["school_of_ministry"]},
        {"organization_id": "org-2", "municipality_id": "mun-02", "name": "СОШ № 2",
         "kind": "school"},
        {"organization_id": "org-3", "municipality_id": "mun-02", "name": "Детский сад № 3",
         "kind": "kindergarten"},
    ],
    "teachers": [
        {"teacher_id": f"t-{n}", "organization_id": f"org-{1 + n % 3}", "position": "учитель",
         "subjects": ["математика"] if n % 2 else ["история"], "birth_date": "1990-05-01",
         "hire_date": "2015-09-01", "full_name": "Петров Иван Сергеевич",
         "snils": "112-233-445 95", "email": f"t{n}@mail.ru", "phone": "89140000000"}
        for n in range(1, 8)
    ],
}  # fmt: skip


@pytest.fixture
async def client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The admin's client (``conftest``), the region loaded."""
    assert (await client.post("/v1/load", json=REGION)).status_code == 200
    return client


async def key_with(app: FastAPI, name: str, *roles: str) -> dict[str, str]:
    runtime = app.state.runtime
    async with runtime.sessions() as session, session.begin():
        _, key = await auth.issue(session, tables.api_keys, name, roles)
    return {"Authorization": f"Bearer {key}"}


async def events(redis_url: str, type_: str | None = None) -> list[dict[str, Any]]:
    await asyncio.sleep(0.3)
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        entries = [fields for _, fields in await redis.xrange(Streams.REGISTRY)]
    return [
        {**e, "data": json.loads(e["data"])} for e in entries if type_ is None or e["type"] == type_
    ]


async def test_create_update_remove_publish_their_events(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    program = {
        "program_id": "p-1",
        "title": "Функциональная грамотность: читательская",
        "kind": "ПК",
        "hours": 36,
        "format": "дистанционная",
        "federal_registry": "да",
        "federal_number": "ФР-2026-0001",
        "competencies": ["functional_literacy"],
        "themes": ["функциональная грамотность"],
        "audiences": ["общее"],
    }
    created = await client.post("/v1/registers/programs/records", json=program)
    assert created.status_code == 201, created.text
    assert created.json()["record"]["format"] == "distance"
    assert (await client.post("/v1/registers/programs/records", json=program)).status_code == 409

    same = await client.put("/v1/registers/programs/records/p-1", json=program)
    assert same.json()["changed"] is False
    longer = await client.put("/v1/registers/programs/records/p-1", json={**program, "hours": 72})
    assert longer.json()["changed"] is True
    upserts = await events(clean_redis, "registry.program.upserted")
    assert [e["data"]["hours"] for e in upserts] == [36, 72]

    invalid = await client.put(
        "/v1/registers/programs/records/p-1",
        json={**program, "federal_number": None, "hours": 0, "colour": "red"},
    )
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["code"] == "record_invalid"
    reasons = {e["field"]: e["reason"] for e in body["errors"]}
    assert set(reasons) == {"colour", "hours"}
    assert "неизвестное поле" in reasons["colour"] and "не меньше 1" in reasons["hours"]

    in_use = await client.delete("/v1/registers/organizations/records/org-1")
    assert in_use.status_code == 409 and "t-3" in in_use.json()["detail"]
    gone = await client.delete("/v1/registers/teachers/records/t-3", params={"reason": "уволен"})
    assert gone.status_code == 200
    removed = await events(clean_redis, "registry.teacher.removed")
    assert [(e["subject"], e["data"]["reason"]) for e in removed] == [("t-3", "уволен")]
    missing = await client.get("/v1/registers/teachers/records/t-3")
    assert missing.status_code == 404 and missing.json()["code"] == "record_not_found"


async def test_teacher_events_carry_bands_not_dates_or_names(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    teachers = await events(clean_redis, "registry.teacher.upserted")
    assert len(teachers) == 7
    payload = teachers[0]["data"]
    assert payload["age_band"] in ("25-34", "35-44") and payload["experience_band"] == "10-20"
    assert not {"birth_date", "hire_date", "full_name", "snils", "email", "phone"} & set(payload)
    everything = json.dumps(await events(clean_redis), ensure_ascii=False)
    assert "Петров" not in everything and "112-233-445 95" not in everything
    assert "@mail.ru" not in everything and "+7 914" not in everything


async def test_filters_and_pages(client: httpx.AsyncClient) -> None:
    async def ids(query: str) -> list[str]:
        response = await client.get(f"/v1/registers/teachers/records?{query}")
        assert response.status_code == 200, response.text
        return [t["teacher_id"] for t in response.json()["items"]]

    assert await ids("subjects=математика") == ["t-1", "t-3", "t-5", "t-7"]
    assert await ids("municipality_id=mun-02&audience=дошкольное") == ["t-2", "t-5"]
    assert await ids("is_manager=нет&limit=2&offset=2") == ["t-3", "t-4"]
    page = (await client.get("/v1/registers/organizations/records?low_results=да")).json()
    assert page["total"] == 1 and page["items"][0]["organization_id"] == "org-1"
    assert page["items"][0]["verified_by"] == "администратор"
    bad = await client.get("/v1/registers/teachers/records?shoe_size=42")
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_filter"
    assert (await client.get("/v1/registers/pupils/records")).status_code == 404


async def test_personal_data_needs_the_role_and_every_read_is_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    url = "/v1/registers/teachers/records/t-1/personal"
    purpose = {"purpose": "обращение педагога о маршруте"}
    anonymous = await client.get(url, params=purpose, headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
    registrar = await key_with(app, "оператор реестров", "registrar")
    refused = await client.get(url, params=purpose, headers=registrar)
    assert refused.status_code == 403
    assert "personal_data" in refused.json()["detail"] and refused.json()["code"] == "forbidden"
    auditor = await key_with(app, "аудитор", "auditor")
    log = (await client.get("/v1/personal-data/access-log", headers=auditor)).json()["items"]
    assert log == []

    reader = await key_with(app, "методист Сидорова", "personal_data")
    no_reason = await client.get(url, headers=reader)
    assert no_reason.status_code == 422
    found = await client.get(url, params=purpose, headers=reader)
    assert found.status_code == 200
    assert found.json() | {"register": "", "record_id": ""} == {
        "register": "",
        "record_id": "",
        "full_name": "Петров Иван Сергеевич",
        "snils": "112-233-445 95",
        "email": "t1@mail.ru",
        "phone": "+7 914 000-00-00",
    }
    log = (await client.get("/v1/personal-data/access-log", headers=auditor)).json()["items"]
    assert [(r["actor"], r["record_id"], r["purpose"]) for r in log] == [
        ("методист Сидорова", "t-1", purpose["purpose"])
    ]
    forbidden_edit = await client.post(
        "/v1/registers/teachers/records", json={"teacher_id": "x"}, headers=reader
    )
    assert forbidden_edit.status_code == 403


DATES = {"birth_date", "hire_date"}
BANDS = {"age_band", "experience_band", "young"}
PURPOSE = {"purpose": "проверка стажа для аттестации"}


def bands_today(teacher: dict[str, Any]) -> dict[str, Any]:
    """The bands the events carry for a teacher of REGION, as of today."""
    today = date.today()

    def years(start: str) -> int:
        born = date.fromisoformat(start)
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    age, experience = years(teacher["birth_date"]), years(teacher["hire_date"])
    return {
        "age_band": age_band(age),
        "experience_band": experience_band(experience),
        "young": age < 35 and experience < 3,
    }


def export_sheet(content: bytes) -> list[dict[str, Any]]:
    table = read_table(content, "teachers.xlsx")
    return [dict(zip(table.headers, cells, strict=False)) for _, cells in table.rows]


async def test_open_reads_carry_bands_never_dates(client: httpx.AsyncClient) -> None:
    expected = bands_today(REGION["teachers"][0])
    # Without a key, and with a key holding every role but no purpose: bands only.
    for headers in ({"Authorization": ""}, {}):
        page = await client.get("/v1/registers/teachers/records", headers=headers)
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert len(items) == 7
        for item in items:
            assert not DATES & set(item)
            assert {k: item[k] for k in BANDS} == expected
        one = (await client.get("/v1/registers/teachers/records/t-1", headers=headers)).json()
        assert one["teacher_id"] == "t-1" and not DATES & set(one)
        assert {k: one[k] for k in BANDS} == expected
        exported = await client.get("/v1/registers/teachers/export.xlsx", headers=headers)
        assert exported.status_code == 200
        rows = export_sheet(exported.content)
        assert len(rows) == 7
        assert "Дата рождения" not in rows[0] and "Начало педагогической работы" not in rows[0]
        assert rows[0]["Возрастная группа"] == expected["age_band"]
        assert rows[0]["Стаж (группа)"] == expected["experience_band"]
    # Registers without personal dates are shown as they are.
    org = (await client.get("/v1/registers/organizations/records/org-1")).json()
    assert org["name"] == "СОШ № 1" and not BANDS & set(org)


async def test_personal_data_key_with_purpose_sees_dates_and_each_record_is_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    reader = await key_with(app, "методист Сидорова", "personal_data")
    auditor = await key_with(app, "аудитор", "auditor")
    url = "/v1/registers/teachers/records"
    page = await client.get(url, params={**PURPOSE, "limit": 3}, headers=reader)
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert [(t["teacher_id"], t["birth_date"], t["hire_date"]) for t in items] == [
        (f"t-{n}", "1990-05-01", "2015-09-01") for n in (1, 2, 3)
    ]
    assert not BANDS & set(items[0])
    one = await client.get(f"{url}/t-5", params={**PURPOSE, "dates": "true"}, headers=reader)
    assert one.json()["birth_date"] == "1990-05-01"
    found = await client.get(url, params={**PURPOSE, "birth_date": "01.05.1990"}, headers=reader)
    assert found.json()["total"] == 7
    exported = await client.get(
        "/v1/registers/teachers/export.xlsx", params=PURPOSE, headers=reader
    )
    rows = export_sheet(exported.content)
    assert rows[0]["Дата рождения"] is not None and "Возрастная группа" not in rows[0]

    log = (await client.get("/v1/personal-data/access-log", headers=auditor)).json()["items"]
    shown = [r["record_id"] for r in reversed(log)]
    assert shown == ["t-1", "t-2", "t-3", "t-5"] + [f"t-{n}" for n in range(1, 8)] * 2
    assert {(r["actor"], r["register"]) for r in log} == {("методист Сидорова", "teachers")}
    assert all(r["purpose"].endswith(PURPOSE["purpose"]) for r in log)
    assert "дат" in log[0]["purpose"]  # told apart from a read of the person's name


async def test_dates_and_date_filters_need_the_personal_data_role(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    url = "/v1/registers/teachers/records"
    anonymous = {"Authorization": ""}
    registrar = await key_with(app, "оператор реестров", "registrar")
    for headers in (anonymous, registrar):
        for path, params in (
            (url, {"dates": "true"}),
            (url, PURPOSE),
            (f"{url}/t-1", {"dates": "true", **PURPOSE}),
            ("/v1/registers/teachers/export.xlsx", PURPOSE),
        ):
            refused = await client.get(path, params=params, headers=headers)
            assert refused.status_code == 403, (path, params, refused.text)
            body = refused.json()
            assert body["code"] == "personal_dates_forbidden" and "personal_data" in body["detail"]
        for field, value in (("birth_date", "01.05.1990"), ("hire_date", "2015-09-01")):
            searched = await client.get(url, params={field: value}, headers=headers)
            assert searched.status_code == 403
            assert searched.json()["code"] == "date_filter_forbidden"
            assert "раскрывает даты" in searched.json()["detail"]
    reader = await key_with(app, "методист Сидорова", "personal_data")
    no_purpose = await client.get(url, params={"dates": "true"}, headers=reader)
    assert no_purpose.status_code == 422 and no_purpose.json()["code"] == "purpose_required"
    short = await client.get(url, params={"purpose": "так"}, headers=reader)
    assert short.status_code == 422
    auditor = await key_with(app, "аудитор", "auditor")
    assert (await client.get("/v1/personal-data/access-log", headers=auditor)).json()["total"] == 0


async def test_an_invalid_key_on_an_open_read_is_401(client: httpx.AsyncClient) -> None:
    bad = {"Authorization": "Bearer iomf_not_a_key"}
    for path in (
        "/v1/registers/teachers/records",
        "/v1/registers/teachers/records/t-1",
        "/v1/registers/teachers/export.xlsx",
    ):
        response = await client.get(path, headers=bad)
        assert response.status_code == 401 and response.json()["code"] == "invalid_key"


async def test_stale_records_are_listed_and_published_with_a_moved_clock(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    runtime = app.state.runtime
    later = datetime.now(UTC) + timedelta(days=200)
    async with runtime.transaction() as deps:
        groups = await service.check_stale(deps, now=later)
    assert {(g["register"], g["owner"], g["stale"]) for g in groups} >= {
        ("teachers", "org-1", 2),
        ("organizations", "mun-02", 2),
        ("municipalities", "region", 2),
    }
    stale = await events(clean_redis, "registry.stale")
    assert {(e["data"]["registry"], e["data"]["owner"], e["data"]["stale"]) for e in stale} == {
        (g["register"], g["owner"], g["stale"]) for g in groups
    }
    async with runtime.transaction() as deps:
        await service.check_stale(deps, now=later)
    assert len(await events(clean_redis, "registry.stale")) == len(stale)  # nothing new

    now_stale = (await client.get("/v1/stale")).json()
    assert now_stale["groups"] == []  # with today's clock nothing is overdue
    assert (await client.post("/v1/registers/teachers/records/t-1/verify")).status_code == 200

    # Verified on the moved date: org-1's teachers are not overdue then any more.
    async with runtime.transaction() as deps:
        from iomflow.registries import repository

        await repository.verify(deps.session, "teachers", ["t-3", "t-6"], actor="x", now=later)
        groups = await service.check_stale(deps, now=later)
    resolved = [
        e["data"]
        for e in await events(clean_redis, "registry.stale")
        if e["data"]["owner"] == "org-1" and e["data"]["registry"] == "teachers"
    ]
    assert [r["stale"] for r in resolved] == [2, 0]


async def test_stale_listing_with_old_verifications(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    runtime = app.state.runtime
    from iomflow.registries import repository

    long_ago = datetime.now(UTC) - timedelta(days=400)
    async with runtime.sessions() as session, session.begin():
        await repository.verify(session, "teachers", ["t-2", "t-5"], actor="old", now=long_ago)
    listing = (await client.get("/v1/stale", params={"register": "teachers"})).json()
    assert [(g["owner"], g["stale"], g["total"]) for g in listing["groups"]] == [("org-3", 2, 2)]
    assert [r["record_id"] for r in listing["records"]["teachers"]] == ["t-2", "t-5"]
    stale_page = (await client.get("/v1/registers/teachers/records?stale=true")).json()
    assert [t["teacher_id"] for t in stale_page["items"]] == ["t-2", "t-5"]


async def test_resync_publishes_the_current_state_again(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    before = await events(clean_redis)
    response = await client.post("/v1/resync", params={"register": ["organizations", "teachers"]})
    assert response.json() == {"organizations": 3, "teachers": 7}
    after = await events(clean_redis)
    again = after[len(before) :]
    assert [e["type"] for e in again] == ["registry.organization.upserted"] * 3 + [
        "registry.teacher.upserted"
    ] * 7
    assert {e["event_id"] for e in again}.isdisjoint({e["event_id"] for e in before})
