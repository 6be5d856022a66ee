"""API keys with roles, for the people and systems that call a service's HTTP API.

A key is shown once when it is issued; only its SHA-256 is stored (keys are 256 random
bits, so a plain hash cannot be reversed by guessing). A request names its key in
``Authorization: Bearer <key>`` or ``X-API-Key``. ``require(role)`` is a FastAPI dependency
that answers 401 without a valid key and 403 without the role, in Russian with a code;
``optional(role)`` gives the principal holding the role or None, and 401 for a bad key.
Both depend on ``presented``, which declares the two ways as the security schemes
``Bearer`` and ``X-API-Key``: FastAPI writes them into the OpenAPI document and onto every
operation that takes a key, and Swagger UI's Authorize sends the key the way it was given.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.shared.errors import ApiError

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


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (written to audit logs), its roles and, for a key
    issued to a person (``keys add … --person``), who that is: a methodist's key *is* that
    methodist, so what it does is done by them whatever a request body says."""

    name: str
    roles: frozenset[str]
    key_id: str = ""
    person_id: str | None = None

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


Presented = Annotated[str | None, Depends(presented)]


ADMIN = Principal("admin", frozenset({"*"}), "admin")
"""The holder of the settings' ``admin_key``: every role."""


async def principal_of(request: Request, key: str) -> Principal | None:
    """The principal of a presented key: the admin's, or an active API key's; None."""
    runtime = request.app.state.runtime
    admin = runtime.settings.admin_key
    if admin is not None and hmac.compare_digest(key, admin.get_secret_value()):
        return ADMIN
    table = runtime.api_keys
    if table is None:
        raise RuntimeError("this service keeps no API keys (Tables(auth=True))")
    async with runtime.sessions() as session:
        return await authenticate(session, table, key)


def require(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal if it holds ``role``; 401/403 otherwise."""

    # ``_schemes`` declares the schemes on the route; the key is read from the request, so
    # that a route may also call ``require(role)(request)`` itself (routes' approvals,
    # where the role comes with the body).
    async def dependency(request: Request, _schemes: Presented = None) -> Principal:
        key = presented_key(request)
        if key is None:
            raise ApiError(
                401,
                "unauthenticated",
                "Нужен ключ доступа: заголовок Authorization: Bearer <ключ>.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = await _known(request, key)
        if not principal.holds(role):
            raise ApiError(403, "forbidden", f"Недостаточно прав: нужна роль «{role}».", role=role)
        return principal

    return dependency


def optional(role: str) -> Callable[..., Awaitable[Principal | None]]:
    """A dependency for routes open to all that show more to ``role``: the caller's
    principal if it holds ``role``, None without a key or without the role; 401 for a key
    that is presented but unknown or revoked (as ``require``). Its routes take
    ``openapi_extra=key_optional()``."""

    async def dependency(request: Request, _schemes: Presented = None) -> Principal | None:
        key = presented_key(request)
        if key is None:
            return None
        principal = await _known(request, key)
        return principal if principal.holds(role) else None

    return dependency


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
