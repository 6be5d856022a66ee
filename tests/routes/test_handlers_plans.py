"""The handler tier of the support outside a route in routes (issue 16), on a real database
(SQLite and PostgreSQL): the read models of mentoring pairs, practices, communities' themes
and organisations kept from registry events, drafting with them (a prevention step for a
high burnout level, no second mentor for a paired mentee, a practice of the bank cited) in
one read per table for the batch, and the support plans' use cases staging the whole plan
as ``routes.plan.updated``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from iomflow.routes import plans, repository
from iomflow.routes.plans import ActionDraft
from iomflow.shared.contracts import (
    BurnoutResult,
    CommunityUpserted,
    Contract,
    Event,
    MentoringPairUpserted,
    OrganizationUpserted,
    PracticeUpserted,
    new_event,
)
from iomflow.shared.errors import Refused
from iomflow.shared.unit import Deps
from routes.test_handlers_batch import Routes, diagnosis, open_routes_db, region

HIGH = BurnoutResult(index=81.0, level="high", scales={"exhaustion": 90.0, "cynicism": 72.0})
PLAN = "routes.plan.updated"


def upserted(entity: str, payload: Contract, key: str) -> Event[Any]:
    return new_event(f"registry.{entity}.upserted", payload, source="registries", subject=key)


def pair(ends_on: date | None = None) -> Event[Any]:
    return upserted(
        "mentoring_pair",
        MentoringPairUpserted(
            pair_id="pair-1",
            organization_id="org-1",
            municipality_id="mun-1",
            mentor_id="mentor-9",
            mentee_id="t-0",
            focus="методика урока",
            starts_on=date(2026, 1, 12),
            ends_on=ends_on,
        ),
        "pair-1",
    )


def practice(practice_id: str, status: str, year: int = 2025) -> Event[Any]:
    return upserted(
        "practice",
        PracticeUpserted(
            practice_id=practice_id,
            title=f"Практика {practice_id}: диалог на уроке",
            organization_id="org-3",
            municipality_id="mun-1",
            competencies=["communication"],
            year=year,
            status=status,  # type: ignore[arg-type]
        ),
        practice_id,
    )


PREVENTION_COMMUNITY = upserted(
    "community",
    CommunityUpserted(
        community_id="c-prev",
        title="Ресурсный клуб педагогов",
        level="regional",  # type: ignore[arg-type]
        themes=["burnout_prevention"],  # type: ignore[list-item]
    ),
    "c-prev",
)


def with_burnout(event: Event[Any], burnout: BurnoutResult | None) -> Event[Any]:
    return event.model_copy(
        update={"payload": event.payload.model_copy(update={"burnout": burnout})}
    )


def steps_of(route: Any, **match: Any) -> list[dict[str, Any]]:
    return [s for s in route.steps if all(s.get(k) == v for k, v in match.items())]


@pytest.fixture
async def world(database_url: str) -> Any:
    w = await open_routes_db(
        database_url, region(teachers=2, methodists=[("m-1", 10)], resources=5)
    )
    w.ctx.today = lambda: date(2026, 9, 1)  # drafts start then; the pair of 2026 runs
    yield w
    await w.engine.dispose()


async def test_drafting_prevents_burnout_skips_a_paired_mentee_and_cites_the_bank(
    world: Routes,
) -> None:
    await world.deliver(
        [
            PREVENTION_COMMUNITY,
            pair(),
            practice("pr-bank", "included"),
            practice("pr-new", "submitted", year=2026),  # not in the bank yet
        ]
    )
    statements: list[str] = []

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa_event.listen(world.engine.sync_engine, "before_cursor_execute", counted)
    codes = ("digital", "communication")  # no program on communication: consultations
    await world.deliver(
        [with_burnout(diagnosis(1, 0, codes=codes), HIGH), diagnosis(2, 1, codes=codes)]
    )
    sa_event.remove(world.engine.sync_engine, "before_cursor_execute", counted)
    # the batch's two young teachers' pairs: one read
    assert sum("mentoring_pairs" in s for s in statements) == 1

    routes = await world.routes()
    paired, other = routes["d-1"], routes["d-2"]
    (prevention,) = steps_of(paired, purpose="burnout_prevention")
    assert (prevention["kind"], prevention["community_id"]) == ("community", "c-prev")
    assert prevention["competency"] == "psych_pedagogy"
    assert "индекс 81 из 100" in prevention["reason"]
    assert steps_of(paired, kind="mentoring") == []
    first = next(s for s in paired.steps if s["purpose"] == "deficit")
    assert "в паре наставничества «pair-1»" in first["reason"]
    assert "наставник mentor-9" in first["reason"]
    assert any(h.get("notes") for h in paired.history if h["action"] == "drafted")
    (consultation,) = steps_of(paired, kind="consultation")
    assert consultation["practice_id"] == "pr-bank"
    assert "«Практика pr-bank: диалог на уроке»" in consultation["reason"]

    # t-1 is young with no pair and no high burnout: a mentor, no prevention
    assert [s["mentor_id"] for s in steps_of(other, kind="mentoring")] == ["mentor-1"]
    assert steps_of(other, purpose="burnout_prevention") == []

    drafted = {p["diagnosis_id"]: p for t, p in await world.published() if t.endswith("drafted")}
    sent = {s["step_id"]: s for s in drafted["d-1"]["steps"]}
    assert sent[prevention["step_id"]]["purpose"] == "burnout_prevention"
    assert sent[consultation["step_id"]]["practice_id"] == "pr-bank"


async def test_an_ended_pair_and_a_practice_out_of_the_bank_change_the_next_draft(
    world: Routes,
) -> None:
    codes = ("communication",)
    await world.deliver([pair(), practice("pr-bank", "included")])
    await world.deliver([diagnosis(1, 0, codes=codes)])
    # the pair ended, the practice was rejected on review (the kept offer is forgotten)
    await world.deliver([pair(ends_on=date(2026, 1, 31)), practice("pr-bank", "rejected")])
    await world.deliver([diagnosis(2, 0, codes=codes)])
    routes = await world.routes()
    assert steps_of(routes["d-1"], kind="mentoring") == []
    assert steps_of(routes["d-1"], kind="consultation")[0]["practice_id"] == "pr-bank"
    assert [s["mentor_id"] for s in steps_of(routes["d-2"], kind="mentoring")] == ["mentor-1"]
    (consultation,) = steps_of(routes["d-2"], kind="consultation")
    assert consultation["practice_id"] is None
    assert "практик" not in consultation["reason"]


async def test_a_high_burnout_without_a_prevention_community_gets_consultations(
    world: Routes,
) -> None:
    await world.deliver([with_burnout(diagnosis(1, 0, codes=("digital",)), HIGH)])
    (step,) = steps_of((await world.routes())["d-1"], purpose="burnout_prevention")
    assert step["kind"] == "consultation"
    assert step["hours"] == 4
    assert "консультации регионального методиста" in step["reason"]


# --- support plans ---------------------------------------------------------------------------


def organization(organization_id: str, **flags: bool) -> Event[Any]:
    return upserted(
        "organization",
        OrganizationUpserted(
            organization_id=organization_id,
            municipality_id="mun-1",
            name=f"Школа {organization_id}",
            kind="school",  # type: ignore[arg-type]
            **flags,
        ),
        organization_id,
    )


async def command(world: Routes, work: Callable[[Deps[Any]], Awaitable[Any]]) -> Any:
    """A use case in its own transaction, as an HTTP command runs it."""
    async with world.sessions() as session, session.begin():
        deps = Deps(session, world.outbox, world.ctx)
        found = await work(deps)
        await deps.flush()
        return found


async def plans_published(world: Routes) -> list[dict[str, Any]]:
    return [p for t, p in await world.published() if t == PLAN]


async def test_a_plan_is_published_whole_on_every_change(world: Routes) -> None:
    await world.deliver([organization("org-low", low_results=True)])
    first = [
        ActionDraft("activity", "Семинар по функциональной грамотности", date(2026, 10, 15)),
        ActionDraft("mentoring", "Наставничество для молодых", date(2026, 12, 1), "mentor"),
    ]
    opened = await command(
        world,
        lambda d: plans.open_plan(d, "org-low", "m-1", date(2026, 9, 1), first, "plan-1"),
    )
    assert opened.municipality_id == "mun-1"
    await command(
        world,
        lambda d: plans.add_action(
            d, "plan-1", ActionDraft("internship", "Стажировка в лицее", date(2027, 2, 1))
        ),
    )
    await command(world, lambda d: plans.mark_done(d, "plan-1", "a1", date(2026, 10, 14)))
    await command(world, lambda d: plans.close_plan(d, "plan-1", date(2027, 3, 1)))

    sent = await plans_published(world)
    assert [len(p["actions"]) for p in sent] == [2, 3, 3, 3]
    assert [p["status"] for p in sent] == ["active", "active", "active", "closed"]
    last = sent[-1]
    assert last["organization_id"] == "org-low" and last["methodist_id"] == "m-1"
    assert [a["action_id"] for a in last["actions"]] == ["a1", "mentor", "a3"]
    assert last["actions"][0]["done_on"] == "2026-10-14"
    assert all(a["responsible_id"] == "m-1" for a in last["actions"])
    async with world.sessions() as session:
        row = (await session.execute(select(repository.support_plans))).one()
    assert (row.status, row.closed_on, len(row.actions)) == ("closed", date(2027, 3, 1), 3)


async def test_a_plan_is_refused_for_a_school_not_flagged_and_nothing_is_staged(
    world: Routes,
) -> None:
    await world.deliver(
        [organization("org-fine"), organization("org-hard", unfavorable_conditions=True)]
    )

    async def refused(work: Callable[[Deps[Any]], Awaitable[Any]]) -> Refused:
        with pytest.raises(Refused) as caught:
            await command(world, work)
        return caught.value

    start = date(2026, 9, 1)
    not_flagged = await refused(lambda d: plans.open_plan(d, "org-fine", "m-1", start))
    assert (not_flagged.code, not_flagged.status) == ("not_flagged", 409)
    assert "не отмечена" in str(not_flagged)
    unknown = await refused(lambda d: plans.open_plan(d, "org-none", "m-1", start))
    assert (unknown.code, unknown.status) == ("unknown_organization", 422)
    nobody = await refused(lambda d: plans.open_plan(d, "org-hard", "m-404", start))
    assert (nobody.code, nobody.status) == ("unknown_methodist", 422)
    early = ActionDraft("course", "Курс", date(2026, 8, 1))
    before = await refused(lambda d: plans.open_plan(d, "org-hard", "m-1", start, [early]))
    assert (before.code, before.status) == ("due_before_start", 422)
    assert await plans_published(world) == []

    # unfavourable conditions flag a school too; one active plan per school
    await command(world, lambda d: plans.open_plan(d, "org-hard", "m-1", start, (), "p-1"))
    twice = await refused(lambda d: plans.open_plan(d, "org-hard", "m-1", start))
    assert (twice.code, twice.status) == ("plan_active", 409)
    await command(world, lambda d: plans.close_plan(d, "p-1", date(2026, 12, 1)))
    closed = await refused(
        lambda d: plans.add_action(d, "p-1", ActionDraft("other", "x", date(2026, 12, 2)))
    )
    assert (closed.code, closed.status) == ("plan_closed", 409)
    again = await command(world, lambda d: plans.open_plan(d, "org-hard", "m-1", start))
    assert again.status == "active"
    missing = await refused(lambda d: plans.mark_done(d, again.plan_id, "a9", start))
    assert (missing.code, missing.status) == ("action_not_found", 404)
    assert len(await plans_published(world)) == 3  # opened, closed, opened
