"""The registers' rules: what each register keeps, how a record of it is checked
(``check_record``: its model, its own rules, its references), what it publishes. No I/O.

A register's *record* is what operators maintain (in the API and in spreadsheets) and what
this service stores; its *event* is what other services learn. For most registers the two
are the same model; teachers keep birth and hire dates and publish bands instead, and
registers tied to an organisation take the municipality from it when the row leaves it out.
People's names, СНИЛС, e-mails and phones are in ``personal``, never in a record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError, field_validator

from iomflow.registries.personal import PERSONAL_DATES, PersonalData
from iomflow.shared import fielderrors
from iomflow.shared.contracts import (
    REGISTERS,
    Audience,
    Category,
    CommunityUpserted,
    ContestEntryUpserted,
    ContestUpserted,
    Contract,
    ExpertRoleUpserted,
    InnovationSiteUpserted,
    InternshipSiteUpserted,
    ManagementMemberUpserted,
    ManagementRole,
    MentoringPairUpserted,
    MentorUpserted,
    MethodistUpserted,
    MunicipalityUpserted,
    MunicipalStaffUpserted,
    OrganizationKind,
    OrganizationUpserted,
    PracticeUpserted,
    ProgramUpserted,
    Project,
    SchoolTeamUpserted,
    SiteLevel,
    TeacherUpserted,
    Theme,
    TutorUpserted,
)

STALE_AFTER_DAYS = 183
"""Roadmap item 47: every register is re-verified at least every 6 months."""

# --- records that differ from their events -------------------------------------------------


class TeacherRecord(Contract):
    teacher_id: str = Field(min_length=1, max_length=100)
    organization_id: str = Field(min_length=1, max_length=100)
    municipality_id: str | None = None
    position: str = Field(min_length=2, max_length=200)
    audience: Audience | None = None
    subjects: list[str] = Field(default_factory=list)
    category: Category = Category.NONE
    birth_date: date
    hire_date: date
    is_manager: bool = False
    expert: bool = False

    @field_validator("birth_date")
    @classmethod
    def _plausible_age(cls, value: date) -> date:
        age = _years(value, date.today())
        if not 18 <= age <= 85:
            raise ValueError(f"возраст {age} лет вне допустимого диапазона 18–85")
        return value

    @field_validator("hire_date")
    @classmethod
    def _not_in_future(cls, value: date) -> date:
        if value > date.today():
            raise ValueError("дата начала педагогической работы в будущем")
        return value


def _located(model: type[Contract]) -> type[Contract]:
    """The record of an organisation-bound register: municipality may be left out."""
    return type(
        model.__name__.replace("Upserted", "Record"),
        (model,),
        {
            "__annotations__": {"municipality_id": str | None},
            "municipality_id": None,
            "__module__": __name__,
        },
    )


def _years(start: date, end: date) -> int:
    return end.year - start.year - ((end.month, end.day) < (start.month, start.day))


def age_band(age: int) -> str:
    return (
        "<25"
        if age < 25
        else "25-34"
        if age < 35
        else "35-44"
        if age < 45
        else ("45-54" if age < 55 else "55+")
    )


def experience_band(years: int) -> str:
    return "<3" if years < 3 else "3-10" if years < 10 else "10-20" if years < 20 else "20+"


def teacher_event(record: Contract, today: date) -> TeacherUpserted:
    assert isinstance(record, TeacherRecord)
    return teacher_event_of(record.model_dump(mode="json"), today)


def teacher_event_of(data: Mapping[str, Any], today: date) -> TeacherUpserted:
    """The event of a stored teacher record (its JSON data): bands instead of dates."""
    age = _years(date.fromisoformat(data["birth_date"]), today)
    experience = max(0, _years(date.fromisoformat(data["hire_date"]), today))
    return TeacherUpserted(
        **{k: v for k, v in data.items() if k not in ("birth_date", "hire_date")},
        age_band=age_band(age),
        experience_band=experience_band(experience),
        young=age < 35 and experience < 3,
    )


# --- the register specs --------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """``field`` of a record names a record of ``register`` (a list field: each item)."""

    field: str
    register: str
    many: bool = False


@dataclass(frozen=True)
class Register:
    name: str  # plural, as in URLs and files: "teachers"
    title: str  # Russian, for people
    key: str
    record: type[Contract]
    event: type[Contract]
    owner: Callable[[Mapping[str, Any]], str]
    references: tuple[Reference, ...] = ()
    person: bool = False
    checks: Callable[[Contract], list[tuple[str, str]]] = field(default=lambda _: [])
    to_event: Callable[[Mapping[str, Any], date], Contract] | None = None
    """The event of a stored record's data, where it is not the record itself."""

    @property
    def entity(self) -> str:
        return REGISTERS[self.name][0]

    @property
    def upserted(self) -> str:
        return f"registry.{self.entity}.upserted"

    @property
    def removed(self) -> str:
        return f"registry.{self.entity}.removed"

    @property
    def located(self) -> bool:
        """Tied to an organisation whose municipality the record inherits."""
        return "organization_id" in self.record.model_fields and (
            "municipality_id" in self.record.model_fields
        )

    def event_of(self, data: Mapping[str, Any], today: date) -> Contract:
        """The event of a stored record (its validated JSON data), checked against the
        event's contract."""
        if self.to_event is not None:
            return self.to_event(data, today)
        return self.event.model_validate(data)

    @property
    def personal_dates(self) -> tuple[str, ...]:
        """The fields of its record that are personal dates (``PERSONAL_DATES``)."""
        return tuple(name for name in PERSONAL_DATES if name in self.record.model_fields)

    @property
    def bands(self) -> tuple[str, ...]:
        """The fields its event carries in place of the personal dates."""
        if not self.personal_dates:
            return ()
        return tuple(
            name for name in self.event.model_fields if name not in self.record.model_fields
        )

    def fields(self, dates: bool) -> list[str]:
        """Its record's fields as shown: with the personal dates, or with their bands in
        their place."""
        names = list(self.record.model_fields)
        if dates or not self.personal_dates:
            return names
        at = names.index(self.personal_dates[0])
        rest = [name for name in names if name not in self.personal_dates]
        return rest[:at] + list(self.bands) + rest[at:]

    def banded(self, shown: Mapping[str, Any], today: date) -> dict[str, Any]:
        """A stored record as shown without the ``personal_data`` role: its personal dates
        replaced by the bands of its event as of ``today``, computed as the event does.
        ``shown`` may carry more than the record (its verification)."""
        if not self.personal_dates:
            return dict(shown)
        data = {name: shown[name] for name in self.record.model_fields if name in shown}
        event = self.event_of(data, today).model_dump(mode="json")
        kept = {k: v for k, v in shown.items() if k not in self.personal_dates}
        return kept | {name: event[name] for name in self.bands}


def _program_checks(record: Contract) -> list[tuple[str, str]]:
    assert isinstance(record, ProgramUpserted)
    if record.federal_registry and not record.federal_number:
        return [("federal_number", "для программы из Федерального реестра укажите её номер")]
    if record.federal_number and not record.federal_registry:
        return [("federal_registry", "номер в Федеральном реестре указан, а признак — нет")]
    return []


def _teacher_checks(record: Contract) -> list[tuple[str, str]]:
    assert isinstance(record, TeacherRecord)
    if _years(record.birth_date, record.hire_date) < 16:
        return [("hire_date", "начало педагогической работы раньше 16 лет от даты рождения")]
    return []


def _period_checks(record: Contract) -> list[tuple[str, str]]:
    assert isinstance(record, InnovationSiteUpserted)
    if record.valid_to < record.valid_from:
        return [("valid_to", "окончание статуса раньше его начала")]
    return []


REGION = "region"
CNPPM = "cnppm"

MUNICIPALITY_REF = Reference("municipality_id", "municipalities")
ORGANIZATION_REF = Reference("organization_id", "organizations")
MUNICIPALITIES_REF = Reference("municipalities", "municipalities", many=True)

_SPECS = [
    Register(
        "municipalities",
        "Муниципальные образования",
        "municipality_id",
        MunicipalityUpserted,
        MunicipalityUpserted,
        owner=lambda r: REGION,
    ),
    Register(
        "organizations",
        "Образовательные организации",
        "organization_id",
        OrganizationUpserted,
        OrganizationUpserted,
        owner=lambda r: str(r["municipality_id"]),
        references=(MUNICIPALITY_REF,),
    ),
    Register(
        "programs",
        "Программы ДПО (ПК и ПП)",
        "program_id",
        ProgramUpserted,
        ProgramUpserted,
        owner=lambda r: str(r.get("provider") or CNPPM),
        checks=_program_checks,
    ),
    Register(
        "teachers",
        "Педагогические работники",
        "teacher_id",
        TeacherRecord,
        TeacherUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(ORGANIZATION_REF, MUNICIPALITY_REF),
        person=True,
        checks=_teacher_checks,
        to_event=teacher_event_of,
    ),
    Register(
        "management_teams",
        "Управленческие команды",
        "member_id",
        _located(ManagementMemberUpserted),
        ManagementMemberUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(ORGANIZATION_REF, MUNICIPALITY_REF, Reference("teacher_id", "teachers")),
    ),
    Register(
        "methodists",
        "Региональные методисты",
        "methodist_id",
        MethodistUpserted,
        MethodistUpserted,
        owner=lambda r: CNPPM,
        references=(MUNICIPALITIES_REF,),
        person=True,
    ),
    Register(
        "tutors",
        "Тьюторы ЦНППМ",
        "tutor_id",
        TutorUpserted,
        TutorUpserted,
        owner=lambda r: CNPPM,
        references=(MUNICIPALITIES_REF, Reference("programs", "programs", many=True)),
        person=True,
    ),
    Register(
        "mentors",
        "Наставники",
        "mentor_id",
        _located(MentorUpserted),
        MentorUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(ORGANIZATION_REF, MUNICIPALITY_REF),
        person=True,
    ),
    Register(
        "municipal_staff",
        "Специалисты муниципальных методических служб",
        "staff_id",
        MunicipalStaffUpserted,
        MunicipalStaffUpserted,
        owner=lambda r: str(r["municipality_id"]),
        references=(MUNICIPALITY_REF,),
        person=True,
    ),
    Register(
        "internship_sites",
        "Стажировочные площадки",
        "site_id",
        _located(InternshipSiteUpserted),
        InternshipSiteUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(ORGANIZATION_REF, MUNICIPALITY_REF),
    ),
    Register(
        "innovation_sites",
        "Инновационные площадки",
        "site_id",
        _located(InnovationSiteUpserted),
        InnovationSiteUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(ORGANIZATION_REF, MUNICIPALITY_REF),
        checks=_period_checks,
    ),
    Register(
        "communities",
        "Профессиональные педагогические сообщества",
        "community_id",
        CommunityUpserted,
        CommunityUpserted,
        owner=lambda r: str(r.get("municipality_id") or REGION),
        references=(MUNICIPALITY_REF,),
    ),
    Register(
        "practices",
        "Банк эффективных практик",
        "practice_id",
        _located(PracticeUpserted),
        PracticeUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(ORGANIZATION_REF, MUNICIPALITY_REF),
    ),
    Register(
        "school_teams",
        "Школьные и управленческие команды проектов",
        "team_id",
        _located(SchoolTeamUpserted),
        SchoolTeamUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(
            ORGANIZATION_REF,
            MUNICIPALITY_REF,
            Reference("members", "teachers", many=True),
            Reference("methodists", "methodists", many=True),
        ),
    ),
    Register(
        "mentoring_pairs",
        "Наставнические пары",
        "pair_id",
        _located(MentoringPairUpserted),
        MentoringPairUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(
            ORGANIZATION_REF,
            MUNICIPALITY_REF,
            Reference("mentor_id", "mentors"),
            Reference("mentee_id", "teachers"),
        ),
    ),
    Register(
        "expert_roles",
        "Экспертная деятельность педагогов",
        "role_id",
        _located(ExpertRoleUpserted),
        ExpertRoleUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(ORGANIZATION_REF, MUNICIPALITY_REF, Reference("teacher_id", "teachers")),
    ),
    Register(
        "contests",
        "Профессиональные конкурсы",
        "contest_id",
        ContestUpserted,
        ContestUpserted,
        owner=lambda r: CNPPM,
    ),
    Register(
        "contest_entries",
        "Участники профессиональных конкурсов",
        "entry_id",
        _located(ContestEntryUpserted),
        ContestEntryUpserted,
        owner=lambda r: str(r["organization_id"]),
        references=(
            ORGANIZATION_REF,
            MUNICIPALITY_REF,
            Reference("contest_id", "contests"),
            Reference("teacher_id", "teachers"),
        ),
    ),
]

REGISTRY: dict[str, Register] = {spec.name: spec for spec in _SPECS}
assert list(REGISTRY) == list(REGISTERS), "registers and contracts list the same registers"


def get(name: str) -> Register | None:
    return REGISTRY.get(name)


def digest(data: Mapping[str, Any]) -> str:
    """A stable fingerprint: a re-import of the same data changes nothing."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# --- how fields look to people (spreadsheets, exports) -------------------------------------

TITLES: dict[str, str] = {
    "municipality_id": "Код МО",
    "name": "Наименование",
    "remote": "Удалённое МО",
    "organization_id": "Код организации",
    "kind": "Тип",
    "low_results": "Низкие результаты",
    "unfavorable_conditions": "Неблагоприятные условия",
    "projects": "Проекты",
    "teacher_id": "Код педагога",
    "position": "Должность",
    "audience": "Уровень образования",
    "subjects": "Предметы",
    "category": "Квалификационная категория",
    "birth_date": "Дата рождения",
    "hire_date": "Начало педагогической работы",
    "age_band": "Возрастная группа",
    "experience_band": "Стаж (группа)",
    "young": "Молодой педагог",
    "is_manager": "Руководитель",
    "expert": "Эксперт",
    "member_id": "Код члена команды",
    "role": "Роль в команде",
    "methodist_id": "Код методиста",
    "specialisations": "Специализации (компетенции)",
    "municipalities": "Обслуживаемые МО",
    "capacity": "Предельная нагрузка",
    "tutor_id": "Код тьютора",
    "programs": "Программы",
    "mentor_id": "Код наставника",
    "staff_id": "Код специалиста",
    "program_id": "Код программы",
    "title": "Название",
    "hours": "Часы",
    "format": "Форма",
    "provider": "Организация-разработчик",
    "federal_registry": "В Федеральном реестре",
    "federal_number": "Номер в Федеральном реестре",
    "competencies": "Компетенции",
    "themes": "Тематика",
    "audiences": "Категории слушателей",
    "pedagogical": "Педагогической направленности (ПП)",
    "site_id": "Код площадки",
    "level": "Уровень",
    "valid_from": "Статус с",
    "valid_to": "Статус по",
    "community_id": "Код сообщества",
    "practice_id": "Код практики",
    "year": "Год",
    "full_name": "ФИО",
    "snils": "СНИЛС",
    "email": "Электронная почта",
    "phone": "Телефон",
}

LABELS: dict[type[StrEnum], dict[str, str]] = {
    OrganizationKind: {
        "school": "школа",
        "kindergarten": "детский сад",
        "college": "колледж",
        "other": "другое",
    },
    Audience: {"preschool": "дошкольное", "general": "общее", "college": "СПО"},
    Project: {
        "school_of_ministry": "Школа Минпросвещения России",
        "personal_potential": "Персональный потенциал",
        "tochka_rosta": "Точка роста",
        "professionalitet": "Профессионалитет",
        "kindergarten_of_ministry": "Детский сад Минпросвещения",
    },
    Theme: {
        "subject": "предметная",
        "functional_literacy": "функциональная грамотность",
        "updated_fgos": "обновлённые ФГОС",
        "digital_environment": "цифровая образовательная среда",
        "quality_assessment": "оценка качества образования",
        "gifted_children": "одарённые дети",
        "career_guidance": "профориентация",
        "upbringing": "воспитание",
        "preschool_quality": "качество дошкольного образования",
        "management": "управление",
        "burnout_prevention": "профилактика выгорания",
    },
    Category: {
        "none": "без категории",
        "first": "первая",
        "highest": "высшая",
        "methodist": "педагог-методист",
        "mentor": "педагог-наставник",
    },
    ManagementRole: {
        "director": "руководитель",
        "deputy": "заместитель руководителя",
        "head_of_department": "руководитель методического объединения",
        "other": "другое",
    },
    SiteLevel: {"federal": "федеральный", "regional": "региональный", "municipal": "муниципальный"},
}

LITERAL_LABELS: dict[str, dict[str, str]] = {
    "kind": {"pk": "ПК", "pp": "ПП"},
    "format": {
        "in_person": "очная",
        "distance": "дистанционная",
        "network": "сетевая",
        "internship": "стажировка",
    },
}
"""Labels of the Literal-typed program fields (by field name)."""


# --- checking a record -------------------------------------------------------------------


@dataclass
class Known:
    """What the registers hold already that rows refer to: register -> id -> record data."""

    records: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    def has(self, register: str, record_id: str) -> bool:
        return record_id in self.records.get(register, {})

    def get(self, register: str, record_id: str) -> Mapping[str, Any] | None:
        return self.records.get(register, {}).get(record_id)


def _reason(error: Any) -> str:
    """A record's field error said for a sheet's cell: dates as a sheet writes them, yes/no
    in Russian, the personal-data checks' own words; the rest as every HTTP answer says it
    (``fielderrors``)."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "неизвестное поле"
    if kind in ("enum", "literal_error"):
        return "недопустимое значение"
    if kind.startswith(("int_", "float_")):
        return "ожидается число"
    if kind.startswith("bool_"):
        return "ожидается «да» или «нет»"
    if kind.startswith("date"):
        return "ожидается дата в формате ДД.ММ.ГГГГ"
    if kind.startswith(("snils", "phone", "email", "full_name")):
        return str(error["msg"])
    return fielderrors.in_russian(error)


Problems = list[tuple[str, str]]
"""(field, reason) pairs."""


def check_record(
    spec: Register,
    values: Mapping[str, Any],
    personal: Mapping[str, Any] | None,
    known: Known,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, Problems]:
    """Validate one record (and its personal data); returns stored data or the problems."""
    problems: Problems = []
    record = None
    try:
        record = spec.record.model_validate(dict(values))
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = error["loc"]
            problems.append((str(loc[0]) if loc else "", _reason(error)))
    person = None
    if personal is not None:
        try:
            person = PersonalData.model_validate(dict(personal))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = error["loc"]
                problems.append((str(loc[0]) if loc else "full_name", _reason(error)))
    if record is None:
        return None, None, problems
    problems += spec.checks(record)
    data = record.model_dump(mode="json")
    problems += _references(spec, data, known)
    if problems:
        return None, None, problems
    return data, None if person is None else person.model_dump(mode="json"), []


_AUDIENCE_OF_KIND = {
    OrganizationKind.KINDERGARTEN.value: Audience.PRESCHOOL.value,
    OrganizationKind.COLLEGE.value: Audience.COLLEGE.value,
}


def _references(spec: Register, data: dict[str, Any], known: Known) -> Problems:
    problems: Problems = []
    for ref in spec.references:
        values = data.get(ref.field)
        wanted = values if ref.many else [values]
        target = REGISTRY[ref.register]
        for value in wanted or []:
            if value is None or known.has(ref.register, value):
                continue
            problems.append((ref.field, f"«{value}» нет в реестре «{target.title}»"))
    organization_id = data.get("organization_id")
    organization = known.get("organizations", organization_id) if organization_id else None
    if spec.located and organization is not None:
        mine, theirs = data.get("municipality_id"), organization["municipality_id"]
        if mine is None:
            data["municipality_id"] = theirs
        elif mine != theirs:
            problems.append(
                (
                    "municipality_id",
                    f"организация «{data['organization_id']}» относится к МО "
                    f"«{theirs}», а не к «{mine}»",
                )
            )
    if spec.name == "teachers" and data.get("audience") is None:
        kind = organization["kind"] if organization is not None else None
        data["audience"] = _AUDIENCE_OF_KIND.get(str(kind), Audience.GENERAL.value)
    return problems
