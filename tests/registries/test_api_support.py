"""The registers of support outside a route and the practices' course through the HTTP API,
on a real Redis and SQLite/PostgreSQL: loaded by ``POST /v1/load`` and by XLSX, exported and
imported back, verified, removed, each change published as ``registry.<entity>.*`` through
the outbox; a practice moved submitted → reviewed → included → replicated with its events,
moves out of turn refused in Russian; the bank searched; the year's expert activity."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import Workbook, load_workbook
from redis.asyncio import Redis

from iomflow.registries import importing, repository, service
from iomflow.registries.domain import REGISTRY
from iomflow.registries.importing import Candidate
from iomflow.shared.contracts import Streams
from registries.test_api_import import run_import

REGION: dict[str, list[dict[str, Any]]] = {
    "municipalities": [
        {"municipality_id": "mun-01", "name": "г. Иркутск"},
        {"municipality_id": "mun-02", "name": "г. Братск"},
    ],
    "organizations": [
        {"organization_id": "org-1", "municipality_id": "mun-01", "name": "СОШ № 1",
         "kind": "school", "projects": ["school_of_ministry"]},
        {"organization_id": "org-2", "municipality_id": "mun-02", "name": "СОШ № 2",
         "kind": "school"},
    ],
    "teachers": [
        {"teacher_id": "t-1", "organization_id": "org-1", "position": "учитель",
         "birth_date": "1975-05-01", "hire_date": "1998-09-01", "expert": True},
        {"teacher_id": "t-2", "organization_id": "org-1", "position": "учитель",
         "birth_date": "2000-05-01", "hire_date": "2024-09-01"},
        {"teacher_id": "t-3", "organization_id": "org-2", "position": "учитель",
         "birth_date": "1985-05-01", "hire_date": "2008-09-01", "expert": True},
        {"teacher_id": "t-4", "organization_id": "org-1", "position": "учитель",
         "birth_date": "1980-05-01", "hire_date": "2005-09-01"},
    ],
    "methodists": [
        {"methodist_id": "met-1", "specialisations": ["assessment"], "municipalities": ["mun-01"],
         "full_name": "Иванова Анна Петровна"},
    ],
    "mentors": [
        {"mentor_id": "mnt-1", "organization_id": "org-1", "full_name": "Сидорова Ольга Ивановна"},
    ],
    "practices": [
        {"practice_id": "prc-old", "title": "Служба психологической поддержки педагогов",
         "organization_id": "org-1", "competencies": ["psych_pedagogy"],
         "themes": ["burnout_prevention"], "year": 2022},
    ],
    "school_teams": [
        {"team_id": "smt-1", "organization_id": "org-1", "members": ["t-1", "t-2"],
         "methodists": ["met-1"]},
    ],
    "mentoring_pairs": [
        {"pair_id": "mp-1", "organization_id": "org-1", "mentor_id": "mnt-1", "mentee_id": "t-2",
         "kind": "young_teacher", "focus": "Методика урока", "starts_on": "2025-09-01"},
    ],
    "expert_roles": [
        {"role_id": "er-1", "teacher_id": "t-1", "organization_id": "org-1",
         "kind": "practice_review", "body": "Экспертный совет банка практик",
         "starts_on": "2024-09-01"},
        {"role_id": "er-2", "teacher_id": "t-3", "organization_id": "org-2",
         "kind": "attestation", "starts_on": "2024-01-15", "ends_on": "2024-12-31"},
        {"role_id": "er-3", "teacher_id": "t-1", "organization_id": "org-1",
         "kind": "contest_jury", "starts_on": "2025-02-01", "ends_on": "2025-03-01"},
    ],
    "contests": [
        {"contest_id": "cnt-1", "title": "Учитель года — 2025", "level": "regional",
         "year": 2025, "held_on": "2025-03-17"},
    ],
    "contest_entries": [
        {"entry_id": "ce-1", "contest_id": "cnt-1", "teacher_id": "t-4",
         "organization_id": "org-1", "result": "winner"},
    ],
}  # fmt: skip

NEW = {
    "school_teams": "school_team",
    "mentoring_pairs": "mentoring_pair",
    "expert_roles": "expert_role",
    "contests": "contest",
    "contest_entries": "contest_entry",
}


@pytest.fixture
async def client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The admin's client (``conftest``), the support registers' region loaded."""
    loaded = await client.post("/v1/load", json=REGION)
    assert loaded.status_code == 200, loaded.text
    return client


async def events(redis_url: str, type_: str) -> list[dict[str, Any]]:
    await asyncio.sleep(0.3)  # the relay publishes after the commit
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        entries = [fields for _, fields in await redis.xrange(Streams.REGISTRY)]
    return [{**e, "data": json.loads(e["data"])} for e in entries if e["type"] == type_]


# --- the five registers --------------------------------------------------------------------


async def test_the_new_registers_load_and_publish_their_events(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    listed = {r["register"]: r for r in (await client.get("/v1/registers")).json()}
    assert list(listed) == list(REGISTRY)  # the order others refer to first
    for name, entity in NEW.items():
        register = listed[name]
        assert register["records"] == len(REGION[name])
        assert any("а" <= ch.lower() <= "я" for ch in register["title"]), name
        assert register["event_types"] == [
            f"registry.{entity}.upserted",
            f"registry.{entity}.removed",
        ]
        published = await events(clean_redis, f"registry.{entity}.upserted")
        assert [e["subject"] for e in published] == [
            row[REGISTRY[name].key] for row in REGION[name]
        ]
    kinds = {c["field"]: c for c in listed["mentoring_pairs"]["columns"]}
    assert kinds["kind"]["title"] == "Тип" and kinds["kind"]["values"]["peer"] == "коллега"
    pair = (await events(clean_redis, "registry.mentoring_pair.upserted"))[0]["data"]
    assert pair["municipality_id"] == "mun-01" and pair["ends_on"] is None


async def test_a_bad_load_of_the_new_registers_writes_nothing_and_says_why(
    client: httpx.AsyncClient,
) -> None:
    bad = await client.post(
        "/v1/load",
        json={
            "mentoring_pairs": [
                {**REGION["mentoring_pairs"][0], "pair_id": "mp-2", "mentee_id": "t-1"},
            ],
            "school_teams": [{**REGION["school_teams"][0], "team_id": "smt-2",
                              "members": ["t-3"]}],
        },
    )  # fmt: skip
    assert bad.status_code == 422
    reasons = {(e["register"], e["field"]): e["reason"] for e in bad.json()["errors"]}
    assert "не молодой педагог" in reasons["mentoring_pairs", "kind"]
    assert "работает в «org-2»" in reasons["school_teams", "members"]
    total = (await client.get("/v1/registers/mentoring_pairs/records")).json()["total"]
    assert total == 1


async def test_their_templates_and_exports_import_back(client: httpx.AsyncClient) -> None:
    for name in NEW:
        spec = REGISTRY[name]
        template = await client.get(f"/v1/registers/{name}/template.xlsx")
        assert template.status_code == 200
        sheet = load_workbook(io.BytesIO(template.content)).worksheets[0]
        assert [c.value for c in sheet[1]] == [importing.title(n) for n in importing.columns(spec)]
        exported = await client.get(f"/v1/registers/{name}/export.xlsx")
        job = await run_import(client, exported.content, "dry_run", f"{name}.xlsx", name)
        assert job["errors"] == [], (name, job["errors"])
        assert job["summary"]["unchanged"] == len(REGION[name]), (name, job["summary"])
    exported = await client.get("/v1/registers/mentoring_pairs/export.xlsx")
    rows = list(load_workbook(io.BytesIO(exported.content)).worksheets[0].values)
    shown = dict(zip(rows[0], rows[1], strict=True))
    assert shown["Тип"] == "молодой педагог" and shown["Дата начала"] == datetime(2025, 9, 1)


async def test_an_xlsx_of_pairs_with_bad_rows_is_refused_row_by_row_in_russian(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    spec = REGISTRY["mentoring_pairs"]
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(
        [
            importing.title(n)
            for n in (
                "pair_id",
                "organization_id",
                "mentor_id",
                "mentee_id",
                "kind",
                "starts_on",
                "ends_on",
            )
        ]
    )
    sheet.append(["mp-10", "org-1", "mnt-1", "t-2", "молодой педагог", "01.09.2025", None])
    sheet.append(["mp-11", "org-1", "mnt-1", "t-4", "коллега", "01.09.2025", "01.06.2025"])
    sheet.append(["mp-12", "org-1", "mnt-9", "t-4", "наставник", "01.09.2025", None])
    out = io.BytesIO()
    book.save(out)  # fmt: skip
    before = len(await events(clean_redis, "registry.mentoring_pair.upserted"))
    job = await run_import(client, out.getvalue(), "all_or_nothing", "pairs.xlsx", spec.name)
    assert job["summary"]["applied"] is False
    errors = {(e["row"], e["field"]): e["reason"] for e in job["errors"]}
    assert errors == {
        (3, "ends_on"): "дата окончания раньше даты начала",
        (4, "kind"): "недопустимое значение; допустимо: молодой педагог, управленческая "
        "команда, коллега",
        (4, "mentor_id"): "«mnt-9» нет в реестре «Наставники»",
    }
    assert len(await events(clean_redis, "registry.mentoring_pair.upserted")) == before


async def test_removing_and_verifying_the_new_registers(
    client: httpx.AsyncClient, app: FastAPI, clean_redis: str
) -> None:
    in_use = await client.delete("/v1/registers/contests/records/cnt-1")
    assert in_use.status_code == 409 and "ce-1" in in_use.json()["detail"]
    member = await client.delete("/v1/registers/teachers/records/t-2")
    assert member.status_code == 409 and "smt-1" in member.json()["detail"]
    assert (await client.delete("/v1/registers/contest_entries/records/ce-1")).status_code == 200
    assert (await client.delete("/v1/registers/contests/records/cnt-1")).status_code == 200
    removed = await events(clean_redis, "registry.contest_entry.removed")
    assert [e["subject"] for e in removed] == ["ce-1"]
    assert [e["subject"] for e in await events(clean_redis, "registry.contest.removed")] == [
        "cnt-1"
    ]

    later = datetime.now(UTC) + timedelta(days=200)
    async with app.state.runtime.transaction() as deps:
        groups = await service.check_stale(deps, now=later)
    stale = {(g["register"], g["owner"]): g["stale"] for g in groups}
    assert stale["school_teams", "org-1"] == 1 and stale["expert_roles", "org-2"] == 1
    noticed = {
        (e["data"]["registry"], e["data"]["owner"])
        for e in await events(clean_redis, "registry.stale")
    }
    assert {("mentoring_pairs", "org-1"), ("expert_roles", "org-1")} <= noticed
    verified = await client.post("/v1/registers/school_teams/records/smt-1/verify")
    assert verified.status_code == 200


# --- the practices' course -----------------------------------------------------------------

SUBMIT = {
    "practice_id": "prc-1",
    "title": "Смысловое чтение на уроках истории",
    "organization_id": "org-1",
    "competencies": ["functional_literacy"],
    "themes": ["functional_literacy"],
    "year": 2025,
    "author_id": "t-4",
    "submitted_on": "2025-03-01",
}


async def test_a_practice_goes_through_its_course_and_each_step_is_published(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    submitted = await client.post("/v1/practices", json=SUBMIT)
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["status"] == "submitted"
    assert submitted.json()["municipality_id"] == "mun-01"

    early = await client.post("/v1/practices/prc-1/include", json={})
    assert early.status_code == 409
    assert early.json()["detail"] == (
        "Практика «prc-1» подана и ждёт экспертизы: в банк включается практика, прошедшая "
        "экспертизу с решением «включить»."
    )
    not_yet = await client.post(
        "/v1/practices/prc-1/replications", json={"organization_id": "org-2", "on": "2025-06-01"}
    )
    assert not_yet.status_code == 409 and "включённая в банк" in not_yet.json()["detail"]

    review = {"verdict": "include", "review": "Рекомендована", "on": "2025-04-01"}
    stranger = await client.post(
        "/v1/practices/prc-1/review", json={**review, "reviewed_by": "t-9"}
    )
    assert stranger.status_code == 422 and stranger.json()["code"] == "reviewer_not_found"
    no_role = await client.post("/v1/practices/prc-1/review", json={**review, "reviewed_by": "t-3"})
    assert no_role.status_code == 422 and no_role.json()["code"] == "reviewer_not_expert"
    assert "не эксперт практик" in no_role.json()["detail"]
    reviewed = await client.post(
        "/v1/practices/prc-1/review", json={**review, "reviewed_by": "t-1"}
    )
    assert reviewed.status_code == 200, reviewed.text
    assert (reviewed.json()["status"], reviewed.json()["reviewed_by"]) == ("reviewed", "t-1")
    twice = await client.post("/v1/practices/prc-1/review", json={**review, "reviewed_by": "t-1"})
    assert twice.status_code == 409

    before_review = await client.post("/v1/practices/prc-1/include", json={"on": "2025-03-15"})
    assert before_review.status_code == 422 and before_review.json()["code"] == "date_out_of_order"
    included = await client.post("/v1/practices/prc-1/include", json={"on": "2025-04-10"})
    assert included.json()["status"] == "included"

    own = await client.post(
        "/v1/practices/prc-1/replications", json={"organization_id": "org-1", "on": "2025-06-01"}
    )
    assert own.status_code == 422 and own.json()["code"] == "own_organization"
    elsewhere = await client.post(
        "/v1/practices/prc-1/replications",
        json={"organization_id": "org-2", "by": "t-1", "on": "2025-06-01"},
    )
    assert elsewhere.status_code == 422 and elsewhere.json()["code"] == "replicator_elsewhere"
    replication = {"organization_id": "org-2", "by": "t-3", "on": "2025-06-01"}
    replicated = await client.post("/v1/practices/prc-1/replications", json=replication)
    assert replicated.status_code == 200, replicated.text
    assert replicated.json()["status"] == "replicated"
    assert replicated.json()["replications"] == [{**replication, "municipality_id": "mun-02"}]
    again = await client.post("/v1/practices/prc-1/replications", json=replication)
    assert again.status_code == 200 and again.json() == replicated.json()

    published = await events(clean_redis, "registry.practice.upserted")
    mine = [e["data"] for e in published if e["subject"] == "prc-1"]
    assert [p["status"] for p in mine] == ["submitted", "reviewed", "included", "replicated"]
    assert mine[-1]["reviewed_on"] == "2025-04-01" and mine[-1]["included_on"] == "2025-04-10"
    stored = (await client.get("/v1/registers/practices/records/prc-1")).json()
    assert stored["status"] == "replicated" and stored["review"] == "Рекомендована"


async def test_a_rejected_practice_stays_out_of_the_bank(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/practices", json=SUBMIT)).status_code == 201
    assert (await client.post("/v1/practices", json=SUBMIT)).status_code == 409
    rejected = await client.post(
        "/v1/practices/prc-1/review",
        json={"reviewed_by": "t-1", "verdict": "reject", "review": "Не подтверждено"},
    )
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reviewed_on"] == date.today().isoformat()
    late = await client.post("/v1/practices/prc-1/include")
    assert late.status_code == 409 and "отклонена" in late.json()["detail"]
    missing = await client.post("/v1/practices/prc-9/include")
    assert missing.status_code == 404
    bank = (await client.get("/v1/practices/bank")).json()
    assert [p["practice_id"] for p in bank["items"]] == ["prc-old"]


async def test_the_bank_is_searched_by_competency_theme_and_words(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # A practice stored before the course: its data has no status at all.
    legacy = {**REGION["practices"][0], "practice_id": "prc-legacy", "municipality_id": "mun-01",
              "title": "Проектное управление в школе", "competencies": ["communication"],
              "themes": ["management"]}  # fmt: skip
    async with app.state.runtime.sessions() as session, session.begin():
        await repository.write(
            session,
            REGISTRY["practices"],
            [Candidate(0, "prc-legacy", legacy, None)],
            actor="test",
            now=datetime.now(UTC),
        )
    await client.post("/v1/practices", json=SUBMIT)  # submitted: not in the bank

    async def bank(**params: str) -> list[str]:
        answer = await client.get("/v1/practices/bank", params=params)
        assert answer.status_code == 200, answer.text
        return [p["practice_id"] for p in answer.json()["items"]]

    assert await bank() == ["prc-legacy", "prc-old"]
    assert await bank(competency="psych_pedagogy") == ["prc-old"]
    assert await bank(theme="management") == ["prc-legacy"]
    assert await bank(q="СЛУЖБА поддержки") == ["prc-old"]
    assert await bank(q="школе", theme="management") == ["prc-legacy"]
    assert await bank(q="чтение") == []
    paged = (await client.get("/v1/practices/bank", params={"limit": 1, "offset": 1})).json()
    assert (paged["total"], [p["practice_id"] for p in paged["items"]]) == (2, ["prc-old"])
    legacy_read = (await client.get("/v1/practices/bank", params={"theme": "management"})).json()
    assert legacy_read["items"][0]["status"] == "included"
    bad = await client.get("/v1/practices/bank", params={"theme": "астрология"})
    assert bad.status_code == 422


async def test_expert_activity_of_a_year_by_kind(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/experts", params={"year": 2025})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["year"], body["teachers"], body["roles"]) == (2025, 1, 2)
    kinds = {k["kind"]: (k["title"], k["teachers"]) for k in body["by_kind"]}
    assert kinds["practice_review"] == ("экспертиза практик", 1)
    assert kinds["contest_jury"] == ("жюри профессиональных конкурсов", 1)
    assert kinds["attestation"][1] == 0
    earlier = (await client.get("/v1/experts", params={"year": 2024})).json()
    assert (earlier["teachers"], earlier["roles"]) == (2, 2)
    assert (await client.get("/v1/experts", params={"year": 1900})).status_code == 422
