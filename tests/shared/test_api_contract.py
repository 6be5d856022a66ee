"""The HTTP contract every service keeps, read from the apps themselves.

(a) every operation in the document has a response model that is a pydantic model (or a
    ``Page`` or list of one), never ``dict`` / ``Any``; an operation answering a file,
    text or a page instead documents that media type;
(b) in every OpenAPI document each 4xx/5xx answer is ``application/problem+json`` →
    ``Problem``;
(c) live, through each app with its real lifespan: an unknown path (404), a wrong method
    (405), a body that is not JSON (422), no key (401) answer problem details with type,
    title, status, detail and code.
"""

from __future__ import annotations

import tempfile
import types
import typing
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from iomflow.cli.common import built_app
from iomflow.cli.launcher import SERVICES
from iomflow.shared import problems
from iomflow.shared.problems import MEDIA_TYPE, Problem

ADMIN_KEY = "iomf_test_admin_key"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class Built:
    """A service's app as built (never started): its operations and its document."""

    def __init__(self, name: str, app: FastAPI) -> None:
        self.name = name
        self.routes = [
            (path, route) for path, route in problems.api_routes(app) if route.include_in_schema
        ]
        self.document = app.openapi()


@pytest.fixture(scope="module")
def built() -> Iterator[dict[str, Built]]:
    with tempfile.TemporaryDirectory(prefix="iomflow-api-contract-") as tmp:
        apps: dict[str, Built] = {}
        for name in SERVICES:
            with built_app(name, Path(tmp)) as app:
                apps[name] = Built(name, app)
        yield apps


# --- (a) response models ------------------------------------------------------------------


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def typed(annotation: Any) -> bool:
    """A pydantic model, a Page of one, a list of one (a Page is a model)."""
    if _is_model(annotation):
        return True
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None) and a is not ...]
        return bool(args) and all(typed(a) for a in args)
    return False


FILE_ANSWERS = (HTMLResponse, PlainTextResponse)


def _response_class(route: Any) -> Any:
    cls = route.response_class
    return getattr(cls, "value", cls)  # a DefaultPlaceholder holds JSONResponse


def _documents_a_media_type(document: dict[str, Any], path: str, method: str) -> bool:
    operation = document["paths"].get(path, {}).get(method.lower(), {})
    for status, answer in operation.get("responses", {}).items():
        if status.startswith("2") and any(
            "json" not in media for media in answer.get("content", {})
        ):
            return True
    return False


def untyped_operations(apps: dict[str, Built]) -> list[str]:
    """``service METHOD path: why`` of every operation without a typed answer."""
    found = []
    for name, app in sorted(apps.items()):
        for path, route in app.routes:
            for method in sorted(route.methods or ()):
                if route.status_code == 204:  # no content: nothing to type
                    continue
                cls = _response_class(route)
                answers_json = not (isinstance(cls, type) and not issubclass(cls, JSONResponse))
                if answers_json:
                    if typed(route.response_model):
                        continue
                    why = (
                        f"response model {route.response_model!r}"
                        if route.response_model is not None
                        else "no response model (a file: response_class=Response, binary(...))"
                    )
                elif issubclass(cls, (*FILE_ANSWERS, Response)):
                    if _documents_a_media_type(app.document, path, method):
                        continue
                    why = f"{cls.__name__} without its media type documented"
                else:
                    continue
                found.append(f"{name} {method} {path}: {why}")
    return found


def test_every_operation_answers_a_model_or_a_documented_file(built: dict[str, Built]) -> None:
    found = untyped_operations(built)
    assert found == [], f"{len(found)} operations without a typed answer:\n" + "\n".join(found)


def test_typed_tells_models_from_dicts() -> None:
    class Read(BaseModel):
        x: int

    assert typed(Read) and typed(list[Read]) and typed(problems.Page[Read])
    assert typed(Read | None)
    assert not typed(dict[str, Any]) and not typed(Any) and not typed(dict)
    assert not typed(list[dict[str, Any]]) and not typed(None)


# --- (b) errors in the documents ----------------------------------------------------------


def test_every_error_answer_is_a_problem_in_the_documents(built: dict[str, Built]) -> None:
    wrong = []
    for name, app in sorted(built.items()):
        assert "Problem" in app.document["components"]["schemas"], name
        for path, operations in app.document["paths"].items():
            for method, operation in operations.items():
                for status, answer in operation.get("responses", {}).items():
                    if status[0] in "45" and answer.get("content") != {
                        MEDIA_TYPE: {"schema": PROBLEM_REF}
                    }:
                        wrong.append(f"{name} {method.upper()} {path} {status}")
    assert wrong == [], "errors not documented as Problem:\n" + "\n".join(wrong)


def test_every_operation_documents_500_and_422_where_it_reads_input(
    built: dict[str, Built],
) -> None:
    missing = []
    for name, app in sorted(built.items()):
        for path, operations in app.document["paths"].items():
            for method, operation in operations.items():
                statuses = set(operation["responses"])
                reads = bool(operation.get("parameters")) or "requestBody" in operation
                if "500" not in statuses or (reads and "422" not in statuses):
                    missing.append(f"{name} {method.upper()} {path}: {sorted(statuses)}")
    assert missing == [], "\n".join(missing)


# --- (c) live ------------------------------------------------------------------------------


@pytest.fixture(params=SERVICES)
async def live(
    request: pytest.FixtureRequest, clean_redis: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A service's app started (migrations, consumer, relay) on SQLite and a real Redis."""
    import importlib

    name = request.param
    app_module = importlib.import_module(f"iomflow.{name}.app")
    settings_module = importlib.import_module(f"iomflow.{name}.settings")
    settings = settings_module.Settings(
        service=name,
        redis_url=clean_redis,
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db",
        migrate_on_start=True,
        admin_key=ADMIN_KEY,
        traces_dir=None,
    )
    app = app_module.create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}") as client:
            client.headers["x-service"] = name
            yield client


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(MEDIA_TYPE), response.headers
    body = response.json()
    Problem.model_validate(body)
    assert body["status"] == status and body["type"] == f"urn:iomflow:problem:{body['code']}"
    assert body["title"] and body["detail"]
    if code is not None:
        assert body["code"] == code, body


async def test_framework_and_auth_errors_are_problems(live: httpx.AsyncClient) -> None:
    assert_problem(await live.get("/no/such/path"), 404, "not_found")

    wrong = await live.put("/v1/session")
    assert_problem(wrong, 405, "method_not_allowed")
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "POST", "DELETE"}

    not_json = await live.post(
        "/v1/session", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(not_json, 422)
    not_utf8 = await live.post(
        "/v1/session", content=b"\x80\x81", headers={"content-type": "application/json"}
    )
    assert_problem(not_utf8, 422, "invalid_json")

    assert_problem(await live.get("/v1/audit"), 401, "unauthenticated")
    wrong_key = await live.post("/v1/session", json={"key": "ключ-не-ascii"})
    assert_problem(wrong_key, 401, "invalid_key")  # not a 500 (compared as bytes)

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    # a control character and a lone surrogate (as JSON escapes): what a workbook cannot hold
    table = b'{"title": "t", "columns": ["a\\u0001", "b"], "rows": [["\\ud83d x", 1]]}'
    workbook = await live.post(
        "/ui/export.xlsx", content=table, headers={**admin, "content-type": "application/json"}
    )
    assert workbook.status_code == 200, workbook.text  # cells cleaned, not a 500
    assert workbook.headers["content-type"] == problems_xlsx()
    assert workbook.content[:2] == b"PK"  # a zip: the workbook

    ready = await live.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text
    page = await live.get("/v1/audit", headers=admin)
    assert page.status_code == 200 and set(page.json()) == {"items", "total", "offset", "limit"}
    [exported] = [i for i in page.json()["items"] if i["path"] == "/ui/export.xlsx"]
    at = datetime.fromisoformat(exported["at"])
    assert at.utcoffset() == timedelta(0), exported  # RFC 3339: with its offset


def problems_xlsx() -> str:
    from iomflow.shared.signin import XLSX

    return XLSX
