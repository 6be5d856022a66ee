"""Composition root of the diagnostics service."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI

from iomflow.diagnostics import api, domain, handlers
from iomflow.diagnostics.repository import tables
from iomflow.diagnostics.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.service import Runtime, ServiceSpec, create_service_app


def framework_for(settings: Settings) -> domain.Framework:
    if settings.framework_path is not None:
        return domain.load_framework(settings.framework_path)
    shipped = resources.files("iomflow.diagnostics").joinpath("data/framework.json")
    return domain.load_framework(Path(str(shipped)))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    framework = framework_for(settings)

    def subscriptions(runtime: Runtime) -> list:  # type: ignore[type-arg]
        runtime.extras["framework"] = framework
        return handlers.subscriptions(framework)

    spec = ServiceSpec(
        name="diagnostics",
        title="iomflow — диагностика профессиональных дефицитов (ЦОПМКПиМКО)",
        package="iomflow.diagnostics",
        tables=tables,
        subscriptions=subscriptions,
        publishes=[(Streams.DIAGNOSTICS, ["diagnostics.diagnosis.completed"])],
        routers=[api.router],
    )
    return create_service_app(spec, settings)
