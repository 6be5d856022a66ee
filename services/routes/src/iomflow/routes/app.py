"""Composition root of the routes service."""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from fastapi import FastAPI

from iomflow.routes import (
    activities_api,
    api,
    domain,
    handlers,
    lifecycle,
    plans_api,
    service,
    workplace,
)
from iomflow.routes.ledger import ledger_of
from iomflow.routes.repository import ingest_tables, tables
from iomflow.routes.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.ingest import ingestion_router
from iomflow.shared.service import Runtime, ServiceSpec, create_service_app, periodic

log = logging.getLogger(__name__)

PUBLISHES = [
    "routes.route.drafted",
    "routes.methodist.assigned",
    "routes.methodist.unavailable",
    "routes.route.agreed",
    "routes.step.completed",
    "routes.route.completed",
    "routes.route.cancelled",
    "routes.training.completed",
    "routes.activity.held",
    "routes.activity.attended",
    "routes.plan.updated",
]

INGESTS = {
    "courses.course.enrolled": Streams.COURSES_INBOUND,
    "courses.course.completed": Streams.COURSES_INBOUND,
    "courses.internship.completed": Streams.COURSES_INBOUND,
}
"""What publishers may post over HTTP (POST /v1/events). The router appends each type to the
stream whose subscription applies it; the stream is named here too for ``iomflow acl`` (which
grants the service XADD on it), and tests/shared/test_ingestion.py checks that the two agree."""


async def tick(runtime: Runtime[service.Routes]) -> None:
    """Start agreed routes whose day has come; complete overdue ones by policy."""
    settings = runtime.settings
    assert isinstance(settings, Settings)

    async def once() -> None:
        async with runtime.transaction() as deps, ledger_of(deps) as ledger:
            done = await lifecycle.tick(ledger)
        if any(done.values()):
            log.info("routes tick: %s", done)

    await periodic("routes tick", settings.tick_interval_s, once)


def background(runtime: Runtime[service.Routes]) -> Sequence[Coroutine[Any, Any, None]]:
    return [tick(runtime)]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    rules = domain.load_rules(settings.rules_path)
    spec = ServiceSpec(
        name="routes",
        title="iomflow — индивидуальные образовательные маршруты (ЦНППМ)",
        package="iomflow.routes",
        tables=tables,
        subscriptions=handlers.SUBSCRIPTIONS,
        context=lambda _: service.Routes(rules=rules),
        publishes=[(Streams.ROUTES, PUBLISHES)],
        routers=[
            api.router,
            activities_api.router,
            plans_api.router,
            workplace.router,
            workplace.pages,
            ingestion_router(ingest_tables, list(INGESTS)),
        ],
        background=background,
        pages=[("/workplace", "Рабочее место методиста")],
    )
    return create_service_app(spec, settings)
