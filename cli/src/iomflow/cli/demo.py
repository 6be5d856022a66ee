"""The main job: the whole chain on embedded defaults with the demo region.

Starts Redis (unless given one) and the four services as processes on SQLite files,
loads the demo region into the registries and replays a year of its history: an operator
opens the year's three diagnostics campaigns (``history``: last year's and this year's
earlier one, long over, and the current ``demo-<year>``, all dated back from the day it runs;
all five instruments required), every instrument's results of N
teachers sampled across the whole region go into the inbound stream exactly as an outside
publisher would send them (plain XADD), each teacher's dated inside one campaign, so the
diagnoses spread over the year; one teacher's results are submitted over HTTP inside a
known trace. When every diagnosis has become a route with a methodist, the further-education
provider's course completions of the past year follow (on the courses' inbound stream):
programs of the routes' steps and programs taken outside any route. Then it prints the
history, the KPI table, a KPI month by month, one route and that one trace.

While it runs, ``<workdir>/suite.json`` holds its settings (``launcher.write_settings``), so
that the services' admin commands run beside it work on its databases; ``iomflow dev``
prints the admin key and the commands that issue publishers' keys (``admin_hints``).
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import importlib
import os
import random
import re
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iomflow.cli import region, support, trace
from iomflow.cli.launcher import SETTINGS_FILE, LocalRedis, Suite, write_settings
from iomflow.monitoring import wording as kpi_words
from iomflow.routes import wording
from iomflow.shared import redisconn, wire
from iomflow.shared.contracts import (
    CourseEvent,
    Event,
    Instrument,
    ItemScore,
    ResultSubmitted,
    Streams,
    new_event,
)
from iomflow.shared.telemetry import read_spans

# The competency codes of the framework in force (services/diagnostics/…/data/framework.json),
# as an outside publisher's specification names them; the order fixes the demo's numbers.
COMPETENCIES = (
    "subject_content",
    "teaching_methods",
    "updated_fgos",
    "psych_pedagogy",
    "inclusive_education",
    "preschool_environment",
    "upbringing",
    "functional_literacy",
    "assessment",
    "digital",
    "communication",
    "career_guidance",
    "gifted_children",
    "management_quality",
    "management_staff",
    "management_strategy",
)
OBSERVABLE = (
    "teaching_methods",
    "updated_fgos",
    "psych_pedagogy",
    "inclusive_education",
    "preschool_environment",
    "upbringing",
    "functional_literacy",
    "assessment",
    "digital",
    "communication",
)
"""What an expert observing lessons (sessions) can judge on the rubric."""
PROFESSIONAL = (
    "subject_content",
    "upbringing",
    "functional_literacy",
    "assessment",
    "career_guidance",
    "gifted_children",
    "management_quality",
    "management_strategy",
)
"""What the analysis of professional results (learners' results, olympiads, the school's
quality data) speaks to."""
CORE = (
    "teaching_methods",
    "updated_fgos",
    "psych_pedagogy",
    "inclusive_education",
    "upbringing",
    "assessment",
    "digital",
    "communication",
    "gifted_children",
)
"""Competencies that apply to every teacher, whatever the audience or role."""
BURNOUT_SCALES = ("emotional_exhaustion", "depersonalization", "reduced_accomplishment")
TEST_ITEMS = (1, 1, 2, 2)
"""The standardized test's blueprint: per competency, items worth these points."""
EXPERTS = 120
"""Size of the demo's pool of (pseudonymous) experts."""
INSTRUMENTS = tuple(Instrument)
RESULTS_PER_TEACHER = len(INSTRUMENTS) + 1  # the expert evaluation comes from two experts

IRKUTSK = timezone(timedelta(hours=8))
Month = tuple[int, int]
SEASONS = {
    12: ("winter", "Зимняя"),
    1: ("winter", "Зимняя"),
    2: ("winter", "Зимняя"),
    3: ("spring", "Весенняя"),
    4: ("spring", "Весенняя"),
    5: ("spring", "Весенняя"),
    6: ("summer", "Летняя"),
    7: ("summer", "Летняя"),
    8: ("summer", "Летняя"),
    9: ("autumn", "Осенняя"),
    10: ("autumn", "Осенняя"),
    11: ("autumn", "Осенняя"),
}
"""A campaign's season by its middle month: its id's suffix and its name's first word."""


def month_before(month: Month, months: int) -> Month:
    """The month ``months`` before ``month``."""
    index = month[0] * 12 + month[1] - 1 - months
    return index // 12, index % 12 + 1


def month_end(month: Month) -> date:
    return date(month[0], month[1], calendar.monthrange(*month)[1])


@dataclass(frozen=True)
class Wave:
    """One diagnostics campaign of the demo's year, and the months its teachers sat the
    instruments in (each teacher all of them in one month)."""

    campaign_id: str
    name: str
    starts_on: date
    ends_on: date
    months: tuple[Month, ...]
    weight: int
    """Its share of the sampled teachers (relative to the other waves')."""

    @classmethod
    def of(
        cls,
        months: Sequence[Month],
        weight: int,
        ends_on: date | None = None,
        current: bool = False,
    ) -> Wave:
        """The campaign of these months (its window theirs, or until ``ends_on``), named by its
        season and year; the current one's id is ``demo-<year>``."""
        suffix, season = SEASONS[months[len(months) // 2][1]]
        year = months[0][0]
        return cls(
            f"demo-{year}" if current else f"demo-{year}-{suffix}",
            f"{season} диагностика профессиональных дефицитов {year}",
            date(*months[0], 1),
            ends_on or month_end(months[-1]),
            tuple(months),
            weight,
        )

    def body(self) -> dict[str, Any]:
        """``POST /v1/campaigns`` on diagnostics: every instrument required, everyone in it."""
        return {
            "campaign_id": self.campaign_id,
            "name": self.name,
            "starts_on": self.starts_on.isoformat(),
            "ends_on": self.ends_on.isoformat(),
            "municipalities": [],
            "organizations": [],
            "required": [i.value for i in INSTRUMENTS],
        }


def history(today: date) -> tuple[Wave, ...]:
    """The demo's year of diagnostics as of ``today``: last year's campaign (the months 15 to
    12 before this one, so that the report has a last year to compare with), this year's
    earlier one (10 to 7 months back) and the current one (the three months before this one,
    open until the end of this month). No result is ever dated after yesterday."""
    this = (today.year, today.month)
    back = functools.partial(month_before, this)
    return (
        Wave.of([back(n) for n in (15, 14, 13, 12)], 3),
        Wave.of([back(n) for n in (10, 9, 8, 7)], 3),
        Wave.of([back(n) for n in (3, 2, 1)], 4, ends_on=month_end(this), current=True),
    )


HISTORY = history(datetime.now(IRKUTSK).date())
"""The demo's year of diagnostics, as of the day it runs (Irkutsk). The two past campaigns are
opened when the demo runs, their windows long over: diagnostics lets an operator open a
campaign of any dates, which is how a campaign's results kept elsewhere are loaded later;
each result is still checked against its campaign's window (``taken_at``), and the diagnosis
is dated by its evidence (``evidence_at``), not by the day it was loaded. Once loaded, the
operator closes them."""
CURRENT = HISTORY[-1]
CAMPAIGN_ID = CURRENT.campaign_id
CAMPAIGN: dict[str, Any] = CURRENT.body()
"""``POST /v1/campaigns`` of the current campaign, the one other tests publish into."""
SAT_IN: Month = CURRENT.months[1]
"""The month results are taken in unless told otherwise: the current campaign's middle one."""
REGISTERS_SINCE = date(*month_before(HISTORY[0].months[0], 1), 1)
"""The demo's registers hold their records from a month before the first campaign: loaded
with ``since`` (their events dated by it), so the KPIs as of any day of the year count them."""

console = Console(width=max(Console().width, 130))


def open_campaign(
    client: httpx.Client,
    diagnostics_url: str,
    admin_key: str,
    campaign: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Open the demo campaign (or ``campaign``) through the diagnostics API as an operator;
    one that is already open is taken as it is."""
    body = campaign or CAMPAIGN
    response = client.post(
        f"{diagnostics_url}/v1/campaigns",
        json=body,
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    if response.status_code == 409:
        response = client.get(f"{diagnostics_url}/v1/campaigns/{body['campaign_id']}", timeout=10)
    elif response.status_code != 201:
        raise RuntimeError(f"кампания не открыта: {response.status_code} {response.text[:2000]}")
    response.raise_for_status()
    opened: dict[str, Any] = response.json()
    return opened


# --- the demo's results ------------------------------------------------------------------


def _clip(value: float) -> float:
    return round(min(100.0, max(0.0, value)), 1)


def _ability(teacher_id: str) -> dict[str, float]:
    """The teacher's true level per competency, which every instrument sees through its own
    noise: most teachers have a few deficits."""
    rng = random.Random(teacher_id)
    return {code: rng.gauss(68, 15) for code in COMPETENCIES}


def traced_teacher(teacher_ids: list[str]) -> str:
    """The teacher to follow as one trace: the first one the demo makes clearly weak in a
    competency every teacher has (a sure deficit, so the diagnosis becomes a route)."""
    for teacher_id in teacher_ids:
        ability = _ability(teacher_id)
        if min(ability[code] for code in CORE) < 40:
            return teacher_id
    return teacher_ids[0]


def sample(teacher_ids: Sequence[str], count: int, seed: str = "demo") -> list[str]:
    """``count`` teachers drawn evenly from the whole registry (every municipality, not its
    first page), deterministic, in registry order."""
    if count >= len(teacher_ids):
        return list(teacher_ids)
    picked = set(random.Random(seed).sample(range(len(teacher_ids)), count))
    return [t for n, t in enumerate(teacher_ids) if n in picked]


def sitting(teacher_id: str) -> tuple[Wave, Month]:
    """The campaign of the year the teacher was diagnosed in, and the month they sat it."""
    rng = random.Random(f"{teacher_id}:sitting")
    wave = rng.choices(HISTORY, weights=[w.weight for w in HISTORY])[0]
    return wave, rng.choice(wave.months)


def _taken_at(
    teacher_id: str, what: str, first_day: int, last_day: int, month: Month = SAT_IN
) -> datetime:
    """A deterministic working-hours moment of ``month`` (days past its end fall on its
    last day), Irkutsk time."""
    rng = random.Random(f"{teacher_id}:{what}:taken_at")
    year, number = month
    return datetime(
        year,
        number,
        min(rng.randint(first_day, last_day), calendar.monthrange(year, number)[1]),
        rng.randint(9, 16),
        rng.choice((0, 15, 30, 45)),
        tzinfo=IRKUTSK,
    )


def experts_for(teacher_id: str) -> tuple[str, str]:
    """The two experts who observe the teacher's lessons."""
    first, second = random.Random(f"{teacher_id}:experts").sample(range(1, EXPERTS + 1), 2)
    return f"expert-{first:03d}", f"expert-{second:03d}"


def results_for(
    teacher_id: str, campaign_id: str = CAMPAIGN_ID, month: Month = SAT_IN
) -> list[ResultSubmitted]:
    """One teacher's six demo results, deterministic from the id: the standardized test as
    items, the expert evaluation by two experts, professional results, self-diagnosis (kinder
    than the test) and the burnout survey, all taken in ``month``."""
    ability = _ability(teacher_id)

    def result(instrument: Instrument, suffix: str = "", **fields: Any) -> ResultSubmitted:
        return ResultSubmitted(
            teacher_id=teacher_id,
            instrument=instrument,
            campaign_id=campaign_id,
            external_id=f"{campaign_id}:{teacher_id}:{instrument.value}{suffix}",
            **fields,
        )

    rng = random.Random(f"{teacher_id}:{Instrument.STANDARDIZED_TEST.value}")
    items = []
    for block, code in enumerate(COMPETENCIES):
        solves = min(0.97, max(0.03, ability[code] / 100))
        for number, points in enumerate(TEST_ITEMS, start=1):
            items.append(
                ItemScore(
                    item=f"{chr(ord('A') + block)}{number}",
                    competency=code,
                    score=sum(rng.random() < solves for _ in range(points)),
                    max_score=points,
                )
            )
    out = [
        result(
            Instrument.STANDARDIZED_TEST,
            items=items,
            taken_at=_taken_at(teacher_id, "test", 1, 10, month),
        )
    ]
    for expert_id in experts_for(teacher_id):
        strictness = random.Random(expert_id).gauss(0, 4)  # each expert a little stricter or kinder
        rng = random.Random(f"{teacher_id}:{expert_id}")
        out.append(
            result(
                Instrument.EXPERT_EVALUATION,
                f":{expert_id}",
                expert_id=expert_id,
                # a rubric in steps of 5 points
                scores={
                    code: _clip(5 * round((ability[code] - strictness + rng.gauss(0, 6)) / 5))
                    for code in OBSERVABLE
                },
                taken_at=_taken_at(teacher_id, expert_id, 5, 25, month),
            )
        )
    rng = random.Random(f"{teacher_id}:{Instrument.PROFESSIONAL_RESULTS.value}")
    out.append(
        result(
            Instrument.PROFESSIONAL_RESULTS,
            scores={code: _clip(ability[code] + rng.gauss(0, 8)) for code in PROFESSIONAL},
            taken_at=_taken_at(teacher_id, "professional", 12, 20, month),
        )
    )
    rng = random.Random(f"{teacher_id}:{Instrument.SELF_DIAGNOSIS.value}")
    out.append(
        result(
            Instrument.SELF_DIAGNOSIS,
            scores={code: _clip(ability[code] + 8 + rng.gauss(0, 5)) for code in COMPETENCIES},
            taken_at=_taken_at(teacher_id, "self", 1, 31, month),
        )
    )
    rng = random.Random(f"{teacher_id}:{Instrument.BURNOUT_SURVEY.value}")
    strain = rng.gauss(42, 14)
    out.append(
        result(
            Instrument.BURNOUT_SURVEY,
            scores={scale: _clip(strain + rng.gauss(0, 8)) for scale in BURNOUT_SCALES},
            taken_at=_taken_at(teacher_id, "burnout", 1, 31, month),
        )
    )
    return out


def result_events(
    teacher_id: str,
    source: str = "demo-publisher",
    campaign_id: str = CAMPAIGN_ID,
    month: Month = SAT_IN,
) -> list[Event[ResultSubmitted]]:
    """One teacher's demo results as an outside publisher sends them, each in its envelope."""
    return [
        new_event("diagnostics.result.submitted", result, source=source, subject=teacher_id)
        for result in results_for(teacher_id, campaign_id, month)
    ]


def result_entries(
    teacher_ids: list[str], campaign_id: str = CAMPAIGN_ID
) -> list[tuple[str, dict[str, str]]]:
    """Stream entries of every result of these teachers, ready for XADD."""
    return [
        (Streams.RESULTS_INBOUND, wire.encode(event))
        for teacher_id in teacher_ids
        for event in result_events(teacher_id, campaign_id=campaign_id)
    ]


def history_entries(teacher_ids: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """Stream entries of every result of these teachers, each teacher's in the campaign
    and month of the year it sat (``sitting``)."""
    entries = []
    for teacher_id in teacher_ids:
        wave, month = sitting(teacher_id)
        entries += [
            (Streams.RESULTS_INBOUND, wire.encode(event))
            for event in result_events(teacher_id, campaign_id=wave.campaign_id, month=month)
        ]
    return entries


def result_bodies(
    teacher_id: str, source: str = "demo-http", campaign_id: str = CAMPAIGN_ID
) -> list[dict[str, Any]]:
    """One teacher's demo results as bodies of ``POST /v1/results`` on diagnostics."""
    return [
        {**result.model_dump(mode="json", exclude_none=True), "source": source}
        for result in results_for(teacher_id, campaign_id)
    ]


# --- the year's course completions -------------------------------------------------------

IN_ROUTE_SHARE = 0.4
"""Of the teachers whose route has a program step: how many completed that program."""
OUTSIDE_SHARE = 0.2
"""Of every teacher: how many completed a program outside any route (on their own, or their
school's choice): the provider reports these too, and the training KPIs count them."""
MAX_COMPLETIONS = 900
"""Of each kind: routes' ``/v1/courses`` lists at most 1000 of a status, which the demo
counts to know they were taken."""
THEMES = (
    "updated_fgos",
    "functional_literacy",
    "digital_environment",
    "quality_assessment",
    "subject",
    "upbringing",
    "gifted_children",
    "career_guidance",
    "burnout_prevention",
)
"""The themes of programs taken outside routes by school teachers, in turn; managers take
management programs, preschool teachers preschool ones."""
OPEN_ROUTES = ("drafted", "agreed", "active")


@dataclass(frozen=True)
class Completion:
    """A course completion as the provider (or the federal portal) reports it."""

    course: CourseEvent
    source: str
    in_route: bool
    themes: tuple[str, ...]

    def entry(self) -> tuple[str, dict[str, str]]:
        event = new_event(
            "courses.course.completed",
            self.course,
            source=self.source,
            subject=self.course.teacher_id,
        )
        return Streams.COURSES_INBOUND, wire.encode(event)


def _completion(
    teacher_id: str, program: Mapping[str, Any], on: date, rng: random.Random, in_route: bool
) -> Completion:
    # The federal portal names a course by its number in the Federal registry.
    federal = bool(program.get("federal_number")) and rng.random() < 0.5
    course = CourseEvent(
        teacher_id=teacher_id,
        program_id=None if federal else program["program_id"],
        federal_number=program["federal_number"] if federal else None,
        external_id=f"demo-courses:{teacher_id}:{program['program_id']}",
        on=on,
        hours=program["hours"],
        passed=True,
    )
    source = "demo-federal-portal" if federal else "demo-provider"
    return Completion(course, source, in_route, tuple(program["themes"]))


def completions(
    teachers: Sequence[Mapping[str, Any]],
    routes: Mapping[str, Mapping[str, Any]],
    programs: Sequence[Mapping[str, Any]],
    diagnosed_on: Mapping[str, date],
    today: date,
    routeless: Collection[str] = (),
) -> list[Completion]:
    """The past year's course completions of these teachers, deterministic from their ids:
    for a share of those whose open route (``routes``, by teacher) has a program step, that
    program, completed after the diagnosis (``diagnosed_on``: when its evidence was taken);
    for a share of the others with a route and of those with none (``routeless``), a
    program outside their route that fits their audience, themed in turn (``THEMES``),
    completed any day of the past year. A teacher in neither (a route not read) has none:
    a course outside a route must not be one of its steps."""
    known = {p["program_id"]: p for p in programs}
    yesterday, year_ago = today - timedelta(days=1), today - timedelta(days=365)
    in_route: list[Completion] = []
    outside: list[Completion] = []
    turn = 0
    for teacher in teachers:
        teacher_id = teacher["teacher_id"]
        rng = random.Random(f"{teacher_id}:courses")
        route = routes.get(teacher_id)
        if route is None and teacher_id not in routeless:
            continue
        steps = route["steps"] if route and route["status"] in OPEN_ROUTES else []
        planned = [
            s
            for s in steps
            if s["kind"] == "program"
            and s.get("program_id") in known
            and s.get("status") not in ("done", "removed")
        ]
        draw = rng.random()
        if planned and draw < IN_ROUTE_SHARE:
            step = min(planned, key=lambda s: str(s.get("starts_on") or ""))
            since = diagnosed_on.get(teacher_id, year_ago) + timedelta(days=21)
            since = min(max(since, year_ago), yesterday)
            on = since + timedelta(days=rng.randint(0, (yesterday - since).days))
            in_route.append(_completion(teacher_id, known[step["program_id"]], on, rng, True))
        elif draw >= 1 - OUTSIDE_SHARE:
            audience = teacher["audience"]
            if teacher.get("is_manager"):
                theme = "management"
            elif audience == "preschool":
                theme = "preschool_quality"
            else:
                theme, turn = THEMES[turn % len(THEMES)], turn + 1
            taken = {s.get("program_id") for s in steps}
            fitting = [
                p for p in programs if audience in p["audiences"] and p["program_id"] not in taken
            ]
            themed = [p for p in fitting if theme in p["themes"]] or fitting
            if themed:
                on = today - timedelta(days=rng.randint(1, 365))
                outside.append(_completion(teacher_id, rng.choice(themed), on, rng, False))
    return in_route[:MAX_COMPLETIONS] + outside[:MAX_COMPLETIONS]


# --- the year's support outside a route (issue 16) ------------------------------------------

NEW_KPIS = (
    "regional_activities",
    "school_of_ministry_teams",
    "school_of_ministry_methodists",
    "school_of_ministry_consultations",
    "needs_surveyed_share",
    "burnout_high_share",
    "practices_in_bank",
    "practices_replicated",
    "contest_participants",
    "support_plans_share",
    "young_supported_share",
    "mentoring_orgs_share",
    "burnout_prevention_share",
    "expert_involvement",
)
"""The KPIs of support outside a route, new or counted anew (issue 16): the demo prints a
line for each."""
NEW_ALERTS = ("team_without_consultation", "plan_action_overdue", "burnout_risk_rising")


@dataclass(frozen=True)
class YearInputs:
    """What the year of support needs from the generated region (kept when the rest of it
    is dropped after loading)."""

    teams: list[dict[str, Any]]
    communities: list[dict[str, Any]]
    practices: list[dict[str, Any]]
    organizations: list[dict[str, Any]]
    methodists: list[dict[str, Any]]
    reviewers: list[str]
    staff: dict[str, list[str]]
    """Teachers by organisation: authors and replicators of practices."""

    @classmethod
    def of(cls, generated: Mapping[str, list[dict[str, Any]]]) -> YearInputs:
        staff: dict[str, list[str]] = {}
        for teacher in generated["teachers"]:
            staff.setdefault(teacher["organization_id"], []).append(teacher["teacher_id"])
        roles = generated.get("expert_roles", [])
        return cls(
            teams=list(generated.get("school_teams", [])),
            communities=list(generated["communities"]),
            practices=list(generated["practices"]),
            organizations=[
                {k: o[k] for k in ("organization_id", "municipality_id", "kind", "low_results")}
                for o in generated["organizations"]
            ],
            methodists=[
                {k: m[k] for k in ("methodist_id", "municipalities")}
                for m in generated["methodists"]
            ],
            # a reviewer holds the role on the day of the review: one that has not ended
            reviewers=sorted(
                {
                    r["teacher_id"]
                    for r in roles
                    if r["kind"] == "practice_review" and r["ends_on"] is None
                }
            ),
            staff=staff,
        )


def needs_entries(teacher_ids: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """The needs answers of these teachers (most give one) on the results' inbound stream,
    each in the campaign and month the teacher sat the diagnostics in."""
    entries = []
    for teacher_id in teacher_ids:
        wave, month = sitting(teacher_id)
        at = _taken_at(teacher_id, "needs", 1, 28, month)
        answer = support.needs_for(teacher_id, _ability(teacher_id), wave.campaign_id, at)
        if answer is not None:
            entries.append(support.needs_entry(answer))
    return entries


def record_year(
    client: httpx.Client,
    suite: Suite,
    inputs: YearInputs,
    teachers: Mapping[str, Mapping[str, Any]],
    diagnoses: Mapping[str, Diagnosed],
    today: date,
) -> datetime:
    """The year's activities, the practices' course and the support plans, recorded over the
    APIs; what was recorded, said. Returns when it was done (the KPIs after it count it)."""
    high = {t for t, d in diagnoses.items() if d.burnout == "high"}
    year = support.activities(
        inputs.teams,
        inputs.communities,
        teachers,
        {t: d.on for t, d in diagnoses.items()},
        high,
        today,
    )
    steps = support.practice_steps(
        inputs.practices, inputs.organizations, inputs.reviewers, inputs.staff, today
    )
    plans = support.plans(inputs.organizations, inputs.methodists, today)
    done = support.record(
        client,
        suite.url("routes"),
        suite.url("registries"),
        suite.admin_key,
        year,
        steps,
        plans,
    )
    kinds = Counter(r["kind"] for r in year)
    regional = sum(
        # roadmap 34's events, as regional_activities counts them
        1
        for r in year
        if r["kind"] in ("event", "seminar", "webinar") and r["level"] == "regional"
    )
    skipped = support.left_out(inputs.teams, today)
    prevention = {t for r in year if "burnout_prevention" in r["themes"] for t in r["attendees"]}
    say(
        f"Записано мероприятий года: {done.activities} (загрузкой XLSX и через API), участий "
        f"{done.attendances}: региональных мероприятий {regional}, консультаций школьных команд "
        f"«Школы Минпросвещения России» {kinds['consultation']} ({len(inputs.teams)} команд"
        + (
            f"; команда {skipped[0]} без консультации с {skipped[1][1]:02d}.{skipped[1][0]}"
            if skipped
            else ""
        )
        + f"), встреч сообществ {kinds['community_meeting']}, вебинаров по профилактике "
        f"выгорания {kinds['webinar']} (из {len(high)} педагогов с высоким уровнем выгорания "
        f"пришли {len(high & prevention)})"
    )
    verdicts = Counter(body["verdict"] for _, body in steps.reviews)
    say(
        f"Банк практик: рассмотрено {done.reviews} (в банк {verdicts['include']}, на доработку "
        f"{verdicts['revise']}, отклонено {verdicts['reject']}), включено в банк "
        f"{done.inclusions}, тиражировано {done.replications}, подано новых {done.submissions}"
    )
    say(
        f"Планы поддержки школ с низкими результатами: {done.plans} "
        f"(действий {sum(len(b['actions']) for b, _ in plans)}, просрочено {done.overdue})"
    )
    return datetime.now(UTC)


def target_words(kpi: Mapping[str, Any]) -> str:
    """A KPI's target in words: «не менее 80 %», «снижение к прошлому году», «без цели»."""
    if kpi.get("target") is None:
        return "без цели"
    return kpi_words.goal(kpi["comparison"], kpi["target"], kpi["unit"])


def kpi_line(kpi: Mapping[str, Any]) -> str:
    """One KPI on one line, in words: its value, target and status."""
    value = kpi_words.amount(kpi["value"], kpi["unit"])
    target = target_words(kpi)
    period = (kpi.get("period") or {}).get("label", "")
    words = re.sub(r"\[/?\w*\]", "", STATUS.get(kpi["status"], kpi["status"]))
    return f"«{kpi['name']}»: {value}; цель — {target}; {words}" + (f"; {period}" if period else "")


def print_new_kpis(kpis: Mapping[str, Any]) -> None:
    """A line for each KPI of support outside a route (``NEW_KPIS``)."""
    found = {k["code"]: k for k in kpis["region"]["kpis"]}
    say("Поддержка вне маршрутов — показатели:")
    for code in NEW_KPIS:
        say(f"  {kpi_line(found[code])}" if code in found else f"  {code}: нет в показателях")


def print_alerts(alerts: Sequence[Mapping[str, Any]]) -> None:
    """The open alerts of support outside a route, one line each."""
    shown = [a for a in alerts if a["kind"] in NEW_ALERTS and not a.get("resolved_at")]
    for alert in shown:
        say(f"Оповещение: {alert['message']}")
    if not shown:
        say("Оповещений о поддержке вне маршрутов нет")


def wait_for(
    what: str,
    total: int,
    current: Callable[[], tuple[int, bool]],
    timeout: float,
    rate: Callable[[], tuple[int, str]] | None = None,
) -> None:
    """A progress bar until ``current()`` says done; fails loudly on timeout. ``rate()``
    gives a count that grows as the work goes (results taken, teachers seen) and its unit:
    the bar shows how many of them a second."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[speed]}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(what, total=total, speed="")
        started = time.monotonic()
        deadline = started + timeout
        first: int | None = None
        while True:
            done_count, done = current()
            speed = ""
            if rate is not None:
                count, unit = rate()
                first = count if first is None else first
                elapsed = time.monotonic() - started
                if elapsed > 0 and count > first:
                    speed = f"{(count - first) / elapsed:,.0f} {unit}/с".replace(",", " ")
            progress.update(task, completed=done_count, speed=speed)
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"«{what}» не завершилось за {timeout:.0f} с")
            time.sleep(0.5)


def say(line: str) -> None:
    """A line of the history on one line, however long (the tests read them)."""
    console.print(line, soft_wrap=True, highlight=False, markup=False)


def _ru_date(iso: str | None) -> str:
    return "…" if not iso else ".".join(reversed(iso.split("-")))


def _get(client: httpx.Client, url: str) -> Any:
    response = client.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


def _all(client: httpx.Client, url: str) -> list[Any]:
    """Every item of a paged list (``{items, total, offset, limit}``), page by page."""
    items: list[Any] = []
    while True:
        joiner = "&" if "?" in url else "?"
        page = _get(client, f"{url}{joiner}offset={len(items)}")
        items += page["items"]
        if not page["items"] or len(items) >= page["total"]:
            return items


PUBLISHED_OVER_HTTP = {
    "diagnostics": (
        "результатов диагностики и анкет потребностей",
        "diagnostics.result.submitted,diagnostics.needs.submitted",
    ),
    "routes": (
        "событий курсов",
        "courses.course.enrolled,courses.course.completed,courses.internship.completed",
    ),
}
"""Service -> (whose key, for people; the event types outside publishers post to it over
``POST /v1/events``, as its ``INGESTS``)."""


def admin_hints(suite: Suite, settings: Path) -> list[str]:
    """What ``iomflow dev`` tells an admin: the admin key, where the suite's settings are,
    and the exact commands that issue a publisher's key on its databases."""
    at_default = settings.resolve() == SETTINGS_FILE.resolve()
    where = "" if at_default else f" --data-dir {suite.data_dir}"
    lines = [
        f"Ключ администратора (все роли во всех сервисах): {suite.admin_key}",
        f"Настройки набора (базы, Redis, ключ) для команд администратора: {settings}",
    ]
    for service, (whose, types) in PUBLISHED_OVER_HTTP.items():
        lines.append(f"Выдать ключ издателя {whose} (POST {suite_url(suite, service)}/v1/events):")
        lines.append(
            f"  uv run iomflow {service} publishers add <код-издателя> --types {types}{where}"
        )
    return lines


@dataclass(frozen=True)
class Person:
    """Someone ``iomflow dev`` signs in as: a key of theirs on one service."""

    service: str
    name: str
    roles: tuple[str, ...]
    person_id: str | None = None


PAGES = (
    ("routes", "/workplace", "Рабочее место методиста"),
    ("registries", "/uploads", "Загрузка реестров"),
    ("monitoring", "/console", "Пульт оператора"),
)
"""The pages for the people inside (service, path, title); each signs in with its key."""


def busiest_methodist(client: httpx.Client, routes: str) -> str | None:
    """The demo's methodist with the most teachers: their workplace has something in it."""
    items = _all(client, f"{routes}/v1/methodists?limit=1000")
    ranked = sorted(items, key=lambda m: (-int(m.get("load", 0)), m["methodist_id"]))
    return ranked[0]["methodist_id"] if ranked else None


def people_keys(suite: Suite, methodist_id: str | None) -> list[tuple[Person, str]]:
    """Keys for the demo's people, written to the services' databases as ``keys add``
    does: a methodist (bound to ``methodist_id``, allowed to see their teachers' names),
    a registrar, an operator."""
    people = [
        Person("registries", "Регистратор (демо)", ("registrar",)),
        Person("monitoring", "Оператор (демо)", ("operator",)),
    ]
    if methodist_id is not None:
        people.insert(
            0,
            Person(
                "routes",
                f"Методист {methodist_id} (демо)",
                ("methodist", "personal_data"),
                methodist_id,
            ),
        )
    return asyncio.run(_issue(suite, people))


async def _issue(suite: Suite, people: Sequence[Person]) -> list[tuple[Person, str]]:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from iomflow.shared import auth

    issued = []
    for person in people:
        tables = importlib.import_module(f"iomflow.{person.service}.repository").tables
        engine = create_async_engine(suite.database_url(person.service))
        try:
            async with AsyncSession(engine) as session, session.begin():
                _, key = await auth.issue(
                    session, tables.api_keys, person.name, person.roles, person.person_id
                )
        finally:
            await engine.dispose()
        issued.append((person, key))
    return issued


def pages_hints(suite: Suite, keys: Sequence[tuple[Person, str]]) -> list[str]:
    """The pages' addresses and the keys to sign in with (each on its own service)."""
    by_service = {person.service: (person, key) for person, key in keys}
    lines = ["Страницы (вход — ключом на странице входа; ключ действует только в своём сервисе):"]
    for service, path, title in PAGES:
        url = f"{suite_url(suite, service)}{path}"
        if service in by_service:
            person, key = by_service[service]
            lines.append(f"  {title}: {url}")
            lines.append(f"    ключ «{person.name}»: {key}")
    lines.append(f"  Панель показателей (без входа): {suite_url(suite, 'monitoring')}/dashboard")
    return lines


def suite_url(suite: Suite, service: str) -> str:
    return suite.services[service].url if service in suite.services else f"<{service}>"


def run(
    *,
    teachers: int,
    workdir: Path,
    redis_url: str | None,
    timeout: float,
    stay: bool,
    region_teachers: int = 40_000,
) -> int:
    workdir = workdir.resolve()
    local = None if redis_url else LocalRedis(workdir / "redis")
    suite: Suite | None = None
    settings = workdir / "suite.json"
    try:
        if local is not None:
            redis_url = local.start()
            console.print(f"Redis запущен: {redis_url} (каталог {local.workdir})")
        assert redis_url is not None
        suite = Suite(
            workdir,
            redis_url,
            extra_env={
                # Under load, sample: 1 % of the bulk traces; the demo's own trace is sampled
                # by its parent (the traceparent we send), whatever the ratio.
                "OTEL_TRACES_SAMPLER": os.environ.get(
                    "OTEL_TRACES_SAMPLER", "parentbased_traceidratio"
                ),
                "OTEL_TRACES_SAMPLER_ARG": os.environ.get("OTEL_TRACES_SAMPLER_ARG", "0.01"),
                # the alerts of the year recorded last are seen within seconds
                "IOMFLOW_ALERT_CHECK_INTERVAL_S": os.environ.get(
                    "IOMFLOW_ALERT_CHECK_INTERVAL_S", "2"
                ),
            },
        )
        console.print(
            "Запуск сервисов: "
            + ", ".join(s for s in ("registries", "diagnostics", "routes", "monitoring"))
            + " …"
        )
        suite.start()
        write_settings(suite, settings)
        console.print(f"Настройки набора для команд администратора: {settings}")
        with httpx.Client() as client:
            return _chain(
                client, suite, redis_url, teachers, workdir, timeout, stay, region_teachers
            )
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        console.print(f"[red]Ошибка:[/red] {exc}")
        console.print(f"Журналы сервисов: {workdir / 'logs'}")
        return 1
    finally:
        # A second Ctrl+C must not leave half-stopped services behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        settings.unlink(missing_ok=True)  # its databases are no longer a running suite's
        if suite is not None:
            suite.stop()
        if local is not None:
            local.stop()


def _chain(
    client: httpx.Client,
    suite: Suite,
    redis_url: str,
    teachers: int,
    workdir: Path,
    timeout: float,
    stay: bool,
    region_teachers: int,
) -> int:
    reg, diag, routes, mon = (
        suite.url(n) for n in ("registries", "diagnostics", "routes", "monitoring")
    )
    generated = region.generate(teachers=region_teachers)
    loaded = region.load(client, reg, generated, suite.admin_key, since=REGISTERS_SINCE)
    year_inputs = YearInputs.of(generated)
    del generated
    if loaded.status_code != 200:
        raise RuntimeError(f"реестры не загружены: {loaded.text[:2000]}")
    received = loaded.json()["received"]
    console.print(
        f"Реестры загружены (записи действуют с {_ru_date(REGISTERS_SINCE.isoformat())}): "
        + ", ".join(f"{k} {v}" for k, v in received.items())
    )

    seen_now = [0]

    def registries_seen() -> tuple[int, bool]:
        d = _get(client, f"{diag}/v1/stats")
        r = _get(client, f"{routes}/v1/stats")
        m = _get(client, f"{mon}/v1/stats")
        seen = min(d["teachers"], r["teachers"], m["teachers"])
        seen_now[0] = seen
        done = (
            seen == received["teachers"]
            and r["methodists"] == received["methodists"]
            and r["programs"] == received["programs"]
        )
        return seen, done

    wait_for(
        "Реестры → локальные модели сервисов",
        received["teachers"],
        registries_seen,
        timeout,
        rate=lambda: (seen_now[0], "педагогов"),
    )

    # Teachers sampled across the whole registry: every municipality, not its first page.
    records: list[dict[str, Any]] = []
    while len(records) < received["teachers"]:
        page = _get(
            client, f"{reg}/v1/registers/teachers/records?limit=1000&offset={len(records)}"
        )["items"]
        if not page:
            break
        records += page
    by_id = {t["teacher_id"]: t for t in records}
    chosen = sample(list(by_id), teachers)
    traced = traced_teacher(chosen)
    bulk = [teacher_id for teacher_id in chosen if teacher_id != traced]

    # An operator opens the year's campaigns (the past ones to load their results, kept
    # elsewhere till now); results name their campaign and are dated inside its window.
    opened = [open_campaign(client, diag, suite.admin_key, wave.body()) for wave in HISTORY]
    say(
        "Кампании года открыты оператором (прошлые — для загрузки их результатов): "
        + "; ".join(
            f"{c['campaign_id']} «{c['name']}» {_ru_date(c['starts_on'])} — "
            f"{_ru_date(c['ends_on'])}"
            for c in opened
        )
        + f"; обязательных инструментов: {len(opened[-1]['required'])}"
    )

    # The bulk: what an outside publisher writes with any Redis client.
    publisher = redisconn.sync_client(redis_url)
    entries = history_entries(bulk)
    answers = needs_entries(chosen)
    _xadd(publisher, entries + answers)
    sat: Counter[str] = Counter(sitting(t)[0].campaign_id for t in bulk)
    sat[CURRENT.campaign_id] += 1  # the traced teacher, today's campaign
    say(
        f"Опубликовано результатов в {Streams.RESULTS_INBOUND}: {len(entries)} "
        f"({len(bulk)} педагогов × {RESULTS_PER_TEACHER} результатов: "
        f"{len(INSTRUMENTS)} инструментов, "
        "экспертная оценка — от двух экспертов); по кампаниям: "
        + ", ".join(f"{w.campaign_id} {sat[w.campaign_id]} ({_months(w.months)})" for w in HISTORY)
    )
    say(
        f"Опубликовано ответов анкеты образовательных потребностей в {Streams.RESULTS_INBOUND}: "
        f"{len(answers)} из {len(chosen)} педагогов (в кампании, в которой педагог проходил "
        "диагностику)"
    )

    # One teacher over HTTP, inside a trace we name, to show it end to end.
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    for body in result_bodies(traced):
        response = client.post(
            f"{diag}/v1/results",
            # by hand, as an operator (a system would use its publisher key)
            headers={"traceparent": traceparent, "Authorization": f"Bearer {suite.admin_key}"},
            json=body,
            timeout=30,
        )
        if response.status_code != 202:
            raise RuntimeError(
                f"результат не принят ({body['instrument']}): "
                f"{response.status_code} {response.text[:2000]}"
            )

    taken = [0]

    def chain_settled() -> tuple[int, bool]:
        d = _get(client, f"{diag}/v1/stats")
        taken[0] = d["results"] + d["held"]
        r = _get(client, f"{routes}/v1/stats")
        m = _get(client, f"{mon}/v1/stats")
        done = (
            d["diagnoses"] == len(chosen)
            and m["diagnosed"] == len(chosen)
            and r["routes"] == d["with_deficits"]
            and m["with_route"] == r["routes"]
            and m["supported"] == r["assigned"]
        )
        return m["diagnosed"], done

    wait_for(
        "Диагностика → маршрут → методист → показатели",
        len(chosen),
        chain_settled,
        timeout,
        rate=lambda: (taken[0], "результатов"),
    )
    diagnoses = diagnosed(client, diag, len(chosen))
    diagnosed_on = {t: d.on for t, d in diagnoses.items()}
    months = Counter(f"{day:%m.%Y}" for day in sorted(diagnosed_on.values()))
    places = {d.municipality_id for d in diagnoses.values()}
    say(
        "История диагностик (по дате доказательств): "
        + ", ".join(f"{month} {n}" for month, n in months.items())
        + f"; месяцев {len(months)}, муниципалитетов {len(places)}"
    )

    # The provider's course completions of the past year, once the routes are there.
    today = datetime.now(IRKUTSK).date()
    teacher_routes = open_routes(client, routes, sorted(places))
    programs = _get(client, f"{reg}/v1/registers/programs/records?limit=1000")["items"]
    routeless = {t for t, d in diagnoses.items() if not d.deficits}
    courses = completions(
        [by_id[t] for t in chosen], teacher_routes, programs, diagnosed_on, today, routeless
    )
    published_at = datetime.now(UTC)
    _xadd(publisher, [c.entry() for c in courses])
    matched = sum(c.in_route for c in courses)
    themes = Counter(t for c in courses if not c.in_route for t in c.themes)
    days = sorted(c.course.on for c in courses)
    say(
        f"Опубликовано завершений курсов в {Streams.COURSES_INBOUND}: {len(courses)} — "
        f"по программам маршрутов {matched}, вне маршрутов {len(courses) - matched} (темы: "
        + ", ".join(f"{t} {n}" for t, n in themes.most_common())
        + (f"); даты {days[0]:%d.%m.%Y} — {days[-1]:%d.%m.%Y}" if days else ")")
    )
    took: dict[str, int] = {}

    def courses_taken() -> tuple[int, bool]:
        for status in ("applied", "unmatched", "held"):
            took[status] = _get(client, f"{routes}/v1/courses?status={status}&limit=1")["total"]
        count = took["applied"] + took["unmatched"]
        return count, took["applied"] >= matched and took["unmatched"] >= len(courses) - matched

    wait_for("Завершения курсов → маршруты", len(courses), courses_taken, timeout)
    say(
        f"Маршруты приняли завершения курсов: по шагам маршрутов {took['applied']}, "
        f"вне маршрутов {took['unmatched']}, отложено {took['held']}"
    )
    for wave in HISTORY[:-1]:
        response = client.post(
            f"{diag}/v1/campaigns/{wave.campaign_id}/close",
            headers={"Authorization": f"Bearer {suite.admin_key}"},
            timeout=60,
        )
        if response.status_code != 200:
            raise RuntimeError(f"кампания {wave.campaign_id} не закрыта: {response.text[:2000]}")
    say("Прошлые кампании закрыты оператором: " + ", ".join(w.campaign_id for w in HISTORY[:-1]))
    published_at = record_year(
        client, suite, year_inputs, {t: by_id[t] for t in chosen}, diagnoses, today
    )

    # Today's KPIs are a snapshot monitoring renews once its projections are quiet: wait
    # for one that has taken the completions' last consequences.
    changed = quiet(lambda: _get(client, f"{mon}/v1/stats"), since=published_at)
    kpis: dict[str, Any] = {}

    def snapshot_renewed() -> tuple[int, bool]:
        kpis.update(_get(client, f"{mon}/v1/kpis"))
        at = datetime.fromisoformat(kpis["computed_at"])
        fresh = not courses or (at if at.tzinfo else at.replace(tzinfo=UTC)) >= changed
        return int(fresh), fresh

    try:
        # Quiet projections are renewed within seconds; while they change, within a minute.
        wait_for("Показатели → снимок на сегодня", 1, snapshot_renewed, min(timeout, 90))
    except TimeoutError:
        console.print(f"[yellow]Снимок показателей не обновился: он на {kpis['computed_at']}[/]")
    print_kpis(kpis)
    print_new_kpis(kpis)

    def alerts_seen() -> tuple[int, bool]:
        # the year leaves a team without a consultation and a plan's action overdue
        seen = {a["kind"] for a in _get(client, f"{mon}/v1/alerts?limit=100")["items"]}
        return len(seen & set(NEW_ALERTS)), {
            "team_without_consultation",
            "plan_action_overdue",
        } <= seen

    try:
        wait_for("Оповещения поддержки вне маршрутов", 2, alerts_seen, 30)
    except TimeoutError:
        console.print("[yellow]Проверка оповещений не успела их поднять за 30 с[/]")
    print_alerts(_get(client, f"{mon}/v1/alerts?limit=100")["items"])
    for code in SERIES:
        print_series(_get(client, f"{mon}/v1/kpis/{code}/series?months=13"))
    teacher_route = _all(client, f"{routes}/v1/teachers/{traced}/routes")
    if teacher_route:
        print_route(_get(client, f"{routes}/v1/routes/{teacher_route[-1]['route_id']}"))
    ok = print_trace(workdir / "traces", trace_id)
    dlq = {
        s: publisher.xlen(Streams.dlq(s))
        for s in (
            Streams.REGISTRY,
            Streams.RESULTS_INBOUND,
            Streams.COURSES_INBOUND,
            Streams.DIAGNOSTICS,
            Streams.ROUTES,
        )
    }
    sizes = ", ".join(f"{Streams.dlq(k)} {v}" for k, v in dlq.items())
    console.print(f"Очереди недоставленных (DLQ): {sizes}")
    if stay:
        console.print("\nСервисы работают (Ctrl+C — остановить):")
        for name, service in suite.services.items():
            console.print(f"  {name:12} {service.url}/docs   {service.url}/health/ready")
        console.print(f"  redis        {redis_url}")
        console.print()
        for line in pages_hints(suite, people_keys(suite, busiest_methodist(client, routes))):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        console.print()
        for line in admin_hints(suite, workdir / "suite.json"):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0 if ok else 1


def _xadd(publisher: Any, entries: Sequence[tuple[str, dict[str, str]]]) -> None:
    for start in range(0, len(entries), 1000):
        pipe = publisher.pipeline(transaction=False)
        for stream, fields in entries[start : start + 1000]:
            pipe.xadd(stream, fields)
        pipe.execute()


def _months(months: Sequence[Month]) -> str:
    (y0, m0), (y1, m1) = months[0], months[-1]
    return f"{m0:02d}–{m1:02d}.{y1}" if y0 == y1 else f"{m0:02d}.{y0}–{m1:02d}.{y1}"


@dataclass(frozen=True)
class Diagnosed:
    """A teacher's diagnosis as the demo's history reads it from diagnostics."""

    on: date
    """The day (Irkutsk time) its latest evidence was taken (``evidence_at``; the day it
    completed if it has none)."""
    municipality_id: str
    deficits: int
    burnout: str | None = None
    """The burnout level of the diagnosis (low, moderate, high), if surveyed."""


def diagnosed(client: httpx.Client, diagnostics_url: str, expected: int) -> dict[str, Diagnosed]:
    """The completed diagnoses by teacher, as diagnostics lists them."""
    found: dict[str, Diagnosed] = {}
    offset = 0
    while offset < expected:
        page = _get(
            client,
            f"{diagnostics_url}/v1/diagnoses?status=completed&limit=1000&offset={offset}",
        )["items"]
        if not page:
            break
        for d in page:
            at = datetime.fromisoformat(d["evidence_at"] or d["completed_at"])
            day = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(IRKUTSK).date()
            level = (d.get("burnout") or {}).get("level")
            found[d["teacher_id"]] = Diagnosed(day, d["municipality_id"], len(d["deficits"]), level)
        offset += len(page)
    return found


def open_routes(
    client: httpx.Client, routes_url: str, municipalities: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The open routes by teacher, read per municipality: a list holds at most 1000, so
    in a municipality of more, some are not read (``completions`` leaves their teachers
    out)."""
    found: dict[str, dict[str, Any]] = {}
    for municipality in municipalities:
        for route in _all(
            client, f"{routes_url}/v1/routes?municipality_id={municipality}&limit=1000"
        ):
            if route["status"] in OPEN_ROUTES:
                found[route["teacher_id"]] = route
    return found


def quiet(
    stats: Callable[[], Any], since: datetime, within: float = 15, still: float = 1.5
) -> datetime:
    """Until ``stats()`` has stayed the same for ``still`` seconds (at most ``within``): the
    events the last step caused have been taken downstream. Returns a moment no later than
    the last change it saw (``since`` when it saw none): what was computed after it has
    taken that change."""
    deadline = time.monotonic() + within
    asked = datetime.now(UTC)
    last, steady, mark = stats(), time.monotonic(), since
    while time.monotonic() < deadline and time.monotonic() - steady < still:
        time.sleep(0.5)
        before, asked = asked, datetime.now(UTC)
        now = stats()
        if now != last:  # changed after the look before this one began
            last, steady, mark = now, time.monotonic(), before
    return mark


STATUS = {
    "met": "[green]достигнут[/]",
    "on_track": "[green]в графике[/]",
    "at_risk": "[yellow]под угрозой[/]",
    "missed": "[red]не достигнут[/]",
    "no_data": "нет данных",
}


SERIES = ("diagnosed_share", "route_share", "updated_fgos_share", "functional_literacy_share")
"""KPIs the demo prints month by month over its year (``/v1/kpis/{code}/series``)."""


def print_series(series: dict[str, Any]) -> None:
    """One KPI month by month, on one line."""
    points = ", ".join(
        f"{_ru_date(p['on'])[:6]}{p['on'][2:4]} " + kpi_words.number(p["value"])
        for p in series["points"]
    )
    say(f"«{series.get('name') or series['code']}» по месяцам: {points}")


def print_kpis(kpis: dict[str, Any]) -> None:
    table = Table(title=f"Показатели РС НМС — демонстрационный регион (на {kpis['as_of'][:19]})")
    for column in ("показатель", "значение", "цель", "статус", "период"):
        table.add_column(column)
    municipalities = kpis["municipalities"]
    for kpi in kpis["region"]["kpis"]:
        value = kpi_words.amount(kpi["value"], kpi["unit"])
        then = kpi.get("at_deadline")
        if (kpi.get("period") or {}).get("passed") and then:
            # a total past its deadline is judged by its value then
            was = kpi_words.amount(then["value"], kpi["unit"])
            value = f"{was} на {_ru_date(then['on'])} (сейчас {value})"
        period = (kpi.get("period") or {}).get("label", "")
        status = STATUS.get(kpi["status"], kpi_words.status_name(kpi["status"]))
        table.add_row(kpi["name"], value, target_words(kpi), status, period)
    console.print(table)
    counts = kpis["region"]["counts"]
    console.print(
        f"Педагогов {counts['teachers']}, прошли диагностику {counts['diagnosed']}, "
        f"с маршрутом {counts['with_route']}, с методистом {counts['supported']}; "
        f"муниципалитетов {len(municipalities)}"
    )


def print_route(route: dict[str, Any]) -> None:
    """One route as a methodist sees it: every step with its dates and reason, in words
    (``iomflow.routes.wording``): competency names, step kinds and who still has to agree."""
    table = Table(
        title=f"ИОМ педагога {route['teacher_id']}: {route['total_hours']} ч, "
        f"{_ru_date(route['starts_on'])} — {_ru_date(route['ends_on'])}, "
        f"методист {route['methodist_id'] or '— (в очереди)'}",
        show_lines=True,
    )
    for column in ("шаг", "вид", "компетенция", "часы", "сроки", "почему"):
        table.add_column(column)
    for step in route["steps"]:
        table.add_row(
            step["step_id"],
            wording.kind(step["kind"]),
            wording.competency(step["competency"]),
            str(step["hours"]),
            f"{_ru_date(step['starts_on'])} — {_ru_date(step['ends_on'])}",
            step["reason"],
        )
    console.print(table)
    missing = route.get("missing_approvals", [])
    console.print(
        "Часы по годам: "
        + ", ".join(f"{year}: {hours} ч" for year, hours in route["hours_by_period"].items())
        + (
            "; ждёт согласования: " + ", ".join(wording.role(r) for r in missing)
            if missing
            else f"; маршрут {wording.status(route.get('status', 'agreed'))}"
        )
    )


def print_trace(traces_dir: Path, trace_id: str, wait_s: float = 15) -> bool:
    """Print one trace's spans in order as a tree; True when it reaches every service."""
    wanted = {"diagnostics", "routes", "monitoring"}
    deadline = time.monotonic() + wait_s
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = [s for s in read_spans(traces_dir) if s["trace_id"] == trace_id]
        if wanted <= {str(s["service"]) for s in spans} and _settled(spans):
            break
        time.sleep(0.5)
    services = {str(s["service"]) for s in spans}
    console.print()
    for line in trace.header(trace_id, spans):
        console.print(line, markup=False, highlight=False)
    for line in trace.tree_lines(spans):
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"Та же трасса позже: iomflow trace {trace_id} --traces-dir {traces_dir}")
    missing = wanted - services
    if missing:
        console.print(f"[red]В трассе нет спанов сервисов: {', '.join(sorted(missing))}[/red]")
    return not missing


def _settled(spans: list[dict[str, Any]]) -> bool:
    names = {str(s["name"]) for s in spans if s["service"] == "monitoring"}
    return any(Streams.ROUTES in n for n in names)
