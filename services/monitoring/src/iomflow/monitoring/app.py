"""Composition root of the monitoring service."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI

from iomflow.monitoring import api, domain, handlers
from iomflow.monitoring.repository import tables
from iomflow.monitoring.settings import Settings
from iomflow.shared.service import Runtime, ServiceSpec, create_service_app


def catalogue() -> domain.Catalogue:
    shipped = resources.files("iomflow.monitoring").joinpath("data/kpis.json")
    return domain.load_catalogue(Path(str(shipped)))


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
        routers=[api.router],
    )
    return create_service_app(spec, settings or Settings())
