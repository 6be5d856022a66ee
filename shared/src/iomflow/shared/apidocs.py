"""The API's documentation pages, served from files of this package: nothing from outside.

``GET /docs`` is Swagger UI and ``GET /redoc`` ReDoc, both reading the service's
``/openapi.json``; their scripts and style sheets are vendored under
``static/apidocs/`` (versions and the command that fetched them in its README) and served
at ``GET /docs/assets/{name}``, so the pages work on a closed network, where FastAPI's
defaults (a CDN) leave them blank. Swagger UI's Authorize takes a key for the security
schemes of ``iomflow.shared.auth`` and keeps it across reloads; its validator badge, which
would send the document to validator.swagger.io, is off. Each page's Content-Security-Policy
lets it reach only this service: ReDoc 2 always draws Redocly's logo from cdn.redoc.ly,
and the policy keeps the browser from asking for it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from iomflow.shared.errors import ApiError

ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js.LICENSE.txt": ("swagger-ui", "text/plain; charset=utf-8"),
    "favicon-32x32.png": ("swagger-ui", "image/png"),
    "redoc.standalone.js": ("redoc", "text/javascript; charset=utf-8"),
    "redoc.standalone.js.LICENSE.txt": ("redoc", "text/plain; charset=utf-8"),
}
"""The files that are served (name -> folder under ``static/apidocs``, type); nothing else."""

SWAGGER_UI_PARAMETERS = {
    "persistAuthorization": True,  # the key entered in Authorize survives a reload
    "validatorUrl": None,  # no badge: it would send the document to validator.swagger.io
    "displayRequestDuration": True,
    "filter": True,  # a box to find an operation by its tag among a few dozen
}

POLICY = (
    "default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""Only this service. Inline styles: both pages write their own (Swagger UI in attributes,
ReDoc in style elements); a worker from a blob: ReDoc's search index; inline scripts only
by their hash (Swagger UI's start-up script, written by FastAPI)."""

INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def router() -> APIRouter:
    """``/docs``, ``/redoc`` and ``/docs/assets/{name}``: open to all, as the document is,
    and out of the document themselves."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = _base(request)
        page = get_swagger_ui_html(
            openapi_url=f"{base}{request.app.openapi_url}",
            title=f"{request.app.title} — Swagger UI",
            swagger_js_url=f"{base}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{base}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{base}/docs/assets/favicon-32x32.png",
            oauth2_redirect_url=None,  # the schemes are keys, not OAuth2
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        return _guarded(page)

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        base = _base(request)
        page = get_redoc_html(
            openapi_url=f"{base}{request.app.openapi_url}",
            title=f"{request.app.title} — ReDoc",
            redoc_js_url=f"{base}/docs/assets/redoc.standalone.js",
            redoc_favicon_url=f"{base}/docs/assets/favicon-32x32.png",
            with_google_fonts=False,
        )
        return _guarded(page)

    @router.get("/docs/assets/{name}")
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise ApiError(404, "not_found", f"Файл «{name}» не найден.")
        folder, media_type = ASSETS[name]
        return Response(
            _read(folder, name),
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    return router


def _base(request: Request) -> str:
    """The prefix the service is reached under behind a proxy (as FastAPI's own docs)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _guarded(page: HTMLResponse) -> HTMLResponse:
    """The page with its Content-Security-Policy: its own inline scripts by their hash."""
    hashes = [
        base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        for script in INLINE_SCRIPT.findall(bytes(page.body).decode())
    ]
    page.headers["Content-Security-Policy"] = POLICY.format(
        scripts="".join(f" 'sha256-{h}'" for h in hashes)
    )
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


@functools.cache
def _read(folder: str, name: str) -> bytes:
    """A vendored file, read once per process (3 MB in all)."""
    return (
        resources.files("iomflow.shared").joinpath("static", "apidocs", folder, name).read_bytes()
    )
