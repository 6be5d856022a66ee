"""The demo's year of support outside a route (issue 16), built from the demo region and
its diagnoses, and recorded over the services' APIs as the people doing it would.

Pure builders first (deterministic from ids and the day the demo runs): the year's
activities with their attendance (regional events, a consultation a month for the School of
the Ministry teams — one team left a month without one, so that its alert shows —, the
communities' meetings, burnout prevention webinars), teachers' needs answers (sent on the
results' inbound stream beside their results), the practices' course (reviews, inclusions,
replications, new submissions) and support plans for a few flagged schools, one action
overdue. Then ``record``: the activities as one spreadsheet (``POST /v1/activities/imports``,
one request, recorded in one transaction) and two over ``POST /v1/activities``, the
practices' steps on registries, the plans on routes.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx

from iomflow.registries.tabular import write_xlsx
from iomflow.routes.domain.activities import COMPARED
from iomflow.shared import wire
from iomflow.shared.contracts import NeedsSubmitted, Streams, new_event

Row = dict[str, Any]
Month = tuple[int, int]
IRKUTSK = timezone(timedelta(hours=8))

ACTIVITY_COLUMNS = ("activity_id", *COMPARED, "attendees")
"""The activities spreadsheet's columns, named by their codes (the import takes a code or
the Russian title): an activity's own fields (routes' ``COMPARED``) between its id and its
attendees."""

REGIONAL_EVENTS = (
    (
        "event",
        "Августовская педагогическая конференция Иркутской области",
        ("teaching_methods",),
        ("updated_fgos",),
    ),
    (
        "seminar",
        "Региональный семинар «Функциональная грамотность: от диагностики к уроку»",
        ("functional_literacy",),
        ("functional_literacy",),
    ),
    (
        "event",
        "Региональный форум «Наставничество в образовании Приангарья»",
        ("communication", "psych_pedagogy"),
        ("management",),
    ),
    (
        "seminar",
        "Региональный методический день «Оценивание образовательных результатов»",
        ("assessment",),
        ("quality_assessment",),
    ),
    ("event", "Фестиваль эффективных педагогических практик", ("teaching_methods",), ()),
    (
        "seminar",
        "Региональный семинар «Цифровая образовательная среда школы»",
        ("digital",),
        ("digital_environment",),
    ),
)
"""The regional events of the year, one every other month (roadmap item 34: at least 4)."""

CONSULTATION_TOPICS = (
    (
        "Анализ результатов самодиагностики школы по модели «Школа Минпросвещения России»",
        ("assessment",),
        ("management", "quality_assessment"),
    ),
    (
        "Магистральное направление «Знание»: функциональная грамотность",
        ("functional_literacy",),
        ("functional_literacy",),
    ),
    (
        "Магистральное направление «Воспитание»: рабочая программа воспитания",
        ("upbringing",),
        ("upbringing",),
    ),
    (
        "Магистральное направление «Учитель. Школьная команда»: развитие кадров",
        ("communication",),
        ("management",),
    ),
    (
        "Магистральное направление «Образовательная среда»: ФГИС «Моя школа»",
        ("digital",),
        ("digital_environment",),
    ),
    (
        "Магистральное направление «Профориентация»: профориентационный минимум",
        ("career_guidance",),
        ("career_guidance",),
    ),
)
WEBINAR = (
    "Вебинар «Профилактика профессионального выгорания: ресурсы педагога»",
    ("psych_pedagogy", "communication"),
    ("burnout_prevention",),
)
REVIEWS = {
    "include": "Практика результативна и воспроизводима: рекомендована к включению в банк",
    "revise": "Опишите результаты обучающихся до и после: практика возвращена на доработку",
    "reject": "Результаты практики не подтверждены данными: в банк не рекомендована",
}
PREVENTION_SHARE = 0.7
"""Of the teachers with a high burnout level: how many attend a prevention webinar after
their diagnosis."""
NEEDS_SHARE = 0.75
"""Of the diagnosed teachers: how many answer the needs questionnaire."""
NEED_THEMES = {
    "functional_literacy": "functional_literacy",
    "digital": "digital_environment",
    "assessment": "quality_assessment",
    "upbringing": "upbringing",
    "career_guidance": "career_guidance",
    "gifted_children": "gifted_children",
    "updated_fgos": "updated_fgos",
    "subject_content": "subject",
    "management_quality": "management",
    "management_staff": "management",
    "management_strategy": "management",
    "preschool_environment": "preschool_quality",
}
NEED_FORMATS = (
    "course",
    "internship",
    "mentoring",
    "community",
    "consultation",
    "seminar",
    "webinar",
)
NEED_FORMAT_WEIGHTS = (30, 10, 10, 10, 15, 15, 10)


def months_of_year(today: date) -> list[Month]:
    """The demo's year of activities: the twelve months before this one, and this one."""
    index = today.year * 12 + today.month - 1
    return [((index - n) // 12, (index - n) % 12 + 1) for n in range(12, -1, -1)]


def _day(month: Month, rng: random.Random, today: date, first: int = 3, last: int = 26) -> date:
    """A day of ``month`` before ``today`` (``today`` itself on this month's first day)."""
    if month == (today.year, today.month):
        return today.replace(day=rng.randint(1, max(1, today.day - 1)))
    return date(*month, rng.randint(first, last))


def _activity(
    activity_id: str,
    kind: str,
    title: str,
    held_on: date,
    attendees: Iterable[str],
    competencies: Sequence[str] = (),
    themes: Sequence[str] = (),
    **fields: Any,
) -> Row:
    return {
        "activity_id": activity_id,
        "kind": kind,
        "title": title,
        "level": fields.pop("level", "regional"),
        "organiser_id": fields.pop("organiser_id", "cnppm"),
        "format": fields.pop("format", "distance"),
        "held_on": held_on.isoformat(),
        "hours": fields.pop("hours", 2),
        "municipality_id": None,
        "organization_id": None,
        "competencies": list(competencies),
        "themes": list(themes),
        "target": "teachers",
        "team_id": None,
        "community_id": None,
        "project": None,
        **fields,
        "attendees": sorted(set(attendees)),
    }


def left_out(teams: Sequence[Mapping[str, Any]], today: date) -> tuple[str, Month] | None:
    """The School of the Ministry team that goes a month without a consultation, and since
    when: the last team, from the last whole month on (none since, so its alert stays)."""
    if not teams:
        return None
    return str(teams[-1]["team_id"]), months_of_year(today)[-2]


def activities(
    teams: Sequence[Mapping[str, Any]],
    communities: Sequence[Mapping[str, Any]],
    teachers: Mapping[str, Mapping[str, Any]],
    diagnosed_on: Mapping[str, date],
    high_burnout: Collection[str],
    today: date,
) -> list[Row]:
    """The year's activities and who attended them, deterministic. ``teachers``: the
    diagnosed teachers by id (their registry rows); ``diagnosed_on``: when each one's
    evidence was taken; ``high_burnout``: those diagnosed with a high burnout level."""
    months = months_of_year(today)
    ids = sorted(teachers)
    rows: list[Row] = []
    rng = random.Random(f"activities:{today.isoformat()}")
    # Regional events, every other month of the year.
    for n, (kind, title, codes, themes) in enumerate(REGIONAL_EVENTS):
        month = months[1 + 2 * n]
        held = _day(month, rng, today)
        crowd = rng.sample(ids, min(len(ids), rng.randint(25, 60)))
        rows.append(
            _activity(
                f"rev-{month[0]}-{month[1]:02d}",
                kind,
                title,
                held,
                crowd,
                codes,
                themes,
                format="mixed",
                hours=6,
            )
        )
    # A consultation a month for every School of the Ministry team, but one team from the
    # last whole month on.
    skipped = left_out(teams, today)
    for team in teams:
        for n, month in enumerate(months):
            if skipped and team["team_id"] == skipped[0] and month >= skipped[1]:
                continue
            title, codes, themes = CONSULTATION_TOPICS[n % len(CONSULTATION_TOPICS)]
            rows.append(
                _activity(
                    f"smc-{team['team_id']}-{month[0]}-{month[1]:02d}",
                    "consultation",
                    title,
                    _day(month, rng, today),
                    team["members"],
                    codes,
                    themes,
                    organization_id=team["organization_id"],
                    municipality_id=team["municipality_id"],
                    target="school_team",
                    team_id=team["team_id"],
                    project="school_of_ministry",
                )
            )
    # The communities' meetings: each a few times a year, its own municipality's teachers.
    by_place: dict[str | None, list[str]] = {}
    for teacher_id in ids:
        by_place.setdefault(teachers[teacher_id]["municipality_id"], []).append(teacher_id)
    for community in communities:
        place = community.get("municipality_id")
        members = by_place.get(place, []) if place else ids
        if not members:
            continue
        for month in sorted(rng.sample(months[:-1], rng.randint(2, 4))):
            rows.append(
                _activity(
                    f"cm-{community['community_id']}-{month[0]}-{month[1]:02d}",
                    "community_meeting",
                    f"Встреча сообщества «{community['title']}»",
                    _day(month, rng, today),
                    rng.sample(members, min(len(members), rng.randint(3, 12))),
                    community.get("competencies", []),
                    community.get("themes", []),
                    level="regional" if place is None else "municipal",
                    organiser_id="cnppm" if place is None else place,
                    municipality_id=place,
                    target="community",
                    community_id=community["community_id"],
                )
            )
    # Burnout prevention webinars, each quarter and this month: a teacher of a high burnout
    # level takes the first one after their diagnosis (most do), a few others too.
    title, codes, themes = WEBINAR
    webinars = [(month, _day(month, rng, today)) for month in (*months[1::3], months[-1])]
    attendees: dict[Month, set[str]] = {month: set() for month, _ in webinars}
    for teacher_id in sorted(high_burnout):
        pick = random.Random(f"{teacher_id}:prevention")
        after = [m for m, held in webinars if held >= diagnosed_on.get(teacher_id, held)]
        if after and pick.random() < PREVENTION_SHARE:
            attendees[after[0]].add(teacher_id)
    for month, held in webinars:
        others = rng.sample(ids, min(len(ids), rng.randint(5, 15)))
        rows.append(
            _activity(
                f"bpw-{month[0]}-{month[1]:02d}",
                "webinar",
                title,
                held,
                attendees[month] | set(others),
                codes,
                themes,
                hours=2,
            )
        )
    return sorted(rows, key=lambda r: (r["held_on"], r["activity_id"]))


def activities_xlsx(rows: Sequence[Row]) -> bytes:
    """The activities as the import takes them: one row each, lists joined with «;»."""

    def cell(value: Any) -> Any:
        if isinstance(value, list):
            return "; ".join(value)
        return value

    return write_xlsx(
        [
            (
                "Мероприятия",
                list(ACTIVITY_COLUMNS),
                [[cell(r[c]) for c in ACTIVITY_COLUMNS] for r in rows],
            )
        ]
    )


# --- needs answers ------------------------------------------------------------------------


def needs_for(
    teacher_id: str, ability: Mapping[str, float], campaign_id: str, answered_at: datetime
) -> NeedsSubmitted | None:
    """A teacher's needs answer (most teachers give one): what they ask to learn — their
    weakest competencies as they see them —, the themes of those and the formats wanted."""
    rng = random.Random(f"{teacher_id}:needs")
    if rng.random() >= NEEDS_SHARE:
        return None
    weakest = sorted(ability, key=lambda code: ability[code] + rng.gauss(0, 6))[: rng.randint(1, 3)]
    themes = sorted({NEED_THEMES[c] for c in weakest if c in NEED_THEMES})
    if rng.random() < 0.15:
        themes.append("burnout_prevention")
    formats = sorted(
        set(rng.choices(NEED_FORMATS, weights=NEED_FORMAT_WEIGHTS, k=2)), key=NEED_FORMATS.index
    )
    return NeedsSubmitted(
        teacher_id=teacher_id,
        campaign_id=campaign_id,
        external_id=f"{campaign_id}:{teacher_id}:needs",
        answered_at=answered_at,
        competencies=weakest,
        themes=themes,
        formats=formats,
    )


def needs_entry(answer: NeedsSubmitted, source: str = "demo-survey") -> tuple[str, dict[str, str]]:
    """A needs answer as the survey platform publishes it on the results' inbound stream."""
    event = new_event(
        "diagnostics.needs.submitted", answer, source=source, subject=answer.teacher_id
    )
    return Streams.RESULTS_INBOUND, wire.encode(event)


# --- the practices' course ----------------------------------------------------------------


@dataclass
class PracticeSteps:
    """What the bank's council and the schools do with practices over the API."""

    reviews: list[tuple[str, Row]] = field(default_factory=list)  # (practice id, review body)
    inclusions: list[tuple[str, Row]] = field(default_factory=list)
    replications: list[tuple[str, Row]] = field(default_factory=list)
    submissions: list[Row] = field(default_factory=list)


def practice_steps(
    practices: Sequence[Mapping[str, Any]],
    organizations: Sequence[Mapping[str, Any]],
    reviewers: Sequence[str],
    authors: Mapping[str, Sequence[str]],
    today: date,
    count: int = 6,
) -> PracticeSteps:
    """Reviews of practices waiting for one (most included, one sent back, one rejected),
    the inclusion of those and of the reviewed ones, replications of included ones in
    organisations of the same kind, and a few new submissions. ``authors``: teachers by
    organisation."""
    rng = random.Random(f"practices:{today.isoformat()}")
    steps = PracticeSteps()
    yesterday = today - timedelta(days=1)
    on = (today - timedelta(days=3)).isoformat()
    waiting = [p for p in practices if p["status"] == "submitted"][:count]
    verdicts = ["include"] * max(0, len(waiting) - 2) + ["revise", "reject"][: len(waiting)]
    if not reviewers:
        return steps
    for practice, verdict in zip(waiting, verdicts, strict=True):
        reviewer = rng.choice([r for r in reviewers if r != practice.get("author_id")] or reviewers)
        body = {
            "reviewed_by": reviewer,
            "verdict": verdict,
            "review": REVIEWS[verdict],
            "on": on,
        }
        steps.reviews.append((practice["practice_id"], body))
        if verdict == "include":
            steps.inclusions.append((practice["practice_id"], {"on": yesterday.isoformat()}))
    for practice in [p for p in practices if p["status"] == "reviewed"][:count]:
        steps.inclusions.append((practice["practice_id"], {"on": yesterday.isoformat()}))
    kinds = {o["organization_id"]: o["kind"] for o in organizations}
    for practice in [p for p in practices if p["status"] == "included"][:count]:
        own = practice["organization_id"]
        fitting = [
            o for o in organizations if o["kind"] == kinds[own] and o["organization_id"] != own
        ]
        if not fitting:
            continue
        there = rng.choice(fitting)
        by = authors.get(there["organization_id"], [])
        steps.replications.append(
            (
                practice["practice_id"],
                {
                    "organization_id": there["organization_id"],
                    "by": rng.choice(by) if by else None,
                    "on": yesterday.isoformat(),
                },
            )
        )
    template = [p for p in practices if p["status"] in ("included", "replicated")][: count // 2]
    for n, practice in enumerate(template):
        own = authors.get(practice["organization_id"], [])
        steps.submissions.append(
            {
                "practice_id": f"prc-demo-{today.year}-{n + 1:02d}",
                "title": f"{practice['title']}: опыт {today.year} года",
                "organization_id": practice["organization_id"],
                "municipality_id": practice["municipality_id"],
                "competencies": list(practice["competencies"]),
                "themes": list(practice["themes"]),
                "year": today.year,
                "author_id": own[0] if own else None,
                "submitted_on": on,
            }
        )
    return steps


# --- support plans ------------------------------------------------------------------------

PLAN_ACTIONS = (
    (
        "consultation",
        "Выездная консультация управленческой команды по результатам оценочных процедур",
        -90,
        True,
    ),
    ("activity", "Методический семинар для педагогов школы: анализ дефицитов", -45, True),
    ("internship", "Стажировка учителей на стажировочной площадке", -10, False),
    ("mentoring", "Закрепление наставников за молодыми педагогами школы", 60, False),
)
"""(kind, title, due in days from today, done): the first plan's third action is overdue."""


def plans(
    organizations: Sequence[Mapping[str, Any]],
    methodists: Sequence[Mapping[str, Any]],
    today: date,
    count: int = 4,
) -> list[tuple[Row, list[tuple[str, str]]]]:
    """Support plans for the first few schools with low results: the plan's body for
    ``POST /v1/plans`` and the actions to mark done (action id, day done). Every plan's
    past actions are done but the first plan's internship, overdue."""
    flagged = [o for o in organizations if o["kind"] == "school" and o["low_results"]][:count]
    out: list[tuple[Row, list[tuple[str, str]]]] = []
    for n, school in enumerate(flagged):
        serving = [m for m in methodists if school["municipality_id"] in m["municipalities"]]
        methodist = (
            serving or [m for m in methodists if not m["municipalities"]] or list(methodists)
        )[0]
        plan_id = f"plan-{school['organization_id']}"
        actions, done = [], []
        for i, (kind, title, due, finished) in enumerate(PLAN_ACTIONS):
            action_id = f"{plan_id}-{i + 1}"
            due_on = today + timedelta(days=due)
            actions.append(
                {"action_id": action_id, "kind": kind, "title": title, "due_on": due_on.isoformat()}
            )
            if finished or (due < 0 and n > 0):
                done.append((action_id, (due_on - timedelta(days=2)).isoformat()))
        body = {
            "plan_id": plan_id,
            "organization_id": school["organization_id"],
            "methodist_id": methodist["methodist_id"],
            "starts_on": (today - timedelta(days=120)).isoformat(),
            "actions": actions,
        }
        out.append((body, done))
    return out


# --- recording it -------------------------------------------------------------------------


@dataclass
class Recorded:
    activities: int = 0
    attendances: int = 0
    completed_steps: int = 0
    reviews: int = 0
    inclusions: int = 0
    replications: int = 0
    submissions: int = 0
    plans: int = 0
    overdue: int = 0


def _ok(response: httpx.Response, what: str, statuses: Collection[int] = (200, 201)) -> Any:
    if response.status_code not in statuses:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:2000]}")
    return response.json()


def record(
    client: httpx.Client,
    routes_url: str,
    registries_url: str,
    key: str,
    year: Sequence[Row],
    steps: PracticeSteps,
    support_plans: Sequence[tuple[Row, list[tuple[str, str]]]],
) -> Recorded:
    """Record the year: the activities but the last two as one spreadsheet upload, those two
    over ``POST /v1/activities``; the practices' course on registries; the plans on routes."""
    auth = {"Authorization": f"Bearer {key}"}
    done = Recorded()
    uploaded, posted = list(year[:-2]), list(year[-2:])
    if uploaded:
        answer = client.post(
            f"{routes_url}/v1/activities/imports",
            files={
                "file": ("activities.xlsx", activities_xlsx(uploaded), "application/octet-stream")
            },
            headers=auth,
            timeout=300,
        )
        _ok(answer, "мероприятия не загружены")
    for row in posted:
        body = {k: v for k, v in row.items() if v is not None}
        read = _ok(
            client.post(f"{routes_url}/v1/activities", json=body, headers=auth, timeout=60),
            "мероприятие не записано",
        )
        done.completed_steps += len(read.get("completed_steps", []))
    done.activities = len(year)
    done.attendances = sum(len(r["attendees"]) for r in year)
    practices = f"{registries_url}/v1/practices"
    for step, moves, failed in (
        ("review", steps.reviews, "практика {} не рассмотрена"),
        ("include", steps.inclusions, "практика {} не включена в банк"),
        ("replications", steps.replications, "тиражирование практики {} не записано"),
    ):
        for practice_id, body in moves:
            url = f"{practices}/{practice_id}/{step}"
            _ok(client.post(url, json=body, headers=auth, timeout=30), failed.format(practice_id))
    done.reviews, done.inclusions = len(steps.reviews), len(steps.inclusions)
    done.replications = len(steps.replications)
    for body in steps.submissions:
        _ok(
            client.post(practices, json=body, headers=auth, timeout=30),
            f"практика {body['practice_id']} не подана",
        )
        done.submissions += 1
    for body, finished in support_plans:
        _ok(
            client.post(f"{routes_url}/v1/plans", json=body, headers=auth, timeout=30),
            f"план {body['plan_id']} не принят",
        )
        for action_id, on in finished:
            url = f"{routes_url}/v1/plans/{body['plan_id']}/actions/{action_id}/done"
            _ok(
                client.post(url, json={"done_on": on}, headers=auth, timeout=30),
                f"действие {action_id} не отмечено",
            )
        done.plans += 1
        due = {a["action_id"]: a["due_on"] for a in body["actions"]}
        finished_ids = {a for a, _ in finished}
        today = datetime.now(IRKUTSK).date().isoformat()
        done.overdue += sum(1 for a, d in due.items() if a not in finished_ids and d < today)
    return done
