"""The needs questionnaire in process on a real Redis and SQLite/PostgreSQL: answers over
``POST /v1/needs`` (201 with what was stored; 422/409 problems in Russian), over the results
inbound stream (a bad one dead-lettered with its reason) and ``POST /v1/events`` with a
publisher's key; ``diagnostics.needs.recorded`` on the diagnostics stream; an answer of an
unknown teacher held until they arrive; ``GET /v1/needs``; the needs section of
``/v1/analytics`` beside the deficits and the program gap, and its sheet in the workbook."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import openpyxl
from fastapi import FastAPI
from waiting import wait_for

from diagnostics.test_api import (
    ADMIN,
    dead_letters,
    five,
    open_campaign,
    post_all,
    publish,
    published,
)
from iomflow.diagnostics.repository import ingest_tables
from iomflow.shared import publishers
from iomflow.shared.contracts import NeedsSubmitted, Streams, TeacherUpserted, new_event

OCTOBER = "2026-10-07T15:00:00+08:00"


def needs(teacher: str, **body: Any) -> dict[str, Any]:
    return {
        "teacher_id": teacher,
        "campaign_id": "autumn",
        "answered_at": OCTOBER,
        "competencies": ["digital", "teaching_methods"],
        "themes": ["digital_environment"],
        "formats": ["course", "webinar"],
        **body,
    }


async def test_an_answer_posted_is_stored_listed_and_recorded_on_the_stream(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await open_campaign(client, "autumn")
    event_id = str(uuid.uuid4())
    body = needs("t-5", external_id="mms-n-5", event_id=event_id, source="mms-portal")
    response = await client.post("/v1/needs", headers=ADMIN, json=body)
    assert response.status_code == 201, response.text
    reply = response.json()
    assert (reply["status"], reply["duplicate"], reply["source"]) == (
        "stored", False, "mms-portal",
    )  # fmt: skip
    stored = reply["needs"]
    assert (stored["response_id"], stored["organization_id"], stored["municipality_id"]) == (
        event_id, "org-2", "mun-02",
    )  # fmt: skip
    assert stored["answered_on"] == "2026-10-07" and stored["external_id"] == "mms-n-5"
    assert stored["formats"] == ["course", "webinar"]
    assert stored["submitted"]["competencies"] == ["digital", "teaching_methods"]

    listed = (await client.get("/v1/needs", params={"campaign_id": "autumn"})).json()
    assert listed["total"] == 1 and listed["items"] == [stored]
    assert (await client.get("/v1/needs", params={"campaign_id": "spring"})).json()["total"] == 0

    again = await client.post("/v1/needs", headers=ADMIN, json=body)
    assert again.status_code == 201 and again.json()["status"] == "duplicate"
    assert again.json()["needs"]["response_id"] == event_id

    async def recorded() -> list[dict[str, Any]]:
        return await published(clean_redis, "diagnostics.needs.recorded")

    await wait_for(recorded, "diagnostics.needs.recorded on the diagnostics stream")
    [event] = await recorded()
    assert event == {
        "response_id": event_id, "teacher_id": "t-5", "organization_id": "org-2",
        "municipality_id": "mun-02", "campaign_id": "autumn", "answered_on": "2026-10-07",
        "competencies": ["digital", "teaching_methods"], "themes": ["digital_environment"],
        "formats": ["course", "webinar"],
    }  # fmt: skip
    assert (await client.get("/v1/stats")).json()["needs"] == 1


async def test_answers_that_break_a_rule_get_a_russian_problem_and_change_nothing(
    client: httpx.AsyncClient,
) -> None:
    await open_campaign(client, "autumn")
    first = await client.post("/v1/needs", headers=ADMIN, json=needs("t-1", external_id="n-1"))
    assert first.status_code == 201, first.text
    cases = [
        (needs("t-1", external_id="n-1"), 409, "duplicate_external_id", "уже принята"),
        (needs("t-1", competencies=["astrology"]), 422, "unknown_competency", "astrology"),
        (needs("t-1", campaign_id="nope"), 422, "unknown_campaign", "не найдена"),
        (needs("t-1", answered_at="2027-02-01T10:00:00Z"), 422, "outside_campaign_window",
         "01.02.2027"),
        (needs("t-1", competencies=[], themes=[]), 422, "validation_error", "не прошёл"),
        (needs("t-1", formats=["telepathy"]), 422, "validation_error", "не прошёл"),
    ]  # fmt: skip
    for body, status, code, said in cases:
        response = await client.post("/v1/needs", headers=ADMIN, json=body)
        assert response.status_code == status, (code, response.text)
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == code and said in problem["detail"], problem
    assert (await client.post("/v1/needs", json=needs("t-1"))).status_code == 401
    assert (await client.get("/v1/needs")).json()["total"] == 1


async def test_answers_on_the_stream_are_taken_and_a_bad_one_is_dead_lettered(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await open_campaign(client, "autumn")
    good = [NeedsSubmitted.model_validate(needs(f"t-{n}")) for n in (1, 2)]
    bad = NeedsSubmitted.model_validate(needs("t-3", competencies=["astrology"]))
    events = [
        new_event("diagnostics.needs.submitted", p, source="mms", subject=p.teacher_id)
        for p in (good[0], bad, good[1])
    ]
    await publish(clean_redis, Streams.RESULTS_INBOUND, events)

    async def taken() -> bool:
        return (await client.get("/v1/needs")).json()["total"] == 2

    await wait_for(taken, "the good answers")
    [dead] = await dead_letters(clean_redis)
    assert dead["type"] == "diagnostics.needs.submitted"
    assert dead["dlq_reason"] == "unknown_competency" and "astrology" in dead["dlq_error"]
    assert dead["event_id"] == str(events[1].event_id)
    items = (await client.get("/v1/needs")).json()["items"]
    assert [i["response_id"] for i in items] == [str(events[0].event_id), str(events[2].event_id)]


async def test_a_publisher_posts_answers_to_the_events_door(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await open_campaign(client, "autumn")
    async with app.state.runtime.sessions() as session, session.begin():
        key = await publishers.add_publisher(
            session, ingest_tables, "mms-survey", ["diagnostics.needs.submitted"],
            allowed=["diagnostics.result.submitted", "diagnostics.needs.submitted"],
        )  # fmt: skip
    headers = {"X-API-Key": str(key)}
    envelope = {
        "event_id": str(uuid.uuid4()),
        "type": "diagnostics.needs.submitted",
        "occurred_at": OCTOBER,
        "subject": "t-2",
        "data": needs("t-2"),
    }
    response = await client.post("/v1/events", headers=headers, json=envelope)
    assert response.status_code == 202, response.text
    assert response.json()["stream"] == Streams.RESULTS_INBOUND

    async def taken() -> list[Any]:
        return list((await client.get("/v1/needs")).json()["items"])

    await wait_for(taken, "the answer posted to /v1/events")
    [stored] = await taken()
    assert (stored["response_id"], stored["source"]) == (envelope["event_id"], "mms-survey")
    # the same key on the intake form: its type is allowed, the source is the publisher's
    direct = await client.post("/v1/needs", headers=headers, json=needs("t-3"))
    assert direct.status_code == 201 and direct.json()["source"] == "mms-survey"
    # a results-only publisher may not send needs answers
    async with app.state.runtime.sessions() as session, session.begin():
        other = await publishers.add_publisher(
            session, ingest_tables, "cop", ["diagnostics.result.submitted"],
            allowed=["diagnostics.result.submitted", "diagnostics.needs.submitted"],
        )  # fmt: skip
    refused = await client.post("/v1/needs", headers={"X-API-Key": str(other)}, json=needs("t-4"))
    assert refused.status_code == 403 and refused.json()["code"] == "type_not_allowed"


async def test_an_answer_of_an_unknown_teacher_is_held_until_they_arrive(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await open_campaign(client, "autumn")
    response = await client.post("/v1/needs", headers=ADMIN, json=needs("t-new"))
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["needs"]) == ("held", None)
    [held] = (await client.get("/v1/held")).json()["items"]
    assert (held["teacher_id"], held["type"]) == ("t-new", "diagnostics.needs.submitted")
    teacher = TeacherUpserted(
        teacher_id="t-new", organization_id="org-1", municipality_id="mun-01",
        position="учитель", audience="general", age_band="<25", experience_band="<3",
    )  # fmt: skip
    await publish(
        clean_redis,
        Streams.REGISTRY,
        [new_event("registry.teacher.upserted", teacher, source="registries", subject="t-new")],
    )

    async def taken() -> bool:
        return (await client.get("/v1/needs")).json()["total"] == 1

    await wait_for(taken, "the held answer to be taken")
    [stored] = (await client.get("/v1/needs")).json()["items"]
    assert (stored["teacher_id"], stored["organization_id"]) == ("t-new", "org-1")
    assert (await client.get("/v1/held")).json()["total"] == 0


async def test_the_analytics_show_the_needs_beside_the_deficits_and_the_program_gap(
    client: httpx.AsyncClient,
) -> None:
    await open_campaign(client, "autumn")
    for teacher in ("t-1", "t-2", "t-5"):
        await post_all(client, five(teacher, "autumn", base=30))
    for teacher in ("t-1", "t-2", "t-3", "t-5"):
        response = await client.post("/v1/needs", headers=ADMIN, json=needs(teacher))
        assert response.status_code == 201, response.text
    # t-1 answers again: their latest answer counts
    later = needs("t-1", answered_at="2026-10-20T10:00:00+08:00", competencies=["upbringing"],
                  themes=[], formats=["mentoring"])  # fmt: skip
    assert (await client.post("/v1/needs", headers=ADMIN, json=later)).status_code == 201

    report = (await client.get("/v1/analytics", params={"campaign_id": "autumn"})).json()
    section = report["needs"]
    assert section["answered"] == 4
    asked = {c["code"]: c for c in section["competencies"]}
    deficits = {c["code"]: c["deficits"] for c in report["competencies"]}
    gap = {g["code"] for g in report["program_gap"]}
    assert asked["digital"]["asking"] == 3 and asked["upbringing"]["asking"] == 1
    assert asked["digital"]["share"] == 75.0
    for code, row in asked.items():
        assert row["deficits"] == deficits[code]
        assert row["in_program_gap"] == (code in gap)
    assert asked["digital"]["programs"] == ["p-digital"]
    assert asked["teaching_methods"]["programs"] == []
    assert gap & set(asked), "some competency asked for is in the program gap"
    by_municipality = {m["id"]: m for m in section["municipalities"]}
    assert by_municipality["mun-01"]["answered"] == 3  # t-1, t-2, t-3
    assert by_municipality["mun-01"]["competencies"]["digital"] == 2
    assert by_municipality["mun-02"]["name"] == "Катангский район"
    [school] = [o for o in section["organizations"] if o["id"] == "org-1"]
    assert (school["name"], school["municipality"]) == ("СОШ № 1", "г. Иркутск")
    assert school["formats"] == {"course": 2, "mentoring": 1, "webinar": 2}
    formats = {f["code"]: f for f in section["formats"]}
    assert formats["course"]["name"] == "курсы повышения квалификации"
    assert formats["course"]["count"] == 3

    response = await client.get("/v1/analytics.xlsx", params={"campaign_id": "autumn"})
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    rows = list(book["Образовательные потребности"].iter_rows(values_only=True))
    by_code = {r[0]: r for r in rows[1:]}
    assert set(by_code) == set(asked)
    assert by_code["digital"][2] == 3 and by_code["digital"][4] == asked["digital"]["deficits"]
    for code, row in asked.items():
        assert by_code[code][7] == ("да" if row["in_program_gap"] else "нет")
