"""Diagnostics use cases: take a result, complete the diagnosis when its evidence is in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics import domain, repository
from iomflow.shared.contracts import (
    DiagnosisCompleted,
    Event,
    ResultSubmitted,
    Streams,
    new_event,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Rejected


class UnknownTeacher(Exception):
    """The registries have not told us of this teacher (yet): retried, then dead-lettered."""

    def __init__(self, teacher_id: str) -> None:
        super().__init__(f"teacher {teacher_id} is not in the registries' read model")
        self.teacher_id = teacher_id


def check_codes(framework: domain.Framework, result: ResultSubmitted) -> None:
    unknown = sorted(set(result.scores) - framework.codes)
    if unknown:
        raise Rejected(
            f"competency codes not in framework {framework.version}: {', '.join(unknown)}"
        )


async def submit_result(
    session: AsyncSession,
    outbox: Outbox,
    framework: domain.Framework,
    event: Event[ResultSubmitted],
) -> Any | None:
    """Store the result; if it completes the teacher's diagnosis, stage the event.

    Returns the diagnosis row when there is one (new or earlier) for this campaign.
    """
    result = event.payload
    check_codes(framework, result)
    teacher = await repository.get_teacher(session, result.teacher_id)
    if teacher is None:
        raise UnknownTeacher(result.teacher_id)
    await repository.add_result(
        session,
        {
            "result_id": str(event.event_id),
            "teacher_id": result.teacher_id,
            "campaign_id": result.campaign_id,
            "instrument": result.instrument.value,
            "scores": result.scores,
            "source": event.source,
            "received_at": datetime.now(UTC),
        },
    )
    existing = await repository.find_diagnosis(session, result.teacher_id, result.campaign_id)
    if existing is not None:
        return existing  # kept as evidence; re-scoring is a revision (issue 4)

    latest: dict[str, domain.Evidence] = {}
    for row in await repository.campaign_results(session, result.teacher_id, result.campaign_id):
        latest[row.instrument] = domain.Evidence(row.instrument, row.scores)
    evidence = list(latest.values())
    if not domain.is_complete(framework, {e.instrument for e in evidence}):
        return None

    competencies = domain.combine(framework, evidence)
    deficits = domain.deficits(competencies)
    diagnosis = DiagnosisCompleted(
        diagnosis_id=str(uuid.uuid4()),
        teacher_id=result.teacher_id,
        organization_id=teacher.organization_id,
        municipality_id=teacher.municipality_id,
        campaign_id=result.campaign_id,
        framework_version=framework.version,
        competencies=competencies,
        deficits=deficits,
    )
    await repository.add_diagnosis(
        session,
        {
            **diagnosis.model_dump(mode="json", exclude={"competencies", "deficits"}),
            "competencies": [c.model_dump(mode="json") for c in competencies],
            "deficits": [d.model_dump(mode="json") for d in deficits],
            "deficit_count": len(deficits),
            "completed_at": datetime.now(UTC),
        },
    )
    await outbox.stage(
        session,
        Streams.DIAGNOSTICS,
        new_event(
            "diagnostics.diagnosis.completed",
            diagnosis,
            source="diagnostics",
            subject=result.teacher_id,
        ),
    )
    return await repository.find_diagnosis(session, result.teacher_id, result.campaign_id)
