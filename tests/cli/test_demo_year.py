"""The demo's year of support outside a route (``iomflow.cli.support``), built from the demo
region: deterministic, dated inside the year before the day it runs, and every reference one
the services know (a team's consultation attended by its members, a webinar by teachers of a
high burnout level after their diagnosis, a review of a practice waiting for one, a plan for
a flagged school)."""

from __future__ import annotations

import io
from collections import Counter
from datetime import date, timedelta
from functools import cache
from typing import Any

from openpyxl import load_workbook

from iomflow.cli import demo as cli_demo
from iomflow.cli import region, support
from iomflow.shared import wire
from iomflow.shared.contracts import NeedsSubmitted, Streams

TODAY = date(2026, 12, 7)


@cache
def generated() -> dict[str, list[dict[str, Any]]]:
    return region.generate(seed=38, teachers=6000)


@cache
def inputs() -> cli_demo.YearInputs:
    return cli_demo.YearInputs.of(generated())


@cache
def chosen() -> dict[str, dict[str, Any]]:
    teachers = generated()["teachers"]
    ids = cli_demo.sample([t["teacher_id"] for t in teachers], 400)
    by_id = {t["teacher_id"]: t for t in teachers}
    return {t: by_id[t] for t in ids}


def diagnosed_on(teacher_id: str) -> date:
    return TODAY - timedelta(days=30 + sum(map(ord, teacher_id)) % 300)


def high() -> set[str]:
    return {t for n, t in enumerate(sorted(chosen())) if n % 12 == 0}


def year(today: date = TODAY) -> list[dict[str, Any]]:
    return support.activities(
        inputs().teams,
        inputs().communities,
        chosen(),
        {t: diagnosed_on(t) for t in chosen()},
        high(),
        today,
    )


def test_the_year_is_the_same_every_time() -> None:
    assert year() == year()
    assert support.practice_steps(
        inputs().practices, inputs().organizations, inputs().reviewers, inputs().staff, TODAY
    ) == support.practice_steps(
        inputs().practices, inputs().organizations, inputs().reviewers, inputs().staff, TODAY
    )


def test_activities_are_dated_in_the_year_before_today_and_unique() -> None:
    rows = year()
    assert len({r["activity_id"] for r in rows}) == len(rows)
    first = date(*support.months_of_year(TODAY)[0], 1)
    assert all(first.isoformat() <= r["held_on"] < TODAY.isoformat() for r in rows)
    assert all(r["attendees"] for r in rows)
    assert set(rows[0]) == set(support.ACTIVITY_COLUMNS)


def test_at_least_four_regional_events_a_year() -> None:
    events = [r for r in year() if r["kind"] in ("event", "seminar")]
    assert len(events) >= 4 and {r["level"] for r in events} == {"regional"}
    # also within the last twelve months and within this calendar year
    assert sum(r["held_on"] >= (TODAY - timedelta(days=365)).isoformat() for r in events) >= 4
    assert sum(r["held_on"][:4] == str(TODAY.year) for r in events) >= 4


def test_every_team_has_a_consultation_a_month_but_one_team_since_last_month() -> None:
    teams = {t["team_id"]: t for t in inputs().teams}
    assert len(teams) == 16
    consultations = [r for r in year() if r["kind"] == "consultation"]
    held = Counter((r["team_id"], r["held_on"][:7]) for r in consultations)
    months = [f"{y}-{m:02d}" for y, m in support.months_of_year(TODAY)]
    skipped = support.left_out(inputs().teams, TODAY)
    assert skipped is not None
    team, (y, m) = skipped
    for team_id in teams:
        for month in months:
            expected = 0 if team_id == team and month >= f"{y}-{m:02d}" else 1
            assert held[(team_id, month)] == expected, (team_id, month)
    assert (y, m) == support.months_of_year(TODAY)[-2]  # the last whole month
    for r in consultations:
        own = teams[r["team_id"]]
        assert r["target"] == "school_team" and r["project"] == "school_of_ministry"
        assert r["organization_id"] == own["organization_id"]
        assert r["attendees"] == sorted(own["members"])


def test_community_meetings_are_attended_by_their_municipalitys_teachers() -> None:
    communities = {c["community_id"]: c for c in inputs().communities}
    meetings = [r for r in year() if r["kind"] == "community_meeting"]
    assert len({r["community_id"] for r in meetings}) >= len(communities) / 3
    for r in meetings:
        community = communities[r["community_id"]]
        assert r["target"] == "community"
        place = community["municipality_id"]
        assert r["municipality_id"] == place
        if place is not None:
            assert {chosen()[t]["municipality_id"] for t in r["attendees"]} == {place}


def test_teachers_of_a_high_burnout_level_take_a_prevention_webinar_after_their_diagnosis() -> None:
    webinars = [r for r in year() if r["kind"] == "webinar"]
    assert len(webinars) >= 4 and all("burnout_prevention" in r["themes"] for r in webinars)
    came: dict[str, list[str]] = {}
    for r in webinars:
        for t in r["attendees"]:
            if t in high():
                came.setdefault(t, []).append(r["held_on"])
    assert len(came) / len(high()) >= 0.5
    # each of them in a webinar after their diagnosis, not only before it
    assert all(max(days) >= diagnosed_on(t).isoformat() for t, days in came.items())
    assert all(t in chosen() for r in webinars for t in r["attendees"])


def test_the_spreadsheet_holds_every_activity_with_its_attendees() -> None:
    rows = year()
    book = load_workbook(io.BytesIO(support.activities_xlsx(rows)), read_only=True)
    sheet = book.worksheets[0]
    table = list(sheet.iter_rows(values_only=True))
    assert list(table[0]) == list(support.ACTIVITY_COLUMNS)
    assert len(table) == len(rows) + 1
    at = support.ACTIVITY_COLUMNS.index("attendees")
    assert table[1][at].split("; ") == rows[0]["attendees"]


def test_needs_answers_are_valid_inbound_events_of_most_teachers() -> None:
    entries = cli_demo.needs_entries(list(chosen()))
    assert 0.6 <= len(entries) / len(chosen()) <= 0.9
    again = cli_demo.needs_entries(list(chosen()))
    assert [f["data"] for _, f in entries] == [f["data"] for _, f in again]  # envelopes are new
    for stream, fields in entries:
        assert stream == Streams.RESULTS_INBOUND
        event = wire.decode(fields)
        assert event.type == "diagnostics.needs.submitted"
        answer = NeedsSubmitted.model_validate(event.payload.model_dump())
        wave, _ = cli_demo.sitting(answer.teacher_id)
        assert answer.campaign_id == wave.campaign_id
        assert answer.answered_at is not None
        assert wave.starts_on <= answer.answered_at.date() <= wave.ends_on
        assert set(answer.competencies) <= set(cli_demo.COMPETENCIES)


def test_the_practices_course_takes_each_practice_in_its_stage() -> None:
    practices = {p["practice_id"]: p for p in inputs().practices}
    steps = support.practice_steps(
        inputs().practices, inputs().organizations, inputs().reviewers, inputs().staff, TODAY
    )
    assert steps.reviews and steps.inclusions and steps.replications and steps.submissions
    reviewed = {pid: body["verdict"] for pid, body in steps.reviews}
    assert {practices[pid]["status"] for pid in reviewed} == {"submitted"}
    assert set(Counter(reviewed.values())) == {"include", "revise", "reject"}
    assert all(body["reviewed_by"] in inputs().reviewers for _, body in steps.reviews)
    for pid, _ in steps.inclusions:
        assert practices[pid]["status"] == "reviewed" or reviewed.get(pid) == "include"
    kinds = {o["organization_id"]: o["kind"] for o in inputs().organizations}
    for pid, body in steps.replications:
        assert practices[pid]["status"] == "included"
        assert kinds[body["organization_id"]] == kinds[practices[pid]["organization_id"]]
        assert body["organization_id"] != practices[pid]["organization_id"]
    for body in steps.submissions:
        assert body["practice_id"] not in practices and "status" not in body
        assert body["author_id"] in inputs().staff[body["organization_id"]]


def test_support_plans_are_for_flagged_schools_with_one_action_overdue() -> None:
    plans = support.plans(inputs().organizations, inputs().methodists, TODAY)
    orgs = {o["organization_id"]: o for o in inputs().organizations}
    methodists = {m["methodist_id"]: m for m in inputs().methodists}
    assert 2 <= len(plans) <= 5
    overdue = 0
    for body, done in plans:
        school = orgs[body["organization_id"]]
        assert school["kind"] == "school" and school["low_results"]
        served = methodists[body["methodist_id"]]["municipalities"]
        assert not served or school["municipality_id"] in served
        finished = dict(done)
        for action in body["actions"]:
            if action["action_id"] in finished:
                assert finished[action["action_id"]] <= action["due_on"]
            elif action["due_on"] < TODAY.isoformat():
                overdue += 1
        assert body["starts_on"] < min(a["due_on"] for a in body["actions"])
    assert overdue == 1
