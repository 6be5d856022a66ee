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
import itertools
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
    ExpertKind,
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
    PracticeReplication,
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


class ReplicationRecord(PracticeReplication):
    """A replication as a record keeps it: the municipality may be left out (the
    organisation's)."""

    municipality_id: str | None = None  # type: ignore[assignment]


class PracticeRecord(PracticeUpserted):
    """A practice of the bank as operators keep it: municipalities may be left out."""

    municipality_id: str | None = None  # type: ignore[assignment]
    replications: list[ReplicationRecord] = Field(default_factory=list)  # type: ignore[assignment]


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
    """``field`` of a record names a record of ``register`` (a list field: each item; a
    list of objects: each one's ``item``). ``data``: the register's rules read the named
    records' data (``Register.related``), so an import loads them whole, not their ids."""

    field: str
    register: str
    many: bool = False
    item: str | None = None
    data: bool = False

    def ids(self, value: Any) -> list[str]:
        """The ids ``value`` (the field's value in a record) names."""
        values = value if self.many and isinstance(value, list) else [value]
        if self.item is not None:
            values = [v.get(self.item) for v in values if isinstance(v, Mapping)]
        return [str(v) for v in values if v is not None and v != ""]


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
    related: Callable[[Mapping[str, Any], Known], list[tuple[str, str]]] = field(
        default=lambda _, __: []
    )
    """Rules between a record and the records it names (its references found)."""
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


def _ends_checks(record: Contract) -> list[tuple[str, str]]:
    """A period's end (``ends_on``, open when left out) is not before its start."""
    starts, ends = getattr(record, "starts_on"), getattr(record, "ends_on")  # noqa: B009
    if ends is not None and ends < starts:
        return [("ends_on", "дата окончания раньше даты начала")]
    return []


def _pair_checks(record: Contract) -> list[tuple[str, str]]:
    assert isinstance(record, MentoringPairUpserted)
    problems = _ends_checks(record)
    if record.mentor_id == record.mentee_id:
        problems.append(("mentee_id", "наставник не может быть наставляемым в своей паре"))
    return problems


def young_on(teacher: Mapping[str, Any], day: date) -> bool | None:
    """Whether a teacher (a stored record's data) was a young teacher on ``day``: under 35
    and in the first 3 years of work (as ``TeacherUpserted.young``); None when the data
    has no dates to tell."""
    born, hired = teacher.get("birth_date"), teacher.get("hire_date")
    if not born or not hired:
        return None
    age = _years(date.fromisoformat(str(born)), day)
    experience = max(0, _years(date.fromisoformat(str(hired)), day))
    return age < 35 and experience < 3


def _pair_related(data: Mapping[str, Any], known: Known) -> list[tuple[str, str]]:
    """A young teacher's pair has a young teacher for its mentee, as of the pair's start:
    a check, not a warning, since such a pair counts in ``young_supported_share``; a
    colleague who is not young is a «peer» pair (or a management team's). As of the start,
    not today, so a pair stays valid as its mentee grows older."""
    if data.get("kind") != "young_teacher":
        return []
    mentee = known.get("teachers", str(data["mentee_id"]))
    starts = date.fromisoformat(str(data["starts_on"]))
    if mentee is None or young_on(mentee, starts) is not False:
        return []
    return [
        (
            "kind",
            f"педагог «{data['mentee_id']}» на {starts:%d.%m.%Y} не молодой педагог (до 35 "
            "лет и до 3 лет стажа): выберите вид «коллега» или «управленческая команда»",
        )
    ]


def _team_related(data: Mapping[str, Any], known: Known) -> list[tuple[str, str]]:
    """A school team's members work in its organisation."""
    problems = []
    for teacher_id in data.get("members") or []:
        teacher = known.get("teachers", teacher_id)
        where = teacher.get("organization_id") if teacher else None
        if where and where != data["organization_id"]:
            problems.append(
                (
                    "members",
                    f"педагог «{teacher_id}» работает в «{where}», а команда — "
                    f"организации «{data['organization_id']}»",
                )
            )
    return problems


def _contest_checks(record: Contract) -> list[tuple[str, str]]:
    assert isinstance(record, ContestUpserted)
    if record.held_on is not None and record.held_on.year != record.year:
        return [("held_on", f"дата проведения не в {record.year} году конкурса")]
    return []


def _practice_checks(record: Contract) -> list[tuple[str, str]]:
    """Where a practice is in its course agrees with what the record says of it:
    submitted → reviewed (by whom, when) → included (when) → replicated (where), or
    rejected at review; each step not before the one it follows. A practice sent back
    for revision is submitted again with its review kept."""
    assert isinstance(record, PracticeRecord)
    status, problems = record.status, []
    if status in ("reviewed", "rejected"):
        if record.reviewed_by is None:
            problems.append(("reviewed_by", "у практики после экспертизы укажите эксперта"))
        if record.reviewed_on is None:
            problems.append(("reviewed_on", "у практики после экспертизы укажите дату"))
    if status in ("submitted", "reviewed", "rejected") and record.included_on is not None:
        problems.append(("included_on", "практика не включена в банк, а дата включения есть"))
    if status == "replicated" and not record.replications:
        problems.append(("replications", "у тиражированной практики укажите, где её переняли"))
    if status != "replicated" and record.replications:
        problems.append(("status", "у практики есть тиражирование: её статус — «тиражирована»"))
    steps = [
        ("submitted_on", record.submitted_on),
        ("reviewed_on", record.reviewed_on),
        ("included_on", record.included_on),
    ]
    dated = [(name, day) for name, day in steps if day is not None]
    for (_, before), (name, day) in itertools.pairwise(dated):
        if day < before:
            problems.append((name, f"{TITLES[name].lower()} раньше предыдущего шага"))
    first = dated[-1][1] if dated else None
    for replication in record.replications:
        if replication.organization_id == record.organization_id:
            problems.append(("replications", "практику тиражируют в другой организации"))
        if first is not None and replication.on < first:
            problems.append(
                ("replications", f"тиражирование {replication.on:%d.%m.%Y} раньше включения")
            )
    return problems


REGION = "region"
CNPPM = "cnppm"

MUNICIPALITY_REF = Reference("municipality_id", "municipalities")
ORGANIZATION_REF = Reference("organization_id", "organizations")
MUNICIPALITIES_REF = Reference("municipalities", "municipalities", many=True)


def _of_organization(
    name: str,
    title: str,
    key: str,
    event: type[Contract],
    *references: Reference,
    record: type[Contract] | None = None,
    **rules: Any,
) -> Register:
    """An organisation-bound register: its records owned by their organisation, naming it
    and its municipality (which a record may leave out, ``_located``) before ``references``."""
    return Register(
        name,
        title,
        key,
        record or _located(event),
        event,
        owner=lambda r: str(r["organization_id"]),
        references=(ORGANIZATION_REF, MUNICIPALITY_REF, *references),
        **rules,
    )


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
    _of_organization(
        "teachers",
        "Педагогические работники",
        "teacher_id",
        TeacherUpserted,
        record=TeacherRecord,
        person=True,
        checks=_teacher_checks,
        to_event=teacher_event_of,
    ),
    _of_organization(
        "management_teams",
        "Управленческие команды",
        "member_id",
        ManagementMemberUpserted,
        Reference("teacher_id", "teachers"),
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
    _of_organization("mentors", "Наставники", "mentor_id", MentorUpserted, person=True),
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
    _of_organization(
        "internship_sites", "Стажировочные площадки", "site_id", InternshipSiteUpserted
    ),
    _of_organization(
        "innovation_sites",
        "Инновационные площадки",
        "site_id",
        InnovationSiteUpserted,
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
    _of_organization(
        "practices",
        "Банк эффективных практик",
        "practice_id",
        PracticeUpserted,
        Reference("author_id", "teachers"),
        Reference("reviewed_by", "teachers"),
        Reference("replications", "organizations", many=True, item="organization_id"),
        Reference("replications", "teachers", many=True, item="by"),
        record=PracticeRecord,
        checks=_practice_checks,
    ),
    _of_organization(
        "school_teams",
        "Школьные и управленческие команды проектов",
        "team_id",
        SchoolTeamUpserted,
        Reference("members", "teachers", many=True, data=True),
        Reference("methodists", "methodists", many=True),
        related=_team_related,
    ),
    _of_organization(
        "mentoring_pairs",
        "Наставнические пары",
        "pair_id",
        MentoringPairUpserted,
        Reference("mentor_id", "mentors"),
        Reference("mentee_id", "teachers", data=True),
        checks=_pair_checks,
        related=_pair_related,
    ),
    _of_organization(
        "expert_roles",
        "Экспертная деятельность педагогов",
        "role_id",
        ExpertRoleUpserted,
        Reference("teacher_id", "teachers"),
        checks=_ends_checks,
    ),
    Register(
        "contests",
        "Профессиональные конкурсы",
        "contest_id",
        ContestUpserted,
        ContestUpserted,
        owner=lambda r: CNPPM,
        checks=_contest_checks,
    ),
    _of_organization(
        "contest_entries",
        "Участники профессиональных конкурсов",
        "entry_id",
        ContestEntryUpserted,
        Reference("contest_id", "contests"),
        Reference("teacher_id", "teachers"),
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
    "team_id": "Код команды",
    "project": "Проект",
    "members": "Члены команды (коды педагогов)",
    "methodists": "Закреплённые региональные методисты",
    "pair_id": "Код пары",
    "mentee_id": "Наставляемый (код педагога)",
    "focus": "Направление наставничества",
    "starts_on": "Дата начала",
    "ends_on": "Дата окончания",
    "role_id": "Код экспертной роли",
    "body": "Экспертный орган (комиссия, жюри)",
    "contest_id": "Код конкурса",
    "held_on": "Дата проведения",
    "entry_id": "Код участия",
    "result": "Результат",
    "status": "Статус",
    "author_id": "Автор (код педагога)",
    "submitted_on": "Дата подачи",
    "reviewed_by": "Эксперт (код педагога)",
    "reviewed_on": "Дата экспертизы",
    "review": "Экспертное заключение",
    "included_on": "Дата включения в банк",
    "replications": "Тиражирование",
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
    ExpertKind: {
        "attestation": "аттестация педагогических работников",
        "program_review": "экспертиза программ ДПО",
        "contest_jury": "жюри профессиональных конкурсов",
        "practice_review": "экспертиза практик",
        "diagnostics": "эксперт оценочных процедур",
        "olympiad": "предметные комиссии и олимпиады",
        "other": "другое",
    },
}

LITERAL_LABELS: dict[str, dict[str, str]] = {
    "kind": {
        "pk": "ПК",
        "pp": "ПП",
        "young_teacher": "молодой педагог",
        "management_team": "управленческая команда",
        "peer": "коллега",
    },
    "format": {
        "in_person": "очная",
        "distance": "дистанционная",
        "network": "сетевая",
        "internship": "стажировка",
    },
    "result": {"participant": "участник", "prize_winner": "призёр", "winner": "победитель"},
    "status": {
        "submitted": "подана",
        "reviewed": "прошла экспертизу",
        "included": "включена в банк",
        "replicated": "тиражирована",
        "rejected": "отклонена",
    },
}
"""Labels of the Literal-typed fields, by field name: a field's own are those of its
Literal's values (programs' ``kind`` is ПК/ПП, mentoring pairs' the kinds of a pair)."""


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
    if not problems:
        problems += spec.related(data, known)
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
        target = REGISTRY[ref.register]
        for value in ref.ids(data.get(ref.field)):
            if known.has(ref.register, value):
                continue
            problems.append((ref.field, f"«{value}» нет в реестре «{target.title}»"))
        if ref.item == "organization_id":
            problems += _located_items(ref, data, known)
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


def _located_items(ref: Reference, data: dict[str, Any], known: Known) -> Problems:
    """Each object of a list naming an organisation takes its municipality (when left out)
    and must agree with it (a practice's replications)."""
    problems: Problems = []
    for item in data.get(ref.field) or []:
        organization = known.get("organizations", str(item.get("organization_id")))
        if organization is None:
            continue
        mine, theirs = item.get("municipality_id"), organization["municipality_id"]
        if mine is None:
            item["municipality_id"] = theirs
        elif mine != theirs:
            problems.append(
                (
                    ref.field,
                    f"организация «{item['organization_id']}» относится к МО «{theirs}», "
                    f"а не к «{mine}»",
                )
            )
    return problems
