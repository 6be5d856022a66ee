"""The practices' course as use cases (``course`` holds its rules): submit, review,
include, replicate, and the bank's search; and the year's expert activity.

Each move reads the practice with its row locked, decides by ``course``, and stores the
result as any change of the register is stored (``service.save_record``: the register's
rules and references checked again, ``registry.practice.upserted`` staged in the outbox
with the change, nothing published when nothing changed).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.registries import course, repository, service
from iomflow.registries.domain import REGISTRY
from iomflow.shared.contracts import ExpertKind
from iomflow.shared.errors import Refused
from iomflow.shared.unit import Unit

PRACTICES = REGISTRY["practices"]


async def submit(
    unit: Unit, values: Mapping[str, Any], *, actor: str, today: date
) -> dict[str, Any]:
    """A practice submitted to the bank (status «submitted»); its id made when left out."""
    record = course.submission(values, today)
    if not record.get("practice_id"):
        record["practice_id"] = f"prc-{uuid.uuid4().hex[:12]}"
    data, _ = await service.save_record(unit, PRACTICES, record, None, actor=actor)
    return data


async def _practice(session: AsyncSession, practice_id: str) -> dict[str, Any]:
    found = await repository.get_document(session, PRACTICES.name, practice_id, lock=True)
    if found is None:
        raise Refused(
            "record_not_found", f"Практики «{practice_id}» нет в «{PRACTICES.title}».", 404
        )
    return found


async def _store(
    unit: Unit, practice_id: str, data: Mapping[str, Any], actor: str
) -> dict[str, Any]:
    stored, _ = await service.save_record(
        unit, PRACTICES, data, None, actor=actor, record_id=practice_id
    )
    return stored


async def review(
    unit: Unit,
    practice_id: str,
    *,
    reviewer: str,
    verdict: course.Verdict,
    text: str,
    on: date,
    actor: str,
) -> dict[str, Any]:
    """An expert's review of a submitted practice. The reviewer is a teacher of the
    register with an expert role of kind «practice_review» held on the review's day."""
    session = unit.session
    practice = await _practice(session, practice_id)
    teacher = await repository.get_document(session, "teachers", reviewer)
    if teacher is None:
        raise Refused(
            "reviewer_not_found",
            f"Эксперта «{reviewer}» нет в реестре «{REGISTRY['teachers'].title}».",
            422,
            field="reviewed_by",
        )
    roles = await repository.list_documents(
        session,
        "expert_roles",
        [repository.field_filter(session, "teacher_id", "str", reviewer)],
    )
    if not course.expert_on(roles, ExpertKind.PRACTICE_REVIEW, on):
        raise Refused(
            "reviewer_not_expert",
            f"Педагог «{reviewer}» на {on:%d.%m.%Y} не эксперт практик: в реестре "
            f"«{REGISTRY['expert_roles'].title}» нет его роли «экспертиза практик» на эту дату.",
            422,
            field="reviewed_by",
        )
    after = course.reviewed(practice, reviewer=reviewer, verdict=verdict, review=text, on=on)
    return await _store(unit, practice_id, after, actor)


async def include(unit: Unit, practice_id: str, *, on: date, actor: str) -> dict[str, Any]:
    """A reviewed practice included in the bank."""
    practice = await _practice(unit.session, practice_id)
    return await _store(unit, practice_id, course.included(practice, on), actor)


async def replicate(
    unit: Unit,
    practice_id: str,
    *,
    organization_id: str,
    by: str | None,
    on: date,
    actor: str,
) -> dict[str, Any]:
    """A practice of the bank replicated in another organisation (by one of its teachers,
    when said); the same replication again changes nothing."""
    session = unit.session
    practice = await _practice(session, practice_id)
    if by is not None:
        teacher = await repository.get_document(session, "teachers", by)
        where = teacher.get("organization_id") if teacher else None
        if where is not None and where != organization_id:
            raise Refused(
                "replicator_elsewhere",
                f"Педагог «{by}» работает в «{where}», а не в «{organization_id}», где "
                "практику тиражировали.",
                422,
                field="by",
            )
    after, new = course.replicated(practice, organization_id, by, on)
    if not new:
        return practice
    return await _store(unit, practice_id, after, actor)


async def bank(
    session: AsyncSession,
    *,
    competency: str | None,
    theme: str | None,
    query: str | None,
    offset: int,
    limit: int,
) -> tuple[int, list[dict[str, Any]]]:
    """(how many, one page) of the bank's practices (included or replicated, or kept
    before the course) with a competency, a theme, every word of ``query`` in the title.
    A text query is matched here, not by the database: SQLite folds no Cyrillic case, and
    a region's bank is a few hundred practices."""
    conditions = [repository.field_in("status", course.BANK, missing=True)]
    if competency:
        conditions.append(repository.field_filter(session, "competencies", "list", competency))
    if theme:
        conditions.append(repository.field_filter(session, "themes", "list", theme))
    if not query or not query.split():
        return await repository.page(
            session, PRACTICES.name, conditions=conditions, offset=offset, limit=limit
        )
    found = [
        p
        for p in await repository.list_documents(session, PRACTICES.name, conditions)
        if course.matches(p, query)
    ]
    return len(found), found[offset : offset + limit]


async def experts(session: AsyncSession, year: int) -> course.Activity:
    """The expert activity of ``year`` from the register of expert roles."""
    return course.expert_activity(await repository.list_documents(session, "expert_roles"), year)
