"""Stream subscribers of routes: contract in -> use case -> repository + outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import lifecycle, repository, service
from iomflow.routes.service import Routes
from iomflow.shared.contracts import (
    CommunityUpserted,
    CourseEvent,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    InternshipSiteUpserted,
    ManagementMemberUpserted,
    MentorUpserted,
    MethodistUpserted,
    MunicipalityUpserted,
    ProgramUpserted,
    RecordRemoved,
    Streams,
    TeacherUpserted,
    TutorUpserted,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Handler, Subscription


def subscriptions(ctx: Routes) -> list[Subscription]:
    """What routes applies, each handler closed over the service's context."""

    async def teacher(session: AsyncSession, event: Event[TeacherUpserted], _: Outbox) -> None:
        t = event.payload
        await repository.save(
            session,
            "teacher",
            {
                "teacher_id": t.teacher_id,
                "organization_id": t.organization_id,
                "municipality_id": t.municipality_id,
                "audience": t.audience.value,
                "subjects": t.subjects,
                "young": t.young,
                "is_manager": t.is_manager,
            },
        )
        await lifecycle.release_held_courses(ctx, session, t.teacher_id)

    async def municipality(
        session: AsyncSession, event: Event[MunicipalityUpserted], _: Outbox
    ) -> None:
        m = event.payload
        await repository.save(
            session,
            "municipality",
            {"municipality_id": m.municipality_id, "name": m.name, "remote": m.remote},
        )

    async def program(session: AsyncSession, event: Event[ProgramUpserted], _: Outbox) -> None:
        p = event.payload
        await repository.save(
            session,
            "program",
            {
                "program_id": p.program_id,
                "title": p.title,
                "hours": p.hours,
                "federal_registry": int(p.federal_registry),
                "competencies": p.competencies,
                "audiences": [a.value for a in p.audiences],
                "format": p.format,
                "subjects": p.subjects,
                "federal_number": p.federal_number,
            },
        )
        ctx.forget_offer()
        await lifecycle.release_held_courses(ctx, session, program=(p.program_id, p.federal_number))

    async def methodist(session: AsyncSession, event: Event[MethodistUpserted], _: Outbox) -> None:
        m = event.payload
        before = await repository.get_methodist(session, m.methodist_id)
        await repository.save(
            session,
            "methodist",
            {
                "methodist_id": m.methodist_id,
                "specialisations": m.specialisations,
                "municipalities": m.municipalities,
                "subjects": m.subjects,
                "capacity": m.capacity,
            },
        )
        ctx.forget_offer()
        if before is not None and before.load > m.capacity:
            await service.methodist_changed(ctx, session)  # capacity lowered below its load
        else:
            await service.drain_queue(ctx, session)

    async def tutor(session: AsyncSession, event: Event[TutorUpserted], _: Outbox) -> None:
        t = event.payload
        await repository.save(
            session,
            "tutor",
            {
                "tutor_id": t.tutor_id,
                "specialisations": t.specialisations,
                "programs": t.programs,
                "municipalities": t.municipalities,
                "capacity": t.capacity,
            },
        )

    async def mentor(session: AsyncSession, event: Event[MentorUpserted], _: Outbox) -> None:
        m = event.payload
        await repository.save(
            session,
            "mentor",
            {
                "mentor_id": m.mentor_id,
                "organization_id": m.organization_id,
                "municipality_id": m.municipality_id,
                "subjects": m.subjects,
                "capacity": m.capacity,
            },
        )

    async def site(session: AsyncSession, event: Event[InternshipSiteUpserted], _: Outbox) -> None:
        s = event.payload
        await repository.save(
            session,
            "internship_site",
            {
                "site_id": s.site_id,
                "title": s.title,
                "organization_id": s.organization_id,
                "municipality_id": s.municipality_id,
                "competencies": s.competencies,
                "capacity": s.capacity,
            },
        )

    async def community(session: AsyncSession, event: Event[CommunityUpserted], _: Outbox) -> None:
        c = event.payload
        await repository.save(
            session,
            "community",
            {
                "community_id": c.community_id,
                "title": c.title,
                "level": c.level.value,
                "municipality_id": c.municipality_id,
                "subjects": c.subjects,
                "competencies": c.competencies,
            },
        )
        ctx.forget_offer()

    async def member(
        session: AsyncSession, event: Event[ManagementMemberUpserted], _: Outbox
    ) -> None:
        m = event.payload
        await repository.save(
            session,
            "management_member",
            {
                "member_id": m.member_id,
                "organization_id": m.organization_id,
                "teacher_id": m.teacher_id,
            },
        )

    def removed(entity: str) -> Handler:
        async def handle(session: AsyncSession, event: Event[RecordRemoved], _: Outbox) -> None:
            record_id = event.payload.record_id
            if entity == "teacher":
                await service.teacher_removed(ctx, session, record_id)
                return
            # Steps already planned keep the removed item (with its reason); new drafts
            # no longer see it.
            await repository.remove(session, entity, record_id)
            if entity in ("program", "community", "methodist"):
                ctx.forget_offer()
            if entity == "methodist":
                await service.methodist_changed(ctx, session)

        return handle  # type: ignore[return-value]

    async def completed(session: AsyncSession, event: Event[DiagnosisCompleted], _: Outbox) -> None:
        await service.draft_for_diagnosis(ctx, session, event.payload)

    async def revised(session: AsyncSession, event: Event[DiagnosisRevised], _: Outbox) -> None:
        await service.diagnosis_revised(ctx, session, event.payload)

    async def cancelled(session: AsyncSession, event: Event[DiagnosisCancelled], _: Outbox) -> None:
        await service.diagnosis_cancelled(ctx, session, event.payload)

    def course(kind: str) -> Handler:
        async def handle(session: AsyncSession, event: Event[CourseEvent], _: Outbox) -> None:
            await lifecycle.course_event(ctx, session, event, kind)

        return handle  # type: ignore[return-value]

    upserted: dict[str, Any] = {
        "registry.teacher.upserted": teacher,
        "registry.municipality.upserted": municipality,
        "registry.program.upserted": program,
        "registry.methodist.upserted": methodist,
        "registry.tutor.upserted": tutor,
        "registry.mentor.upserted": mentor,
        "registry.internship_site.upserted": site,
        "registry.community.upserted": community,
        "registry.management_member.upserted": member,
    }
    gone = {f"registry.{entity}.removed": removed(entity) for entity in repository.READ_MODELS}
    return [
        Subscription(
            Streams.REGISTRY,
            {**upserted, **gone},
            "The registries' offer and people, for drafting, assignment and approvals",
        ),
        Subscription(
            Streams.DIAGNOSTICS,
            {
                "diagnostics.diagnosis.completed": completed,
                "diagnostics.diagnosis.revised": revised,
                "diagnostics.diagnosis.cancelled": cancelled,
            },
            "Diagnoses: a completed one drafts a route; revised and cancelled ones follow",
        ),
        Subscription(
            Streams.COURSES_INBOUND,
            {
                "courses.course.enrolled": course("enrolled"),
                "courses.course.completed": course("completed"),
            },
            "Course enrolments and completions from providers and the federal portal",
        ),
    ]
