"""HTTP routes of diagnostics: results in, diagnoses, campaigns, frameworks, analytics.

Reading is open; operator commands (campaigns, closing, revising, cancelling) need the
``operator`` role. Every answer is a model of ``schemas``; lists are ``Page``s; errors are
problem details (``shared/problems.py``), each operation documenting the statuses of its
own rules.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics import analytics, burnout, campaigns, exchange, repository, service
from iomflow.diagnostics.repository import ingest_tables
from iomflow.diagnostics.schemas import (
    AnalyticsRead,
    BurnoutRead,
    CampaignClosedRead,
    CampaignCreate,
    CampaignRead,
    CaseRead,
    DiagnosisRead,
    FrameworkRead,
    FrameworkVersionRead,
    HeldRead,
    NeedsRead,
    NeedsSubmittedRead,
    ProgramGapRead,
    ProgressRead,
    Reason,
    ResultRead,
    StatsRead,
    SubmittedRead,
)
from iomflow.shared import inbox, wire
from iomflow.shared.auth import Operator, presented
from iomflow.shared.contracts import Event, NeedsSubmitted, ResultSubmitted, event_version
from iomflow.shared.errors import ApiError, Refused
from iomflow.shared.ingest import ERRORS, Intake, intake
from iomflow.shared.problems import Page, Paging, binary, page, paging, problems
from iomflow.shared.service import Runtime, RuntimeDep, SessionDep
from iomflow.shared.unit import Deps

router = APIRouter(prefix="/v1", tags=["diagnostics"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
T = TypeVar("T")


EventId = Annotated[
    uuid.UUID | None,
    Field(description="Idempotency key; the same id posted twice has one effect"),
]
Source = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description="The publisher: a publisher's key is its own source (if given, it must be "
        "the same); an operator may name the system it submits for (by default "
        "operator:<name>)",
    ),
]
"""The fields an intake form adds to its event's payload (``_body``, ``_envelope``)."""


class ResultCreate(ResultSubmitted):
    """A result posted over HTTP: the payload of ``diagnostics.result.submitted``."""

    event_id: EventId = None
    source: Source = None


class NeedsCreate(NeedsSubmitted):
    """A needs answer posted over HTTP: the payload of ``diagnostics.needs.submitted``."""

    event_id: EventId = None
    source: Source = None


def _diagnosis(row: Any) -> DiagnosisRead:
    return DiagnosisRead.model_validate(
        {
            **service.as_contract(row).model_dump(),
            "status": row.status,
            "latest": row.latest,
            "revision": row.revision,
            "history": row.history,
            "completed_at": row.completed_at,
            "revised_at": row.revised_at,
            "cancelled_at": row.cancelled_at,
            "cancel_reason": row.cancel_reason,
        }
    )


def _campaign(row: Any) -> CampaignRead:
    return CampaignRead.model_validate(row, from_attributes=True)


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


B = TypeVar("B", ResultCreate, NeedsCreate)


async def _body(door: Intake, request: Request, model: type[B]) -> B:
    """The body of an intake form, checked (422 problems in Russian, audited): no NUL,
    the model's rules, the source the key's own."""
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
        body = model.model_validate(raw)
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
    return body


def _envelope(door: Intake, body: B, kind: str, payload: type[BaseModel]) -> dict[str, Any]:
    """The fields of the event an intake form is (its payload ``payload``, of type ``kind``):
    what the stream would carry."""
    fields = {name: getattr(body, name) for name in payload.model_fields}
    return {
        "event_id": body.event_id or uuid.uuid4(),
        "type": kind,
        "version": event_version(kind),
        "source": door.source or body.source or f"operator:{door.operator}",
        "occurred_at": datetime.now(UTC),
        "subject": body.teacher_id,
        "payload": payload.model_construct(  # validated as the body already
            body.model_fields_set - {"event_id", "source"}, **fields
        ),
    }


class _Taken(Protocol):
    @property
    def status(self) -> str: ...


K = TypeVar("K", bound=_Taken)


async def _take_one(
    door: Intake,
    response: Response,
    runtime: Runtime[Any],
    event: Event[Any],
    take: Callable[[Deps[Any], list[Any]], Awaitable[Mapping[str, K]]],
    again: Callable[[AsyncSession], Awaitable[Any]],
) -> tuple[str, K | None, Any]:
    """Take one posted event with the stream's batch code (a batch of one), in the stream
    consumer's own inbox (the same event id via XADD is a duplicate): a refusal is a
    problem (nothing is written, audited once the transaction has given its connection
    back). Returns the status, what ``take`` made of it (None for a duplicate) and, for a
    duplicate, what ``again`` reads of it."""
    taken: K | None = None
    stored: Any = None
    try:
        async with runtime.transaction() as deps:
            fresh = await inbox.record(
                deps.session, runtime.consumer.inbox_table, runtime.consumer.group, event.event_id
            )
            if fresh:
                out = await take(deps, [event])
                refused = deps.rejected.get(str(event.event_id))
                if isinstance(refused, Refused):  # nothing is written: the transaction rolls back
                    raise refused
                taken = out[str(event.event_id)]
            else:
                stored = await again(deps.session)
    except Refused as exc:
        raise await door.refuse(
            exc.status, exc.code, exc.detail, event_id=str(event.event_id)
        ) from exc
    status = taken.status if taken is not None else "duplicate"
    await door.accepted(str(event.event_id), status)
    response.headers.update(door.headers())
    return status, taken, stored


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
async def submit(request: Request, response: Response, runtime: RuntimeDep) -> SubmittedRead:
    """The same checks as on the stream (the same batch code, a batch of one): 422/409 with
    a code instead of a dead letter; a teacher not yet in the registries: 202 with
    ``status: held``."""
    door = await intake(request, ingest_tables, RESULT_TYPE)
    body = await _body(door, request, ResultCreate)
    event = Event[ResultSubmitted](**_envelope(door, body, RESULT_TYPE, ResultSubmitted))
    status, submission, diagnosis = await _take_one(
        door,
        response,
        runtime,
        event,
        service.take_results,
        lambda session: repository.find_diagnosis(session, body.teacher_id, body.campaign_id),
    )
    if submission is not None:
        diagnosis = submission.diagnosis  # as stored: not read back
    return SubmittedRead(
        event_id=str(event.event_id),
        status=status,
        duplicate=status == "duplicate",
        source=event.source,
        diagnosis=_diagnosis(diagnosis) if diagnosis is not None else None,
    )


Paged = Annotated[Paging, Depends(paging())]
NOT_FOUND = "нет такой диагностики"
NO_CAMPAIGN = "нет такой кампании"
NO_FRAMEWORK = "нет такой версии рамки"


# --- needs -----------------------------------------------------------------------------------


NEEDS_TYPE = "diagnostics.needs.submitted"


def _needs(row: Any) -> NeedsRead:
    return NeedsRead.model_validate(row, from_attributes=not isinstance(row, dict))


@router.post(
    "/needs",
    status_code=201,
    summary="Submit one teacher's answers to the needs questionnaire (a publisher's key "
    "with the type, or an operator)",
    dependencies=[Depends(presented)],  # the key is read by intake()
    description="The body is the payload of diagnostics.needs.submitted (with an optional "
    "event_id). The same checks and keys as POST /v1/results; answers 201 with the answer "
    "as stored (status held, without it, for a teacher not yet in the registries; "
    "duplicate for an event id taken before).",
    responses=ERRORS,  # type: ignore[arg-type]
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _schema(NeedsCreate)}},
        }
    },
)
async def submit_needs(
    request: Request, response: Response, runtime: RuntimeDep
) -> NeedsSubmittedRead:
    """The same batch code as the stream (a batch of one): 422/409 with a code instead of a
    dead letter."""
    door = await intake(request, ingest_tables, NEEDS_TYPE)
    body = await _body(door, request, NeedsCreate)
    event = Event[NeedsSubmitted](**_envelope(door, body, NEEDS_TYPE, NeedsSubmitted))
    status, taken, stored = await _take_one(
        door,
        response,
        runtime,
        event,
        service.take_needs,
        lambda session: repository.get_needs(session, str(event.event_id)),
    )
    if taken is not None:
        stored = taken.row  # as stored: not read back
    return NeedsSubmittedRead(
        event_id=str(event.event_id),
        status=status,
        duplicate=status == "duplicate",
        source=event.source,
        needs=_needs(stored) if stored is not None else None,
    )


@router.get(
    "/needs",
    summary="Needs answers, in order of arrival (by campaign, by teacher)",
    response_model=Page[NeedsRead],
)
async def list_needs(
    session: SessionDep,
    paged: Paged,
    campaign_id: str | None = None,
    teacher_id: str | None = None,
) -> Page[NeedsRead]:
    total, rows = await repository.list_needs(
        session,
        campaign_id=campaign_id,
        teacher_id=teacher_id,
        offset=paged.offset,
        limit=paged.limit,
    )
    return page([_needs(r) for r in rows], total, paged)


@router.get(
    "/held",
    summary="Results and needs answers held for teachers the registries do not know yet",
    response_model=Page[HeldRead],
)
async def held(session: SessionDep, paged: Paged) -> Page[HeldRead]:
    total = (await session.execute(select(func.count()).select_from(repository.held))).scalar_one()
    rows = await repository.list_held(session, paged.offset, paged.limit)
    items = [HeldRead.model_validate(r, from_attributes=True) for r in rows]
    return page(items, total, paged)


# --- diagnoses -------------------------------------------------------------------------------


async def _get(session: SessionDep, diagnosis_id: str) -> Any:
    row = await repository.get_diagnosis(session, diagnosis_id)
    if row is None:
        raise ApiError(404, "not_found", f"Диагностика «{diagnosis_id}» не найдена.")
    return row


@router.get(
    "/diagnoses/{diagnosis_id}",
    summary="A diagnosis with its explanation",
    response_model=DiagnosisRead,
    responses=problems(404, s404=NOT_FOUND),
)
async def get_diagnosis(diagnosis_id: str, session: SessionDep) -> DiagnosisRead:
    return _diagnosis(await _get(session, diagnosis_id))


@router.get(
    "/diagnoses/{diagnosis_id}/results",
    summary="The results behind a diagnosis, in order of arrival",
    response_model=Page[ResultRead],
    responses=problems(404, s404=NOT_FOUND),
)
async def diagnosis_results(
    diagnosis_id: str, session: SessionDep, paged: Paged
) -> Page[ResultRead]:
    row = await _get(session, diagnosis_id)
    rows = await repository.list_results(session, row.teacher_id, row.campaign_id)
    part = rows[paged.offset : paged.offset + paged.limit]
    items = [ResultRead.model_validate(r, from_attributes=True) for r in part]
    return page(items, len(rows), paged)


@router.get(
    "/diagnoses",
    summary="Diagnoses by teacher, organisation, campaign, status",
    response_model=Page[DiagnosisRead],
)
async def list_diagnoses(
    session: SessionDep,
    paged: Paged,
    teacher_id: str | None = None,
    organization_id: str | None = None,
    campaign_id: str | None = None,
    status: Literal["completed", "cancelled"] | None = None,
) -> Page[DiagnosisRead]:
    total, rows = await repository.list_diagnoses(
        session,
        teacher_id=teacher_id,
        organization_id=organization_id,
        campaign_id=campaign_id,
        status=status,
        offset=paged.offset,
        limit=paged.limit,
    )
    return page([_diagnosis(r) for r in rows], total, paged)


@router.get(
    "/teachers/{teacher_id}/diagnoses",
    summary="A teacher's diagnoses (one per campaign), oldest first",
    response_model=list[DiagnosisRead],
)
async def teacher_diagnoses(teacher_id: str, session: SessionDep) -> list[DiagnosisRead]:
    found: list[DiagnosisRead] = []
    while True:  # a few per teacher; read to the end all the same
        total, rows = await repository.list_diagnoses(
            session, teacher_id=teacher_id, offset=len(found), limit=1000
        )
        found += [_diagnosis(r) for r in rows]
        if not rows or len(found) >= total:
            return found


async def _command(
    runtime: RuntimeDep, work: Callable[[Deps[service.Diagnostics]], Coroutine[Any, Any, Any]]
) -> DiagnosisRead:
    async with runtime.transaction() as deps:
        row = await _refusals(work(deps))
    return _diagnosis(row)


@router.post(
    "/diagnoses/{diagnosis_id}/revise",
    summary="Re-score with the framework in force",
    response_model=DiagnosisRead,
    responses=problems(
        404,
        409,
        s404=NOT_FOUND,
        s409="Диагностика отменена (diagnosis_cancelled) или педагога нет в реестре "
        "(unknown_teacher)",
    ),
)
async def revise(
    diagnosis_id: str, body: Reason, runtime: RuntimeDep, _: Operator
) -> DiagnosisRead:
    return await _command(runtime, lambda deps: service.revise(deps, diagnosis_id, body.reason))


@router.post(
    "/diagnoses/{diagnosis_id}/cancel",
    summary="Cancel a diagnosis",
    response_model=DiagnosisRead,
    responses=problems(404, 409, s404=NOT_FOUND, s409="Уже отменена (already_cancelled)"),
)
async def cancel(
    diagnosis_id: str, body: Reason, runtime: RuntimeDep, _: Operator
) -> DiagnosisRead:
    return await _command(runtime, lambda deps: service.cancel(deps, diagnosis_id, body.reason))


# --- campaigns -------------------------------------------------------------------------------


async def _campaign_row(session: SessionDep, campaign_id: str) -> Any:
    row = await repository.get_campaign(session, campaign_id)
    if row is None:
        raise ApiError(404, "unknown_campaign", f"Кампания «{campaign_id}» не найдена.")
    return row


@router.post(
    "/campaigns",
    status_code=201,
    summary="Open a diagnostics campaign",
    response_model=CampaignRead,
    responses=problems(409, s409="Кампания с таким campaign_id уже есть (campaign_exists)"),
)
async def create_campaign(
    body: CampaignCreate, runtime: RuntimeDep, ctx: Ctx, _: Operator
) -> CampaignRead:
    async with runtime.transaction() as deps:
        row = await _refusals(
            campaigns.create_campaign(deps.session, **body.model_dump(), framework=ctx.framework)
        )
    return _campaign(row)


@router.get("/campaigns", summary="Campaigns, oldest first", response_model=Page[CampaignRead])
async def list_campaigns(session: SessionDep, paged: Paged) -> Page[CampaignRead]:
    rows = await repository.list_campaigns(session)
    part = rows[paged.offset : paged.offset + paged.limit]
    return page([_campaign(r) for r in part], len(rows), paged)


@router.get(
    "/campaigns/{campaign_id}",
    summary="A campaign",
    response_model=CampaignRead,
    responses=problems(404, s404=NO_CAMPAIGN),
)
async def campaign(campaign_id: str, session: SessionDep) -> CampaignRead:
    return _campaign(await _campaign_row(session, campaign_id))


@router.get(
    "/campaigns/{campaign_id}/progress",
    summary="Expected / submitted / completed, by municipality",
    response_model=ProgressRead,
    responses=problems(404, s404=NO_CAMPAIGN),
)
async def progress(campaign_id: str, session: SessionDep) -> ProgressRead:
    row = await _campaign_row(session, campaign_id)
    per = await repository.progress(session, row)
    names = {
        m.municipality_id: m.name
        for m in await repository.all_rows(session, repository.municipalities)
    }
    keys = ("expected", "submitted", "completed", "held")
    return ProgressRead.model_validate(
        {
            "campaign_id": campaign_id,
            **{k: sum(v[k] for v in per.values()) for k in keys},
            "municipalities": [
                {"municipality_id": m, "name": names.get(m, m or "не в реестре"), **per[m]}
                for m in sorted(per, key=lambda m: names.get(m, m))
            ],
        }
    )


@router.post(
    "/campaigns/{campaign_id}/close",
    summary="Close: complete what is in",
    response_model=CampaignClosedRead,
    responses=problems(
        404, 409, s404=NO_CAMPAIGN, s409="Постоянную диагностику закрыть нельзя (standing_campaign)"
    ),
)
async def close_campaign(campaign_id: str, runtime: RuntimeDep, _: Operator) -> CampaignClosedRead:
    completed = await _refusals(service.close_campaign(runtime.transaction, campaign_id))
    return CampaignClosedRead(campaign_id=campaign_id, status="closed", completed=completed)


@router.post(
    "/campaigns/{campaign_id}/teachers/{teacher_id}/close",
    summary="Complete one teacher's diagnosis with the evidence that is in",
    response_model=DiagnosisRead,
    responses=problems(
        404,
        409,
        s404="У педагога нет результатов в кампании (no_results)",
        s409="Диагностика уже завершена или отменена (already_completed)",
    ),
)
async def close_teacher(
    campaign_id: str, teacher_id: str, runtime: RuntimeDep, _: Operator
) -> DiagnosisRead:
    return await _command(
        runtime, lambda deps: service.close_diagnosis(deps, teacher_id, campaign_id)
    )


# --- frameworks ------------------------------------------------------------------------------


@router.get("/framework", summary="The competency framework in force", response_model=FrameworkRead)
async def framework(ctx: Ctx) -> Any:
    return ctx.framework


@router.get(
    "/frameworks",
    summary="Every framework version in force at some time, oldest first",
    response_model=list[FrameworkVersionRead],
)
async def frameworks(session: SessionDep) -> list[FrameworkVersionRead]:
    return [
        FrameworkVersionRead.model_validate(r, from_attributes=True)
        for r in await repository.list_frameworks(session)
    ]


async def _framework(session: SessionDep, version: str) -> Any:
    found = await campaigns.framework_at(session, version)
    if found is None:
        raise ApiError(404, "unknown_framework", f"Рамка версии «{version}» не найдена.")
    return found


@router.get(
    "/frameworks/{version}",
    summary="One framework version",
    response_model=FrameworkRead,
    responses=problems(404, s404=NO_FRAMEWORK),
)
async def framework_version(version: str, session: SessionDep) -> Any:
    return await _framework(session, version)


@router.get(
    "/frameworks/{version}/case.json",
    summary="As a 1EdTech CASE package",
    response_model=CaseRead,
    responses=problems(404, s404=NO_FRAMEWORK),
)
async def framework_case(version: str, session: SessionDep) -> CaseRead:
    return CaseRead.model_validate(exchange.to_case(await _framework(session, version)))


CSV = "text/csv"


def _attachment(name: str) -> dict[str, str]:
    """A file's name for the browser: ASCII in ``filename``, the name itself (RFC 6266/5987,
    UTF-8) in ``filename*`` — a header is Latin-1, and a campaign id may be Cyrillic."""
    plain = re.sub(r"[^\w.-]", "_", name, flags=re.ASCII)
    return {
        "Content-Disposition": f'attachment; filename="{plain}"; '
        f"filename*=UTF-8''{quote(name, safe='')}"
    }


@router.get(
    "/frameworks/{version}/competencies.csv",
    summary="As CSV (one competency a row)",
    response_class=Response,
    responses={
        **binary(CSV, "The competencies, one a row (UTF-8, a header row)"),
        **problems(404, s404=NO_FRAMEWORK),
    },
)
async def framework_csv(version: str, session: SessionDep) -> Response:
    return Response(
        exchange.to_csv(await _framework(session, version)),
        media_type=f"{CSV}; charset=utf-8",
        headers=_attachment(f"framework-{version}.csv"),
    )


# --- analytics -------------------------------------------------------------------------------


@router.get(
    "/analytics",
    summary="Deficits by competency, municipality, organisation, subject; the needs asked "
    "for beside the program gap",
    response_model=AnalyticsRead,
)
async def report(
    session: SessionDep,
    ctx: Ctx,
    campaign_id: str | None = None,
    min_share: Annotated[float, Query(ge=0, le=100)] = 5.0,
) -> AnalyticsRead:
    found = await analytics.report(session, ctx.framework, campaign_id, min_share)
    return AnalyticsRead.model_validate(found)


@router.get(
    "/analytics/program-gap",
    summary="Frequent deficits no program covers, ranked",
    response_model=list[ProgramGapRead],
)
async def program_gap(
    session: SessionDep,
    ctx: Ctx,
    campaign_id: str | None = None,
    min_share: Annotated[float, Query(ge=0, le=100)] = 5.0,
) -> list[ProgramGapRead]:
    found = await analytics.report(session, ctx.framework, campaign_id, min_share)
    return [ProgramGapRead.model_validate(r) for r in found["program_gap"]]


@router.get(
    "/analytics.xlsx",
    summary="The analytics as a workbook (Russian)",
    response_class=Response,
    responses=binary(XLSX, "The analytics, one sheet per breakdown"),
)
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
        headers=_attachment(name),
    )


async def _burnout(session: SessionDep, campaign_id: str | None) -> dict[str, Any]:
    if campaign_id is not None:
        await _campaign_row(session, campaign_id)
    return await burnout.report(session, campaign_id)


BURNOUT_QUERY = "Кампания (без неё — последний опрос каждого педагога)"


@router.get(
    "/analytics/burnout",
    summary="Burnout levels by municipality, organisation, age and experience band; the "
    "trend between waves",
    response_model=BurnoutRead,
    responses=problems(404, s404=NO_CAMPAIGN),
)
async def burnout_report(
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(description=BURNOUT_QUERY)] = None,
) -> BurnoutRead:
    return BurnoutRead.model_validate(await _burnout(session, campaign_id))


@router.get(
    "/analytics/burnout.xlsx",
    summary="The burnout analytics as a workbook (Russian)",
    response_class=Response,
    responses={
        **binary(XLSX, "The burnout analytics, one sheet per breakdown and the waves"),
        **problems(404, s404=NO_CAMPAIGN),
    },
)
async def burnout_xlsx(
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(description=BURNOUT_QUERY)] = None,
) -> Response:
    found = await _burnout(session, campaign_id)
    return Response(
        burnout.workbook(found),
        media_type=XLSX,
        headers=_attachment(f"burnout-{campaign_id or 'current'}.xlsx"),
    )


@router.get(
    "/analytics/burnout/print",
    summary="The burnout analytics as a printable page (Russian, A4)",
    response_class=HTMLResponse,
    responses={
        200: {"description": "The page (HTML, A4, nothing external)"},
        **problems(404, s404=NO_CAMPAIGN),
    },
)
async def burnout_print(
    session: SessionDep,
    campaign_id: Annotated[str | None, Query(description=BURNOUT_QUERY)] = None,
) -> HTMLResponse:
    found = await _burnout(session, campaign_id)
    return HTMLResponse(burnout.html(found, datetime.now(UTC).date()))


@router.get(
    "/stats", summary="Counts of the read model, results and diagnoses", response_model=StatsRead
)
async def stats(session: SessionDep) -> StatsRead:
    return StatsRead.model_validate(await repository.counts(session))
