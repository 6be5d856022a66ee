"""The rules' parameters (``data/rules.json``): weights, hours, pace, budget, capacities."""

from __future__ import annotations

import functools
import json
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from iomflow.shared.contracts import (
    Level,
)

# --- rules ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramWeights(_Strict):
    federal_registry: float
    subject_match: float
    format_remote: dict[str, float]
    format_near: dict[str, float]
    per_100_hours: float


class StepHours(_Strict):
    consultation: int = Field(ge=1)
    internship: int = Field(ge=1)
    mentoring: int = Field(ge=1)
    community: int = Field(ge=1)
    post_course_support: int = Field(ge=1)


class Pace(_Strict):
    hours_per_week: int = Field(ge=1)
    parallel_weeks: dict[Literal["mentoring", "community"], int]
    post_course_gap_days: int = Field(ge=0)


class Budget(_Strict):
    yearly_hours: int = Field(ge=1)
    period_starts: str = Field(pattern=r"^\d\d-\d\d$", description="MM-DD of a budget year")

    @model_validator(mode="after")
    def _a_real_day(self) -> Budget:
        self.period_start(2024)  # a leap year: 02-29 passes, 13-45 does not
        return self

    def period_start(self, year: int) -> date:
        return _period_start(self.period_starts, year)


@functools.lru_cache(maxsize=512)
def _period_start(starts: str, year: int) -> date:
    """The day a budget year begins (``MM-DD`` of ``year``): asked for every step paced."""
    month, day = (int(x) for x in starts.split("-"))
    return date(year, month, day)


class InternshipRule(_Strict):
    for_levels: list[Level]


class CommunityRule(_Strict):
    level_order: list[Literal["municipal", "regional", "federal"]]
    per_route: int = Field(ge=0)


class BurnoutRule(_Strict):
    """A prevention step for a high burnout level (roadmap 43–45): a community of the
    burnout_prevention theme or, with none, methodist consultations."""

    for_levels: list[Literal["low", "moderate", "high"]] = Field(min_length=1)
    competency: str = Field(
        min_length=1, description="The framework competency the prevention step works on"
    )
    community_hours: int = Field(ge=1)
    consultation_hours: int = Field(ge=1)


class CompletionRule(_Strict):
    at_end_date: bool = Field(description="A route also completes when its end date passes")
    grace_days: int = Field(ge=0)


class Capacity(_Strict):
    """The seats of one kind of resource: the default a registry record gets, the most."""

    default: int = Field(ge=1, description="Seats when the registry names none")
    most: int | None = Field(
        default=None, ge=1, description="The most seats one may hold; None: no limit"
    )

    @model_validator(mode="after")
    def _default_within(self) -> Capacity:
        if self.most is not None and self.default > self.most:
            raise ValueError("default capacity above the most")
        return self


class Capacities(_Strict):
    """Seats per resource: routes per methodist, learners per tutor, mentees per mentor,
    interns per internship site — the default a registry record gets and the most one may
    hold. The registries' contracts (``MethodistUpserted.capacity`` …) carry them as their
    default and bound, checked against these by a test; the read models keep each
    resource's own capacity, and the seat statement (``repository.save_seats``) never
    takes a load above it."""

    methodist: Capacity
    tutor: Capacity
    mentor: Capacity
    site: Capacity

    def of(self, kind: str) -> Capacity:
        """The rule of a seat kind (``STEP_SEATS``' kinds and "methodist")."""
        found: Capacity = getattr(self, kind)
        return found


class Rules(_Strict):
    """The drafting rules as data (``data/rules.json``), validated at load."""

    version: str
    comment: str = ""
    program_weights: ProgramWeights
    hours: StepHours
    pace: Pace
    budget: Budget
    internship: InternshipRule
    community: CommunityRule
    burnout: BurnoutRule
    approvals: list[Literal["teacher", "methodist", "management"]] = Field(min_length=1)
    completion: CompletionRule
    capacity: Capacities


def load_rules(path: Path | None = None) -> Rules:
    """The rules file: ``path``, or the one shipped with the service."""
    if path is None:
        text = resources.files("iomflow.routes").joinpath("data/rules.json").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return Rules.model_validate(json.loads(text))
