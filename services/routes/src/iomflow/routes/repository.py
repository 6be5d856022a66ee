"""Routes tables: read models of the registries, the routes, course events, attributions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes.domain import (
    OPEN,
    Catalogue,
    CommunityView,
    MentorView,
    MethodistView,
    ProgramView,
    SiteView,
    TeacherView,
    TutorView,
)
from iomflow.shared.db import new_metadata, upsert
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
    Column("kind", String(20), nullable=False),  # enrolled | completed
    Column("teacher_id", String(100), nullable=False, index=True),
    Column("program_id", String(100), nullable=True, index=True),
    Column("federal_number", String(100), nullable=True),
    Column("on", Date, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("hours", Integer, nullable=True),
    Column("source", String(200), nullable=False),
    Column("external_id", String(200), nullable=True),
    # applied | held | unmatched (no open step: kept as the teacher's course history)
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
"""Resources with a capacity, by the step (or route) field that names them."""

READ_MODELS: dict[str, tuple[Table, str]] = {
    "teacher": (teachers, "teacher_id"),
    "municipality": (municipalities, "municipality_id"),
    "program": (programs, "program_id"),
    "methodist": (methodists, "methodist_id"),
    "tutor": (tutors, "tutor_id"),
    "mentor": (mentors, "mentor_id"),
    "internship_site": (sites, "site_id"),
    "community": (communities, "community_id"),
    "management_member": (management, "member_id"),
}
"""Registry entity -> (table, key) of the read model its events maintain."""


def now() -> datetime:
    return datetime.now(UTC)


# --- read models ---------------------------------------------------------------------------


async def save(session: AsyncSession, entity: str, values: dict[str, Any]) -> None:
    """Upsert one read-model row; loads are ours (counted from seats), never overwritten."""
    table, key = READ_MODELS[entity]
    await session.execute(upsert(session, table, values, keys=[key]))


async def remove(session: AsyncSession, entity: str, record_id: str) -> None:
    table, key = READ_MODELS[entity]
    await session.execute(delete(table).where(table.c[key] == record_id))


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


async def get_teacher(
    session: AsyncSession, teacher_id: str, lock: str | None = None
) -> TeacherView | None:
    """The teacher's view; ``lock`` = "share" or "update" locks the row (PostgreSQL; SQLite
    runs one writer at a time anyway)."""
    query = _teachers_with_remote().where(teachers.c.teacher_id == teacher_id)
    if lock is not None and session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update(read=lock == "share", of=teachers)
    row = (await session.execute(query)).first()
    return None if row is None else teacher_view(row)


async def teachers_by_id(session: AsyncSession, ids: Iterable[str]) -> dict[str, TeacherView]:
    wanted = sorted(set(ids))
    found: dict[str, TeacherView] = {}
    for start in range(0, len(wanted), 500):
        query = _teachers_with_remote().where(
            teachers.c.teacher_id.in_(wanted[start : start + 500])
        )
        for row in await session.execute(query):
            found[row.teacher_id] = teacher_view(row)
    return found


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
    """What the registries offer everyone alike (programs, communities): it changes rarely,
    so a process may keep it for a while (``service.Routes.offer``)."""

    programs: list[ProgramView]
    communities: list[CommunityView]
    methodists: dict[str, MethodistView]  # who serves what; loads are read fresh


async def offer(session: AsyncSession) -> Offer:
    program_rows = await session.execute(select(programs))
    community_rows = await session.execute(select(communities))
    return Offer(
        methodists={m.methodist_id: m for m in await all_methodists(session)},
        programs=[program_view(r) for r in program_rows],
        communities=[
            CommunityView(
                r.community_id,
                r.title,
                r.level,
                r.municipality_id,
                tuple(r.subjects),
                tuple(r.competencies),
            )
            for r in community_rows
        ],
    )


async def catalogue(session: AsyncSession, teacher: TeacherView, offered: Offer) -> Catalogue:
    """The registries' offer a route for this teacher may draw on: the shared offer, and
    the sites, mentors and tutors with room now."""
    site_rows = await session.execute(select(sites).where(sites.c.load < sites.c.capacity))
    mentor_rows = await session.execute(
        select(mentors).where(
            mentors.c.load < mentors.c.capacity,
            mentors.c.municipality_id == teacher.municipality_id,
        )
    )
    tutor_rows = await session.execute(select(tutors).where(tutors.c.load < tutors.c.capacity))
    return Catalogue(
        programs=[p for p in offered.programs if teacher.audience in p.audiences],
        sites=[
            SiteView(
                r.site_id, r.title, r.municipality_id, tuple(r.competencies), r.capacity, r.load
            )
            for r in site_rows
        ],
        mentors=[
            MentorView(
                r.mentor_id,
                r.organization_id,
                r.municipality_id,
                tuple(r.subjects),
                r.capacity,
                r.load,
            )
            for r in mentor_rows
        ],
        communities=offered.communities,
        tutors=[
            TutorView(
                r.tutor_id,
                tuple(r.specialisations),
                tuple(r.programs),
                tuple(r.municipalities),
                r.capacity,
                r.load,
            )
            for r in tutor_rows
        ],
    )


async def get_program(session: AsyncSession, program_id: str) -> Any:
    return (
        await session.execute(select(programs).where(programs.c.program_id == program_id))
    ).first()


async def program_by_federal_number(session: AsyncSession, number: str) -> Any:
    return (
        await session.execute(select(programs).where(programs.c.federal_number == number).limit(1))
    ).first()


async def all_methodists(session: AsyncSession) -> list[MethodistView]:
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


async def methodist_loads(session: AsyncSession) -> list[Any]:
    """(methodist_id, capacity, load) of every methodist: cheap, no JSON."""
    query = select(methodists.c.methodist_id, methodists.c.capacity, methodists.c.load)
    return list(await session.execute(query.order_by(methodists.c.methodist_id)))


async def get_methodist(session: AsyncSession, methodist_id: str) -> Any:
    query = select(methodists).where(methodists.c.methodist_id == methodist_id)
    return (await session.execute(query)).first()


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


async def take_seat(session: AsyncSession, kind: str, resource_id: str) -> int | None:
    """Add one to a resource's load if under capacity; the new load, or None if full.

    One conditional UPDATE, so replicas taking seats at once never exceed the capacity.
    """
    table, key = SEATS[kind]
    result = await session.execute(
        update(table)
        .where(table.c[key] == resource_id, table.c.load < table.c.capacity)
        .values(load=table.c.load + 1)
        .returning(table.c.load)
    )
    row = result.first()
    return row.load if row else None


async def free_seat(session: AsyncSession, kind: str, resource_id: str | None) -> None:
    if resource_id is None:
        return
    table, key = SEATS[kind]
    await session.execute(
        update(table)
        .where(table.c[key] == resource_id, table.c.load > 0)
        .values(load=table.c.load - 1)
    )


async def set_loads(session: AsyncSession, kind: str, loads: dict[str, int]) -> None:
    table, key = SEATS[kind]
    for resource_id, load in loads.items():
        await session.execute(update(table).where(table.c[key] == resource_id).values(load=load))


# --- routes --------------------------------------------------------------------------------


async def route_for_diagnosis(session: AsyncSession, diagnosis_id: str) -> Any:
    """The newest route drafted for a diagnosis (a revision may have redrafted it)."""
    query = (
        select(routes)
        .where(routes.c.diagnosis_id == diagnosis_id)
        .order_by(routes.c.created_at.desc())
        .limit(1)
    )
    return (await session.execute(query)).first()


async def open_routes_of(session: AsyncSession, teacher_id: str, *statuses: str) -> list[Any]:
    query = select(routes).where(
        routes.c.teacher_id == teacher_id, routes.c.status.in_(statuses or OPEN)
    )
    return list(await session.execute(query.order_by(routes.c.created_at)))


async def add_route(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(routes).values(**values))


async def change(session: AsyncSession, route_id: str, **values: Any) -> None:
    await session.execute(update(routes).where(routes.c.route_id == route_id).values(**values))


async def get_route(session: AsyncSession, route_id: str, lock: bool = False) -> Any:
    query = select(routes).where(routes.c.route_id == route_id)
    if lock and session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def unassigned(session: AsyncSession, limit: int = 1000) -> list[Any]:
    rows = await session.execute(
        select(routes)
        .where(routes.c.status.in_(OPEN), routes.c.methodist_id.is_(None))
        .order_by(routes.c.created_at)
        .limit(limit)
    )
    return list(rows)


async def open_routes(session: AsyncSession) -> list[Any]:
    """Every route holding (or waiting for) a methodist's seat, oldest first."""
    query = select(
        routes.c.route_id, routes.c.teacher_id, routes.c.methodist_id, routes.c.steps
    ).where(routes.c.status.in_(OPEN))
    return list(await session.execute(query.order_by(routes.c.created_at, routes.c.route_id)))


async def routes_where(session: AsyncSession, *where: Any, limit: int = 1000) -> list[Any]:
    query = select(routes).where(*where).order_by(routes.c.created_at).limit(limit)
    return list(await session.execute(query))


async def teacher_routes(session: AsyncSession, teacher_id: str) -> list[Any]:
    return await routes_where(session, routes.c.teacher_id == teacher_id)


async def due(session: AsyncSession, today: date) -> list[Any]:
    """Agreed routes whose start has come, and active routes past their end date."""
    query = select(routes).where(
        or_(
            (routes.c.status == "agreed") & (routes.c.starts_on <= today),
            (routes.c.status == "active") & (routes.c.ends_on < today),
        )
    )
    if session.get_bind().dialect.name != "sqlite":  # replicas tick at once: each takes its own
        query = query.with_for_update(skip_locked=True)
    return list(await session.execute(query.order_by(routes.c.created_at)))


async def counts(session: AsyncSession) -> dict[str, int]:
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


async def add_course(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(upsert(session, courses, values, keys=["event_id"]))


async def held_courses(
    session: AsyncSession,
    teacher_id: str | None = None,
    program: tuple[str, str | None] | None = None,
    limit: int = 1000,
) -> list[Any]:
    """Held course events, of one teacher or naming one program (id, federal number)."""
    query = select(courses).where(courses.c.status == "held")
    if teacher_id is not None:
        query = query.where(courses.c.teacher_id == teacher_id)
    if program is not None:
        program_id, number = program
        query = query.where(
            or_(courses.c.program_id == program_id, courses.c.federal_number == number)
            if number
            else courses.c.program_id == program_id
        )
    return list(await session.execute(query.order_by(courses.c.received_at).limit(limit)))


async def completed_programs(session: AsyncSession, teacher_id: str) -> set[str]:
    query = select(courses.c.program_id).where(
        courses.c.teacher_id == teacher_id,
        courses.c.kind == "completed",
        courses.c.passed.is_(True),
        courses.c.program_id.isnot(None),
    )
    return {r.program_id for r in await session.execute(query)}


async def course_list(session: AsyncSession, *where: Any, limit: int = 1000) -> list[Any]:
    query = select(courses).where(*where).order_by(courses.c.received_at).limit(limit)
    return list(await session.execute(query))


# --- effectiveness -------------------------------------------------------------------------


async def add_attributions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        await session.execute(
            upsert(session, attributions, row, keys=["diagnosis_id", "route_id", "step_id"])
        )


async def attribution_rows(session: AsyncSession, by: str) -> list[Any]:
    column = attributions.c[by]
    query = select(column.label("key"), attributions.c.change).where(column.isnot(None))
    return list(await session.execute(query))
