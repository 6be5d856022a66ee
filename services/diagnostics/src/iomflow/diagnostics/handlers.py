"""Stream subscribers of diagnostics: contract in -> use case -> repository + outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics import domain, repository, service
from iomflow.shared.contracts import Event, ResultSubmitted, Streams, TeacherUpserted
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Subscription


async def teacher_upserted(session: AsyncSession, event: Event[TeacherUpserted], _: Outbox) -> None:
    t = event.payload
    await repository.save_teacher(session, t.teacher_id, t.organization_id, t.municipality_id)


def subscriptions(framework: domain.Framework) -> list[Subscription]:
    async def result_submitted(
        session: AsyncSession, event: Event[ResultSubmitted], outbox: Outbox
    ) -> None:
        await service.submit_result(session, outbox, framework, event)

    handlers: dict[str, Any] = {"diagnostics.result.submitted": result_submitted}
    return [
        Subscription(
            Streams.REGISTRY,
            {"registry.teacher.upserted": teacher_upserted},
            "Teachers for the read model",
        ),
        Subscription(
            Streams.RESULTS_INBOUND,
            handlers,
            "Instrument results written by outside publishers (plain XADD)",
        ),
    ]
