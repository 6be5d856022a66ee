"""``GET /v1/kpis`` on the full region, answered from monitoring's maintained KPI snapshot.

    uv run python bench/kpis.py [--teachers 40000] [--diagnoses 40000] [--db PATH]
        [--json out.json]

1. **build**: a synthetic region (42 municipalities, 1,500 organisations, ``--teachers``
   teachers, programs, methodists, mentors, management teams) and ``--diagnoses`` diagnoses
   with their routes, methodists and some completed steps (re-diagnoses supersede a route),
   written into a SQLite file through monitoring's own handlers in batches of 100 events
   (the consumer's runs: 100 ``diagnosis.completed``, then 100 ``route.drafted``, then 100
   ``methodist.assigned``); SQL statements counted per batch. ``--db`` keeps the file, and
   an existing one is used as it is;
2. **renewal**: one renewal of the snapshot, as the service's job makes it — the facts
   loaded (``repository.fetch`` + ``Rows.build``) and every KPI evaluated for the region
   and each municipality (``views.region``) — timed by part;
3. **the service** on that file (a Redis server of its own, as the tests start one),
   in process through its ASGI app: the first ``GET /v1/kpis`` after the start (cold),
   the median of 20 more (warm); one after a change (the snapshot it has, while the job
   renews it); and a cold start with no snapshot stored (the request computes it).

Wall-clock figures on a machine shared with others: compare runs of one invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, event, func, select

from iomflow.monitoring import handlers, repository, views
from iomflow.monitoring.app import create_app
from iomflow.monitoring.context import Context
from iomflow.monitoring.settings import Settings
from iomflow.shared import db, migrations
from iomflow.shared.contracts import (
    Audience,
    CompetencyResult,
    Contract,
    DiagnosisCompleted,
    Event,
    Level,
    ManagementMemberUpserted,
    MentorUpserted,
    MethodistAssigned,
    MethodistUpserted,
    MunicipalityUpserted,
    OrganizationKind,
    OrganizationUpserted,
    ProgramUpserted,
    Project,
    RouteDrafted,
    RouteStep,
    StepCompleted,
    Streams,
    TeacherUpserted,
    Theme,
    new_event,
)
from iomflow.shared.outbox import Outbox
from iomflow.shared.unit import Deps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MUNICIPALITIES = 42
ORGANIZATIONS = 1_500
PROGRAMS = 120
METHODISTS = 170
BATCH = 100
COMPETENCIES = (
    "subject_content",
    "teaching_methods",
    "updated_fgos",
    "functional_literacy",
    "digital",
    "upbringing",
    "gifted_children",
    "career_guidance",
)
NOW = datetime.now(UTC)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def at(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def ev(type_: str, payload: Contract, subject: str, when: datetime) -> Event[Any]:
    event = new_event(type_, payload, source="bench", subject=subject)
    return event.model_copy(update={"occurred_at": when})


# --- the synthetic region -------------------------------------------------------------------


def registry(teachers: int, rng: random.Random) -> tuple[list[Event[Any]], list[dict[str, Any]]]:
    """The registries' events, and the teachers (for the diagnoses)."""
    out: list[Event[Any]] = []
    loaded = at(300)
    for n in range(MUNICIPALITIES):
        mun = f"mun-{n:02d}"
        payload = MunicipalityUpserted(municipality_id=mun, name=f"Муниципалитет {n}")
        out.append(ev("registry.municipality.upserted", payload, mun, loaded))
    orgs = []
    for n in range(ORGANIZATIONS):
        kind = rng.choices(
            [OrganizationKind.SCHOOL, OrganizationKind.KINDERGARTEN, OrganizationKind.COLLEGE],
            [70, 25, 5],
        )[0]
        org = {"id": f"org-{n:04d}", "mun": f"mun-{n % MUNICIPALITIES:02d}", "kind": kind}
        orgs.append(org)
        projects = [p for p in Project if rng.random() < 0.06]
        payload = OrganizationUpserted(
            organization_id=org["id"],
            municipality_id=org["mun"],
            name=f"Организация {n}",
            kind=kind,
            low_results=rng.random() < 0.1,
            projects=projects,
        )
        out.append(ev("registry.organization.upserted", payload, org["id"], loaded))
    themes = list(Theme)
    for n in range(PROGRAMS):
        payload = ProgramUpserted(
            program_id=f"p-{n:03d}",
            title=f"Программа {n}",
            kind="pp" if n % 15 == 0 else "pk",
            hours=36,
            format="distance",
            federal_registry=n % 3 == 0,
            competencies=[COMPETENCIES[n % len(COMPETENCIES)]],
            themes=rng.sample(themes, 2),
            audiences=[Audience.GENERAL, Audience.PRESCHOOL],
        )
        out.append(ev("registry.program.upserted", payload, payload.program_id, loaded))
    for n in range(METHODISTS):
        payload = MethodistUpserted(
            methodist_id=f"m-{n:03d}", specialisations=list(COMPETENCIES), municipalities=[]
        )
        out.append(ev("registry.methodist.upserted", payload, payload.methodist_id, loaded))
    people = []
    for n in range(teachers):
        org = orgs[n % ORGANIZATIONS]
        audience = {
            OrganizationKind.SCHOOL: Audience.GENERAL,
            OrganizationKind.KINDERGARTEN: Audience.PRESCHOOL,
        }.get(org["kind"], Audience.COLLEGE)
        young = rng.random() < 0.15
        teacher = {"id": f"t-{n:05d}", "org": org["id"], "mun": org["mun"], "young": young}
        people.append(teacher)
        payload = TeacherUpserted(
            teacher_id=teacher["id"],
            organization_id=org["id"],
            municipality_id=org["mun"],
            position="учитель",
            audience=audience,
            subjects=["математика"] if audience == Audience.GENERAL and n % 4 else [],
            age_band="25-34" if young else "35-44",
            experience_band="<3" if young else "10-20",
            young=young,
            is_manager=n % 20 == 0,
            expert=rng.random() < 0.03,
        )
        out.append(ev("registry.teacher.upserted", payload, teacher["id"], loaded))
    for n, org in enumerate(orgs):
        if org["kind"] != OrganizationKind.SCHOOL:
            continue
        head = people[n]["id"] if n < len(people) else people[0]["id"]
        payload = ManagementMemberUpserted(
            member_id=f"mm-{n:04d}",
            organization_id=org["id"],
            municipality_id=org["mun"],
            teacher_id=head,
            role="director",  # type: ignore[arg-type]
        )
        out.append(ev("registry.management_member.upserted", payload, payload.member_id, loaded))
        if n % 3:
            mentor = MentorUpserted(
                mentor_id=f"mn-{n:04d}", organization_id=org["id"], municipality_id=org["mun"]
            )
            out.append(ev("registry.mentor.upserted", mentor, mentor.mentor_id, loaded))
    return out, people


def chain(
    people: list[dict[str, Any]], diagnoses: int, rng: random.Random
) -> Iterator[tuple[str, list[Event[Any]]]]:
    """Per 100 diagnoses: their diagnosis.completed events, then route.drafted, then
    methodist.assigned, then the steps completed since — as the services publish them."""
    last_route: dict[str, str] = {}
    for start in range(0, diagnoses, BATCH):
        diagnosed, drafted, assigned, completed = [], [], [], []
        for n in range(start, min(start + BATCH, diagnoses)):
            teacher = people[n % len(people)]
            when = at(rng.uniform(5, 300) if n < len(people) else rng.uniform(1, 5))
            weak = [
                CompetencyResult(code=c, score=30, level=Level.DEFICIT)
                for c in rng.sample(COMPETENCIES, rng.randint(0, 4))
            ]
            d = DiagnosisCompleted(
                diagnosis_id=f"d-{n:06d}",
                teacher_id=teacher["id"],
                organization_id=teacher["org"],
                municipality_id=teacher["mun"],
                campaign_id="bench",
                framework_version="2026.2",
                competencies=weak,
                deficits=weak,
            )
            diagnosed.append(ev("diagnostics.diagnosis.completed", d, teacher["id"], when))
            if not weak:
                continue
            steps = []
            for i, c in enumerate(weak, 1):
                program = f"p-{rng.randrange(PROGRAMS):03d}"
                steps.append(
                    RouteStep(
                        step_id=f"s{i}",
                        competency=c.code,
                        kind="program",
                        program_id=program,
                        tutor_id=f"tu-{rng.randrange(40)}" if int(program[2:]) % 3 else None,
                        hours=36,
                        reason="дефицит",
                    )
                )
            if teacher["young"]:
                steps.append(
                    RouteStep(
                        step_id="s9",
                        competency=weak[0].code,
                        kind="mentoring",
                        hours=10,
                        reason="м",
                    )
                )
            route = f"r-{n:06d}"
            r = RouteDrafted(
                route_id=route,
                diagnosis_id=d.diagnosis_id,
                teacher_id=teacher["id"],
                organization_id=teacher["org"],
                municipality_id=teacher["mun"],
                steps=steps,
                total_hours=36 * len(weak),
                supersedes=last_route.get(teacher["id"]),
            )
            last_route[teacher["id"]] = route
            later = when + timedelta(minutes=1)
            drafted.append(ev("routes.route.drafted", r, teacher["id"], later))
            a = MethodistAssigned(
                route_id=route,
                teacher_id=teacher["id"],
                methodist_id=f"m-{rng.randrange(METHODISTS):03d}",
                municipality_id=teacher["mun"],
                load=1,
                capacity=250,
            )
            assigned.append(ev("routes.methodist.assigned", a, teacher["id"], later))
            for step in steps[: rng.choice((0, 1, 2, 3))]:
                done = (later + timedelta(days=rng.uniform(1, 60))).date()
                s = StepCompleted(
                    route_id=route,
                    teacher_id=teacher["id"],
                    municipality_id=teacher["mun"],
                    step_id=step.step_id,
                    kind=step.kind,
                    competency=step.competency,
                    program_id=step.program_id,
                    completed_by="course_event",
                    completed_on=min(done, NOW.date()),
                )
                completed.append(ev("routes.step.completed", s, teacher["id"], later))
        yield Streams.DIAGNOSTICS, diagnosed
        yield Streams.ROUTES, drafted
        yield Streams.ROUTES, assigned
        if completed:
            yield Streams.ROUTES, completed


# --- 1. build ------------------------------------------------------------------------------


async def build(url: str, teachers: int, diagnoses: int) -> dict[str, Any]:
    rng = random.Random(13)
    await asyncio.to_thread(migrations.upgrade, "iomflow.monitoring", url)
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    statements = [0]

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement != "BEGIN":  # SQLite's, of every transaction (not the handlers')
            statements[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", counted)
    context = Context.of(Settings(), consumer="bench")
    outbox = Outbox(repository.tables.outbox)
    tables = {s.stream: s.handlers for s in handlers.SUBSCRIPTIONS}
    per_type: dict[str, list[int]] = {}

    async def apply(stream: str, events: list[Event[Any]]) -> None:
        for start in range(0, len(events), BATCH):
            batch = events[start : start + BATCH]
            before = statements[0]
            async with sessions() as session, session.begin():
                deps = Deps(session, outbox, context)
                run: list[Event[Any]] = []
                for e in batch:
                    if run and run[0].type != e.type:
                        await tables[stream][run[0].type](run, deps)
                        run = []
                    run.append(e)
                await tables[stream][run[0].type](run, deps)
            if len({e.type for e in batch}) == 1:
                per_type.setdefault(batch[0].type, []).append(statements[0] - before)

    started = time.perf_counter()
    events, people = registry(teachers, rng)
    await apply(Streams.REGISTRY, events)
    say(f"registry: {len(events)} events in {time.perf_counter() - started:.1f} s")
    started, total, cpu = time.perf_counter(), 0, 0.0
    for stream, batch in chain(people, diagnoses, rng):
        before = time.process_time()  # the handlers' and the driver's (aiosqlite's thread)
        await apply(stream, batch)
        cpu += time.process_time() - before
        total += len(batch)
    say(f"diagnoses and routes: {total} events in {time.perf_counter() - started:.1f} s")
    async with sessions() as session:
        facts = (await session.execute(select(func.count()).select_from(repository.facts))).scalar()
    await engine.dispose()
    return {
        "events": len(events) + total,
        "facts": facts,
        "handlers_cpu_ms_per_diagnosis": round(cpu * 1000 / diagnoses, 2),
        "statements_per_batch_of_100": {
            t: max(ns) for t, ns in sorted(per_type.items()) if len(ns) > 1
        },
    }


# --- 2. one renewal ---------------------------------------------------------------------------


async def renewal(url: str) -> dict[str, float]:
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    context = Context.of(Settings())
    try:
        started = time.perf_counter()
        async with sessions() as session:
            rows = await repository.fetch(session)
        fetched = time.perf_counter()
        facts = rows.build()
        built = time.perf_counter()
        async with sessions() as session:
            names = await repository.municipality_names(session)
        evaluated = time.perf_counter()
        views.region(context.catalogue, facts, names, NOW.date())
        done = time.perf_counter()
        context.cache.min_age_s = 0
        renewed = time.perf_counter()
        await context.kpis._renew(sessions, time.monotonic())
        whole = time.perf_counter() - renewed
    finally:
        await engine.dispose()
    return {
        "fetch_ms": round((fetched - started) * 1000),
        "build_ms": round((built - fetched) * 1000),
        "evaluate_ms": round((done - evaluated) * 1000),
        "renewal_ms": round(whole * 1000),  # all of it, stored: as the job makes it
    }


# --- 3. the service -----------------------------------------------------------------------------


async def service(url: str, redis_url: str, data: Path) -> dict[str, float]:
    settings = Settings(database_url=url, redis_url=redis_url, data_dir=data, migrate_on_start=True)

    async def get(client: httpx.AsyncClient) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        response = await client.get("/v1/kpis", timeout=600)
        response.raise_for_status()
        return round((time.perf_counter() - started) * 1000, 1), response.json()

    async def started() -> Any:
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        return app, httpx.AsyncClient(transport=transport, base_url="http://monitoring")

    out: dict[str, float] = {}
    app, client = await started()
    async with app.router.lifespan_context(app), client:
        out["cold_ms"], first = await get(client)
        warm = [(await get(client))[0] for _ in range(20)]
        out["warm_ms"] = statistics.median(warm)
        out["warm_max_ms"] = max(warm)
        # A change: the request gets the snapshot it has (renewing it takes longer than a
        # request should wait); the job renews it once the projections are quiet.
        runtime = app.state.runtime
        async with runtime.sessions() as session, session.begin():
            await repository.mark(session, "bench", "bench", datetime.now(UTC))
        out["after_a_change_ms"], stale = await get(client)
        out["after_a_change_was_behind"] = float(stale["computed_at"] == first["computed_at"])
    async with db.create_engine(url).begin() as conn:
        await conn.execute(delete(repository.snapshots))
    app, client = await started()
    async with app.router.lifespan_context(app), client:
        out["cold_without_snapshot_ms"], _ = await get(client)
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import infra  # tests/infra.py: the same Redis the tests start

    path = Path(args.db) if args.db else Path(tempfile.mkdtemp()) / "monitoring.db"
    url = f"sqlite+aiosqlite:///{path}"
    figures: dict[str, Any] = {"teachers": args.teachers, "diagnoses": args.diagnoses}
    if not path.exists():
        say(f"building {path}")
        figures["build"] = await build(url, args.teachers, args.diagnoses)
        say(f"built: {figures['build']}")
    else:
        say(f"using {path} as it is")
    figures["renewal"] = await renewal(url)
    say(f"one renewal: {figures['renewal']}")
    server = infra.start_redis()
    try:
        figures["service"] = await service(url, server.url, path.parent / "var")
    finally:
        server.stop()
    say(f"GET /v1/kpis: {figures['service']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teachers", type=int, default=40_000)
    parser.add_argument("--diagnoses", type=int, default=40_000)
    parser.add_argument("--db", help="SQLite file to keep (an existing one is used as it is)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(main_async(args))
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
