"""The stream entry format: plain string fields any Redis client can write and read.

An entry is::

    XADD <stream> * event_id <uuid> type <event type> version 1 source <publisher id>
                    occurred_at <ISO 8601> subject <pseudonymous id> data <payload JSON>
                    [traceparent <W3C traceparent>] [tracestate <W3C tracestate>]

FastStream's own format (a private binary blob in ``__data__``) is never written; the
``PlainFieldsFormat`` below lets FastStream read our entries and lifts ``traceparent`` into
the message headers, where its telemetry middleware looks for it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from faststream.redis.parser.message import MessageFormat
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from iomflow.shared import fielderrors
from iomflow.shared.contracts import EVENT_TYPES, Envelope, Event, event_version

TRACE_FIELDS = ("traceparent", "tracestate")
ENVELOPE_FIELDS = ("event_id", "type", "version", "source", "occurred_at", "subject", "data")


class BadEntry(Exception):
    """An entry that can never be processed: its reason goes to the dead-letter stream."""

    def __init__(self, reason: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []

    def describe(self) -> str:
        if not self.errors:
            return self.reason
        return json.dumps({"reason": self.reason, "errors": self.errors}, ensure_ascii=False)


def as_text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def text_fields(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in fields.items()}


def encode(event: Event[Any], trace: Mapping[str, str] | None = None) -> dict[str, str]:
    """Entry fields for an event (and the trace context to continue)."""
    fields = {
        "event_id": str(event.event_id),
        "type": event.type,
        "version": str(event.version),
        "source": event.source,
        "occurred_at": event.occurred_at.isoformat(),
        "subject": event.subject,
        "data": event.payload.model_dump_json(),
    }
    for key in TRACE_FIELDS:
        if trace and trace.get(key):
            fields[key] = trace[key]
    return fields


_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""A ``\u0000`` escape in JSON text (not an escaped backslash followed by ``u0000``)."""


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def loads(text: str | bytes | bytearray) -> Any:
    """JSON as the contracts take it: NaN and Infinity refused (JSON has no such numbers,
    and PostgreSQL's JSON refuses them), nesting too deep for the parser is a ValueError
    like any other bad JSON, not a RecursionError."""
    try:
        return json.loads(text, parse_constant=_constant)
    except RecursionError as exc:
        raise ValueError("JSON nested too deep") from exc


def decode(
    fields: Mapping[str, str], digests: Mapping[str, type[BaseModel]] | None = None
) -> Event[Any]:
    """Validate an entry against the envelope and its type's contract, or raise BadEntry.

    Never raises anything else: whatever an entry holds (any nesting, NUL characters, NaN,
    any size), the answer is the event or the reason it cannot be one."""
    try:
        return _decode(fields, digests or {})
    except BadEntry:
        raise
    except Exception as exc:  # e.g. RecursionError deep inside validation: still invalid
        raise BadEntry(
            "validation failed", [{"loc": [], "msg": f"{type(exc).__name__}", "type": "invalid"}]
        ) from exc


_NO_DATA: dict[str, Any] = {}


def _decode(fields: Mapping[str, str], digests: Mapping[str, type[BaseModel]]) -> Event[Any]:
    """The common case at the cost of one pydantic pass over the JSON text; anything it
    does not take goes the careful way (``_explain``), which says why. A type with a digest
    is read through it (``iomflow.shared.contracts.Digest``)."""
    type_ = fields.get("type", "")
    contract: type[BaseModel] | None = digests.get(type_) or EVENT_TYPES.get(type_)
    text = fields.get("data")
    if (
        contract is None
        or text is None
        or "NaN" in text  # pydantic's JSON would take these; JSON and PostgreSQL do not
        or "Infinity" in text
        or "\\u0000" in text  # (a raw NUL in the text is not JSON: the parser refuses it)
        or any("\x00" in value for name, value in fields.items() if name != "data")
    ):
        return _explain(fields, digests)
    try:
        envelope = Envelope.model_validate(
            {name: fields[name] for name in ENVELOPE_FIELDS if name in fields} | {"data": _NO_DATA}
        )
        if envelope.version != event_version(envelope.type):
            return _explain(fields, digests)
        payload = contract.model_validate_json(text)
    except ValidationError:
        return _explain(fields, digests)
    return Event(  # (model_construct would be slower: it runs in Python)
        event_id=envelope.event_id,
        type=envelope.type,
        version=envelope.version,
        source=envelope.source,
        occurred_at=envelope.occurred_at,
        subject=envelope.subject,
        payload=payload,
    )


def _explain(
    fields: Mapping[str, str], digests: Mapping[str, type[BaseModel]] | None = None
) -> Event[Any]:
    """Every check in turn, so a bad entry is told the first thing wrong with it."""
    missing = [name for name in ENVELOPE_FIELDS if name not in fields and name != "version"]
    if missing:
        raise BadEntry(
            "missing fields",
            [{"loc": [name], "msg": "field required", "type": "missing"} for name in missing],
        )
    nul = [name for name, value in fields.items() if "\x00" in value]
    if nul or ("\\u0000" in fields["data"] and _NUL_ESCAPE.search(fields["data"])):
        raise BadEntry(
            "NUL character",
            [
                {"loc": [name], "msg": "NUL (\\u0000) is not allowed in text", "type": "nul"}
                for name in (nul or ["data"])
            ],
        )
    try:
        data = loads(fields["data"])
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise BadEntry(
            "data is not JSON", [{"loc": ["data"], "msg": str(exc), "type": "json_invalid"}]
        ) from exc
    if not isinstance(data, dict):
        raise BadEntry(
            "data is not a JSON object",
            [{"loc": ["data"], "msg": "expected an object", "type": "dict_type"}],
        )
    contract: type[BaseModel] | None = EVENT_TYPES.get(fields["type"])
    if contract is not None and digests:
        contract = digests.get(fields["type"], contract)
    if contract is None:
        raise BadEntry(
            "unknown event type",
            [{"loc": ["type"], "msg": f"unknown type {fields['type']!r}", "type": "unknown"}],
        )
    try:
        envelope = Envelope.model_validate(
            {name: fields[name] for name in ENVELOPE_FIELDS if name in fields} | {"data": data}
        )
        version, current = envelope.version, event_version(envelope.type)
        if version != current:
            raise BadEntry(
                "unsupported version",
                [
                    {
                        "loc": ["version"],
                        "msg": f"version {version} of {envelope.type} is not "
                        f"supported (this service reads version {current})",
                        "type": "version",
                    }
                ],
            )
        payload = contract.model_validate(envelope.data)
    except ValidationError as exc:
        raise BadEntry("validation failed", validation_errors(exc)) from exc
    except ValueError as exc:
        raise BadEntry("validation failed", [{"loc": [], "msg": str(exc)}]) from exc
    return Event(
        event_id=envelope.event_id,
        type=envelope.type,
        version=envelope.version,
        source=envelope.source,
        occurred_at=envelope.occurred_at,
        subject=envelope.subject,
        payload=payload,
    )


def holds_nul(value: Any) -> bool:
    """Whether parsed JSON holds a NUL character in any string (a database refuses it: it is
    bad input, never a server error)."""
    text = json.dumps(value, ensure_ascii=False)
    return "\\u0000" in text and _NUL_ESCAPE.search(text) is not None


def validation_errors(
    exc: ValidationError, prefix: Sequence[str | int] = (), *, russian: bool = False
) -> list[dict[str, Any]]:
    """Pydantic's errors, with the offending value when it is a plain scalar (so the DLQ
    reader sees what was wrong without the whole payload); ``russian``: ``msg`` said to a
    person (an HTTP answer, ``fielderrors.in_russian``), not pydantic's English (a dead
    letter's)."""
    out = []
    for err in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "loc": [*prefix, *err["loc"]],
            "msg": fielderrors.in_russian(err) if russian else err["msg"],
            "type": err["type"],
        }
        value = err.get("input")
        if isinstance(value, float) and not math.isfinite(value):
            item["input"] = repr(value)  # JSON (and the HTTP answer) has no NaN
        elif value is None or isinstance(value, bool | int | float):
            item["input"] = value
        elif isinstance(value, str):
            item["input"] = value[:200]
        out.append(item)
    return out


class PlainFieldsFormat(MessageFormat):
    """FastStream's view of our entries: headers = trace context and ids; the body is empty
    (``{}``) for plain fields, since the consumer reads the entry's own fields from the raw
    message: turning every entry into JSON for FastStream, which decodes it again, then
    encodes and decodes the batch of them, costed more than applying a result.

    It never raises: an entry that is not ours still becomes a message, and the consumer
    decides (dead-letter) with the full reason.
    """

    __slots__ = ()

    @classmethod
    async def encode(cls, **_: Any) -> bytes:  # type: ignore[override]
        raise NotImplementedError(
            "iomflow never publishes through FastStream: the outbox relay writes plain fields"
        )

    @classmethod
    def parse(cls, data: Any) -> tuple[bytes, dict[str, Any]]:
        if isinstance(data, Mapping):
            headers: dict[str, Any] = {}
            for key in (*TRACE_FIELDS, "event_id"):
                value = data.get(key, data.get(key.encode()))
                if value is not None:
                    headers[key] = str(as_text(value))
            return b"{}", _ids(headers)
        try:
            fields = {str(k): str(v) for k, v in json.loads(data).items()}
        except Exception:
            return bytes(data) if isinstance(data, bytes | bytearray) else b"", {}
        headers = {key: fields[key] for key in (*TRACE_FIELDS, "event_id") if key in fields}
        return json.dumps(fields, ensure_ascii=False, default=str).encode(), _ids(headers)


def _ids(headers: dict[str, Any]) -> dict[str, Any]:
    """FastStream's message and correlation ids are the event id."""
    event_id = headers.pop("event_id", None)
    if event_id is not None:
        headers["message_id"] = event_id
        headers["correlation_id"] = event_id
    return headers


async def xadd_many(
    redis: Redis, entries: list[tuple[str, dict[str, str]]], *, transaction: bool = False
) -> list[str]:
    """Append entries in one pipelined round trip; never trims (unread entries must stay).

    ``transaction``: in MULTI/EXEC, so the entries are appended together or, if the
    connection fails or a command is refused before EXEC (an ACL, say), none of them.
    Redis does not roll back, so an entry refused *during* EXEC still leaves the others."""
    pipe = redis.pipeline(transaction=transaction)
    for stream, fields in entries:
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    return [as_text(entry_id) for entry_id in await pipe.execute()]
