"""The words a person reads for the codes a route carries: competencies, audiences,
levels, formats, step kinds, deficit levels, approval roles and route statuses.

One mapping per idea, used by drafting (the steps' reasons), the lifecycle's messages and
the command line's printout. Competency names are the diagnostics framework's
(``data/competencies.json``, checked against the framework by a test); the rest are the
codes of the shared contracts and the registers. A code with no word here (a newer
framework's competency, say) is shown as it is rather than refused.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources

from iomflow.shared.contracts import Level

AUDIENCES: Mapping[str, str] = {
    "preschool": "педагоги дошкольного образования",
    "general": "педагоги общего образования",
    "college": "педагоги среднего профессионального образования",
}
"""A program's audience (``Audience``), as a category of learners (категория слушателей)."""

LEVELS: Mapping[str, str] = {
    "federal": "федеральный",
    "regional": "региональный",
    "municipal": "муниципальный",
}
"""The level a community (or an innovation site, ``SiteLevel``) works at, to go with
«уровень»."""

FORMATS: Mapping[str, str] = {
    "in_person": "очно",
    "distance": "дистанционно",
    "network": "сетевая форма",
    "internship": "стажировка",
}
"""How a program is delivered."""

KINDS: Mapping[str, str] = {
    "program": "программа",
    "internship": "стажировка",
    "mentoring": "наставничество",
    "community": "сообщество",
    "consultation": "консультации",
    "post_course_support": "посткурсовое сопровождение",
}
"""A route step's kind (``StepKind``)."""

SEVERITY: Mapping[str, str] = {
    Level.CRITICAL: "критический дефицит",
    Level.DEFICIT: "дефицит",
    Level.SUFFICIENT: "достаточный уровень",
    Level.ADVANCED: "продвинутый уровень",
}
"""A competency's level in a diagnosis (``Level``)."""

ROLES: Mapping[str, str] = {
    "teacher": "педагог",
    "methodist": "методист",
    "management": "управленческая команда ОО",
}
"""Who agrees a route (``rules.approvals``): the teacher, the route's regional methodist and
a member of the organisation's management team."""

STATUSES: Mapping[str, str] = {
    "drafted": "составлен",
    "agreed": "согласован",
    "active": "выполняется",
    "completed": "завершён",
    "cancelled": "отменён",
    "superseded": "заменён",
}
"""A route's status."""


@functools.cache
def competency_names() -> Mapping[str, str]:
    """Competency code → name, as the diagnostics framework names them."""
    text = resources.files("iomflow.routes").joinpath("data/competencies.json").read_text("utf-8")
    names: dict[str, str] = json.loads(text)["competencies"]
    return names


def competency(code: str) -> str:
    """The competency's name (its code when the list does not know it)."""
    return competency_names().get(code, code)


def audience(code: str) -> str:
    return AUDIENCES.get(code, code)


def level(code: str) -> str:
    return LEVELS.get(code, code)


def format_of(code: str) -> str:
    return FORMATS.get(code, code)


def kind(code: str) -> str:
    return KINDS.get(code, code)


def severity(code: str) -> str:
    return SEVERITY.get(code, code)


def role(code: str) -> str:
    return ROLES.get(code, code)


def status(code: str) -> str:
    return STATUSES.get(code, code)
