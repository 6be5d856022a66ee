"""No methodist (nor tutor, mentor or internship site) ever exceeds capacity: a property
test over random interleavings of diagnoses, approvals, step completions, cancellations,
the clock, new, changed and removed methodists and operator rebalances, driving the real
use cases (through the stream handlers where routes has one) against a real SQLite
database, and with fewer examples against PostgreSQL.

Consecutive entries of one stream are delivered as the consumer delivers them: as one
batch in one transaction, each run of one type one handler call — so several diagnoses
(of one teacher, too) are drafted by the batch path, each seeing the seats the earlier
ones took.

After every batch and every command the seats must add up: each resource's load is within
its capacity and equals the number of open routes (steps) holding it, no open route is held
by a methodist who left the registry, a teacher has at most one drafted and one active
route, and nobody who could take a waiting route has room for it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import infra
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.routes import domain, handlers, lifecycle, repository, service
from iomflow.routes.ledger import Ledger, ledger_of
from iomflow.shared.contracts import (
    Audience,
    CompetencyResult,
    Contract,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    InternshipSiteUpserted,
    Level,
    ManagementMemberUpserted,
    ManagementRole,
    MentorUpserted,
    MethodistUpserted,
    MunicipalityUpserted,
    ProgramUpserted,
    RecordRemoved,
    TeacherUpserted,
    TutorUpserted,
    new_event,
)
from iomflow.shared.db import create_engine, sessionmaker
from iomflow.shared.outbox import Outbox
from iomflow.shared.unit import Deps

RULES = domain.load_rules()
START = date(2026, 9, 1)
CODES = ("subject_content", "teaching_methods", "assessment", "digital", "upbringing")
MUNICIPALITIES = ("mun-a", "mun-b", "mun-c")
TEACHERS = 7
OPEN = set(domain.OPEN)
YOUNG = (0, 3)  # teachers in their first years: a route gets a mentoring step

# Programs cover some codes (a route gets program + post-course steps); the others get
# methodist consultations.
PROGRAMS = [
    ProgramUpserted(
        program_id="p-methods",
        title="Современные методы обучения",
        kind="pk",
        hours=36,
        format="in_person",
        competencies=["teaching_methods", "subject_content"],
        audiences=[Audience.GENERAL],
    ),
    ProgramUpserted(
        program_id="p-assess",
        title="Оценивание образовательных результатов",
        kind="pk",
        hours=24,
        format="distance",
        federal_registry=True,
        competencies=["assessment"],
        audiences=[Audience.GENERAL],
    ),
    ProgramUpserted(
        program_id="p-digital",
        title="Цифровая образовательная среда",
        kind="pk",
        hours=72,
        format="network",
        competencies=["digital"],
        audiences=[Audience.GENERAL],
    ),
]  # p-assess is a federal one: its step gets a ЦНППМ tutor
# Small capacities, so drafts contend for them: a critical deficit on assessment or digital
# gets an internship, a young teacher a mentor of their municipality (mun-a has one).
RESOURCES: list[tuple[str, Contract]] = [
    (
        "internship_site",
        InternshipSiteUpserted(
            site_id="site-a",
            organization_id="org-site",
            municipality_id="mun-a",
            title="Лицей",
            competencies=["assessment", "digital"],
            capacity=2,
        ),
    ),
    (
        "internship_site",
        InternshipSiteUpserted(
            site_id="site-b",
            organization_id="org-site-b",
            municipality_id="mun-b",
            title="Гимназия",
            competencies=["assessment"],
            capacity=1,
        ),
    ),
    (
        "mentor",
        MentorUpserted(
            mentor_id="mentor-a", organization_id="org-0-0", municipality_id="mun-a", capacity=1
        ),
    ),
    ("tutor", TutorUpserted(tutor_id="tutor-1", specialisations=["assessment"], capacity=2)),
]


# --- operations ----------------------------------------------------------------------------

Deficits = tuple[tuple[str, Level, int], ...]


@dataclass(frozen=True)
class Methodist:
    municipalities: tuple[int, ...]  # indexes into the scenario's municipalities; () = region
    capacity: int
    specialisations: tuple[str, ...]


@dataclass(frozen=True)
class Diagnose:
    teacher: int
    deficits: Deficits  # empty: a diagnosis without deficits (retires the teacher's draft)


@dataclass(frozen=True)
class Revise:
    diagnosis: int
    deficits: Deficits


@dataclass(frozen=True)
class CancelDiagnosis:
    diagnosis: int


@dataclass(frozen=True)
class Agree:
    route: int


@dataclass(frozen=True)
class CompleteStep:
    route: int


@dataclass(frozen=True)
class Finish:
    """Agree the route if needed and complete every step: it completes."""

    route: int


@dataclass(frozen=True)
class Cancel:
    route: int


@dataclass(frozen=True)
class Days:
    """Time passes and the daily tick runs (overdue routes complete by policy)."""

    days: int


@dataclass(frozen=True)
class NewMethodist:
    methodist: Methodist


@dataclass(frozen=True)
class ChangeMethodist:
    """The registry re-sends a methodist with a new capacity (and maybe a new area)."""

    methodist: int
    capacity: int
    municipalities: tuple[int, ...] | None  # None: unchanged


@dataclass(frozen=True)
class RemoveMethodist:
    methodist: int


@dataclass(frozen=True)
class Rebalance:
    even: bool


@dataclass(frozen=True)
class Scenario:
    municipalities: int
    teachers: tuple[int, ...]  # each teacher's municipality index
    methodists: tuple[Methodist, ...]
    ops: tuple[Any, ...]


def _municipality_sets(n: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(0, n - 1), max_size=n, unique=True).map(
        lambda xs: tuple(sorted(xs))
    )


def _methodist(n: int) -> st.SearchStrategy[Methodist]:
    return st.builds(
        Methodist,
        _municipality_sets(n),
        st.integers(1, 4),
        st.lists(st.sampled_from(CODES), max_size=2, unique=True).map(tuple),
    )


_deficits = st.lists(
    st.tuples(
        st.sampled_from(CODES), st.sampled_from([Level.CRITICAL, Level.DEFICIT]), st.integers(5, 59)
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda d: d[0],
).map(tuple)
_pick = st.integers(0, 1_000)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(2, 3))
    teachers = tuple(draw(st.integers(0, n - 1)) for _ in range(TEACHERS))
    methodists = tuple(draw(st.lists(_methodist(n), max_size=3)))
    op = st.one_of(
        st.builds(Diagnose, st.integers(0, TEACHERS - 1), _deficits),
        st.builds(Diagnose, st.integers(0, TEACHERS - 1), _deficits),  # most often
        st.builds(Diagnose, st.integers(0, TEACHERS - 1), st.just(())),
        st.builds(Revise, _pick, _deficits),
        st.builds(CancelDiagnosis, _pick),
        st.builds(Agree, _pick),
        st.builds(CompleteStep, _pick),
        st.builds(Finish, _pick),
        st.builds(Finish, _pick),
        st.builds(Cancel, _pick),
        st.builds(Days, st.sampled_from([1, 30, 120, 400])),
        st.builds(NewMethodist, _methodist(n)),
        st.builds(ChangeMethodist, _pick, st.integers(1, 4), st.none() | _municipality_sets(n)),
        st.builds(RemoveMethodist, _pick),
        st.builds(Rebalance, st.booleans()),
    )
    ops = tuple(draw(st.lists(op, min_size=1, max_size=40)))
    return Scenario(n, teachers, methodists, ops)


# --- the world -----------------------------------------------------------------------------


@dataclass
class World:
    """One example's database, the service's context, the clock, and the entries the
    registry and diagnostics have written that routes has not applied yet."""

    scenario: Scenario
    sessions: async_sessionmaker[AsyncSession]
    ctx: service.Routes
    today: list[date]
    outbox: Outbox = field(default_factory=lambda: Outbox(repository.tables.outbox))
    unread: list[Event[Any]] = field(default_factory=list)  # of one stream, in order
    methodists: dict[str, MethodistUpserted] = field(default_factory=dict)  # the registry's
    hired: int = 0  # methodists ever added: ids are never reused
    diagnoses: list[DiagnosisCompleted] = field(default_factory=list)
    revisions: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # of the routes, at the end
    events: Counter[str] = field(default_factory=Counter)  # staged, by type
    batches: Counter[str] = field(default_factory=Counter)  # runs applied, by their length

    # --- the registry and diagnostics publish; routes' consumer applies ------------------

    def publish(self, type_: str, payload: Contract, subject: str) -> None:
        """An entry on its stream; a batch holds consecutive entries of one stream."""
        event: Event[Any] = new_event(type_, payload, source="test", subject=subject)
        if self.unread and self.unread[0].type.split(".")[0] != type_.split(".")[0]:
            raise AssertionError("deliver the other stream's batch first")
        self.unread.append(event)

    async def deliver(self) -> bool:
        """The unread entries as the consumer applies a batch: one transaction, each run of
        one type one handler call, the staged events written at the end. Whether any."""
        batch, self.unread = self.unread, []
        if not batch:
            return False
        async with self.sessions() as session, session.begin():
            deps = Deps(session, self.outbox, self.ctx)
            for type_, run in itertools.groupby(batch, key=lambda e: e.type):
                events = list(run)
                self.batches[f"{type_} x{min(len(events), 3)}"] += 1
                await handlers.HANDLERS[type_](events, deps)
            await deps.flush()
        return True

    async def run(self, work: Callable[[Ledger], Awaitable[Any]]) -> Any:
        """A command in one transaction (as the HTTP API and the CLI run them)."""
        async with self.sessions() as session, session.begin():
            deps = Deps(session, self.outbox, self.ctx)
            async with ledger_of(deps) as ledger:
                result = await work(ledger)
            await deps.flush()
        return result

    def municipality(self, index: int) -> str:
        return MUNICIPALITIES[index]

    def teacher_id(self, index: int) -> str:
        return f"t-{index}"

    def organization_id(self, index: int) -> str:
        return f"org-{self.scenario.teachers[index]}-{index % 2}"

    def methodist_payload(self, methodist_id: str, m: Methodist) -> MethodistUpserted:
        return MethodistUpserted(
            methodist_id=methodist_id,
            specialisations=list(m.specialisations),
            municipalities=[self.municipality(i) for i in m.municipalities],
            capacity=m.capacity,
        )

    def new_methodist_id(self) -> str:
        self.hired += 1
        return f"m-{self.hired - 1}"

    def upsert_methodist(self, payload: MethodistUpserted) -> None:
        self.methodists[payload.methodist_id] = payload
        self.publish("registry.methodist.upserted", payload, payload.methodist_id)

    async def seed(self) -> None:
        for i in range(self.scenario.municipalities):
            self.publish(
                "registry.municipality.upserted",
                MunicipalityUpserted(
                    municipality_id=self.municipality(i), name=f"М{i}", remote=i == 2
                ),
                self.municipality(i),
            )
        for program in PROGRAMS:
            self.publish("registry.program.upserted", program, program.program_id)
        for entity, resource in RESOURCES:
            self.publish(f"registry.{entity}.upserted", resource, entity)
        for i, mun in enumerate(self.scenario.teachers):
            self.publish(
                "registry.teacher.upserted",
                TeacherUpserted(
                    teacher_id=self.teacher_id(i),
                    organization_id=self.organization_id(i),
                    municipality_id=self.municipality(mun),
                    position="учитель",
                    audience=Audience.GENERAL,
                    subjects=["math"],
                    age_band="<25" if i in YOUNG else "35-44",
                    experience_band="<3" if i in YOUNG else "10-20",
                    young=i in YOUNG,
                ),
                self.teacher_id(i),
            )
        for org in sorted({self.organization_id(i) for i in range(TEACHERS)}):
            self.publish(
                "registry.management_member.upserted",
                ManagementMemberUpserted(
                    member_id=f"dir-{org}",
                    organization_id=org,
                    municipality_id="-",
                    teacher_id=f"dir-teacher-{org}",
                    role=ManagementRole.DIRECTOR,
                ),
                f"dir-{org}",
            )
        for m in self.scenario.methodists:
            self.upsert_methodist(self.methodist_payload(self.new_methodist_id(), m))
        await self.deliver()

    # --- picking what an operation works on -------------------------------------------

    async def routes(self, *statuses: str, with_methodist: bool = False) -> list[Any]:
        r = repository.routes.c
        where = [r.status.in_(statuses or OPEN)]
        if with_methodist:
            where.append(r.methodist_id.isnot(None))
        async with self.sessions() as session:
            rows = await repository.find_routes_where(session, *where)
        # created_at, then the diagnosis (ours, deterministic): replays pick the same route
        return sorted(rows, key=lambda row: (row.created_at, row.diagnosis_id))

    @staticmethod
    def pick(rows: list[Any], index: int) -> Any:
        return rows[index % len(rows)] if rows else None

    # --- operations ---------------------------------------------------------------------

    def diagnosis(self, teacher: int, deficits: Deficits) -> DiagnosisCompleted:
        results = [CompetencyResult(code=c, score=s, level=lv) for c, lv, s in deficits]
        results.sort(key=lambda d: (d.level != Level.CRITICAL, d.score, d.code))
        sufficient = [
            CompetencyResult(code=c, score=80, level=Level.SUFFICIENT)
            for c in CODES
            if c not in {d.code for d in results}
        ]
        return DiagnosisCompleted(
            diagnosis_id=f"d-{len(self.diagnoses)}",
            teacher_id=self.teacher_id(teacher),
            organization_id=self.organization_id(teacher),
            municipality_id=self.municipality(self.scenario.teachers[teacher]),
            campaign_id="2026-autumn",
            framework_version="test",
            competencies=results + sufficient,
            deficits=results,
        )

    def stream_of(self, op: Any) -> str | None:
        """The stream an operation writes to (None: a command to routes itself)."""
        if isinstance(op, Diagnose | Revise | CancelDiagnosis):
            return "diagnostics"
        if isinstance(op, NewMethodist | ChangeMethodist | RemoveMethodist):
            return "registry"
        return None

    async def apply(self, op: Any) -> None:
        """A stream operation publishes its entry (applied with its batch); a command runs."""
        if isinstance(op, Diagnose):
            diagnosis = self.diagnosis(op.teacher, op.deficits)
            self.diagnoses.append(diagnosis)
            self.publish("diagnostics.diagnosis.completed", diagnosis, diagnosis.teacher_id)
        elif isinstance(op, Revise):
            if not self.diagnoses:
                return
            old = self.diagnoses[op.diagnosis % len(self.diagnoses)]
            teacher = int(old.teacher_id.removeprefix("t-"))
            fresh = self.diagnosis(teacher, op.deficits)
            self.revisions[old.diagnosis_id] += 1
            revised = DiagnosisRevised(
                **{**fresh.model_dump(), "diagnosis_id": old.diagnosis_id},
                revision=self.revisions[old.diagnosis_id],
                reason="поздние результаты",
            )
            self.publish("diagnostics.diagnosis.revised", revised, revised.teacher_id)
        elif isinstance(op, CancelDiagnosis):
            if not self.diagnoses:
                return
            old = self.diagnoses[op.diagnosis % len(self.diagnoses)]
            self.publish(
                "diagnostics.diagnosis.cancelled",
                DiagnosisCancelled(
                    diagnosis_id=old.diagnosis_id,
                    teacher_id=old.teacher_id,
                    campaign_id=old.campaign_id,
                    reason="ошибка оператора",
                ),
                old.teacher_id,
            )
        elif isinstance(op, Agree):
            route = self.pick(await self.routes("drafted", with_methodist=True), op.route)
            if route is not None:
                await self.agree(route.route_id)
        elif isinstance(op, CompleteStep):
            route = self.pick(await self.routes(), op.route)
            if route is not None:
                step = next(
                    (s for s in route.steps if s.get("status") not in ("done", "removed")), None
                )
                if step is not None:
                    await self.complete_step(route.route_id, step["step_id"])
        elif isinstance(op, Finish):
            eligible = [
                r
                for r in await self.routes()
                if r.methodist_id is not None or r.status != "drafted"
            ]
            route = self.pick(eligible, op.route)
            if route is None:
                return
            if route.status == "drafted":
                await self.agree(route.route_id)
            for step in route.steps:
                if step.get("status") not in ("done", "removed"):
                    async with self.sessions() as session:
                        now = await repository.get_route(session, route.route_id)
                    if now.status not in OPEN:
                        break
                    await self.complete_step(route.route_id, step["step_id"])
        elif isinstance(op, Cancel):
            route = self.pick(await self.routes(), op.route)
            if route is not None:

                async def cancel(ledger: Ledger) -> None:
                    row = await lifecycle.open_route(ledger, route.route_id)
                    await ledger.cancel(row, "отменён оператором", "operator", None, by="op")

                await self.run(cancel)
        elif isinstance(op, Days):
            self.today[0] += timedelta(days=op.days)
            await self.run(lifecycle.tick)
        elif isinstance(op, NewMethodist):
            self.upsert_methodist(self.methodist_payload(self.new_methodist_id(), op.methodist))
        elif isinstance(op, ChangeMethodist):
            present = sorted(self.methodists)
            if not present:
                return
            old_payload = self.methodists[present[op.methodist % len(present)]]
            changes: dict[str, Any] = {"capacity": op.capacity}
            if op.municipalities is not None:
                changes["municipalities"] = [self.municipality(i) for i in op.municipalities]
            self.upsert_methodist(old_payload.model_copy(update=changes))
        elif isinstance(op, RemoveMethodist):
            present = sorted(self.methodists)
            if not present:
                return
            gone = present[op.methodist % len(present)]
            del self.methodists[gone]
            self.publish(
                "registry.methodist.removed", RecordRemoved(record_id=gone, reason="уволен"), gone
            )
        elif isinstance(op, Rebalance):
            await self.run(lambda ledger: service.rebalance(ledger, even=op.even, by="op"))
        else:  # pragma: no cover
            raise AssertionError(op)

    async def agree(self, route_id: str) -> None:
        """The teacher, the methodist and the school's director approve (three requests)."""
        async with self.sessions() as session:
            route = await repository.get_route(session, route_id)
        parties = [
            ("teacher", route.teacher_id),
            ("methodist", route.methodist_id),
            ("management", f"dir-{route.organization_id}"),
        ]
        for role, by in parties:
            if route.status != "drafted" or any(a["role"] == role for a in route.approvals):
                continue
            await self.run(partial(lifecycle.approve, route_id=route_id, role=role, by=by))

    async def complete_step(self, route_id: str, step_id: str) -> None:
        """As POST /v1/routes/{id}/steps/{step}/complete by the route's methodist."""

        async def work(ledger: Ledger) -> None:
            route = await lifecycle.open_route(ledger, route_id)
            by = route.methodist_id or "m-any"
            await lifecycle.complete_step(ledger, route, step_id, by, self.ctx.day(), "methodist")

        await self.run(work)

    # --- the invariants -------------------------------------------------------------------

    async def check(self, after: Any) -> None:
        async with self.sessions() as session:
            methodists = {m.methodist_id: m for m in await repository.get_all_methodists(session)}
            rows = list(await session.execute(select(repository.routes)))
            teachers = await repository.find_teachers(session, [r.teacher_id for r in rows])
        where = f"after {after!r}"
        open_rows = [r for r in rows if r.status in OPEN]
        held = Counter(r.methodist_id for r in open_rows if r.methodist_id is not None)

        for m in methodists.values():
            assert 0 <= m.load <= m.capacity, f"{m.methodist_id}: {m.load}/{m.capacity} {where}"
            assert m.load == held[m.methodist_id], (
                f"{m.methodist_id}: load {m.load}, holds {held[m.methodist_id]} open routes {where}"
            )
        orphans = sorted(set(held) - set(methodists))
        assert not orphans, f"open routes held by removed methodists {orphans} {where}"

        # Tutors, mentors and sites: a seat per live step of an open route naming them.
        steps_held = Counter(
            seat for r in open_rows for s in r.steps for seat in domain.seats_of(s)
        )
        async with self.sessions() as session:
            for kind, (table, key) in repository.SEATS.items():
                if kind == "methodist":
                    continue
                for row in await session.execute(select(table)):
                    resource = (kind, row._mapping[key])
                    assert 0 <= row.load <= row.capacity, f"{resource}: {row.load} {where}"
                    assert row.load == steps_held[resource], (
                        f"{resource}: load {row.load}, held by {steps_held[resource]} steps {where}"
                    )

        for status in ("drafted", "active"):
            per_teacher = Counter(r.teacher_id for r in rows if r.status == status)
            twice = {t: n for t, n in per_teacher.items() if n > 1}
            assert not twice, f"more than one {status} route: {twice} {where}"

        # The queue drains into the room there is: a waiting route has nobody with room.
        for r in open_rows:
            if r.methodist_id is not None:
                continue
            teacher = teachers[r.teacher_id]
            free = [
                m.methodist_id
                for m in methodists.values()
                if m.load < m.capacity and domain.serves(m, teacher.municipality_id)
            ]
            assert not free, f"route {r.route_id} waits while {free} have room {where}"

    async def summarise(self) -> None:
        outbox = repository.tables.outbox
        async with self.sessions() as session:
            self.statuses.update(
                r.status for r in await session.execute(select(repository.routes.c.status))
            )
            for row in await session.execute(select(outbox.c.type, outbox.c.fields)):
                self.events[row.type] += 1
                if json.loads(row.fields["data"]).get("previous_methodist_id"):
                    self.events["moved"] += 1

    async def check_events(self) -> None:
        """Every assignment the outbox published was within the methodist's capacity."""
        async with self.sessions() as session:
            outbox = repository.tables.outbox
            rows = list(
                await session.execute(
                    select(outbox.c.fields).where(outbox.c.type == "routes.methodist.assigned")
                )
            )
        for row in rows:
            data = json.loads(row.fields["data"])
            assert 1 <= data["load"] <= data["capacity"], data


async def play(scenario: Scenario, url: str) -> World:
    """The scenario against a fresh database at ``url``: seeded, then each operation."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(repository.metadata.create_all)
            if not url.startswith("sqlite"):  # one database for every example: emptied
                names = ", ".join(t.name for t in repository.metadata.sorted_tables)
                await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        today = [START]
        ctx = service.Routes(rules=RULES, today=lambda: today[0])
        world = World(scenario, sessionmaker(engine), ctx, today)
        await world.seed()
        await world.check("seeding")
        batch: list[Any] = []  # the operations whose entries are unread
        for op in scenario.ops:
            stream = world.stream_of(op)
            if batch and stream != world.stream_of(batch[0]):
                await world.deliver()
                await world.check(batch)
                batch = []
            await world.apply(op)
            if stream is not None:
                batch.append(op)
            else:
                await world.check(op)
        if await world.deliver():
            await world.check(batch)
        await world.check_events()
        await world.summarise()
        return world
    finally:
        await engine.dispose()


def play_on_sqlite(scenario: Scenario) -> World:
    with tempfile.TemporaryDirectory(prefix="iomflow-capacity-") as directory:
        return asyncio.run(play(scenario, f"sqlite+aiosqlite:///{Path(directory) / 'routes.db'}"))


SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(SETTINGS, max_examples=60)
@given(scenarios())
def test_no_methodist_ever_exceeds_capacity(scenario: Scenario) -> None:
    play_on_sqlite(scenario)


@pytest.fixture(scope="module")
def capacity_database(postgres_server: infra.PostgresServer) -> Iterator[str]:
    name = infra.unique_database_name("routes_capacity")
    url = asyncio.run(postgres_server.create_database(name))
    try:
        yield url
    finally:
        asyncio.run(postgres_server.drop_database(name))


@settings(SETTINGS, max_examples=12)
@given(scenario=scenarios())
def test_no_methodist_ever_exceeds_capacity_on_postgresql(
    capacity_database: str, scenario: Scenario
) -> None:
    asyncio.run(play(scenario, capacity_database))


def test_a_busy_day_exercises_every_path() -> None:
    """A fixed interleaving that goes through every operation, so the property above is
    known to reach the seats it checks (the queue, supersession, completion, rebalance)."""
    one = Methodist((0,), 1, ("assessment",))
    region = Methodist((), 2, ())
    d = (("assessment", Level.CRITICAL, 20), ("upbringing", Level.DEFICIT, 45))
    ops = (
        *(Diagnose(t, d) for t in range(5)),
        Diagnose(0, (("digital", Level.DEFICIT, 30),)),  # supersedes t-0's draft
        Finish(0),
        Agree(0),
        CompleteStep(1),
        NewMethodist(Methodist((1,), 2, ())),
        ChangeMethodist(0, 1, None),
        RemoveMethodist(1),
        Rebalance(True),
        Revise(2, d),
        CancelDiagnosis(3),
        Diagnose(4, ()),
        Cancel(0),
        Days(400),
        Rebalance(False),
        *(Diagnose(t, d) for t in range(TEACHERS)),
        NewMethodist(Methodist((), 3, ())),
    )
    scenario = Scenario(2, (0, 1, 0, 1, 0, 1, 0), (one, region), ops)
    world = play_on_sqlite(scenario)
    assert {"superseded", "completed", "cancelled", "drafted"} <= set(world.statuses)
    # The diagnoses came in batches, t-0's twice in the first one.
    assert world.batches["diagnostics.diagnosis.completed x3"] >= 2, world.batches
    for type_ in (
        "routes.methodist.unavailable",
        "routes.methodist.assigned",
        "routes.route.agreed",
        "routes.step.completed",
        "routes.route.completed",
        "routes.route.cancelled",
        "moved",  # an assignment by a rebalance, from another methodist
    ):
        assert world.events[type_] > 0, (type_, world.events)
