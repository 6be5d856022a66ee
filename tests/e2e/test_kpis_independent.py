"""The KPIs of the demo region, computed a second time straight from the registries',
diagnostics' and routes' databases, agree with what monitoring shows (the issue's
acceptance): region and every municipality, value to 0.1, numerator and population.

Monitoring builds its numbers from events; this test reads the services' own tables with
plain ``sqlite3`` and follows the KPI table of the domain (``shared/DOMAIN.md``), so the two
only meet if every event was turned into the right fact."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from e2e.test_chain import get, settled, start_suite, wait_until
from iomflow.cli.demo import CAMPAIGN_ID, result_entries
from iomflow.cli.launcher import Suite

REGION_TEACHERS = 600
DIAGNOSED = 150  # every fourth teacher, so that every municipality has some
METHODIST_CAPACITY = 12  # 8 methodists: fewer seats than routes
OPEN = ("drafted", "agreed", "active")
KPIS = (
    "diagnosed_share",
    "route_share",
    "methodist_support_share",
    "methodist_load_max",
    "tutor_support_share",
    "young_supported_share",
    "mentoring_orgs_share",
)
# What each KPI counts, as this test reads the domain's KPI table; the catalogue must say
# the same, or the independent computation below no longer computes the same KPI.
CATALOGUE = {
    "diagnosed_share": ("share", "diagnosed", "yearly", {"of": "teachers"}),
    "route_share": ("share", "route", "yearly", {"of": "teachers"}),
    "methodist_support_share": (
        "share",
        "support",
        "current",
        {"of": "teachers", "holding": "route"},
    ),
    "methodist_load_max": (
        "max_per_holder",
        "support",
        "current",
        {"of": "teachers", "where": {"audience": "general"}},
    ),
    "tutor_support_share": ("share", "tutor", "cumulative", {"of": "teachers"}),
    "young_supported_share": (
        "share",
        "mentored",  # or a methodist's support, or a route (``also``)
        "cumulative",
        {"of": "teachers", "where": {"young": True}},
    ),
    "mentoring_orgs_share": ("share", "mentoring_org", "current", {"of": "organizations"}),
}

Triple = tuple[float | None, int, int]
"""A KPI at one level: value rounded to 0.1, numerator, population."""


@pytest.fixture
def region(clean_redis: str, tmp_path: Path) -> Iterator[Suite]:
    """The suite on SQLite files with the generated demo region of ``REGION_TEACHERS``."""
    suite = start_suite(tmp_path, clean_redis, demo_teachers=REGION_TEACHERS)
    try:
        yield suite
    finally:
        suite.stop()


def test_kpis_computed_from_the_services_databases_match_monitoring(
    region: Suite, clean_redis: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"  # each service's SQLite file: IOMFLOW_DATA_DIR/<service>.db
    admin = {"Authorization": f"Bearer {region.admin_key}"}
    teachers = [
        row[0]
        for row in query(
            data / "registries.db",
            "SELECT record_id FROM records WHERE register = 'teachers' ORDER BY record_id",
        )
    ]
    assert len(teachers) == REGION_TEACHERS
    chosen = teachers[:: REGION_TEACHERS // DIAGNOSED][:DIAGNOSED]

    # 1. Methodists with fewer seats than there will be routes: some routes wait for one.
    registries = region.url("registries")
    methodists = query(
        data / "registries.db", "SELECT data FROM records WHERE register = 'methodists'"
    )
    with httpx.Client(headers=admin, timeout=30) as client:
        for (document,) in methodists:
            record = {**json.loads(document), "capacity": METHODIST_CAPACITY}
            ok(
                client.put(
                    f"{registries}/v1/registers/methodists/records/{record['methodist_id']}",
                    json=record,
                )
            )
    wait_until(
        lambda: (
            {c for (c,) in query(data / "routes.db", "SELECT capacity FROM methodists")}
            == {METHODIST_CAPACITY}
        ),
        "the new capacities to reach routes",
        within=30,
    )

    # 2. Results for 150 teachers as an outside publisher writes them; the chain drafts routes.
    publisher = redis.Redis.from_url(clean_redis)
    pipe = publisher.pipeline(transaction=False)
    for stream, fields in result_entries(chosen, campaign_id=CAMPAIGN_ID):
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    pipe.execute()
    wait_until(settled(region, DIAGNOSED), "the chain to settle", within=150)

    # 3. Life goes on: what each KPI must follow, and what it must not count.
    routes_url, diag_url = region.url("routes"), region.url("diagnostics")
    open_routes = [r for r in routes_of(data) if r["status"] in OPEN]
    assert len(open_routes) >= 20, open_routes
    managers = {
        row[0] for row in query(data / "routes.db", "SELECT teacher_id FROM management_members")
    }
    with httpx.Client(headers=admin, timeout=30) as client:
        # Diagnoses cancelled: never diagnosed, and their routes were never routes.
        for route in open_routes[0:3]:
            ok(
                client.post(
                    f"{diag_url}/v1/diagnoses/{route['diagnosis_id']}/cancel",
                    json={"reason": "ошибка в данных"},
                )
            )
        # Routes cancelled by the operator: drafted this year all the same, no longer open.
        for route in open_routes[3:6]:
            ok(
                client.post(
                    f"{routes_url}/v1/routes/{route['route_id']}/cancel",
                    json={"reason": "педагог отказался"},
                )
            )
        # Routes agreed by all three parties: still open (agreed or active). Those agreed carry
        # a tutored federal-registry program, so the tutor KPI has something to count.
        federal = federal_programs(data / "registries.db")
        agreed = 0
        for route in open_routes[6:]:
            member = manager_of(data, route["organization_id"], route["teacher_id"])
            if route["methodist_id"] is None or member is None:
                continue
            if not tutored_federal(route, federal):
                continue
            for role, by in (
                ("teacher", route["teacher_id"]),
                ("methodist", route["methodist_id"]),
                ("management", member),
            ):
                ok(
                    client.post(
                        f"{routes_url}/v1/routes/{route['route_id']}/approvals",
                        json={"role": role, "by": by},
                    )
                )
            agreed += 1
            if agreed == 2:
                break
        assert agreed == 2
        # Teachers leave the registry: one with an open route, one never diagnosed; neither
        # named by another register's record (a contest entry, a team, a pair, a role: the
        # registries refuse to delete a record in use).
        kept = managers | named_by_records(data / "registries.db", "teachers")
        leaving = [
            next(r["teacher_id"] for r in reversed(open_routes) if r["teacher_id"] not in kept),
            next(t for t in reversed(teachers) if t not in chosen and t not in kept),
        ]
        for teacher_id in leaving:
            ok(client.delete(f"{registries}/v1/registers/teachers/records/{teacher_id}"))
        # A mentor registered at an organisation that had none.
        mentor_orgs = [
            row[0]
            for row in query(
                data / "registries.db",
                "SELECT organization_id FROM records WHERE register = 'mentors'",
            )
        ]
        with_mentor = set(mentor_orgs) | paired_orgs(data / "registries.db")
        pairs = len(
            query(
                data / "registries.db",
                "SELECT record_id FROM records WHERE register = 'mentoring_pairs'",
            )
        )
        orgs = [
            row[0]
            for row in query(
                data / "registries.db",
                "SELECT record_id FROM records WHERE register = 'organizations' ORDER BY record_id",
            )
        ]
        newcomer = next(o for o in orgs if o not in with_mentor)
        ok(
            client.post(
                f"{registries}/v1/registers/mentors/records",
                json={
                    "mentor_id": "mnt-e2e-1",
                    "organization_id": newcomer,
                    "subjects": [],
                    "capacity": 2,
                    "personal": {"full_name": "Петрова Анна Сергеевна"},
                },
            )
        )

    def after() -> bool:
        d = get(f"{diag_url}/v1/stats")
        r = get(f"{routes_url}/v1/stats")
        m = get(f"{region.url('monitoring')}/v1/stats")
        return (
            d["diagnoses"] == m["diagnosed"] == DIAGNOSED - 3
            and r.get("routes_cancelled") == 3 + 3 + 1
            and m["teachers"] == REGION_TEACHERS - 2
            and m["with_route"] == r["routes"]
            and m["supported"] == r["assigned"]
            # one per mentor and one per pair
            and m.get("facts_mentoring_org") == len(mentor_orgs) + 1 + pairs
        )

    wait_until(after, "every change to reach monitoring", within=60)

    # 4. The same KPIs, independently, and monitoring's answer once it has seen it all.
    expected = independent(data, date.today())
    wrong = disagreements(region, expected)
    assert not wrong, "\n".join(wrong)

    # The scenario exercised what it meant to: nothing trivially 0 or 100 where it matters.
    region_values = expected.values[None]
    assert region_values["diagnosed_share"][1] == DIAGNOSED - 3 - 1
    assert region_values["route_share"][1] > 0
    assert 0 < region_values["methodist_support_share"][2] < region_values["route_share"][1]
    assert region_values["methodist_load_max"] == (float(METHODIST_CAPACITY), METHODIST_CAPACITY, 8)
    assert (
        0
        < region_values["methodist_support_share"][1]
        < region_values["methodist_support_share"][2]
    )
    assert region_values["tutor_support_share"][1] > 0
    assert region_values["young_supported_share"][2] > 0
    assert 0 < region_values["mentoring_orgs_share"][1] < region_values["mentoring_orgs_share"][2]


def test_an_organisation_whose_only_mentor_left_no_longer_counts_as_mentoring(
    region: Suite, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    registries = region.url("registries")
    mentors = [
        json.loads(document)
        for (document,) in query(
            data / "registries.db", "SELECT data FROM records WHERE register = 'mentors'"
        )
    ]
    per_org: dict[str, list[str]] = defaultdict(list)
    for mentor in mentors:
        per_org[mentor["organization_id"]].append(mentor["mentor_id"])
    paired = paired_orgs(data / "registries.db")  # they run a program without a mentor too
    # a mentor of a pair (even one ended) cannot leave the register: its pairs name it
    in_pairs = paired_orgs(data / "registries.db", ever=True)
    alone = next(ids[0] for o, ids in per_org.items() if len(ids) == 1 and o not in in_pairs)
    orgs = query(
        data / "registries.db",
        "SELECT record_id FROM records WHERE register = 'organizations' ORDER BY record_id",
    )
    newcomer = next(o for (o,) in orgs if o not in per_org and o not in paired)
    with httpx.Client(headers={"Authorization": f"Bearer {region.admin_key}"}) as client:
        ok(client.delete(f"{registries}/v1/registers/mentors/records/{alone}"))
        # A later event on the same stream: once monitoring has it, it has the removal too.
        ok(
            client.post(
                f"{registries}/v1/registers/mentors/records",
                json={
                    "mentor_id": "mnt-e2e-1",
                    "organization_id": newcomer,
                    "capacity": 2,
                    "personal": {"full_name": "Петрова Анна Сергеевна"},
                },
            )
        )
    wait_until(
        lambda: (
            get(f"{region.url('monitoring')}/v1/stats").get("facts_mentoring_org", 0)
            >= len(per_org) + 1
        ),
        "the new mentor to reach monitoring",
        within=30,
    )

    expected = independent(data, date.today())
    # one out, one in
    assert expected.values[None]["mentoring_orgs_share"][1] == len(set(per_org) | paired)
    wrong = disagreements(region, expected, ("mentoring_orgs_share",))
    assert not wrong, "\n".join(wrong)


# --- the independent computation -------------------------------------------------------------


def named_by_records(registries: Path, register: str) -> set[str]:
    """Every string value in the records of the registers other than ``register``: what
    they may name of it."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for (document,) in query(registries, "SELECT data FROM records WHERE register != ?", register):
        walk(json.loads(document))
    return found


def paired_orgs(registries: Path, on: date | None = None, ever: bool = False) -> set[str]:
    """The organisations with a mentoring pair lasting on ``on`` (default today); ``ever``:
    with any pair at all."""
    on = on or date.today()
    pairs = [
        json.loads(document)
        for (document,) in query(
            registries, "SELECT data FROM records WHERE register = 'mentoring_pairs'"
        )
    ]
    return {
        p["organization_id"]
        for p in pairs
        if ever
        or (
            date.fromisoformat(p["starts_on"]) <= on
            and (p.get("ends_on") is None or date.fromisoformat(p["ends_on"]) >= on)
        )
    }


@dataclass
class Expected:
    on: date
    values: dict[str | None, dict[str, Triple]]  # None: the region
    counts: dict[str, int]  # the region's counts as monitoring shows them


def independent(data: Path, on: date) -> Expected:
    """The seven KPIs as of ``on`` from the registries', diagnostics' and routes' tables."""
    registries, diagnostics = data / "registries.db", data / "diagnostics.db"
    teachers: dict[str, str] = {}  # teacher -> municipality
    young: set[str] = set()
    general: set[str] = set()  # teachers of general schools («общеобразовательных»)
    for record_id, mun, document in query(
        registries,
        "SELECT record_id, municipality_id, data FROM records WHERE register = 'teachers'",
    ):
        teachers[record_id] = mun
        record = json.loads(document)
        if record.get("audience") == "general":
            general.add(record_id)
        age = years(date.fromisoformat(record["birth_date"]), on)
        experience = max(0, years(date.fromisoformat(record["hire_date"]), on))
        if age < 35 and experience < 3:  # «до 35 лет в первые 3 года работы»
            young.add(record_id)
    organizations = dict(
        query(
            registries,
            "SELECT record_id, municipality_id FROM records WHERE register = 'organizations'",
        )
    )
    mentoring = {
        json.loads(document)["organization_id"]
        for (document,) in query(registries, "SELECT data FROM records WHERE register = 'mentors'")
    }
    # A school's mentoring pairs: the school runs a program while one lasts (to its last
    # day); the mentee of a young teacher's pair is supported from the pair's start.
    pairs = [
        json.loads(document)
        for (document,) in query(
            registries, "SELECT data FROM records WHERE register = 'mentoring_pairs'"
        )
    ]
    started = [p for p in pairs if date.fromisoformat(p["starts_on"]) <= on]
    mentoring |= {
        p["organization_id"]
        for p in started
        if p.get("ends_on") is None or date.fromisoformat(p["ends_on"]) >= on
    }
    paired = {p["mentee_id"] for p in started if p["kind"] == "young_teacher"}
    federal = federal_programs(registries)

    diagnoses = query(
        diagnostics, "SELECT diagnosis_id, teacher_id, status, completed_at FROM diagnoses"
    )
    cancelled = {d for d, _, status, _ in diagnoses if status == "cancelled"}
    diagnosed_ever = {
        t for _, t, status, at in diagnoses if status == "completed" and day(at) <= on
    }
    diagnosed = {t for _, t, status, at in diagnoses if status == "completed" and this_year(at, on)}

    routes = routes_of(data)
    # A route cancelled because its diagnosis was cancelled was never a route.
    real = [
        r for r in routes if not (r["status"] == "cancelled" and r["diagnosis_id"] in cancelled)
    ]
    routed_this_year = {r["teacher_id"] for r in real if this_year(r["created_at"], on)}
    routed_ever = {r["teacher_id"] for r in real if day(r["created_at"]) <= on}
    tutored = {  # from the route's agreement by all three parties
        r["teacher_id"]
        for r in real
        if day(r["created_at"]) <= on
        and r["status"] in ("agreed", "active", "completed")
        and tutored_federal(r, federal)
    }
    open_routes = [r for r in routes if r["status"] in OPEN]
    holding = {r["teacher_id"] for r in open_routes}
    supported = {r["teacher_id"] for r in open_routes if r["methodist_id"]}
    by_methodist: dict[str, set[str]] = defaultdict(set)
    for r in open_routes:
        if r["methodist_id"]:
            by_methodist[r["methodist_id"]].add(r["teacher_id"])

    def share(hits: set[str], population: set[str]) -> Triple:
        hit = len(hits & population)
        return (round(100 * hit / len(population), 1) if population else None, hit, len(population))

    def at_level(mun: str | None) -> dict[str, Triple]:
        staff = {t for t, m in teachers.items() if mun is None or m == mun}
        orgs = {o for o, m in organizations.items() if mun is None or m == mun}
        loads = [len(ts & staff & general) for ts in by_methodist.values() if ts & staff & general]
        most = max(loads, default=0)
        has_load = bool(staff & general) or bool(loads) or mun is None
        return {
            "diagnosed_share": share(diagnosed, staff),
            "route_share": share(routed_this_year, staff),
            "methodist_support_share": share(supported, staff & holding),
            "methodist_load_max": (float(most) if has_load else None, most, len(loads)),
            "tutor_support_share": share(tutored, staff),
            "young_supported_share": share(routed_ever | paired, staff & young),
            "mentoring_orgs_share": share(mentoring, orgs),
        }

    municipalities = set(teachers.values()) | set(organizations.values())
    present = set(teachers)
    return Expected(
        on=on,
        values={None: at_level(None), **{m: at_level(m) for m in municipalities}},
        counts={
            "teachers": len(present),
            "diagnosed": len(diagnosed_ever & present),
            "with_route": len(holding & present),
            "supported": len(supported & present),
        },
    )


def disagreements(suite: Suite, expected: Expected, codes: tuple[str, ...] = KPIS) -> list[str]:
    """Where monitoring's ``/v1/kpis`` differs from ``expected``, level by level (none: they
    agree), once its answer has caught up with the counts (answers are cached a few seconds)."""
    monitoring = suite.url("monitoring")
    catalogue = {k["code"]: k for k in get(f"{monitoring}/v1/catalogue")["kpis"]}
    for code in codes:
        kpi, (measure, fact, accumulation, population) = catalogue[code], CATALOGUE[code]
        assert (kpi["measure"], kpi["numerator"]["fact"], kpi["accumulation"]) == (
            measure,
            fact,
            accumulation,
        ), kpi
        assert not kpi["numerator"]["where"], kpi
        assert {k: v for k, v in kpi["population"].items() if v} == population, kpi

    found: dict[str | None, dict[str, Triple]] = {}

    def caught_up() -> bool:
        answer = get(f"{monitoring}/v1/kpis")
        assert answer["as_of"] == expected.on.isoformat()
        found.clear()
        found[None] = triples(answer["region"]["kpis"])
        for mun in answer["municipalities"]:
            found[mun["municipality_id"]] = triples(mun["kpis"])
        return bool(answer["region"]["counts"] == expected.counts)

    wait_until(caught_up, "monitoring's answer to reflect the changes", within=30)
    if set(found) != set(expected.values):
        return [
            f"levels: monitoring {sorted(map(str, found))}, independently "
            f"{sorted(map(str, expected.values))}"
        ]
    return [
        f"{level or 'region'} {code}: monitoring {found[level][code]}, independently {want}"
        for level, values in expected.values.items()
        for code, want in values.items()
        if code in codes and found[level][code] != want
    ]


# --- helpers ---------------------------------------------------------------------------------


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a service's SQLite file, opened read-only while the service runs."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def federal_programs(registries: Path) -> set[str]:
    return {
        record_id
        for record_id, document in query(
            registries, "SELECT record_id, data FROM records WHERE register = 'programs'"
        )
        if json.loads(document).get("federal_registry")
    }


def tutored_federal(route: dict[str, Any], federal: set[str]) -> bool:
    """«Тьюторское сопровождение» of a federal-registry program somewhere in the route."""
    return any(
        s["kind"] == "program" and s.get("tutor_id") and s.get("program_id") in federal
        for s in route["steps"]
    )


def routes_of(data: Path) -> list[dict[str, Any]]:
    columns = (
        "route_id",
        "diagnosis_id",
        "teacher_id",
        "organization_id",
        "status",
        "methodist_id",
        "steps",
        "created_at",
    )
    rows = query(data / "routes.db", f"SELECT {', '.join(columns)} FROM routes ORDER BY route_id")
    out = [dict(zip(columns, row, strict=True)) for row in rows]
    for route in out:
        route["steps"] = json.loads(route["steps"])
    return out


def manager_of(data: Path, organization_id: str, teacher_id: str) -> str | None:
    """A member of the school's management team other than the teacher."""
    rows = query(
        data / "routes.db",
        "SELECT member_id, teacher_id FROM management_members "
        "WHERE organization_id = ? ORDER BY member_id",
        organization_id,
    )
    return next((member for member, teacher in rows if teacher != teacher_id), None)


def ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, (response.request.url, response.status_code, response.text)
    return response.json()


def years(start: date, end: date) -> int:
    return end.year - start.year - ((end.month, end.day) < (start.month, start.day))


def day(stamp: str) -> date:
    return datetime.fromisoformat(stamp).date()


def this_year(stamp: str, on: date) -> bool:
    return day(stamp).year == on.year and day(stamp) <= on


def triples(kpis: list[dict[str, Any]]) -> dict[str, Triple]:
    return {
        k["code"]: (k["value"], k["numerator"], k["population"]) for k in kpis if k["code"] in KPIS
    }
