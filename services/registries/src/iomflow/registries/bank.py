"""HTTP API of the practices' course (``practices``) and of the year's expert activity.
Moving a practice needs the ``registrar`` role, as any change of a register; the bank and
the expert activity are open to read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.types import DecoratedCallable

from iomflow.registries import practices
from iomflow.registries.api import Registrar
from iomflow.registries.domain import LABELS
from iomflow.registries.schemas import (
    ExpertActivityRead,
    ExpertKindRead,
    PracticeInclude,
    PracticeRead,
    PracticeReview,
    PracticeSubmit,
    ReplicationCreate,
)
from iomflow.shared.contracts import ExpertKind, Theme
from iomflow.shared.problems import Page, Paging, page, paging, problems
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["practices"])

Paged = Annotated[Paging, Depends(paging(max_limit=1000, default=100))]

NOT_FOUND = "нет такой практики (code: record_not_found)"
MOVE_409 = "этот шаг не разрешён в статусе практики (code: practice_status, already_replicated)"


def _read(data: dict[str, Any]) -> PracticeRead:
    return PracticeRead.model_validate(data)


def _move(step: str, summary: str, s422: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """``POST /v1/practices/{practice_id}/<step>``, a move of a practice's course: 404 for
    a practice not in the register, 409 for a move its status does not allow, 422 (``s422``)
    for a move its data or dates contradict."""
    return router.post(
        f"/practices/{{practice_id}}/{step}",
        summary=summary,
        response_model=PracticeRead,
        responses=problems(404, 409, 422, s404=NOT_FOUND, s409=MOVE_409, s422=s422),
    )


@router.post(
    "/practices",
    status_code=201,
    summary="Submit a practice to the bank (registrar): status «submitted»",
    response_model=PracticeRead,
    responses=problems(
        409,
        422,
        s409="практика с этим кодом уже есть (code: record_exists)",
        s422="поля не прошли проверку правил реестра: errors — по полям (code: "
        "record_invalid, validation_error)",
    ),
)
async def submit_practice(
    body: Annotated[PracticeSubmit, Body()], runtime: RuntimeDep, who: Registrar
) -> PracticeRead:
    values = body.model_dump(mode="json", exclude_none=True)
    async with runtime.transaction() as unit:
        data = await practices.submit(unit, values, actor=who.name, today=date.today())
    return _read(data)


@_move(
    "review",
    "An expert's review of a submitted practice (registrar): include → reviewed, "
    "revise → back to its author (still submitted), reject → rejected",
    "эксперт не педагог реестра или без роли «экспертиза практик» на дату, дата раньше "
    "подачи (code: reviewer_not_found, reviewer_not_expert, date_out_of_order, "
    "validation_error)",
)
async def review_practice(
    practice_id: str, body: PracticeReview, runtime: RuntimeDep, who: Registrar
) -> PracticeRead:
    async with runtime.transaction() as unit:
        data = await practices.review(
            unit,
            practice_id,
            reviewer=body.reviewed_by,
            verdict=body.verdict,
            text=body.review,
            on=body.on or date.today(),
            actor=who.name,
        )
    return _read(data)


@_move(
    "include",
    "Include a reviewed practice in the bank (registrar)",
    "дата раньше экспертизы (code: date_out_of_order, validation_error)",
)
async def include_practice(
    practice_id: str,
    runtime: RuntimeDep,
    who: Registrar,
    body: Annotated[PracticeInclude | None, Body()] = None,
) -> PracticeRead:
    on = (body.on if body is not None else None) or date.today()
    async with runtime.transaction() as unit:
        data = await practices.include(unit, practice_id, on=on, actor=who.name)
    return _read(data)


@_move(
    "replications",
    "Record where a practice of the bank was replicated (registrar): status «replicated»; "
    "the same replication again changes nothing",
    "своя организация, нет организации или педагога, педагог из другой организации, дата "
    "раньше включения (code: own_organization, record_invalid, replicator_elsewhere, "
    "date_out_of_order, validation_error)",
)
async def replicate_practice(
    practice_id: str, body: ReplicationCreate, runtime: RuntimeDep, who: Registrar
) -> PracticeRead:
    async with runtime.transaction() as unit:
        data = await practices.replicate(
            unit,
            practice_id,
            organization_id=body.organization_id,
            by=body.by,
            on=body.on,
            actor=who.name,
        )
    return _read(data)


@router.get(
    "/practices/bank",
    summary="The bank of effective practices (included or replicated): by competency, theme "
    "and words of the title",
    response_model=Page[PracticeRead],
)
async def practice_bank(
    session: SessionDep,
    paged: Paged,
    competency: Annotated[str | None, Query(max_length=100)] = None,
    theme: Theme | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Words of the title")] = None,
) -> Page[PracticeRead]:
    total, items = await practices.bank(
        session,
        competency=competency,
        theme=theme.value if theme is not None else None,
        query=q,
        offset=paged.offset,
        limit=paged.limit,
    )
    return page([_read(item) for item in items], total, paged)


@router.get(
    "/experts",
    summary="Expert activity of a year: distinct teachers with an expert role held in it, by kind",
    response_model=ExpertActivityRead,
)
async def expert_activity(
    session: SessionDep,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="This year by default")] = None,
) -> ExpertActivityRead:
    activity = await practices.experts(session, year or date.today().year)
    titles = LABELS[ExpertKind]
    return ExpertActivityRead(
        year=activity.year,
        teachers=activity.teachers,
        roles=activity.roles,
        by_kind=[
            ExpertKindRead(
                kind=k.kind, title=titles[k.kind.value], teachers=k.teachers, roles=k.roles
            )
            for k in activity.by_kind
        ],
    )
