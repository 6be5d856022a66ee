"""The HTTP shapes of diagnostics: what its operations take (``XCreate``) and answer (``XRead``).

The JSON field names are those the clients have always read (the CLI, the tests, the
other services' pages); times are ISO 8601 in UTC (a time SQLite keeps without its zone was
written in UTC and is answered with it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from iomflow.diagnostics import domain
from iomflow.shared.contracts import (
    BurnoutResult,
    CompetencyChange,
    CompetencyResult,
    DiagnosisCompleted,
    Instrument,
    NeedsRecorded,
)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Utc = Annotated[datetime, AfterValidator(_utc)]
"""A time in UTC (a naive one is UTC: SQLite keeps no zone)."""


# --- bodies ----------------------------------------------------------------------------------


def _iso_date(value: Any) -> Any:
    if not isinstance(value, str | date):  # pydantic would read a number as a Unix time
        raise ValueError("a date is written as YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_date)]
"""A date in a body: ``YYYY-MM-DD`` (not a number)."""


class CampaignCreate(BaseModel):
    """A campaign to open."""

    campaign_id: str = Field(min_length=1, max_length=100, pattern=r"^[\w.-]+$")
    name: str = Field(min_length=1, max_length=300)
    starts_on: Day | None = None
    ends_on: Day | None = None
    municipalities: list[str] = Field(default_factory=list, description="Empty: the region")
    organizations: list[str] = Field(default_factory=list, description="Empty: all of them")
    required: list[Instrument] = Field(
        default_factory=list, description="Instruments required; empty: the framework's"
    )


class Reason(BaseModel):
    """Why an operator revises or cancels a diagnosis."""

    reason: str = Field(min_length=1, max_length=500)


# --- diagnoses -------------------------------------------------------------------------------


class RevisionRead(BaseModel):
    """An earlier revision of a diagnosis, as it was before it was replaced."""

    revision: int = Field(description="Its revision number (0: the first scoring)")
    framework_version: str
    rule: str | None = None
    competencies: list[CompetencyResult]
    burnout: BurnoutResult | None = None
    changes: list[CompetencyChange] = Field(default_factory=list)
    replaced_at: Utc = Field(description="When the next revision replaced it")
    reason: str = Field(description="Why it was replaced")


class DiagnosisRead(DiagnosisCompleted):
    """A diagnosis: the completed event's fields with its state and history."""

    model_config = ConfigDict(title="DiagnosisRead")

    status: Literal["completed", "cancelled"]
    latest: bool = Field(description="The teacher's current diagnosis")
    revision: int = Field(ge=0, description="How many times it was re-scored")
    history: list[RevisionRead] = Field(description="Earlier revisions, oldest first")
    completed_at: Utc
    revised_at: Utc | None = None
    cancelled_at: Utc | None = None
    cancel_reason: str | None = None


class SubmittedRead(BaseModel):
    """What became of a result posted over HTTP."""

    event_id: str = Field(description="The event's id (given, or made for it)")
    status: Literal["stored", "held", "late", "duplicate"] = Field(
        description="stored; held (the teacher is not in the registries yet); late (after "
        "its diagnosis); duplicate (this event id was taken before)"
    )
    duplicate: bool
    source: str = Field(description="The publisher (or operator:<who>)")
    diagnosis: DiagnosisRead | None = Field(
        default=None, description="The diagnosis the result completed, or the campaign's"
    )


class ResultRead(BaseModel):
    """One instrument's result behind a diagnosis."""

    result_id: str = Field(description="The event id it came with")
    instrument: Instrument
    expert_id: str | None = None
    external_id: str | None = Field(default=None, description="The publisher's own id")
    source: str = Field(description="The publisher")
    taken_at: Utc
    received_at: Utc
    submitted: dict[str, Any] = Field(description="The payload exactly as it came")
    scores: dict[str, float] = Field(description="0..100 per competency (or burnout scale)")


class HeldRead(BaseModel):
    """A result (or a needs answer) held for a teacher the registries do not know yet."""

    event_id: str
    type: Literal["diagnostics.result.submitted", "diagnostics.needs.submitted"] = Field(
        description="What is held: a result or a needs answer"
    )
    teacher_id: str
    campaign_id: str
    received_at: Utc
    hold_until: Utc = Field(description="Dead-lettered after this, if the teacher never comes")


# --- needs -----------------------------------------------------------------------------------


class NeedsRead(NeedsRecorded):
    """A needs answer as stored: the recorded event's fields, where it came from, when."""

    model_config = ConfigDict(title="NeedsRead")

    external_id: str | None = Field(default=None, description="The publisher's own id")
    source: str = Field(description="The publisher (or operator:<who>)")
    answered_at: Utc
    received_at: Utc
    submitted: dict[str, Any] = Field(description="The payload exactly as it came")


class NeedsSubmittedRead(BaseModel):
    """What became of a needs answer posted over HTTP."""

    event_id: str = Field(description="The event's id (given, or made for it)")
    status: Literal["stored", "held", "duplicate"] = Field(
        description="stored; held (the teacher is not in the registries yet); duplicate "
        "(this event id was taken before)"
    )
    duplicate: bool
    source: str = Field(description="The publisher (or operator:<who>)")
    needs: NeedsRead | None = Field(
        default=None, description="The answer as stored (None when held)"
    )


# --- campaigns -------------------------------------------------------------------------------


class CampaignRead(BaseModel):
    """A diagnostics campaign."""

    campaign_id: str
    name: str
    starts_on: date | None = None
    ends_on: date | None = None
    municipalities: list[str] = Field(description="Empty: the region")
    organizations: list[str] = Field(description="Empty: all of them")
    required: list[Instrument] = Field(description="Instruments a diagnosis requires")
    status: Literal["open", "closed"]
    created_at: Utc
    closed_at: Utc | None = None


class Counts(BaseModel):
    expected: int = Field(ge=0, description="Teachers in the campaign's target")
    submitted: int = Field(ge=0, description="Of them, with a result")
    completed: int = Field(ge=0, description="Completed diagnoses")
    held: int = Field(ge=0, description="Teachers unknown to the registries, with results held")


class MunicipalityProgress(Counts):
    municipality_id: str = Field(description="Empty: teachers not in the registries")
    name: str


class ProgressRead(Counts):
    """A campaign's progress: the totals and per municipality."""

    campaign_id: str
    municipalities: list[MunicipalityProgress]


class CampaignClosedRead(BaseModel):
    """A campaign closed: the diagnoses completed with the evidence that was in."""

    campaign_id: str
    status: Literal["closed"]
    completed: int = Field(ge=0, description="Diagnoses completed by the closing")


# --- frameworks ------------------------------------------------------------------------------


class FrameworkRead(domain.Framework):
    """A competency framework: groups, competencies, levels, weights, the combination."""

    model_config = ConfigDict(title="FrameworkRead")


class FrameworkVersionRead(BaseModel):
    """A framework version that was in force at some time."""

    version: str
    loaded_at: Utc = Field(description="When the service first loaded it")


class CaseRead(BaseModel):
    """The framework as a 1EdTech CASE 1.1 CFPackage (see the CASE specification)."""

    model_config = ConfigDict(extra="allow", title="CaseRead")

    CFDocument: dict[str, Any] = Field(description="The framework as a whole")
    CFItems: list[dict[str, Any]] = Field(description="A group or a competency each")
    CFAssociations: list[dict[str, Any]] = Field(description="isChildOf links")


# --- analytics -------------------------------------------------------------------------------


class CompetencyDeficits(BaseModel):
    code: str
    name: str
    group: str = Field(description="The group's name")
    assessed: int = Field(ge=0, description="Teachers assessed on it")
    deficits: int = Field(ge=0)
    critical: int = Field(ge=0, description="Of the deficits, critical")
    share: float = Field(description="Deficits per assessed, %")


class AreaDeficits(BaseModel):
    id: str = Field(description="The municipality's, organisation's id or the subject")
    name: str
    diagnosed: int = Field(ge=0)
    with_deficits: int = Field(ge=0)
    share: float = Field(description="With deficits per diagnosed, %")
    deficits: dict[str, int] = Field(description="Deficit count per competency code")


class OrganizationDeficits(AreaDeficits):
    municipality: str | None = Field(default=None, description="Its municipality's name")


class ProgramGapRead(BaseModel):
    """A frequent deficit that no program for its audience names."""

    rank: int = Field(ge=1)
    code: str
    name: str
    audience: str
    audience_name: str
    deficits: int = Field(ge=0)
    assessed: int = Field(ge=0)
    share: float
    coverage: Literal["theme", "none"] = Field(description="theme: only programs of its theme")
    theme_programs: list[str]
    recommendation: str = Field(description="In Russian")


class CompetencyNeeds(BaseModel):
    """A competency teachers ask for, beside its deficits and the programs for it."""

    code: str
    name: str
    asking: int = Field(ge=0, description="Teachers who ask for it")
    share: float = Field(description="Of the teachers who answered, %")
    deficits: int = Field(ge=0, description="Deficits of it found by the diagnoses")
    programs: list[str] = Field(description="Programs of the registries that name it")
    in_program_gap: bool = Field(description="A frequent deficit no program covers")


class AreaNeeds(BaseModel):
    id: str = Field(description="The municipality's or organisation's id")
    name: str
    answered: int = Field(ge=0, description="Teachers who answered")
    competencies: dict[str, int] = Field(description="Teachers asking, per competency code")
    formats: dict[str, int] = Field(description="Teachers wanting it, per format")


class OrganizationNeeds(AreaNeeds):
    municipality: str | None = Field(default=None, description="Its municipality's name")


class CountRead(BaseModel):
    code: str
    name: str = Field(description="In Russian")
    count: int = Field(ge=0, description="Teachers")
    share: float = Field(description="Of the teachers who answered, %")


class NeedsAnalytics(BaseModel):
    """The answers to the needs questionnaire (each teacher's latest): by competency beside
    the program gap, by municipality and organisation, themes and formats wanted."""

    answered: int = Field(ge=0, description="Teachers who answered")
    competencies: list[CompetencyNeeds] = Field(description="Asked for, most asked first")
    municipalities: list[AreaNeeds]
    organizations: list[OrganizationNeeds]
    themes: list[CountRead]
    formats: list[CountRead]


class AnalyticsRead(BaseModel):
    """Deficits by competency, municipality, organisation and subject; the program gap;
    the educational needs teachers ask for."""

    campaign_id: str | None = Field(description="None: the teachers' current diagnoses")
    framework_version: str
    diagnosed: int = Field(ge=0)
    competencies: list[CompetencyDeficits]
    municipalities: list[AreaDeficits]
    organizations: list[OrganizationDeficits]
    subjects: list[AreaDeficits]
    program_gap: list[ProgramGapRead]
    needs: NeedsAnalytics


# --- burnout ---------------------------------------------------------------------------------


class BurnoutLevels(BaseModel):
    """Burnout levels of a group of teachers (their diagnoses with a burnout survey)."""

    surveyed: int = Field(ge=0)
    low: int = Field(ge=0)
    moderate: int = Field(ge=0)
    high: int = Field(ge=0)
    share_low: float = Field(description="%")
    share_moderate: float = Field(description="%")
    share_high: float = Field(description="%")
    mean_index: float | None = Field(description="Mean burnout index, 0..100 (None: nobody)")


class BurnoutGroup(BurnoutLevels):
    id: str = Field(description="The municipality's or organisation's id, or the band")
    name: str


class OrganizationBurnout(BurnoutGroup):
    municipality: str | None = Field(default=None, description="Its municipality's name")


class BurnoutWave(BaseModel):
    """One campaign's burnout survey, beside the wave before it."""

    campaign_id: str
    name: str
    surveyed: int = Field(ge=0)
    high: int = Field(ge=0)
    share_high: float = Field(description="%")
    mean_index: float
    change_share_high: float | None = Field(description="Percentage points since the wave before")
    change_mean_index: float | None = Field(description="Since the wave before")
    trend: Literal["better", "worse", "same"] | None = Field(
        description="By the share with a high level (None: the first wave)"
    )


class BurnoutRead(BaseModel):
    """Burnout levels in the region, by municipality, organisation, age and experience band
    (each teacher's latest survey, or their survey in one campaign); the trend between
    waves (campaigns in order)."""

    campaign_id: str | None = Field(description="None: each teacher's latest survey")
    region: BurnoutLevels
    municipalities: list[BurnoutGroup]
    organizations: list[OrganizationBurnout]
    age_bands: list[BurnoutGroup]
    experience_bands: list[BurnoutGroup]
    waves: list[BurnoutWave]


class StatsRead(BaseModel):
    """Counts of the read model, results and diagnoses."""

    teachers: int = Field(ge=0)
    results: int = Field(ge=0)
    held: int = Field(ge=0)
    needs: int = Field(ge=0, description="Needs answers stored")
    campaigns: int = Field(ge=0)
    programs: int = Field(ge=0)
    diagnoses: int = Field(ge=0, description="Completed diagnoses")
    with_deficits: int = Field(ge=0, description="Completed diagnoses with a deficit")
