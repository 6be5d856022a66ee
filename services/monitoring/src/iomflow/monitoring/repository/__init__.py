"""Monitoring projections: dated members and facts (what the KPIs count), the read models
the facts need (programs and sites for their themes, management teams), the marks that say
the projections changed, and the KPI snapshot computed from them.

Writing members and facts in batches is ``repository.writes``; this module reads
them (``load``: every member and fact, only the columns evaluation needs, turned into
domain objects in a worker thread) and keeps the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    cast,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.monitoring.domain import Fact, Facts, Member
from iomflow.shared.db import new_metadata, upsert, upsert_many
from iomflow.shared.service import Tables

metadata = new_metadata()
tables = Tables(metadata, auth=True)  # operators record tracked items (``/v1/tracked``)

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
    Column("key", String(100), nullable=True),  # what ends it: a route id
    # Ends name the key and often the kind ("support" of a route): with an index of the kind
    # alone SQLite's planner scans every fact of that kind for each route.
    Index("ix_facts_key_kind", "key", "kind"),
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
    Column("pedagogical", Boolean, nullable=True),
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

tracked = Table(
    "tracked_evidence",
    metadata,
    Column("code", String(100), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("evidence", Text, nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
"""What an operator recorded of a tracked item of Appendix 1 (``domain.Tracked``), per period."""

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
    # An operator saw it (the console): who and when; cleared when it is raised again.
    Column("acknowledged_by", String(200), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
)

changes = Table(
    "changes",
    metadata,
    # One row per consumer (replica) and stream: replicas never wait on each other's row.
    Column("consumer", String(200), primary_key=True),
    Column("stream", String(200), primary_key=True),
    Column("changes", BigInteger, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
"""Marks, written with the projections they mark: the projections changed. Their count,
sum and latest time are the projections' ``signature``."""

snapshots = Table(
    "kpi_snapshots",
    metadata,
    Column("name", String(40), primary_key=True),  # "region": /v1/kpis as of today
    Column("as_of", Date, nullable=False),
    Column("version", String(200), nullable=False),  # the signature it was computed at
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("answer", JSON, nullable=False),
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
    changes,
    snapshots,
)
"""Everything a rebuild empties and fills again from the streams."""


def _insert(session: AsyncSession) -> Any:
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert


# --- read models ---------------------------------------------------------------------------


async def municipality_names(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(municipalities.c.municipality_id, municipalities.c.name))
    return {k: v for k, v in rows.all()}


async def organization_names(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(select(organizations.c.organization_id, organizations.c.name))
    return {k: v for k, v in rows.all()}


# --- what changed ---------------------------------------------------------------------------


async def mark(session: AsyncSession, consumer: str, stream: str, at: datetime) -> None:
    """The projections changed (in this transaction): one statement."""
    stmt = _insert(session)(changes).values(
        consumer=consumer, stream=stream, changes=1, changed_at=at
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["consumer", "stream"],
            set_={"changes": changes.c.changes + 1, "changed_at": stmt.excluded.changed_at},
        )
    )


async def signature(session: AsyncSession) -> str:
    """Changes whenever the projections do (and when a rebuild empties them): read from the
    marks, a few rows, not from the facts."""
    n, total, last = (
        await session.execute(
            select(func.count(), func.sum(changes.c.changes), func.max(changes.c.changed_at))
        )
    ).one()
    return f"{n}:{total or 0}:{last}"


async def tracked_evidence(session: AsyncSession) -> dict[tuple[str, str], dict[str, Any]]:
    rows = await session.execute(select(tracked))
    return {(r.code, r.period): dict(r._mapping) for r in rows}


async def record_tracked(session: AsyncSession, row: Mapping[str, Any]) -> None:
    """Upsert what an operator recorded for a tracked item's period."""
    stmt = _insert(session)(tracked).values(**row)
    others = {c: stmt.excluded[c] for c in ("status", "evidence", "recorded_by", "recorded_at")}
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["code", "period"], set_=others)
    )


async def teams_without_members(session: AsyncSession) -> list[str]:
    """Schools whose team fact still holds with no management member left."""
    query = select(facts.c.member_id).where(
        facts.c.kind == "team",
        facts.c.end.is_(None),
        facts.c.member_id.not_in(select(management.c.organization_id)),
    )
    return sorted((await session.execute(query)).scalars())


# --- loading for evaluation ----------------------------------------------------------------

TEAM_THEMES = {"management", "quality_assessment"}
"""A school's management team is trained when each of its members (director, deputies)
has completed training on these themes."""


@dataclass(frozen=True)
class Rows:
    """Members and facts as read, before they become domain objects (``build``)."""

    members: Sequence[Any]
    facts: Sequence[Any]
    at_risk: set[str]
    taught: Mapping[str, tuple[bool, list[str], str, bool | None]]
    teams: Mapping[str, set[str]]
    """A school's management team now: organisation -> its members' teacher ids."""
    sites: Mapping[str, list[str]] = field(default_factory=dict)
    """An internship site -> the themes it teaches."""

    def build(self) -> Facts:
        """The domain's ``Facts``: CPU only, for a worker thread. Equal attribute texts are
        parsed once and their dicts shared (most are: a teacher's audience and subjects,
        a support's methodist, a completion's program).

        Some facts are derived here from the stored ones and what the registries say now:
        - a completion's program (or internship site) gives it its themes, registry and kind;
        - ``tutor``: a route's tutor counts from when the route is agreed (a tutor named on
          a draft supports no one yet);
        - ``team_trained``: a school's team from when its last member completed training on
          the team's themes;
        - a route drafted from a diagnosis counts from the diagnosis's day at the latest
          (drafting follows it at once; a history loaded later keeps its dates);
        - a route step done (a consultation, a community) has the purpose its draft gave
          it (``burnout_prevention`` or ``deficit``);
        - a contest entry is dated by its contest (its day, or its year's first), whichever
          of the two the registries' stream brought first."""
        loads = json.loads
        parsed: dict[str, Any] = {"{}": {}}
        # SQLite keeps UTC times as naive text; PostgreSQL's come as aware datetimes.
        text_times = any(isinstance(row[5], str) for row in self.members[:1]) or any(
            isinstance(row[2], str) for row in self.facts[:1]
        )
        parse = datetime.fromisoformat

        def time_of(value: Any) -> Any:
            if value is None:
                return None
            return parse(value + "+00:00") if text_times else _aware(value)

        shared: dict[Any, Mapping[str, Any]] = {}
        at_risk = self.at_risk
        loaded = []
        for kind, member_id, mun, org, text, start, end in self.members:
            attrs = parsed.get(text)
            if attrs is None:
                attrs = parsed[text] = loads(text)
            if kind == "teachers":
                risky = org in at_risk
                found = shared.get((text, risky))
                if found is None:
                    found = shared[(text, risky)] = {**attrs, "school_at_risk": risky}
                attrs = found
            loaded.append(Member(kind, member_id, mun, org, attrs, time_of(start), time_of(end)))
        facts: list[Fact] = []
        append = facts.append
        taught, sites = self.taught, self.sites
        managers = {t for members in self.teams.values() for t in members}
        team_trained: dict[str, datetime] = {}  # a manager -> first team-themed training
        planned: dict[str, Fact] = {}  # route -> its tutors, as drafted
        agreed: dict[str, datetime] = {}  # route -> when agreed
        diagnosed: dict[str, datetime] = {}  # diagnosis -> its day
        routes: list[Fact] = []
        prevention: set[tuple[str, str]] = set()  # (route, step) drafted for prevention
        steps_done: list[Fact] = []
        contests: dict[str, datetime] = {}  # contest -> its day
        entries: list[Fact] = []
        for kind, member_id, start, end, text, key in self.facts:
            attrs = parsed.get(text)
            if attrs is None:
                attrs = parsed[text] = loads(text)
            if text_times:
                began = parse(start + "+00:00")
                ended = None if end is None else parse(end + "+00:00")
            else:
                began, ended = _aware(start), _aware(end)
            if kind == "trained":
                program, site = attrs.get("program_id"), attrs.get("site_id")
                if program in taught:
                    found = shared.get((text, program))
                    if found is None:
                        federal, themes, program_kind, pedagogical = taught[program]
                        found = shared[(text, program)] = {
                            **attrs,
                            "federal_registry": federal,
                            "themes": themes,
                            "program_kind": program_kind,
                            "pedagogical": pedagogical,
                        }
                    attrs = found
                elif site in sites:
                    found = shared.get((text, site))
                    if found is None:
                        found = shared[(text, site)] = {**attrs, "themes": sites[site]}
                    attrs = found
                if member_id in managers and TEAM_THEMES & set(attrs.get("themes", ())):
                    first = team_trained.get(member_id)
                    team_trained[member_id] = began if first is None else min(first, began)
            elif kind == "tutor_planned":
                planned[key] = Fact("tutor", member_id, began, attrs, ended)
                continue
            elif kind == "agreed":
                agreed[key] = began
            elif kind == "diagnosed" and key is not None:
                diagnosed[key] = began
            elif kind == "route" and "diagnosis_id" in attrs:
                routes.append(Fact(kind, member_id, began, attrs, ended))
                continue
            elif kind == "prevention_planned":
                prevention.update((key, step) for step in attrs.get("steps", ()))
            elif kind == "step_done":
                steps_done.append(Fact(kind, member_id, began, attrs, ended))
                continue
            elif kind == "contest":
                contests[member_id] = began
            elif kind == "contest_entry":
                entries.append(Fact(kind, member_id, began, attrs, ended))
                continue
            append(Fact(kind, member_id, began, attrs, ended))
        for step in steps_done:
            purpose = (
                "burnout_prevention"
                if (step.attrs.get("route_id"), step.attrs.get("step_id")) in prevention
                else "deficit"
            )
            step.attrs = {**step.attrs, "purpose": purpose}
            append(step)
        for entry in entries:
            day = contests.get(entry.attrs.get("contest_id", ""))
            if day is not None:
                entry.start = day
            append(entry)
        for route in routes:
            day = diagnosed.get(route.attrs["diagnosis_id"])
            if day is not None and day < route.start:
                route.start = day
            append(route)
        for route_id, tutor in planned.items():
            since = agreed.get(route_id)
            if since is not None and (tutor.end is None or since < tutor.end):
                tutor.start = max(tutor.start, since)
                append(tutor)
        for school, team in self.teams.items():
            days = [team_trained.get(t) for t in team]
            if team and None not in days:
                append(Fact("team_trained", school, max(d for d in days if d is not None), {}))
        return Facts(loaded, facts)


async def _all(session: AsyncSession, query: Any) -> Sequence[Any]:
    """Every row of ``query`` (no parameters) as the driver gives them: for 200,000 rows
    SQLAlchemy's own rows cost as much again as reading them, and on the event loop."""
    connection = await session.connection()  # in the session's transaction
    sql = str(query.compile(dialect=connection.dialect))
    raw: Any = (await connection.get_raw_connection()).driver_connection
    if connection.dialect.name == "sqlite":  # aiosqlite: read in its own thread
        cursor = await raw.execute(sql)
        return await cursor.fetchall()  # type: ignore[no-any-return]
    return await raw.fetch(sql)  # type: ignore[no-any-return]  # asyncpg


async def fetch(session: AsyncSession) -> Rows:
    """Every member and fact, joined (when built) with what the registries say now: a
    teacher's school at risk, a completed program's themes and registry, a management
    member's school (whose team a trained manager trains).

    Only the columns evaluation reads, as they are stored (JSON as text, SQLite's times as
    text) and as the driver gives them: ``Rows.build`` turns 200,000 of them into domain
    objects in a worker thread, so neither the event loop nor the session's connection
    (SQLite's one) waits for it."""
    at_risk = set(
        (
            await session.execute(
                select(organizations.c.organization_id).where(organizations.c.at_risk.is_(True))
            )
        ).scalars()
    )
    taught = {
        r.program_id: (r.federal_registry, list(r.themes), r.kind, r.pedagogical)
        for r in await session.execute(select(programs))
    }
    teams: dict[str, set[str]] = {}
    for teacher_id, organization_id in await session.execute(
        select(management.c.teacher_id, management.c.organization_id)
    ):
        teams.setdefault(organization_id, set()).add(teacher_id)
    themes_of_site = {r.site_id: list(r.themes) for r in await session.execute(select(sites))}
    m, f = members.c, facts.c
    member_rows = await _all(
        session,
        select(
            m.kind,
            m.member_id,
            m.municipality_id,
            m.organization_id,
            cast(m.attrs, Text),
            m.start,
            m.end,
        ),
    )
    fact_rows = await _all(
        session, select(f.kind, f.member_id, f.start, f.end, cast(f.attrs, Text), f.key)
    )
    return Rows(member_rows, fact_rows, at_risk, taught, teams, themes_of_site)


async def load(session: AsyncSession) -> Facts:
    """``fetch`` and ``Rows.build`` (in a worker thread)."""
    rows = await fetch(session)
    return await asyncio.to_thread(rows.build)


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


# --- the KPI snapshot ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A stored snapshot's heading (its answer is read only when it is needed)."""

    as_of: date
    version: str
    computed_at: datetime


async def snapshot_heading(session: AsyncSession, name: str) -> Stored | None:
    s = snapshots.c
    row = (
        await session.execute(select(s.as_of, s.version, s.computed_at).where(s.name == name))
    ).one_or_none()
    return None if row is None else Stored(row.as_of, row.version, _aware(row.computed_at))


async def snapshot_answer(session: AsyncSession, name: str, version: str) -> Any:
    """The stored answer if it is still of ``version`` (None if another replaced it)."""
    s = snapshots.c
    found = await session.execute(select(s.answer).where(s.name == name, s.version == version))
    return found.scalar_one_or_none()


async def save_snapshot(
    session: AsyncSession, name: str, stored: Stored, answer: Mapping[str, Any]
) -> None:
    await session.execute(
        upsert(
            session,
            snapshots,
            {
                "name": name,
                "as_of": stored.as_of,
                "version": stored.version,
                "computed_at": stored.computed_at,
                "answer": answer,
            },
            keys=["name"],
        )
    )


# --- alerts --------------------------------------------------------------------------------


async def capacities(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(methodists.c.methodist_id, methodists.c.capacity))
    return {k: v for k, v in rows.all()}


async def save_stale(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Registries' stale counts, one statement (the last of a register and owner wins)."""
    last = {(r["registry"], r["owner"]): r for r in rows}
    if last:
        await upsert_many(session, stale, list(last.values()), keys=["registry", "owner"])


async def stale_registers(session: AsyncSession) -> list[Any]:
    return list(await session.execute(select(stale).where(stale.c.stale > 0)))


async def open_alerts(session: AsyncSession) -> dict[str, Any]:
    rows = await session.execute(select(alerts).where(alerts.c.resolved_at.is_(None)))
    return {r.alert_id: r for r in rows}


async def raise_alerts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await upsert_many(session, alerts, rows, keys=["alert_id"])


async def resolve_alerts(session: AsyncSession, alert_ids: list[str], at: datetime) -> None:
    if alert_ids:
        await session.execute(
            update(alerts).where(alerts.c.alert_id.in_(alert_ids)).values(resolved_at=at)
        )


async def acknowledge_alert(
    session: AsyncSession, alert_id: str, by: str, at: datetime
) -> Any | None:
    """Mark an open alert as seen by ``by`` at ``at`` (the first acknowledgement holds);
    the alert's row, or None when there is no such open alert."""
    await session.execute(
        update(alerts)
        .where(
            alerts.c.alert_id == alert_id,
            alerts.c.resolved_at.is_(None),
            alerts.c.acknowledged_at.is_(None),
        )
        .values(acknowledged_by=by, acknowledged_at=at)
    )
    row = (
        await session.execute(
            select(alerts).where(alerts.c.alert_id == alert_id, alerts.c.resolved_at.is_(None))
        )
    ).first()
    return row


async def list_alerts(
    session: AsyncSession, open_only: bool, limit: int, offset: int = 0
) -> tuple[list[Any], int]:
    """A page of the alerts (only the open ones, or all), newest first, and how many
    there are in all."""
    where = [alerts.c.resolved_at.is_(None)] if open_only else []
    counted = select(func.count()).select_from(alerts).where(*where)
    total = int((await session.execute(counted)).scalar_one())
    if offset >= total:  # past the end: nothing (and no OFFSET beyond what SQL can take)
        return [], total
    query = (
        select(alerts)
        .where(*where)
        .order_by(alerts.c.raised_at.desc(), alerts.c.alert_id)
        .offset(offset)
        .limit(limit)
    )
    return list(await session.execute(query)), total


async def open_alerts_by_kind(session: AsyncSession) -> dict[str, int]:
    """How many alerts are open, by kind."""
    rows = await session.execute(
        select(alerts.c.kind, func.count())
        .where(alerts.c.resolved_at.is_(None))
        .group_by(alerts.c.kind)
    )
    return {kind: int(n) for kind, n in rows.all()}
