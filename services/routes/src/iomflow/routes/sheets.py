"""Activities as people write them in a spreadsheet (XLSX): the template, and reading a
filled one into entries with every row's errors in Russian. No I/O.

The rules are the suite's spreadsheet reading rules (``iomflow.shared.sheets``, which the
registries' imports follow too): the first row names the columns (by code or Russian
title, «ё» as «е», case ignored); enumerations by code or Russian label; lists separated by
«;» (or by «,» when there is no «;», never both); dates as ДД.ММ.ГГГГ or ГГГГ-ММ-ДД or
typed as dates; each error names the row as the spreadsheet shows it (the header is row
1), the column, its letter and the value.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from pydantic import ValidationError

from iomflow.routes.activities import Entry
from iomflow.shared import sheets
from iomflow.shared.contracts import ActivityHeld, Project, Theme
from iomflow.shared.fielderrors import in_russian
from iomflow.shared.sheets import Cell, CellError, Collected, RowError, TableError

__all__ = ["TableError"]  # what ``parse`` raises for a file that is no table

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
UNREADABLE = "заполните шаблон (GET /v1/activities/template.xlsx)"


@dataclass
class Parsed(Collected):
    """What a file would record: its entries (by row) and every error, before any write."""

    total: int = 0
    rows: list[int] = field(default_factory=list)  # the row of each entry
    entries: list[Entry] = field(default_factory=list)
    cells: list[list[Cell]] = field(default_factory=list)  # each entry's row as written
    where: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # header, letter, index

    def shown(self, name: str, cells: Sequence[Cell]) -> tuple[str, str, str]:
        """(header, letter, the value as written) of a field's cell in a row."""
        column = BY_NAME.get(name)
        title, letter, index = self.where.get(name, (column.title if column else name, "", -1))
        return title, letter, sheets.shown(cells[index] if 0 <= index < len(cells) else None)

    def refuse(self, entry: int, name: str, reason: str) -> None:
        """An error of the ``entry``-th entry's ``name`` found after reading (an unknown
        teacher, team or community)."""
        self.refuse_in(self.rows[entry], self.cells[entry], name, reason)

    def refuse_in(self, row: int, cells: Sequence[Cell], name: str, reason: str) -> None:
        title, letter, value = self.shown(name, cells)
        self.add(RowError(row, title, value, reason, name, letter))

    def problems(self) -> list[dict[str, Any]]:
        """The errors by row, as the import's problem lists them."""
        ordered = sorted(self.errors, key=lambda e: e.row)
        return [e.as_problem("file", e.row) for e in ordered]


# --- cells ---------------------------------------------------------------------------------


def _split(cell: Any) -> list[str]:
    return sheets.split(sheets.shown(cell))


def parser(column: Column) -> Callable[[Any], Any]:
    """The cell's value for the column's field; raises ``CellError``."""
    if column.kind == "int":
        return sheets.integer
    if column.kind == "date":
        return sheets.day
    if column.kind == "list":
        return _split
    if column.kind in ("choice", "choices"):
        assert column.labels is not None
        choose = sheets.chooser(column.labels)
        if column.kind == "choice":
            return choose
        return lambda cell: [choose(part) for part in _split(cell)]
    return sheets.shown


# --- a file --------------------------------------------------------------------------------


def parse(content: bytes, new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> Parsed:
    """Read a filled template: each row an entry or its errors; nothing is written here.
    ``TableError`` when the file is no workbook or has no header."""
    table = sheets.table(sheets.xlsx_rows(content, UNREADABLE), "файл пуст: нет строки заголовков")
    out = Parsed()
    mapping, header_errors = sheets.map_header(
        table.headers,
        {c.name: c.title for c in COLUMNS},
        [c.name for c in COLUMNS if c.required],
        "неизвестный столбец; см. шаблон мероприятий",
    )
    for problem in header_errors:
        out.add(problem)
    if out.errors:
        return out
    header = table.headers
    out.where = {n: (header[i], sheets.column_letter(i), i) for i, n in mapping.items()}
    out.total = table.total
    seen: dict[str, int] = {}
    for number, cells in table.rows:
        values: dict[str, Any] = {}
        bad: set[str] = set()
        for index, name in mapping.items():
            cell = cells[index] if index < len(cells) else None
            if sheets.blank(cell):
                continue
            try:
                values[name] = parser(BY_NAME[name])(cell)
            except CellError as exc:
                out.refuse_in(number, cells, name, str(exc))
                bad.add(name)
        teachers = values.pop("attendees", [])
        values.setdefault("activity_id", new_id())
        try:
            activity = ActivityHeld.model_validate({**values, "attendees": 0})
        except ValidationError as exc:
            for problem in exc.errors():
                name = str(problem["loc"][0]) if problem["loc"] else ""
                if name not in bad:
                    out.refuse_in(number, cells, name, in_russian(problem))
            continue
        if bad:
            continue
        if activity.activity_id in seen:
            out.refuse_in(
                number,
                cells,
                "activity_id",
                f"код «{activity.activity_id}» уже встречался в строке "
                f"{seen[activity.activity_id]}",
            )
            continue
        seen[activity.activity_id] = number
        out.rows.append(number)
        out.cells.append(cells)
        out.entries.append(Entry(activity, teachers))
    return out


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
