"""The dashboard in a real browser after the demo chain: the four services as processes on a
real Redis, diagnoses published as an outside publisher does, then headless Chromium opens
the page the monitoring service serves and every value it shows is the API's — for the
region, a municipality and an organisation, and as of another date."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, Route
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from e2e.conftest import CHROMIUM
from e2e.pages import latin_codes
from e2e.test_chain import REGION, get, settled, start_suite, wait_until
from iomflow.cli.demo import result_entries
from iomflow.cli.launcher import Suite
from iomflow.monitoring.app import create_app
from iomflow.monitoring.settings import Settings
from iomflow.monitoring.wording import STATUS_NAMES

DIAGNOSED = 40
ROADMAP_EVIDENCE = "Распоряжение министерства образования № 55-мр от 20.01.2025"


def needs_chromium(test: Any) -> Any:
    """The browser test needs Debian's Chromium: without it the test fails saying how to
    install it (``make test`` installs it as root), never skips."""

    @functools.wraps(test)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not CHROMIUM.exists():
            pytest.fail(
                f"{CHROMIUM} is absent: apt-get install chromium (or run make test as root)"
            )
        return test(*args, **kwargs)

    return checked


async def test_the_service_serves_the_page_and_only_its_own_files(tmp_path: Path) -> None:
    """No browser: the root leads to the page, the page names only files that are served,
    and nothing else of the package is."""
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    transport = httpx.ASGITransport(app=create_app(settings))  # no lifespan: no I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://monitoring") as client:
        root = await client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "dashboard"
        page = await client.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<html lang="ru">' in page.text and 'id="as-of"' in page.text
        assets = re.findall(r'(?:href|src)="(dashboard/assets/[^"]+)"', page.text)
        assert {a.rsplit("/", 1)[1] for a in assets} == {
            "dashboard.js",
            "dashboard.css",
            "favicon.svg",
        }
        for asset in assets:
            served = await client.get(f"/{asset}")
            assert served.status_code == 200 and served.content, asset
        for name in ("app.py", "..%2Fapp.py", "dashboard.html", "..%2Fdata%2Fkpis.json"):
            refused = await client.get(f"/dashboard/assets/{name}")
            assert refused.status_code == 404, name


SUITE_ENV = {"IOMFLOW_ALERT_CHECK_INTERVAL_S": "1"}
"""Monitoring checks alerts every second here, so that the alerts panel has some to show."""


@pytest.fixture
def chain(clean_redis: str, tmp_path: Path) -> Iterator[Suite]:
    """The suite with the demo region loaded and ``DIAGNOSED`` teachers diagnosed."""
    suite = start_suite(tmp_path, clean_redis, env=SUITE_ENV)
    try:
        publisher = redis.Redis.from_url(clean_redis)
        teachers = [t["teacher_id"] for t in REGION["teachers"]][:DIAGNOSED]
        for stream, fields in result_entries(teachers):
            publisher.xadd(stream, fields)  # type: ignore[arg-type]
        wait_until(settled(suite, DIAGNOSED), "the chain to settle")
        yield suite
    finally:
        suite.stop()


UNIT_FORMS = {"команд": ("команда", "команды", "команд")}
"""Units that are words: one, few, many (1 команда, 3 команды, 5 команд; 1,5 команды)."""


def unit_for(value: float, unit: str) -> str:
    if unit not in UNIT_FORMS:
        return unit
    one, few, many = UNIT_FORMS[unit]
    if value != int(value):
        return few
    n = int(value)
    if n % 10 == 1 and n % 100 != 11:
        return one
    return few if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14 else many


def shown(value: float | None, unit: str) -> str:
    """A value as the page writes it (Intl ru-RU, up to one decimal, the unit in the
    number's plural form), without spaces."""
    if value is None:
        return "—"
    text = f"{value:.1f}".rstrip("0").rstrip(".").replace(".", ",")
    return f"{text}{unit_for(value, unit)}"


def test_a_unit_that_is_a_word_takes_the_numbers_plural_form() -> None:
    assert [shown(n, "команд") for n in (1, 3, 5, 11, 21, 1.5)] == [
        "1команда", "3команды", "5команд", "11команд", "21команда", "1,5команды",
    ]  # fmt: skip


NAMES_JS = """() => [...document.querySelectorAll('#compare-chart text.bar-name')].map(t => ({
    name: [...t.querySelectorAll('tspan')].map(s => s.textContent).join(' '),
    lines: t.querySelectorAll('tspan').length, x: t.getBBox().x}))"""

SUMMARY_JS = """() => Object.fromEntries([...document.querySelectorAll('#summary [data-status]')]
    .map(s => [s.dataset.status, Number(s.dataset.count)]))"""


def assert_summary_and_alerts(page: Page, kpis: list[dict[str, Any]], alerts: list[Any]) -> None:
    """The summary line counts the statuses of the table; the alerts panel lists ``alerts``."""
    expected: dict[str, int] = {}
    for kpi in kpis:
        expected[kpi["status"]] = expected.get(kpi["status"], 0) + 1
    assert page.evaluate(SUMMARY_JS) == expected
    page.wait_for_selector("#alerts[data-state=ready]", state="attached")
    listed = page.eval_on_selector_all("#alerts-list li", "ls => ls.map(l => l.dataset.alert)")
    assert listed == [a["alert_id"] for a in alerts]
    note = page.text_content("#alerts-note") or ""
    assert (
        (f"Открытых оповещений: {len(alerts)}" in note)
        if alerts
        else note == "Открытых оповещений нет."
    )


ROWS_JS = """() => [...document.querySelectorAll('#kpi-table tbody tr[data-kpi]')].map(tr => ({
    code: tr.dataset.kpi,
    value: tr.querySelector('td[data-value]').dataset.value,
    text: tr.querySelector('td[data-value] .num').textContent,
    status: tr.dataset.status,
    word: tr.querySelector('td.status .badge').textContent,
    target: tr.querySelector('td.target').dataset.target,
    title: tr.querySelector('td.target').getAttribute('title'),
    forecast: tr.querySelector('td.forecast').dataset.forecast,
}))"""


SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
"""A code as the API writes it (``diagnosed_share``, ``not_judged``): never in front of a
person (in a tooltip at most)."""


def assert_no_codes(page: Page, codes: list[str], where: str) -> None:
    text = page.evaluate("() => document.body.innerText")
    shown_codes = sorted({c for c in codes if c in text} | set(SNAKE.findall(text)))
    assert not shown_codes, f"{where}: codes in the page's text: {shown_codes}"


def number(text: str) -> float | None:
    return None if text == "" else float(text)


def assert_rows_match(page: Page, kpis: list[dict[str, Any]], where: str) -> None:
    rows = page.evaluate(ROWS_JS)
    assert [r["code"] for r in rows] == [k["code"] for k in kpis], where
    for row, kpi in zip(rows, kpis, strict=True):
        what = f"{where}: {kpi['code']}"
        assert number(row["value"]) == kpi["value"], what
        assert re.sub(r"\s", "", row["text"]) == shown(kpi["value"], kpi["unit"]), what
        assert row["status"] == kpi["status"], what
        assert row["word"] == STATUS_NAMES[kpi["status"]], what
        assert number(row["target"]) == kpi["target"], what
        assert number(row["forecast"]) == kpi["forecast"], what
        for target in kpi["targets"]:  # every target with its source, on hover
            assert target["source"] in row["title"], what


TRACKED_JS = """() => [...document.querySelectorAll('#tracked-list li[data-tracked]')].map(li => ({
    code: li.dataset.tracked,
    status: li.dataset.status,
    name: li.querySelector('.name').textContent,
    period: li.querySelector('.period') ? li.querySelector('.period').textContent : null,
    word: li.querySelector('.badge').textContent,
    colour: getComputedStyle(li.querySelector('.badge')).backgroundColor,
    evidence: li.querySelector('.evidence').textContent,
    bold: li.querySelectorAll('b').length,
    title: li.getAttribute('title'),
}))"""
STATUS_COLOURS = {
    "met": "rgb(27, 127, 59)",
    "on_track": "rgb(67, 160, 71)",
    "missed": "rgb(198, 40, 40)",
    "no_data": "rgb(158, 158, 158)",
}
"""The badges' colours (dashboard.css), the same for a KPI and a tracked item."""
NOT_RECORDED = "сведения не внесены"


def assert_tracked_panel(page: Page, tracked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The region's panel «Меры приложения 1» lists every tracked item of ``/v1/tracked`` by
    its name, with its latest period's label, status in words and evidence; the code in the
    tooltip only."""
    page.wait_for_selector("#tracked[data-state=ready]", state="visible")
    assert page.text_content("#tracked-title") == "Меры приложения 1"
    shown = page.evaluate(TRACKED_JS)
    assert [s["code"] for s in shown] == [t["code"] for t in tracked]
    for item, t in zip(shown, tracked, strict=True):
        last = t["periods"][-1]
        assert (item["name"], item["period"], item["status"]) == (
            t["name"],
            last["label"],
            last["status"],
        ), t["code"]
        assert item["word"] == STATUS_NAMES[last["status"]], t["code"]
        assert item["colour"] == STATUS_COLOURS[last["status"]], t["code"]
        assert item["evidence"] == (last["evidence"] or NOT_RECORDED), t["code"]
        assert item["bold"] == 0 and t["code"] in item["title"], t["code"]
    return shown  # type: ignore[no-any-return]


SEEN_JS = """() => ({state: document.body.dataset.state, view: document.body.dataset.view,
    as_of: document.body.dataset.asOf, address: location.href,
    error: document.getElementById('error').textContent})"""


def wait_ready(page: Page, view: str, as_of: str | None = None) -> None:
    selector = f'body[data-state="ready"][data-view="{view}"]'
    if as_of is not None:
        selector += f'[data-as-of="{as_of}"]'
    try:
        page.wait_for_selector(selector, state="attached", timeout=20_000)
    except PlaywrightTimeout:
        seen = page.evaluate(SEEN_JS)
        raise AssertionError(f"the page did not show {selector}: {seen}") from None


@needs_chromium
def test_dashboard_shows_the_apis_values_for_the_region_a_municipality_and_a_date(
    chain: Suite, browser: Browser, tmp_path: Path
) -> None:
    monitoring = chain.url("monitoring")
    region = get(f"{monitoring}/v1/kpis")
    assert any(k["value"] for k in region["region"]["kpis"]), "the chain left KPI values"
    # One tracked row of Appendix 1 recorded (by the suite's admin key), the other not.
    recorded = httpx.put(
        f"{monitoring}/v1/tracked/roadmap_implemented/once",
        json={"status": "done", "evidence": ROADMAP_EVIDENCE},
        headers={"Authorization": f"Bearer {chain.admin_key}"},
        timeout=10,
    )
    assert recorded.status_code == 200, recorded.text

    page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="ru-RU")
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}") if response.status >= 400 else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )

    # The service's root leads to the page; the region's table is the API's.
    page.goto(f"{monitoring}/")
    assert page.url.startswith(f"{monitoring}/dashboard")
    wait_ready(page, "region", region["as_of"])
    assert page.input_value("#as-of") == region["as_of"]
    page.wait_for_selector("#source:not(:empty)")
    assert region["source"] in (page.text_content("#source") or "")
    assert_rows_match(page, region["region"]["kpis"], "region")
    assert page.text_content('#counts [data-count="teachers"] dd') == str(
        region["region"]["counts"]["teachers"]
    )
    # The region by its name; the year's report, as a workbook and a printable page.
    region_name = get(f"{monitoring}/v1/catalogue")["region_name"]
    assert region_name == "Иркутская область"
    assert page.text_content('#breadcrumb [data-crumb="region"]') == region_name
    assert (page.text_content("#level-title") or "").startswith(f"{region_name} — на ")
    # The year's report as a workbook, a printable page and a PDF; no analytics link, since
    # the suite does not tell monitoring where diagnostics is (IOMFLOW_DIAGNOSTICS_PUBLIC_URL).
    year = region["as_of"][:4]
    for form, href, kind in (
        ("xlsx", f"v1/reports/{year}.xlsx", "spreadsheetml"),
        ("print", f"v1/reports/{year}/print", "text/html"),
        ("pdf", f"v1/reports/{year}.pdf", "application/pdf"),
    ):
        assert page.get_attribute(f'#report a[data-report="{form}"]', "href") == href
        answer = httpx.get(f"{monitoring}/{href}", timeout=120)
        assert answer.status_code == 200 and kind in answer.headers["content-type"], form
    assert page.locator('#report a[data-report="analytics"]').count() == 0

    # The measures of Appendix 1, in words: the roadmap done with its evidence, the
    # monitoring system of this year with nothing recorded.
    tracked = get(f"{monitoring}/v1/tracked")
    panel = {t["code"]: t for t in assert_tracked_panel(page, tracked)}
    assert set(panel) == {"roadmap_implemented", "monitoring_system"}
    roadmap, system = panel["roadmap_implemented"], panel["monitoring_system"]
    assert (roadmap["period"], roadmap["word"], roadmap["evidence"]) == (
        "к 31.12.2024",
        "достигнут",
        ROADMAP_EVIDENCE,
    )
    assert (system["period"], system["word"], system["evidence"]) == (
        f"за {year} год",
        "нет данных",
        NOT_RECORDED,
    )
    assert_no_codes(page, [t["code"] for t in tracked], "the region's measures")
    # Nothing a person reads on the page is a code in Latin letters.
    text = page.locator("body").inner_text()
    assert not latin_codes(text), sorted(set(latin_codes(text)))

    wait_until(
        lambda: get(f"{monitoring}/v1/alerts?status=open")["items"], "alerts to be raised", 60
    )
    page.reload()  # the page shows the alerts as they are now
    wait_ready(page, "region", region["as_of"])
    open_alerts = get(f"{monitoring}/v1/alerts?status=open&limit=1000")["items"]
    assert any(a["alert_id"].endswith(":municipalities") for a in open_alerts), open_alerts
    assert_summary_and_alerts(page, region["region"]["kpis"], open_alerts)

    # A KPI's row shows its chart over time (the series endpoint) and the municipalities'.
    code = "diagnosed_share"
    codes = [k["code"] for k in region["region"]["kpis"]]
    page.click(f'#kpi-table tr[data-kpi="{code}"]')
    page.wait_for_selector(f'#series-chart[data-state="ready"][data-kpi="{code}"]')
    series = get(f"{monitoring}/v1/kpis/{code}/series?months=12&as_of={region['as_of']}")
    drawn = page.eval_on_selector_all(
        "#series-chart circle.series-point", "cs => cs.map(c => [c.dataset.on, c.dataset.value])"
    )
    assert drawn == [
        [p["on"], str(p["value"]).removesuffix(".0")]
        for p in series["points"]
        if p["value"] is not None
    ]
    assert drawn, "the diagnoses of today are on the chart"
    assert page.locator("#series-chart line.target-line").count() == 1
    bars = page.eval_on_selector_all(
        "#compare-chart g.bar", "gs => gs.map(g => [g.dataset.municipality, g.dataset.value])"
    )
    by_municipality = {
        m["municipality_id"]: next(k["value"] for k in m["kpis"] if k["code"] == code)
        for m in region["municipalities"]
        if m["municipality_id"]
    }
    assert {m: number(v) for m, v in bars} == by_municipality

    # Drill down to the municipality with the most diagnoses: its table and organisations.
    chosen = max(region["municipalities"], key=lambda m: m["counts"].get("diagnosed", 0))
    mun_id = chosen["municipality_id"]
    link = page.locator(f'#unit-table a[data-municipality="{mun_id}"]')
    link.scroll_into_view_if_needed()
    assert page.evaluate("window.scrollY") > 0  # the link is below the fold
    link.click()
    wait_ready(page, "municipality")
    assert page.evaluate("window.scrollY") == 0  # a drill-down lands at the top
    assert page.locator("#tracked").is_hidden()  # the measures are the region's
    municipality = get(f"{monitoring}/v1/municipalities/{mun_id}/kpis")
    off_path = {k["code"] for k in municipality["kpis"] if k["status"] in ("at_risk", "missed")}
    mine = [
        a
        for a in open_alerts
        if a["municipality_id"] == mun_id
        or (a["alert_id"].endswith(":municipalities") and a["subject"] in off_path)
    ]
    assert mine, "the municipality has KPIs off path: their alerts are shown"
    assert_summary_and_alerts(page, municipality["kpis"], mine)
    assert_rows_match(page, municipality["kpis"], mun_id)
    assert_no_codes(page, codes, mun_id)
    counted = {k["code"]: k for k in municipality["kpis"]}["personal_potential_orgs"]
    assert counted["status"] == "not_judged"  # the region's count of 93: shown, not judged
    assert page.text_content('#breadcrumb [data-crumb="municipality"]') == municipality["name"]
    page.wait_for_selector(
        f'#series-chart[data-state="ready"][data-kpi="{code}"]'
    )  # now the municipality's
    orgs = page.eval_on_selector_all(
        "#unit-table a[data-organization]", "as => as.map(a => a.dataset.organization)"
    )
    assert orgs == [o["organization_id"] for o in municipality["organizations"]]
    page.screenshot(path=str(tmp_path / "municipality.png"), full_page=True)

    # An organisation's row shows its KPIs.
    org = municipality["organizations"][0]
    page.click(f'#unit-table a[data-organization="{org["organization_id"]}"]')
    wait_ready(page, "organization")
    assert_rows_match(page, org["kpis"], org["organization_id"])
    assert_no_codes(page, codes, org["organization_id"])
    assert page.text_content('#breadcrumb [data-crumb="organization"]') == org["name"]

    # The comparison names every school in full, however long (wrapped, never cut short).
    longest = max(REGION["organizations"], key=lambda o: len(o["name"]))
    page.goto(f"{monitoring}/dashboard#/m/{longest['municipality_id']}")
    wait_ready(page, "municipality")
    page.wait_for_selector("#compare-chart g.bar")
    names = page.evaluate(NAMES_JS)
    schools = get(f"{monitoring}/v1/municipalities/{longest['municipality_id']}/kpis")
    assert sorted(n["name"] for n in names) == sorted(
        o["name"] for o in schools["organizations"] if o["organization_id"]
    )
    assert longest["name"] in [n["name"] for n in names] and len(longest["name"]) > 40
    assert all(n["x"] >= 0 and n["lines"] >= 1 for n in names), names
    assert any(n["lines"] > 1 for n in names), "the longest name is wrapped"
    page.goto(f"{monitoring}/dashboard#/m/{mun_id}/o/{org['organization_id']}")
    wait_ready(page, "organization")

    # The breadcrumb leads back to the region; the date picker reloads the values.
    page.click('#breadcrumb a[data-crumb="region"]')
    wait_ready(page, "region")
    assert_rows_match(page, region["region"]["kpis"], "region again")
    assert_no_codes(page, codes, "region")
    earlier = (date.fromisoformat(region["as_of"]) - timedelta(days=1)).isoformat()
    page.fill("#as-of", earlier)
    wait_ready(page, "region", earlier)
    assert_rows_match(page, get(f"{monitoring}/v1/kpis?as_of={earlier}")["region"]["kpis"], earlier)
    page.click("#today")
    wait_ready(page, "region", region["as_of"])
    page.click(f'#kpi-table tr[data-kpi="{code}"]')
    page.wait_for_selector(f'#series-chart[data-state="ready"][data-kpi="{code}"]')

    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.exists() and screenshot.stat().st_size > 0
    assert problems == []


# --- the page over a stubbed API: rows with and without their period -----------------------

STUB = "http://dashboard.test"
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def stub_row(code: str, name: str, **extra: Any) -> dict[str, Any]:
    """A KPI row as ``/v1/kpis`` answers it (a cumulative share past its deadline)."""
    return {
        "code": code,
        "name": name,
        "unit": "%",
        "value": 12.5,
        "numerator": 5,
        "population": 40,
        "target": 30.0,
        "targets": [{"value": 30.0, "source": "Положение, прил. 1"}],
        "comparison": ">=",
        "deadline": "2024-12-31",
        "accumulation": "cumulative",
        "met": False,
        "status": "missed",
        "forecast": None,
        "clause": "п. 1",
        **extra,
    }


def stub_period(period: str, label: str, status: str, evidence: str | None) -> dict[str, Any]:
    return {
        "period": period,
        "label": label,
        "due": "2024-12-31",
        "status": status,
        "recorded": None if evidence is None else "not_done",
        "recorded_words": None if evidence is None else "не выполнено",
        "evidence": evidence,
        "recorded_by": None if evidence is None else "Иванова И. И.",
        "recorded_at": None if evidence is None else "2025-01-20T10:00:00+00:00",
    }


STUB_TRACKED = [
    {
        "code": "roadmap_implemented",
        "name": "Разработан и реализуется комплекс мер («дорожная карта»)",
        "target": "Реализация комплекса мер до 31.12.2024 года",
        "recurrence": "once",
        "clause": "прил. 1, п. 1",
        "periods": [stub_period("once", "к 31.12.2024", "missed", "Отчёт <b>№ 7</b>")],
    },
    {
        "code": "monitoring_system",
        "name": "Разработана и реализуется система мониторинга эффективности РС НМС",
        "target": "Ежегодно, начиная с 2023 года",
        "recurrence": "yearly",
        "clause": "прил. 1, п. 2",
        "periods": [
            stub_period("2025", "за 2025 год", "no_data", None),
            stub_period("2026", "за 2026 год", "no_data", None),
        ],
    },
]
"""``/v1/tracked``: the roadmap recorded as not done (with markup in its evidence, shown as
text), the monitoring system with nothing recorded."""


def open_stubbed(page: Page, kpis: list[dict[str, Any]], analytics: str | None) -> None:
    """The dashboard served from the package's files, its API answered by stubs."""
    static = resources.files("iomflow.monitoring").joinpath("static")
    answers: dict[str, Any] = {
        "/v1/catalogue": {"source": "Положение о РС НМС", "region_name": "Иркутская область"},
        "/v1/reports": {"analytics_xlsx": analytics, "pdf_engine": "chromium"},
        "/v1/kpis": {
            "as_of": "2026-12-07",
            "computed_at": None,
            "source": "Положение о РС НМС",
            "region": {"counts": {"teachers": 40}, "kpis": kpis},
            "municipalities": [
                {"municipality_id": "m1", "name": "Город", "counts": {"teachers": 40}, "kpis": kpis}
            ],
        },
        "/v1/alerts": {"items": [], "total": 0, "offset": 0, "limit": 1000},
        "/v1/tracked": STUB_TRACKED,
    }

    def answer(route: Route) -> None:
        path = urlparse(route.request.url).path
        if path == "/dashboard":
            route.fulfill(
                body=static.joinpath("dashboard.html").read_bytes(), content_type="text/html"
            )
        elif path.startswith("/dashboard/assets/"):
            name = path.rsplit("/", 1)[1]
            kind = ASSET_TYPES[Path(name).suffix]
            route.fulfill(body=static.joinpath(name).read_bytes(), content_type=kind)
        elif path.startswith("/v1/kpis/") and path.endswith("/series"):
            points = [{"on": "2026-12-07", "value": 12.5}]
            route.fulfill(json={"code": path.split("/")[3], "points": points})
        elif path in answers:
            route.fulfill(body=json.dumps(answers[path]), content_type="application/json")
        else:
            route.fulfill(status=404, json={"detail": "нет", "code": "not_found"})

    page.route(f"{STUB}/**", answer)
    page.goto(f"{STUB}/dashboard")
    wait_ready(page, "region", "2026-12-07")


STATUS_CELL_JS = """code => {
    const td = document.querySelector(`#kpi-table tr[data-kpi="${code}"] td.status`);
    const text = (s) => { const n = td.querySelector(s); return n && n.textContent; };
    return {period: text('.period'), deadline: text('.at-deadline')};
}"""


@needs_chromium
def test_a_kpis_period_and_its_value_at_the_deadline_are_shown_when_the_api_sends_them(
    browser: Browser,
) -> None:
    kpis = [
        stub_row(
            "with_period",
            "Доля педагогов с периодом",
            period={"label": "на 31.12.2024, срок прошёл", "passed": True},
            at_deadline={"on": "2024-12-31", "value": 7.2, "met": False},
        ),
        stub_row("without_period", "Доля педагогов без периода"),  # as the API is today
        stub_row(
            "yearly",
            "Доля педагогов за год",
            accumulation="yearly",
            deadline=None,
            period={"label": "за 2026 год", "passed": False},
        ),
        stub_row(
            "unknown_then",
            "Доля педагогов без данных к сроку",
            period={"label": "к 31.12.2024", "passed": False},
            at_deadline={"on": "2024-12-31", "value": None, "met": None},
        ),
    ]
    page = browser.new_page(locale="ru-RU")
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    open_stubbed(page, kpis, analytics="https://diagnostics.example.ru/v1/analytics.xlsx")

    def cell(code: str) -> dict[str, str | None]:
        found = page.evaluate(STATUS_CELL_JS, code)
        return {k: v.replace("\u00a0", " ") if v else v for k, v in found.items()}

    # past the deadline the line names the date and says the deadline passed: the period's
    # label («на 31.12.2024, срок прошёл») would say it twice
    assert cell("with_period") == {
        "period": None,
        "deadline": "на 31.12.2024: 7,2 % — не достигнут (срок прошёл)",
    }
    assert cell("without_period") == {"period": None, "deadline": None}
    assert cell("yearly") == {"period": "за 2026 год", "deadline": None}
    assert cell("unknown_then") == {
        "period": "к 31.12.2024",
        "deadline": "на 31.12.2024: нет данных (срок прошёл)",
    }
    page.click('#kpi-table tr[data-kpi="with_period"]')
    detail = (page.text_content("#detail-value") or "").replace("\u00a0", " ")
    assert "null" not in detail and "на 31.12.2024: 7,2 % — не достигнут (срок прошёл)" in detail
    # the measures: the latest period of each, the evidence as text (never markup)
    panel = assert_tracked_panel(page, STUB_TRACKED)
    assert [(t["period"], t["word"], t["evidence"]) for t in panel] == [
        ("к 31.12.2024", "не достигнут", "Отчёт <b>№ 7</b>"),
        ("за 2026 год", "нет данных", NOT_RECORDED),
    ]
    recorded = page.text_content('#tracked-list li[data-tracked="roadmap_implemented"] .recorded')
    assert recorded == "отмечено «не выполнено», Иванова И. И., 20.01.2025"
    codes = [k["code"] for k in kpis] + [t["code"] for t in STUB_TRACKED]
    assert_no_codes(page, codes, "stubbed")

    # the header links the year's report in its three forms, and the analytics workbook
    links = page.eval_on_selector_all(
        "#report a", "as => as.map(a => [a.dataset.report, a.getAttribute('href')])"
    )
    assert links == [
        ["xlsx", "v1/reports/2026.xlsx"],
        ["print", "v1/reports/2026/print"],
        ["pdf", "v1/reports/2026.pdf"],
        ["analytics", "https://diagnostics.example.ru/v1/analytics.xlsx"],
    ]
    assert problems == []

    # without the diagnostics' address, no analytics link
    bare = browser.new_page(locale="ru-RU")
    open_stubbed(bare, kpis, analytics=None)
    assert bare.locator('#report a[data-report="analytics"]').count() == 0
    assert bare.locator('#report a[data-report="pdf"]').count() == 1
