"""Signing in to the pages, and what every page of the suite shares.

Every service that keeps API keys serves:

- ``GET /signin`` — the sign-in page: a person gives their key once; ``POST /v1/session``
  checks it, keeps a session in the service's database (``sessions``, the SHA-256 of its
  token only) and sets the cookie ``iomflow_session_<service>`` (HttpOnly, SameSite=Strict).
  ``GET /v1/session`` says who is signed in, ``DELETE /v1/session`` signs out. A session
  lasts ``session_ttl_minutes`` and ends with its key (``iomflow.shared.auth``).
- ``GET /ui/pages`` — the service's pages (``ServiceSpec.pages``), which the sign-in page
  lists for whoever is signed in.
- ``GET /ui/assets/{name}`` — the pages' shared script and style sheet (``iomflow.js``:
  sign-in state, API calls with Russian errors, sortable and filterable tables with export;
  ``iomflow.css``), files of this package: nothing is fetched from outside.
- ``POST /ui/export.xlsx`` — the table a page shows, as the person sees it, as XLSX.
- ``GET /v1/audit`` — what was changed through the API, by whom (operator or auditor).

A service's own page is served with ``page(html)``: the pages' security headers (no inline
script, nothing from another origin).
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import desc, func, insert, select, update

from iomflow.shared.auth import (
    ROLE_NAMES,
    Principal,
    caller,
    cookie_name,
    principal_of,
    require,
    session_token_hash,
)
from iomflow.shared.errors import ApiError
from iomflow.shared.problems import Page, Paging, UtcDatetime, binary, paging, problems
from iomflow.shared.problems import page as a_page

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
"""The pages' headers: everything a page needs comes from its own service."""


class Files:
    """A package's page files (``<folder>/`` of ``package``): its HTML pages, and the
    scripts, style sheets and images it serves by name (``types``) — nothing else, a name
    not listed is 404 — with the pages' headers."""

    def __init__(self, package: str, types: Mapping[str, str], folder: str = "static") -> None:
        self.package, self.types, self.folder = package, dict(types), folder

    def read(self, name: str) -> bytes:
        return resources.files(self.package).joinpath(self.folder, name).read_bytes()

    def page(self, name: str) -> Response:
        return page(self.read(name))

    def asset(self, name: str) -> Response:
        media_type = self.types.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", f"Файл «{name}» не найден.")
        return Response(self.read(name), media_type=media_type, headers=HEADERS)


SCRIPT = "text/javascript; charset=utf-8"
STYLE = "text/css; charset=utf-8"

FILES = Files(
    "iomflow.shared",
    {
        "iomflow.js": SCRIPT,
        "iomflow.css": STYLE,
        "signin.js": SCRIPT,
        "favicon.svg": "image/svg+xml",
    },
    folder="static/ui",
)
"""The pages' shared files (``GET /ui/assets/{name}``) and the sign-in page."""

EXPORT_MAX_ROWS = 100_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def page(html: bytes) -> Response:
    """One of a service's pages, with the pages' security headers."""
    return Response(html, media_type="text/html; charset=utf-8", headers=HEADERS)


class SignIn(BaseModel):
    key: str = Field(min_length=1, max_length=200, description="The person's API key")


class Signed(BaseModel):
    name: str
    roles: list[str]
    role_names: list[str]
    person_id: str | None
    expires_at: UtcDatetime | None


class AuditRead(BaseModel):
    """One request that changed something through the API: who, how, what, the answer."""

    audit_id: int
    at: UtcDatetime
    key_id: str = Field(description="The key's id (never the key)")
    name: str = Field(description="The key's holder")
    person_id: str | None
    via: str = Field(description="key or session")
    method: str
    path: str
    status: int = Field(description="The HTTP status answered")


class Export(BaseModel):
    title: str = Field(default="Выгрузка", max_length=200)
    columns: list[str] = Field(min_length=1, max_length=100)
    rows: list[list[str | float | int | bool | None]] = Field(max_length=EXPORT_MAX_ROWS)


Anyone = Annotated[Principal, Depends(require(None))]


def _signed(principal: Principal, expires_at: datetime | None) -> Signed:
    roles = sorted(principal.roles)
    return Signed(
        name=principal.name,
        roles=roles,
        role_names=["все роли" if r == "*" else ROLE_NAMES.get(r, r) for r in roles],
        person_id=principal.person_id,
        expires_at=expires_at,
    )


def router(title: str = "", pages: Sequence[tuple[str, str]] = ()) -> APIRouter:
    """The sign-in routes of a service called ``title`` with its ``pages`` (path, title)."""
    api = APIRouter(tags=["sign-in"])

    @api.get("/ui/pages", include_in_schema=False)
    async def listed(request: Request) -> dict[str, Any]:
        """The service's pages and who is signed in (None: nobody), for the sign-in page —
        a 200 either way, so that a page asking says nothing in the browser's console."""
        try:
            principal = await caller(request)
        except ApiError:  # a key presented and refused: nobody is signed in
            principal = None
        return {
            "service": title,
            "pages": [{"path": path, "title": name} for path, name in pages],
            "who": None if principal is None else _signed(principal, None).model_dump(),
        }

    @api.get("/signin", include_in_schema=False)
    async def signin_page() -> Response:
        return FILES.page("signin.html")

    @api.get("/ui/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        return FILES.asset(name)

    @api.post(
        "/v1/session",
        summary="Sign in with a key: a session cookie for the pages",
        response_model=Signed,
        responses=problems(401, s401="Ключ неизвестен или отозван (code: invalid_key)"),
    )
    async def sign_in(request: Request, body: SignIn) -> JSONResponse:
        runtime = request.app.state.runtime
        principal = await principal_of(request, body.key.strip())
        if principal is None:
            raise ApiError(401, "invalid_key", "Ключ доступа неизвестен или отозван.")
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires_at = now + timedelta(minutes=runtime.settings.session_ttl_minutes)
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                insert(runtime.session_table).values(
                    token_hash=session_token_hash(token),
                    key_id=principal.key_id,
                    name=principal.name,
                    roles=sorted(principal.roles),
                    person_id=principal.person_id,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        request.state.principal = Principal(
            principal.name, principal.roles, principal.key_id, principal.person_id, "session"
        )
        answer = JSONResponse(_signed(principal, expires_at).model_dump(mode="json"))
        answer.set_cookie(
            cookie_name(runtime.settings.service),
            token,
            max_age=runtime.settings.session_ttl_minutes * 60,
            httponly=True,
            samesite="strict",
            secure=runtime.settings.session_cookie_secure,
            path="/",
        )
        return answer

    @api.get(
        "/v1/session",
        summary="Who is signed in (or holds the presented key)",
        response_model=Signed,
        responses=problems(401, s401="Не выполнен вход (code: unauthenticated)"),
    )
    async def who(principal: Anyone) -> Signed:
        return _signed(principal, principal.expires_at)

    @api.delete(
        "/v1/session",
        summary="Sign out: the session ends",
        status_code=204,
        response_class=Response,
        responses=problems(
            401,
            403,
            s401="Сеанс уже закончился (code: unauthenticated)",
            s403="Выход не со страницы сервиса (code: csrf)",
        ),
    )
    async def sign_out(request: Request) -> Response:
        runtime = request.app.state.runtime
        name = cookie_name(runtime.settings.service)
        token = request.cookies.get(name)
        answer = Response(status_code=204)
        if token:
            if request.headers.get("x-requested-with") != "iomflow":
                raise ApiError(403, "csrf", "Выход принимается только со страниц сервиса.")
            principal = await caller(request)
            table = runtime.session_table
            async with runtime.sessions() as session, session.begin():
                await session.execute(
                    update(table)
                    .where(
                        table.c.token_hash == session_token_hash(token), table.c.ended_at.is_(None)
                    )
                    .values(ended_at=datetime.now(UTC))
                )
            request.state.principal = principal
        answer.delete_cookie(name, path="/", httponly=True, samesite="strict")
        return answer

    @api.post(
        "/ui/export.xlsx",
        summary="A page's table as shown, as XLSX (any signed-in person)",
        response_class=Response,
        responses={
            **binary(XLSX, "The workbook"),
            **problems(401, s401="Не выполнен вход (code: unauthenticated)"),
        },
    )
    async def export(body: Export, principal: Anyone) -> Response:
        return Response(
            _workbook(body, principal),
            media_type=XLSX,
            headers={"Content-Disposition": 'attachment; filename="export.xlsx"'},
        )

    @api.get(
        "/v1/audit",
        summary="What was changed through the API and by whom, newest first (operator or auditor)",
        response_model=Page[AuditRead],
        responses=problems(
            401,
            403,
            s401="Нет ключа или сеанса (code: unauthenticated)",
            s403="Ни оператор, ни аудитор (code: forbidden)",
        ),
    )
    async def audit(
        request: Request,
        principal: Anyone,
        paged: Annotated[Paging, Depends(paging())],
        person_id: Annotated[str | None, Query(max_length=100)] = None,
    ) -> Page[AuditRead]:
        if not (principal.holds("operator") or principal.holds("auditor")):
            raise ApiError(
                403,
                "forbidden",
                "Недостаточно прав: журнал действий видят оператор и аудитор.",
                role="auditor",
            )
        runtime = request.app.state.runtime
        table = runtime.audit_log
        where = [] if person_id is None else [table.c.person_id == person_id]
        query = (
            select(table)
            .where(*where)
            .order_by(desc(table.c.audit_id))
            .offset(paged.offset)
            .limit(paged.limit)
        )
        async with runtime.sessions() as session:
            rows = [AuditRead.model_validate(r._mapping) for r in await session.execute(query)]
            total = (
                await session.execute(select(func.count()).select_from(table).where(*where))
            ).scalar_one()
        return a_page(rows, total, paged)

    return api


def _cell(value: Any) -> Any:
    """A value a workbook can hold: no lone surrogates, no control characters."""
    if not isinstance(value, str):
        return value
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    text = value.encode("utf-8", "replace").decode("utf-8")
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def _workbook(body: Export, principal: Principal) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    body = Export(
        title=_cell(body.title),
        columns=[_cell(c) for c in body.columns],
        rows=[[_cell(v) for v in row] for row in body.rows],
    )

    book = Workbook()
    sheet = book.active
    sheet.title = (body.title or "Выгрузка")[:31].translate(str.maketrans("[]:*?/\\", "       "))
    sheet.append([body.title])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append([f"Выгрузил: {principal.name}, {datetime.now(UTC).astimezone():%d.%m.%Y %H:%M}"])
    sheet.append([])
    sheet.append(body.columns)
    for cell in sheet[4]:
        cell.font = Font(bold=True)
    for row in body.rows:
        sheet.append(list(row)[: len(body.columns)])
    for index, title in enumerate(body.columns, start=1):
        longest = max(
            [len(str(title))]
            + [len(str(r[index - 1] or "")) for r in body.rows[:500] if len(r) >= index]
        )
        sheet.column_dimensions[sheet.cell(4, index).column_letter].width = min(60, longest + 2)
    sheet.freeze_panes = "A5"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
