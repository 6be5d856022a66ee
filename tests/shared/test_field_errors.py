"""Field errors said in Russian to a person (``shared.fielderrors``), pydantic's ``type`` kept
for machines: for every error the HTTP bodies of the suite can meet, no English word."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iomflow.monitoring.app import create_app
from iomflow.monitoring.settings import Settings
from iomflow.shared import fielderrors, wire
from iomflow.shared.contracts import CourseEvent, ItemScore, ResultSubmitted

LATIN_WORD = re.compile(r"\b[A-Za-z]{3,}\b")
ALLOWED = {"scores", "items", "program_id", "federal_number"}
"""Field names, said as the field is named in the request."""


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=5)]
    tags: Annotated[list[str], Field(min_length=2)] = ["a", "b"]
    hours: Annotated[int, Field(ge=1, le=100)] = 1
    share: Annotated[float, Field(gt=0, lt=1)] = 0.5
    on: date = date(2026, 1, 1)
    kind: Literal["course", "internship"] = "course"


def errors(model: type[BaseModel], body: object) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    return wire.validation_errors(refused.value, ["body"], russian=True)


@pytest.mark.parametrize(
    ("body", "msg"),
    [
        ({}, "обязательное поле не заполнено"),
        ({"name": ""}, "значение не может быть пустым"),
        ({"name": "длинное имя"}, "слишком длинное значение: не больше 5 символов"),
        ({"name": "a", "tags": ["x"]}, "нужно не меньше 2 значений"),
        ({"name": "a", "hours": 0}, "значение должно быть не меньше 1"),
        ({"name": "a", "hours": 101}, "значение должно быть не больше 100"),
        ({"name": "a", "hours": "три"}, "ожидается целое число"),
        ({"name": "a", "share": 0}, "значение должно быть больше 0"),
        ({"name": "a", "share": 0.25, "hours": 0.5}, "ожидается целое число, без дробной части"),
        ({"name": "a", "share": 1}, "значение должно быть меньше 1"),
        ({"name": "a", "on": "31.02.2026"}, "ожидается дата (ГГГГ-ММ-ДД)"),
        (
            {"name": "a", "kind": "trip"},
            "недопустимое значение; допустимо: 'course' или 'internship'",
        ),
        ({"name": "a", "colour": "red"}, "неизвестное поле: такого поля нет в описании запроса"),
        ([1, 2], "ожидается объект"),
    ],
)
def test_each_kind_of_field_error_is_said_in_russian(body: object, msg: str) -> None:
    [error] = errors(Body, body)
    assert error["msg"] == msg
    assert error["type"] and error["loc"][0] == "body"


def test_the_contracts_own_rules_are_said_in_russian() -> None:
    said = [
        errors(ItemScore, {"item": "A1", "competency": "digital", "score": 3, "max_score": 2}),
        errors(ResultSubmitted, {"teacher_id": "t-1", "instrument": "self_diagnosis"}),
        errors(
            ResultSubmitted,
            {
                "teacher_id": "t-1",
                "instrument": "self_diagnosis",
                "items": [{"item": "A1", "competency": "digital", "score": 1, "max_score": 1}],
            },
        ),
        errors(CourseEvent, {"teacher_id": "t-1", "on": "2026-11-20"}),
    ]
    messages = [e["msg"] for found in said for e in found]
    assert messages[0] == "задание A1: балл 3 больше максимума 2"
    for message in messages:
        assert isinstance(message, str)
        words = set(LATIN_WORD.findall(message)) - ALLOWED
        assert not words, message


def test_dead_letters_keep_pydantics_english() -> None:
    with pytest.raises(ValidationError) as refused:
        Body.model_validate({})
    [error] = wire.validation_errors(refused.value)
    assert error["msg"] == "Field required"


def test_an_unknown_kind_gets_a_russian_sentence_not_english() -> None:
    said = fielderrors.in_russian({"type": "something_new", "msg": "Something new happened"})
    assert said == "значение не прошло проверку"


async def test_an_http_answer_says_each_field_in_russian(tmp_path: Path) -> None:
    """FastAPI's own validation (a query parameter, a body field) answers in Russian too."""
    app = create_app(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db", redis_url="redis://127.0.0.1:1/0"
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        answer = await client.get("/v1/kpis", params={"as_of": "31.02.2026"})
    assert answer.status_code == 422 and answer.json()["code"] == "validation_error"
    [error] = answer.json()["errors"]
    assert error["loc"] == ["query", "as_of"] and error["msg"] == "ожидается дата (ГГГГ-ММ-ДД)"
