"""The answers of monitoring's HTTP API as pydantic models (``XRead``), so that the OpenAPI
document says what each operation returns and FastAPI checks it. The rules make plain data
(``domain.evaluate``, ``report.content``, the dead-letter core); these models only describe
it, field for field, with the names and values the pages, the CLI and the tests read."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from iomflow.monitoring.domain import Status, TrackedState

Counts = dict[str, int]
"""teachers, diagnosed (ever), with_route and supported (now); empty for a level with none."""


# --- KPI values --------------------------------------------------------------------------


class TargetRead(BaseModel):
    value: float
    source: str = Field(description="Where the target is written")


class PeriodRead(BaseModel):
    label: str = Field(description="The period the value is judged for, in Russian")
    passed: bool = Field(description="The deadline has passed")


class AtDeadlineRead(BaseModel):
    on: date = Field(description="The KPI's deadline")
    value: float | None = Field(description="Its value on that day")
    met: bool | None = Field(description="Whether it was met then (None: not judged)")


class KpiRead(BaseModel):
    """One KPI's value for one level (the region, a municipality, an organisation)."""

    code: str
    name: str
    unit: str
    value: float | None = Field(description="None: nothing to count")
    numerator: int
    population: int
    target: float | None = Field(description="The target in force")
    targets: list[TargetRead]
    comparison: str = Field(description=">=, <=, growth or decline (lower than a year ago)")
    deadline: date | None
    accumulation: str = Field(
        description="cumulative, yearly, monthly, current or held_in_year (holding at any "
        "time of the year)"
    )
    met: bool | None = Field(description="None: not judged at this level")
    status: Status
    period: PeriodRead
    at_deadline: AtDeadlineRead | None = Field(description="Where it stood on its deadline")
    forecast: float | None = Field(description="At the pace of the last 90 days")
    clause: str = Field(description="The clause of Appendix 1")
    breakdown: dict[str, int] | None = Field(
        default=None,
        description="Distinct members counted per value of an attribute (expert_involvement: "
        "per kind of expert role); None for a KPI without one",
    )


class LevelRead(BaseModel):
    counts: Counts
    kpis: list[KpiRead]


class MunicipalityKpisRead(BaseModel):
    municipality_id: str | None = Field(description="None: members with no municipality")
    name: str | None
    counts: Counts
    kpis: list[KpiRead]


class RegionKpisRead(BaseModel):
    """Every KPI for the region and each municipality as of a day."""

    as_of: date
    source: str = Field(description="Where the KPIs and targets are written")
    region: LevelRead
    municipalities: list[MunicipalityKpisRead]
    computed_at: str = Field(description="When the answer was computed (ISO 8601)")


class OrganizationKpisRead(BaseModel):
    organization_id: str | None
    name: str | None
    kpis: list[KpiRead]


class MunicipalityRead(BaseModel):
    """A municipality's KPIs and each of its organisations'."""

    as_of: date
    municipality_id: str
    name: str
    counts: Counts
    kpis: list[KpiRead]
    organizations: list[OrganizationKpisRead]


class PointRead(BaseModel):
    on: date
    value: float | None


class SeriesRead(BaseModel):
    """One KPI month by month."""

    code: str
    name: str
    municipality_id: str | None
    points: list[PointRead]


# --- alerts, tracked items, counts -------------------------------------------------------


class AlertRead(BaseModel):
    alert_id: str
    kind: str = Field(description="What was detected, e.g. kpi_off_path")
    severity: str
    subject: str
    municipality_id: str | None
    message: str = Field(description="In Russian")
    value: float | None
    threshold: float | None
    raised_at: str | None = Field(description="ISO 8601, UTC")
    resolved_at: str | None = Field(description="None while open")
    acknowledged_by: str | None
    acknowledged_at: str | None


class TrackedPeriodRead(BaseModel):
    period: str = Field(description="A year, or once")
    label: str
    due: date
    status: Status
    recorded: TrackedState | None = Field(description="What an operator recorded")
    recorded_words: str | None
    evidence: str | None
    recorded_by: str | None
    recorded_at: str | None = Field(description="ISO 8601")


class TrackedRead(BaseModel):
    """A row of Appendix 1 that is a measure taken, with each period's status."""

    code: str
    name: str
    target: str
    recurrence: str = Field(description="once or yearly")
    deadline: date | None
    since: int | None
    clause: str
    appendix_rows: list[int]
    periods: list[TrackedPeriodRead]


class StatsRead(BaseModel):
    """Members and facts kept: teachers, diagnosed, with_route, supported and facts_<kind>."""

    model_config = {"extra": "allow"}

    teachers: int
    diagnosed: int
    with_route: int
    supported: int


# --- the yearly report -------------------------------------------------------------------


class PreviousRead(BaseModel):
    value: float | None
    numerator: int | None
    population: int | None
    status: Status
    status_name: str


class ReportKpiRead(KpiRead):
    number: int
    short_name: str
    measure: str
    status_name: str
    basis: str = Field(description="What the value is computed from, in Russian")
    previous: PreviousRead | None = Field(description="A year earlier")
    change: float | None
    trend: str | None = Field(description="better, worse or same")


class ReportValueRead(BaseModel):
    code: str
    value: float | None
    numerator: int | None
    population: int | None
    met: bool | None
    status: Status


class ReportMunicipalityRead(BaseModel):
    municipality_id: str
    name: str | None
    counts: Counts
    kpis: list[ReportValueRead]


class TieRead(BaseModel):
    count: int
    value: float | None
    text: str


class BehindRead(BaseModel):
    municipality_id: str
    name: str | None
    value: float | None
    numerator: int | None
    population: int | None
    gap: float | None
    text: str


class KpiRecommendationRead(BaseModel):
    code: str
    name: str
    short_name: str
    status: Status
    status_name: str
    value: float | None
    target: float | None
    unit: str
    text: str
    behind: int
    compared: int
    tied: TieRead | None
    municipalities: list[BehindRead]


class KpisTieRead(BaseModel):
    count: int
    gap: float
    kpis: list[str]
    text: str


class BehindKpiRead(BaseModel):
    number: int
    code: str
    name: str
    value: float | None
    target: float | None
    unit: str
    gap: float | None
    text: str


class MunicipalityRecommendationRead(BaseModel):
    municipality_id: str
    name: str | None
    tied: KpisTieRead | None
    kpis: list[BehindKpiRead]


class RecommendationsRead(BaseModel):
    kpis: list[KpiRecommendationRead]
    municipalities: list[MunicipalityRecommendationRead]


class ReportPeriodRead(TrackedPeriodRead):
    status_name: str
    recorded_date: date | None
    evidence_text: str


class ReportTrackedRead(BaseModel):
    code: str
    name: str
    target: str
    recurrence: str
    clause: str
    appendix_rows: list[int]
    short_name: str
    periods: list[ReportPeriodRead]


class SourceTargetRead(TargetRead):
    in_force: bool
    unit: str


class SourceRead(BaseModel):
    number: int
    code: str
    name: str
    clause: str
    targets: list[SourceTargetRead]


class ConclusionRead(BaseModel):
    kind: str
    text: str
    items: list[str]


class ReportRead(BaseModel):
    """The yearly report as data: what the workbook, the page and the PDF show."""

    year: int
    as_of: date
    final: bool = Field(description="The year is over")
    title: str
    region_name: str
    prepared_by: str
    made_on: date | None
    previous_as_of: date | None
    source: str
    counts: Counts
    summary: dict[str, int] = Field(description="The region's KPIs by status")
    kpis: list[ReportKpiRead]
    municipalities: list[ReportMunicipalityRead]
    recommendations: RecommendationsRead
    tracked: list[ReportTrackedRead]
    sources: list[SourceRead]
    conclusions: list[ConclusionRead]


class YearlyLinksRead(BaseModel):
    json_: str = Field(alias="json", serialization_alias="json")
    xlsx: str
    print: str
    pdf: str


class ReportsRead(BaseModel):
    """The reports there are."""

    yearly: YearlyLinksRead
    pdf_engine: str | None = Field(description="chromium, weasyprint or None")
    prepared_by: str
    analytics_xlsx: str | None = Field(description="The diagnostics service's workbook")


# --- the operator's console --------------------------------------------------------------


class StreamRead(BaseModel):
    stream: str
    group: str
    length: int
    dlq_length: int
    consumers: int
    pending: int
    lag: int | None
    lag_exact: bool
    last_delivered_id: str | None
    dlq: str


class StreamsRead(BaseModel):
    streams: list[StreamRead]
    at: str = Field(description="When it was read (ISO 8601)")


class LetterRead(BaseModel):
    id: str
    dlq: str
    stream: str
    type: str
    event_id: str
    subject: str
    reason: str
    group: str
    deliveries: int
    at: str
    entry_id: str


class LetterListedRead(LetterRead):
    error: str = Field(description="The error, cut at 2000 characters")
    error_cut: bool


class LetterFullRead(LetterRead):
    error: object = Field(description="The error: text, or the JSON it was")
    envelope: dict[str, str]
    data: object = Field(description="The event's data (JSON), or its text")


class DlqRead(BaseModel):
    stream: str
    dlq: str
    count: int
    matching: int
    scanned: int
    reasons: dict[str, int]
    entries: list[LetterListedRead]


class DeadLettersRead(BaseModel):
    dlqs: list[DlqRead]
    scan_limit: int


class ReplayedRead(BaseModel):
    id: str
    also: list[str] = Field(description="The other letters of the same event, gone with it")
    dlq: str
    stream: str
    entry_id: str = Field(description="The entry added to the stream")
    event_id: str
    groups: list[str]


class SpanRead(BaseModel):
    span_id: str | None
    parent_id: str | None
    depth: int
    service: str | None
    name: str | None
    kind: str | None
    status: str | None
    offset_ms: float
    duration_ms: float
    event_type: str | None
    group: str | None
    diagnosis_id: str | None
    attributes: dict[str, object]


class TraceRead(BaseModel):
    trace_id: str
    started_at: str
    duration_ms: float
    services: list[str]
    errors: int
    spans: list[SpanRead]


class TracesRead(BaseModel):
    id: str
    source: str
    traces: list[TraceRead]
