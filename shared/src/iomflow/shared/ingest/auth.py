"""Who posts: a key of an active publisher (``Authorization: Bearer`` or ``X-API-Key``),
else 401 ``unauthenticated`` (no key) / ``invalid_key`` (unknown or revoked), audited."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import select

from iomflow.shared.auth import hash_key, presented_key
from iomflow.shared.errors import ApiError
from iomflow.shared.ingest.audit import Call
from iomflow.shared.publishers import Outcome, Publisher

UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


async def no_key(call: Call) -> ApiError:
    return await call.refuse(
        401,
        "unauthenticated",
        Outcome.UNAUTHENTICATED,
        "Нужен ключ издателя: заголовок Authorization: Bearer <ключ> или X-API-Key.",
        headers=UNAUTHENTICATED,
    )


async def invalid_key(call: Call, revoked: bool) -> ApiError:
    return await call.refuse(
        401,
        "invalid_key",
        Outcome.UNAUTHENTICATED,
        "Ключ издателя неизвестен или отозван.",
        note="ключ отозван" if revoked else "ключ неизвестен",
        headers=UNAUTHENTICATED,
    )


async def publisher_row(call: Call, key: str) -> Any:
    """The publishers' row of ``key`` (revoked or not), or None; the call knows its hint."""
    digest = hash_key(key)
    call.key_hint = digest[:12]
    t = call.tables.publishers
    async with call.runtime.sessions() as session:
        row = (await session.execute(select(t).where(t.c.key_hash == digest))).first()
    if row is not None:
        call.publisher_id = row.publisher_id  # audited as theirs, even when revoked
    return row


def publisher_of(row: Any) -> Publisher:
    return Publisher(row.publisher_id, row.name, frozenset(row.event_types), row.rate_per_minute)


async def authenticate(call: Call, request: Request) -> Publisher:
    """The active publisher of the presented key; 401 (audited) otherwise."""
    key = presented_key(request)
    if key is None:
        raise await no_key(call)
    row = await publisher_row(call, key)
    if row is None or row.revoked_at is not None:
        raise await invalid_key(call, revoked=row is not None)
    return publisher_of(row)
