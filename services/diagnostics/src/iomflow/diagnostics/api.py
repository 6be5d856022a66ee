"""HTTP routes of diagnostics: results in, diagnoses, campaigns, frameworks, analytics.

Reading is open; operator commands (campaigns, closing, revising, cancelling) need the
``operator`` role. Errors: ``{detail (Russian), code, ...}`` with the status.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

from iomflow.diagnostics import analytics, campaigns, exchange, repository, service
from iomflow.diagnostics.repository import ingest_tables
from iomflow.shared import inbox, wire
from iomflow.shared.auth import Operator, presented
from iomflow.shared.contracts import Event, Instrument, ResultSubmitted, event_version
from iomflow.shared.errors import ApiError, Refused
from iomflow.shared.ingest import ERRORS, intake
from iomflow.shared.service import RuntimeDep, SessionDep
from iomflow.shared.unit import Deps

router = APIRouter(prefix="/v1", tags=["diagnostics"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
T = TypeVar("T")


class ResultCreate(ResultSubmitted):
    """A result posted over HTTP: the payload of ``diagnostics.result.submitted``."""

    event_id: uuid.UUID | None = Field(
        default=None, description="Idempotency key; the same id posted twice has one effect"
    )
    source: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The publisher: a publisher's key is its own source (if given, it must be "
        "the same); an operator may name the system it submits for (by default "
        "operator:<name>)",
    )


class CampaignCreate(BaseModel):
    campaign_id: str = Field(min_length=1, max_length=100, pattern=r"^[\w.-]+$")
    name: str = Field(min_length=1, max_length=300)
    starts_on: date | None = None
    ends_on: date | None = None
    municipalities: list[str] = Field(default_factory=list, description="Empty: the region")
    organizations: list[str] = Field(default_factory=list, description="Empty: all of them")
    required: list[Instrument] = Field(
        default_factory=list, description="Instruments required; empty: the framework's"
    )


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


def _diagnosis(row: Any) -> dict[str, Any]:
    return {
        **service.as_contract(row).model_dump(mode="json"),
        "status": row.status,
        "latest": row.latest,
        "revision": row.revision,
        "history": row.history,
        "completed_at": row.completed_at.isoformat(),
        "revised_at": row.revised_at.isoformat() if row.revised_at else None,
        "cancelled_at": row.cancelled_at.isoformat() if row.cancelled_at else None,
        "cancel_reason": row.cancel_reason,
    }


def _campaign(row: Any) -> dict[str, Any]:
    return {
        "campaign_id": row.campaign_id,
        "name": row.name,
        "starts_on": row.starts_on.isoformat() if row.starts_on else None,
        "ends_on": row.ends_on.isoformat() if row.ends_on else None,
        "municipalities": row.municipalities,
        "organizations": row.organizations,
        "required": row.required,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "closed_at": row.closed_at.isoformat() if row.closed_at else None,
    }


async def _refusals(work: Coroutine[Any, Any, T]) -> T:
    """Run a use case; a refusal becomes the API's error shape."""
    try:
        return await work
    except Refused as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from exc


def _ctx(runtime: RuntimeDep) -> service.Diagnostics:
    ctx = runtime.context
    assert isinstance(ctx, service.Diagnostics)
    return ctx


Ctx = Annotated[service.Diagnostics, Depends(_ctx)]


# --- results ---------------------------------------------------------------------------------


RESULT_TYPE = "diagnostics.result.submitted"


def _inlined(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON Schema with its local ``#/$defs/…`` references replaced by what they name (an
    OpenAPI document resolves such a reference against itself, not against the schema)."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inlined(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inlined(v, defs) for v in node]
    return node


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return dict(_inlined(schema, schema.get("$defs", {})))


@router.post(
    "/results",
    status_code=202,
    summary="Submit one instrument's result (a publisher's key with the type, or an operator)",
    dependencies=[Depends(presented)],  # the key is read by intake()
    description="The body is the payload of diagnostics.result.submitted (with an optional "
    "event_id). The key: a publisher's that may send the type (rated and audited as "
    "POST /v1/events; source is the publisher's id) or an operator's, by hand (audited).",
    responses=ERRORS,  # type: ignore[arg-type]
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _schema(ResultCreate)}},
        }
    },
)
async def submit(request: Request, response: Response, runtime: RuntimeDep) -> dict[str, Any]:
    """The same checks as on the stream (the same batch code, a batch of one): 422/409 with
    a code instead of a dead letter; a teacher not yet in the registries: 202 with
    ``status: held``."""
    door = await intake(request, ingest_tables, RESULT_TYPE)
    raw = await door.read(request)
    if wire.holds_nul(raw):
        raise await door.refuse(
            422,
            "validation_error",
            "Запрос не прошёл проверку: символ NUL (\\u0000) в тексте недопустим.",
            errors=[
                {"loc": ["body"], "msg": "NUL (\\u0000) is not allowed in text", "type": "nul"}
            ],
        )
    try:
        body = ResultCreate.model_validate(raw)
    except ValidationError as exc:
        raise await door.refuse(
            422,
            "validation_error",
            "Запрос не прошёл проверку: исправьте указанные поля и отправьте снова.",
            event_id=raw.get("event_id") if isinstance(raw, dict) else None,
            errors=wire.validation_errors(exc, ["body"], russian=True),
        ) from exc
    if door.source is not None and body.source not in (None, door.source):
        raise await door.refuse(
            422,
            "source_mismatch",
            f"source — это издатель ключа: «{door.source}».",
            event_id=str(body.event_id) if body.event_id else None,
        )
    fields = {name: getattr(body, name) for name in ResultSubmitted.model_fields}
    event = Event[ResultSubmitted](
        event_id=body.event_id or uuid.uuid4(),
        type=RESULT_TYPE,
        version=event_version(RESULT_TYPE),
        source=door.source or body.source or f"operator:{door.operator}",
        occurred_at=datetime.now(UTC),
        subject=body.teacher_id,
        payload=ResultSubmitted.model_construct(  # validated as the body already
            body.model_fields_set - {"event_id", "source"}, **fields
        ),
    )
    try:
        async with runtime.transaction() as deps:
            # The stream consumer's own inbox: the same event id via XADD is a duplicate.
            fresh = await inbox.record(
                deps.session, runtime.consumer.inbox_table, runtime.consumer.group, event.event_id
            )
            if fresh:
                taken = await service.submit_results([event], deps)
                refused = deps.rejected.get(str(event.event_id))
                if isinstance(refused, Refused):  # nothing is written: the transaction rolls back
                    raise refused
                submission = taken[str(event.event_id)]
                status = submission.status
                diagnosis = (
                    await repository.get_diagnosis(deps.session, submission.diagnosis_id)
                    if submission.diagnosis_id
                    else None
                )
            else:
                status = "duplicate"
                diagnosis = await repository.find_diagnosis(
                    deps.session, body.teacher_id, body.campaign_id
                )
    except Refused as exc:  # audited once the transaction has given its connection back
        raise await door.refuse(
            exc.status, exc.code, exc.detail, event_id=str(event.event_id)
        ) from exc
    await door.accepted(str(event.event_id), status)
    response.headers.update(door.headers())
    return {
        "event_id": str(event.event_id),
        "status": status,
        "duplicate": status == "duplicate",
        "source": event.source,
        "diagnosis": _diagnosis(diagnosis) if diagnosis is not None else None,
    }


@router.get("/held", summary="Results held for teachers the registries do not know yet")
async def held(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return [
        {
            "event_id": r.event_id,
            "teacher_id": r.teacher_id,
            "campaign_id": r.campaign_id,
            "received_at": r.received_at.isoformat(),
            "hold_until": r.hold_until.isoformat(),
        }
        for r in await repository.held_rows(session, offset, limit)
    ]


# --- diagnoses -------------------------------------------------------------------------------


async def _get(session: SessionDep, diagnosis_id: str) -> Any:
    row = await repository.get_diagnosis(session, diagnosis_id)
    if row is None:
        raise ApiError(404, "not_found", f"Диагностика «{diagnosis_id}» не найдена.")
    return row


@router.get("/diagnoses/{diagnosis_id}", summary="A diagnosis with its explanation")
async def get_diagnosis(diagnosis_id: str, session: SessionDep) -> dict[str, Any]:
    return _diagnosis(await _get(session, diagnosis_id))


@router.get("/diagnoses/{diagnosis_id}/results", summary="The results behind a diagnosis")
async def diagnosis_results(diagnosis_id: str, session: SessionDep) -> list[dict[str, Any]]:
    row = await _get(session, diagnosis_id)
    return [
        {
            "result_id": r.result_id,
            "instrument": r.instrument,
            "expert_id": r.expert_id,
            "external_id": r.external_id,
            "source": r.source,
            "taken_at": r.taken_at.isoformat(),
            "received_at": r.received_at.isoformat(),
            "submitted": r.submitted,
            "scores": r.scores,
        }
        for r in await repository.campaign_results(session, row.teacher_id, row.campaign_id)
    ]


@router.get("/diagnoses", summary="Diagnoses by teacher, organisation, campaign, status")
async def list_diagnoses(
    session: SessionDep,
    teacher_id: str | None = None,
    organization_id: str | None = None,
    campaign_id: str | None = None,
    status: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    total, rows = await repository.list_diagnoses(
        session,
        teacher_id=teacher_id,
        organization_id=organization_id,
        campaign_id=campaign_id,
        status=status,
        offset=offset,
        limit=limit,
    )
    return {"total": total, "offset": offset, "items": [_diagnosis(r) for r in rows]}


@router.get("/teachers/{teacher_id}/diagnoses", summary="A teacher's diagnoses, oldest first")
async def teacher_diagnoses(teacher_id: str, session: SessionDep) -> list[dict[str, Any]]:
    _, rows = await repository.list_diagnoses(session, teacher_id=teacher_id, limit=1000)
    return [_diagnosis(r) for r in rows]


async def _command(
    runtime: RuntimeDep, work: Callable[[Deps[service.Diagnostics]], Coroutine[Any, Any, Any]]
) -> dict[str, Any]:
    async with runtime.transaction() as deps:
        row = await _refusals(work(deps))
    return _diagnosis(row)


@router.post("/diagnoses/{diagnosis_id}/revise", summary="Re-score with the framework in force")
async def revise(
    diagnosis_id: str, body: Reason, runtime: RuntimeDep, _: Operator
) -> dict[str, Any]:
    return await _command(runtime, lambda deps: service.revise(deps, diagnosis_id, body.reason))


@router.post("/diagnoses/{diagnosis_id}/cancel", summary="Cancel a diagnosis")
async def cancel(
    diagnosis_id: str, body: Reason, runtime: RuntimeDep, _: Operator
) -> dict[str, Any]:
    return await _command(runtime, lambda deps: service.cancel(deps, diagnosis_id, body.reason))


# --- campaigns -------------------------------------------------------------------------------


async def _campaign_row(session: SessionDep, campaign_id: str) -> Any:
    row = await repository.get_campaign(session, campaign_id)
    if row is None:
        raise ApiError(404, "unknown_campaign", f"Кампания «{campaign_id}» не найдена.")
    return row


@router.post("/campaigns", status_code=201, summary="Open a diagnostics campaign")
async def create_campaign(
    body: CampaignCreate, runtime: RuntimeDep, ctx: Ctx, _: Operator
) -> dict[str, Any]:
    async with runtime.transaction() as deps:
        row = await _refusals(
            campaigns.create_campaign(deps.session, **body.model_dump(), framework=ctx.framework)
        )
    return _campaign(row)


@router.get("/campaigns", summary="Campaigns")
async def list_campaigns(session: SessionDep) -> list[dict[str, Any]]:
    return [_campaign(r) for r in await repository.list_campaigns(session)]


@router.get("/campaigns/{campaign_id}", summary="A campaign")
async def campaign(campaign_id: str, session: SessionDep) -> dict[str, Any]:
    return _campaign(await _campaign_row(session, campaign_id))


@router.get(
    "/campaigns/{campaign_id}/progress",
    summary="Expected / submitted / completed, by municipality",
)
async def progress(campaign_id: str, session: SessionDep) -> dict[str, Any]:
    row = await _campaign_row(session, campaign_id)
    per = await repository.progress(session, row)
    names = {
        m.municipality_id: m.name
        for m in await repository.all_rows(session, repository.municipalities)
    }
    keys = ("expected", "submitted", "completed", "held")
    return {
        "campaign_id": campaign_id,
        **{k: sum(v[k] for v in per.values()) for k in keys},
        "municipalities": [
            {"municipality_id": m, "name": names.get(m, m or "не в реестре"), **per[m]}
            for m in sorted(per, key=lambda m: names.get(m, m))
        ],
    }


@router.post("/campaigns/{campaign_id}/close", summary="Close: complete what is in")
async def close_campaign(campaign_id: str, runtime: RuntimeDep, _: Operator) -> dict[str, Any]:
    completed = await _refusals(service.close_campaign(runtime.transaction, campaign_id))
    return {"campaign_id": campaign_id, "status": "closed", "completed": completed}


@router.post(
    "/campaigns/{campaign_id}/teachers/{teacher_id}/close",
    summary="Complete one teacher's diagnosis with the evidence that is in",
)
async def close_teacher(
    campaign_id: str, teacher_id: str, runtime: RuntimeDep, _: Operator
) -> dict[str, Any]:
    return await _command(
        runtime, lambda deps: service.close_diagnosis(deps, teacher_id, campaign_id)
    )


# --- frameworks ------------------------------------------------------------------------------


@router.get("/framework", summary="The competency framework in force")
async def framework(ctx: Ctx) -> dict[str, Any]:
    return ctx.framework.model_dump(mode="json")


@router.get("/frameworks", summary="Every framework version in force at some time")
async def frameworks(session: SessionDep) -> list[dict[str, Any]]:
    return [
        {"version": r.version, "loaded_at": r.loaded_at.isoformat()}
        for r in await repository.framework_versions(session)
    ]


async def _framework(session: SessionDep, version: str) -> Any:
    found = await campaigns.framework_at(session, version)
    if found is None:
        raise ApiError(404, "unknown_framework", f"Рамка версии «{version}» не найдена.")
    return found


@router.get("/frameworks/{version}", summary="One framework version")
async def framework_version(version: str, session: SessionDep) -> dict[str, Any]:
    return (await _framework(session, version)).model_dump(mode="json")  # type: ignore[no-any-return]


@router.get("/frameworks/{version}/case.json", summary="As a 1EdTech CASE package")
async def framework_case(version: str, session: SessionDep) -> dict[str, Any]:
    return exchange.to_case(await _framework(session, version))


@router.get("/frameworks/{version}/competencies.csv", summary="As CSV (one competency a row)")
async def framework_csv(version: str, session: SessionDep) -> Response:
    return Response(
        exchange.to_csv(await _framework(session, version)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="framework-{version}.csv"'},
    )


# --- analytics -------------------------------------------------------------------------------


@router.get("/analytics", summary="Deficits by competency, municipality, organisation, subject")
async def report(
    session: SessionDep,
    ctx: Ctx,
    campaign_id: str | None = None,
    min_share: Annotated[float, Query(ge=0, le=100)] = 5.0,
) -> dict[str, Any]:
    return await analytics.report(session, ctx.framework, campaign_id, min_share)


@router.get("/analytics/program-gap", summary="Frequent deficits no program covers, ranked")
async def program_gap(
    session: SessionDep,
    ctx: Ctx,
    campaign_id: str | None = None,
    min_share: Annotated[float, Query(ge=0, le=100)] = 5.0,
) -> list[dict[str, Any]]:
    found = await analytics.report(session, ctx.framework, campaign_id, min_share)
    return found["program_gap"]  # type: ignore[no-any-return]


@router.get("/analytics.xlsx", summary="The analytics as a workbook (Russian)")
async def report_xlsx(
    session: SessionDep,
    ctx: Ctx,
    campaign_id: str | None = None,
    min_share: Annotated[float, Query(ge=0, le=100)] = 5.0,
) -> Response:
    found = await analytics.report(session, ctx.framework, campaign_id, min_share)
    name = f"deficits-{campaign_id or 'current'}.xlsx"
    return Response(
        analytics.workbook(ctx.framework, found),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/stats", summary="Counts of the read model, results and diagnoses")
async def stats(session: SessionDep) -> dict[str, int]:
    return await repository.counts(session)
