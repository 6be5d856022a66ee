"""What one unit of work knows of some teachers' diagnoses: read once for the whole batch
(set-based), changed in memory in the order of the events, written once (multi-row).

Two results of one teacher in one batch behave exactly as if applied one after the other:
the second sees the first (its instruments, its diagnosis), a retake replaces, a diagnosis
completes once. The rules are the domain's (``Sheet``, ``Diagnosis.complete``); the book
only keeps what the batch read and decided."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace

from iomflow.diagnostics import repository
from iomflow.diagnostics.domain import (
    AUDIENCES,
    INSTRUMENTS,
    LEVELS,
    Diagnosis,
    Sheet,
    Taken,
    evidence_at,
    utc,
)
from iomflow.shared.contracts import (
    CompetencyResult,
    DiagnosisCompleted,
    Event,
    ResultSubmitted,
    Streams,
    new_event,
)
from iomflow.shared.db import RawJSON
from iomflow.shared.unit import Deps

if TYPE_CHECKING:
    from iomflow.diagnostics.service import Diagnostics

__all__ = [
    "AUDIENCES",
    "INSTRUMENTS",
    "LEVELS",
    "SOURCE",
    "Book",
    "Sheet",
    "Taken",
    "evidence_at",
    "levels_of",
    "traced",
    "utc",
]

SOURCE = "diagnostics"


@dataclass
class Current:
    """A teacher's current diagnosis: what a newer one compares with."""

    diagnosis_id: str
    competencies: Sequence[CompetencyResult] | Sequence[dict[str, Any]]
    new: Diagnosis | None = None  # completed by this batch: not current any more if replaced

    def levels(self) -> list[CompetencyResult]:
        return levels_of(self.competencies)


def levels_of(
    competencies: Sequence[CompetencyResult] | Sequence[dict[str, Any]],
) -> list[CompetencyResult]:
    """A diagnosis's levels as ``domain.changes`` compares them."""
    return [
        c
        if isinstance(c, CompetencyResult)
        else CompetencyResult.model_construct(  # stored by us: no need to validate again
            code=c["code"], score=c["score"], level=LEVELS[c["level"]]
        )
        for c in competencies
    ]


class Clock:
    """Strictly increasing instants within one batch: results and diagnoses written
    together keep their order (of arrival, of completion) when read back later."""

    def __init__(self, now: datetime) -> None:
        self.now, self.ticks = now, 0

    def __call__(self) -> datetime:
        self.ticks += 1
        return self.now + timedelta(microseconds=self.ticks)


class Book:
    """What one unit of work knows of some teachers' diagnoses: read once (``load``),
    changed in memory in order (``take``, ``complete``), written once (``save``)."""

    def __init__(
        self,
        deps: Deps[Diagnostics],
        teachers: dict[str, Any],
        sheets: dict[tuple[str, str], Sheet],
        current: dict[str, Current],
    ) -> None:
        self.deps = deps
        self.teachers = teachers
        self.sheets = sheets
        self.current = current
        self.clock = Clock(deps.now())
        self.results: list[dict[str, Any]] = []
        self.diagnoses: list[Diagnosis] = []

    @classmethod
    async def load(cls, deps: Deps[Diagnostics], pairs: Collection[tuple[str, str]]) -> Book:
        """The teachers of ``pairs`` (teacher, campaign), locked; their current diagnoses
        and their ones in these campaigns; the results of each pair with no diagnosis."""
        session = deps.session
        teacher_ids = {t for t, _ in pairs}
        teachers = await repository.find_teachers(session, teacher_ids, lock=True)
        sheets = {pair: Sheet() for pair in pairs}
        current: dict[str, Current] = {}
        for row in await repository.find_standings(session, teacher_ids, {c for _, c in pairs}):
            if row.latest:
                current[row.teacher_id] = Current(row.diagnosis_id, row.competencies)
            sheet = sheets.get((row.teacher_id, row.campaign_id))
            if sheet is not None:
                sheet.diagnosis_id, sheet.status = row.diagnosis_id, row.status
        open_ = [p for p, s in sheets.items() if s.diagnosis_id is None and p[0] in teachers]
        for pair, rows in (await repository.find_evidence(session, open_)).items():
            sheet = sheets[pair]
            for r in rows:
                sheet.add(Taken(r.result_id, r.instrument, r.expert_id, r.scores, r.taken_at))
        return cls(deps, teachers, sheets, current)

    def take(self, event: Event[ResultSubmitted], scores: dict[str, float]) -> None:
        """Store a result: it is evidence of its sheet from now on."""
        result = event.payload
        instrument = result.instrument.value
        entry = self.deps.fields_of(event)
        # In UTC: SQLite keeps no zone, and what is read back is taken as UTC.
        taken_at = utc(result.taken_at or event.occurred_at)
        self.sheets[(result.teacher_id, result.campaign_id)].add(
            Taken(str(event.event_id), instrument, result.expert_id, scores, taken_at)
        )
        self.results.append(
            {
                "result_id": str(event.event_id),
                "teacher_id": result.teacher_id,
                "campaign_id": result.campaign_id,
                "instrument": instrument,
                "expert_id": result.expert_id,
                "external_id": result.external_id,
                # As it came on the stream, text as it is; over HTTP, as validated.
                "submitted": RawJSON(entry["data"])
                if entry is not None
                else result.model_dump(mode="json"),
                "scores": scores,
                "source": event.source,
                "taken_at": taken_at,
                "received_at": self.clock(),
            }
        )

    def complete(
        self,
        teacher_id: str,
        campaign_id: str,
        by: Literal["instruments", "operator"],
        cause: Event[Any] | None = None,
    ) -> Diagnosis:
        """Complete the teacher's diagnosis in the campaign with the results that are in;
        it becomes the teacher's current one; its event is staged (after ``cause``)."""
        ctx = self.deps.ctx
        teacher = self.teachers[teacher_id]
        sheet = self.sheets[(teacher_id, campaign_id)]
        previous = self.current.get(teacher_id)
        diagnosis, completed = Diagnosis.complete(
            ctx.framework,
            diagnosis_id=str(uuid.uuid4()),
            teacher_id=teacher_id,
            campaign_id=campaign_id,
            teacher=teacher,
            results=sheet.results,
            by=by,
            at=self.clock(),
            previous_id=previous.diagnosis_id if previous else None,
            before=previous.levels() if previous else None,
            applicable=ctx.applicable(
                is_manager=bool(teacher.is_manager), audience=AUDIENCES[teacher.audience]
            ),
        )
        if previous is not None and previous.new is not None:
            previous.new.latest = False  # completed earlier in this batch
        diagnosis_id = diagnosis.diagnosis_id
        self.current[teacher_id] = Current(diagnosis_id, diagnosis.competencies, diagnosis)
        sheet.diagnosis_id, sheet.status = diagnosis_id, "completed"
        self.diagnoses.append(diagnosis)
        traced(self.deps, cause, diagnosis_id, teacher_id)
        self.stage(completed, cause)
        return diagnosis

    def stage(self, completed: DiagnosisCompleted, cause: Event[Any] | None) -> None:
        self.deps.stage(
            Streams.DIAGNOSTICS,
            new_event(
                "diagnostics.diagnosis.completed",
                completed,
                source=SOURCE,
                subject=completed.teacher_id,
            ),
            cause=cause,
        )

    async def save(self) -> None:
        """Write what the batch decided: one statement per table (and one to make the
        teachers' earlier diagnoses current no more)."""
        session = self.deps.session
        await repository.add_results(session, self.results)
        await repository.add_diagnoses(session, self.diagnoses)


def traced(
    deps: Deps[Diagnostics], cause: Event[Any] | None, diagnosis_id: str, teacher: str
) -> None:
    """Name the diagnosis in the trace of what caused it: ``iomflow trace <diagnosis id>``
    finds that trace by it. On the cause's own span where it is sampled (in a batch), else
    on the span at work when it is recording (an HTTP request, an entry handled alone);
    nothing at all for the unsampled bulk."""
    span = deps.span_of(cause) if cause is not None else None
    if span is None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
    span.set_attribute("iomflow.diagnosis_id", diagnosis_id)
    span.set_attribute("iomflow.teacher_id", teacher)
