"""Monitoring projections: dated members and facts (what the KPIs count), and the read
models the facts need (programs and sites for their themes, management teams, routes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    case,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.monitoring.domain import Fact, Facts, Member
from iomflow.shared.db import new_metadata, upsert
from iomflow.shared.service import Tables

metadata = new_metadata()
tables = Tables(metadata)

members = Table(
    "members",
    metadata,
    Column("kind", String(20), primary_key=True),  # teachers | organizations
    Column("member_id", String(100), primary_key=True),
    Column("municipality_id", String(100), nullable=False, index=True),
    Column("organization_id", String(100), nullable=False),
    Column("attrs", JSON, nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=True),
)

facts = Table(
    "facts",
    metadata,
    Column("fact_id", String(200), primary_key=True),
    Column("kind", String(40), nullable=False, index=True),
    Column("member_id", String(100), nullable=False, index=True),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=True),
    Column("attrs", JSON, nullable=False),
    Column("key", String(100), nullable=True, index=True),  # what ends it: a route id
)

municipalities = Table(
    "municipalities",
    metadata,
    Column("municipality_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("remote", Boolean, nullable=False, server_default="0"),
)

organizations = Table(
    "organizations",
    metadata,
    Column("organization_id", String(100), primary_key=True),
    Column("municipality_id", String(100), nullable=False),
    Column("name", String(500), nullable=False),
    Column("at_risk", Boolean, nullable=False),
)

programs = Table(
    "programs",
    metadata,
    Column("program_id", String(100), primary_key=True),
    Column("federal_registry", Boolean, nullable=False),
    Column("themes", JSON, nullable=False),
    Column("kind", String(10), nullable=False),
)

sites = Table(
    "internship_sites",
    metadata,
    Column("site_id", String(100), primary_key=True),
    Column("themes", JSON, nullable=False),
)

management = Table(
    "management_members",
    metadata,
    Column("member_id", String(100), primary_key=True),
    Column("teacher_id", String(100), nullable=False, index=True),
    Column("organization_id", String(100), nullable=False),
)

methodists = Table(
    "methodists",
    metadata,
    Column("methodist_id", String(100), primary_key=True),
    Column("capacity", Integer, nullable=False),
)

stale = Table(
    "stale_registries",
    metadata,
    Column("registry", String(100), primary_key=True),
    Column("owner", String(200), primary_key=True),
    Column("stale", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(300), primary_key=True),
    Column("kind", String(40), nullable=False, index=True),
    Column("severity", String(20), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("municipality_id", String(100), nullable=True),
    Column("message", String(2000), nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True, index=True),
)

PROJECTIONS = (
    members,
    facts,
    municipalities,
    organizations,
    programs,
    sites,
    management,
    methodists,
    stale,
)
"""Everything a rebuild empties and fills again from the streams."""


# --- read models ---------------------------------------------------------------------------


async def save(session: AsyncSession, table: Table, values: dict[str, Any], key: str) -> None:
    await session.execute(upsert(session, table, values, keys=[key]))


async def municipality_names(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(municipalities.c.municipality_id, municipalities.c.name))
    return {k: v for k, v in rows.all()}


async def organization_names(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(organizations.c.organization_id, organizations.c.name))
    return {k: v for k, v in rows.all()}


# --- members -------------------------------------------------------------------------------


async def save_member(
    session: AsyncSession,
    kind: str,
    member_id: str,
    municipality_id: str,
    organization_id: str,
    attrs: dict[str, Any],
    at: datetime,
) -> None:
    """A member appears (from ``at``) or changes its attributes, keeping when it first came;
    one statement."""
    dialect = session.get_bind().dialect.name
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(members).values(
        kind=kind,
        member_id=member_id,
        municipality_id=municipality_id,
        organization_id=organization_id,
        attrs=attrs,
        start=at,
        end=None,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["kind", "member_id"],
            set_={
                "municipality_id": stmt.excluded.municipality_id,
                "organization_id": stmt.excluded.organization_id,
                "attrs": stmt.excluded.attrs,
                "start": case(
                    (members.c.start < stmt.excluded.start, members.c.start),
                    else_=stmt.excluded.start,
                ),
                "end": None,
            },
        )
    )


async def end_member(session: AsyncSession, kind: str, member_id: str, at: datetime) -> None:
    await session.execute(
        update(members)
        .where(members.c.kind == kind, members.c.member_id == member_id, members.c.end.is_(None))
        .values(end=at)
    )


# --- facts ---------------------------------------------------------------------------------


async def add_fact(
    session: AsyncSession,
    fact_id: str,
    kind: str,
    member_id: str,
    at: datetime,
    attrs: dict[str, Any] | None = None,
    key: str | None = None,
) -> None:
    """A fact begins. Said again while it holds (a registry resync), it keeps when it
    began; said again after it ended, it begins anew."""
    dialect = session.get_bind().dialect.name
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(facts).values(
        fact_id=fact_id,
        kind=kind,
        member_id=member_id,
        start=at,
        end=None,
        attrs=attrs or {},
        key=key,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["fact_id"],
            set_={
                "member_id": stmt.excluded.member_id,
                "attrs": stmt.excluded.attrs,
                "key": stmt.excluded.key,
                "start": case(
                    (
                        (facts.c.end.is_(None)) & (facts.c.start < stmt.excluded.start),
                        facts.c.start,
                    ),
                    else_=stmt.excluded.start,
                ),
                "end": None,
            },
        )
    )


async def end_facts(session: AsyncSession, at: datetime, *where: Any) -> None:
    """Facts matching ``where`` that still hold stop holding at ``at``."""
    await session.execute(update(facts).where(facts.c.end.is_(None), *where).values(end=at))


async def drop_facts(session: AsyncSession, *where: Any) -> None:
    await session.execute(delete(facts).where(*where))


TEAM_THEMES = {"management", "quality_assessment"}
"""A school director's or deputy's training on these themes trains the school's team."""


async def load(session: AsyncSession) -> Facts:
    """Every member and fact, for evaluation, joined with what the registries say now:
    a teacher's school at risk, a completed program's themes and registry, a management
    member's school (whose team a trained manager trains)."""
    at_risk = {
        r.organization_id
        for r in await session.execute(
            select(organizations.c.organization_id).where(organizations.c.at_risk.is_(True))
        )
    }
    taught = {r.program_id: r for r in await session.execute(select(programs))}
    schools: dict[str, set[str]] = {}
    for r in await session.execute(select(management)):
        schools.setdefault(r.teacher_id, set()).add(r.organization_id)
    member_rows = await session.execute(select(members))
    loaded = [
        Member(
            r.kind,
            r.member_id,
            r.municipality_id,
            r.organization_id,
            {**r.attrs, "school_at_risk": r.organization_id in at_risk}
            if r.kind == "teachers"
            else r.attrs,
            _aware(r.start),
            _aware(r.end),
        )
        for r in member_rows
    ]
    found: list[Fact] = []
    for r in await session.execute(select(facts)):
        attrs = dict(r.attrs)
        if r.kind == "trained" and attrs.get("program_id") in taught:
            program = taught[attrs["program_id"]]
            attrs.update(
                federal_registry=program.federal_registry,
                themes=program.themes,
                program_kind=program.kind,
            )
            if TEAM_THEMES & set(program.themes):
                found += [
                    Fact("team_trained", school, _aware(r.start), {"by": r.member_id})
                    for school in schools.get(r.member_id, ())
                ]
        found.append(Fact(r.kind, r.member_id, _aware(r.start), attrs, _aware(r.end)))
    return Facts(loaded, found)


async def signature(session: AsyncSession) -> tuple[Any, ...]:
    """Changes whenever a fact or member is added, ended or dropped (cheap aggregates)."""
    f = (
        await session.execute(select(func.count(), func.max(facts.c.start), func.max(facts.c.end)))
    ).one()
    m = (
        await session.execute(
            select(func.count(), func.max(members.c.start), func.max(members.c.end))
        )
    ).one()
    return (*f, *m)


def _aware(value: datetime | None) -> Any:
    """SQLite gives naive datetimes back: they were stored in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def counts(session: AsyncSession) -> dict[str, int]:
    """Cheap counts for polling: teachers in the registry now, teachers ever diagnosed,
    teachers with a route and with a methodist now, and facts by kind."""

    async def distinct(kind: str, current: bool) -> int:
        query = select(func.count(func.distinct(facts.c.member_id))).where(facts.c.kind == kind)
        if current:
            query = query.where(facts.c.end.is_(None))
        return int((await session.execute(query)).scalar_one())

    rows = await session.execute(select(facts.c.kind, func.count()).group_by(facts.c.kind))
    teachers = (
        await session.execute(
            select(func.count()).where(members.c.kind == "teachers", members.c.end.is_(None))
        )
    ).scalar_one()
    return {
        "teachers": int(teachers),
        "diagnosed": await distinct("diagnosed", False),
        "with_route": await distinct("route", True),
        "supported": await distinct("support", True),
        **{f"facts_{k}": int(n) for k, n in rows.all()},
    }


async def empty(session: AsyncSession) -> None:
    """Drop every projection (a rebuild fills them again)."""
    for table in PROJECTIONS:
        await session.execute(delete(table))


# --- alerts --------------------------------------------------------------------------------


async def capacities(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(methodists.c.methodist_id, methodists.c.capacity))
    return {k: v for k, v in rows.all()}


async def save_stale(
    session: AsyncSession, registry: str, owner: str, count: int, total: int, at: datetime
) -> None:
    await session.execute(
        upsert(
            session,
            stale,
            {"registry": registry, "owner": owner, "stale": count, "total": total, "at": at},
            keys=["registry", "owner"],
        )
    )


async def stale_registers(session: AsyncSession) -> list[Any]:
    return list(await session.execute(select(stale).where(stale.c.stale > 0)))


async def open_alerts(session: AsyncSession) -> dict[str, Any]:
    rows = await session.execute(select(alerts).where(alerts.c.resolved_at.is_(None)))
    return {r.alert_id: r for r in rows}


async def raise_alert(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(upsert(session, alerts, values, keys=["alert_id"]))


async def resolve_alert(session: AsyncSession, alert_id: str, at: datetime) -> None:
    await session.execute(
        update(alerts).where(alerts.c.alert_id == alert_id).values(resolved_at=at)
    )


async def list_alerts(session: AsyncSession, open_only: bool, limit: int) -> list[Any]:
    query = select(alerts).order_by(alerts.c.raised_at.desc()).limit(limit)
    if open_only:
        query = query.where(alerts.c.resolved_at.is_(None))
    return list(await session.execute(query))
