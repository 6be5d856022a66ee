"""What a posted event must be, checked in this order after the key and the rate:

1. the body's size (``IOMFLOW_INGEST_MAX_BYTES``; a batch holds at most ``BATCH_MAX``):
   413 ``too_large``; JSON: 422 ``invalid_json``;
2. each event's type: one this service does not ingest at all: 422 ``type_not_ingested``;
   one it ingests but the publisher may not send: 403 ``type_not_allowed``;
3. the envelope (``contracts.Envelope``) and the payload against the contract, exactly as
   the stream consumer checks them (``wire.decode``): 422 ``invalid_event`` with ``errors``
   (``loc`` of each field; a batch's start with the event's index). ``source`` is the
   publisher's id, never taken from the body; ``version`` is by default the type's current.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from iomflow.shared import wire
from iomflow.shared.contracts import EVENT_TYPES, Envelope, Event, event_version
from iomflow.shared.ingest.audit import Call
from iomflow.shared.publishers import Outcome, Publisher
from iomflow.shared.streams import Subscription

BATCH_MAX = 500


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
        "anyOf": [props["source"], {"type": "null"}],
        "description": "Optional (null is absent): the publisher of the key; if given, it "
        "must be the same",
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


async def read_body(call: Call, request: Request) -> Any:
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


async def check(
    call: Call,
    publisher: Publisher,
    items: list[Any],
    accepts: Sequence[str],
    batch: bool,
) -> list[Event[Any]]:
    """The events of the posted ``items``, every one checked (types, envelope,
    payload); the first refusal, audited, otherwise."""
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
    return events
