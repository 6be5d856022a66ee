"""The dashboard: one page in Russian, served by the service itself.

``GET /dashboard`` is a hand-written HTML page; its script and style sheet come from
``static/`` of this package (``GET /dashboard/assets/{name}``). The script reads the JSON
API of this service (``/v1/kpis``, ``/v1/municipalities/{id}/kpis``,
``/v1/kpis/{code}/series``) and draws the tables and the charts (inline SVG) itself: no
build step, no framework, nothing fetched from outside at run time.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from iomflow.shared.errors import ApiError

router = APIRouter(tags=["dashboard"])

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The files of ``static/`` that are served, with their types; nothing else is."""

HEADERS = {
    # Everything the page needs comes from here; no inline script, no other origin.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _static(name: str) -> bytes:
    return resources.files("iomflow.monitoring").joinpath("static", name).read_bytes()


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("dashboard", status_code=307)


@router.get(
    "/dashboard",
    summary="The dashboard (HTML, in Russian)",
    response_class=HTMLResponse,
    responses={200: {"description": "The page (HTML)"}},
)
async def page() -> Response:
    return Response(
        _static("dashboard.html"), media_type="text/html; charset=utf-8", headers=HEADERS
    )


@router.get("/dashboard/assets/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"Файл «{name}» не найден.")
    return Response(_static(name), media_type=media_type, headers=HEADERS)
