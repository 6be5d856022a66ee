"""Diagnostics tables and queries: read models of the registries, campaigns, results as
submitted (immutable), results held for teachers not yet known, diagnoses and their
per-competency levels (what the analytics count).

One vocabulary, the session first: ``get_x(session, id)`` one aggregate or None;
``find_x(session, keys)`` what a batch needs, set-based; ``list_x`` a page for reading;
``add_x`` new rows (multi-row), ``save_x`` changed aggregates, ``remove_x``. Campaigns and
diagnoses come back as ``domain.Campaign`` / ``domain.Diagnosis``; the rest as rows."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics.domain import INSTRUMENTS, Campaign, Diagnosis, utc
from iomflow.shared.contracts import BurnoutResult, CompetencyChange, CompetencyResult, Level
from iomflow.shared.db import JSONText, RawJSON, new_metadata
from iomflow.shared.publishers import IngestTables
from iomflow.shared.service import Tables

RESULT_TYPE = "diagnostics.result.submitted"
NEEDS_TYPE = "diagnostics.needs.submitted"

metadata = new_metadata()
tables = Tables(metadata, auth=True)
ingest_tables = IngestTables(metadata)  # publishers posting events over HTTP, the audit

# --- read models of the registries ---------------------------------------------------------

teachers = Table(
    "teachers",
    metadata,
    Column("teacher_id", String(100), primary_key=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False, index=True),
    Column("audience", String(20), nullable=False, server_default="general"),
    Column("subjects", JSON, nullable=False, server_default="[]"),
    Column("is_manager", Boolean, nullable=False, server_default="0"),
    # the burnout analytics' breakdowns (None: announced before they were kept)
    Column("age_band", String(10), nullable=True),
    Column("experience_band", String(10), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

municipalities = Table(
    "municipalities",
    metadata,
    Column("municipality_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
)

organizations = Table(
    "organizations",
    metadata,
    Column("organization_id", String(100), primary_key=True),
    Column("municipality_id", String(100), nullable=False),
    Column("name", String(500), nullable=False),
    Column("kind", String(20), nullable=False),
)

programs = Table(
    "programs",
    metadata,
    Column("program_id", String(100), primary_key=True),
    Column("title", String(500), nullable=False),
    Column("federal_registry", Boolean, nullable=False),
    Column("competencies", JSON, nullable=False),
    Column("themes", JSON, nullable=False),
    Column("audiences", JSON, nullable=False),
)

# --- our own data --------------------------------------------------------------------------

frameworks = Table(
    "frameworks",
    metadata,
    Column("version", String(40), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("starts_on", Date, nullable=True),
    Column("ends_on", Date, nullable=True),
    Column("municipalities", JSON, nullable=False),
    Column("organizations", JSON, nullable=False),
    Column("required", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # open | closed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
)

results = Table(
    "results",
    metadata,
    Column("result_id", String(36), primary_key=True),  # the event id
    Column("teacher_id", String(100), nullable=False),
    Column("campaign_id", String(100), nullable=False),
    Column("instrument", String(40), nullable=False),
    Column("expert_id", String(100), nullable=True),
    Column("external_id", String(200), nullable=True),
    Column("submitted", JSONText, nullable=False),  # the payload exactly as it came
    Column("scores", JSON, nullable=False),  # 0..100 per competency (or burnout scale)
    Column("source", String(200), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_results_teacher_campaign", "teacher_id", "campaign_id"),
    Index("ix_results_campaign", "campaign_id"),
    UniqueConstraint("source", "external_id", name="uq_results_external_id"),
)

held = Table(
    "held_results",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("teacher_id", String(100), nullable=False, index=True),
    Column("campaign_id", String(100), nullable=False),
    Column("fields", JSON, nullable=False),  # the stream entry, to dead-letter it as it came
    # what is held: a result or a needs answer (diagnostics.needs.submitted)
    Column("type", String(60), nullable=False, server_default="diagnostics.result.submitted"),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("hold_until", DateTime(timezone=True), nullable=False, index=True),
)

diagnoses = Table(
    "diagnoses",
    metadata,
    Column("diagnosis_id", String(36), primary_key=True),
    Column("teacher_id", String(100), nullable=False),
    Column("campaign_id", String(100), nullable=False, index=True),
    Column("organization_id", String(100), nullable=False),
    Column("municipality_id", String(100), nullable=False),
    Column("status", String(20), nullable=False),  # completed | cancelled
    Column("latest", Boolean, nullable=False),  # the teacher's current diagnosis
    Column("framework_version", String(40), nullable=False),
    Column("rule", String(60), nullable=False),
    Column("instruments", JSON, nullable=False),
    Column("completed_by", String(20), nullable=False),
    Column("competencies", JSONText, nullable=False),
    Column("deficits", JSONText, nullable=False),
    Column("deficit_count", Integer, nullable=False),
    Column("burnout", JSON, nullable=True),
    Column("previous_diagnosis_id", String(36), nullable=True),
    Column("changes", JSONText, nullable=False),
    # when its latest evidence was taken (a history loaded later is dated by it)
    Column("evidence_at", DateTime(timezone=True), nullable=True),
    Column("revision", Integer, nullable=False),
    Column("history", JSON, nullable=False),  # earlier revisions, as they were
    Column("completed_at", DateTime(timezone=True), nullable=False),
    Column("revised_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    Column("cancel_reason", String(500), nullable=True),
    UniqueConstraint("teacher_id", "campaign_id"),
    Index("ix_diagnoses_teacher_latest", "teacher_id", "latest"),
)

needs = Table(
    "needs",
    metadata,
    Column("response_id", String(36), primary_key=True),  # the event id
    Column("teacher_id", String(100), nullable=False),
    Column("organization_id", String(100), nullable=False),  # where the teacher worked then
    Column("municipality_id", String(100), nullable=False),
    Column("campaign_id", String(100), nullable=False),
    Column("external_id", String(200), nullable=True),
    Column("source", String(200), nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=False),
    Column("answered_on", Date, nullable=False),
    Column("competencies", JSON, nullable=False),
    Column("themes", JSON, nullable=False),
    Column("formats", JSON, nullable=False),
    Column("submitted", JSONText, nullable=False),  # the payload exactly as it came
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_needs_campaign", "campaign_id"),
    Index("ix_needs_teacher", "teacher_id"),
    UniqueConstraint("source", "external_id", name="uq_needs_external_id"),
)
"""Answers to the questionnaire of educational needs and requests (no diagnosis: counted
beside the program gap)."""

levels = Table(
    "competency_levels",
    metadata,
    Column("diagnosis_id", String(36), primary_key=True),
    Column("code", String(100), primary_key=True),
    Column("score", Float, nullable=False),
    Column("level", String(20), nullable=False),
    Column("deficit", Boolean, nullable=False),
    Index("ix_competency_levels_code", "code"),
)

# --- read models -----------------------------------------------------------------------------


def _locked(session: AsyncSession, query: Any) -> Any:
    """``FOR UPDATE`` on PostgreSQL (SQLite has one writer: nothing to lock)."""
    return query.with_for_update() if session.get_bind().dialect.name == "postgresql" else query


async def find_teachers(
    session: AsyncSession, teacher_ids: Collection[str], *, lock: bool = False
) -> dict[str, Any]:
    """The teachers of ``teacher_ids`` the registries announced, by id. ``lock``: their rows
    are locked (PostgreSQL), in id order, until the transaction ends: two replicas deciding
    for one teacher then take turns, the second seeing what the first wrote."""
    if not teacher_ids:
        return {}
    query = (
        select(
            teachers.c.teacher_id,
            teachers.c.organization_id,
            teachers.c.municipality_id,
            teachers.c.audience,
            teachers.c.is_manager,
        )
        .where(teachers.c.teacher_id.in_(sorted(teacher_ids)))
        .order_by(teachers.c.teacher_id)
    )
    rows = await session.execute(_locked(session, query) if lock else query)
    return {row.teacher_id: row for row in rows}


async def all_rows(session: AsyncSession, table: Table) -> list[Any]:
    return list(await session.execute(select(table)))


# --- frameworks ------------------------------------------------------------------------------


async def get_framework(session: AsyncSession, version: str) -> Any:
    """The document of one framework version (JSON), or None."""
    return (
        await session.execute(select(frameworks.c.document).where(frameworks.c.version == version))
    ).scalar()


async def add_framework(session: AsyncSession, version: str, document: Any, at: datetime) -> None:
    await session.execute(
        insert(frameworks).values(version=version, document=document, loaded_at=at)
    )


async def list_frameworks(session: AsyncSession) -> list[Any]:
    """(version, loaded_at) of every framework version, oldest first."""
    rows = await session.execute(
        select(frameworks.c.version, frameworks.c.loaded_at).order_by(frameworks.c.loaded_at)
    )
    return list(rows)


# --- campaigns -------------------------------------------------------------------------------


def _campaign(row: Any) -> Campaign:
    return Campaign(
        campaign_id=row.campaign_id,
        name=row.name,
        starts_on=row.starts_on,
        ends_on=row.ends_on,
        municipalities=list(row.municipalities),
        organizations=list(row.organizations),
        required=[INSTRUMENTS[i] for i in row.required],
        status=row.status,
        created_at=utc(row.created_at),
        closed_at=utc(row.closed_at) if row.closed_at else None,
    )


def _campaign_columns(campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "starts_on": campaign.starts_on,
        "ends_on": campaign.ends_on,
        "municipalities": list(campaign.municipalities),
        "organizations": list(campaign.organizations),
        "required": [i.value for i in campaign.required],
        "status": campaign.status,
        "created_at": campaign.created_at,
        "closed_at": campaign.closed_at,
    }


async def get_campaign(session: AsyncSession, campaign_id: str) -> Campaign | None:
    row = (
        await session.execute(select(campaigns).where(campaigns.c.campaign_id == campaign_id))
    ).first()
    return None if row is None else _campaign(row)


async def find_campaigns(
    session: AsyncSession, campaign_ids: Collection[str]
) -> dict[str, Campaign]:
    rows = await session.execute(
        select(campaigns).where(campaigns.c.campaign_id.in_(sorted(campaign_ids)))
    )
    return {row.campaign_id: _campaign(row) for row in rows}


async def list_campaigns(session: AsyncSession) -> list[Campaign]:
    rows = await session.execute(select(campaigns).order_by(campaigns.c.created_at))
    return [_campaign(row) for row in rows]


async def add_campaign(session: AsyncSession, campaign: Campaign) -> None:
    await session.execute(insert(campaigns).values(**_campaign_columns(campaign)))


async def save_campaign(session: AsyncSession, campaign: Campaign) -> None:
    """Write what may change of a campaign: its status and when it closed."""
    await session.execute(
        update(campaigns)
        .where(campaigns.c.campaign_id == campaign.campaign_id)
        .values(status=campaign.status, closed_at=campaign.closed_at)
    )


def _in_target(campaign: Campaign) -> list[Any]:
    """``Campaign.includes`` as conditions on ``teachers`` (empty lists: the region)."""
    conditions = []
    if campaign.municipalities:
        conditions.append(teachers.c.municipality_id.in_(campaign.municipalities))
    if campaign.organizations:
        conditions.append(teachers.c.organization_id.in_(campaign.organizations))
    return conditions


async def progress(session: AsyncSession, campaign: Campaign) -> dict[str, dict[str, int]]:
    """Per municipality: teachers expected, with a result, completed diagnoses, held."""
    out: dict[str, dict[str, int]] = {}

    def bump(rows: Iterable[Any], what: str) -> None:
        for municipality_id, count in rows:
            row = out.setdefault(
                municipality_id, {"expected": 0, "submitted": 0, "completed": 0, "held": 0}
            )
            row[what] += count

    cid = campaign.campaign_id
    bump(
        await session.execute(
            select(teachers.c.municipality_id, func.count())
            .where(*_in_target(campaign))
            .group_by(teachers.c.municipality_id)
        ),
        "expected",
    )
    submitted = (
        select(results.c.teacher_id).where(results.c.campaign_id == cid).distinct().subquery()
    )
    bump(
        await session.execute(
            select(teachers.c.municipality_id, func.count())
            .join(submitted, submitted.c.teacher_id == teachers.c.teacher_id)
            .where(*_in_target(campaign))
            .group_by(teachers.c.municipality_id)
        ),
        "submitted",
    )
    bump(
        await session.execute(
            select(diagnoses.c.municipality_id, func.count())
            .where(diagnoses.c.campaign_id == cid, diagnoses.c.status == "completed")
            .group_by(diagnoses.c.municipality_id)
        ),
        "completed",
    )
    held_teachers = (
        select(held.c.teacher_id)
        .where(held.c.campaign_id == cid, held.c.type == RESULT_TYPE)
        .distinct()
        .subquery()
    )
    unknown = (await session.execute(select(func.count()).select_from(held_teachers))).scalar_one()
    if unknown:
        out.setdefault("", {"expected": 0, "submitted": 0, "completed": 0, "held": 0})["held"] = (
            unknown
        )
    return out


async def find_pending_teachers(session: AsyncSession, campaign_id: str) -> list[str]:
    """Teachers of the campaign with a result but no diagnosis yet."""
    done = select(diagnoses.c.teacher_id).where(diagnoses.c.campaign_id == campaign_id)
    rows = await session.execute(
        select(results.c.teacher_id)
        .where(results.c.campaign_id == campaign_id, results.c.teacher_id.not_in(done))
        .distinct()
        .order_by(results.c.teacher_id)
    )
    return [r for (r,) in rows]


# --- results ---------------------------------------------------------------------------------


async def add_results(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(results), list(rows))


async def find_taken_external_ids(
    session: AsyncSession, keys: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (source, external id) pairs of ``keys`` a stored result already has."""
    if not keys:
        return set()
    found = await session.execute(
        select(results.c.source, results.c.external_id).where(
            results.c.external_id.in_(sorted({e for _, e in keys})),
            results.c.source.in_(sorted({s for s, _ in keys})),
        )
    )
    return {(row.source, row.external_id) for row in found} & set(keys)


async def find_evidence(
    session: AsyncSession, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], list[Any]]:
    """Per (teacher, campaign) of ``pairs``: its results in order of arrival, with what
    combining them needs (not the payload as submitted; each a ``domain.Taken``)."""
    if not pairs:
        return {}
    rows = await session.execute(
        select(
            results.c.teacher_id,
            results.c.campaign_id,
            results.c.result_id,
            results.c.instrument,
            results.c.expert_id,
            results.c.scores,
            results.c.taken_at,
        )
        .where(
            results.c.teacher_id.in_(sorted({t for t, _ in pairs})),
            results.c.campaign_id.in_(sorted({c for _, c in pairs})),
        )
        .order_by(results.c.received_at, results.c.result_id)
    )
    out: dict[tuple[str, str], list[Any]] = {pair: [] for pair in pairs}
    for row in rows:
        found = out.get((row.teacher_id, row.campaign_id))
        if found is not None:  # the IN of each column admits pairs not asked for
            found.append(row)
    return out


async def list_results(session: AsyncSession, teacher_id: str, campaign_id: str) -> list[Any]:
    """The teacher's results in a campaign, in order of arrival."""
    rows = await session.execute(
        select(results)
        .where(results.c.teacher_id == teacher_id, results.c.campaign_id == campaign_id)
        .order_by(results.c.received_at, results.c.result_id)
    )
    return list(rows)


async def add_held(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(held), list(rows))


async def find_held(session: AsyncSession, teacher_ids: Collection[str]) -> list[Any]:
    """The results held for these teachers, in order of arrival."""
    if not teacher_ids:
        return []
    rows = await session.execute(
        select(held)
        .where(held.c.teacher_id.in_(sorted(teacher_ids)))
        .order_by(held.c.received_at, held.c.event_id)
    )
    return list(rows)


async def find_held_expired(session: AsyncSession, now: datetime, limit: int = 500) -> list[Any]:
    rows = await session.execute(
        select(held).where(held.c.hold_until <= now).order_by(held.c.hold_until).limit(limit)
    )
    return list(rows)


async def remove_held(session: AsyncSession, event_ids: Sequence[str]) -> None:
    if event_ids:
        await session.execute(delete(held).where(held.c.event_id.in_(event_ids)))


async def list_held(session: AsyncSession, offset: int, limit: int) -> list[Any]:
    rows = await session.execute(
        select(held).order_by(held.c.received_at).offset(offset).limit(limit)
    )
    return list(rows)


# --- needs -----------------------------------------------------------------------------------


async def add_needs(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(needs), list(rows))


async def find_taken_needs_ids(
    session: AsyncSession, keys: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (source, external id) pairs of ``keys`` a stored needs answer already has."""
    if not keys:
        return set()
    found = await session.execute(
        select(needs.c.source, needs.c.external_id).where(
            needs.c.external_id.in_(sorted({e for _, e in keys})),
            needs.c.source.in_(sorted({s for s, _ in keys})),
        )
    )
    return {(row.source, row.external_id) for row in found} & set(keys)


async def get_needs(session: AsyncSession, response_id: str) -> Any:
    return (await session.execute(select(needs).where(needs.c.response_id == response_id))).first()


async def list_needs(
    session: AsyncSession,
    *,
    campaign_id: str | None = None,
    teacher_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Any]]:
    """(how many match, a page of them in order of arrival)."""
    conditions = [
        column == value
        for column, value in ((needs.c.campaign_id, campaign_id), (needs.c.teacher_id, teacher_id))
        if value is not None
    ]
    total = (
        await session.execute(select(func.count()).select_from(needs).where(*conditions))
    ).scalar_one()
    rows = await session.execute(
        select(needs)
        .where(*conditions)
        .order_by(needs.c.received_at, needs.c.response_id)
        .offset(offset)
        .limit(limit)
    )
    return total, list(rows)


async def needs_rows(session: AsyncSession, campaign_id: str | None = None) -> list[Any]:
    """What the needs analytics count: each teacher's latest answer (in ``campaign_id``,
    or in any campaign), where they worked, what they asked for."""
    query = select(
        needs.c.teacher_id,
        needs.c.organization_id,
        needs.c.municipality_id,
        needs.c.answered_at,
        needs.c.received_at,
        needs.c.competencies,
        needs.c.themes,
        needs.c.formats,
    )
    if campaign_id is not None:
        query = query.where(needs.c.campaign_id == campaign_id)
    latest: dict[str, Any] = {}
    for row in await session.execute(query):
        before = latest.get(row.teacher_id)
        if before is None or (utc(row.answered_at), utc(row.received_at)) > (
            utc(before.answered_at),
            utc(before.received_at),
        ):
            latest[row.teacher_id] = row
    return [latest[t] for t in sorted(latest)]


# --- diagnoses -------------------------------------------------------------------------------

_RESULTS = TypeAdapter(list[CompetencyResult])
_CHANGES = TypeAdapter(list[CompetencyChange])


def _diagnosis(row: Any) -> Diagnosis:
    """A stored diagnosis as the aggregate (its times in UTC: SQLite keeps no zone)."""
    return Diagnosis(
        diagnosis_id=row.diagnosis_id,
        teacher_id=row.teacher_id,
        campaign_id=row.campaign_id,
        organization_id=row.organization_id,
        municipality_id=row.municipality_id,
        framework_version=row.framework_version,
        rule=row.rule,
        instruments=[INSTRUMENTS[i] for i in row.instruments],
        completed_by=row.completed_by,
        competencies=_RESULTS.validate_python(row.competencies),
        deficits=_RESULTS.validate_python(row.deficits),
        burnout=BurnoutResult.model_validate(row.burnout) if row.burnout else None,
        previous_diagnosis_id=row.previous_diagnosis_id,
        changes=_CHANGES.validate_python(row.changes),
        evidence_at=utc(row.evidence_at) if row.evidence_at else None,
        completed_at=utc(row.completed_at),
        status=row.status,
        latest=row.latest,
        revision=row.revision,
        history=list(row.history),
        revised_at=utc(row.revised_at) if row.revised_at else None,
        cancelled_at=utc(row.cancelled_at) if row.cancelled_at else None,
        cancel_reason=row.cancel_reason,
    )


def _columns(diagnosis: Diagnosis) -> dict[str, Any]:
    """The ``diagnoses`` columns of a diagnosis. Its long lists go in as JSON text dumped
    straight from the models (no dict of them built, then dumped again: per diagnosis,
    every competency with its evidence)."""
    return {
        "diagnosis_id": diagnosis.diagnosis_id,
        "teacher_id": diagnosis.teacher_id,
        "campaign_id": diagnosis.campaign_id,
        "organization_id": diagnosis.organization_id,
        "municipality_id": diagnosis.municipality_id,
        "status": diagnosis.status,
        "latest": diagnosis.latest,
        "framework_version": diagnosis.framework_version,
        "rule": diagnosis.rule or "",
        "instruments": [i.value for i in diagnosis.instruments],
        "completed_by": diagnosis.completed_by,
        "competencies": RawJSON(_RESULTS.dump_json(diagnosis.competencies).decode()),
        "deficits": RawJSON(_RESULTS.dump_json(diagnosis.deficits).decode()),
        "deficit_count": diagnosis.deficit_count,
        "burnout": diagnosis.burnout.model_dump(mode="json") if diagnosis.burnout else None,
        "previous_diagnosis_id": diagnosis.previous_diagnosis_id,
        "changes": RawJSON(_CHANGES.dump_json(diagnosis.changes).decode()),
        "evidence_at": diagnosis.evidence_at,
        "revision": diagnosis.revision,
        "history": diagnosis.history,
        "completed_at": diagnosis.completed_at,
        "revised_at": diagnosis.revised_at,
        "cancelled_at": diagnosis.cancelled_at,
        "cancel_reason": diagnosis.cancel_reason,
    }


def _level_rows(diagnoses_: Iterable[Diagnosis]) -> list[dict[str, Any]]:
    """The ``competency_levels`` rows of diagnoses (what the analytics count)."""
    return [
        {
            "diagnosis_id": d.diagnosis_id,
            "code": c.code,
            "score": c.score,
            "level": c.level.value,
            "deficit": c.level in (Level.CRITICAL, Level.DEFICIT),
        }
        for d in diagnoses_
        for c in d.competencies
    ]


async def get_diagnosis(session: AsyncSession, diagnosis_id: str) -> Diagnosis | None:
    row = (
        await session.execute(select(diagnoses).where(diagnoses.c.diagnosis_id == diagnosis_id))
    ).first()
    return None if row is None else _diagnosis(row)


async def find_diagnosis(
    session: AsyncSession, teacher_id: str, campaign_id: str
) -> Diagnosis | None:
    """The teacher's diagnosis in a campaign, or None."""
    row = (
        await session.execute(
            select(diagnoses).where(
                diagnoses.c.teacher_id == teacher_id, diagnoses.c.campaign_id == campaign_id
            )
        )
    ).first()
    return None if row is None else _diagnosis(row)


async def find_diagnoses(
    session: AsyncSession, diagnosis_ids: Collection[str]
) -> dict[str, Diagnosis]:
    if not diagnosis_ids:
        return {}
    rows = await session.execute(
        select(diagnoses).where(diagnoses.c.diagnosis_id.in_(sorted(diagnosis_ids)))
    )
    return {row.diagnosis_id: _diagnosis(row) for row in rows}


async def find_standings(
    session: AsyncSession, teacher_ids: Collection[str], campaign_ids: Collection[str]
) -> list[Any]:
    """The teachers' current diagnoses and their ones in these campaigns, in brief (what
    deciding on their new results needs: status, and the levels a new diagnosis compares
    with): rows of diagnosis_id, teacher_id, campaign_id, status, latest, competencies."""
    if not teacher_ids:
        return []
    rows = await session.execute(
        select(
            diagnoses.c.diagnosis_id,
            diagnoses.c.teacher_id,
            diagnoses.c.campaign_id,
            diagnoses.c.status,
            diagnoses.c.latest,
            diagnoses.c.competencies,
        ).where(
            diagnoses.c.teacher_id.in_(sorted(teacher_ids)),
            or_(diagnoses.c.latest, diagnoses.c.campaign_id.in_(sorted(campaign_ids))),
        )
    )
    return list(rows)


async def add_diagnoses(session: AsyncSession, new: Sequence[Diagnosis]) -> None:
    """Write new diagnoses and their levels; each replaces its teacher's stored current
    diagnosis (whichever of the new ones is current says so itself). Three statements."""
    if not new:
        return
    await session.execute(
        update(diagnoses)
        .where(diagnoses.c.teacher_id.in_(sorted({d.teacher_id for d in new})), diagnoses.c.latest)
        .values(latest=False)
    )
    await session.execute(insert(diagnoses), [_columns(d) for d in new])
    found = _level_rows(new)
    if found:
        await session.execute(insert(levels), found)


async def save_diagnoses(session: AsyncSession, changed: Sequence[Diagnosis]) -> None:
    """Rewrite stored diagnoses whole, with their levels: one statement per table (an
    update of every row, the levels removed and added again)."""
    if not changed:
        return
    rows = [_columns(d) for d in changed]
    names = [k for k in rows[0] if k != "diagnosis_id"]
    await session.execute(
        update(diagnoses)
        .where(diagnoses.c.diagnosis_id == bindparam("b_diagnosis_id"))
        .values({k: bindparam(f"b_{k}") for k in names}),
        [{f"b_{k}": v for k, v in row.items()} for row in rows],
    )
    await session.execute(
        delete(levels).where(levels.c.diagnosis_id.in_(sorted(d.diagnosis_id for d in changed)))
    )
    found = _level_rows(changed)
    if found:
        await session.execute(insert(levels), found)


async def restore_current(session: AsyncSession, teacher_id: str) -> None:
    """The teacher's latest completed diagnosis is their current one again (after theirs
    was cancelled)."""
    previous = (
        await session.execute(
            select(diagnoses.c.diagnosis_id)
            .where(diagnoses.c.teacher_id == teacher_id, diagnoses.c.status == "completed")
            .order_by(diagnoses.c.completed_at.desc())
            .limit(1)
        )
    ).scalar()
    if previous is not None:
        await session.execute(
            update(diagnoses).where(diagnoses.c.diagnosis_id == previous).values(latest=True)
        )


async def list_diagnoses(
    session: AsyncSession,
    *,
    teacher_id: str | None = None,
    organization_id: str | None = None,
    campaign_id: str | None = None,
    status: str | None = None,
    framework_version: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[Diagnosis]]:
    """(how many match, a page of them in order of completion)."""
    conditions = [
        column == value
        for column, value in (
            (diagnoses.c.teacher_id, teacher_id),
            (diagnoses.c.organization_id, organization_id),
            (diagnoses.c.campaign_id, campaign_id),
            (diagnoses.c.status, status),
            (diagnoses.c.framework_version, framework_version),
        )
        if value is not None
    ]
    total = (
        await session.execute(select(func.count()).select_from(diagnoses).where(*conditions))
    ).scalar_one()
    rows = await session.execute(
        select(diagnoses)
        .where(*conditions)
        .order_by(diagnoses.c.completed_at, diagnoses.c.diagnosis_id)
        .offset(offset)
        .limit(limit)
    )
    return total, [_diagnosis(row) for row in rows]


async def find_diagnosis_ids(session: AsyncSession, framework_version: str) -> list[str]:
    """Completed diagnoses scored with one framework version."""
    rows = await session.execute(
        select(diagnoses.c.diagnosis_id)
        .where(
            diagnoses.c.framework_version == framework_version,
            diagnoses.c.status == "completed",
        )
        .order_by(diagnoses.c.completed_at, diagnoses.c.diagnosis_id)
    )
    return [r for (r,) in rows]


# --- analytics -------------------------------------------------------------------------------


async def level_rows(session: AsyncSession, campaign_id: str | None = None) -> list[Any]:
    """(teacher, organisation, municipality, code, level, deficit) of current diagnoses:
    the teacher's latest completed one, or their one in ``campaign_id``."""
    where = [diagnoses.c.status == "completed"]
    where.append(
        diagnoses.c.campaign_id == campaign_id if campaign_id is not None else diagnoses.c.latest
    )
    rows = await session.execute(
        select(
            diagnoses.c.teacher_id,
            diagnoses.c.organization_id,
            diagnoses.c.municipality_id,
            levels.c.code,
            levels.c.level,
            levels.c.deficit,
        )
        .join(levels, levels.c.diagnosis_id == diagnoses.c.diagnosis_id)
        .where(and_(*where))
    )
    return list(rows)


async def burnout_rows(session: AsyncSession) -> list[Any]:
    """Every completed diagnosis with a burnout result, with where the teacher worked then
    and their age and experience bands (None: not known to the read model): teacher_id,
    campaign_id, organization_id, municipality_id, burnout, completed_at, latest, age_band,
    experience_band."""
    rows = await session.execute(
        select(
            diagnoses.c.teacher_id,
            diagnoses.c.campaign_id,
            diagnoses.c.organization_id,
            diagnoses.c.municipality_id,
            diagnoses.c.burnout,
            diagnoses.c.completed_at,
            diagnoses.c.latest,
            teachers.c.age_band,
            teachers.c.experience_band,
        )
        .outerjoin(teachers, teachers.c.teacher_id == diagnoses.c.teacher_id)
        .where(diagnoses.c.status == "completed", diagnoses.c.burnout.is_not(None))
        .order_by(diagnoses.c.completed_at, diagnoses.c.diagnosis_id)
    )
    return [r for r in rows if r.burnout]  # a JSON null is not SQL NULL on every database


async def counts(session: AsyncSession) -> dict[str, int]:
    out = {}
    for name, table in (
        ("teachers", teachers),
        ("results", results),
        ("held", held),
        ("needs", needs),
        ("campaigns", campaigns),
        ("programs", programs),
    ):
        out[name] = (await session.execute(select(func.count()).select_from(table))).scalar_one()
    completed = diagnoses.c.status == "completed"
    out["diagnoses"] = (
        await session.execute(select(func.count()).select_from(diagnoses).where(completed))
    ).scalar_one()
    out["with_deficits"] = (
        await session.execute(
            select(func.count())
            .select_from(diagnoses)
            .where(completed, diagnoses.c.deficit_count > 0)
        )
    ).scalar_one()
    return out
