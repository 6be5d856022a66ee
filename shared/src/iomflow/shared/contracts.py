"""Every event that crosses a service boundary, and the streams that carry them.

An event is an envelope (who, what, when, about whom) around a typed payload. The payload
models below are the contract: services and outside publishers agree on them, the JSON
Schema files in ``docs/contracts/`` are generated from them, and a change that is not
backward compatible must raise the event's ``version``.

Events carry pseudonymous ids and non-identifying attributes only (152-ФЗ): no names,
СНИЛС, e-mails or phones ever appear here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model, model_validator

# --- streams -------------------------------------------------------------------------------


class Streams:
    """Stream names, in one place. A dead-letter stream is ``{<stream>}.dlq``: the braces
    are a Redis Cluster hash tag, so a stream and its dead letters are in one hash slot and
    can be written in one MULTI (a key without braces hashes whole, as its tag would)."""

    REGISTRY = "iomflow.registry.events"
    RESULTS_INBOUND = "iomflow.diagnostics.results.inbound"
    COURSES_INBOUND = "iomflow.routes.courses.inbound"
    DIAGNOSTICS = "iomflow.diagnostics.events"
    ROUTES = "iomflow.routes.events"
    MONITORING = "iomflow.monitoring.events"

    @staticmethod
    def dlq(stream: str) -> str:
        return f"{{{stream}}}.dlq"

    @staticmethod
    def legacy_dlq(stream: str) -> str:
        """What the dead-letter stream was called before the hash tag (up to 0.3):
        ``iomflow dlq migrate`` moves its letters over."""
        return f"{stream}.dlq"

    @staticmethod
    def of_dlq(name: str) -> str:
        """The stream a dead-letter stream is of (``{s}.dlq`` or the legacy ``s.dlq``);
        any other name is returned as it is."""
        if name.startswith("{") and name.endswith("}.dlq"):
            return name[1:-5]
        return name.removesuffix(".dlq")

    @classmethod
    def all(cls) -> tuple[str, ...]:
        """Every stream of the suite, as declared above (dead-letter streams not included)."""
        return tuple(value for name, value in vars(cls).items() if name.isupper())


# --- the envelope --------------------------------------------------------------------------


class Contract(BaseModel):
    """Base of every payload: unknown fields are refused so typos surface at the edge."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(BaseModel):
    """What every stream entry carries besides the payload.

    On the wire (Redis stream fields) each attribute is a plain string field and the
    payload is the ``data`` field as JSON; see ``iomflow.shared.wire``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID = Field(description="Assigned by the producer; the dedupe key.")
    type: str = Field(description="Event type, e.g. diagnostics.diagnosis.completed")
    version: int = Field(default=1, ge=1, description="Contract version of the payload")
    source: str = Field(min_length=1, max_length=200, description="Service or publisher id")
    occurred_at: AwareDatetime = Field(
        description="When it happened: ISO 8601 with its time zone (a time without one is "
        "refused: nobody could tell which day it was)"
    )
    subject: str = Field(min_length=1, max_length=200, description="Pseudonymous id")
    data: dict[str, Any]


P = TypeVar("P", bound=BaseModel)  # a contract, or a consumer's digest of one


class Event(BaseModel, Generic[P]):
    """An envelope whose payload has been validated against its contract."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    event_id: uuid.UUID
    type: str
    version: int
    source: str
    occurred_at: datetime
    subject: str
    payload: P


# --- registries ----------------------------------------------------------------------------
# One ``registry.<entity>.upserted`` type per register, each with its payload below, and one
# ``registry.<entity>.removed`` type per register with ``RecordRemoved``. What a register
# keeps beyond its event (birth and hire dates; full name, СНИЛС, e-mail and phone in a
# separate table) never leaves the registries service.


class Audience(StrEnum):
    PRESCHOOL = "preschool"
    GENERAL = "general"
    COLLEGE = "college"


class OrganizationKind(StrEnum):
    SCHOOL = "school"
    KINDERGARTEN = "kindergarten"
    COLLEGE = "college"
    OTHER = "other"


class Project(StrEnum):
    """Federal and regional projects an organisation takes part in."""

    SCHOOL_OF_MINISTRY = "school_of_ministry"  # «Школа Минпросвещения России»
    PERSONAL_POTENTIAL = "personal_potential"  # программа «Персональный потенциал»
    TOCHKA_ROSTA = "tochka_rosta"  # центры «Точка роста»
    PROFESSIONALITET = "professionalitet"  # «Профессионалитет»
    KINDERGARTEN_OF_MINISTRY = "kindergarten_of_ministry"  # «Детский сад Минпросвещения»


class Theme(StrEnum):
    """Program themes the KPI table counts training by."""

    SUBJECT = "subject"
    FUNCTIONAL_LITERACY = "functional_literacy"
    UPDATED_FGOS = "updated_fgos"
    DIGITAL_ENVIRONMENT = "digital_environment"
    QUALITY_ASSESSMENT = "quality_assessment"
    GIFTED_CHILDREN = "gifted_children"
    CAREER_GUIDANCE = "career_guidance"
    UPBRINGING = "upbringing"
    PRESCHOOL_QUALITY = "preschool_quality"
    MANAGEMENT = "management"
    BURNOUT_PREVENTION = "burnout_prevention"


class Category(StrEnum):
    """Qualification category (the teacher's level)."""

    NONE = "none"
    FIRST = "first"
    HIGHEST = "highest"
    METHODIST = "methodist"  # педагог-методист
    MENTOR = "mentor"  # педагог-наставник


class ManagementRole(StrEnum):
    DIRECTOR = "director"
    DEPUTY = "deputy"
    HEAD_OF_DEPARTMENT = "head_of_department"
    OTHER = "other"


class SiteLevel(StrEnum):
    FEDERAL = "federal"
    REGIONAL = "regional"
    MUNICIPAL = "municipal"


Codes = list[Annotated[str, Field(min_length=1, max_length=100)]]


class MunicipalityUpserted(Contract):
    municipality_id: str
    name: str = Field(description="Official name (public, not personal data)")
    remote: bool = Field(default=False, description="Remote municipality: distance formats suit")


class OrganizationUpserted(Contract):
    organization_id: str
    municipality_id: str
    name: str
    kind: OrganizationKind
    low_results: bool = False
    unfavorable_conditions: bool = False
    projects: list[Project] = Field(default_factory=list)


class TeacherUpserted(Contract):
    teacher_id: str = Field(description="Pseudonymous id; personal data stays in registries")
    organization_id: str
    municipality_id: str
    position: str
    audience: Audience
    subjects: list[str] = Field(default_factory=list)
    category: Category = Category.NONE
    age_band: Literal["<25", "25-34", "35-44", "45-54", "55+"]
    experience_band: Literal["<3", "3-10", "10-20", "20+"]
    young: bool = Field(
        default=False, description="Under 35 and in the first 3 years of work (mentoring)"
    )
    is_manager: bool = False
    expert: bool = Field(default=False, description="Takes part in regional expert activity")


class ManagementMemberUpserted(Contract):
    member_id: str
    organization_id: str
    municipality_id: str
    teacher_id: str
    role: ManagementRole


class MethodistUpserted(Contract):
    methodist_id: str
    specialisations: Codes = Field(description="Competency codes the methodist supports")
    subjects: list[str] = Field(default_factory=list)
    municipalities: list[str] = Field(description="Municipalities served; empty = the region")
    capacity: int = Field(default=250, ge=1, le=250)


class TutorUpserted(Contract):
    tutor_id: str
    specialisations: Codes = Field(description="Competency codes")
    programs: list[str] = Field(default_factory=list, description="Programs tutored; empty = any")
    municipalities: list[str] = Field(default_factory=list)
    capacity: int = Field(default=50, ge=1, le=250)


class MentorUpserted(Contract):
    mentor_id: str
    organization_id: str
    municipality_id: str
    subjects: list[str] = Field(default_factory=list)
    capacity: int = Field(default=3, ge=1, le=10)


class MunicipalStaffUpserted(Contract):
    staff_id: str
    municipality_id: str
    position: str
    specialisations: Codes = Field(default_factory=list)


class ProgramUpserted(Contract):
    program_id: str
    title: str
    kind: Literal["pk", "pp"] = Field(description="ПК (further training) or ПП (retraining)")
    hours: int = Field(ge=1)
    format: Literal["in_person", "distance", "network", "internship"]
    provider: str = ""
    federal_registry: bool = False
    federal_number: str | None = None
    competencies: Codes = Field(min_length=1)
    themes: list[Theme] = Field(default_factory=list)
    audiences: list[Audience] = Field(min_length=1)
    subjects: list[str] = Field(default_factory=list)
    pedagogical: bool | None = Field(
        default=None,
        description="ПП: of pedagogical direction («педагогической направленности», the only "
        "retraining Appendix 1 counts); unset for ПК",
    )


class InternshipSiteUpserted(Contract):
    site_id: str
    organization_id: str
    municipality_id: str
    title: str
    competencies: Codes = Field(min_length=1)
    themes: list[Theme] = Field(default_factory=list)
    capacity: int = Field(default=20, ge=1)


class InnovationSiteUpserted(Contract):
    site_id: str
    organization_id: str
    municipality_id: str
    title: str
    level: SiteLevel
    themes: list[Theme] = Field(default_factory=list)
    valid_from: date
    valid_to: date


class CommunityUpserted(Contract):
    community_id: str
    title: str
    level: SiteLevel
    municipality_id: str | None = None
    subjects: list[str] = Field(default_factory=list)
    competencies: Codes = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)


PracticeStatus = Literal["submitted", "reviewed", "included", "replicated", "rejected"]


class PracticeReplication(Contract):
    """Where an effective practice was taken up (roadmap 52: «тиражирование»)."""

    organization_id: str
    municipality_id: str
    by: str | None = Field(default=None, description="Pseudonymous id of who replicated it")
    on: date


class PracticeUpserted(Contract):
    """A practice of the bank of effective practices, with where it is in its course:
    submitted → reviewed (by an expert, with the review) → included in the bank →
    replicated (where, by whom); or rejected at review. A record without a status (before
    0.9) is a practice of the bank."""

    practice_id: str
    title: str
    organization_id: str
    municipality_id: str
    competencies: Codes = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)
    year: int = Field(ge=2000, le=2100)
    status: PracticeStatus = "included"
    author_id: str | None = Field(default=None, description="Pseudonymous id of the author")
    submitted_on: date | None = None
    reviewed_by: str | None = Field(default=None, description="Pseudonymous id of the expert")
    reviewed_on: date | None = None
    review: str = Field(default="", max_length=4000, description="The expert's conclusion")
    included_on: date | None = None
    replications: list[PracticeReplication] = Field(default_factory=list)


class SchoolTeamUpserted(Contract):
    """A school and management team of a project («Школа Минпросвещения России»: 16 teams
    of the region's participating schools, each supported by regional methodists)."""

    team_id: str
    organization_id: str
    municipality_id: str
    project: Project = Project.SCHOOL_OF_MINISTRY
    members: Codes = Field(default_factory=list, description="Teachers' pseudonymous ids")
    methodists: Codes = Field(
        default_factory=list, description="Regional methodists (РМА) assigned to the team"
    )


MentoringKind = Literal["young_teacher", "management_team", "peer"]


class MentoringPairUpserted(Contract):
    """A pair of a school's mentoring program: a mentor and a mentee (a young teacher, a
    member of a management team, or a colleague), for a period and a focus."""

    pair_id: str
    organization_id: str
    municipality_id: str
    mentor_id: str = Field(description="The mentor (register of mentors)")
    mentee_id: str = Field(description="The mentee's teacher id")
    kind: MentoringKind = "young_teacher"
    focus: str = Field(default="", max_length=500)
    competencies: Codes = Field(default_factory=list)
    starts_on: date
    ends_on: date | None = None


class ExpertKind(StrEnum):
    """Kinds of regional expert activity (Appendix 1, «привлечение к экспертной
    деятельности»)."""

    ATTESTATION = "attestation"  # аттестация педагогических работников
    PROGRAM_REVIEW = "program_review"  # экспертиза программ ДПО
    CONTEST_JURY = "contest_jury"  # жюри профессиональных конкурсов
    PRACTICE_REVIEW = "practice_review"  # экспертиза практик
    DIAGNOSTICS = "diagnostics"  # эксперт оценочных процедур
    OLYMPIAD = "olympiad"  # предметные комиссии, олимпиады
    OTHER = "other"


class ExpertRoleUpserted(Contract):
    role_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    kind: ExpertKind
    body: str = Field(default="", max_length=300, description="Where: a commission, a jury")
    starts_on: date
    ends_on: date | None = None


class ContestUpserted(Contract):
    """A professional contest (roadmap 35: the contest movement)."""

    contest_id: str
    title: str
    level: SiteLevel
    year: int = Field(ge=2000, le=2100)
    held_on: date | None = None


class ContestEntryUpserted(Contract):
    entry_id: str
    contest_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    result: Literal["participant", "prize_winner", "winner"] = "participant"


class RecordRemoved(Contract):
    """A record left its register; consumers drop it from their read models."""

    record_id: str
    reason: str = ""


class RegistryStale(Contract):
    """Records of one register and owner not verified for longer than the allowed period."""

    registry: str = Field(description="Register name, e.g. teachers")
    owner: str = Field(description="Who keeps the records: an organisation, municipality or cnppm")
    stale: int = Field(ge=0, description="Records overdue for verification; 0 = resolved")
    total: int = Field(ge=0)
    oldest_verified_at: datetime | None = None
    verify_before: datetime = Field(description="Records verified before this are stale")


REGISTERS: dict[str, tuple[str, type[Contract]]] = {
    "municipalities": ("municipality", MunicipalityUpserted),
    "organizations": ("organization", OrganizationUpserted),
    "programs": ("program", ProgramUpserted),
    "teachers": ("teacher", TeacherUpserted),
    "management_teams": ("management_member", ManagementMemberUpserted),
    "methodists": ("methodist", MethodistUpserted),
    "tutors": ("tutor", TutorUpserted),
    "mentors": ("mentor", MentorUpserted),
    "municipal_staff": ("municipal_staff", MunicipalStaffUpserted),
    "internship_sites": ("internship_site", InternshipSiteUpserted),
    "innovation_sites": ("innovation_site", InnovationSiteUpserted),
    "communities": ("community", CommunityUpserted),
    "practices": ("practice", PracticeUpserted),
    "school_teams": ("school_team", SchoolTeamUpserted),
    "mentoring_pairs": ("mentoring_pair", MentoringPairUpserted),
    "expert_roles": ("expert_role", ExpertRoleUpserted),
    "contests": ("contest", ContestUpserted),
    "contest_entries": ("contest_entry", ContestEntryUpserted),
}
"""Register -> (entity name in event types, payload of its upserted event), in the order a
full publication goes (what others refer to first)."""


# --- diagnostics ---------------------------------------------------------------------------


class Instrument(StrEnum):
    STANDARDIZED_TEST = "standardized_test"
    EXPERT_EVALUATION = "expert_evaluation"
    PROFESSIONAL_RESULTS = "professional_results"
    SELF_DIAGNOSIS = "self_diagnosis"
    BURNOUT_SURVEY = "burnout_survey"


class ItemScore(Contract):
    """One item of a standardized test or one criterion of an expert rubric, mapped by the
    publisher's specification to the competency it measures."""

    item: str = Field(min_length=1, max_length=100, description="Item or rubric criterion code")
    competency: str = Field(min_length=1, max_length=100)
    score: float = Field(ge=0)
    max_score: float = Field(gt=0)

    @model_validator(mode="after")
    def _within_max(self) -> ItemScore:
        if self.score > self.max_score:
            raise ValueError(f"item {self.item}: score {self.score} above max {self.max_score}")
        return self


class ResultSubmitted(Contract):
    """One instrument's result for one teacher, as an outside publisher sends it.

    Scores are per competency on a 0..100 scale (``scores``), or per item with the
    competency each item measures (``items``: the competency's score is the share of its
    items' points). A burnout survey scores the framework's burnout scales instead.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["scores"], "properties": {"scores": {"minProperties": 1}}},
                {"required": ["items"], "properties": {"items": {"minItems": 1}}},
            ],
            "examples": [
                {
                    "teacher_id": "t-000123",
                    "instrument": "standardized_test",
                    "campaign_id": "2026-autumn",
                    "external_id": "cop-2026-000123-st",
                    "taken_at": "2026-10-05T09:30:00+08:00",
                    "items": [
                        {"item": "A1", "competency": "subject_content", "score": 1, "max_score": 1},
                        {"item": "B4", "competency": "assessment", "score": 1, "max_score": 2},
                    ],
                },
                {
                    "teacher_id": "t-000123",
                    "instrument": "expert_evaluation",
                    "campaign_id": "2026-autumn",
                    "external_id": "mms-osa-2026-0042",
                    "expert_id": "expert-17",
                    "scores": {"teaching_methods": 55, "upbringing": 80},
                },
                {
                    "teacher_id": "t-000123",
                    "instrument": "burnout_survey",
                    "campaign_id": "2026-autumn",
                    "scores": {"emotional_exhaustion": 62, "depersonalization": 35},
                },
            ],
        }
    )

    teacher_id: str = Field(min_length=1, max_length=100)
    instrument: Instrument
    campaign_id: str = Field(
        default="default",
        min_length=1,
        max_length=100,
        description="Campaign id; 'default' is the standing (year-round) diagnostics",
    )
    scores: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=dict, description="Competency (or burnout scale) code -> 0..100"
    )
    items: list[ItemScore] = Field(
        default_factory=list, description="Item scores, each mapped to a competency"
    )
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The publisher's own id of this result; a second result with the same "
        "external id from the same publisher is refused",
    )
    expert_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Expert evaluation: the (pseudonymous) expert; each expert's result is kept",
    )
    taken_at: datetime | None = Field(
        default=None,
        description="When the teacher took the instrument; checked against the campaign "
        "window (default: the event's occurred_at)",
    )

    @model_validator(mode="after")
    def _has_scores(self) -> ResultSubmitted:
        if not self.scores and not self.items:
            raise ValueError("a result needs scores or items")
        if self.items and self.instrument not in (
            Instrument.STANDARDIZED_TEST,
            Instrument.EXPERT_EVALUATION,
        ):
            raise ValueError("items are for a standardized test or an expert rubric")
        return self


class Level(StrEnum):
    CRITICAL = "critical_deficit"
    DEFICIT = "deficit"
    SUFFICIENT = "sufficient"
    ADVANCED = "advanced"


class EvidenceUsed(Contract):
    """One piece of evidence behind a competency's level, with the weight it was given."""

    instrument: Instrument
    result_id: str = Field(description="Event id of the result")
    score: float
    weight: float = Field(ge=0, le=1, description="Share in the combined score; they sum to 1")
    expert_id: str | None = None


class CompetencyResult(Contract):
    code: str
    score: float
    level: Level
    evidence: list[EvidenceUsed] = Field(
        default_factory=list, description="Which instruments gave which evidence, with weights"
    )
    rule: str | None = Field(default=None, description="Combination rule, e.g. weighted_mean/1")


class CompetencyChange(Contract):
    """A competency compared with the teacher's previous diagnosis."""

    code: str
    change: Literal["closed", "improved", "unchanged", "worse", "new"]
    level: Level
    score: float
    previous_level: Level | None = None
    previous_score: float | None = None


class BurnoutResult(Contract):
    """The burnout survey on its own scale: never a deficit, it feeds the burnout KPI."""

    index: float = Field(ge=0, le=100, description="Mean of the scales, 0..100")
    level: Literal["low", "moderate", "high"]
    scales: dict[str, float]


class DiagnosisCompleted(Contract):
    diagnosis_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    campaign_id: str
    framework_version: str
    competencies: list[CompetencyResult]
    deficits: list[CompetencyResult] = Field(description="Most severe first")
    rule: str | None = Field(default=None, description="Combination rule and its version")
    instruments: list[Instrument] = Field(
        default_factory=list, description="Instruments whose results were used"
    )
    completed_by: Literal["instruments", "operator"] = "instruments"
    burnout: BurnoutResult | None = None
    previous_diagnosis_id: str | None = None
    changes: list[CompetencyChange] = Field(
        default_factory=list, description="Per competency, since the previous diagnosis"
    )
    evidence_at: datetime | None = Field(
        default=None,
        description="When the evidence was taken: the taken_at of the latest result the "
        "diagnosis used (a diagnosis of results loaded later is dated by it, not by arrival)",
    )


class DiagnosisRevised(DiagnosisCompleted):
    """The same diagnosis re-scored (a framework fix, late evidence): replaces it whole."""

    revision: int = Field(ge=1)
    reason: str


class DiagnosisCancelled(Contract):
    diagnosis_id: str
    teacher_id: str
    campaign_id: str
    reason: str


NeedFormat = Literal[
    "course", "internship", "mentoring", "community", "consultation", "seminar", "webinar"
]


class NeedsSubmitted(Contract):
    """One teacher's answers to the questionnaire of educational needs and requests
    (roadmap 15), as a survey platform or a municipal service publishes it (inbound stream
    ``iomflow.diagnostics.results.inbound``, type ``diagnostics.needs.submitted``). It is
    no diagnosis: it scores nothing and never makes a deficit; the answers are counted by
    municipality, organisation and competency beside the program gap."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["competencies"], "properties": {"competencies": {"minItems": 1}}},
                {"required": ["themes"], "properties": {"themes": {"minItems": 1}}},
            ],
            "examples": [
                {
                    "teacher_id": "t-000123",
                    "campaign_id": "2026-autumn",
                    "external_id": "needs-2026-000123",
                    "answered_at": "2026-10-07T15:00:00+08:00",
                    "competencies": ["assessment", "digital_tools"],
                    "themes": ["functional_literacy"],
                    "formats": ["course", "mentoring"],
                }
            ],
        }
    )

    teacher_id: str = Field(min_length=1, max_length=100)
    campaign_id: str = Field(default="default", min_length=1, max_length=100)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    answered_at: datetime | None = Field(
        default=None, description="When the teacher answered (default: the event's occurred_at)"
    )
    competencies: Codes = Field(
        default_factory=list, max_length=50, description="Competencies the teacher asks for"
    )
    themes: list[Theme] = Field(default_factory=list, description="Themes the teacher asks for")
    formats: list[NeedFormat] = Field(default_factory=list, description="Formats wanted")

    @model_validator(mode="after")
    def _asks_for_something(self) -> NeedsSubmitted:
        if not self.competencies and not self.themes:
            raise ValueError("a needs answer names at least one competency or theme")
        return self


class NeedsRecorded(Contract):
    """A needs answer taken by diagnostics, with where the teacher works."""

    response_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    campaign_id: str
    answered_on: date
    competencies: Codes = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)
    formats: list[NeedFormat] = Field(default_factory=list)


# --- digests: a consumer's reading of a contract ---------------------------------------------


class Digest(BaseModel):
    """A consumer's reading of a contract: the fields it uses, validated as the contract
    validates them; the others passed over (neither validated nor built). Declared per
    subscription (``Subscription.digests``) for what services publish to each other, never
    for what outside publishers send (that is checked whole at the edge); every digest is a
    projection of its contract (``digest``; ``tests/shared/test_contracts.py`` checks)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def digest(
    contract: type[Contract],
    *,
    without: set[str] = frozenset(),  # type: ignore[assignment]
    nested: dict[str, Any] | None = None,
) -> type[Digest]:
    """``contract`` without some of its fields: the same names, types, bounds, defaults;
    ``nested`` reads a field through digests of its own (``list[StepDigest]`` for
    ``list[RouteStep]``)."""
    nested = nested or {}
    unknown = (without | set(nested)) - set(contract.model_fields)
    if unknown:
        raise ValueError(f"{contract.__name__} has no fields {sorted(unknown)}")
    fields: dict[str, Any] = {
        name: (nested.get(name, field.annotation), field)
        for name, field in contract.model_fields.items()
        if name not in without
    }
    made = create_model(f"{contract.__name__}Digest", __base__=Digest, **fields)
    made.__digest_of__ = contract  # type: ignore[attr-defined]
    return made  # type: ignore[no-any-return]


DiagnosisDigest = digest(DiagnosisCompleted, without={"competencies"})
"""``diagnostics.diagnosis.completed`` without the explanation of every competency (most of
its size): the deficits, changes, burnout and ids are what routes and monitoring use."""

RevisedDiagnosisDigest = digest(DiagnosisRevised, without={"competencies"})


# --- routes --------------------------------------------------------------------------------


StepKind = Literal[
    "program", "internship", "mentoring", "community", "consultation", "post_course_support"
]


class RouteStep(Contract):
    """One activity of a route, with why it was chosen and when it is planned."""

    step_id: str = Field(default="", description="Stable within the route, e.g. s1")
    competency: str
    kind: StepKind
    program_id: str | None = None
    site_id: str | None = Field(default=None, description="Internship site")
    mentor_id: str | None = None
    community_id: str | None = None
    tutor_id: str | None = Field(default=None, description="ЦНППМ tutor of a federal program")
    follows: str | None = Field(default=None, description="Post-course support: its program step")
    hours: int = Field(ge=0)
    starts_on: date | None = None
    ends_on: date | None = None
    period: int | None = Field(default=None, description="Budget year the hours count in")
    reason: str
    purpose: Literal["deficit", "burnout_prevention"] = Field(
        default="deficit",
        description="burnout_prevention: a step added for a high burnout level (a community "
        "or consultation of prevention), not for a deficit",
    )
    practice_id: str | None = Field(
        default=None, description="An effective practice of the bank the step's reason cites"
    )


class RouteDrafted(Contract):
    route_id: str
    diagnosis_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    steps: list[RouteStep]
    total_hours: int
    supersedes: str | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    hours_by_period: dict[str, int] = Field(
        default_factory=dict, description="Budget year -> hours planned in it"
    )
    rules_version: str | None = Field(default=None, description="Version of the drafting rules")


StepDigest = digest(RouteStep, without={"reason"})
RouteDraftedDigest = digest(RouteDrafted, nested={"steps": list[StepDigest]})  # type: ignore[valid-type]
"""``routes.route.drafted`` without every step's reason (the longest text it carries): what
monitoring counts of a route (its steps' kinds and tutors)."""


class MethodistAssigned(Contract):
    route_id: str
    teacher_id: str
    methodist_id: str
    municipality_id: str
    load: int = Field(description="The methodist's number of routes after this assignment")
    capacity: int
    previous_methodist_id: str | None = Field(
        default=None, description="Set when a rebalance moves the route from another methodist"
    )
    reason: str = ""


class MethodistUnavailable(Contract):
    route_id: str
    teacher_id: str
    municipality_id: str
    reason: str


class Approval(Contract):
    role: Literal["teacher", "methodist", "management"]
    by: str = Field(description="Pseudonymous id of who approved")
    at: datetime


class RouteAgreed(Contract):
    """The teacher, the methodist and the school's management have each approved."""

    route_id: str
    teacher_id: str
    municipality_id: str
    methodist_id: str | None
    approvals: list[Approval]
    active: bool = Field(description="True when the route starts at once (its start has come)")


class StepCompleted(Contract):
    route_id: str
    teacher_id: str
    municipality_id: str
    step_id: str
    kind: StepKind
    competency: str
    program_id: str | None = None
    site_id: str | None = Field(default=None, description="Internship site (an internship step)")
    completed_by: Literal["course_event", "methodist", "attendance"] = Field(
        description="course_event: a provider's event on the courses stream (a course or an "
        "internship); methodist: the route's methodist marked it done; attendance: the "
        "teacher attended a matching activity (a consultation or a community meeting)"
    )
    activity_id: str | None = Field(
        default=None, description="The activity whose attendance completed it (attendance)"
    )
    completed_on: date


class RouteCompleted(Contract):
    route_id: str
    teacher_id: str
    municipality_id: str
    methodist_id: str | None
    by: Literal["all_steps", "end_date"]
    steps_done: int
    steps_total: int


class RouteCancelled(Contract):
    route_id: str
    teacher_id: str
    municipality_id: str
    reason: str
    code: Literal["diagnosis_cancelled", "teacher_removed", "replaced", "operator", "methodist"] = (
        "operator"
    )


class CourseEvent(Contract):
    """A course enrolment or completion, as a further-education provider or the federal
    portal publishes it (inbound stream ``iomflow.routes.courses.inbound``).

    The course is named by its program id in the regional registry (``program_id``) or by
    its number in the Federal registry of programs (``federal_number``).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": ["program_id"]}, {"required": ["federal_number"]}],
            "examples": [
                {
                    "teacher_id": "t-000123",
                    "program_id": "prog-0042",
                    "external_id": "iro-2026-enr-0001",
                    "on": "2026-10-01",
                },
                {
                    "teacher_id": "t-000123",
                    "federal_number": "ФР-2026-0117",
                    "external_id": "fp-2026-done-0001",
                    "on": "2026-11-20",
                    "hours": 36,
                    "passed": True,
                },
            ],
        }
    )

    teacher_id: str = Field(min_length=1, max_length=100)
    program_id: str | None = Field(default=None, min_length=1, max_length=100)
    federal_number: str | None = Field(default=None, min_length=1, max_length=100)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    on: date = Field(description="Day of the enrolment or completion")
    hours: int | None = Field(default=None, ge=1, description="Hours studied (completion)")
    passed: bool = Field(default=True, description="Completion: the final assessment passed")

    @model_validator(mode="after")
    def _names_a_course(self) -> CourseEvent:
        if not self.program_id and not self.federal_number:
            raise ValueError("a course event needs program_id or federal_number")
        return self


class InternshipEvent(Contract):
    """An internship completed at a regional internship site, as the site or the provider
    publishes it (inbound stream ``iomflow.routes.courses.inbound``, type
    ``courses.internship.completed``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "teacher_id": "t-000123",
                    "site_id": "site-007",
                    "external_id": "iro-2026-int-0001",
                    "on": "2026-11-20",
                    "hours": 16,
                }
            ],
        }
    )

    teacher_id: str = Field(min_length=1, max_length=100)
    site_id: str = Field(min_length=1, max_length=100, description="Internship site's id")
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    on: date = Field(description="Day the internship ended")
    hours: int | None = Field(default=None, ge=1)


class TrainingCompleted(Contract):
    """A teacher completed a course (ПК or ПП) or an internship — inside a route or not.

    Routes publishes one for every completion it takes (a course or internship event from
    outside, or a program or internship step a methodist marked done); monitoring counts
    training from these and from nothing else. ``training_id`` names the training, not the
    event: ``<teacher>:program:<program_id>`` or ``<teacher>:site:<site_id>``, so a route
    step's completion and the same course's completion are one training, and a replay
    writes the same fact again."""

    training_id: str = Field(description="<teacher>:program:<id> or <teacher>:site:<id>")
    teacher_id: str
    municipality_id: str
    organization_id: str
    kind: Literal["course", "internship"]
    program_id: str | None = Field(default=None, description="The course's regional program")
    site_id: str | None = Field(default=None, description="The internship's site")
    completed_on: date
    hours: int | None = None
    route_id: str | None = Field(default=None, description="The route whose step it completed")
    step_id: str | None = None
    source: Literal["course_event", "internship_event", "methodist"] = Field(
        description="A provider's event, or a methodist marking a step done"
    )


ActivityKind = Literal["event", "seminar", "webinar", "consultation", "community_meeting"]
ActivityLevel = Literal["regional", "municipal", "school"]


class ActivityHeld(Contract):
    """A regional, municipal or school activity held: an event, a seminar, a webinar, a
    consultation or a meeting of a professional community (roadmap 33, 34, 38; a School of
    the Ministry team's consultation, 003 item 18). Recorded by a methodist or a municipal
    service; its attendance is published one ``routes.activity.attended`` per teacher."""

    activity_id: str
    kind: ActivityKind
    title: str
    level: ActivityLevel
    organiser_id: str = Field(description="cnppm, a municipality's or an organisation's id")
    format: Literal["in_person", "distance", "mixed"]
    held_on: date
    hours: int | None = Field(default=None, ge=1)
    municipality_id: str | None = None
    organization_id: str | None = None
    competencies: Codes = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)
    target: Literal["teachers", "school_team", "community"] = "teachers"
    team_id: str | None = Field(default=None, description="The school team it was for")
    community_id: str | None = Field(default=None, description="The community that met")
    methodist_id: str | None = Field(default=None, description="Who held or recorded it")
    project: Project | None = None
    attendees: int = Field(ge=0, description="Teachers recorded as attending")


class ActivityAttended(Contract):
    """One teacher took part in an activity. Keyed by ``attendance_id``
    (``<activity>:<teacher>``): a second recording of the same attendance is the same fact."""

    attendance_id: str
    activity_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    kind: ActivityKind
    level: ActivityLevel
    held_on: date
    competencies: Codes = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)
    team_id: str | None = None
    community_id: str | None = None
    route_id: str | None = Field(default=None, description="The route whose step it completed")
    step_id: str | None = None


class PlanAction(Contract):
    action_id: str
    kind: Literal["activity", "internship", "mentoring", "consultation", "course", "other"]
    title: str
    due_on: date
    done_on: date | None = None
    responsible_id: str = Field(description="The responsible methodist")


class SupportPlanUpdated(Contract):
    """The support plan of a school with low results (roadmap 40–41): its actions, the
    responsible methodist and due dates, whole as it is now."""

    plan_id: str
    organization_id: str
    municipality_id: str
    methodist_id: str
    status: Literal["active", "closed"] = "active"
    starts_on: date
    actions: list[PlanAction] = Field(default_factory=list)


# --- monitoring ----------------------------------------------------------------------------

AlertKind = Literal[
    "kpi_off_path",
    "methodist_over_capacity",
    "routes_waiting",
    "diagnosis_without_route",
    "registry_stale",
    "dead_letters",
    "team_without_consultation",
    "plan_action_overdue",
    "burnout_risk_rising",
]


class AlertRaised(Contract):
    """Something an operator should look at, raised once until it is resolved."""

    alert_id: str = Field(description="Stable: the same condition keeps the same id")
    kind: AlertKind
    severity: Literal["warning", "critical"]
    subject: str = Field(description="What it is about: a KPI, methodist, stream, register")
    municipality_id: str | None = None
    message: str = Field(description="For people, in Russian")
    value: float | None = None
    threshold: float | None = None


class AlertResolved(Contract):
    alert_id: str
    kind: AlertKind
    subject: str


# --- the registry of types -----------------------------------------------------------------

EVENT_TYPES: dict[str, type[Contract]] = {
    **{f"registry.{entity}.upserted": model for entity, model in REGISTERS.values()},
    **{f"registry.{entity}.removed": RecordRemoved for entity, _ in REGISTERS.values()},
    "registry.stale": RegistryStale,
    "diagnostics.result.submitted": ResultSubmitted,
    "diagnostics.diagnosis.completed": DiagnosisCompleted,
    "diagnostics.diagnosis.revised": DiagnosisRevised,
    "diagnostics.diagnosis.cancelled": DiagnosisCancelled,
    "diagnostics.needs.submitted": NeedsSubmitted,
    "diagnostics.needs.recorded": NeedsRecorded,
    "routes.route.drafted": RouteDrafted,
    "routes.methodist.assigned": MethodistAssigned,
    "routes.methodist.unavailable": MethodistUnavailable,
    "routes.route.agreed": RouteAgreed,
    "routes.step.completed": StepCompleted,
    "routes.route.completed": RouteCompleted,
    "routes.route.cancelled": RouteCancelled,
    "routes.training.completed": TrainingCompleted,
    "routes.activity.held": ActivityHeld,
    "routes.activity.attended": ActivityAttended,
    "routes.plan.updated": SupportPlanUpdated,
    "monitoring.alert.raised": AlertRaised,
    "monitoring.alert.resolved": AlertResolved,
    "courses.course.enrolled": CourseEvent,
    "courses.course.completed": CourseEvent,
    "courses.internship.completed": InternshipEvent,
}
"""Event type -> payload model (of the type's current version, ``event_version``)."""


def _stream_of(type_: str) -> str:
    if type_.startswith("registry."):
        return Streams.REGISTRY
    if type_ in ("diagnostics.result.submitted", "diagnostics.needs.submitted"):
        return Streams.RESULTS_INBOUND
    if type_.startswith("diagnostics."):
        return Streams.DIAGNOSTICS
    if type_.startswith("routes."):
        return Streams.ROUTES
    if type_.startswith("courses."):
        return Streams.COURSES_INBOUND
    if type_.startswith("monitoring."):
        return Streams.MONITORING
    raise KeyError(type_)


STREAM_OF: dict[str, str] = {type_: _stream_of(type_) for type_ in EVENT_TYPES}
"""Event type -> the one stream that carries it. A consumer dead-letters a known type
read from any other stream (``wrong_stream``), never skips it."""


def types_of(stream: str) -> frozenset[str]:
    """Every event type that ``stream`` carries."""
    return frozenset(t for t, s in STREAM_OF.items() if s == stream)


EVENT_VERSIONS: dict[str, int] = {}
"""Event type -> its current contract version, for the types past version 1 (a type not
listed is at version 1). Raise it for a change that is not backward compatible: see
docs/VERSIONING.md; ``iomflow contracts`` refuses such a change under the same version."""


def event_version(type_: str) -> int:
    """The current contract version of ``type_``: what producers write in ``version``."""
    return EVENT_VERSIONS.get(type_, 1)


INBOUND_TYPES = (
    "diagnostics.result.submitted",
    "diagnostics.needs.submitted",
    "courses.course.enrolled",
    "courses.course.completed",
    "courses.internship.completed",
)
"""Types that outside publishers write; each gets a JSON Schema file for them."""


def new_event(type_: str, payload: Contract, *, source: str, subject: str) -> Event[Any]:
    """Wrap a payload in a fresh envelope with a producer-assigned id."""
    if EVENT_TYPES.get(type_) is not type(payload):
        raise TypeError(f"{type(payload).__name__} is not the contract of {type_}")
    return Event(
        event_id=uuid.uuid4(),
        type=type_,
        version=event_version(type_),
        source=source,
        occurred_at=datetime.now(UTC),
        subject=subject,
        payload=payload,
    )


def entry_schema(
    type_: str, ref_template: str = "#/$defs/{model}"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """JSON Schema of one stream entry of ``type_`` as it is on the wire, and its definitions.

    Every field of a stream entry is a string; ``data`` is a JSON document whose schema is
    given as ``contentSchema`` (JSON Schema 2020-12).
    """
    model = EVENT_TYPES[type_]
    payload = model.model_json_schema(ref_template=ref_template)
    defs = {**payload.pop("$defs", {}), model.__name__: payload}
    described = Envelope.model_json_schema()["properties"]

    def text(name: str, **extra: Any) -> dict[str, Any]:
        return {"type": "string", "description": described[name].get("description", ""), **extra}

    schema = {
        "title": type_,
        "description": "Fields of one Redis stream entry (XADD <stream> * field value ...). "
        "All values are strings; data is the payload as JSON.",
        "type": "object",
        "properties": {
            "event_id": text("event_id", format="uuid"),
            "type": {"type": "string", "const": type_},
            "version": {
                "type": "string",
                "const": str(event_version(type_)),
                "description": "Contract version of the payload",
            },
            "source": text("source", minLength=1, maxLength=200),
            "occurred_at": text("occurred_at", format="date-time"),
            "subject": text("subject", minLength=1, maxLength=200),
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": ref_template.format(model=model.__name__)},
            },
            "traceparent": {
                "type": "string",
                "description": "W3C trace context (optional)",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            },
            "tracestate": {"type": "string"},
        },
        "required": ["event_id", "type", "source", "occurred_at", "subject", "data"],
    }
    return schema, defs


def inbound_schema(type_: str) -> dict[str, Any]:
    """The standalone JSON Schema file of one inbound event, for outside publishers."""
    schema, defs = entry_schema(type_)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://iomflow.example/contracts/{type_}.schema.json",
        **schema,
        "$defs": defs,
    }
