"""Signing in to the pages: a key gives a session cookie; the session is the key's principal
(a methodist's is that methodist), ends at sign-out, at its expiry and with its key; changes
made on the strength of the cookie need the pages' header; every change is audited."""

from __future__ import annotations

import importlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from iomflow.shared import auth

ADMIN = "test-admin-key"
SERVICES = ("diagnostics", "routes", "registries", "monitoring")
PAGE = {"X-Requested-With": "iomflow"}


@pytest.fixture(params=SERVICES)
async def service(
    request: pytest.FixtureRequest, clean_redis: str, tmp_path: Path
) -> AsyncIterator[tuple[str, httpx.AsyncClient, object]]:
    name: str = request.param
    app_module = importlib.import_module(f"iomflow.{name}.app")
    settings_module = importlib.import_module(f"iomflow.{name}.settings")
    app = app_module.create_app(
        settings_module.Settings(
            redis_url=clean_redis, data_dir=tmp_path, migrate_on_start=True, admin_key=ADMIN
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}") as client:
            yield name, client, app.state.runtime


async def issue(runtime: object, roles: list[str], person: str | None = None) -> tuple[str, str]:
    async with runtime.sessions() as session, session.begin():  # type: ignore[attr-defined]
        return await auth.issue(
            session,
            runtime.api_keys,
            "Иванова И. И.",
            roles,
            person_id=person,  # type: ignore[attr-defined]
        )


async def test_a_key_signs_in_the_session_is_its_principal_and_sign_out_ends_it(
    service: tuple[str, httpx.AsyncClient, object],
) -> None:
    name, client, runtime = service
    _, key = await issue(runtime, ["methodist"], "met-001")

    refused = await client.post("/v1/session", json={"key": "iomf_nonsense"})
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_key"
    assert "неизвестен" in refused.json()["detail"]
    assert (await client.get("/v1/session")).status_code == 401

    signed = await client.post("/v1/session", json={"key": key})
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["name"] == "Иванова И. И." and body["person_id"] == "met-001"
    assert body["roles"] == ["methodist"] and body["role_names"] == ["методист"]
    cookie = auth.cookie_name(name)
    assert cookie in client.cookies and key not in signed.headers["set-cookie"]
    header = signed.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header

    who = await client.get("/v1/session")
    assert who.status_code == 200 and who.json()["person_id"] == "met-001"
    assert datetime.fromisoformat(who.json()["expires_at"]) > datetime.now(UTC)

    out = await client.delete("/v1/session", headers=PAGE)
    assert out.status_code == 204
    assert cookie not in client.cookies
    assert (await client.get("/v1/session")).status_code == 401


async def test_a_session_ends_at_its_expiry_and_with_its_key(
    service: tuple[str, httpx.AsyncClient, object],
) -> None:
    _name, client, runtime = service
    key_id, key = await issue(runtime, ["operator"])
    assert (await client.post("/v1/session", json={"key": key})).status_code == 200
    table = runtime.session_table  # type: ignore[attr-defined]
    async with runtime.sessions() as session, session.begin():  # type: ignore[attr-defined]
        await session.execute(
            update(table).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await client.get("/v1/session")).status_code == 401

    assert (await client.post("/v1/session", json={"key": key})).status_code == 200
    assert (await client.get("/v1/session")).status_code == 200
    async with runtime.sessions() as session, session.begin():  # type: ignore[attr-defined]
        assert await auth.revoke(session, runtime.api_keys, key_id)  # type: ignore[attr-defined]
    assert (await client.get("/v1/session")).status_code == 401


async def test_a_change_by_cookie_needs_the_pages_header_and_every_change_is_audited(
    service: tuple[str, httpx.AsyncClient, object],
) -> None:
    _name, client, runtime = service
    _, key = await issue(runtime, ["operator"], "op-7")
    assert (await client.post("/v1/session", json={"key": key})).status_code == 200
    table = {"columns": ["ФИО", "Часы"], "rows": [["Петрова", 72], ["Сидоров", None]]}

    forged = await client.post("/ui/export.xlsx", json=table)
    assert forged.status_code == 403 and forged.json()["code"] == "csrf"

    exported = await client.post(
        "/ui/export.xlsx", json={**table, "title": "Мои педагоги"}, headers=PAGE
    )
    assert exported.status_code == 200
    sheet = load_workbook(io.BytesIO(exported.content)).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][0] == "Мои педагоги" and rows[1][0].startswith("Выгрузил: Иванова И. И.")
    assert rows[3:] == [["ФИО", "Часы"], ["Петрова", 72], ["Сидоров", None]]

    # The same change with the key itself needs no page header.
    client.cookies.clear()
    keyed = await client.post(
        "/ui/export.xlsx", json=table, headers={"Authorization": f"Bearer {key}"}
    )
    assert keyed.status_code == 200

    audit = await client.get("/v1/audit", headers={"Authorization": f"Bearer {key}"})
    assert audit.status_code == 200
    seen = [
        (r["via"], r["method"], r["path"], r["status"], r["person_id"])
        for r in audit.json()["items"]
    ]
    assert seen == [
        ("key", "POST", "/ui/export.xlsx", 200, "op-7"),
        ("session", "POST", "/ui/export.xlsx", 200, "op-7"),
        ("session", "POST", "/ui/export.xlsx", 403, "op-7"),
        ("session", "POST", "/v1/session", 200, "op-7"),
    ]

    _, methodist = await issue(runtime, ["methodist"])
    denied = await client.get("/v1/audit", headers={"Authorization": f"Bearer {methodist}"})
    assert denied.status_code == 403 and "аудитор" in denied.json()["detail"]
    assert (await client.get("/v1/audit")).status_code == 401


async def test_the_pages_share_files_served_by_each_service_and_nothing_else(
    service: tuple[str, httpx.AsyncClient, object],
) -> None:
    _, client, _ = service
    page = await client.get("/signin")
    assert page.status_code == 200 and "Ключ доступа" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for name in ("iomflow.js", "iomflow.css", "signin.js", "favicon.svg"):
        assert (await client.get(f"/ui/assets/{name}")).status_code == 200, name
    missing = await client.get("/ui/assets/..%2Fsignin.py")
    assert missing.status_code == 404
