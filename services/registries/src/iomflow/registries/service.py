"""Registry use cases: import, edit, remove, verify, resync. Every change of a record
stages its event in the same transaction (the outbox); nothing unchanged is published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.registries import importing, registers, repository
from iomflow.registries.importing import Candidate, Known, Plan, RowError
from iomflow.registries.registers import REGISTRY, Register
from iomflow.registries.tabular import Table, write_xlsx
from iomflow.shared.contracts import RecordRemoved, RegistryStale, Streams, new_event
from iomflow.shared.errors import ApiError
from iomflow.shared.outbox import Outbox

SOURCE = "registries"
CHUNK = 1000

Progress = Callable[[str, int, int], None]
"""(phase, done, total): phases are «проверка» and «запись»."""


def _quiet(phase: str, done: int, total: int) -> None:
    return None


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
            raw = values.get(ref.field)
            wanted = [str(v) for v in (raw if isinstance(raw, list) else [raw]) if v]
        if ref.register == "organizations" or wanted is not None:
            docs = await repository.documents(session, ref.register, wanted)
        else:
            docs = {i: {} for i in await repository.record_ids(session, ref.register)}
        out.setdefault(ref.register, {}).update(docs)
    return Known(out)


# --- import --------------------------------------------------------------------------------


def _classify(
    plan: Plan, current: Mapping[str, tuple[str, str | None]]
) -> tuple[list[Candidate], list[Candidate], list[Candidate], list[str]]:
    """(created, updated, personal data only changed, unchanged ids)."""
    created, updated, personal_only, unchanged = [], [], [], []
    for candidate in plan.candidates:
        known = current.get(candidate.record_id)
        if known is None:
            created.append(candidate)
        elif known[0] != candidate.digest:
            updated.append(candidate)
        elif candidate.personal is not None and known[1] != candidate.personal_digest:
            personal_only.append(candidate)
        else:
            unchanged.append(candidate.record_id)
    return created, updated, personal_only, unchanged


async def import_table(
    sessions: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    spec: Register,
    table: Table,
    *,
    mode: Mode,
    actor: str,
    confirm: bool = False,
    progress: Progress = _quiet,
    now: datetime | None = None,
) -> ImportReport:
    """Check every row, then (unless a dry run, or all-or-nothing with errors) write what
    changed and stage its events in one transaction. ``confirm`` also marks unchanged rows
    as verified now (a re-verification), which publishes nothing."""
    now = now or datetime.now(UTC)
    report = ImportReport(spec.name, mode, total_rows=table.total)
    async with sessions() as session:
        known = await load_known(session, spec)
    plan = importing.plan(spec, table, known, lambda done: progress("проверка", done, table.total))
    report.errors = plan.errors
    report.error_rows = len(plan.error_rows)
    report.valid_rows = len(plan.candidates)
    blocked = plan.header_errors or (mode == Mode.ALL_OR_NOTHING and plan.error_rows)
    async with sessions() as session, session.begin():
        current = await repository.existing(session, spec.name)
        created, updated, personal_only, unchanged = _classify(plan, current)
        report.created, report.updated = len(created), len(updated)
        report.unchanged, report.personal_updated = len(unchanged), len(personal_only)
        if mode == Mode.DRY_RUN or blocked:
            await session.rollback()
            return report
        changed = created + updated
        progress("запись", 0, len(changed))
        for start in range(0, len(changed), CHUNK):
            chunk = changed[start : start + CHUNK]
            await repository.write(
                session, spec, chunk, actor=actor, now=now, created={c.record_id for c in created}
            )
            await _stage_upserts(session, outbox, spec, [(c.record_id, c.data) for c in chunk])
            progress("запись", start + len(chunk), len(changed))
        await repository.write_personal(session, spec, personal_only, now)
        if confirm:
            report.verified = await repository.verify(
                session, spec.name, unchanged, actor=actor, now=now
            )
        report.published = len(changed)
        report.applied = True
    outbox.wake()
    return report


async def _stage_upserts(
    session: AsyncSession,
    outbox: Outbox,
    spec: Register,
    records: Sequence[tuple[str, Mapping[str, Any]]],
    today: date | None = None,
) -> None:
    today = today or date.today()
    await outbox.stage(
        session,
        Streams.REGISTRY,
        *(
            new_event(
                spec.upserted,
                spec.event_of(spec.record.model_validate(data), today),
                source=SOURCE,
                subject=record_id,
            )
            for record_id, data in records
        ),
    )


def table_of_rows(spec: Register, rows: Sequence[Mapping[str, Any]]) -> Table:
    """Row dicts (field codes as keys, personal fields inline) as a table to import."""
    names = [n for n in importing.columns(spec) if any(n in row for row in rows)]
    return Table(names, [(i + 2, [row.get(n) for n in names]) for i, row in enumerate(rows)])


async def load_region(
    sessions: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    region: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    actor: str,
    progress: Progress = _quiet,
) -> dict[str, ImportReport]:
    """Every register of ``region`` in dependency order, each all or nothing."""
    reports = {}
    for name, spec in REGISTRY.items():
        rows = region.get(name)
        if rows:
            reports[name] = await import_table(
                sessions,
                outbox,
                spec,
                table_of_rows(spec, rows),
                mode=Mode.ALL_OR_NOTHING,
                actor=actor,
                progress=progress,
            )
    return reports


# --- one record ----------------------------------------------------------------------------


async def save_record(
    session: AsyncSession,
    outbox: Outbox,
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
    now = now or datetime.now(UTC)
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
    data, person, problems = importing.check_record(spec, parsed, personal, known)
    errors += [RowError(0, n, _text(values.get(n)), reason, n) for n, reason in problems]
    if errors or data is None:
        raise ApiError(
            422,
            "record_invalid",
            "Запись не сохранена: исправьте ошибки.",
            errors=[e.as_dict() for e in errors],
        )
    candidate = Candidate(0, str(data[spec.key]), data, person)
    current = await repository.existing(session, spec.name)
    exists = current.get(candidate.record_id)
    if record_id is None and exists is not None:
        raise ApiError(
            409,
            "record_exists",
            f"Запись «{candidate.record_id}» уже есть в реестре «{spec.title}».",
        )
    if record_id is not None and exists is None:
        raise ApiError(404, "record_not_found", f"Записи «{record_id}» нет в «{spec.title}».")
    if exists is not None and exists[0] == candidate.digest:
        if person is not None and exists[1] != candidate.personal_digest:
            await repository.write_personal(session, spec, [candidate], now)
        return data, False
    await repository.write(
        session,
        spec,
        [candidate],
        actor=actor,
        now=now,
        created=set() if exists else {candidate.record_id},
    )
    await _stage_upserts(session, outbox, spec, [(candidate.record_id, data)])
    return data, True


def _text(value: Any) -> str:
    return "" if value is None else str(value)


async def remove_record(
    session: AsyncSession,
    outbox: Outbox,
    spec: Register,
    record_id: str,
    *,
    reason: str = "",
) -> None:
    """Remove a record nobody refers to; publishes ``registry.<entity>.removed``."""
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
    await outbox.stage(
        session,
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


def stale_cutoff(now: datetime, days: int = registers.STALE_AFTER_DAYS) -> datetime:
    return now - timedelta(days=days)


async def check_stale(
    session: AsyncSession,
    outbox: Outbox,
    *,
    now: datetime | None = None,
    days: int = registers.STALE_AFTER_DAYS,
) -> list[dict[str, Any]]:
    """Publish ``registry.stale`` for every register and owner whose count of overdue
    records changed since the last check (0 when they were all verified again)."""
    now = now or datetime.now(UTC)
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
    await outbox.stage(session, Streams.REGISTRY, *events)
    await repository.save_notices(session, changed, now)
    return [g for g in groups if g["stale"]]


# --- resync --------------------------------------------------------------------------------


async def resync(
    sessions: async_sessionmaker[AsyncSession],
    outbox: Outbox,
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
            async with sessions() as session, session.begin():
                chunk = await repository.records_after(session, name, after, CHUNK)
                if not chunk:
                    break
                await _stage_upserts(session, outbox, spec, chunk)
            after = chunk[-1][0]
            published[name] += len(chunk)
            progress(name, published[name], published[name])
            outbox.wake()
    return published


# --- export --------------------------------------------------------------------------------


async def export_xlsx(sessions: async_sessionmaker[AsyncSession], spec: Register) -> bytes:
    """The register as a spreadsheet an operator can edit and import again (without
    personal data: that is read one person at a time, audited)."""
    records: list[dict[str, Any]] = []
    after = ""
    while True:
        async with sessions() as session:
            chunk = await repository.records_after(session, spec.name, after, 5000)
        if not chunk:
            break
        records += [data for _, data in chunk]
        after = chunk[-1][0]
    content = importing.sheet(spec, records, list(spec.record.model_fields))
    return await asyncio.to_thread(write_xlsx, [content])
