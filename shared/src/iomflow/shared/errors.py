"""Errors of the HTTP APIs: one shape for people and machines.

``{"detail": "<Russian sentence>", "code": "<stable machine code>", ...extra}`` with the
HTTP status; every service registers ``api_error_handler`` for ``ApiError``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers, self.extra = headers, extra


async def api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        status_code=exc.status,
        content={"detail": exc.detail, "code": exc.code, **exc.extra},
        headers=exc.headers,
    )
