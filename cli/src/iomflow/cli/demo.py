"""The main job: the whole chain on embedded defaults with the demo region.

Starts Redis (unless given one) and the four services as processes on SQLite files,
loads the demo region into the registries, publishes instrument results for N teachers
into the inbound stream exactly as an outside publisher would (plain XADD), submits one
teacher's results over HTTP inside a known trace, waits for every diagnosis to become a
route with a methodist and for the KPIs to catch up, then prints the KPI table and that
one trace across the services.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iomflow.cli.launcher import LocalRedis, Suite
from iomflow.shared import wire
from iomflow.shared.contracts import Event, Instrument, ResultSubmitted, Streams, new_event
from iomflow.shared.telemetry import read_spans

COMPETENCIES = (
    "subject_content",
    "teaching_methods",
    "psych_pedagogy",
    "upbringing",
    "functional_literacy",
    "assessment",
    "digital",
    "communication",
    "career_guidance",
    "gifted_children",
)
INSTRUMENTS = (Instrument.STANDARDIZED_TEST, Instrument.SELF_DIAGNOSIS)

console = Console(width=max(Console().width, 130))


def scores_for(teacher_id: str, instrument: Instrument) -> dict[str, float]:
    """Deterministic demo scores: most teachers have a few deficits, self-assessment is
    kinder than the test."""
    rng = random.Random(f"{teacher_id}:{instrument.value}")
    base = random.Random(teacher_id)
    bump = 8 if instrument == Instrument.SELF_DIAGNOSIS else 0
    return {
        code: round(min(100.0, max(0.0, base.gauss(68, 15) + bump + rng.gauss(0, 5))), 1)
        for code in COMPETENCIES
    }


def result_event(
    teacher_id: str, instrument: Instrument, source: str = "demo-publisher"
) -> Event[ResultSubmitted]:
    """One teacher's demo result for one instrument, as an outside publisher sends it."""
    return new_event(
        "diagnostics.result.submitted",
        ResultSubmitted(
            teacher_id=teacher_id,
            instrument=instrument,
            campaign_id="demo-2026",
            scores=scores_for(teacher_id, instrument),
        ),
        source=source,
        subject=teacher_id,
    )


def result_entries(teacher_ids: list[str]) -> list[tuple[str, dict[str, str]]]:
    return [
        (Streams.RESULTS_INBOUND, wire.encode(result_event(teacher_id, instrument)))
        for teacher_id in teacher_ids
        for instrument in INSTRUMENTS
    ]


def wait_for(
    what: str, total: int, current: Callable[[], tuple[int, bool]], timeout: float
) -> None:
    """A progress bar until ``current()`` says done; fails loudly on timeout."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(what, total=total)
        deadline = time.monotonic() + timeout
        while True:
            done_count, done = current()
            progress.update(task, completed=done_count)
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"«{what}» не завершилось за {timeout:.0f} с")
            time.sleep(0.5)


def _get(client: httpx.Client, url: str) -> Any:
    response = client.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


def run(
    *,
    teachers: int,
    workdir: Path,
    redis_url: str | None,
    timeout: float,
    stay: bool,
    region_teachers: int = 40_000,
) -> int:
    workdir = workdir.resolve()
    local = None if redis_url else LocalRedis(workdir / "redis")
    suite: Suite | None = None
    try:
        if local is not None:
            redis_url = local.start()
            console.print(f"Redis запущен: {redis_url} (каталог {local.workdir})")
        assert redis_url is not None
        suite = Suite(
            workdir,
            redis_url,
            extra_env={
                # Under load, sample: 1 % of the bulk traces; the demo's own trace is sampled
                # by its parent (the traceparent we send), whatever the ratio.
                "OTEL_TRACES_SAMPLER": os.environ.get(
                    "OTEL_TRACES_SAMPLER", "parentbased_traceidratio"
                ),
                "OTEL_TRACES_SAMPLER_ARG": os.environ.get("OTEL_TRACES_SAMPLER_ARG", "0.01"),
            },
        )
        console.print(
            "Запуск сервисов: "
            + ", ".join(s for s in ("registries", "diagnostics", "routes", "monitoring"))
            + " …"
        )
        suite.start()
        with httpx.Client() as client:
            return _chain(
                client, suite, redis_url, teachers, workdir, timeout, stay, region_teachers
            )
    except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
        console.print(f"[red]Ошибка:[/red] {exc}")
        console.print(f"Журналы сервисов: {workdir / 'logs'}")
        return 1
    finally:
        # A second Ctrl+C must not leave half-stopped services behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if suite is not None:
            suite.stop()
        if local is not None:
            local.stop()


def _chain(
    client: httpx.Client,
    suite: Suite,
    redis_url: str,
    teachers: int,
    workdir: Path,
    timeout: float,
    stay: bool,
    region_teachers: int,
) -> int:
    reg, diag, routes, mon = (
        suite.url(n) for n in ("registries", "diagnostics", "routes", "monitoring")
    )
    loaded = client.post(
        f"{reg}/v1/load/demo",
        params={"teachers": region_teachers},
        headers={"Authorization": f"Bearer {suite.admin_key}"},
        timeout=600,
    )
    if loaded.status_code != 200:
        raise RuntimeError(f"реестры не загружены: {loaded.text[:2000]}")
    received = loaded.json()["received"]
    console.print("Реестры загружены: " + ", ".join(f"{k} {v}" for k, v in received.items()))

    def registries_seen() -> tuple[int, bool]:
        d = _get(client, f"{diag}/v1/stats")
        r = _get(client, f"{routes}/v1/stats")
        m = _get(client, f"{mon}/v1/kpis")["region"]["counts"]
        seen = min(d["teachers"], r["teachers"], m["teachers"])
        done = (
            seen == received["teachers"]
            and r["methodists"] == received["methodists"]
            and r["programs"] == received["programs"]
        )
        return seen, done

    wait_for("Реестры → локальные модели сервисов", received["teachers"], registries_seen, timeout)

    all_ids: list[str] = []
    while len(all_ids) < min(teachers, received["teachers"]):
        page = _get(
            client, f"{reg}/v1/registers/teachers/records?limit=1000&offset={len(all_ids)}"
        )["items"]
        if not page:
            break
        all_ids += [t["teacher_id"] for t in page]
    chosen = all_ids[:teachers]
    traced, bulk = chosen[0], chosen[1:]

    # The bulk: what an outside publisher writes with any Redis client.
    publisher = redis.Redis.from_url(redis_url)
    entries = result_entries(bulk)
    for start in range(0, len(entries), 1000):
        pipe = publisher.pipeline(transaction=False)
        for stream, fields in entries[start : start + 1000]:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        pipe.execute()
    console.print(
        f"Опубликовано результатов в {Streams.RESULTS_INBOUND}: {len(entries)} "
        f"({len(bulk)} педагогов × {len(INSTRUMENTS)} инструмента)"
    )

    # One teacher over HTTP, inside a trace we name, to show it end to end.
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    for instrument in INSTRUMENTS:
        response = client.post(
            f"{diag}/v1/results",
            headers={"traceparent": traceparent},
            json={
                "teacher_id": traced,
                "instrument": instrument.value,
                "campaign_id": "demo-2026",
                "source": "demo-http",
                "scores": scores_for(traced, instrument),
            },
            timeout=30,
        )
        response.raise_for_status()

    def chain_settled() -> tuple[int, bool]:
        d = _get(client, f"{diag}/v1/stats")
        r = _get(client, f"{routes}/v1/stats")
        m = _get(client, f"{mon}/v1/kpis")["region"]["counts"]
        done = (
            d["diagnoses"] == len(chosen)
            and m["diagnosed"] == len(chosen)
            and r["routes"] == d["with_deficits"]
            and m["with_route"] == r["routes"]
            and m["supported"] == r["assigned"]
        )
        return m["diagnosed"], done

    wait_for("Диагностика → маршрут → методист → показатели", len(chosen), chain_settled, timeout)
    kpis = _get(client, f"{mon}/v1/kpis")
    print_kpis(kpis)
    ok = print_trace(workdir / "traces", trace_id)
    dlq = {
        s: publisher.xlen(Streams.dlq(s))
        for s in (Streams.REGISTRY, Streams.RESULTS_INBOUND, Streams.DIAGNOSTICS, Streams.ROUTES)
    }
    console.print(
        "Очереди недоставленных (DLQ): " + ", ".join(f"{k}.dlq {v}" for k, v in dlq.items())
    )
    if stay:
        console.print("\nСервисы работают (Ctrl+C — остановить):")
        for name, service in suite.services.items():
            console.print(f"  {name:12} {service.url}/docs   {service.url}/health/ready")
        console.print(f"  redis        {redis_url}")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0 if ok else 1


def print_kpis(kpis: dict[str, Any]) -> None:
    table = Table(title=f"Показатели РС НМС — демонстрационный регион (на {kpis['as_of'][:19]})")
    for column in ("код", "показатель", "значение", "цель", "выполнен"):
        table.add_column(column)
    municipalities = kpis["municipalities"]
    for kpi in kpis["region"]["kpis"]:
        value = "—" if kpi["value"] is None else f"{kpi['value']:g} {kpi['unit']}"
        target = f"{kpi['comparison']} {kpi['target']:g} {kpi['unit']}"
        met = {True: "да", False: "нет", None: "—"}[kpi["met"]]
        table.add_row(kpi["code"], kpi["name"], value, target, met)
    console.print(table)
    counts = kpis["region"]["counts"]
    console.print(
        f"Педагогов {counts['teachers']}, прошли диагностику {counts['diagnosed']}, "
        f"с маршрутом {counts['with_route']}, с методистом {counts['supported']}; "
        f"муниципалитетов {len(municipalities)}"
    )


def print_trace(traces_dir: Path, trace_id: str, wait_s: float = 15) -> bool:
    """Print one trace's spans in order as a tree; True when it reaches every service."""
    wanted = {"diagnostics", "routes", "monitoring"}
    deadline = time.monotonic() + wait_s
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = [s for s in read_spans(traces_dir) if s["trace_id"] == trace_id]
        if wanted <= {str(s["service"]) for s in spans} and _settled(spans):
            break
        time.sleep(0.5)
    services = {str(s["service"]) for s in spans}
    console.print(
        f"\nТрасса {trace_id}: {len(spans)} спанов, сервисы: " + ", ".join(sorted(services))
    )
    by_id = {s["span_id"]: s for s in spans}
    children: dict[Any, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in by_id else None
        children.setdefault(parent, []).append(span)
    t0 = min((int(s["start_ns"]) for s in spans), default=0)

    def show(parent: Any, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: int(s["start_ns"])):
            if str(span["name"]).startswith(
                ("SELECT", "INSERT", "UPDATE", "BEGIN", "COMMIT", "connect")
            ):
                continue  # SQL spans are in the file; the tree shows the hops
            start = (int(span["start_ns"]) - t0) / 1e6
            took = (int(span["end_ns"]) - int(span["start_ns"])) / 1e6
            console.print(
                f"  {start:9.1f} ms  {'  ' * depth}{span['service']:<12} "
                f"{span['name']}  ({took:.1f} ms)"
            )
            show(span["span_id"], depth + 1)

    show(None, 0)
    missing = wanted - services
    if missing:
        console.print(f"[red]В трассе нет спанов сервисов: {', '.join(sorted(missing))}[/red]")
    return not missing


def _settled(spans: list[dict[str, Any]]) -> bool:
    names = {str(s["name"]) for s in spans if s["service"] == "monitoring"}
    return any(Streams.ROUTES in n for n in names)
