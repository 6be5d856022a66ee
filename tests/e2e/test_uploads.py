"""The registrar's uploads page, as a registrar uses it, in Chromium with the outside cut
off: registries under uvicorn on a real Redis, a registrar's key issued in its database.

They sign in, choose «Педагогические работники», upload a sheet with one bad row; the dry
run shows the error at the row and column of their sheet and what would be added; they
download their sheet with the bad cell marked and the register's template; they fix the
row, check again and confirm; the import completes and the records are in the register
(read through the API). A second registrar loads only the valid rows of a sheet, and a
file that is no table is told in Russian. Nothing outside is requested, no script fails,
and the page shows no Latin-letter codes (values from the registrar's own file aside).
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, FilePayload, Page
from registries.test_api_import import BASE, HEADERS, good_row, xlsx
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from e2e.pages import Offline, latin_codes, offline, served
from e2e.test_dashboard import needs_chromium
from iomflow.registries.app import create_app
from iomflow.registries.repository import tables
from iomflow.registries.settings import Settings
from iomflow.shared import auth

ADMIN = "iomf_test_admin_key_for_uploads"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BIRTH = chr(ord("A") + HEADERS.index("Дата рождения"))
SHOWN_AS_WRITTEN = re.compile(
    r"\.(xlsx|csv)\b"  # file types, as the registrar's file dialog names them
    r"|(?<=столбец )[A-Z]{1,3}\b"  # a column's letter: «столбец F «Дата рождения»»
)


@pytest.fixture
def registries(clean_redis: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """Registries under uvicorn with two organisations loaded; its URL, a registrar's key
    and an auditor's."""
    app = create_app(
        Settings(redis_url=clean_redis, data_dir=tmp_path, migrate_on_start=True, admin_key=ADMIN)
    )
    with served(app, "registries") as base:
        # The keys first, while the service writes nothing: SQLite has one writer, and
        # this is a second connection to its file.
        url = app.state.runtime.settings.resolved_database_url()
        registrar = asyncio.run(issue(url, "Петрова Анна", "registrar"))
        auditor = asyncio.run(issue(url, "Соколов Игорь", "auditor"))
        loaded = httpx.post(
            f"{base}/v1/load", json=BASE, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert loaded.status_code == 200, loaded.text
        yield base, registrar, auditor


async def issue(url: str, name: str, role: str) -> str:
    """A key, written to the service's database as ``keys add`` does."""
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            _, key = await auth.issue(session, tables.api_keys, name, [role])
    finally:
        await engine.dispose()
    return key


def upload(page: Page, name: str, content: bytes) -> None:
    payload: FilePayload = {"name": name, "mimeType": XLSX_TYPE, "buffer": content}
    page.set_input_files("#file", files=[payload])
    page.click("#check")


def downloaded(page: Page, selector: str) -> tuple[str, bytes]:
    with page.expect_download() as event:
        page.click(selector)
    download = event.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def shown_text(page: Page) -> str:
    """The page's text without the values of the registrar's own file ([data-own])."""
    return str(
        page.evaluate(
            """() => { const copy = document.body.cloneNode(true);
                copy.querySelectorAll('[data-own], script').forEach(e => e.remove());
                return copy.textContent; }"""
        )
    )


def signed_in(page: Page, base: str, key: str) -> None:
    """``pages.sign_in``, waiting for the sign-in page's script to be ready first: it
    asks two questions of the service before it takes the form over, and a click before
    that submits the form natively (the key in the address, no session)."""
    page.goto(f"{base}/signin?next=/uploads", wait_until="networkidle")
    page.fill("#key", key)
    page.click("#submit")
    page.wait_for_url(f"{base}/uploads*")


def opened(seen: Offline, base: str, key: str) -> Page:
    page = seen.page
    signed_in(page, base, key)
    page.wait_for_selector("body[data-state=ready]")
    page.select_option("#register", label="Педагогические работники")
    return page


def teachers(base: str) -> dict[str, object]:
    answer = httpx.get(f"{base}/v1/registers/teachers/records", params={"limit": 100})
    assert answer.status_code == 200
    return {item["teacher_id"]: item for item in answer.json()["items"]}


@needs_chromium
def test_a_registrar_checks_fixes_and_loads_a_sheet(
    registries: tuple[str, str, str], browser: Browser
) -> None:
    base, key, _ = registries
    seen = offline(browser, base, expected=("status of 401",))
    page = opened(seen, base, key)
    assert page.locator("#register option:checked").inner_text() == "Педагогические работники"
    assert page.url.endswith("/uploads?register=teachers")

    rows = [good_row(n) for n in range(1, 7)]
    rows[5][HEADERS.index("Дата рождения")] = "31.02.1980"  # sheet row 7
    upload(page, "педагоги.xlsx", xlsx(rows))
    page.wait_for_selector("body[data-state=previewed]")

    # The bad row where the registrar's sheet has it.
    bad = page.locator(f'#row-errors tr[data-row="7"][data-letter="{BIRTH}"]')
    assert bad.count() == 1
    cells = bad.locator("td").all_inner_texts()
    assert cells == [
        f"строка 7, столбец {BIRTH} «Дата рождения»",
        "31.02.1980",
        "такой даты нет: 31.02.1980 — в феврале 1980 года 29 дней",
    ]
    assert page.locator("#row-errors tbody tr").count() == 1
    assert page.locator('#counts [data-count="created"]').inner_text() == "5"
    assert page.locator('#counts [data-count="error_rows"]').inner_text() == "1"
    added = page.locator("#changes-created tbody tr")
    assert added.count() == 5 and "t-0001" in added.first.inner_text()
    assert page.locator("#confirm").inner_text() == "Загрузить только верные строки (5)"
    assert not latin_codes(shown_text(page), SHOWN_AS_WRITTEN), shown_text(page)

    # Their own sheet back, the bad cell marked and said why.
    name, content = downloaded(page, "#marked")
    assert name == "педагоги — ошибки.xlsx"
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    assert sheet[f"{BIRTH}7"].value == "31.02.1980"
    assert str(sheet[f"{BIRTH}7"].fill.fgColor.rgb).endswith("FFC7CE")
    assert "в феврале 1980 года 29 дней" in sheet[f"{BIRTH}7"].comment.text
    assert sheet.cell(row=1, column=len(HEADERS) + 1).value == "Ошибки загрузки"
    assert sheet.cell(row=7, column=len(HEADERS) + 1).value.startswith(
        f"столбец {BIRTH} «Дата рождения»: такой даты нет"
    )
    # The register's template, in Russian.
    name, content = downloaded(page, "#template")
    assert name == "Шаблон — Педагогические работники.xlsx"
    book = load_workbook(io.BytesIO(content))
    assert [c.value for c in book.worksheets[0][1]][:2] == ["Код педагога", "Код организации"]
    assert book.sheetnames[1] == "Пояснения"
    assert teachers(base) == {}  # the dry run wrote nothing

    # Fixed, checked again: no errors; confirmed: loaded.
    page.click("#again")
    page.wait_for_selector("body[data-state=ready]")
    rows[5][HEADERS.index("Дата рождения")] = "28.02.1980"
    upload(page, "педагоги.xlsx", xlsx(rows))
    page.wait_for_selector("body[data-state=previewed]")
    assert page.locator("#errors-box").is_hidden()
    assert page.locator('#counts [data-count="created"]').inner_text() == "6"
    page.click("#confirm")
    page.wait_for_selector("body[data-state=done]")
    result = page.locator("#result")
    assert result.get_attribute("data-status") == "applied"
    assert "добавлено 6" in page.locator("#result-message").inner_text()
    assert page.locator("#records").inner_text() == "в реестре 6 записей"
    stored = teachers(base)
    assert sorted(stored) == [f"t-{n:04d}" for n in range(1, 7)]
    assert not latin_codes(shown_text(page), SHOWN_AS_WRITTEN), shown_text(page)

    assert seen.attempted == [], f"requests off the machine: {seen.attempted}"
    assert seen.violations() == []
    assert seen.problems == []


@needs_chromium
def test_only_the_valid_rows_are_loaded_and_a_file_that_is_no_table_is_told(
    registries: tuple[str, str, str], browser: Browser
) -> None:
    base, key, _ = registries
    seen = offline(browser, base, expected=("status of 401", "status of 415"))
    page = opened(seen, base, key)

    upload(page, "письмо.docx", b"PK\x03\x04 not a table")
    refusal = page.locator(".say.error")
    refusal.wait_for()
    assert "не таблица: загружаются только книги Excel (.xlsx) и файлы .csv" in (
        refusal.inner_text()
    )
    assert "шаблон" in refusal.inner_text()

    rows = [good_row(n) for n in range(1, 4)]
    rows[1][HEADERS.index("Код организации")] = "org-404"  # sheet row 3
    upload(page, "педагоги.xlsx", xlsx(rows))
    page.wait_for_selector("body[data-state=previewed]")
    letter = chr(ord("A") + HEADERS.index("Код организации"))
    assert page.locator(f'#row-errors tr[data-row="3"][data-letter="{letter}"]').count() == 1
    page.check("#verify")
    page.click("#confirm")
    page.wait_for_selector("body[data-state=done]")
    assert "не загружено строк с ошибками: 1" in page.locator("#result-message").inner_text()
    assert page.locator("#result-marked").is_visible()
    assert sorted(teachers(base)) == ["t-0001", "t-0003"]

    assert seen.attempted == [], f"requests off the machine: {seen.attempted}"
    assert seen.violations() == []
    assert seen.problems == []


@needs_chromium
def test_a_person_without_the_registrar_role_is_told_so(
    registries: tuple[str, str, str], browser: Browser
) -> None:
    base, _, auditor = registries
    seen = offline(browser, base, expected=("status of 401",))
    page = seen.page
    signed_in(page, base, auditor)
    page.wait_for_selector("body[data-state=error]")
    assert page.locator(".say.error").inner_text() == (
        "Загружать реестры может только регистратор: войдите с ключом регистратора."
    )
    assert page.locator("#upload").is_hidden() and page.locator("#choose").is_hidden()
    assert seen.attempted == [] and seen.problems == []


@needs_chromium
def test_a_large_sheet_shows_its_progress_and_the_first_rows_of_each_kind(
    registries: tuple[str, str, str], browser: Browser
) -> None:
    base, key, _ = registries
    seen = offline(browser, base, expected=("status of 401",))
    page = opened(seen, base, key)
    said: list[str] = []
    page.expose_function("noteProgress", lambda text: said.append(text))
    page.evaluate(
        """() => new MutationObserver(() => noteProgress(
                document.getElementById('progress-text').textContent))
            .observe(document.getElementById('progress-text'),
                     {childList: true, characterData: true, subtree: true})"""
    )
    upload(page, "педагоги.xlsx", xlsx([good_row(n) for n in range(1, 8001)]))
    page.wait_for_selector("body[data-state=previewed]", timeout=120_000)
    assert said and said[0] in ("в очереди", "чтение файла"), said
    head = page.locator("#changes-created summary").inner_text()
    assert " ".join(head.split()) == "Будут добавлены: 8 000 записей, показаны первые 200"
    assert page.locator("#changes-created tbody tr").count() == 200
    assert seen.attempted == [] and seen.problems == []
