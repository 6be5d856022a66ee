"""The registries' HTTP API has a shape a client can rely on: every operation answers a
pydantic model (or a Page or list of one), unless it answers a file or a page; every 4xx
is a problem (``application/problem+json`` with code, title, status)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from iomflow.registries.app import create_app
from iomflow.registries.repository import tables
from iomflow.registries.settings import Settings
from iomflow.shared import auth
from iomflow.shared.problems import MEDIA_TYPE

ADMIN = "iomf_test_admin_key_for_the_shape"


def test_the_template_is_documented_as_a_file() -> None:
    document = create_app(Settings(admin_key=ADMIN)).openapi()
    template = document["paths"]["/v1/registers/{register}/template.xlsx"]["get"]
    assert "application/json" not in template["responses"]["200"]["content"]


def problem(answer: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(MEDIA_TYPE)
    body = answer.json()
    assert body["status"] == status and body["title"] and body["code"], body
    assert body["type"] == f"urn:iomflow:problem:{body['code']}"
    if code is not None:
        assert body["code"] == code, body
    return body


async def test_every_4xx_is_a_problem(app: FastAPI, client: httpx.AsyncClient) -> None:
    problem(await client.get("/v1/registers/teachers/records/t-none"), 404, "record_not_found")
    problem(await client.get("/v1/registers/nothing/records"), 404, "register_not_found")
    bad = problem(await client.post("/v1/registers/municipalities/records", json=[1, 2]), 422)
    assert bad["errors"]
    invalid = problem(
        await client.post("/v1/registers/municipalities/records", json={"remote": "может быть"}),
        422,
        "record_invalid",
    )
    assert all({"loc", "msg", "row", "field", "reason"} <= set(e) for e in invalid["errors"])
    problem(await client.post("/v1/resync", headers={"Authorization": ""}), 401)
    async with app.state.runtime.sessions() as session, session.begin():
        _, key = await auth.issue(session, tables.api_keys, "аудитор", ["auditor"])
    problem(await client.post("/v1/resync", headers={"Authorization": f"Bearer {key}"}), 403)
    problem(await client.get("/v1/no-such-thing"), 404)
    problem(await client.patch("/v1/registers"), 405)


async def test_the_access_log_pages_to_its_end(client: httpx.AsyncClient) -> None:
    municipality = {"municipality_id": "mun-01", "name": "г. Иркутск"}
    organization = {
        "organization_id": "org-1", "municipality_id": "mun-01", "name": "СОШ № 1", "kind": "school"
    }  # fmt: skip
    teacher = {
        "teacher_id": "t-1",
        "organization_id": "org-1",
        "position": "учитель",
        "birth_date": "1990-05-01",
        "hire_date": "2015-09-01",
        "full_name": "Петров Иван Сергеевич",
        "snils": "112-233-445 95",
    }
    loaded = await client.post(
        "/v1/load",
        json={"municipalities": [municipality], "organizations": [organization],
              "teachers": [teacher]},
    )  # fmt: skip
    assert loaded.status_code == 200, loaded.text
    for n in range(5):
        read = await client.get(
            "/v1/registers/teachers/records/t-1/personal", params={"purpose": f"проверка {n}"}
        )
        assert read.status_code == 200, read.text
        assert read.json()["register"] == "teachers"
    seen: list[str] = []
    offset = 0
    while True:
        answer = (
            await client.get("/v1/personal-data/access-log", params={"offset": offset, "limit": 2})
        ).json()
        assert answer["total"] == 5 and answer["limit"] == 2
        seen += [r["purpose"] for r in answer["items"]]
        offset += len(answer["items"])
        if offset >= answer["total"]:
            break
    assert seen == [f"проверка {n}" for n in reversed(range(5))]


def test_a_load_names_every_register_and_no_other() -> None:
    from iomflow.registries.domain import REGISTRY
    from iomflow.registries.schemas import LoadCreate

    assert list(LoadCreate.model_fields) == list(REGISTRY)
    assert LoadCreate.model_json_schema()["additionalProperties"] is False
