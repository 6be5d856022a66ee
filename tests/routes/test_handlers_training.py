"""Every training routes takes is published once as ``routes.training.completed``, on real
databases (SQLite and PostgreSQL) with the handlers called as the consumer calls them: a
passed course completion in a route or outside one, an internship event, a program or
internship step a methodist marks done; a failed assessment, an enrolment and a
consultation publish none; a held course publishes when it is taken later; a redelivered
event (the real consumer on a real Redis) publishes no second one."""

from __future__ import annotations

from datetime import date
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select

from iomflow.routes import lifecycle, repository
from iomflow.routes.ledger import ledger_of
from iomflow.shared import wire
from iomflow.shared.contracts import (
    CourseEvent,
    Event,
    InternshipEvent,
    InternshipSiteUpserted,
    Streams,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.unit import Deps
from routes.test_handlers_batch import Routes, diagnosis, open_routes_db, region, routes_consumer

TRAINED = "routes.training.completed"
STEP_DONE = "routes.step.completed"
ON = date(2026, 11, 20)


def course(kind: str, teacher: str, **data: Any) -> Event[Any]:
    payload = CourseEvent(teacher_id=teacher, on=data.pop("on", ON), **data)
    return new_event(f"courses.course.{kind}", payload, source="iro-lms", subject=teacher)


def internship(teacher: str, site_id: str, **data: Any) -> Event[Any]:
    payload = InternshipEvent(teacher_id=teacher, site_id=site_id, on=ON, **data)
    return new_event("courses.internship.completed", payload, source="site", subject=teacher)


async def world_with_route(database_url: str, **changes: Any) -> tuple[Routes, Any]:
    """t-0 has a drafted route: s2 the program p-digital, s4 and s7 internships at site-1,
    s5 p-assess (and mentoring, post-course support); t-1 has none."""
    rows = region(teachers=2, methodists=[("m-1", 5)], resources=5)
    for program in rows[repository.programs]:
        program.update(changes.get(program["program_id"], {}))
    world = await open_routes_db(database_url, rows)
    await world.deliver([diagnosis(0, 0)])
    [route] = (await world.routes()).values()
    return world, route


async def trainings(world: Routes, after: int = 0) -> list[dict[str, Any]]:
    return [p for t, p in (await world.published())[after:] if t == TRAINED]


async def course_rows(world: Routes) -> dict[str, Any]:
    async with world.sessions() as session:
        return {r.event_id: r for r in await session.execute(select(repository.courses))}


async def test_a_passed_completion_outside_any_route_publishes_one_training_without_a_route(
    database_url: str,
) -> None:
    world, _ = await world_with_route(database_url, **{"p-digital": {"federal_number": "ФР-1"}})
    try:
        before = len(await world.published())
        # Named only by its Federal-registry number; no hours: the program's are taken.
        event = course("completed", "t-1", federal_number="ФР-1", external_id="fp-1")
        await world.deliver([event])
        [trained] = await trainings(world, before)
        assert trained == {
            "training_id": "t-1:program:p-digital",
            "teacher_id": "t-1",
            "municipality_id": "mun-1",
            "organization_id": "org-1",
            "kind": "course",
            "program_id": "p-digital",
            "site_id": None,
            "completed_on": "2026-11-20",
            "hours": 36,
            "route_id": None,
            "step_id": None,
            "source": "course_event",
        }
        assert [t for t, _ in (await world.published())[before:]] == [TRAINED]
        row = (await course_rows(world))[str(event.event_id)]
        assert (row.status, row.program_id, row.route_id) == ("unmatched", "p-digital", None)
    finally:
        await world.engine.dispose()


async def test_a_completion_of_a_route_step_publishes_one_step_completed_and_one_training(
    database_url: str,
) -> None:
    world, route = await world_with_route(database_url)
    try:
        before = len(await world.published())
        await world.deliver([course("completed", "t-0", program_id="p-digital", hours=40)])
        out = (await world.published())[before:]
        assert [t for t, _ in out] == [STEP_DONE, TRAINED]
        step_done, trained = (p for _, p in out)
        assert (step_done["step_id"], step_done["completed_by"]) == ("s2", "course_event")
        assert step_done["site_id"] is None
        assert (trained["route_id"], trained["step_id"], trained["source"]) == (
            route.route_id,
            "s2",
            "course_event",
        )
        assert (trained["training_id"], trained["hours"]) == ("t-0:program:p-digital", 40)
        assert (trained["organization_id"], trained["municipality_id"]) == ("org-1", "mun-1")
    finally:
        await world.engine.dispose()


async def test_a_failed_assessment_and_an_enrolment_publish_no_training(
    database_url: str,
) -> None:
    world, _ = await world_with_route(database_url)
    try:
        before = len(await world.published())
        await world.deliver(
            [
                course("enrolled", "t-0", program_id="p-digital"),  # the route's step
                course("completed", "t-0", program_id="p-assess", passed=False),  # its step
                course("enrolled", "t-1", program_id="p-assess"),  # outside a route
                course("completed", "t-1", program_id="p-digital", passed=False),
            ]
        )
        assert (await world.published())[before:] == []
        statuses = sorted(r.status for r in (await course_rows(world)).values())
        assert statuses == ["applied", "applied", "unmatched", "unmatched"]
    finally:
        await world.engine.dispose()


async def test_a_held_course_publishes_its_training_when_the_teacher_arrives(
    database_url: str,
) -> None:
    world, _ = await world_with_route(database_url)
    try:
        before = len(await world.published())
        held = course("completed", "t-9", program_id="p-assess", hours=24)
        await world.deliver([held])
        assert await trainings(world, before) == []
        assert (await course_rows(world))[str(held.event_id)].status == "held"

        teacher = TeacherUpserted(
            teacher_id="t-9",
            organization_id="org-7",
            municipality_id="mun-7",
            position="учитель",
            audience="general",  # type: ignore[arg-type]
            age_band="35-44",
            experience_band="10-20",
        )
        await world.deliver(
            [new_event("registry.teacher.upserted", teacher, source="registries", subject="t-9")]
        )
        [trained] = await trainings(world, before)
        assert (trained["training_id"], trained["route_id"], trained["organization_id"]) == (
            "t-9:program:p-assess",
            None,
            "org-7",
        )
        assert (await course_rows(world))[str(held.event_id)].status == "unmatched"
        # Taken once: another upsert of the teacher publishes nothing more.
        await world.deliver(
            [new_event("registry.teacher.upserted", teacher, source="registries", subject="t-9")]
        )
        assert len(await trainings(world, before)) == 1
    finally:
        await world.engine.dispose()


async def methodist_completes(world: Routes, route_id: str, step_id: str) -> None:
    """The methodist marks a step done, as ``POST …/steps/{id}/complete`` does."""
    async with world.sessions() as session, session.begin():
        deps = Deps(session, world.outbox, world.ctx)
        async with ledger_of(deps) as ledger:
            route = await lifecycle.open_route(ledger, route_id)
            await lifecycle.complete_step(ledger, route, step_id, "m-1", ON, "methodist")
        await deps.flush()


async def test_a_program_or_internship_step_a_methodist_marks_done_publishes_one_training(
    database_url: str,
) -> None:
    world, route = await world_with_route(database_url)
    try:
        before = len(await world.published())
        await methodist_completes(world, route.route_id, "s5")  # program p-assess
        await methodist_completes(world, route.route_id, "s7")  # internship at site-1
        await methodist_completes(world, route.route_id, "s1")  # mentoring: no training
        out = (await world.published())[before:]
        assert [t for t, _ in out] == [STEP_DONE, TRAINED, STEP_DONE, TRAINED, STEP_DONE]
        program, site = (p for t, p in out if t == TRAINED)
        assert (program["training_id"], program["kind"], program["hours"]) == (
            "t-0:program:p-assess",
            "course",
            24,  # the step's hours
        )
        assert (site["training_id"], site["kind"], site["site_id"], site["program_id"]) == (
            "t-0:site:site-1",
            "internship",
            "site-1",
            None,
        )
        for trained, step_id in ((program, "s5"), (site, "s7")):
            assert (trained["route_id"], trained["step_id"], trained["source"]) == (
                route.route_id,
                step_id,
                "methodist",
            )
        assert [p["site_id"] for t, p in out if t == STEP_DONE] == [None, "site-1", None]
    finally:
        await world.engine.dispose()


async def test_an_internship_event_completes_the_internship_step_at_its_site_and_publishes(
    database_url: str,
) -> None:
    world, route = await world_with_route(database_url)
    try:
        before = len(await world.published())
        event = internship("t-0", "site-1", hours=16, external_id="site-1-2026-001")
        await world.deliver([event])
        out = (await world.published())[before:]
        assert [t for t, _ in out] == [STEP_DONE, TRAINED]
        step_done, trained = (p for _, p in out)
        # The earliest planned internship at the site (s4, not s7).
        assert (step_done["step_id"], step_done["kind"], step_done["site_id"]) == (
            "s4",
            "internship",
            "site-1",
        )
        assert trained == {
            "training_id": "t-0:site:site-1",
            "teacher_id": "t-0",
            "municipality_id": "mun-1",
            "organization_id": "org-1",
            "kind": "internship",
            "program_id": None,
            "site_id": "site-1",
            "completed_on": "2026-11-20",
            "hours": 16,
            "route_id": route.route_id,
            "step_id": "s4",
            "source": "internship_event",
        }
        [after] = (await world.routes()).values()
        assert {s["step_id"]: s.get("status") for s in after.steps}["s4"] == "done"
        row = (await course_rows(world))[str(event.event_id)]
        assert (row.kind, row.site_id, row.status, row.step_id) == (
            "internship",
            "site-1",
            "applied",
            "s4",
        )
        assert row.program_id is None and row.external_id == "site-1-2026-001"
    finally:
        await world.engine.dispose()


async def test_an_internship_at_an_unknown_site_is_held_until_the_site_arrives(
    database_url: str,
) -> None:
    world, _ = await world_with_route(database_url)
    try:
        before = len(await world.published())
        elsewhere = internship("t-1", "site-new")
        outside = internship("t-1", "site-1")  # a known site, no route: history
        await world.deliver([elsewhere, outside])
        rows = await course_rows(world)
        assert rows[str(elsewhere.event_id)].status == "held"
        assert "площадка неизвестна" in rows[str(elsewhere.event_id)].reason
        assert rows[str(outside.event_id)].status == "unmatched"
        [trained] = await trainings(world, before)
        assert (trained["training_id"], trained["route_id"], trained["hours"]) == (
            "t-1:site:site-1",
            None,
            None,
        )

        site = InternshipSiteUpserted(
            site_id="site-new",
            organization_id="org-9",
            municipality_id="mun-1",
            title="Гимназия",
            competencies=["digital"],
        )
        await world.deliver(
            [
                new_event(
                    "registry.internship_site.upserted",
                    site,
                    source="registries",
                    subject="site-new",
                )
            ]
        )
        assert (await course_rows(world))[str(elsewhere.event_id)].status == "unmatched"
        assert [t["training_id"] for t in await trainings(world, before)] == [
            "t-1:site:site-1",
            "t-1:site:site-new",
        ]
    finally:
        await world.engine.dispose()


async def test_a_redelivered_course_event_publishes_no_second_training(
    database_url: str, clean_redis: str
) -> None:
    world, _ = await world_with_route(database_url)
    redis = Redis.from_url(clean_redis)
    consumer = routes_consumer(world, redis)
    try:
        before = len(await world.published())
        await consumer.ensure_groups()
        event = course("completed", "t-1", program_id="p-assess", hours=24)
        outcomes = []
        for _ in range(2):  # the provider sends it again (the same event id)
            await redis.xadd(Streams.COURSES_INBOUND, wire.encode(event))  # type: ignore[arg-type]
            reply = await redis.xreadgroup("routes", "routes-a", {Streams.COURSES_INBOUND: ">"})
            entries = [(wire.as_text(i), wire.text_fields(f)) for i, f in reply[0][1]]
            outcomes.append(await consumer.process(Streams.COURSES_INBOUND, entries))
        assert [(len(o.applied), len(o.duplicates)) for o in outcomes] == [(1, 0), (0, 1)]
        [trained] = await trainings(world, before)
        assert trained["training_id"] == "t-1:program:p-assess"
    finally:
        await redis.aclose()
        await world.engine.dispose()
