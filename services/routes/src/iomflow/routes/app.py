"""Composition root of the routes service."""

from __future__ import annotations

from fastapi import FastAPI

from iomflow.routes import api, handlers
from iomflow.routes.repository import tables
from iomflow.routes.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="routes",
    title="iomflow — индивидуальные образовательные маршруты (ЦНППМ)",
    package="iomflow.routes",
    tables=tables,
    subscriptions=lambda runtime: handlers.SUBSCRIPTIONS,
    publishes=[
        (
            Streams.ROUTES,
            ["routes.route.drafted", "routes.methodist.assigned", "routes.methodist.unavailable"],
        )
    ],
    routers=[api.router],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
