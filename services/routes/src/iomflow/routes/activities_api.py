"""HTTP API of activities (events, seminars, webinars, consultations, community meetings)
and their attendance, and of the school teams with their monthly consultations.

Reading is open inside the perimeter; recording needs a methodist's key (the admin's
holds every role). A methodist's own key is that methodist: it is who held the activity
unless the request names nobody else."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from iomflow.routes import activities, repository, sheets, teams
from iomflow.routes.activities import Entry, Recorded
from iomflow.routes.api import Ctx, Methodist, Paged, acting
from iomflow.routes.ledger import ledger_of
from iomflow.shared.auth import Principal
from iomflow.shared.contracts import (
    ActivityHeld,
    ActivityKind,
    ActivityLevel,
    Codes,
    Project,
    Theme,
)
from iomflow.shared.errors import Refused
from iomflow.shared.problems import Page, binary, page, problems
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["activities"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UPLOAD = 10 * 1024 * 1024
TeacherId = Annotated[str, Field(min_length=1, max_length=100)]


class ActivityCreate(BaseModel):
    """An activity held, with who attended it."""

    activity_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[^:\s]+$",
        description="Left out: one is given. The same id again adds its new attendees only",
    )
    kind: ActivityKind
    title: str = Field(min_length=1, max_length=500)
    level: ActivityLevel
    organiser_id: str = Field(
        min_length=1, max_length=100, description="cnppm, a municipality's or an organisation's id"
    )
    format: Literal["in_person", "distance", "mixed"]
    held_on: date
    hours: int | None = Field(default=None, ge=1, le=1000)
    municipality_id: str | None = Field(default=None, min_length=1, max_length=100)
    organization_id: str | None = Field(default=None, min_length=1, max_length=100)
    competencies: Codes = Field(default_factory=list, max_length=50)
    themes: list[Theme] = Field(default_factory=list, max_length=20)
    target: Literal["teachers", "school_team", "community"] = "teachers"
    team_id: str | None = Field(default=None, min_length=1, max_length=100)
    community_id: str | None = Field(default=None, min_length=1, max_length=100)
    project: Project | None = None
    methodist_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Who held it; a methodist's own key is that methodist",
    )
    attendees: list[TeacherId] = Field(
        default_factory=list, max_length=5000, description="Teachers' pseudonymous ids"
    )


class AttendanceCreate(BaseModel):
    teachers: list[TeacherId] = Field(
        min_length=1, max_length=5000, description="Teachers' pseudonymous ids"
    )


class CompletedStepRead(BaseModel):
    route_id: str
    step_id: str
    teacher_id: str


class ActivityRead(BaseModel):
    """An activity, its attendance as a count, and the route steps its attendance did."""

    activity_id: str
    kind: str
    title: str
    level: str
    organiser_id: str
    format: str
    held_on: date
    hours: int | None
    municipality_id: str | None
    organization_id: str | None
    competencies: list[str]
    themes: list[str]
    target: str
    team_id: str | None
    community_id: str | None
    methodist_id: str | None
    project: str | None
    attendees: int = Field(description="Teachers recorded as attending")
    completed_steps: list[CompletedStepRead] = Field(
        description="Route steps completed by its attendance"
    )


class ImportRead(BaseModel):
    """What an upload recorded (nothing when any row had an error: a 422 then)."""

    rows: int = Field(description="Rows read (blank ones left out)")
    created: int = Field(description="Activities new to the service")
    grown: int = Field(description="Activities recorded before whose attendance grew")
    unchanged: int = Field(description="Activities recorded before, nobody new")
    attendances: int = Field(description="New attendances")
    completed_steps: int = Field(description="Route steps completed by them")


class MonthRead(BaseModel):
    month: int = Field(ge=1, le=12)
    consultations: int
    held: bool = Field(description="At least one consultation in the month")


class TeamRead(BaseModel):
    team_id: str
    organization_id: str
    municipality_id: str
    project: str
    members: list[str]
    methodists: list[str]


class TeamConsultationsRead(BaseModel):
    team_id: str
    year: int
    months: list[MonthRead] = Field(description="January to December")
    total: int = Field(description="Consultations in the year")


def read_of(activity: ActivityHeld, completed: list[CompletedStepRead]) -> ActivityRead:
    return ActivityRead(**activity.model_dump(mode="json"), completed_steps=completed)


async def _completed(session: Any, ids: list[str]) -> dict[str, list[CompletedStepRead]]:
    found: dict[str, list[CompletedStepRead]] = {i: [] for i in ids}
    for row in await repository.find_attendances(session, ids):
        if row.route_id is not None:
            found[row.activity_id].append(
                CompletedStepRead(
                    route_id=row.route_id, step_id=row.step_id, teacher_id=row.teacher_id
                )
            )
    return found


async def _activity(session: Any, activity_id: str) -> ActivityHeld:
    """The activity recorded with this id; 404 when there is none."""
    found = await repository.find_activities(session, [activity_id])
    if activity_id not in found:
        raise Refused("activity_not_found", f"Мероприятие «{activity_id}» не найдено.", 404)
    return activities.activity_of(found[activity_id])


def _held_by(principal: Principal, said: str | None) -> str | None:
    """Who held it: the key's own person (another id is ``not_your_key``), else whom the
    request names (perhaps nobody)."""
    return acting(principal, said) if principal.person_id is not None or said else None


def _entry(body: ActivityCreate, methodist_id: str | None) -> Entry:
    values = body.model_dump(exclude={"attendees", "methodist_id"})
    values["activity_id"] = values["activity_id"] or str(uuid.uuid4())
    activity = ActivityHeld.model_validate({**values, "methodist_id": methodist_id, "attendees": 0})
    return Entry(activity, body.attendees)


async def _record(runtime: RuntimeDep, entries: list[Entry], by: str) -> list[Recorded]:
    """Recorded in one transaction. Two first recordings of one new activity at once: the
    second's insert fails on the key, and it is recorded again, as the re-posting it now
    is (its new attendees added); a second failure is a 409."""
    for attempt in range(2):
        try:
            async with runtime.transaction() as deps, ledger_of(deps) as ledger:
                return await activities.record(ledger, entries, by)
        except IntegrityError as exc:
            if attempt:
                raise Refused(
                    "activity_conflict",
                    "Мероприятие с этим номером одновременно записывает другой запрос: "
                    "повторите запись.",
                    409,
                ) from exc
    raise AssertionError("unreachable")


async def _answer(runtime: RuntimeDep, done: Recorded) -> ActivityRead:
    async with runtime.sessions() as session:
        completed = await _completed(session, [done.activity.activity_id])
    return read_of(done.activity, completed[done.activity.activity_id])


RECORD = problems(
    403,
    409,
    422,
    s403="ключ без роли methodist (forbidden), чужой ключ (not_your_key)",
    s409="мероприятие с этим кодом уже записано с другими данными (activity_conflict)",
    s422="поля (validation_error), нет команды, сообщества или сообщества/муниципалитета, "
    "которые требует вид мероприятия (activity_incomplete), неизвестная школьная команда "
    "(unknown_team), сообщество (unknown_community) или педагог (unknown_teacher)",
)
NOT_FOUND = "нет такого мероприятия (activity_not_found)"


@router.post(
    "/activities",
    status_code=201,
    summary="Record an activity held and its attendance (methodist); the same id again adds "
    "its new attendees only",
    response_model=ActivityRead,
    responses=RECORD,
)
async def record_activity(
    body: ActivityCreate, runtime: RuntimeDep, who: Methodist
) -> ActivityRead:
    held_by = _held_by(who, body.methodist_id)
    [done] = await _record(runtime, [_entry(body, held_by)], held_by or who.name)
    return await _answer(runtime, done)


@router.post(
    "/activities/{activity_id}/attendance",
    summary="Add attendees to an activity recorded before (methodist); those already "
    "recorded are left as they are",
    response_model=ActivityRead,
    responses=problems(
        404,
        403,
        422,
        s404=NOT_FOUND,
        s403=RECORD[403]["description"],
        s422="поля (validation_error), неизвестный педагог (unknown_teacher)",
    ),
)
async def add_attendance(
    activity_id: str, body: AttendanceCreate, runtime: RuntimeDep, who: Methodist
) -> ActivityRead:
    async with runtime.sessions() as session:
        activity = await _activity(session, activity_id)
    [done] = await _record(runtime, [Entry(activity, body.teachers)], who.person_id or who.name)
    return await _answer(runtime, done)


@router.get(
    "/activities",
    summary="Activities by kind, level, school team and dates, by date",
    response_model=Page[ActivityRead],
)
async def list_activities(
    session: SessionDep,
    paged: Paged,
    kind: ActivityKind | None = None,
    level: ActivityLevel | None = None,
    team_id: str | None = None,
    municipality_id: str | None = None,
    since: date | None = Query(None, description="Held on or after"),
    until: date | None = Query(None, description="Held on or before"),
) -> Page[ActivityRead]:
    a = repository.activities.c
    where = [
        c == v
        for c, v in (
            (a.kind, kind),
            (a.level, level),
            (a.team_id, team_id),
            (a.municipality_id, municipality_id),
        )
        if v is not None
    ]
    if since is not None:
        where.append(a.held_on >= since)
    if until is not None:
        where.append(a.held_on <= until)
    rows, total = await repository.find_activities_page(session, paged.offset, paged.limit, *where)
    completed = await _completed(session, [r.activity_id for r in rows])
    return page(
        [read_of(activities.activity_of(r), completed[r.activity_id]) for r in rows], total, paged
    )


@router.get(
    "/activities/template.xlsx",
    summary="The spreadsheet to fill in with activities: Russian column titles (required "
    "ones bold), an example row, lists of allowed values, a sheet saying what each takes",
    response_class=Response,
    responses=binary(XLSX, "The activities' template"),
)
async def activities_template(ctx: Ctx) -> Response:
    content = await asyncio.to_thread(sheets.template, ctx.day())
    return Response(
        content,
        media_type=XLSX,
        headers={
            "Content-Disposition": 'attachment; filename="template-activities.xlsx"; '
            "filename*=UTF-8''%D0%A8%D0%B0%D0%B1%D0%BB%D0%BE%D0%BD%20%E2%80%94%20"
            "%D0%BC%D0%B5%D1%80%D0%BE%D0%BF%D1%80%D0%B8%D1%8F%D1%82%D0%B8%D1%8F.xlsx"
        },
    )


@router.get(
    "/activities/{activity_id}",
    summary="An activity, its attendance count and the route steps it completed",
    response_model=ActivityRead,
    responses=problems(404, s404=NOT_FOUND),
)
async def get_activity(activity_id: str, session: SessionDep) -> ActivityRead:
    activity = await _activity(session, activity_id)
    completed = await _completed(session, [activity_id])
    return read_of(activity, completed[activity_id])


@router.post(
    "/activities/imports",
    summary="Record the activities of a filled template (XLSX, methodist): all rows or, when "
    "any row has an error, none — the 422 lists every row's errors",
    response_model=ImportRead,
    responses=problems(
        403,
        413,
        415,
        422,
        s403=RECORD[403]["description"],
        s413="файл больше 10 МБ (file_too_large)",
        s415="не книга Excel .xlsx (unsupported_file)",
        s422="ошибки в строках (import_rows_invalid): errors — строка, столбец, буква, значение, "
        "причина; ничего не записано",
    ),
)
async def import_activities(
    runtime: RuntimeDep,
    who: Methodist,
    file: UploadFile = File(
        ..., description="A filled template (.xlsx); the first row names the columns"
    ),
) -> ImportRead:
    filename = file.filename or "upload"
    if not filename.lower().endswith(".xlsx"):
        raise Refused(
            "unsupported_file",
            f"Файл «{filename}» — не книга Excel (.xlsx): сохраните таблицу как «Книга Excel "
            "(.xlsx)» или заполните шаблон GET /v1/activities/template.xlsx.",
            415,
        )
    content = await file.read(MAX_UPLOAD + 1)
    if len(content) > MAX_UPLOAD:
        raise Refused("file_too_large", "Файл больше 10 МБ: разделите его на части.", 413)
    try:
        parsed = await asyncio.to_thread(sheets.parse, content)
    except sheets.TableError as exc:
        raise Refused("unsupported_file", str(exc)[:1].upper() + str(exc)[1:] + ".", 415) from exc
    if who.person_id is not None:
        for entry in parsed.entries:  # a methodist's own key holds their own activities
            if entry.activity.methodist_id in (None, who.person_id):
                continue
            raise Refused(
                "not_your_key",
                f"Ключ выдан {who.person_id}: записывать мероприятия методиста "
                f"«{entry.activity.methodist_id}» им нельзя.",
                403,
            )
        parsed.entries = [
            Entry(e.activity.model_copy(update={"methodist_id": who.person_id}), e.teachers)
            for e in parsed.entries
        ]
    by = who.person_id or who.name
    async with runtime.transaction() as deps, ledger_of(deps) as ledger:
        # Every row's errors at once: those of the rows read are added to the cells' own.
        for index, found in enumerate(await activities.check(ledger, parsed.entries)):
            for p in found:
                parsed.refuse(index, p.field, p.reason)
        if parsed.errors:
            bad = len(parsed.error_rows)
            raise Refused(
                "import_rows_invalid",
                f"В файле ошибки ({bad} стр.): ничего не записано. Исправьте строки, "
                "указанные в errors, и загрузите файл снова.",
                422,
                errors=parsed.problems(),
            )
        done = await activities.record(ledger, parsed.entries, by)
    return ImportRead(
        rows=parsed.total,
        created=sum(d.created for d in done),
        grown=sum(not d.created and bool(d.added) for d in done),
        unchanged=sum(not d.created and not d.added for d in done),
        attendances=sum(len(d.added) for d in done),
        completed_steps=sum(len(d.completed) for d in done),
    )


# --- school teams --------------------------------------------------------------------------


@router.get(
    "/teams",
    summary="School teams of the projects (School of the Ministry), with members and methodists",
    response_model=Page[TeamRead],
)
async def list_teams(
    session: SessionDep, paged: Paged, project: Project | None = None
) -> Page[TeamRead]:
    t = repository.school_teams.c
    where = [t.project == project.value] if project is not None else []
    rows, total = await repository.find_school_teams_page(
        session, paged.offset, paged.limit, *where
    )
    return page(
        [
            TeamRead(
                team_id=r.team_id,
                organization_id=r.organization_id,
                municipality_id=r.municipality_id,
                project=r.project,
                members=list(r.members),
                methodists=list(r.methodists),
            )
            for r in rows
        ],
        total,
        paged,
    )


@router.get(
    "/teams/{team_id}/consultations",
    summary="A school team's consultations month by month in a year (at least one a month is "
    "the School of the Ministry's target)",
    response_model=TeamConsultationsRead,
    responses=problems(404, s404="нет такой школьной команды (team_not_found)"),
)
async def team_consultations(
    team_id: str,
    session: SessionDep,
    ctx: Ctx,
    year: int | None = Query(None, ge=2000, le=2100, description="This year if left out"),
) -> TeamConsultationsRead:
    if await repository.get_school_team(session, team_id) is None:
        raise Refused("team_not_found", f"Школьная команда «{team_id}» не найдена.", 404)
    chosen = year if year is not None else ctx.day().year
    months = await teams.consultations(session, team_id, chosen)
    return TeamConsultationsRead(
        team_id=team_id,
        year=chosen,
        months=[
            MonthRead(month=m.month, consultations=m.consultations, held=m.held) for m in months
        ],
        total=sum(m.consultations for m in months),
    )
