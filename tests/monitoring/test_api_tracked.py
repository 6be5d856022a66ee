"""The tracked rows of Appendix 1 over HTTP, in process on a real Redis and SQLite/PostgreSQL:
an operator (here the settings' admin key) records a period's status with its evidence
(``PUT /v1/tracked/{code}/{period}``), ``GET /v1/tracked`` and the yearly report show it;
without a key, for an unknown item, a period not of the item or too short an evidence the
record is refused."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI

from iomflow.monitoring import views
from iomflow.monitoring.app import create_app
from iomflow.monitoring.settings import Settings

# tests/ is on sys.path (as for ``import infra`` in conftest)
from monitoring.test_api import TODAY

ADMIN_KEY = "iomf_test_admin_key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
EVIDENCE = "Распоряжение министерства образования № 55-мр от 20.01.2025"


@pytest.fixture
async def client(
    clean_redis: str, tmp_path: Path, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(
        Settings(
            redis_url=clean_redis,
            data_dir=tmp_path,
            database_url=database_url,
            migrate_on_start=True,
            relay_poll_s=0.05,
            poll_ms=20,
            kpi_worker="thread",
            admin_key=ADMIN_KEY,
        )
    )
    # Answers kept only while the projections stay the same (as test_monitoring_api.make_app):
    # recording evidence changes none, so only the report's key can tell it changed.
    app.state.runtime.context.cache = views.Cache(min_age_s=0, max_age_s=0)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://monitoring") as c:
            yield c


def by_code(items: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    return {t["code"]: {p["period"]: p for p in t["periods"]} for t in items}


async def test_an_operator_records_a_tracked_item_and_the_list_and_the_report_show_it(
    client: httpx.AsyncClient,
) -> None:
    year = TODAY.year
    before = (await client.get("/v1/tracked")).json()
    assert [t["code"] for t in before] == ["roadmap_implemented", "monitoring_system"]
    assert list(by_code(before)["monitoring_system"]) == [str(y) for y in range(2023, year + 1)]
    assert {p["status"] for t in before for p in t["periods"]} == {"no_data"}
    report = (await client.get(f"/v1/reports/{year}")).json()  # kept, before the record
    assert {p["status"] for t in report["tracked"] for p in t["periods"]} == {"no_data"}

    put = await client.put(
        "/v1/tracked/roadmap_implemented/once",
        json={"status": "done", "evidence": f"  {EVIDENCE}  "},
        headers=ADMIN,
    )
    assert put.status_code == 200, put.text
    period = put.json()
    assert (period["status"], period["recorded"], period["recorded_words"]) == (
        "met",
        "done",
        "выполнено",
    )
    assert (period["evidence"], period["recorded_by"]) == (EVIDENCE, "администратор")  # trimmed
    assert period["recorded_at"] and period["label"] == "к 31.12.2024"

    # recorded again: the latest record holds
    again = await client.put(
        f"/v1/tracked/monitoring_system/{year - 1}",
        json={"status": "in_progress", "evidence": "Проект положения о мониторинге"},
        headers=ADMIN,
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "missed"  # still in progress after its year

    listed = by_code((await client.get("/v1/tracked")).json())
    once = listed["roadmap_implemented"]["once"]
    assert (once["status"], once["evidence"], once["recorded_by"]) == (
        "met",
        EVIDENCE,
        "администратор",
    )
    assert listed["monitoring_system"][str(year - 1)]["recorded"] == "in_progress"
    assert listed["monitoring_system"][str(year)]["status"] == "no_data"

    # the year's report shows it at once (what is recorded is part of its key), every form
    report = (await client.get(f"/v1/reports/{year}")).json()
    shown = by_code(report["tracked"])
    assert shown["roadmap_implemented"]["once"]["evidence"] == EVIDENCE
    assert shown["roadmap_implemented"]["once"]["status_name"] == "достигнут"
    said = {c["kind"]: c for c in report["conclusions"]}
    assert said["tracked"]["items"] == [
        f"Система мониторинга эффективности РС НМС за {year - 1} год: срок "
        f"31.12.{year - 1} прошёл, отмечено «выполняется» (Проект положения о мониторинге)"
    ]
    page = (await client.get(f"/v1/reports/{year}/print")).text
    assert "Меры (строки приложения 1 без числового показателя)" in page and EVIDENCE in page
    book = openpyxl.load_workbook(
        io.BytesIO((await client.get(f"/v1/reports/{year}.xlsx")).content)
    )
    assert EVIDENCE in [r[7] for r in book["Меры"].iter_rows(min_row=2, values_only=True)]
    # last year's report: its periods up to its year only
    last = by_code((await client.get(f"/v1/reports/{year - 1}")).json()["tracked"])
    assert list(last["monitoring_system"]) == [str(y) for y in range(2023, year)]


async def test_a_record_without_a_key_of_an_unknown_item_or_period_or_a_short_evidence_is_refused(
    client: httpx.AsyncClient,
) -> None:
    body = {"status": "done", "evidence": EVIDENCE}
    anonymous = await client.put("/v1/tracked/roadmap_implemented/once", json=body)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")
    unknown = await client.put("/v1/tracked/no_such_item/once", json=body, headers=ADMIN)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_tracked")
    assert "no_such_item" in unknown.json()["detail"]
    for code, period in (
        ("roadmap_implemented", "2024"),  # a once item has one period
        ("monitoring_system", "once"),
        ("monitoring_system", "2022"),  # before its first year
        ("monitoring_system", str(TODAY.year + 1)),  # a year to come
    ):
        wrong = await client.put(f"/v1/tracked/{code}/{period}", json=body, headers=ADMIN)
        assert (wrong.status_code, wrong.json()["code"]) == (422, "unknown_period"), period
        assert "допустимы" in wrong.json()["detail"]
    short = await client.put(
        "/v1/tracked/roadmap_implemented/once",
        json={"status": "done", "evidence": "ok"},
        headers=ADMIN,
    )
    assert short.status_code == 422, short.text
    bad = await client.put(
        "/v1/tracked/roadmap_implemented/once",
        json={"status": "finished", "evidence": EVIDENCE},
        headers=ADMIN,
    )
    assert bad.status_code == 422, bad.text
    # nothing refused was kept
    listed = by_code((await client.get("/v1/tracked")).json())
    assert {p["status"] for periods in listed.values() for p in periods.values()} == {"no_data"}
