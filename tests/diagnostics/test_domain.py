"""The diagnostics aggregates without I/O: a ``Diagnosis`` completed from its evidence (levels,
explanation, deficits, burnout, changes), revised and cancelled, each with the event it
causes; a ``Campaign``'s window, target and closing; a teacher's ``Sheet``; every refusal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from iomflow.diagnostics.domain import (
    DEFAULT_CAMPAIGN,
    Campaign,
    Diagnosis,
    Framework,
    Refusal,
    Sheet,
    Taken,
    admit,
    duplicate_result,
    load_framework,
)
from iomflow.shared.contracts import (
    CompetencyResult,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Instrument,
    Level,
)

FRAMEWORK = load_framework(
    Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))
)
ST, EXPERT, SELF, BURNOUT = (
    Instrument.STANDARDIZED_TEST,
    Instrument.EXPERT_EVALUATION,
    Instrument.SELF_DIAGNOSIS,
    Instrument.BURNOUT_SURVEY,
)
NOON = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Teacher:
    organization_id: str = "org-1"
    municipality_id: str = "mun-1"
    audience: str = "general"
    is_manager: bool = False


def taken(result_id: str, instrument: Instrument, hours: int = 0, **scores: float) -> Taken:
    expert = "e-1" if instrument is EXPERT else None
    return Taken(result_id, instrument.value, expert, scores, NOON + timedelta(hours=hours))


RESULTS = [
    taken("test", ST, 0, digital=30, assessment=70),
    taken("expert", EXPERT, 1, digital=50),
    taken("self", SELF, 2, digital=90, assessment=80),
    taken("burnout", BURNOUT, 3, emotional_exhaustion=80, depersonalization=50),
]


def completed(
    results: list[Taken] = RESULTS, before: list[CompetencyResult] | None = None
) -> tuple[Diagnosis, DiagnosisCompleted]:
    return Diagnosis.complete(
        FRAMEWORK,
        diagnosis_id="d-1",
        teacher_id="t-1",
        campaign_id="autumn",
        teacher=Teacher(),
        results=results,
        by="instruments",
        at=NOON,
        previous_id="d-0" if before is not None else None,
        before=before,
    )


# --- a diagnosis completed from its evidence -----------------------------------------------


def test_a_diagnosis_has_the_levels_of_its_evidence_with_the_explanation() -> None:
    diagnosis, _ = completed()
    digital = next(c for c in diagnosis.competencies if c.code == "digital")
    # the shipped weights 0.4 / 0.3 / 0.1 over what scored digital (0.8 in all)
    assert digital.score == round((0.4 * 30 + 0.3 * 50 + 0.1 * 90) / 0.8, 1)  # 45.0
    assert digital.level is Level.DEFICIT and digital.rule == "weighted_mean/1"
    assert [(e.result_id, round(e.weight, 3)) for e in digital.evidence] == [
        ("expert", 0.375),
        ("self", 0.125),
        ("test", 0.5),
    ]
    assert [c.code for c in diagnosis.deficits] == ["digital"]
    assert diagnosis.deficit_count == 1
    assert diagnosis.instruments == [ST, EXPERT, SELF, BURNOUT]
    assert diagnosis.burnout is not None and diagnosis.burnout.level == "high"
    assert (diagnosis.organization_id, diagnosis.municipality_id) == ("org-1", "mun-1")
    assert diagnosis.evidence_at == NOON + timedelta(hours=3)  # the burnout survey, last
    assert (diagnosis.status, diagnosis.latest, diagnosis.revision) == ("completed", True, 0)
    assert diagnosis.changes == [] and diagnosis.previous_diagnosis_id is None


def test_the_completed_event_is_the_diagnosis_as_its_contract_says_it() -> None:
    diagnosis, event = completed()
    assert isinstance(event, DiagnosisCompleted)
    assert event == diagnosis.completed()
    assert event.diagnosis_id == "d-1" and event.completed_by == "instruments"
    assert event.competencies == diagnosis.competencies and event.deficits == diagnosis.deficits


def test_a_diagnosis_dated_by_the_evidence_it_used_not_by_what_it_ignored() -> None:
    # an instrument with no weight for the codes it scored is not used, nor does it date
    late = taken("late-self", SELF, 9, **{"management_quality": 10})  # not for a teacher
    diagnosis, _ = completed([RESULTS[0], late])
    assert diagnosis.instruments == [ST]
    assert diagnosis.evidence_at == NOON


def test_the_changes_compare_with_the_previous_diagnosis() -> None:
    before = [
        CompetencyResult(code="digital", score=20, level=Level.CRITICAL),
        CompetencyResult(code="assessment", score=90, level=Level.ADVANCED),
    ]
    diagnosis, event = completed(before=before)
    changes = {c.code: (c.change, c.previous_level) for c in diagnosis.changes}
    assert changes["digital"] == ("improved", Level.CRITICAL)  # critical -> deficit
    assert changes["assessment"][0] == "worse"
    assert event.previous_diagnosis_id == "d-0" and event.changes == diagnosis.changes


def test_competencies_that_do_not_apply_to_the_teacher_are_left_out() -> None:
    scores = {"management_quality": 20.0, "digital": 70.0}
    teacher, _ = completed([taken("t", ST, **scores)])
    director, _ = Diagnosis.complete(
        FRAMEWORK, diagnosis_id="d-2", teacher_id="t-2", campaign_id="autumn",
        teacher=Teacher(is_manager=True), results=[taken("t", ST, **scores)],
        by="operator", at=NOON,
    )  # fmt: skip
    assert [c.code for c in teacher.competencies] == ["digital"]
    assert [c.code for c in director.deficits] == ["management_quality"]


# --- revise ------------------------------------------------------------------------------


def test_revise_rescores_with_another_framework_and_keeps_the_earlier_revision() -> None:
    diagnosis, first = completed()
    raw = FRAMEWORK.model_dump(mode="json")
    raw["version"] = "fixed"
    raw["combination"] = {"rule": "highest", "version": 2}
    fixed = Framework.model_validate(raw)
    later = NOON + timedelta(days=1)
    event = diagnosis.revise(fixed, Teacher(), RESULTS, None, "исправлена рамка", later)
    assert isinstance(event, DiagnosisRevised)
    assert (event.revision, event.reason, event.framework_version) == (
        1,
        "исправлена рамка",
        "fixed",
    )
    digital = next(c for c in diagnosis.competencies if c.code == "digital")
    assert (digital.score, digital.rule) == (90, "highest/2")  # the self-diagnosis
    assert event.competencies == diagnosis.competencies
    assert (diagnosis.revision, diagnosis.revised_at, diagnosis.rule) == (1, later, "highest/2")
    [earlier] = diagnosis.history
    assert earlier["revision"] == 0 and earlier["framework_version"] == FRAMEWORK.version
    assert earlier["rule"] == "weighted_mean/1" and earlier["reason"] == "исправлена рамка"
    assert earlier["replaced_at"] == later.isoformat()
    assert earlier["competencies"] == [c.model_dump(mode="json") for c in first.competencies]
    # the same diagnosis: its identity and what it was completed by do not change
    assert (event.diagnosis_id, event.completed_by, diagnosis.completed_at) == (
        "d-1",
        "instruments",
        NOON,
    )


def test_revise_with_late_evidence_counts_it() -> None:
    diagnosis, _ = completed()
    retake = taken("retake", ST, 5, digital=100, assessment=70)
    diagnosis.revise(FRAMEWORK, Teacher(), [*RESULTS, retake], None, "пересдача", NOON)
    digital = next(c for c in diagnosis.competencies if c.code == "digital")
    assert "retake" in {e.result_id for e in digital.evidence}
    assert "test" not in {e.result_id for e in digital.evidence}
    assert diagnosis.evidence_at == NOON + timedelta(hours=5)


def test_a_cancelled_diagnosis_is_not_revised() -> None:
    diagnosis, _ = completed()
    diagnosis.cancel("ошибка", NOON)
    with pytest.raises(Refusal) as caught:
        diagnosis.revise(FRAMEWORK, Teacher(), RESULTS, None, "пересчёт", NOON)
    assert (caught.value.code, caught.value.status) == ("diagnosis_cancelled", 409)
    assert diagnosis.revision == 0 and diagnosis.history == []


# --- cancel ------------------------------------------------------------------------------


def test_cancel_ends_the_diagnosis_and_says_so() -> None:
    diagnosis, _ = completed()
    event = diagnosis.cancel("ошибочная загрузка", NOON)
    assert event == DiagnosisCancelled(
        diagnosis_id="d-1", teacher_id="t-1", campaign_id="autumn", reason="ошибочная загрузка"
    )
    assert (diagnosis.status, diagnosis.latest) == ("cancelled", False)
    assert (diagnosis.cancelled_at, diagnosis.cancel_reason) == (NOON, "ошибочная загрузка")


def test_a_diagnosis_is_cancelled_once() -> None:
    diagnosis, _ = completed()
    diagnosis.cancel("первый раз", NOON)
    with pytest.raises(Refusal) as caught:
        diagnosis.cancel("второй раз", NOON + timedelta(hours=1))
    assert (caught.value.code, caught.value.status) == ("already_cancelled", 409)
    assert (diagnosis.cancelled_at, diagnosis.cancel_reason) == (NOON, "первый раз")


# --- campaigns: the window, the target, open and closed ----------------------------------


def autumn(**changes: object) -> Campaign:
    values: dict[str, object] = {
        "campaign_id": "autumn", "name": "Осень", "at": NOON,
        "starts_on": date(2026, 9, 1), "ends_on": date(2026, 12, 31),
    }  # fmt: skip
    values.update(changes)
    return Campaign.open(FRAMEWORK, **values)  # type: ignore[arg-type]


def test_a_campaign_takes_results_inside_its_window_both_ends_included() -> None:
    campaign = autumn()
    for day in (date(2026, 9, 1), date(2026, 10, 15), date(2026, 12, 31)):
        campaign.admit(day)


@pytest.mark.parametrize("day", [date(2026, 8, 31), date(2027, 1, 1)])
def test_a_result_outside_the_window_is_refused(day: date) -> None:
    with pytest.raises(Refusal) as caught:
        autumn().admit(day)
    assert caught.value.code == "outside_campaign_window" and caught.value.status == 422
    assert f"{day:%d.%m.%Y}" in caught.value.detail and "01.09.2026 — 31.12.2026" in str(
        caught.value
    )


def test_an_open_end_does_not_limit_the_window() -> None:
    campaign = autumn(starts_on=None, ends_on=date(2026, 12, 31))
    campaign.admit(date(2000, 1, 1))
    assert campaign.window == "… — 31.12.2026"
    standing = Campaign.standing(FRAMEWORK, NOON)
    standing.admit(date(1990, 1, 1))
    standing.admit(date(2100, 1, 1))


def test_a_campaign_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(Refusal) as caught:
        autumn(starts_on=date(2026, 12, 1), ends_on=date(2026, 11, 30))
    assert caught.value.code == "bad_window"
    autumn(starts_on=date(2026, 12, 1), ends_on=date(2026, 12, 1))  # one day is a window


def test_a_new_campaign_requires_the_frameworks_instruments_unless_told() -> None:
    assert autumn().required == FRAMEWORK.required_instruments
    assert autumn(required=[ST]).required == [ST]
    campaign = autumn(municipalities=["m-2", "m-1", "m-2"], organizations=["o-1"])
    assert (campaign.municipalities, campaign.organizations) == (["m-1", "m-2"], ["o-1"])
    assert (campaign.status, campaign.created_at, campaign.closed_at) == ("open", NOON, None)


def test_a_closed_campaign_takes_no_more_results() -> None:
    campaign = autumn()
    campaign.close(NOON)
    assert (campaign.status, campaign.closed_at) == ("closed", NOON)
    with pytest.raises(Refusal) as caught:
        campaign.admit(date(2026, 10, 15))  # inside the window: closed says it first
    assert caught.value.code == "campaign_closed"


def test_the_standing_campaign_is_never_closed() -> None:
    standing = Campaign.standing(FRAMEWORK, NOON)
    assert standing.campaign_id == DEFAULT_CAMPAIGN
    with pytest.raises(Refusal) as caught:
        standing.close(NOON)
    assert (caught.value.code, caught.value.status) == ("standing_campaign", 409)
    assert standing.status == "open"


def test_a_result_for_no_campaign_is_refused() -> None:
    with pytest.raises(Refusal) as caught:
        admit(None, "winter", date(2026, 10, 15))
    assert (caught.value.code, caught.value.status) == ("unknown_campaign", 422)
    campaign = autumn()
    assert admit(campaign, "autumn", date(2026, 10, 15)) is campaign


def test_the_target_is_its_municipalities_and_organisations_empty_the_region() -> None:
    here, there = Teacher(), Teacher(organization_id="org-9", municipality_id="mun-9")
    assert autumn().includes(there)  # the region
    by_municipality = autumn(municipalities=["mun-1"])
    assert by_municipality.includes(here) and not by_municipality.includes(there)
    both = autumn(municipalities=["mun-1", "mun-9"], organizations=["org-1"])
    assert both.includes(here) and not both.includes(there)
    with pytest.raises(Refusal) as caught:
        both.admit_teacher("t-9", there)
    assert caught.value.code == "not_in_campaign" and "t-9" in caught.value.detail


# --- a teacher's sheet in a campaign -------------------------------------------------------


def test_a_sheet_completes_by_itself_when_the_required_instruments_are_in() -> None:
    sheet = Sheet()
    sheet.add(RESULTS[0])
    assert not sheet.ready([ST, SELF])
    sheet.add(RESULTS[2])
    assert sheet.ready([ST, SELF])
    sheet.diagnosis_id, sheet.status = "d-1", "completed"
    assert not sheet.ready([ST, SELF])  # once


def test_a_cancelled_diagnosis_takes_no_more_results() -> None:
    sheet = Sheet(diagnosis_id="d-1", status="completed")
    sheet.admit("t-1", autumn())  # a late result: evidence for a revision
    sheet.status = "cancelled"
    with pytest.raises(Refusal) as caught:
        sheet.admit("t-1", autumn())
    assert (caught.value.code, caught.value.status) == ("diagnosis_cancelled", 409)


def test_an_operator_closes_a_sheet_with_results_and_no_diagnosis() -> None:
    sheet = Sheet()
    with pytest.raises(Refusal) as caught:
        sheet.closable("t-1", "autumn", known=True)
    assert (caught.value.code, caught.value.status) == ("no_results", 404)
    sheet.add(RESULTS[0])
    with pytest.raises(Refusal) as caught:
        sheet.closable("t-1", "autumn", known=False)  # a teacher the registries do not know
    assert caught.value.code == "no_results"
    sheet.closable("t-1", "autumn", known=True)
    sheet.diagnosis_id = "d-1"
    with pytest.raises(Refusal) as caught:
        sheet.closable("t-1", "autumn", known=True)
    assert (caught.value.code, caught.value.status) == ("already_completed", 409)


def test_an_external_id_sent_again_is_refused_as_a_conflict() -> None:
    refusal = duplicate_result("cop", "ext-1")
    assert (refusal.code, refusal.status) == ("duplicate_external_id", 409)
    assert "ext-1" in refusal.detail and "cop" in refusal.detail
