"""Alerts: each kind raised by a test, on hand-made facts and through the service on a real
Redis and SQLite/PostgreSQL (raised once, listed, published, resolved when gone)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from waiting import wait_for

from iomflow.monitoring import alerts, checks, domain
from iomflow.monitoring.domain import Fact, Facts, Member, load_catalogue
from iomflow.shared.contracts import (
    ActivityHeld,
    BurnoutResult,
    CompetencyResult,
    DiagnosisCompleted,
    Event,
    Level,
    MethodistUpserted,
    PlanAction,
    RegistryStale,
    SchoolTeamUpserted,
    Streams,
    SupportPlanUpdated,
    new_event,
)
from monitoring.test_api import (
    LONG_AGO,
    TODAY,
    at,
    load_chain,
    make_app,
    publish,
    registry,
    route_events,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = alerts.Limits(route_wait_days=14, diagnosis_route_days=7, burnout_min_surveyed=4)


def teacher(tid: str, mun: str = "m1") -> Member:
    return Member("teachers", tid, mun, "o1", {"audience": "general"}, NOW - timedelta(days=900))


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def kpi(code: str, value: float, status: str, **more: Any) -> dict[str, Any]:
    return {"code": code, "name": f"Доля {code}", "unit": "%", "value": value, "target": 10,
            "comparison": ">=", "status": status, **more}  # fmt: skip


def test_an_off_path_kpi_raises_one_alert_for_the_region_and_one_for_its_municipalities() -> None:
    evaluated: dict[str | None, list[dict[str, Any]]] = {
        None: [kpi("a", 3.0, "at_risk"), kpi("b", 30.0, "met"), kpi("c", 0.0, "missed")],
        "m1": [kpi("a", 1.0, "missed"), kpi("b", 30.0, "met"), kpi("c", 0.0, "not_judged")],
        "m2": [kpi("a", 6.0, "at_risk"), kpi("b", 2.0, "at_risk"), kpi("c", 0.0, "not_judged")],
        "m3": [kpi("a", 0.5, "missed"), kpi("b", 30.0, "met"), kpi("c", 0.0, "not_judged")],
    }
    names = {"m1": "г. Иркутск", "m2": "г. Братск", "m3": "Ольхонский р-н"}
    raised = {a.alert_id: a for a in alerts.kpis_off_path(evaluated, names)}
    assert sorted((i, a.severity) for i, a in raised.items()) == [
        ("kpi_off_path:a:municipalities", "critical"),
        ("kpi_off_path:a:region", "warning"),
        ("kpi_off_path:b:municipalities", "warning"),
        ("kpi_off_path:c:region", "critical"),  # the region's count target: no municipal one
    ]
    grouped = raised["kpi_off_path:a:municipalities"]
    assert grouped.municipality_id is None and grouped.value == 3
    # worst first: the missed ones by their value, then those at risk
    assert grouped.message.endswith(
        "не в графике в 3 муниципалитетах (не достигнута в 2): "
        "Ольхонский р-н (0,5 %), г. Иркутск (1 %), г. Братск (6 %)"
    ), grouped.message
    assert "в 1 муниципалитете" in raised["kpi_off_path:b:municipalities"].message
    assert grouped.message.startswith("Доля a: цель не менее 10 % не в графике")
    assert raised["kpi_off_path:a:region"].message == (
        "Доля a (регион): 3 % при цели не менее 10 % — отстаёт от графика"
    )


def test_a_region_split_into_municipalities_gets_no_municipal_alert_for_a_regional_count() -> None:
    """The shipped catalogue on a region of two municipalities: «не менее 93 организаций»
    is missed by the region (one alert), and no municipality is held to it."""
    catalogue = load_catalogue(
        Path(str(resources.files("iomflow.monitoring").joinpath("data/kpis.json")))
    )
    facts = Facts([teacher("t1", "m1"), teacher("t2", "m2")], [])
    on = NOW.date()
    evaluated = {
        **domain.evaluate(catalogue, facts, on),
        **domain.evaluate(catalogue, facts, on, by="municipality"),
    }
    assert set(evaluated) == {None, "m1", "m2"}
    ids = {a.alert_id for a in alerts.kpis_off_path(evaluated, {"m1": "А", "m2": "Б"})}
    assert "kpi_off_path:personal_potential_orgs:region" in ids
    assert not any(i.startswith("kpi_off_path:personal_potential_orgs:m") for i in ids), ids
    assert "kpi_off_path:diagnosed_share:municipalities" in ids  # a share: judged there too


def test_a_grouped_alert_names_ten_municipalities_and_counts_the_rest() -> None:
    evaluated: dict[str | None, list[dict[str, Any]]] = {
        f"m{n:02}": [kpi("a", float(n), "missed")] for n in range(13)
    }
    (alert,) = alerts.kpis_off_path(evaluated, {})
    assert "в 13 муниципалитетах" in alert.message and alert.message.endswith("m09 (9 %) и ещё 3")


def test_a_methodist_over_capacity_raises_an_alert() -> None:
    facts = Facts(
        [teacher(f"t{n}") for n in range(3)],
        [Fact("support", f"t{n}", ago(5), {"methodist_id": "A"}) for n in range(3)],
    )
    assert alerts.methodists_over_capacity(facts, {"A": 3}, NOW) == []
    (alert,) = alerts.methodists_over_capacity(facts, {"A": 2}, NOW)
    assert (alert.alert_id, alert.value, alert.threshold) == ("methodist_over_capacity:A", 3, 2)


def test_routes_waiting_for_a_methodist_too_long_raise_an_alert_per_municipality() -> None:
    facts = Facts(
        [teacher("t1"), teacher("t2"), teacher("t3", "m2")],
        [
            Fact("route", "t1", ago(20)),  # waiting for 20 days
            Fact("route", "t2", ago(20)),
            Fact("support", "t2", ago(19), {"methodist_id": "A"}),  # seated
            Fact("route", "t3", ago(3)),  # waiting, but not long
        ],
    )
    (alert,) = alerts.routes_waiting(facts, NOW, LIMITS)
    assert (alert.alert_id, alert.value) == ("routes_waiting:m1", 1)
    assert "14 дней" in alert.message


def test_a_diagnosis_without_a_route_after_the_limit_raises_an_alert() -> None:
    facts = Facts(
        [teacher("t1"), teacher("t2"), teacher("t3"), teacher("t4")],
        [
            Fact("diagnosed", "t1", ago(10), {"deficits": 2}),  # no route: alert
            Fact("diagnosed", "t2", ago(10), {"deficits": 2}),
            Fact("route", "t2", ago(9)),  # routed after it
            Fact("diagnosed", "t3", ago(10), {"deficits": 0}),  # nothing to route
            Fact("diagnosed", "t4", ago(2), {"deficits": 1}),  # not late yet
        ],
    )
    (alert,) = alerts.diagnoses_without_route(facts, NOW, LIMITS)
    assert (alert.alert_id, alert.value) == ("diagnosis_without_route:m1", 1)


def test_stale_registers_and_dead_letters_raise_alerts() -> None:
    stale = [alerts.Stale("teachers", "org-1", 12, 40), alerts.Stale("programs", "cnppm", 0, 9)]
    (alert,) = alerts.stale_registries(stale)
    assert alert.alert_id == "registry_stale:teachers:org-1" and "12 из 40" in alert.message
    dead = alerts.dead_letters({"a.dlq": 0, "b.dlq": 3})
    assert [(a.alert_id, a.value) for a in dead] == [("dead_letters:b.dlq", 3)]


# --- through the service -------------------------------------------------------------------


@pytest.fixture
async def app(clean_redis: str, tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    app = make_app(clean_redis, tmp_path, database_url)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://monitoring") as c:
        yield c


async def run_check(app: FastAPI, clean_redis: str) -> tuple[list[str], list[str]]:
    runtime = app.state.runtime
    async with Redis.from_url(clean_redis) as redis:
        return await checks.check(runtime, redis, LIMITS)


async def published(redis_url: str) -> list[dict[str, Any]]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        entries = await redis.xrange(Streams.MONITORING)
    return [{"type": f["type"], **json.loads(f["data"])} for _, f in entries]


SUPPORT = {
    "team_without_consultation": "team_without_consultation:team-1",
    "plan_action_overdue": "plan_action_overdue:plan-1:a1",
    "burnout_risk_rising": "burnout_risk_rising:region",
}
"""The alerts of the support outside routes (issue 16), by kind."""


def plan_updated(plan: SupportPlanUpdated) -> Event[Any]:
    return new_event("routes.plan.updated", plan, source="routes", subject=plan.plan_id)


def burnout(wave: str, n: int, level: str, days_ago: int, again: str = "") -> Event[Any]:
    """Teacher t-<n> surveyed for burnout in a wave, ``days_ago`` (no deficits)."""
    diagnosis = DiagnosisCompleted(
        diagnosis_id=f"b-{wave}-{n}{again}",
        teacher_id=f"t-{n}",
        organization_id="org-1",
        municipality_id="mun-01",
        campaign_id=wave,
        framework_version="2026.2",
        competencies=[],
        deficits=[],
        burnout=BurnoutResult(index=80 if level == "high" else 20, level=level, scales={}),  # type: ignore[arg-type]
    )
    event = new_event("diagnostics.diagnosis.completed", diagnosis, source="d", subject=f"t-{n}")
    return at(event, datetime.now(UTC) - timedelta(days=days_ago))


async def test_every_alert_kind_is_raised_once_listed_published_and_resolved(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_chain(client, clean_redis)  # methodist A holds two routes
    late = datetime.now(UTC) - timedelta(days=20)
    weak = CompetencyResult(code="digital", score=20, level=Level.CRITICAL)
    unrouted = DiagnosisCompleted(
        diagnosis_id="d-late",
        teacher_id="t-5",
        organization_id="org-1",
        municipality_id="mun-01",
        campaign_id="autumn",
        framework_version="2026.2",
        competencies=[weak],
        deficits=[weak],
    )
    event = new_event("diagnostics.diagnosis.completed", unrouted, source="d", subject="t-5")
    await publish(
        clean_redis, Streams.DIAGNOSTICS, [event.model_copy(update={"occurred_at": late})]
    )
    capacity = MethodistUpserted(
        methodist_id="A", specialisations=["digital"], municipalities=[], capacity=1
    )
    stale = RegistryStale(registry="teachers", owner="org-2", stale=4, total=4, verify_before=late)
    await publish(
        clean_redis,
        Streams.REGISTRY,
        [
            new_event("registry.methodist.upserted", capacity, source="r", subject="A"),
            new_event("registry.stale", stale, source="r", subject="teachers"),
        ],
    )
    async with Redis.from_url(clean_redis) as redis:
        await redis.xadd(
            Streams.dlq(Streams.RESULTS_INBOUND), {"event_id": "x", "dlq_reason": "invalid"}
        )

    # a School of the Ministry team with no consultation last month, an overdue action of
    # a support plan, the share of high burnout up from 0 % to 50 % between two waves
    team = SchoolTeamUpserted(team_id="team-1", organization_id="org-1", municipality_id="mun-01")
    await publish(
        clean_redis,
        Streams.REGISTRY,
        [
            at(
                new_event("registry.school_team.upserted", team, source="r", subject="team-1"),
                LONG_AGO,
            )
        ],
    )
    overdue = PlanAction(
        action_id="a1",
        kind="internship",
        title="Стажировка управленческой команды",
        due_on=TODAY - timedelta(days=10),
        responsible_id="B",
    )
    plan = SupportPlanUpdated(
        plan_id="plan-1",
        organization_id="org-2",
        municipality_id="mun-02",
        methodist_id="B",
        starts_on=TODAY - timedelta(days=30),
        actions=[overdue],
    )
    await publish(clean_redis, Streams.ROUTES, [plan_updated(plan)])
    waves = [burnout("w1", n, "low", 60) for n in range(1, 5)] + [
        burnout("w2", n, "high" if n <= 2 else "low", 20) for n in range(1, 5)
    ]
    await publish(clean_redis, Streams.DIAGNOSTICS, waves)

    async def seen() -> bool:
        stats = (await client.get("/v1/stats")).json()
        return (stats.get("facts_diagnosed"), stats.get("facts_plan_action")) == (12, 1)

    await wait_for(seen, "the late diagnosis, the burnout waves and the plan")
    raised, resolved = [], []
    for _ in range(50):  # the registry events may still be on their way
        more, gone = await run_check(app, clean_redis)
        raised += more
        resolved += gone
        kinds = {a.split(":")[0] for a in raised}
        if {"methodist_over_capacity", "registry_stale", *SUPPORT} <= kinds:
            break
        await asyncio.sleep(0.2)
    kinds = {a.split(":")[0] for a in raised}
    assert kinds >= {
        "kpi_off_path",
        "methodist_over_capacity",
        "diagnosis_without_route",
        "registry_stale",
        "dead_letters",
        *SUPPORT,
    }, raised
    assert set(SUPPORT.values()) <= set(raised)
    assert "methodist_over_capacity:A" in raised
    assert "diagnosis_without_route:mun-01" in raised
    assert f"dead_letters:{Streams.dlq(Streams.RESULTS_INBOUND)}" in raised

    assert await run_check(app, clean_redis) == ([], [])  # raised once
    listed = {a["alert_id"]: a for a in (await client.get("/v1/alerts")).json()["items"]}
    assert set(raised) <= set(listed)
    assert listed["methodist_over_capacity:A"]["value"] == 2
    assert (
        "организации «СОШ № 1» (team-1)" in listed[SUPPORT["team_without_consultation"]]["message"]
    )
    assert listed[SUPPORT["burnout_risk_rising"]]["value"] == 50.0

    # each condition gone: the dead letters dropped, a consultation held for the team
    # yesterday, the action done, the two teachers surveyed again with a low level
    async with Redis.from_url(clean_redis) as redis:
        await redis.delete(Streams.dlq(Streams.RESULTS_INBOUND))
    consultation = ActivityHeld(
        activity_id="c-1",
        kind="consultation",
        title="Консультация школьной команды",
        level="regional",
        organiser_id="cnppm",
        format="distance",
        held_on=TODAY - timedelta(days=1),
        attendees=0,
        team_id="team-1",
        project="school_of_ministry",  # type: ignore[arg-type]
    )
    done = overdue.model_copy(update={"done_on": TODAY})
    await publish(
        clean_redis,
        Streams.ROUTES,
        [
            new_event("routes.activity.held", consultation, source="routes", subject="c-1"),
            plan_updated(plan.model_copy(update={"actions": [done]})),
        ],
    )
    again = [burnout("w2", n, "low", 15, "again") for n in (1, 2)]
    await publish(clean_redis, Streams.DIAGNOSTICS, again)
    expected = {f"dead_letters:{Streams.dlq(Streams.RESULTS_INBOUND)}", *SUPPORT.values()}
    resolved = []
    for _ in range(50):  # the events may still be on their way
        more, gone = await run_check(app, clean_redis)
        raised += more
        resolved += gone
        if expected <= set(resolved):
            break
        await asyncio.sleep(0.2)
    assert expected <= set(resolved), resolved

    def resolutions(events: list[dict[str, Any]]) -> set[str]:
        return {e["alert_id"] for e in events if e["type"] == "monitoring.alert.resolved"}

    async def relayed() -> bool:
        return expected <= resolutions(await published(clean_redis))

    await wait_for(relayed, "the alert events to be relayed")
    events = await published(clean_redis)
    # (the service's own periodic check may have raised some at its start)
    assert set(raised) <= {e["alert_id"] for e in events if e["type"] == "monitoring.alert.raised"}
    still = {a["alert_id"] for a in (await client.get("/v1/alerts")).json()["items"]}
    assert not expected & still
    every = (await client.get("/v1/alerts", params={"status": "all"})).json()["items"]
    assert all(a["resolved_at"] for a in every if a["alert_id"] in expected)


async def test_routes_waiting_too_long_are_raised_through_the_service(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await publish(clean_redis, Streams.REGISTRY, registry())
    late = datetime.now(UTC) - timedelta(days=20)
    drafted, _ = route_events(8, "t-8", "B")  # drafted 20 days ago, never assigned
    await publish(clean_redis, Streams.ROUTES, [drafted.model_copy(update={"occurred_at": late})])

    async def seen() -> bool:
        stats = (await client.get("/v1/stats")).json()
        return stats.get("facts_route") == 1 and stats.get("teachers") == 10

    await wait_for(seen, "the waiting route")
    raised, _ = await run_check(app, clean_redis)
    assert "routes_waiting:mun-02" in raised
