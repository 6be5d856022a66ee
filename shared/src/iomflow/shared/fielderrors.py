"""What is wrong with a field, said in Russian to the person who filled it in.

Pydantic names its errors by a ``type`` (``missing``, ``int_parsing``, ``too_long`` …) with
an English ``msg``. An HTTP answer keeps ``loc`` and ``type`` for machines and says ``msg``
in Russian (``in_russian``); the registries' import says the same words for a sheet's cell.
Dead letters keep pydantic's English: their reader is an operator with the contract's
schema at hand, and the tests of the contract compare them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLAIN = {
    "missing": "обязательное поле не заполнено",
    "extra_forbidden": "неизвестное поле: такого поля нет в описании запроса",
    "string_type": "ожидается строка",
    "bool_type": "ожидается «да» или «нет» (true или false)",
    "bool_parsing": "ожидается «да» или «нет» (true или false)",
    "int_type": "ожидается целое число",
    "int_parsing": "ожидается целое число",
    "int_from_float": "ожидается целое число, без дробной части",
    "float_type": "ожидается число",
    "float_parsing": "ожидается число",
    "finite_number": "ожидается конечное число",
    "date_type": "ожидается дата (ГГГГ-ММ-ДД)",
    "date_parsing": "ожидается дата (ГГГГ-ММ-ДД)",
    "date_from_datetime_parsing": "ожидается дата (ГГГГ-ММ-ДД)",
    "date_from_datetime_inexact": "ожидается дата без времени",
    "datetime_type": "ожидаются дата и время (ГГГГ-ММ-ДДTчч:мм:сс±чч:мм)",
    "datetime_parsing": "ожидаются дата и время (ГГГГ-ММ-ДДTчч:мм:сс±чч:мм)",
    "datetime_from_date_parsing": "ожидаются дата и время (ГГГГ-ММ-ДДTчч:мм:сс±чч:мм)",
    "timezone_aware": "укажите часовой пояс (например, +08:00)",
    "date_future": "дата не может быть в будущем",
    "date_past": "дата должна быть в прошлом",
    "uuid_type": "ожидается идентификатор UUID",
    "uuid_parsing": "ожидается идентификатор UUID",
    "list_type": "ожидается список",
    "dict_type": "ожидается объект",
    "model_type": "ожидается объект",
    "model_attributes_type": "ожидается объект",
    "json_invalid": "тело запроса — не JSON",
    "json_type": "ожидается JSON",
    "string_pattern_mismatch": "значение не подходит по форме",
    "url_parsing": "ожидается адрес (URL)",
    "url_scheme": "адрес должен начинаться с http:// или https://",
    "value_error": "недопустимое значение",
    "assertion_error": "недопустимое значение",
}


_CONTRACT_RULES = (
    (
        re.compile(r"item (?P<item>.+): score (?P<score>\S+) above max (?P<max>\S+)"),
        "задание {item}: балл {score} больше максимума {max}",
    ),
    (re.compile(r"a result needs scores or items"), "нужны баллы (scores) или задания (items)"),
    (
        re.compile(r"items are for a standardized test or an expert rubric"),
        "задания (items) бывают только у стандартизированного теста и экспертной оценки",
    ),
    (
        re.compile(r"a course event needs program_id or federal_number"),
        "укажите программу: program_id или номер в Федеральном реестре (federal_number)",
    ),
)
"""The contracts' own rules (``model_validator``s of ``shared.contracts``), which say what is
wrong in English for dead letters, in Russian for a person."""


def in_russian(error: Mapping[str, Any]) -> str:
    """``error`` (one of pydantic's ``errors()``) as a Russian sentence about the field."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        own = (
            str(error.get("msg", ""))
            .removeprefix("Value error, ")
            .removeprefix("Assertion failed, ")
        )
        if _cyrillic(own):  # the services' own rules say it in Russian already
            return own
        for pattern, russian in _CONTRACT_RULES:
            if found := pattern.fullmatch(own):
                return russian.format(**{k: _number(v) for k, v in found.groupdict().items()})
        return _PLAIN[kind]
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        if least <= 1:
            return "значение не может быть пустым"
        return f"нужно не меньше {least} {'символов' if kind.startswith('string') else 'значений'}"
    if kind in ("string_too_long", "too_long"):
        most = ctx.get("max_length")
        return f"слишком длинное значение: не больше {most} " + (
            "символов" if kind.startswith("string") else "значений"
        )
    if kind in ("greater_than_equal", "greater_than"):
        bound = _number(ctx.get("ge", ctx.get("gt")))
        return f"значение должно быть {'не меньше' if kind.endswith('equal') else 'больше'} {bound}"
    if kind in ("less_than_equal", "less_than"):
        bound = _number(ctx.get("le", ctx.get("lt")))
        return f"значение должно быть {'не больше' if kind.endswith('equal') else 'меньше'} {bound}"
    if kind in ("enum", "literal_error"):
        expected = str(ctx.get("expected", "")).replace(" or ", " или ")
        return "недопустимое значение" + (f"; допустимо: {expected}" if expected else "")
    if kind in _PLAIN:
        return _PLAIN[kind]
    return "значение не прошло проверку"


def _number(value: Any) -> str:
    """A bound or a score as a person writes it: ``1``, ``0,5`` (a text that is not a number
    as it is)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number.is_integer():
        return str(int(number))
    return f"{number:g}".replace(".", ",")


def _cyrillic(text: str) -> bool:
    return any("а" <= ch.lower() <= "я" or ch in "ёЁ" for ch in text)
