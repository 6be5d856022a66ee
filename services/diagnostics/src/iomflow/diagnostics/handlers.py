"""Stream subscribers of diagnostics: batches of contract events -> use cases -> one unit of
work (set-based reads, multi-row writes, events staged in the same transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from iomflow.diagnostics import repository, service
from iomflow.diagnostics.service import Diagnostics
from iomflow.shared import readmodel
from iomflow.shared.contracts import (
    Event,
    NeedsSubmitted,
    ResultSubmitted,
    Streams,
    TeacherUpserted,
    types_of,
)
from iomflow.shared.readmodel import ReadModel
from iomflow.shared.streams import Subscription
from iomflow.shared.unit import Deps, utc_now


async def results_submitted(
    events: Sequence[Event[ResultSubmitted]], deps: Deps[Diagnostics]
) -> None:
    await service.take_results(deps, events)


async def needs_submitted(events: Sequence[Event[NeedsSubmitted]], deps: Deps[Diagnostics]) -> None:
    await service.take_needs(deps, events)


async def teachers_arrived(
    events: Sequence[Event[TeacherUpserted]], deps: Deps[Diagnostics]
) -> None:
    """After the teachers' rows are written: take the results held for them."""
    await service.teachers_arrived(deps, events)


def _now(_: TeacherUpserted) -> datetime:
    return utc_now()


READ_MODELS = (
    ReadModel(
        "teacher",
        repository.teachers,
        "teacher_id",
        {
            "teacher_id": "teacher_id",
            "organization_id": "organization_id",
            "municipality_id": "municipality_id",
            "audience": "audience",
            "subjects": "subjects",
            "is_manager": "is_manager",
            "age_band": "age_band",
            "experience_band": "experience_band",
            "updated_at": _now,
        },
        after_upsert=teachers_arrived,
    ),
    ReadModel(
        "municipality",
        repository.municipalities,
        "municipality_id",
        {"municipality_id": "municipality_id", "name": "name"},
    ),
    ReadModel(
        "organization",
        repository.organizations,
        "organization_id",
        {c: c for c in ("organization_id", "municipality_id", "name", "kind")},
    ),
    ReadModel(
        "program",
        repository.programs,
        "program_id",
        {
            c: c
            for c in (
                "program_id",
                "title",
                "federal_registry",
                "competencies",
                "themes",
                "audiences",
            )
        },
    ),
)
"""The registries' entities diagnostics keeps (teachers: to check and score results and
needs answers, and the burnout analytics' age and experience bands; the others: for the
analytics)."""

REGISTRY = readmodel.handlers(READ_MODELS)

SUBSCRIPTIONS = [
    Subscription(
        Streams.REGISTRY,
        REGISTRY,
        "Teachers, municipalities, organisations and programs",
        # the other registers (tutors, mentors, sites, practices …) are routes' and
        # monitoring's business
        ignores=types_of(Streams.REGISTRY) - set(REGISTRY),
    ),
    Subscription(
        Streams.RESULTS_INBOUND,
        {
            "diagnostics.result.submitted": results_submitted,
            "diagnostics.needs.submitted": needs_submitted,
        },
        "Instrument results and needs answers written by outside publishers (plain XADD)",
    ),
]
