"""The operator's console in a real browser: monitoring under uvicorn on a real Redis and a
real database, headless Chromium cut off from everything but the service. An operator signs
in with their key, sees two dead letters, acknowledges the alert they raised, drops one
(gone, not put back) and replays the other (it leaves the DLQ, is back on its stream and
the consumer applies it), and finds a
diagnosis's trace across services in the span files. Nothing outside is asked for, and no
Latin-letter code is left where a person reads: what the page shows as data, in <code>
(stream and event names, letter, event and trace ids, span names) and the stream filters'
choices (stream names), is left out of the scan.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from opentelemetry import trace
from playwright.sync_api import Browser, Page
from sqlalchemy.ext.asyncio import async_sessionmaker

from e2e.pages import latin_codes, offline, served, sign_in
from iomflow.monitoring.app import create_app
from iomflow.monitoring.repository import tables
from iomflow.monitoring.settings import Settings
from iomflow.shared import auth, db, wire
from iomflow.shared.contracts import Streams, TeacherUpserted, new_event
from iomflow.shared.streams import dead_letter_fields
from iomflow.shared.telemetry import create_tracer_provider

ADMIN_KEY = "iomf_e2e_console_admin"
OPERATOR = "Дежурный оператор"
REGISTRY = Streams.REGISTRY
REGISTRY_DLQ = Streams.dlq(REGISTRY)
DIAGNOSIS = "d-2026-0042"

CODES_AS_DATA_JS = """() => {
    // The page's text without what it shows as data: <code>, and the choices of the filters
    // over the stream columns (stream names). The scan reads the rest.
    const codes = [...document.querySelectorAll(
        'code, select[data-key=stream] option, select[data-key=original] option')];
    const kept = codes.map(c => c.textContent);
    codes.forEach(c => { c.textContent = ''; });
    const text = document.body.innerText;
    codes.forEach((c, i) => { c.textContent = kept[i]; });
    return text;
}"""


@pytest.fixture(autouse=True)
def jsonl_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


def write_trace(traces_dir: Path) -> str:
    """Diagnostics completes ``DIAGNOSIS`` and routes consumes the event, one trace, as
    their tracer providers write it to the span files."""
    diagnostics = create_tracer_provider("diagnostics", traces_dir)
    routes = create_tracer_provider("routes", traces_dir)
    tracer = diagnostics.get_tracer("e2e")
    with tracer.start_as_current_span("diagnostics.result.submitted process") as root:
        with tracer.start_as_current_span(
            "diagnosis completed", attributes={"iomflow.diagnosis_id": DIAGNOSIS}
        ):
            pass
        with routes.get_tracer("e2e").start_as_current_span(
            "iomflow.diagnostics process",
            context=trace.set_span_in_context(root),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "iomflow.event.type": "diagnostics.diagnosis.completed",
                "messaging.consumer.group.name": "routes",
            },
        ):
            pass
    for provider in (diagnostics, routes):
        provider.force_flush()
        provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


async def issue_operator_key(database_url: str) -> str:
    """An operator's key, issued as ``iomflow monitoring keys add`` does."""
    engine = db.create_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            assert tables.api_keys is not None
            _, key = await auth.issue(session, tables.api_keys, OPERATOR, ["operator"])
            await session.commit()
        return key
    finally:
        await engine.dispose()


@pytest.fixture
def monitoring(clean_redis: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Monitoring served over HTTP; its base URL and an operator's key."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'monitoring.db'}"
    app = create_app(
        Settings(
            redis_url=clean_redis,
            data_dir=tmp_path,
            database_url=database_url,
            migrate_on_start=True,
            relay_poll_s=0.05,
            poll_ms=20,
            kpi_worker="thread",
            admin_key=ADMIN_KEY,
            alert_check_interval_s=0.5,
            traces_dir=tmp_path / "traces",
            sql_tracing=False,
        )
    )
    with served(app, "monitoring") as base:
        yield base, asyncio.run(issue_operator_key(database_url))


def wait_until(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def open_alerts(base: str) -> dict[str, dict[str, Any]]:
    reply = httpx.get(f"{base}/v1/alerts", params={"limit": 1000}, timeout=10)
    reply.raise_for_status()
    page = reply.json()
    assert page["total"] == len(page["items"]), page["total"]
    return {a["alert_id"]: a for a in page["items"]}


def ready(page: Page, section: str) -> None:
    page.wait_for_selector(f"#{section}[data-state=ready]", state="attached", timeout=20_000)


def test_an_operator_replays_a_dead_letter_acknowledges_its_alert_and_reads_a_trace_offline(
    monitoring: tuple[str, str], browser: Browser, clean_redis: str, tmp_path: Path
) -> None:
    base, key = monitoring
    trace_id = write_trace(tmp_path / "traces")
    # A teacher's upsert that monitoring had to give up on (its database was away), as the
    # consumer writes a dead letter; its cause is gone now.
    teacher = TeacherUpserted(
        teacher_id="t-301", organization_id="org-1", municipality_id="mun-01",
        position="учитель", audience="general", subjects=["математика"],
        age_band="35-44", experience_band="10-20",
    )  # fmt: skip
    event = new_event("registry.teacher.upserted", teacher, source="registries", subject="t-301")
    r = redis.Redis.from_url(clean_redis, decode_responses=True)
    letter_id = str(
        r.xadd(
            REGISTRY_DLQ,
            dead_letter_fields(  # type: ignore[arg-type]
                wire.encode(event),
                stream=REGISTRY,
                group="monitoring",
                entry_id="1700000000000-0",
                reason="max_deliveries",
                error="база данных недоступна",
                deliveries=5,
            ),
        )
    )
    # And one whose event nobody wants back (dropped from the page).
    unwanted = new_event("registry.teacher.upserted", teacher, source="registries", subject="t-302")
    dropped_id = str(
        r.xadd(
            REGISTRY_DLQ,
            dead_letter_fields(  # type: ignore[arg-type]
                wire.encode(unwanted),
                stream=REGISTRY,
                group="monitoring",
                entry_id="1700000000001-0",
                reason="invalid",
                error="лишняя запись",
                deliveries=1,
            ),
        )
    )
    alert_id = f"dead_letters:{REGISTRY_DLQ}"
    wait_until(lambda: alert_id in open_alerts(base), "the dead letters' alert")

    # The sign-in page asks who is signed in before anyone is (a 401, said in its console);
    # from the console on, no request may fail.
    seen = offline(browser, base, expected=("status of 401",))
    page = seen.page
    failed: list[str] = []
    sign_in(page, base, key, "/console")
    page.on(
        "response",
        lambda answer: (
            failed.append(f"{answer.status} {answer.url}") if answer.status >= 400 else None
        ),
    )
    page.reload()
    page.wait_for_selector("body[data-state=ready]", state="attached", timeout=30_000)
    assert OPERATOR in (page.text_content("#iomflow-bar") or "")

    # Streams: the registry stream's row for monitoring's group, with its dead letter.
    ready(page, "streams")
    cell = page.locator(f'#streams-table code[data-stream="{REGISTRY}"][data-group="monitoring"]')
    row = cell.locator("xpath=ancestor::tr").inner_text()
    assert "мониторинг" in row and row.split("\t")[-1].strip() == "2", row

    # The dead letter, by its reason in Russian.
    ready(page, "letters")
    reasons = page.text_content("#reasons") or ""
    assert "исчерпаны попытки доставки — 1" in reasons, reasons
    assert "не прошла проверку контракта — 1" in reasons, reasons
    replay = page.locator(f'#letters-table button.replay[data-letter="{letter_id}"]')
    assert replay.count() == 1

    # Its alert, acknowledged from the page: who and when.
    ready(page, "alerts")
    page.click(f'#alerts-table button.acknowledge[data-alert="{alert_id}"]')
    page.wait_for_selector(f"#alerts-table :text('{OPERATOR},')", timeout=10_000)
    acknowledged = open_alerts(base)[alert_id]
    assert acknowledged["acknowledged_by"] == OPERATOR and acknowledged["acknowledged_at"]

    # Dropped, once confirmed: gone from the DLQ and not put back on its stream.
    on_stream = len(r.xrange(REGISTRY))
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f'#letters-table button.drop[data-letter="{dropped_id}"]')
    page.wait_for_selector("#iomflow-say .say.ok:has-text('удалена без возврата')")
    assert [i for i, _ in r.xrange(REGISTRY_DLQ)] == [letter_id]
    assert len(r.xrange(REGISTRY)) == on_stream
    replay = page.locator(f'#letters-table button.replay[data-letter="{letter_id}"]')

    # Replayed: gone from the DLQ, back on its stream with its event id, and applied.
    replay.click()
    page.wait_for_selector("#iomflow-say .say.ok:has-text('возвращена в свой поток')")
    assert letter_id not in {i for i, _ in r.xrange(REGISTRY_DLQ)}
    back = [f for _, f in r.xrange(REGISTRY) if f.get("event_id") == str(event.event_id)]
    assert len(back) == 1 and not any(k.startswith("dlq_") for k in back[0])
    wait_until(
        lambda: httpx.get(f"{base}/v1/stats", timeout=10).json()["teachers"] == 1,
        "the replayed teacher to be applied",
    )
    page.wait_for_selector("#letters-note:text('Недоставленных записей нет.')", timeout=10_000)

    # The diagnosis's trace across the services, from the span files.
    page.fill("#trace-id", DIAGNOSIS)
    page.click("#trace-find")
    ready(page, "traces")
    shown = page.locator(f'#traces-list .trace[data-trace="{trace_id}"]')
    assert shown.count() == 1
    spans = shown.locator("tr[data-span]")
    assert spans.count() == 3
    services = [spans.nth(i).get_attribute("data-service") for i in range(3)]
    assert services == ["diagnostics", "diagnostics", "routes"]
    text = shown.inner_text()
    assert "диагностика, маршруты" in text and "получение" in text
    assert DIAGNOSIS in text and "diagnostics.diagnosis.completed" in text

    # Nothing outside asked for, no script error, no CSP violation; no code left to read.
    assert seen.attempted == [] and seen.problems == [] and seen.violations() == []
    assert failed == []
    readable = page.evaluate(CODES_AS_DATA_JS)
    assert "Трасса" in readable and "Потоки и группы потребителей" in readable
    leftover = latin_codes(readable, allowed=re.compile(r"\d{1,2}:\d{2}"))
    assert leftover == [], leftover
    r.close()
