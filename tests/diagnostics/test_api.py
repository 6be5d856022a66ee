"""Diagnostics in process on a real Redis and SQLite/PostgreSQL: campaigns with all five
instruments, explained diagnoses, refusals with codes (HTTP) and dead letters (stream),
results held for unknown teachers, operator close, revise, cancel, re-diagnosis, analytics
and its workbook, framework versions and their exchange formats."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from waiting import wait_for

from iomflow.diagnostics import exchange, service
from iomflow.diagnostics.app import create_app
from iomflow.diagnostics.settings import Settings
from iomflow.shared import wire
from iomflow.shared.contracts import (
    MunicipalityUpserted,
    OrganizationUpserted,
    ProgramUpserted,
    ResultSubmitted,
    Streams,
    TeacherUpserted,
    new_event,
)

ADMIN = {"Authorization": "Bearer iomf_test_admin_key"}
SHIPPED = Path(__file__).parents[2] / "services/diagnostics/src/iomflow/diagnostics/data"
ALL_FIVE = [
    "standardized_test",
    "expert_evaluation",
    "professional_results",
    "self_diagnosis",
    "burnout_survey",
]
OCTOBER = "2026-10-15T10:00:00+08:00"


def registry_events() -> list[Any]:
    municipalities = [
        MunicipalityUpserted(municipality_id="mun-01", name="г. Иркутск"),
        MunicipalityUpserted(municipality_id="mun-02", name="Катангский район", remote=True),
    ]
    organizations = [
        OrganizationUpserted(
            organization_id="org-1", municipality_id="mun-01", name="СОШ № 1", kind="school"
        ),
        OrganizationUpserted(
            organization_id="org-2", municipality_id="mun-02", name="СОШ № 2", kind="school"
        ),
    ]
    teachers = [
        TeacherUpserted(
            teacher_id=f"t-{n}",
            organization_id="org-1" if n <= 4 else "org-2",
            municipality_id="mun-01" if n <= 4 else "mun-02",
            position="учитель",
            audience="general",
            subjects=["математика"] if n % 2 else ["история"],
            age_band="35-44",
            experience_band="10-20",
            is_manager=n == 1,
        )
        for n in range(1, 7)
    ]
    programs = [
        ProgramUpserted(
            program_id="p-digital",
            title="Цифровая образовательная среда",
            kind="pk",
            hours=36,
            format="distance",
            competencies=["digital"],
            themes=["digital_environment"],
            audiences=["general"],
        ),
        ProgramUpserted(
            program_id="p-assessment",
            title="Оценочная грамотность",
            kind="pk",
            hours=36,
            format="distance",
            competencies=["functional_literacy"],
            themes=["quality_assessment"],
            audiences=["general"],
        ),
    ]
    return [
        new_event(f"registry.{entity}.upserted", p, source="registries", subject=key)
        for entity, items, key_of in (
            ("municipality", municipalities, lambda m: m.municipality_id),
            ("organization", organizations, lambda o: o.organization_id),
            ("program", programs, lambda p: p.program_id),
            ("teacher", teachers, lambda t: t.teacher_id),
        )
        for p in items
        for key in [key_of(p)]
    ]


def make_app(redis_url: str, tmp_path: Path, database_url: str, **extra: Any) -> FastAPI:
    return create_app(
        Settings(
            redis_url=redis_url,
            data_dir=tmp_path,
            database_url=database_url,
            migrate_on_start=True,
            relay_poll_s=0.05,
            poll_ms=20,
            admin_key="iomf_test_admin_key",
            **extra,
        )
    )


async def publish(redis_url: str, stream: str, events: list[Any]) -> list[str]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        return [await redis.xadd(stream, wire.encode(e)) for e in events]  # type: ignore[arg-type]


async def dead_letters(redis_url: str) -> list[dict[str, str]]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        entries = await redis.xrange(Streams.dlq(Streams.RESULTS_INBOUND))
    return [fields for _, fields in entries]


async def published(redis_url: str, type_: str) -> list[dict[str, Any]]:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        entries = await redis.xrange(Streams.DIAGNOSTICS)
    return [json.loads(f["data"]) for _, f in entries if f["type"] == type_]


def five(teacher: str, campaign: str, base: float = 50, **extra: Any) -> list[dict[str, Any]]:
    """One teacher's results of all five instruments (two experts), as posted."""
    common = {"teacher_id": teacher, "campaign_id": campaign, "taken_at": OCTOBER, **extra}
    return [
        {**common, "instrument": "standardized_test", "items": [
            {"item": "A1", "competency": "digital", "score": 1, "max_score": 2},
            {"item": "A2", "competency": "digital", "score": 0, "max_score": 2},
            {"item": "B1", "competency": "functional_literacy", "score": 2, "max_score": 2},
            {"item": "C1", "competency": "assessment", "score": 1, "max_score": 2},
        ]},
        {**common, "instrument": "expert_evaluation", "expert_id": "e-1",
         "scores": {"teaching_methods": base, "digital": base - 10}},
        {**common, "instrument": "expert_evaluation", "expert_id": "e-2",
         "scores": {"teaching_methods": min(100, base + 20), "digital": base}},
        {**common, "instrument": "professional_results",
         "scores": {"functional_literacy": min(100, base + 30), "management_quality": 30}},
        {**common, "instrument": "self_diagnosis",
         "scores": {"digital": 70, "assessment": 80, "teaching_methods": 75,
                    "functional_literacy": 90}},
        {**common, "instrument": "burnout_survey",
         "scores": {"emotional_exhaustion": 70, "depersonalization": 40,
                    "reduced_accomplishment": 55}},
    ]  # fmt: skip


async def open_campaign(client: httpx.AsyncClient, campaign_id: str, **body: Any) -> Any:
    response = await client.post(
        "/v1/campaigns",
        headers=ADMIN,
        json={
            "campaign_id": campaign_id,
            "name": f"Кампания {campaign_id}",
            "starts_on": "2026-09-01",
            "ends_on": "2026-12-31",
            "required": ALL_FIVE,
            **body,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def post_all(client: httpx.AsyncClient, results: list[dict[str, Any]]) -> list[Any]:
    replies = []
    for body in results:
        response = await client.post("/v1/results", headers=ADMIN, json=body)
        assert response.status_code == 202, response.text
        replies.append(response.json())
    return replies


# --- a campaign with all five instruments ---------------------------------------------------


async def test_diagnosis_completes_with_the_last_required_instrument_and_explains_it(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await open_campaign(client, "autumn")
    replies = await post_all(client, five("t-2", "autumn"))
    assert [r["diagnosis"] is None for r in replies] == [True] * 5 + [False]
    diagnosis = replies[-1]["diagnosis"]
    assert diagnosis["instruments"] == ALL_FIVE
    assert diagnosis["rule"] == "weighted_mean/1" and diagnosis["completed_by"] == "instruments"
    assert diagnosis["burnout"] == {
        "index": 55.0,
        "level": "moderate",
        "scales": {"emotional_exhaustion": 70, "depersonalization": 40,
                   "reduced_accomplishment": 55},
    }  # fmt: skip
    by_code = {c["code"]: c for c in diagnosis["competencies"]}
    # digital: test items 1/4 = 25, experts 40 and 50 (0.15 each), self 70 (0.1): over 0.8
    digital = by_code["digital"]
    assert digital["score"] == round((0.4 * 25 + 0.15 * 40 + 0.15 * 50 + 0.1 * 70) / 0.8, 1)
    assert {(e["instrument"], e["expert_id"]) for e in digital["evidence"]} == {
        ("standardized_test", None),
        ("expert_evaluation", "e-1"),
        ("expert_evaluation", "e-2"),
        ("self_diagnosis", None),
    }
    assert sum(e["weight"] for e in digital["evidence"]) == pytest.approx(1)
    cited = {e["instrument"] for c in diagnosis["competencies"] for e in c["evidence"]}
    assert cited == set(ALL_FIVE) - {"burnout_survey"}
    assert "management_quality" not in by_code  # t-2 is not in a management team
    # assessment: test 1/2 = 50 and self 80 -> (20 + 8) / 0.5 = 56, a deficit
    assert [d["code"] for d in diagnosis["deficits"]] == ["digital", "assessment"]

    async def relayed() -> bool:
        return len(await published(clean_redis, "diagnostics.diagnosis.completed")) == 1

    await wait_for(relayed, "the completed event")
    [event] = await published(clean_redis, "diagnostics.diagnosis.completed")
    assert event["diagnosis_id"] == diagnosis["diagnosis_id"]
    assert event["competencies"] == diagnosis["competencies"]

    page = (await client.get(f"/v1/diagnoses/{diagnosis['diagnosis_id']}/results")).json()
    results = page["items"]
    assert page["total"] == len(results) == 6
    assert results[0]["submitted"]["items"][0]["item"] == "A1"
    progress = (await client.get("/v1/campaigns/autumn/progress")).json()
    assert (progress["expected"], progress["submitted"], progress["completed"]) == (6, 1, 1)
    by_municipality = {m["municipality_id"]: m for m in progress["municipalities"]}
    assert by_municipality["mun-01"]["name"] == "г. Иркутск"
    assert (
        by_municipality["mun-01"]["completed"] == 1 and by_municipality["mun-02"]["expected"] == 2
    )


async def test_manager_competencies_count_for_a_management_team_member(
    client: httpx.AsyncClient,
) -> None:
    await open_campaign(client, "autumn")
    replies = await post_all(client, five("t-1", "autumn"))
    codes = {c["code"] for c in replies[-1]["diagnosis"]["competencies"]}
    assert "management_quality" in codes


async def test_an_operator_loads_a_past_campaign_and_its_diagnosis_is_dated_by_its_evidence(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    """Last year's campaign, its window long over, opened now to load its results: they are
    taken when dated inside the window (refused outside it, as ever), and the diagnosis says
    when its latest evidence was taken (``evidence_at``, in UTC), over HTTP and in its
    event."""
    await open_campaign(client, "autumn-2025", starts_on="2025-09-01", ends_on="2025-12-31")
    results = five("t-2", "autumn-2025", taken_at="2025-10-15T10:00:00+08:00")
    results[2]["taken_at"] = "2025-11-03T16:45:00+08:00"  # the second expert's, the latest
    late = {**results[4], "taken_at": "2026-01-12T10:00:00+08:00"}
    refused = await client.post("/v1/results", headers=ADMIN, json=late)
    assert (refused.status_code, refused.json()["code"]) == (422, "outside_campaign_window")
    diagnosis = (await post_all(client, results))[-1]["diagnosis"]
    assert diagnosis["campaign_id"] == "autumn-2025"
    assert datetime.fromisoformat(diagnosis["evidence_at"]) == datetime(
        2025, 11, 3, 8, 45, tzinfo=UTC
    )
    again = (await client.get(f"/v1/diagnoses/{diagnosis['diagnosis_id']}")).json()
    assert again["evidence_at"] == diagnosis["evidence_at"]

    async def relayed() -> bool:
        return len(await published(clean_redis, "diagnostics.diagnosis.completed")) == 1

    await wait_for(relayed, "the completed event")
    [event] = await published(clean_redis, "diagnostics.diagnosis.completed")
    assert event["evidence_at"] == diagnosis["evidence_at"]


# --- refusals: HTTP codes and dead letters ---------------------------------------------------


async def test_results_that_break_a_rule_get_422_or_409_with_a_code(
    client: httpx.AsyncClient,
) -> None:
    await open_campaign(client, "autumn", municipalities=["mun-01"])
    base = {"teacher_id": "t-2", "instrument": "self_diagnosis", "campaign_id": "autumn",
            "taken_at": OCTOBER, "scores": {"digital": 50}}  # fmt: skip
    cases = [
        ({"scores": {"astrology": 50}}, 422, "unknown_competency"),
        ({"scores": {"digital": 150}}, 422, "validation_error"),
        ({"instrument": "tarot"}, 422, "validation_error"),
        ({"campaign_id": "nowhere"}, 422, "unknown_campaign"),
        ({"taken_at": "2026-08-31T10:00:00+08:00"}, 422, "outside_campaign_window"),
        ({"teacher_id": "t-5"}, 422, "not_in_campaign"),  # t-5 works in mun-02
    ]
    for change, status, code in cases:
        response = await client.post("/v1/results", headers=ADMIN, json={**base, **change})
        assert (response.status_code, response.json()["code"]) == (status, code), change
        assert response.json()["detail"], change
    first = await client.post("/v1/results", headers=ADMIN, json={**base, "external_id": "cop-1"})
    assert first.status_code == 202
    again = await client.post("/v1/results", headers=ADMIN, json={**base, "external_id": "cop-1"})
    assert again.status_code == 409 and again.json()["code"] == "duplicate_external_id"
    assert "cop-1" in again.json()["detail"]


async def test_a_bad_result_on_the_stream_is_dead_lettered_with_its_code_the_rest_go_on(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await open_campaign(client, "autumn")
    good = [ResultSubmitted.model_validate(b) for b in five("t-3", "autumn")]
    bad = ResultSubmitted.model_validate(
        {**five("t-4", "autumn")[0], "taken_at": "2027-01-10T10:00:00Z"}
    )
    events = [new_event("diagnostics.result.submitted", r, source="cop", subject=r.teacher_id)
              for r in [*good[:3], bad, *good[3:]]]  # fmt: skip
    await publish(clean_redis, Streams.RESULTS_INBOUND, events)

    async def diagnosed() -> bool:
        return (await client.get("/v1/stats")).json()["diagnoses"] == 1

    await wait_for(diagnosed, "the good results to complete t-3")
    [dead] = await dead_letters(clean_redis)
    assert dead["dlq_reason"] == "outside_campaign_window"
    assert dead["event_id"] == str(events[3].event_id) and "10.01.2027" in dead["dlq_error"]


# --- held results ----------------------------------------------------------------------------


async def test_a_result_for_an_unknown_teacher_is_held_then_taken_when_the_teacher_arrives(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    replies = await post_all(
        client,
        [
            {"teacher_id": "t-new", "instrument": i, "scores": {"digital": 30}}
            for i in ("standardized_test", "self_diagnosis")
        ],
    )
    assert [r["status"] for r in replies] == ["held", "held"]
    held = (await client.get("/v1/held")).json()
    assert [h["teacher_id"] for h in held["items"]] == ["t-new"] * 2 and held["total"] == 2
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
        found = (await client.get("/v1/teachers/t-new/diagnoses")).json()
        return len(found) == 1

    await wait_for(taken, "the held results to complete the diagnosis")
    [diagnosis] = (await client.get("/v1/teachers/t-new/diagnoses")).json()
    assert diagnosis["deficits"][0]["code"] == "digital"
    assert (await client.get("/v1/held")).json()["items"] == []
    assert (await client.get("/v1/stats")).json()["held"] == 0


async def test_a_result_held_past_its_deadline_is_dead_lettered_with_its_reason(
    app: FastAPI, client: httpx.AsyncClient, clean_redis: str
) -> None:
    reply = await client.post(
        "/v1/results",
        headers=ADMIN,
        json={"teacher_id": "t-ghost", "instrument": "self_diagnosis", "scores": {"digital": 1}},
    )
    assert reply.json()["status"] == "held"
    runtime = app.state.runtime
    assert await service.expire_held(runtime.transaction, datetime.now(UTC)) == 0
    later = datetime.now(UTC) + timedelta(days=31)
    assert await service.expire_held(runtime.transaction, later) == 1

    async def dead() -> bool:
        return len(await dead_letters(clean_redis)) == 1

    await wait_for(dead, "the dead letter")
    [letter] = await dead_letters(clean_redis)
    assert (
        letter["dlq_reason"] == "unknown_teacher" and letter["event_id"] == reply.json()["event_id"]
    )
    assert "t-ghost" in letter["dlq_error"]
    assert json.loads(letter["data"])["scores"] == {"digital": 1}
    assert (await client.get("/v1/held")).json()["items"] == []


# --- operator commands -----------------------------------------------------------------------


async def test_operator_commands_need_the_operator_role(client: httpx.AsyncClient) -> None:
    body = {"campaign_id": "x", "name": "x"}
    assert (await client.post("/v1/campaigns", json=body)).status_code == 401
    response = await client.post(
        "/v1/campaigns", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401 and response.json()["code"] == "invalid_key"


async def test_closing_a_campaign_completes_what_is_in_and_refuses_later_results(
    client: httpx.AsyncClient,
) -> None:
    await open_campaign(client, "autumn")
    await post_all(client, five("t-2", "autumn")[:2])  # the test and one expert only
    await post_all(client, five("t-3", "autumn")[4:5])  # self-diagnosis only
    closed = await client.post("/v1/campaigns/autumn/close", headers=ADMIN)
    assert closed.json() == {"campaign_id": "autumn", "status": "closed", "completed": 2}
    found = (await client.get("/v1/diagnoses", params={"campaign_id": "autumn"})).json()
    assert found["total"] == 2
    assert {d["completed_by"] for d in found["items"]} == {"operator"}
    assert {tuple(d["instruments"]) for d in found["items"]} == {
        ("standardized_test", "expert_evaluation"),
        ("self_diagnosis",),
    }
    late = await client.post("/v1/results", headers=ADMIN, json=five("t-4", "autumn")[0])
    assert late.status_code == 422 and late.json()["code"] == "campaign_closed"


async def test_one_teacher_closed_by_an_operator(client: httpx.AsyncClient) -> None:
    await open_campaign(client, "autumn")
    await post_all(client, five("t-2", "autumn")[:1])
    closed = await client.post("/v1/campaigns/autumn/teachers/t-2/close", headers=ADMIN)
    assert closed.status_code == 200 and closed.json()["completed_by"] == "operator"
    again = await client.post("/v1/campaigns/autumn/teachers/t-2/close", headers=ADMIN)
    assert again.status_code == 409 and again.json()["code"] == "already_completed"
    none = await client.post("/v1/campaigns/autumn/teachers/t-3/close", headers=ADMIN)
    assert none.status_code == 404 and none.json()["code"] == "no_results"


async def test_rediagnosis_carries_the_change_since_the_previous_one_and_cancel_restores_it(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    await open_campaign(client, "autumn")
    await open_campaign(client, "spring", starts_on="2026-10-01")
    first = (await post_all(client, five("t-2", "autumn")))[-1]["diagnosis"]
    better = five("t-2", "spring", base=80)
    better[0]["items"][1]["score"] = 2  # digital items now 3 of 4
    second = (await post_all(client, better))[-1]["diagnosis"]
    assert second["previous_diagnosis_id"] == first["diagnosis_id"]
    changes = {c["code"]: c for c in second["changes"]}
    assert changes["digital"]["change"] == "closed"
    assert changes["digital"]["previous_level"] in ("critical_deficit", "deficit")
    assert changes["teaching_methods"]["change"] == "improved"
    assert changes["assessment"]["change"] == "unchanged"

    cancelled = await client.post(
        f"/v1/diagnoses/{second['diagnosis_id']}/cancel", headers=ADMIN, json={"reason": "ошибка"}
    )
    assert cancelled.json()["status"] == "cancelled" and not cancelled.json()["latest"]
    again = await client.post(
        f"/v1/diagnoses/{second['diagnosis_id']}/cancel", headers=ADMIN, json={"reason": "x"}
    )
    assert again.status_code == 409 and again.json()["code"] == "already_cancelled"
    assert (await client.get(f"/v1/diagnoses/{first['diagnosis_id']}")).json()["latest"]
    late = await client.post("/v1/results", headers=ADMIN, json=better[0])
    assert late.status_code == 409 and late.json()["code"] == "diagnosis_cancelled"

    async def relayed() -> bool:
        return len(await published(clean_redis, "diagnostics.diagnosis.cancelled")) == 1

    await wait_for(relayed, "the cancelled event")


async def test_revising_after_a_framework_fix_rescores_and_keeps_the_history(
    clean_redis: str, tmp_path: Path, database_url: str
) -> None:
    app = make_app(clean_redis, tmp_path, database_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            await publish(clean_redis, Streams.REGISTRY, registry_events())

            async def known() -> bool:
                return (await client.get("/v1/stats")).json()["teachers"] == 6

            await wait_for(known, "the read model")
            await open_campaign(client, "autumn")
            diagnosis = (await post_all(client, five("t-2", "autumn")))[-1]["diagnosis"]
            assert diagnosis["framework_version"] == "2026.2"

    # The framework is fixed: "deficit" now starts at 35, under a new version.
    fixed = json.loads((SHIPPED / "framework.json").read_text(encoding="utf-8"))
    fixed["version"] = "2026.2-fix1"
    fixed["levels"][0]["below"] = 35
    path = tmp_path / "fixed.json"
    path.write_text(json.dumps(fixed, ensure_ascii=False), encoding="utf-8")
    app = make_app(clean_redis, tmp_path, database_url, framework_path=path)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            did = diagnosis["diagnosis_id"]
            revised = await client.post(
                f"/v1/diagnoses/{did}/revise", headers=ADMIN, json={"reason": "исправлена рамка"}
            )
            assert revised.status_code == 200, revised.text
            body = revised.json()
            assert (body["framework_version"], body["revision"]) == ("2026.2-fix1", 1)
            assert body["history"][0]["framework_version"] == "2026.2"
            assert body["history"][0]["reason"] == "исправлена рамка"
            versions = [v["version"] for v in (await client.get("/v1/frameworks")).json()]
            assert versions == ["2026.2", "2026.2-fix1"]
            old = (await client.get("/v1/frameworks/2026.2")).json()
            assert old["levels"][0]["below"] == 40
            case = (await client.get("/v1/frameworks/2026.2/case.json")).json()
            assert exchange.from_case(case).model_dump(mode="json") == old

    async def relayed() -> bool:
        return len(await published(clean_redis, "diagnostics.diagnosis.revised")) == 1

    await wait_for(relayed, "the revised event")
    [event] = await published(clean_redis, "diagnostics.diagnosis.revised")
    assert event["revision"] == 1 and event["reason"] == "исправлена рамка"


async def test_a_framework_version_cannot_change_its_content(
    clean_redis: str, tmp_path: Path, database_url: str
) -> None:
    app = make_app(clean_redis, tmp_path, database_url)
    async with app.router.lifespan_context(app):
        pass
    changed = json.loads((SHIPPED / "framework.json").read_text(encoding="utf-8"))
    changed["levels"][0]["below"] = 35  # same version, other content
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed, ensure_ascii=False), encoding="utf-8")
    app = make_app(clean_redis, tmp_path, database_url, framework_path=path)
    with pytest.raises(RuntimeError, match="измените версию"):
        async with app.router.lifespan_context(app):
            pass


# --- analytics -------------------------------------------------------------------------------


async def test_analytics_workbook_matches_the_api_and_names_the_program_gap(
    client: httpx.AsyncClient,
) -> None:
    await open_campaign(client, "autumn")
    for n, base in ((2, 50), (3, 45), (5, 90), (6, 30)):
        await post_all(client, five(f"t-{n}", "autumn", base=base))
    report = (await client.get("/v1/analytics")).json()
    assert report["diagnosed"] == 4
    competencies = {c["code"]: c for c in report["competencies"]}
    assert competencies["digital"]["assessed"] == 4
    municipalities = {m["id"]: m for m in report["municipalities"]}
    assert municipalities["mun-02"]["name"] == "Катангский район"
    assert municipalities["mun-01"]["diagnosed"] == 2
    assert (
        sum(m["deficits"]["digital"] for m in report["municipalities"])
        == (competencies["digital"]["deficits"])
    )
    subjects = {s["name"]: s for s in report["subjects"]}
    assert set(subjects) == {"математика", "история"}
    gap = {(g["code"], g["audience"]): g for g in report["program_gap"]}
    # teaching methods: deficits, and no program names it or shares a theme with it
    assert gap[("teaching_methods", "general")]["coverage"] == "none"
    assert "Разработать ДПП" in gap[("teaching_methods", "general")]["recommendation"]
    # digital has its program; functional literacy and assessment are covered by theme at most
    assert ("digital", "general") not in gap
    assert [g["rank"] for g in report["program_gap"]] == list(
        range(1, len(report["program_gap"]) + 1)
    )

    response = await client.get("/v1/analytics.xlsx")
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == [
        "Компетенции",
        "Муниципалитеты",
        "Организации",
        "Предметы",
        "Дефицит программ",
        "Образовательные потребности",
        "Потребности — муниципалитеты",
        "Потребности — организации",
        "Потребности — темы и форматы",
    ]
    rows = list(book["Компетенции"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[3], r[4], r[5], r[6]) for r in rows] == [
        (c["code"], c["assessed"], c["deficits"], c["critical"], c["share"])
        for c in report["competencies"]
    ]
    sheet = book["Муниципалитеты"]
    header = [c.value for c in sheet[1]]
    digital = header.index("Цифровая образовательная среда")
    for row in sheet.iter_rows(min_row=2, values_only=True):
        area = municipalities[row[0]]
        assert (row[2], row[3], row[digital]) == (
            area["diagnosed"],
            area["with_deficits"],
            area["deficits"]["digital"],
        )
    gap_rows = list(book["Дефицит программ"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[1], r[4], r[8]) for r in gap_rows] == [
        (g["rank"], g["code"], g["deficits"], g["recommendation"]) for g in report["program_gap"]
    ]


async def test_an_http_result_and_the_same_event_id_on_the_stream_count_once(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    event_id = str(uuid.uuid4())
    body = {"teacher_id": "t-2", "instrument": "self_diagnosis", "scores": {"digital": 50},
            "event_id": event_id}  # fmt: skip
    first = await client.post("/v1/results", headers=ADMIN, json=body)
    second = await client.post("/v1/results", headers=ADMIN, json=body)
    assert (first.json()["status"], second.json()["status"]) == ("stored", "duplicate")
    assert (await client.get("/v1/stats")).json()["results"] == 1


async def test_poison_over_http_gets_4xx_never_500_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    base = {"teacher_id": "t-2", "instrument": "self_diagnosis", "scores": {"digital": 50}}
    bodies: dict[str, bytes] = {
        "NUL in a string": json.dumps({**base, "teacher_id": "t-\u00002"}).encode(),
        "NUL in a key": json.dumps({**base, "scores": {"dig\u0000ital": 50}}).encode(),
        "NaN score": json.dumps(base).replace("50", "NaN").encode(),
        "Infinity score": json.dumps(base).replace("50", "Infinity").encode(),
        "nested 2,000 deep": json.dumps({**base, "external_id": "x"})
        .replace('"x"', "[" * 2000 + "]" * 2000)
        .encode(),
        "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
        "not UTF-8": b'{"teacher_id": "\xff\xfe"}',
        "not JSON": b"{teacher_id: t-2",
        "an array": b"[]",
    }
    for name, body in bodies.items():
        headers = {**ADMIN, "Content-Type": "application/json"}
        response = await client.post("/v1/results", content=body, headers=headers)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        assert response.json()["code"], name
    # the same connection still answers, and nothing of the above was stored
    assert (await client.get("/v1/stats")).json()["results"] == 0
