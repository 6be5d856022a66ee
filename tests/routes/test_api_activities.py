"""Activities over HTTP on a real Redis and SQLite/PostgreSQL: a methodist records a School
of the Ministry team's consultation and it counts for its month; attendance grows
idempotently; attending a consultation completes the matching step of a teacher's agreed
route; unknown teachers and bad keys are refused in Russian; an XLSX upload records
every row or, with any bad row, none; the events reach the routes stream."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import httpx
from fastapi import FastAPI
from openpyxl import Workbook, load_workbook
from redis.asyncio import Redis
from waiting import wait_for

from iomflow.shared import wire
from iomflow.shared.contracts import (
    CommunityUpserted,
    SchoolTeamUpserted,
    Streams,
    TeacherUpserted,
)
from routes.test_api import (
    ADMIN,
    TODAY,
    approve,
    deficit,
    diagnose,
    diagnosis,
    get_route,
    key_for,
    load_registry,
    one_published,
    publish,
    stats_of,
    step_of,
    upserted,
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def registry() -> list[Any]:
    teachers = [
        upserted(
            "teacher",
            TeacherUpserted(
                teacher_id=f"t-{n}",
                organization_id="org-1",
                municipality_id="mun-01",
                position="учитель",
                audience="general",  # type: ignore[arg-type]
                age_band="35-44",
                experience_band="10-20",
            ),
            f"t-{n}",
        )
        for n in range(1, 5)
    ]
    team = SchoolTeamUpserted(
        team_id="team-1",
        organization_id="org-1",
        municipality_id="mun-01",
        members=["t-1", "t-2"],
        methodists=["m-1"],
    )
    community = CommunityUpserted(community_id="c-1", title="Учителя математики", level="regional")
    return [
        *teachers,
        upserted("school_team", team, "team-1"),
        upserted("community", community, "c-1"),
    ]


async def load(client: httpx.AsyncClient, redis_url: str) -> None:
    await publish(redis_url, Streams.REGISTRY, registry())

    async def known() -> bool:
        stats = await stats_of(client)
        teams = (await client.get("/v1/teams")).json()
        return stats["teachers"] == 4 and stats["communities"] == 1 and teams["total"] == 1

    await wait_for(known, "the registries' read models")


def consultation(**changes: Any) -> dict[str, Any]:
    return {
        "activity_id": "cons-1",
        "kind": "consultation",
        "title": "Консультация команды по ФГ",
        "level": "regional",
        "organiser_id": "cnppm",
        "format": "distance",
        "held_on": "2026-03-12",
        "competencies": ["assessment"],
        "target": "school_team",
        "team_id": "team-1",
        "project": "school_of_ministry",
        "attendees": ["t-1", "t-2"],
    } | changes


async def test_a_team_consultation_is_recorded_and_counts_for_its_month(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load(client, clean_redis)
    methodist = await key_for(app, "методист", "methodist", person="m-1")
    teacher_key = await key_for(app, "портал", "teacher")

    assert (await client.post("/v1/activities", json=consultation())).status_code == 401
    refused = await client.post("/v1/activities", json=consultation(), headers=teacher_key)
    assert refused.status_code == 403

    created = await client.post("/v1/activities", json=consultation(), headers=methodist)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["activity_id"], body["attendees"], body["methodist_id"]) == ("cons-1", 2, "m-1")
    assert body["completed_steps"] == []

    grown = await client.post(
        "/v1/activities/cons-1/attendance", json={"teachers": ["t-2", "t-3"]}, headers=methodist
    )
    assert grown.status_code == 200, grown.text
    assert grown.json()["attendees"] == 3
    again = await client.post("/v1/activities", json=consultation(), headers=ADMIN)
    assert again.status_code == 201 and again.json()["attendees"] == 3

    unknown = await client.post(
        "/v1/activities", json=consultation(activity_id="cons-2", attendees=["t-9"]), headers=ADMIN
    )
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "unknown_teacher"
    assert "«t-9» нет в реестре педагогов" in unknown.json()["detail"]
    other = await client.post(
        "/v1/activities", json=consultation(title="Другая"), headers=methodist
    )
    assert (other.status_code, other.json()["code"]) == (409, "activity_conflict")
    missing = await client.get("/v1/activities/nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "activity_not_found")

    listed = (await client.get("/v1/activities", params={"team_id": "team-1"})).json()
    assert (listed["total"], listed["items"][0]["attendees"]) == (1, 3)
    assert (await client.get("/v1/activities", params={"since": "2026-04-01"})).json()["total"] == 0

    [team] = (await client.get("/v1/teams")).json()["items"]
    assert (team["team_id"], team["members"], team["methodists"]) == (
        "team-1",
        ["t-1", "t-2"],
        ["m-1"],
    )
    months = (await client.get("/v1/teams/team-1/consultations", params={"year": 2026})).json()
    assert [m["consultations"] for m in months["months"]][:4] == [0, 0, 1, 0]
    assert [m["held"] for m in months["months"]][2] is True
    assert months["total"] == 1
    nothing = await client.get("/v1/teams/team-9/consultations")
    assert (nothing.status_code, nothing.json()["code"]) == (404, "team_not_found")

    # The events reach the routes stream: held twice (2, then 3 attendees), three attended.
    async with Redis.from_url(clean_redis, decode_responses=True) as redis:

        async def published() -> list[Any]:
            entries = await redis.xrange(Streams.ROUTES)
            return [wire.decode(fields) for _, fields in entries]

        async def all_out() -> bool:
            return len([e for e in await published() if e.type.startswith("routes.activity")]) == 5

        await wait_for(all_out, "the activity events on the routes stream")
        events = [e for e in await published() if e.type.startswith("routes.activity")]
        held = [e.payload.attendees for e in events if e.type == "routes.activity.held"]
        assert held == [2, 3]
        attended = [e.payload.attendance_id for e in events if e.type == "routes.activity.attended"]
        assert attended == ["cons-1:t-1", "cons-1:t-2", "cons-1:t-3"]


def workbook(rows: list[list[Any]], header: list[str] | None = None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(
        header
        or ["Код мероприятия", "Вид", "Название", "Уровень", "Организатор", "Формат", "Дата",
            "Для кого", "Команда", "Темы", "Участники"]
    )  # fmt: skip
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(content: bytes, name: str = "activities.xlsx") -> dict[str, Any]:
    return {"file": (name, content, XLSX)}


async def test_an_xlsx_upload_records_every_row_or_none(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load(client, clean_redis)
    template = await client.get("/v1/activities/template.xlsx")
    assert template.status_code == 200
    assert template.headers["content-type"] == XLSX
    sheet = load_workbook(io.BytesIO(template.content)).worksheets[0]
    headers = [c.value for c in sheet[1]]
    assert headers[:3] == ["Код мероприятия", "Вид", "Название"] and "Участники" in headers

    good = [
        ["sem-1", "Семинар", "ФГОС", "Региональный", "cnppm", "Очно", date(2026, 2, 5),
         "Педагоги", None, "Обновлённые ФГОС", "t-1; t-2"],
        ["cons-1", "консультация", "Команда", "Региональный", "cnppm", "Дистанционно",
         "12.03.2026", "Школьная команда", "team-1", None, "t-1"],
    ]  # fmt: skip
    bad = [
        ["web-1", "Вебинар", "Выгорание", "Региональный", "cnppm", "Онлайн", "31.02.2026",
         "Педагоги", None, "Профилактика профессионального выгорания", "t-1"],
        ["cons-2", "Консультация", "Команда", "Региональный", "cnppm", "Очно", "01.04.2026",
         "Школьная команда", "team-7", None, "t-1; t-99"],
    ]  # fmt: skip
    refused = await client.post(
        "/v1/activities/imports", files=upload(workbook(good + bad)), headers=ADMIN
    )
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "import_rows_invalid"
    assert "ничего не записано" in problem["detail"]
    errors = {(e["row"], e["field"]): e for e in problem["errors"]}
    assert set(errors) == {(4, "format"), (4, "held_on"), (5, "team_id"), (5, "attendees")}
    assert errors[(4, "format")]["letter"] == "F" and errors[(4, "format")]["value"] == "Онлайн"
    assert "допустимо: Очно, Дистанционно, Смешанный" in errors[(4, "format")]["reason"]
    assert "такой даты нет" in errors[(4, "held_on")]["reason"]
    assert "«t-99»" in errors[(5, "attendees")]["reason"]
    assert errors[(5, "team_id")]["column"] == "Команда"
    assert (await client.get("/v1/activities")).json()["total"] == 0  # nothing half-written

    header = await client.post(
        "/v1/activities/imports", files=upload(workbook([], ["Вид", "Цвет"])), headers=ADMIN
    )
    assert header.status_code == 422
    reasons = [e["reason"] for e in header.json()["errors"]]
    assert "неизвестный столбец; см. шаблон мероприятий" in reasons
    assert "нет обязательного столбца «Название»" in reasons
    csv = await client.post("/v1/activities/imports", files=upload(b"a;b", "x.csv"), headers=ADMIN)
    assert (csv.status_code, csv.json()["code"]) == (415, "unsupported_file")
    broken = await client.post("/v1/activities/imports", files=upload(b"not a zip"), headers=ADMIN)
    assert (broken.status_code, broken.json()["code"]) == (415, "unsupported_file")
    teacher_key = await key_for(app, "портал", "teacher")
    forbidden = await client.post(
        "/v1/activities/imports", files=upload(workbook(good)), headers=teacher_key
    )
    assert forbidden.status_code == 403

    done = await client.post("/v1/activities/imports", files=upload(workbook(good)), headers=ADMIN)
    assert done.status_code == 200, done.text
    assert done.json() == {
        "rows": 2,
        "created": 2,
        "grown": 0,
        "unchanged": 0,
        "attendances": 3,
        "completed_steps": 0,
    }
    again = await client.post("/v1/activities/imports", files=upload(workbook(good)), headers=ADMIN)
    assert (again.json()["unchanged"], again.json()["attendances"]) == (2, 0)
    seminar = (await client.get("/v1/activities/sem-1")).json()
    assert (seminar["kind"], seminar["format"], seminar["themes"]) == (
        "seminar",
        "in_person",
        ["updated_fgos"],
    )
    months = (await client.get("/v1/teams/team-1/consultations", params={"year": 2026})).json()
    assert [m["consultations"] for m in months["months"]][:3] == [0, 0, 1]


async def test_attending_a_consultation_completes_the_step_of_an_agreed_route(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    """A teacher whose agreed route has a consultation on «teaching_methods» attends one on
    it: the answer names the step, the route shows it done by attendance, and
    ``routes.step.completed`` says so with the activity's id; another attendee, with no
    route, completes nothing."""
    await load_registry(client, clean_redis)
    route = await diagnose(client, clean_redis, diagnosis("t-1", deficit("teaching_methods", 45)))
    route_id = route["route_id"]
    step = step_of(route, kind="consultation", competency="teaching_methods")
    for role, by in (("teacher", "t-1"), ("management", "mm-1"), ("methodist", "meth-1")):
        answer = await approve(client, route_id, role, by, await key_for(app, role, role))
        assert answer.status_code == 200, answer.text
    await one_published(clean_redis, "routes.route.agreed", route_id=route_id)

    methodist = await key_for(app, "кабинет методиста", "methodist", person="meth-1")
    held = await client.post(
        "/v1/activities",
        json={
            "activity_id": "cons-tm",
            "kind": "consultation",
            "title": "Приёмы формирующего оценивания",
            "level": "regional",
            "organiser_id": "cnppm",
            "format": "in_person",
            "held_on": TODAY.isoformat(),
            "competencies": ["teaching_methods"],
            "attendees": ["t-1", "t-2"],
        },
        headers=methodist,
    )
    assert held.status_code == 201, held.text
    assert held.json()["completed_steps"] == [
        {"route_id": route_id, "step_id": step["step_id"], "teacher_id": "t-1"}
    ]
    done = await one_published(clean_redis, "routes.step.completed", route_id=route_id)
    assert (done["step_id"], done["completed_by"], done["activity_id"]) == (
        step["step_id"],
        "attendance",
        "cons-tm",
    )
    assert done["completed_on"] == TODAY.isoformat()
    after = step_of(await get_route(client, route_id), step_id=step["step_id"])
    assert (after["status"], after["completed_by"]) == ("done", "attendance")
    attended = await one_published(clean_redis, "routes.activity.attended", teacher_id="t-1")
    assert (attended["route_id"], attended["step_id"]) == (route_id, step["step_id"])
    other = await one_published(clean_redis, "routes.activity.attended", teacher_id="t-2")
    assert other["route_id"] is None
    shown = (await client.get("/v1/activities/cons-tm")).json()
    assert shown["completed_steps"] == held.json()["completed_steps"]
