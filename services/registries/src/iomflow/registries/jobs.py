"""Imports sent over HTTP run as jobs: accepted at once, checked and applied in the
background, with progress to poll and the row errors kept.

The uploaded file is stored with the job until it finishes, so a job interrupted by a
restart runs again when the service starts: re-applying rows that already landed changes
nothing. It may hold personal data, so it is dropped then, unless rows had errors: then it
is kept ``keep_for`` (a day by default) to be given back with its errors marked
(``upload``, ``workbooks.marked``), and dropped after that by ``purge``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.registries import repository, service
from iomflow.registries.domain import REGISTRY
from iomflow.registries.tabular import TableError, read_table

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Upload:
    """A finished job's file, kept because rows had errors, and those errors."""

    register: str
    filename: str
    content: bytes
    errors: list[dict[str, Any]]


class ImportJobs:
    """The jobs: their rows in ``imports`` (``sessions``), their writes as units of work
    (``transaction``: the service's ``runtime.transaction``)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        transaction: service.Transaction,
        keep_for: timedelta = timedelta(hours=24),
    ) -> None:
        self.sessions = sessions
        self.transaction = transaction
        self.keep_for = keep_for
        self.progress: dict[str, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        register: str,
        filename: str,
        content: bytes,
        *,
        mode: service.Mode,
        confirm: bool,
        actor: str,
    ) -> str:
        import_id = str(uuid.uuid4())
        async with self.sessions() as session, session.begin():
            await session.execute(
                insert(repository.imports).values(
                    import_id=import_id,
                    register=register,
                    filename=filename,
                    mode=mode.value,
                    confirm=confirm,
                    actor=actor,
                    status="queued",
                    created_at=datetime.now(UTC),
                    content=content,
                )
            )
        self.start(import_id)
        return import_id

    def start(self, import_id: str) -> None:
        self.progress[import_id] = {
            "import_id": import_id,
            "status": "queued",
            "progress": {"phase": "в очереди", "done": 0, "total": None},
            "preview": None,
            "marked_href": None,
        }
        task = asyncio.create_task(self.run(import_id), name=f"import-{import_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def resume(self) -> None:
        """Run again the jobs a stopped process left unfinished."""
        async with self.sessions() as session:
            ids = (
                (
                    await session.execute(
                        select(repository.imports.c.import_id).where(
                            repository.imports.c.status.in_(ACTIVE)
                        )
                    )
                )
                .scalars()
                .all()
            )
        for import_id in ids:
            log.info("resuming import %s", import_id)
            self.start(import_id)

    async def run(self, import_id: str) -> None:
        table = repository.imports
        async with self.sessions() as session, session.begin():
            row = (
                await session.execute(select(table).where(table.c.import_id == import_id))
            ).first()
            if row is None or row.content is None:
                return
            await session.execute(
                update(table).where(table.c.import_id == import_id).values(status="running")
            )
        live = self.progress[import_id]
        live.update(register=row.register, filename=row.filename, mode=row.mode, status="running")

        def progress(phase: str, done: int, total: int) -> None:
            live["progress"] = {"phase": phase, "done": done, "total": total}

        values: dict[str, Any]
        try:
            live["progress"] = {"phase": "чтение файла", "done": 0, "total": None}
            sheet = await asyncio.to_thread(read_table, row.content, row.filename)
            report = await service.import_table(
                self.transaction,
                REGISTRY[row.register],
                sheet,
                mode=service.Mode(row.mode),
                actor=row.actor,
                confirm=row.confirm,
                progress=progress,
            )
            values = {
                "status": "done",
                "total_rows": report.total_rows,
                # The preview rides in the summary's column and is its own key when read.
                "summary": report.summary() | {"preview": report.preview},
                "errors": [e.as_dict() for e in report.errors],
            }
            del sheet, report
            service.release_memory()
        except TableError as exc:
            values = {"status": "failed", "summary": {"message": str(exc)}, "errors": []}
        except Exception as exc:  # the job must end with a status, whatever happened
            log.exception("import %s failed", import_id)
            values = {
                "status": "failed",
                "summary": {"message": f"Внутренняя ошибка импорта: {type(exc).__name__}"},
                "errors": [],
            }
        if not values["errors"]:
            values["content"] = None  # else kept, to be given back marked, for a while
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(table)
                .where(table.c.import_id == import_id)
                .values(**values, finished_at=datetime.now(UTC))
            )
        self.progress.pop(import_id, None)

    async def status(self, import_id: str) -> dict[str, Any] | None:
        """The job; while it runs, from memory (SQLite's one writer may be busy with it)."""
        live = self.progress.get(import_id)
        if live is not None:
            return dict(live)
        table = repository.imports
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(
                        table.c.import_id,
                        table.c.register,
                        table.c.filename,
                        table.c.mode,
                        table.c.confirm,
                        table.c.actor,
                        table.c.status,
                        table.c.created_at,
                        table.c.finished_at,
                        table.c.total_rows,
                        table.c.summary,
                        table.c.errors,
                        table.c.content.is_not(None).label("kept"),
                    ).where(table.c.import_id == import_id)
                )
            ).first()
        if row is None:
            return None
        job = dict(row._mapping)
        kept = job.pop("kept") and not self._expired(job["finished_at"])
        summary = dict(job["summary"] or {})
        job["preview"] = summary.pop("preview", None)
        job["summary"] = summary if job["summary"] is not None else None
        job["marked_href"] = f"/v1/imports/{import_id}/marked.xlsx" if kept else None
        return job

    def _expired(self, finished_at: datetime | None) -> bool:
        if finished_at is None:
            return False
        if finished_at.tzinfo is None:  # SQLite gives it back naive, in UTC
            finished_at = finished_at.replace(tzinfo=UTC)
        return finished_at + self.keep_for < datetime.now(UTC)

    async def upload(self, import_id: str) -> Upload | None:
        """The finished job's file and its row errors, while it is kept."""
        table = repository.imports
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(
                        table.c.register,
                        table.c.filename,
                        table.c.content,
                        table.c.errors,
                        table.c.finished_at,
                    ).where(table.c.import_id == import_id, table.c.status.not_in(ACTIVE))
                )
            ).first()
        if row is None or row.content is None or self._expired(row.finished_at):
            return None
        return Upload(row.register, row.filename, row.content, list(row.errors or []))

    async def purge(self) -> int:
        """Drop the files of finished jobs kept longer than ``keep_for``; how many."""
        table = repository.imports
        cutoff = datetime.now(UTC) - self.keep_for
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(table)
                .where(
                    table.c.status.not_in(ACTIVE),
                    table.c.content.is_not(None),
                    table.c.finished_at < cutoff,
                )
                .values(content=None)
            )
        return int(getattr(result, "rowcount", 0) or 0)
