"""HTTP API of the yearly report: as JSON, as a workbook, as a printable page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response

from iomflow.monitoring import report, repository
from iomflow.monitoring.api import cache_of, catalogue_of
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1/reports", tags=["reports"])

Year = Annotated[int, Path(ge=2000, le=2100, description="The year (the current one: as of today)")]


async def _report(runtime: Any, session: Any, year: int, form: str = "json") -> Any:
    """The report for ``year`` as data (``form`` = "json"), a workbook ("xlsx") or a page
    ("html"), each computed once while the facts stay the same, off the event loop."""
    today = datetime.now(UTC).date()
    on = report.as_of(year, today)  # refuses a year to come before anything is loaded
    cache = cache_of(runtime)
    facts = await cache.facts(session)
    names = await repository.municipality_names(session)
    found = await cache.answer(
        ("report", year, on),
        lambda: report.yearly(catalogue_of(runtime), facts, names, year, today),
    )
    if form == "json":
        return found
    write = report.workbook if form == "xlsx" else report.html
    return await cache.answer((f"report.{form}", year, on), lambda: write(found))


# The workbook and the page come first: "/2025.xlsx" must not reach "/{year}".
@router.get("/{year}.xlsx", summary="The yearly report as a workbook (Russian)")
async def yearly_xlsx(year: Year, runtime: RuntimeDep, session: SessionDep) -> Response:
    return Response(
        await _report(runtime, session, year, "xlsx"),
        media_type=report.XLSX,
        headers={"Content-Disposition": f'attachment; filename="monitoring-report-{year}.xlsx"'},
    )


@router.get(
    "/{year}/print", summary="The yearly report as a printable page", response_class=HTMLResponse
)
async def yearly_print(year: Year, runtime: RuntimeDep, session: SessionDep) -> HTMLResponse:
    return HTMLResponse(await _report(runtime, session, year, "html"))


@router.get("/{year}", summary="The yearly report: KPIs, municipalities, recommendations")
async def yearly(year: Year, runtime: RuntimeDep, session: SessionDep) -> dict[str, Any]:
    found = await _report(runtime, session, year)
    assert isinstance(found, dict)
    return found
