"""Needs answers on a real database (SQLite and PostgreSQL), through the stream handler in
units of work as the consumer opens them (no Redis): what is stored, what is staged
(``diagnostics.needs.recorded`` with the teacher's organisation and municipality), each
rule's refusal, the (publisher, external id) dedupe inside a batch and across batches, an
answer of a teacher unknown to the registries held like a result and taken when the teacher
arrives (or dead-lettered past its deadline), and the age and experience bands the teacher
read model now keeps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from diagnostics import test_handlers
from iomflow.diagnostics import campaigns, domain, repository, service
from iomflow.diagnostics.repository import tables
from iomflow.shared.contracts import Event, NeedsSubmitted, Streams, TeacherUpserted, new_event

FRAMEWORK = test_handlers.FRAMEWORK
OCTOBER = "2026-10-07T15:00:00+08:00"


def teacher(teacher_id: str, municipality: str = "mun-01", **bands: str) -> Event[Any]:
    payload = TeacherUpserted.model_validate(
        {"teacher_id": teacher_id, "organization_id": f"org-{municipality}",
         "municipality_id": municipality, "position": "учитель", "audience": "general",
         "age_band": "25-34", "experience_band": "3-10", **bands}
    )  # fmt: skip
    return new_event("registry.teacher.upserted", payload, source="registries", subject=teacher_id)


def answer(teacher_id: str, source: str = "mms", **body: Any) -> Event[NeedsSubmitted]:
    payload = NeedsSubmitted.model_validate(
        {"teacher_id": teacher_id, "campaign_id": "autumn", "answered_at": OCTOBER,
         "competencies": ["digital", "assessment"], "themes": ["functional_literacy"],
         "formats": ["course", "mentoring"], **body}
    )  # fmt: skip
    return new_event("diagnostics.needs.submitted", payload, source=source, subject=teacher_id)


class Tier(test_handlers.Tier):
    """test_handlers' units of work, the staged events with their stream and fields."""

    async def staged(self) -> list[dict[str, Any]]:
        t = tables.outbox
        rows = await self.rows(select(t.c.stream, t.c.type, t.c.fields).order_by(t.c.id))
        return [
            {"stream": r.stream, "type": r.type, "fields": r.fields,
             "payload": json.loads(r.fields["data"])}
            for r in rows
        ]  # fmt: skip


@pytest.fixture
async def tier(database_url: str) -> AsyncIterator[Tier]:
    async with test_handlers.migrated(database_url) as (engine, transaction):
        async with transaction() as deps:
            await campaigns.create_campaign(
                deps.session, campaign_id="autumn", name="Осень", starts_on=date(2026, 9, 1),
                ends_on=date(2026, 12, 31), municipalities=["mun-01", "mun-02"],
                required=[domain.Instrument.SELF_DIAGNOSIS], framework=FRAMEWORK,
            )  # fmt: skip
        yield Tier(engine, transaction)


async def test_answers_are_stored_and_recorded_with_where_the_teacher_works(tier: Tier) -> None:
    await tier.handle([teacher("t-1"), teacher("t-2", "mun-02")])
    one, two = answer("t-1"), answer("t-2", external_id="n-2", formats=["webinar"])
    refused, staged = await tier.handle([one, two])
    assert refused == {}
    assert [(s["stream"], s["type"]) for s in staged] == [
        (Streams.DIAGNOSTICS, "diagnostics.needs.recorded")
    ] * 2
    assert staged[0]["payload"] == {
        "response_id": str(one.event_id), "teacher_id": "t-1", "organization_id": "org-mun-01",
        "municipality_id": "mun-01", "campaign_id": "autumn", "answered_on": "2026-10-07",
        "competencies": ["digital", "assessment"], "themes": ["functional_literacy"],
        "formats": ["course", "mentoring"],
    }  # fmt: skip
    assert staged[1]["payload"]["municipality_id"] == "mun-02"
    [row] = await tier.rows(select(repository.needs).where(repository.needs.c.teacher_id == "t-2"))
    assert (row.response_id, row.organization_id, row.external_id, row.source) == (
        str(two.event_id), "org-mun-02", "n-2", "mms",
    )  # fmt: skip
    assert row.formats == ["webinar"] and row.answered_on == date(2026, 10, 7)
    assert row.submitted["competencies"] == ["digital", "assessment"]
    async with tier.transaction() as deps:
        total, listed = await repository.list_needs(deps.session, campaign_id="autumn")
        rows = await repository.needs_rows(deps.session, "autumn")
    assert total == 2 and [r.teacher_id for r in listed] == ["t-1", "t-2"]
    assert [r.teacher_id for r in rows] == ["t-1", "t-2"]


async def test_each_rule_refuses_its_answer_and_the_others_are_taken(tier: Tier) -> None:
    await tier.handle([teacher("t-1"), teacher("t-out", "mun-09")])
    bad = {
        "unknown_competency": answer("t-1", competencies=["astrology"]),
        "unknown_campaign": answer("t-1", campaign_id="nope"),
        "outside_campaign_window": answer("t-1", answered_at="2027-02-01T10:00:00Z"),
        "not_in_campaign": answer("t-out"),
    }
    good = answer("t-1")
    refused, staged = await tier.handle([*bad.values(), good])
    assert refused == {str(e.event_id): code for code, e in bad.items()}
    assert [s["payload"]["response_id"] for s in staged] == [str(good.event_id)]
    assert await tier.count(repository.needs) == 1


async def test_a_publishers_external_id_names_one_answer_in_a_batch_and_across(
    tier: Tier,
) -> None:
    await tier.handle([teacher("t-1")])
    first, again = answer("t-1", external_id="n-1"), answer("t-1", external_id="n-1")
    other_publisher = answer("t-1", source="cop", external_id="n-1")
    refused, staged = await tier.handle([first, again, other_publisher])
    assert refused == {str(again.event_id): "duplicate_external_id"}
    assert len(staged) == 2
    later = answer("t-1", external_id="n-1")
    refused, staged = await tier.handle([later])
    assert refused == {str(later.event_id): "duplicate_external_id"} and staged == []
    assert await tier.count(repository.needs) == 2


async def test_an_answer_of_an_unknown_teacher_is_held_and_taken_when_they_arrive(
    tier: Tier,
) -> None:
    held = answer("t-new")
    refused, staged = await tier.handle([held])
    assert refused == {} and staged == []
    [row] = await tier.rows(select(repository.held))
    assert (row.event_id, row.type) == (str(held.event_id), "diagnostics.needs.submitted")
    assert await tier.count(repository.needs) == 0
    async with tier.transaction() as deps:  # a campaign's progress counts held results only
        progress = await repository.progress(
            deps.session, await repository.get_campaign(deps.session, "autumn")
        )
    assert "" not in progress

    refused, staged = await tier.handle([teacher("t-new", "mun-02")])
    assert refused == {}
    [recorded] = [s for s in staged if s["type"] == "diagnostics.needs.recorded"]
    assert recorded["payload"]["response_id"] == str(held.event_id)
    assert recorded["payload"]["municipality_id"] == "mun-02"
    assert await tier.count(repository.held) == 0
    assert await tier.count(repository.needs) == 1


async def test_a_held_answer_that_now_breaks_a_rule_or_expires_is_dead_lettered(
    tier: Tier,
) -> None:
    outside, ghost = answer("t-far"), answer("t-ghost")
    await tier.handle([outside, ghost])
    # t-far arrives outside the campaign's municipalities: dead-lettered with that reason
    _, staged = await tier.handle([teacher("t-far", "mun-09")])
    [letter] = [s for s in staged if s["stream"] == Streams.dlq(Streams.RESULTS_INBOUND)]
    assert letter["type"] == "diagnostics.needs.submitted"
    assert letter["fields"]["dlq_reason"] == "not_in_campaign"
    assert letter["fields"]["event_id"] == str(outside.event_id)
    # t-ghost never comes
    later = datetime.now(UTC) + timedelta(days=31)
    assert await service.expire_held(tier.transaction, later) == 1
    [expired] = [
        s for s in await tier.staged() if s["fields"].get("dlq_reason") == "unknown_teacher"
    ]
    assert expired["type"] == "diagnostics.needs.submitted"
    assert "t-ghost" in expired["fields"]["dlq_error"]
    assert "анкета потребностей не учтена" in expired["fields"]["dlq_error"]
    assert json.loads(expired["fields"]["data"])["formats"] == ["course", "mentoring"]
    assert await tier.count(repository.held) == 0 and await tier.count(repository.needs) == 0


async def test_the_teacher_read_model_keeps_the_age_and_experience_bands(tier: Tier) -> None:
    await tier.handle([teacher("t-1", age_band="<25", experience_band="<3")])
    await tier.handle([teacher("t-2", age_band="55+", experience_band="20+")])
    t = repository.teachers
    rows = await tier.rows(
        select(t.c.teacher_id, t.c.age_band, t.c.experience_band).order_by(t.c.teacher_id)
    )
    assert [tuple(r) for r in rows] == [("t-1", "<25", "<3"), ("t-2", "55+", "20+")]
