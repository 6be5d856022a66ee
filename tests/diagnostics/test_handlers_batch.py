"""Diagnostics takes results in batches (issue 13): the service's own subscriptions under the
real consumer, on a real Redis and SQLite/PostgreSQL, with no service around them (nothing
else talks to the database, so its statements can be counted).

What it proves: a batch costs a constant number of statements, not one per result; results
of one teacher in one batch behave exactly as if applied one after the other; a duplicate
external id inside one batch is seen; a refused result costs only itself (one handler call,
the others commit); held results are taken set-based when their teachers arrive; two
replicas completing one teacher take turns (PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from iomflow.diagnostics import campaigns, domain, handlers, repository, service
from iomflow.diagnostics.repository import tables
from iomflow.shared import db, migrations, wire
from iomflow.shared.contracts import (
    Event,
    ResultSubmitted,
    Streams,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.streams import Consumer, DeliverySettings, Handler, Outcome, Subscription
from iomflow.shared.unit import Deps

FRAMEWORK = domain.load_framework(
    Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))
)
ALL_FIVE = [
    "standardized_test",
    "expert_evaluation",
    "professional_results",
    "self_diagnosis",
    "burnout_survey",
]
OCTOBER = "2026-10-15T10:00:00+08:00"
RESULTS = Streams.RESULTS_INBOUND
entry_ids = itertools.count(1)


def teacher(teacher_id: str, municipality: str = "mun-01") -> Event[Any]:
    payload = TeacherUpserted(
        teacher_id=teacher_id, organization_id=f"org-{municipality}", municipality_id=municipality,
        position="учитель", audience="general", subjects=["математика"],
        age_band="35-44", experience_band="10-20",
    )  # fmt: skip
    return new_event("registry.teacher.upserted", payload, source="registries", subject=teacher_id)


def result(teacher_id: str, instrument: str, campaign: str = "autumn", **body: Any) -> Event[Any]:
    if "scores" not in body and "items" not in body:
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


def six(teacher_id: str, campaign: str = "autumn", base: float = 50) -> list[Event[Any]]:
    """A full campaign of one teacher: all five instruments, two experts."""
    return [
        result(teacher_id, "standardized_test", campaign, items=[
            {"item": "A1", "competency": "digital", "score": 1, "max_score": 2},
            {"item": "B1", "competency": "assessment", "score": 2, "max_score": 2},
        ]),
        result(teacher_id, "expert_evaluation", campaign, expert_id="e-1",
               scores={"teaching_methods": base, "digital": base - 10}),
        result(teacher_id, "expert_evaluation", campaign, expert_id="e-2",
               scores={"teaching_methods": base + 20, "digital": base}),
        result(teacher_id, "professional_results", campaign, scores={"functional_literacy": 80}),
        result(teacher_id, "self_diagnosis", campaign, scores={"digital": 70, "assessment": 80}),
        result(teacher_id, "burnout_survey", campaign),
    ]  # fmt: skip


@dataclass
class Bench:
    """The diagnostics consumer over a migrated database; ``calls``: each handler call as
    (event type, events given)."""

    engine: AsyncEngine
    consumer: Consumer
    redis: Redis
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def process(self, stream: str, events: Sequence[Event[Any]]) -> Outcome:
        entries = [(f"{next(entry_ids)}-0", wire.encode(e)) for e in events]
        return await self.consumer.process(stream, entries)

    async def teachers(self, *events: Event[Any]) -> None:
        outcome = await self.process(Streams.REGISTRY, events)
        assert len(outcome.applied) == len(events), outcome

    @contextmanager
    def statements(self) -> Iterator[list[str]]:
        """The SQL statements sent while inside (the database is the bench's alone)."""
        sent: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            sent.append(statement)

        sa_event.listen(self.engine.sync_engine, "before_cursor_execute", count)
        try:
            yield sent
        finally:
            sa_event.remove(self.engine.sync_engine, "before_cursor_execute", count)

    async def rows(self, query: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list(await conn.execute(query))

    async def count(self, table: Any, *where: Any) -> int:
        [(n,)] = await self.rows(select(func.count()).select_from(table).where(*where))
        return int(n)

    async def outbox(self, type_: str) -> list[dict[str, str]]:
        t = tables.outbox
        return [r.fields for r in await self.rows(select(t.c.fields).where(t.c.type == type_))]


def counted(subscriptions: Sequence[Subscription], calls: list[tuple[str, int]]) -> list[Any]:
    def wrap(type_: str, handler: Handler) -> Handler:
        async def handle(events: Sequence[Event[Any]], deps: Deps[Any]) -> None:
            calls.append((type_, len(events)))
            await handler(events, deps)

        return handle

    return [
        Subscription(s.stream, {t: wrap(t, h) for t, h in s.handlers.items()}, s.description)
        for s in subscriptions
    ]


async def open_bench(redis_url: str, database_url: str, *, fresh: bool = True) -> Bench:
    """A diagnostics consumer over ``database_url``; ``fresh``: migrate it first and open
    the campaigns (autumn: all five instruments; spring: the test only; both in mun-01)."""
    engine = db.create_engine(database_url)
    sessions = db.sessionmaker(engine)
    outbox = Outbox(tables.outbox)
    ctx = service.Diagnostics(FRAMEWORK)
    if fresh:
        await asyncio.to_thread(migrations.upgrade, "iomflow.diagnostics", database_url)
        async with service.transactions(sessions, outbox, ctx)() as deps:
            await campaigns.register_framework(deps.session, FRAMEWORK)
            await campaigns.ensure_default_campaign(deps.session, FRAMEWORK)
            for campaign_id, required in (("autumn", ALL_FIVE), ("spring", ALL_FIVE[:1])):
                await campaigns.create_campaign(
                    deps.session, campaign_id=campaign_id, name=f"Кампания {campaign_id}",
                    starts_on=date(2026, 9, 1), ends_on=date(2026, 12, 31),
                    municipalities=["mun-01"],
                    required=[domain.Instrument(i) for i in required], framework=FRAMEWORK,
                )  # fmt: skip
    redis = Redis.from_url(redis_url)
    calls: list[tuple[str, int]] = []
    consumer = Consumer(
        group="diagnostics",
        consumer="diagnostics-1",
        redis=redis,
        sessions=sessions,
        inbox_table=tables.inbox,
        outbox=outbox,
        tracer=TracerProvider().get_tracer("test"),
        subscriptions=counted(handlers.SUBSCRIPTIONS, calls),
        settings=DeliverySettings(),
        context=ctx,
    )
    return Bench(engine, consumer, redis, calls)


@pytest.fixture
async def bench(clean_redis: str, database_url: str) -> AsyncIterator[Bench]:
    bench = await open_bench(clean_redis, database_url)
    yield bench
    await bench.redis.aclose()
    await bench.engine.dispose()


# --- what a batch costs --------------------------------------------------------------------


async def test_a_batch_costs_the_same_statements_for_10_teachers_as_for_50(bench: Bench) -> None:
    await bench.teachers(*(teacher(f"t-{n}") for n in range(60)))
    cost = {}
    for first, many in ((0, 10), (10, 50)):
        events = [e for n in range(first, first + many) for e in six(f"t-{n}")]
        with bench.statements() as sent:
            outcome = await bench.process(RESULTS, events)
        assert len(outcome.applied) == 6 * many and not outcome.rejected
        cost[many] = len(sent)
    assert cost[10] == cost[50], cost  # not one per result, nor per teacher
    assert await bench.count(repository.diagnoses) == 60
    assert len(await bench.outbox("diagnostics.diagnosis.completed")) == 60
    # the brief's target: at most 3 statements a diagnosis over a batch of 100 results
    assert cost[10] / 10 <= 3, cost


async def test_a_batch_of_100_results_costs_under_3_statements_a_diagnosis(bench: Bench) -> None:
    await bench.teachers(*(teacher(f"t-{n}") for n in range(17)))
    events = [e for n in range(17) for e in six(f"t-{n}")][:100]  # 16 complete, 1 does not
    with bench.statements() as sent:
        outcome = await bench.process(RESULTS, events)
    assert len(outcome.applied) == 100
    assert await bench.count(repository.diagnoses) == 16
    assert len(sent) / 16 <= 3, sent
    assert bench.calls[-1] == ("diagnostics.result.submitted", 100)


# --- order within a batch ------------------------------------------------------------------


def story(teacher_id: str) -> list[Event[Any]]:
    """One teacher's results in an order that tests each rule: a retake, a result after
    the completion (late), a second campaign that compares with the first, a duplicate."""
    autumn = six(teacher_id)
    retake = result(teacher_id, "standardized_test", items=[
        {"item": "A1", "competency": "digital", "score": 2, "max_score": 2},
        {"item": "B1", "competency": "assessment", "score": 0, "max_score": 2},
    ])  # fmt: skip
    expert = result(
        teacher_id, "expert_evaluation", expert_id="e-3", external_id=f"x-{teacher_id}",
        scores={"teaching_methods": 90},
    )  # fmt: skip
    again = result(teacher_id, "self_diagnosis", external_id=f"x-{teacher_id}",
                   scores={"digital": 10})  # fmt: skip
    late = result(teacher_id, "self_diagnosis", scores={"digital": 99})
    spring = result(teacher_id, "standardized_test", "spring", scores={"digital": 90})
    return [autumn[0], expert, retake, again, *autumn[1:], late, spring]


async def diagnoses_of(bench: Bench, teacher_id: str) -> list[dict[str, Any]]:
    """A teacher's diagnoses as comparable values (no ids, no instants)."""
    d = repository.diagnoses
    rows = await bench.rows(
        select(d).where(d.c.teacher_id == teacher_id).order_by(d.c.completed_at)
    )
    campaign_of = {r.diagnosis_id: r.campaign_id for r in rows}
    results = repository.results
    result_rows = await bench.rows(
        select(results.c.result_id, results.c.instrument, results.c.expert_id)
        .where(results.c.teacher_id == teacher_id)
        .order_by(results.c.received_at)
    )
    name = {r.result_id: f"{r.instrument}/{r.expert_id}/{n}" for n, r in enumerate(result_rows)}
    return [
        {
            "campaign": r.campaign_id,
            "latest": r.latest,
            "previous": campaign_of.get(r.previous_diagnosis_id),
            "instruments": r.instruments,
            "deficits": [c["code"] for c in r.deficits],
            "changes": r.changes,
            "competencies": [
                {**c, "evidence": [{**e, "result_id": name[e["result_id"]]} for e in c["evidence"]]}
                for c in r.competencies
            ],
        }
        for r in rows
    ]


async def test_results_of_one_teacher_in_one_batch_apply_as_if_one_after_the_other(
    bench: Bench,
) -> None:
    await bench.teachers(teacher("together"), teacher("apart"))
    together = await bench.process(RESULTS, story("together"))
    calls = len(bench.calls)
    apart = [await bench.process(RESULTS, [e]) for e in story("apart")]
    assert bench.calls[calls:] == [("diagnostics.result.submitted", 1)] * len(apart)

    assert [r.code for r in together.rejected.values()] == ["duplicate_external_id"]
    assert [next((r.code for r in o.rejected.values()), None) for o in apart] == [
        None, None, None, "duplicate_external_id", *[None] * 7,
    ]  # fmt: skip
    assert await diagnoses_of(bench, "together") == await diagnoses_of(bench, "apart")

    [autumn, spring] = await diagnoses_of(bench, "together")
    assert (autumn["campaign"], autumn["latest"], autumn["previous"]) == ("autumn", False, None)
    assert (spring["campaign"], spring["latest"], spring["previous"]) == ("spring", True, "autumn")
    assert {c["change"] for c in spring["changes"]} <= {"closed", "improved", "unchanged", "worse"}
    digital = next(c for c in autumn["competencies"] if c["code"] == "digital")
    tests = [e for e in digital["evidence"] if e["instrument"] == "standardized_test"]
    assert [e["score"] for e in tests] == [100.0]  # the retake replaced the first test
    # results in order: test, expert e-3, retake, e-1, e-2, professional, self, burnout,
    # the late self-diagnosis (kept, not counted), spring's test
    selves = [e["result_id"] for e in digital["evidence"] if e["instrument"] == "self_diagnosis"]
    assert selves == ["self_diagnosis/None/6"]
    assert (
        await bench.count(repository.results, repository.results.c.teacher_id == "together")
        == len(story("together")) - 1
    )
    completed = await bench.outbox("diagnostics.diagnosis.completed")
    assert len(completed) == 4  # two each, once


async def test_a_duplicate_external_id_inside_one_batch_is_seen_and_a_refused_one_takes_none(
    bench: Bench,
) -> None:
    await bench.teachers(teacher("t-in"), teacher("t-out", municipality="mun-02"))
    first = await bench.process(RESULTS, [result("t-in", "self_diagnosis", external_id="old")])
    assert first.applied
    events = [
        result("t-out", "self_diagnosis", external_id="x"),  # not in the campaign: not taken
        result("t-in", "self_diagnosis", external_id="x"),  # so this one is no duplicate
        result("t-in", "expert_evaluation", expert_id="e", external_id="x"),  # this one is
        result("t-in", "standardized_test", external_id="old"),  # taken by an earlier batch
        result("t-in", "standardized_test", external_id="new"),
    ]
    outcome = await bench.process(RESULTS, events)
    codes = {entry: refused.code for entry, refused in outcome.rejected.items()}
    order = [entry for entry, _ in sorted(codes.items(), key=lambda c: int(c[0].split("-")[0]))]
    assert [codes[e] for e in order] == [
        "not_in_campaign",
        "duplicate_external_id",
        "duplicate_external_id",
    ]
    assert len(outcome.applied) == 2 and bench.calls[-1] == ("diagnostics.result.submitted", 5)
    stored = await bench.rows(
        select(repository.results.c.external_id).order_by(repository.results.c.received_at)
    )
    assert [r.external_id for r in stored] == ["old", "x", "new"]


async def test_a_refused_result_in_the_middle_of_a_batch_costs_only_itself(bench: Bench) -> None:
    await bench.teachers(*(teacher(f"t-{n}") for n in range(3)))
    bad = result("t-1", "self_diagnosis", taken_at="2027-01-10T10:00:00Z")
    events = [*six("t-0"), *six("t-1")[:3], bad, *six("t-1")[3:], *six("t-2")]
    outcome = await bench.process(RESULTS, events)
    assert bench.calls[-1] == ("diagnostics.result.submitted", len(events))  # one call: no redo
    [(entry, refused)] = outcome.rejected.items()
    assert refused.code == "outside_campaign_window" and "10.01.2027" in str(refused)
    assert len(outcome.applied) == len(events) - 1 and not outcome.failed
    assert await bench.count(repository.diagnoses) == 3
    assert await bench.count(repository.results) == 18
    inbox = tables.inbox
    assert await bench.count(inbox, inbox.c.event_id == str(bad.event_id)) == 0  # replayable
    [(_, letter)] = await bench.redis.xrange(Streams.dlq(RESULTS))
    letter = wire.text_fields(letter)
    assert letter["dlq_reason"] == "outside_campaign_window"
    assert letter["event_id"] == str(bad.event_id) and letter["dlq_entry_id"] == entry


async def test_a_bad_score_is_refused_before_anything_is_read(bench: Bench) -> None:
    await bench.teachers(teacher("t-1"))
    bad = result("t-1", "self_diagnosis", scores={"astrology": 50})
    with bench.statements() as sent:
        outcome = await bench.process(RESULTS, [bad])
    assert [r.code for r in outcome.rejected.values()] == ["unknown_competency"]
    assert not any("FROM campaigns" in s or "FROM teachers" in s for s in sent), sent


async def test_closing_a_campaign_and_revising_a_version_cost_the_same_for_5_as_for_20(
    bench: Bench,
) -> None:
    await bench.teachers(*(teacher(f"t-{n}") for n in range(25)))
    consumer = bench.consumer
    transaction = service.transactions(
        db.sessionmaker(bench.engine), consumer.outbox, consumer.context
    )
    cost: dict[str, dict[int, int]] = {"close": {}, "revise": {}}
    for first, many in ((0, 5), (5, 20)):
        campaign_id = f"c-{many}"
        async with transaction() as deps:
            await campaigns.create_campaign(
                deps.session, campaign_id=campaign_id, name=campaign_id, starts_on=None,
                ends_on=None, required=[domain.Instrument(i) for i in ALL_FIVE],
                framework=FRAMEWORK,
            )  # fmt: skip
        events = [e for n in range(first, first + many) for e in six(f"t-{n}", campaign_id)[:2]]
        assert len((await bench.process(RESULTS, events)).applied) == 2 * many
        with bench.statements() as sent:
            assert await service.close_campaign(transaction, campaign_id) == many
        cost["close"][many] = len(sent)
        d = repository.diagnoses
        ids = [r.diagnosis_id for r in await bench.rows(select(d.c.diagnosis_id))]
        with bench.statements() as sent:
            async with transaction() as deps:
                assert len(await service.revise_many(deps, ids, "проверка")) == len(ids)
        cost["revise"][many] = len(sent)
    assert cost["close"][5] == cost["close"][20], cost
    assert cost["revise"][5] == cost["revise"][20], cost
    assert await bench.count(repository.diagnoses) == 25
    assert len(await bench.outbox("diagnostics.diagnosis.revised")) == 5 + 25


# --- a history loaded later ----------------------------------------------------------------


async def test_a_past_campaigns_diagnosis_is_dated_by_its_latest_evidence(bench: Bench) -> None:
    """An operator loading last year's campaign opens it now, its window long over; its
    results are taken (each inside the window), and the diagnosis carries when its latest
    result was taken (``evidence_at``, UTC), wherever its evidence was read from (this
    batch, or an earlier one stored in the database)."""
    await bench.teachers(teacher("t-old"))
    consumer = bench.consumer
    transaction = service.transactions(
        db.sessionmaker(bench.engine), consumer.outbox, consumer.context
    )
    async with transaction() as deps:
        await campaigns.create_campaign(
            deps.session, campaign_id="autumn-2025", name="Осень 2025",
            starts_on=date(2025, 9, 1), ends_on=date(2025, 12, 31),
            required=[domain.Instrument(i) for i in ALL_FIVE], framework=FRAMEWORK,
        )  # fmt: skip
    days = ["10-01", "10-20", "10-06", "10-07", "10-08", "10-09"]
    events = [
        result(
            "t-old", e.payload.instrument.value, "autumn-2025",
            **{**e.payload.model_dump(exclude={"teacher_id", "instrument", "campaign_id"},
                                      exclude_none=True),
               "taken_at": f"2025-{day}T16:45:00+08:00"},
        )
        for e, day in zip(six("t-old"), days, strict=True)
    ]  # fmt: skip
    # the latest result (the first expert's, 20 October) comes in the first batch
    for batch in (events[:3], events[3:]):
        outcome = await bench.process(RESULTS, batch)
        assert len(outcome.applied) == len(batch) and not outcome.rejected
    [fields] = await bench.outbox("diagnostics.diagnosis.completed")
    completed = wire.decode(fields).payload
    assert completed.evidence_at == datetime(2025, 10, 20, 8, 45, tzinfo=UTC)
    [row] = await bench.rows(select(repository.diagnoses))
    assert service.as_contract(row).evidence_at == completed.evidence_at
    async with transaction() as deps:
        await service.revise_many(deps, [completed.diagnosis_id], "проверка")
    [fields] = await bench.outbox("diagnostics.diagnosis.revised")
    assert wire.decode(fields).payload.evidence_at == completed.evidence_at


# --- held results --------------------------------------------------------------------------


async def test_held_results_are_taken_set_based_when_their_teachers_arrive(bench: Bench) -> None:
    events = [*six("u-1"), *six("u-2"), *six("u-out")[:2]]
    with bench.statements() as sent:
        outcome = await bench.process(RESULTS, events)
    assert len(outcome.applied) == len(events)
    held = [s for s in sent if s.lstrip().upper().startswith("INSERT INTO HELD_RESULTS")]
    assert len(held) == 1  # one statement for all of them
    assert await bench.count(repository.held) == len(events)

    arriving = [teacher("u-1"), teacher("u-2"), teacher("u-out", municipality="mun-02")]
    with bench.statements() as sent:
        await bench.teachers(*arriving)
    assert bench.calls[-1] == ("registry.teacher.upserted", 3)
    reads = [
        s
        for s in sent
        if s.lstrip().upper().startswith("SELECT") and ("FROM results" in s or "FROM held" in s)
    ]
    assert len(reads) == 2, reads  # the held ones, the earlier results: once each
    assert await bench.count(repository.held) == 0
    assert await bench.count(repository.diagnoses) == 2
    assert await bench.count(repository.results) == 12
    letters = await bench.outbox("diagnostics.result.submitted")
    assert sorted(f["subject"] for f in letters) == ["u-out", "u-out"]
    assert {(f["dlq_reason"], f["dlq_entry_id"]) for f in letters} == {("not_in_campaign", "held")}
    inbox = tables.inbox
    out = [str(e.event_id) for e in events if e.subject == "u-out"]
    assert await bench.count(inbox, inbox.c.event_id.in_(out)) == 0  # replayable later


# --- two replicas ---------------------------------------------------------------------------


async def test_two_replicas_completing_one_teacher_take_turns(
    clean_redis: str, pg_database_url: str
) -> None:
    """The campaign needs the test and the self-diagnosis; each replica takes one of them.
    Without the teacher's row locked the two would each see the other's as missing, and the
    diagnosis would never complete."""
    bench = await open_bench(clean_redis, pg_database_url)
    other = await open_bench(clean_redis, pg_database_url, fresh=False)
    try:
        await bench.teachers(teacher("t-1"))
        async with bench.engine.begin() as conn:
            await conn.execute(
                repository.campaigns.update()
                .where(repository.campaigns.c.campaign_id == "autumn")
                .values(required=["standardized_test", "self_diagnosis"])
            )
        test, self_ = result("t-1", "standardized_test"), result("t-1", "self_diagnosis")
        sessions = db.sessionmaker(bench.engine)
        ctx = bench.consumer.context
        async with service.transactions(sessions, bench.consumer.outbox, ctx)() as deps:
            await service.take_results(deps, [test])
            second = asyncio.create_task(other.process(RESULTS, [self_]))
            await asyncio.sleep(0.5)
            assert not second.done()  # waiting for the first replica's lock on t-1
        outcome = await second
        assert outcome.applied
        completed = await bench.outbox("diagnostics.diagnosis.completed")
        assert len(completed) == 1 and await bench.count(repository.diagnoses) == 1
    finally:
        for b in (bench, other):
            await b.redis.aclose()
            await b.engine.dispose()
