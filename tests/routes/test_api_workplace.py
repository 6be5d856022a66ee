"""The JSON of the methodist's workplace, on a real Redis and SQLite: my routes, the drafts
awaiting my approval and the queue; a route in words (titles from the read models,
competency names, the history's actions and actors); a methodist acting on another's
route refused in Russian; teachers' names read from a real registries service (under
uvicorn, its own database, the registry events reaching routes over Redis) for a principal
holding ``personal_data``, each read in the registries' access log with the purpose and the
acting methodist; pseudonyms with a note otherwise, and when the registries are gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from e2e.pages import served
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from waiting import wait_for

from iomflow.registries.app import create_app as create_registries
from iomflow.registries.repository import tables as registries_tables
from iomflow.registries.settings import Settings as RegistriesSettings
from iomflow.routes import people, wording
from iomflow.shared import auth
from routes.test_api import (
    deficit,
    diagnose,
    diagnosis,
    key_for,
    load_registry,
    make_app,
    methodist,
    publish_diagnosis,
    registry,
    route_for,
    stats_of,
)

REGISTRIES_ADMIN = "iomf_test_registries_admin"


async def test_the_workplace_lists_my_routes_the_drafts_awaiting_me_and_the_queue(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis, registry([methodist("meth-1", capacity=2)]))
    first = await diagnose(client, clean_redis, diagnosis("t-1", deficit("digital", 30)))
    second = await diagnose(client, clean_redis, diagnosis("t-2", deficit("assessment", 40)))
    waiting = await diagnose(client, clean_redis, diagnosis("t-3", deficit("digital", 35)))
    assert (first["methodist_id"], second["methodist_id"], waiting["methodist_id"]) == (
        "meth-1",
        "meth-1",
        None,
    )
    mine = await key_for(app, "Методист 1", "methodist", person="meth-1")

    desk = await client.get("/v1/workplace", headers=mine)
    assert desk.status_code == 200, desk.text
    data = desk.json()
    assert data["methodist_id"] == "meth-1"
    assert data["methodist"] == {"capacity": 2, "load": 2, "free": 0}
    assert data["names"] == {"shown": False, "note": people.NOTE_NO_ROLE}
    rows = {r["teacher_id"]: r for r in data["routes"]}
    assert set(rows) == {"t-1", "t-2"}
    one = rows["t-1"]
    assert one["teacher_name"] == "t-1"  # a pseudonym: this key may not see names
    assert (one["status"], one["status_name"]) == ("drafted", "составлен")
    assert one["municipality_name"] == "г. Иркутск"
    assert one["competencies"] == [wording.competency("digital")]
    assert one["missing_names"] == ["педагог", "методист", "управленческая команда ОО"]
    assert one["steps_done"] == 0 and one["steps_total"] == len(first["steps"])
    assert {r["teacher_id"] for r in data["awaiting"]} == {"t-1", "t-2"}
    assert [(r["teacher_id"], r["methodist_id"]) for r in data["queue"]["items"]] == [("t-3", None)]
    assert (data["queue"]["total"], data["queue"]["offset"]) == (1, 0)

    approved = await client.post(
        f"/v1/routes/{first['route_id']}/approvals", json={"role": "methodist"}, headers=mine
    )
    assert approved.status_code == 200, approved.text
    data = (await client.get("/v1/workplace", headers=mine)).json()
    assert [r["teacher_id"] for r in data["awaiting"]] == ["t-2"]
    assert {r["teacher_id"]: r["missing_names"] for r in data["routes"]}["t-1"] == [
        "педагог",
        "управленческая команда ОО",
    ]

    theirs = await key_for(app, "Методист 2", "methodist", person="meth-2")
    other = (await client.get("/v1/workplace", headers=theirs)).json()
    assert (other["routes"], other["awaiting"], other["methodist"]) == ([], [], None)
    assert [r["teacher_id"] for r in other["queue"]["items"]] == ["t-3"]
    peeking = await client.get("/v1/workplace", params={"methodist_id": "meth-1"}, headers=theirs)
    assert (peeking.status_code, peeking.json()["code"]) == (403, "not_your_key")
    nobodys = await key_for(app, "кабинет методиста", "methodist")
    unsaid = await client.get("/v1/workplace", headers=nobodys)
    assert (unsaid.status_code, unsaid.json()["code"]) == (422, "methodist_required")
    said = await client.get("/v1/workplace", params={"methodist_id": "meth-1"}, headers=nobodys)
    assert [r["teacher_id"] for r in said.json()["awaiting"]] == ["t-2"]
    anonymous = await client.get("/v1/workplace")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")
    teacher = await key_for(app, "портал педагога", "teacher")
    assert (await client.get("/v1/workplace", headers=teacher)).status_code == 403


async def test_a_route_in_words_with_its_history_and_another_methodist_refused(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    await load_registry(client, clean_redis)
    route = await diagnose(client, clean_redis, diagnosis("t-1", deficit("digital", 30)))
    route_id = route["route_id"]
    mine = await key_for(app, "Методист 1", "methodist", person="meth-1")
    theirs = await key_for(app, "Методист 2", "methodist", person="meth-2")

    view = (await client.get(f"/v1/routes/{route_id}/view", headers=mine)).json()
    plain = (await client.get(f"/v1/routes/{route_id}")).json()
    assert {k: view[k] for k in plain if k not in ("steps", "history")} == {
        k: v for k, v in plain.items() if k not in ("steps", "history")
    }  # the route's own answer, with words added
    assert view["mine"] is True and view["status_name"] == "составлен"
    programs = [s for s in view["steps"] if s["kind"] == "program"]
    assert programs and all(s["program_title"] for s in programs)
    titles = {
        "p-digital-fed": "Цифровая образовательная среда (ФР)",
        "p-digital-reg": "Цифровая среда школы",
    }
    assert all(s["program_title"] == titles[s["program_id"]] for s in programs)
    assert all(s["competency_name"] == wording.competency("digital") for s in view["steps"])
    assert all(s["kind_name"] == wording.kind(s["kind"]) for s in view["steps"])
    assert [(h["action_name"], h["by_name"]) for h in view["history"][:2]] == [
        ("маршрут составлен", "сервис маршрутов"),
        ("назначен методист", "сервис маршрутов"),
    ]

    options = (await client.get(f"/v1/routes/{route_id}/options", headers=mine)).json()
    assert {p["program_id"] for p in options["programs"]} >= set(titles)
    assert {s["title"] for s in options["sites"]} == {
        "Лицей № 9 (Ангарск)",
        "Гимназия № 5 (Иркутск)",
    }
    assert [m["mentor_id"] for m in options["mentors"]] == ["mentor-1"]
    assert {"code": "digital", "name": wording.competency("digital")} in options["competencies"]

    def post(path: str, body: dict[str, Any], key: dict[str, str]) -> Any:
        return client.post(f"/v1/routes/{route_id}/{path}", json=body, headers=key)

    # Another methodist: the page is readable (pseudonyms, a note), acting is refused.
    seen = (await client.get(f"/v1/routes/{route_id}/view", headers=theirs)).json()
    assert seen["mine"] is False
    assert seen["names"] == {"shown": False, "note": people.NOTE_NOT_YOURS}
    refused = await post("approvals", {"role": "methodist"}, theirs)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_the_methodist")
    assert refused.json()["detail"] == "Согласовать может только методист маршрута."
    step = {"competency": "digital", "kind": "consultation", "hours": 4}
    for path, body in (
        ("steps", {"reason": "чужой маршрут", "step": step}),
        ("steps/s1/replace", {"reason": "чужой маршрут", "step": step}),
        ("steps/s1/remove", {"reason": "чужой маршрут"}),
        ("steps/s1/complete", {"reason": "чужой маршрут"}),
    ):
        answer = await post(path, body, theirs)
        assert (answer.status_code, answer.json()["code"]) == (403, "not_the_methodist"), path
        assert "только методист маршрута" in answer.json()["detail"]
    assert (await client.get(f"/v1/routes/{route_id}")).json()["history"] == plain["history"]

    # The route's methodist: approve, replace a step with a reason, complete one with a word.
    assert (await post("approvals", {"role": "methodist"}, mine)).status_code == 200
    replaced = await post(
        "steps/s1/replace",
        {"reason": "педагог выбрал региональную программу", "step": {
            "competency": "digital", "kind": "program", "hours": 36,
            "program_id": "p-digital-reg"}},
        mine,
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    new = replaced.json()["step_id"]
    done = await post(f"steps/{new}/complete", {"reason": "курс пройден досрочно"}, mine)
    assert done.status_code == 200, done.text
    short = await post("steps/s2/complete", {"reason": "ok"}, mine)
    assert short.status_code == 422  # a reason of under three letters says nothing

    view = (await client.get(f"/v1/routes/{route_id}/view", headers=mine)).json()
    steps = {s["step_id"]: s for s in view["steps"]}
    assert (steps["s1"]["status_name"], steps["s1"]["removed_reason"]) == (
        "удалён",
        "педагог выбрал региональную программу",
    )
    assert (steps[new]["program_title"], steps[new]["status_name"]) == (
        "Цифровая среда школы",
        "выполнен",
    )
    assert [(h["action_name"], h["by_name"], h.get("reason")) for h in view["history"][-3:]] == [
        ("согласование: методист", "meth-1", None),
        ("заменён шаг", "meth-1", "педагог выбрал региональную программу"),
        ("шаг выполнен", "meth-1", "курс пройден досрочно"),
    ]
    assert (await client.get(f"/v1/routes/{route_id}/view")).status_code == 401
    missing = await client.get("/v1/routes/nowhere/view", headers=mine)
    assert (missing.status_code, missing.json()["code"]) == (404, "route_not_found")


# --- names from the registries -------------------------------------------------------------

PEOPLE = {
    "t-1": "Петрова Мария Ивановна",
    "t-2": "Кузнецов Олег Викторович",
    "t-3": "Ёлкина-Соболева Дарья Олеговна",
    "meth-1": "Сидорова Анна Петровна",
}
REGION = {
    "municipalities": [{"municipality_id": "mun-01", "name": "г. Иркутск"}],
    "organizations": [
        {"organization_id": "org-1", "municipality_id": "mun-01", "name": "СОШ № 1",
         "kind": "school"},
    ],
    "teachers": [
        {"teacher_id": t, "organization_id": "org-1", "position": "учитель",
         "subjects": ["математика"], "birth_date": "1985-03-01", "hire_date": "2010-09-01",
         "full_name": PEOPLE[t]}
        for t in ("t-1", "t-2", "t-3")
    ],
    "methodists": [
        {"methodist_id": "meth-1", "specialisations": ["digital"], "municipalities": [],
         "capacity": 250, "full_name": PEOPLE["meth-1"]},
    ],
    "programs": [
        {"program_id": "p-digital", "title": "Цифровая образовательная среда", "kind": "pk",
         "hours": 36, "format": "distance", "competencies": ["digital"],
         "audiences": ["general"]},
    ],
}  # fmt: skip


async def test_names_come_from_the_registries_for_personal_data_and_every_read_is_logged(
    clean_redis: str, tmp_path: Path
) -> None:
    (tmp_path / "registries").mkdir()
    registries = create_registries(
        RegistriesSettings(
            redis_url=clean_redis,
            data_dir=tmp_path / "registries",
            migrate_on_start=True,
            relay_poll_s=0.05,
            admin_key=REGISTRIES_ADMIN,  # type: ignore[arg-type]
        )
    )
    with served(registries, "registries") as base:
        admin = {"Authorization": f"Bearer {REGISTRIES_ADMIN}"}
        async with httpx.AsyncClient(base_url=base, headers=admin) as reg:
            loaded = await reg.post("/v1/load", json=REGION)
            assert loaded.status_code == 200, loaded.text
        runtime = registries.state.runtime
        # The registries run in another thread's loop: the keys are issued through a
        # database connection of this one.
        routes_key = await issue_in(runtime.settings, "сервис маршрутов", "personal_data")
        auditor = await issue_in(runtime.settings, "аудитор", "auditor")

        app = make_app(clean_redis, tmp_path / "routes", "")
        settings = app.state.runtime.settings
        settings.registries_url = base
        settings.registries_key = SecretStr(routes_key)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://routes") as client:
                await assert_names(app, client, clean_redis, base, auditor)


async def issue_in(settings: Any, name: str, *roles: str) -> str:
    engine = create_async_engine(settings.resolved_database_url())
    try:
        async with AsyncSession(engine) as session, session.begin():
            _, key = await auth.issue(session, registries_tables.api_keys, name, roles)
    finally:
        await engine.dispose()
    return key


async def assert_names(
    app: FastAPI, client: httpx.AsyncClient, redis_url: str, base: str, auditor: str
) -> None:
    async def known() -> bool:
        stats = await stats_of(client)
        return (stats["teachers"], stats["methodists"], stats["programs"]) == (3, 1, 1)

    await wait_for(known, "the registries' records in routes' read models")
    routes = []
    for teacher_id in ("t-1", "t-2", "t-3"):
        payload = diagnosis(teacher_id, deficit("digital", 30))
        await publish_diagnosis(redis_url, "diagnostics.diagnosis.completed", payload)
        routes.append(await route_for(client, payload.diagnosis_id))
    assert {r["methodist_id"] for r in routes} == {"meth-1"}

    reader = await key_for(app, "Сидорова А. П.", "methodist", "personal_data", person="meth-1")
    data = (await client.get("/v1/workplace", headers=reader)).json()
    assert data["names"] == {"shown": True, "note": None}
    named = {r["teacher_id"]: r["teacher_name"] for r in data["routes"]}
    assert named == {t: PEOPLE[t] for t in ("t-1", "t-2", "t-3")}
    route_id = routes[0]["route_id"]
    approved = await client.post(
        f"/v1/routes/{route_id}/approvals", json={"role": "methodist"}, headers=reader
    )
    assert approved.status_code == 200, approved.text
    view = (await client.get(f"/v1/routes/{route_id}/view", headers=reader)).json()
    assert (view["teacher_name"], view["methodist_name"]) == (PEOPLE["t-1"], PEOPLE["meth-1"])
    assert view["history"][-1]["by_name"] == PEOPLE["meth-1"]

    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {auditor}"}
    ) as reg:
        log = (await reg.get("/v1/personal-data/access-log", params={"limit": 1000})).json()[
            "items"
        ]
    purpose = "рабочее место методиста: действует meth-1"
    reads = sorted({(r["actor"], r["register"], r["record_id"], r["purpose"]) for r in log})
    assert reads == [
        ("сервис маршрутов", "methodists", "meth-1", purpose),
        ("сервис маршрутов", "teachers", "t-1", purpose),
        ("сервис маршрутов", "teachers", "t-2", purpose),
        ("сервис маршрутов", "teachers", "t-3", purpose),
    ]

    # Without personal_data: pseudonyms and a note, and the registries are not asked.
    plain = await key_for(app, "Методист без доступа", "methodist", person="meth-1")
    data = (await client.get("/v1/workplace", headers=plain)).json()
    assert data["names"] == {"shown": False, "note": people.NOTE_NO_ROLE}
    assert {r["teacher_name"] for r in data["routes"]} == {"t-1", "t-2", "t-3"}
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {auditor}"}
    ) as reg:
        again = (await reg.get("/v1/personal-data/access-log", params={"limit": 1000})).json()[
            "items"
        ]
    assert len(again) == len(log)

    # A wrong key of routes at the registries: refused there, said here.
    settings = app.state.runtime.settings
    right = settings.registries_key
    settings.registries_key = SecretStr("iomf_not_a_key")
    data = (await client.get("/v1/workplace", headers=reader)).json()
    assert data["names"] == {"shown": False, "note": people.NOTE_REFUSED}
    settings.registries_key = right
    # The registries gone: the page still loads, with pseudonyms and a note.
    settings.registries_url = "http://127.0.0.1:9"
    data = (await client.get("/v1/workplace", headers=reader)).json()
    assert data["names"] == {"shown": False, "note": people.NOTE_UNAVAILABLE}
    assert {r["teacher_name"] for r in data["routes"]} == {"t-1", "t-2", "t-3"}
    settings.registries_url = None
    data = (await client.get("/v1/workplace", headers=reader)).json()
    assert data["names"] == {"shown": False, "note": people.NOTE_NOT_CONNECTED}
