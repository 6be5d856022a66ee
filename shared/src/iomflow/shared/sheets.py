"""Spreadsheets as people fill them in: the reading rules every import of the suite follows
(registries' registers, routes' activities). No I/O.

- The first non-blank row names the columns, by field code or Russian title («ё» as «е»,
  case and extra spaces ignored); blank rows are left out.
- Enumerations by code or Russian label; lists separated by «;» (or line breaks), or by «,»
  when there is no «;» — never both; whole numbers; «да»/«нет»; dates as ДД.ММ.ГГГГ or
  ГГГГ-ММ-ДД or typed as dates.
- Each error names the row as the spreadsheet shows it (the header is row 1), the column,
  its letter and the value, with the reason in Russian; at most ``MAX_ERRORS`` are kept.
- XLSX is read with openpyxl, which parses the sheets' XML with defusedxml (a dependency):
  an XML bomb or an external entity is refused, not expanded.
"""

from __future__ import annotations

import calendar
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from defusedxml import DefusedXmlException
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

Cell = str | int | float | bool | date | datetime | None

MAX_ERRORS = 10_000
"""Errors kept per file; a file with more is reported by count beyond this."""


class TableError(ValueError):
    """The file cannot be read as a table at all (Russian message for people)."""


class CellError(ValueError):
    """A cell that cannot be read as its field's value (the reason in Russian)."""


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
class Collected:
    """A file's row errors as they are found: the first ``MAX_ERRORS`` kept, every row
    with an error counted."""

    errors: list[RowError] = field(default_factory=list, kw_only=True)
    error_rows: set[int] = field(default_factory=set, kw_only=True)

    def add(self, error: RowError) -> None:
        self.error_rows.add(error.row)
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)


@dataclass
class Table:
    headers: list[str]
    rows: list[tuple[int, list[Cell]]]  # (row number as the spreadsheet shows it, cells)

    @property
    def total(self) -> int:
        return len(self.rows)


# --- cells ---------------------------------------------------------------------------------


def norm(text: str) -> str:
    """A header or a label as compared: «ё» as «е», spaces collapsed, case ignored."""
    return " ".join(text.replace("ё", "е").replace("Ё", "Е").split()).casefold()


def blank(cell: Cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def text(cell: Any) -> str:
    """A cell as text: a whole float without its «.0», stripped."""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def shown(cell: Cell) -> str:
    """A cell as a person reads it in an error: a date as ДД.ММ.ГГГГ, nothing as ""."""
    if cell is None:
        return ""
    if isinstance(cell, datetime | date):
        return cell.strftime("%d.%m.%Y")
    return text(cell)


def clipped(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split(cell: Cell) -> list[str]:
    """A list cell's values: separated by «;» (or line breaks), or by «,» when it has no «;».
    A cell with both is refused: «математика; физика, астрономия» could be two values or
    three, and taking one of the readings silently is how a subject gets lost."""
    text = str(cell).replace("\n", ";")
    if ";" in text and "," in text:
        raise CellError(
            f"в ячейке «{clipped(text)}» значения разделены и «;», и «,»: неясно, сколько их; "
            "разделяйте значения одним знаком — точкой с запятой"
        )
    separator = ";" if ";" in text else ","
    return [part.strip() for part in text.split(separator) if part.strip()]


_TRUE = {"да", "true", "1", "yes", "y", "+", "истина", "д"}
_FALSE = {"нет", "false", "0", "no", "n", "-", "ложь", "н"}


def boolean(cell: Any) -> bool:
    if isinstance(cell, bool):
        return cell
    found = norm(str(cell))
    if found in _TRUE:
        return True
    if found in _FALSE:
        return False
    raise CellError("ожидается «да» или «нет»")


def integer(cell: Any) -> int:
    if isinstance(cell, bool):
        raise CellError("ожидается целое число")
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float) and cell.is_integer():
        return int(cell)
    written = str(cell).strip().replace(" ", "").replace("\u00a0", "")
    if written.lstrip("-").isdigit():
        return int(written)
    raise CellError("ожидается целое число")


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RU_DATE = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{4}")
_DATE_PATTERNS = ("%d.%m.%Y", "%Y-%m-%d", "%d.%m.%y")


def day(cell: Any) -> date:
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    written = str(cell).strip()
    # The two usual spellings without strptime (its cost dominated a large file's dates);
    # anything else, or an impossible day, goes the long way and gets its reason there.
    if _ISO_DATE.fullmatch(written):
        return calendar_day(int(written[0:4]), int(written[5:7]), int(written[8:10]), written)
    if _RU_DATE.fullmatch(written):
        return calendar_day(int(written[6:10]), int(written[3:5]), int(written[0:2]), written)
    for pattern in _DATE_PATTERNS:
        try:
            return datetime.strptime(written, pattern).date()
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


def calendar_day(year: int, month: int, day_: int, written: str) -> date:
    """The day, written in a right format; if the calendar has no such day, that is the
    reason given (not the format, which was right)."""
    if not 1 <= month <= 12:
        raise CellError(f"такой даты нет: {written} — месяца с номером {month} не бывает")
    if year < 1:
        raise CellError(f"такой даты нет: {written} — года с номером {year} не бывает")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day_ <= last:
        raise CellError(
            f"такой даты нет: {written} — в {MONTHS_IN[month - 1]} {year} года {last} "
            f"{'день' if last == 31 else 'дней'}"
        )
    return date(year, month, day_)


def chooser(labels: Mapping[str, str]) -> Callable[[Any], str]:
    """Reads an enumerated cell by its code or Russian label into the code; the first code
    whose code or label matches wins, as a scan in order would."""
    lookup: dict[str, str] = {}
    for code, label in labels.items():
        lookup.setdefault(norm(str(code)), str(code))
        lookup.setdefault(norm(label), str(code))
    allowed = "недопустимое значение; допустимо: " + ", ".join(labels.values())

    def choose(cell: Any) -> str:
        found = lookup.get(norm(str(cell)))
        if found is None:
            raise CellError(allowed)
        return found

    return choose


# --- a file --------------------------------------------------------------------------------


def xlsx_rows(content: bytes, otherwise: str) -> Iterator[tuple[int, Sequence[Cell]]]:
    """Every row of the workbook's first sheet with its number, blank ones included;
    ``TableError`` when it cannot be read, saying why and to save it again as a workbook
    or ``otherwise`` (what else the person may do). The sheet is parsed lazily, so its
    errors come while rows are read."""
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a broken file
        raise TableError(unreadable(exc, otherwise)) from exc
    try:
        sheet = book.worksheets[0]
        yield from enumerate(sheet.iter_rows(values_only=True), start=1)
    except TableError:
        raise
    except Exception as exc:
        raise TableError(unreadable(exc, otherwise)) from exc
    finally:
        book.close()


def unreadable(exc: Exception, otherwise: str) -> str:
    """Why a spreadsheet could not be read, said to the person who sent it."""
    causes: list[BaseException] = []
    found: BaseException | None = exc
    while found is not None and found not in causes:  # openpyxl wraps what it met
        causes.append(found)
        found = found.__cause__ or found.__context__
    if any(isinstance(cause, DefusedXmlException) for cause in causes):
        return (
            "файл отклонён: в нём есть конструкции XML (сущности, внешние ссылки), которые "
            "могут перегрузить или обойти сервис; сохраните таблицу заново в Excel или "
            "LibreOffice как «Книга Excel (.xlsx)»"
        )
    if any(isinstance(cause, zipfile.BadZipFile) for cause in causes):
        return (
            "файл не является книгой Excel (.xlsx): возможно, это старый формат .xls, другой "
            "файл с расширением .xlsx или файл повреждён; сохраните его как «Книга Excel "
            f"(.xlsx)» или {otherwise}"
        )
    return (
        "файл не читается как книга Excel (.xlsx): он повреждён или создан программой, "
        "которая записала его с ошибками; откройте и сохраните его заново как «Книга Excel "
        f"(.xlsx)» или {otherwise}"
    )


def table(rows: Iterable[tuple[int, Sequence[Cell]]], empty: str) -> Table:
    """The header (the first non-blank row) and the non-blank rows after it;
    ``TableError(empty)`` when there is no header."""
    header: list[str] | None = None
    body: list[tuple[int, list[Cell]]] = []
    for number, cells in rows:
        if header is None:
            if not all(blank(c) for c in cells):
                header = [str(c).strip() if c is not None else "" for c in cells]
            continue
        if all(blank(c) for c in cells):
            continue
        body.append((number, list(cells)))
    if header is None:
        raise TableError(empty)
    return Table(header, body)


def column_letter(index: int) -> str:
    """0-based column index as the spreadsheet letters it."""
    return get_column_letter(index + 1)


def map_header(
    headers: Sequence[str], titles: Mapping[str, str], required: Iterable[str], unknown: str
) -> tuple[dict[int, str], list[RowError]]:
    """Column index -> field name, by the field's code or its title (``titles``: name ->
    title, in the order the fields are known); the header's errors: an ``unknown`` column,
    a repeated one, a ``required`` one missing."""
    lookup = {}
    for name, title in titles.items():
        lookup[norm(name)] = name
        lookup[norm(title)] = name
    mapping: dict[int, str] = {}
    errors: list[RowError] = []
    for index, header in enumerate(headers):
        if not header:
            continue
        found = lookup.get(norm(header))
        letter = column_letter(index)
        if found is None:
            errors.append(RowError(1, header, header, unknown, "", letter))
        elif found in mapping.values():
            errors.append(RowError(1, header, header, "столбец повторяется", found, letter))
        else:
            mapping[index] = found
    present = set(mapping.values())
    for name in required:
        if name not in present:
            title = titles.get(name, name)
            errors.append(RowError(1, title, "", f"нет обязательного столбца «{title}»", name))
    return mapping, errors
