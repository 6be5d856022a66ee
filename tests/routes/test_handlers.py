"""The handler tier of routes: its stream handlers and use cases driven with events on a
real database (SQLite and PostgreSQL), no Redis — as the consumer calls them, one
transaction per batch. Each test asserts the rows left behind and the events staged in
the outbox (what the relay publishes after the commit)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from iomflow.routes import lifecycle, repository
from iomflow.routes.ledger import Ledger, ledger_of
from iomflow.shared.contracts import (
    CourseEvent,
    DiagnosisCancelled,
    Event,
    MethodistUpserted,
    RecordRemoved,
    new_event,
)
from iomflow.shared.errors import Refused
from iomflow.shared.unit import Deps
from routes.test_handlers_batch import (
    Routes,
    assert_seats_add_up,
    diagnosis,
    open_routes_db,
    region,
)

DRAFTED, ASSIGNED, UNAVAILABLE = (
    "routes.route.drafted",
    "routes.methodist.assigned",
    "routes.methodist.unavailable",
)
AGREED, CANCELLED, COMPLETED = (
    "routes.route.agreed",
    "routes.route.cancelled",
    "routes.route.completed",
)
STEP_DONE, TRAINED = "routes.step.completed", "routes.training.completed"


async def world(
    database_url: str, teachers: int = 1, capacity: int = 5, rows: dict[Any, Any] | None = None
) -> Routes:
    tables = region(teachers=teachers, methodists=[("m-1", capacity)], resources=5)
    tables.update(rows or {})
    return await open_routes_db(database_url, tables)


async def use_case(w: Routes, work: Callable[[Ledger], Awaitable[Any]]) -> Any:
    """A use case in its own transaction, as an HTTP command runs it."""
    async with w.sessions() as session, session.begin():
        deps = Deps(session, w.outbox, w.ctx)
        async with ledger_of(deps) as ledger:
            result = await work(ledger)
        await deps.flush()
    return result


async def staged(w: Routes, after: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return (await w.published())[after:]


def types(out: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [t for t, _ in out]


def registry(type_: str, payload: Any, subject: str) -> Event[Any]:
    return new_event(type_, payload, source="registries", subject=subject)


async def agree(w: Routes, route: Any) -> None:
    """The teacher, the methodist and the school's director approve."""
    for role, by in (("teacher", route.teacher_id), ("methodist", "m-1"), ("management", "dir")):
        await use_case(
            w, lambda ledger, role=role, by=by: lifecycle.approve(ledger, route.route_id, role, by)
        )


MANAGEMENT = {
    repository.management: [
        {"member_id": "dir", "organization_id": "org-1", "teacher_id": "t-director"}
    ]
}


@pytest.fixture
async def one(database_url: str) -> Any:
    w = await world(database_url, rows=MANAGEMENT)
    yield w
    await w.engine.dispose()


# --- drafting ------------------------------------------------------------------------------


async def test_a_completed_diagnosis_drafts_a_route_and_seats_a_methodist(one: Routes) -> None:
    await one.deliver([diagnosis(0, 0)])
    [route] = (await one.routes()).values()
    assert (route.status, route.methodist_id, route.diagnosis_id) == ("drafted", "m-1", "d-0")
    assert [h["action"] for h in route.history] == ["drafted", "methodist_assigned"]
    assert route.total_hours == sum(s["hours"] for s in route.steps)
    out = await staged(one)
    assert types(out) == [DRAFTED, ASSIGNED]
    assert out[0][1]["route_id"] == out[1][1]["route_id"] == route.route_id
    assert (out[1][1]["load"], out[1][1]["capacity"]) == (1, 5)
    assert_seats_add_up(await one.routes(), await one.loads())
    assert (await one.loads())[("methodist", "m-1")] == (1, 5)


async def test_with_no_room_a_route_waits_until_a_methodist_arrives(database_url: str) -> None:
    w = await world(database_url, teachers=2, capacity=1)
    try:
        await w.deliver([diagnosis(0, 0), diagnosis(1, 1)])
        routes = await w.routes()
        assert routes["d-1"].methodist_id is None and routes["d-1"].status == "drafted"
        assert types(await staged(w)) == [DRAFTED, DRAFTED, ASSIGNED, UNAVAILABLE]
        before = len(await w.published())
        m2 = MethodistUpserted(methodist_id="m-2", specialisations=["digital"], municipalities=[])
        await w.deliver([registry("registry.methodist.upserted", m2, "m-2")])
        routes = await w.routes()
        assert routes["d-1"].methodist_id == "m-2"
        [(kind, assigned)] = await staged(w, before)
        assert kind == ASSIGNED and (assigned["methodist_id"], assigned["load"]) == ("m-2", 1)
        assert assigned["capacity"] == 250  # the contract's default, the rules' capacity
        assert_seats_add_up(routes, await w.loads())
    finally:
        await w.engine.dispose()


async def test_a_cancelled_diagnosis_frees_its_seats_for_the_waiting_route(
    database_url: str,
) -> None:
    w = await world(database_url, teachers=2, capacity=1)
    try:
        await w.deliver([diagnosis(0, 0), diagnosis(1, 1)])
        before = len(await w.published())
        cancel = DiagnosisCancelled(
            diagnosis_id="d-0", teacher_id="t-0", campaign_id="c", reason="ошибка ввода"
        )
        await w.deliver(
            [
                new_event(
                    "diagnostics.diagnosis.cancelled", cancel, source="diagnostics", subject="t-0"
                )
            ]
        )
        routes = await w.routes()
        assert (routes["d-0"].status, routes["d-0"].status_reason) == (
            "cancelled",
            "диагностика отменена: ошибка ввода",
        )
        assert routes["d-0"].closed_at is not None
        assert routes["d-1"].methodist_id == "m-1"
        out = await staged(w, before)
        assert types(out) == [CANCELLED, ASSIGNED]
        assert out[0][1]["code"] == "diagnosis_cancelled"
        assert_seats_add_up(routes, await w.loads())
    finally:
        await w.engine.dispose()


async def test_a_teacher_leaving_the_registry_cancels_the_open_route(one: Routes) -> None:
    await one.deliver([diagnosis(0, 0)])
    before = len(await one.published())
    removed = RecordRemoved(record_id="t-0", reason="уволен")
    await one.deliver([registry("registry.teacher.removed", removed, "t-0")])
    async with one.sessions() as session:
        left = list(await session.execute(select(repository.routes)))
        teachers = list(await session.execute(select(repository.teachers)))
    assert [r.status for r in left] == ["cancelled"] and teachers == []
    out = await staged(one, before)
    assert types(out) == [CANCELLED] and out[0][1]["code"] == "teacher_removed"
    assert (await one.loads())[("methodist", "m-1")] == (0, 5)


# --- approvals (the HTTP use case) ---------------------------------------------------------


async def test_approvals_agree_and_start_the_route_with_its_history(one: Routes) -> None:
    await one.deliver([diagnosis(0, 0)])
    [route] = (await one.routes()).values()
    before = len(await one.published())
    answer = await use_case(
        one, lambda ledger: lifecycle.approve(ledger, route.route_id, "teacher", "t-0")
    )
    assert answer == {"status": "drafted", "missing": ["methodist", "management"]}
    for role, by in (("methodist", "m-1"), ("management", "dir")):
        await use_case(
            one,
            lambda ledger, role=role, by=by: lifecycle.approve(ledger, route.route_id, role, by),
        )
    [route] = (await one.routes()).values()
    assert route.status == "active"  # its start has come
    assert route.agreed_at is not None and route.activated_at is not None
    assert [a["role"] for a in route.approvals] == ["teacher", "methodist", "management"]
    assert [h["action"] for h in route.history][-4:] == [
        "approved",
        "approved",
        "approved",
        "activated",
    ]
    out = await staged(one, before)
    assert types(out) == [AGREED]
    assert out[0][1]["active"] is True and out[0][1]["methodist_id"] == "m-1"


@pytest.mark.parametrize(
    ("role", "by", "code", "status"),
    [
        ("teacher", "t-1", "not_the_teacher", 403),
        ("methodist", "m-2", "not_the_methodist", 403),
        ("management", "not-a-member", "not_management", 403),
        ("management", "t-director", "not_management", 403),
    ],
)
async def test_who_may_approve_is_checked_and_a_refusal_writes_nothing(
    one: Routes, role: str, by: str, code: str, status: int
) -> None:
    await one.deliver([diagnosis(0, 0)])
    [route] = (await one.routes()).values()
    if by == "t-director":  # … the route is the director's own: nobody approves their own
        async with one.sessions() as session, session.begin():
            await session.execute(repository.routes.update().values(teacher_id="t-director"))
    before = len(await one.published())
    with pytest.raises(Refused) as refused:
        await use_case(one, lambda ledger: lifecycle.approve(ledger, route.route_id, role, by))
    assert (refused.value.code, refused.value.status) == (code, status)
    [after] = (await one.routes()).values()
    assert after.approvals == [] and after.history == route.history
    assert await staged(one, before) == []


async def test_an_unknown_route_and_a_second_approval_are_refused(one: Routes) -> None:
    await one.deliver([diagnosis(0, 0)])
    [route] = (await one.routes()).values()
    with pytest.raises(Refused) as unknown:
        await use_case(one, lambda ledger: lifecycle.approve(ledger, "nope", "teacher", "t-0"))
    assert unknown.value.code == "route_not_found" and unknown.value.status == 404
    await use_case(one, lambda ledger: lifecycle.approve(ledger, route.route_id, "teacher", "t-0"))
    with pytest.raises(Refused) as again:
        await use_case(
            one, lambda ledger: lifecycle.approve(ledger, route.route_id, "teacher", "t-0")
        )
    assert again.value.code == "already_approved"


# --- steps done: by the methodist, by course events ----------------------------------------


async def test_the_last_step_done_by_a_course_event_completes_the_route(one: Routes) -> None:
    await one.deliver([diagnosis(0, 0)])
    [route] = (await one.routes()).values()
    await agree(one, route)
    program = next(s for s in route.steps if s.get("program_id") == "p-digital")
    for s in route.steps:
        if s["step_id"] != program["step_id"]:
            await use_case(one, lambda ledger, s=s: methodist_marks(ledger, route.route_id, s))
    before = len(await one.published())
    done = CourseEvent(
        teacher_id="t-0",
        program_id="p-digital",
        on=program["starts_on"] or route.created_at.date(),
        passed=True,
    )
    await one.deliver([new_event("courses.course.completed", done, source="lms", subject="t-0")])
    [route] = (await one.routes()).values()
    assert route.status == "completed" and route.status_reason == "все шаги выполнены"
    assert all(s["status"] == "done" for s in route.steps)
    out = await staged(one, before)
    assert types(out) == [STEP_DONE, TRAINED, COMPLETED]
    assert out[1][1]["source"] == "course_event" and out[1][1]["route_id"] == route.route_id
    assert out[2][1]["by"] == "all_steps"
    loads = await one.loads()
    assert all(load == 0 for load, _ in loads.values()), loads
    async with one.sessions() as session:
        [row] = await session.execute(select(repository.courses))
    assert (row.status, row.route_id, row.step_id) == (
        "applied",
        route.route_id,
        program["step_id"],
    )


async def methodist_marks(ledger: Ledger, route_id: str, step: dict[str, Any]) -> None:
    route = await lifecycle.open_route(ledger, route_id)
    route.check_methodist("m-1", "Отметить шаг")
    await lifecycle.complete_step(
        ledger, route, step["step_id"], "m-1", ledger.ctx.day(), "methodist"
    )


# --- the methodist's edits -----------------------------------------------------------------


async def test_an_edit_resets_the_approvals_and_moves_the_seats(one: Routes) -> None:
    await one.deliver([diagnosis(0, 0)])
    [route] = (await one.routes()).values()
    await use_case(one, lambda ledger: lifecycle.approve(ledger, route.route_id, "teacher", "t-0"))
    site_step = next(s for s in route.steps if s["kind"] == "internship")
    before_loads = await one.loads()
    before = len(await one.published())
    answer = await use_case(
        one,
        lambda ledger: lifecycle.edit(
            ledger,
            route.route_id,
            "remove",
            "m-1",
            "площадка закрыта",
            step_id=site_step["step_id"],
        ),
    )
    assert answer == {"step_id": site_step["step_id"]}
    [after] = (await one.routes()).values()
    assert after.approvals == []
    removed = next(s for s in after.steps if s["step_id"] == site_step["step_id"])
    assert (removed["status"], removed["removed_reason"]) == ("removed", "площадка закрыта")
    assert after.total_hours == route.total_hours - site_step["hours"]
    assert after.history[-1]["action"] == "step_remove"
    loads = await one.loads()
    assert loads[("site", "site-1")][0] == before_loads[("site", "site-1")][0] - 1
    assert_seats_add_up(await one.routes(), loads)
    assert await staged(one, before) == []  # an edit says nothing on the wire
    with pytest.raises(Refused) as unknown:
        await use_case(
            one,
            lambda ledger: lifecycle.edit(
                ledger,
                route.route_id,
                "add",
                "m-1",
                "ещё курс",
                step={
                    "kind": "program",
                    "competency": "digital",
                    "hours": 8,
                    "reason": "",
                    "program_id": "p-none",
                },
            ),
        )
    assert unknown.value.code == "unknown_program"


async def test_the_last_approval_reads_before_it_writes_and_never_reads_back(one: Routes) -> None:
    """The route, the membership and the teacher's open routes are read; then one update of
    the route and the staged event: nothing written is read again."""
    await one.deliver([diagnosis(0, 0)])
    [route] = (await one.routes()).values()
    for role, by in (("teacher", "t-0"), ("methodist", "m-1")):
        await use_case(
            one,
            lambda ledger, role=role, by=by: lifecycle.approve(ledger, route.route_id, role, by),
        )
    statements: list[str] = []

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.split()[0].upper())

    sa_event.listen(one.engine.sync_engine, "before_cursor_execute", counted)
    try:
        await use_case(
            one, lambda ledger: lifecycle.approve(ledger, route.route_id, "management", "dir")
        )
    finally:
        sa_event.remove(one.engine.sync_engine, "before_cursor_execute", counted)
    work = [s for s in statements if s in ("SELECT", "UPDATE", "INSERT")]
    first_write = next(n for n, s in enumerate(work) if s != "SELECT")
    assert work[:first_write] == ["SELECT"] * 3, work
    assert "SELECT" not in work[first_write:], work
    [after] = (await one.routes()).values()
    assert after.status == "active"
