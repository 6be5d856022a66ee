"""The handler tier of diagnostics: its stream handlers and use cases driven with contract
events on a real database (SQLite and PostgreSQL), in units of work as the consumer opens
them, with no Redis: the diagnoses written and the events staged in the outbox.

What it proves: results complete diagnoses whose rows and staged events say the same
thing; what the use cases return is what was stored (nothing is read back: the aggregate
they decided on is the one saved); each rule's refusal changes nothing; a held result is
taken when its teacher arrives; revise and cancel change the row and stage their events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from iomflow.diagnostics import campaigns, domain, handlers, repository, service
from iomflow.diagnostics.repository import tables
from iomflow.shared import db, migrations
from iomflow.shared.contracts import (
    DiagnosisCompleted,
    Event,
    ResultSubmitted,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.errors import Refused
from iomflow.shared.outbox import Outbox

FRAMEWORK = domain.load_framework(
    Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))
)
ALL_FIVE = [i.value for i in domain.Instrument]
OCTOBER = "2026-10-15T10:00:00+08:00"


def teacher(teacher_id: str, municipality: str = "mun-01") -> Event[TeacherUpserted]:
    payload = TeacherUpserted(
        teacher_id=teacher_id, organization_id=f"org-{municipality}", municipality_id=municipality,
        position="учитель", audience="general", subjects=["математика"],
        age_band="35-44", experience_band="10-20",
    )  # fmt: skip
    return new_event("registry.teacher.upserted", payload, source="registries", subject=teacher_id)


def result(
    teacher_id: str, instrument: str, campaign: str = "autumn", **body: Any
) -> Event[ResultSubmitted]:
    if "scores" not in body:
        body["scores"] = (
            {"emotional_exhaustion": 60, "depersonalization": 40}
            if instrument == "burnout_survey"
            else {"digital": 35, "assessment": 70, "teaching_methods": 55}
        )
    payload = ResultSubmitted.model_validate(
        {"teacher_id": teacher_id, "instrument": instrument, "campaign_id": campaign,
         "taken_at": OCTOBER, **body}
    )  # fmt: skip
    return new_event("diagnostics.result.submitted", payload, source="cop", subject=teacher_id)


def full(teacher_id: str, campaign: str = "autumn") -> list[Event[ResultSubmitted]]:
    """All five instruments of one teacher (two experts)."""
    return [
        result(teacher_id, "standardized_test", campaign),
        result(teacher_id, "expert_evaluation", campaign, expert_id="e-1",
               scores={"teaching_methods": 40, "digital": 30}),
        result(teacher_id, "expert_evaluation", campaign, expert_id="e-2",
               scores={"teaching_methods": 70, "digital": 50}),
        result(teacher_id, "professional_results", campaign, scores={"functional_literacy": 80}),
        result(teacher_id, "self_diagnosis", campaign, scores={"digital": 70, "assessment": 80}),
        result(teacher_id, "burnout_survey", campaign),
    ]  # fmt: skip


@dataclass
class Tier:
    """Units of work over a migrated database, as the consumer opens them (without it)."""

    engine: AsyncEngine
    transaction: service.Transaction

    async def handle(
        self, events: Sequence[Event[Any]]
    ) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Give the events to their handler in one unit of work (as one batch); the codes
        of the refused, by event id, and the events it staged."""
        [type_] = {e.type for e in events}
        handler = {
            **handlers.REGISTRY,
            "diagnostics.result.submitted": handlers.results_submitted,
            "diagnostics.needs.submitted": handlers.needs_submitted,
        }
        before = await self.count(tables.outbox)
        async with self.transaction() as deps:
            await handler[type_](events, deps)
            refused = {k: v.code for k, v in deps.rejected.items()}
        return refused, (await self.staged())[before:]

    async def staged(self) -> list[dict[str, Any]]:
        t = tables.outbox
        rows = await self.rows(select(t.c.type, t.c.fields).order_by(t.c.id))
        return [{"type": r.type, "payload": json.loads(r.fields["data"])} for r in rows]

    async def rows(self, query: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list(await conn.execute(query))

    async def count(self, table: Any, *where: Any) -> int:
        [(n,)] = await self.rows(select(func.count()).select_from(table).where(*where))
        return int(n)

    async def diagnosis(self, diagnosis_id: str) -> domain.Diagnosis:
        async with self.transaction() as deps:
            found = await repository.get_diagnosis(deps.session, diagnosis_id)
        assert found is not None
        return found


@asynccontextmanager
async def migrated(database_url: str) -> AsyncIterator[tuple[AsyncEngine, service.Transaction]]:
    """A migrated database with the framework in force and its default campaign: its engine
    and units of work over it."""
    await asyncio.to_thread(migrations.upgrade, "iomflow.diagnostics", database_url)
    engine = db.create_engine(database_url)
    transaction = service.transactions(
        db.sessionmaker(engine), Outbox(tables.outbox), service.Diagnostics(FRAMEWORK)
    )
    async with transaction() as deps:
        await campaigns.register_framework(deps.session, FRAMEWORK)
        await campaigns.ensure_default_campaign(deps.session, FRAMEWORK)
    try:
        yield engine, transaction
    finally:
        await engine.dispose()


@pytest.fixture
async def tier(database_url: str) -> AsyncIterator[Tier]:
    async with migrated(database_url) as (engine, transaction):
        async with transaction() as deps:
            for campaign_id, required in (("autumn", ALL_FIVE), ("spring", ALL_FIVE[:1])):
                await campaigns.create_campaign(
                    deps.session, campaign_id=campaign_id, name=f"Кампания {campaign_id}",
                    starts_on=date(2026, 9, 1), ends_on=date(2026, 12, 31),
                    municipalities=["mun-01"],
                    required=[domain.Instrument(i) for i in required], framework=FRAMEWORK,
                )  # fmt: skip
        yield Tier(engine, transaction)


# --- results -------------------------------------------------------------------------------


async def test_results_complete_diagnoses_whose_rows_and_events_say_the_same(tier: Tier) -> None:
    await tier.handle([teacher("t-1"), teacher("t-2"), teacher("t-3")])
    events = [*full("t-1"), *full("t-2"), *full("t-3")[:-1]]  # t-3 lacks the burnout survey
    refused, staged = await tier.handle(events)
    assert refused == {}
    assert [e["type"] for e in staged] == ["diagnostics.diagnosis.completed"] * 2
    assert await tier.count(repository.results) == 17
    d = repository.diagnoses
    rows = await tier.rows(select(d).order_by(d.c.teacher_id))
    assert [(r.teacher_id, r.status, r.latest, r.revision) for r in rows] == [
        ("t-1", "completed", True, 0),
        ("t-2", "completed", True, 0),
    ]
    for row, event in zip(rows, staged, strict=True):
        payload = DiagnosisCompleted.model_validate(event["payload"])
        stored = await tier.diagnosis(row.diagnosis_id)
        assert payload == stored.completed()  # the event is the stored diagnosis
        assert payload.instruments == list(domain.Instrument)
        assert [c.code for c in payload.deficits] == ["digital", "teaching_methods"]
        assert payload.burnout is not None and payload.burnout.index == 50.0
        levels = await tier.rows(
            select(repository.levels).where(repository.levels.c.diagnosis_id == row.diagnosis_id)
        )
        assert {(lv.code, lv.level) for lv in levels} == {
            (c.code, c.level.value) for c in payload.competencies
        }
        assert row.deficit_count == 2


async def test_each_rule_refuses_its_result_and_the_others_are_taken(tier: Tier) -> None:
    await tier.handle([teacher("t-1"), teacher("far", "mun-09")])
    first = result("t-1", "self_diagnosis", external_id="x-1", scores={"digital": 50})
    await tier.handle([first])
    bad = {
        "unknown_competency": result("t-1", "self_diagnosis", scores={"astrology": 50}),
        "unknown_campaign": result("t-1", "self_diagnosis", "winter"),
        "outside_campaign_window": result("t-1", "self_diagnosis", taken_at="2026-08-31T10:00Z"),
        "not_in_campaign": result("far", "self_diagnosis"),
        "duplicate_external_id": result("t-1", "standardized_test", external_id="x-1"),
    }
    good = result("t-1", "standardized_test", taken_at="2026-12-31T20:00+03:00")  # inside
    refused, staged = await tier.handle([*bad.values(), good])
    assert refused == {str(e.event_id): code for code, e in bad.items()}
    assert staged == []
    assert await tier.count(repository.results) == 2  # the first and the good one


async def test_a_closed_campaign_and_a_cancelled_diagnosis_refuse_results(tier: Tier) -> None:
    await tier.handle([teacher("t-1")])
    _, [completed] = await tier.handle(
        [result("t-1", "standardized_test", "spring")]
    )  # spring needs the test only
    diagnosis_id = completed["payload"]["diagnosis_id"]
    async with tier.transaction() as deps:
        await service.cancel(deps, diagnosis_id, "ошибка")
    late = result("t-1", "self_diagnosis", "spring")
    assert list((await tier.handle([late]))[0].values()) == ["diagnosis_cancelled"]
    assert await service.close_campaign(tier.transaction, "autumn") == 0
    closed = result("t-1", "self_diagnosis")
    assert list((await tier.handle([closed]))[0].values()) == ["campaign_closed"]


async def test_a_result_for_an_unknown_teacher_is_held_and_taken_when_they_arrive(
    tier: Tier,
) -> None:
    refused, staged = await tier.handle(full("newcomer"))
    assert (refused, staged) == ({}, [])
    assert await tier.count(repository.held) == 6
    assert await tier.count(repository.results) == 0
    refused, staged = await tier.handle([teacher("newcomer")])
    assert refused == {} and [e["type"] for e in staged] == ["diagnostics.diagnosis.completed"]
    assert staged[0]["payload"]["teacher_id"] == "newcomer"
    assert await tier.count(repository.held) == 0
    assert await tier.count(repository.results) == 6


async def test_a_second_campaign_compares_with_the_first_and_replaces_it(tier: Tier) -> None:
    await tier.handle([teacher("t-1")])
    _, [autumn] = await tier.handle(full("t-1"))
    _, [spring] = await tier.handle(
        [result("t-1", "standardized_test", "spring", scores={"digital": 90})]
    )
    assert spring["payload"]["previous_diagnosis_id"] == autumn["payload"]["diagnosis_id"]
    assert {c["code"]: c["change"] for c in spring["payload"]["changes"]}["digital"] == "closed"
    first = await tier.diagnosis(autumn["payload"]["diagnosis_id"])
    second = await tier.diagnosis(spring["payload"]["diagnosis_id"])
    assert (first.latest, second.latest) == (False, True)


# --- operator commands ---------------------------------------------------------------------


async def test_what_the_commands_return_is_what_they_stored(tier: Tier) -> None:
    await tier.handle([teacher("t-1"), teacher("t-2")])
    await tier.handle([*full("t-1"), result("t-2", "self_diagnosis", scores={"digital": 20})])
    async with tier.transaction() as deps:
        closed = await service.close_diagnosis(deps, "t-2", "autumn")
    assert closed == await tier.diagnosis(closed.diagnosis_id)
    assert closed.completed_by == "operator" and [c.code for c in closed.deficits] == ["digital"]

    [completed] = await tier.rows(
        select(repository.diagnoses.c.diagnosis_id).where(
            repository.diagnoses.c.teacher_id == "t-1"
        )
    )
    before = await tier.count(tables.outbox)
    async with tier.transaction() as deps:
        revised = await service.revise(deps, completed.diagnosis_id, "пересчёт")
    assert revised == await tier.diagnosis(completed.diagnosis_id)
    assert (revised.revision, revised.history[0]["reason"]) == (1, "пересчёт")
    async with tier.transaction() as deps:
        cancelled = await service.cancel(deps, completed.diagnosis_id, "ошибка")
    assert cancelled == await tier.diagnosis(completed.diagnosis_id)
    assert (cancelled.status, cancelled.latest, cancelled.revision) == ("cancelled", False, 1)
    staged = (await tier.staged())[before:]
    assert [(e["type"], e["payload"]["diagnosis_id"]) for e in staged] == [
        ("diagnostics.diagnosis.revised", completed.diagnosis_id),
        ("diagnostics.diagnosis.cancelled", completed.diagnosis_id),
    ]
    assert staged[0]["payload"]["revision"] == 1 and staged[1]["payload"]["reason"] == "ошибка"


async def test_cancelling_the_current_diagnosis_makes_the_previous_one_current(
    tier: Tier,
) -> None:
    await tier.handle([teacher("t-1")])
    _, [autumn] = await tier.handle(full("t-1"))
    _, [spring] = await tier.handle([result("t-1", "standardized_test", "spring")])
    async with tier.transaction() as deps:
        await service.cancel(deps, spring["payload"]["diagnosis_id"], "ошибка")
    assert (await tier.diagnosis(autumn["payload"]["diagnosis_id"])).latest


@pytest.mark.parametrize(
    ("command", "code", "status"),
    [
        ("revise-unknown", "not_found", 404),
        ("cancel-unknown", "not_found", 404),
        ("cancel-twice", "already_cancelled", 409),
        ("revise-cancelled", "diagnosis_cancelled", 409),
        ("close-twice", "already_completed", 409),
        ("close-nothing", "no_results", 404),
        ("close-standing", "standing_campaign", 409),
        ("close-unknown", "unknown_campaign", 404),
    ],
)
async def test_commands_that_break_a_rule_are_refused_and_change_nothing(
    tier: Tier, command: str, code: str, status: int
) -> None:
    await tier.handle([teacher("t-1")])
    _, [spring] = await tier.handle([result("t-1", "standardized_test", "spring")])
    diagnosis_id = spring["payload"]["diagnosis_id"]
    if command in ("cancel-twice", "revise-cancelled"):
        async with tier.transaction() as deps:
            await service.cancel(deps, diagnosis_id, "ошибка")
    before = (await tier.count(tables.outbox), await tier.diagnosis(diagnosis_id))
    with pytest.raises(Refused) as caught:
        if command.startswith("close-") and command in ("close-standing", "close-unknown"):
            campaign_id = "default" if command == "close-standing" else "winter"
            await service.close_campaign(tier.transaction, campaign_id)
        else:
            async with tier.transaction() as deps:
                if command == "revise-unknown":
                    await service.revise(deps, "no-such", "пересчёт")
                elif command == "cancel-unknown":
                    await service.cancel(deps, "no-such", "ошибка")
                elif command == "cancel-twice":
                    await service.cancel(deps, diagnosis_id, "ещё раз")
                elif command == "revise-cancelled":
                    await service.revise(deps, diagnosis_id, "пересчёт")
                elif command == "close-twice":
                    await service.close_diagnosis(deps, "t-1", "spring")
                else:
                    await service.close_diagnosis(deps, "t-1", "autumn")
    assert (caught.value.code, caught.value.status) == (code, status)
    assert (await tier.count(tables.outbox), await tier.diagnosis(diagnosis_id)) == before
