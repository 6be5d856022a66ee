"""The operator's console: one page in Russian and the JSON it reads, served by monitoring.

``GET /console`` is a hand-written page (``static/console.html``, its script and style
sheet under ``/console/assets/``) on the pages' foundation (``iomflow.shared.signin``: the
session cookie, ``/ui/assets/iomflow.js``). It shows, and lets an operator act on:

- each stream and consumer group: length, lag, pending and dead letters
  (``GET /v1/ops/streams``, ``iomflow.shared.ops.stream_stats``);
- the dead letters by reason, each replayed onto its stream or dropped
  (``/v1/ops/dead-letters…``, ``iomflow.shared.deadletters``, the core of ``iomflow dlq``);
- the open alerts, each acknowledged — who and when (``POST /v1/ops/alerts/{id}/acknowledge``);
- a diagnosis's (a teacher's, an event's) traces across the services
  (``GET /v1/ops/traces?id=``), read from the span files of ``traces_dir``.

Everything under ``/v1/ops`` takes the operator role. Redis is reached as the operator's user
(``ops_redis_url``; default the service's own URL): the service's own user may read only
the streams it consumes. The dead-letter core is blocking, so it runs in a thread with a
client of its own, built per request (a console asks rarely).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response
from redis.exceptions import NoPermissionError, RedisError

from iomflow.monitoring import schemas, service
from iomflow.monitoring.settings import Settings
from iomflow.shared import deadletters, ops, redisconn, signin
from iomflow.shared.auth import Operator
from iomflow.shared.contracts import Streams
from iomflow.shared.errors import ApiError
from iomflow.shared.problems import DESCRIPTIONS, problems
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter()

FILES = signin.Files(
    "iomflow.monitoring", {"console.js": signin.SCRIPT, "console.css": signin.STYLE}
)

ERROR_SHOWN = 2000
"""Characters of a letter's error in the list (the whole of it: ``GET …/{id}``)."""
TRACES_SHOWN = 20
"""Traces of one id in the trace view: the latest."""


@router.get(
    "/console",
    summary="The operator's console (HTML, in Russian): streams, dead letters, alerts, traces",
    response_class=HTMLResponse,
    responses={200: {"description": "The page (HTML)"}},
    tags=["console"],
)
async def page() -> Response:
    return FILES.page("console.html")


@router.get("/console/assets/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    return FILES.asset(name)


# --- Redis as the operator ---------------------------------------------------------------


def _settings(runtime: Any) -> Settings:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    return settings


def _ops_url(runtime: Any) -> str:
    settings = _settings(runtime)
    return settings.ops_redis_url or settings.redis_url


FORBIDDEN = (
    "Пользователю Redis сервиса мониторинга это не разрешено: укажите пользователя "
    "оператора (iomflow-operator) в настройке IOMFLOW_OPS_REDIS_URL."
)
UNREACHABLE = "Redis не отвечает: данные потоков сейчас недоступны, повторите позже."

REDIS_DOWN = "Redis не отвечает (code: redis_unavailable)"
OPERATOR = {"s403": DESCRIPTIONS[403] + "; redis_forbidden"}
"""The 403 of every /v1/ops operation: the role's, and the Redis user's (``FORBIDDEN``)."""
NO_STREAM = "Нет такого потока (code: unknown_stream)"
NO_LETTER = "Нет такой записи в очереди (code: unknown_stream, letter_not_found)"
AMBIGUOUS = "Запись есть в нескольких очередях (code: letter_ambiguous)"


@contextlib.contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except NoPermissionError:
        raise ApiError(403, "redis_forbidden", FORBIDDEN) from None
    except (RedisError, OSError):
        raise ApiError(503, "redis_unavailable", UNREACHABLE) from None


@contextlib.asynccontextmanager
async def _async_redis(runtime: Any) -> AsyncIterator[Any]:
    client = redisconn.async_client(_ops_url(runtime), socket_connect_timeout=5)
    try:
        with _redis_errors():
            yield client
    finally:
        await client.aclose()


async def _blocking(runtime: Any, job: Any, *args: Any) -> Any:
    """``job(client, *args)`` in a thread, with a blocking client of the operator's Redis."""

    def run() -> Any:
        client: redis.Redis = redisconn.sync_client(
            _ops_url(runtime), socket_connect_timeout=5, socket_timeout=30
        )
        try:
            return job(client, *args)
        finally:
            client.close()

    with _redis_errors():
        return await asyncio.to_thread(run)


def _streams(client: redis.Redis, name: str | None) -> list[str]:
    try:
        return deadletters.resolve(client, name)
    except deadletters.UnknownStream as exc:
        raise ApiError(404, "unknown_stream", str(exc)) from None


# --- streams -----------------------------------------------------------------------------


@router.get(
    "/v1/ops/streams",
    summary="Each stream and consumer group: length, lag, pending, dead letters (operator)",
    tags=["operations"],
    response_model=schemas.StreamsRead,
    responses=problems(403, 503, s503=REDIS_DOWN, **OPERATOR),
)
async def streams(runtime: RuntimeDep, _who: Operator) -> dict[str, Any]:
    async with _async_redis(runtime) as client:
        stats = await ops.stream_stats(client)
    return {
        "streams": [{**asdict(s), "dlq": Streams.dlq(s.stream)} for s in stats],
        "at": datetime.now(UTC).isoformat(),
    }


# --- dead letters ------------------------------------------------------------------------


def _described(letter: deadletters.Letter) -> dict[str, Any]:
    error = letter.fields.get("dlq_error", "")
    return {
        **letter.summary(),
        "error": error[:ERROR_SHOWN],
        "error_cut": len(error) > ERROR_SHOWN,
    }


StreamQuery = Annotated[
    str | None,
    Query(
        description="A stream or its DLQ by full name, or an unambiguous part of a suite "
        "stream's name (as for iomflow dlq); default every stream of the suite"
    ),
]


@router.get(
    "/v1/ops/dead-letters",
    summary="Dead letters per stream: how many, by reason, and the first ones (operator)",
    tags=["operations"],
    response_model=schemas.DeadLettersRead,
    responses=problems(403, 404, 503, s404=NO_STREAM, s503=REDIS_DOWN, **OPERATOR),
)
async def list_dead_letters(
    runtime: RuntimeDep,
    _who: Operator,
    stream: StreamQuery = None,
    reason: Annotated[str | None, Query(description="Only letters of this reason")] = None,
    group: Annotated[str | None, Query(description="Only letters of this group")] = None,
    limit: Annotated[int, Query(ge=0, le=deadletters.SCAN_LIMIT)] = 200,
) -> dict[str, Any]:
    def job(client: redis.Redis) -> list[dict[str, Any]]:
        return deadletters.listing(
            client,
            _streams(client, stream),
            reason=reason,
            group=group,
            limit=limit,
            describe=_described,
        )

    return {"dlqs": await _blocking(runtime, job), "scan_limit": deadletters.SCAN_LIMIT}


LetterId = Annotated[
    str,
    Path(
        pattern=r"^[0-9]{1,19}-[0-9]{1,19}$",  # two 64-bit numbers, as Redis has them
        max_length=60,
        description="The letter's entry id in its DLQ (1700000000000-0)",
    ),
]


def _one(client: redis.Redis, stream: str | None, letter_id: str) -> deadletters.Letter:
    if not deadletters.valid_id(letter_id):
        raise ApiError(
            422,
            "invalid_letter_id",
            f"«{letter_id}» — не идентификатор записи потока (ожидается вид 1700000000000-0).",
        )
    streams = _streams(client, stream)
    found = deadletters.find(client, streams, letter_id)
    if not found:
        where = f"в {Streams.dlq(streams[0])}" if len(streams) == 1 else "ни в одной очереди"
        raise ApiError(
            404,
            "letter_not_found",
            f"Недоставленная запись {letter_id} не найдена {where}: её уже вернули в поток "
            "или удалили.",
        )
    if len(found) > 1:
        raise ApiError(
            409,
            "letter_ambiguous",
            f"Запись {letter_id} есть в нескольких очередях "
            f"({', '.join(x.dlq for x in found)}): укажите поток (stream).",
        )
    return found[0]


@router.get(
    "/v1/ops/dead-letters/{letter_id}",
    summary="One dead letter: its error, envelope and data (operator)",
    tags=["operations"],
    response_model=schemas.LetterFullRead,
    responses=problems(
        403, 404, 409, 503, s404=NO_LETTER, s409=AMBIGUOUS, s503=REDIS_DOWN, **OPERATOR
    ),
)
async def show_dead_letter(
    letter_id: LetterId, runtime: RuntimeDep, _who: Operator, stream: StreamQuery = None
) -> dict[str, Any]:
    def job(client: redis.Redis) -> dict[str, Any]:
        return _one(client, stream, letter_id).full()

    return await _blocking(runtime, job)  # type: ignore[no-any-return]


@router.post(
    "/v1/ops/dead-letters/{letter_id}/replay",
    summary="Put a dead letter back on its stream (same event id) and delete it (operator)",
    description="Atomic (as ``iomflow dlq replay``): the stream gets the original entry and "
    "the letter is deleted in one transaction, or neither. Every consumer group of the "
    "stream receives it again; a group that had applied it already drops it as a duplicate. "
    "The other letters of the same event in that queue (other groups dead-lettered it too) "
    "go with it, as one entry (``also``).",
    tags=["operations"],
    response_model=schemas.ReplayedRead,
    responses=problems(
        403,
        404,
        409,
        503,
        **OPERATOR,
        s404=NO_LETTER,
        s409=AMBIGUOUS + "; dlq_busy: очередь меняется",
        s503=REDIS_DOWN,
    ),
)
async def replay_dead_letter(
    letter_id: LetterId, runtime: RuntimeDep, _who: Operator, stream: StreamQuery = None
) -> dict[str, Any]:
    def job(client: redis.Redis) -> dict[str, Any]:
        letter = _one(client, stream, letter_id)
        batch = deadletters.same_event(client, letter)
        try:
            added = deadletters.replay_one(client, batch)
        except deadletters.StillChanging as exc:
            raise ApiError(409, "dlq_busy", f"{exc}; повторите.") from None
        if added is None:
            raise ApiError(
                404,
                "letter_not_found",
                f"Недоставленная запись {letter_id} уже убрана из {letter.dlq} другим.",
            )
        return {
            "id": letter.id,
            "also": [x.id for x in batch[1:]],
            "dlq": letter.dlq,
            "stream": letter.stream,
            "entry_id": added,
            "event_id": letter.event_id,
            "groups": deadletters.groups_of(client, letter.stream),
        }

    return await _blocking(runtime, job)  # type: ignore[no-any-return]


@router.delete(
    "/v1/ops/dead-letters/{letter_id}",
    summary="Delete a dead letter for good, without putting it back (operator)",
    status_code=204,
    response_class=Response,
    tags=["operations"],
    responses=problems(
        403, 404, 409, 503, s404=NO_LETTER, s409=AMBIGUOUS, s503=REDIS_DOWN, **OPERATOR
    ),
)
async def drop_dead_letter(
    letter_id: LetterId, runtime: RuntimeDep, _who: Operator, stream: StreamQuery = None
) -> Response:
    def job(client: redis.Redis) -> None:
        letter = _one(client, stream, letter_id)
        [(_, deleted)] = list(deadletters.drop(client, [letter]))
        if not deleted:
            raise ApiError(
                404,
                "letter_not_found",
                f"Недоставленная запись {letter_id} уже убрана из {letter.dlq} другим.",
            )

    await _blocking(runtime, job)
    return Response(status_code=204)


# --- alerts ------------------------------------------------------------------------------


@router.post(
    "/v1/ops/alerts/{alert_id:path}/acknowledge",
    summary="Acknowledge an open alert: who saw it and when (operator)",
    description="The first acknowledgement holds (acknowledging again changes nothing); an "
    "alert raised again after it was resolved is unacknowledged.",
    tags=["operations"],
    response_model=schemas.AlertRead,
    responses=problems(
        403, 404, s404="Нет такого открытого оповещения (code: alert_not_found)", **OPERATOR
    ),
)
async def acknowledge_alert(
    alert_id: str, runtime: RuntimeDep, session: SessionDep, who: Operator
) -> dict[str, Any]:
    return await service.acknowledge(runtime, session, alert_id, who.name)


# --- traces ------------------------------------------------------------------------------


def _span_read(span: ops.Span, depth: int, t0: int) -> dict[str, Any]:
    attributes = span.get("attributes") or {}
    start, end = int(span["start_ns"]), int(span["end_ns"])
    return {
        "span_id": span.get("span_id"),
        "parent_id": span.get("parent_id"),
        "depth": depth,
        "service": span.get("service"),
        "name": span.get("name"),
        "kind": span.get("kind"),
        "status": span.get("status"),
        "offset_ms": round((start - t0) / 1e6, 3),
        "duration_ms": round((end - start) / 1e6, 3),
        "event_type": attributes.get("iomflow.event.type"),
        "group": attributes.get("messaging.consumer.group.name"),
        "diagnosis_id": attributes.get("iomflow.diagnosis_id"),
        "attributes": attributes,
    }


def traces_of(traces_dir: FilePath, ident: str, *, sql: bool = False) -> list[dict[str, Any]]:
    """The latest ``TRACES_SHOWN`` traces that mention ``ident``, oldest first, each as its
    spans in tree order (``iomflow.shared.ops.tree``, as ``iomflow trace`` prints them)."""
    out = []
    for trace_id, spans in ops.by_trace(ops.spans_from_files(traces_dir, ident))[-TRACES_SHOWN:]:
        t0 = min(int(s["start_ns"]) for s in spans)
        end = max(int(s["end_ns"]) for s in spans)
        out.append(
            {
                "trace_id": trace_id,
                "started_at": datetime.fromtimestamp(t0 / 1e9, UTC).isoformat(),
                "duration_ms": round((end - t0) / 1e6, 3),
                "services": sorted({str(s.get("service")) for s in spans}),
                "errors": sum(1 for s in spans if s.get("status") == "ERROR"),
                "spans": [_span_read(s, depth, t0) for s, depth in ops.tree(spans, sql=sql)],
            }
        )
    return out


@router.get(
    "/v1/ops/traces",
    summary="The traces of a diagnosis, teacher, event or trace id across services (operator)",
    description="Read from the span files the services write under ``traces_dir`` "
    "(``<service>.jsonl``); a span's trace id and attribute values are searched. With "
    "``traces_query_url`` set (spans go to a collector) the answer is 501 for now.",
    tags=["operations"],
    response_model=schemas.TracesRead,
    responses=problems(
        403,
        501,
        503,
        **OPERATOR,
        s501="Трассы настроено читать из коллектора — консоль этого пока не умеет "
        "(code: traces_source_unsupported)",
        s503="Каталога файлов спанов нет (code: traces_unavailable)",
    ),
)
async def traces(
    runtime: RuntimeDep,
    _who: Operator,
    id: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="A diagnosis id, a teacher id, an event id or a trace id",
        ),
    ],
    sql: Annotated[bool, Query(description="Also the SQL statements' spans")] = False,
) -> dict[str, Any]:
    settings = _settings(runtime)
    ident = id.strip()
    if settings.traces_query_url:
        raise ApiError(
            501,
            "traces_source_unsupported",
            "Трассы настроено читать из хранилища коллектора (IOMFLOW_TRACES_QUERY_URL), а "
            "это консоль пока не умеет: уберите настройку, чтобы читать файлы спанов, или "
            "используйте iomflow trace --jaeger.",
        )
    folder = settings.traces_dir
    if folder is None or not await asyncio.to_thread(FilePath(folder).is_dir):
        raise ApiError(
            503,
            "traces_unavailable",
            "Файлов спанов нет: сервисы пишут их в каталог IOMFLOW_TRACES_DIR, когда "
            "OTLP-коллектор не настроен; укажите этот каталог сервису мониторинга.",
        )
    found = await asyncio.to_thread(traces_of, FilePath(folder), ident, sql=sql)
    return {"id": ident, "source": "files", "traces": found}
