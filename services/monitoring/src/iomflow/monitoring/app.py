"""Composition root of the monitoring service."""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iomflow.monitoring import (
    alerts,
    api,
    checks,
    dashboard,
    domain,
    handlers,
    metrics,
    reports_api,
)
from iomflow.monitoring.repository import tables
from iomflow.monitoring.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.service import Runtime, ServiceSpec, create_service_app, periodic

log = logging.getLogger(__name__)


def catalogue() -> domain.Catalogue:
    shipped = resources.files("iomflow.monitoring").joinpath("data/kpis.json")
    return domain.load_catalogue(Path(str(shipped)))


def limits(settings: Settings) -> alerts.Limits:
    return alerts.Limits(settings.route_wait_days, settings.diagnosis_route_days)


async def alert_check(runtime: Runtime) -> None:
    """Detect alerts, raise the new ones and resolve the gone ones, for the service's life."""
    settings = runtime.settings
    assert isinstance(settings, Settings)

    async def once() -> None:
        raised, resolved = await checks.check(
            runtime.sessions,
            runtime.outbox,
            runtime.redis,
            runtime.extras["catalogue"],
            limits(settings),
        )
        if raised or resolved:
            log.info("alerts: %d raised, %d resolved", len(raised), len(resolved))

    await periodic("alert check", settings.alert_check_interval_s, once)


def background(runtime: Runtime) -> Sequence[Coroutine[Any, Any, None]]:
    return [alert_check(runtime)]


def create_app(settings: Settings | None = None) -> FastAPI:
    kpis = catalogue()

    def subscriptions(runtime: Runtime) -> list:  # type: ignore[type-arg]
        runtime.extras["catalogue"] = kpis
        return handlers.SUBSCRIPTIONS

    spec = ServiceSpec(
        name="monitoring",
        title="iomflow — мониторинг показателей РС НМС",
        package="iomflow.monitoring",
        tables=tables,
        subscriptions=subscriptions,
        publishes=[(Streams.MONITORING, ["monitoring.alert.raised", "monitoring.alert.resolved"])],
        background=background,
        routers=[api.router, reports_api.router, dashboard.router],
        collectors=metrics.COLLECTORS,
    )
    return create_service_app(spec, settings or Settings())
