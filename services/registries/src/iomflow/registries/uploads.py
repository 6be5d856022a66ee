"""The registrar's uploads page: one page in Russian, served by the service itself.

``GET /uploads`` is a hand-written HTML page; its script and style sheet come from
``static/`` of this package (``GET /uploads/assets/{name}``), after the pages' shared ones
(``/ui/assets/iomflow.js``, ``iomflow.css``: the session, API calls, tables). The script
signs the person in (the session cookie), then uses this service's JSON API as any client
would: ``/v1/registers`` (the registers, their columns), ``POST
/v1/registers/{register}/imports`` (a dry run first, then the import the registrar
confirms), ``/v1/imports/{id}`` (progress, the preview, the row errors), and links to
``/v1/registers/{register}/template.xlsx``, ``/v1/imports/{id}/marked.xlsx`` and
``/v1/imports/{id}/errors.xlsx``. No build step, no framework, nothing from outside.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from iomflow.shared.signin import SCRIPT, STYLE, Files

router = APIRouter(tags=["pages"])

FILES = Files("iomflow.registries", {"uploads.js": SCRIPT, "uploads.css": STYLE})


@router.get(
    "/uploads",
    summary="The registrar's uploads page (HTML, in Russian): choose a register, upload a "
    "sheet, see the dry run, confirm, download the errors marked in the sheet",
    response_class=HTMLResponse,
)
async def uploads_page() -> Response:
    return FILES.page("uploads.html")


@router.get("/uploads/assets/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    return FILES.asset(name)
