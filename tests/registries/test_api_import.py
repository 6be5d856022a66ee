"""Spreadsheet import into the registries, in process on a real Redis and SQLite (and
PostgreSQL for the write path): ten bad rows of ten kinds give ten Russian errors with row
and column; all-or-nothing writes nothing, valid-rows writes the rest; a re-import
publishes nothing; the error report downloads as XLSX."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook, load_workbook
from redis.asyncio import Redis

from iomflow.registries.app import create_app
from iomflow.registries.personal import format_snils, snils_check_digits
from iomflow.registries.settings import Settings
from iomflow.shared.contracts import Streams

ADMIN = "iomf_test_admin_key"
AUTH = {"Authorization": f"Bearer {ADMIN}"}

BASE = {
    "municipalities": [
        {"municipality_id": "mun-01", "name": "г. Иркутск"},
        {"municipality_id": "mun-02", "name": "Ольхонский район", "remote": True},
    ],
    "organizations": [
        {
            "organization_id": "org-1",
            "municipality_id": "mun-01",
            "name": "СОШ № 1",
            "kind": "school",
        },
        {
            "organization_id": "org-2",
            "municipality_id": "mun-02",
            "name": "Детский сад № 2",
            "kind": "kindergarten",
        },
    ],
}

HEADERS = [
    "Код педагога",
    "Код организации",
    "Должность",
    "Предметы",
    "Квалификационная категория",
    "Дата рождения",
    "Начало педагогической работы",
    "Руководитель",
    "ФИО",
    "СНИЛС",
    "Электронная почта",
    "Телефон",
]


def snils(n: int) -> str:
    first9 = f"{100_000_000 + n:09d}"
    return format_snils(first9 + f"{snils_check_digits(first9):02d}")


def good_row(n: int) -> list[Any]:
    return [
        f"t-{n:04d}",
        "org-1" if n % 2 else "org-2",
        "учитель",
        "математика; физика",
        "первая",
        "15.03.1985",
        "01.09.2008",
        "нет",
        "Иванова Мария Петровна",
        snils(n),
        f"teacher{n}@school.ru",
        f"+7 914 000-{n // 100:02d}-{n % 100:02d}",
    ]


def bad_rows() -> list[tuple[str, list[Any], str]]:
    """Ten rows, each wrong in one way: (expected column, row, fragment of the reason)."""

    def bad(n: int, column: str, value: Any) -> list[Any]:
        row = good_row(n)
        row[HEADERS.index(column)] = value
        return row

    wrong_checksum = snils(901)[:-2] + f"{(int(snils(901)[-2:]) + 1) % 100:02d}"
    return [
        ("Должность", bad(901, "Должность", ""), "обязательное поле не заполнено"),
        ("Дата рождения", bad(902, "Дата рождения", "31.02.1980"),
         "такой даты нет: 31.02.1980 — в феврале 1980 года 29 дней"),
        ("Дата рождения", bad(903, "Дата рождения", "01.01.2016"), "вне допустимого"),
        ("Квалификационная категория", bad(904, "Квалификационная категория", "лучшая"),
         "недопустимое значение"),
        ("Руководитель", bad(905, "Руководитель", "может быть"), "«да» или «нет»"),
        ("Код организации", bad(906, "Код организации", "org-404"), "нет в реестре"),
        ("СНИЛС", bad(907, "СНИЛС", wrong_checksum), "контрольное число"),
        ("Электронная почта", bad(908, "Электронная почта", "teacher@@school"), "почты"),
        ("Телефон", bad(909, "Телефон", "12-34"), "телефон"),
        ("Начало педагогической работы", bad(910, "Начало педагогической работы", "01.09.1990"),
         "раньше 16 лет"),
    ]  # fmt: skip


def xlsx(rows: list[list[Any]], headers: list[str] = HEADERS) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
async def client(
    clean_redis: str, tmp_path: Path, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(
            redis_url=clean_redis,
            data_dir=tmp_path,
            migrate_on_start=True,
            relay_poll_s=0.05,
            admin_key=ADMIN,
            database_url=database_url,
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://registries", headers=AUTH
        ) as c:
            response = await c.post("/v1/load", json=BASE)
            assert response.status_code == 200, response.text
            yield c


async def run_import(
    client: httpx.AsyncClient,
    content: bytes,
    mode: str,
    filename: str = "teachers.xlsx",
    register: str = "teachers",
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/registers/{register}/imports",
        files={"file": (filename, content)},
        data={"mode": mode},
    )
    assert response.status_code == 202, response.text
    href = response.json()["href"]
    for _ in range(600):
        job = (await client.get(href)).json()
        if job["status"] not in ("queued", "running"):
            return job  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"import did not finish: {job}")


async def registry_events(redis_url: str, settle: float = 0.3) -> list[dict[bytes, bytes]]:
    await asyncio.sleep(settle)  # the relay publishes after commit
    async with Redis.from_url(redis_url) as redis:
        return [fields for _, fields in await redis.xrange(Streams.REGISTRY)]


async def teacher_count(client: httpx.AsyncClient) -> int:
    return (await client.get("/v1/registers/teachers/records?limit=1")).json()["total"]  # type: ignore[no-any-return]


async def test_ten_bad_rows_of_ten_kinds(client: httpx.AsyncClient, clean_redis: str) -> None:
    good = [good_row(n) for n in range(1, 21)]
    bad = bad_rows()
    rows = good[:10] + [row for _, row, _ in bad] + good[10:]
    content = xlsx(rows)
    before = len(await registry_events(clean_redis))

    dry = await run_import(client, content, "dry_run")
    assert dry["status"] == "done"
    errors = dry["errors"]
    assert len(errors) == 10, errors
    for (column, _, reason), error, row_number in zip(bad, errors, range(12, 22), strict=True):
        assert error["row"] == row_number, error
        assert error["column"] == column, error
        assert error["letter"] == chr(ord("A") + HEADERS.index(column)), error
        assert reason in error["reason"], error
        if column in ("СНИЛС", "Электронная почта", "Телефон"):
            assert error["value"] == "", "personal data stays out of error reports"
    assert dry["summary"]["created"] == 20 and not dry["summary"]["applied"]
    assert await teacher_count(client) == 0

    strict = await run_import(client, content, "all_or_nothing")
    assert strict["summary"]["applied"] is False
    assert strict["summary"]["error_rows"] == 10
    assert "Ничего не загружено" in strict["summary"]["message"]
    assert await teacher_count(client) == 0
    assert len(await registry_events(clean_redis)) == before

    lenient = await run_import(client, content, "valid_rows")
    assert lenient["summary"]["applied"] is True
    assert lenient["summary"]["created"] == 20 and lenient["summary"]["error_rows"] == 10
    assert await teacher_count(client) == 20
    events = await registry_events(clean_redis)
    assert sum(e[b"type"] == b"registry.teacher.upserted" for e in events) == 20

    report = await client.get(f"/v1/imports/{lenient['import_id']}/errors.xlsx")
    assert report.status_code == 200
    sheet = load_workbook(io.BytesIO(report.content)).active
    lines = list(sheet.iter_rows(values_only=True))
    assert lines[0] == ("Строка", "Столбец", "Буква", "Значение", "Ошибка")
    assert [line[0] for line in lines[1:]] == list(range(12, 22))
    anonymous = await client.get(
        f"/v1/imports/{lenient['import_id']}", headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401


async def test_reimporting_the_same_file_publishes_nothing(
    client: httpx.AsyncClient, clean_redis: str
) -> None:
    content = xlsx([good_row(n) for n in range(1, 31)])
    first = await run_import(client, content, "all_or_nothing")
    assert first["summary"]["created"] == 30
    published = len(await registry_events(clean_redis))

    again = await run_import(client, content, "all_or_nothing")
    assert again["summary"] | {"message": ""} == again["summary"] | {
        "created": 0,
        "updated": 0,
        "unchanged": 30,
        "published": 0,
        "message": "",
    }
    assert len(await registry_events(clean_redis)) == published

    changed = [good_row(n) for n in range(1, 31)]
    changed[4][HEADERS.index("Должность")] = "заместитель директора"
    changed[5][HEADERS.index("Телефон")] = "+7 914 555-55-55"  # personal data only
    third = await run_import(client, xlsx(changed), "all_or_nothing")
    assert (third["summary"]["updated"], third["summary"]["personal_updated"]) == (1, 1)
    assert len(await registry_events(clean_redis)) == published + 1


async def test_csv_in_windows_1251_with_semicolons_and_a_header_problem(
    client: httpx.AsyncClient,
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(HEADERS)
    writer.writerows(good_row(n) for n in range(1, 4))
    content = out.getvalue().encode("cp1251")
    job = await run_import(client, content, "valid_rows", "teachers.csv")
    assert job["summary"]["created"] == 3, job
    teacher = (await client.get("/v1/registers/teachers/records/t-0002")).json()
    assert teacher["audience"] == "preschool"  # from its kindergarten
    assert teacher["municipality_id"] == "mun-02"
    assert "full_name" not in teacher and "snils" not in teacher

    broken = [h if h != "Должность" else "Должность педагога" for h in HEADERS]
    job = await run_import(client, xlsx([good_row(9)], broken), "valid_rows")
    reasons = {e["column"]: e["reason"] for e in job["errors"]}
    assert "неизвестный столбец" in reasons["Должность педагога"]
    assert "нет обязательного столбца «Должность»" in reasons["Должность"]
    assert job["summary"]["applied"] is False and await teacher_count(client) == 3


async def test_bad_files_get_clear_answers(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/registers/teachers/imports",
        files={"file": ("teachers.docx", b"x")},
        data={"mode": "valid_rows"},
    )
    assert response.status_code == 415 and "xlsx" in response.json()["detail"]
    response = await client.post("/v1/registers/teachers/imports", files={"file": ("t.xlsx", b"x")})
    assert response.status_code == 422  # the mode is chosen explicitly
    job = await run_import(client, b"not a workbook", "valid_rows")
    message = job["summary"]["message"]
    assert job["status"] == "failed" and "не является книгой Excel (.xlsx)" in message
    assert "zip" not in message.lower()  # the library's words are not the registrar's
    response = await client.post(
        "/v1/registers/pupils/imports",
        files={"file": ("t.xlsx", xlsx([]))},
        data={"mode": "dry_run"},
    )
    assert response.status_code == 404 and response.json()["code"] == "register_not_found"


async def test_export_imports_back_unchanged(client: httpx.AsyncClient, clean_redis: str) -> None:
    await run_import(client, xlsx([good_row(n) for n in range(1, 6)]), "all_or_nothing")
    for register in ("organizations", "teachers"):
        exported = await client.get(
            f"/v1/registers/{register}/export.xlsx",
            params={"purpose": "выгрузка для правки и повторной загрузки"},
        )
        assert exported.status_code == 200
        published = len(await registry_events(clean_redis))
        job = await run_import(
            client, exported.content, "all_or_nothing", f"{register}.xlsx", register
        )
        assert job["errors"] == [] and job["summary"]["unchanged"] > 0, job
        assert job["summary"]["created"] == job["summary"]["updated"] == 0
        assert len(await registry_events(clean_redis)) == published


BOMB = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>
"""


def xml_bomb() -> bytes:
    """A real workbook whose sheet declares a billion laughs (entities within entities)."""
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(xlsx([["t-1"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as bomb:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = BOMB.encode()
            bomb.writestr(item, data)
    return out.getvalue()


def test_an_xml_bomb_in_a_workbook_is_refused_not_expanded() -> None:
    from iomflow.registries.tabular import TableError, read_table

    with pytest.raises(TableError) as refused:
        read_table(xml_bomb(), "teachers.xlsx")
    assert "XML" in str(refused.value) and "отклонён" in str(refused.value)


async def test_an_uploaded_xml_bomb_fails_the_import_with_a_russian_reason(
    client: httpx.AsyncClient,
) -> None:
    job = await run_import(client, xml_bomb(), "valid_rows")
    assert job["status"] == "failed"
    assert "конструкции XML" in job["summary"]["message"]
