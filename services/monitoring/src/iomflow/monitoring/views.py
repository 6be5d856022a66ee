"""What the API, the dashboard and the reports show: KPI answers by level, counts; and the
loaded facts that answers on demand (other dates, drill-down, series) are computed from."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.monitoring import domain, repository


@dataclass
class Cache:
    """Loaded facts and answers computed from them, kept while the projections do not change.

    The projections' signature (``repository.signature``: a few rows of marks written with
    every change) says whether they did; it is read at most every ``min_age_s`` (a
    dashboard polling during a burst must not reload the facts on every request), and the
    facts are loaded again after ``max_age_s`` in any case.
    """

    max_age_s: float = 300.0
    min_age_s: float = 5.0
    _signature: str | None = None
    _checked_at: float = 0.0
    _loaded_at: float = 0.0
    _facts: domain.Facts | None = None
    _answers: dict[Any, Any] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def signature(self) -> str | None:
        """The signature of the facts held (None: none held)."""
        return self._signature if self._facts is not None else None

    async def facts(
        self, sessions: async_sessionmaker[AsyncSession], *, fresh: bool = False
    ) -> domain.Facts:
        """The facts; reloaded if the projections changed (``fresh``: looked at now)."""
        return (await self.loaded(sessions, fresh=fresh))[1]

    async def loaded(
        self, sessions: async_sessionmaker[AsyncSession], *, fresh: bool = False
    ) -> tuple[str, domain.Facts]:
        """The facts and the signature they were loaded at."""
        async with self._lock:  # one load at a time: concurrent requests share it
            now = time.monotonic()
            if self._facts is not None and not fresh and now - self._checked_at < self.min_age_s:
                assert self._signature is not None
                return self._signature, self._facts
            rows = None
            async with sessions() as session:
                signature = await repository.signature(session)
                if (
                    self._facts is None
                    or signature != self._signature
                    or now - self._loaded_at >= self.max_age_s
                ):
                    rows = await repository.fetch(session)
            # The session is closed before the rows are built: SQLite's one connection
            # serves the consumer meanwhile.
            self._checked_at = now
            if rows is not None:
                self.keep(signature, await asyncio.to_thread(rows.build))
            assert self._facts is not None and self._signature is not None
            return self._signature, self._facts

    def keep(self, signature: str, facts: domain.Facts) -> None:
        """Hold ``facts``, loaded at ``signature`` (by whoever loaded them)."""
        if signature != self._signature:
            self._answers = {}
        self._signature, self._facts = signature, facts
        self._loaded_at = self._checked_at = time.monotonic()

    async def answer(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per key while the facts stay the same, in a worker thread: the
        service's event loop keeps consuming meanwhile."""
        answers = self._answers
        if key not in answers:
            answers[key] = await asyncio.to_thread(compute)
        return answers[key]


def counts(facts: domain.Facts, scope: domain.Scope, on: date) -> dict[str, dict[str, int]]:
    """Per level key: teachers, diagnosed (ever), with a route and supported (now)."""
    at = domain.end_of(on)
    tally = {
        "teachers": facts.tally("teachers", scope, at),
        "diagnosed": facts.tally("teachers", scope, at, facts.ever("diagnosed", at)),
        "with_route": facts.tally("teachers", scope, at, facts.holding("route", at)),
        "supported": facts.tally("teachers", scope, at, facts.holding("support", at)),
    }
    out = {
        mun: {name: found.get(mun, 0) for name, found in tally.items()}
        for mun in sorted(tally["teachers"])
    }
    region = {name: sum(found.values()) for name, found in tally.items()}
    return {"": region, **out}


def region(
    catalogue: domain.Catalogue, facts: domain.Facts, names: dict[str, str], on: date
) -> dict[str, Any]:
    """Every KPI for the region and each municipality as of ``on``."""
    per_mun = domain.evaluate(catalogue, facts, on, by="municipality")
    tally = counts(facts, domain.Scope(), on)
    return {
        "as_of": on.isoformat(),
        "source": catalogue.source,
        "region": {"counts": tally[""], "kpis": domain.evaluate(catalogue, facts, on)[None]},
        "municipalities": [
            {
                "municipality_id": mun,
                "name": names.get(mun or "", mun),
                "counts": tally.get(mun or "", {}),
                "kpis": values,
            }
            for mun, values in sorted(per_mun.items(), key=lambda kv: kv[0] or "")
        ],
    }
