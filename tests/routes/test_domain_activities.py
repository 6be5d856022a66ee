"""The rules of activities, no infrastructure: what an activity must name, whether a second
recording is the same activity, which route step an attendance does, and a team's
consultations by month."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from iomflow.routes.domain import Route
from iomflow.routes.domain import activities as rules
from iomflow.shared.contracts import ActivityHeld

ON = date(2026, 3, 12)


def activity(**changes: Any) -> ActivityHeld:
    values: dict[str, Any] = {
        "activity_id": "a-1",
        "kind": "consultation",
        "title": "Оценивание",
        "level": "regional",
        "organiser_id": "cnppm",
        "format": "in_person",
        "held_on": ON,
        "competencies": ["assessment"],
        "attendees": 0,
    }
    return ActivityHeld(**(values | changes))


def route(status: str, *steps: dict[str, Any], route_id: str = "r-1") -> Route:
    return Route(
        route_id=route_id,
        diagnosis_id="d-1",
        teacher_id="t-1",
        organization_id="org-1",
        municipality_id="mun-1",
        status=status,
        steps=[{"step_id": f"s{n}", "hours": 2, **s} for n, s in enumerate(steps, start=1)],
        total_hours=2 * len(steps),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_a_team_consultation_names_its_team_and_a_community_meeting_its_community() -> None:
    assert rules.problems(activity()) == []
    assert [f for f, _ in rules.problems(activity(target="school_team"))] == ["team_id"]
    assert rules.problems(activity(target="school_team", team_id="team-1")) == []
    meeting = activity(kind="community_meeting")
    assert [f for f, _ in rules.problems(meeting)] == ["community_id"]
    assert [f for f, _ in rules.problems(activity(level="municipal"))] == ["municipality_id"]
    assert [f for f, _ in rules.problems(activity(level="school"))] == ["organization_id"]
    [(_, reason)] = rules.problems(activity(level="school"))
    assert "организацию" in reason


def test_a_second_recording_is_the_same_activity_unless_its_details_differ() -> None:
    stored = activity(competencies=["a", "b"]).model_dump(mode="python")
    assert rules.differences(stored, activity(competencies=["b", "a"])) == []
    assert rules.differences(stored, activity(competencies=["a", "b"], attendees=7)) == []
    changed = activity(competencies=["a", "b"], title="Другое", held_on=date(2026, 3, 13))
    assert rules.differences(stored, changed) == ["title", "held_on"]
    assert rules.differences_said(["title", "held_on"]) == "название, дата"


def test_attendance_does_a_consultation_step_on_one_of_the_activity_competencies() -> None:
    mine = route(
        "active",
        {"kind": "program", "competency": "assessment", "program_id": "p-1"},
        {"kind": "consultation", "competency": "digital"},
        {"kind": "consultation", "competency": "assessment"},
    )
    found = rules.step_for([mine], activity())
    assert found is not None and found[1] == "s3"
    assert rules.step_for([mine], activity(competencies=["upbringing"])) is None


def test_a_step_done_or_removed_and_a_route_not_agreed_are_not_offered() -> None:
    steps = (
        {"kind": "consultation", "competency": "assessment", "status": "done"},
        {"kind": "consultation", "competency": "assessment", "status": "removed"},
    )
    assert rules.step_for([route("active", *steps)], activity()) is None
    open_step = {"kind": "consultation", "competency": "assessment"}
    assert rules.step_for([route("drafted", open_step)], activity()) is None
    assert rules.step_for([route("completed", open_step)], activity()) is None
    later = route("agreed", open_step, route_id="r-2")
    found = rules.step_for([route("drafted", open_step), later], activity())
    assert found is not None and (found[0].route_id, found[1]) == ("r-2", "s1")


def test_a_community_step_is_done_by_a_meeting_of_its_own_community_only() -> None:
    mine = route("active", {"kind": "community", "competency": "digital", "community_id": "c-1"})
    own = activity(kind="community_meeting", community_id="c-1", competencies=[])
    other = activity(kind="community_meeting", community_id="c-2", competencies=["digital"])
    assert rules.step_for([mine], own) is not None
    assert rules.step_for([mine], other) is None
    # A webinar of that community is not its meeting.
    assert rules.step_for([mine], activity(kind="webinar", community_id="c-1")) is None


def test_a_burnout_prevention_step_is_done_by_any_activity_on_prevention() -> None:
    prevention = {"kind": "community", "competency": "wellbeing", "purpose": "burnout_prevention"}
    mine = route("active", prevention)
    webinar = activity(kind="webinar", competencies=[], themes=["burnout_prevention"])
    assert rules.step_for([mine], webinar) is not None
    assert rules.step_for([mine], activity(kind="webinar", competencies=[])) is None
    # A program step of prevention is a course's to complete, not an attendance's.
    course = {"kind": "program", "competency": "w", "purpose": "burnout_prevention"}
    assert rules.step_for([route("active", course)], webinar) is None


def test_consultations_fall_by_month_with_the_empty_months_shown() -> None:
    days = [date(2026, 1, 15), date(2026, 1, 20), date(2026, 3, 1), date(2025, 3, 1)]
    months = rules.by_month(days, 2026)
    assert [m.month for m in months] == list(range(1, 13))
    assert [m.consultations for m in months][:4] == [2, 0, 1, 0]
    assert [m.held for m in months][:3] == [True, False, True]
    assert sum(m.consultations for m in months) == 3


def test_an_attendance_is_keyed_by_its_activity_and_teacher() -> None:
    assert rules.attendance_id("a-1", "t-9") == "a-1:t-9"
