"""Diagnosis rules with no I/O: the framework, combining results, levels and deficits."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from iomflow.shared.contracts import CompetencyResult, Instrument, Level

SEVERITY = {Level.CRITICAL: 0, Level.DEFICIT: 1, Level.SUFFICIENT: 2, Level.ADVANCED: 3}


class Competency(BaseModel):
    code: str
    name: str
    group: str


class LevelBound(BaseModel):
    level: Level
    below: float


class Framework(BaseModel):
    """A versioned competency framework, loaded from data (never code)."""

    version: str
    title: str
    competencies: list[Competency] = Field(min_length=1)
    levels: list[LevelBound] = Field(min_length=1)
    instrument_weights: dict[Instrument, float]
    required_instruments: list[Instrument] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Framework:
        bounds = [b.below for b in self.levels]
        if bounds != sorted(bounds):
            raise ValueError("levels must be ordered by their upper bound")
        labels = [b.level for b in self.levels]
        if labels != sorted(labels, key=SEVERITY.__getitem__) or len(set(labels)) != len(labels):
            raise ValueError("levels must go from the most severe to advanced, each once")
        negative = [str(i) for i, w in self.instrument_weights.items() if w < 0]
        if negative:
            raise ValueError(f"instrument weights must not be negative: {', '.join(negative)}")
        for instrument in self.required_instruments:
            if self.instrument_weights.get(instrument, 0) <= 0:
                raise ValueError(f"required instrument {instrument} has no positive weight")
        return self

    @property
    def codes(self) -> set[str]:
        return {c.code for c in self.competencies}

    def level(self, score: float) -> Level:
        """The level of a combined score: the first band whose upper bound exceeds it."""
        for bound in self.levels:
            if score < bound.below:
                return bound.level
        return self.levels[-1].level


def load_framework(path: Path) -> Framework:
    """Read and validate a framework file."""
    return Framework.model_validate(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Evidence:
    """One instrument's scores, as stored."""

    instrument: Instrument
    scores: Mapping[str, float]


def is_complete(framework: Framework, instruments: set[Instrument]) -> bool:
    """A diagnosis completes when every required instrument has delivered a result."""
    return set(framework.required_instruments) <= instruments


def combine(framework: Framework, evidence: Sequence[Evidence]) -> list[CompetencyResult]:
    """Weighted mean per competency over the instruments that scored it.

    Codes outside the framework are ignored; a competency no instrument scored is absent.
    """
    results = []
    for competency in framework.competencies:
        weighted = [
            (framework.instrument_weights.get(e.instrument, 0.0), e.scores[competency.code])
            for e in evidence
            if competency.code in e.scores
        ]
        total = sum(w for w, _ in weighted)
        if total <= 0:
            continue
        score = round(sum(w * s for w, s in weighted) / total, 1)
        results.append(
            CompetencyResult(code=competency.code, score=score, level=framework.level(score))
        )
    return results


def deficits(results: Sequence[CompetencyResult]) -> list[CompetencyResult]:
    """Competencies below 'sufficient', most severe (then lowest score) first."""
    found = [r for r in results if SEVERITY[r.level] < SEVERITY[Level.SUFFICIENT]]
    return sorted(found, key=lambda r: (SEVERITY[r.level], r.score, r.code))
