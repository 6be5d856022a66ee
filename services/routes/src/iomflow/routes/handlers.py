"""Stream handlers of routes: a batch of one type's events and the batch's ``Deps`` in,
the use case on a ``Ledger`` (set-based reads, decisions in memory, multi-row writes and
staged events) out. The registries' read models are declared once, with what routes does
on top of keeping them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iomflow.routes import courses, repository, service, teams
from iomflow.routes.ledger import ledger_of
from iomflow.routes.service import Routes
from iomflow.shared import readmodel
from iomflow.shared.contracts import (
    CourseEvent,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisDigest,
    DiagnosisRevised,
    Event,
    InternshipEvent,
    InternshipSiteUpserted,
    MethodistUpserted,
    ProgramUpserted,
    RecordRemoved,
    RevisedDiagnosisDigest,
    Streams,
    TeacherUpserted,
    types_of,
)
from iomflow.shared.readmodel import ReadModel
from iomflow.shared.streams import Handler, Subscription
from iomflow.shared.unit import Deps

# --- diagnoses -----------------------------------------------------------------------------


async def diagnoses_completed(
    events: Sequence[Event[DiagnosisCompleted]], deps: Deps[Routes]
) -> None:
    # The hot path: its events go out grouped by type (monitoring applies a run of one
    # type in one call), each route's in their order.
    async with ledger_of(deps, grouped=True) as ledger:
        await service.diagnoses_completed(ledger, events)


async def diagnoses_revised(events: Sequence[Event[DiagnosisRevised]], deps: Deps[Routes]) -> None:
    async with ledger_of(deps, grouped=True) as ledger:
        await service.diagnoses_revised(ledger, events)


async def diagnoses_cancelled(
    events: Sequence[Event[DiagnosisCancelled]], deps: Deps[Routes]
) -> None:
    async with ledger_of(deps) as ledger:
        await service.diagnoses_cancelled(ledger, events)


# --- course events -------------------------------------------------------------------------


async def courses_enrolled(events: Sequence[Event[CourseEvent]], deps: Deps[Routes]) -> None:
    async with ledger_of(deps) as ledger:
        await courses.courses_received(ledger, events, "enrolled")


async def courses_completed(events: Sequence[Event[CourseEvent]], deps: Deps[Routes]) -> None:
    async with ledger_of(deps) as ledger:
        await courses.courses_received(ledger, events, "completed")


async def internships_completed(
    events: Sequence[Event[InternshipEvent]], deps: Deps[Routes]
) -> None:
    async with ledger_of(deps) as ledger:
        await courses.internships_received(ledger, events)


# --- what routes does on top of the read models --------------------------------------------


async def teachers_arrived(events: Sequence[Event[TeacherUpserted]], deps: Deps[Routes]) -> None:
    async with ledger_of(deps) as ledger:
        await courses.release_held_courses(
            ledger, teacher_ids=[e.payload.teacher_id for e in events], cause=events[-1]
        )


async def teachers_leaving(events: Sequence[Event[RecordRemoved]], deps: Deps[Routes]) -> None:
    async with ledger_of(deps) as ledger:
        await service.teachers_removed(ledger, events)


def forget_offer(deps: Deps[Routes]) -> None:
    """Forget the kept offer now (this transaction reads what it just wrote) and again
    after the commit (another task of this process may have read the old rows meanwhile)."""
    deps.ctx.forget_offer()
    deps.after_commit(deps.ctx.forget_offer)


async def programs_arrived(events: Sequence[Event[ProgramUpserted]], deps: Deps[Routes]) -> None:
    forget_offer(deps)
    programs = [(e.payload.program_id, e.payload.federal_number) for e in events]
    async with ledger_of(deps) as ledger:
        await courses.release_held_courses(ledger, programs=programs, cause=events[-1])


async def sites_arrived(
    events: Sequence[Event[InternshipSiteUpserted]], deps: Deps[Routes]
) -> None:
    async with ledger_of(deps) as ledger:
        await courses.release_held_courses(
            ledger, site_ids=[e.payload.site_id for e in events], cause=events[-1]
        )


async def offer_changed(_events: Sequence[Event[Any]], deps: Deps[Routes]) -> None:
    # Steps already planned keep a removed item (with its reason); new drafts no longer
    # see it once the kept offer is read again.
    forget_offer(deps)


async def methodists_arrived(
    events: Sequence[Event[MethodistUpserted]], deps: Deps[Routes]
) -> None:
    forget_offer(deps)
    async with ledger_of(deps) as ledger:
        await service.methodists_changed(
            ledger, [e.payload.methodist_id for e in events], events[-1]
        )


async def methodists_removed(events: Sequence[Event[RecordRemoved]], deps: Deps[Routes]) -> None:
    """After they are gone: the rebalance moves their routes (or queues them)."""
    forget_offer(deps)
    async with ledger_of(deps) as ledger:
        await service.rebalance(ledger, even=False, cause=events[-1])


# --- the registries' read models -----------------------------------------------------------

TEACHER = ReadModel(
    "teacher",
    repository.teachers,
    "teacher_id",
    {
        "teacher_id": "teacher_id",
        "organization_id": "organization_id",
        "municipality_id": "municipality_id",
        "audience": "audience",
        "subjects": "subjects",
        "young": "young",
        "is_manager": "is_manager",
    },
    after_upsert=teachers_arrived,
    before_remove=teachers_leaving,
)
METHODIST = ReadModel(
    "methodist",
    repository.methodists,
    "methodist_id",  # the load is ours (counted from seats): never in an upsert
    {c: c for c in ("methodist_id", "specialisations", "municipalities", "subjects", "capacity")},
    after_upsert=methodists_arrived,
    after_remove=methodists_removed,
)
READ_MODELS = [
    TEACHER,
    ReadModel(
        "municipality",
        repository.municipalities,
        "municipality_id",
        {c: c for c in ("municipality_id", "name", "remote")},
    ),
    ReadModel(
        "program",
        repository.programs,
        "program_id",
        {
            **{c: c for c in ("program_id", "title", "hours", "competencies", "audiences")},
            "federal_registry": lambda p: int(p.federal_registry),
            **{c: c for c in ("format", "subjects", "federal_number")},
        },
        after_upsert=programs_arrived,
        before_remove=offer_changed,
    ),
    METHODIST,
    ReadModel(
        "tutor",
        repository.tutors,
        "tutor_id",
        {c: c for c in ("tutor_id", "specialisations", "programs", "municipalities", "capacity")},
    ),
    ReadModel(
        "mentor",
        repository.mentors,
        "mentor_id",
        {c: c for c in ("mentor_id", "organization_id", "municipality_id", "subjects", "capacity")},
    ),
    ReadModel(
        "internship_site",
        repository.sites,
        "site_id",
        {
            c: c
            for c in (
                "site_id",
                "title",
                "organization_id",
                "municipality_id",
                "competencies",
                "capacity",
            )
        },
        after_upsert=sites_arrived,
    ),
    ReadModel(
        "community",
        repository.communities,
        "community_id",
        {
            c: c
            for c in (
                "community_id",
                "title",
                "level",
                "municipality_id",
                "subjects",
                "competencies",
                "themes",
            )
        },
        after_upsert=offer_changed,
        before_remove=offer_changed,
    ),
    ReadModel(
        "mentoring_pair",
        repository.mentoring_pairs,
        "pair_id",
        {
            c: c
            for c in (
                "pair_id",
                "organization_id",
                "municipality_id",
                "mentor_id",
                "mentee_id",
                "kind",
                "focus",
                "starts_on",
                "ends_on",
            )
        },
    ),
    ReadModel(
        "practice",
        repository.practices,
        "practice_id",
        {
            c: c
            for c in (
                "practice_id",
                "title",
                "organization_id",
                "municipality_id",
                "competencies",
                "themes",
                "year",
                "status",
            )
        },
        # the bank is part of the kept offer (drafting cites its practices)
        after_upsert=offer_changed,
        before_remove=offer_changed,
    ),
    ReadModel(
        "organization",
        repository.organizations,
        "organization_id",
        {
            c: c
            for c in (
                "organization_id",
                "municipality_id",
                "name",
                "low_results",
                "unfavorable_conditions",
            )
        },
    ),
    ReadModel(
        "management_member",
        repository.management,
        "member_id",
        {c: c for c in ("member_id", "organization_id", "teacher_id")},
    ),
    teams.SCHOOL_TEAM,
]

REGISTRY: dict[str, Handler] = {
    **readmodel.handlers(READ_MODELS),
}

SUBSCRIPTIONS = [
    Subscription(
        Streams.REGISTRY,
        REGISTRY,
        "The registries' offer and people, for drafting, assignment, approvals and support plans",
        # municipal staff, innovation sites, staleness, …: what drafting, assignment and
        # support plans do not use
        ignores=types_of(Streams.REGISTRY) - set(REGISTRY),
    ),
    Subscription(
        Streams.DIAGNOSTICS,
        {
            "diagnostics.diagnosis.completed": diagnoses_completed,
            "diagnostics.diagnosis.revised": diagnoses_revised,
            "diagnostics.diagnosis.cancelled": diagnoses_cancelled,
        },
        "Diagnoses: a completed one drafts a route; revised and cancelled ones follow",
        # deficits, changes and ids: not every competency's explanation
        digests={
            "diagnostics.diagnosis.completed": DiagnosisDigest,
            "diagnostics.diagnosis.revised": RevisedDiagnosisDigest,
        },
        # a teacher's educational needs are diagnostics' analytics and monitoring's count:
        # a route is drafted from the deficits
        ignores=frozenset({"diagnostics.needs.recorded"}),
    ),
    Subscription(
        Streams.COURSES_INBOUND,
        {
            "courses.course.enrolled": courses_enrolled,
            "courses.course.completed": courses_completed,
            "courses.internship.completed": internships_completed,
        },
        "Course enrolments and completions, and internships completed, from providers, "
        "internship sites and the federal portal",
    ),
]
"""What routes applies: per stream, each event type's batch handler."""

HANDLERS: dict[str, Handler] = {t: h for sub in SUBSCRIPTIONS for t, h in sub.handlers.items()}
"""Every handler by event type (tests and benchmarks call them as the consumer does)."""
