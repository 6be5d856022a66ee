"""Monitoring in process on a real Redis and SQLite/PostgreSQL: KPI values from the events
of every service, by level, as of a past date, and the same values after a rebuild by
replaying the streams."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from waiting import wait_for

from iomflow.monitoring import rebuild, views
from iomflow.monitoring.app import create_app
from iomflow.monitoring.settings import Settings
from iomflow.shared import wire
from iomflow.shared.contracts import (
    CompetencyResult,
    Contract,
    DiagnosisCancelled,
    DiagnosisCompleted,
    Event,
    Level,
    ManagementMemberUpserted,
    MentorUpserted,
    MethodistAssigned,
    MunicipalityUpserted,
    OrganizationUpserted,
    ProgramUpserted,
    RouteAgreed,
    RouteCancelled,
    RouteDrafted,
    RouteStep,
    StepCompleted,
    Streams,
    TeacherUpserted,
    TrainingCompleted,
    new_event,
)

TODAY = datetime.now(UTC).date()
LONG_AGO = datetime.now(UTC) - timedelta(days=400)  # last year's registry
RECENTLY = datetime.now(UTC) - timedelta(days=10)


def at(event: Event[Any], when: datetime) -> Event[Any]:
    return event.model_copy(update={"occurred_at": when})


def registry() -> list[Event[Any]]:
    def up(entity: str, payload: Contract, key: str) -> Event[Any]:
        return at(
            new_event(f"registry.{entity}.upserted", payload, source="registries", subject=key),
            LONG_AGO,
        )

    teachers = [
        up(
            "teacher",
            TeacherUpserted(
                teacher_id=f"t-{n}",
                organization_id="org-1" if n <= 6 else "org-2",
                municipality_id="mun-01" if n <= 6 else "mun-02",
                position="учитель",
                audience="general",  # type: ignore[arg-type]
                subjects=["математика"],
                age_band="35-44",
                experience_band="10-20",
                expert=n == 1,
            ),
            f"t-{n}",
        )
        for n in range(1, 11)
    ]
    return [
        up(
            "municipality",
            MunicipalityUpserted(municipality_id="mun-01", name="г. Иркутск"),
            "mun-01",
        ),
        up(
            "municipality",
            MunicipalityUpserted(municipality_id="mun-02", name="Катангский район"),
            "mun-02",
        ),
        up(
            "organization",
            OrganizationUpserted(
                organization_id="org-1",
                municipality_id="mun-01",
                name="СОШ № 1",
                kind="school",  # type: ignore[arg-type]
                projects=["personal_potential"],  # type: ignore[list-item]
            ),
            "org-1",
        ),
        up(
            "organization",
            OrganizationUpserted(
                organization_id="org-2",
                municipality_id="mun-02",
                name="СОШ № 2",
                kind="school",  # type: ignore[arg-type]
                low_results=True,
            ),
            "org-2",
        ),
        *teachers,
        up(
            "program",
            ProgramUpserted(
                program_id="p-fed",
                title="Предметная компетентность (ФР)",
                kind="pk",
                hours=36,
                format="distance",
                federal_registry=True,
                competencies=["subject_content"],
                themes=["subject", "management"],  # type: ignore[list-item]
                audiences=["general"],  # type: ignore[list-item]
            ),
            "p-fed",
        ),
        up(
            "program",
            ProgramUpserted(
                program_id="p-fgos",
                title="Введение обновлённых ФГОС",
                kind="pk",
                hours=36,
                format="distance",
                competencies=["subject_content"],
                themes=["updated_fgos"],  # type: ignore[list-item]
                audiences=["general"],  # type: ignore[list-item]
            ),
            "p-fgos",
        ),
        up(
            "mentor",
            MentorUpserted(mentor_id="mn-1", organization_id="org-1", municipality_id="mun-01"),
            "mn-1",
        ),
        up(
            "management_member",
            ManagementMemberUpserted(
                member_id="mm-1",
                organization_id="org-1",
                municipality_id="mun-01",
                teacher_id="t-2",
                role="director",  # type: ignore[arg-type]
            ),
            "mm-1",
        ),
    ]


def diagnosis(n: int, teacher_id: str) -> DiagnosisCompleted:
    weak = CompetencyResult(code="subject_content", score=30, level=Level.CRITICAL)
    org, mun = ("org-1", "mun-01") if int(teacher_id[2:]) <= 6 else ("org-2", "mun-02")
    return DiagnosisCompleted(
        diagnosis_id=f"d-{n}",
        teacher_id=teacher_id,
        organization_id=org,
        municipality_id=mun,
        campaign_id="autumn",
        framework_version="2026.2",
        competencies=[weak],
        deficits=[weak],
    )


def route_events(n: int, teacher_id: str, methodist: str) -> list[Event[Any]]:
    mun = "mun-01" if int(teacher_id[2:]) <= 6 else "mun-02"
    steps = [
        RouteStep(
            step_id="s1",
            competency="subject_content",
            kind="program",
            program_id="p-fed",
            tutor_id="tu-1",
            hours=36,
            reason="критический дефицит",
        )
    ]
    drafted = RouteDrafted(
        route_id=f"r-{n}",
        diagnosis_id=f"d-{n}",
        teacher_id=teacher_id,
        organization_id="org-1" if mun == "mun-01" else "org-2",
        municipality_id=mun,
        steps=steps,
        total_hours=36,
    )
    assigned = MethodistAssigned(
        route_id=f"r-{n}",
        teacher_id=teacher_id,
        methodist_id=methodist,
        municipality_id=mun,
        load=1,
        capacity=250,
    )
    return [
        new_event("routes.route.drafted", drafted, source="routes", subject=teacher_id),
        new_event("routes.methodist.assigned", assigned, source="routes", subject=teacher_id),
    ]


def agreed(n: int, teacher_id: str) -> Event[Any]:
    mun = "mun-01" if int(teacher_id[2:]) <= 6 else "mun-02"
    body = RouteAgreed(
        route_id=f"r-{n}",
        teacher_id=teacher_id,
        municipality_id=mun,
        methodist_id="A",
        approvals=[],
        active=True,
    )
    return new_event("routes.route.agreed", body, source="routes", subject=teacher_id)


def training(
    teacher_id: str,
    program_id: str,
    *,
    route_id: str | None = None,
    step_id: str | None = None,
    on: date = TODAY,
) -> Event[Any]:
    """A course completion as routes publishes it (inside a route or not)."""
    mun, org = ("mun-01", "org-1") if int(teacher_id[2:]) <= 6 else ("mun-02", "org-2")
    body = TrainingCompleted(
        training_id=f"{teacher_id}:program:{program_id}",
        teacher_id=teacher_id,
        municipality_id=mun,
        organization_id=org,
        kind="course",
        program_id=program_id,
        completed_on=on,
        route_id=route_id,
        step_id=step_id,
        source="course_event",
    )
    return new_event("routes.training.completed", body, source="routes", subject=teacher_id)


def make_app(redis_url: str, tmp_path: Path, database_url: str) -> FastAPI:
    app = create_app(
        Settings(
            redis_url=redis_url,
            data_dir=tmp_path,
            database_url=database_url,
            migrate_on_start=True,
            relay_poll_s=0.05,
            poll_ms=20,
            kpi_worker="thread",  # the worker process has a test of its own
        )
    )
    # Every answer computed afresh: a test must see what the projections hold now. (Today's
    # KPI snapshot is renewed on the request when that is cheap, as for these few events.)
    app.state.runtime.context.cache = views.Cache(min_age_s=0, max_age_s=0)
    return app


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


async def publish(redis_url: str, stream: str, events: list[Event[Any]]) -> None:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        for e in events:
            await redis.xadd(stream, wire.encode(e))  # type: ignore[arg-type]


async def region(client: httpx.AsyncClient, **params: str) -> dict[str, dict[str, Any]]:
    answer = (await client.get("/v1/kpis", params=params)).json()
    return {k["code"]: k for k in answer["region"]["kpis"]}


async def load_chain(client: httpx.AsyncClient, redis_url: str) -> None:
    """Ten teachers in two municipalities; four diagnosed, three with routes (methodists A,
    A, B), one diagnosis cancelled, one federal program completed by a school director."""
    await publish(redis_url, Streams.REGISTRY, registry())
    diagnoses = [
        at(
            new_event(
                "diagnostics.diagnosis.completed",
                diagnosis(n, f"t-{n}"),
                source="diagnostics",
                subject=f"t-{n}",
            ),
            RECENTLY,
        )
        for n in (1, 2, 3, 7)
    ]
    cancelled = new_event(
        "diagnostics.diagnosis.cancelled",
        DiagnosisCancelled(
            diagnosis_id="d-3", teacher_id="t-3", campaign_id="autumn", reason="ошибка"
        ),
        source="diagnostics",
        subject="t-3",
    )
    await publish(redis_url, Streams.DIAGNOSTICS, [*diagnoses, cancelled])
    routes = [
        *route_events(1, "t-1", "A"),
        *route_events(2, "t-2", "A"),
        *route_events(7, "t-7", "B"),
        new_event(
            "routes.step.completed",
            StepCompleted(
                route_id="r-2",
                teacher_id="t-2",
                municipality_id="mun-01",
                step_id="s1",
                kind="program",
                competency="subject_content",
                program_id="p-fed",
                completed_by="course_event",
                completed_on=TODAY,
            ),
            source="routes",
            subject="t-2",
        ),
        *[agreed(n, f"t-{n}") for n in (1, 2)],  # r-7 never agreed: its tutor supported no one
        training("t-2", "p-fed", route_id="r-2", step_id="s1"),  # the step's own course: once
        training("t-5", "p-fgos"),  # outside any route
        new_event(
            "routes.route.cancelled",
            RouteCancelled(
                route_id="r-7",
                teacher_id="t-7",
                municipality_id="mun-02",
                reason="уволен",
                code="teacher_removed",
            ),
            source="routes",
            subject="t-7",
        ),
    ]
    await publish(redis_url, Streams.ROUTES, routes)

    async def settled() -> bool:
        stats = (await client.get("/v1/stats")).json()
        return (
            stats.get("teachers") == 10
            and stats.get("facts_diagnosed") == 3
            and stats.get("facts_trained") == 2
            and stats.get("facts_agreed") == 2
        )

    await wait_for(settled, "every event to reach the projections")

    async def route_closed() -> bool:
        kpis = await region(client)
        return kpis["methodist_support_share"]["population"] == 2

    await wait_for(route_closed, "the cancelled route to end")


async def test_kpis_come_from_the_events_of_every_service(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_chain(client, clean_redis)
    kpis = await region(client)
    assert (kpis["diagnosed_share"]["numerator"], kpis["diagnosed_share"]["value"]) == (3, 30.0)
    assert kpis["route_share"]["value"] == 30.0  # three routes drafted this year
    support = kpis["methodist_support_share"]
    assert (support["numerator"], support["population"], support["value"]) == (2, 2, 100.0)
    assert kpis["methodist_load_max"]["value"] == 2  # A holds t-1 and t-2; B's route ended
    assert kpis["federal_programs_share"]["numerator"] == 1
    assert kpis["federal_programs_share"]["targets"][1]["value"] == 30
    assert kpis["tutor_support_share"]["numerator"] == 2  # the agreed routes' teachers
    assert kpis["subject_training_share"]["value"] == 10.0
    # t-5's course outside any route counts (general-school teachers: t-1..t-10)
    assert kpis["updated_fgos_share"]["numerator"] == 1
    assert kpis["management_teams_trained"]["value"] == 100.0  # org-1's team: t-2 trained
    assert kpis["mentoring_orgs_share"]["value"] == 50.0
    assert kpis["low_results_schools_share"]["population"] == 4  # org-2's teachers
    assert kpis["expert_involvement"]["value"] == 1
    assert kpis["personal_potential_orgs"]["value"] == 1  # org-1 takes part
    assert kpis["school_of_ministry_teams"]["value"] == 0
    assert all(
        k["status"] in ("on_track", "at_risk", "met", "missed", "no_data") for k in kpis.values()
    )

    answer = (await client.get("/v1/kpis")).json()
    assert answer["region"]["counts"] == {
        "teachers": 10,
        "diagnosed": 3,
        "with_route": 2,
        "supported": 2,
    }
    by_mun = {m["municipality_id"]: m for m in answer["municipalities"]}
    assert by_mun["mun-02"]["name"] == "Катангский район"
    mun2 = {k["code"]: k for k in by_mun["mun-02"]["kpis"]}
    assert mun2["diagnosed_share"]["value"] == 25.0


async def test_training_counts_wherever_it_happened_and_once(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    """A course outside any route moves its KPI; the same course inside a route (its step
    and its provider's completion, twice re-sent) is one; a replay gives the same values."""
    await load_chain(client, clean_redis)
    before = await region(client)
    assert before["updated_fgos_share"]["numerator"] == 1  # t-5, outside any route
    assert before["federal_programs_share"]["numerator"] == 1  # t-2's step and its course
    again = [
        training("t-2", "p-fed", route_id="r-2", step_id="s1", on=TODAY - timedelta(days=3)),
        training("t-5", "p-fgos"),  # a provider re-sends it under a new event id
        training("t-6", "p-fgos", on=TODAY - timedelta(days=40)),  # a new one, outside
    ]
    await publish(clean_redis, Streams.ROUTES, again)

    async def third() -> bool:
        return (await client.get("/v1/stats")).json().get("facts_trained") == 3

    await wait_for(third, "the new completion to reach the projections")
    after = await region(client)
    assert after["updated_fgos_share"]["numerator"] == 2
    assert after["federal_programs_share"]["numerator"] == 1
    assert after["subject_training_share"]["numerator"] == 1
    month_ago = await region(client, as_of=(TODAY - timedelta(days=30)).isoformat())
    assert month_ago["updated_fgos_share"]["numerator"] == 1  # t-6 only, dated by its day

    runtime = app.state.runtime
    async with Redis.from_url(clean_redis) as redis:
        await rebuild.replay(redis, runtime.sessions, runtime.outbox, runtime.context)
    replayed = await region(client)
    assert {c: (v["numerator"], v["value"]) for c, v in replayed.items()} == {
        c: (v["numerator"], v["value"]) for c, v in after.items()
    }


async def test_a_history_loaded_later_keeps_its_dates(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    """A diagnosis of results taken two months ago, arriving today, counts from the day its
    evidence was taken; the route drafted from it from that day too."""
    await publish(clean_redis, Streams.REGISTRY, registry())
    taken = (datetime.now(UTC) - timedelta(days=60)).replace(day=15)  # as of: in its year
    late = diagnosis(9, "t-9").model_copy(update={"evidence_at": taken})
    await publish(
        clean_redis,
        Streams.DIAGNOSTICS,
        [new_event("diagnostics.diagnosis.completed", late, source="diagnostics", subject="t-9")],
    )
    await publish(clean_redis, Streams.ROUTES, route_events(9, "t-9", "A"))

    async def arrived() -> bool:
        stats = (await client.get("/v1/stats")).json()
        return stats.get("facts_diagnosed") == 1 and stats.get("facts_route") == 1

    await wait_for(arrived, "the late diagnosis and its route")
    after = await region(client, as_of=(taken + timedelta(days=2)).date().isoformat())
    assert after["diagnosed_share"]["numerator"] == 1
    assert after["route_share"]["numerator"] == 1
    before = await region(client, as_of=(taken - timedelta(days=2)).date().isoformat())
    assert before["diagnosed_share"]["numerator"] == 0
    assert before["route_share"]["numerator"] == 0


async def test_values_as_of_a_past_date_and_a_drill_down_to_organisations(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_chain(client, clean_redis)
    before = await region(client, as_of=(TODAY - timedelta(days=30)).isoformat())
    assert before["diagnosed_share"]["numerator"] == 0  # diagnoses came 10 days ago
    assert before["diagnosed_share"]["population"] == 10  # the registry was there
    long_before = await region(client, as_of=(LONG_AGO - timedelta(days=1)).date().isoformat())
    assert long_before["diagnosed_share"]["population"] == 0
    future = await client.get("/v1/kpis", params={"as_of": (TODAY + timedelta(days=1)).isoformat()})
    assert (future.status_code, future.json()["code"]) == (422, "future_date")

    mun = (await client.get("/v1/municipalities/mun-01/kpis")).json()
    assert mun["name"] == "г. Иркутск" and mun["counts"]["teachers"] == 6
    (org,) = mun["organizations"]
    assert org["organization_id"] == "org-1" and org["name"] == "СОШ № 1"
    unknown = await client.get("/v1/municipalities/mun-99/kpis")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_municipality")

    series = (await client.get("/v1/kpis/diagnosed_share/series", params={"months": 3})).json()
    assert series["name"].startswith("Доля педагогических работников и управленческих кадров")
    assert [p["value"] for p in series["points"]][-1] == 30.0
    assert series["points"][0]["value"] == 0.0


async def test_a_rebuild_by_replay_gives_the_same_values(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_chain(client, clean_redis)
    incremental = (await client.get("/v1/kpis")).json()
    runtime = app.state.runtime
    async with Redis.from_url(clean_redis) as redis:
        done = await rebuild.replay(redis, runtime.sessions, runtime.outbox, runtime.context)
    assert done.applied[Streams.REGISTRY] == len(registry())
    assert done.invalid == 0
    replayed = (await client.get("/v1/kpis")).json()
    assert rebuild.differences(incremental, replayed) == []
    assert replayed["region"]["counts"] == incremental["region"]["counts"]
    assert (await client.get("/v1/stats")).json()["facts_diagnosed"] == 3


async def test_kpi_values_are_exported_as_prometheus_metrics(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_chain(client, clean_redis)
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert 'iomflow_kpi_value{code="diagnosed_share",municipality=""} 30.0' in lines
    assert 'iomflow_kpi_value{code="diagnosed_share",municipality="mun-02"} 25.0' in lines
    assert 'iomflow_kpi_target{code="methodist_load_max"} 250.0' in lines
    assert 'iomflow_kpi_met{code="methodist_support_share",municipality=""} 1.0' in lines


async def test_the_rebuild_command_replays_and_reports_identical_values(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str, database_url: str, tmp_path: Path
) -> None:
    await load_chain(client, clean_redis)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "IOMFLOW_DATA_DIR": str(tmp_path / "var"),
        "IOMFLOW_DATABASE_URL": database_url,
        "IOMFLOW_REDIS_URL": clean_redis,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "iomflow.cli.main", "monitoring", "rebuild"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "совпадают" in done.stdout
    assert f"{Streams.REGISTRY}: {len(registry())}" in done.stdout
