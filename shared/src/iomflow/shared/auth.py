"""API keys with roles, for the people and systems that call a service's HTTP API.

A key is shown once when it is issued; only its SHA-256 is stored (keys are 256 random
bits, so a plain hash cannot be reversed by guessing). A request names its key in
``Authorization: Bearer <key>`` or ``X-API-Key``. ``require(role)`` is a FastAPI dependency
that answers 401 without a valid key and 403 without the role, in Russian with a code;
``optional(role)`` gives the principal holding the role or None, and 401 for a bad key.
Both depend on ``presented``, which declares the two ways as the security schemes
``Bearer`` and ``X-API-Key``: FastAPI writes them into the OpenAPI document and onto every
operation that takes a key, and Swagger UI's Authorize sends the key the way it was given.

A person using the pages signs in once with their key (``iomflow.shared.signin``): the
service keeps a session (table ``sessions``, only the SHA-256 of its token) and sets the
cookie ``iomflow_session_<service>``. Without a key header, ``require`` and ``optional``
take the principal of that session — the key's, so a methodist's session is that methodist
— while it has not expired, ended or lost its key. A request that changes something on the
strength of the cookie must carry ``X-Requested-With: iomflow`` (a header another site
cannot make a browser send), or it is refused (403 ``csrf``). Every such request, by key or
by session, is written to ``audit_log`` (``AuditMiddleware``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iomflow.shared.errors import ApiError

log = logging.getLogger(__name__)

PREFIX = "iomf_"


def api_keys_table(metadata: MetaData) -> Table:
    return Table(
        "api_keys",
        metadata,
        Column("key_id", String(32), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("key_hash", String(64), nullable=False, unique=True),
        Column("roles", JSON, nullable=False),
        Column("person_id", String(100), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
    )


def sessions_table(metadata: MetaData) -> Table:
    """Signed-in people: a session lasts until ``expires_at`` or sign-out (``ended_at``)."""
    return Table(
        "sessions",
        metadata,
        Column("token_hash", String(64), primary_key=True),
        Column("key_id", String(32), nullable=False),
        Column("name", String(200), nullable=False),
        Column("roles", JSON, nullable=False),
        Column("person_id", String(100), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("ended_at", DateTime(timezone=True), nullable=True),
    )


def audit_log_table(metadata: MetaData) -> Table:
    """What was done through the HTTP API, by whom: one row per request that changes
    something (POST, PUT, PATCH, DELETE) made with a key or a session."""
    return Table(
        "audit_log",
        metadata,
        Column(
            "audit_id",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("key_id", String(32), nullable=False),
        Column("name", String(200), nullable=False),
        Column("person_id", String(100), nullable=True),
        Column("via", String(10), nullable=False),  # key | session
        Column("method", String(10), nullable=False),
        Column("path", String(500), nullable=False),
        Column("status", Integer, nullable=False),
        Index("ix_audit_log_at", "at"),
    )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (written to audit logs), its roles and, for a key
    issued to a person (``keys add … --person``), who that is: a methodist's key *is* that
    methodist, so what it does is done by them whatever a request body says."""

    name: str
    roles: frozenset[str]
    key_id: str = ""
    person_id: str | None = None
    via: str = "key"  # or "session": signed in on the pages
    expires_at: datetime | None = None  # a session's end

    def holds(self, role: str) -> bool:
        return role in self.roles or "*" in self.roles


async def issue(
    session: AsyncSession,
    table: Table,
    name: str,
    roles: Iterable[str],
    person_id: str | None = None,
) -> tuple[str, str]:
    """A new key for ``name`` with ``roles`` (and bound to ``person_id``, a pseudonymous id
    such as a methodist's): (key_id, the key — shown once, not stored)."""
    key_id = secrets.token_hex(8)
    key = PREFIX + secrets.token_urlsafe(32)
    await session.execute(
        insert(table).values(
            key_id=key_id,
            name=name,
            key_hash=hash_key(key),
            roles=sorted(set(roles)),
            person_id=person_id,
            created_at=datetime.now(UTC),
        )
    )
    return key_id, key


async def revoke(session: AsyncSession, table: Table, key_id: str) -> bool:
    result = await session.execute(
        update(table)
        .where(table.c.key_id == key_id, table.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_keys(session: AsyncSession, table: Table) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(
            table.c.key_id,
            table.c.name,
            table.c.roles,
            table.c.person_id,
            table.c.created_at,
            table.c.revoked_at,
        ).order_by(table.c.created_at)
    )
    return [dict(row._mapping) for row in rows]


async def authenticate(session: AsyncSession, table: Table, key: str) -> Principal | None:
    row = (
        await session.execute(
            select(table.c.key_id, table.c.name, table.c.roles, table.c.person_id).where(
                table.c.key_hash == hash_key(key), table.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    return Principal(row.name, frozenset(row.roles), row.key_id, row.person_id)


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


BEARER = HTTPBearer(
    scheme_name="Bearer",
    description="Ключ доступа в заголовке «Authorization: Bearer <ключ>».",
    auto_error=False,
)
API_KEY = APIKeyHeader(
    name="X-API-Key",
    scheme_name="X-API-Key",
    description="Тот же ключ доступа в заголовке «X-API-Key: <ключ>».",
    auto_error=False,
)
"""The two ways to present a key, as OpenAPI security schemes (either one will do)."""


async def presented(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    _api_key: Annotated[str | None, Depends(API_KEY)],
) -> str | None:
    """A dependency: the presented key, or None. Through the schemes, so that the operations
    that take a key say so in the OpenAPI document; the key itself is read by
    ``presented_key``, as everywhere else, so the answers stay what they were (the schemes
    refuse nothing: ``auto_error=False``)."""
    return presented_key(request)


presented.__iomflow_auth__ = "optional"  # type: ignore[attr-defined]  # for the document
Presented = Annotated[str | None, Depends(presented)]


ADMIN = Principal("администратор", frozenset({"*"}), "admin")
"""The holder of the settings' ``admin_key``: every role."""


async def principal_of(request: Request, key: str) -> Principal | None:
    """The principal of a presented key: the admin's, or an active API key's; None."""
    runtime = request.app.state.runtime
    admin = runtime.settings.admin_key
    if admin is not None and hmac.compare_digest(
        key.encode("utf-8", "surrogatepass"), admin.get_secret_value().encode()
    ):
        return ADMIN
    table = runtime.api_keys
    if table is None:
        raise RuntimeError("this service keeps no API keys (Tables(auth=True))")
    async with runtime.sessions() as session:
        return await authenticate(session, table, key)


def require(role: str | None) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal if it holds ``role`` (any signed-in caller for
    None); 401/403 otherwise."""

    # ``_schemes`` declares the schemes on the route; the key is read from the request, so
    # that a route may also call ``require(role)(request)`` itself (routes' approvals,
    # where the role comes with the body).
    async def dependency(request: Request, _schemes: Presented = None) -> Principal:
        principal = await caller(request)
        if principal is None:
            raise ApiError(
                401,
                "unauthenticated",
                "Нужен ключ доступа: заголовок Authorization: Bearer <ключ> — или вход на "
                "странице /signin.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if role is not None and not principal.holds(role):
            raise ApiError(
                403,
                "forbidden",
                f"Недостаточно прав: нужна роль «{ROLE_NAMES.get(role, role)}» (ключ с ней "
                f"выдаёт администратор: keys add … --role {role}).",
                role=role,
            )
        return principal

    dependency.__iomflow_auth__ = "require"  # type: ignore[attr-defined]  # for the document
    return dependency


def optional(role: str) -> Callable[..., Awaitable[Principal | None]]:
    """A dependency for routes open to all that show more to ``role``: the caller's
    principal if it holds ``role``, None without a key or without the role; 401 for a key
    that is presented but unknown or revoked (as ``require``). Its routes take
    ``openapi_extra=key_optional()``."""

    async def dependency(request: Request, _schemes: Presented = None) -> Principal | None:
        principal = await caller(request)
        return principal if principal is not None and principal.holds(role) else None

    dependency.__iomflow_auth__ = "optional"  # type: ignore[attr-defined]  # for the document
    return dependency


async def caller(request: Request) -> Principal | None:
    """Who is calling: the presented key's principal (401 for an unknown or revoked key),
    else the signed-in session's (None without either). Remembered on the request, for the
    audit."""
    if hasattr(request.state, "principal"):
        return request.state.principal  # type: ignore[no-any-return]
    key = presented_key(request)
    principal = await (_known(request, key) if key is not None else session_principal(request))
    request.state.principal = principal  # a refused attempt is audited too
    if (
        principal is not None
        and principal.via == "session"
        and request.method not in SAFE_METHODS
        and request.headers.get("x-requested-with") != CSRF_HEADER_VALUE
    ):
        raise ApiError(
            403,
            "csrf",
            "Запрос со страницы без заголовка X-Requested-With: iomflow отклонён: "
            "изменения по входу на странице принимаются только от страниц сервиса.",
        )
    return principal


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER_VALUE = "iomflow"

ROLE_NAMES = {
    "operator": "оператор",
    "methodist": "методист",
    "teacher": "педагог",
    "management": "управленческая команда",
    "registrar": "регистратор",
    "auditor": "аудитор",
    "personal_data": "доступ к персональным данным",
    "publisher": "издатель событий",
    "analyst": "аналитик",
}
"""Roles as a person reads them (a role not listed: as it is)."""


def cookie_name(service: str) -> str:
    """Browsers share cookies across the ports of one host: the name says whose it is."""
    return f"iomflow_session_{service or 'service'}"


def session_token_hash(token: str) -> str:
    return hash_key(token)


async def session_principal(request: Request) -> Principal | None:
    """The principal of the request's session cookie: a live session whose key is still
    active (the admin key's session lives while the settings hold that key); None
    otherwise."""
    runtime = request.app.state.runtime
    token = request.cookies.get(cookie_name(runtime.settings.service))
    table = runtime.session_table
    if not token or table is None:
        return None
    keys = runtime.api_keys
    # One read: the session, and whether its key is still active (the admin key is no row).
    query = select(
        table.c.key_id,
        table.c.name,
        table.c.roles,
        table.c.person_id,
        table.c.expires_at,
        keys.c.revoked_at,
        keys.c.key_id.label("known_key"),
    ).select_from(table.outerjoin(keys, keys.c.key_id == table.c.key_id))
    async with runtime.sessions() as session:
        row = (
            await session.execute(
                query.where(
                    table.c.token_hash == session_token_hash(token), table.c.ended_at.is_(None)
                )
            )
        ).first()
    if row is None or _aware(row.expires_at) <= datetime.now(UTC):
        return None
    if row.key_id == ADMIN.key_id:
        if runtime.settings.admin_key is None:
            return None
    elif row.known_key is None or row.revoked_at is not None:
        return None
    return Principal(
        row.name,
        frozenset(row.roles),
        row.key_id,
        row.person_id,
        via="session",
        expires_at=_aware(row.expires_at),
    )


def _aware(at: datetime) -> datetime:
    """SQLite gives back naive datetimes: they were written in UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class AuditMiddleware:
    """Writes one ``audit_log`` row per request that changes something (POST, PUT, PATCH,
    DELETE) made by a known caller, with the answer's status, after the answer is sent. A
    request a route audits itself (ingestion: ``request.state.audited``) is left to it. A
    failed audit write is logged; the answer stands."""

    def __init__(self, app: ASGIApp, runtime: Any) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            state = scope.get("state") or {}
            principal = state.get("principal")
            if principal is not None and not state.get("audited"):
                await self.write(principal, scope["method"], scope["path"], status)

    async def write(self, principal: Principal, method: str, path: str, status: int) -> None:
        table = self.runtime.audit_log
        if table is None:
            return
        try:
            async with self.runtime.sessions() as session, session.begin():
                await session.execute(
                    insert(table).values(
                        at=datetime.now(UTC),
                        key_id=principal.key_id,
                        name=principal.name,
                        person_id=principal.person_id,
                        via=principal.via,
                        method=method,
                        path=path[:500],
                        status=status,
                    )
                )
        except Exception:
            log.exception("audit write failed: %s %s by %s", method, path, principal.key_id)


def key_optional() -> dict[str, Any]:
    """The ``openapi_extra`` of a route that depends on ``optional``: FastAPI lists the
    schemes as if a key were needed, and the empty requirement added after them is
    OpenAPI's way to write "or none"."""
    return {"security": [{}]}


async def _known(request: Request, key: str) -> Principal:
    principal = await principal_of(request, key)
    if principal is None:
        raise ApiError(
            401,
            "invalid_key",
            "Ключ доступа неизвестен или отозван.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


Operator = Annotated[Principal, Depends(require("operator"))]
"""A route parameter: the caller, who holds the ``operator`` role."""
