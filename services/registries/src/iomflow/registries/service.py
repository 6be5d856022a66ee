"""Registry use cases: import, edit, remove, verify, resync. Every change of a record
stages its event in the same unit of work (``iomflow.shared.unit``), written into the
outbox with the change and published after the commit; nothing unchanged is published.

Use cases that run their own transactions take a ``Transaction``: ``runtime.transaction``
in the service, ``transactions(sessions, outbox)`` for admin commands on its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import itertools
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.registries import domain, importing, repository
from iomflow.registries.domain import REGISTRY, Known, Register
from iomflow.registries.importing import Candidate, RowError
from iomflow.registries.tabular import Table, write_xlsx
from iomflow.shared.contracts import Event, RecordRemoved, RegistryStale, Streams, new_event
from iomflow.shared.errors import ApiError
from iomflow.shared.outbox import Outbox
from iomflow.shared.unit import Unit, unit_of_work

SOURCE = "registries"
CHUNK = 1000
"""Rows per chunk of an import: one write per table, one outbox statement."""
PREVIEW = 200
"""Rows an import's preview lists of each kind (new, changed, unchanged); the counts are
of all of them."""

Progress = Callable[[str, int, int], None]
"""(phase, done, total): phases are «проверка» and «запись»."""

Transaction = Callable[[], AbstractAsyncContextManager[Unit]]
"""Opens a transaction as a unit of work; what it stages is in the outbox at its commit."""


def _quiet(phase: str, done: int, total: int) -> None:
    return None


class _Collector:
    """Loads running now (they may overlap, in any order) and whether the collector was
    on before the first of them."""

    loads = 0
    was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for a bulk load. A register of 40,000 rows is
    millions of live objects (rows, candidates, events), and every full collection as
    they grew walked all of them: a third of the CPU of a region's load. What a load
    drops is freed by reference counting; the collector is back when the last load ends.
    """
    if _Collector.loads == 0:
        _Collector.was_enabled = gc.isenabled()
        gc.disable()
    _Collector.loads += 1
    try:
        yield
    finally:
        _Collector.loads -= 1
        if _Collector.loads == 0 and _Collector.was_enabled:
            gc.enable()


def release_memory() -> None:
    """After a bulk load: collect what it left (the collector was paused) and hand the
    freed memory back to the system (glibc keeps it otherwise: the process would stay at
    its peak for good)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def transactions(sessions: async_sessionmaker[AsyncSession], outbox: Outbox) -> Transaction:
    """Units of work for code outside a service process (admin commands on the service's
    database): each a fresh transaction whose staged events are in the outbox at its
    commit (``Admin`` publishes them when the command ends)."""
    return functools.partial(unit_of_work, sessions, outbox, None)


class Mode(StrEnum):
    DRY_RUN = "dry_run"  # report what would change; write nothing
    ALL_OR_NOTHING = "all_or_nothing"  # any row error: write nothing
    VALID_ROWS = "valid_rows"  # write the valid rows, report the others


@dataclass
class ImportReport:
    register: str
    mode: Mode
    total_rows: int = 0
    valid_rows: int = 0
    error_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    personal_updated: int = 0
    verified: int = 0
    published: int = 0
    applied: bool = False
    errors: list[RowError] = field(default_factory=list)
    preview: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"created": [], "updated": [], "unchanged": []}
    )
    """The first ``PREVIEW`` rows of each kind: row number, record id, its name, and for a
    changed record what changes."""

    @property
    def message(self) -> str:
        if self.mode == Mode.DRY_RUN:
            head = "Пробная проверка: ничего не записано."
        elif self.applied:
            head = "Загружено."
        else:
            head = "Ничего не загружено: в файле есть ошибки (режим «всё или ничего»)."
        return (
            f"{head} Строк {self.total_rows}: новых {self.created}, изменённых {self.updated}, "
            f"без изменений {self.unchanged}, с ошибками {self.error_rows}."
        )

    def summary(self) -> dict[str, Any]:
        return {
            "register": self.register,
            "mode": self.mode.value,
            "applied": self.applied,
            "total_rows": self.total_rows,
            "valid_rows": self.valid_rows,
            "error_rows": self.error_rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "personal_updated": self.personal_updated,
            "verified": self.verified,
            "published": self.published,
            "message": self.message,
        }


# --- what rows refer to --------------------------------------------------------------------


async def load_known(
    session: AsyncSession, spec: Register, values: Mapping[str, Any] | None = None
) -> Known:
    """The records ``spec``'s references point at: all of them, or those ``values`` name."""
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for ref in spec.references:
        wanted: list[str] | None = None
        if values is not None:
            wanted = ref.ids(values.get(ref.field))
        if ref.register == "organizations" or ref.data or wanted is not None:
            docs = await repository.documents(session, ref.register, wanted)
        else:
            docs = {i: {} for i in await repository.record_ids(session, ref.register)}
        out.setdefault(ref.register, {}).update(docs)
    return Known(out)


# --- import --------------------------------------------------------------------------------


@dataclass
class Changes:
    """What a chunk of valid rows changes, against the records stored now."""

    created: list[Candidate] = field(default_factory=list)
    updated: list[Candidate] = field(default_factory=list)
    personal: list[Candidate] = field(default_factory=list)  # new or changed personal data
    unchanged: list[str] = field(default_factory=list)  # record ids
    personal_only: int = 0  # records whose personal data alone changed

    @property
    def written(self) -> list[Candidate]:
        return self.created + self.updated


def classify(
    candidates: Sequence[Candidate], current: Mapping[str, tuple[str, str | None]]
) -> Changes:
    """Sort candidates by what storing them would change (``current``: their digests)."""
    out = Changes()
    for candidate in candidates:
        known = current.get(candidate.record_id)
        personal_changed = candidate.personal is not None and (
            known is None or known[1] != candidate.personal_digest
        )
        if personal_changed:
            out.personal.append(candidate)
        if known is None:
            out.created.append(candidate)
        elif known[0] != candidate.digest:
            out.updated.append(candidate)
        elif personal_changed:
            out.personal_only += 1
        else:
            out.unchanged.append(candidate.record_id)
    return out


async def import_table(
    transaction: Transaction,
    spec: Register,
    table: Table,
    *,
    mode: Mode,
    actor: str,
    confirm: bool = False,
    progress: Progress = _quiet,
    now: datetime | None = None,
    since: date | None = None,
) -> ImportReport:
    """Check every row, then (unless a dry run, or all-or-nothing with errors) write what
    changed and stage its events in one transaction. ``confirm`` also marks unchanged rows
    as verified now (a re-verification), which publishes nothing. ``since``: the day the
    register held these records from (a first load of a history): their events are dated
    by it, so KPIs as of an earlier day count those teachers and organisations.

    Set-based: one read of the register's stored digests, then chunk by chunk (``CHUNK``
    rows) one upsert of the chunk's new and changed records, one of its new and changed
    personal data, one outbox statement for its events (and one verification update with
    ``confirm``)."""
    with collector_paused():
        return await _import_table(
            transaction,
            spec,
            table,
            mode=mode,
            actor=actor,
            confirm=confirm,
            progress=progress,
            now=now,
            since=since,
        )


async def _import_table(
    transaction: Transaction,
    spec: Register,
    table: Table,
    *,
    mode: Mode,
    actor: str,
    confirm: bool,
    progress: Progress,
    now: datetime | None,
    since: date | None = None,
) -> ImportReport:
    report = ImportReport(spec.name, mode, total_rows=table.total)
    async with transaction() as unit:
        known = await load_known(unit.session, spec)
    # The checks are pure and take seconds for a large file: off the event loop, so the
    # service (its relay, its health) keeps answering meanwhile.
    plan = await asyncio.to_thread(
        importing.plan,
        spec,
        table,
        known,
        lambda done: progress("проверка", done, table.total),
    )
    report.errors = plan.errors
    report.error_rows = len(plan.error_rows)
    report.valid_rows = len(plan.candidates)
    write = mode != Mode.DRY_RUN and not (
        plan.header_errors or (mode == Mode.ALL_OR_NOTHING and plan.error_rows)
    )
    candidates = plan.candidates
    async with transaction() as unit:
        now = now or unit.now()
        today = date.today()
        # The whole register's digests in one read: a range of its primary key, where a
        # read per chunk (``IN`` 1,000 ids) let PostgreSQL, its statistics not yet counting
        # the rows this transaction adds, scan the register once per chunk.
        current = await repository.existing(unit.session, spec.name)
        if write:
            progress("запись", 0, len(candidates))
        for start in range(0, len(candidates), CHUNK):
            chunk = candidates[start : start + CHUNK]
            changes = classify(chunk, current)
            report.created += len(changes.created)
            report.updated += len(changes.updated)
            report.unchanged += len(changes.unchanged)
            report.personal_updated += changes.personal_only
            await _preview(unit.session, spec, report.preview, chunk, changes)
            if not write:
                continue
            written = changes.written
            await repository.write(unit.session, spec, written, actor=actor, now=now)
            await repository.write_personal(unit.session, spec, changes.personal, now)
            if confirm and changes.unchanged:
                report.verified += await repository.verify(
                    unit.session, spec.name, changes.unchanged, actor=actor, now=now
                )
            unit.stage(Streams.REGISTRY, *upserted(spec, written, today, since))
            await unit.flush()
            report.published += len(written)
            progress("запись", start + len(chunk), len(candidates))
        report.applied = write
    return report


async def _preview(
    session: AsyncSession,
    spec: Register,
    preview: dict[str, list[dict[str, Any]]],
    chunk: Sequence[Candidate],
    changes: Changes,
) -> None:
    """Add a chunk's rows to an import's preview (before the chunk is written: a changed
    record's stored data is read for what changes)."""
    unchanged = set(changes.unchanged)
    for kind, rows in (
        ("created", iter(changes.created)),
        ("unchanged", (c for c in chunk if c.record_id in unchanged)),
    ):
        room = PREVIEW - len(preview[kind])  # a full preview costs a chunk nothing more
        preview[kind] += [
            {"row": c.row, "record_id": c.record_id, "label": importing.label_of(spec, c.data)}
            for c in itertools.islice(rows, max(room, 0))
        ]
    room = PREVIEW - len(preview["updated"])
    if room <= 0 or not changes.updated:
        return
    updated = changes.updated[:room]
    stored = await repository.documents(session, spec.name, [c.record_id for c in updated])
    preview["updated"] += [
        {
            "row": c.row,
            "record_id": c.record_id,
            "label": importing.label_of(spec, c.data),
            "changes": importing.changed_fields(spec, stored.get(c.record_id, {}), c.data),
        }
        for c in updated
    ]


def upserted(
    spec: Register,
    candidates: Sequence[Candidate],
    today: date | None = None,
    since: date | None = None,
) -> list[Event[Any]]:
    """The ``registry.<entity>.upserted`` events of stored records (dated ``since``'s
    first moment, when given: see ``import_table``)."""
    return _upserts(spec, [(c.record_id, c.data) for c in candidates], today, since)


def _upserts(
    spec: Register,
    records: Sequence[tuple[str, Mapping[str, Any]]],
    today: date | None = None,
    since: date | None = None,
) -> list[Event[Any]]:
    today = today or date.today()
    events = [
        new_event(spec.upserted, spec.event_of(data, today), source=SOURCE, subject=record_id)
        for record_id, data in records
    ]
    if since is not None:
        at = datetime.combine(since, time(0), tzinfo=UTC)
        events = [e.model_copy(update={"occurred_at": at}) for e in events]
    return events


def table_of_rows(spec: Register, rows: Sequence[Mapping[str, Any]]) -> Table:
    """Row dicts (field codes as keys, personal fields inline) as a table to import."""
    present = set().union(*rows)
    names = [n for n in importing.columns(spec) if n in present]
    return Table(names, [(i + 2, [row.get(n) for n in names]) for i, row in enumerate(rows)])


async def load_region(
    transaction: Transaction,
    region: MutableMapping[str, Sequence[Mapping[str, Any]]],
    *,
    actor: str,
    progress: Progress = _quiet,
    consume: bool = False,
    since: date | None = None,
) -> dict[str, ImportReport]:
    """Every register of ``region`` in dependency order, each all or nothing (its own
    transaction, so the relay publishes a register while the next one is checked).

    ``consume``: a register's rows leave ``region`` once they are a table, so the 40,000
    teachers of a region nobody else holds are not kept twice while they are checked and
    written (the demo load's peak: 251 MB before, 231 MB)."""
    reports = {}
    for name, spec in REGISTRY.items():
        rows = region.pop(name, None) if consume else region.get(name)
        if rows:
            with collector_paused():
                table = table_of_rows(spec, rows)
            del rows
            reports[name] = await import_table(
                transaction,
                spec,
                table,
                mode=Mode.ALL_OR_NOTHING,
                actor=actor,
                progress=progress,
                since=since,
            )
            del table
    release_memory()
    return reports


# --- one record ----------------------------------------------------------------------------


async def save_record(
    unit: Unit,
    spec: Register,
    values: Mapping[str, Any],
    personal: Mapping[str, Any] | None,
    *,
    actor: str,
    record_id: str | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Create (``record_id`` None) or replace one record; (stored data, whether it changed).

    Values are parsed like spreadsheet cells, so labels and «да»/«нет» work here too."""
    session = unit.session
    now = now or unit.now()
    parsed: dict[str, Any] = {}
    errors: list[RowError] = []
    for name, value in values.items():
        if name not in spec.record.model_fields:
            errors.append(RowError(0, name, _text(value), "неизвестное поле", name))
            continue
        try:
            parsed[name] = importing.parse_cell(spec, name, value)
        except importing.CellError as exc:
            errors.append(RowError(0, name, _text(value), str(exc), name))
    parsed = {k: v for k, v in parsed.items() if v is not None}
    if record_id is not None:
        if parsed.get(spec.key, record_id) != record_id:
            errors.append(RowError(0, spec.key, str(parsed[spec.key]), "код записи менять нельзя"))
        parsed[spec.key] = record_id
    if personal is not None and not spec.person:
        errors.append(RowError(0, "personal", "", "в этом реестре нет персональных данных"))
        personal = None
    known = await load_known(session, spec, parsed)
    data, person, problems = domain.check_record(spec, parsed, personal, known)
    errors += [RowError(0, n, _text(values.get(n)), reason, n) for n, reason in problems]
    if errors or data is None:
        raise ApiError(
            422,
            "record_invalid",
            "Запись не сохранена: исправьте ошибки.",
            errors=[e.as_problem("body") for e in errors],
        )
    candidate = Candidate(0, str(data[spec.key]), data, person)
    current = await repository.existing(session, spec.name, [candidate.record_id])
    exists = current.get(candidate.record_id)
    if record_id is None and exists is not None:
        raise ApiError(
            409,
            "record_exists",
            f"Запись «{candidate.record_id}» уже есть в реестре «{spec.title}».",
        )
    if record_id is not None and exists is None:
        raise ApiError(404, "record_not_found", f"Записи «{record_id}» нет в «{spec.title}».")
    changes = classify([candidate], current)
    await repository.write(session, spec, changes.written, actor=actor, now=now)
    await repository.write_personal(session, spec, changes.personal, now)
    unit.stage(Streams.REGISTRY, *upserted(spec, changes.written))
    return data, bool(changes.written)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


async def remove_record(
    unit: Unit,
    spec: Register,
    record_id: str,
    *,
    reason: str = "",
) -> None:
    """Remove a record nobody refers to; publishes ``registry.<entity>.removed``."""
    session = unit.session
    users = await referrers(session, spec, record_id)
    if users:
        listed = "; ".join(f"«{REGISTRY[r].title}»: {', '.join(ids)}" for r, ids in users.items())
        raise ApiError(
            409,
            "record_in_use",
            f"Запись «{record_id}» нельзя удалить: на неё ссылаются записи ({listed}).",
        )
    if not await repository.remove(session, spec.name, record_id):
        raise ApiError(404, "record_not_found", f"Записи «{record_id}» нет в «{spec.title}».")
    unit.stage(
        Streams.REGISTRY,
        new_event(
            spec.removed,
            RecordRemoved(record_id=record_id, reason=reason),
            source=SOURCE,
            subject=record_id,
        ),
    )


async def referrers(session: AsyncSession, spec: Register, record_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for other in REGISTRY.values():
        for ref in other.references:
            if ref.register != spec.name:
                continue
            if ref.field in ("organization_id", "municipality_id"):
                ids = await repository.referrers(session, other.name, ref.field, record_id)
            elif ref.item is not None:  # a list of objects: their registers are small
                docs = await repository.documents(session, other.name)
                ids = sorted(i for i, d in docs.items() if record_id in ref.ids(d.get(ref.field)))
                ids = ids[:5]
            else:
                condition = repository.field_filter(
                    session, ref.field, "list" if ref.many else "str", record_id
                )
                _, rows = await repository.page(
                    session, other.name, conditions=[condition], limit=5
                )
                ids = [str(row[other.key]) for row in rows]
            if ids:
                out.setdefault(other.name, []).extend(ids)
    return out


# --- verification and staleness ------------------------------------------------------------


def stale_cutoff(now: datetime, days: int = domain.STALE_AFTER_DAYS) -> datetime:
    return now - timedelta(days=days)


async def check_stale(
    unit: Unit,
    *,
    now: datetime | None = None,
    days: int = domain.STALE_AFTER_DAYS,
) -> list[dict[str, Any]]:
    """Publish ``registry.stale`` for every register and owner whose count of overdue
    records changed since the last check (0 when they were all verified again)."""
    session = unit.session
    now = now or unit.now()
    cutoff = stale_cutoff(now, days)
    groups = await repository.staleness(session, cutoff)
    before = await repository.notices(session)
    changed: dict[tuple[str, str], int] = {}
    events = []
    current = {(g["register"], g["owner"]): g for g in groups}
    for key in sorted(set(current) | set(before)):
        group = current.get(key)
        stale = int(group["stale"] or 0) if group else 0
        if stale == before.get(key, 0):
            continue
        changed[key] = stale
        register, owner = key
        events.append(
            new_event(
                "registry.stale",
                RegistryStale(
                    registry=register,
                    owner=owner,
                    stale=stale,
                    total=int(group["total"]) if group else 0,
                    oldest_verified_at=group["oldest"] if group and stale else None,
                    verify_before=cutoff,
                ),
                source=SOURCE,
                subject=f"{register}:{owner}",
            )
        )
    unit.stage(Streams.REGISTRY, *events)
    await repository.save_notices(session, changed, now)
    return [g for g in groups if g["stale"]]


# --- resync --------------------------------------------------------------------------------


async def resync(
    transaction: Transaction,
    names: Sequence[str] | None = None,
    *,
    progress: Progress = _quiet,
) -> dict[str, int]:
    """Publish every current record again (new event ids), in dependency order, so a new or
    rebuilt service catches up; one transaction per chunk."""
    published: dict[str, int] = {}
    for name, spec in REGISTRY.items():
        if names and name not in names:
            continue
        published[name] = 0
        after = ""
        while True:
            async with transaction() as unit:
                chunk = await repository.records_after(unit.session, name, after, CHUNK)
                unit.stage(Streams.REGISTRY, *_upserts(spec, chunk))
            if not chunk:
                break
            after = chunk[-1][0]
            published[name] += len(chunk)
            progress(name, published[name], published[name])
    return published


# --- export --------------------------------------------------------------------------------


async def export_xlsx(
    sessions: async_sessionmaker[AsyncSession],
    spec: Register,
    reader: tuple[str, str] | None = None,
) -> bytes:
    """The register as a spreadsheet (without personal data: that is read one person at a
    time, audited). Personal dates (``Register.personal_dates``) are exported only for a
    ``reader`` (actor, purpose), every record audited in one transaction
    (``repository.audit_dates``); everyone else gets their bands as of today — such a
    sheet cannot be imported back. With dates, an operator can edit it and import again."""
    ids: list[str] = []
    records: list[dict[str, Any]] = []
    after = ""
    while True:
        async with sessions() as session:
            chunk = await repository.records_after(session, spec.name, after, 5000)
        if not chunk:
            break
        ids += [record_id for record_id, _ in chunk]
        records += [data for _, data in chunk]
        after = chunk[-1][0]
    dates = reader is not None or not spec.personal_dates
    if not dates:
        today = date.today()
        records = [spec.banded(data, today) for data in records]
    elif reader is not None and spec.personal_dates:
        actor, purpose = reader
        async with sessions() as session, session.begin():
            await repository.audit_dates(
                session, spec.name, ids, actor=actor, purpose=purpose, now=datetime.now(UTC)
            )
    content = importing.sheet(spec, records, spec.fields(dates))
    return await asyncio.to_thread(write_xlsx, [content])
