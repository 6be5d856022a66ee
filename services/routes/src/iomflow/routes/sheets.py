"""Activities as people write them in a spreadsheet (XLSX): the template, and reading a
filled one into entries with every row's errors in Russian. No I/O.

The rules are the registries' import rules: the first row names the columns (by code or
Russian title, «ё» as «е», case ignored); enumerations by code or Russian label; lists
separated by «;» (or by «,» when there is no «;», never both); dates as ДД.ММ.ГГГГ or
ГГГГ-ММ-ДД or typed as dates; each error names the row as the spreadsheet shows it
(the header is row 1), the column, its letter and the value.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from pydantic import ValidationError

from iomflow.routes.activities import Entry
from iomflow.shared.contracts import ActivityHeld, Project, Theme
from iomflow.shared.fielderrors import in_russian

Cell = str | int | float | bool | date | datetime | None

KINDS = {
    "event": "Мероприятие",
    "seminar": "Семинар",
    "webinar": "Вебинар",
    "consultation": "Консультация",
    "community_meeting": "Встреча сообщества",
}
LEVELS = {"regional": "Региональный", "municipal": "Муниципальный", "school": "Школьный"}
FORMATS = {"in_person": "Очно", "distance": "Дистанционно", "mixed": "Смешанный"}
TARGETS = {"teachers": "Педагоги", "school_team": "Школьная команда", "community": "Сообщество"}
THEMES = {
    Theme.SUBJECT: "Предметная подготовка",
    Theme.FUNCTIONAL_LITERACY: "Функциональная грамотность",
    Theme.UPDATED_FGOS: "Обновлённые ФГОС",
    Theme.DIGITAL_ENVIRONMENT: "Цифровая образовательная среда",
    Theme.QUALITY_ASSESSMENT: "Оценка качества образования",
    Theme.GIFTED_CHILDREN: "Работа с одарёнными детьми",
    Theme.CAREER_GUIDANCE: "Профориентация",
    Theme.UPBRINGING: "Воспитание",
    Theme.PRESCHOOL_QUALITY: "Качество дошкольного образования",
    Theme.MANAGEMENT: "Управление",
    Theme.BURNOUT_PREVENTION: "Профилактика профессионального выгорания",
}
PROJECTS = {
    Project.SCHOOL_OF_MINISTRY: "Школа Минпросвещения России",
    Project.PERSONAL_POTENTIAL: "Персональный потенциал",
    Project.TOCHKA_ROSTA: "Точка роста",
    Project.PROFESSIONALITET: "Профессионалитет",
    Project.KINDERGARTEN_OF_MINISTRY: "Детский сад Минпросвещения России",
}


@dataclass(frozen=True)
class Column:
    name: str  # the field
    title: str  # the Russian header
    what: str  # what it takes, for the template's explanation sheet
    kind: str = "text"  # text | int | date | list | choice | choices
    labels: Mapping[str, str] | None = None
    required: bool = False
    example: Cell = None


COLUMNS = [
    Column(
        "activity_id",
        "Код мероприятия",
        "Код, под которым мероприятие записано; пусто — код будет присвоен. Повторная "
        "загрузка того же кода добавляет только новых участников",
        example="sem-2026-03-12",
    ),
    Column("kind", "Вид", "Вид мероприятия", "choice", KINDS, True, "Консультация"),
    Column("title", "Название", "Тема мероприятия", required=True, example="Оценивание ФГ"),
    Column("level", "Уровень", "Уровень проведения", "choice", LEVELS, True, "Региональный"),
    Column(
        "organiser_id",
        "Организатор",
        "cnppm, код муниципалитета или организации",
        required=True,
        example="cnppm",
    ),
    Column("format", "Формат", "Формат проведения", "choice", FORMATS, True, "Очно"),
    Column("held_on", "Дата", "Дата проведения, ДД.ММ.ГГГГ", "date", required=True),
    Column("hours", "Часы", "Продолжительность в часах (целое число)", "int", example=2),
    Column("municipality_id", "Муниципалитет", "Код муниципалитета (муниципальное мероприятие)"),
    Column("organization_id", "Организация", "Код организации (школьное мероприятие)"),
    Column(
        "competencies",
        "Компетенции",
        "Коды компетенций через «;»",
        "list",
        example="assessment",
    ),
    Column("themes", "Темы", "Темы через «;»", "choices", THEMES),
    Column("target", "Для кого", "Педагоги, школьная команда или сообщество", "choice", TARGETS),
    Column("team_id", "Команда", "Код школьной команды (для школьной команды)", example=""),
    Column("community_id", "Сообщество", "Код профессионального сообщества (его встреча)"),
    Column("project", "Проект", "Проект, в рамках которого проведено", "choice", PROJECTS),
    Column("methodist_id", "Методист", "Код методиста, который провёл мероприятие"),
    Column(
        "attendees",
        "Участники",
        "Коды педагогов (псевдонимы) через «;»",
        "list",
        example="t-0001; t-0002",
    ),
]
BY_NAME = {c.name: c for c in COLUMNS}
MAX_ERRORS = 10_000


class SheetError(ValueError):
    """The file cannot be read as a table at all (a Russian sentence)."""


@dataclass
class Parsed:
    """What a file would record: its entries (by row) and every error, before any write."""

    total: int = 0
    rows: list[int] = field(default_factory=list)  # the row of each entry
    entries: list[Entry] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    cells: list[list[Cell]] = field(default_factory=list)  # each entry's row as written
    where: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # header, letter, index

    def shown(self, name: str, cells: Sequence[Cell]) -> tuple[str, str, str]:
        """(header, letter, the value as written) of a field's cell in a row."""
        column = BY_NAME.get(name)
        title, letter, index = self.where.get(name, (column.title if column else name, "", -1))
        cell = cells[index] if 0 <= index < len(cells) else None
        return title, letter, "" if cell is None else _text(cell)

    def refuse(self, entry: int, name: str, reason: str) -> None:
        """An error of the ``entry``-th entry's ``name`` found after reading (an unknown
        teacher, team or community)."""
        title, letter, value = self.shown(name, self.cells[entry])
        self.add(self.rows[entry], title, letter, name, value, reason)

    def add(self, row: int, column: str, letter: str, name: str, value: str, reason: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error(row, column, letter, name, value, reason))


def error(row: int, column: str, letter: str, name: str, value: str, reason: str) -> dict[str, Any]:
    """A row error as the import answers it: where (``loc`` and the cell) and why."""
    return {
        "loc": ["file", row, name or column],
        "msg": reason,
        "row": row,
        "column": column,
        "letter": letter,
        "field": name,
        "value": value,
        "reason": reason,
    }


# --- cells ---------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.replace("ё", "е").replace("Ё", "Е").split()).casefold()


class CellError(ValueError):
    pass


def _text(cell: Any) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime | date):
        return cell.strftime("%d.%m.%Y")
    return str(cell).strip()


def _split(cell: Any) -> list[str]:
    text = _text(cell).replace("\n", ";")
    if ";" in text and "," in text:
        raise CellError(
            "значения разделены и «;», и «,»: неясно, сколько их; разделяйте значения одним "
            "знаком — точкой с запятой"
        )
    separator = ";" if ";" in text else ","
    return [part.strip() for part in text.split(separator) if part.strip()]


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


_DATE = re.compile(r"(?:(\d{4})-(\d{2})-(\d{2})|(\d{2})\.(\d{2})\.(\d{4}))")


def _date(cell: Any) -> date:
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    text = str(cell).strip()
    found = _DATE.fullmatch(text)
    if found is None:
        raise CellError("ожидается дата в формате ДД.ММ.ГГГГ")
    y, m, d = (
        found.group(1, 2, 3) if found.group(1) else (found.group(6), found.group(5), found.group(4))
    )
    try:
        return date(int(y), int(m), int(d))
    except ValueError as exc:
        raise CellError(f"такой даты нет: {text}") from exc


def _chooser(labels: Mapping[str, str]) -> Callable[[Any], str]:
    lookup: dict[str, str] = {}
    for code, label in labels.items():
        lookup.setdefault(_norm(str(code)), str(code))
        lookup.setdefault(_norm(label), str(code))
    allowed = "недопустимое значение; допустимо: " + ", ".join(labels.values())

    def choose(cell: Any) -> str:
        found = lookup.get(_norm(_text(cell)))
        if found is None:
            raise CellError(allowed)
        return found

    return choose


def parser(column: Column) -> Callable[[Any], Any]:
    """The cell's value for the column's field; raises ``CellError``."""
    if column.kind == "int":
        return _int
    if column.kind == "date":
        return _date
    if column.kind == "list":
        return _split
    if column.kind in ("choice", "choices"):
        assert column.labels is not None
        choose = _chooser(column.labels)
        if column.kind == "choice":
            return choose
        return lambda cell: [choose(part) for part in _split(cell)]
    return _text


def _blank(cell: Cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


# --- a file --------------------------------------------------------------------------------


def rows_of(content: bytes) -> list[tuple[int, list[Cell]]]:
    """Every row of the workbook's first sheet with its number (``SheetError`` when it is
    not a workbook). openpyxl parses the XML with defusedxml when it is installed."""
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SheetError(
            "файл не является книгой Excel (.xlsx) или повреждён: сохраните его как «Книга "
            "Excel (.xlsx)» или заполните шаблон (GET /v1/activities/template.xlsx)"
        ) from exc
    try:
        sheet = book.worksheets[0]
        return [(n, list(r)) for n, r in enumerate(sheet.iter_rows(values_only=True), start=1)]
    except Exception as exc:  # openpyxl raises several kinds for a broken sheet
        raise SheetError(
            "лист книги не читается: откройте её и сохраните заново как «Книга Excel (.xlsx)»"
        ) from exc
    finally:
        book.close()


def parse(content: bytes, new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> Parsed:
    """Read a filled template: each row an entry or its errors; nothing is written here."""
    rows = rows_of(content)
    out = Parsed()
    header: list[str] | None = None
    body: list[tuple[int, list[Cell]]] = []
    for number, cells in rows:
        if header is None:
            if any(not _blank(c) for c in cells):
                header = [_text(c) if c is not None else "" for c in cells]
            continue
        if not all(_blank(c) for c in cells):
            body.append((number, cells))
    if header is None:
        raise SheetError("файл пуст: нет строки заголовков")
    mapping = _header(header, out)
    if out.errors:
        return out
    out.where = {c.name: (header[i], get_column_letter(i + 1), i) for i, c in mapping.items()}
    out.total = len(body)
    seen: dict[str, int] = {}
    for number, cells in body:
        values: dict[str, Any] = {}
        bad: set[str] = set()
        for index, column in mapping.items():
            cell = cells[index] if index < len(cells) else None
            if _blank(cell):
                continue
            try:
                values[column.name] = parser(column)(cell)
            except CellError as exc:
                out.add(
                    number,
                    header[index],
                    get_column_letter(index + 1),
                    column.name,
                    _text(cell),
                    str(exc),
                )
                bad.add(column.name)

        def shown(name: str, row: list[Cell] = cells) -> tuple[str, str, str]:
            return out.shown(name, row)

        teachers = values.pop("attendees", [])
        values.setdefault("activity_id", new_id())
        try:
            activity = ActivityHeld.model_validate({**values, "attendees": 0})
        except ValidationError as exc:
            for problem in exc.errors():
                name = str(problem["loc"][0]) if problem["loc"] else ""
                if name in bad:
                    continue
                title, letter, value = shown(name)
                out.add(number, title, letter, name, value, in_russian(problem))
            continue
        if bad:
            continue
        if activity.activity_id in seen:
            title, letter, value = shown("activity_id")
            out.add(
                number,
                title,
                letter,
                "activity_id",
                value,
                f"код «{activity.activity_id}» уже встречался в строке "
                f"{seen[activity.activity_id]}",
            )
            continue
        seen[activity.activity_id] = number
        out.rows.append(number)
        out.cells.append(cells)
        out.entries.append(Entry(activity, teachers))
    return out


def _header(header: Sequence[str], out: Parsed) -> dict[int, Column]:
    lookup = {}
    for column in COLUMNS:
        lookup[_norm(column.name)] = column
        lookup[_norm(column.title)] = column
    mapping: dict[int, Column] = {}
    for index, text in enumerate(header):
        if not text:
            continue
        letter = get_column_letter(index + 1)
        found = lookup.get(_norm(text))
        if found is None:
            out.add(1, text, letter, "", text, "неизвестный столбец; см. шаблон мероприятий")
        elif found in mapping.values():
            out.add(1, text, letter, found.name, text, "столбец повторяется")
        else:
            mapping[index] = found
    present = {c.name for c in mapping.values()}
    for column in COLUMNS:
        if column.required and column.name not in present:
            out.add(
                1, column.title, "", column.name, "", f"нет обязательного столбца «{column.title}»"
            )
    return mapping


# --- the template --------------------------------------------------------------------------


def template(today: date) -> bytes:
    """The workbook to fill in: the columns (required ones bold), an example row, lists of
    the allowed values, and a sheet saying what each column takes."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Мероприятия"
    bold = Font(bold=True)
    for index, column in enumerate(COLUMNS, start=1):
        cell = sheet.cell(row=1, column=index, value=column.title)
        if column.required:
            cell.font = bold
        sheet.column_dimensions[get_column_letter(index)].width = max(14, len(column.title) + 4)
        example = today if column.name == "held_on" else column.example
        sheet.cell(row=2, column=index, value=example)
        if column.name == "held_on":
            sheet.cell(row=2, column=index).number_format = "DD.MM.YYYY"
        if column.kind == "choice" and column.labels:
            values = ",".join(column.labels.values())
            check = DataValidation(type="list", formula1=f'"{values}"', allow_blank=True)
            check.error = "Выберите значение из списка"
            sheet.add_data_validation(check)
            letter = get_column_letter(index)
            check.add(f"{letter}2:{letter}5000")
    sheet.freeze_panes = "A2"
    explain = book.create_sheet("Что вносить")
    explain.append(["Столбец", "Код поля", "Обязательный", "Что вносить", "Допустимые значения"])
    for c in explain[1]:
        c.font = bold
    for column in COLUMNS:
        allowed = "; ".join(column.labels.values()) if column.labels else ""
        explain.append(
            [column.title, column.name, "да" if column.required else "", column.what, allowed]
        )
    for letter, width in zip("ABCDE", (22, 18, 14, 60, 60), strict=True):
        explain.column_dimensions[letter].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
