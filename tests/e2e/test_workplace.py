"""The methodist's workplace in a real browser: routes under uvicorn on a real Redis and its
SQLite database, the registries' events and the diagnoses published to Redis as the other
services publish them, then headless Chromium with everything off the service cut off
(``offline``). A methodist signs in, approves a draft and replaces a step — the API then
shows the change and the history names them; another methodist sees the Russian refusal on
the page; every page loads with nothing asked of another origin and no Latin-letter codes
in what it says (pseudonymous ids excepted)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page
from routes.test_api import (
    deficit,
    diagnose,
    diagnosis,
    load_registry,
    make_app,
    methodist,
    registry,
)
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from e2e.pages import Offline, latin_codes, offline, served, sign_in
from e2e.test_dashboard import needs_chromium
from iomflow.routes import people
from iomflow.routes.app import create_app
from iomflow.routes.repository import tables
from iomflow.routes.settings import Settings
from iomflow.shared import auth, signin

PSEUDONYMS = re.compile(r"\b(?:t-\d+|meth-\d+)\b|XLSX")
"""What may stay Latin on a page: the teachers' and methodists' pseudonymous ids of this
region, and the file format on the export buttons."""


@dataclass
class Desk:
    base: str
    keys: dict[str, str]  # methodist id -> key
    routes: dict[str, dict[str, Any]]  # teacher id -> route

    def of(self, methodist_id: str | None) -> dict[str, Any]:
        [route] = [r for r in self.routes.values() if r["methodist_id"] == methodist_id]
        return route


@pytest.fixture
def desk(clean_redis: str, tmp_path: Path) -> Iterator[Desk]:
    """Routes serving two methodists of one seat each and three diagnosed teachers: one
    route each, the third waiting in the queue."""
    app = make_app(clean_redis, tmp_path, "")
    with served(app, "routes") as base:
        routes = asyncio.run(prepare(base, clean_redis))
        url = app.state.runtime.settings.resolved_database_url()
        keys = {
            m: asyncio.run(issue(url, name, m))
            for m, name in (("meth-1", "Сидорова Анна"), ("meth-2", "Кузнецов Олег"))
        }
        yield Desk(base, keys, routes)


async def prepare(base: str, redis_url: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base) as client:
        methodists = [methodist("meth-1", capacity=1), methodist("meth-2", capacity=1)]
        await load_registry(client, redis_url, registry(methodists))
        return {
            t: await diagnose(client, redis_url, diagnosis(t, deficit("digital", 30)))
            for t in ("t-1", "t-2", "t-3")
        }


async def issue(url: str, name: str, methodist_id: str) -> str:
    """A methodist's key bound to them, written to routes' database from outside the
    service (as ``iomflow routes keys add --person`` does)."""
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            _, key = await auth.issue(session, tables.api_keys, name, ["methodist"], methodist_id)
    finally:
        await engine.dispose()
    return key


def signed_in(
    browser: Browser, desk: Desk, methodist_id: str, path: str, expected: tuple[str, ...] = ()
) -> Offline:
    """A page cut off from all but routes, signed in as the methodist, at ``path``. The
    sign-in page asks who is signed in first (401 before the key): that is its business,
    so what it logged is forgotten; from here on every problem counts."""
    seen = offline(browser, desk.base, expected)
    sign_in(seen.page, desk.base, desk.keys[methodist_id], path)
    assert seen.attempted == [], seen.attempted
    seen.problems.clear()
    return seen


def ready(page: Page) -> None:
    page.locator("body[data-state=ready]").wait_for()


def act(page: Page, selector: str) -> tuple[str, str]:
    """Click ``selector`` and wait for the page's answer to the command: (kind, text)."""
    done = int(page.locator("body").get_attribute("data-acts") or 0)
    page.click(selector)
    page.locator(f"body[data-acts='{done + 1}']").wait_for()
    said = page.locator("#iomflow-say .say")
    kind = "ok" if "ok" in (said.get_attribute("class") or "") else "error"
    return kind, said.inner_text()


def clean(seen: Offline) -> None:
    """Nothing asked of another origin, no script error, no CSP violation."""
    assert seen.attempted == [], seen.attempted
    assert seen.problems == [], seen.problems
    assert seen.violations() == [], seen.violations()


def no_codes(page: Page) -> None:
    text = page.locator("body").inner_text()
    assert not latin_codes(text, PSEUDONYMS), (page.url, latin_codes(text, PSEUDONYMS))


def api(desk: Desk, path: str) -> Any:
    answer = httpx.get(f"{desk.base}{path}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_the_pages_name_only_files_that_are_served(tmp_path: Path) -> None:
    """No browser: both pages carry the pages' security headers and name only the
    foundation's files and their own, which are served; nothing else of the package is."""
    app = create_app(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0"))
    transport = httpx.ASGITransport(app=app)  # no lifespan: no I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://routes") as client:
        named: set[str] = set()
        for path in ("/workplace", "/workplace/routes/any-route"):
            page = await client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert (
                page.headers["content-security-policy"] == signin.HEADERS["Content-Security-Policy"]
            )
            assert '<html lang="ru">' in page.text and "<script>" not in page.text
            assert not re.findall(r"https?://", page.text), path
            named |= set(re.findall(r'(?:href|src)="(/[^"]+)"', page.text)) - {"/workplace"}
        assert named == {
            "/ui/assets/iomflow.css",
            "/ui/assets/iomflow.js",
            "/ui/assets/favicon.svg",
            "/workplace/assets/workplace.css",
            "/workplace/assets/workplace.js",
            "/workplace/assets/route.js",
        }
        for asset in named:
            served_file = await client.get(asset)
            assert served_file.status_code == 200 and served_file.content, asset
        for name in ("workplace.html", "..%2Fworkplace.py", "..%2Fdata%2Frules.json", "x.js"):
            assert (await client.get(f"/workplace/assets/{name}")).status_code == 404, name
        assert (await client.get("/")).headers["location"] == "/workplace"


@needs_chromium
def test_a_methodist_approves_a_draft_and_replaces_a_step_and_the_api_shows_it(
    desk: Desk, browser: Browser
) -> None:
    mine = desk.of("meth-1")
    route_id = mine["route_id"]
    seen = signed_in(browser, desk, "meth-1", "/workplace")
    page = seen.page
    ready(page)
    note = page.locator("#names-note")
    assert note.is_visible() and note.inner_text() == people.NOTE_NO_ROLE
    awaiting = page.locator("#awaiting a[data-route]")
    assert awaiting.count() == 1 and awaiting.get_attribute("data-route") == route_id
    assert awaiting.inner_text() == mine["teacher_id"]  # a pseudonym, with the note above
    queued = page.locator("#queue a[data-route]")
    assert queued.get_attribute("data-route") == desk.of(None)["route_id"]
    assert "составлен" in page.locator("#routes").inner_text()
    no_codes(page)

    awaiting.click()
    page.wait_for_url(f"{desk.base}/workplace/routes/{route_id}")
    ready(page)
    assert page.locator("#not-mine").is_hidden()
    steps = page.locator("#steps").inner_text()
    assert "Цифровая образовательная среда (ФР)" in steps, steps
    no_codes(page)

    assert act(page, "#approve") == ("ok", "Маршрут согласован вами.")
    route = api(desk, f"/v1/routes/{route_id}")
    assert [(a["role"], a["by"]) for a in route["approvals"]] == [("methodist", "meth-1")]
    assert page.locator("#approve").is_hidden()

    target = route["steps"][-1]
    page.select_option("#step-choice", target["step_id"])
    page.click("#act-replace")
    page.select_option("#step-form select[name=kind]", "community")
    page.select_option("#step-form select[name=kind]", "consultation")
    page.fill("#step-form input[name=hours]", "6")
    page.fill("#step-form textarea[name=reason]", "педагогу нужен практикум подольше")
    assert act(page, "#step-submit") == ("ok", "Шаг заменён.")

    route = api(desk, f"/v1/routes/{route_id}")
    steps_by_id = {s["step_id"]: s for s in route["steps"]}
    old = steps_by_id[target["step_id"]]
    assert (old["status"], old["removed_reason"]) == (
        "removed",
        "педагогу нужен практикум подольше",
    )
    [new] = [s for s in route["steps"] if s["step_id"] not in {x["step_id"] for x in mine["steps"]}]
    assert (new["kind"], new["hours"], new["status"]) == ("consultation", 6, "planned")
    last = route["history"][-1]
    assert (last["action"], last["by"], last["reason"]) == (
        "step_replace",
        "meth-1",
        "педагогу нужен практикум подольше",
    )
    assert [a["by"] for a in route["history"] if a["action"] == "approved"] == ["meth-1"]
    history = page.locator("#history").inner_text()
    assert "заменён шаг" in history and "meth-1" in history
    assert "педагогу нужен практикум подольше" in history
    assert "согласование: методист" in history
    no_codes(page)
    clean(seen)


@needs_chromium
def test_a_methodist_acting_on_another_methodists_route_sees_the_refusal(
    desk: Desk, browser: Browser
) -> None:
    theirs = desk.of("meth-1")
    route_id = theirs["route_id"]
    seen = signed_in(browser, desk, "meth-2", f"/workplace/routes/{route_id}", ("status of 403",))
    page = seen.page
    ready(page)
    assert page.locator("#not-mine").inner_text() == (
        "Маршрут закреплён за другим методистом: изменять и согласовывать его может только он."
    )
    assert page.locator("#names-note").inner_text() == people.NOTE_NOT_YOURS

    assert act(page, "#approve") == ("error", "Согласовать может только методист маршрута.")
    page.click("#act-remove")
    page.fill("#step-form textarea[name=reason]", "попытка изменить чужой маршрут")
    refusal = act(page, "#step-submit")
    assert refusal == ("error", "Изменять маршрут может только методист маршрута.")
    no_codes(page)

    route = api(desk, f"/v1/routes/{route_id}")
    assert route["approvals"] == [] and route["history"] == theirs["history"]
    assert all(s.get("status") != "removed" for s in route["steps"])
    clean(seen)


@needs_chromium
def test_every_page_loads_offline_and_reads_in_words(desk: Desk, browser: Browser) -> None:
    """The workplace, one's own route, another's and a route in the queue; unsigned, the
    workplace leads to the sign-in page and back."""
    unsigned = offline(browser, desk.base, expected=("status of 401",))
    unsigned.page.goto(f"{desk.base}/workplace")
    unsigned.page.wait_for_url(f"{desk.base}/signin?next=%2Fworkplace*")
    assert unsigned.attempted == [] and unsigned.problems == []
    unsigned.page.close()
    seen = signed_in(browser, desk, "meth-2", "/workplace")
    page = seen.page
    ready(page)
    no_codes(page)
    for methodist_id, note in (
        ("meth-2", None),
        ("meth-1", "закреплён за другим методистом"),
        (None, "ждёт методиста в очереди"),
    ):
        route = desk.of(methodist_id)
        page.goto(f"{desk.base}/workplace/routes/{route['route_id']}")
        ready(page)
        facts = page.locator("#facts").inner_text()
        assert "г. Иркутск" in facts and route["teacher_id"] in facts, facts
        if note is None:
            assert page.locator("#not-mine").is_hidden()
        else:
            assert note in page.locator("#not-mine").inner_text()
        shown = page.locator("#steps tbody tr").count()
        assert shown == len(route["steps"])
        no_codes(page)
    assert page.request.get(f"{desk.base}/workplace/assets/app.py").status == 404
    clean(seen)
