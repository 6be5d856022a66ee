"""Composition root of the registries service."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from fastapi import FastAPI

from iomflow.registries import api, service
from iomflow.registries.jobs import ImportJobs
from iomflow.registries.registers import REGISTRY
from iomflow.registries.repository import tables
from iomflow.registries.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.service import Runtime, ServiceSpec, create_service_app, periodic


def on_start(runtime: Runtime) -> None:
    runtime.extras["imports"] = ImportJobs(runtime)


async def watch_stale(runtime: Runtime) -> None:
    """Publish ``registry.stale`` when the count of overdue records changes."""
    settings = runtime.settings
    assert isinstance(settings, Settings)

    async def check() -> None:
        async with runtime.sessions() as session, session.begin():
            await service.check_stale(session, runtime.outbox, days=settings.stale_after_days)
        runtime.outbox.wake()

    await periodic("stale check", settings.stale_check_interval_s, check)


def background(runtime: Runtime) -> Sequence[Coroutine[Any, Any, None]]:
    return [runtime.extras["imports"].resume(), watch_stale(runtime)]


SPEC = ServiceSpec(
    name="registries",
    title="iomflow — региональные реестры (ЦНППМ)",
    package="iomflow.registries",
    tables=tables,
    subscriptions=lambda runtime: [],
    publishes=[
        (
            Streams.REGISTRY,
            [t for spec in REGISTRY.values() for t in (spec.upserted, spec.removed)]
            + ["registry.stale"],
        )
    ],
    routers=[api.router],
    on_start=on_start,
    background=background,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
