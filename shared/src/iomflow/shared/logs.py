"""Structured logs: one JSON object per line, with the trace and the event being handled.

Each line of the JSON format has ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, ``service``, and when there is one: ``trace_id`` / ``span_id`` of the current
span, ``event_id`` of the event being handled (``Consumer`` sets it around each handler, or
pass ``extra={"event_id": ...}``), a few other known ``extra`` fields (``EXTRA_FIELDS``)
and ``exception`` (the traceback text).

``IOMFLOW_LOG_FORMAT=json|text`` chooses the format (``configure``; the services' ``serve``
defaults to JSON, their admin commands to text); ``IOMFLOW_LOG_LEVEL`` the level (INFO).
Uvicorn's own loggers go through the same handler (``uvicorn_log_config``); its access
lines lose the query string and the client address, and probes of ``/health/*`` and
``/metrics`` are not logged.

No personal data: events carry pseudonymous ids only, and no log line of the plumbing
prints payload values. As a second guard the formatters hide the values that libraries put
into exception texts: pydantic's ``input_value=…`` and SQLAlchemy's ``[parameters: …]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

EVENT_ID: ContextVar[str | None] = ContextVar("iomflow_event_id", default=None)
"""The id of the event being handled in this context (set by ``event_scope``)."""

SERVICE: ContextVar[str | None] = ContextVar("iomflow_service", default=None)
"""The service this context works for (several services can share a process in tests)."""

EXTRA_FIELDS = (
    "event_id",
    "event_type",
    "stream",
    "entry_id",
    "group",
    "http_method",
    "http_path",
    "http_status",
)
"""``extra`` keys copied into a JSON line; anything else passed in ``extra`` is left out."""

QUIET_PATHS = ("/health/", "/metrics")
"""Paths whose uvicorn access lines are dropped (probes and scrapes)."""

TEXT_FORMAT = "%(asctime)s {service} %(levelname)s %(name)s: %(message)s"

_HIDDEN = "<hidden>"
_SCRUBS = (
    # pydantic: "... [type=literal_error, input_value='Иванов', input_type=str]"
    (re.compile(r"input_value=.*?(?=, input_type=)"), f"input_value={_HIDDEN}"),
    # SQLAlchemy: "[parameters: ('Иванов', ...)]" (one line, possibly long)
    (re.compile(r"\[parameters: .*?\](?=\n|$)", re.MULTILINE), f"[parameters: {_HIDDEN}]"),
    # PostgreSQL (asyncpg): "DETAIL:  Key (teacher_id)=(t-1) already exists."
    (
        re.compile(r"(Key \(.*?\)=)\(.*?\)(?= (?:already exists|is not present|conflicts))"),
        rf"\1({_HIDDEN})",
    ),
)


def scrub(text: str) -> str:
    """``text`` without the input values libraries put into their error messages."""
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def safe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, for a log line, without input values."""
    return scrub(f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def event_scope(event_id: str) -> Iterator[None]:
    """Log lines written inside carry ``event_id``."""
    token = EVENT_ID.set(event_id)
    try:
        yield
    finally:
        EVENT_ID.reset(token)


def current_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span, when there is a valid one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the fields)."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "service": getattr(record, "service", None) or SERVICE.get() or self.service,
        }
        line.update(current_ids())
        event_id = EVENT_ID.get()
        if event_id is not None:
            line["event_id"] = event_id
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = scrub(record.exc_text)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic one-line format, scrubbed like the JSON one."""

    def __init__(self, service: str = "") -> None:
        super().__init__(TEXT_FORMAT.format(service=service or "iomflow"))

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class AccessFilter(logging.Filter):
    """Uvicorn access lines: method, path without the query string, status; no client
    address; probes of ``QUIET_PATHS`` dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        _client, method, full_path, _version, status = args
        path = str(full_path).split("?", 1)[0]
        if path.startswith(QUIET_PATHS):
            return False
        record.msg = "%s %s %s"
        record.args = (method, path, status)
        record.__dict__.update(http_method=method, http_path=path, http_status=status)
        return True


class ServiceLogContext:
    """ASGI middleware: log lines written while serving a request name the service."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = SERVICE.set(self.service)
        try:
            await self.app(scope, receive, send)
        finally:
            SERVICE.reset(token)


def log_format(default: str = "json") -> str:
    value = os.environ.get("IOMFLOW_LOG_FORMAT", "").strip().lower() or default
    if value not in ("json", "text"):
        raise SystemExit(f"IOMFLOW_LOG_FORMAT must be json or text, not {value!r}")
    return value


def formatter(service: str, fmt: str) -> logging.Formatter:
    return JsonFormatter(service) if fmt == "json" else TextFormatter(service)


_configured: dict[str, str] = {}


def configure(service: str, default: str = "json", default_level: str = "INFO") -> str:
    """Send every log record of the process to stderr, in ``IOMFLOW_LOG_FORMAT`` (or
    ``default``) at ``IOMFLOW_LOG_LEVEL`` (or ``default_level``); returns the format chosen.
    Replaces the root logger's handlers."""
    fmt = log_format(default)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(service, fmt))
    level_name = (os.environ.get("IOMFLOW_LOG_LEVEL") or default_level).strip().upper()
    logging.basicConfig(level=level_name, handlers=[handler], force=True)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessFilter) for f in access.filters):
        access.addFilter(AccessFilter())
    _configured.update(service=service, format=fmt, level=level_name)
    return fmt


SERVICE_COMMANDS = (None, "serve", "migrate")


def configure_command(service: str, command: str | None) -> str:
    """Logging of a service's command line: the service itself (``serve``, ``migrate``)
    logs JSON at INFO; admin commands, run by a person, log text and only warnings (their
    output is their own printing). ``IOMFLOW_LOG_FORMAT`` / ``IOMFLOW_LOG_LEVEL`` win."""
    if command in SERVICE_COMMANDS:
        return configure(service)
    return configure(service, default="text", default_level="WARNING")


def configured() -> bool:
    return bool(_configured)


def level() -> str:
    """The level ``configure`` chose (``INFO`` before it ran)."""
    return _configured.get("level", "INFO")


def uvicorn_log_config() -> dict[str, Any]:
    """Uvicorn's ``log_config``: its loggers keep no handlers of their own and pass their
    records to the root handler ``configure`` set up (so they come out in the same format),
    at the level it chose; the access filter ``configure`` installed stays."""
    logger = {"handlers": [], "level": level(), "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: dict(logger) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }
