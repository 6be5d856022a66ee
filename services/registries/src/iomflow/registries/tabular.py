"""Spreadsheets in and out: CSV (any of the usual delimiters and encodings) and XLSX.

Reading yields plain text cells with the row number a person sees in the spreadsheet
(the header is row 1); dates and numbers typed in Excel arrive as their Python values.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from defusedxml import DefusedXmlException
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

Cell = str | int | float | bool | date | datetime | None


class TableError(ValueError):
    """The file cannot be read as a table at all (Russian message for people)."""


@dataclass
class Table:
    headers: list[str]
    rows: list[tuple[int, list[Cell]]]  # (row number as the spreadsheet shows it, cells)

    @property
    def total(self) -> int:
        return len(self.rows)


def kind_of(filename: str) -> str:
    lower = filename.lower()
    if lower.endswith(".xlsx"):
        return "xlsx"
    if lower.endswith((".csv", ".txt")):
        return "csv"
    if lower.endswith((".xls", ".ods", ".xlsm", ".xlsb")):
        raise TableError(
            f"файл «{filename}» — таблица в формате, который сервис не читает; откройте её в "
            "Excel или LibreOffice и сохраните как «Книга Excel (.xlsx)» (Файл → Сохранить "
            "как), затем загрузите этот файл .xlsx"
        )
    raise TableError(
        f"файл «{filename}» — не таблица: загружаются только книги Excel (.xlsx) и файлы "
        ".csv; сохраните данные реестра как «Книга Excel (.xlsx)» или скачайте шаблон реестра, "
        "заполните его и загрузите"
    )


def raw_rows(content: bytes, filename: str) -> Iterator[tuple[int, Sequence[Cell]]]:
    """Every row of the file's first sheet with its number, blank ones included."""
    return _read_xlsx(content) if kind_of(filename) == "xlsx" else _read_csv(content)


def read_table(content: bytes, filename: str) -> Table:
    rows = raw_rows(content, filename)
    header: list[str] | None = None
    body: list[tuple[int, list[Cell]]] = []
    for number, cells in rows:
        if header is None:
            if any(_blank(c) is False for c in cells):
                header = [str(c).strip() if c is not None else "" for c in cells]
            continue
        if all(_blank(c) for c in cells):
            continue
        body.append((number, list(cells)))
    if header is None:
        raise TableError(f"файл «{filename}» пуст: нет строки заголовков")
    return Table(header, body)


def _blank(cell: Cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _read_xlsx(content: bytes) -> Iterator[tuple[int, Sequence[Cell]]]:
    # openpyxl parses the sheets' XML with defusedxml when it is installed (it is a
    # dependency of this service): an XML bomb or an external entity is refused, not
    # expanded. The sheet is parsed lazily, so its errors come while rows are read.
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a broken file
        raise TableError(_unreadable(exc)) from exc
    try:
        sheet = book.worksheets[0]
        yield from enumerate(sheet.iter_rows(values_only=True), start=1)
    except TableError:
        raise
    except Exception as exc:
        raise TableError(_unreadable(exc)) from exc
    finally:
        book.close()


def _unreadable(exc: Exception) -> str:
    """Why a spreadsheet could not be read, said to the registrar who sent it."""
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
            "(.xlsx)» или выгрузите в CSV"
        )
    return (
        "файл не читается как книга Excel (.xlsx): он повреждён или создан программой, "
        "которая записала его с ошибками; откройте и сохраните его заново как «Книга Excel "
        "(.xlsx)» или выгрузите в CSV"
    )


def _read_csv(content: bytes) -> Iterator[tuple[int, Sequence[Cell]]]:
    for encoding in ("utf-8-sig", "cp1251"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1251 decodes every byte
        raise TableError("файл CSV: неизвестная кодировка (ожидается UTF-8 или Windows-1251)")
    sample = text[:10_000]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=";,\t")
    except csv.Error:
        delimiter = ";" if sample.count(";") >= sample.count(",") else ","
        dialect = type("Guessed", (csv.excel,), {"delimiter": delimiter})
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    yield from enumerate(reader, start=1)


def write_xlsx(sheets: Iterable[tuple[str, Sequence[str], Iterable[Sequence[Cell]]]]) -> bytes:
    """One workbook; each sheet is (title, headers, rows). Streams rows (write-only mode)."""
    book = Workbook(write_only=True)
    bold = Font(bold=True)
    for title, headers, rows in sheets:
        sheet = book.create_sheet(title=title[:31])
        for index, header in enumerate(headers, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = max(12, len(header) + 2)
        sheet.freeze_panes = "A2"

        head = []
        for header in headers:
            cell = WriteOnlyCell(sheet, value=header)
            cell.font = bold
            head.append(cell)
        sheet.append(head)
        for row in rows:
            sheet.append([writable(cell) for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def writable(cell: Cell) -> Cell:
    """The cell as a worksheet can hold it: text without the control characters XLSX
    forbids (a record may hold them, an uploaded CSV too)."""
    return ILLEGAL_CHARACTERS_RE.sub("", cell) if isinstance(cell, str) else cell


def column_letter(index: int) -> str:
    """0-based column index as the spreadsheet letters it."""
    return get_column_letter(index + 1)
