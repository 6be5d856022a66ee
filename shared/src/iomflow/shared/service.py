"""The host every service runs in: one FastAPI app that also runs the stream machinery.

``create_service_app(spec, settings)`` is each service's composition root helper: it builds
the engine, Redis clients, the FastStream broker with its telemetry middleware, the consumer
and the outbox relay, and the HTTP app with health, AsyncAPI and docs routes (the docs
pages from files of this package, ``iomflow.shared.apidocs``). Nothing
connects until the app starts (its lifespan), nothing is built at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from faststream.redis import RedisBroker
from faststream.redis.opentelemetry import RedisTelemetryMiddleware
from faststream.specification import AsyncAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from iomflow.shared import (
    apidocs,
    db,
    fielderrors,
    inbox,
    logs,
    migrations,
    problems,
    redisconn,
    signin,
)
from iomflow.shared.auth import AuditMiddleware, api_keys_table, audit_log_table, sessions_table
from iomflow.shared.contracts import entry_schema
from iomflow.shared.errors import ApiError, Refused, api_error_handler
from iomflow.shared.inbox import inbox_table
from iomflow.shared.metrics import (
    CONTENT_TYPE,
    ExtraCollector,
    HttpMetricsMiddleware,
    ServiceMetrics,
    Sources,
)
from iomflow.shared.outbox import Outbox, OutboxRelay, outbox_table
from iomflow.shared.outbox import prune as outbox_prune
from iomflow.shared.settings import BaseServiceSettings
from iomflow.shared.streams import (
    BACKOFF_START_S,
    Consumer,
    DeliverySettings,
    Subscription,
    unavailable,
)
from iomflow.shared.telemetry import create_tracer_provider, instrument_sql
from iomflow.shared.unit import Deps, unit_of_work, utc_now
from iomflow.shared.wire import PlainFieldsFormat

log = logging.getLogger(__name__)


@dataclass
class Tables:
    """The delivery tables every service's database has, beside its own."""

    metadata: MetaData
    auth: bool = False  # keeps API keys, sessions and the audit log (iomflow.shared.auth) too

    def __post_init__(self) -> None:
        self.inbox = inbox_table(self.metadata)
        self.outbox = outbox_table(self.metadata)
        self.api_keys = api_keys_table(self.metadata) if self.auth else None
        self.sessions = sessions_table(self.metadata) if self.auth else None
        self.audit_log = audit_log_table(self.metadata) if self.auth else None


C = TypeVar("C")


@dataclass
class Runtime(Generic[C]):
    """Everything a running service holds; reached from handlers and routes."""

    settings: BaseServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    broker: RedisBroker
    outbox: Outbox
    relay: OutboxRelay
    consumer: Consumer
    tracer_provider: TracerProvider
    tracer: trace.Tracer
    metrics: ServiceMetrics
    api_keys: Table | None = None
    session_table: Table | None = None  # signed-in people (iomflow.shared.signin)
    audit_log: Table | None = None
    context: C = None  # type: ignore[assignment]  # the service's own (ServiceSpec.context)
    clock: Callable[[], datetime] = utc_now

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Deps[C]]:
        """One transaction as a unit of work: what it stages is written into the outbox
        before the commit, and the relay is woken after it."""
        async with unit_of_work(self.sessions, self.outbox, self.context, self.clock) as deps:
            yield deps
        if deps.flushed:
            self.outbox.wake()


@dataclass(frozen=True)
class ServiceSpec:
    """What makes a service itself; the host does the rest."""

    name: str
    title: str
    package: str  # e.g. "iomflow.routes": its migrations live in <package>/migrations
    tables: Tables
    subscriptions: Sequence[Subscription]
    context: Callable[[Runtime[Any]], Any] | None = None
    """Builds the service's context once (rules, framework, caches), given the runtime;
    handlers get it as ``deps.ctx``, HTTP routes as ``runtime.context``."""
    publishes: Sequence[tuple[str, Sequence[str]]] = ()  # (stream, event types), for AsyncAPI
    routers: Sequence[APIRouter] = ()
    on_start: Callable[[Runtime[Any]], Any] | None = None
    on_stop: Callable[[Runtime[Any]], Any] | None = None
    """Called when the service stops, after its tasks (e.g. a worker process to end)."""
    background: Callable[[Runtime[Any]], Sequence[Coroutine[Any, Any, None]]] | None = None
    """Long-running jobs of the service, started after the consumer, cancelled at stop."""
    pages: Sequence[tuple[str, str]] = ()
    """The service's pages for people (path, title in Russian): the sign-in page lists them
    for whoever is signed in."""
    collectors: Sequence[tuple[str, ExtraCollector]] = ()
    """The service's own Prometheus collectors for ``/metrics`` (name, builder): each
    scrape awaits ``builder(runtime)`` and renders it beside the host's metrics."""


async def periodic(what: str, interval_s: float, job: Callable[[], Awaitable[Any]]) -> None:
    """Run ``job`` now and every ``interval_s`` for the life of the service (a background
    job of a ``ServiceSpec``); a failure is logged and the job tried again next time."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; will try again", what)
        await asyncio.sleep(interval_s)


STOP_TIMEOUT_S = 15.0
"""How long a stopping service waits for its background tasks and subscribers."""


def get_runtime(request: Request) -> Runtime[Any]:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime[Any], Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def tune_gc() -> None:
    """Everything built at start (modules, the app, the rules and framework) is moved out
    of the collector's reach, and collections of the youngest objects come ten times less
    often: a batch allocates tens of thousands of short-lived objects (events, rows), and
    with the default threshold the collector ran many times per batch (measured through
    the chain: 25 % more diagnoses a second)."""
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 10_000), gen1, gen2)


def retention_job(runtime: Runtime[Any], tables: Tables) -> Callable[[], Awaitable[None]]:
    """The retention job: inbox rows older than ``inbox_retention_days`` and published
    outbox rows older than ``outbox_retention_days`` go, a chunk per transaction."""
    settings = runtime.settings

    async def job() -> None:
        now = runtime.clock()
        for table, prune, days in (
            (tables.inbox, inbox.prune, settings.inbox_retention_days),
            (tables.outbox, outbox_prune, settings.outbox_retention_days),
        ):
            before = now - timedelta(days=days)
            while True:
                async with runtime.sessions() as session, session.begin():
                    removed = await prune(session, table, before)
                metrics = runtime.metrics.pruned
                metrics[table.name] = metrics.get(table.name, 0) + removed
                if removed:
                    log.info("retention: %d %s rows before %s removed", removed, table.name, before)
                if removed < inbox.PRUNE_CHUNK:
                    break

    return job


ANALYZE_EVERY_S = 10.0
"""PostgreSQL: how often tables that changed by half are analysed (``db.analyze_grown``)."""


def _analyze(engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        grown = await db.analyze_grown(engine)
        if grown:
            log.info("analysed tables that grew: %s", ", ".join(grown))

    return job


METRICS_REFRESH_S = 15.0
"""How often stream statistics and the outbox backlog are read for OTLP export (a scrape
of ``/metrics`` reads them itself)."""


def build_runtime(spec: ServiceSpec, settings: BaseServiceSettings) -> Runtime[Any]:
    provider = create_tracer_provider(spec.name, settings.traces_dir)
    metrics = ServiceMetrics(spec.name)
    tracer = provider.get_tracer(f"iomflow.{spec.name}")
    engine = db.create_engine(settings.resolved_database_url())
    metrics.count_statements(engine)
    if settings.sql_tracing:
        instrument_sql(engine, provider)
    sessions = db.sessionmaker(engine)
    redis = redisconn.async_client(settings.redis_url)
    broker = redisconn.broker(
        settings.redis_url,
        message_format=PlainFieldsFormat,
        middlewares=[RedisTelemetryMiddleware(tracer_provider=provider)],
        logger=logging.getLogger(f"iomflow.{spec.name}.broker"),
        # "Received" / "Processed" for every batch is routine: debug, not info (errors
        # are still logged as errors).
        log_level=logging.DEBUG,
    )
    outbox = Outbox(spec.tables.outbox)
    relay = OutboxRelay(
        outbox,
        sessions,
        redis,
        tracer,
        batch=settings.relay_batch,
        poll_s=settings.relay_poll_s,
        replicas=settings.redis_wait_replicas,
        replica_timeout_ms=settings.redis_wait_timeout_ms,
    )
    delivery = DeliverySettings(
        batch_size=settings.batch_size,
        poll_ms=settings.poll_ms,
        max_deliveries=settings.max_deliveries,
        reclaim_idle_ms=settings.reclaim_idle_ms,
        reclaim_interval_s=settings.reclaim_interval_s,
        max_entry_bytes=settings.ingest_max_bytes,
    )
    runtime: Runtime[Any] = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        broker=broker,
        outbox=outbox,
        relay=relay,
        consumer=None,  # type: ignore[arg-type]  # set below, with the context
        tracer_provider=provider,
        tracer=tracer,
        metrics=metrics,
        api_keys=spec.tables.api_keys,
        session_table=spec.tables.sessions,
        audit_log=spec.tables.audit_log,
    )
    if spec.context is not None:
        runtime.context = spec.context(runtime)
    runtime.consumer = Consumer(
        group=spec.name,
        consumer=settings.consumer,
        redis=redis,
        sessions=sessions,
        inbox_table=spec.tables.inbox,
        outbox=outbox,
        tracer=tracer,
        subscriptions=spec.subscriptions,
        settings=delivery,
        context=runtime.context,
        clock=runtime.clock,
        meter=metrics.meter,
    )
    runtime.consumer.attach(broker)
    metrics.sources = Sources(
        redis=redis,
        group=spec.name,
        streams=list(runtime.consumer.subscriptions),
        sessions=sessions,
        outbox=outbox,
        relay=relay,
        published=[stream for stream, _ in spec.publishes],
    )
    for stream, types in spec.publishes:
        broker.publisher(stream, title=f"{stream}:publish", description=", ".join(types))
    return runtime


STARTUP_REDIS_WAIT_S = 60.0
"""How long a starting service waits for Redis before it gives up (and exits)."""
STARTUP_PAUSE_MAX_S = 5.0
"""The longest pause between two of those tries."""


async def _until_redis_answers(service: str, step: Callable[[], Awaitable[Any]]) -> None:
    """Run an idempotent startup ``step`` that talks to Redis, again while Redis is
    unreachable or read-only (a failover under way), for up to ``STARTUP_REDIS_WAIT_S``."""
    deadline = asyncio.get_running_loop().time() + STARTUP_REDIS_WAIT_S
    pause = BACKOFF_START_S
    while True:
        try:
            await step()
            return
        except Exception as exc:
            waiting = unavailable(exc) or isinstance(exc, ReadOnlyError)
            if not waiting or asyncio.get_running_loop().time() + pause > deadline:
                raise
            log.warning(
                "%s: Redis не отвечает при запуске (%s), повтор через %.1f с",
                service,
                exc,
                pause,
            )
        await asyncio.sleep(pause)
        pause = min(STARTUP_PAUSE_MAX_S, pause * 2)


def create_service_app(spec: ServiceSpec, settings: BaseServiceSettings) -> FastAPI:
    """The service's FastAPI app; starting it starts consuming and relaying."""
    if not settings.service:
        settings = settings.model_copy(update={"service": spec.name})
    runtime = build_runtime(spec, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Log lines of the service's tasks (started below, they inherit it) name it.
        service_token = logs.SERVICE.set(spec.name)
        if settings.migrate_on_start:
            await asyncio.to_thread(
                migrations.upgrade, spec.package, settings.resolved_database_url()
            )
        if spec.on_start is not None:  # before consuming: it may refuse to start
            result = spec.on_start(runtime)
            if asyncio.iscoroutine(result):
                await result
        # Redis may be a moment away (a Sentinel failover, a server still starting): the
        # service waits for it rather than exiting, and says so. Only idempotent steps are
        # tried again; the broker, which would start its subscribers twice, starts once.
        await _until_redis_answers(spec.name, runtime.redis.ping)
        await _until_redis_answers(spec.name, runtime.consumer.ensure_groups)
        await runtime.broker.start()
        tasks = [
            asyncio.create_task(runtime.relay.run(), name=f"{spec.name}-relay"),
            asyncio.create_task(runtime.consumer.supervise(), name=f"{spec.name}-reclaim"),
        ]
        if spec.background is not None:
            tasks += [asyncio.create_task(job) for job in spec.background(runtime)]
        retention = periodic(
            "retention", settings.retention_check_s, retention_job(runtime, spec.tables)
        )
        tasks.append(asyncio.create_task(retention, name=f"{spec.name}-retention"))
        if runtime.engine.dialect.name == "postgresql":
            statistics = periodic("table statistics", ANALYZE_EVERY_S, _analyze(runtime.engine))
            tasks.append(asyncio.create_task(statistics, name=f"{spec.name}-analyze"))
        if runtime.metrics.exporting:  # OTLP export reads the last values: keep them fresh
            refresh = periodic("metrics refresh", METRICS_REFRESH_S, runtime.metrics.refresh)
            tasks.append(asyncio.create_task(refresh, name=f"{spec.name}-metrics"))
        tune_gc()
        log.info("%s started: consumer %s", spec.name, settings.consumer)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            # Bounded: a task that does not answer its cancellation must not keep the
            # process from stopping (what it staged stays in the outbox).
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await runtime.broker.stop()
            except TimeoutError:
                stuck = [t.get_name() for t in tasks if not t.done()]
                log.error(
                    "%s: stopping took over %ss; still running: %s",
                    spec.name,
                    STOP_TIMEOUT_S,
                    stuck,
                )
            if spec.on_stop is not None:
                with contextlib.suppress(Exception):
                    result = spec.on_stop(runtime)
                    if asyncio.iscoroutine(result):
                        await result
            # Publish what the last transactions staged before going away.
            with contextlib.suppress(Exception):
                await runtime.relay.publish_pending()
            await runtime.redis.aclose()
            await runtime.engine.dispose()
            runtime.tracer_provider.shutdown()
            runtime.metrics.shutdown()
            with contextlib.suppress(ValueError):  # stopped from another context
                logs.SERVICE.reset(service_token)

    # FastAPI's own /docs and /redoc load their scripts from a CDN: ours are served here.
    app = FastAPI(
        title=spec.title, version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.runtime = runtime
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RecursionError, _too_deep)
    app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(Refused, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.include_router(_health_router())
    app.include_router(_asyncapi_router(spec))
    app.include_router(_metrics_router(spec))
    for router in spec.routers:
        app.include_router(router)
    app.include_router(apidocs.router())
    if spec.tables.auth:
        app.include_router(signin.router(spec.title, spec.pages))
        app.add_middleware(AuditMiddleware, runtime=runtime)
    app.add_middleware(HttpMetricsMiddleware, metrics=runtime.metrics)
    app.add_middleware(logs.ServiceLogContext, service=spec.name)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=runtime.tracer_provider,
        # HTTP metrics come from HttpMetricsMiddleware (iomflow_http_*), under our names.
        meter_provider=NoOpMeterProvider(),
        excluded_urls="/health/.*,/metrics$",
        exclude_spans=["receive", "send"],
    )
    app.openapi = problems.document(app)  # type: ignore[method-assign]
    return app


HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
HTTP_DETAILS = {
    404: "Такого адреса у сервиса нет: проверьте путь (список операций — /docs).",
    405: "Этот метод по этому адресу не поддерживается (какие поддерживаются — в заголовке "
    "Allow и на /docs).",
}


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """The framework's own answers (no such path, no such method, …) as problems too.

    A body FastAPI cannot parse (not UTF-8, say) is its 400: answered as the 422
    ``invalid_json`` every other unreadable body gets. A 405's ``Allow`` names the methods
    of every route at the path (the framework names only the first route's)."""
    status = exc.status_code
    headers = getattr(exc, "headers", None)
    if status == 400 and exc.detail == "There was an error parsing the body":
        return problems.response(
            422, "invalid_json", "Тело запроса — не JSON: отправьте объект JSON (UTF-8)."
        )
    if status == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    code = HTTP_CODES.get(status, f"http_{status}")
    detail = HTTP_DETAILS.get(status) or problems.TITLES.get(status, str(exc.detail))
    return problems.response(status, code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the app's routes answer at the request's path (the app's routers are
    asked method by method: an included router matches as a whole)."""
    scope = request.scope
    return [
        method
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


async def _too_deep(_: Request, exc: Exception) -> JSONResponse:
    """A body nested deeper than the parser goes is the client's error, not ours."""
    return problems.response(
        422, "invalid_json", "Тело запроса вложено слишком глубоко: такой JSON не принимается."
    )


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    """A failure of ours: a Russian sentence and a code, never the exception's text, and
    ``Connection: close`` — the server closes the connection after an unhandled error, so
    the client is told not to reuse it."""
    log.error("unhandled error: %s", logs.safe_error(exc), exc_info=exc)
    return problems.response(
        500,
        "internal_error",
        "Внутренняя ошибка сервиса: запрос не выполнен, повторите позже. "
        "Если ошибка повторяется, сообщите администратору.",
        headers={"Connection": "close"},
    )


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {
            "loc": list(err.get("loc", ())),
            "msg": fielderrors.in_russian(err),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    return problems.response(
        422,
        "validation_error",
        "Запрос не прошёл проверку: исправьте указанные поля и отправьте снова.",
        errors=errors,
    )


class LiveRead(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class ReadyRead(BaseModel):
    """Redis and the database answer, the consumer groups exist."""

    status: Literal["ok"] = "ok"
    checks: dict[str, str] = Field(description="redis, groups, database: ok (or the error)")


class AsyncApiInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    title: str
    version: str
    description: str | None = None


class AsyncApiDocument(BaseModel):
    """An AsyncAPI 3 document (https://www.asyncapi.com/docs/reference/specification/v3.0.0)."""

    model_config = ConfigDict(extra="allow")

    asyncapi: str = Field(description="The AsyncAPI version: 3.0.0")
    info: AsyncApiInfo
    channels: dict[str, Any] = Field(default_factory=dict)
    operations: dict[str, Any] = Field(default_factory=dict)
    components: dict[str, Any] = Field(default_factory=dict)


def _health_router() -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live", summary="The process is up", response_model=LiveRead)
    async def live() -> LiveRead:
        return LiveRead()

    @router.get(
        "/ready",
        summary="Redis and the database answer, the groups exist",
        response_model=ReadyRead,
        responses=problems.problems(
            503, s503="Redis или база не отвечают, или нет групп (code: unavailable; checks)"
        ),
    )
    async def ready(runtime: RuntimeDep) -> Any:
        checks: dict[str, str] = {}
        try:
            await runtime.redis.ping()
            checks["redis"] = "ok"
            checks["groups"] = "ok" if await runtime.consumer.groups_exist() else "missing"
        except Exception as exc:
            checks["redis"] = f"error: {exc}"
        try:
            async with runtime.engine.connect() as conn:
                await conn.execute(text("select 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {exc}"
        if all(value == "ok" for value in checks.values()):
            return ReadyRead(checks=checks)
        return problems.response(
            503,
            "unavailable",
            "Сервис не готов: "
            + ", ".join(f"{name}: {value}" for name, value in checks.items() if value != "ok"),
            checks=checks,
        )

    return router


def asyncapi_document(spec: ServiceSpec, runtime: Runtime[Any]) -> dict[str, Any]:
    """AsyncAPI 3 from the broker's subscribers and publishers, with the event contracts.

    FastStream describes the channels and operations; each message's payload is then set to
    the wire schema of the event types that travel on it (``entry_schema``).
    """
    document: dict[str, Any] = (
        AsyncAPI(
            runtime.broker,
            title=f"iomflow {spec.name}",
            version="0.1.0",
            description=(
                f"{spec.title}. Entries are plain Redis stream fields: event_id, type, version, "
                "source, occurred_at, subject, data (JSON payload), traceparent (optional). "
                "A bad entry goes to {<stream>}.dlq with dlq_reason and dlq_error."
            ),
        )
        .to_specification()
        .to_jsonable()
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    consumed = {s: sorted(sub.handlers) for s, sub in runtime.consumer.subscriptions.items()}
    published = {stream: sorted(types) for stream, types in spec.publishes}
    for name, message in components.get("messages", {}).items():
        stream, role = name.split(":")[0], name.split(":")[1]
        types = published.get(stream, []) if role == "publish" else consumed.get(stream, [])
        schemas.pop(message.get("payload", {}).get("$ref", "").rsplit("/", 1)[-1], None)
        message["payload"] = {"oneOf": [{"$ref": f"#/components/schemas/{t}"} for t in types]}
        message["correlationId"] = {"location": "$message.payload#/event_id"}
    for type_ in sorted({t for types in (*consumed.values(), *published.values()) for t in types}):
        schema, defs = entry_schema(type_, "#/components/schemas/{model}")
        schemas.update(defs)
        schemas[type_] = schema
    return document


def _asyncapi_router(spec: ServiceSpec) -> APIRouter:
    router = APIRouter(tags=["contract"])

    @router.get(
        "/asyncapi.json",
        summary="AsyncAPI document of this service's streams",
        response_model=AsyncApiDocument,
    )
    async def asyncapi(runtime: RuntimeDep) -> JSONResponse:
        # As built: the model documents it, the answer is the document itself.
        return JSONResponse(asyncapi_document(spec, runtime))

    return router


def _metrics_router(spec: ServiceSpec) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/metrics",
        summary="Operational metrics (and the service's own) in the Prometheus text format",
        response_class=Response,
        responses={
            200: {
                "description": "The Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics(runtime: RuntimeDep) -> Response:
        extras = []
        for name, build in spec.collectors:
            try:
                extras.append((name, await build(runtime)))
            except Exception:
                log.exception("metrics: the %s collector failed", name)
                extras.append((name, None))
        return Response(await runtime.metrics.render(extras), media_type=CONTENT_TYPE)

    return router


def serve(app: FastAPI, settings: BaseServiceSettings) -> None:
    """Run the app under uvicorn; logs as ``iomflow.shared.logs`` configures them (JSON by
    default, ``IOMFLOW_LOG_FORMAT=text`` for the classic lines), uvicorn's included."""
    import uvicorn

    if not logs.configured():
        runtime: Runtime[Any] = app.state.runtime
        logs.configure(runtime.settings.service or settings.service)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=logs.level().lower(),
        log_config=logs.uvicorn_log_config(),
    )
