"""Diagnosis rules with no I/O: the framework, scoring instruments, combining evidence into
levels with their explanation, deficits, burnout and the change since the last diagnosis;
the campaign a result is checked against (``Campaign``: its window, target, open or closed)
and the ``Diagnosis`` aggregate (completed from its evidence, revised, cancelled — each
returning the event it causes)."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, Field, TypeAdapter, model_validator

from iomflow.shared.contracts import (
    Audience,
    BurnoutResult,
    CompetencyChange,
    CompetencyResult,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
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

# Enumerations by value: looked up for every result and competency (calling the enum class
# costs microseconds each in Python 3.11).
INSTRUMENTS: dict[str, Instrument] = {i.value: i for i in Instrument}
LEVELS: dict[str, Level] = {level.value: level for level in Level}
AUDIENCES: dict[str, Audience] = {a.value: a for a in Audience}


class Refusal(ValueError):
    """A rule said no: ``code`` for machines, ``detail`` in Russian, ``status`` the HTTP
    status an operator's request gets for it (the use cases raise it as ``Refused``)."""

    def __init__(self, code: str, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.code, self.detail, self.status = code, detail, status


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


class ResultError(Refusal):
    """A result that breaks the framework: ``code`` for machines, ``detail`` in Russian."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code, detail)


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
    framework: Framework, evidence: Sequence[Evidence], applicable: Collection[str] | None = None
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


def utc(moment: datetime) -> datetime:
    """The moment in UTC; one without a zone is UTC already (as SQLite gives it back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- campaigns -----------------------------------------------------------------------------

DEFAULT_CAMPAIGN = "default"
"""The standing campaign: results sent without a campaign (self-diagnosis all year)."""


class Placed(Protocol):
    """Where a teacher works (a row of the registries' read model will do)."""

    @property
    def organization_id(self) -> str: ...
    @property
    def municipality_id(self) -> str: ...


class Teacher(Placed, Protocol):
    """What scoring needs of a teacher: where they work, whom they teach, whether they are
    on a management team."""

    @property
    def audience(self) -> str: ...
    @property
    def is_manager(self) -> bool: ...


def unknown_campaign(campaign_id: str, status: int = 422) -> Refusal:
    """The refusal of a result (422) or a command (404) for a campaign nobody opened."""
    return Refusal("unknown_campaign", f"Кампания «{campaign_id}» не найдена.", status)


def admit(campaign: Campaign | None, campaign_id: str, day: date) -> Campaign:
    """The campaign a result taken on ``day`` counts in: it exists, is open, and the day
    is inside its window (``Campaign.admit``)."""
    if campaign is None:
        raise unknown_campaign(campaign_id)
    campaign.admit(day)
    return campaign


def duplicate_result(source: str, external_id: str) -> Refusal:
    """A publisher's external id names one result: sent again, it changes nothing."""
    return _duplicate("Результат", "принят", "не меняет диагностику", source, external_id)


def _duplicate(what: str, taken: str, effect: str, source: str, external_id: str) -> Refusal:
    """409 ``duplicate_external_id``: ``what`` (taken ``taken``) was sent again."""
    return Refusal(
        "duplicate_external_id",
        f"{what} с внешним идентификатором «{external_id}» от «{source}» уже {taken}; "
        f"повторная отправка {effect}.",
        409,
    )


# --- needs answers ---------------------------------------------------------------------------


def needs_competencies(framework: Framework, competencies: Iterable[str]) -> list[str]:
    """The competencies a needs answer asks for, each once in the order given; refused if
    one is not in the framework (a needs answer scores nothing, but counts by code)."""
    asked = list(dict.fromkeys(competencies))
    unknown = [code for code in asked if code not in framework.codes]
    if unknown:
        raise Refusal(
            "unknown_competency",
            f"Коды не входят в компетенции рамки {framework.version}: {', '.join(unknown)}",
        )
    return asked


def duplicate_needs(source: str, external_id: str) -> Refusal:
    """A publisher's external id names one needs answer: sent again, it changes nothing."""
    return _duplicate("Анкета потребностей", "принята", "ничего не меняет", source, external_id)


@dataclass
class Campaign:
    """A diagnostics campaign: the window its results must be taken in, the teachers it
    targets (no municipalities or organisations: the region), the instruments that complete
    a diagnosis, open until closed (then it takes no more results)."""

    campaign_id: str
    name: str
    starts_on: date | None = None
    ends_on: date | None = None
    municipalities: list[str] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)
    required: list[Instrument] = field(default_factory=list)
    status: Literal["open", "closed"] = "open"
    created_at: datetime | None = None
    closed_at: datetime | None = None

    @classmethod
    def open(
        cls,
        framework: Framework,
        *,
        campaign_id: str,
        name: str,
        at: datetime,
        starts_on: date | None = None,
        ends_on: date | None = None,
        municipalities: Iterable[str] = (),
        organizations: Iterable[str] = (),
        required: Sequence[Instrument] = (),
    ) -> Campaign:
        """A new open campaign; refused if it ends before it starts. Without ``required``
        the framework's required instruments complete its diagnoses."""
        if starts_on and ends_on and ends_on < starts_on:
            raise Refusal("bad_window", "Дата окончания кампании раньше даты начала.")
        return cls(
            campaign_id=campaign_id,
            name=name,
            starts_on=starts_on,
            ends_on=ends_on,
            municipalities=sorted(set(municipalities)),
            organizations=sorted(set(organizations)),
            required=list(required or framework.required_instruments),
            created_at=at,
        )

    @classmethod
    def standing(cls, framework: Framework, at: datetime) -> Campaign:
        """The standing campaign (``DEFAULT_CAMPAIGN``): no window, the whole region."""
        return cls.open(
            framework,
            campaign_id=DEFAULT_CAMPAIGN,
            name="Постоянная диагностика (вне кампаний)",
            at=at,
        )

    @property
    def window(self) -> str:
        """The window as people read it: «01.09.2026 — 31.12.2026», «…» for an open end."""
        start = f"{self.starts_on:%d.%m.%Y}" if self.starts_on else "…"
        end = f"{self.ends_on:%d.%m.%Y}" if self.ends_on else "…"
        return f"{start} — {end}"

    def admit(self, day: date) -> None:
        """A result taken on ``day`` may count: the campaign is open and the day inside its
        window (either end inclusive; a missing end does not limit)."""
        if self.status != "open":
            raise Refusal(
                "campaign_closed", f"Кампания «{self.name}» закрыта: результаты не принимаются."
            )
        if (self.starts_on and day < self.starts_on) or (self.ends_on and day > self.ends_on):
            raise Refusal(
                "outside_campaign_window",
                f"Результат от {day:%d.%m.%Y} вне сроков кампании «{self.name}» ({self.window}).",
            )

    def includes(self, teacher: Placed) -> bool:
        """The teacher is in the campaign's target (by municipality and organisation)."""
        return (not self.municipalities or teacher.municipality_id in self.municipalities) and (
            not self.organizations or teacher.organization_id in self.organizations
        )

    def admit_teacher(self, teacher_id: str, teacher: Placed) -> None:
        """A result of this teacher may count: they are in the target."""
        if not self.includes(teacher):
            raise Refusal(
                "not_in_campaign",
                f"Педагог «{teacher_id}» не входит в охват кампании «{self.name}».",
            )

    def close(self, at: datetime) -> None:
        """No more results; the standing campaign never closes. Closing a closed campaign
        closes it again (at ``at``)."""
        if self.campaign_id == DEFAULT_CAMPAIGN:
            raise Refusal("standing_campaign", "Постоянную диагностику закрыть нельзя.", 409)
        self.status, self.closed_at = "closed", at


# --- the diagnosis aggregate ---------------------------------------------------------------


class Taken(NamedTuple):
    """A result as combining it needs it (as stored: the instrument by its value)."""

    result_id: str
    instrument: str
    expert_id: str | None
    scores: Mapping[str, float]
    taken_at: datetime | None = None


@dataclass
class Sheet:
    """One teacher in one campaign: its diagnosis (if any) and its results so far."""

    diagnosis_id: str | None = None
    status: str | None = None  # completed | cancelled
    results: list[Taken] = field(default_factory=list)
    instruments: set[Instrument] = field(default_factory=set)

    def add(self, taken: Taken) -> None:
        self.results.append(taken)
        self.instruments.add(INSTRUMENTS[taken.instrument])

    def admit(self, teacher_id: str, campaign: Campaign) -> None:
        """A new result may be taken: the teacher's diagnosis in the campaign is not
        cancelled (a completed one keeps it as evidence for a revision)."""
        if self.status == "cancelled":
            raise Refusal(
                "diagnosis_cancelled",
                f"Диагностика педагога «{teacher_id}» в кампании «{campaign.name}» отменена.",
                409,
            )

    def ready(self, required: Iterable[Instrument]) -> bool:
        """Complete by itself: no diagnosis yet and every required instrument is in."""
        return self.diagnosis_id is None and is_complete(required, self.instruments)

    def closable(self, teacher_id: str, campaign_id: str, *, known: bool) -> None:
        """An operator may complete it with what is in: no diagnosis yet, and some results
        of a teacher the registries know (``known``)."""
        refusal = self.closing_refusal(teacher_id, campaign_id, known=known)
        if refusal is not None:
            raise refusal

    def closing_refusal(self, teacher_id: str, campaign_id: str, *, known: bool) -> Refusal | None:
        """Why an operator may not complete it (``closable``), or None."""
        if self.diagnosis_id is not None:
            return Refusal("already_completed", "Диагностика уже завершена или отменена.", 409)
        if not known or not self.results:
            return Refusal(
                "no_results",
                f"У педагога «{teacher_id}» нет результатов в кампании «{campaign_id}».",
                404,
            )
        return None


def evidence_at(results: Sequence[Taken], instruments: Collection[str]) -> datetime | None:
    """When the latest of ``results`` of these instruments (the ones a diagnosis used) was
    taken; a time stored without its zone is UTC (SQLite keeps none)."""
    times = [
        utc(r.taken_at) for r in results if r.instrument in instruments and r.taken_at is not None
    ]
    return max(times, default=None)


@dataclass(frozen=True)
class Assessment:
    """What a diagnosis says that follows from its evidence."""

    organization_id: str
    municipality_id: str
    framework_version: str
    rule: str
    competencies: list[CompetencyResult]
    deficits: list[CompetencyResult]
    instruments: list[Instrument]
    burnout: BurnoutResult | None
    changes: list[CompetencyChange]
    evidence_at: datetime | None


def assess(
    framework: Framework,
    teacher: Teacher,
    results: Sequence[Taken],
    before: Sequence[CompetencyResult] | None,
    applicable: Collection[str] | None = None,
) -> Assessment:
    """A teacher's results (in order of arrival) scored: where they work, the levels of the
    competencies that apply to them with the explanation, deficits, instruments used,
    burnout, the change since ``before`` (the levels of their earlier diagnosis, if any),
    when the latest result used was taken. ``applicable``: the codes that apply to the
    teacher, when the caller has them at hand (else worked out from the framework)."""
    evidence = [
        Evidence(
            instrument=INSTRUMENTS[r.instrument],
            scores=r.scores,
            result_id=r.result_id,
            seq=seq,
            expert_id=r.expert_id,
        )
        for seq, r in enumerate(results)
    ]
    if applicable is None:
        applicable = framework.applicable(
            is_manager=bool(teacher.is_manager), audience=AUDIENCES[teacher.audience]
        )
    competencies = combine(framework, evidence, applicable)
    used = {e.instrument for c in competencies for e in c.evidence}
    surveys = [r for r in results if r.instrument == Instrument.BURNOUT_SURVEY.value]
    scale = burnout(framework, surveys[-1].scores) if surveys else None
    if scale is not None:
        used.add(Instrument.BURNOUT_SURVEY)
    return Assessment(
        organization_id=teacher.organization_id,
        municipality_id=teacher.municipality_id,
        framework_version=framework.version,
        rule=framework.combination.label,
        competencies=competencies,
        deficits=deficits(competencies),
        instruments=sorted(used, key=_ORDER.__getitem__),
        burnout=scale,
        changes=changes(framework, before, competencies) if before is not None else [],
        evidence_at=evidence_at(results, {i.value for i in used}),
    )


_ORDER = {instrument: n for n, instrument in enumerate(Instrument)}
_RESULTS = TypeAdapter(list[CompetencyResult])
_CHANGES = TypeAdapter(list[CompetencyChange])


@dataclass
class Diagnosis:
    """A teacher's diagnosis in one campaign: the levels of their competencies combined
    from the evidence, with the explanation, deficits, burnout and the change since their
    previous diagnosis. Completed once (``complete``), re-scored in place (``revise``, the
    earlier revision kept in ``history``), cancelled (``cancel``); each returns its event.
    ``latest``: it is the teacher's current diagnosis."""

    diagnosis_id: str
    teacher_id: str
    campaign_id: str
    organization_id: str
    municipality_id: str
    framework_version: str
    rule: str
    instruments: list[Instrument]
    completed_by: Literal["instruments", "operator"]
    competencies: list[CompetencyResult]
    deficits: list[CompetencyResult]
    burnout: BurnoutResult | None
    previous_diagnosis_id: str | None
    changes: list[CompetencyChange]
    evidence_at: datetime | None
    completed_at: datetime
    status: Literal["completed", "cancelled"] = "completed"
    latest: bool = True
    revision: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    revised_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None

    @classmethod
    def complete(
        cls,
        framework: Framework,
        *,
        diagnosis_id: str,
        teacher_id: str,
        campaign_id: str,
        teacher: Teacher,
        results: Sequence[Taken],
        by: Literal["instruments", "operator"],
        at: datetime,
        previous_id: str | None = None,
        before: Sequence[CompetencyResult] | None = None,
        applicable: Collection[str] | None = None,
    ) -> tuple[Diagnosis, DiagnosisCompleted]:
        """A diagnosis completed from ``results`` (by its instruments or an operator), the
        teacher's current one; ``previous_id`` and ``before``: their earlier current
        diagnosis and its levels, which the changes compare with."""
        found = assess(framework, teacher, results, before, applicable)
        diagnosis = cls(
            diagnosis_id=diagnosis_id,
            teacher_id=teacher_id,
            campaign_id=campaign_id,
            completed_by=by,
            previous_diagnosis_id=previous_id,
            completed_at=at,
            **found.__dict__,
        )
        return diagnosis, diagnosis.completed()

    @property
    def deficit_count(self) -> int:
        return len(self.deficits)

    def completed(self) -> DiagnosisCompleted:
        """The diagnosis as its contract says it (what ``diagnostics.diagnosis.completed``
        carries)."""
        return DiagnosisCompleted(**self._contract_fields())

    def _contract_fields(self) -> dict[str, Any]:
        return {
            "diagnosis_id": self.diagnosis_id,
            "teacher_id": self.teacher_id,
            "organization_id": self.organization_id,
            "municipality_id": self.municipality_id,
            "campaign_id": self.campaign_id,
            "framework_version": self.framework_version,
            "competencies": self.competencies,
            "deficits": self.deficits,
            "rule": self.rule,
            "instruments": self.instruments,
            "completed_by": self.completed_by,
            "burnout": self.burnout,
            "previous_diagnosis_id": self.previous_diagnosis_id,
            "changes": self.changes,
            "evidence_at": self.evidence_at,
        }

    def revisable(self) -> None:
        """It may be re-scored: it is not cancelled."""
        if self.status == "cancelled":
            raise Refusal("diagnosis_cancelled", "Отменённую диагностику нельзя пересчитать.", 409)

    def revise(
        self,
        framework: Framework,
        teacher: Teacher,
        results: Sequence[Taken],
        before: Sequence[CompetencyResult] | None,
        reason: str,
        at: datetime,
        applicable: Collection[str] | None = None,
    ) -> DiagnosisRevised:
        """Re-score from ``results`` with ``framework`` (a fixed framework, late evidence),
        against ``before`` (the levels of the previous diagnosis); the revision replaced is
        kept in ``history``. A cancelled diagnosis is not revised."""
        self.revisable()
        earlier = {
            "revision": self.revision,
            "framework_version": self.framework_version,
            "rule": self.rule,
            "competencies": _RESULTS.dump_python(self.competencies, mode="json"),
            "burnout": self.burnout.model_dump(mode="json") if self.burnout else None,
            "changes": _CHANGES.dump_python(self.changes, mode="json"),
        }
        found = assess(framework, teacher, results, before, applicable)
        for name, value in found.__dict__.items():
            setattr(self, name, value)
        self.history = [
            *self.history,
            {**earlier, "replaced_at": at.isoformat(), "reason": reason},
        ]
        self.revision += 1
        self.revised_at = at
        return DiagnosisRevised(**self._contract_fields(), revision=self.revision, reason=reason)

    def cancel(self, reason: str, at: datetime) -> DiagnosisCancelled:
        """Cancel: it counts no more and is no one's current diagnosis (the teacher's
        previous completed one is again: the repository restores it). Once only."""
        if self.status == "cancelled":
            raise Refusal("already_cancelled", "Диагностика уже отменена.", 409)
        self.status, self.latest = "cancelled", False
        self.cancelled_at, self.cancel_reason = at, reason
        return DiagnosisCancelled(
            diagnosis_id=self.diagnosis_id,
            teacher_id=self.teacher_id,
            campaign_id=self.campaign_id,
            reason=reason,
        )
