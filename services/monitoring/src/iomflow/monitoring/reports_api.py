"""HTTP API of the yearly report: as JSON, as a workbook, as a printable page and as a PDF;
and the index of the reports there are (the dashboard's links)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response

from iomflow.monitoring import domain, pdf, printout, report, repository, spreadsheet
from iomflow.monitoring.api import context_of, region
from iomflow.shared.service import RuntimeDep

router = APIRouter(prefix="/v1/reports", tags=["reports"])

Year = Annotated[int, Path(ge=2000, le=2100, description="The year (the current one: as of today)")]
PreparedBy = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=300,
        description="Who prepared the report, for its title page (default: the "
        "``IOMFLOW_REPORT_PREPARED_BY`` setting, «ЦНППМ»)",
    ),
]
Form = Literal["json", "xlsx", "html", "pdf"]


async def _report(runtime: Any, year: int, form: Form = "json", by: str | None = None) -> Any:
    """The report for ``year`` as data (``form`` = "json"), a workbook ("xlsx"), a page
    ("html") or a PDF of the page ("pdf"), each made once while the facts stay the same, off
    the event loop. The current year's is made from today's KPI snapshot, as ``/v1/kpis``
    answers; last year's values are those of ``/v1/kpis?as_of=`` the same day a year
    earlier; the tracked items are as ``/v1/tracked`` would say on the report's day (what
    is recorded now, judged then). Recording evidence changes no projection: what is
    recorded is part of the key the forms are kept by."""
    ctx = context_of(runtime)
    settings = runtime.settings
    today = ctx.clock().date()
    on = report.as_of(year, today)  # refuses a year to come before anything is loaded
    answer = await region(runtime, on)
    before = await region(runtime, report.a_year_before(on))
    prepared_by = by or settings.report_prepared_by
    async with runtime.sessions() as session:
        recorded = await repository.tracked_evidence(session)
    tracked = domain.tracked(ctx.catalogue, recorded, on)
    key = (
        year,
        on,
        answer.get("computed_at"),
        before.get("computed_at"),
        prepared_by,
        settings.region_name,
        tuple(
            sorted(
                (code, period, row.get("status"), str(row.get("recorded_at")))
                for (code, period), row in recorded.items()
            )
        ),
    )
    found = await ctx.cache.answer(
        ("report", *key),
        lambda: report.content(
            ctx.catalogue,
            answer,
            year,
            on,
            final=year < today.year,
            before=before,
            region_name=settings.region_name,
            prepared_by=prepared_by,
            made_on=today,
            tracked=tracked,
        ),
    )
    if form == "json":
        return found
    if form == "xlsx":
        return await ctx.cache.answer(("report.xlsx", *key), lambda: spreadsheet.workbook(found))
    page = await ctx.cache.answer(("report.html", *key), lambda: printout.html(found))
    if form == "html":
        return page
    return await ctx.cache.answer(("report.pdf", *key), lambda: pdf.render(page))


@router.get("", summary="The reports there are: the yearly report's forms, the analytics")
async def reports(runtime: RuntimeDep) -> dict[str, Any]:
    """The yearly report's addresses (``{year}`` to fill in), whether a PDF can be made
    here, and the diagnostics service's analytics workbook when its public address is set
    (``IOMFLOW_DIAGNOSTICS_PUBLIC_URL``; otherwise null)."""
    settings = runtime.settings
    diagnostics = settings.diagnostics_public_url
    return {
        "yearly": {
            "json": "v1/reports/{year}",
            "xlsx": "v1/reports/{year}.xlsx",
            "print": "v1/reports/{year}/print",
            "pdf": "v1/reports/{year}.pdf",
        },
        "pdf_engine": pdf.engine(),
        "prepared_by": settings.report_prepared_by,
        "analytics_xlsx": f"{diagnostics.rstrip('/')}/v1/analytics.xlsx" if diagnostics else None,
    }


# The workbook, the PDF and the page come first: "/2025.xlsx" must not reach "/{year}".
@router.get("/{year}.xlsx", summary="The yearly report as a workbook (Russian)")
async def yearly_xlsx(year: Year, runtime: RuntimeDep, prepared_by: PreparedBy = None) -> Response:
    return Response(
        await _report(runtime, year, "xlsx", prepared_by),
        media_type=spreadsheet.XLSX,
        headers={"Content-Disposition": f'attachment; filename="monitoring-report-{year}.xlsx"'},
    )


@router.get(
    "/{year}.pdf",
    summary="The yearly report as a PDF (the printable page, A4)",
    description="Printed by headless Chromium where it is installed, else by WeasyPrint; "
    "503 with a Russian text saying what to install when neither is there.",
    response_class=Response,
    responses={
        200: {"content": {pdf.PDF: {"schema": {"type": "string", "format": "binary"}}}},
        503: {"description": "No PDF printer on the server, or it failed or took too long"},
    },
)
async def yearly_pdf(year: Year, runtime: RuntimeDep, prepared_by: PreparedBy = None) -> Response:
    return Response(
        await _report(runtime, year, "pdf", prepared_by),
        media_type=pdf.PDF,
        headers={"Content-Disposition": f'inline; filename="monitoring-report-{year}.pdf"'},
    )


@router.get(
    "/{year}/print", summary="The yearly report as a printable page", response_class=HTMLResponse
)
async def yearly_print(
    year: Year, runtime: RuntimeDep, prepared_by: PreparedBy = None
) -> HTMLResponse:
    return HTMLResponse(await _report(runtime, year, "html", prepared_by))


@router.get(
    "/{year}",
    summary="The yearly report: title, conclusions, KPIs beside last year's, municipalities, "
    "recommendations",
)
async def yearly(year: Year, runtime: RuntimeDep, prepared_by: PreparedBy = None) -> dict[str, Any]:
    found = await _report(runtime, year, "json", prepared_by)
    assert isinstance(found, dict)
    return found
