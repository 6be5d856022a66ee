"""HTTP routes of diagnostics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import Field

from iomflow.diagnostics import repository, service
from iomflow.shared import inbox
from iomflow.shared.contracts import Event, ResultSubmitted
from iomflow.shared.service import RuntimeDep, SessionDep
from iomflow.shared.streams import Rejected

router = APIRouter(prefix="/v1", tags=["diagnostics"])


class ResultCreate(ResultSubmitted):
    """A result posted over HTTP: the payload of ``diagnostics.result.submitted``."""

    event_id: uuid.UUID | None = Field(
        default=None, description="Idempotency key; the same id posted twice has one effect"
    )
    source: str = Field(default="http", min_length=1, max_length=200, description="Publisher id")


def _diagnosis(row: Any) -> dict[str, Any]:
    return {
        "diagnosis_id": row.diagnosis_id,
        "teacher_id": row.teacher_id,
        "campaign_id": row.campaign_id,
        "organization_id": row.organization_id,
        "municipality_id": row.municipality_id,
        "framework_version": row.framework_version,
        "competencies": row.competencies,
        "deficits": row.deficits,
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
    }


@router.post("/results", status_code=202, summary="Submit one instrument's result")
async def submit(body: ResultCreate, runtime: RuntimeDep) -> JSONResponse:
    framework = runtime.extras["framework"]
    event = Event[ResultSubmitted](
        event_id=body.event_id or uuid.uuid4(),
        type="diagnostics.result.submitted",
        version=1,
        source=body.source,
        occurred_at=datetime.now(UTC),
        subject=body.teacher_id,
        payload=ResultSubmitted.model_validate(body.model_dump(exclude={"event_id", "source"})),
    )
    try:
        async with runtime.sessions() as session, session.begin():
            fresh = await inbox.record(
                # the stream consumer's own inbox: the same event id via XADD is a duplicate
                session,
                runtime.consumer.inbox_table,
                runtime.consumer.group,
                event.event_id,
            )
            diagnosis = (
                await service.submit_result(session, runtime.outbox, framework, event)
                if fresh
                else await repository.find_diagnosis(session, body.teacher_id, body.campaign_id)
            )
    except service.UnknownTeacher as exc:
        return JSONResponse(
            status_code=422,
            content={
                "detail": f"Педагог «{exc.teacher_id}» не найден в региональном реестре. "
                "Проверьте идентификатор или дождитесь загрузки реестра.",
                "code": "unknown_teacher",
            },
        )
    except Rejected as exc:
        return JSONResponse(
            status_code=422,
            content={
                "detail": "Результат не принят: коды компетенций не входят в действующую рамку.",
                "code": "unknown_competency",
                "errors": [{"msg": str(exc)}],
            },
        )
    runtime.outbox.wake()
    return JSONResponse(
        status_code=202,
        content={
            "event_id": str(event.event_id),
            "duplicate": not fresh,
            "diagnosis": _diagnosis(diagnosis) if diagnosis is not None else None,
        },
    )


@router.get("/diagnoses/{diagnosis_id}", summary="A diagnosis")
async def get_diagnosis(diagnosis_id: str, session: SessionDep) -> dict[str, Any]:
    row = await repository.get_diagnosis(session, diagnosis_id)
    if row is None:
        raise HTTPException(404, detail=f"Диагностика «{diagnosis_id}» не найдена.")
    return _diagnosis(row)


@router.get("/teachers/{teacher_id}/diagnoses", summary="A teacher's diagnoses")
async def teacher_diagnoses(teacher_id: str, session: SessionDep) -> list[dict[str, Any]]:
    return [_diagnosis(r) for r in await repository.teacher_diagnoses(session, teacher_id)]


@router.get("/stats", summary="Counts of the read model, results and diagnoses")
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.counts(session)
