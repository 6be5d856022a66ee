"""The unit of work: one transaction, the events it stages, and what a handler is given.

``Unit`` is a transaction's session plus the events staged in it. Staging only collects
rows; ``flush`` writes them into the outbox in one multi-row statement, inside the
transaction, so an event exists if and only if the state change that caused it does.
``Runtime.transaction()`` (``iomflow.shared.service``) opens one, flushes it before the
commit and wakes the relay after it: nobody calls ``wake()`` by hand.

``Deps`` is what a stream handler receives with its batch of events: the unit of work, the
service's context (built once at start: rules, framework, caches) and the clock. A handler
that finds an event it can never apply calls ``deps.reject(event, refused)`` instead of
raising, so the rest of its batch still commits together; the consumer dead-letters the
rejected entries with their code. An event staged with ``cause=`` continues the trace of
the entry that caused it (the consumer records each entry's trace context).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from opentelemetry import propagate
from opentelemetry.trace import Span
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.shared import wire
from iomflow.shared.contracts import Event
from iomflow.shared.errors import Rejected
from iomflow.shared.outbox import Outbox

C = TypeVar("C")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Unit:
    """A transaction's session and the outbox rows it stages (written at ``flush``)."""

    def __init__(
        self,
        session: AsyncSession,
        outbox: Outbox,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.session = session
        self.outbox = outbox
        self.clock = clock
        self._rows: list[dict[str, Any]] = []
        self.flushed = 0
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction has committed (e.g. forget a cache of what it
        changed: forgotten before, another task could fill it again with the old rows)."""
        self._after_commit.append(action)

    def committed(self) -> None:
        """The transaction committed: run what waited for it."""
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            action()

    def now(self) -> datetime:
        return self.clock()

    # --- staging ---------------------------------------------------------------------

    def trace_of(self, cause: Event[Any] | None) -> dict[str, str]:
        """The trace context a staged event carries: the current span's."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    def stage(self, stream: str, *events: Event[Any], cause: Event[Any] | None = None) -> None:
        """Stage events for ``stream``; they are published after the commit, in order."""
        if not events:
            return
        carrier = self.trace_of(cause)
        now = self.now()
        self._rows.extend(
            {
                "event_id": str(event.event_id),
                "stream": stream,
                "type": event.type,
                "fields": wire.encode(event, carrier),
                "created_at": now,
            }
            for event in events
        )

    def stage_entry(self, stream: str, type_: str, fields: Mapping[str, str]) -> None:
        """Stage entry fields as they are (a dead letter a service writes itself). The row
        gets an id of its own: the same event may be dead-lettered again after a replay."""
        self._rows.append(
            {
                "event_id": str(uuid.uuid4()),
                "stream": stream,
                "type": type_,
                "fields": dict(fields),
                "created_at": self.now(),
            }
        )

    @property
    def staged(self) -> int:
        """Rows staged and not yet flushed."""
        return len(self._rows)

    def mark(self) -> int:
        """Where a savepoint starts, for ``discard``."""
        return len(self._after_commit)

    def discard(self, mark: int = 0) -> None:
        """Forget what was staged since the last flush, and the after-commit actions since
        ``mark`` (their savepoint was rolled back)."""
        self._rows.clear()
        del self._after_commit[mark:]

    async def flush(self) -> int:
        """Write the staged rows into the outbox, in one statement; how many."""
        rows, self._rows = self._rows, []
        if rows:
            await self.session.execute(insert(self.outbox.table), rows)
            self.flushed += len(rows)
        return len(rows)


class Deps(Unit, Generic[C]):
    """What a stream handler is given with its batch: the unit of work, the service's
    context, the clock, and where to put events it refuses."""

    def __init__(
        self,
        session: AsyncSession,
        outbox: Outbox,
        context: C,
        clock: Callable[[], datetime] = utc_now,
        traces: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__(session, outbox, clock)
        self.ctx = context
        self.traces: Mapping[str, Mapping[str, str]] = traces or {}
        self.spans: dict[str, Span] = {}  # the sampled entries' own spans, by event id
        self.entries: dict[str, Mapping[str, str]] = {}  # the stream entries, by event id
        self.rejected: dict[str, Rejected] = {}

    def fields_of(self, event: Event[Any]) -> Mapping[str, str] | None:
        """The stream entry the event came in (its ``data`` is the payload exactly as it was
        sent), or None where it did not come from a stream (an HTTP request)."""
        return self.entries.get(str(event.event_id))

    def span_of(self, event: Event[Any]) -> Span | None:
        """The entry's own span where it is sampled (to name what the event became on it),
        else None: an unsampled entry has none, and nothing is recorded for it."""
        return self.spans.get(str(event.event_id))

    def trace_of(self, cause: Event[Any] | None) -> dict[str, str]:
        if cause is not None:
            found = self.traces.get(str(cause.event_id))
            if found is not None:
                return dict(found)
        return super().trace_of(cause)

    def reject(self, event: Event[Any], refused: Rejected) -> None:
        """``event`` can never be applied: it is dead-lettered with ``refused.code`` (the
        handler writes nothing for it; the rest of the batch goes on)."""
        self.rejected[str(event.event_id)] = refused

    def is_rejected(self, event: Event[Any]) -> bool:
        return str(event.event_id) in self.rejected

    def accepted(self, events: Iterable[Event[Any]]) -> list[Event[Any]]:
        """The events of ``events`` not rejected so far."""
        return [e for e in events if str(e.event_id) not in self.rejected]


@contextlib.asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    context: C,
    clock: Callable[[], datetime] = utc_now,
) -> AsyncIterator[Deps[C]]:
    """One transaction as a unit of work (what ``Runtime.transaction`` is, for code that
    runs without a service: admin commands on the service's database). What it staged is
    written before the commit; publishing is the relay's, whenever the service runs."""
    async with sessions() as session, session.begin():
        deps = Deps(session, outbox, context, clock)
        yield deps
        await deps.flush()
    deps.committed()
