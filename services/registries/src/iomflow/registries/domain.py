"""Registry rules with no I/O: which records are valid, which changed, what to publish."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from iomflow.shared.contracts import (
    Contract,
    MethodistUpserted,
    MunicipalityUpserted,
    OrganizationUpserted,
    ProgramUpserted,
    TeacherUpserted,
)


@dataclass(frozen=True)
class Entity:
    name: str
    plural: str
    contract: type[Contract]
    key: str
    title_ru: str

    @property
    def event_type(self) -> str:
        return f"registry.{self.name}.upserted"


# In dependency order: a teacher's organisation is published before the teacher.
ENTITIES: dict[str, Entity] = {
    e.plural: e
    for e in (
        Entity(
            "municipality",
            "municipalities",
            MunicipalityUpserted,
            "municipality_id",
            "муниципальные образования",
        ),
        Entity(
            "organization",
            "organizations",
            OrganizationUpserted,
            "organization_id",
            "образовательные организации",
        ),
        Entity("program", "programs", ProgramUpserted, "program_id", "программы ДПО"),
        Entity(
            "methodist", "methodists", MethodistUpserted, "methodist_id", "региональные методисты"
        ),
        Entity("teacher", "teachers", TeacherUpserted, "teacher_id", "педагогические работники"),
    )
}


@dataclass(frozen=True)
class RowError:
    register: str
    row: int  # 1-based, as a person counts rows
    field: str
    reason: str


@dataclass(frozen=True)
class Change:
    entity: Entity
    record_id: str
    record: Contract
    digest: str


def digest(record: Contract) -> str:
    """A stable fingerprint: a re-import of the same data changes nothing."""
    return hashlib.sha256(
        json.dumps(record.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()


def validate_rows(entity: Entity, rows: list[Any]) -> tuple[list[Contract], list[RowError]]:
    """Each row against the entity's contract; errors are for people (Russian)."""
    valid: list[Contract] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for index, row in enumerate(rows, start=1):
        try:
            record = entity.contract.model_validate(row)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                field = ".".join(str(part) for part in err["loc"]) or "—"
                errors.append(RowError(entity.plural, index, field, _russian(err)))
            continue
        key = getattr(record, entity.key)
        if key in seen:
            errors.append(
                RowError(
                    entity.plural, index, entity.key, f"идентификатор {key} повторяется в файле"
                )
            )
            continue
        seen.add(key)
        valid.append(record)
    return valid, errors


def _russian(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "обязательное поле не заполнено"
    if kind == "extra_forbidden":
        return "неизвестное поле"
    if kind in ("literal_error", "enum"):
        return f"недопустимое значение; {err['msg']}"
    if kind.startswith(("int_", "float_", "bool_", "string_")):
        return f"неверный формат значения ({err['msg']})"
    return f"ошибка проверки: {err['msg']}"


def changes(entity: Entity, records: list[Contract], known: dict[str, str]) -> list[Change]:
    """Records that are new or differ from what is stored (by digest)."""
    out = []
    for record in records:
        record_id = getattr(record, entity.key)
        fingerprint = digest(record)
        if known.get(record_id) != fingerprint:
            out.append(Change(entity, record_id, record, fingerprint))
    return out
