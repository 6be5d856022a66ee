"""Signing in and out on a page, as a person does it, in Chromium with the outside cut off."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from e2e.pages import latin_codes, offline, served, sign_in
from e2e.test_dashboard import needs_chromium
from iomflow.diagnostics.app import create_app
from iomflow.diagnostics.repository import tables
from iomflow.diagnostics.settings import Settings
from iomflow.shared import auth

ADMIN = "test-admin-key"


@pytest.fixture
def diagnostics(clean_redis: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Diagnostics under uvicorn; its base URL and a methodist's key."""
    app = create_app(
        Settings(redis_url=clean_redis, data_dir=tmp_path, migrate_on_start=True, admin_key=ADMIN)
    )
    with served(app, "diagnostics") as base:
        yield base, asyncio.run(issue(app.state.runtime.settings.resolved_database_url()))


async def issue(url: str) -> str:
    """A methodist's key, written to the service's database from outside it (as
    ``iomflow diagnostics keys add`` does)."""
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            _, key = await auth.issue(
                session, tables.api_keys, "Смирнова Ольга", ["methodist"], "met-004"
            )
    finally:
        await engine.dispose()
    return key


@needs_chromium
def test_sign_in_shows_who_and_sign_out_ends_the_session(
    diagnostics: tuple[str, str], browser: Browser
) -> None:
    base, key = diagnostics
    seen = offline(browser, base, expected=("status of 401",))
    page = seen.page

    page.goto(f"{base}/signin")
    page.fill("#key", "iomf_not-a-key")
    page.click("#submit")
    refusal = page.locator(".say.error")
    refusal.wait_for()
    assert refusal.inner_text() == "Ключ доступа неизвестен или отозван."

    sign_in(page, base, key)
    assert page.locator("#who").inner_text() == "Смирнова Ольга"
    assert page.locator("#roles").inner_text() == "(методист)"
    # The session cookie is the browser's to send, not the page's to read.
    assert "iomflow_session" not in page.evaluate("document.cookie")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["iomflow_session_diagnostics"]["httpOnly"] is True
    assert cookies["iomflow_session_diagnostics"]["sameSite"] == "Strict"
    who = page.evaluate("fetch('/v1/session').then(r => r.json())")
    assert who["person_id"] == "met-004"

    text = page.locator("body").inner_text()
    commands = re.compile(r"/docs|iomflow <сервис> keys add|make dev|iomf_…")
    assert not latin_codes(text, commands), text

    page.click("#signout")
    page.wait_for_url(f"{base}/signin?out=1")
    assert "Вы вышли" in page.locator(".say").inner_text()
    assert page.evaluate("fetch('/v1/session').then(r => r.status)") == 401

    # A page of the service opened after sign-out sends the person back to sign in.
    page.goto(f"{base}/signin?expired=1")
    assert "Сеанс истёк" in page.locator(".say").inner_text()

    assert not seen.attempted, seen.attempted
    assert not seen.violations(), seen.violations()
    assert not seen.problems, seen.problems
