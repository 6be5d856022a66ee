"""Composition root of the registries service."""

from __future__ import annotations

from fastapi import FastAPI

from iomflow.registries import api
from iomflow.registries.repository import tables
from iomflow.registries.settings import Settings
from iomflow.shared.contracts import Streams
from iomflow.shared.service import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="registries",
    title="iomflow — региональные реестры (ЦНППМ)",
    package="iomflow.registries",
    tables=tables,
    subscriptions=lambda runtime: [],
    publishes=[
        (
            Streams.REGISTRY,
            [
                f"registry.{e}.upserted"
                for e in ("municipality", "organization", "program", "methodist", "teacher")
            ],
        )
    ],
    routers=[api.router],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
