"""HTTP ingestion of inbound events, for outside publishers with their own keys.

Outside systems (the testing platform, municipal services, further-education providers, the
federal portal) may post their events over HTTP instead of writing the stream:
``POST /v1/events`` with one envelope as JSON, ``POST /v1/events/batch`` with a list of them.
Each publisher has a key (shown once; only its SHA-256 is kept) and the list of event types
it may send. A request is checked in this order, and a refusal is answered with a Russian
``detail`` and a machine ``code``:

1. a key of an active publisher (``Authorization: Bearer`` or ``X-API-Key``):
   401 ``unauthenticated`` / ``invalid_key``;
2. the publisher's rate, events per minute over a sliding window counted in Redis
   (replicas share it; a batch counts each of its events): 429 ``rate_limited`` with
   ``Retry-After``. Only what is accepted uses the rate: the events of a request refused
   for any reason (the rate itself, a bad body, our stream unavailable) are given back.
   Every answer to a known publisher carries ``RateLimit-Limit``, ``RateLimit-Remaining``
   and ``RateLimit-Reset`` (seconds) and ``RateLimit-Policy``;
3. the body's size (``IOMFLOW_INGEST_MAX_BYTES``; a batch holds at most ``BATCH_MAX``):
   413 ``too_large``; JSON: 422 ``invalid_json``;
4. each event's type: one this service does not ingest at all: 422 ``type_not_ingested``;
   one it ingests but the publisher may not send: 403 ``type_not_allowed``;
5. the envelope (``contracts.Envelope``) and the payload against the contract, exactly as
   the stream consumer checks them (``wire.decode``): 422 ``invalid_event`` with ``errors``
   (``loc`` of each field; a batch's start with the event's index). ``source`` is the
   publisher's id, never taken from the body; ``version`` is by default the type's current.

A service's own intake form (diagnostics' ``POST /v1/results``, a result's payload as the
body) goes through the same door (``intake``): a publisher's key with the type — rated and
audited as here, the ``source`` its id — or an operator's key, by hand (audited, not rated).

A batch is all or nothing: its events are appended in one MULTI/EXEC. An accepted event is
appended to the inbound stream whose subscription applies its type (the service's consumer
reads it), with the request's trace context (the consumer's span continues the HTTP
request's trace), and processed like any other entry: the consumer's inbox dedupes on
``event_id``, so posting an event again is safe. Every request, accepted or refused, leaves
rows in ``ingest_audit``, written in their own transaction after the answer is decided: an
audit that fails after the append is logged (ids only), and the events are still accepted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from opentelemetry import propagate, trace
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import insert, select

from iomflow.shared import redisconn, wire
from iomflow.shared.auth import Operator, hash_key, presented, presented_key, principal_of
from iomflow.shared.contracts import EVENT_TYPES, INBOUND_TYPES, Envelope, Event, event_version
from iomflow.shared.errors import ApiError
from iomflow.shared.publishers import (
    IngestTables,
    Outcome,
    Publisher,
    list_audit,
    list_publishers,
)
from iomflow.shared.service import Runtime, RuntimeDep, SessionDep, get_runtime
from iomflow.shared.streams import Subscription

log = logging.getLogger(__name__)

WINDOW_S = 60
BATCH_MAX = 500
clock: Callable[[], float] = time.time
"""Wall clock of the rate windows (tests hold it still)."""


def rate_keys(service: str) -> str:
    """The prefix of a service's rate counters: what its Redis ACL user may touch (INCRBY —
    a refusal gives its count back with a negative one — EXPIRE and GET, in MULTI/EXEC)."""
    return f"iomflow:ratelimit:{service}:"


def rate_key(service: str, publisher_id: str, window: int) -> str:
    """The Redis counter of one publisher's window. The publisher's id is the key's hash
    tag: this window and the last one are read in one MULTI, in one slot of a Cluster."""
    return f"{rate_keys(service)}{{{publisher_id}}}:{window}"


# --- the request -----------------------------------------------------------------------------


def inbound_streams(
    subscriptions: Mapping[str, Subscription], types: Iterable[str]
) -> dict[str, str]:
    """Each of ``types`` -> the stream whose subscription applies it (``subscriptions``:
    a consumer's, stream -> subscription): where a posted event of the type is appended, so
    that the service's own consumer processes it like any other entry."""
    found: dict[str, str] = {}
    for type_ in types:
        streams = sorted(s for s, sub in subscriptions.items() if type_ in sub.handlers)
        if len(streams) != 1:
            raise LookupError(f"{type_} is applied from {streams or 'no stream'}: one expected")
        found[type_] = streams[0]
    return found


def body_schema(types: Iterable[str]) -> dict[str, Any]:
    """JSON Schema of one posted event: the contract's ``Envelope`` as a publisher posts it
    (``type`` one of ``types``, ``source`` optional, ``version`` by default the type's
    current one), with an example of each type taken from its contract."""
    types = sorted(types)
    schema = Envelope.model_json_schema()
    props = schema["properties"]
    props["type"] = {**props["type"], "description": "An event type this service ingests"}
    props["type"]["enum"] = types
    props["version"] = {
        **{k: v for k, v in props["version"].items() if k != "default"},
        "description": "Contract version of the payload; by default the type's current one",
    }
    props["source"] = {
        **props["source"],
        "description": "Optional: the publisher of the key; if given, it must be the same",
    }
    props["data"] = {
        **props["data"],
        "description": "The payload: docs/contracts/<type>.schema.json",
    }
    schema["required"] = [name for name in schema["required"] if name != "source"]
    schema["title"] = "PostedEvent"
    schema["description"] = (
        "One event as a publisher posts it: the stream entry's envelope with data as an "
        "object. source is the publisher of the key."
    )
    schema["examples"] = [
        {
            "event_id": "6f1c2a9e-1d2b-4c3d-9e8f-0a1b2c3d4e5f",
            "type": type_,
            "version": event_version(type_),
            "occurred_at": "2026-10-05T09:30:00+08:00",
            "subject": example.get("teacher_id", "t-000123"),
            "data": example,
        }
        for type_ in types
        for example in EVENT_TYPES[type_].model_json_schema().get("examples", [])[:1]
    ]
    return schema


def validate(
    item: Any, publisher_id: str, prefix: Sequence[str | int] = ()
) -> tuple[Event[Any] | None, list[dict[str, Any]]]:
    """The event a posted item is, or the errors (``loc`` under ``prefix``).

    The item is checked as JSON by the contract's ``Envelope`` (typed fields, no unknown
    ones); the stream entry it makes is then read by ``wire.decode``, the consumer's own
    check, so what is accepted here is processed there (version and payload against the
    contract)."""
    if not isinstance(item, dict):
        return None, [{"loc": list(prefix), "msg": "expected an object", "type": "dict_type"}]
    errors: list[dict[str, Any]] = []
    source = item.get("source")
    if source is not None and source != publisher_id:
        errors.append(
            {
                "loc": [*prefix, "source"],
                "msg": f"source — это издатель ключа: «{publisher_id}»",
                "type": "source_mismatch",
                "input": source if isinstance(source, str) else None,
            }
        )
    try:
        envelope = Envelope.model_validate({**item, "source": publisher_id})
    except ValidationError as exc:
        return None, errors + wire.validation_errors(exc, prefix, russian=True)
    if errors:
        return None, errors
    version = envelope.version if "version" in item else event_version(envelope.type)
    try:
        data = json.dumps(envelope.data, ensure_ascii=False, allow_nan=False)
    except (ValueError, RecursionError) as exc:
        return None, [{"loc": [*prefix, "data"], "msg": str(exc)[:200], "type": "json_invalid"}]
    entry = {
        **envelope.model_dump(mode="json", exclude={"data"}),
        "version": str(version),
        "data": data,
    }
    try:
        return wire.decode(entry), []
    except wire.BadEntry as exc:
        # The envelope has passed: what fails now is its version, or else the payload.
        under = [*prefix, "data"] if exc.reason == "validation failed" else list(prefix)
        return None, [{**err, "loc": [*under, *err.get("loc", [])]} for err in exc.errors]


@dataclass
class Rate:
    """Where a publisher stands against its rate, as the ``RateLimit-*`` headers say it."""

    limit: int
    remaining: int
    reset: int  # seconds until the current window ends

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(max(0, self.reset)),
            "RateLimit-Policy": f"{self.limit};w={WINDOW_S}",
        }


@dataclass
class _Call:
    """One ingestion request: who, from where, what it counted against the publisher's
    rate; refusals give the count back, are audited, then raised."""

    runtime: Runtime
    tables: IngestTables
    remote_addr: str | None
    key_hint: str | None = None
    publisher_id: str | None = None
    counted: list[tuple[str, int]] = field(default_factory=list)  # (rate key, events)
    rate: Rate | None = None

    def headers(self) -> dict[str, str]:
        """The rate headers of the answer (none before the publisher is known)."""
        return self.rate.headers() if self.rate is not None else {}

    async def audit(self, rows: Sequence[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        base = {
            "at": now,
            "publisher_id": self.publisher_id,
            "key_hint": self.key_hint,
            "remote_addr": (self.remote_addr or "")[:100] or None,
            "event_type": None,
            "event_id": None,
            "detail": None,
        }
        values = []
        for row in rows:
            value = {**base, **row}
            if value["event_type"] is not None:
                value["event_type"] = str(value["event_type"])[:200]
            if value["event_id"] is not None:
                value["event_id"] = str(value["event_id"])[:36]
            if value["detail"] is not None:
                value["detail"] = str(value["detail"])[:1000]
            values.append(value)
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(insert(self.tables.audit), values)

    async def refuse(
        self,
        status: int,
        code: str,
        outcome: Outcome,
        detail: str,
        *,
        note: str | None = None,
        event_type: Any = None,
        event_id: Any = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> ApiError:
        """Give back what the request counted (a refusal does not use the rate), audit the
        refusal (in its own transaction); the error to raise."""
        await _refund(self)
        await self.audit(
            [
                {
                    "outcome": outcome.value,
                    "status": status,
                    "event_type": event_type if isinstance(event_type, str) else None,
                    "event_id": event_id if isinstance(event_id, str) else None,
                    "detail": f"{code}: {note or detail}",
                }
            ]
        )
        return ApiError(
            status, code, detail, headers={**self.headers(), **(headers or {})}, **extra
        )


UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


async def _no_key(call: _Call) -> ApiError:
    return await call.refuse(
        401,
        "unauthenticated",
        Outcome.UNAUTHENTICATED,
        "Нужен ключ издателя: заголовок Authorization: Bearer <ключ> или X-API-Key.",
        headers=UNAUTHENTICATED,
    )


async def _invalid_key(call: _Call, revoked: bool) -> ApiError:
    return await call.refuse(
        401,
        "invalid_key",
        Outcome.UNAUTHENTICATED,
        "Ключ издателя неизвестен или отозван.",
        note="ключ отозван" if revoked else "ключ неизвестен",
        headers=UNAUTHENTICATED,
    )


async def _publisher_row(call: _Call, key: str) -> Any:
    """The publishers' row of ``key`` (revoked or not), or None; the call knows its hint."""
    digest = hash_key(key)
    call.key_hint = digest[:12]
    t = call.tables.publishers
    async with call.runtime.sessions() as session:
        row = (await session.execute(select(t).where(t.c.key_hash == digest))).first()
    if row is not None:
        call.publisher_id = row.publisher_id  # audited as theirs, even when revoked
    return row


def _publisher(row: Any) -> Publisher:
    return Publisher(row.publisher_id, row.name, frozenset(row.event_types), row.rate_per_minute)


async def _authenticate(call: _Call, request: Request) -> Publisher:
    key = presented_key(request)
    if key is None:
        raise await _no_key(call)
    row = await _publisher_row(call, key)
    if row is None or row.revoked_at is not None:
        raise await _invalid_key(call, revoked=row is not None)
    return _publisher(row)


def _limit(call: _Call, publisher: Publisher) -> int:
    return publisher.rate_per_minute or call.runtime.settings.ingest_rate_per_minute


async def _take(call: _Call, publisher: Publisher, count: int) -> None:
    """Count ``count`` events against the publisher's rate; 429 past its limit.

    A sliding window, estimated from two fixed ones (this minute's counter and the last
    one's, weighted by how much of it the window still covers): no twice the limit across a
    minute's boundary, two counters a publisher, one MULTI a request."""
    settings = call.runtime.settings
    limit = _limit(call, publisher)
    now = clock()
    window = int(now // WINDOW_S)
    into = now - window * WINDOW_S
    key = rate_key(settings.service, publisher.publisher_id, window)
    redis = call.runtime.redis
    try:
        pipe = redis.pipeline(transaction=True)
        pipe.incrby(key, count)
        pipe.expire(key, 2 * WINDOW_S)
        pipe.get(rate_key(settings.service, publisher.publisher_id, window - 1))
        taken, _, last = await pipe.execute()
    except RedisError as exc:
        raise await _unavailable(call, exc) from exc  # gives back what it counted before
    fading = int(last or 0) * (1 - into / WINDOW_S)  # the last minute's share still inside
    used = fading + int(taken)
    reset = math.ceil(WINDOW_S - into)
    if used <= limit:
        call.counted.append((key, count))
        call.rate = Rate(limit, math.floor(limit - used), reset)
        return
    try:
        await _give_back(redis, key, count)  # refused events do not use the window up
    except RedisError as exc:
        raise await _unavailable(call, exc) from exc
    call.rate = Rate(limit, math.floor(limit - used + count), reset)
    excess = used - limit
    if excess <= fading:  # room comes back as the last minute's events fade out
        wait = excess * WINDOW_S / int(last)
    else:  # … and then as this minute's own do, in the next one
        wait = reset + (excess - fading) * WINDOW_S / max(1, int(taken) - count)
    retry = math.ceil(round(wait, 6))  # 10.999999999 is 11 s
    retry = max(1, min(retry, 2 * WINDOW_S))
    raise await call.refuse(
        429,
        "rate_limited",
        Outcome.RATE_LIMITED,
        f"Превышен лимит: не больше {limit} событий в минуту. Повторите через {retry} с.",
        headers={"Retry-After": str(retry)},
        limit=limit,
        retry_after=retry,
    )


async def _give_back(redis: Redis, key: str, count: int) -> None:
    """Take ``count`` events off a window's counter.

    Apart from the count (it is known only after it): cancelled in between (the client
    gone), the count stays until the window's EXPIRE ends it. EXPIRE again so that a
    counter gone meanwhile does not come back without one."""
    pipe = redis.pipeline(transaction=True)
    pipe.incrby(key, -count)
    pipe.expire(key, 2 * WINDOW_S)
    await pipe.execute()


async def _refund(call: _Call) -> None:
    """Give back all the request counted: a refused request does not use the publisher's
    rate. Best effort: if Redis fails (it may just have), the count stays for the window."""
    for key, count in call.counted:
        with contextlib.suppress(RedisError):
            await _give_back(call.runtime.redis, key, count)
        if call.rate is not None:
            call.rate.remaining = min(call.rate.limit, call.rate.remaining + count)
    call.counted.clear()


async def _unavailable(call: _Call, exc: Exception) -> ApiError:
    return await call.refuse(
        503,
        "unavailable",
        Outcome.UNAVAILABLE,
        "Поток событий временно недоступен; повторите позже.",
        note=f"redis: {exc}",
        headers={"Retry-After": "5"},
    )


async def _read(call: _Call, request: Request) -> Any:
    """The body as JSON, within the size limit (declared or not)."""
    limit = call.runtime.settings.ingest_max_bytes
    declared = request.headers.get("content-length", "")
    body = bytearray()
    if not (declared.isdigit() and int(declared) > limit):
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                break
    if len(body) > limit or (declared.isdigit() and int(declared) > limit):
        raise await call.refuse(
            413,
            "too_large",
            Outcome.TOO_LARGE,
            f"Тело запроса больше {limit} байт: отправьте меньше событий за раз.",
            max_bytes=limit,
        )
    try:
        return wire.loads(body)
    except ValueError as exc:  # not JSON, not UTF-8, NaN, nested too deep
        raise await call.refuse(
            422,
            "invalid_json",
            Outcome.INVALID,
            "Тело запроса — не JSON: отправьте событие объектом JSON (UTF-8).",
            note=f"{exc}"[:200],
        ) from exc


async def _ingest(
    call: _Call,
    publisher: Publisher,
    items: list[Any],
    accepts: Sequence[str],
    batch: bool,
) -> list[dict[str, str]]:
    """Check every item, append them all or none; what was appended."""
    types = [item.get("type") if isinstance(item, dict) else None for item in items]
    ids = [item.get("event_id") if isinstance(item, dict) else None for item in items]

    def at(i: int) -> str:
        return f"событие № {i}: " if batch else ""

    def where(i: int) -> dict[str, Any]:
        return {"index": i} if batch else {}

    for i, type_ in enumerate(types):
        if isinstance(type_, str) and type_ not in accepts:
            raise await call.refuse(
                422,
                "type_not_ingested",
                Outcome.INVALID,
                f"{at(i)}этот сервис не принимает события типа «{type_[:200]}»; "
                f"принимает: {', '.join(sorted(accepts))}.",
                event_type=type_,
                event_id=ids[i],
                type=type_[:200],
                accepted=sorted(accepts),
                **where(i),
            )
    for i, type_ in enumerate(types):
        if isinstance(type_, str) and type_ not in publisher.event_types:
            raise await call.refuse(
                403,
                "type_not_allowed",
                Outcome.FORBIDDEN,
                f"{at(i)}издателю «{publisher.publisher_id}» не разрешено отправлять события "
                f"типа «{type_[:200]}»; разрешены: {', '.join(sorted(publisher.event_types))}.",
                event_type=type_,
                event_id=ids[i],
                type=type_[:200],
                allowed=sorted(publisher.event_types),
                **where(i),
            )
    events: list[Event[Any]] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        event, problems = validate(item, publisher.publisher_id, [i] if batch else [])
        errors += problems
        if event is not None:
            events.append(event)
    if errors:
        first = errors[0]["loc"][0] if batch and errors[0]["loc"] else 0
        raise await call.refuse(
            422,
            "invalid_event",
            Outcome.INVALID,
            "Событие не соответствует контракту: исправьте указанные поля и отправьте снова."
            if not batch
            else "События пакета не соответствуют контракту: исправьте указанные поля "
            "(loc начинается с номера события) и отправьте пакет снова.",
            note=json.dumps(errors[:5], ensure_ascii=False, default=str),
            event_type=types[first] if isinstance(first, int) and first < len(types) else None,
            event_id=ids[first] if isinstance(first, int) and first < len(ids) else None,
            errors=errors[:100],
        )

    inbound = inbound_streams(call.runtime.consumer.subscriptions, accepts)
    streams = sorted({inbound[e.type] for e in events})
    with call.runtime.tracer.start_as_current_span(
        f"{streams[0]} publish" if len(streams) == 1 else "ingest publish",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": "redis",
            "messaging.destination.name": ",".join(streams),
            "messaging.batch.message_count": len(events),
            "iomflow.publisher": publisher.publisher_id,
        },
    ):
        context: dict[str, str] = {}
        propagate.inject(context)  # the consumer's span continues this request's trace
        entries = [(inbound[e.type], wire.encode(e, context)) for e in events]
        try:
            entry_ids = await wire.xadd_many(call.runtime.redis, entries, transaction=True)
            # behind Sentinel: a 202 only once the replicas have them (else 503, sent again)
            settings = call.runtime.settings
            await redisconn.replicated(
                call.runtime.redis,
                settings.redis_wait_replicas,
                settings.redis_wait_timeout_ms,
                len(entries),
            )
        except RedisError as exc:
            raise await _unavailable(call, exc) from exc  # gives back what it counted
    appended = [
        {"event_id": str(e.event_id), "type": e.type, "stream": stream, "entry_id": entry_id}
        for e, (stream, _), entry_id in zip(events, entries, entry_ids, strict=True)
    ]
    try:
        await call.audit(
            [
                {
                    "outcome": Outcome.ACCEPTED.value,
                    "status": 202,
                    "event_type": a["type"],
                    "event_id": a["event_id"],
                    "detail": f"{a['stream']} {a['entry_id']}",
                }
                for a in appended
            ]
        )
    except Exception:
        # The events are on the stream: a 500 now would tell the publisher they were not.
        log.exception(
            "ingest audit failed for %d accepted events of publisher %s (they are on %s): %s",
            len(appended),
            publisher.publisher_id,
            ", ".join(streams),
            ", ".join(f"{a['event_id']} ({a['entry_id']})" for a in appended),
        )
    return appended


# --- a service's own intake form ------------------------------------------------------------


@dataclass
class Intake:
    """Who submits through a service's own intake form, and that door's bookkeeping: a
    publisher (``source`` its id; rated and audited as ``POST /v1/events``) or an operator
    by hand (``source`` None: the body's, or the operator's; audited, not rated)."""

    call: _Call
    event_type: str
    source: str | None
    operator: str | None = None

    def headers(self) -> dict[str, str]:
        """The rate headers of the answer (a publisher's)."""
        return self.call.headers()

    async def read(self, request: Request) -> Any:
        """The body as JSON within the size limit; 413/422 (audited) otherwise."""
        return await _read(self.call, request)

    def _by(self) -> str:
        return f"оператор {self.operator}" if self.operator else f"издатель {self.source}"

    async def refuse(
        self, status: int, code: str, detail: str, *, event_id: Any = None, **extra: Any
    ) -> ApiError:
        """Audit a refusal of the submission (given back to the rate); the error to raise."""
        return await self.call.refuse(
            status,
            code,
            Outcome.INVALID if status in (409, 422) else Outcome.FORBIDDEN,
            detail,
            note=f"{self._by()}: {detail}",
            event_type=self.event_type,
            event_id=event_id,
            **extra,
        )

    async def accepted(self, event_id: str, detail: str) -> None:
        """Audit an accepted submission. Its effect is committed: a failed audit is logged,
        the answer stands."""
        try:
            await self.call.audit(
                [
                    {
                        "outcome": Outcome.ACCEPTED.value,
                        "status": 202,
                        "event_type": self.event_type,
                        "event_id": event_id,
                        "detail": f"{self._by()}: {detail}",
                    }
                ]
            )
        except Exception:
            log.exception("ingest audit failed for accepted %s %s", self.event_type, event_id)


async def intake(request: Request, tables: IngestTables, event_type: str) -> Intake:
    """The caller of a service's own intake form for ``event_type``: a publisher's key that
    may send the type (counted against its rate), or an operator's key; 401/403/429, audited,
    otherwise."""
    runtime = get_runtime(request)
    call = _Call(runtime, tables, request.client.host if request.client else None)
    key = presented_key(request)
    if key is None:
        raise await _no_key(call)
    row = await _publisher_row(call, key)
    if row is not None:
        if row.revoked_at is not None:
            raise await _invalid_key(call, revoked=True)
        publisher = _publisher(row)
        if event_type not in publisher.event_types:
            raise await call.refuse(
                403,
                "type_not_allowed",
                Outcome.FORBIDDEN,
                f"издателю «{publisher.publisher_id}» не разрешено отправлять события типа "
                f"«{event_type}»; разрешены: {', '.join(sorted(publisher.event_types))}.",
                event_type=event_type,
                type=event_type,
                allowed=sorted(publisher.event_types),
            )
        await _take(call, publisher, 1)
        return Intake(call, event_type, publisher.publisher_id)
    principal = await principal_of(request, key)
    if principal is None:
        raise await _invalid_key(call, revoked=False)
    if not principal.holds("operator"):
        raise await call.refuse(
            403,
            "forbidden",
            Outcome.FORBIDDEN,
            "Отправить результат вручную может оператор (роль «operator») или издатель "
            "со своим ключом.",
            note=f"ключ «{principal.name}» без роли operator",
            event_type=event_type,
            role="operator",
        )
    return Intake(call, event_type, None, operator=principal.name)


ERRORS = {
    401: {"description": "No key, or a key unknown or revoked (unauthenticated, invalid_key)"},
    403: {"description": "The publisher may not send this type (type_not_allowed)"},
    413: {"description": "The body or the batch is too large (too_large)"},
    422: {"description": "invalid_json, type_not_ingested, invalid_event (with errors)"},
    429: {
        "description": "Over the publisher's events per minute (rate_limited, Retry-After); "
        "every answer to a known publisher has RateLimit-Limit, -Remaining, -Reset, -Policy"
    },
    503: {"description": "The stream is unavailable for a moment (unavailable, Retry-After)"},
}


def ingestion_router(tables: IngestTables, accepts: Iterable[str]) -> APIRouter:
    """``POST /v1/events`` (and ``/v1/events/batch``) for the inbound event types
    ``accepts``, each appended to the stream whose subscription applies it (the service's
    consumer reads it); ``GET /v1/ingest/audit`` and ``/v1/ingest/publishers`` for
    operators."""
    types = sorted(set(accepts))
    unknown = sorted(set(types) - set(INBOUND_TYPES))
    if unknown:
        raise ValueError(f"not inbound event types: {unknown}")
    router = APIRouter(prefix="/v1", tags=["ingestion"])
    one = body_schema(types)
    kinds = ", ".join(types)

    def start(request: Request) -> _Call:
        return _Call(get_runtime(request), tables, request.client.host if request.client else None)

    @router.post(
        "/events",
        status_code=202,
        summary="Post one inbound event (publishers)",
        dependencies=[Depends(presented)],  # the key is a publisher's: read by _authenticate
        description=f"Types: {kinds}. The payload schemas are docs/contracts/<type>.schema.json."
        " Answers 202 with the stream entry; the event is then processed like any other.",
        responses=ERRORS,  # type: ignore[arg-type]
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": one}}}
        },
    )
    async def post_event(request: Request, response: Response) -> dict[str, Any]:
        call = start(request)
        publisher = await _authenticate(call, request)
        await _take(call, publisher, 1)
        body = await _read(call, request)
        [accepted] = await _ingest(call, publisher, [body], types, batch=False)
        response.headers.update(call.headers())
        return {**accepted, "source": publisher.publisher_id}

    @router.post(
        "/events/batch",
        status_code=202,
        summary="Post a batch of inbound events, all or none (publishers)",
        dependencies=[Depends(presented)],
        description=f"A JSON array of at most {BATCH_MAX} events of types {kinds}. Each "
        "counts against the publisher's rate; any refusal refuses the whole batch.",
        responses=ERRORS,  # type: ignore[arg-type]
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": one, "maxItems": BATCH_MAX}
                    }
                },
            }
        },
    )
    async def post_batch(request: Request, response: Response) -> dict[str, Any]:
        call = start(request)
        publisher = await _authenticate(call, request)
        await _take(call, publisher, 1)
        body = await _read(call, request)
        if not isinstance(body, list) or not body:
            raise await call.refuse(
                422,
                "invalid_event",
                Outcome.INVALID,
                "Пакет — непустой массив JSON событий.",
                errors=[{"loc": [], "msg": "expected a non-empty array", "type": "list_type"}],
            )
        if len(body) > BATCH_MAX:
            raise await call.refuse(
                413,
                "too_large",
                Outcome.TOO_LARGE,
                f"В пакете {len(body)} событий, а можно не больше {BATCH_MAX}.",
                max_events=BATCH_MAX,
            )
        if len(body) > _limit(call, publisher):
            raise await call.refuse(
                413,
                "too_large",
                Outcome.TOO_LARGE,
                f"В пакете {len(body)} событий, а издателю разрешено не больше "
                f"{_limit(call, publisher)} в минуту: разделите пакет.",
                limit=_limit(call, publisher),
            )
        if len(body) > 1:
            await _take(call, publisher, len(body) - 1)  # the request counted the first
        accepted = await _ingest(call, publisher, body, types, batch=True)
        response.headers.update(call.headers())
        return {"accepted": len(accepted), "source": publisher.publisher_id, "events": accepted}

    @router.get("/ingest/audit", summary="Ingestion audit: who sent what, and the answer")
    async def audit(
        _: Operator,
        session: SessionDep,
        outcome: Outcome | None = None,
        publisher_id: str | None = None,
        before: Annotated[int | None, Query(description="Rows older than this id")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        rows = await list_audit(
            session,
            tables,
            outcome=outcome.value if outcome else None,
            publisher_id=publisher_id,
            before=before,
            limit=limit,
        )
        return [{**row, "at": row["at"].isoformat()} for row in rows]

    @router.get("/ingest/publishers", summary="Publishers, their types and rates (no keys)")
    async def publishers(
        _: Operator, session: SessionDep, runtime: RuntimeDep
    ) -> list[dict[str, Any]]:
        default = runtime.settings.ingest_rate_per_minute
        return [
            {
                **row,
                "event_types": sorted(row["event_types"]),
                "effective_rate_per_minute": row["rate_per_minute"] or default,
                "created_at": row["created_at"].isoformat(),
                "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
            }
            for row in await list_publishers(session, tables)
        ]

    return router
