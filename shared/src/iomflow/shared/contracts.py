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
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# --- streams -------------------------------------------------------------------------------


class Streams:
    """Stream names, in one place. A dead-letter stream is ``<stream>.dlq``."""

    REGISTRY = "iomflow.registry.events"
    RESULTS_INBOUND = "iomflow.diagnostics.results.inbound"
    DIAGNOSTICS = "iomflow.diagnostics.events"
    ROUTES = "iomflow.routes.events"
    MONITORING = "iomflow.monitoring.events"

    @staticmethod
    def dlq(stream: str) -> str:
        return f"{stream}.dlq"


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
    occurred_at: datetime
    subject: str = Field(min_length=1, max_length=200, description="Pseudonymous id")
    data: dict[str, Any]


P = TypeVar("P", bound=Contract)


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


class Audience(StrEnum):
    PRESCHOOL = "preschool"
    GENERAL = "general"
    COLLEGE = "college"


class MunicipalityUpserted(Contract):
    municipality_id: str
    name: str = Field(description="Official name (public, not personal data)")
    remote: bool = Field(default=False, description="Remote municipality: distance formats suit")


class OrganizationUpserted(Contract):
    organization_id: str
    municipality_id: str
    name: str
    kind: Literal["school", "kindergarten", "college", "other"]
    low_results: bool = False
    unfavorable_conditions: bool = False


class TeacherUpserted(Contract):
    teacher_id: str = Field(description="Pseudonymous id; personal data stays in registries")
    organization_id: str
    municipality_id: str
    position: str
    audience: Audience
    subjects: list[str] = Field(default_factory=list)
    age_band: Literal["<25", "25-34", "35-44", "45-54", "55+"]
    experience_band: Literal["<3", "3-10", "10-20", "20+"]
    is_manager: bool = False


class MethodistUpserted(Contract):
    methodist_id: str
    specialisations: list[str] = Field(description="Competency codes the methodist supports")
    municipalities: list[str] = Field(description="Municipalities served; empty = the region")
    capacity: int = Field(default=250, ge=1, le=250)


class ProgramUpserted(Contract):
    program_id: str
    title: str
    kind: Literal["pk", "pp"] = Field(description="ПК (further training) or ПП (retraining)")
    hours: int = Field(ge=1)
    format: Literal["in_person", "distance", "network", "internship"]
    federal_registry: bool = False
    competencies: list[str] = Field(min_length=1)
    audiences: list[Audience] = Field(min_length=1)


# --- diagnostics ---------------------------------------------------------------------------


class Instrument(StrEnum):
    STANDARDIZED_TEST = "standardized_test"
    EXPERT_EVALUATION = "expert_evaluation"
    PROFESSIONAL_RESULTS = "professional_results"
    SELF_DIAGNOSIS = "self_diagnosis"
    BURNOUT_SURVEY = "burnout_survey"


class ResultSubmitted(Contract):
    """One instrument's result for one teacher, as an outside publisher sends it."""

    teacher_id: str = Field(min_length=1, max_length=100)
    instrument: Instrument
    campaign_id: str = Field(default="default", min_length=1, max_length=100)
    scores: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(
        min_length=1, description="Competency code -> score on a 0..100 scale"
    )


class Level(StrEnum):
    CRITICAL = "critical_deficit"
    DEFICIT = "deficit"
    SUFFICIENT = "sufficient"
    ADVANCED = "advanced"


class CompetencyResult(Contract):
    code: str
    score: float
    level: Level


class DiagnosisCompleted(Contract):
    diagnosis_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    campaign_id: str
    framework_version: str
    competencies: list[CompetencyResult]
    deficits: list[CompetencyResult] = Field(description="Most severe first")


# --- routes --------------------------------------------------------------------------------


class RouteStep(Contract):
    competency: str
    kind: Literal["program", "consultation"]
    program_id: str | None = None
    hours: int
    reason: str


class RouteDrafted(Contract):
    route_id: str
    diagnosis_id: str
    teacher_id: str
    organization_id: str
    municipality_id: str
    steps: list[RouteStep]
    total_hours: int
    supersedes: str | None = None


class MethodistAssigned(Contract):
    route_id: str
    teacher_id: str
    methodist_id: str
    municipality_id: str
    load: int = Field(description="The methodist's number of routes after this assignment")
    capacity: int


class MethodistUnavailable(Contract):
    route_id: str
    teacher_id: str
    municipality_id: str
    reason: str


# --- the registry of types -----------------------------------------------------------------

EVENT_TYPES: dict[str, type[Contract]] = {
    "registry.municipality.upserted": MunicipalityUpserted,
    "registry.organization.upserted": OrganizationUpserted,
    "registry.teacher.upserted": TeacherUpserted,
    "registry.methodist.upserted": MethodistUpserted,
    "registry.program.upserted": ProgramUpserted,
    "diagnostics.result.submitted": ResultSubmitted,
    "diagnostics.diagnosis.completed": DiagnosisCompleted,
    "routes.route.drafted": RouteDrafted,
    "routes.methodist.assigned": MethodistAssigned,
    "routes.methodist.unavailable": MethodistUnavailable,
}
"""Event type -> payload model (version 1 of each)."""

INBOUND_TYPES = ("diagnostics.result.submitted",)
"""Types that outside publishers write; each gets a JSON Schema file for them."""


def new_event(type_: str, payload: Contract, *, source: str, subject: str) -> Event[Any]:
    """Wrap a payload in a fresh envelope with a producer-assigned id."""
    if EVENT_TYPES.get(type_) is not type(payload):
        raise TypeError(f"{type(payload).__name__} is not the contract of {type_}")
    return Event(
        event_id=uuid.uuid4(),
        type=type_,
        version=1,
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
                "const": "1",
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
