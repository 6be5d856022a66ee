"""Diagnosis rules with no I/O: the framework, scoring instruments, combining evidence into
levels with their explanation, deficits, burnout and the change since the last diagnosis."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from iomflow.shared.contracts import (
    Audience,
    BurnoutResult,
    CompetencyChange,
    CompetencyResult,
    EvidenceUsed,
    Instrument,
    ItemScore,
    Level,
    Theme,
)

SEVERITY = {Level.CRITICAL: 0, Level.DEFICIT: 1, Level.SUFFICIENT: 2, Level.ADVANCED: 3}
Role = Literal["teacher", "manager"]
Rule = Literal["weighted_mean", "highest", "latest", "prioritised"]
SCORED = tuple(i for i in Instrument if i is not Instrument.BURNOUT_SURVEY)
"""Instruments that score competencies; the burnout survey has a scale of its own."""


class Group(BaseModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)


class Competency(BaseModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)
    name: str = Field(min_length=1)
    group: str
    description: str = ""
    basis: str = Field(default="", description="Where it comes from: the standard, its clause")
    roles: list[Role] = Field(default_factory=lambda: list[Role](["teacher"]), min_length=1)
    audiences: list[Audience] = Field(default_factory=lambda: list(Audience), min_length=1)
    themes: list[Theme] = Field(
        default_factory=list, description="Program themes that address this competency"
    )
    weights: dict[Instrument, float] = Field(
        default_factory=dict, description="Instrument weights for this competency only"
    )

    def applies_to(self, *, is_manager: bool, audience: Audience) -> bool:
        """Teacher competencies apply to every teacher, manager ones to management teams."""
        role = "teacher" in self.roles or (is_manager and "manager" in self.roles)
        return role and audience in self.audiences


class LevelBound(BaseModel):
    level: Level
    below: float


class Combination(BaseModel):
    """How one competency's evidence becomes one score; explicit and versioned."""

    rule: Rule = "weighted_mean"
    version: int = Field(default=1, ge=1)
    priority: list[Instrument] = Field(
        default_factory=list, description="For 'prioritised': the first instrument present wins"
    )

    @property
    def label(self) -> str:
        return f"{self.rule}/{self.version}"


class BurnoutBand(BaseModel):
    level: Literal["low", "moderate", "high"]
    below: float


class Burnout(BaseModel):
    """The burnout survey's own scale (0..100 per subscale, higher = more burnout)."""

    scales: dict[str, str] = Field(min_length=1, description="Subscale code -> Russian name")
    bands: list[BurnoutBand] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Burnout:
        bounds = [b.below for b in self.bands]
        if bounds != sorted(bounds) or len({b.level for b in self.bands}) != len(self.bands):
            raise ValueError("burnout bands must be ordered by their upper bound, each once")
        return self


class Framework(BaseModel):
    """A versioned competency framework, loaded from data (never code)."""

    version: str = Field(min_length=1, max_length=40)
    title: str
    basis: list[str] = Field(default_factory=list, description="Documents it is grounded in")
    groups: list[Group] = Field(min_length=1)
    competencies: list[Competency] = Field(min_length=1)
    levels: list[LevelBound] = Field(min_length=1)
    instrument_weights: dict[Instrument, float]
    required_instruments: list[Instrument] = Field(
        min_length=1, description="What a campaign requires unless it says otherwise"
    )
    combination: Combination = Field(default_factory=Combination)
    change_tolerance: float = Field(
        default=5.0, ge=0, description="Score points within one level that count as no change"
    )
    burnout: Burnout

    @model_validator(mode="after")
    def _consistent(self) -> Framework:
        codes = [c.code for c in self.competencies]
        if len(set(codes)) != len(codes):
            raise ValueError("competency codes must be unique")
        groups = {g.code for g in self.groups}
        strays = sorted({c.group for c in self.competencies} - groups)
        if strays:
            raise ValueError(f"competencies refer to undeclared groups: {', '.join(strays)}")
        bounds = [b.below for b in self.levels]
        if bounds != sorted(bounds):
            raise ValueError("levels must be ordered by their upper bound")
        labels = [b.level for b in self.levels]
        if labels != sorted(labels, key=SEVERITY.__getitem__) or len(set(labels)) != len(labels):
            raise ValueError("levels must go from the most severe to advanced, each once")
        if Instrument.BURNOUT_SURVEY in self.instrument_weights:
            raise ValueError("the burnout survey has its own scale and no competency weight")
        for owner, weights in [("framework", self.instrument_weights)] + [
            (c.code, c.weights) for c in self.competencies
        ]:
            negative = [str(i) for i, w in weights.items() if w < 0]
            if negative:
                raise ValueError(f"{owner}: weights must not be negative: {', '.join(negative)}")
        for instrument in self.required_instruments:
            if instrument is not Instrument.BURNOUT_SURVEY and self.weight(instrument) <= 0:
                raise ValueError(f"required instrument {instrument} has no positive weight")
        if self.combination.rule == "prioritised" and not self.combination.priority:
            raise ValueError("the prioritised rule needs a priority list")
        return self

    # Worked out once per framework (scoring asks for them per competency and result); not
    # fields, so neither dumped nor compared.
    @cached_property
    def codes(self) -> frozenset[str]:
        return frozenset(c.code for c in self.competencies)

    @cached_property
    def by_code(self) -> dict[str, Competency]:
        return {c.code: c for c in self.competencies}

    def competency(self, code: str) -> Competency:
        return self.by_code[code]

    def weight(self, instrument: Instrument, code: str | None = None) -> float:
        """The instrument's weight, for one competency when it overrides the framework's."""
        if code is not None:
            return self.weights_of(code).get(instrument, 0.0)
        return self.instrument_weights.get(instrument, 0.0)

    def weights_of(self, code: str) -> Mapping[Instrument, float]:
        """Every instrument's weight for one competency (its own where it sets them)."""
        return self._weights_by_code[code]

    @cached_property
    def _weights_by_code(self) -> dict[str, dict[Instrument, float]]:
        # asked for every piece of evidence of every competency of every diagnosis
        return {c.code: {**self.instrument_weights, **c.weights} for c in self.competencies}

    def applicable(self, *, is_manager: bool, audience: Audience) -> set[str]:
        """Codes that apply to a teacher of this audience (and management team or not)."""
        return {
            c.code
            for c in self.competencies
            if c.applies_to(is_manager=is_manager, audience=audience)
        }

    def level(self, score: float) -> Level:
        """The level of a combined score: the first band whose upper bound exceeds it."""
        for bound in self.levels:
            if score < bound.below:
                return bound.level
        return self.levels[-1].level


def load_framework(path: Path) -> Framework:
    """Read and validate a framework file."""
    return Framework.model_validate(json.loads(path.read_text(encoding="utf-8")))


# --- one result ----------------------------------------------------------------------------


class ResultError(ValueError):
    """A result that breaks the framework: ``code`` for machines, ``detail`` in Russian."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def instrument_scores(
    framework: Framework,
    instrument: Instrument,
    scores: Mapping[str, float],
    items: Sequence[ItemScore] = (),
) -> dict[str, float]:
    """The 0..100 scores of one result, checked against the framework.

    Items count as the share of the points of the items that measure each competency.
    A burnout survey scores the burnout scales, everything else the competencies.
    """
    known: Collection[str] = (
        framework.burnout.scales if instrument is Instrument.BURNOUT_SURVEY else framework.codes
    )
    points: dict[str, tuple[float, float]] = {}
    for item in items:
        got, most = points.get(item.competency, (0.0, 0.0))
        points[item.competency] = (got + item.score, most + item.max_score)
    both = sorted(set(points) & set(scores))
    if both:
        raise ResultError(
            "conflicting_scores",
            "Для компетенций переданы и баллы, и задания: " + ", ".join(both),
        )
    merged = {code: round(100 * got / most, 2) for code, (got, most) in points.items()}
    merged.update(scores)
    unknown = sorted(code for code in merged if code not in known)
    if unknown:
        what = (
            "шкалы опросника выгорания"
            if instrument is Instrument.BURNOUT_SURVEY
            else "компетенции"
        )
        raise ResultError(
            "unknown_scale" if instrument is Instrument.BURNOUT_SURVEY else "unknown_competency",
            f"Коды не входят в {what} рамки {framework.version}: {', '.join(unknown)}",
        )
    return merged


# --- combining evidence --------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One instrument's scores, as stored; ``seq`` orders results by arrival."""

    instrument: Instrument
    scores: Mapping[str, float]
    result_id: str = ""
    seq: int = 0
    expert_id: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.instrument.value, self.expert_id or "", self.result_id)


def current(evidence: Iterable[Evidence]) -> list[Evidence]:
    """The evidence that counts: per instrument (and expert) the latest result — a retake
    replaces the earlier one; each expert's evaluation is kept on its own."""
    latest: dict[tuple[Instrument, str | None], Evidence] = {}
    for e in sorted(evidence, key=lambda e: (e.seq, e.key)):
        if e.instrument is not Instrument.BURNOUT_SURVEY:
            latest[(e.instrument, e.expert_id)] = e
    return sorted(latest.values(), key=lambda e: e.key)


def _weights(
    framework: Framework,
    code: str,
    scored: Sequence[Evidence],
    weights: Mapping[Instrument, float],
) -> list[float]:
    """Raw weights of the evidence for one competency under the framework's rule."""
    rule = framework.combination
    if len(scored) == 1:
        return [1.0]  # one piece of evidence: all of it, whatever the rule
    experts: dict[Instrument, int] = {}
    for e in scored:
        experts[e.instrument] = experts.get(e.instrument, 0) + 1
    # Several experts share their instrument's weight: their mean is the instrument's score.
    shared = [weights[e.instrument] / experts[e.instrument] for e in scored]
    if rule.rule == "weighted_mean":
        return shared
    if rule.rule == "highest":
        best = max(e.scores[code] for e in scored)
        winner = next(i for i, e in enumerate(scored) if e.scores[code] == best)
        return [1.0 if i == winner else 0.0 for i in range(len(scored))]
    if rule.rule == "latest":
        last = max(scored, key=lambda e: (e.seq, e.key))
        return [1.0 if e is last else 0.0 for e in scored]
    # prioritised: the first instrument of the priority list present, then by weight
    order = {instrument: i for i, instrument in enumerate(rule.priority)}
    first = min(
        scored,
        key=lambda e: (order.get(e.instrument, len(order)), -weights[e.instrument]),
    ).instrument
    return [w if e.instrument is first else 0.0 for e, w in zip(scored, shared, strict=True)]


def combine(
    framework: Framework, evidence: Sequence[Evidence], applicable: set[str] | None = None
) -> list[CompetencyResult]:
    """One result per competency that some weighted instrument scored, with its explanation.

    Codes outside the framework (or not applicable to the teacher) are left out; the
    explanation lists every piece of evidence used and its share, which sum to 1.
    """
    used = current(evidence)
    label = framework.combination.label
    results = []
    for competency in framework.competencies:
        code = competency.code
        if applicable is not None and code not in applicable:
            continue
        weights = framework.weights_of(code)
        scored = [e for e in used if code in e.scores and weights.get(e.instrument, 0.0) > 0]
        if not scored:
            continue
        raw = _weights(framework, code, scored, weights)
        total = math.fsum(raw)
        shares = [w / total for w in raw]
        score = round(math.fsum(s * e.scores[code] for s, e in zip(shares, scored, strict=True)), 1)
        results.append(
            CompetencyResult(
                code=code,
                score=score,
                level=framework.level(score),
                rule=label,
                evidence=[
                    EvidenceUsed(
                        instrument=e.instrument,
                        result_id=e.result_id,
                        score=e.scores[code],
                        weight=share,
                        expert_id=e.expert_id,
                    )
                    for e, share in zip(scored, shares, strict=True)
                    if share > 0
                ],
            )
        )
    return results


def deficits(results: Sequence[CompetencyResult]) -> list[CompetencyResult]:
    """Competencies below 'sufficient', most severe (then lowest score) first."""
    found = [r for r in results if is_deficit(r.level)]
    return sorted(found, key=lambda r: (SEVERITY[r.level], r.score, r.code))


def is_deficit(level: Level) -> bool:
    return SEVERITY[level] < SEVERITY[Level.SUFFICIENT]


def is_complete(required: Iterable[Instrument], instruments: set[Instrument]) -> bool:
    """A diagnosis completes when every required instrument has delivered a result."""
    return set(required) <= instruments


def burnout(framework: Framework, scores: Mapping[str, float]) -> BurnoutResult:
    """The burnout index (mean of the subscales given) and its band."""
    index = round(math.fsum(scores.values()) / len(scores), 1)
    level = next((b.level for b in framework.burnout.bands if index < b.below), None)
    return BurnoutResult(
        index=index, level=level or framework.burnout.bands[-1].level, scales=dict(scores)
    )


def changes(
    framework: Framework,
    previous: Sequence[CompetencyResult],
    now: Sequence[CompetencyResult],
) -> list[CompetencyChange]:
    """Each competency against the previous diagnosis: a deficit that reached 'sufficient'
    is closed; a higher (lower) level, or a score moved by at least the framework's
    tolerance within one level, is improved (worse); a competency not assessed before is new.
    """
    before = {r.code: r for r in previous}
    out = []
    for r in now:
        p = before.get(r.code)
        if p is None:
            change = "new"
        elif is_deficit(p.level) and not is_deficit(r.level):
            change = "closed"
        elif SEVERITY[r.level] != SEVERITY[p.level]:
            change = "improved" if SEVERITY[r.level] > SEVERITY[p.level] else "worse"
        elif r.score - p.score >= framework.change_tolerance:
            change = "improved"
        elif p.score - r.score >= framework.change_tolerance:
            change = "worse"
        else:
            change = "unchanged"
        out.append(
            CompetencyChange(
                code=r.code,
                change=change,  # type: ignore[arg-type]
                level=r.level,
                score=r.score,
                previous_level=p.level if p else None,
                previous_score=p.score if p else None,
            )
        )
    return out
