"""The burnout analytics in process on a real Redis and SQLite/PostgreSQL: burnout surveys
in two campaigns (waves) through ``POST /v1/results`` and the stream, the teachers' age and
experience bands from the registries; ``GET /v1/analytics/burnout`` (levels by
municipality, organisation, age and experience band; the trend between the waves), its
workbook and its printable page, and a Russian 404 for a campaign nobody opened."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI
from waiting import wait_for

from diagnostics.conftest import serving
from diagnostics.test_api import ADMIN, publish, registry_events
from iomflow.shared.contracts import ResultSubmitted, Streams, TeacherUpserted, new_event

SPRING, AUTUMN = "2026-04-10T10:00:00+08:00", "2026-10-15T10:00:00+08:00"
# the spring index of t-1..t-6, then the autumn one (mean of the three subscales, each equal)
SPRING_INDEX = {"t-1": 70, "t-2": 80, "t-3": 50, "t-4": 20, "t-5": 66, "t-6": 30}
AUTUMN_INDEX = {"t-1": 35, "t-2": 70, "t-3": 45, "t-4": 20, "t-5": 30, "t-6": 30}


@pytest.fixture
async def client(app: FastAPI, clean_redis: str) -> AsyncIterator[httpx.AsyncClient]:
    """The registries' six teachers (test_api's), t-6 young and new to the profession."""
    young = TeacherUpserted(
        teacher_id="t-6", organization_id="org-2", municipality_id="mun-02",
        position="учитель", audience="general", age_band="<25", experience_band="<3",
    )  # fmt: skip
    events = [
        *(e for e in registry_events() if e.subject != "t-6"),
        new_event("registry.teacher.upserted", young, source="registries", subject="t-6"),
    ]
    async with serving(app, clean_redis, events) as c:
        yield c


async def campaign(client: httpx.AsyncClient, campaign_id: str, starts: str, ends: str) -> None:
    response = await client.post(
        "/v1/campaigns",
        headers=ADMIN,
        json={"campaign_id": campaign_id, "name": f"Опрос {campaign_id}", "starts_on": starts,
              "ends_on": ends, "required": ["self_diagnosis", "burnout_survey"]},
    )  # fmt: skip
    assert response.status_code == 201, response.text


def wave(campaign_id: str, taken_at: str, index: dict[str, float]) -> list[dict[str, Any]]:
    return [
        body
        for teacher, value in index.items()
        for body in (
            {"teacher_id": teacher, "campaign_id": campaign_id, "taken_at": taken_at,
             "instrument": "self_diagnosis", "scores": {"digital": 70}},
            {"teacher_id": teacher, "campaign_id": campaign_id, "taken_at": taken_at,
             "instrument": "burnout_survey",
             "scores": {"emotional_exhaustion": value, "depersonalization": value,
                        "reduced_accomplishment": value}},
        )
    ]  # fmt: skip


async def surveyed(client: httpx.AsyncClient, clean_redis: str) -> None:
    """Spring over HTTP, autumn on the stream; both waves completed."""
    await campaign(client, "spring", "2026-03-01", "2026-05-31")
    await campaign(client, "autumn", "2026-09-01", "2026-12-31")
    for body in wave("spring", SPRING, SPRING_INDEX):
        response = await client.post("/v1/results", headers=ADMIN, json=body)
        assert response.status_code == 202, response.text
    results = [ResultSubmitted.model_validate(b) for b in wave("autumn", AUTUMN, AUTUMN_INDEX)]
    await publish(
        clean_redis,
        Streams.RESULTS_INBOUND,
        [new_event("diagnostics.result.submitted", r, source="cop", subject=r.teacher_id)
         for r in results],
    )  # fmt: skip

    async def done() -> bool:
        return (await client.get("/v1/stats")).json()["diagnoses"] == 12

    await wait_for(done, "both waves to complete")


async def test_burnout_levels_by_area_and_band_and_the_trend_between_waves(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await surveyed(client, clean_redis)
    response = await client.get("/v1/analytics/burnout")
    assert response.status_code == 200, response.text
    found = response.json()
    # each teacher's latest: autumn's (35, 70, 45, 20, 30, 30): one high, one moderate
    assert found["campaign_id"] is None
    assert found["region"] == {
        "surveyed": 6, "low": 4, "moderate": 1, "high": 1,
        "share_low": 66.7, "share_moderate": 16.7, "share_high": 16.7,
        "mean_index": round(sum(AUTUMN_INDEX.values()) / 6, 1),
    }  # fmt: skip
    by_municipality = {m["id"]: m for m in found["municipalities"]}
    assert by_municipality["mun-01"]["name"] == "г. Иркутск"
    assert (by_municipality["mun-01"]["surveyed"], by_municipality["mun-01"]["high"]) == (4, 1)
    assert by_municipality["mun-02"]["low"] == 2
    [school] = [o for o in found["organizations"] if o["id"] == "org-2"]
    assert (school["name"], school["municipality"], school["surveyed"]) == (
        "СОШ № 2", "Катангский район", 2,
    )  # fmt: skip
    ages = {a["id"]: a for a in found["age_bands"]}
    assert set(ages) == {"<25", "35-44"} and ages["<25"]["name"] == "до 25 лет"
    assert ages["<25"]["surveyed"] == 1 and ages["35-44"]["surveyed"] == 5
    experience = {e["id"]: e for e in found["experience_bands"]}
    assert experience["<3"]["mean_index"] == 30.0 and experience["10-20"]["surveyed"] == 5

    spring, autumn = found["waves"]
    assert (spring["campaign_id"], spring["name"]) == ("spring", "Опрос spring")
    # spring: 70, 80, 66 high; 50 moderate; 20, 30 low
    assert (spring["surveyed"], spring["high"], spring["share_high"]) == (6, 3, 50.0)
    assert spring["mean_index"] == round(sum(SPRING_INDEX.values()) / 6, 1)
    assert spring["change_share_high"] is None and spring["trend"] is None
    assert (autumn["high"], autumn["share_high"], autumn["trend"]) == (1, 16.7, "better")
    assert autumn["change_share_high"] == -33.3
    assert autumn["change_mean_index"] == round(autumn["mean_index"] - spring["mean_index"], 1)

    one = (await client.get("/v1/analytics/burnout", params={"campaign_id": "spring"})).json()
    assert one["campaign_id"] == "spring" and one["region"]["high"] == 3
    assert one["waves"] == found["waves"]


async def test_the_burnout_workbook_and_printable_page_say_the_same_in_russian(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await surveyed(client, clean_redis)
    found = (await client.get("/v1/analytics/burnout")).json()
    response = await client.get("/v1/analytics/burnout.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "burnout-current.xlsx" in response.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == [
        "Регион", "Муниципалитеты", "Организации", "Возраст", "Стаж", "Динамика по волнам",
    ]  # fmt: skip
    region = list(book["Регион"].iter_rows(values_only=True))
    assert region[1][1:5] == (6, 4, 1, 1)
    waves = list(book["Динамика по волнам"].iter_rows(values_only=True))
    assert [w[0] for w in waves[1:]] == ["spring", "autumn"]
    assert waves[2][4] == found["waves"][1]["share_high"] and waves[2][8] == "снижение (лучше)"
    ages = {r[0]: r for r in list(book["Возраст"].iter_rows(values_only=True))[1:]}
    assert ages["<25"][1] == "до 25 лет"

    page = await client.get("/v1/analytics/burnout/print", params={"campaign_id": "spring"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "Профессиональное выгорание педагогических работников" in text
    assert "Кампания «Опрос spring»" in text and "Катангский район" in text
    assert "Высокий уровень выгорания — у 3 (50 %)" in text
    for external in ("http://", "https://", "<script", "<link", "src="):
        assert external not in text


async def test_a_campaign_nobody_opened_is_a_russian_404(client: httpx.AsyncClient) -> None:
    for path in ("/v1/analytics/burnout", "/v1/analytics/burnout.xlsx",
                 "/v1/analytics/burnout/print"):  # fmt: skip
        response = await client.get(path, params={"campaign_id": "nope"})
        assert response.status_code == 404, path
        problem = response.json()
        assert problem["code"] == "unknown_campaign" and "«nope» не найдена" in problem["detail"]
    empty = (await client.get("/v1/analytics/burnout")).json()
    assert empty["region"]["surveyed"] == 0 and empty["region"]["mean_index"] is None
    assert empty["waves"] == [] and empty["municipalities"] == []
