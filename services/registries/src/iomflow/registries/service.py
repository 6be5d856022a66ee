"""Registry use cases: load records, store what changed, stage the events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.registries import domain, repository
from iomflow.shared.contracts import Streams, new_event
from iomflow.shared.outbox import Outbox


@dataclass
class LoadReport:
    received: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    errors: list[domain.RowError] = field(default_factory=list)


def validate(region: dict[str, Any]) -> tuple[dict[str, list[Any]], LoadReport]:
    report = LoadReport()
    valid: dict[str, list[Any]] = {}
    for plural, entity in domain.ENTITIES.items():
        rows = region.get(plural) or []
        report.received[plural] = len(rows)
        valid[plural], errors = domain.validate_rows(entity, rows)
        report.errors.extend(errors)
    return valid, report


async def load(session: AsyncSession, outbox: Outbox, region: dict[str, Any]) -> LoadReport:
    """All or nothing: with any row error nothing is written (the caller's transaction)."""
    valid, report = validate(region)
    if report.errors:
        return report
    for plural, entity in domain.ENTITIES.items():
        known = await repository.digests(session, plural)
        changed = domain.changes(entity, valid[plural], known)
        for change in changed:
            await repository.save(session, change)
        await outbox.stage(
            session,
            Streams.REGISTRY,
            *(
                new_event(entity.event_type, c.record, source="registries", subject=c.record_id)
                for c in changed
            ),
        )
        report.changed[plural] = len(changed)
    return report
