"""Errors of the HTTP APIs as RFC 9457 problem details, and the shapes every API shares.

Every 4xx and 5xx answer of every service is ``application/problem+json``::

    {"type": "urn:iomflow:problem:<code>", "title": "<Russian, the kind of error>",
     "status": 404, "detail": "<Russian, this error>", "code": "<stable machine code>",
     "errors": [...]}   # field errors of a 422, and other extension members

``code`` is the member a machine branches on (stable, documented per operation);
``title`` and ``detail`` are for people. ``type`` is a URN built from the code, so two
answers with the same code have the same type.

``document(app)`` completes the OpenAPI document FastAPI builds: the statuses any
operation can answer by construction (401 and 403 where a key is taken, 422 where input
is read, 500 everywhere) are added, and every error response is described as this
``Problem`` under ``application/problem+json``. An operation documents the statuses of its
own rules with ``problems(404, 409, ...)``.

``Page`` is the one pagination envelope (offset, limit and the total), ``binary`` the
description of a file answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Generic, TypeVar

from fastapi import FastAPI, Query
from fastapi import routing as fastapi_routing
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MEDIA_TYPE = "application/problem+json"

TITLES = {
    400: "Неверный запрос",
    401: "Нужен ключ доступа",
    403: "Недостаточно прав",
    404: "Не найдено",
    405: "Метод не поддерживается",
    406: "Формат ответа не поддерживается",
    409: "Конфликт с текущим состоянием",
    410: "Больше недоступно",
    413: "Слишком большой запрос",
    415: "Формат тела не поддерживается",
    422: "Запрос не прошёл проверку",
    429: "Слишком много запросов",
    500: "Внутренняя ошибка сервиса",
    501: "Не реализовано",
    502: "Смежная система не ответила",
    503: "Сервис временно недоступен",
    504: "Смежная система не ответила вовремя",
}
"""The ``title`` of a problem: what kind of error, in Russian, by status."""

DESCRIPTIONS = {
    401: "Ключа нет, он неизвестен или отозван, сеанс истёк (code: unauthenticated)",
    403: "У ключа нет нужной роли, или действие не его (code: forbidden, csrf и правила операции)",
    422: "Тело или параметры не прошли проверку: errors — по полям (code: validation_error)",
    500: "Внутренняя ошибка сервиса (code: internal_error)",
}


class FieldError(BaseModel):
    """One field that did not pass validation."""

    loc: list[str | int] = Field(description="Where: body/query/path and the field's path")
    msg: str = Field(description="What is wrong, in Russian")
    type: str | None = Field(default=None, description="The validator's error type")


class Problem(BaseModel):
    """An error (RFC 9457 problem details) with the ``code`` a machine branches on."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="urn:iomflow:problem:<code>")
    title: str = Field(description="The kind of error, in Russian")
    status: int = Field(description="The HTTP status")
    detail: str = Field(description="This error, in Russian, with what to do")
    code: str = Field(description="A stable machine code")
    errors: list[FieldError] | None = Field(
        default=None, description="Field errors (a 422 of validation)"
    )


def type_of(code: str) -> str:
    return f"urn:iomflow:problem:{code}"


def body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    title = TITLES.get(status) or HTTPStatus(status).phrase
    return {
        "type": type_of(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem as an answer."""
    return JSONResponse(
        status_code=status,
        content=body(status, code, detail, **extra),
        headers=headers,
        media_type=MEDIA_TYPE,
    )


def problems(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of an operation: the statuses its own rules answer, each a Problem.
    A description by status: ``problems(404, s409="маршрут уже закрыт")``."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = described.get(f"s{status}") or TITLES.get(status) or HTTPStatus(status).phrase
        out[status] = {"model": Problem, "description": text}
    return out


def binary(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of an operation answering a file (with ``response_class=Response``)."""
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
        }
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_aware)]
"""A moment of an answer: a naive one (SQLite gives back what it stored, in UTC, without
its offset) is UTC, so that it is an RFC 3339 ``date-time`` as the document says."""

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list: ``items`` from ``offset``, at most ``limit`` of them, ``total`` in
    all. The next page starts at ``offset + len(items)`` while it is below ``total``."""

    items: list[T]
    total: int = Field(ge=0, description="How many there are in all (with the filters)")
    offset: int = Field(ge=0)
    limit: int = Field(ge=1)


class Paging(BaseModel):
    offset: int
    limit: int


OFFSET_MAX = 2**53
"""The largest offset a page takes: beyond it a database's 64-bit OFFSET overflows (a 500),
and no list is that long."""


def paging(max_limit: int = 1000, default: int = 100) -> Callable[..., Paging]:
    """A dependency: ``offset`` and ``limit`` query parameters."""

    def dependency(
        offset: int = Query(0, ge=0, le=OFFSET_MAX, description="Skip this many"),
        limit: int = Query(default, ge=1, le=max_limit, description="At most this many"),
    ) -> Paging:
        return Paging(offset=offset, limit=limit)

    return dependency


def page(items: Sequence[T], total: int, paged: Paging) -> Page[T]:
    return Page[T](items=list(items), total=total, offset=paged.offset, limit=paged.limit)


# --- the OpenAPI document -------------------------------------------------------------------


def _auth(route: Any) -> tuple[bool, bool]:
    """(takes a key, requires a role or a key) of a route, from its dependencies."""
    takes = requires = False
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        call = dep.call
        if call is not None and hasattr(call, "__iomflow_auth__"):
            takes = True
            requires = requires or call.__iomflow_auth__ == "require"
        stack.extend(dep.dependencies)
    return takes, requires


def api_routes(app: FastAPI) -> Iterator[tuple[str, Any]]:
    """(path as documented, route) of every API operation of ``app``, those of its included
    routers too (FastAPI keeps an included router whole: ``app.routes`` does not list its
    operations). The route is FastAPI's view of it under its router: ``dependant``,
    ``methods``, ``response_model``, ``response_class``, ``include_in_schema``."""
    for context in fastapi_routing.iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context.path_format or context.original_route.path_format, context


def _reads_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters")) or "requestBody" in operation


def document(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document with every error a Problem (see the module)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        defs = components["Problem"].pop("$defs", {})
        components.update(defs)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        auth = {
            (method.lower(), path): _auth(route)
            for path, route in api_routes(app)
            for method in route.methods or ()
        }
        ref = {"$ref": "#/components/schemas/Problem"}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                takes, requires = auth.get((method, path), (False, False))
                wanted = [500]
                if takes:
                    wanted += [401]
                if requires or (takes and method not in ("get", "head")):
                    wanted += [403]
                if _reads_input(operation):
                    wanted += [422]
                for status in wanted:
                    responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
                for status, answer in responses.items():
                    if status[0] in "45":
                        answer["content"] = {MEDIA_TYPE: {"schema": ref}}
                        if answer.get("description") in (None, "", "Validation Error"):
                            answer["description"] = DESCRIPTIONS.get(int(status)) or TITLES.get(
                                int(status), HTTPStatus(int(status)).phrase
                            )
        app.openapi_schema = schema
        return schema

    return openapi
