"""The API's documentation pages, served from the package's own files: a service on a real
Redis (registries, under uvicorn) opened in headless Chromium with every request off the
machine refused and recorded — none is attempted; Swagger UI shows the API with its
Authorize button, a key entered there opens a guarded operation (401 before it, 200 after,
by either header), and ReDoc shows the API too.

Without a browser: the pages name only the vendored files, which are served and nothing
else is; every committed OpenAPI document declares the two security schemes, and in each
service the operations that answer 401 without a key are exactly those that list them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from e2e.pages import served
from e2e.test_dashboard import needs_chromium
from iomflow.cli.launcher import SERVICES
from iomflow.registries.app import create_app
from iomflow.registries.settings import Settings
from iomflow.shared import apidocs

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "iomf_test_admin_key_for_the_docs"
TITLE = "iomflow — региональные реестры (ЦНППМ)"
GUARDED = "/v1/personal-data/access-log"
"""A GET that needs a key (the auditor role) and no parameter: Try it out, Execute."""

SCHEMES = {
    "Bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "Ключ доступа в заголовке «Authorization: Bearer <ключ>».",
    },
    "X-API-Key": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Тот же ключ доступа в заголовке «X-API-Key: <ключ>».",
    },
}
KEY = [{"Bearer": []}, {"X-API-Key": []}]
"""An operation's ``security`` when it needs a key: either scheme."""
KEY_OR_NONE = [*KEY, {}]
"""... and when a key shows more but is not needed (``auth.optional``)."""
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""Drawn by ReDoc 2 in every page, with no option to leave it out: the page's
Content-Security-Policy keeps the browser from asking for it."""


def vendored(name: str) -> bytes:
    folder, _ = apidocs.ASSETS[name]
    path = resources.files("iomflow.shared").joinpath("static", "apidocs", folder, name)
    return path.read_bytes()


# --- without a browser ------------------------------------------------------------------------


async def test_the_pages_name_only_vendored_files_which_are_served(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0"))
    transport = httpx.ASGITransport(app=app)  # no lifespan: no I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://registries") as client:
        named: set[str] = set()
        for page_path in ("/docs", "/redoc"):
            page = await client.get(page_path)
            assert page.status_code == 200, page_path
            assert page.headers["content-type"].startswith("text/html")
            policy = page.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
            assert "connect-src 'self'" in policy
            scripts = re.search(r"script-src ([^;]*)", policy)
            assert scripts and "unsafe" not in scripts[1], policy  # inline ones by hash only
            assert TITLE in page.text
            assert not re.findall(r"https?://", page.text), f"{page_path} names another site"
            named |= set(re.findall(r"/docs/assets/([^\"']+)", page.text))
        swagger = (await client.get("/docs")).text
        assert '"validatorUrl": null' in swagger and '"persistAuthorization": true' in swagger
        assert named == {
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "favicon-32x32.png",
            "redoc.standalone.js",
        }
        for name in apidocs.ASSETS:
            served = await client.get(f"/docs/assets/{name}")
            assert served.status_code == 200, name
            assert served.headers["content-type"] == apidocs.ASSETS[name][1], name
            assert hashlib.sha256(served.content).digest() == (
                hashlib.sha256(vendored(name)).digest()
            ), name
        for name in (
            "README.md",
            "LICENSE",
            "NOTICE",
            "swagger-ui.css.map",
            "..%2Fapidocs.py",
            "..%2F..%2Fapidocs.py",
            "%2E%2E%2F%2E%2E%2Fauth.py",
            "swagger-ui%2FLICENSE",
            "..%2Fswagger-ui%2Fswagger-ui.css",
        ):
            refused = await client.get(f"/docs/assets/{name}")
            assert refused.status_code == 404, name
        # Out of the document, and open to all, as the document is.
        document = (await client.get("/openapi.json")).json()
        assert not [p for p in document["paths"] if p.startswith(("/docs", "/redoc"))]


@pytest.mark.parametrize("name", SERVICES)
def test_every_committed_document_declares_the_two_schemes(name: str) -> None:
    document = json.loads((ROOT / "docs" / "openapi" / f"{name}.json").read_text("utf-8"))
    assert document["components"]["securitySchemes"] == SCHEMES
    listed = [op.get("security") for _, _, op in operations(document) if "security" in op]
    assert listed and all(security in (KEY, KEY_OR_NONE) for security in listed)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


@pytest.fixture(params=SERVICES)
async def started(
    request: pytest.FixtureRequest, clean_redis: str, tmp_path: Path
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """A service, started on a real Redis and its SQLite database, and a client of it."""
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
            yield name, client


async def test_the_operations_that_refuse_without_a_key_are_those_that_list_the_schemes(
    started: tuple[str, httpx.AsyncClient],
) -> None:
    """Each operation of the committed document, asked without a key (path parameters
    ``x``, no body): one that lists the schemes alone answers 401 (or 422 for its body,
    when the body names the role: routes' approvals), and one that lists none, or lets
    the key go (``{}``), does not; an unknown key is 401 on those too."""
    name, client = started
    document = json.loads((ROOT / "docs" / "openapi" / f"{name}.json").read_text("utf-8"))
    wrong: list[str] = []
    for path, method, operation in operations(document):
        url = re.sub(r"\{[^}]+\}", "x", path)
        what = f"{method.upper()} {path}"
        security = operation.get("security")
        anonymous = await client.request(method, url)
        if security == KEY:
            if anonymous.status_code == 401:
                assert anonymous.json()["code"] == "unauthenticated", what
                assert anonymous.headers["www-authenticate"] == "Bearer", what
            elif not (anonymous.status_code == 422 and "requestBody" in operation):
                wrong.append(f"{what} lists the schemes, answers {anonymous.status_code}")
        elif anonymous.status_code == 401:
            wrong.append(f"{what} answers 401 without a key and lists {security}")
        if security == KEY_OR_NONE:
            unknown = await client.request(method, url, headers={"X-API-Key": "iomf_unknown"})
            assert unknown.status_code == 401 and unknown.json()["code"] == "invalid_key", what
    assert not wrong, "\n".join(wrong)


# --- in a browser -----------------------------------------------------------------------------


@pytest.fixture
def registries(clean_redis: str, tmp_path: Path) -> Iterator[str]:
    """Registries under uvicorn, in a thread, on a port of its own; its base URL."""
    app = create_app(
        Settings(redis_url=clean_redis, data_dir=tmp_path, migrate_on_start=True, admin_key=ADMIN)
    )
    with served(app, "registries") as base:
        yield base


EXPECTED = (
    REDOC_LOGO,
    "status of 401",
    # FastAPI's operation ids hold "_", which Swagger UI 5 reads in a deep link (the
    # address after a reload) as an escaped space, and says it is deprecated.
    "escaping deep link whitespace",
)
"""Errors the browser writes for what the tests do: the logo refused, the 401 answers
asked for, a deprecation note of Swagger UI's."""

VIOLATIONS_JS = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"""


def offline_page(browser: Browser, base: str) -> tuple[Page, list[str], list[str]]:
    """A page whose requests off the service are refused, with the list they are written to
    and the list of its script errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    attempted: list[str] = []
    problems: list[str] = []

    def only_the_service(route: Route) -> None:
        if route.request.url.startswith(f"{base}/"):
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    page.add_init_script(VIOLATIONS_JS)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and not any(e in message.text for e in EXPECTED)
            else None
        ),
    )
    return page, attempted, problems


def execute(page: Page, path: str) -> tuple[str, str]:
    """Try it out → Execute on the operation of ``path``; the status and the body of the
    answer Swagger UI shows (the last answer cleared first)."""
    operation = page.locator(f'.opblock:has(.opblock-summary-path[data-path="{path}"])')
    answer = operation.locator(".live-responses-table tr.response")
    if operation.locator(".opblock-body").count() == 0:  # collapsed (a reload keeps it open)
        operation.locator(".opblock-summary").first.click()
    if operation.locator("button.execute").count() == 0:
        operation.locator(".try-out__btn").click()
    elif operation.locator("button.btn-clear").count():
        operation.locator("button.btn-clear").click()
        answer.first.wait_for(state="detached")
    operation.locator("button.execute").click()
    answer.first.wait_for()
    status = answer.first.locator(".response-col_status").inner_text().split()[0]
    body = answer.first.locator(".response-col_description .highlight-code pre").first
    return status, body.inner_text().strip()


def authorize(page: Page, scheme: str, key: str) -> None:
    """Authorize → the key into the scheme's field → Authorize → Close."""
    page.click(".auth-wrapper button.authorize")
    dialog = page.locator(".modal-ux")
    dialog.wait_for()
    container = dialog.locator(".auth-container").filter(
        has=page.locator("h4 code", has_text=re.compile(f"^{re.escape(scheme)}$"))
    )
    container.locator("input").fill(key)
    container.locator("button.authorize").click()
    container.locator("h6", has_text="Authorized").wait_for()
    dialog.locator("button.btn-done").first.click()
    dialog.wait_for(state="detached")


def logout(page: Page) -> None:
    page.click(".auth-wrapper button.authorize")
    dialog = page.locator(".modal-ux")
    dialog.wait_for()
    for button in dialog.locator('button[aria-label="Remove authorization"]').all():
        button.click()
    dialog.locator("button.btn-done").first.click()
    dialog.wait_for(state="detached")


@needs_chromium
def test_swagger_ui_works_offline_and_authorize_opens_a_guarded_operation(
    registries: str, browser: Browser
) -> None:
    page, attempted, problems = offline_page(browser, registries)
    page.goto(f"{registries}/docs")
    page.wait_for_selector(".information-container .title")
    assert TITLE in page.inner_text(".information-container .title")
    document = httpx.get(f"{registries}/openapi.json", timeout=10).json()
    shown = page.eval_on_selector_all(".opblock-summary-path", "ps => ps.map(p => p.dataset.path)")
    assert set(shown) == set(document["paths"]), "every operation is listed"
    assert page.locator(".auth-wrapper button.authorize").is_visible()

    # Without a key the guarded operation answers 401; with the admin's, entered through
    # Authorize as a Bearer key, 200; the key outlives a reload (persistAuthorization).
    status, body = execute(page, GUARDED)
    assert status == "401" and "Нужен ключ доступа" in body
    authorize(page, "Bearer", ADMIN)
    status, body = execute(page, GUARDED)
    assert status == "200" and json.loads(body)["total"] == 0  # no one has read personal data
    page.reload()
    page.wait_for_selector(".information-container .title")
    assert execute(page, GUARDED)[0] == "200"
    # The same key as X-API-Key, after logging out of Bearer.
    logout(page)
    assert execute(page, GUARDED)[0] == "401"
    authorize(page, "X-API-Key", ADMIN)
    assert execute(page, GUARDED)[0] == "200"

    assert page.evaluate("window.__violations") == []
    assert attempted == [], f"requests off the machine: {attempted}"
    assert problems == []


@needs_chromium
def test_redoc_works_offline(registries: str, browser: Browser) -> None:
    page, attempted, problems = offline_page(browser, registries)
    page.goto(f"{registries}/redoc")
    page.wait_for_selector("h1")
    assert TITLE in page.inner_text("h1")
    document = httpx.get(f"{registries}/openapi.json", timeout=10).json()
    ids = {op["operationId"]: path for path, _, op in operations(document)}
    drawn = page.eval_on_selector_all(
        '[data-section-id^="operation/"]', "ss => ss.map(s => s.dataset.sectionId)"
    )
    assert sorted(drawn) == sorted(f"operation/{i}" for i in ids), "every operation is drawn"
    # The guarded operation names the two ways to give the key; an open one, none.
    guarded = next(i for i, path in ids.items() if path == GUARDED)
    text = page.inner_text(f'[data-section-id="operation/{guarded}"]').lower()
    assert "authorizations" in text and "bearer" in text and "x-api-key" in text
    live = next(i for i, path in ids.items() if path == "/health/live")
    assert "authorizations" not in page.inner_text(f'[data-section-id="operation/{live}"]').lower()
    assert attempted == [], f"requests off the machine: {attempted}"
    assert set(page.evaluate("window.__violations")) <= {f"img-src {REDOC_LOGO}"}
    assert problems == []
