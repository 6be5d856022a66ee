"""The shape of monitoring's HTTP API: every operation answers a pydantic model (or a page
or a list of one) unless it answers a page of HTML or a file, and its 4xx answers are
problem details (``application/problem+json`` with code, title and status) — an unknown
KPI or alert, a bad body, no key, a key without the role, an unknown path, a wrong method."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from iomflow.monitoring.app import create_app
from iomflow.monitoring.settings import Settings
from iomflow.shared import auth
from iomflow.shared.problems import MEDIA_TYPE

ADMIN_KEY = "iomf_test_admin_key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def app_of(tmp_path: Path, **settings: typing.Any) -> FastAPI:
    return create_app(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
            data_dir=tmp_path,
            admin_key=ADMIN_KEY,
            **({"redis_url": "redis://127.0.0.1:1/0"} | settings),
        )
    )


def test_files_pages_and_the_statuses_of_the_rules_are_documented(tmp_path: Path) -> None:
    paths = app_of(tmp_path).openapi()["paths"]
    assert set(paths["/v1/reports/{year}.xlsx"]["get"]["responses"]["200"]["content"]) == {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    }
    assert set(paths["/v1/reports/{year}.pdf"]["get"]["responses"]["200"]["content"]) == {
        "application/pdf"
    }
    alerts = paths["/v1/alerts"]["get"]
    assert {p["name"] for p in alerts["parameters"]} >= {"offset", "limit", "status"}
    assert "404" in paths["/v1/kpis/{code}/series"]["get"]["responses"]
    assert "501" in paths["/v1/ops/traces"]["get"]["responses"]
    for path, operations in paths.items():
        if path.startswith("/v1/ops/") or path.startswith("/v1/tracked/"):
            for method, operation in operations.items():
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


@pytest.fixture
async def client(
    clean_redis: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A started monitoring on SQLite and a real Redis, and the key of an analyst (a key
    without the operator role)."""
    app = app_of(tmp_path, redis_url=clean_redis, migrate_on_start=True, kpi_worker="thread")
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        async with runtime.sessions() as session:
            _, key = await auth.issue(session, runtime.api_keys, "Аналитик", ["analyst"])
            await session.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://monitoring") as c:
            yield c, {"Authorization": f"Bearer {key}"}


def problem(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(MEDIA_TYPE), answer.headers
    found = answer.json()
    assert found["status"] == status and found["title"] and found["code"], found
    assert found["type"] == f"urn:iomflow:problem:{found['code']}"
    return str(found["code"])


async def test_every_4xx_is_a_problem(client: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    c, analyst = client
    assert problem(await c.get("/v1/kpis/no_such_kpi/series"), 404) == "unknown_kpi"
    assert (
        problem(await c.post("/v1/ops/alerts/no-such-alert/acknowledge", headers=ADMIN), 404)
        == "alert_not_found"
    )
    bad = await c.put("/v1/tracked/roadmap_implemented/once", json={"status": "?"}, headers=ADMIN)
    assert problem(bad, 422) == "validation_error" and bad.json()["errors"]
    body = {"status": "done", "evidence": "Распоряжение № 1"}
    assert problem(await c.put("/v1/tracked/roadmap_implemented/once", json=body), 401)
    wrong_role = await c.put("/v1/tracked/roadmap_implemented/once", json=body, headers=analyst)
    assert problem(wrong_role, 403) == "forbidden"
    assert problem(await c.get("/v1/no-such-thing"), 404)
    assert problem(await c.delete("/v1/kpis"), 405)
    assert problem(await c.get("/v1/kpis", params={"as_of": "0"}), 422) == "validation_error"
    assert problem(await c.get("/v1/kpis", params={"as_of": "0001-01-01"}), 422) == "date_too_early"
    letter = await c.get("/v1/ops/dead-letters/99999999999999999999-0", headers=ADMIN)
    assert problem(letter, 422) == "validation_error"  # beyond Redis's 64 bits


async def test_the_alerts_are_a_page(client: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    c, _ = client
    answer = await c.get("/v1/alerts", params={"status": "all", "offset": 5, "limit": 10})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"items": [], "total": 0, "offset": 5, "limit": 10}
