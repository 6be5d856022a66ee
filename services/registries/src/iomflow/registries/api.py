"""HTTP API of the registries. Reading registers is open, and records read so carry no
personal data: a teacher's birth and hire dates (``Register.personal_dates``) are shown as
the bands its events carry (``age_band``, ``experience_band``, ``young``, as of today), and
filtering by them is refused (403: a search would reveal them). A key with the
``personal_data`` role and a ``purpose`` (5+ characters) sees the dates, in the records,
the single record and the XLSX export, and may filter by them; every record shown so is
written to ``personal_data_access``, one row per record. Changing registers needs the
``registrar`` role, reading a person's name and contacts ``personal_data`` (and a purpose,
audited), reading the audit log ``auditor``."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.registries import importing, repository, service, workbooks
from iomflow.registries.context import ContextDep
from iomflow.registries.domain import REGISTRY, Register
from iomflow.registries.personal import PERSONAL_FIELDS
from iomflow.registries.schemas import (
    AccessRead,
    ColumnRead,
    Counts,
    ImportQueued,
    ImportRead,
    LoadCreate,
    LoadRead,
    PersonalRead,
    RecordCreate,
    RecordRead,
    RecordRemovedRead,
    RecordSaved,
    RegisterRead,
    StaleCheckRead,
    StaleGroup,
    StaleRead,
    VerifiedRead,
)
from iomflow.registries.tabular import TableError, kind_of, write_xlsx
from iomflow.shared.auth import Principal, key_optional, optional, require
from iomflow.shared.errors import ApiError
from iomflow.shared.problems import Page, Paging, binary, page, paging, problems
from iomflow.shared.service import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1", tags=["registries"])

Registrar = Annotated[Principal, Depends(require("registrar"))]
PersonalReader = Annotated[Principal, Depends(require("personal_data"))]
Auditor = Annotated[Principal, Depends(require("auditor"))]
MaybePersonal = Annotated[Principal | None, Depends(optional("personal_data"))]
"""The caller if it holds ``personal_data``; None for anyone else (401 for a bad key)."""

Dates = Annotated[
    bool, Query(description="Show the personal dates (birth, hire): personal_data role + purpose")
]
Purpose = Annotated[
    str | None,
    Query(
        min_length=5,
        max_length=470,
        description="Why the personal dates are read (personal_data role; audited)",
    ),
]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Paged = Annotated[Paging, Depends(paging(max_limit=1000, default=100))]

NO_REGISTER = "нет такого реестра (code: register_not_found)"
DATES_403 = (
    "даты или поиск по ним без роли personal_data (code: personal_dates_forbidden, "
    "date_filter_forbidden)"
)


def register_of(name: str) -> Register:
    spec = REGISTRY.get(name)
    if spec is None:
        raise ApiError(
            404,
            "register_not_found",
            f"Реестр «{name}» не найден. Доступны: " + ", ".join(REGISTRY),
        )
    return spec


def _xlsx(content: bytes, filename: str, shown: str | None = None) -> Response:
    """An XLSX download named ``filename`` (ASCII), or ``shown`` where a browser reads a
    name in any script (RFC 6266 ``filename*``)."""
    disposition = f'attachment; filename="{filename}"'
    if shown is not None:
        disposition += f"; filename*=UTF-8''{quote(shown)}"
    return Response(content, media_type=XLSX, headers={"Content-Disposition": disposition})


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- registers -----------------------------------------------------------------------------


@router.get(
    "/registers",
    summary="The registers: names, titles, columns (title, required, allowed values, what "
    "to write in Russian), record counts",
    response_model=list[RegisterRead],
)
async def list_registers(session: SessionDep) -> list[RegisterRead]:
    counts = await repository.counts(session)
    return [
        RegisterRead(
            register=spec.name,
            title=spec.title,
            key=spec.key,
            records=counts.get(spec.name, 0),
            personal_data=spec.person,
            event_types=[spec.upserted, spec.removed],
            columns=[
                ColumnRead(
                    field=name,
                    title=importing.title(name),
                    required=name in spec.record.model_fields
                    and spec.record.model_fields[name].is_required(),
                    values=importing.labels_of(spec, name)
                    if name in spec.record.model_fields
                    else None,
                    personal=name in PERSONAL_FIELDS or name in spec.personal_dates,
                    hint=importing.describe(spec, name),
                )
                for name in importing.columns(spec)
            ],
        )
        for spec in REGISTRY.values()
    ]


@router.get("/stats", summary="Records per register", response_model=Counts)
async def stats(session: SessionDep) -> Counts:
    return Counts(await repository.counts(session))


PAGING = {"offset", "limit", "stale", "dates", "purpose"}


def dates_reader(
    spec: Register,
    who: Principal | None,
    dates: bool,
    purpose: str | None,
    filters: frozenset[str] = frozenset(),
) -> tuple[str, str] | None:
    """(actor, purpose) when this read shows the personal dates of ``spec``; None when it
    shows their bands. Asking for dates (``dates``, a purpose) or filtering by them without
    the ``personal_data`` role is 403; with the role, a purpose is required."""
    if not spec.personal_dates:
        return None
    searched = sorted(filters & set(spec.personal_dates))
    if searched and who is None:
        raise ApiError(
            403,
            "date_filter_forbidden",
            "Поиск по полям " + ", ".join(f"«{n}»" for n in searched) + " раскрывает даты "
            "рождения и начала работы: нужна роль «personal_data» и цель запроса (purpose).",
            role="personal_data",
        )
    if not (dates or purpose is not None or searched):
        return None
    if who is None:
        raise ApiError(
            403,
            "personal_dates_forbidden",
            "Даты рождения и начала педагогической работы видны только с ролью "
            "«personal_data» и с целью запроса (purpose); без неё показаны группы "
            "возраста и стажа (age_band, experience_band, young).",
            role="personal_data",
        )
    if purpose is None:
        raise ApiError(
            422,
            "purpose_required",
            "Укажите цель запроса дат (purpose, не короче 5 символов): она записывается "
            "в журнал доступа к персональным данным.",
        )
    return who.name, purpose


async def _audited(
    session: AsyncSession, spec: Register, reader: tuple[str, str] | None, ids: list[str]
) -> None:
    if reader is None or not spec.personal_dates or not ids:
        return
    actor, purpose = reader
    await repository.audit_dates(
        session, spec.name, ids, actor=actor, purpose=purpose, now=datetime.now(UTC)
    )
    await session.commit()


def _shown(
    spec: Register, records: list[dict[str, Any]], reader: tuple[str, str] | None
) -> list[dict[str, Any]]:
    if reader is not None or not spec.personal_dates:
        return records
    today = date.today()
    return [spec.banded(record, today) for record in records]


@router.get(
    "/registers/{register}/records",
    summary="Records of a register; filter by any field: ?kind=school&subjects=математика. "
    "Teachers carry age and experience bands; their dates and filters by them need the "
    "personal_data role and a purpose (audited)",
    openapi_extra=key_optional(),
    response_model=Page[RecordRead],
    responses=problems(404, 403, s404=NO_REGISTER, s403=DATES_403),
)
async def list_records(
    register: str,
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    who: MaybePersonal,
    paged: Paged,
    stale: bool | None = Query(None, description="Only records overdue for verification"),
    dates: Dates = False,
    purpose: Purpose = None,
) -> dict[str, Any]:
    spec = register_of(register)
    filters = frozenset(request.query_params) - PAGING
    reader = dates_reader(spec, who, dates, purpose, filters)
    conditions = []
    for name, raw in request.query_params.items():
        if name in PAGING:
            continue
        if name not in spec.record.model_fields:
            raise ApiError(
                422,
                "unknown_filter",
                f"Поля «{name}» нет в реестре «{spec.title}». Поля: "
                + ", ".join(spec.record.model_fields),
            )
        try:
            value = importing.parse_cell(spec, name, raw)
        except importing.CellError as exc:
            raise ApiError(422, "bad_filter", f"Фильтр «{name}»: {exc}") from exc
        kind = importing.field_kind(spec, name)
        if kind == "list":
            value = value[0] if value else raw
        elif isinstance(value, date):
            value = value.isoformat()
        conditions.append(repository.field_filter(session, name, kind, value))
    if stale is not None:
        cutoff = service.stale_cutoff(datetime.now(UTC), ctx.settings.stale_after_days)
        column = repository.records.c.verified_at
        conditions.append(column < cutoff if stale else column >= cutoff)
    total, items = await repository.page(
        session, spec.name, conditions=conditions, offset=paged.offset, limit=paged.limit
    )
    await _audited(session, spec, reader, [str(item[spec.key]) for item in items])
    return page([RecordRead(**item) for item in _shown(spec, items, reader)], total, paged)


@router.get(
    "/registers/{register}/records/{record_id}",
    summary="One record (a teacher's dates: personal_data role and a purpose, audited)",
    openapi_extra=key_optional(),
    response_model=RecordRead,
    responses=problems(
        404,
        403,
        s404="нет такого реестра или записи (code: register_not_found, record_not_found)",
        s403=DATES_403,
    ),
)
async def get_record(
    register: str,
    record_id: str,
    session: SessionDep,
    who: MaybePersonal,
    dates: Dates = False,
    purpose: Purpose = None,
) -> RecordRead:
    spec = register_of(register)
    reader = dates_reader(spec, who, dates, purpose)
    record = await repository.one(session, spec.name, record_id)
    if record is None:
        raise ApiError(
            404, "record_not_found", f"Записи «{record_id}» нет в реестре «{spec.title}»."
        )
    await _audited(session, spec, reader, [record_id])
    return RecordRead(**_shown(spec, [record], reader)[0])


RecordBody = Annotated[
    RecordCreate,
    Body(
        description="Fields of the record (codes or Russian labels); persons may carry "
        "'personal': {full_name, snils, email, phone}",
        examples=[
            {
                "organization_id": "org-9001",
                "municipality_id": "mun-01",
                "name": "МБОУ «СОШ № 901», г. Иркутск",
                "kind": "school",
            }
        ],
    ),
]


@router.post(
    "/registers/{register}/records",
    status_code=201,
    summary="Create a record (registrar)",
    response_model=RecordSaved,
    responses=problems(
        404,
        409,
        422,
        s404=NO_REGISTER,
        s409="запись с этим ключом уже есть (code: record_exists)",
        s422="поля не прошли проверку правил реестра: errors — по полям (code: "
        "record_invalid, validation_error)",
    ),
)
async def create_record(
    register: str, body: RecordBody, runtime: RuntimeDep, who: Registrar
) -> RecordSaved:
    return await _save(register, body.root, runtime, who, None)


@router.put(
    "/registers/{register}/records/{record_id}",
    summary="Replace a record (registrar)",
    response_model=RecordSaved,
    responses=problems(
        404,
        422,
        s404="нет такого реестра или записи (code: register_not_found, record_not_found)",
        s422="поля не прошли проверку правил реестра, код записи изменён: errors — по полям "
        "(code: record_invalid, validation_error)",
    ),
)
async def update_record(
    register: str, record_id: str, body: RecordBody, runtime: RuntimeDep, who: Registrar
) -> RecordSaved:
    return await _save(register, body.root, runtime, who, record_id)


async def _save(
    register: str,
    body: dict[str, Any],
    runtime: RuntimeDep,
    who: Principal,
    record_id: str | None,
) -> RecordSaved:
    spec = register_of(register)
    values = dict(body)
    personal = values.pop("personal", None)
    async with runtime.transaction() as deps:
        data, changed = await service.save_record(
            deps, spec, values, personal, actor=who.name, record_id=record_id
        )
    return RecordSaved(record=RecordRead(**data), changed=changed)


@router.delete(
    "/registers/{register}/records/{record_id}",
    summary="Remove a record (registrar)",
    response_model=RecordRemovedRead,
    responses=problems(
        404,
        409,
        s404="нет такого реестра или записи (code: register_not_found, record_not_found)",
        s409="на запись ссылаются другие (code: record_in_use)",
    ),
)
async def delete_record(
    register: str,
    record_id: str,
    runtime: RuntimeDep,
    who: Registrar,
    reason: str = Query("", max_length=500),
) -> RecordRemovedRead:
    spec = register_of(register)
    async with runtime.transaction() as deps:
        await service.remove_record(deps, spec, record_id, reason=reason or f"удалено: {who.name}")
    return RecordRemovedRead(removed=record_id)


@router.post(
    "/registers/{register}/records/{record_id}/verify",
    summary="Confirm a record is still true (registrar)",
    response_model=VerifiedRead,
    responses=problems(
        404, s404="нет такого реестра или записи (code: register_not_found, record_not_found)"
    ),
)
async def verify_record(
    register: str, record_id: str, runtime: RuntimeDep, who: Registrar
) -> VerifiedRead:
    spec = register_of(register)
    now = datetime.now(UTC)
    async with runtime.sessions() as session, session.begin():
        if not await repository.verify(session, spec.name, [record_id], actor=who.name, now=now):
            raise ApiError(404, "record_not_found", f"Записи «{record_id}» нет в «{spec.title}».")
    return VerifiedRead(record_id=record_id, verified_at=now, verified_by=who.name)


# --- personal data -------------------------------------------------------------------------


@router.get(
    "/registers/{register}/records/{record_id}/personal",
    summary="A person's full name, СНИЛС, e-mail, phone (personal_data role; audited)",
    response_model=PersonalRead,
    responses=problems(
        404,
        s404="нет такого реестра, в нём нет персональных данных или их нет у записи (code: "
        "register_not_found, no_personal_data, personal_data_not_found)",
    ),
)
async def read_personal(
    register: str,
    record_id: str,
    runtime: RuntimeDep,
    who: PersonalReader,
    purpose: str = Query(
        ..., min_length=5, max_length=500, description="Why (written to the audit log)"
    ),
) -> PersonalRead:
    spec = register_of(register)
    if not spec.person:
        raise ApiError(
            404, "no_personal_data", f"В реестре «{spec.title}» нет персональных данных."
        )
    async with runtime.sessions() as session, session.begin():
        found = await repository.read_personal(
            session, spec.name, record_id, actor=who.name, purpose=purpose, now=datetime.now(UTC)
        )
    if found is None:
        raise ApiError(
            404, "personal_data_not_found", f"Персональных данных записи «{record_id}» нет."
        )
    return PersonalRead(register=spec.name, record_id=record_id, **found)


@router.get(
    "/personal-data/access-log",
    summary="Who read whose personal data, and why (auditor); the latest first",
    response_model=Page[AccessRead],
)
async def access_log(
    session: SessionDep,
    who: Auditor,
    paged: Paged,
    register: str | None = None,
    record_id: str | None = None,
) -> Page[AccessRead]:
    total, rows = await repository.access_log(
        session, register=register, record_id=record_id, offset=paged.offset, limit=paged.limit
    )
    return page([AccessRead(**row) for row in rows], total, paged)


# --- spreadsheets --------------------------------------------------------------------------


@router.post(
    "/registers/{register}/imports",
    status_code=202,
    summary="Import a CSV or XLSX file (registrar); poll the returned job",
    response_model=ImportQueued,
    responses=problems(
        404,
        413,
        415,
        s404=NO_REGISTER,
        s413="файл больше допустимого (code: file_too_large)",
        s415="не .xlsx и не .csv (code: unsupported_file)",
    ),
)
async def start_import(
    register: str,
    ctx: ContextDep,
    who: Registrar,
    file: UploadFile = File(..., description=".xlsx or .csv; the first row names the columns"),
    mode: service.Mode = Form(
        ..., description="dry_run, all_or_nothing or valid_rows — chosen explicitly"
    ),
    confirm: bool = Form(False, description="Also mark unchanged rows as verified now"),
) -> ImportQueued:
    spec = register_of(register)
    filename = file.filename or "upload"
    try:
        kind_of(filename)
    except TableError as exc:
        raise ApiError(415, "unsupported_file", _sentence(str(exc))) from exc
    limit = ctx.settings.max_upload_mb * 1024 * 1024
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise ApiError(
            413,
            "file_too_large",
            f"Файл больше {ctx.settings.max_upload_mb} МБ: разделите его на части.",
        )
    import_id = await ctx.imports.submit(
        spec.name, filename, content, mode=mode, confirm=confirm, actor=who.name
    )
    return ImportQueued(import_id=import_id, status="queued", href=f"/v1/imports/{import_id}")


NO_IMPORT = "нет такого импорта (code: import_not_found)"
RUNNING = "импорт ещё идёт (code: import_running)"


@router.get(
    "/imports/{import_id}",
    summary="An import job: progress, summary, row errors",
    response_model=ImportRead,
    responses=problems(404, s404=NO_IMPORT),
)
async def get_import(import_id: str, ctx: ContextDep, who: Registrar) -> ImportRead:
    job = await ctx.imports.status(import_id)
    if job is None:
        raise ApiError(404, "import_not_found", f"Импорт «{import_id}» не найден.")
    return ImportRead(**job)


@router.get(
    "/imports/{import_id}/errors.xlsx",
    summary="The import's row errors as XLSX",
    response_class=Response,
    responses=binary(XLSX, "The row errors: row, column, letter, value, reason")
    | problems(404, 409, s404=NO_IMPORT, s409=RUNNING),
)
async def import_errors(import_id: str, ctx: ContextDep, who: Registrar) -> Response:
    job = await ctx.imports.status(import_id)
    if job is None:
        raise ApiError(404, "import_not_found", f"Импорт «{import_id}» не найден.")
    if job["status"] in ("queued", "running"):
        raise ApiError(409, "import_running", "Импорт ещё идёт: отчёт будет после завершения.")
    content = write_xlsx([importing.errors_sheet(job["errors"] or [])])
    return _xlsx(content, f"errors-{job['register']}.xlsx")


@router.get(
    "/imports/{import_id}/marked.xlsx",
    summary="The registrar's own uploaded sheet with the bad cells marked: filled red, a note "
    "with the reason, and a column «Ошибки загрузки» (kept a while after an import with errors)",
    response_class=Response,
    responses=binary(XLSX, "The uploaded sheet with its errors marked")
    | problems(
        404,
        409,
        s404="нет такого импорта, или его файл не хранится (code: import_not_found, "
        "marked_unavailable)",
        s409=RUNNING,
    ),
)
async def import_marked(import_id: str, ctx: ContextDep, who: Registrar) -> Response:
    job = await ctx.imports.status(import_id)
    if job is None:
        raise ApiError(404, "import_not_found", f"Импорт «{import_id}» не найден.")
    if job["status"] in ("queued", "running"):
        raise ApiError(409, "import_running", "Импорт ещё идёт: файл будет после завершения.")
    upload = await ctx.imports.upload(import_id)
    if upload is None:
        hours = _hours(ctx.settings.keep_upload_hours)
        raise ApiError(
            404,
            "marked_unavailable",
            "Файл этого импорта не хранится: в нём не было ошибок в строках, или после "
            f"импорта прошло больше {hours}. Загрузите файл снова в режиме пробной проверки.",
        )
    content = await asyncio.to_thread(
        workbooks.marked, upload.content, upload.filename, upload.errors
    )
    stem = PurePath(upload.filename).stem or upload.register
    return _xlsx(content, f"marked-{upload.register}.xlsx", f"{stem} — ошибки.xlsx")


def _hours(hours: float) -> str:
    """«24 часов» said right: «1 часа», «2 часов» ... (after «больше»)."""
    whole = int(hours)
    if whole != hours:
        return f"{str(hours).replace('.', ',')} часа"
    return f"{whole} часа" if whole % 10 == 1 and whole % 100 != 11 else f"{whole} часов"


@router.get(
    "/registers/{register}/template.xlsx",
    summary="The register's template to fill in: Russian column titles (required ones "
    "marked), an example row, lists of allowed values, a sheet saying what each column takes",
    response_class=Response,
    responses=binary(XLSX, "The register's template") | problems(404, s404=NO_REGISTER),
)
async def template(register: str) -> Response:
    spec = register_of(register)
    content = await asyncio.to_thread(workbooks.template, spec)
    return _xlsx(content, f"template-{spec.name}.xlsx", f"Шаблон — {spec.title}.xlsx")


@router.get(
    "/registers/{register}/export.xlsx",
    summary="The whole register as XLSX; teachers with age and experience bands, their dates "
    "(to edit and import back) with the personal_data role and a purpose, audited",
    openapi_extra=key_optional(),
    response_class=Response,
    responses=binary(XLSX, "The register's records")
    | problems(404, 403, s404=NO_REGISTER, s403=DATES_403),
)
async def export(
    register: str,
    runtime: RuntimeDep,
    who: MaybePersonal,
    dates: Dates = False,
    purpose: Purpose = None,
) -> Response:
    spec = register_of(register)
    reader = dates_reader(spec, who, dates, purpose)
    content = await service.export_xlsx(runtime.sessions, spec, reader)
    return _xlsx(content, f"{spec.name}.xlsx")


# --- verification, resync, loads ------------------------------------------------------------


@router.get(
    "/stale",
    summary="Records overdue for verification, per register and owner",
    response_model=StaleRead,
    responses=problems(404, s404=NO_REGISTER),
)
async def stale(
    session: SessionDep,
    ctx: ContextDep,
    register: str | None = None,
    owner: str | None = None,
    limit: int = Query(100, ge=1, le=5000, description="Record ids listed per register"),
) -> StaleRead:
    days = ctx.settings.stale_after_days
    cutoff = service.stale_cutoff(datetime.now(UTC), days)
    if register is not None:
        register_of(register)
    groups = [
        g
        for g in await repository.staleness(session, cutoff, register)
        if g["stale"] and (owner is None or g["owner"] == owner)
    ]
    records = {}
    for name in sorted({g["register"] for g in groups}):
        records[name] = await repository.stale_ids(session, name, cutoff, owner, limit)
    return StaleRead(
        verify_before=cutoff,
        after_days=days,
        groups=[StaleGroup(**g) for g in groups],
        records=records,
    )


@router.post(
    "/stale/check",
    summary="Look for stale records now and publish registry.stale",
    response_model=StaleCheckRead,
)
async def check_stale(runtime: RuntimeDep, ctx: ContextDep, who: Registrar) -> StaleCheckRead:
    async with runtime.transaction() as deps:
        groups = await service.check_stale(deps, days=ctx.settings.stale_after_days)
    return StaleCheckRead(groups=[StaleGroup(**g) for g in groups])


@router.post(
    "/resync",
    summary="Publish the current state again (registrar): register -> events published",
    response_model=Counts,
    responses=problems(404, s404=NO_REGISTER),
)
async def resync(
    runtime: RuntimeDep,
    who: Registrar,
    register: list[str] | None = Query(None, description="Registers; all when none"),
) -> Counts:
    for name in register or []:
        register_of(name)
    return Counts(await service.resync(runtime.transaction, register))


async def _load_region(
    runtime: RuntimeDep,
    region: dict[str, list[dict[str, Any]]],
    who: Principal,
    since: date | None = None,
) -> LoadRead:
    unknown = [name for name in region if name not in REGISTRY]
    if unknown:
        raise ApiError(422, "register_not_found", "Неизвестные реестры: " + ", ".join(unknown))
    # The region is this request's alone (parsed from its body or generated for it).
    if since is not None and since > date.today():
        raise ApiError(422, "future_date", "Дата «с» не может быть в будущем.")
    reports = await service.load_region(
        runtime.transaction, region, actor=who.name, consume=True, since=since
    )
    failed = {n: r for n, r in reports.items() if not r.applied}
    if failed:
        raise ApiError(
            422,
            "rows_invalid",
            "Не загружены реестры: "
            + "; ".join(f"«{REGISTRY[n].title}»: {r.message}" for n, r in failed.items()),
            errors=[
                {"register": n, **e.as_problem("body", n, e.row)}
                for n, r in failed.items()
                for e in r.errors[:1000]
            ],
        )
    return LoadRead(
        received={n: r.total_rows for n, r in reports.items()},
        changed={n: r.created + r.updated for n, r in reports.items()},
    )


SINCE = (
    "The day the registers held these records from (a first load of a history): their "
    "events are dated by it, so KPIs as of earlier days count these teachers and schools"
)


@router.post(
    "/load",
    summary="Load several registers at once as JSON rows (registrar); each all or nothing",
    response_model=LoadRead,
    responses=problems(
        422,
        s422="неизвестный реестр, дата «с» в будущем, строки с ошибками: errors — по строкам "
        "(code: register_not_found, future_date, bad_date, rows_invalid, validation_error)",
    ),
)
async def load(
    runtime: RuntimeDep,
    who: Registrar,
    region: Annotated[LoadCreate, Body(description="register -> rows")],
    since: Annotated[
        str | None,
        Query(description=SINCE, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", examples=["2025-08-01"]),
    ] = None,
) -> LoadRead:
    rows = {
        name: getattr(region, name)
        for name in REGISTRY
        if name in region.model_fields_set and getattr(region, name) is not None
    }
    return await _load_region(runtime, rows, who, _day(since))


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ApiError(422, "bad_date", f"Дата «{text}» не существует.") from exc
