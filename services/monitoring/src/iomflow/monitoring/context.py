"""What monitoring's handlers, routes and jobs share: built once, when the service is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from weakref import WeakSet

from iomflow.monitoring import alerts, domain, projection, views
from iomflow.monitoring.settings import Settings
from iomflow.shared.unit import utc_now


def catalogue() -> domain.Catalogue:
    """The KPI catalogue shipped with the service."""
    shipped = resources.files("iomflow.monitoring").joinpath("data/kpis.json")
    return domain.load_catalogue(Path(str(shipped)))


class Context:
    """The service's context (``deps.ctx`` in handlers, ``runtime.context`` elsewhere)."""

    def __init__(
        self,
        catalogue: domain.Catalogue,
        consumer: str = "monitoring",
        limits: alerts.Limits | None = None,
        clock: Callable[[], datetime] = utc_now,
        policy: projection.Policy | None = None,
        worker: projection.Worker | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.consumer = consumer
        """Who marks the projections changed (``repository.changes``): this replica."""
        self.limits = limits or alerts.Limits()
        self.clock = clock
        self.kpis = projection.Projection(
            catalogue, views.Cache(), policy or projection.Policy(), clock, worker=worker
        )
        """Today's KPI answer, maintained."""
        self.marked: WeakSet[Any] = WeakSet()
        """The units of work (batches) that have marked the projections changed already."""

    @property
    def cache(self) -> views.Cache:
        """The loaded facts and the answers computed on demand (shared with ``kpis``)."""
        return self.kpis.cache

    @cache.setter
    def cache(self, cache: views.Cache) -> None:
        self.kpis.cache = cache

    @classmethod
    def of(
        cls,
        settings: Settings,
        kpis: domain.Catalogue | None = None,
        clock: Callable[[], datetime] = utc_now,
        consumer: str | None = None,
    ) -> Context:
        return cls(
            catalogue=kpis or catalogue(),
            consumer=consumer or settings.consumer,
            limits=alerts.Limits(
                route_wait_days=settings.route_wait_days,
                diagnosis_route_days=settings.diagnosis_route_days,
                burnout_rise_points=settings.burnout_rise_points,
                burnout_min_surveyed=settings.burnout_min_surveyed,
            ),
            clock=clock,
            policy=projection.Policy(
                refresh_s=settings.kpi_refresh_s,
                quiet_s=settings.kpi_quiet_s,
                max_lag_s=settings.kpi_max_lag_s,
            ),
            worker=projection.Worker(settings.resolved_database_url(), kpis or catalogue())
            if settings.kpi_worker == "process"
            else None,
        )
