"""One ingestion request's bookkeeping: who, from where, what it counted against the
publisher's rate, and the ``ingest_audit`` rows it leaves.

Every request, accepted or refused, leaves rows in ``ingest_audit``, written in their own
transaction after the answer is decided; a refusal gives back what the request counted,
is audited, then raised (``Call.refuse``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from iomflow.shared.errors import ApiError
from iomflow.shared.ingest.ratelimit import Rate, refund
from iomflow.shared.publishers import IngestTables, Outcome
from iomflow.shared.service import Runtime


@dataclass
class Call:
    """One ingestion request: who, from where, what it counted against the publisher's
    rate; refusals give the count back, are audited, then raised."""

    runtime: Runtime[Any]
    tables: IngestTables
    remote_addr: str | None
    key_hint: str | None = None
    publisher_id: str | None = None
    counted: list[tuple[str, int]] = field(default_factory=list)  # (rate key, events)
    rate: Rate | None = None

    def headers(self) -> dict[str, str]:
        """The rate headers of the answer (none before the publisher is known)."""
        return self.rate.headers() if self.rate is not None else {}

    async def audit(self, rows: Sequence[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        base = {
            "at": now,
            "publisher_id": self.publisher_id,
            "key_hint": self.key_hint,
            "remote_addr": (self.remote_addr or "")[:100] or None,
            "event_type": None,
            "event_id": None,
            "detail": None,
        }
        values = []
        for row in rows:
            value = {**base, **row}
            if value["event_type"] is not None:
                value["event_type"] = str(value["event_type"])[:200]
            if value["event_id"] is not None:
                value["event_id"] = str(value["event_id"])[:36]
            if value["detail"] is not None:
                value["detail"] = str(value["detail"])[:1000]
            values.append(value)
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(insert(self.tables.audit), values)

    async def refuse(
        self,
        status: int,
        code: str,
        outcome: Outcome,
        detail: str,
        *,
        note: str | None = None,
        event_type: Any = None,
        event_id: Any = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> ApiError:
        """Give back what the request counted (a refusal does not use the rate), audit the
        refusal (in its own transaction); the error to raise."""
        await refund(self)
        await self.audit(
            [
                {
                    "outcome": outcome.value,
                    "status": status,
                    "event_type": event_type if isinstance(event_type, str) else None,
                    "event_id": event_id if isinstance(event_id, str) else None,
                    "detail": f"{code}: {note or detail}",
                }
            ]
        )
        return ApiError(
            status, code, detail, headers={**self.headers(), **(headers or {})}, **extra
        )

    async def unavailable(self, exc: Exception) -> ApiError:
        """The stream (Redis) failed: 503, sent again later."""
        return await self.refuse(
            503,
            "unavailable",
            Outcome.UNAVAILABLE,
            "Поток событий временно недоступен; повторите позже.",
            note=f"redis: {exc}",
            headers={"Retry-After": "5"},
        )
