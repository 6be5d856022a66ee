"""KPI rules with no I/O: the catalogue and how a value compares to its target."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class KpiDefinition(BaseModel):
    code: str
    name: str
    measure: str = Field(description="Which projection measure gives the value")
    unit: str
    comparison: Literal[">=", "<="]
    target: float
    period: str
    clause: str


MEASURES = ("diagnosed_share", "route_share", "methodist_support_share", "methodist_load_max")


class Catalogue(BaseModel):
    source: str
    kpis: list[KpiDefinition] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_measures(self) -> Catalogue:
        unknown = sorted({k.measure for k in self.kpis} - set(MEASURES))
        if unknown:
            raise ValueError(f"unknown measures {', '.join(unknown)}; known: {', '.join(MEASURES)}")
        return self


def load_catalogue(path: Path) -> Catalogue:
    """Read and validate the KPI catalogue file."""
    return Catalogue.model_validate(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Counts:
    """What the projections know of one level (region or municipality)."""

    teachers: int
    diagnosed: int
    with_route: int
    supported: int
    max_load: int


def share(part: int, whole: int) -> float | None:
    """A percentage (unrounded: targets are compared exactly), None for an empty population."""
    return 100.0 * part / whole if whole else None


def measures(counts: Counts) -> dict[str, float | None]:
    """The value of every measure the catalogue may name."""
    return {
        "diagnosed_share": share(counts.diagnosed, counts.teachers),
        "route_share": share(counts.with_route, counts.teachers),
        "methodist_support_share": share(counts.supported, counts.with_route),
        "methodist_load_max": float(counts.max_load),
    }


def met(kpi: KpiDefinition, value: float | None) -> bool | None:
    """Whether the value meets the target; None when there is no value."""
    if value is None:
        return None
    return value >= kpi.target if kpi.comparison == ">=" else value <= kpi.target
