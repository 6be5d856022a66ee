"""A service's own intake form (diagnostics' ``POST /v1/results``, a result's payload as
the body) through the ingestion door: a publisher's key with the type — rated and audited
as ``POST /v1/events``, the ``source`` its id — or an operator's key, by hand (audited, not
rated)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from iomflow.shared.auth import presented_key, principal_of
from iomflow.shared.errors import ApiError
from iomflow.shared.ingest.audit import Call
from iomflow.shared.ingest.auth import invalid_key, no_key, publisher_of, publisher_row
from iomflow.shared.ingest.ratelimit import take
from iomflow.shared.ingest.validation import read_body
from iomflow.shared.publishers import IngestTables, Outcome
from iomflow.shared.service import get_runtime

log = logging.getLogger(__name__)


@dataclass
class Intake:
    """Who submits through a service's own intake form, and that door's bookkeeping: a
    publisher (``source`` its id; rated and audited as ``POST /v1/events``) or an operator
    by hand (``source`` None: the body's, or the operator's; audited, not rated)."""

    call: Call
    event_type: str
    source: str | None
    operator: str | None = None

    def headers(self) -> dict[str, str]:
        """The rate headers of the answer (a publisher's)."""
        return self.call.headers()

    async def read(self, request: Request) -> Any:
        """The body as JSON within the size limit; 413/422 (audited) otherwise."""
        return await read_body(self.call, request)

    def _by(self) -> str:
        return f"оператор {self.operator}" if self.operator else f"издатель {self.source}"

    async def refuse(
        self, status: int, code: str, detail: str, *, event_id: Any = None, **extra: Any
    ) -> ApiError:
        """Audit a refusal of the submission (given back to the rate); the error to raise."""
        return await self.call.refuse(
            status,
            code,
            Outcome.INVALID if status in (409, 422) else Outcome.FORBIDDEN,
            detail,
            note=f"{self._by()}: {detail}",
            event_type=self.event_type,
            event_id=event_id,
            **extra,
        )

    async def accepted(self, event_id: str, detail: str) -> None:
        """Audit an accepted submission. Its effect is committed: a failed audit is logged,
        the answer stands."""
        try:
            await self.call.audit(
                [
                    {
                        "outcome": Outcome.ACCEPTED.value,
                        "status": 202,
                        "event_type": self.event_type,
                        "event_id": event_id,
                        "detail": f"{self._by()}: {detail}",
                    }
                ]
            )
        except Exception:
            log.exception("ingest audit failed for accepted %s %s", self.event_type, event_id)


async def intake(request: Request, tables: IngestTables, event_type: str) -> Intake:
    """The caller of a service's own intake form for ``event_type``: a publisher's key that
    may send the type (counted against its rate), or an operator's key; 401/403/429, audited,
    otherwise."""
    runtime = get_runtime(request)
    call = Call(runtime, tables, request.client.host if request.client else None)
    key = presented_key(request)
    if key is None:
        raise await no_key(call)
    row = await publisher_row(call, key)
    if row is not None:
        if row.revoked_at is not None:
            raise await invalid_key(call, revoked=True)
        publisher = publisher_of(row)
        if event_type not in publisher.event_types:
            raise await call.refuse(
                403,
                "type_not_allowed",
                Outcome.FORBIDDEN,
                f"издателю «{publisher.publisher_id}» не разрешено отправлять события типа "
                f"«{event_type}»; разрешены: {', '.join(sorted(publisher.event_types))}.",
                event_type=event_type,
                type=event_type,
                allowed=sorted(publisher.event_types),
            )
        await take(call, publisher, 1)
        return Intake(call, event_type, publisher.publisher_id)
    principal = await principal_of(request, key)
    if principal is None:
        raise await invalid_key(call, revoked=False)
    if not principal.holds("operator"):
        raise await call.refuse(
            403,
            "forbidden",
            Outcome.FORBIDDEN,
            "Отправить результат вручную может оператор (роль «operator») или издатель "
            "со своим ключом.",
            note=f"ключ «{principal.name}» без роли operator",
            event_type=event_type,
            role="operator",
        )
    return Intake(call, event_type, None, operator=principal.name)
