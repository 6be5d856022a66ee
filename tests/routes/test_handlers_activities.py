"""Activities and their attendance on real databases (SQLite and PostgreSQL), the use case
run on a ``Ledger`` as an HTTP command runs it and the school teams' read model as the
consumer calls it: attendance completes the matching step of an open route and publishes
held, attended and step completed; recording again is the same fact; an unknown teacher,
team or community writes nothing; 200 attendees cost what 20 do; a team's consultations
count by month."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from iomflow.routes import activities, repository, teams
from iomflow.routes.activities import Entry
from iomflow.routes.ledger import ledger_of
from iomflow.shared.contracts import ActivityHeld, RecordRemoved, SchoolTeamUpserted, new_event
from iomflow.shared.errors import Refused
from iomflow.shared.unit import Deps
from routes.test_handlers_batch import Routes, open_routes_db

HELD, ATTENDED = "routes.activity.held", "routes.activity.attended"
STEP_DONE, ROUTE_DONE = "routes.step.completed", "routes.route.completed"
ON = date(2026, 3, 12)


def teacher(n: int) -> dict[str, Any]:
    return {
        "teacher_id": f"t-{n}",
        "organization_id": "org-1",
        "municipality_id": "mun-1",
        "audience": "general",
        "subjects": [],
        "young": False,
        "is_manager": False,
    }


def step(n: int, kind: str, competency: str, **extra: Any) -> dict[str, Any]:
    return {
        "step_id": f"s{n}",
        "competency": competency,
        "kind": kind,
        "hours": 2,
        "status": "planned",
        "reason": "дефицит",
        **extra,
    }


def route_row(n: int, status: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "route_id": f"r-{n}",
        "diagnosis_id": f"d-{n}",
        "teacher_id": f"t-{n}",
        "organization_id": "org-1",
        "municipality_id": "mun-1",
        "status": status,
        "steps": list(steps),
        "total_hours": 2 * len(steps),
        "methodist_id": "m-1",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }


async def world(
    database_url: str, teachers: int = 3, routes: list[dict[str, Any]] | None = None
) -> Routes:
    routes = routes or []
    return await open_routes_db(
        database_url,
        {
            repository.municipalities: [{"municipality_id": "mun-1", "name": "М", "remote": False}],
            repository.teachers: [teacher(n) for n in range(teachers)],
            repository.methodists: [
                {
                    "methodist_id": "m-1",
                    "specialisations": [],
                    "municipalities": [],
                    "subjects": [],
                    "capacity": 1000,
                    "load": len(routes),
                }
            ],
            repository.communities: [
                {
                    "community_id": "c-1",
                    "title": "Сообщество учителей математики",
                    "level": "regional",
                    "municipality_id": None,
                    "subjects": [],
                    "competencies": ["digital"],
                }
            ],
            repository.school_teams: [
                {
                    "team_id": "team-1",
                    "organization_id": "org-1",
                    "municipality_id": "mun-1",
                    "project": "school_of_ministry",
                    "members": ["t-0"],
                    "methodists": ["m-1"],
                }
            ],
            **({repository.routes: routes} if routes else {}),
        },
    )


def activity(activity_id: str = "a-1", **changes: Any) -> ActivityHeld:
    values: dict[str, Any] = {
        "activity_id": activity_id,
        "kind": "consultation",
        "title": "Оценивание функциональной грамотности",
        "level": "regional",
        "organiser_id": "cnppm",
        "format": "in_person",
        "held_on": ON,
        "competencies": ["assessment"],
        "attendees": 0,
    }
    return ActivityHeld(**(values | changes))


async def record(w: Routes, *entries: Entry) -> list[activities.Recorded]:
    async with w.sessions() as session, session.begin():
        deps = Deps(session, w.outbox, w.ctx)
        async with ledger_of(deps) as ledger:
            done = await activities.record(ledger, list(entries), "m-1")
        await deps.flush()
    return done


async def rows(w: Routes, table: Any) -> list[Any]:
    async with w.sessions() as session:
        return list(await session.execute(select(table)))


async def test_attendance_completes_the_matching_consultation_step_and_publishes_it(
    database_url: str,
) -> None:
    w = await world(
        database_url,
        routes=[
            route_row(
                0,
                "active",
                step(1, "program", "assessment", program_id="p-1"),
                step(2, "consultation", "assessment"),
            )
        ],
    )
    try:
        [done] = await record(w, Entry(activity(), ["t-0", "t-1", "t-0"]))
        assert (done.created, done.added, done.activity.attendees) == (True, ["t-0", "t-1"], 2)
        assert [(c.route_id, c.step_id, c.teacher_id) for c in done.completed] == [
            ("r-0", "s2", "t-0")
        ]
        out = await w.published()
        assert [t for t, _ in out] == [HELD, STEP_DONE, ATTENDED, ATTENDED]
        held, step_done, first, second = (p for _, p in out)
        assert (held["activity_id"], held["attendees"], held["kind"]) == ("a-1", 2, "consultation")
        assert (step_done["step_id"], step_done["completed_by"], step_done["activity_id"]) == (
            "s2",
            "attendance",
            "a-1",
        )
        assert step_done["completed_on"] == "2026-03-12"
        assert (first["attendance_id"], first["route_id"], first["step_id"]) == (
            "a-1:t-0",
            "r-0",
            "s2",
        )
        assert (first["organization_id"], first["municipality_id"]) == ("org-1", "mun-1")
        assert (second["attendance_id"], second["route_id"], second["step_id"]) == (
            "a-1:t-1",
            None,
            None,
        )
        [route] = await rows(w, repository.routes)
        assert route.status == "active"  # the program step is still to do
        by_id = {s["step_id"]: s for s in route.steps}
        assert (by_id["s2"]["status"], by_id["s2"]["completed_by"]) == ("done", "attendance")
        assert by_id["s1"]["status"] == "planned"
        assert route.history[-1]["activity_id"] == "a-1"
        [stored] = await rows(w, repository.activities)
        assert (stored.attendees, stored.competencies) == (2, ["assessment"])
        attended = {r.attendance_id: r for r in await rows(w, repository.attendances)}
        assert set(attended) == {"a-1:t-0", "a-1:t-1"}
        assert (attended["a-1:t-0"].route_id, attended["a-1:t-0"].step_id) == ("r-0", "s2")
    finally:
        await w.engine.dispose()


async def test_recording_again_is_the_same_fact_and_new_attendees_publish_the_new_count(
    database_url: str,
) -> None:
    w = await world(database_url)
    try:
        await record(w, Entry(activity(), ["t-0"]))
        before = len(await w.published())
        [again] = await record(w, Entry(activity(), ["t-0"]))
        assert (again.created, again.added, again.activity.attendees) == (False, [], 1)
        assert len(await w.published()) == before  # no second event
        [grown] = await record(w, Entry(activity(), ["t-0", "t-2"]))
        assert (grown.added, grown.activity.attendees) == (["t-2"], 2)
        out = (await w.published())[before:]
        assert [t for t, _ in out] == [HELD, ATTENDED]
        assert out[0][1]["attendees"] == 2
        assert out[1][1]["attendance_id"] == "a-1:t-2"
        [stored] = await rows(w, repository.activities)
        assert stored.attendees == 2
        assert len(await rows(w, repository.attendances)) == 2
    finally:
        await w.engine.dispose()


@pytest.mark.parametrize(
    ("entry", "code", "status", "said"),
    [
        (Entry(activity(), ["t-0", "t-77"]), "unknown_teacher", 422, "«t-77» нет в реестре"),
        (
            Entry(activity(target="school_team", team_id="team-9"), ["t-0"]),
            "unknown_team",
            422,
            "команды «team-9» нет",
        ),
        (
            Entry(activity(kind="community_meeting", community_id="c-9"), ["t-0"]),
            "unknown_community",
            422,
            "Сообщества «c-9»",
        ),
        (Entry(activity(target="school_team"), []), "activity_incomplete", 422, "команду"),
    ],
)
async def test_an_unknown_teacher_team_or_community_is_refused_and_nothing_is_written(
    database_url: str, entry: Entry, code: str, status: int, said: str
) -> None:
    w = await world(database_url, routes=[route_row(0, "active", step(1, "consultation", "x"))])
    try:
        with pytest.raises(Refused) as refused:
            await record(w, Entry(activity("a-ok"), ["t-1"]), entry)
        assert (refused.value.code, refused.value.status) == (code, status)
        assert said in refused.value.detail
        assert await rows(w, repository.activities) == []
        assert await rows(w, repository.attendances) == []
        assert await w.published() == []
    finally:
        await w.engine.dispose()


async def test_the_same_id_with_other_details_is_a_conflict(database_url: str) -> None:
    w = await world(database_url)
    try:
        await record(w, Entry(activity(), ["t-0"]))
        with pytest.raises(Refused) as refused:
            await record(w, Entry(activity(title="Другое", held_on=date(2026, 4, 1)), ["t-1"]))
        assert (refused.value.code, refused.value.status) == ("activity_conflict", 409)
        assert "название, дата" in refused.value.detail
        assert len(await rows(w, repository.attendances)) == 1
    finally:
        await w.engine.dispose()


async def test_a_community_meeting_and_a_prevention_webinar_complete_the_route(
    database_url: str,
) -> None:
    prevention = step(2, "consultation", "wellbeing", purpose="burnout_prevention")
    community = step(1, "community", "digital", community_id="c-1")
    w = await world(database_url, routes=[route_row(0, "active", community, prevention)])
    try:
        meeting = activity(
            "meet-1",
            kind="community_meeting",
            target="community",
            community_id="c-1",
            competencies=[],
        )
        webinar = activity("web-1", kind="webinar", competencies=[], themes=["burnout_prevention"])
        done = await record(w, Entry(meeting, ["t-0"]), Entry(webinar, ["t-0"]))
        assert [[c.step_id for c in d.completed] for d in done] == [["s1"], ["s2"]]
        out = await w.published()
        assert [t for t, _ in out] == [
            HELD,
            STEP_DONE,
            ATTENDED,
            HELD,
            STEP_DONE,
            ROUTE_DONE,
            ATTENDED,
        ]
        assert out[5][1]["by"] == "all_steps"
        [route] = await rows(w, repository.routes)
        assert route.status == "completed"
        [methodist] = await rows(w, repository.methodists)
        assert methodist.load == 0  # the completed route gave its seat back
    finally:
        await w.engine.dispose()


async def test_two_hundred_attendees_cost_the_statements_of_twenty(database_url: str) -> None:
    """Every attendee has an active route with a matching consultation: the teachers, the
    routes, the activity and its attendance are read once each, whatever their number."""
    w = await world(
        database_url,
        teachers=220,
        routes=[
            route_row(n, "active", step(1, "consultation", "assessment"), step(2, "program", "p"))
            for n in range(220)
        ],
    )
    try:
        statements: list[str] = []

        def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        sa_event.listen(w.engine.sync_engine, "before_cursor_execute", counted)
        costs = {}
        for activity_id, attendees in (("a-20", range(20)), ("a-200", range(20, 220))):
            statements.clear()
            [done] = await record(w, Entry(activity(activity_id), [f"t-{n}" for n in attendees]))
            costs[activity_id] = list(statements)
            assert len(done.completed) == len(attendees)
        sa_event.remove(w.engine.sync_engine, "before_cursor_execute", counted)

        def short(found: list[str]) -> list[str]:
            return [" ".join(s.split()[:3])[:40] for s in found]

        assert len(costs["a-20"]) == len(costs["a-200"]), "\n".join(
            f"{a!r:45} {b!r}"
            for a, b in itertools.zip_longest(short(costs["a-20"]), short(costs["a-200"]))
        )
        assert len(costs["a-200"]) <= 15, short(costs["a-200"])
        done_steps = [
            s for r in await rows(w, repository.routes) for s in r.steps if s["status"] == "done"
        ]
        assert len(done_steps) == 220
    finally:
        await w.engine.dispose()


async def test_school_teams_are_kept_and_their_consultations_counted_by_month(
    database_url: str,
) -> None:
    w = await world(database_url)
    try:
        team = SchoolTeamUpserted(
            team_id="team-2",
            organization_id="org-2",
            municipality_id="mun-1",
            members=["t-1", "t-2"],
            methodists=["m-1"],
        )
        await w.deliver(
            [
                new_event(
                    "registry.school_team.upserted", team, source="registries", subject="team-2"
                )
            ]
        )
        kept = {r.team_id: r for r in await rows(w, repository.school_teams)}
        assert (kept["team-2"].project, kept["team-2"].members) == (
            "school_of_ministry",
            ["t-1", "t-2"],
        )

        def consultation(n: int, held_on: date, **extra: Any) -> Entry:
            values = {"target": "school_team", "team_id": "team-2", "held_on": held_on} | extra
            return Entry(activity(f"c-{n}", **values), ["t-1"])

        await record(
            w,
            consultation(1, date(2026, 1, 14)),
            consultation(2, date(2026, 1, 28)),
            consultation(3, date(2026, 3, 4)),
            consultation(4, date(2025, 12, 20)),  # last year
            consultation(5, date(2026, 2, 2), kind="seminar"),  # not a consultation
            consultation(6, date(2026, 2, 3), target="teachers", team_id=None),  # not the team's
        )
        async with w.sessions() as session:
            months = await teams.consultations(session, "team-2", 2026)
        assert [m.consultations for m in months] == [2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        removed = RecordRemoved(record_id="team-2", reason="вышла из проекта")
        await w.deliver(
            [
                new_event(
                    "registry.school_team.removed", removed, source="registries", subject="team-2"
                )
            ]
        )
        assert {r.team_id for r in await rows(w, repository.school_teams)} == {"team-1"}
    finally:
        await w.engine.dispose()
