"""Registry rules without I/O: СНИЛС check digits, people's data formats, cells as people
type them, teachers' bands, every register's contract."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from iomflow.registries import importing
from iomflow.registries.domain import REGISTRY, TeacherRecord, teacher_event
from iomflow.registries.personal import PersonalData, normalise_snils, snils_check_digits
from iomflow.shared.contracts import EVENT_TYPES, REGISTERS


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("112-233-445 95", True),
        ("11223344595", True),
        ("112-233-445 96", False),
        ("001-001-997 00", True),  # issued before check digits: any two digits
        ("123-456-789 64", True),
    ],
)
def test_snils_checksum(number: str, valid: bool) -> None:
    if valid:
        assert normalise_snils(number)[:3] == number[:3]
    else:
        with pytest.raises(ValueError, match="контрольное число"):
            normalise_snils(number)


def test_check_digit_rule_edges() -> None:
    assert snils_check_digits("000000001") == 1  # sum below 100: the sum itself
    assert snils_check_digits("000000100") == 3
    assert snils_check_digits("123456789") == 64  # 285 % 101


def test_personal_data_formats() -> None:
    person = PersonalData(
        full_name="  Иванова   Анна-Мария Петровна ",
        email="A.Ivanova@Mail.RU",
        phone="8(914)1234567",
    )
    assert person.full_name == "Иванова Анна-Мария Петровна"
    assert (person.email, person.phone) == ("a.ivanova@mail.ru", "+7 914 123-45-67")
    with pytest.raises(ValidationError):
        PersonalData(full_name="Ivanova Anna")


def test_cells_as_people_type_them() -> None:
    teachers, programs = REGISTRY["teachers"], REGISTRY["programs"]
    assert importing.parse_cell(teachers, "is_manager", "Да") is True
    assert importing.parse_cell(teachers, "birth_date", "05.03.1980") == date(1980, 3, 5)
    assert importing.parse_cell(teachers, "category", "Высшая") == "highest"
    assert importing.parse_cell(teachers, "subjects", "математика;  физика") == [
        "математика",
        "физика",
    ]
    assert importing.parse_cell(programs, "format", "очная") == "in_person"
    assert importing.parse_cell(programs, "hours", 36.0) == 36
    assert importing.parse_cell(programs, "themes", "Обновлённые ФГОС, воспитание") == [
        "updated_fgos",
        "upbringing",
    ]
    with pytest.raises(importing.CellError, match="целое"):
        importing.parse_cell(programs, "hours", "тридцать")


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("31.02.1980", "такой даты нет: 31.02.1980 — в феврале 1980 года 29 дней"),
        ("29.02.1981", "такой даты нет: 29.02.1981 — в феврале 1981 года 28 дней"),
        ("31.04.2020", "такой даты нет: 31.04.2020 — в апреле 2020 года 30 дней"),
        ("12.13.1980", "такой даты нет: 12.13.1980 — месяца с номером 13 не бывает"),
        ("1980-06-31", "такой даты нет: 1980-06-31 — в июне 1980 года 30 дней"),
        ("1980/03/05", "ожидается дата в формате ДД.ММ.ГГГГ"),
        ("пятое марта", "ожидается дата в формате ДД.ММ.ГГГГ"),
    ],
)
def test_an_impossible_date_is_said_impossible_and_a_wrong_one_told_its_format(
    cell: str, reason: str
) -> None:
    with pytest.raises(importing.CellError) as refused:
        importing.parse_cell(REGISTRY["teachers"], "birth_date", cell)
    assert str(refused.value) == reason
    assert importing.parse_cell(REGISTRY["teachers"], "birth_date", "29.02.1980") == date(
        1980, 2, 29
    )


def test_a_list_cell_with_both_separators_is_refused_not_guessed() -> None:
    teachers = REGISTRY["teachers"]
    assert importing.parse_cell(teachers, "subjects", "математика, астрономия") == [
        "математика",
        "астрономия",
    ]
    assert importing.parse_cell(teachers, "subjects", "математика\nфизика") == [
        "математика",
        "физика",
    ]
    with pytest.raises(importing.CellError, match="и «;», и «,»: неясно, сколько их"):
        importing.parse_cell(teachers, "subjects", "математика; физика, астрономия")


def test_teacher_event_has_bands_and_the_young_flag() -> None:
    record = TeacherRecord(
        teacher_id="t-1",
        organization_id="o",
        municipality_id="m",
        position="учитель",
        audience="general",
        birth_date=date(2001, 9, 2),
        hire_date=date(2025, 9, 1),
    )
    event = teacher_event(record, date(2026, 9, 1))
    assert (event.age_band, event.experience_band, event.young) == ("<25", "<3", True)
    older = teacher_event(record, date(2036, 9, 2))
    assert (older.age_band, older.experience_band, older.young) == ("35-44", "10-20", False)


def test_every_register_has_its_events_and_titles() -> None:
    assert list(REGISTRY) == list(REGISTERS)
    for spec in REGISTRY.values():
        assert EVENT_TYPES[spec.upserted] is spec.event
        assert spec.removed in EVENT_TYPES
        assert spec.key in spec.record.model_fields
        for name in importing.columns(spec):
            assert importing.title(name) != name, f"{spec.name}.{name} has no Russian title"
        for ref in spec.references:
            assert ref.register in REGISTRY and ref.field in spec.record.model_fields
