"""What the methodist's workplace reads: routes in words, from the routes' own rows and read
models (programs, internship sites, communities, municipalities) and the people's names
(``iomflow.routes.people``). Plain functions over rows; the HTTP layer is
``iomflow.routes.workplace``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.routes import domain, repository, wording
from iomflow.routes.api import HistoryRead, RouteRead, StepRead
from iomflow.routes.people import Names
from iomflow.shared.problems import Page

STEP_STATUSES = {
    "planned": "запланирован",
    "enrolled": "идёт обучение",
    "done": "выполнен",
    "removed": "удалён",
}
"""A step's status, as the page says it."""

ACTIONS = {
    "drafted": "маршрут составлен",
    "methodist_assigned": "назначен методист",
    "approved": "согласование",
    "activated": "маршрут начат",
    "step_add": "добавлен шаг",
    "step_remove": "удалён шаг",
    "step_replace": "заменён шаг",
    "step_completed": "шаг выполнен",
    "enrolled": "зачисление на курс",
    "course_failed": "итоговая аттестация не пройдена",
    "diagnosis_revised": "диагностика пересмотрена",
    "rebalanced": "маршрут передан другому методисту",
    "completed": "маршрут завершён",
    "cancelled": "маршрут отменён",
    "superseded": "маршрут заменён",
}
"""A history entry's action, as the page says it."""

ACTORS = {
    "routes": "сервис маршрутов",
    "course_event": "сведения о курсе от организатора обучения",
    "internship_event": "сведения о стажировке",
    "operator": "оператор",
}
"""Who acted, when it is not a person."""


# --- what the workplace answers --------------------------------------------------------------


class NamesRead(BaseModel):
    shown: bool = Field(description="Whether people's full names are shown (else pseudonyms)")
    note: str | None = Field(description="Why not, for the page")


class RouteSummaryRead(BaseModel):
    """One line of a list: the route, its teacher and how far it went."""

    route_id: str
    teacher_id: str
    teacher_name: str = Field(description="The full name when shown, else the pseudonym")
    municipality_id: str
    municipality_name: str
    organization_id: str
    methodist_id: str | None
    status: str
    status_name: str
    steps_done: int
    steps_total: int
    total_hours: int
    starts_on: str | None = Field(description="ISO date")
    ends_on: str | None = Field(description="ISO date")
    created_at: str | None = Field(description="ISO date-time")
    missing_approvals: list[str]
    missing_names: list[str]
    competencies: list[str] = Field(description="The steps' competencies, in words")


class MethodistLoadRead(BaseModel):
    capacity: int
    load: int
    free: int


class WorkplaceRead(BaseModel):
    methodist_id: str
    methodist: MethodistLoadRead | None = Field(description="None: not in the registry")
    names: NamesRead
    routes: list[RouteSummaryRead] = Field(description="Every route of the methodist")
    awaiting: list[RouteSummaryRead] = Field(description="Drafted, lacking their approval")
    queue: Page[RouteSummaryRead] = Field(
        description="The first routes no methodist holds, oldest first; total: all waiting"
    )


class StepWordsRead(StepRead):
    kind_name: str
    competency_name: str
    status_name: str | None
    program_title: str | None
    site_title: str | None
    community_title: str | None
    mentor_name: str | None


class HistoryWordsRead(HistoryRead):
    action_name: str | None
    by_name: str | None


class RouteViewRead(RouteRead):
    """A route (``GET /v1/routes/{route_id}``) with its codes said in words."""

    steps: list[StepWordsRead]  # type: ignore[assignment]
    history: list[HistoryWordsRead]  # type: ignore[assignment]
    teacher_name: str
    municipality_name: str
    status_name: str
    steps_done: int
    steps_total: int
    missing_names: list[str]
    competencies: list[str]
    methodist_name: str | None
    mine: bool = Field(description="The route is the caller's own")
    names: NamesRead


class CodeName(BaseModel):
    code: str
    name: str


class ProgramOption(BaseModel):
    program_id: str
    title: str
    hours: int
    format_name: str
    competencies: list[str]
    federal_registry: int


class SiteOption(BaseModel):
    site_id: str
    title: str
    competencies: list[str]


class CommunityOption(BaseModel):
    community_id: str
    title: str
    level: str


class MentorOption(BaseModel):
    mentor_id: str
    name: str | None


class OptionsRead(BaseModel):
    """The choices of the page's step form."""

    competencies: list[CodeName]
    kinds: list[CodeName]
    programs: list[ProgramOption]
    sites: list[SiteOption]
    communities: list[CommunityOption]
    mentors: list[MentorOption]
    names: NamesRead


class Titles:
    """Titles of the catalogue entries a set of routes names, read once."""

    def __init__(self) -> None:
        self.programs: dict[str, str] = {}
        self.sites: dict[str, str] = {}
        self.communities: dict[str, str] = {}
        self.municipalities: dict[str, str] = {}

    @classmethod
    async def of(cls, session: AsyncSession, routes: Iterable[Any]) -> Titles:
        routes = list(routes)
        steps = [step for route in routes for step in route.steps]
        titles = cls()
        titles.programs = await repository.find_titles(
            session, repository.programs, "program_id", (s.get("program_id") for s in steps)
        )
        titles.sites = await repository.find_titles(
            session, repository.sites, "site_id", (s.get("site_id") for s in steps)
        )
        titles.communities = await repository.find_titles(
            session,
            repository.communities,
            "community_id",
            (s.get("community_id") for s in steps),
        )
        titles.municipalities = await repository.find_titles(
            session,
            repository.municipalities,
            "municipality_id",
            (r.municipality_id for r in routes),
            title="name",
        )
        return titles


def people_in(routes: Sequence[Any]) -> dict[str, set[str]]:
    """The pseudonymous ids of the people these routes name, by register."""
    wanted: dict[str, set[str]] = {"teachers": set(), "mentors": set(), "methodists": set()}
    for route in routes:
        wanted["teachers"].add(route.teacher_id)
        if route.methodist_id:
            wanted["methodists"].add(route.methodist_id)
        for step in route.steps:
            if step.get("mentor_id"):
                wanted["mentors"].add(step["mentor_id"])
    return wanted


def person(names: Names, register: str, record_id: str | None) -> str | None:
    """The name to show for a person: their full name when shown, else the pseudonym."""
    if record_id is None:
        return None
    return names.of(register, record_id) or record_id


def step_words(step: dict[str, Any], titles: Titles, names: Names) -> dict[str, Any]:
    """A step as stored, with its codes said in words."""
    return {
        **step,
        "kind_name": wording.kind(step["kind"]),
        "competency_name": wording.competency(step["competency"]),
        "status_name": STEP_STATUSES.get(step.get("status", "planned"), step.get("status")),
        "program_title": titles.programs.get(step.get("program_id") or "", step.get("program_id")),
        "site_title": titles.sites.get(step.get("site_id") or "", step.get("site_id")),
        "community_title": titles.communities.get(
            step.get("community_id") or "", step.get("community_id")
        ),
        "mentor_name": person(names, "mentors", step.get("mentor_id")),
    }


def actor(by: str | None, names: Names) -> str | None:
    if by is None:
        return None
    if by in ACTORS:
        return ACTORS[by]
    return names.of("methodists", by) or names.of("teachers", by) or by


def history_words(entry: dict[str, Any], names: Names) -> dict[str, Any]:
    """A history entry with its action and actor in words."""
    action = ACTIONS.get(entry.get("action", ""), entry.get("action"))
    if entry.get("action") == "approved" and entry.get("role"):
        action = f"согласование: {wording.role(entry['role'])}"
    return {**entry, "action_name": action, "by_name": actor(entry.get("by"), names)}


def summary(route: Any, titles: Titles, names: Names, rules: domain.Rules) -> dict[str, Any]:
    """One line of a list: the route, its teacher and how far it went."""
    live = [s for s in route.steps if s.get("status") != "removed"]
    missing = domain.missing_approvals(route.approvals, rules) if route.status == "drafted" else []
    return {
        "route_id": route.route_id,
        "teacher_id": route.teacher_id,
        "teacher_name": person(names, "teachers", route.teacher_id),
        "municipality_id": route.municipality_id,
        "municipality_name": titles.municipalities.get(
            route.municipality_id, route.municipality_id
        ),
        "organization_id": route.organization_id,
        "methodist_id": route.methodist_id,
        "status": route.status,
        "status_name": wording.status(route.status),
        "steps_done": sum(1 for s in live if s.get("status") == "done"),
        "steps_total": len(live),
        "total_hours": route.total_hours,
        "starts_on": route.starts_on.isoformat() if route.starts_on else None,
        "ends_on": route.ends_on.isoformat() if route.ends_on else None,
        "created_at": route.created_at.isoformat() if route.created_at else None,
        "missing_approvals": missing,
        "missing_names": [wording.role(r) for r in missing],
        "competencies": sorted({wording.competency(s["competency"]) for s in live}),
    }
