"""The registries' HTTP bodies and answers (pydantic): what ``api`` takes and gives.

A record's own fields differ per register (``domain.REGISTRY``: its ``record`` model), so
``RecordRead`` declares the fields every record carries (its verification) and allows the
register's; ``GET /v1/registers`` lists each register's columns.


A field named ``register`` is ``register_`` here (``register`` is a method of every
model); it is ``register`` in the JSON (its alias).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel

from iomflow.shared.contracts import Codes, ExpertKind, PracticeUpserted, Theme


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


Moment = Annotated[datetime, AfterValidator(_utc)]
"""A moment with its offset: SQLite gives stored ones back naive, in UTC."""


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ColumnRead(Model):
    """One column of a register, as a spreadsheet and a form show it."""

    field: str = Field(description="The field's code")
    title: str = Field(description="Its title in Russian (a spreadsheet's header)")
    required: bool
    values: dict[str, str] | None = Field(
        description="Allowed values: code -> Russian label (None: any value)"
    )
    personal: bool = Field(description="Personal data (a person's name, contacts, dates)")
    hint: str = Field(description="What to write, in Russian")


class RegisterRead(Model):
    """A register: its name, title, key, record count, columns."""

    register_: str = Field(alias="register", description="The register's name (in paths)")
    title: str
    key: str = Field(description="The field identifying a record")
    records: int = Field(ge=0, description="Records it holds")
    personal_data: bool = Field(description="Its records are persons (personal data kept)")
    event_types: list[str] = Field(description="The events it publishes: upserted, removed")
    columns: list[ColumnRead]


class Counts(RootModel[dict[str, int]]):
    """Register (or what was counted) -> count."""


class RecordRead(Model):
    """A record: its register's fields (``GET /v1/registers`` lists them) and when and by
    whom it was last verified. Teachers' dates are shown as bands unless read with the
    ``personal_data`` role and a purpose."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    verified_at: Moment | None = Field(default=None, description="Last confirmed true")
    verified_by: str | None = Field(default=None, description="Who confirmed it")
    updated_at: Moment | None = Field(default=None, description="Last changed")


class RecordCreate(RootModel[dict[str, Any]]):
    """Fields of the record (codes or Russian labels); persons may carry ``personal``:
    {full_name, snils, email, phone}."""


class RecordSaved(Model):
    record: RecordRead = Field(description="The record as stored (its register's fields)")
    changed: bool = Field(description="False when it was stored so already")


class RecordRemovedRead(Model):
    removed: str = Field(description="The removed record's id")


class VerifiedRead(Model):
    record_id: str
    verified_at: Moment
    verified_by: str


class PersonalRead(Model):
    """A person's name and contacts (the read is audited)."""

    register_: str = Field(alias="register")
    record_id: str
    full_name: str | None = None
    snils: str | None = None
    email: str | None = None
    phone: str | None = None


class AccessRead(Model):
    """One read of personal data: who, when, whose, why."""

    id: int
    at: Moment
    actor: str
    register_: str = Field(alias="register")
    record_id: str
    purpose: str


class ImportQueued(Model):
    import_id: str
    status: Literal["queued"]
    href: str = Field(description="Where to poll the job")


class Progress(Model):
    phase: str = Field(description="What the job does now, in Russian")
    done: int
    total: int | None


class RowErrorRead(Model):
    """A row's error: where (row, column, letter, field), the value, the reason."""

    row: int = Field(description="As the spreadsheet shows it (the header is row 1)")
    column: str
    letter: str = ""
    field: str = ""
    value: str
    reason: str = Field(description="In Russian")


class ImportSummary(Model):
    """What an import did (a failed one: ``message`` only)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    register_: str | None = Field(default=None, alias="register")
    mode: str | None = None
    applied: bool | None = None
    total_rows: int | None = None
    valid_rows: int | None = None
    error_rows: int | None = None
    created: int | None = None
    updated: int | None = None
    unchanged: int | None = None
    personal_updated: int | None = None
    verified: int | None = None
    published: int | None = None
    message: str | None = Field(default=None, description="In Russian")


class Change(Model):
    field: str
    title: str
    old: str | None = Field(description="As a person reads it (None: a hidden date)")
    new: str | None


class PreviewRow(Model):
    row: int
    record_id: str
    label: str = Field(description="The record as a person names it")
    changes: list[Change] | None = Field(default=None, description="Of an updated record")


class Preview(Model):
    """The first rows of each kind an import creates, updates, leaves unchanged."""

    created: list[PreviewRow] = []
    updated: list[PreviewRow] = []
    unchanged: list[PreviewRow] = []


class ImportRead(Model):
    """An import job: while it runs, its progress; when finished, its summary and errors."""

    import_id: str
    status: Literal["queued", "running", "done", "failed"]
    register_: str | None = Field(default=None, alias="register")
    filename: str | None = None
    mode: str | None = None
    confirm: bool | None = None
    actor: str | None = None
    created_at: Moment | None = None
    finished_at: Moment | None = None
    total_rows: int | None = None
    progress: Progress | None = Field(default=None, description="While it runs")
    summary: ImportSummary | None = None
    errors: list[RowErrorRead] | None = None
    preview: Preview | None = None
    marked_href: str | None = Field(
        default=None, description="The uploaded sheet with its errors marked, while kept"
    )


class StaleGroup(Model):
    register_: str = Field(alias="register")
    owner: str
    total: int
    stale: int = Field(description="Records verified before the cutoff")
    oldest: Moment | None = Field(description="The oldest verification")


class StaleRecord(Model):
    record_id: str
    owner: str
    verified_at: Moment | None
    verified_by: str | None


class StaleRead(Model):
    """Records overdue for verification: per register and owner, and their ids."""

    verify_before: Moment = Field(description="Records verified before this are stale")
    after_days: int
    groups: list[StaleGroup]
    records: dict[str, list[StaleRecord]] = Field(
        description="Register -> its stale records, the longest unverified first (at most "
        "``limit``; all of them: GET /v1/registers/{register}/records?stale=true, paged)"
    )


class StaleCheckRead(Model):
    groups: list[StaleGroup] = Field(description="The groups with stale records now")


class LoadRead(Model):
    received: dict[str, int] = Field(description="Register -> rows received")
    changed: dict[str, int] = Field(description="Register -> records created or updated")


Rows = list[dict[str, Any]] | None


class LoadCreate(Model):
    """Register -> rows (fields as JSON values; persons' personal fields inline); the
    registers left out are not touched. One field per register of ``domain.REGISTRY``."""

    model_config = ConfigDict(extra="forbid")

    municipalities: Rows = None
    organizations: Rows = None
    programs: Rows = None
    teachers: Rows = None
    management_teams: Rows = None
    methodists: Rows = None
    tutors: Rows = None
    mentors: Rows = None
    municipal_staff: Rows = None
    internship_sites: Rows = None
    innovation_sites: Rows = None
    communities: Rows = None
    practices: Rows = None
    school_teams: Rows = None
    mentoring_pairs: Rows = None
    expert_roles: Rows = None
    contests: Rows = None
    contest_entries: Rows = None


# --- the practices' course and expert activity ----------------------------------------------


class PracticeSubmit(Model):
    """A practice submitted to the bank: a practice record without its course (status,
    review, inclusion, replications come by the course's own requests)."""

    model_config = ConfigDict(extra="forbid")

    practice_id: str | None = Field(
        default=None, min_length=1, max_length=100, description="Made when left out"
    )
    title: str = Field(min_length=3, max_length=500)
    organization_id: str = Field(min_length=1, max_length=100)
    municipality_id: str | None = Field(default=None, description="The organisation's")
    competencies: Codes = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)
    year: int = Field(ge=2000, le=2100)
    author_id: str | None = Field(default=None, description="The author's teacher id")
    submitted_on: date | None = Field(default=None, description="Today when left out")


class PracticeReview(Model):
    """An expert's review: ``include`` (to be included in the bank), ``revise`` (back to
    its author, still submitted) or ``reject``."""

    model_config = ConfigDict(extra="forbid")

    reviewed_by: str = Field(
        min_length=1,
        max_length=100,
        description="A teacher with an expert role «practice_review» held on the day",
    )
    verdict: Literal["include", "revise", "reject"]
    review: str = Field(min_length=1, max_length=4000, description="The expert's conclusion")
    on: date | None = Field(default=None, description="Today when left out")


class PracticeInclude(Model):
    model_config = ConfigDict(extra="forbid")

    on: date | None = Field(default=None, description="Today when left out")


class ReplicationCreate(Model):
    """Where a practice of the bank was taken up, by whom, when."""

    model_config = ConfigDict(extra="forbid")

    organization_id: str = Field(min_length=1, max_length=100)
    by: str | None = Field(
        default=None, min_length=1, max_length=100, description="A teacher of that organisation"
    )
    on: date


class PracticeRead(PracticeUpserted):
    """A practice with where it is in its course (as ``registry.practice.upserted``)."""

    model_config = ConfigDict(extra="ignore")


class ExpertKindRead(Model):
    kind: ExpertKind
    title: str = Field(description="The kind in Russian")
    teachers: int = Field(ge=0, description="Distinct teachers with a role of the kind")
    roles: int = Field(ge=0)


class ExpertActivityRead(Model):
    """The year's expert activity: distinct teachers with an expert role held some day of
    the year, in all and by kind (a teacher of two kinds counts in each, once in all)."""

    year: int
    teachers: int = Field(ge=0)
    roles: int = Field(ge=0)
    by_kind: list[ExpertKindRead]
