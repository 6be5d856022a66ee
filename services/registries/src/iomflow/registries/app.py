"""Composition root of the registries service."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from fastapi import FastAPI

from iomflow.registries import api, bank, context, service, uploads
from iomflow.registries.domain import REGISTRY
from iomflow.registries.repository import tables
from iomflow.registries.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.service import Runtime, ServiceSpec, create_service_app, periodic


async def watch_stale(runtime: Runtime[context.Context]) -> None:
    """Publish ``registry.stale`` when the count of overdue records changes."""
    settings = runtime.context.settings

    async def check() -> None:
        async with runtime.transaction() as deps:
            await service.check_stale(deps, days=settings.stale_after_days)

    await periodic("stale check", settings.stale_check_interval_s, check)


async def purge_uploads(runtime: Runtime[context.Context]) -> None:
    """Drop, hourly, the kept files of imports older than ``keep_upload_hours``."""

    async def purge() -> None:
        await runtime.context.imports.purge()

    await periodic("uploads purge", 3600, purge)


def background(runtime: Runtime[context.Context]) -> Sequence[Coroutine[Any, Any, None]]:
    return [runtime.context.imports.resume(), watch_stale(runtime), purge_uploads(runtime)]


SPEC = ServiceSpec(
    name="registries",
    title="iomflow — региональные реестры (ЦНППМ)",
    package="iomflow.registries",
    tables=tables,
    subscriptions=[],
    context=context.build,
    publishes=[
        (
            Streams.REGISTRY,
            [t for spec in REGISTRY.values() for t in (spec.upserted, spec.removed)]
            + ["registry.stale"],
        )
    ],
    routers=[api.router, uploads.router, bank.router],
    pages=[("/uploads", "Загрузка реестров")],
    background=background,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
