"""HTTP API of monitoring: KPI values by level, as of any date, with status and forecast;
the alerts, the catalogue and the tracked items of Appendix 1. Thin: the use cases are
``service``, the answers' models ``schemas``."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from iomflow.monitoring import domain, repository, schemas, service
from iomflow.monitoring.service import alert_read, context_of, region
from iomflow.shared.auth import Operator
from iomflow.shared.problems import Page, Paging, page, paging, problems
from iomflow.shared.service import RuntimeDep, SessionDep

__all__ = ["alert_read", "context_of", "region", "router"]

router = APIRouter(prefix="/v1", tags=["monitoring"])

ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(value: object) -> object:
    """Only ``YYYY-MM-DD``: pydantic would read «0» as a Unix time (1970-01-01)."""
    if isinstance(value, str) and not ISO_DAY.match(value):
        raise PydanticCustomError("date_parsing", "Input should be a date (YYYY-MM-DD)")
    return value


AsOf = Annotated[
    date | None,
    BeforeValidator(_iso_day),
    Query(description="Values as of the end of this day, YYYY-MM-DD (default today; not later)"),
]


@router.get(
    "/kpis",
    summary="Every KPI for the region and each municipality, as of a date",
    description="Today's answer is the maintained snapshot (``computed_at`` says when it was "
    "computed: a few seconds after the last change, at most ``kpi_max_lag_s`` behind "
    "during a burst of events); another date's is computed on demand.",
    response_model=schemas.RegionKpisRead,
)
async def kpis(runtime: RuntimeDep, as_of: AsOf = None) -> dict[str, Any]:
    return await region(runtime, service.day(runtime, as_of))


@router.get(
    "/municipalities/{municipality_id}/kpis",
    summary="A municipality's KPIs and each of its organisations'",
    response_model=schemas.MunicipalityRead,
    responses=problems(404, s404="Нет такого муниципалитета (code: unknown_municipality)"),
)
async def municipality_kpis(
    municipality_id: str, runtime: RuntimeDep, as_of: AsOf = None
) -> dict[str, Any]:
    return await service.municipality(runtime, municipality_id, service.day(runtime, as_of))


@router.get(
    "/kpis/{code}/series",
    summary="One KPI over time (monthly), for charts",
    response_model=schemas.SeriesRead,
    responses=problems(404, s404="Нет такого показателя в каталоге (code: unknown_kpi)"),
)
async def kpi_series(
    code: str,
    runtime: RuntimeDep,
    municipality_id: str | None = None,
    months: Annotated[int, Query(ge=1, le=60)] = 12,
    as_of: AsOf = None,
) -> dict[str, Any]:
    on = service.day(runtime, as_of)
    return await service.series(runtime, code, municipality_id, months, on)


@router.get(
    "/alerts",
    summary="Alerts (the open ones, or all), newest first, a page at a time",
    response_model=Page[schemas.AlertRead],
)
async def list_alerts(
    session: SessionDep,
    paged: Annotated[Paging, Depends(paging(max_limit=1000, default=200))],
    status: Literal["open", "all"] = "open",
) -> Page[Any]:
    items, total = await service.alerts(session, status == "open", paged.offset, paged.limit)
    return page(items, total, paged)


class CatalogueRead(domain.Catalogue):
    """The KPI catalogue in force (``data/kpis.json``) and the region it is for."""

    region_name: str


@router.get(
    "/catalogue",
    summary="The KPI catalogue in force, and the region it is for",
    response_model=CatalogueRead,
)
async def catalogue(runtime: RuntimeDep) -> dict[str, Any]:
    return {
        **context_of(runtime).catalogue.model_dump(mode="json"),
        "region_name": runtime.settings.region_name,
    }


@router.get(
    "/tracked",
    summary="Rows of Appendix 1 that are measures taken: each period's status and evidence",
    response_model=list[schemas.TrackedRead],
)
async def list_tracked(runtime: RuntimeDep, session: SessionDep) -> list[dict[str, Any]]:
    return await service.tracked(runtime, session)


class TrackedRecord(BaseModel):
    status: domain.TrackedState = Field(description="done | in_progress | not_done")
    evidence: str = Field(
        min_length=3,
        max_length=4000,
        description="What shows it: a document's name and number, a link, a note",
    )


@router.put(
    "/tracked/{code}/{period}",
    summary="Record a tracked item's status for a period, with its evidence (operator)",
    response_model=schemas.TrackedPeriodRead,
    responses=problems(404, s404="Нет такого пункта в каталоге (code: unknown_tracked)"),
)
async def record_tracked(
    code: str,
    period: str,
    body: TrackedRecord,
    runtime: RuntimeDep,
    session: SessionDep,
    who: Operator,
) -> dict[str, Any]:
    return await service.record_tracked(
        runtime, session, code, period, body.status, body.evidence, who.name
    )


@router.get("/stats", summary="Members and facts kept", response_model=schemas.StatsRead)
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.counts(session)
