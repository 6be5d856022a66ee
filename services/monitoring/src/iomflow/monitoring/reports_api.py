"""HTTP API of the yearly report: as JSON, as a workbook, as a printable page and as a PDF;
and the index of the reports there are (the dashboard's links)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response

from iomflow.monitoring import pdf, schemas, spreadsheet
from iomflow.monitoring.service import yearly_report as _report
from iomflow.shared.problems import binary, problems
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


@router.get(
    "",
    summary="The reports there are: the yearly report's forms, the analytics",
    response_model=schemas.ReportsRead,
)
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
@router.get(
    "/{year}.xlsx",
    summary="The yearly report as a workbook (Russian)",
    response_class=Response,
    responses=binary(spreadsheet.XLSX, "The workbook (Excel)"),
)
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
        **binary(pdf.PDF, "The PDF"),
        **problems(503, s503="No PDF printer on the server, or it failed or took too long"),
    },
)
async def yearly_pdf(year: Year, runtime: RuntimeDep, prepared_by: PreparedBy = None) -> Response:
    return Response(
        await _report(runtime, year, "pdf", prepared_by),
        media_type=pdf.PDF,
        headers={"Content-Disposition": f'inline; filename="monitoring-report-{year}.pdf"'},
    )


@router.get(
    "/{year}/print",
    summary="The yearly report as a printable page",
    response_class=HTMLResponse,
    responses={200: {"description": "The page (HTML, A4)"}},
)
async def yearly_print(
    year: Year, runtime: RuntimeDep, prepared_by: PreparedBy = None
) -> HTMLResponse:
    return HTMLResponse(await _report(runtime, year, "html", prepared_by))


@router.get(
    "/{year}",
    summary="The yearly report: title, conclusions, KPIs beside last year's, municipalities, "
    "recommendations",
    response_model=schemas.ReportRead,
)
async def yearly(year: Year, runtime: RuntimeDep, prepared_by: PreparedBy = None) -> dict[str, Any]:
    found = await _report(runtime, year, "json", prepared_by)
    assert isinstance(found, dict)
    return found
