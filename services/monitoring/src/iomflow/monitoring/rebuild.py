"""Rebuild every projection by replaying the streams from their first entry.

The registries' stream first (who the members are, what programs teach), then diagnoses,
then routes; each entry through the same handler as when it arrived live, in runs of one
type as the consumer makes them. Entries the
service never applied (a type it does not read, a malformed entry that was dead-lettered)
are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.monitoring import handlers, repository
from iomflow.monitoring.context import Context
from iomflow.shared import wire
from iomflow.shared.contracts import Event
from iomflow.shared.outbox import Outbox
from iomflow.shared.unit import Deps
from iomflow.shared.wire import BadEntry

CHUNK = 1000


@dataclass
class Replayed:
    applied: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    invalid: int = 0


async def replay(
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    context: Context,
    progress: Callable[[str, int, int], None] | None = None,
) -> Replayed:
    """Empty the projections and apply every entry of the streams monitoring reads, in one
    transaction: readers see the old values until the new ones are complete. Entries are
    read ``CHUNK`` at a time and each run of one type in a chunk is one handler call, as
    when they arrived live in batches."""
    done = Replayed()
    async with sessions() as session, session.begin():
        deps = Deps(session, outbox, context, context.clock)
        await repository.empty(session)
        for subscription in handlers.SUBSCRIPTIONS:
            stream, table = subscription.stream, subscription.handlers
            total = await redis.xlen(stream)
            seen, after = 0, "-"
            while True:
                # "(" = after that entry, exclusive (Redis 6.2+)
                entries = await redis.xrange(stream, min=after, count=CHUNK) or []
                if not entries:
                    break
                run: list[Event[Any]] = []
                for _, fields in entries:
                    seen += 1
                    text = wire.text_fields(fields)  # type: ignore[arg-type]
                    if text.get("type", "") not in table:
                        done.skipped += 1
                        continue
                    try:
                        event = wire.decode(text)
                    except BadEntry:
                        done.invalid += 1
                        continue
                    if run and run[0].type != event.type:
                        await table[run[0].type](run, deps)
                        run = []
                    run.append(event)
                    done.applied[stream] = done.applied.get(stream, 0) + 1
                if run:
                    await table[run[0].type](run, deps)
                after = "(" + wire.as_text(entries[-1][0])  # type: ignore[arg-type]
                if progress is not None:
                    progress(stream, seen, total)
        await deps.flush()
    return done


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """KPI values (level, code) that differ between two ``/v1/kpis``-shaped answers."""

    def values(answer: dict[str, Any]) -> dict[tuple[str, str], Any]:
        out = {("region", k["code"]): k["value"] for k in answer["region"]["kpis"]}
        for mun in answer["municipalities"]:
            out.update({(mun["municipality_id"], k["code"]): k["value"] for k in mun["kpis"]})
        return out

    old, new = values(before), values(after)
    return [
        f"{level} {code}: {old.get((level, code))} → {new.get((level, code))}"
        for level, code in sorted(old.keys() | new.keys())
        if old.get((level, code)) != new.get((level, code))
    ]
