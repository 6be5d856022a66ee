"""Personal data of the people in the registers: full name, СНИЛС, e-mail, phone.

Kept only in this service, in its own table, read only with the ``personal_data`` role and
every read audited. Nothing here ever goes into an event. The same holds for the dates
of ``PERSONAL_DATES`` kept in a record (teachers' birth and hire dates).
"""

from __future__ import annotations

import operator
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from iomflow.shared.contracts import Contract

_NAME = re.compile(r"^[А-ЯЁа-яё]+(?:-[А-ЯЁа-яё]+)?(?: [А-ЯЁа-яё]+(?:-[А-ЯЁа-яё]+)?){1,3}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_SNILS_NOISE = re.compile(r"[\s-]")
_SNILS = re.compile(r"\d{11}")
_PHONE_NOISE = re.compile(r"[\s()+\-]")
_PHONE = re.compile(r"7\d{10}")


def snils_check_digits(first9: str) -> int:
    """The two check digits of a СНИЛС from its first nine (ПФР's published rule)."""
    total = sum(map(operator.mul, map(int, first9), range(9, 9 - len(first9), -1)))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    rest = total % 101
    return 0 if rest == 100 else rest


def format_snils(digits: str) -> str:
    return f"{digits[0:3]}-{digits[3:6]}-{digits[6:9]} {digits[9:11]}"


def normalise_snils(value: object) -> str:
    digits = _SNILS_NOISE.sub("", str(value))
    if not _SNILS.fullmatch(digits):
        raise PydanticCustomError(
            "snils_format", "СНИЛС должен состоять из 11 цифр (формат 123-456-789 01)"
        )
    # Numbers up to 001-001-998 were issued before check digits existed.
    if int(digits[:9]) > 1001998 and snils_check_digits(digits[:9]) != int(digits[9:]):
        raise PydanticCustomError(
            "snils_checksum", "контрольное число СНИЛС не сходится: проверьте номер"
        )
    return format_snils(digits)


def normalise_phone(value: object) -> str:
    digits = _PHONE_NOISE.sub("", str(value))
    if digits.startswith("8") and len(digits) == 11:
        digits = "7" + digits[1:]
    if len(digits) == 10:
        digits = "7" + digits
    if not _PHONE.fullmatch(digits):
        raise PydanticCustomError(
            "phone_format", "телефон должен быть российским номером из 10 цифр (+7 XXX XXX-XX-XX)"
        )
    return f"+7 {digits[1:4]} {digits[4:7]}-{digits[7:9]}-{digits[9:11]}"


def check_name(value: str) -> str:
    value = " ".join(value.split())
    if not _NAME.fullmatch(value):
        raise PydanticCustomError(
            "full_name_format",
            "ФИО: фамилия, имя и (при наличии) отчество русскими буквами через пробел",
        )
    return value


def check_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.fullmatch(value):
        raise PydanticCustomError("email_format", "адрес электронной почты указан неверно")
    return value.lower()


class PersonalData(Contract):
    full_name: Annotated[str, AfterValidator(check_name)] = Field(max_length=200)
    snils: Annotated[str, BeforeValidator(normalise_snils)] | None = None
    email: Annotated[str, AfterValidator(check_email)] | None = Field(default=None, max_length=200)
    phone: Annotated[str, BeforeValidator(normalise_phone)] | None = None


PERSONAL_FIELDS = tuple(PersonalData.model_fields)

PERSONAL_DATES = ("birth_date", "hire_date")
"""Record fields that identify a person together with the workplace (152-ФЗ): a register
whose record has them shows them only with the ``personal_data`` role and a purpose
(audited); everyone else sees the bands its events carry."""
