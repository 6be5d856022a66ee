"""The shape of diagnostics' HTTP API: every operation answers a model (a pydantic model, a
Page or a list of one) unless it answers a file or a page, and its errors are problem
details (application/problem+json with code, title and status)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from iomflow.diagnostics import api
from iomflow.diagnostics.app import create_app
from iomflow.diagnostics.settings import Settings
from iomflow.shared import auth
from iomflow.shared.problems import MEDIA_TYPE

ADMIN_KEY = "iomf_test_admin_key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SHARED = {"/v1/results", "/v1/events"}
"""Served by the shared ingestion (its own helper types them)."""


def settings(redis_url: str, tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path,
        database_url=database_url,
        migrate_on_start=True,
        relay_poll_s=0.05,
        poll_ms=20,
        admin_key=ADMIN_KEY,
    )


def _app(tmp_path: Path) -> FastAPI:
    """The app, not started (its routes and document need no database)."""
    database = f"sqlite+aiosqlite:///{tmp_path}/diagnostics.db"
    return create_app(settings("redis://127.0.0.1:1/0", tmp_path, database))


def test_files_are_documented_as_files(tmp_path: Path) -> None:
    paths = _app(tmp_path).openapi()["paths"]
    xlsx = paths["/v1/analytics.xlsx"]["get"]["responses"]["200"]["content"]
    assert list(xlsx) == [api.XLSX] and xlsx[api.XLSX]["schema"]["format"] == "binary"
    csv = paths["/v1/frameworks/{version}/competencies.csv"]["get"]["responses"]
    assert "application/json" not in csv["200"]["content"] and "404" in csv
    listed = paths["/v1/diagnoses"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["$ref"].endswith("Page_DiagnosisRead_")


def test_operations_document_the_statuses_of_their_rules(tmp_path: Path) -> None:
    paths = _app(tmp_path).openapi()["paths"]

    def documented(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert {"404", "422", "500"} <= documented("/v1/diagnoses/{diagnosis_id}", "get")
    assert {"404", "409"} <= documented("/v1/diagnoses/{diagnosis_id}/cancel", "post")
    assert {"404", "409"} <= documented("/v1/campaigns/{campaign_id}/close", "post")
    assert "409" in documented("/v1/campaigns", "post")
    assert "404" not in documented("/v1/diagnoses", "get")


def test_operator_operations_document_401_and_403(tmp_path: Path) -> None:
    paths = _app(tmp_path).openapi()["paths"]
    assert {"401", "403"} <= set(paths["/v1/campaigns"]["post"]["responses"])


@pytest.fixture
async def client(
    clean_redis: str, tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings(clean_redis, tmp_path, database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://diagnostics") as c:
            yield app, c


async def _key(app: FastAPI, *roles: str) -> dict[str, str]:
    runtime = app.state.runtime
    async with runtime.sessions() as session, session.begin():
        _, key = await auth.issue(session, runtime.api_keys, "Аналитик", roles)
    return {"Authorization": f"Bearer {key}"}


def _problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["code"]
    assert body["type"] == f"urn:iomflow:problem:{body['code']}"
    if code is not None:
        assert body["code"] == code
    return body


async def test_errors_are_problem_details(client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, c = client
    body = {"campaign_id": "spring", "name": "Весна"}
    _problem(await c.get("/v1/diagnoses/nobody"), 404, "not_found")
    _problem(await c.get("/v1/campaigns/nowhere"), 404, "unknown_campaign")
    _problem(await c.get("/v1/frameworks/0.0/case.json"), 404, "unknown_framework")
    bad = _problem(await c.post("/v1/campaigns", json={"name": ""}, headers=ADMIN), 422)
    assert bad["code"] == "validation_error" and bad["errors"]
    _problem(await c.get("/v1/diagnoses", params={"limit": 0}), 422, "validation_error")
    _problem(await c.get("/v1/diagnoses", params={"status": "nope"}), 422, "validation_error")
    dated = {**body, "starts_on": 0}  # a number is not a date (not a Unix time either)
    _problem(await c.post("/v1/campaigns", json=dated, headers=ADMIN), 422, "validation_error")
    _problem(await c.post("/v1/campaigns", json=body), 401, "unauthenticated")
    analyst = await _key(app, "analyst")
    _problem(await c.post("/v1/campaigns", json=body, headers=analyst), 403, "forbidden")
    _problem(await c.get("/v1/no-such-thing"), 404)
    _problem(await c.delete("/v1/diagnoses"), 405)
    # a state conflict: the standing campaign cannot be closed
    _problem(await c.post("/v1/campaigns/default/close", headers=ADMIN), 409, "standing_campaign")


async def test_lists_are_pages_to_their_end(client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, c = client
    for n in range(3):
        body = {"campaign_id": f"c-{n}", "name": f"Кампания {n}"}
        assert (await c.post("/v1/campaigns", json=body, headers=ADMIN)).status_code == 201
    first = (await c.get("/v1/campaigns", params={"limit": 2})).json()
    assert (first["offset"], first["limit"], len(first["items"])) == (0, 2, 2)
    rest = (await c.get("/v1/campaigns", params={"offset": 2, "limit": 2})).json()
    assert first["total"] == rest["total"] >= 3
    read = [x["campaign_id"] for x in first["items"] + rest["items"]]
    assert len(read) == len(set(read)) == min(first["total"], 4)
    held = (await c.get("/v1/held")).json()
    assert held == {"items": [], "total": 0, "offset": 0, "limit": 100}


async def test_files_are_named_in_any_script(client: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, c = client
    workbook = await c.get("/v1/analytics.xlsx", params={"campaign_id": "осень-2026"})
    assert workbook.status_code == 200, workbook.text
    assert workbook.headers["content-type"] == api.XLSX and workbook.content[:2] == b"PK"
    named = workbook.headers["content-disposition"]
    assert 'filename="deficits-_____-2026.xlsx"' in named
    assert "filename*=UTF-8''deficits-%D0%BE%D1%81%D0%B5%D0%BD%D1%8C-2026.xlsx" in named
    [version] = [v["version"] for v in (await c.get("/v1/frameworks")).json()]
    table = await c.get(f"/v1/frameworks/{version}/competencies.csv")
    assert table.headers["content-type"].startswith("text/csv")
    assert f'filename="framework-{version}.csv"' in table.headers["content-disposition"]
