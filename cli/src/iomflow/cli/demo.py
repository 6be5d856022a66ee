"""The main job: the whole chain on embedded defaults with the demo region.

Starts Redis (unless given one) and the four services as processes on SQLite files,
loads the demo region into the registries, opens the diagnostics campaign ``demo-2026``
(all five instruments required), publishes every instrument's results for N teachers into
the inbound stream exactly as an outside publisher would (plain XADD), submits one
teacher's results over HTTP inside a known trace, waits for every diagnosis to become a
route with a methodist and for the KPIs to catch up, then prints the KPI table and that
one trace across the services.

While it runs, ``<workdir>/suite.json`` holds its settings (``launcher.write_settings``), so
that the services' admin commands run beside it work on its databases; ``iomflow dev``
prints the admin key and the commands that issue publishers' keys (``admin_hints``).
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iomflow.cli import trace
from iomflow.cli.launcher import SETTINGS_FILE, LocalRedis, Suite, write_settings
from iomflow.shared import redisconn, wire
from iomflow.shared.contracts import (
    Event,
    Instrument,
    ItemScore,
    ResultSubmitted,
    Streams,
    new_event,
)
from iomflow.shared.telemetry import read_spans

# The competency codes of the framework in force (services/diagnostics/…/data/framework.json),
# as an outside publisher's specification names them; the order fixes the demo's numbers.
COMPETENCIES = (
    "subject_content",
    "teaching_methods",
    "updated_fgos",
    "psych_pedagogy",
    "inclusive_education",
    "preschool_environment",
    "upbringing",
    "functional_literacy",
    "assessment",
    "digital",
    "communication",
    "career_guidance",
    "gifted_children",
    "management_quality",
    "management_staff",
    "management_strategy",
)
OBSERVABLE = (
    "teaching_methods",
    "updated_fgos",
    "psych_pedagogy",
    "inclusive_education",
    "preschool_environment",
    "upbringing",
    "functional_literacy",
    "assessment",
    "digital",
    "communication",
)
"""What an expert observing lessons (sessions) can judge on the rubric."""
PROFESSIONAL = (
    "subject_content",
    "upbringing",
    "functional_literacy",
    "assessment",
    "career_guidance",
    "gifted_children",
    "management_quality",
    "management_strategy",
)
"""What the analysis of professional results (learners' results, olympiads, the school's
quality data) speaks to."""
CORE = (
    "teaching_methods",
    "updated_fgos",
    "psych_pedagogy",
    "inclusive_education",
    "upbringing",
    "assessment",
    "digital",
    "communication",
    "gifted_children",
)
"""Competencies that apply to every teacher, whatever the audience or role."""
BURNOUT_SCALES = ("emotional_exhaustion", "depersonalization", "reduced_accomplishment")
TEST_ITEMS = (1, 1, 2, 2)
"""The standardized test's blueprint: per competency, items worth these points."""
EXPERTS = 120
"""Size of the demo's pool of (pseudonymous) experts."""
INSTRUMENTS = tuple(Instrument)
RESULTS_PER_TEACHER = len(INSTRUMENTS) + 1  # the expert evaluation comes from two experts

CAMPAIGN_ID = "demo-2026"
CAMPAIGN: dict[str, Any] = {
    "campaign_id": CAMPAIGN_ID,
    "name": "Осенняя диагностика профессиональных дефицитов 2026",
    "starts_on": "2026-09-01",
    "ends_on": "2026-12-31",
    "municipalities": [],
    "organizations": [],
    "required": [i.value for i in INSTRUMENTS],
}
IRKUTSK = timezone(timedelta(hours=8))

console = Console(width=max(Console().width, 130))


def open_campaign(
    client: httpx.Client,
    diagnostics_url: str,
    admin_key: str,
    campaign: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Open the demo campaign (or ``campaign``) through the diagnostics API as an operator;
    one that is already open is taken as it is."""
    body = campaign or CAMPAIGN
    response = client.post(
        f"{diagnostics_url}/v1/campaigns",
        json=body,
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    if response.status_code == 409:
        response = client.get(f"{diagnostics_url}/v1/campaigns/{body['campaign_id']}", timeout=10)
    elif response.status_code != 201:
        raise RuntimeError(f"кампания не открыта: {response.status_code} {response.text[:2000]}")
    response.raise_for_status()
    opened: dict[str, Any] = response.json()
    return opened


# --- the demo's results ------------------------------------------------------------------


def _clip(value: float) -> float:
    return round(min(100.0, max(0.0, value)), 1)


def _ability(teacher_id: str) -> dict[str, float]:
    """The teacher's true level per competency, which every instrument sees through its own
    noise: most teachers have a few deficits."""
    rng = random.Random(teacher_id)
    return {code: rng.gauss(68, 15) for code in COMPETENCIES}


def traced_teacher(teacher_ids: list[str]) -> str:
    """The teacher to follow as one trace: the first one the demo makes clearly weak in a
    competency every teacher has (a sure deficit, so the diagnosis becomes a route)."""
    for teacher_id in teacher_ids:
        ability = _ability(teacher_id)
        if min(ability[code] for code in CORE) < 40:
            return teacher_id
    return teacher_ids[0]


def _taken_at(teacher_id: str, what: str, first_day: int, last_day: int) -> datetime:
    """A deterministic working-hours moment of October 2026, Irkutsk time."""
    rng = random.Random(f"{teacher_id}:{what}:taken_at")
    return datetime(
        2026,
        10,
        rng.randint(first_day, last_day),
        rng.randint(9, 16),
        rng.choice((0, 15, 30, 45)),
        tzinfo=IRKUTSK,
    )


def experts_for(teacher_id: str) -> tuple[str, str]:
    """The two experts who observe the teacher's lessons."""
    first, second = random.Random(f"{teacher_id}:experts").sample(range(1, EXPERTS + 1), 2)
    return f"expert-{first:03d}", f"expert-{second:03d}"


def results_for(teacher_id: str, campaign_id: str = CAMPAIGN_ID) -> list[ResultSubmitted]:
    """One teacher's six demo results, deterministic from the id: the standardized test as
    items, the expert evaluation by two experts, professional results, self-diagnosis (kinder
    than the test) and the burnout survey."""
    ability = _ability(teacher_id)

    def result(instrument: Instrument, suffix: str = "", **fields: Any) -> ResultSubmitted:
        return ResultSubmitted(
            teacher_id=teacher_id,
            instrument=instrument,
            campaign_id=campaign_id,
            external_id=f"{campaign_id}:{teacher_id}:{instrument.value}{suffix}",
            **fields,
        )

    rng = random.Random(f"{teacher_id}:{Instrument.STANDARDIZED_TEST.value}")
    items = []
    for block, code in enumerate(COMPETENCIES):
        solves = min(0.97, max(0.03, ability[code] / 100))
        for number, points in enumerate(TEST_ITEMS, start=1):
            items.append(
                ItemScore(
                    item=f"{chr(ord('A') + block)}{number}",
                    competency=code,
                    score=sum(rng.random() < solves for _ in range(points)),
                    max_score=points,
                )
            )
    out = [
        result(
            Instrument.STANDARDIZED_TEST,
            items=items,
            taken_at=_taken_at(teacher_id, "test", 1, 10),
        )
    ]
    for expert_id in experts_for(teacher_id):
        strictness = random.Random(expert_id).gauss(0, 4)  # each expert a little stricter or kinder
        rng = random.Random(f"{teacher_id}:{expert_id}")
        out.append(
            result(
                Instrument.EXPERT_EVALUATION,
                f":{expert_id}",
                expert_id=expert_id,
                # a rubric in steps of 5 points
                scores={
                    code: _clip(5 * round((ability[code] - strictness + rng.gauss(0, 6)) / 5))
                    for code in OBSERVABLE
                },
                taken_at=_taken_at(teacher_id, expert_id, 5, 25),
            )
        )
    rng = random.Random(f"{teacher_id}:{Instrument.PROFESSIONAL_RESULTS.value}")
    out.append(
        result(
            Instrument.PROFESSIONAL_RESULTS,
            scores={code: _clip(ability[code] + rng.gauss(0, 8)) for code in PROFESSIONAL},
            taken_at=_taken_at(teacher_id, "professional", 12, 20),
        )
    )
    rng = random.Random(f"{teacher_id}:{Instrument.SELF_DIAGNOSIS.value}")
    out.append(
        result(
            Instrument.SELF_DIAGNOSIS,
            scores={code: _clip(ability[code] + 8 + rng.gauss(0, 5)) for code in COMPETENCIES},
            taken_at=_taken_at(teacher_id, "self", 1, 31),
        )
    )
    rng = random.Random(f"{teacher_id}:{Instrument.BURNOUT_SURVEY.value}")
    strain = rng.gauss(42, 14)
    out.append(
        result(
            Instrument.BURNOUT_SURVEY,
            scores={scale: _clip(strain + rng.gauss(0, 8)) for scale in BURNOUT_SCALES},
            taken_at=_taken_at(teacher_id, "burnout", 1, 31),
        )
    )
    return out


def result_events(
    teacher_id: str, source: str = "demo-publisher", campaign_id: str = CAMPAIGN_ID
) -> list[Event[ResultSubmitted]]:
    """One teacher's demo results as an outside publisher sends them, each in its envelope."""
    return [
        new_event("diagnostics.result.submitted", result, source=source, subject=teacher_id)
        for result in results_for(teacher_id, campaign_id)
    ]


def result_entries(
    teacher_ids: list[str], campaign_id: str = CAMPAIGN_ID
) -> list[tuple[str, dict[str, str]]]:
    """Stream entries of every result of these teachers, ready for XADD."""
    return [
        (Streams.RESULTS_INBOUND, wire.encode(event))
        for teacher_id in teacher_ids
        for event in result_events(teacher_id, campaign_id=campaign_id)
    ]


def result_bodies(
    teacher_id: str, source: str = "demo-http", campaign_id: str = CAMPAIGN_ID
) -> list[dict[str, Any]]:
    """One teacher's demo results as bodies of ``POST /v1/results`` on diagnostics."""
    return [
        {**result.model_dump(mode="json", exclude_none=True), "source": source}
        for result in results_for(teacher_id, campaign_id)
    ]


def wait_for(
    what: str,
    total: int,
    current: Callable[[], tuple[int, bool]],
    timeout: float,
    rate: Callable[[], tuple[int, str]] | None = None,
) -> None:
    """A progress bar until ``current()`` says done; fails loudly on timeout. ``rate()``
    gives a count that grows as the work goes (results taken, teachers seen) and its unit:
    the bar shows how many of them a second."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[speed]}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(what, total=total, speed="")
        started = time.monotonic()
        deadline = started + timeout
        first: int | None = None
        while True:
            done_count, done = current()
            speed = ""
            if rate is not None:
                count, unit = rate()
                first = count if first is None else first
                elapsed = time.monotonic() - started
                if elapsed > 0 and count > first:
                    speed = f"{(count - first) / elapsed:,.0f} {unit}/с".replace(",", " ")
            progress.update(task, completed=done_count, speed=speed)
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"«{what}» не завершилось за {timeout:.0f} с")
            time.sleep(0.5)


def _ru_date(iso: str | None) -> str:
    return "…" if not iso else ".".join(reversed(iso.split("-")))


def _get(client: httpx.Client, url: str) -> Any:
    response = client.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


PUBLISHED_OVER_HTTP = {
    "diagnostics": ("результатов диагностики", "diagnostics.result.submitted"),
    "routes": ("событий курсов", "courses.course.enrolled,courses.course.completed"),
}
"""Service -> (whose key, for people; the event types outside publishers post to it over
``POST /v1/events``, as its ``INGESTS``)."""


def admin_hints(suite: Suite, settings: Path) -> list[str]:
    """What ``iomflow dev`` tells an admin: the admin key, where the suite's settings are,
    and the exact commands that issue a publisher's key on its databases."""
    at_default = settings.resolve() == SETTINGS_FILE.resolve()
    where = "" if at_default else f" --data-dir {suite.data_dir}"
    lines = [
        f"Ключ администратора (все роли во всех сервисах): {suite.admin_key}",
        f"Настройки набора (базы, Redis, ключ) для команд администратора: {settings}",
    ]
    for service, (whose, types) in PUBLISHED_OVER_HTTP.items():
        lines.append(f"Выдать ключ издателя {whose} (POST {suite_url(suite, service)}/v1/events):")
        lines.append(
            f"  uv run iomflow {service} publishers add <код-издателя> --types {types}{where}"
        )
    return lines


def suite_url(suite: Suite, service: str) -> str:
    return suite.services[service].url if service in suite.services else f"<{service}>"


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
    settings = workdir / "suite.json"
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
        write_settings(suite, settings)
        console.print(f"Настройки набора для команд администратора: {settings}")
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
        settings.unlink(missing_ok=True)  # its databases are no longer a running suite's
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

    seen_now = [0]

    def registries_seen() -> tuple[int, bool]:
        d = _get(client, f"{diag}/v1/stats")
        r = _get(client, f"{routes}/v1/stats")
        m = _get(client, f"{mon}/v1/stats")
        seen = min(d["teachers"], r["teachers"], m["teachers"])
        seen_now[0] = seen
        done = (
            seen == received["teachers"]
            and r["methodists"] == received["methodists"]
            and r["programs"] == received["programs"]
        )
        return seen, done

    wait_for(
        "Реестры → локальные модели сервисов",
        received["teachers"],
        registries_seen,
        timeout,
        rate=lambda: (seen_now[0], "педагогов"),
    )

    all_ids: list[str] = []
    while len(all_ids) < min(teachers, received["teachers"]):
        page = _get(
            client, f"{reg}/v1/registers/teachers/records?limit=1000&offset={len(all_ids)}"
        )["items"]
        if not page:
            break
        all_ids += [t["teacher_id"] for t in page]
    chosen = all_ids[:teachers]
    traced = traced_teacher(chosen)
    bulk = [teacher_id for teacher_id in chosen if teacher_id != traced]

    # An operator opens the campaign; results name it and are dated inside its window.
    campaign = open_campaign(client, diag, suite.admin_key)
    console.print(
        f"Кампания {campaign['campaign_id']} «{campaign['name']}» открыта: "
        f"{_ru_date(campaign['starts_on'])} — {_ru_date(campaign['ends_on'])}, "
        f"обязательных инструментов: {len(campaign['required'])}"
    )

    # The bulk: what an outside publisher writes with any Redis client.
    publisher = redisconn.sync_client(redis_url)
    entries = result_entries(bulk)
    for start in range(0, len(entries), 1000):
        pipe = publisher.pipeline(transaction=False)
        for stream, fields in entries[start : start + 1000]:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        pipe.execute()
    console.print(
        f"Опубликовано результатов в {Streams.RESULTS_INBOUND}: {len(entries)} "
        f"({len(bulk)} педагогов × {RESULTS_PER_TEACHER} результатов: "
        f"{len(INSTRUMENTS)} инструментов, "
        "экспертная оценка — от двух экспертов)"
    )

    # One teacher over HTTP, inside a trace we name, to show it end to end.
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    for body in result_bodies(traced):
        response = client.post(
            f"{diag}/v1/results",
            # by hand, as an operator (a system would use its publisher key)
            headers={"traceparent": traceparent, "Authorization": f"Bearer {suite.admin_key}"},
            json=body,
            timeout=30,
        )
        if response.status_code != 202:
            raise RuntimeError(
                f"результат не принят ({body['instrument']}): "
                f"{response.status_code} {response.text[:2000]}"
            )

    taken = [0]

    def chain_settled() -> tuple[int, bool]:
        d = _get(client, f"{diag}/v1/stats")
        taken[0] = d["results"] + d["held"]
        r = _get(client, f"{routes}/v1/stats")
        m = _get(client, f"{mon}/v1/stats")
        done = (
            d["diagnoses"] == len(chosen)
            and m["diagnosed"] == len(chosen)
            and r["routes"] == d["with_deficits"]
            and m["with_route"] == r["routes"]
            and m["supported"] == r["assigned"]
        )
        return m["diagnosed"], done

    wait_for(
        "Диагностика → маршрут → методист → показатели",
        len(chosen),
        chain_settled,
        timeout,
        rate=lambda: (taken[0], "результатов"),
    )
    kpis = _get(client, f"{mon}/v1/kpis")
    print_kpis(kpis)
    teacher_routes = _get(client, f"{routes}/v1/teachers/{traced}/routes")
    if teacher_routes:
        print_route(_get(client, f"{routes}/v1/routes/{teacher_routes[-1]['route_id']}"))
    ok = print_trace(workdir / "traces", trace_id)
    dlq = {
        s: publisher.xlen(Streams.dlq(s))
        for s in (Streams.REGISTRY, Streams.RESULTS_INBOUND, Streams.DIAGNOSTICS, Streams.ROUTES)
    }
    sizes = ", ".join(f"{Streams.dlq(k)} {v}" for k, v in dlq.items())
    console.print(f"Очереди недоставленных (DLQ): {sizes}")
    if stay:
        console.print("\nСервисы работают (Ctrl+C — остановить):")
        for name, service in suite.services.items():
            console.print(f"  {name:12} {service.url}/docs   {service.url}/health/ready")
        console.print(f"  redis        {redis_url}")
        console.print()
        for line in admin_hints(suite, workdir / "suite.json"):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0 if ok else 1


STATUS = {
    "met": "[green]достигнут[/]",
    "on_track": "[green]в графике[/]",
    "at_risk": "[yellow]под угрозой[/]",
    "missed": "[red]не достигнут[/]",
    "no_data": "нет данных",
}


def print_kpis(kpis: dict[str, Any]) -> None:
    table = Table(title=f"Показатели РС НМС — демонстрационный регион (на {kpis['as_of'][:19]})")
    for column in ("код", "показатель", "значение", "цель", "статус"):
        table.add_column(column)
    municipalities = kpis["municipalities"]
    for kpi in kpis["region"]["kpis"]:
        value = "—" if kpi["value"] is None else f"{kpi['value']:g} {kpi['unit']}"
        target = (
            "рост к прошлому году"
            if kpi["comparison"] == "growth"
            else f"{kpi['comparison']} {kpi['target']:g} {kpi['unit']}"
        )
        table.add_row(kpi["code"], kpi["name"], value, target, STATUS[kpi["status"]])
    console.print(table)
    counts = kpis["region"]["counts"]
    console.print(
        f"Педагогов {counts['teachers']}, прошли диагностику {counts['diagnosed']}, "
        f"с маршрутом {counts['with_route']}, с методистом {counts['supported']}; "
        f"муниципалитетов {len(municipalities)}"
    )


STEP_KINDS = {
    "program": "программа",
    "internship": "стажировка",
    "mentoring": "наставничество",
    "community": "сообщество",
    "consultation": "консультации",
    "post_course_support": "посткурсовое",
}


def print_route(route: dict[str, Any]) -> None:
    """One route as a methodist sees it: every step with its dates and reason."""
    table = Table(
        title=f"ИОМ педагога {route['teacher_id']}: {route['total_hours']} ч, "
        f"{_ru_date(route['starts_on'])} — {_ru_date(route['ends_on'])}, "
        f"методист {route['methodist_id'] or '— (в очереди)'}",
        show_lines=True,
    )
    for column in ("шаг", "вид", "компетенция", "часы", "сроки", "почему"):
        table.add_column(column)
    for step in route["steps"]:
        table.add_row(
            step["step_id"],
            STEP_KINDS.get(step["kind"], step["kind"]),
            step["competency"],
            str(step["hours"]),
            f"{_ru_date(step['starts_on'])} — {_ru_date(step['ends_on'])}",
            step["reason"],
        )
    console.print(table)
    console.print(
        "Часы по годам: "
        + ", ".join(f"{year}: {hours} ч" for year, hours in route["hours_by_period"].items())
        + "; ждёт согласования: "
        + ", ".join(route.get("missing_approvals", []))
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
    console.print()
    for line in trace.header(trace_id, spans):
        console.print(line, markup=False, highlight=False)
    for line in trace.tree_lines(spans):
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"Та же трасса позже: iomflow trace {trace_id} --traces-dir {traces_dir}")
    missing = wanted - services
    if missing:
        console.print(f"[red]В трассе нет спанов сервисов: {', '.join(sorted(missing))}[/red]")
    return not missing


def _settled(spans: list[dict[str, Any]]) -> bool:
    names = {str(s["name"]) for s in spans if s["service"] == "monitoring"}
    return any(Streams.ROUTES in n for n in names)
