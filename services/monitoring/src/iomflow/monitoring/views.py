"""What the API, the dashboard and the reports show: KPI answers by level, counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.monitoring import domain, repository


@dataclass
class Cache:
    """Loaded facts and computed answers, kept while the projections do not change.

    A cheap signature (counts and latest times of facts and members) says whether they
    did; a member's changed attributes alone do not move it, so answers are also renewed
    after ``max_age_s``. Under a stream of events they are renewed at most every
    ``min_age_s``: a dashboard polling during a burst must not starve the consumer.
    """

    max_age_s: float = 60.0
    min_age_s: float = 5.0
    _signature: tuple[Any, ...] | None = None
    _loaded_at: float = 0.0
    _facts: domain.Facts | None = None
    _answers: dict[Any, Any] = field(default_factory=dict)

    async def facts(self, session: AsyncSession) -> domain.Facts:
        age = time.monotonic() - self._loaded_at
        if self._facts is not None and age < self.min_age_s:
            return self._facts
        signature = await repository.signature(session)
        if self._facts is None or signature != self._signature or age >= self.max_age_s:
            self._facts = await repository.load(session)
            self._signature, self._loaded_at = signature, time.monotonic()
            self._answers = {}
        return self._facts

    async def answer(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per key while the facts stay the same, in a worker thread: the
        service's event loop keeps consuming meanwhile."""
        if key not in self._answers:
            self._answers[key] = await asyncio.to_thread(compute)
        return self._answers[key]


def counts(facts: domain.Facts, scope: domain.Scope, on: date) -> dict[str, dict[str, int]]:
    """Per level key: teachers, diagnosed (ever), with a route and supported (now)."""
    at = domain.end_of(on)
    teachers = [m for m in facts.members["teachers"] if m.present(at) and scope.holds(m)]
    group = {m.member_id: m.municipality_id for m in teachers}

    def who(kind: str, current: bool) -> set[str]:
        return {
            f.member_id
            for f in facts.by_kind[kind]
            if (f.holds(at) if current else f.start <= at) and f.member_id in group
        }

    sets = {
        "diagnosed": who("diagnosed", False),
        "with_route": who("route", True),
        "supported": who("support", True),
    }
    names = ("teachers", "diagnosed", "with_route", "supported")
    out: dict[str, dict[str, int]] = {}
    for member_id, mun in group.items():
        row = out.setdefault(mun, dict.fromkeys(names, 0))
        row["teachers"] += 1
        for name, ids in sets.items():
            row[name] += member_id in ids
    region = {k: sum(r[k] for r in out.values()) for k in names}
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
