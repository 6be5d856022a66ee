"""The JSON API behind the registrar's uploads page, in process on a real Redis and SQLite
(and PostgreSQL for the preview): a dry run lists the rows it would add, change and keep,
and what a change changes; the registrar's own file comes back with each bad cell marked
where it is (an XLSX as it was, a CSV as an XLSX of its rows), kept only while it may be
needed; every register's template is in Russian and its example row imports cleanly; a
file that is no table is refused in Russian with what to do; the page and its files are
served with the pages' headers."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select, update

from iomflow.cli import region
from iomflow.registries import importing, repository
from iomflow.registries.app import create_app
from iomflow.registries.domain import REGISTRY
from iomflow.registries.settings import Settings
from registries.test_api_import import BASE, HEADERS, good_row, run_import, xlsx

ADMIN = "iomf_test_admin_key_uploads"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@asynccontextmanager
async def started(
    redis_url: str, data_dir: Path, database_url: str | None = None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    if database_url is not None:
        settings["database_url"] = database_url
    app = create_app(
        Settings(
            redis_url=redis_url,
            data_dir=data_dir,
            migrate_on_start=True,
            relay_poll_s=0.05,
            admin_key=ADMIN,
            **settings,
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://registries", headers=AUTH
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            response = await client.post("/v1/load", json=BASE)
            assert response.status_code == 200, response.text
            yield client


@pytest.fixture
async def client(
    clean_redis: str, tmp_path: Path, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with started(clean_redis, tmp_path, database_url) as c:
        yield c


@pytest.fixture
async def sqlite_client(clean_redis: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with started(clean_redis, tmp_path) as c:
        yield c


def column(name: str) -> str:
    """The letter of a teachers' sheet column (``HEADERS``)."""
    return chr(ord("A") + HEADERS.index(name))


def changed(row: list[Any], name: str, value: Any) -> list[Any]:
    out = list(row)
    out[HEADERS.index(name)] = value
    return out


# --- the dry run's preview -----------------------------------------------------------------


async def test_a_dry_run_lists_the_rows_it_would_add_change_and_keep(
    client: httpx.AsyncClient,
) -> None:
    stored = [good_row(n) for n in range(1, 5)]
    first = await run_import(client, xlsx(stored), "all_or_nothing")
    assert first["summary"]["created"] == 4 and first["preview"]["created"][0]["row"] == 2

    rows = [
        stored[0],  # row 2: unchanged
        changed(stored[1], "Должность", "заместитель директора"),  # row 3: changed
        changed(stored[2], "Дата рождения", "16.03.1985"),  # row 4: a personal date changed
        good_row(7),  # row 5: new
        changed(good_row(8), "Дата рождения", "31.02.1980"),  # row 6: bad
        stored[3],  # row 7: unchanged
    ]
    dry = await run_import(client, xlsx(rows), "dry_run")
    assert dry["status"] == "done"
    summary, preview = dry["summary"], dry["preview"]
    assert "preview" not in summary  # the summary's answer is what it was
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (1, 2, 2)
    assert [(r["row"], r["record_id"]) for r in preview["created"]] == [(5, "t-0007")]
    assert [(r["row"], r["record_id"]) for r in preview["unchanged"]] == [
        (2, "t-0001"),
        (7, "t-0004"),
    ]
    updated = {r["row"]: r for r in preview["updated"]}
    assert sorted(updated) == [3, 4]
    assert updated[3]["record_id"] == "t-0002"
    assert updated[3]["changes"] == [
        {
            "field": "position",
            "title": "Должность",
            "old": "учитель",
            "new": "заместитель директора",
        }
    ]
    # The stored birth date is not the registrar's to see: that it changes, not from what.
    assert updated[4]["changes"] == [
        {"field": "birth_date", "title": "Дата рождения", "old": None, "new": None}
    ]
    assert [(e["row"], e["letter"], e["column"]) for e in dry["errors"]] == [
        (6, column("Дата рождения"), "Дата рождения")
    ]
    # Nothing was written by the dry run.
    teacher = (await client.get("/v1/registers/teachers/records/t-0002")).json()
    assert teacher["position"] == "учитель"
    assert (await client.get("/v1/registers/teachers/records/t-0007")).status_code == 404


async def test_the_preview_lists_at_most_its_limit_but_counts_every_row(
    sqlite_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iomflow.registries import service

    monkeypatch.setattr(service, "PREVIEW", 3)
    dry = await run_import(sqlite_client, xlsx([good_row(n) for n in range(1, 11)]), "dry_run")
    assert dry["summary"]["created"] == 10
    assert [r["row"] for r in dry["preview"]["created"]] == [2, 3, 4]


# --- the registrar's own file, marked --------------------------------------------------------


def cell_fill(sheet: Worksheet, ref: str) -> str:
    return str(sheet[ref].fill.fgColor.rgb)[-6:]


async def test_the_uploaded_sheet_comes_back_with_its_bad_cells_marked(
    client: httpx.AsyncClient,
) -> None:
    rows = [good_row(n) for n in range(1, 7)]
    rows[2] = changed(rows[2], "Дата рождения", "31.02.1980")  # row 4
    rows[4] = changed(rows[4], "Квалификационная категория", "лучшая")  # row 6
    rows[4] = changed(rows[4], "Руководитель", "может быть")
    content = xlsx(rows)
    dry = await run_import(client, content, "dry_run", "Педагоги школы.xlsx")
    assert dry["marked_href"] == f"/v1/imports/{dry['import_id']}/marked.xlsx"

    answer = await client.get(dry["marked_href"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "filename*=UTF-8''" in answer.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(answer.content)).worksheets[0]
    original = load_workbook(io.BytesIO(content)).worksheets[0]
    # It is their sheet: every cell as they wrote it, one column more.
    extra = original.max_column + 1
    assert sheet.max_column == extra
    for line in original.iter_rows():
        for cell in line:
            assert sheet[cell.coordinate].value == cell.value, cell.coordinate
    assert sheet.cell(row=1, column=extra).value == "Ошибки загрузки"

    bad = {(e["row"], e["letter"]): e["reason"] for e in dry["errors"]}
    assert set(bad) == {
        (4, column("Дата рождения")),
        (6, column("Квалификационная категория")),
        (6, column("Руководитель")),
    }
    for (row, letter), reason in bad.items():
        assert cell_fill(sheet, f"{letter}{row}") == "FFC7CE"
        comment = sheet[f"{letter}{row}"].comment
        assert comment is not None and reason in comment.text
    for row in (2, 3, 5, 7):
        assert cell_fill(sheet, f"{column('Дата рождения')}{row}") != "FFC7CE"
        assert sheet.cell(row=row, column=extra).value is None
    said = sheet.cell(row=4, column=extra).value
    assert said == (
        f"столбец {column('Дата рождения')} «Дата рождения»: такой даты нет: 31.02.1980 — "
        "в феврале 1980 года 29 дней"
    )
    assert sheet.cell(row=6, column=extra).value.count("столбец ") == 2

    # The report of the errors (a list) is unchanged beside it.
    listed = await client.get(f"/v1/imports/{dry['import_id']}/errors.xlsx")
    assert listed.status_code == 200
    lines = list(load_workbook(io.BytesIO(listed.content)).active.iter_rows(values_only=True))
    assert [line[0] for line in lines[1:]] == [4, 6, 6]


async def test_a_csv_comes_back_as_a_workbook_of_its_rows_marked(
    sqlite_client: httpx.AsyncClient,
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(HEADERS)
    writer.writerows([good_row(1), changed(good_row(2), "Код организации", "org-404")])
    job = await run_import(
        sqlite_client, out.getvalue().encode("cp1251"), "valid_rows", "педагоги.csv"
    )
    assert job["summary"]["created"] == 1 and job["marked_href"]
    answer = await sqlite_client.get(job["marked_href"])
    assert answer.status_code == 200
    sheet = load_workbook(io.BytesIO(answer.content)).worksheets[0]
    assert [c.value for c in sheet[1]] == [*HEADERS, "Ошибки загрузки"]
    assert sheet["A3"].value == "t-0002"
    letter = column("Код организации")
    assert cell_fill(sheet, f"{letter}3") == "FFC7CE"
    note = sheet[f"{letter}3"].comment
    assert note is not None and "«org-404» нет в реестре «Образовательные организации»" in note.text
    assert cell_fill(sheet, f"{letter}2") != "FFC7CE"


async def test_a_header_problem_is_marked_in_the_header(
    sqlite_client: httpx.AsyncClient,
) -> None:
    headers = [h if h != "Должность" else "Должность педагога" for h in HEADERS]
    job = await run_import(sqlite_client, xlsx([good_row(1)], headers), "dry_run")
    answer = await sqlite_client.get(job["marked_href"])
    sheet = load_workbook(io.BytesIO(answer.content)).worksheets[0]
    letter = column("Должность")
    assert cell_fill(sheet, f"{letter}1") == "FFC7CE"
    assert "неизвестный столбец" in sheet[f"{letter}1"].comment.text
    note = sheet.cell(row=1, column=len(HEADERS) + 1).comment
    assert note is not None and "нет обязательного столбца «Должность»" in note.text


async def test_a_file_without_errors_is_not_kept(sqlite_client: httpx.AsyncClient) -> None:
    job = await run_import(sqlite_client, xlsx([good_row(1)]), "dry_run")
    assert job["errors"] == [] and job["marked_href"] is None
    answer = await sqlite_client.get(f"/v1/imports/{job['import_id']}/marked.xlsx")
    assert answer.status_code == 404 and answer.json()["code"] == "marked_unavailable"
    assert "пробной проверки" in answer.json()["detail"]
    assert await stored_content(sqlite_client, job["import_id"]) is None
    missing = await sqlite_client.get("/v1/imports/no-such-import/marked.xlsx")
    assert missing.status_code == 404 and missing.json()["code"] == "import_not_found"
    anonymous = await sqlite_client.get(
        f"/v1/imports/{job['import_id']}/marked.xlsx", headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401


async def stored_content(client: httpx.AsyncClient, import_id: str) -> bytes | None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.sessions() as session:
        found = await session.execute(
            select(repository.imports.c.content).where(repository.imports.c.import_id == import_id)
        )
        return found.scalar_one()  # type: ignore[no-any-return]


async def test_a_kept_file_is_dropped_after_its_time(clean_redis: str, tmp_path: Path) -> None:
    async with started(clean_redis, tmp_path, keep_upload_hours=1) as client:
        bad = [changed(good_row(1), "Дата рождения", "31.02.1980")]
        job = await run_import(client, xlsx(bad), "dry_run")
        kept = await run_import(client, xlsx(bad), "dry_run")
        assert (await client.get(job["marked_href"])).status_code == 200
        # The first finished two hours ago (the clock of its row moved back).
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(repository.imports)
                .where(repository.imports.c.import_id == job["import_id"])
                .values(finished_at=datetime.now(UTC) - timedelta(hours=2))
            )
        assert (await client.get(f"/v1/imports/{job['import_id']}")).json()["marked_href"] is None
        gone = await client.get(job["marked_href"])
        assert gone.status_code == 404 and "больше 1 часа" in gone.json()["detail"]
        assert await runtime.context.imports.purge() == 1
        assert await stored_content(client, job["import_id"]) is None
        assert await stored_content(client, kept["import_id"]) is not None
        assert (await client.get(kept["marked_href"])).status_code == 200


# --- the templates -------------------------------------------------------------------------


async def test_every_template_is_in_russian_and_its_example_imports_cleanly(
    sqlite_client: httpx.AsyncClient,
) -> None:
    """With the demo region loaded (the examples are its records), each register's template,
    sent back as it is, is one row the import reads without an error: unchanged."""
    loaded = await sqlite_client.post("/v1/load", json=region.generate(seed=38, teachers=300))
    assert loaded.status_code == 200, loaded.text
    anonymous = {"Authorization": ""}
    listed = {r["register"]: r for r in (await sqlite_client.get("/v1/registers")).json()}
    for name, spec in REGISTRY.items():
        answer = await sqlite_client.get(f"/v1/registers/{name}/template.xlsx", headers=anonymous)
        assert answer.status_code == 200, name
        book = load_workbook(io.BytesIO(answer.content))
        sheet, notes = book.worksheets
        names = importing.columns(spec)
        assert [c.value for c in sheet[1]] == [importing.title(n) for n in names], name
        assert all(any("а" <= ch.lower() <= "я" for ch in str(c.value)) for c in sheet[1]), name
        assert notes.title == "Пояснения"
        explained = {row[0]: row for row in notes.iter_rows(min_row=5, values_only=True)}
        assert set(explained) == {importing.title(n) for n in names}, name
        hints = {c["title"]: c["hint"] for c in listed[name]["columns"]}
        for field in names:
            title = importing.title(field)
            assert explained[title][1] == ("да" if importing.required(spec, field) else "нет"), (
                name,
                field,
            )
            assert explained[title][2] == hints[title], (name, field)  # the page says it too
        job = await run_import(sqlite_client, answer.content, "dry_run", f"{name}.xlsx", name)
        assert job["errors"] == [], (name, job["errors"])
        assert job["summary"]["unchanged"] == 1, (name, job["summary"])


async def test_a_template_offers_the_allowed_values(sqlite_client: httpx.AsyncClient) -> None:
    answer = await sqlite_client.get("/v1/registers/teachers/template.xlsx")
    sheet = load_workbook(io.BytesIO(answer.content)).worksheets[0]
    titles = [c.value for c in sheet[1]]
    letter = chr(ord("A") + titles.index("Квалификационная категория"))
    lists = {
        str(v.sqref): v.formula1 for v in sheet.data_validations.dataValidation if v.type == "list"
    }
    chosen = next(f for ref, f in lists.items() if ref.startswith(f"{letter}2:"))
    assert chosen == '"без категории,первая,высшая,педагог-методист,педагог-наставник"'
    position = sheet.cell(row=1, column=titles.index("Должность") + 1)
    assert position.comment is not None and "Обязательный столбец" in position.comment.text
    unknown = await sqlite_client.get("/v1/registers/pupils/template.xlsx")
    assert unknown.status_code == 404 and unknown.json()["code"] == "register_not_found"


# --- files that are no table ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "said"),
    [
        ("педагоги.docx", "не таблица: загружаются только книги Excel (.xlsx) и файлы .csv"),
        ("педагоги.xls", "сохраните как «Книга Excel (.xlsx)»"),
        ("педагоги.ods", "сохраните как «Книга Excel (.xlsx)»"),
    ],
)
async def test_a_file_that_is_no_table_is_refused_saying_what_to_do(
    sqlite_client: httpx.AsyncClient, filename: str, said: str
) -> None:
    answer = await sqlite_client.post(
        "/v1/registers/teachers/imports",
        files={"file": (filename, b"\xd0\xcf\x11\xe0")},
        data={"mode": "dry_run"},
    )
    assert answer.status_code == 415
    body = answer.json()
    assert body["code"] == "unsupported_file"
    assert body["detail"].startswith(f"Файл «{filename}»")
    assert said in body["detail"]


# --- the page ------------------------------------------------------------------------------


async def test_the_page_and_its_files_are_served_from_the_package(
    sqlite_client: httpx.AsyncClient,
) -> None:
    page = await sqlite_client.get("/uploads", headers={"Authorization": ""})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "http://" not in page.text and "https://" not in page.text
    assert "Загрузка реестров" in page.text
    for name, kind in (("uploads.js", "text/javascript"), ("uploads.css", "text/css")):
        asset = await sqlite_client.get(f"/uploads/assets/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert f"/uploads/assets/{name}" in page.text
    for name in ("uploads.html", "..%2Fuploads.py", "%2E%2E%2Fapi.py"):
        assert (await sqlite_client.get(f"/uploads/assets/{name}")).status_code == 404, name
