"""The ingestion routes: ``POST /v1/events`` and ``/v1/events/batch`` for publishers,
``GET /v1/ingest/audit`` and ``/v1/ingest/publishers`` for operators.

A request is checked key (``auth``), rate (``ratelimit``), body and events (``validation``);
then its events are appended all or none (one MULTI/EXEC) to the inbound stream whose
subscription applies their type, with the request's trace context, and audited (``audit``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from opentelemetry import propagate, trace
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from iomflow.shared import redisconn, wire
from iomflow.shared.auth import Operator, presented
from iomflow.shared.contracts import INBOUND_TYPES, Event
from iomflow.shared.ingest.audit import Call
from iomflow.shared.ingest.auth import authenticate
from iomflow.shared.ingest.ratelimit import limit_of, take
from iomflow.shared.ingest.validation import (
    BATCH_MAX,
    body_schema,
    check,
    inbound_streams,
    read_body,
)
from iomflow.shared.problems import Page, Paging, UtcDatetime, page, paging, problems
from iomflow.shared.publishers import (
    IngestTables,
    Outcome,
    Publisher,
    count_audit,
    list_audit,
    list_publishers,
)
from iomflow.shared.service import RuntimeDep, SessionDep, get_runtime

log = logging.getLogger(__name__)

ERRORS = problems(
    401,
    403,
    413,
    422,
    429,
    503,
    s401="Ключа нет, он неизвестен или отозван (code: unauthenticated, invalid_key)",
    s403="Издателю не разрешён этот тип событий (code: type_not_allowed)",
    s413="Тело или пакет слишком велики (code: too_large)",
    s422="invalid_json, type_not_ingested, invalid_event (с errors), validation_error",
    s429="Превышен лимит событий в минуту (code: rate_limited, Retry-After); каждый ответ "
    "известному издателю несёт RateLimit-Limit, -Remaining, -Reset, -Policy",
    s503="Поток событий временно недоступен (code: unavailable, Retry-After)",
)
"""``responses=`` of an operation that ingests (``POST /v1/events``, a service's intake form)."""


class Appended(BaseModel):
    """An accepted event, as appended to its inbound stream."""

    event_id: str = Field(description="The event's id (the consumer dedupes on it)")
    type: str = Field(description="The event type")
    stream: str = Field(description="The inbound stream it was appended to")
    entry_id: str = Field(description="Its Redis stream entry id")


class AcceptedEvent(Appended):
    """``POST /v1/events``: the event accepted, from its publisher."""

    source: str = Field(description="The publisher of the key: the event's source")


class AcceptedBatch(BaseModel):
    """``POST /v1/events/batch``: every event of the batch accepted."""

    accepted: int = Field(ge=1, description="How many events were appended")
    source: str = Field(description="The publisher of the key: the events' source")
    events: list[Appended]


class IngestAuditRead(BaseModel):
    """One row of the ingestion audit: an event posted (or a refused request) and its answer."""

    id: int
    at: UtcDatetime
    publisher_id: str | None = Field(description="The publisher of the key, if known")
    key_hint: str | None = Field(description="First 12 hex digits of the key's SHA-256")
    remote_addr: str | None
    event_type: str | None
    event_id: str | None
    outcome: Outcome
    status: int = Field(description="The HTTP status answered")
    detail: str | None = Field(description="code: what happened")


class PublisherRead(BaseModel):
    """A publisher of inbound events (never its key)."""

    publisher_id: str = Field(description="The events' source")
    name: str
    event_types: list[str] = Field(description="The event types it may post")
    rate_per_minute: int | None = Field(description="Its own rate; null: the service's default")
    effective_rate_per_minute: int = Field(description="The rate that applies")
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None


async def append(
    call: Call, publisher: Publisher, events: list[Event[Any]], accepts: Iterable[str]
) -> list[Appended]:
    """Append checked events all or none, each to the stream that applies its type; audit
    them. A failed audit after the append is logged (ids only): the events stand."""
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
            raise await call.unavailable(exc) from exc  # gives back what it counted
    appended = [
        Appended(event_id=str(e.event_id), type=e.type, stream=stream, entry_id=entry_id)
        for e, (stream, _), entry_id in zip(events, entries, entry_ids, strict=True)
    ]
    try:
        await call.audit(
            [
                {
                    "outcome": Outcome.ACCEPTED.value,
                    "status": 202,
                    "event_type": a.type,
                    "event_id": a.event_id,
                    "detail": f"{a.stream} {a.entry_id}",
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
            ", ".join(f"{a.event_id} ({a.entry_id})" for a in appended),
        )
    return appended


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

    def start(request: Request) -> Call:
        return Call(get_runtime(request), tables, request.client.host if request.client else None)

    @router.post(
        "/events",
        status_code=202,
        response_model=AcceptedEvent,
        summary="Post one inbound event (publishers)",
        dependencies=[Depends(presented)],  # the key is a publisher's: read by authenticate
        description=f"Types: {kinds}. The payload schemas are docs/contracts/<type>.schema.json."
        " Answers 202 with the stream entry; the event is then processed like any other.",
        responses=ERRORS,  # type: ignore[arg-type]
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": one}}}
        },
    )
    async def post_event(request: Request, response: Response) -> AcceptedEvent:
        call = start(request)
        publisher = await authenticate(call, request)
        await take(call, publisher, 1)
        body = await read_body(call, request)
        events = await check(call, publisher, [body], types, batch=False)
        [accepted] = await append(call, publisher, events, types)
        response.headers.update(call.headers())
        return AcceptedEvent(**accepted.model_dump(), source=publisher.publisher_id)

    @router.post(
        "/events/batch",
        status_code=202,
        response_model=AcceptedBatch,
        summary="Post a batch of inbound events, all or none (publishers)",
        dependencies=[Depends(presented)],
        description=f"A JSON array of at most {BATCH_MAX} events of types {kinds} (more: "
        "413). Each counts against the publisher's rate; any refusal refuses the whole batch.",
        responses=ERRORS,  # type: ignore[arg-type]
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        # no maxItems: a longer batch is the documented 413 (too_large)
                        "schema": {"type": "array", "items": one}
                    }
                },
            }
        },
    )
    async def post_batch(request: Request, response: Response) -> AcceptedBatch:
        call = start(request)
        publisher = await authenticate(call, request)
        await take(call, publisher, 1)
        body = await read_body(call, request)
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
        limit = limit_of(call, publisher)
        if len(body) > limit:
            raise await call.refuse(
                413,
                "too_large",
                Outcome.TOO_LARGE,
                f"В пакете {len(body)} событий, а издателю разрешено не больше "
                f"{limit} в минуту: разделите пакет.",
                limit=limit,
            )
        if len(body) > 1:
            await take(call, publisher, len(body) - 1)  # the request counted the first
        events = await check(call, publisher, body, types, batch=True)
        accepted = await append(call, publisher, events, types)
        response.headers.update(call.headers())
        return AcceptedBatch(accepted=len(accepted), source=publisher.publisher_id, events=accepted)

    @router.get(
        "/ingest/audit",
        response_model=Page[IngestAuditRead],
        summary="Ingestion audit: who sent what, and the answer (newest first)",
    )
    async def audit(
        _: Operator,
        session: SessionDep,
        paged: Annotated[Paging, Depends(paging())],
        outcome: Outcome | None = None,
        publisher_id: Annotated[str | None, Query(max_length=100)] = None,
        before: Annotated[
            int | None, Query(ge=1, le=2**63 - 1, description="Only rows older than this id")
        ] = None,
    ) -> Page[IngestAuditRead]:
        filters: dict[str, Any] = {
            "outcome": outcome.value if outcome else None,
            "publisher_id": publisher_id,
            "before": before,
        }
        rows = await list_audit(session, tables, **filters, offset=paged.offset, limit=paged.limit)
        total = await count_audit(session, tables, **filters)
        return page([IngestAuditRead.model_validate(row) for row in rows], total, paged)

    @router.get(
        "/ingest/publishers",
        response_model=list[PublisherRead],
        summary="Publishers, their types and rates (no keys)",
    )
    async def publishers(
        _: Operator, session: SessionDep, runtime: RuntimeDep
    ) -> list[PublisherRead]:
        default = runtime.settings.ingest_rate_per_minute
        return [
            PublisherRead(
                **{**row, "event_types": sorted(row["event_types"])},
                effective_rate_per_minute=row["rate_per_minute"] or default,
            )
            for row in await list_publishers(session, tables)
        ]

    return router
