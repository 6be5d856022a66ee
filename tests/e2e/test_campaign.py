"""A diagnostics campaign over the demo region with all five instruments, end to end: the
results arrive over the inbound stream as an outside publisher writes them, and every
diagnosis explains itself by every instrument used (the issue's acceptance)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from e2e.test_chain import get, settled, start_suite, wait_until
from iomflow.cli.demo import (
    CURRENT,
    RESULTS_PER_TEACHER,
    experts_for,
    open_campaign,
    result_entries,
)
from iomflow.cli.launcher import Suite
from iomflow.shared.contracts import Instrument, Streams

REGION_TEACHERS = 600
DIAGNOSED = 150
CAMPAIGN = {
    **CURRENT.body(),  # the demo's results are taken inside its window
    "campaign_id": "whole-region",
    "name": "Диагностическая кампания по всему региону",
    "municipalities": [],  # the whole region
    "organizations": [],
}
SCORING = {i.value for i in Instrument if i is not Instrument.BURNOUT_SURVEY}


@pytest.fixture
def region(clean_redis: str, tmp_path: Path) -> Iterator[Suite]:
    """The suite on SQLite with the generated demo region of ``REGION_TEACHERS``."""
    suite = start_suite(tmp_path, clean_redis, demo_teachers=REGION_TEACHERS)
    try:
        yield suite
    finally:
        suite.stop()


def test_a_campaign_with_all_five_instruments_explains_each_diagnosis_by_every_instrument(
    region: Suite, clean_redis: str
) -> None:
    diagnostics = region.url("diagnostics")
    with httpx.Client() as client:
        campaign = open_campaign(client, diagnostics, region.admin_key, CAMPAIGN)
    assert campaign["status"] == "open" and set(campaign["required"]) == set(CAMPAIGN["required"])

    teachers: list[str] = []
    while len(teachers) < DIAGNOSED:
        page = get(
            f"{region.url('registries')}/v1/registers/teachers/records"
            f"?limit=100&offset={len(teachers)}"
        )["items"]
        assert page, "the demo region has fewer teachers than the campaign needs"
        teachers += [t["teacher_id"] for t in page]
    teachers = teachers[:DIAGNOSED]

    publisher = redis.Redis.from_url(clean_redis)
    entries = result_entries(teachers, campaign_id=CAMPAIGN["campaign_id"])
    assert len(entries) == DIAGNOSED * RESULTS_PER_TEACHER
    pipe = publisher.pipeline(transaction=False)
    for stream, fields in entries:
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    pipe.execute()

    progress_url = f"{diagnostics}/v1/campaigns/{CAMPAIGN['campaign_id']}/progress"
    wait_until(
        lambda: get(progress_url)["completed"] == DIAGNOSED,
        "the campaign's diagnoses to complete",
        within=180,
    )
    wait_until(settled(region, DIAGNOSED), "the chain to settle", within=120)

    progress = get(progress_url)
    assert (progress["expected"], progress["submitted"], progress["completed"]) == (
        REGION_TEACHERS,
        DIAGNOSED,
        DIAGNOSED,
    ), progress
    assert progress["held"] == 0
    assert sum(m["expected"] for m in progress["municipalities"]) == REGION_TEACHERS
    assert publisher.xlen(Streams.dlq(Streams.RESULTS_INBOUND)) == 0

    found = get(f"{diagnostics}/v1/diagnoses?campaign_id={CAMPAIGN['campaign_id']}&limit=1000")
    assert found["total"] == DIAGNOSED
    diagnoses: list[dict[str, Any]] = found["items"]
    assert sorted(d["teacher_id"] for d in diagnoses) == sorted(teachers)
    for diagnosis in diagnoses:
        assert_explained(diagnosis)


def assert_explained(diagnosis: dict[str, Any]) -> None:
    """Every instrument used is cited; both experts are; each competency's shares sum to 1."""
    who = diagnosis["teacher_id"]
    assert diagnosis["status"] == "completed" and diagnosis["completed_by"] == "instruments"
    assert set(diagnosis["instruments"]) == {i.value for i in Instrument}, who
    evidence = [e for c in diagnosis["competencies"] for e in c["evidence"]]
    assert {e["instrument"] for e in evidence} == SCORING, who
    experts = {e["expert_id"] for e in evidence if e["instrument"] == "expert_evaluation"}
    assert experts == set(experts_for(who)), who
    assert all(
        e["expert_id"] is None for e in evidence if e["instrument"] != "expert_evaluation"
    ), who
    assert len({e["result_id"] for e in evidence}) == RESULTS_PER_TEACHER - 1, who  # not burnout
    for competency in diagnosis["competencies"]:
        shares = [e["weight"] for e in competency["evidence"]]
        assert math.isclose(math.fsum(shares), 1.0, abs_tol=1e-9), (who, competency)
        assert competency["rule"], (who, competency)
        by_expert = [
            e["weight"] for e in competency["evidence"] if e["instrument"] == "expert_evaluation"
        ]
        assert len(by_expert) in (0, 2), (who, competency)  # both experts or none
        assert len(set(by_expert)) <= 1, (who, competency)  # they share their instrument's weight
    burnout = diagnosis["burnout"]
    assert burnout is not None and burnout["level"] in ("low", "moderate", "high"), who
    assert set(burnout["scales"]) == {
        "emotional_exhaustion",
        "depersonalization",
        "reduced_accomplishment",
    }, who
    assert 0 <= burnout["index"] <= 100, who
