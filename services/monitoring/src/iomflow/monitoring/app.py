"""Composition root of the monitoring service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from fastapi import FastAPI

from iomflow.monitoring import api, checks, console, dashboard, handlers, metrics, reports_api
from iomflow.monitoring.context import Context, catalogue
from iomflow.monitoring.repository import tables
from iomflow.monitoring.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.service import Runtime, ServiceSpec, create_service_app, periodic

log = logging.getLogger(__name__)

__all__ = ["catalogue", "create_app"]


async def alert_check(runtime: Runtime[Context]) -> None:
    """Detect alerts, raise the new ones and resolve the gone ones, for the service's life."""
    settings = runtime.settings
    assert isinstance(settings, Settings)

    async def once() -> None:
        raised, resolved = await checks.check(runtime, runtime.redis)
        if raised or resolved:
            log.info("alerts: %d raised, %d resolved", len(raised), len(resolved))

    # The first check one interval after the start: the consumer has caught up with what
    # arrived meanwhile, so a restart raises no alert of half-read projections.
    await asyncio.sleep(settings.alert_check_interval_s)
    await periodic("alert check", settings.alert_check_interval_s, once)


def background(runtime: Runtime[Context]) -> Sequence[Coroutine[Any, Any, None]]:
    return [runtime.context.kpis.run(runtime.sessions), alert_check(runtime)]


def stop(runtime: Runtime[Context]) -> None:
    worker = runtime.context.kpis.worker
    if worker is not None:
        worker.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    kpis = catalogue()
    spec = ServiceSpec(
        name="monitoring",
        title="iomflow — мониторинг показателей РС НМС",
        package="iomflow.monitoring",
        tables=tables,
        subscriptions=handlers.SUBSCRIPTIONS,
        context=lambda runtime: Context.of(
            runtime.settings, kpis, runtime.clock, runtime.settings.consumer
        ),
        publishes=[(Streams.MONITORING, ["monitoring.alert.raised", "monitoring.alert.resolved"])],
        background=background,
        on_stop=stop,
        routers=[api.router, reports_api.router, dashboard.router, console.router],
        pages=[("/console", "Пульт оператора"), ("/dashboard", "Показатели РС НМС")],
        collectors=metrics.COLLECTORS,
    )
    return create_service_app(spec, settings)
