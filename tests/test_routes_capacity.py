"""No methodist ever exceeds capacity: a property test over random interleavings of
diagnoses, approvals, step completions, cancellations, the clock, new, changed and removed
methodists and operator rebalances, driving the real use cases (through the stream
handlers where routes has one) against a real SQLite database.

After every operation the seats must add up: each methodist's load is within its capacity
and equals the number of open routes it holds, no open route is held by a methodist who
left the registry, a teacher has at most one drafted and one active route, and nobody who
could take a waiting route has room for it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.routes import domain, handlers, lifecycle, repository, service
from iomflow.shared.contracts import (
    Audience,
    CompetencyResult,
    Contract,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisRevised,
    Event,
    Level,
    ManagementMemberUpserted,
    ManagementRole,
    MethodistUpserted,
    MunicipalityUpserted,
    ProgramUpserted,
    RecordRemoved,
    TeacherUpserted,
    new_event,
)
from iomflow.shared.db import create_engine, sessionmaker
from iomflow.shared.outbox import Outbox

RULES = domain.load_rules()
START = date(2026, 9, 1)
CODES = ("subject_content", "teaching_methods", "assessment", "digital", "upbringing")
MUNICIPALITIES = ("mun-a", "mun-b", "mun-c")
TEACHERS = 7
OPEN = set(domain.OPEN)

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
    """One example's database, the service's context and handlers, and the clock."""

    scenario: Scenario
    sessions: async_sessionmaker[AsyncSession]
    ctx: service.Routes
    today: list[date]
    handlers: dict[str, Any] = field(default_factory=dict)
    methodists: dict[str, MethodistUpserted] = field(default_factory=dict)  # the registry's
    hired: int = 0  # methodists ever added: ids are never reused
    diagnoses: list[DiagnosisCompleted] = field(default_factory=list)
    revisions: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # of the routes, at the end
    events: Counter[str] = field(default_factory=Counter)  # staged, by type

    # --- the registry and diagnostics publish; routes' handlers apply ---------------------

    async def deliver(self, type_: str, payload: Contract, subject: str) -> None:
        """One stream entry through its handler, in its own transaction (as the consumer)."""
        event: Event[Any] = new_event(type_, payload, source="test", subject=subject)
        async with self.sessions() as session, session.begin():
            await self.handlers[type_](session, event, self.ctx.outbox)

    async def run(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        """A command in one transaction (as the HTTP API and the CLI run them)."""
        async with self.sessions() as session, session.begin():
            return await work(session)

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

    async def upsert_methodist(self, payload: MethodistUpserted) -> None:
        self.methodists[payload.methodist_id] = payload
        await self.deliver("registry.methodist.upserted", payload, payload.methodist_id)

    async def seed(self) -> None:
        for i in range(self.scenario.municipalities):
            await self.deliver(
                "registry.municipality.upserted",
                MunicipalityUpserted(
                    municipality_id=self.municipality(i), name=f"М{i}", remote=i == 2
                ),
                self.municipality(i),
            )
        for program in PROGRAMS:
            await self.deliver("registry.program.upserted", program, program.program_id)
        for i, mun in enumerate(self.scenario.teachers):
            await self.deliver(
                "registry.teacher.upserted",
                TeacherUpserted(
                    teacher_id=self.teacher_id(i),
                    organization_id=self.organization_id(i),
                    municipality_id=self.municipality(mun),
                    position="учитель",
                    audience=Audience.GENERAL,
                    subjects=["math"],
                    age_band="35-44",
                    experience_band="10-20",
                ),
                self.teacher_id(i),
            )
        for org in sorted({self.organization_id(i) for i in range(TEACHERS)}):
            await self.deliver(
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
            await self.upsert_methodist(self.methodist_payload(self.new_methodist_id(), m))

    # --- picking what an operation works on -------------------------------------------

    async def routes(self, *statuses: str, with_methodist: bool = False) -> list[Any]:
        r = repository.routes.c
        where = [r.status.in_(statuses or OPEN)]
        if with_methodist:
            where.append(r.methodist_id.isnot(None))
        async with self.sessions() as session:
            rows = await repository.routes_where(session, *where)
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

    async def apply(self, op: Any) -> None:
        if isinstance(op, Diagnose):
            diagnosis = self.diagnosis(op.teacher, op.deficits)
            self.diagnoses.append(diagnosis)
            await self.deliver("diagnostics.diagnosis.completed", diagnosis, diagnosis.teacher_id)
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
            await self.deliver("diagnostics.diagnosis.revised", revised, revised.teacher_id)
        elif isinstance(op, CancelDiagnosis):
            if not self.diagnoses:
                return
            old = self.diagnoses[op.diagnosis % len(self.diagnoses)]
            await self.deliver(
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

                async def cancel(session: AsyncSession) -> None:
                    row = await lifecycle.open_route(session, route.route_id)
                    await service.cancel(
                        self.ctx, session, row, "отменён оператором", "operator", by="op"
                    )

                await self.run(cancel)
        elif isinstance(op, Days):
            self.today[0] += timedelta(days=op.days)
            await self.run(lambda s: lifecycle.tick(self.ctx, s))
        elif isinstance(op, NewMethodist):
            await self.upsert_methodist(
                self.methodist_payload(self.new_methodist_id(), op.methodist)
            )
        elif isinstance(op, ChangeMethodist):
            present = sorted(self.methodists)
            if not present:
                return
            old_payload = self.methodists[present[op.methodist % len(present)]]
            changes: dict[str, Any] = {"capacity": op.capacity}
            if op.municipalities is not None:
                changes["municipalities"] = [self.municipality(i) for i in op.municipalities]
            await self.upsert_methodist(old_payload.model_copy(update=changes))
        elif isinstance(op, RemoveMethodist):
            present = sorted(self.methodists)
            if not present:
                return
            gone = present[op.methodist % len(present)]
            del self.methodists[gone]
            await self.deliver(
                "registry.methodist.removed", RecordRemoved(record_id=gone, reason="уволен"), gone
            )
        elif isinstance(op, Rebalance):
            await self.run(lambda s: service.rebalance(self.ctx, s, even=op.even, by="op"))
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
            await self.run(
                partial(lifecycle.approve, self.ctx, route_id=route_id, role=role, by=by)
            )

    async def complete_step(self, route_id: str, step_id: str) -> None:
        """As POST /v1/routes/{id}/steps/{step}/complete by the route's methodist."""

        async def work(session: AsyncSession) -> None:
            route = await lifecycle.open_route(session, route_id)
            by = route.methodist_id or "m-any"
            await lifecycle.complete_step(
                self.ctx, session, route, step_id, by, self.ctx.day(), "methodist"
            )

        await self.run(work)

    # --- the invariants -------------------------------------------------------------------

    async def check(self, after: Any) -> None:
        async with self.sessions() as session:
            methodists = {m.methodist_id: m for m in await repository.all_methodists(session)}
            rows = list(await session.execute(select(repository.routes)))
            teachers = await repository.teachers_by_id(session, [r.teacher_id for r in rows])
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


async def play(scenario: Scenario, directory: Path) -> World:
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'routes.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(repository.metadata.create_all)
        today = [START]
        ctx = service.Routes(
            rules=RULES, outbox=Outbox(repository.tables.outbox), today=lambda: today[0]
        )
        world = World(scenario, sessionmaker(engine), ctx, today)
        for sub in handlers.subscriptions(ctx):
            world.handlers.update(sub.handlers)
        await world.seed()
        await world.check("seeding")
        for op in scenario.ops:
            await world.apply(op)
            await world.check(op)
        await world.check_events()
        await world.summarise()
        return world
    finally:
        await engine.dispose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_no_methodist_ever_exceeds_capacity(scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory(prefix="iomflow-capacity-") as directory:
        asyncio.run(play(scenario, Path(directory)))


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
    with tempfile.TemporaryDirectory(prefix="iomflow-capacity-") as directory:
        world = asyncio.run(play(scenario, Path(directory)))
    assert {"superseded", "completed", "cancelled", "drafted"} <= set(world.statuses)
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
