"""The whole chain end to end, as a ratio of what its Redis allows in the same run.

    uv run python bench/chain.py [--database sqlite|postgresql] [--teachers 40000]
        [--diagnoses 10000] [--campaign full|one] [--rate 100] [--latency-s 30]
        [--runs 3] [--json out.json]

Each run starts the suite as ``make demo`` does (Redis of its own with AOF, the four
services as processes, traces sampled parent-based at 1 %; SQLite files, or with
``--database postgresql`` a PostgreSQL server started the way the tests start one and a
database per service), then:

1. **transport baseline**, same Redis: pipelined XADD of result entries (1,000 a round
   trip), then XREADGROUP 100 + XACK with no work;
2. **region**: loads the demo region (``--teachers``) into the registries and times until
   every service's read model holds every teacher (and routes every methodist and program);
3. **burst**: opens a campaign (``full``: all five instruments, six results a teacher;
   ``one``: the self-diagnosis only), publishes the results of ``--diagnoses`` teachers as
   fast as one client can and times until every diagnosis has its route with a methodist
   (or a queue place) and monitoring has applied all of it; CPU-ms, SQL statements per
   diagnosis and RSS per service, from ``/proc`` and each service's ``/metrics``;
4. **latency**: ``--rate`` teachers a second for ``--latency-s`` (other teachers), and from
   each teacher's last XADD to its ``routes.route.drafted`` entry and to monitoring having
   applied its ``routes.methodist.*`` entry (its group's acknowledged watermark): p50, p95,
   p99;
5. ``GET /v1/kpis`` after the burst: the first answer, a warm one, and the first after a
   restart of monitoring.

Three runs and their medians unless ``--runs``; ``--json`` writes every figure. The machine
is shared: compare ratios, and runs of the same invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import redis

from iomflow.cli import demo, region
from iomflow.cli.launcher import LocalRedis, Suite
from iomflow.shared.contracts import Instrument, Streams

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SERVICES = ("registries", "diagnostics", "routes", "monitoring")
CONSUMERS = {  # stream -> groups that consume it in the chain
    Streams.RESULTS_INBOUND: ("diagnostics",),
    Streams.DIAGNOSTICS: ("routes", "monitoring"),
    Streams.ROUTES: ("monitoring",),
}
REGISTRY_GROUPS = ("diagnostics", "routes", "monitoring")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- what the services report about themselves -------------------------------------------


def cpu_ms(pid: int) -> float:
    """User + system CPU time of a process, ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, MB."""
    found = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(found["VmRSS"].split()[0]) / 1024, int(found["VmHWM"].split()[0]) / 1024)


def statements(client: httpx.Client, url: str) -> float | None:
    """``iomflow_sql_statements_total`` of a service (None where it has no such counter)."""
    text = client.get(f"{url}/metrics", timeout=30).text
    found = re.search(r"^iomflow_sql_statements_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def tree_cpu_ms(pid: int) -> float:
    """CPU of a process and of every process under it (monitoring's KPI worker)."""
    parents: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue  # gone meanwhile
        found = re.search(r"^PPid:\s+(\d+)", status, re.M)
        if found:
            parents.setdefault(int(found.group(1)), []).append(int(proc.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += cpu_ms(current)
        except (OSError, ValueError, IndexError):
            continue
        todo += parents.get(current, [])
    return total


def servers_cpu_ms(command: str) -> float:
    """CPU of every process of this machine named ``command`` (PostgreSQL's server and its
    backends, Redis): what the services' own figures leave out."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == command:
                total += cpu_ms(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total


class Meters:
    """CPU and SQL statements of every service (and of the servers) between two readings."""

    def __init__(self, client: httpx.Client, suite: Suite) -> None:
        self.client, self.suite = client, suite

    def read(self) -> dict[str, tuple[float, float | None]]:
        out: dict[str, tuple[float, float | None]] = {}
        for name, service in self.suite.services.items():
            assert service.proc is not None
            out[name] = (tree_cpu_ms(service.proc.pid), statements(self.client, service.url))
        out["redis-server"] = (servers_cpu_ms("redis-server"), None)
        out["postgres"] = (servers_cpu_ms("postgres"), None)
        return out

    @staticmethod
    def per(
        before: dict[str, tuple[float, float | None]],
        after: dict[str, tuple[float, float | None]],
        n: int,
    ) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for name in after:
            cpu0, sql0 = before[name]
            cpu1, sql1 = after[name]
            out[name] = {
                "cpu_ms": round((cpu1 - cpu0) / n, 3),
                "sql": None if sql0 is None or sql1 is None else round((sql1 - sql0) / n, 3),
            }
        return out


# --- Redis: the groups' progress -----------------------------------------------------------


def entry_ms(entry_id: str | bytes) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def entry_key(entry_id: str | bytes) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, seq = text.split("-", 1)
    return int(ms), int(seq)


def groups_idle(r: redis.Redis, streams: dict[str, Iterable[str]]) -> bool:
    """Every group has read everything of its stream and acknowledged it."""
    for stream, wanted in streams.items():
        try:
            last = r.xinfo_stream(stream)["last-generated-id"]
            groups = {g["name"].decode(): g for g in r.xinfo_groups(stream)}
        except redis.ResponseError:
            return False
        for group in wanted:
            found = groups.get(group)
            if found is None or found["pending"]:
                return False
            if entry_key(found["last-delivered-id"]) < entry_key(last):
                return False
    return True


def applied_watermark(r: redis.Redis, stream: str, group: str) -> tuple[int, int]:
    """Every entry of ``stream`` up to this id is acknowledged by ``group`` (applied)."""
    found = next(g for g in r.xinfo_groups(stream) if g["name"].decode() == group)
    delivered = entry_key(found["last-delivered-id"])
    if not found["pending"]:
        return delivered
    summary = r.xpending(stream, group)
    if not summary["pending"]:  # acknowledged meanwhile: everything delivered is applied
        return delivered
    oldest = entry_key(summary["min"])
    return min(delivered, (oldest[0], oldest[1] - 1) if oldest[1] else (oldest[0] - 1, 1 << 62))


# --- phases --------------------------------------------------------------------------------


def transport(url: str, sample: list[dict[str, str]], n: int) -> dict[str, float]:
    """Raw Redis stream throughput on the same server: pipelined XADD, XREADGROUP + XACK."""
    r = redis.Redis.from_url(url)
    stream = "bench.transport"
    r.delete(stream)
    started = time.perf_counter()
    for start in range(0, n, 1000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 1000)):
            pipe.xadd(stream, sample[i % len(sample)])  # type: ignore[arg-type]
        pipe.execute()
    xadd = n / (time.perf_counter() - started)
    r.xgroup_create(stream, "bench", id="0")
    started = time.perf_counter()
    done = 0
    while done < n:
        reply = r.xreadgroup("bench", "c", {stream: ">"}, count=100)
        ids = [i for i, _ in reply[0][1]]
        r.xack(stream, "bench", *ids)
        done += len(ids)
    read = n / (time.perf_counter() - started)
    r.delete(stream)
    r.close()
    return {"xadd_per_s": round(xadd), "read_ack_per_s": round(read)}


def get(client: httpx.Client, url: str) -> Any:
    response = client.get(url, timeout=60)
    response.raise_for_status()
    return response.json()


def wait(what: str, done: Callable[[], bool], timeout: float, poll: float = 0.05) -> float:
    """Seconds until ``done()``; fails after ``timeout``."""
    started = time.perf_counter()
    while not done():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{what}: not done in {timeout:.0f} s")
        time.sleep(poll)
    return time.perf_counter() - started


class Settled:
    """Whether the chain has applied everything: cheap Redis checks first, the services'
    counts (their SQL) at most twice a second and only when Redis looks idle."""

    def __init__(self, client: httpx.Client, suite: Suite, r: redis.Redis, diagnoses: int):
        self.client, self.suite, self.r, self.diagnoses = client, suite, r, diagnoses
        self.last_counts = 0.0
        self.seen: dict[str, Any] = {}

    def __call__(self) -> bool:
        if not groups_idle(self.r, CONSUMERS):
            return False
        if time.perf_counter() - self.last_counts < 0.5:
            return False
        self.last_counts = time.perf_counter()
        d = get(self.client, f"{self.suite.url('diagnostics')}/v1/stats")
        r = get(self.client, f"{self.suite.url('routes')}/v1/stats")
        m = get(self.client, f"{self.suite.url('monitoring')}/v1/stats")
        self.seen = {"diagnostics": d, "routes": r, "monitoring": m}
        return bool(
            d["diagnoses"] == self.diagnoses
            and m["diagnosed"] == self.diagnoses
            and r["routes"] == d["with_deficits"]
            and m["with_route"] == r["routes"]
            and m["supported"] == r["assigned"]
        )


def load_region(client: httpx.Client, suite: Suite, teachers: int) -> dict[str, Any]:
    r = redis.Redis.from_url(suite.redis_url)
    rows = region.generate(teachers=teachers)  # the CLI's demo region, generated untimed
    started = time.perf_counter()
    loaded = region.load(client, suite.url("registries"), rows, suite.admin_key, timeout=1800)
    loaded.raise_for_status()
    load_s = time.perf_counter() - started
    received = loaded.json()["received"]
    last_counts = [0.0]

    def everywhere() -> bool:
        if not groups_idle(r, {Streams.REGISTRY: REGISTRY_GROUPS}):
            return False
        if time.perf_counter() - last_counts[0] < 0.5:
            return False
        last_counts[0] = time.perf_counter()
        d = get(client, f"{suite.url('diagnostics')}/v1/stats")
        ro = get(client, f"{suite.url('routes')}/v1/stats")
        m = get(client, f"{suite.url('monitoring')}/v1/stats")
        return bool(
            d["teachers"] == ro["teachers"] == m["teachers"] == received["teachers"]
            and ro["methodists"] == received["methodists"]
            and ro["programs"] == received["programs"]
        )

    propagation_s = wait("registries → read models", everywhere, 1800)
    entries = r.xlen(Streams.REGISTRY)
    r.close()
    return {
        "teachers": received["teachers"],
        "registry_events": entries,
        "load_s": round(load_s, 2),
        "propagation_s": round(propagation_s, 2),
        "teachers_per_s": round(received["teachers"] / propagation_s),
    }


def campaign(kind: str) -> dict[str, Any]:
    required = [i.value for i in Instrument] if kind == "full" else ["self_diagnosis"]
    return {
        **demo.CAMPAIGN,
        "campaign_id": f"bench-{kind}",
        "name": f"Нагрузочная кампания ({kind})",
        "required": required,
    }


def entries_for(teacher_ids: list[str], kind: str) -> list[list[dict[str, str]]]:
    """Per teacher, the entry fields of its results (the campaign's instruments)."""
    out = []
    for start in range(0, len(teacher_ids), 1000):
        chunk = teacher_ids[start : start + 1000]
        fields = demo.result_entries(chunk, campaign_id=f"bench-{kind}")
        per = demo.RESULTS_PER_TEACHER
        for i, _ in enumerate(chunk):
            mine = [f for _, f in fields[i * per : (i + 1) * per]]
            if kind == "one":
                mine = [f for f in mine if '"instrument":"self_diagnosis"' in f["data"]]
            out.append(mine)
    return out


def publish(r: redis.Redis, per_teacher: list[list[dict[str, str]]]) -> None:
    batch: list[dict[str, str]] = []
    for fields in per_teacher:
        batch.extend(fields)
        if len(batch) >= 1000:
            pipe = r.pipeline(transaction=False)
            for f in batch:
                pipe.xadd(Streams.RESULTS_INBOUND, f)  # type: ignore[arg-type]
            pipe.execute()
            batch = []
    if batch:
        pipe = r.pipeline(transaction=False)
        for f in batch:
            pipe.xadd(Streams.RESULTS_INBOUND, f)  # type: ignore[arg-type]
        pipe.execute()


def burst(
    client: httpx.Client, suite: Suite, per_teacher: list[list[dict[str, str]]], done_before: int
) -> dict[str, Any]:
    r = redis.Redis.from_url(suite.redis_url)
    meters = Meters(client, suite)
    before = meters.read()
    n = len(per_teacher)
    results = sum(len(f) for f in per_teacher)
    started = time.perf_counter()
    publish(r, per_teacher)
    published_s = time.perf_counter() - started
    settled = Settled(client, suite, r, done_before + n)
    wait("burst settled", settled, 3600)
    seconds = time.perf_counter() - started
    after = meters.read()
    r.close()
    return {
        "diagnoses": n,
        "results": results,
        "publish_s": round(published_s, 2),
        "seconds": round(seconds, 2),
        "diagnoses_per_s": round(n / seconds, 1),
        "results_per_s": round(results / seconds, 1),
        "per_diagnosis": Meters.per(before, after, n),
        "routes": settled.seen["routes"]["routes"],
        "queued": settled.seen["routes"]["unassigned"],
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "n": len(ordered)}


def latency(
    client: httpx.Client,
    suite: Suite,
    per_teacher: list[tuple[str, list[dict[str, str]]]],
    rate: float,
    done_before: int,
) -> dict[str, Any]:
    """From each teacher's last XADD to its route drafted and to monitoring's application."""
    r = redis.Redis.from_url(suite.redis_url)
    wanted = {teacher_id for teacher_id, _ in per_teacher}
    last_xadd: dict[str, int] = {}
    drafted: dict[str, int] = {}
    seated: dict[str, tuple[int, int]] = {}  # the teacher's routes.methodist.* entry id
    applied: dict[str, int] = {}
    stop = threading.Event()
    start_id = r.xinfo_stream(Streams.ROUTES)["last-generated-id"].decode()

    def read_routes() -> None:
        reader = redis.Redis.from_url(suite.redis_url)
        last = start_id
        while not stop.is_set():
            reply = reader.xread({Streams.ROUTES: last}, count=1000, block=100)
            for _, items in reply or []:
                for entry_id, fields in items:
                    last = entry_id.decode()
                    subject = fields.get(b"subject", b"").decode()
                    type_ = fields.get(b"type", b"").decode()
                    if subject not in wanted:
                        continue
                    if type_ == "routes.route.drafted":
                        drafted.setdefault(subject, entry_ms(entry_id))
                    elif type_.startswith("routes.methodist."):
                        seated.setdefault(subject, entry_key(entry_id))
        reader.close()

    def watch_monitoring() -> None:
        watcher = redis.Redis.from_url(suite.redis_url)
        while not stop.is_set():
            now = int(time.time() * 1000)
            mark = applied_watermark(watcher, Streams.ROUTES, "monitoring")
            for teacher_id, key in list(seated.items()):
                if teacher_id not in applied and key <= mark:
                    applied[teacher_id] = now
            time.sleep(0.02)
        watcher.close()

    threads = [threading.Thread(target=read_routes), threading.Thread(target=watch_monitoring)]
    for thread in threads:
        thread.start()
    try:
        started = time.perf_counter()
        for i, (teacher_id, fields) in enumerate(per_teacher):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pipe = r.pipeline(transaction=False)
            for f in fields:
                pipe.xadd(Streams.RESULTS_INBOUND, f)  # type: ignore[arg-type]
            last_xadd[teacher_id] = entry_ms(pipe.execute()[-1])
        achieved = len(per_teacher) / (time.perf_counter() - started)
        wait("latency phase settled", Settled(client, suite, r, done_before + len(wanted)), 1800)
        wait("last applications seen", lambda: set(seated) <= set(applied), 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        r.close()
    to_route = [drafted[t] - last_xadd[t] for t in drafted]
    to_monitoring = [applied[t] - last_xadd[t] for t in applied]
    return {
        "rate": rate,
        "achieved_rate": round(achieved, 1),
        "teachers": len(per_teacher),
        "with_route": len(drafted),
        "xadd_to_route_drafted_ms": percentiles(to_route),
        "xadd_to_monitoring_applied_ms": percentiles(to_monitoring),
    }


def kpis(client: httpx.Client, suite: Suite) -> dict[str, float]:
    url = f"{suite.url('monitoring')}/v1/kpis"

    def timed() -> float:
        started = time.perf_counter()
        response = client.get(url, timeout=600)
        response.raise_for_status()
        return round((time.perf_counter() - started) * 1000, 1)

    first = timed()
    warm = statistics.median([timed() for _ in range(5)])
    suite.services["monitoring"].stop()
    suite.start(("monitoring",))
    after_restart = timed()
    return {"first_ms": first, "warm_ms": warm, "after_restart_ms": after_restart}


# --- one run -------------------------------------------------------------------------------


def databases(kind: str, server: Any) -> dict[str, str]:
    if kind == "sqlite":
        return {}
    import infra  # tests/infra.py: the same servers the tests start

    return {
        name: asyncio.run(server.create_database(infra.unique_database_name(f"bench_{name}")))
        for name in SERVICES
    }


def run_once(args: argparse.Namespace, plan: dict[str, Any], server: Any) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="iomflow-bench-chain-"))
    local = LocalRedis(work / "redis")
    suite: Suite | None = None
    try:
        url = local.start()
        suite = Suite(
            work,
            url,
            databases(args.database, server),
            extra_env={
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(args.sample),
                **dict(item.split("=", 1) for item in args.env),
            },
        )
        suite.start()
        out: dict[str, Any] = {}
        with httpx.Client() as client:
            out["transport"] = transport(url, plan["sample"], args.transport_entries)
            say(f"transport: {out['transport']}")
            out["region"] = load_region(client, suite, args.teachers)
            say(f"region: {out['region']}")
            opened = client.post(
                f"{suite.url('diagnostics')}/v1/campaigns",
                json=campaign(args.campaign),
                headers={"Authorization": f"Bearer {suite.admin_key}"},
                timeout=30,
            )
            opened.raise_for_status()
            out["burst"] = burst(client, suite, plan["burst"], 0)
            say(f"burst: {out['burst']}")
            if plan["latency"]:
                out["latency"] = latency(
                    client, suite, plan["latency"], args.rate, len(plan["burst"])
                )
                say(f"latency: {out['latency']}")
            out["kpis"] = kpis(client, suite)
            say(f"kpis: {out['kpis']}")
            out["rss_mb"] = {}
            for name, service in suite.services.items():
                assert service.proc is not None
                now, peak = rss_mb(service.proc.pid)
                out["rss_mb"][name] = {"now": round(now), "peak": round(peak)}
            say(f"rss: {out['rss_mb']}")
            burst_results = out["burst"]["results_per_s"]
            out["ratio"] = {
                "results_to_read_ack": round(burst_results / out["transport"]["read_ack_per_s"], 3),
                "results_to_xadd": round(burst_results / out["transport"]["xadd_per_s"], 3),
            }
        return out
    finally:
        if suite is not None:
            suite.stop()
        local.stop()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def median_of(runs: list[dict[str, Any]]) -> Any:
    """The median of every numeric leaf over the runs (same shape as one run)."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in runs if isinstance(r, dict) and k in r]) for k in first}
    numbers = [r for r in runs if isinstance(r, int | float) and not isinstance(r, bool)]
    if len(numbers) == len(runs):
        return round(statistics.median(numbers), 3)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--teachers", type=int, default=40_000, help="the region's size")
    parser.add_argument("--diagnoses", type=int, default=10_000, help="teachers in the burst")
    parser.add_argument("--campaign", choices=("full", "one"), default="full")
    parser.add_argument("--rate", type=float, default=100.0, help="latency phase: teachers/s")
    parser.add_argument("--latency-s", type=float, default=30.0, help="latency phase length")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=float, default=0.01, help="trace sampling ratio")
    parser.add_argument("--transport-entries", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep each run's directory")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every service (e.g. IOMFLOW_BATCH_SIZE=500); repeatable",
    )
    args = parser.parse_args()

    latency_n = int(args.rate * args.latency_s)
    if args.diagnoses + latency_n > args.teachers:
        parser.error("--diagnoses plus rate × latency-s teachers must fit in --teachers")
    ids = [f"t-{n:06d}" for n in range(1, args.teachers + 1)]  # the demo region's ids
    started = time.perf_counter()
    burst_ids = ids[: args.diagnoses]
    latency_ids = ids[len(ids) - latency_n :]
    plan = {
        "burst": entries_for(burst_ids, args.campaign),
        "latency": list(zip(latency_ids, entries_for(latency_ids, args.campaign), strict=True)),
    }
    plan["sample"] = [f for fields in plan["burst"][:2000] for f in fields]
    say(f"results generated in {time.perf_counter() - started:.1f} s")

    server = None
    if args.database == "postgresql":
        import infra

        server = infra.start_postgres()
        say(f"PostgreSQL: {server.describe()}")
    runs = []
    try:
        for n in range(args.runs):
            say(f"run {n + 1} of {args.runs} ({args.database}, campaign {args.campaign})")
            runs.append(run_once(args, plan, server))
    finally:
        if server is not None:
            server.stop()
    summary = median_of(runs)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(json.dumps({"config": config, "median": summary}, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(
            json.dumps({"config": config, "runs": runs, "median": summary}, indent=2),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
