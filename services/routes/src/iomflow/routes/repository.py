"""Routes tables (read models of the registries, the routes, course events, attributions)
and their queries: set-based reads (``… IN (…)``, one statement for a batch) and
multi-row writes.

One vocabulary, arguments always ``(session, …)``: ``get_<one>`` (by its key; None when
absent; ``get_route`` gives the ``Route`` aggregate), ``get_all_<many>`` (every row),
``find_<many>`` (rows matching what the arguments name), ``add_<many>`` (insert new rows,
one statement), ``save_<many>`` (write changes to existing rows, or upsert, one statement),
``is_<question>``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from iomflow.routes.domain import (
    OPEN,
    CommunityView,
    MentorView,
    MethodistView,
    PairView,
    PracticeView,
    ProgramView,
    Route,
    SiteView,
    TeacherView,
    TutorView,
    for_audience,
    index_practices,
    index_programs,
)
from iomflow.shared.db import new_metadata, upsert_many
from iomflow.shared.publishers import IngestTables
from iomflow.shared.service import Tables

metadata = new_metadata()
tables = Tables(metadata, auth=True)
ingest_tables = IngestTables(metadata)  # publishers posting events over HTTP, the audit

# --- read models (from registry events) ----------------------------------------------------

teachers = Table(
    "teachers",
    metadata,
    Column("teacher_id", String(100), primary_key=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("audience", String(20), nullable=False),
    Column("subjects", JSON, nullable=False, server_default="[]"),
    Column("young", Boolean, nullable=False, server_default="0"),
    Column("is_manager", Boolean, nullable=False, server_default="0"),
)

municipalities = Table(
    "municipalities",
    metadata,
    Column("municipality_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("remote", Boolean, nullable=False),
)

programs = Table(
    "programs",
    metadata,
    Column("program_id", String(100), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("hours", Integer, nullable=False),
    Column("federal_registry", Integer, nullable=False),
    Column("competencies", JSON, nullable=False),
    Column("audiences", JSON, nullable=False),
    Column("format", String(20), nullable=False, server_default="in_person"),
    Column("subjects", JSON, nullable=False, server_default="[]"),
    Column("federal_number", String(100), nullable=True, index=True),
)

methodists = Table(
    "methodists",
    metadata,
    Column("methodist_id", String(100), primary_key=True),
    Column("specialisations", JSON, nullable=False),
    Column("municipalities", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("load", Integer, nullable=False, default=0),
    Column("subjects", JSON, nullable=False, server_default="[]"),
)

tutors = Table(
    "tutors",
    metadata,
    Column("tutor_id", String(100), primary_key=True),
    Column("specialisations", JSON, nullable=False),
    Column("programs", JSON, nullable=False),
    Column("municipalities", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("load", Integer, nullable=False, default=0),
)

mentors = Table(
    "mentors",
    metadata,
    Column("mentor_id", String(100), primary_key=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("subjects", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("load", Integer, nullable=False, default=0),
)

sites = Table(
    "internship_sites",
    metadata,
    Column("site_id", String(100), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("competencies", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("load", Integer, nullable=False, default=0),
)

communities = Table(
    "communities",
    metadata,
    Column("community_id", String(100), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("level", String(20), nullable=False),
    Column("municipality_id", String(100), nullable=True),
    Column("subjects", JSON, nullable=False),
    Column("competencies", JSON, nullable=False),
    Column("themes", JSON, nullable=False, server_default="[]"),
)

management = Table(
    "management_members",
    metadata,
    Column("member_id", String(100), primary_key=True),
    Column("organization_id", String(100), nullable=False, index=True),
    Column("teacher_id", String(100), nullable=False),
)

# --- own data ------------------------------------------------------------------------------

routes = Table(
    "routes",
    metadata,
    Column("route_id", String(36), primary_key=True),
    # Not unique: a revised diagnosis redrafts its route under the same diagnosis id.
    Column("diagnosis_id", String(36), nullable=False, index=True),
    Column("teacher_id", String(100), nullable=False, index=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    # drafted | agreed | active | completed | cancelled | superseded
    Column("status", String(20), nullable=False),
    Column("steps", JSON, nullable=False),
    Column("total_hours", Integer, nullable=False),
    Column("methodist_id", String(100), nullable=True, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=True),
    Column("starts_on", Date, nullable=True),
    Column("ends_on", Date, nullable=True),
    Column("hours_by_period", JSON, nullable=False, server_default="{}"),
    Column("rules_version", String(40), nullable=True),
    Column("supersedes", String(36), nullable=True),
    Column("approvals", JSON, nullable=False, server_default="[]"),
    Column("history", JSON, nullable=False, server_default="[]"),
    Column("status_reason", String(1000), nullable=True),
    Column("agreed_at", DateTime(timezone=True), nullable=True),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Index(
        "uq_routes_one_active_per_teacher",
        "teacher_id",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
    Index(
        "uq_routes_one_draft_per_teacher",
        "teacher_id",
        unique=True,
        sqlite_where=text("status = 'drafted'"),
        postgresql_where=text("status = 'drafted'"),
    ),
)

courses = Table(
    "course_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("kind", String(20), nullable=False),  # enrolled | completed | internship
    Column("teacher_id", String(100), nullable=False, index=True),
    Column("program_id", String(100), nullable=True, index=True),
    Column("federal_number", String(100), nullable=True),
    Column("site_id", String(100), nullable=True),  # an internship's site
    Column("on", Date, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("hours", Integer, nullable=True),
    Column("source", String(200), nullable=False),
    Column("external_id", String(200), nullable=True),
    # applied | held | unmatched (no open step: kept as the teacher's training history)
    Column("status", String(20), nullable=False, index=True),
    Column("reason", String(500), nullable=True),
    Column("route_id", String(36), nullable=True),
    Column("step_id", String(20), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

attributions = Table(
    "attributions",
    metadata,
    Column("diagnosis_id", String(36), primary_key=True),  # the re-diagnosis
    Column("route_id", String(36), primary_key=True),
    Column("step_id", String(20), primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("competency", String(100), nullable=False),
    Column("change", String(20), nullable=False),
    Column("program_id", String(100), nullable=True, index=True),
    Column("site_id", String(100), nullable=True, index=True),
    Column("mentor_id", String(100), nullable=True),
    Column("community_id", String(100), nullable=True),
    Column("methodist_id", String(100), nullable=True, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

SEATS: dict[str, tuple[Table, str]] = {
    "methodist": (methodists, "methodist_id"),
    "tutor": (tutors, "tutor_id"),
    "mentor": (mentors, "mentor_id"),
    "site": (sites, "site_id"),
}
"""Resources with a capacity, by the step (or route) field that names them; seats are
written in this order, so replicas lock them in one order."""

CHUNK = 500
"""Ids per ``IN`` list: a batch's reads stay one statement up to this many keys."""


def _chunks(ids: Iterable[str]) -> list[list[str]]:
    wanted = sorted(set(ids))
    return [wanted[n : n + CHUNK] for n in range(0, len(wanted), CHUNK)]


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name != "sqlite"


# --- teachers ------------------------------------------------------------------------------


def _teachers_with_remote() -> Any:
    """Teachers with whether their municipality is remote (distance formats suit)."""
    return select(teachers, municipalities.c.remote).outerjoin(
        municipalities, municipalities.c.municipality_id == teachers.c.municipality_id
    )


def teacher_view(row: Any) -> TeacherView:
    return TeacherView(
        row.teacher_id,
        row.organization_id,
        row.municipality_id,
        row.audience,
        tuple(row.subjects),
        bool(row.young),
        bool(row.remote),
    )


async def find_teachers(
    session: AsyncSession, ids: Iterable[str], lock: str | None = None
) -> dict[str, TeacherView]:
    """The teachers' views; ``lock`` = "share" or "update" locks their rows (PostgreSQL;
    SQLite runs one writer at a time anyway), in id order."""
    found: dict[str, TeacherView] = {}
    for chunk in _chunks(ids):
        query = _teachers_with_remote().where(teachers.c.teacher_id.in_(chunk))
        if lock is not None and _postgres(session):
            query = query.order_by(teachers.c.teacher_id).with_for_update(
                read=lock == "share", of=teachers
            )
        for row in await session.execute(query):
            found[row.teacher_id] = teacher_view(row)
    return found


# --- the offer -----------------------------------------------------------------------------


def program_view(r: Any) -> ProgramView:
    return ProgramView(
        r.program_id,
        r.title,
        r.hours,
        bool(r.federal_registry),
        tuple(r.competencies),
        tuple(r.audiences),
        r.format,
        tuple(r.subjects),
    )


@dataclass(frozen=True)
class Offer:
    """What the registries offer everyone alike (programs, communities, who the methodists
    serve): it changes rarely, so a process may keep it for a while
    (``service.Routes.offer``). Programs are kept per audience, indexed by competency."""

    programs: list[ProgramView]
    communities: list[CommunityView]
    methodists: dict[str, MethodistView]  # who serves what; loads are read fresh
    by_audience: dict[str, tuple[list[ProgramView], dict[str, list[ProgramView]]]] = field(
        default_factory=dict
    )
    ranked: dict[Any, Any] = field(default_factory=dict)  # drafting.ranked_for's cache
    practices: list[PracticeView] = field(default_factory=list)  # the bank (cited)
    practice_index: dict[tuple[str, str], list[PracticeView]] = field(default_factory=dict)

    def catalogue_programs(self, audience: str) -> tuple[list[ProgramView], dict[str, Any]]:
        """The programs for an audience and their index by competency (built once)."""
        found = self.by_audience.get(audience)
        if found is None:
            mine = for_audience(self.programs, audience)
            found = self.by_audience[audience] = (mine, index_programs(mine))
        return found


async def get_offer(session: AsyncSession) -> Offer:
    program_rows = await session.execute(select(programs).order_by(programs.c.program_id))
    community_rows = await session.execute(select(communities))
    bank = await get_all_bank_practices(session)
    return Offer(
        practices=bank,
        practice_index=index_practices(bank),
        methodists={m.methodist_id: m for m in await get_all_methodists(session)},
        programs=[program_view(r) for r in program_rows],
        communities=[
            CommunityView(
                r.community_id,
                r.title,
                r.level,
                r.municipality_id,
                tuple(r.subjects),
                tuple(r.competencies),
                tuple(r.themes),
            )
            for r in community_rows
        ],
    )


async def get_all_sites(session: AsyncSession) -> list[SiteView]:
    rows = await session.execute(select(sites))
    return [
        SiteView(r.site_id, r.title, r.municipality_id, tuple(r.competencies), r.capacity, r.load)
        for r in rows
    ]


async def get_all_tutors(session: AsyncSession) -> list[TutorView]:
    rows = await session.execute(select(tutors))
    return [
        TutorView(
            r.tutor_id,
            tuple(r.specialisations),
            tuple(r.programs),
            tuple(r.municipalities),
            r.capacity,
            r.load,
        )
        for r in rows
    ]


async def find_mentors(session: AsyncSession, municipality_ids: Iterable[str]) -> list[MentorView]:
    """The mentors of these municipalities (a route's mentor is from the teacher's)."""
    found = []
    for chunk in _chunks(municipality_ids):
        rows = await session.execute(select(mentors).where(mentors.c.municipality_id.in_(chunk)))
        found += [
            MentorView(
                r.mentor_id,
                r.organization_id,
                r.municipality_id,
                tuple(r.subjects),
                r.capacity,
                r.load,
            )
            for r in rows
        ]
    return found


async def find_programs(
    session: AsyncSession, program_ids: Iterable[str], numbers: Iterable[str]
) -> list[Any]:
    """Programs (id, federal number, hours) by id or by Federal-registry number, in one
    read."""
    ids, numbers = sorted(set(program_ids)), sorted(set(numbers))
    if not ids and not numbers:
        return []
    query = select(programs.c.program_id, programs.c.federal_number, programs.c.hours).where(
        or_(programs.c.program_id.in_(ids), programs.c.federal_number.in_(numbers))
    )
    return list(await session.execute(query.order_by(programs.c.program_id)))


async def find_known_sites(session: AsyncSession, site_ids: Iterable[str]) -> set[str]:
    """Which of these internship sites the read model has, in one read per chunk."""
    found: set[str] = set()
    for chunk in _chunks(site_ids):
        rows = await session.execute(select(sites.c.site_id).where(sites.c.site_id.in_(chunk)))
        found.update(r.site_id for r in rows)
    return found


async def get_program(session: AsyncSession, program_id: str) -> Any:
    return (
        await session.execute(select(programs).where(programs.c.program_id == program_id))
    ).first()


async def get_all_methodists(session: AsyncSession) -> list[MethodistView]:
    rows = await session.execute(select(methodists).order_by(methodists.c.methodist_id))
    return [
        MethodistView(
            r.methodist_id,
            tuple(r.specialisations),
            tuple(r.municipalities),
            r.capacity,
            r.load,
            tuple(r.subjects),
        )
        for r in rows
    ]


async def get_methodist_loads(session: AsyncSession) -> list[Any]:
    """(methodist_id, capacity, load) of every methodist: cheap, no JSON."""
    query = select(methodists.c.methodist_id, methodists.c.capacity, methodists.c.load)
    return list(await session.execute(query.order_by(methodists.c.methodist_id)))


async def is_manager_of(
    session: AsyncSession, member_or_teacher: str, organization_id: str, not_teacher: str
) -> bool:
    """Whether the id is a management-team member (or their teacher id) of the organisation,
    other than ``not_teacher`` (nobody approves their own route for the school)."""
    query = select(func.count()).where(
        management.c.organization_id == organization_id,
        management.c.teacher_id != not_teacher,
        or_(
            management.c.member_id == member_or_teacher,
            management.c.teacher_id == member_or_teacher,
        ),
    )
    return bool((await session.execute(query)).scalar_one())


# --- seats ---------------------------------------------------------------------------------


async def save_seats(
    session: AsyncSession, kind: str, deltas: Mapping[str, int], checked: Iterable[str] = ()
) -> dict[str, int]:
    """Add seats to resources of one kind (a negative number frees them), in one statement;
    the new load of every resource it changed.

    A resource that takes seats (``deltas`` above zero, or named in ``checked``: it took
    some and freed as many) changes only if its load stays within its capacity: the
    condition is checked on the row as it is when the statement locks it, so replicas
    taking seats at once never exceed a capacity. A resource missing from the result did
    not change (full, or gone). A freed load never goes below zero, and freeing needs no
    room.
    """
    table, key = SEATS[kind]
    column = table.c[key]
    taking = sorted({i for i, n in deltas.items() if n > 0} | set(checked))
    freeing = sorted(i for i, n in deltas.items() if n < 0 and i not in taking)
    ids = taking + freeing
    if not ids:
        return {}
    delta = case({i: literal(deltas.get(i, 0), Integer) for i in ids}, value=column)
    new = table.c.load + delta
    where = []
    if taking:
        where.append(and_(column.in_(taking), new <= table.c.capacity))
    if freeing:
        where.append(column.in_(freeing))
    result = await session.execute(
        update(table)
        .where(or_(*where))
        .values(load=case((new < 0, 0), else_=new))
        .returning(column, table.c.load)
    )
    return {row[0]: row[1] for row in result}


async def save_loads(session: AsyncSession, kind: str, loads: Mapping[str, int]) -> None:
    """Set loads as counted (a rebalance repairs drift), in one executemany."""
    if not loads:
        return
    table, key = SEATS[kind]
    await session.execute(
        update(table)
        .where(table.c[key] == bindparam("b_id"))
        .values(load=bindparam("b_load"))
        .execution_options(synchronize_session=False),
        [{"b_id": i, "b_load": n} for i, n in sorted(loads.items())],
    )


# --- routes --------------------------------------------------------------------------------

ROUTE_COLUMNS = [c.name for c in routes.columns]


def route_of(row: Any) -> Route:
    values = dict(row._mapping)
    if values["created_at"].tzinfo is None:  # SQLite keeps no zone: ours are UTC
        values["created_at"] = values["created_at"].replace(tzinfo=UTC)
    return Route(**values)


def route_values(route: Route, columns: Iterable[str] = ROUTE_COLUMNS) -> dict[str, Any]:
    return {c: getattr(route, c) for c in columns}


async def find_routes(
    session: AsyncSession, diagnosis_ids: Iterable[str], open_of: Iterable[str] = ()
) -> list[Route]:
    """In one read: every route drafted for these diagnoses, and every open route of these
    teachers."""
    diagnoses, teacher_ids = sorted(set(diagnosis_ids)), sorted(set(open_of))
    where: list[ColumnElement[bool]] = []
    if diagnoses:
        where.append(routes.c.diagnosis_id.in_(diagnoses))
    if teacher_ids:
        where.append(and_(routes.c.teacher_id.in_(teacher_ids), routes.c.status.in_(OPEN)))
    if not where:
        return []
    query = select(routes).where(or_(*where)).order_by(routes.c.created_at, routes.c.route_id)
    return [route_of(r) for r in await session.execute(query)]


async def get_route(session: AsyncSession, route_id: str, lock: bool = False) -> Route | None:
    """The route (``lock``: its row locked for this transaction, on PostgreSQL)."""
    query = select(routes).where(routes.c.route_id == route_id)
    if lock and _postgres(session):
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else route_of(row)


async def get_routes(session: AsyncSession, ids: Iterable[str]) -> list[Route]:
    found = []
    for chunk in _chunks(ids):
        found += [
            route_of(r)
            for r in await session.execute(select(routes).where(routes.c.route_id.in_(chunk)))
        ]
    return found


async def add_routes(session: AsyncSession, new: Sequence[Route]) -> None:
    """Insert routes drafted in this transaction, in one statement."""
    if new:
        await session.execute(insert(routes), [route_values(r) for r in new])


async def save_routes(
    session: AsyncSession, changes: Sequence[Route], columns: Iterable[str]
) -> None:
    """Write ``columns`` of many routes, as they are in memory, in one executemany."""
    names = sorted(columns)
    if not changes or not names:
        return
    await session.execute(
        update(routes)
        .where(routes.c.route_id == bindparam("b_route_id"))
        .values({c: bindparam(f"b_{c}") for c in names})
        .execution_options(synchronize_session=False),
        [
            {"b_route_id": route.route_id, **{f"b_{c}": getattr(route, c) for c in names}}
            for route in changes
        ],
    )


async def find_unassigned(session: AsyncSession, limit: int = 1000) -> list[Route]:
    rows = await session.execute(
        select(routes)
        .where(routes.c.status.in_(OPEN), routes.c.methodist_id.is_(None))
        .order_by(routes.c.created_at)
        .limit(limit)
    )
    return [route_of(r) for r in rows]


async def find_open_routes(session: AsyncSession) -> list[Any]:
    """Every route holding (or waiting for) a methodist's seat, oldest first."""
    query = select(
        routes.c.route_id, routes.c.teacher_id, routes.c.methodist_id, routes.c.steps
    ).where(routes.c.status.in_(OPEN))
    return list(await session.execute(query.order_by(routes.c.created_at, routes.c.route_id)))


async def find_routes_where(session: AsyncSession, *where: Any, limit: int = 1000) -> list[Any]:
    query = select(routes).where(*where).order_by(routes.c.created_at).limit(limit)
    return list(await session.execute(query))


async def find_teacher_routes(session: AsyncSession, teacher_id: str) -> list[Any]:
    return await find_routes_where(session, routes.c.teacher_id == teacher_id)


async def find_due(session: AsyncSession, today: date) -> list[Route]:
    """Agreed routes whose start has come, and active routes past their end date."""
    query = select(routes).where(
        or_(
            (routes.c.status == "agreed") & (routes.c.starts_on <= today),
            (routes.c.status == "active") & (routes.c.ends_on < today),
        )
    )
    if _postgres(session):  # replicas tick at once: each takes its own
        query = query.with_for_update(skip_locked=True)
    return [route_of(r) for r in await session.execute(query.order_by(routes.c.created_at))]


async def get_counts(session: AsyncSession) -> dict[str, int]:
    async def count(table: Table, *where: Any) -> int:
        query = select(func.count()).select_from(table).where(*where)
        return int((await session.execute(query)).scalar_one())

    by_status: dict[str, int] = dict(
        (
            await session.execute(select(routes.c.status, func.count()).group_by(routes.c.status))
        ).all()
    )
    return {
        "teachers": await count(teachers),
        "programs": await count(programs),
        "methodists": await count(methodists),
        "tutors": await count(tutors),
        "mentors": await count(mentors),
        "internship_sites": await count(sites),
        "communities": await count(communities),
        "routes": sum(by_status.get(s, 0) for s in OPEN),
        **{f"routes_{status}": n for status, n in sorted(by_status.items())},
        "assigned": await count(
            routes, routes.c.status.in_(OPEN), routes.c.methodist_id.isnot(None)
        ),
        "unassigned": await count(
            routes, routes.c.status.in_(OPEN), routes.c.methodist_id.is_(None)
        ),
        "courses_held": await count(courses, courses.c.status == "held"),
    }


# --- course events -------------------------------------------------------------------------


async def save_courses(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await upsert_many(session, courses, rows, keys=["event_id"])


async def find_held_courses(
    session: AsyncSession,
    teacher_ids: Iterable[str] = (),
    programs: Iterable[tuple[str, str | None]] = (),
    site_ids: Iterable[str] = (),
    limit: int = 1000,
) -> list[Any]:
    """Held course and internship events of these teachers, naming these programs (id,
    federal number) or at these sites, in the order they were received; one read."""
    teacher_list = sorted(set(teacher_ids))
    program_list = list(programs)
    ids = sorted({p for p, _ in program_list})
    numbers = sorted({n for _, n in program_list if n})
    site_list = sorted(set(site_ids))
    where = []
    if teacher_list:
        where.append(courses.c.teacher_id.in_(teacher_list))
    if ids:
        where.append(courses.c.program_id.in_(ids))
    if numbers:
        where.append(courses.c.federal_number.in_(numbers))
    if site_list:
        where.append(courses.c.site_id.in_(site_list))
    if not where:
        return []
    query = select(courses).where(courses.c.status == "held", or_(*where))
    return list(await session.execute(query.order_by(courses.c.received_at).limit(limit)))


async def find_completed_programs(
    session: AsyncSession, teacher_ids: Iterable[str]
) -> dict[str, set[str]]:
    """Per teacher, the programs they completed (passed): not offered to them again."""
    found: dict[str, set[str]] = {}
    for chunk in _chunks(teacher_ids):
        query = select(courses.c.teacher_id, courses.c.program_id).where(
            courses.c.teacher_id.in_(chunk),
            courses.c.kind == "completed",
            courses.c.passed.is_(True),
            courses.c.program_id.isnot(None),
        )
        for r in await session.execute(query):
            found.setdefault(r.teacher_id, set()).add(r.program_id)
    return found


async def find_courses(session: AsyncSession, *where: Any, limit: int = 1000) -> list[Any]:
    query = select(courses).where(*where).order_by(courses.c.received_at).limit(limit)
    return list(await session.execute(query))


# --- effectiveness -------------------------------------------------------------------------


async def save_attributions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await upsert_many(session, attributions, rows, keys=["diagnosis_id", "route_id", "step_id"])


async def find_attributions(session: AsyncSession, by: str) -> list[Any]:
    column = attributions.c[by]
    query = select(column.label("key"), attributions.c.change).where(column.isnot(None))
    return list(await session.execute(query))


async def find_titles(
    session: AsyncSession, table: Table, key: str, ids: Iterable[str | None], title: str = "title"
) -> dict[str, str]:
    """``key`` → ``title`` of the rows of a read model with these ids (programs, sites,
    communities; municipalities by ``name``), in one read per chunk."""
    found: dict[str, str] = {}
    for chunk in _chunks(i for i in ids if i):
        rows = await session.execute(
            select(table.c[key], table.c[title]).where(table.c[key].in_(chunk))
        )
        found.update({row[0]: row[1] for row in rows})
    return found


# --- activities and school teams (issue 16) -------------------------------------------------

school_teams = Table(
    "school_teams",
    metadata,
    Column("team_id", String(100), primary_key=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("project", String(40), nullable=False),
    Column("members", JSON, nullable=False),
    Column("methodists", JSON, nullable=False),
)
"""Read model of ``registry.school_team.*``: the School of the Ministry teams."""

activities = Table(
    "activities",
    metadata,
    Column("activity_id", String(100), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("title", String(500), nullable=False),
    Column("level", String(20), nullable=False),
    Column("organiser_id", String(100), nullable=False),
    Column("format", String(20), nullable=False),
    Column("held_on", Date, nullable=False, index=True),
    Column("hours", Integer, nullable=True),
    Column("municipality_id", String(100), nullable=True),
    Column("organization_id", String(100), nullable=True),
    Column("competencies", JSON, nullable=False),
    Column("themes", JSON, nullable=False),
    Column("target", String(20), nullable=False),
    Column("team_id", String(100), nullable=True, index=True),
    Column("community_id", String(100), nullable=True),
    Column("methodist_id", String(100), nullable=True),
    Column("project", String(40), nullable=True),
    Column("attendees", Integer, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

attendances = Table(
    "attendances",
    metadata,
    Column("attendance_id", String(201), primary_key=True),  # <activity_id>:<teacher_id>
    Column("activity_id", String(100), nullable=False, index=True),
    Column("teacher_id", String(100), nullable=False, index=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("route_id", String(36), nullable=True),
    Column("step_id", String(40), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

ACTIVITY_COLUMNS = tuple(c.name for c in activities.columns)


async def find_activities(
    session: AsyncSession, ids: Iterable[str], lock: bool = False
) -> dict[str, Any]:
    """The activities with these ids (``lock``: their rows, on PostgreSQL), in one read per
    chunk."""
    found: dict[str, Any] = {}
    for chunk in _chunks(ids):
        query = select(activities).where(activities.c.activity_id.in_(chunk))
        if lock and _postgres(session):
            query = query.order_by(activities.c.activity_id).with_for_update()
        found.update({r.activity_id: r for r in await session.execute(query)})
    return found


async def find_attendances(session: AsyncSession, activity_ids: Iterable[str]) -> list[Any]:
    """Every attendance of these activities, in one read per chunk."""
    found: list[Any] = []
    for chunk in _chunks(activity_ids):
        query = select(attendances).where(attendances.c.activity_id.in_(chunk))
        found += list(await session.execute(query.order_by(attendances.c.attendance_id)))
    return found


async def find_known(
    session: AsyncSession, table: Table, key: str, ids: Iterable[str | None]
) -> set[str]:
    """Which of ``ids`` a read model (school teams, communities, methodists) holds, in one
    read per chunk."""
    known: set[str] = set()
    for chunk in _chunks(i for i in ids if i):
        rows = await session.execute(select(table.c[key]).where(table.c[key].in_(chunk)))
        known.update(r[0] for r in rows)
    return known


async def _find_page(
    session: AsyncSession, table: Table, order: Sequence[Any], offset: int, limit: int, *where: Any
) -> tuple[list[Any], int]:
    """A page of ``table``'s rows matching ``where`` in ``order``, and how many match."""
    query = select(table).where(*where).order_by(*order).offset(offset).limit(limit)
    rows = list(await session.execute(query))
    count = select(func.count()).select_from(table).where(*where)
    return rows, int((await session.execute(count)).scalar_one())


async def add_activities(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(activities), list(rows))


async def save_activity_counts(session: AsyncSession, counts: Mapping[str, int]) -> None:
    """The attendance count of activities whose attendance grew, in one executemany."""
    if counts:
        await session.execute(
            update(activities)
            .where(activities.c.activity_id == bindparam("b_id"))
            .values(attendees=bindparam("b_n"))
            .execution_options(synchronize_session=False),
            [{"b_id": i, "b_n": n} for i, n in sorted(counts.items())],
        )


async def add_attendances(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(attendances), list(rows))


async def find_activities_page(
    session: AsyncSession, offset: int, limit: int, *where: Any
) -> tuple[list[Any], int]:
    """A page of activities matching ``where``, by date, and how many match in all."""
    order = (
        activities.c.held_on,
        activities.c.activity_id,
    )
    return await _find_page(session, activities, order, offset, limit, *where)


async def find_team_consultations(
    session: AsyncSession, team_id: str, since: date, until: date
) -> list[date]:
    """The days of the consultations held for a school team between two dates."""
    query = select(activities.c.held_on).where(
        activities.c.kind == "consultation",
        activities.c.target == "school_team",
        activities.c.team_id == team_id,
        activities.c.held_on >= since,
        activities.c.held_on <= until,
    )
    return [r[0] for r in await session.execute(query)]


async def get_school_team(session: AsyncSession, team_id: str) -> Any:
    query = select(school_teams).where(school_teams.c.team_id == team_id)
    return (await session.execute(query)).first()


async def find_school_teams_page(
    session: AsyncSession, offset: int, limit: int, *where: Any
) -> tuple[list[Any], int]:
    """A page of school teams matching ``where``, by id, and how many match in all."""
    order = (school_teams.c.team_id,)
    return await _find_page(session, school_teams, order, offset, limit, *where)


# --- mentoring pairs, the bank of practices, organisations (issue 16) ----------------------

mentoring_pairs = Table(
    "mentoring_pairs",
    metadata,
    Column("pair_id", String(100), primary_key=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("mentor_id", String(100), nullable=False),
    Column("mentee_id", String(100), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("focus", String(500), nullable=False, server_default=""),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=True),
)
"""Read model of ``registry.mentoring_pair.*``: a young teacher in a pair gets no mentor
from drafting."""

practices = Table(
    "practices",
    metadata,
    Column("practice_id", String(100), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("competencies", JSON, nullable=False),
    Column("themes", JSON, nullable=False),
    Column("year", Integer, nullable=False),
    Column("status", String(20), nullable=False),
)
"""Read model of ``registry.practice.*``, every status; the bank is those included or
replicated (``BANK``)."""

organizations = Table(
    "organizations",
    metadata,
    Column("organization_id", String(100), primary_key=True),
    Column("municipality_id", String(100), nullable=False),
    Column("name", String(500), nullable=False),
    Column("low_results", Boolean, nullable=False, server_default="0"),
    Column("unfavorable_conditions", Boolean, nullable=False, server_default="0"),
)
"""Read model of ``registry.organization.*``: whether a school is flagged for a support plan."""

BANK = ("included", "replicated")
"""The statuses of a practice in the bank of effective practices."""


async def get_all_bank_practices(session: AsyncSession) -> list[PracticeView]:
    """The practices of the bank, by id."""
    rows = await session.execute(
        select(practices).where(practices.c.status.in_(BANK)).order_by(practices.c.practice_id)
    )
    return [
        PracticeView(
            r.practice_id,
            r.title,
            r.organization_id,
            r.municipality_id,
            tuple(r.competencies),
            tuple(r.themes),
            r.year,
        )
        for r in rows
    ]


async def find_mentee_pairs(
    session: AsyncSession, teacher_ids: Iterable[str]
) -> dict[str, list[PairView]]:
    """The mentoring pairs these teachers are the mentees of, by teacher (one read per chunk);
    drafting decides which are active."""
    found: dict[str, list[PairView]] = {}
    for chunk in _chunks(teacher_ids):
        query = (
            select(mentoring_pairs)
            .where(mentoring_pairs.c.mentee_id.in_(chunk))
            .order_by(mentoring_pairs.c.pair_id)
        )
        for r in await session.execute(query):
            found.setdefault(r.mentee_id, []).append(
                PairView(
                    r.pair_id,
                    r.mentor_id,
                    r.mentee_id,
                    r.organization_id,
                    r.kind,
                    r.starts_on,
                    r.ends_on,
                    r.focus,
                )
            )
    return found


async def get_organization(session: AsyncSession, organization_id: str) -> Any:
    query = select(organizations).where(organizations.c.organization_id == organization_id)
    return (await session.execute(query)).first()


# --- support plans of low-results schools (issue 16) ----------------------------------------

support_plans = Table(
    "support_plans",
    metadata,
    Column("plan_id", String(100), primary_key=True),
    Column("organization_id", String(100), nullable=False, index=True),
    Column("municipality_id", String(100), nullable=False),
    Column("methodist_id", String(100), nullable=False, index=True),
    Column("status", String(10), nullable=False),  # active | closed
    Column("starts_on", Date, nullable=False),
    Column("actions", JSON, nullable=False),
    Column("closed_on", Date, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(
        "uq_support_plans_one_active_per_organization",
        "organization_id",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
)


async def get_plan(session: AsyncSession, plan_id: str, lock: bool = False) -> Any:
    """A plan's row (``lock``: held for update, on PostgreSQL); None when absent."""
    query = select(support_plans).where(support_plans.c.plan_id == plan_id)
    if lock and _postgres(session):
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def get_active_plan_of(session: AsyncSession, organization_id: str) -> Any:
    query = select(support_plans.c.plan_id).where(
        support_plans.c.organization_id == organization_id, support_plans.c.status == "active"
    )
    return (await session.execute(query)).first()


async def add_plan(session: AsyncSession, values: Mapping[str, Any]) -> None:
    await session.execute(insert(support_plans), [dict(values)])


async def save_plan(session: AsyncSession, values: Mapping[str, Any]) -> None:
    changed = {k: v for k, v in values.items() if k not in ("plan_id", "created_at")}
    await session.execute(
        update(support_plans)
        .where(support_plans.c.plan_id == values["plan_id"])
        .values(**changed)
        .execution_options(synchronize_session=False)
    )


async def find_plans_page(
    session: AsyncSession, offset: int, limit: int, *where: Any
) -> tuple[list[Any], int]:
    """A page of the plans matching ``where``, oldest first, and how many match in all."""
    order = (
        support_plans.c.created_at,
        support_plans.c.plan_id,
    )
    return await _find_page(session, support_plans, order, offset, limit, *where)
