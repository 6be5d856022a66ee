"""The registrar's workbooks: a register's template to fill in, and the registrar's own
uploaded sheet given back with its errors marked where they are.

A template's first sheet is what an import reads: one column per field, titled in
Russian, an example row (``examples``: every value one the import
takes), lists to choose from in the cells of single-valued enumerated columns; its second
sheet says for each column whether it is required and what to write.

A marked sheet is the uploaded file itself (an XLSX as it was; a CSV as an XLSX of its
rows): each bad cell filled red with a note giving the reason, and one more column,
«Ошибки загрузки», with every reason of its row, so the registrar fixes the file they
know and uploads it again.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import MergedCell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from iomflow.registries import importing
from iomflow.registries.domain import Register
from iomflow.registries.examples import EXAMPLES
from iomflow.registries.personal import PERSONAL_FIELDS
from iomflow.registries.tabular import kind_of, raw_rows, writable

BAD = PatternFill("solid", fgColor="FFC7CE")
REQUIRED = PatternFill("solid", fgColor="FFF2CC")
EXAMPLE = PatternFill("solid", fgColor="E2EFDA")
BOLD = Font(bold=True)
ERRORS_TITLE = "Ошибки загрузки"
TEMPLATE_ROWS = 5000
"""Rows of a template whose enumerated cells offer their list."""


def _save(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- a register's template -----------------------------------------------------------------


def example(spec: Register) -> dict[str, Any]:
    """The register's example record (``examples``): every value one the import takes."""
    return EXAMPLES.get(spec.name, {})


def template(spec: Register) -> bytes:
    """The register's template: headers, an example row, and how to fill each column."""
    names = importing.columns(spec)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = _sheet_title(spec.title)
    sheet.append([importing.title(n) for n in names])
    sheet.append(importing.cells_of(spec, example(spec), names))
    for index, name in enumerate(names, start=1):
        letter = get_column_letter(index)
        head = sheet.cell(row=1, column=index)
        head.font = BOLD
        needed = importing.required(spec, name)
        if needed:
            head.fill = REQUIRED
        head.comment = Comment(
            ("Обязательный столбец. " if needed else "") + importing.describe(spec, name),
            "iomflow",
        )
        sheet.cell(row=2, column=index).fill = EXAMPLE
        sheet.column_dimensions[letter].width = max(14, len(importing.title(name)) + 4)
        choice = _choice(spec, name)
        if choice is not None:
            choice.add(f"{letter}2:{letter}{TEMPLATE_ROWS}")
            sheet.add_data_validation(choice)
    sheet.freeze_panes = "A2"
    _explain(book.create_sheet("Пояснения"), spec, names)
    return _save(book)


def _sheet_title(text: str) -> str:
    # A sheet's title: at most 31 characters and none of []:*?/\ .
    for forbidden in "[]:*?/\\":
        text = text.replace(forbidden, " ")
    return text[:31].strip() or "Реестр"


def _choice(spec: Register, name: str) -> DataValidation | None:
    """A list to pick from, for a column that takes exactly one of a few values."""
    if name in PERSONAL_FIELDS or importing.field_kind(spec, name) == "list":
        return None
    labels = importing.labels_of(spec, name)
    if labels is None and importing.field_kind(spec, name) == "bool":
        labels = {"true": "да", "false": "нет"}
    if labels is None:
        return None
    values = list(labels.values())
    formula = ",".join(values)
    if any("," in v or '"' in v for v in values) or len(formula) > 250:
        return None  # Excel's inline list cannot hold it; the comment names the values
    return DataValidation(
        type="list",
        formula1=f'"{formula}"',
        allow_blank=not importing.required(spec, name),
        showErrorMessage=True,
        errorTitle="Недопустимое значение",
        error="Выберите значение из списка: " + ", ".join(values),
    )


def _explain(sheet: Worksheet, spec: Register, names: Sequence[str]) -> None:
    sheet.append([f"Шаблон реестра «{spec.title}»"])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append(
        [
            f"Заполните лист «{_sheet_title(spec.title)}»: одна строка — одна запись. Строка 2 — "
            "вымышленный пример, замените её своими данными. Обязательные столбцы выделены жёлтым. "
            "Несколько значений в одной ячейке разделяйте точкой с запятой «;»."
        ]
    )
    sheet.append([])
    sheet.append(["Столбец", "Обязательный", "Что писать", "Пример"])
    for cell in sheet[4]:
        cell.font = BOLD
    shown = example(spec)
    for name in names:
        sheet.append(
            [
                importing.title(name),
                "да" if importing.required(spec, name) else "нет",
                importing.describe(spec, name),
                importing.shown_value(spec, name, shown) if name in shown else "",
            ]
        )
    for letter, width in zip("ABCD", (34, 14, 80, 40), strict=True):
        sheet.column_dimensions[letter].width = width
    for row in sheet.iter_rows(min_row=5):
        row[2].alignment = Alignment(wrap_text=True, vertical="top")


# --- the registrar's sheet with its errors marked ------------------------------------------


def marked(content: bytes, filename: str, errors: Sequence[Mapping[str, Any]]) -> bytes:
    """The uploaded file with each of ``errors`` (``RowError.as_dict``) marked in it."""
    if kind_of(filename) == "xlsx":
        book = load_workbook(io.BytesIO(content))
        sheet = book.worksheets[0]
    else:
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.title = "Данные"
        for _, cells in raw_rows(content, filename):
            sheet.append([writable(cell) for cell in cells])
    book.active = 0
    extra = (sheet.max_column or 0) + 1
    reasons: dict[int, list[str]] = {}
    for error in errors:
        row, letter, reason = int(error["row"]), error.get("letter") or "", error["reason"]
        where = f"столбец {letter} «{error['column']}»" if letter else f"«{error['column']}»"
        reasons.setdefault(row, []).append(f"{where}: {reason}")
        cell = sheet[f"{letter}{row}"] if letter else None
        # A cell inside a merged range takes no style or note: its row's column says it.
        if cell is not None and not isinstance(cell, MergedCell):
            cell.fill = BAD
            previous = cell.comment.text + "\n" if cell.comment is not None else ""
            cell.comment = Comment(writable(previous + reason), "iomflow", width=300, height=120)
    head = sheet.cell(row=1, column=extra)
    head.value = ERRORS_TITLE
    head.font = BOLD
    head.fill = BAD
    for row, texts in reasons.items():
        if row == 1:  # the header's own problems: said in the header cell's note
            head.comment = Comment(writable("\n".join(texts)), "iomflow", width=300, height=160)
            continue
        cell = sheet.cell(row=row, column=extra)
        cell.value = writable("; ".join(texts))
        cell.fill = BAD
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.column_dimensions[get_column_letter(extra)].width = 60
    return _save(book)
