"""Routes in process on a real Redis and SQLite/PostgreSQL, for the support outside a route
(issue 16): a high burnout level's prevention step and a paired young teacher's route
through the stream (the diagnosis read through routes' digest), and the support plans of
low-results schools over HTTP — keyed writes, problems in Russian, the whole plan published
as ``routes.plan.updated`` by the relay."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from waiting import wait_for

from iomflow.routes import repository
from iomflow.shared.contracts import (
    BurnoutResult,
    CommunityUpserted,
    Event,
    MentoringPairUpserted,
    OrganizationUpserted,
    PracticeUpserted,
    Streams,
)
from routes.test_api import (
    ADMIN,
    TODAY,
    deficit,
    diagnose,
    diagnosis,
    key_for,
    load_registry,
    one_published,
    publish,
    published,
    upserted,
)


async def held(app: FastAPI, table: Any, n: int) -> None:
    """Wait until a read model holds ``n`` rows."""

    async def there() -> bool:
        async with app.state.runtime.sessions() as session:
            count = await session.execute(select(func.count()).select_from(table))
            return int(count.scalar_one()) >= n

    await wait_for(there, f"{n} rows in {table.name}")


def support_registry() -> list[Event[Any]]:
    return [
        upserted(
            "community",
            CommunityUpserted(
                community_id="c-prev",
                title="Клуб профилактики выгорания",
                level="municipal",  # type: ignore[arg-type]
                municipality_id="mun-01",
                themes=["burnout_prevention"],  # type: ignore[list-item]
            ),
            "c-prev",
        ),
        upserted(
            "mentoring_pair",
            MentoringPairUpserted(
                pair_id="pair-7",
                organization_id="org-1",
                municipality_id="mun-01",
                mentor_id="mentor-1",
                mentee_id="t-young",
                starts_on=date(2026, 9, 1),
            ),
            "pair-7",
        ),
        upserted(
            "practice",
            PracticeUpserted(
                practice_id="pr-1",
                title="Коммуникативные пятиминутки",
                organization_id="org-5",
                municipality_id="mun-01",
                competencies=["communication"],
                year=2025,
                status="replicated",
            ),
            "pr-1",
        ),
        *(
            upserted(
                "organization",
                OrganizationUpserted(
                    organization_id=org,
                    municipality_id="mun-01",
                    name=name,
                    kind="school",  # type: ignore[arg-type]
                    low_results=low,
                ),
                org,
            )
            for org, name, low in (("org-1", "СОШ № 1", True), ("org-5", "Гимназия № 5", False))
        ),
    ]


async def test_a_high_burnout_and_a_paired_young_teacher_through_the_stream(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    await publish(clean_redis, Streams.REGISTRY, support_registry())
    await held(app, repository.practices, 1)
    await held(app, repository.organizations, 2)
    high = BurnoutResult(index=77.25, level="high", scales={"exhaustion": 80.0})
    route = await diagnose(
        client,
        clean_redis,
        diagnosis("t-young", deficit("communication", 35), deficit("digital", 40), burnout=high),
    )
    kinds = [(s["kind"], s.get("purpose")) for s in route["steps"]]
    assert ("community", "burnout_prevention") in kinds
    assert all(kind != "mentoring" for kind, _ in kinds)
    prevention = next(s for s in route["steps"] if s.get("purpose") == "burnout_prevention")
    assert prevention["community_id"] == "c-prev"
    assert "индекс 77,25 из 100" in prevention["reason"]
    consultation = next(s for s in route["steps"] if s["kind"] == "consultation")
    assert consultation["practice_id"] == "pr-1"
    assert "«Коммуникативные пятиминутки»" in consultation["reason"]
    assert "«pair-7»" in route["steps"][1]["reason"]  # the first deficit's step
    drafted = await one_published(clean_redis, "routes.route.drafted", teacher_id="t-young")
    assert any(s["purpose"] == "burnout_prevention" for s in drafted["steps"])


async def test_support_plans_over_http(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    await publish(clean_redis, Streams.REGISTRY, support_registry())
    await held(app, repository.organizations, 2)
    methodist = await key_for(app, "ЦНППМ", "methodist", person="meth-1")
    teacher = await key_for(app, "портал", "teacher")
    body = {
        "plan_id": "plan-1",
        "organization_id": "org-1",
        "methodist_id": "meth-1",
        "starts_on": "2026-09-01",
        "actions": [
            {"kind": "activity", "title": "Методический семинар", "due_on": "2026-10-01"},
            {"kind": "internship", "title": "Стажировка", "due_on": "2026-12-20"},
        ],
    }
    assert (await client.post("/v1/plans", json=body)).status_code == 401
    assert (await client.post("/v1/plans", json=body, headers=teacher)).status_code == 403

    created = await client.post("/v1/plans", json=body, headers=methodist)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["status"] == "active" and plan["municipality_id"] == "mun-01"
    # the service's day is 2026-10-20: the seminar's due date has passed
    assert [a["overdue"] for a in plan["actions"]] == [True, False]
    assert plan["overdue"] == 1
    sent = await one_published(clean_redis, "routes.plan.updated", plan_id="plan-1")
    assert len(sent["actions"]) == 2

    refused = await client.post(
        "/v1/plans", json={**body, "plan_id": "p-2", "organization_id": "org-5"}, headers=methodist
    )
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "not_flagged"
    assert "не отмечена" in problem["detail"]
    again = await client.post("/v1/plans", json={**body, "plan_id": "p-3"}, headers=methodist)
    assert (again.status_code, again.json()["code"]) == (409, "plan_active")
    unknown = await client.post(
        "/v1/plans", json={**body, "plan_id": "p-4", "methodist_id": "x"}, headers=methodist
    )
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_methodist")
    bad_kind = await client.post(
        "/v1/plans/plan-1/actions",
        json={"kind": "party", "title": "?", "due_on": "2026-11-01"},
        headers=methodist,
    )
    assert bad_kind.status_code == 422

    added = await client.post(
        "/v1/plans/plan-1/actions",
        json={"kind": "consultation", "title": "Консультация директору", "due_on": "2026-11-05"},
        headers=methodist,
    )
    assert added.status_code == 201, added.text
    assert [a["action_id"] for a in added.json()["actions"]] == ["a1", "a2", "a3"]
    early = await client.post(
        "/v1/plans/plan-1/actions",
        json={"kind": "course", "title": "Курс", "due_on": "2026-08-01"},
        headers=methodist,
    )
    assert (early.status_code, early.json()["code"]) == (422, "due_before_start")

    done = await client.post(
        "/v1/plans/plan-1/actions/a1/done", json={"done_on": "2026-10-02"}, headers=methodist
    )
    assert done.status_code == 200, done.text
    assert done.json()["actions"][0]["done_on"] == "2026-10-02"
    assert done.json()["overdue"] == 0
    twice = await client.post("/v1/plans/plan-1/actions/a1/done", json={}, headers=methodist)
    assert (twice.status_code, twice.json()["code"]) == (409, "action_done")
    missing = await client.post("/v1/plans/plan-1/actions/a9/done", json={}, headers=methodist)
    assert (missing.status_code, missing.json()["code"]) == (404, "action_not_found")

    closed = await client.post("/v1/plans/plan-1/close", headers=methodist)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert closed.json()["closed_on"] == TODAY.isoformat()
    shut = await client.post("/v1/plans/plan-1/close", headers=ADMIN)
    assert (shut.status_code, shut.json()["code"]) == (409, "plan_closed")

    listed = (await client.get("/v1/plans", params={"organization_id": "org-1"})).json()
    assert (listed["total"], listed["items"][0]["plan_id"]) == (1, "plan-1")
    assert (await client.get("/v1/plans", params={"status": "active"})).json()["total"] == 0
    assert (await client.get("/v1/plans/plan-1")).json()["status"] == "closed"
    assert (await client.get("/v1/plans/nope")).status_code == 404

    async def all_sent() -> bool:
        return len(await published(clean_redis, "routes.plan.updated", plan_id="plan-1")) == 4

    await wait_for(all_sent, "the plan's four versions")
    last = (await published(clean_redis, "routes.plan.updated", plan_id="plan-1"))[-1]
    assert last["status"] == "closed" and len(last["actions"]) == 3
