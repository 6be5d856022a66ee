"""The KPI answer of today, maintained: what ``GET /v1/kpis`` (and ``/metrics``, the
current year's report, the dashboard and the alert check) answer from.

Why a snapshot. Every KPI counts distinct members over dated facts with conditions from
the catalogue (data, not code), as of a date, with a pace over the last 90 days and a
year-on-year comparison. Kept up to date event by event, that is a counter per KPI,
level, accumulation and date whose every change needs what the facts were before: the
catalogue's generality would be gone. Recomputing it all is simple and exact — the same
``domain.evaluate`` the tests and the rebuild check — but on the full region (40,000
teachers, 200,000 facts) it takes a second or more, and recomputing on the request after
every change competes with the consumer exactly when events flow. So the answer for the
region and its municipalities *as of today* is computed once per change of the
projections, kept, and served as it is:

- **what changed**: the handlers mark the projections changed in the same transaction as
  their writes (``repository.mark``, a few rows); their count, sum and latest time are the
  projections' signature, read in a fraction of a millisecond;
- **renewed by the job** (``run``): it looks every ``refresh_s``; a new snapshot is
  computed once the signature has stayed the same for ``quiet_s`` — a burst of events is
  not followed by a recompute per batch — or, while changes never stop, once the snapshot
  is ``max_lag_s`` old; and when the day changes. One replica computes at a time (a
  PostgreSQL advisory lock, as for the alert check); the snapshot is stored in
  ``kpi_snapshots`` with the signature it was computed at, and every replica takes it into
  memory: a request reads memory, the first one after a start one row;
- **renewed by a request** only when that is cheap: a request that finds the snapshot
  behind the signature waits for a new one if computing one last took at most
  ``inline_s`` (a small region: the answer is exact right after the events, as before),
  and otherwise gets the snapshot it has — ``computed_at`` says how old it is. Renewals
  are one at a time and spaced so that they take at most ``budget`` of the time.

Other dates, drill-down to organisations and series are computed on demand from the
loaded facts (``views.Cache``), which a renewal leaves loaded.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.monitoring import domain, repository, views
from iomflow.monitoring.repository import Stored
from iomflow.shared import db
from iomflow.shared.unit import utc_now

log = logging.getLogger(__name__)

NAME = "region"
LOCK = 7_204_612  # one replica renews at a time (PostgreSQL advisory lock)

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Policy:
    """When the snapshot is renewed."""

    refresh_s: float = 1.0
    """How often the job looks at the projections' signature."""
    quiet_s: float = 3.0
    """The job renews once the projections have not changed for this long…"""
    max_lag_s: float = 60.0
    """…or once the snapshot is this old while they keep changing."""
    inline_s: float = 0.5
    """A request waits for a renewal when the last one took at most this long."""
    budget: float = 0.25
    """The share of time renewals may take: after one that took t, the next starts no
    sooner than t × (1 / budget − 1) later."""


@dataclass(frozen=True)
class Snapshot:
    stored: Stored
    answer: dict[str, Any]
    read_at: int = -1
    """When (in this process's order of looks) the signature it was computed at was read:
    it holds every change committed before."""


Evaluated = tuple[str, dict[str, Any], float]
"""What a renewal computes: the projections' signature it read, the answer, and the
seconds the work took (where it ran: a worker's start is not counted)."""


def evaluate_elsewhere(database_url: str, catalogue: str, day: date) -> Evaluated:
    """A renewal's work in a worker process: load the facts from the database, evaluate
    today's answer (``catalogue``: the catalogue as JSON)."""
    return asyncio.run(
        _evaluate(database_url, domain.Catalogue.model_validate_json(catalogue), day)
    )


async def _evaluate(database_url: str, catalogue: domain.Catalogue, day: date) -> Evaluated:
    started = time.perf_counter()
    engine = db.create_engine(database_url)
    try:
        sessions = db.sessionmaker(engine)
        version, facts = await views.Cache().loaded(sessions, fresh=True)
        async with sessions() as session:
            names = await repository.municipality_names(session)
        answer = views.region(catalogue, facts, names, day)
        return version, answer, time.perf_counter() - started
    finally:
        await engine.dispose()


class Worker:
    """Renewals evaluated in a process of their own. Evaluating the full region is a
    second or more of pure Python: in a thread of the service it holds the interpreter
    lock, and the consumer beside it ran at half speed for as long (the latency of the
    chain's last step tripled while a snapshot was renewed). The worker is started at the
    first renewal and kept; it reads the service's own database (SQLite's WAL lets it read
    while the service writes)."""

    def __init__(self, database_url: str, catalogue: domain.Catalogue) -> None:
        self.database_url = database_url
        self.catalogue = catalogue.model_dump_json()
        self._pool: ProcessPoolExecutor | None = None

    async def evaluate(self, day: date) -> Evaluated:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, evaluate_elsewhere, self.database_url, self.catalogue, day
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class Projection:
    """Today's KPI answer, kept in ``kpi_snapshots`` and in memory."""

    def __init__(
        self,
        catalogue: domain.Catalogue,
        cache: views.Cache,
        policy: Policy | None = None,
        clock: Callable[[], datetime] = utc_now,
        ticks: Callable[[], float] = time.monotonic,
        worker: Worker | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.cache = cache
        self.worker = worker
        """Where renewals are evaluated (None: here, in a thread)."""
        self.policy = policy or Policy()
        self.clock = clock
        self.ticks = ticks
        self.renewals = 0
        """How many snapshots this process computed."""
        self.last_s: float | None = None
        """How long the last renewal took (None: none yet in this process)."""
        self._current: Snapshot | None = None
        self._looks = itertools.count()  # orders the looks at the signature
        self._next_at = 0.0  # when (time.monotonic) the next renewal may start: the budget
        self._seen: str | None = None  # the signature the job saw last …
        self._seen_at = 0.0  # … and since when
        self._lock = asyncio.Lock()  # one renewal at a time in this process

    @property
    def current(self) -> Snapshot | None:
        """The snapshot in memory (None before the first answer or look)."""
        return self._current

    def today(self) -> date:
        return self.clock().date()

    # --- answering ------------------------------------------------------------------------

    async def answer(self, sessions: Sessions) -> dict[str, Any]:
        """Today's answer (see the module's docstring)."""
        day = self.today()
        asked = next(self._looks)
        async with sessions() as session:
            version = await repository.signature(session)
            found = self._current
            if found is None or found.stored.as_of != day or found.stored.version != version:
                found = await self._take_stored(session, day) or found
        if found is not None and found.stored.as_of == day:
            if found.stored.version == version:
                return found.answer
            cheap = self.last_s is not None and self.last_s <= self.policy.inline_s
            if not cheap:
                return found.answer  # the job renews it; computed_at says when it was made
        renewed = await self._renew(sessions, asked)
        assert renewed is not None
        return renewed.answer

    async def _take_stored(self, session: AsyncSession, day: date) -> Snapshot | None:
        """The stored snapshot of ``day``, if newer than the one in memory (computed by
        another replica, or before a restart)."""
        heading = await repository.snapshot_heading(session, NAME)
        if heading is None or heading.as_of != day:
            return None
        mine = self._current
        if mine is not None and mine.stored == heading:
            return mine
        answer = await repository.snapshot_answer(session, NAME, heading.version)
        if answer is None:
            return None  # replaced meanwhile: the next look takes the new one
        self._current = Snapshot(heading, answer)
        return self._current

    # --- renewing -------------------------------------------------------------------------

    async def run(self, sessions: Sessions) -> None:
        """The job: look every ``refresh_s``, renew when due, for the life of the service."""
        while True:
            try:
                await self.refresh(sessions)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("KPI snapshot: refresh failed; will try again")
            await asyncio.sleep(self.policy.refresh_s)

    async def refresh(self, sessions: Sessions) -> bool:
        """The job's look: take a newer stored snapshot, or renew it when due; whether this
        call computed one."""
        day = self.today()
        now = self.ticks()
        asked = next(self._looks)
        async with sessions() as session:
            version = await repository.signature(session)
            found = await self._take_stored(session, day) or self._current
        if version != self._seen:
            self._seen, self._seen_at = version, now
        if found is not None and found.stored.as_of == day:
            if found.stored.version == version:
                return False
            quiet = now - self._seen_at >= self.policy.quiet_s
            age = self.clock() - found.stored.computed_at
            if not quiet and age < timedelta(seconds=self.policy.max_lag_s):
                return False
        before = self.renewals
        await self._renew(sessions, asked, locked=True)
        return self.renewals > before

    async def _renew(
        self, sessions: Sessions, asked: int, *, locked: bool = False
    ) -> Snapshot | None:
        """A snapshot with every change committed before ``asked``: computed here, one at a
        time, within the budget. ``locked``: only if no other replica is computing one now
        (None then)."""
        async with self._lock:
            found = self._current
            if found is not None and found.stored.as_of == self.today() and found.read_at >= asked:
                return found  # renewed while this one waited
            wait = self._next_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            return await self._compute(sessions, locked=locked)

    async def _compute(self, sessions: Sessions, *, locked: bool) -> Snapshot | None:
        started = time.monotonic()
        async with sessions() as holder:
            if locked and holder.get_bind().dialect.name != "sqlite":
                # Held by this session's transaction until it closes, below. (SQLite: one
                # process, and its one connection must not be held while computing.)
                got = await holder.execute(text(f"SELECT pg_try_advisory_xact_lock({LOCK})"))
                if not got.scalar_one():
                    return None
            # The signature is read before the facts: what is loaded is at least as new,
            # so a change committed meanwhile is never hidden behind this version.
            read_at = next(self._looks)
            day = self.today()
            evaluated = time.perf_counter()
            if self.worker is not None:
                version, answer, work = await self.worker.evaluate(day)
            else:
                version, facts = await self.cache.loaded(sessions, fresh=True)
                async with sessions() as session:
                    names = await repository.municipality_names(session)
                answer = await asyncio.to_thread(views.region, self.catalogue, facts, names, day)
                work = time.monotonic() - started
            evaluated = time.perf_counter() - evaluated
            stored = Stored(day, version, self.clock())
            answer = {**answer, "computed_at": stored.computed_at.isoformat()}
            async with sessions() as session, session.begin():
                await repository.save_snapshot(session, NAME, stored, answer)
        self._current = Snapshot(stored, answer, read_at)
        self.renewals += 1
        took = time.monotonic() - started
        # The work itself decides whether a request may wait for a renewal and how often
        # renewals may come (a worker process's start, once, is not the work).
        self.last_s = work
        self._next_at = time.monotonic() + work * (1 / self.policy.budget - 1)
        log.info(
            "KPI snapshot renewed in %.0f ms (evaluation %.0f ms), as of %s, projections %s",
            took * 1000,
            evaluated * 1000,
            day,
            version,
        )
        return self._current
