"""Reading records as people write them in spreadsheets, row by row, with reasons in
Russian. No I/O.

Cells are read into field values (Russian labels and «да»/«нет» accepted), then each
record is checked by the register's rules (``domain.check_record``: its model, its own
rules, its references to other registers), the same check an API
request gets. A row's errors name the row, the column and the value, so an operator can
find and fix each one.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from functools import cache, cached_property
from typing import Any, Literal

from iomflow.registries import domain
from iomflow.registries.domain import (
    LABELS,
    LITERAL_LABELS,
    TITLES,
    Known,
    Register,
    check_record,
)
from iomflow.registries.personal import PERSONAL_FIELDS, PersonalData
from iomflow.shared import sheets
from iomflow.shared.sheets import Cell, CellError, Collected, RowError, Table, column_letter

__all__ = ["CellError", "RowError"]  # as the service and its callers know them


@dataclass
class Candidate:
    """A valid row: what would be stored."""

    row: int
    record_id: str
    data: dict[str, Any]
    personal: dict[str, Any] | None  # None: the file has no personal columns, keep them

    @cached_property
    def digest(self) -> str:
        return domain.digest(self.data)

    @cached_property
    def personal_digest(self) -> str | None:
        return None if self.personal is None else domain.digest(self.personal)


# --- field kinds ---------------------------------------------------------------------------


def field_kind(spec: Register, name: str) -> str:
    """How a field is filtered: ``list`` (by membership), ``bool``, ``int`` or ``str``."""
    inner, many = _unwrap(spec.record.model_fields[name].annotation)
    if many:
        return "list"
    return "bool" if inner is bool else "int" if inner is int else "str"


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, is a list) of a field annotation, without Optional/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0])
    if origin is list:
        inner, _ = _unwrap(typing.get_args(annotation)[0])
        return inner, True
    return annotation, False


def labels_of(spec: Register, name: str) -> dict[str, str] | None:
    """code -> Russian label of an enumerated field, None for a free field."""
    inner, _ = _unwrap(spec.record.model_fields[name].annotation)
    if isinstance(inner, type) and issubclass(inner, Enum):
        return LABELS.get(inner, {m.value: m.value for m in inner})  # type: ignore[arg-type]
    if typing.get_origin(inner) is Literal:
        known = LITERAL_LABELS.get(name, {})
        return {v: known.get(v, v) for v in typing.get_args(inner)}
    return None


def _is_date(spec: Register, name: str) -> bool:
    info = spec.record.model_fields.get(name)
    return info is not None and _unwrap(info.annotation) == (date, False)


# --- a practice's replications in a cell ---------------------------------------------------

REPLICATION_HINT = (
    "где практику переняли: «код организации ДД.ММ.ГГГГ» и, через пробел, код педагога, "
    "который её перенял (можно не указывать); несколько — через «;»"
)


def _replication(cell: Any) -> Any:
    """A replication as a cell writes it (``org-0007 21.04.2022 t-000069``); an object
    (JSON rows) as it is."""
    if isinstance(cell, Mapping):
        return dict(cell)
    parts = str(cell).split()
    if len(parts) not in (2, 3):
        raise CellError(
            f"«{sheets.clipped(str(cell))}»: ожидается «код организации ДД.ММ.ГГГГ [код педагога]»"
        )
    on = sheets.day(parts[1])
    return {"organization_id": parts[0], "on": on, "by": parts[2] if len(parts) == 3 else None}


def _replication_text(value: Mapping[str, Any]) -> str:
    on = value.get("on")
    day = date.fromisoformat(str(on)).strftime("%d.%m.%Y") if on else ""
    return " ".join(
        str(part) for part in (value.get("organization_id"), day, value.get("by")) if part
    )


def columns(spec: Register) -> list[str]:
    """Field names a spreadsheet of this register may have, in export order."""
    names = list(spec.record.model_fields)
    return names + list(PERSONAL_FIELDS) if spec.person else names


def title(name: str) -> str:
    return TITLES.get(name, name)


def parse_cell(spec: Register, name: str, cell: Cell) -> Any:
    """A cell as the field's value; ``None`` for an empty cell. Raises CellError."""
    return parser(spec, name)(cell)


Parser = Callable[[Cell], Any]


@cache
def parser(spec: Register, name: str) -> Parser:
    """``parse_cell`` for one field, with its type and labels looked up once: a file's
    hundreds of thousands of cells are each one call and a dict lookup or two."""
    model = PersonalData if name in PERSONAL_FIELDS else spec.record
    inner, many = _unwrap(model.model_fields[name].annotation)
    labels = labels_of(spec, name) if name not in PERSONAL_FIELDS else None
    scalar = _replication if inner is domain.ReplicationRecord else _scalar_parser(inner, labels)

    def parse(cell: Cell) -> Any:
        if sheets.blank(cell):
            return None
        if many:
            parts = cell if isinstance(cell, list) else sheets.split(cell)
            return [scalar(part) for part in parts]
        return scalar(cell)

    return parse


def _scalar_parser(inner: Any, labels: Mapping[str, str] | None) -> Parser:
    if labels is not None:
        return sheets.chooser(labels)
    if inner is bool:
        return sheets.boolean
    if inner is int:
        return sheets.integer
    if inner is date:
        return sheets.day
    return sheets.text


# --- a spreadsheet -------------------------------------------------------------------------


@dataclass
class Plan(Collected):
    """What a file would do: its valid rows and every error, before anything is written."""

    register: str
    total: int
    candidates: list[Candidate] = field(default_factory=list)
    header_errors: bool = False


def map_header(spec: Register, headers: Sequence[str]) -> tuple[dict[int, str], list[RowError]]:
    """Column index -> field name, by field code or Russian title; header problems."""
    mapping, errors = sheets.map_header(
        headers,
        {name: title(name) for name in columns(spec)},
        [name for name, info in spec.record.model_fields.items() if info.is_required()],
        "неизвестный столбец; см. шаблон реестра",
    )
    present = set(mapping.values())
    if spec.person and present & set(PERSONAL_FIELDS) and "full_name" not in present:
        errors.append(RowError(1, title("full_name"), "", "нет столбца «ФИО»", "full_name"))
    return mapping, errors


def plan(
    spec: Register,
    table: Table,
    known: Known,
    progress: Callable[[int], None] = lambda done: None,
) -> Plan:
    """Check every row of ``table``; nothing is written here."""
    result = Plan(spec.name, table.total)
    mapping, header_errors = map_header(spec, table.headers)
    for error in header_errors:
        result.add(error)
    if header_errors:
        result.header_errors = True
        return result
    has_personal = bool(set(mapping.values()) & set(PERSONAL_FIELDS))
    # Each column once: (index, field, header, letter, its parser, a personal field).
    columns_ = [
        (
            index,
            name,
            table.headers[index],
            column_letter(index),
            parser(spec, name),
            name in PERSONAL_FIELDS,
        )
        for index, name in mapping.items()
    ]
    where = {name: (index, header, letter) for index, name, header, letter, _, _ in columns_}

    def shown(cells: Sequence[Cell], name: str) -> tuple[str, str, str]:
        """(header, letter, the value as written) of ``name``'s cell, for an error. A
        person's data never leaves its table, not even in an error report: the row and
        column point to the cell in the operator's own file."""
        found = where.get(name)
        if found is None:
            return title(name), "", ""
        index, header, letter = found
        if name in PERSONAL_FIELDS:
            return header, letter, ""
        return header, letter, sheets.shown(cells[index] if index < len(cells) else None)

    seen: dict[str, int] = {}
    for done, (number, cells) in enumerate(table.rows, start=1):
        if done % 1000 == 0:
            progress(done)
        values: dict[str, Any] = {}
        personal: dict[str, Any] | None = {} if has_personal else None
        row_errors: list[RowError] = []
        width = len(cells)
        for index, name, header, letter, parse, is_personal in columns_:
            cell = cells[index] if index < width else None
            try:
                value = parse(cell)
            except CellError as exc:
                value_shown = "" if is_personal else sheets.shown(cell)
                row_errors.append(RowError(number, header, value_shown, str(exc), name, letter))
                continue
            if value is None:
                continue
            if is_personal:
                assert personal is not None
                personal[name] = value
            else:
                values[name] = value
        for error in row_errors:
            result.add(error)
        data, person, problems = check_record(spec, values, personal, known)
        unreadable = {error.field for error in row_errors}
        for name, reason in problems:
            if name in unreadable:
                continue  # already reported: the cell could not be read
            header, letter, value_shown = shown(cells, name)
            result.add(RowError(number, header, value_shown, reason, name, letter))
        if data is None or row_errors:
            continue
        record_id = str(data[spec.key])
        if record_id in seen:
            header, letter, value_shown = shown(cells, spec.key)
            result.add(
                RowError(
                    number,
                    header,
                    value_shown,
                    f"код «{record_id}» уже встречался в строке {seen[record_id]}",
                    spec.key,
                    letter,
                )
            )
            continue
        seen[record_id] = number
        result.candidates.append(Candidate(number, record_id, data, person))
    progress(table.total)
    return result


# --- spreadsheet cells of a stored record (export) -----------------------------------------


def cells_of(spec: Register, data: Mapping[str, Any], names: Sequence[str]) -> list[Cell]:
    """A stored record as the cells an operator reads and can import again."""
    out: list[Cell] = []
    for name in names:
        value = data.get(name)
        labels = labels_of(spec, name) if name in spec.record.model_fields else None
        if value is None:
            out.append(None)
        elif isinstance(value, list):
            out.append(
                "; ".join(
                    _replication_text(v)
                    if isinstance(v, Mapping)
                    else str(labels.get(v, v))
                    if labels
                    else str(v)
                    for v in value
                )
            )
        elif labels is not None:
            out.append(labels.get(value, value))
        elif isinstance(value, bool):
            out.append("да" if value else "нет")
        elif _is_date(spec, name):
            out.append(date.fromisoformat(value))
        else:
            out.append(value)
    return out


def sheet(
    spec: Register, records: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> tuple[str, list[str], list[list[Cell]]]:
    """A register's records as a sheet (title, Russian headers, cells) for ``write_xlsx``."""
    return spec.title, [title(n) for n in names], [cells_of(spec, r, names) for r in records]


ERROR_HEADERS = ["Строка", "Столбец", "Буква", "Значение", "Ошибка"]


def errors_sheet(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[str], list[list[Cell]]]:
    """Row errors (as ``RowError.as_dict``) as a sheet for ``write_xlsx``."""
    rows: list[list[Cell]] = [
        [e["row"], e["column"], e["letter"], e["value"], e["reason"]] for e in errors
    ]
    return "Ошибки", ERROR_HEADERS, rows


# --- what a register's columns take, and what an import would change ----------------------

PERSONAL_HINTS = {
    "full_name": "фамилия, имя и отчество полностью",
    "snils": "СНИЛС: 11 цифр, можно как 123-456-789 01",
    "email": "адрес электронной почты",
    "phone": "номер телефона, например +7 914 123-45-67",
}


def required(spec: Register, name: str) -> bool:
    """Whether a row of ``spec`` must fill the column ``name``."""
    info = spec.record.model_fields.get(name)
    return info is not None and info.is_required()


def describe(spec: Register, name: str) -> str:
    """What a registrar writes in the column ``name`` of ``spec``, in Russian."""
    if name in PERSONAL_FIELDS:
        return PERSONAL_HINTS.get(name, "текст")
    if name == spec.key:
        return "код записи, у каждой свой: по нему повторная загрузка находит запись"
    if name == "replications":
        return REPLICATION_HINT
    reference = next((ref for ref in spec.references if ref.field == name), None)
    if reference is not None:
        target = domain.REGISTRY[reference.register].title
        several = "; несколько — через «;»" if reference.many else ""
        return f"код из реестра «{target}»{several}"
    inner, many = _unwrap(spec.record.model_fields[name].annotation)
    labels = labels_of(spec, name)
    if labels is not None:
        values = ", ".join(f"«{label}»" for label in labels.values())
        if many:
            return f"одно или несколько значений через «;» из: {values}"
        return f"одно из значений: {values}"
    if many and name in ("specialisations", "competencies"):
        return "коды компетенций рамки профессиональных дефицитов через «;»"
    if many:
        return "значения через «;»"
    if inner is bool:
        return "«да» или «нет»"
    if inner is int:
        return "целое число"
    if inner is date:
        return "дата в формате ДД.ММ.ГГГГ"
    return "текст"


def shown_value(spec: Register, name: str, data: Mapping[str, Any]) -> str:
    """A stored field as a person reads it (labels, «да»/«нет», ДД.ММ.ГГГГ)."""
    cell = cells_of(spec, data, [name])[0]
    return sheets.shown(cell)


def changed_fields(
    spec: Register, old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The fields a row would change in a stored record: title and both values as a person
    reads them; a personal date's values are left out (the stored one is not the
    registrar's to see without the ``personal_data`` role)."""
    out: list[dict[str, Any]] = []
    for name in spec.record.model_fields:
        if old.get(name) == new.get(name):
            continue
        hidden = name in spec.personal_dates
        out.append(
            {
                "field": name,
                "title": title(name),
                "old": None if hidden else shown_value(spec, name, old),
                "new": None if hidden else shown_value(spec, name, new),
            }
        )
    return out


def label_of(spec: Register, data: Mapping[str, Any]) -> str:
    """A record's name or title for a person, when it has one ("" otherwise)."""
    for name in ("name", "title"):
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return ""
