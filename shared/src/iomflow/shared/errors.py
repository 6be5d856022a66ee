"""Errors of the HTTP APIs: one shape for people and machines.

RFC 9457 problem details (``iomflow.shared.problems``): ``detail`` a Russian sentence,
``code`` a stable machine code, extra members beside them; every service registers
``api_error_handler`` for ``ApiError`` and ``Refused``. A use case raises ``Refused``: over
HTTP it is answered with its status, on a stream it is a dead letter with its code as the
reason. Nothing here depends on the stream consumer (``streams`` imports ``Rejected``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from iomflow.shared import problems


class Rejected(Exception):
    """An event that can never be applied (it breaks a rule of the domain, not a transient
    condition): its entry goes to the dead-letter stream at once, with ``code`` as its
    ``dlq_reason`` and the message as its ``dlq_error``. A handler passes it to
    ``deps.reject(event, …)``; raised, it costs its whole batch a retry entry by entry."""

    def __init__(self, message: str, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code


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


class Refused(Rejected):
    """A command or an event that breaks a rule: ``status`` over HTTP, a dead letter with
    ``code`` as its reason on a stream. ``detail`` is for people, in Russian."""

    def __init__(self, code: str, detail: str, status: int = 422, **extra: Any) -> None:
        super().__init__(detail, code)
        self.detail, self.status, self.extra = detail, status, extra


async def api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, Refused):
        exc = ApiError(exc.status, exc.code, exc.detail, **exc.extra)
    assert isinstance(exc, ApiError)
    return problems.response(exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extra)
