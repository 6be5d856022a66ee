"""Stream subscribers of diagnostics: contract in -> use case -> repository + outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics import repository, service
from iomflow.shared.contracts import (
    Event,
    MunicipalityUpserted,
    OrganizationUpserted,
    ProgramUpserted,
    RecordRemoved,
    ResultSubmitted,
    Streams,
    TeacherUpserted,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Handler, Subscription


async def municipality_upserted(
    session: AsyncSession, event: Event[MunicipalityUpserted], _: Outbox
) -> None:
    m = event.payload
    await repository.save_read_model(
        session, "municipality", {"municipality_id": m.municipality_id, "name": m.name}
    )


async def organization_upserted(
    session: AsyncSession, event: Event[OrganizationUpserted], _: Outbox
) -> None:
    o = event.payload
    await repository.save_read_model(
        session,
        "organization",
        o.model_dump(include={"organization_id", "municipality_id", "name", "kind"}, mode="json"),
    )


async def program_upserted(session: AsyncSession, event: Event[ProgramUpserted], _: Outbox) -> None:
    p = event.payload
    await repository.save_read_model(
        session,
        "program",
        p.model_dump(
            include={
                "program_id",
                "title",
                "federal_registry",
                "competencies",
                "themes",
                "audiences",
            },
            mode="json",
        ),
    )


def removed(entity: str) -> Handler:
    async def handle(session: AsyncSession, event: Event[RecordRemoved], _: Outbox) -> None:
        await repository.remove_read_model(session, entity, event.payload.record_id)

    return handle  # type: ignore[return-value]


def subscriptions(ctx: service.Diagnostics) -> list[Subscription]:
    async def teacher_upserted(
        session: AsyncSession, event: Event[TeacherUpserted], _: Outbox
    ) -> None:
        t = event.payload
        await repository.save_read_model(
            session,
            "teacher",
            {
                **t.model_dump(
                    include={
                        "teacher_id",
                        "organization_id",
                        "municipality_id",
                        "audience",
                        "subjects",
                        "is_manager",
                    },
                    mode="json",
                ),
                "updated_at": datetime.now(UTC),
            },
        )
        await service.teacher_arrived(session, ctx, t.teacher_id)

    async def result_submitted(
        session: AsyncSession, event: Event[ResultSubmitted], _: Outbox
    ) -> None:
        await service.submit_result(session, ctx, event)

    registry: dict[str, Any] = {
        "registry.teacher.upserted": teacher_upserted,
        "registry.municipality.upserted": municipality_upserted,
        "registry.organization.upserted": organization_upserted,
        "registry.program.upserted": program_upserted,
        **{f"registry.{entity}.removed": removed(entity) for entity in repository.READ_MODELS},
    }
    return [
        Subscription(
            Streams.REGISTRY, registry, "Teachers, municipalities, organisations and programs"
        ),
        Subscription(
            Streams.RESULTS_INBOUND,
            {"diagnostics.result.submitted": result_submitted},
            "Instrument results written by outside publishers (plain XADD)",
        ),
    ]
