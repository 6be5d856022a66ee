"""Reading records as people write them in spreadsheets, row by row, with reasons in
Russian. No I/O.

Cells are read into field values (Russian labels and «да»/«нет» accepted), then each
record is checked by the register's rules (``domain.check_record``: its model, its own
rules, its references to other registers), the same check an API
request gets. A row's errors name the row, the column and the value, so an operator can
find and fix each one.
"""

from __future__ import annotations

import calendar
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
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
from iomflow.registries.tabular import Cell, Table, column_letter

MAX_ERRORS = 10_000
"""Errors kept per import; a file with more is reported by count beyond this."""


@dataclass(frozen=True)
class RowError:
    row: int  # as the spreadsheet shows it (the header is row 1); 0 for an API request
    column: str  # the column's header as written in the file, or the field name
    value: str
    reason: str
    field: str = ""
    letter: str = ""  # the spreadsheet column letter

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "letter": self.letter,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
        }

    def as_problem(self, *where: str | int) -> dict[str, Any]:
        """As a field error of a problem (``loc``, ``msg``), with every member of
        ``as_dict``: ``where`` goes before the field in ``loc``."""
        return {"loc": [*where, self.field or self.column], "msg": self.reason, **self.as_dict()}


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
            f"«{_clipped(str(cell))}»: ожидается «код организации ДД.ММ.ГГГГ [код педагога]»"
        )
    on = _date(parts[1])
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


def _norm(text: str) -> str:
    return " ".join(text.replace("ё", "е").replace("Ё", "Е").split()).casefold()


class CellError(ValueError):
    pass


_TRUE = {"да", "true", "1", "yes", "y", "+", "истина", "д"}
_FALSE = {"нет", "false", "0", "no", "n", "-", "ложь", "н"}


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
        if cell is None or (isinstance(cell, str) and not cell.strip()):
            return None
        if many:
            parts = cell if isinstance(cell, list) else _split(cell)
            return [scalar(part) for part in parts]
        return scalar(cell)

    return parse


def _split(cell: Cell) -> list[str]:
    """A list cell's values: separated by «;» (or line breaks), or by «,» when it has no «;».
    A cell with both is refused: «математика; физика, астрономия» could be two values or
    three, and taking one of the readings silently is how a subject gets lost."""
    text = str(cell).replace("\n", ";")
    if ";" in text and "," in text:
        raise CellError(
            f"в ячейке «{_clipped(text)}» значения разделены и «;», и «,»: неясно, сколько их; "
            "разделяйте значения одним знаком — точкой с запятой"
        )
    separator = ";" if ";" in text else ","
    return [part.strip() for part in text.split(separator) if part.strip()]


def _clipped(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RU_DATE = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{4}")
_DATE_PATTERNS = ("%d.%m.%Y", "%Y-%m-%d", "%d.%m.%y")


def _scalar_parser(inner: Any, labels: Mapping[str, str] | None) -> Parser:
    if labels is not None:
        # The first code whose code or label matches wins, as a scan in order would.
        lookup: dict[str, str] = {}
        for code, label in labels.items():
            lookup.setdefault(_norm(code), code)
            lookup.setdefault(_norm(label), code)
        allowed = "недопустимое значение; допустимо: " + ", ".join(labels.values())

        def labelled(cell: Any) -> Any:
            found = lookup.get(_norm(str(cell)))
            if found is None:
                raise CellError(allowed)
            return found

        return labelled
    if inner is bool:
        return _bool
    if inner is int:
        return _int
    if inner is date:
        return _date
    return _text


def _bool(cell: Any) -> bool:
    if isinstance(cell, bool):
        return cell
    text = _norm(str(cell))
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError("ожидается «да» или «нет»")


def _int(cell: Any) -> int:
    if isinstance(cell, bool):
        raise CellError("ожидается целое число")
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float) and cell.is_integer():
        return int(cell)
    text = str(cell).strip().replace(" ", "").replace("\u00a0", "")
    if text.lstrip("-").isdigit():
        return int(text)
    raise CellError("ожидается целое число")


def _date(cell: Any) -> date:
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    text = str(cell).strip()
    # The two usual spellings without strptime (its cost dominated a large file's dates);
    # anything else, or an impossible day, goes the long way and gets its reason there.
    if _ISO_DATE.fullmatch(text):
        return _calendar_day(int(text[0:4]), int(text[5:7]), int(text[8:10]), text)
    if _RU_DATE.fullmatch(text):
        return _calendar_day(int(text[6:10]), int(text[3:5]), int(text[0:2]), text)
    for pattern in _DATE_PATTERNS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise CellError("ожидается дата в формате ДД.ММ.ГГГГ")


MONTHS_IN = (
    "январе",
    "феврале",
    "марте",
    "апреле",
    "мае",
    "июне",
    "июле",
    "августе",
    "сентябре",
    "октябре",
    "ноябре",
    "декабре",
)


def _calendar_day(year: int, month: int, day: int, text: str) -> date:
    """The day, written in a right format; if the calendar has no such day, that is the
    reason given (not the format, which was right)."""
    if not 1 <= month <= 12:
        raise CellError(f"такой даты нет: {text} — месяца с номером {month} не бывает")
    if year < 1:
        raise CellError(f"такой даты нет: {text} — года с номером {year} не бывает")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        raise CellError(
            f"такой даты нет: {text} — в {MONTHS_IN[month - 1]} {year} года {last} "
            f"{'день' if last == 31 else 'дней'}"
        )
    return date(year, month, day)


def _text(cell: Any) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


# --- a spreadsheet -------------------------------------------------------------------------


@dataclass
class Plan:
    """What a file would do: its valid rows and every error, before anything is written."""

    register: str
    total: int
    candidates: list[Candidate] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_rows: set[int] = field(default_factory=set)
    header_errors: bool = False

    def add(self, error: RowError) -> None:
        self.error_rows.add(error.row)
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)


def map_header(spec: Register, headers: Sequence[str]) -> tuple[dict[int, str], list[RowError]]:
    """Column index -> field name, by field code or Russian title; header problems."""
    lookup = {}
    for name in columns(spec):
        lookup[_norm(name)] = name
        lookup[_norm(title(name))] = name
    mapping: dict[int, str] = {}
    errors: list[RowError] = []
    for index, header in enumerate(headers):
        if not header:
            continue
        found = lookup.get(_norm(header))
        letter = column_letter(index)
        if found is None:
            errors.append(
                RowError(1, header, header, "неизвестный столбец; см. шаблон реестра", "", letter)
            )
        elif found in mapping.values():
            errors.append(RowError(1, header, header, "столбец повторяется", found, letter))
        else:
            mapping[index] = found
    present = set(mapping.values())
    for name, info in spec.record.model_fields.items():
        if info.is_required() and name not in present:
            errors.append(
                RowError(1, title(name), "", f"нет обязательного столбца «{title(name)}»", name)
            )
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
        return header, letter, _shown(cells[index] if index < len(cells) else None)

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
                value_shown = "" if is_personal else _shown(cell)
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


def _shown(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        return cell.strftime("%d.%m.%Y")
    if isinstance(cell, date):
        return cell.strftime("%d.%m.%Y")
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


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
    return _shown(cell)


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
