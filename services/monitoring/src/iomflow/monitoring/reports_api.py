"""HTTP API of the yearly report: as JSON, as a workbook, as a printable page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response

from iomflow.monitoring import report
from iomflow.monitoring.api import context_of, region
from iomflow.shared.service import RuntimeDep

router = APIRouter(prefix="/v1/reports", tags=["reports"])

Year = Annotated[int, Path(ge=2000, le=2100, description="The year (the current one: as of today)")]


async def _report(runtime: Any, year: int, form: str = "json") -> Any:
    """The report for ``year`` as data (``form`` = "json"), a workbook ("xlsx") or a page
    ("html"), each computed once while the facts stay the same, off the event loop. The
    current year's is made from today's KPI snapshot, as ``/v1/kpis`` answers."""
    ctx = context_of(runtime)
    today = ctx.clock().date()
    on = report.as_of(year, today)  # refuses a year to come before anything is loaded
    answer = await region(runtime, on)
    found = await ctx.cache.answer(
        ("report", year, on, answer.get("computed_at")),
        lambda: report.content(ctx.catalogue, answer, year, on, final=year < today.year),
    )
    if form == "json":
        return found
    write = report.workbook if form == "xlsx" else report.html
    return await ctx.cache.answer(
        (f"report.{form}", year, on, answer.get("computed_at")), lambda: write(found)
    )


# The workbook and the page come first: "/2025.xlsx" must not reach "/{year}".
@router.get("/{year}.xlsx", summary="The yearly report as a workbook (Russian)")
async def yearly_xlsx(year: Year, runtime: RuntimeDep) -> Response:
    return Response(
        await _report(runtime, year, "xlsx"),
        media_type=report.XLSX,
        headers={"Content-Disposition": f'attachment; filename="monitoring-report-{year}.xlsx"'},
    )


@router.get(
    "/{year}/print", summary="The yearly report as a printable page", response_class=HTMLResponse
)
async def yearly_print(year: Year, runtime: RuntimeDep) -> HTMLResponse:
    return HTMLResponse(await _report(runtime, year, "html"))


@router.get("/{year}", summary="The yearly report: KPIs, municipalities, recommendations")
async def yearly(year: Year, runtime: RuntimeDep) -> dict[str, Any]:
    found = await _report(runtime, year)
    assert isinstance(found, dict)
    return found
