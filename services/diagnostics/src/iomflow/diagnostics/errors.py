"""Refusals of the diagnostics use cases."""

from __future__ import annotations

from iomflow.shared.streams import Rejected


class Refused(Rejected):
    """A result or a command that breaks a rule: ``status`` over HTTP, a dead letter with
    ``code`` as its reason on a stream. ``detail`` is for people, in Russian."""

    def __init__(self, code: str, detail: str, status: int = 422) -> None:
        super().__init__(detail, code)
        self.detail, self.status = detail, status
