"""Spreadsheets in and out: CSV (any of the usual delimiters and encodings) and XLSX.

Reading yields plain text cells with the row number a person sees in the spreadsheet
(the header is row 1); dates and numbers typed in Excel arrive as their Python values.
XLSX is read, and a table's header and rows found, by the suite's shared reading rules
(``iomflow.shared.sheets``); CSV is the registries' own.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from iomflow.shared.sheets import Cell, Table, TableError, column_letter, table, xlsx_rows

__all__ = [
    "Cell",
    "Table",
    "TableError",
    "column_letter",
    "kind_of",
    "raw_rows",
    "read_table",
    "writable",
    "write_xlsx",
]


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
    if kind_of(filename) == "xlsx":
        return xlsx_rows(content, otherwise="выгрузите в CSV")
    return _read_csv(content)


def read_table(content: bytes, filename: str) -> Table:
    return table(raw_rows(content, filename), f"файл «{filename}» пуст: нет строки заголовков")


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
