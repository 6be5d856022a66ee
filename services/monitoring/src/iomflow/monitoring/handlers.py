"""Stream subscribers of monitoring: every event becomes dated members and facts.

Facts are keyed by what they are about (a diagnosis, a route, a step), so a redelivered or
replayed event writes the same rows again. Their times are the events' ``occurred_at``
(a step's completion day), so values "as of" a date and a replay agree.

Each handler takes a run of events of one type (``iomflow.shared.streams``) and writes it
in a few statements whatever its length: what happens to facts is said event by event, in
stream order, to a ``repository.writes.Changes`` (conditions as data: the SQL is built
there), which sends it as few multi-row statements as that order allows; members
likewise (``repository.writes.Members``). Registry read models are declared
once (``ReadModel``); all but the management teams are kept from their upserts only.
Records that are a member and facts of one shape each (school teams, mentoring pairs,
expert roles, contests and their entries, needs answers, activities and attendances) are
declared likewise (``Record`` of ``Fact``s): their upserts and removals are the same
handler. A batch that changed anything marks the projections changed, once (``repository.mark``):
the KPI snapshot is renewed from that (``projection``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeAlias

from iomflow.monitoring import repository as repo
from iomflow.monitoring.context import Context
from iomflow.monitoring.repository.writes import Changes, Members
from iomflow.shared.contracts import (
    CommunityUpserted,
    DiagnosisCancelled,
    DiagnosisCompleted,
    DiagnosisDigest,
    Event,
    ManagementMemberUpserted,
    MentorUpserted,
    MethodistAssigned,
    MethodistUnavailable,
    OrganizationUpserted,
    PracticeUpserted,
    Project,
    RecordRemoved,
    RegistryStale,
    RouteAgreed,
    RouteCancelled,
    RouteCompleted,
    RouteDrafted,
    RouteDraftedDigest,
    StepCompleted,
    Streams,
    SupportPlanUpdated,
    TeacherUpserted,
    TrainingCompleted,
    types_of,
)
from iomflow.shared.readmodel import Column, ReadModel, plain
from iomflow.shared.streams import Handler, Subscription
from iomflow.shared.unit import Deps

MonitoringDeps: TypeAlias = Deps[Context]


async def changed(deps: MonitoringDeps, stream: str) -> None:
    """The projections changed in this batch: marked once per batch (its transaction; in
    the entry-by-entry fallback, per entry, as each savepoint may be rolled back)."""
    if deps in deps.ctx.marked and not deps.session.in_nested_transaction():
        return
    await repo.mark(deps.session, deps.ctx.consumer, stream, deps.now())
    deps.ctx.marked.add(deps)


async def _write(deps: MonitoringDeps, stream: str, *parts: Changes | Members) -> None:
    wrote = 0
    for part in parts:
        wrote += await part.write(deps.session)
    if wrote:
        await changed(deps, stream)


# --- registries ----------------------------------------------------------------------------


async def registry_changed(events: Sequence[Event[object]], deps: MonitoringDeps) -> None:
    """A read model the KPIs read (names, programs' themes, sites, capacities) changed."""
    await changed(deps, Streams.REGISTRY)


PROJECTS = tuple(Project)


async def organizations(
    events: Sequence[Event[OrganizationUpserted]], deps: MonitoringDeps
) -> None:
    """Organisations as members, and each project they take part in, from when the registry
    says so (after the read model is saved)."""
    members, facts = Members(), Changes()
    for event in events:
        o, at = event.payload, event.occurred_at
        projects = [p.value for p in o.projects]
        members.add(
            "organizations",
            o.organization_id,
            o.municipality_id,
            o.organization_id,
            {
                "kind": o.kind.value,
                "at_risk": o.low_results or o.unfavorable_conditions,
                "projects": projects,
            },
            at,
        )
        # The projects it no longer takes part in end. (Project facts are keyed
        # project:<organisation>:<project>, projects are the contract's enumeration: one
        # end per project it is not in, where one row per event would need NOT IN lists
        # of every length.)
        for project in PROJECTS:
            if project.value not in projects:
                facts.end(at, fact_id=f"project:{o.organization_id}:{project.value}")
        for project in projects:
            facts.add(
                f"project:{o.organization_id}:{project}",
                "project",
                o.organization_id,
                at,
                {"project": project},
                key=project,
            )
    await _write(deps, Streams.REGISTRY, members, facts)


async def teachers(events: Sequence[Event[TeacherUpserted]], deps: MonitoringDeps) -> None:
    members, facts = Members(), Changes()
    for event in events:
        t, at = event.payload, event.occurred_at
        members.add(
            "teachers",
            t.teacher_id,
            t.municipality_id,
            t.organization_id,
            {
                "audience": t.audience.value,
                "subjects": t.subjects,
                "young": t.young,
                "is_manager": t.is_manager,
            },
            at,
        )
        if t.expert:
            facts.add(f"expert:{t.teacher_id}", "expert", t.teacher_id, at)
        else:
            facts.end(at, fact_id=f"expert:{t.teacher_id}")
    await _write(deps, Streams.REGISTRY, members, facts)


async def mentors(events: Sequence[Event[MentorUpserted]], deps: MonitoringDeps) -> None:
    """An organisation with a registered mentor runs a mentoring program; a mentor who
    moved stops counting for the old one."""
    facts = Changes()
    for event in events:
        m, at = event.payload, event.occurred_at
        facts.end(at, kind="mentoring_org", key=m.mentor_id, ne={"member_id": m.organization_id})
        facts.add(
            f"mentoring_org:{m.mentor_id}:{m.organization_id}",
            "mentoring_org",
            m.organization_id,
            at,
            key=m.mentor_id,
        )
    await _write(deps, Streams.REGISTRY, facts)


async def mentors_removed(events: Sequence[Event[RecordRemoved]], deps: MonitoringDeps) -> None:
    facts = Changes()
    for event in events:
        facts.end(event.occurred_at, kind="mentoring_org", key=event.payload.record_id)
    await _write(deps, Streams.REGISTRY, facts)


async def teams(events: Sequence[Event[ManagementMemberUpserted]], deps: MonitoringDeps) -> None:
    """A management member makes their school's team (after the read model is saved)."""
    facts = Changes()
    for event in events:
        org = event.payload.organization_id
        facts.add(f"team:{org}", "team", org, event.occurred_at)
    await _write(deps, Streams.REGISTRY, facts)


async def teams_left(events: Sequence[Event[RecordRemoved]], deps: MonitoringDeps) -> None:
    """Management members removed (after their rows go): a school whose team has no member
    left has no team from now; the rest are judged by who remains (``Rows.build``)."""
    at = max(e.occurred_at for e in events)
    facts = Changes()
    for org in await repo.teams_without_members(deps.session):
        facts.end(at, fact_id=f"team:{org}")
    await facts.write(deps.session)
    await changed(deps, Streams.REGISTRY)


def removed(kind: str) -> Handler:
    async def handle(events: Sequence[Event[RecordRemoved]], deps: MonitoringDeps) -> None:
        members = Members()
        for event in events:
            members.end(kind, event.payload.record_id, event.occurred_at)
        await _write(deps, Streams.REGISTRY, members)

    handle.__name__ = f"{kind}_removed"
    return handle  # type: ignore[return-value]


async def registry_stale(events: Sequence[Event[RegistryStale]], deps: MonitoringDeps) -> None:
    # Alerts read it; no KPI does.
    await repo.save_stale(
        deps.session,
        [
            {
                "registry": e.payload.registry,
                "owner": e.payload.owner,
                "stale": e.payload.stale,
                "total": e.payload.total,
                "at": e.occurred_at,
            }
            for e in events
        ],
    )


async def communities(events: Sequence[Event[CommunityUpserted]], deps: MonitoringDeps) -> None:
    """Communities carry no KPI yet; known so that a replay reads the same stream."""


MUNICIPALITIES = ReadModel(
    "municipality",
    repo.municipalities,
    "municipality_id",
    {"municipality_id": "municipality_id", "name": "name", "remote": "remote"},
    after_upsert=registry_changed,
)
ORGANIZATIONS = ReadModel(
    "organization",
    repo.organizations,
    "organization_id",
    {
        "organization_id": "organization_id",
        "municipality_id": "municipality_id",
        "name": "name",
        "at_risk": lambda o: o.low_results or o.unfavorable_conditions,
    },
    after_upsert=organizations,
)
PROGRAMS = ReadModel(
    "program",
    repo.programs,
    "program_id",
    {
        "program_id": "program_id",
        "federal_registry": "federal_registry",
        "themes": "themes",
        "kind": "kind",
        "pedagogical": "pedagogical",
    },
    after_upsert=registry_changed,
)
SITES = ReadModel(
    "internship_site",
    repo.sites,
    "site_id",
    {"site_id": "site_id", "themes": "themes"},
    after_upsert=registry_changed,
)
MANAGEMENT = ReadModel(
    "management_member",
    repo.management,
    "member_id",
    {"member_id": "member_id", "teacher_id": "teacher_id", "organization_id": "organization_id"},
    after_upsert=teams,
    after_remove=teams_left,
)
METHODISTS = ReadModel(
    "methodist",
    repo.methodists,
    "methodist_id",
    {"methodist_id": "methodist_id", "capacity": "capacity"},
    after_upsert=registry_changed,
)
READ_MODELS = (MUNICIPALITIES, ORGANIZATIONS, PROGRAMS, SITES, MANAGEMENT, METHODISTS)
"""Kept from their upserts only (but management members, whose removal changes a team): a
removed organisation still names its past teachers' school, a removed program still says
what its past completions taught."""


# --- support outside routes: registers -----------------------------------------------------


def day_start(day: date) -> datetime:
    """The first moment of a day (UTC): a period's start."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_after(day: date | None) -> datetime | None:
    """The end of a period whose last day is ``day`` (None: open)."""
    return None if day is None else day_start(day + timedelta(days=1))


def noon(day: date) -> datetime:
    """Something that happened on a day (an activity, an answer): its midday, as trainings."""
    return datetime.combine(day, time(12, 0), tzinfo=UTC)


def held_on(payload: Any) -> datetime:
    """An activity's (or an attendance's) time: its day's noon."""
    return noon(payload.held_on)


def starts_on(payload: Any) -> datetime:
    """A record's period's start (a pair's, a role's)."""
    return day_start(payload.starts_on)


def ends_on(payload: Any) -> datetime | None:
    """A record's period's end (None: open)."""
    return day_after(payload.ends_on)


@dataclass(frozen=True)
class Fact:
    """A fact each event says of its record, declared (``Record``): ``<prefix>:<record id>``
    (the prefix is the kind unless said), about the payload's ``member``, keyed by the
    record (or the payload's ``key``), with ``attrs`` (columns as ``ReadModel``'s: a field's
    name or a function of the payload). ``on``: its own start, from the payload — its
    period is the record's, written as said each time (``until``: its end); without it, it
    begins at the event and keeps its first start. ``when``: it holds only for such records
    (another record's is forgotten)."""

    kind: str
    record: str
    member: str
    attrs: Mapping[str, Column] = field(default_factory=dict)
    on: Callable[[Any], datetime] | None = None
    until: Callable[[Any], datetime | None] | None = None
    when: Callable[[Any], bool] | None = None
    prefix: str = ""
    key: str = ""

    def say(self, facts: Changes, event: Event[Any]) -> None:
        p = event.payload
        fact_id = f"{self.prefix or self.kind}:{getattr(p, self.record)}"
        if self.when is not None and not self.when(p):
            facts.drop(fact_id=fact_id)
            return
        facts.add(
            fact_id,
            self.kind,
            getattr(p, self.member),
            event.occurred_at if self.on is None else self.on(p),
            columns(self.attrs, p),
            key=getattr(p, self.key or self.record),
            until=None if self.until is None else self.until(p),
            dated=self.on is not None,
        )


def columns(attrs: Mapping[str, Column], payload: Any) -> dict[str, Any]:
    """A payload's values as ``attrs`` name them (``ReadModel.row``'s rule)."""
    return {
        name: plain(getattr(payload, source)) if isinstance(source, str) else source(payload)
        for name, source in attrs.items()
    }


@dataclass(frozen=True)
class Member:
    """A record as a member of ``kind``, in its payload's municipality and organisation
    (none: the region's), from its event (or ``on``, from the payload)."""

    kind: str
    record: str
    attrs: Mapping[str, Column]
    on: Callable[[Any], datetime] | None = None


@dataclass(frozen=True)
class Record:
    """What monitoring keeps of one type of event, declared once (as ``ReadModel`` for a
    read model): the record as a member, and its facts. A run of ``type`` is one members'
    upsert and a few fact statements; a run of ``removed`` (a registry record's removal):
    the member leaves and the facts keyed by the record stop now, even those due to end
    later (a pair until June, removed in March, ends in March)."""

    name: str  # the handlers' name: "expert_roles", "expert_roles_removed"
    type: str
    stream: str
    facts: tuple[Fact, ...]
    member: Member | None = None
    removed: str = ""

    def handlers(self) -> dict[str, Handler]:
        async def upserted(events: Sequence[Event[Any]], deps: MonitoringDeps) -> None:
            members, facts = Members(), Changes()
            for event in events:
                if self.member is not None:
                    m, p = self.member, event.payload
                    members.add(
                        m.kind,
                        getattr(p, m.record),
                        p.municipality_id or "",
                        p.organization_id or "",
                        columns(m.attrs, p),
                        event.occurred_at if m.on is None else m.on(p),
                    )
                for fact in self.facts:
                    fact.say(facts, event)
            await _write(deps, self.stream, members, facts)

        async def removed(events: Sequence[Event[RecordRemoved]], deps: MonitoringDeps) -> None:
            members, facts = Members(), Changes()
            for event in events:
                record, at = event.payload.record_id, event.occurred_at
                if self.member is not None:
                    members.end(self.member.kind, record, at)
                facts.end(at, key=record, early=True)
            await _write(deps, self.stream, members, facts)

        upserted.__name__, removed.__name__ = self.name, f"{self.name}_removed"
        out: dict[str, Handler] = {self.type: upserted}  # type: ignore[dict-item]
        if self.removed:
            out[self.removed] = removed  # type: ignore[assignment]
        return out


SCHOOL_TEAMS = Record(
    # A project's school team as a member (its consultations are its facts), and the fact
    # of the team with its assigned methodists (how many methodists the project has).
    "school_teams",
    "registry.school_team.upserted",
    Streams.REGISTRY,
    (
        Fact(
            "school_team",
            "team_id",
            "team_id",
            {"project": "project", "methodists": lambda t: sorted(t.methodists)},
        ),
    ),
    Member(
        "school_teams",
        "team_id",
        {"project": "project", "members": "members", "methodists": "methodists"},
    ),
    removed="registry.school_team.removed",
)
MENTORING_PAIRS = Record(
    # A pair of a school's mentoring program, for its period: the mentee of a young
    # teacher's pair is mentored (``young_supported_share``; a pair whose kind changed
    # from it is not any more); the pair's organisation runs a mentoring program while it
    # lasts (``mentoring_orgs_share``).
    "mentoring_pairs",
    "registry.mentoring_pair.upserted",
    Streams.REGISTRY,
    tuple(
        Fact(
            kind,
            "pair_id",
            member,
            {"pair_kind": "kind"},
            on=starts_on,
            until=ends_on,
            when=when,
            prefix=prefix,
        )
        for kind, prefix, member, when in (
            ("mentored", "pair", "mentee_id", lambda p: p.kind == "young_teacher"),
            ("mentoring_org", "pair_org", "organization_id", None),
        )
    ),
    removed="registry.mentoring_pair.removed",
)
EXPERT_ROLES = Record(
    # A teacher's expert role of a kind, for its period (``expert_involvement``, by kind);
    # the teacher register's flag stays a fact of its own.
    "expert_roles",
    "registry.expert_role.upserted",
    Streams.REGISTRY,
    (
        Fact(
            "expert",
            "role_id",
            "teacher_id",
            {"kind": "kind", "body": "body"},
            on=starts_on,
            until=ends_on,
            prefix="expert_role",
        ),
    ),
    removed="registry.expert_role.removed",
)
CONTESTS = Record(
    # A contest, dated by its day (or its year's first): its entries take its date
    # (``Rows.build``).
    "contests",
    "registry.contest.upserted",
    Streams.REGISTRY,
    (
        Fact(
            "contest",
            "contest_id",
            "contest_id",
            {"year": "year", "level": "level"},
            on=lambda c: day_start(c.held_on or date(c.year, 1, 1)),
        ),
    ),
    removed="registry.contest.removed",
)
CONTEST_ENTRIES = Record(
    # A teacher's entry of a contest (``contest_participants``), with its result.
    "contest_entries",
    "registry.contest_entry.upserted",
    Streams.REGISTRY,
    (
        Fact(
            "contest_entry",
            "entry_id",
            "teacher_id",
            {"contest_id": "contest_id", "result": "result"},
        ),
    ),
    removed="registry.contest_entry.removed",
)


IN_BANK = ("included", "replicated")


async def practices(events: Sequence[Event[PracticeUpserted]], deps: MonitoringDeps) -> None:
    """A practice as a member; in the bank from its inclusion while included or replicated
    (``practices_in_bank``); each replication on its day (``practices_replicated``). Its
    replications are the record's list: those no longer in it are forgotten."""
    members, facts = Members(), Changes()
    for event in events:
        p, at = event.payload, event.occurred_at
        # In the register since its first day known (a practice of the bank loaded later
        # is in it from its inclusion).
        known = [day_start(d) for d in (p.submitted_on, p.included_on) if d is not None]
        members.add(
            "practices",
            p.practice_id,
            p.municipality_id,
            p.organization_id,
            {
                "status": p.status,
                "themes": [t.value for t in p.themes],
                "competencies": p.competencies,
            },
            min([at, *known]),
        )
        facts.drop(kind="replicated", key=p.practice_id)
        if p.status in IN_BANK:
            facts.add(
                f"in_bank:{p.practice_id}",
                "in_bank",
                p.practice_id,
                day_start(p.included_on) if p.included_on else at,
                key=p.practice_id,
                dated=p.included_on is not None,
            )
        else:
            facts.drop(kind="in_bank", key=p.practice_id)
        for r in p.replications:
            facts.add(
                f"replicated:{p.practice_id}:{r.organization_id}:{r.on.isoformat()}",
                "replicated",
                p.practice_id,
                noon(r.on),
                {"organization_id": r.organization_id, "municipality_id": r.municipality_id},
                key=p.practice_id,
                dated=True,
            )
    await _write(deps, Streams.REGISTRY, members, facts)


async def practices_removed(events: Sequence[Event[RecordRemoved]], deps: MonitoringDeps) -> None:
    members, facts = Members(), Changes()
    for event in events:
        members.end("practices", event.payload.record_id, event.occurred_at)
        facts.end(event.occurred_at, kind="in_bank", key=event.payload.record_id)
    await _write(deps, Streams.REGISTRY, members, facts)


# --- diagnostics ---------------------------------------------------------------------------


async def diagnosed(events: Sequence[Event[DiagnosisCompleted]], deps: MonitoringDeps) -> None:
    facts = Changes()
    for event in events:
        d = event.payload
        # Dated by its evidence: a diagnosis of results taken in March, loaded in
        # December (a history), is a March diagnosis.
        at = event.occurred_at
        if d.evidence_at is not None and d.evidence_at < at:
            at = d.evidence_at
        facts.add(
            f"diagnosed:{d.diagnosis_id}",
            "diagnosed",
            d.teacher_id,
            at,
            {
                "burnout": d.burnout.level if d.burnout else None,
                "deficits": len(d.deficits),
                "campaign_id": d.campaign_id,
            },
            key=d.diagnosis_id,
        )
    await _write(deps, Streams.DIAGNOSTICS, facts)


async def diagnoses_cancelled(
    events: Sequence[Event[DiagnosisCancelled]], deps: MonitoringDeps
) -> None:
    # A cancelled diagnosis was never one: it leaves no trace in any KPI.
    facts = Changes()
    for event in events:
        facts.drop(fact_id=f"diagnosed:{event.payload.diagnosis_id}")
    await _write(deps, Streams.DIAGNOSTICS, facts)


NEEDS = Record(
    # A teacher answered the needs survey (``needs_surveyed_share``), on the answer's day.
    "needs",
    "diagnostics.needs.recorded",
    Streams.DIAGNOSTICS,
    (
        Fact(
            "needs",
            "response_id",
            "teacher_id",
            {"campaign_id": "campaign_id"},
            on=lambda n: noon(n.answered_on),
        ),
    ),
)


# --- routes --------------------------------------------------------------------------------


async def routes_drafted(events: Sequence[Event[RouteDrafted]], deps: MonitoringDeps) -> None:
    facts = Changes()
    for event in events:
        r, at = event.payload, event.occurred_at
        if r.supersedes:
            facts.end(at, key=r.supersedes)
        facts.add(
            f"route:{r.route_id}",
            "route",
            r.teacher_id,
            at,
            {"diagnosis_id": r.diagnosis_id},
            key=r.route_id,
        )
        tutors = sorted({s.tutor_id for s in r.steps if s.tutor_id})
        if tutors:
            # A tutor supports from when the route is agreed (``Rows.build``).
            facts.add(
                f"tutor:{r.route_id}",
                "tutor_planned",
                r.teacher_id,
                at,
                {"tutor_ids": tutors},
                key=r.route_id,
            )
        if any(s.kind == "mentoring" for s in r.steps):
            facts.add(f"mentored:{r.route_id}", "mentored", r.teacher_id, at, key=r.route_id)
        prevention = [s.step_id for s in r.steps if s.purpose == "burnout_prevention"]
        if prevention:
            # Its completion counts as prevention (``Rows.build``): a step done names no
            # purpose, the draft does.
            facts.add(
                f"prevention_planned:{r.route_id}",
                "prevention_planned",
                r.teacher_id,
                at,
                {"steps": prevention},
                key=r.route_id,
            )
    await _write(deps, Streams.ROUTES, facts)


async def routes_agreed(events: Sequence[Event[RouteAgreed]], deps: MonitoringDeps) -> None:
    """Teacher, methodist and management agreed: the route's tutor support begins."""
    facts = Changes()
    for event in events:
        a = event.payload
        facts.add(f"agreed:{a.route_id}", "agreed", a.teacher_id, event.occurred_at, key=a.route_id)
    await _write(deps, Streams.ROUTES, facts)


async def methodists_assigned(
    events: Sequence[Event[MethodistAssigned]], deps: MonitoringDeps
) -> None:
    facts = Changes()
    for event in events:
        a, at = event.payload, event.occurred_at
        facts.end(at, kind="support", key=a.route_id)
        facts.add(
            f"support:{a.route_id}:{a.methodist_id}",
            "support",
            a.teacher_id,
            at,
            {"methodist_id": a.methodist_id},
            key=a.route_id,
        )
    await _write(deps, Streams.ROUTES, facts)


async def methodists_unavailable(
    events: Sequence[Event[MethodistUnavailable]], deps: MonitoringDeps
) -> None:
    # Back in the queue (a rebalance): the route has no methodist from now.
    facts = Changes()
    for event in events:
        facts.end(event.occurred_at, kind="support", key=event.payload.route_id)
    await _write(deps, Streams.ROUTES, facts)


async def routes_closed(
    events: Sequence[Event[RouteCompleted] | Event[RouteCancelled]], deps: MonitoringDeps
) -> None:
    facts = Changes()
    for event in events:
        payload = event.payload
        if isinstance(payload, RouteCancelled) and payload.code == "diagnosis_cancelled":
            facts.drop(key=payload.route_id)  # never a real route
        else:
            facts.end(event.occurred_at, key=payload.route_id)
    await _write(deps, Streams.ROUTES, facts)


def training_id(teacher_id: str, program_id: str | None, site_id: str | None) -> str | None:
    """What a training is, whoever reports it (``TrainingCompleted.training_id``)."""
    if program_id:
        return f"{teacher_id}:program:{program_id}"
    if site_id:
        return f"{teacher_id}:site:{site_id}"
    return None


def _trained(
    facts: Changes,
    training: str,
    teacher_id: str,
    on: date,
    *,
    from_route: bool,
    kind: str,
    program_id: str | None,
    site_id: str | None,
) -> None:
    # What the program or site teaches is looked up when values are computed: the
    # registries' stream and this one are read independently, in any order. The same
    # training inside a route and outside one (a step marked done, then the provider's
    # completion matching no open step) are two facts of one member, counted once — in
    # any order, neither undoes the other's "from a route".
    facts.add(
        f"trained:{training}" + (":route" if from_route else ""),
        "trained",
        teacher_id,
        datetime.combine(on, time(12, 0), tzinfo=UTC),
        {
            "from_route": from_route,
            "training_kind": kind,
            "program_id": program_id,
            "site_id": site_id,
        },
    )


async def trainings(events: Sequence[Event[TrainingCompleted]], deps: MonitoringDeps) -> None:
    """Every course or internship a teacher completed, inside a route or not: the one
    source of training KPIs. Keyed by the training (teacher and program or site), so the
    same course reported by its step and by the provider is one fact, from its first day."""
    facts = Changes()
    for event in events:
        t = event.payload
        _trained(
            facts,
            t.training_id,
            t.teacher_id,
            t.completed_on,
            from_route=t.route_id is not None,
            kind=t.kind,
            program_id=t.program_id,
            site_id=t.site_id,
        )
    await _write(deps, Streams.ROUTES, facts)


async def steps_completed(events: Sequence[Event[StepCompleted]], deps: MonitoringDeps) -> None:
    """A program or internship step done: the same training fact as its
    ``routes.training.completed`` (which routes publishes with it since that type exists;
    a stream written before it has only this one)."""
    facts = Changes()
    for event in events:
        s = event.payload
        if s.kind not in ("program", "internship"):
            # A consultation, community, mentoring step done: what it was for is the
            # draft's (``Rows.build`` gives it its purpose).
            facts.add(
                f"step_done:{s.route_id}:{s.step_id}",
                "step_done",
                s.teacher_id,
                noon(s.completed_on),
                {"route_id": s.route_id, "step_id": s.step_id, "step_kind": s.kind},
                key=s.route_id,
            )
            continue
        training = training_id(s.teacher_id, s.program_id, s.site_id)
        if training is None:  # an internship step of an event before site_id was sent
            training = f"{s.teacher_id}:step:{s.route_id}:{s.step_id}"
        _trained(
            facts,
            training,
            s.teacher_id,
            s.completed_on,
            from_route=True,
            kind="course" if s.kind == "program" else "internship",
            program_id=s.program_id,
            site_id=s.site_id,
        )
    await _write(deps, Streams.ROUTES, facts)


ACTIVITY: Mapping[str, Column] = {
    "kind": "kind",
    "level": "level",
    "themes": "themes",
    "competencies": "competencies",
    "team_id": "team_id",
}
"""What an activity and each attendance of it say of it."""
HELD: Mapping[str, Column] = {
    **ACTIVITY,
    "format": "format",
    "target": "target",
    "project": "project",
}


ACTIVITIES = Record(
    # An activity as a member of its own (``regional_activities`` counts them), held on
    # its day; one for a school team is the team's (a consultation a month,
    # ``school_of_ministry_consultations``; its team may have changed). A regional
    # activity of no municipality counts for the region only.
    "activities",
    "routes.activity.held",
    Streams.ROUTES,
    (
        Fact(
            "activity_held",
            "activity_id",
            "activity_id",
            HELD,
            on=held_on,
            prefix="held",
        ),
        Fact(
            "team_activity",
            "activity_id",
            "team_id",
            {"kind": "kind", "activity_id": "activity_id"},
            on=held_on,
            when=lambda a: bool(a.team_id),
        ),
    ),
    Member("activities", "activity_id", HELD, on=held_on),
)


ATTENDANCES = Record(
    # A teacher took part in an activity, on its day (one of prevention counts in
    # ``burnout_prevention_share``).
    "attendances",
    "routes.activity.attended",
    Streams.ROUTES,
    (
        Fact(
            "attended",
            "attendance_id",
            "teacher_id",
            ACTIVITY,
            on=held_on,
            key="activity_id",
        ),
    ),
)


async def plans(events: Sequence[Event[SupportPlanUpdated]], deps: MonitoringDeps) -> None:
    """A flagged school's support plan, whole: the school has it from its start while it
    is active (``support_plans_share``); its actions, with their due and done days, while
    the plan is (``plan_action_overdue``). Actions no longer in the plan are forgotten."""
    facts = Changes()
    for event in events:
        p = event.payload
        start = day_start(p.starts_on)
        until = None if p.status == "active" else max(event.occurred_at, start)
        facts.add(
            f"plan:{p.plan_id}",
            "support_plan",
            p.organization_id,
            start,
            {"plan_id": p.plan_id, "methodist_id": p.methodist_id},
            key=p.plan_id,
            until=until,
            dated=True,
        )
        facts.drop(kind="plan_action", key=p.plan_id)
        for action in p.actions:
            facts.add(
                f"plan_action:{p.plan_id}:{action.action_id}",
                "plan_action",
                p.organization_id,
                start,
                {
                    "plan_id": p.plan_id,
                    "action_id": action.action_id,
                    "title": action.title,
                    "action_kind": action.kind,
                    "due_on": action.due_on.isoformat(),
                    "done_on": action.done_on.isoformat() if action.done_on else None,
                    "responsible_id": action.responsible_id,
                    "municipality_id": p.municipality_id,
                },
                key=p.plan_id,
                until=until,
                dated=True,
            )
    await _write(deps, Streams.ROUTES, facts)


def _upserted(model: ReadModel) -> tuple[str, Handler]:
    return model.upserted, model.handlers()[model.upserted]


REGISTRY: dict[str, Handler] = {
    **dict(_upserted(model) for model in READ_MODELS),
    "registry.teacher.upserted": teachers,
    "registry.mentor.upserted": mentors,
    "registry.community.upserted": communities,
    "registry.stale": registry_stale,
    "registry.teacher.removed": removed("teachers"),
    "registry.organization.removed": removed("organizations"),
    "registry.mentor.removed": mentors_removed,
    MANAGEMENT.removed: MANAGEMENT.handlers()[MANAGEMENT.removed],
    **SCHOOL_TEAMS.handlers(),
    **MENTORING_PAIRS.handlers(),
    **EXPERT_ROLES.handlers(),
    **CONTESTS.handlers(),
    **CONTEST_ENTRIES.handlers(),
    "registry.practice.upserted": practices,
    "registry.practice.removed": practices_removed,
}
DIAGNOSTICS: dict[str, Handler] = {
    "diagnostics.diagnosis.completed": diagnosed,
    "diagnostics.diagnosis.cancelled": diagnoses_cancelled,
    **NEEDS.handlers(),
}
ROUTES: dict[str, Handler] = {
    "routes.route.drafted": routes_drafted,
    "routes.route.agreed": routes_agreed,
    "routes.methodist.assigned": methodists_assigned,
    "routes.methodist.unavailable": methodists_unavailable,
    "routes.route.completed": routes_closed,
    "routes.route.cancelled": routes_closed,
    "routes.step.completed": steps_completed,
    "routes.training.completed": trainings,
    **ACTIVITIES.handlers(),
    **ATTENDANCES.handlers(),
    "routes.plan.updated": plans,
}

SUBSCRIPTIONS = [
    Subscription(
        Streams.REGISTRY,
        REGISTRY,
        "Members (teachers, organisations, school teams, practices) and read models; "
        "mentoring pairs, expert roles, contest entries",
        # registers no KPI counts yet (tutors, municipal staff, innovation sites),
        # and the removal of read-model rows past KPIs still name
        ignores=types_of(Streams.REGISTRY) - set(REGISTRY),
    ),
    Subscription(
        Streams.DIAGNOSTICS,
        DIAGNOSTICS,
        "Diagnosed teachers, needs answers",
        # who, when, how many deficits, burnout: not every competency's explanation
        digests={"diagnostics.diagnosis.completed": DiagnosisDigest},
        # a revision changes a diagnosis's levels, not whether the teacher was diagnosed
        ignores=types_of(Streams.DIAGNOSTICS) - set(DIAGNOSTICS),
    ),
    Subscription(
        Streams.ROUTES,
        ROUTES,
        "Routes, methodist support, training completed, activities and their attendance, "
        "support plans",
        # a route's steps by kind and tutor: not every step's reason
        digests={"routes.route.drafted": RouteDraftedDigest},
        # a route counts from its draft, support from its seat, tutors from the agreement
        ignores=types_of(Streams.ROUTES) - set(ROUTES),
    ),
]
