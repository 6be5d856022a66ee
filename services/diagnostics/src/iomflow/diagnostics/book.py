"""What one unit of work knows of some teachers' diagnoses: read once for the whole batch
(set-based), changed in memory in the order of the events, written once (multi-row).

Two results of one teacher in one batch behave exactly as if applied one after the other:
the second sees the first (its instruments, its diagnosis), a retake replaces, a diagnosis
completes once."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from opentelemetry import trace
from pydantic import TypeAdapter

from iomflow.diagnostics import domain, repository
from iomflow.shared.contracts import (
    Audience,
    CompetencyChange,
    CompetencyResult,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    Instrument,
    Level,
    ResultSubmitted,
    Streams,
    new_event,
)
from iomflow.shared.db import RawJSON
from iomflow.shared.unit import Deps

if TYPE_CHECKING:
    from iomflow.diagnostics.service import Diagnostics

SOURCE = "diagnostics"

# Enumerations by value: looked up for every result and competency (calling the enum class
# costs microseconds each in Python 3.11).
INSTRUMENTS: dict[str, Instrument] = {i.value: i for i in Instrument}
LEVELS: dict[str, Level] = {level.value: level for level in Level}
AUDIENCES: dict[str, Audience] = {a.value: a for a in Audience}


class Taken(NamedTuple):
    """A result as combining it needs it."""

    result_id: str
    instrument: str
    expert_id: str | None
    scores: dict[str, float]
    taken_at: datetime | None = None


@dataclass
class Sheet:
    """One teacher in one campaign: its diagnosis (if any) and its results so far."""

    diagnosis_id: str | None = None
    status: str | None = None  # completed | cancelled
    results: list[Taken] = field(default_factory=list)
    instruments: set[Instrument] = field(default_factory=set)

    def add(self, taken: Taken) -> None:
        self.results.append(taken)
        self.instruments.add(INSTRUMENTS[taken.instrument])


@dataclass
class Current:
    """A teacher's current diagnosis: what a newer one compares with."""

    diagnosis_id: str
    competencies: Sequence[CompetencyResult] | Sequence[dict[str, Any]]
    row: dict[str, Any] | None = None  # written by this batch: not current any more if replaced

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
        self.diagnoses: list[dict[str, Any]] = []
        self.levels: list[dict[str, Any]] = []
        self.replaced: set[str] = set()  # teachers whose stored current diagnosis is replaced

    @classmethod
    async def load(cls, deps: Deps[Diagnostics], pairs: Collection[tuple[str, str]]) -> Book:
        """The teachers of ``pairs`` (teacher, campaign), locked; their current diagnoses
        and their ones in these campaigns; the results of each pair with no diagnosis."""
        session = deps.session
        teacher_ids = {t for t, _ in pairs}
        teachers = await repository.teachers_by_id(session, teacher_ids, lock=True)
        sheets = {pair: Sheet() for pair in pairs}
        current: dict[str, Current] = {}
        for row in await repository.diagnoses_of(session, teacher_ids, {c for _, c in pairs}):
            if row.latest:
                current[row.teacher_id] = Current(row.diagnosis_id, row.competencies)
            sheet = sheets.get((row.teacher_id, row.campaign_id))
            if sheet is not None:
                sheet.diagnosis_id, sheet.status = row.diagnosis_id, row.status
        open_ = [p for p, s in sheets.items() if s.diagnosis_id is None and p[0] in teachers]
        for pair, rows in (await repository.evidence(session, open_)).items():
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
    ) -> DiagnosisCompleted:
        """Complete the teacher's diagnosis in the campaign with the results that are in;
        it becomes the teacher's current one; its event is staged (after ``cause``)."""
        ctx = self.deps.ctx
        teacher = self.teachers[teacher_id]
        sheet = self.sheets[(teacher_id, campaign_id)]
        previous = self.current.get(teacher_id)
        diagnosis = DiagnosisCompleted(
            diagnosis_id=str(uuid.uuid4()),
            teacher_id=teacher_id,
            campaign_id=campaign_id,
            completed_by=by,
            previous_diagnosis_id=previous.diagnosis_id if previous else None,
            **scored(ctx, teacher, sheet.results, previous.levels() if previous else None),
        )
        row = {
            **columns(diagnosis),
            "status": "completed",
            "latest": True,
            "revision": 0,
            "history": [],
            "completed_at": self.clock(),
        }
        if previous is not None and previous.row is not None:
            previous.row["latest"] = False  # completed earlier in this batch
        self.replaced.add(teacher_id)
        self.current[teacher_id] = Current(diagnosis.diagnosis_id, diagnosis.competencies, row)
        sheet.diagnosis_id, sheet.status = diagnosis.diagnosis_id, "completed"
        self.diagnoses.append(row)
        self.levels += repository.level_rows_of(diagnosis.diagnosis_id, diagnosis.competencies)
        traced(self.deps, cause, diagnosis.diagnosis_id, teacher_id)
        self.deps.stage(
            Streams.DIAGNOSTICS,
            new_event(
                "diagnostics.diagnosis.completed", diagnosis, source=SOURCE, subject=teacher_id
            ),
            cause=cause,
        )
        return diagnosis

    async def save(self) -> None:
        """Write what the batch decided: one statement per table."""
        session = self.deps.session
        await repository.add_results(session, self.results)
        await repository.unset_latest(session, self.replaced)
        await repository.add_diagnoses(session, self.diagnoses)
        await repository.add_levels(session, self.levels)


def scored(
    ctx: Diagnostics,
    teacher: Any,
    results: Sequence[Any],
    before: Sequence[CompetencyResult] | None,
) -> dict[str, Any]:
    """The fields of a diagnosis that follow from its evidence: where the teacher works,
    levels with their explanation, deficits, instruments used, burnout, the change since
    ``before`` (the levels of the teacher's earlier diagnosis, if any), and when the latest
    result it used was taken."""
    framework = ctx.framework
    evidence = [
        domain.Evidence(
            instrument=INSTRUMENTS[r.instrument],
            scores=r.scores,
            result_id=r.result_id,
            seq=seq,
            expert_id=r.expert_id,
        )
        for seq, r in enumerate(results)
    ]
    applicable = ctx.applicable(
        is_manager=bool(teacher.is_manager), audience=AUDIENCES[teacher.audience]
    )
    competencies = domain.combine(framework, evidence, applicable)
    used = {e.instrument for c in competencies for e in c.evidence}
    surveys = [r for r in results if r.instrument == Instrument.BURNOUT_SURVEY.value]
    burnout = domain.burnout(framework, surveys[-1].scores) if surveys else None
    if burnout is not None:
        used.add(Instrument.BURNOUT_SURVEY)
    return {
        "organization_id": teacher.organization_id,
        "municipality_id": teacher.municipality_id,
        "framework_version": framework.version,
        "competencies": competencies,
        "deficits": domain.deficits(competencies),
        "rule": framework.combination.label,
        "instruments": sorted(used, key=list(Instrument).index),
        "burnout": burnout,
        "changes": domain.changes(framework, before, competencies) if before is not None else [],
        "evidence_at": evidence_at(results, {i.value for i in used}),
    }


def evidence_at(results: Sequence[Any], instruments: Collection[str]) -> datetime | None:
    """When the latest of ``results`` of these instruments (the ones a diagnosis used) was
    taken; a time stored without its zone is UTC (SQLite keeps none)."""
    times = [
        utc(r.taken_at) for r in results if r.instrument in instruments and r.taken_at is not None
    ]
    return max(times, default=None)


def utc(moment: datetime) -> datetime:
    """The moment in UTC; one without a zone is UTC already (as SQLite gives it back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_RESULTS = TypeAdapter(list[CompetencyResult])
_CHANGES = TypeAdapter(list[CompetencyChange])


def columns(diagnosis: DiagnosisCompleted) -> dict[str, Any]:
    """The ``diagnoses`` columns of a diagnosis. Its long lists go in as JSON text dumped
    straight from the models (no dict of them built, then dumped again: per diagnosis,
    every competency with its evidence)."""
    found = {
        "diagnosis_id": diagnosis.diagnosis_id,
        "teacher_id": diagnosis.teacher_id,
        "campaign_id": diagnosis.campaign_id,
        "organization_id": diagnosis.organization_id,
        "municipality_id": diagnosis.municipality_id,
        "framework_version": diagnosis.framework_version,
        "rule": diagnosis.rule or "",
        "instruments": [i.value for i in diagnosis.instruments],
        "completed_by": diagnosis.completed_by,
        "competencies": RawJSON(_RESULTS.dump_json(diagnosis.competencies).decode()),
        "deficits": RawJSON(_RESULTS.dump_json(diagnosis.deficits).decode()),
        "deficit_count": len(diagnosis.deficits),
        "burnout": diagnosis.burnout.model_dump(mode="json") if diagnosis.burnout else None,
        "previous_diagnosis_id": diagnosis.previous_diagnosis_id,
        "changes": RawJSON(_CHANGES.dump_json(diagnosis.changes).decode()),
        "evidence_at": diagnosis.evidence_at,
    }
    if isinstance(diagnosis, DiagnosisRevised):
        found["revision"] = diagnosis.revision
    return found


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
