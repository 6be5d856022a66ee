"""Composition root of the diagnostics service."""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iomflow.diagnostics import api, campaigns, domain, handlers, service
from iomflow.diagnostics.repository import ingest_tables, tables
from iomflow.diagnostics.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.ingest import ingestion_router
from iomflow.shared.service import Runtime, ServiceSpec, create_service_app, periodic

log = logging.getLogger(__name__)

INGESTS = {
    "diagnostics.result.submitted": Streams.RESULTS_INBOUND,
    "diagnostics.needs.submitted": Streams.RESULTS_INBOUND,
}
"""What publishers may post over HTTP (POST /v1/events). The router appends each type to the
stream whose subscription applies it; the stream is named here too for ``iomflow acl`` (which
grants the service XADD on it), and tests/shared/test_ingestion.py checks that the two agree."""


def framework_for(settings: Settings) -> domain.Framework:
    if settings.framework_path is not None:
        return domain.load_framework(settings.framework_path)
    shipped = resources.files("iomflow.diagnostics").joinpath("data/framework.json")
    return domain.load_framework(Path(str(shipped)))


NAME = "diagnostics"


async def on_start(runtime: Runtime[service.Diagnostics]) -> None:
    framework = runtime.context.framework
    async with runtime.transaction() as deps:
        await campaigns.register_framework(deps.session, framework)
        await campaigns.ensure_default_campaign(deps.session, framework)


async def expire_held(runtime: Runtime[service.Diagnostics]) -> None:
    """Dead-letter results and needs answers held past their deadline for a teacher who
    never came."""
    settings = runtime.settings
    assert isinstance(settings, Settings)

    async def check() -> None:
        expired = await service.expire_held(runtime.transaction)
        if expired:
            log.warning("dead-lettered %d held results: the teachers never came", expired)

    await periodic("held results check", settings.hold_check_interval_s, check)


def background(runtime: Runtime[service.Diagnostics]) -> Sequence[Coroutine[Any, Any, None]]:
    return [expire_held(runtime)]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    framework = framework_for(settings)
    hold_for = timedelta(days=settings.hold_days)

    def context(runtime: Runtime[Any]) -> service.Diagnostics:
        # The consumer group is the service's name (its inbox rows are the group's).
        return service.Diagnostics(framework, hold_for, group=NAME)

    spec = ServiceSpec(
        name=NAME,
        title="iomflow — диагностика профессиональных дефицитов (ЦОПМКПиМКО)",
        package="iomflow.diagnostics",
        tables=tables,
        subscriptions=handlers.SUBSCRIPTIONS,
        context=context,
        publishes=[
            (
                Streams.DIAGNOSTICS,
                [
                    "diagnostics.diagnosis.completed",
                    "diagnostics.diagnosis.revised",
                    "diagnostics.diagnosis.cancelled",
                    "diagnostics.needs.recorded",
                ],
            ),
            # results and needs answers held past their deadline, dead-lettered by the
            # service itself
            (
                Streams.dlq(Streams.RESULTS_INBOUND),
                ["diagnostics.result.submitted", "diagnostics.needs.submitted"],
            ),
        ],
        routers=[api.router, ingestion_router(ingest_tables, list(INGESTS))],
        on_start=on_start,
        background=background,
    )
    return create_service_app(spec, settings)
