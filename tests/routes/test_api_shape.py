"""The shape of routes' HTTP API: every operation of the service answers a pydantic model
(or a Page or list of one) unless it is a page or a file; errors, the framework's own
included, are problem details; lists page to their end (``GET /v1/routes`` past 1,000)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from iomflow.routes import repository, workplace
from iomflow.routes.app import create_app
from iomflow.routes.settings import Settings
from iomflow.shared import auth
from iomflow.shared.problems import MEDIA_TYPE, OFFSET_MAX

ADMIN = {"Authorization": "Bearer iomf_test_admin_key"}


def settings(redis_url: str, tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path,
        database_url=database_url,
        migrate_on_start=True,
        admin_key="iomf_test_admin_key",  # type: ignore[arg-type]
    )


def unstarted(tmp_path: Path) -> FastAPI:
    """The app as built, not started (its document and routes need no servers)."""
    return create_app(settings("redis://127.0.0.1:1/0", tmp_path, f"sqlite:///{tmp_path}/r.db"))


def test_lists_are_pages(tmp_path: Path) -> None:
    app = unstarted(tmp_path)
    document = app.openapi()
    for path in (
        "/v1/routes",
        "/v1/teachers/{teacher_id}/routes",
        "/v1/methodists",
        "/v1/methodists/{methodist_id}/teachers",
        "/v1/methodists/{methodist_id}/queue",
        "/v1/queue",
        "/v1/courses",
        "/v1/effectiveness",
    ):
        get = document["paths"][path]["get"]
        ref = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        page = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(page["properties"]) == {"items", "total", "offset", "limit"}, path
        assert {p["name"] for p in get["parameters"]} >= {"offset", "limit"}, path


@pytest.fixture
async def app(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(settings(clean_redis, tmp_path, database_url))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://routes") as c:
        yield c


async def key_for(
    app: FastAPI, name: str, *roles: str, person: str | None = None
) -> dict[str, str]:
    runtime = app.state.runtime
    async with runtime.sessions() as session, session.begin():
        _, key = await auth.issue(session, runtime.api_keys, name, roles, person)
    return {"Authorization": f"Bearer {key}"}


def route_row(n: int, **values: Any) -> dict[str, Any]:
    return {
        "route_id": f"r-{n:04d}",
        "diagnosis_id": f"d-{n:04d}",
        "teacher_id": f"t-{n:04d}",
        "organization_id": "org-1",
        "municipality_id": "mun-01" if n % 2 else "mun-02",
        "status": "drafted",
        "steps": [],
        "total_hours": 0,
        "created_at": datetime(2026, 10, 1, tzinfo=UTC) + timedelta(minutes=n),
        "hours_by_period": {},
        "approvals": [],
        "history": [],
        "methodist_id": None,  # every row names the same columns (one executemany)
        **values,
    }


async def add_routes(app: FastAPI, rows: list[dict[str, Any]]) -> None:
    async with app.state.runtime.sessions() as session, session.begin():
        await session.execute(insert(repository.routes), rows)


async def test_errors_are_problem_details(app: FastAPI, client: httpx.AsyncClient) -> None:
    methodist = await key_for(app, "Методист", "methodist")
    reason = {"reason": "педагог уволился"}
    cases = [
        (client.get("/v1/routes/nowhere"), 404, "route_not_found"),
        (client.post("/v1/routes/nowhere/cancel", json={}, headers=ADMIN), 422, "validation_error"),
        (client.post("/v1/routes/nowhere/cancel", json=reason), 401, "unauthenticated"),
        (client.post("/v1/routes/x/cancel", json=reason, headers=methodist), 403, "forbidden"),
        (
            client.post("/v1/routes/nowhere/cancel", json=reason, headers=ADMIN),
            404,
            "route_not_found",
        ),
        (client.get("/v1/nowhere"), 404, None),
        (client.delete("/v1/routes"), 405, None),
        (client.get("/v1/routes", params={"limit": 1001}), 422, "validation_error"),
    ]
    for call, status, code in cases:
        answer = await call
        assert answer.status_code == status, (answer.request.url, answer.text)
        assert answer.headers["content-type"].startswith(MEDIA_TYPE), answer.request.url
        problem = answer.json()
        assert problem["status"] == status
        assert problem["title"] and problem["detail"] and problem["code"]
        assert problem["type"] == f"urn:iomflow:problem:{problem['code']}"
        if code is not None:
            assert problem["code"] == code, problem


async def test_the_routes_page_past_a_thousand(app: FastAPI, client: httpx.AsyncClient) -> None:
    await add_routes(app, [route_row(n) for n in range(1005)])

    first = (await client.get("/v1/routes", params={"limit": 1000})).json()
    assert (first["total"], first["offset"], first["limit"]) == (1005, 0, 1000)
    assert [r["route_id"] for r in first["items"]] == [f"r-{n:04d}" for n in range(1000)]
    rest = (await client.get("/v1/routes", params={"offset": 1000, "limit": 1000})).json()
    assert [r["route_id"] for r in rest["items"]] == [f"r-{n:04d}" for n in range(1000, 1005)]
    assert rest["total"] == 1005
    odd = (await client.get("/v1/routes", params={"municipality_id": "mun-01", "limit": 3})).json()
    assert odd["total"] == 502 and [r["route_id"] for r in odd["items"]] == [
        "r-0001",
        "r-0003",
        "r-0005",
    ]
    queue = (await client.get("/v1/queue", params={"offset": 1003})).json()
    assert queue["total"] == 1005 and [r["route_id"] for r in queue["items"]] == [
        "r-1003",
        "r-1004",
    ]
    teacher = (await client.get("/v1/teachers/t-0007/routes")).json()
    assert teacher["total"] == 1 and teacher["items"][0]["route_id"] == "r-0007"
    beyond = (await client.get("/v1/routes", params={"offset": OFFSET_MAX})).json()
    assert (beyond["items"], beyond["total"]) == ([], 1005)  # past any table: empty, no 500
    refused = await client.get("/v1/routes", params={"offset": 2**90})  # past the bound
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error"


async def test_a_step_whose_seat_is_not_there_is_a_conflict(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A mentor with no room (here: none by that id) refuses the step: 409, not a 500."""
    await add_routes(app, [route_row(1, methodist_id="meth-1")])
    mine = await key_for(app, "Методист 1", "methodist", person="meth-1")
    step = {"competency": "digital", "kind": "mentoring", "hours": 10, "mentor_id": "nobody"}
    answer = await client.post(
        "/v1/routes/r-0001/steps", json={"reason": "наставник", "step": step}, headers=mine
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "no_room"
    route = (await client.get("/v1/routes/r-0001")).json()
    assert route["steps"] == [] and route["history"] == []  # nothing of it was written


async def test_the_workplace_shows_the_queues_first_routes_and_how_many_wait(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workplace, "QUEUE_SHOWN", 2)
    await add_routes(app, [route_row(n) for n in range(3)] + [route_row(3, methodist_id="m-1")])
    mine = await key_for(app, "Методист 1", "methodist", person="m-1")
    desk = (await client.get("/v1/workplace", headers=mine)).json()
    assert [r["route_id"] for r in desk["routes"]] == ["r-0003"]
    queue = desk["queue"]
    assert [r["route_id"] for r in queue["items"]] == ["r-0000", "r-0001"]
    assert (queue["total"], queue["offset"], queue["limit"]) == (3, 0, 2)
