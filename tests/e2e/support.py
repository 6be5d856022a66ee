"""Helpers of the acceptance tests of issue 16 (the support outside a route): one suite per
database for a whole module, acting through the services' HTTP APIs and the inbound stream,
and reading monitoring's KPIs and alerts until they show a fact.

Tests share the suite, so each one measures a KPI before it acts and asserts how far it
moved, on teachers and organisations no other test touches (``Region.pick``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import infra
import pytest
import redis

from e2e.test_chain import REGION, start_suite
from iomflow.cli.demo import CAMPAIGN_ID, results_for
from iomflow.cli.launcher import Suite
from iomflow.shared import wire
from iomflow.shared.contracts import Instrument, ItemScore, ResultSubmitted, Streams, new_event

SERVICES = ("registries", "diagnostics", "routes", "monitoring")
WITHIN = 90.0
"""Seconds a fact gets to travel from an API to monitoring's answer (generous; no timing is
asserted)."""


def shared_suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Suite]:
    """The body of a module-scoped fixture parametrized ``sqlite``/``postgresql``: the four
    services on a flushed real Redis and on SQLite files or fresh PostgreSQL databases (dropped
    afterwards), the region loaded and the demo campaign open (``start_suite``)."""
    server: infra.RedisServer = request.getfixturevalue("redis_server")
    with redis.Redis.from_url(server.url) as client:
        client.flushall()
    databases: dict[str, str] = {}
    names: list[str] = []
    postgres: infra.PostgresServer | None = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres_server")
        for service in SERVICES:
            name = infra.unique_database_name(f"e2e16_{service}")
            names.append(name)
            databases[service] = asyncio.run(postgres.create_database(name))
    suite = start_suite(
        tmp_path_factory.mktemp(f"support-{request.param}"),
        server.url,
        databases,
        env={"IOMFLOW_ALERT_CHECK_INTERVAL_S": "1"},  # alerts detected within a second
    )
    try:
        yield suite
    finally:
        suite.stop()
        if postgres is not None:
            for name in names:
                asyncio.run(postgres.drop_database(name))


# --- the region, as the tests pick from it -----------------------------------------------------


def years(start: date, end: date) -> int:
    return end.year - start.year - ((end.month, end.day) < (start.month, start.day))


class Region:
    """The loaded region (``REGION``), and who is already taken by a test of the module."""

    def __init__(self) -> None:
        self.rows = REGION
        self.organizations = {o["organization_id"]: o for o in REGION["organizations"]}
        self.teachers = {t["teacher_id"]: t for t in REGION["teachers"]}
        # What the region already holds of issue 16's registers is no test's to take: its
        # teams' schools and members, its pairs' schools and people, its experts, entrants and
        # practices' authors.
        self.taken: set[str] = set()
        for team in REGION.get("school_teams", []):
            self.taken |= {team["organization_id"], *team["members"]}
        for pair in REGION.get("mentoring_pairs", []):
            self.taken |= {pair["organization_id"], pair["mentee_id"]}
        for register in ("expert_roles", "contest_entries"):
            self.taken |= {row["teacher_id"] for row in REGION.get(register, [])}
        self.taken |= {p["author_id"] for p in REGION["practices"] if p.get("author_id")}

    def pick(self, check: Callable[[dict[str, Any]], bool], register: str = "teachers") -> Any:
        """The first row of ``register`` that passes ``check`` and no test took yet."""
        key = f"{register.removesuffix('s')}_id"  # teachers: teacher_id
        for row in self.rows[register]:
            ident = row[key]
            if ident not in self.taken and check(row):
                self.taken.add(ident)
                return row
        pytest.fail(f"the region has no free row of {register} for this test")

    def teacher(self, check: Callable[[dict[str, Any]], bool] = lambda t: True) -> Any:
        """A free teacher of a general school who manages nothing (one a route is drafted for
        by the plain rules)."""
        return self.pick(
            lambda t: t["audience"] == "general" and not t["is_manager"] and check(t), "teachers"
        )

    def young(self, row: dict[str, Any], on: date | None = None) -> bool:
        """«до 35 лет в первые 3 года работы»"""
        on = on or date.today()
        birth, hired = date.fromisoformat(row["birth_date"]), date.fromisoformat(row["hire_date"])
        return years(birth, on) < 35 and years(hired, on) < 3

    def staff_of(self, organization_id: str) -> list[str]:
        return [
            t["teacher_id"]
            for t in self.rows["teachers"]
            if t["organization_id"] == organization_id and t["teacher_id"] not in self.taken
        ]

    def program_competencies(self) -> set[str]:
        return {c for p in self.rows["programs"] for c in p.get("competencies", [])}


# --- acting --------------------------------------------------------------------------------


@dataclass
class Api:
    """The suite's HTTP APIs as the operator (the admin key), and its inbound stream."""

    suite: Suite
    client: httpx.Client = field(init=False)
    publisher: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {self.suite.admin_key}"}, timeout=60
        )
        self.publisher = redis.Redis.from_url(self.suite.redis_url)

    def close(self) -> None:
        self.client.close()
        self.publisher.close()

    def url(self, service: str, path: str) -> str:
        return f"{self.suite.url(service)}{path}"

    def call(
        self,
        method: str,
        service: str,
        path: str,
        status: int | tuple[int, ...] = (200, 201),
        **kwargs: Any,
    ) -> Any:
        response = self.client.request(method, self.url(service, path), **kwargs)
        expected = (status,) if isinstance(status, int) else status
        assert response.status_code in expected, (
            f"{method} {service}{path}: {response.status_code} {response.text[:3000]}"
        )
        return response.json() if response.content else None

    def get(self, service: str, path: str, **params: Any) -> Any:
        return self.call("GET", service, path, 200, params=params)

    def post(
        self, service: str, path: str, body: Any, status: int | tuple[int, ...] = (200, 201)
    ) -> Any:
        return self.call("POST", service, path, status, json=body)

    def record(self, register: str, row: dict[str, Any]) -> Any:
        """A new record of a register, through the registries' generic API."""
        return self.post("registries", f"/v1/registers/{register}/records", row)

    def xadd(self, events: list[Any]) -> None:
        """Events as an outside publisher writes them to their inbound stream."""
        pipe = self.publisher.pipeline(transaction=False)
        for event in events:
            pipe.xadd(Streams.RESULTS_INBOUND, wire.encode(event))  # type: ignore[arg-type]
        pipe.execute()

    # --- the diagnosis a test needs -------------------------------------------------------

    def diagnose(
        self,
        teacher_id: str,
        low: tuple[str, ...] | None = None,
        burnout: float | None = None,
    ) -> None:
        """The teacher's demo results on the inbound stream; with ``low``, every competency
        scored high but those (a deficit in each of them and no other); with ``burnout``,
        the burnout survey's scales at that score."""
        events = [
            new_event(
                "diagnostics.result.submitted",
                crafted(result, low, burnout),
                source="e2e-support-publisher",
                subject=teacher_id,
            )
            for result in results_for(teacher_id, CAMPAIGN_ID)
        ]
        self.xadd(events)

    def route_of(self, teacher_id: str) -> dict[str, Any]:
        """The teacher's route, once routes has drafted it."""
        found: list[dict[str, Any]] = []

        def drafted() -> bool:
            found[:] = self.get("routes", f"/v1/teachers/{teacher_id}/routes")["items"]
            return bool(found)

        wait_until(drafted, f"a route for {teacher_id}")
        return found[-1]

    def new_teachers(self, organizations: list[dict[str, Any]]) -> list[str]:
        """A young teacher (26, in the first year of work) newly recorded at each of these
        organisations, once diagnostics, routes and monitoring all know them."""

        def known() -> tuple[int, ...]:
            return tuple(self.get(s, "/v1/stats")["teachers"] for s in SERVICES[1:])

        before = known()
        on = today()
        ids = []
        for n, org in enumerate(organizations):
            teacher_id = token("t-e2e")
            ids.append(teacher_id)
            self.record(
                "teachers",
                {
                    "teacher_id": teacher_id,
                    "organization_id": org["organization_id"],
                    "municipality_id": org["municipality_id"],
                    "position": "учитель",
                    "audience": "general",
                    "subjects": ["математика"],
                    "category": "none",
                    "birth_date": on.replace(year=on.year - 26, day=1).isoformat(),
                    "hire_date": (on - timedelta(days=200 + n)).isoformat(),
                    "is_manager": False,
                    "expert": False,
                    "personal": {"full_name": f"Молодова Анна {('Сергеевна', 'Петровна')[n % 2]}"},
                },
            )
        want = tuple(b + len(ids) for b in before)
        wait_until(lambda: known() == want, f"{len(ids)} new teachers to reach every service")
        return ids

    def agree(self, route: dict[str, Any], region: Region) -> dict[str, Any]:
        """The route agreed by its three parties: the teacher, its methodist and a member of
        the school's management team (an attendance completes steps of agreed routes only)."""
        assigned: dict[str, Any] = {}

        def has_methodist() -> bool:
            assigned.update(self.get("routes", f"/v1/routes/{route['route_id']}"))
            return bool(assigned.get("methodist_id"))

        wait_until(has_methodist, f"a methodist for route {route['route_id']}")
        member = next(
            m["member_id"]
            for m in region.rows["management_teams"]
            if m["organization_id"] == route["organization_id"]
            and m["teacher_id"] != route["teacher_id"]
        )
        for role, by in (
            ("teacher", route["teacher_id"]),
            ("methodist", assigned["methodist_id"]),
            ("management", member),
        ):
            self.post(
                "routes", f"/v1/routes/{route['route_id']}/approvals", {"role": role, "by": by}
            )
        agreed = self.get("routes", f"/v1/routes/{route['route_id']}")
        assert agreed["status"] in ("agreed", "active"), agreed
        return dict(agreed)

    # --- reading monitoring ---------------------------------------------------------------

    def kpi(self, code: str) -> dict[str, Any]:
        """The region's KPI ``code`` as monitoring answers it now."""
        kpis = self.get("monitoring", "/v1/kpis")["region"]["kpis"]
        found = [k for k in kpis if k["code"] == code]
        assert found, f"monitoring has no KPI {code}: {sorted(k['code'] for k in kpis)}"
        return dict(found[0])

    def settled_kpi(self, code: str) -> dict[str, Any]:
        """The region's KPI ``code`` once monitoring's answer has every diagnosis and route
        there is (a baseline that a late diagnosis of an earlier test cannot move)."""
        found: dict[str, Any] = {}

        def caught_up() -> bool:
            diagnoses = self.get("diagnostics", "/v1/stats")["diagnoses"]
            routes = self.get("routes", "/v1/stats")["routes"]
            answer = self.get("monitoring", "/v1/kpis")["region"]
            counts = answer["counts"]
            found.clear()
            found.update(next((k for k in answer["kpis"] if k["code"] == code), {}))
            return bool(found) and (counts["diagnosed"], counts["with_route"]) == (
                diagnoses,
                routes,
            )

        wait_until(caught_up, f"monitoring's {code} to have every diagnosis and route")
        return found

    def wait_kpi(
        self, code: str, check: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The KPI once ``check`` holds for it (else a failure saying its last value)."""
        last: dict[str, Any] = {}

        def holds() -> bool:
            last.clear()
            last.update(self.kpi(code))
            return check(last)

        wait_until(holds, f"{code} to show {what}", last=last)
        return last

    def moved(
        self, code: str, before: dict[str, Any], numerator: int = 0, population: int | None = 0
    ) -> dict[str, Any]:
        """The KPI once its numerator (and population, unless None: a count's) moved by these
        amounts from ``before``."""
        if population is None:
            want: tuple[int, ...] = (before["numerator"] + numerator,)
        else:
            want = (before["numerator"] + numerator, before["population"] + population)
        return self.wait_kpi(
            code,
            lambda k: (k["numerator"], k["population"])[: len(want)] == want,
            f"numerator, population {want} (was {before['numerator']}, {before['population']})",
        )

    def alerts(self, kind: str, status: str = "all") -> list[dict[str, Any]]:
        items = self.get("monitoring", "/v1/alerts", status=status, limit=1000)["items"]
        return [a for a in items if a["kind"] == kind]

    def wait_alert(self, kind: str, about: str, open_: bool = True) -> dict[str, Any]:
        """The alert of ``kind`` whose subject or message names ``about``, once it is open
        (``open_``) or resolved."""
        found: dict[str, Any] = {}

        def there() -> bool:
            for alert in self.alerts(kind):
                if about in alert["subject"] or about in alert["message"]:
                    if (alert["resolved_at"] is None) == open_:
                        found.update(alert)
                        return True
            return False

        state = "open" if open_ else "resolved"
        wait_until(there, f"a {state} {kind} alert about {about}")
        return found


def wait_until(
    check: Callable[[], bool], what: str, within: float = WITHIN, last: Any = None
) -> None:
    import time

    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f"; last: {last}" if last else ""))
        time.sleep(0.3)


def crafted(
    result: ResultSubmitted, low: tuple[str, ...] | None, burnout: float | None
) -> ResultSubmitted:
    """A demo result with its scores set: the ``low`` competencies at the bottom and the
    others at the top, and the burnout scales at ``burnout``."""
    if result.instrument is Instrument.BURNOUT_SURVEY:
        if burnout is None:
            return result
        return result.model_copy(update={"scores": dict.fromkeys(result.scores, burnout)})
    if low is None:
        return result
    if result.items:
        items = [
            ItemScore(
                item=i.item,
                competency=i.competency,
                score=0 if i.competency in low else i.max_score,
                max_score=i.max_score,
            )
            for i in result.items
        ]
        return result.model_copy(update={"items": items})
    scores = {code: 15.0 if code in low else 95.0 for code in result.scores}
    return result.model_copy(update={"scores": scores})


def today() -> date:
    return date.today()


def month_start(on: date) -> date:
    return on.replace(day=1)


def previous_month(on: date) -> date:
    """A day of the month before ``on``'s."""
    return month_start(on) - timedelta(days=1)


def token(prefix: str) -> str:
    return f"{prefix}-{random.Random().getrandbits(32):08x}"


def activity(
    kind: str,
    title: str,
    attendees: list[str],
    level: str = "regional",
    held_on: date | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A body of ``POST /v1/activities``: held today by ЦНППМ unless told otherwise."""
    return {
        "activity_id": token("act-e2e"),
        "kind": kind,
        "title": title,
        "level": level,
        "organiser_id": "cnppm",
        "format": "in_person",
        "held_on": (held_on or today()).isoformat(),
        "hours": 2,
        "competencies": [],
        "themes": [],
        "target": "teachers",
        "attendees": attendees,
        **fields,
    }
