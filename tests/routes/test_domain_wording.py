"""Words, not codes, in what a person reads of a route: the steps' reasons drafted for the
demo region's teachers and the demo's printout of a route name competencies, audiences,
levels, formats, step kinds and roles in Russian (``iomflow.routes.wording``), and the
competency names are the diagnostics framework's. Pure domain, no I/O."""

from __future__ import annotations

import json
import re
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import pytest
from rich.console import Console

from iomflow.cli import demo as cli_demo
from iomflow.cli import region as demo
from iomflow.diagnostics import domain as diagnostics
from iomflow.registries.domain import teacher_event_of
from iomflow.registries.personal import PERSONAL_FIELDS
from iomflow.routes import domain, drafting, wording
from iomflow.routes.domain import (
    Catalogue,
    CommunityView,
    Draft,
    MentorView,
    MethodistView,
    ProgramView,
    SiteView,
    TeacherView,
    TutorView,
)
from iomflow.shared.contracts import (
    Audience,
    CompetencyResult,
    Level,
    ProgramUpserted,
    SiteLevel,
    StepKind,
)

RULES = domain.load_rules()
START = date(2026, 12, 7)
LATIN = re.compile(r"[A-Za-z_]{2,}")
"""A code: two or more Latin letters (or underscores) in a row. The registers' titles and
the competency names are in Cyrillic (ФГОС, ДОО, ОВЗ, ЦНППМ, ДПП are Russian
abbreviations), so no Latin word in a reason is a proper name: none is allowed."""
PSEUDONYMOUS_IDS = re.compile(r"\b(?:t-\d{6}|met-\d{3})\b")
"""The only Latin the printout may show: the teacher's and the methodist's pseudonymous ids
in the table's title — the routes service knows no names (152-ФЗ), and an id is how a
methodist finds the route in the API."""


def framework() -> diagnostics.Framework:
    shipped = resources.files("iomflow.diagnostics").joinpath("data/framework.json")
    return diagnostics.load_framework(Path(str(shipped)))


# --- the words themselves ------------------------------------------------------------------


def test_competency_names_are_the_diagnostics_frameworks() -> None:
    """Routes keep their own copy (a service reads no other service's files); it must be the
    framework's list exactly, names and all, so a framework change shows here."""
    path = resources.files("iomflow.routes").joinpath("data/competencies.json")
    ours = json.loads(path.read_text(encoding="utf-8"))
    current = framework()
    assert ours["framework_version"] == current.version
    assert ours["competencies"] == {c.code: c.name for c in current.competencies}
    assert wording.competency("digital") == "Цифровая образовательная среда"


def test_every_code_a_route_carries_has_its_words() -> None:
    assert set(wording.AUDIENCES) == set(Audience)
    assert set(wording.LEVELS) == set(SiteLevel)
    assert set(wording.FORMATS) == set(get_args(ProgramUpserted.model_fields["format"].annotation))
    assert set(wording.KINDS) == set(get_args(StepKind))
    assert set(wording.SEVERITY) == set(Level)
    [roles] = get_args(domain.Rules.model_fields["approvals"].annotation)
    assert set(wording.ROLES) == set(get_args(roles))
    assert set(domain.OPEN) | {"completed", "cancelled", "superseded"} == set(wording.STATUSES)
    assert set(RULES.community.level_order) <= set(wording.LEVELS)
    for words in (wording.AUDIENCES, wording.LEVELS, wording.FORMATS, wording.KINDS):
        assert not any(LATIN.search(w) for w in words.values())


def test_a_code_without_words_is_shown_as_it_is() -> None:
    assert wording.competency("new_competency") == "new_competency"
    assert wording.role("auditor") == "auditor"


# --- the demo region's routes --------------------------------------------------------------


@cache
def region() -> dict[str, list[dict[str, Any]]]:
    return demo.generate()


@cache
def catalogue() -> Catalogue:
    """The offer as the routes service's read models hold it, nobody seated yet."""
    r = region()
    programs = [
        ProgramView(
            p["program_id"],
            p["title"],
            p["hours"],
            p["federal_registry"],
            tuple(p["competencies"]),
            tuple(p["audiences"]),
            p["format"],
            tuple(p["subjects"]),
        )
        for p in r["programs"]
    ]
    return Catalogue(
        programs=programs,
        sites=[
            SiteView(
                s["site_id"],
                s["title"],
                s["municipality_id"],
                tuple(s["competencies"]),
                s["capacity"],
            )
            for s in r["internship_sites"]
        ],
        mentors=[
            MentorView(
                m["mentor_id"],
                m["organization_id"],
                m["municipality_id"],
                tuple(m["subjects"]),
                m["capacity"],
            )
            for m in r["mentors"]
        ],
        communities=[
            CommunityView(
                c["community_id"],
                c["title"],
                c["level"],
                c["municipality_id"],
                tuple(c["subjects"]),
                tuple(c["competencies"]),
            )
            for c in r["communities"]
        ],
        tutors=[
            TutorView(
                t["tutor_id"],
                tuple(t["specialisations"]),
                tuple(t["programs"]),
                tuple(t["municipalities"]),
                t["capacity"],
            )
            for t in r["tutors"]
        ],
        by_competency=domain.index_programs(programs),
        rank_cache={},
    )


def teacher_view(row: dict[str, Any]) -> TeacherView:
    """The teacher as the routes service learns it from ``registry.teacher.upserted``."""
    remote = {m["municipality_id"]: m["remote"] for m in region()["municipalities"]}
    event = teacher_event_of(
        {k: v for k, v in row.items() if k not in PERSONAL_FIELDS}, demo.REFERENCE_DATE
    )
    return TeacherView(
        row["teacher_id"],
        row["organization_id"],
        row["municipality_id"],
        row["audience"],
        tuple(row["subjects"]),
        event.young,
        remote[row["municipality_id"]],
    )


def diagnosed(row: dict[str, Any]) -> list[CompetencyResult]:
    """The teacher's deficits from the demo's own results (``iomflow demo`` publishes
    them), combined by the diagnostics framework's rules."""
    rules = framework()
    evidence = [
        diagnostics.Evidence(
            r.instrument,
            diagnostics.instrument_scores(rules, r.instrument, r.scores, r.items),
            r.external_id,
            seq,
            r.expert_id,
        )
        for seq, r in enumerate(cli_demo.results_for(row["teacher_id"]))
    ]
    applicable = rules.applicable(is_manager=row["is_manager"], audience=Audience(row["audience"]))
    return diagnostics.deficits(diagnostics.combine(rules, evidence, applicable))


def every_deficit(row: dict[str, Any]) -> list[CompetencyResult]:
    """Every competency that applies to the teacher as a deficit, every other one critical:
    each code, internships and the runner-up sentence get written."""
    applicable = framework().applicable(
        is_manager=row["is_manager"], audience=Audience(row["audience"])
    )
    return [
        CompetencyResult(
            code=code, score=10.0 + n, level=Level.CRITICAL if n % 2 == 0 else Level.DEFICIT
        )
        for n, code in enumerate(sorted(applicable))
    ]


@cache
def drafts() -> list[tuple[TeacherView, Draft]]:
    """Routes of the 400 teachers ``iomflow demo`` diagnoses, on their demo diagnoses and
    on every applicable deficit."""
    teachers = {t["teacher_id"]: t for t in region()["teachers"]}
    found = []
    for teacher_id in cli_demo.sample(list(teachers), 400):
        row = teachers[teacher_id]
        view = teacher_view(row)
        for deficits in (diagnosed(row), every_deficit(row)):
            found.append((view, drafting.draft_route(view, deficits, catalogue(), RULES, START)))
    return found


def test_the_demo_regions_routes_give_their_reasons_in_words_not_codes() -> None:
    steps = [s for _, d in drafts() for s in d.steps]
    assert len(drafts()) == 800 and len(steps) > 10_000
    # every kind of step, the runner-up and both deficit levels are among them
    assert {s.kind for s in steps} == set(get_args(StepKind))
    assert any("выбрана вместо следующей по баллам «" in s.reason for s in steps)
    assert any(s.reason.startswith("критический дефицит по компетенции «") for s in steps)
    assert any("уровень) по " in s.reason for s in steps if s.kind == "community")
    coded = {s.reason for s in steps if LATIN.search(s.reason)}
    assert not coded, sorted(coded)[:5]
    # the runner-up is the program passed over, never said to be the better one
    assert not any("лучше «" in s.reason for s in steps)
    named = {wording.competency(s.competency) for s in steps}
    assert all(f"«{name}»" in " ".join(s.reason for s in steps) for name in named)


def test_the_demos_printout_of_a_route_names_competencies_kinds_and_roles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    view, draft = max(drafts(), key=lambda vd: len({s.kind for s in vd[1].steps}))
    methodists = [
        MethodistView(
            m["methodist_id"],
            tuple(m["specialisations"]),
            tuple(m["municipalities"]),
            m["capacity"],
            0,
            tuple(m["subjects"]),
        )
        for m in region()["methodists"]
    ]
    methodist = domain.best_methodist(view, {s.competency for s in draft.steps}, methodists)
    assert methodist is not None
    route = {
        "teacher_id": view.teacher_id,
        "methodist_id": methodist.methodist_id,
        "status": "drafted",
        "total_hours": draft.total_hours,
        "starts_on": draft.starts_on.isoformat() if draft.starts_on else None,
        "ends_on": draft.ends_on.isoformat() if draft.ends_on else None,
        "hours_by_period": draft.hours_by_period,
        "missing_approvals": domain.missing_approvals([], RULES),
        "steps": [s.model_dump(mode="json") for s in draft.steps],
    }
    # wide enough that a competency's name is not cut mid-word
    console = Console(width=200)
    monkeypatch.setattr(cli_demo, "console", console)
    with console.capture() as captured:
        cli_demo.print_route(route)
    out = captured.get()
    assert f"ИОМ педагога {view.teacher_id}" in out
    assert "ждёт согласования: педагог, методист, управленческая команда ОО" in out
    for kind in {s.kind for s in draft.steps}:
        assert wording.kind(kind).split()[0] in out
    coded = LATIN.findall(PSEUDONYMOUS_IDS.sub("", out))
    assert not coded, coded

    agreed = {**route, "status": "agreed", "missing_approvals": []}
    with console.capture() as captured:
        cli_demo.print_route(agreed)
    assert "; маршрут согласован" in captured.get()
