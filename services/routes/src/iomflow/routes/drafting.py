"""Drafting a route (ИОМ): the activities for a diagnosis's deficits, each with its
reason, and their pace within the yearly hours budget. Pure rules, no I/O; the rule
parameters come from ``data/rules.json`` (``domain.Rules``), the words a reason uses for
codes (competency names, audiences, levels, formats) from ``wording``."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, timedelta

from iomflow.routes import wording
from iomflow.routes.domain import (
    Catalogue,
    CommunityView,
    Draft,
    MentorView,
    ProgramView,
    Rules,
    SiteView,
    TeacherView,
    TutorView,
)
from iomflow.shared.contracts import CompetencyResult, Level, RouteStep

# --- drafting ------------------------------------------------------------------------------


def ordered_deficits(deficits: Iterable[CompetencyResult]) -> list[CompetencyResult]:
    """Deficits to work on, most severe first: critical before deficit, lower score first."""
    below = [d for d in deficits if d.level in (Level.CRITICAL, Level.DEFICIT)]
    return sorted(below, key=lambda d: (d.level != Level.CRITICAL, d.score, d.code))


def program_score(program: ProgramView, teacher: TeacherView, rules: Rules) -> dict[str, float]:
    """The parts of a program's score for this teacher, by what earns them."""
    w = rules.program_weights
    formats = w.format_remote if teacher.remote else w.format_near
    parts = {
        "federal_registry": w.federal_registry if program.federal_registry else 0.0,
        "subject_match": w.subject_match
        if program.subjects and not set(teacher.subjects).isdisjoint(program.subjects)
        else 0.0,
        "format": formats.get(program.format, 0.0),
        "hours": w.per_100_hours * program.hours / 100,
    }
    return parts


def fitting_programs(
    code: str, teacher: TeacherView, programs: Iterable[ProgramView], completed: Iterable[str]
) -> list[ProgramView]:
    """Programs that address ``code``, fit the teacher's audience and subject (a program
    for named subjects fits only their teachers) and the teacher has not completed."""
    done = set(completed)
    subjects = set(teacher.subjects)
    return [
        p
        for p in programs
        if code in p.competencies
        and teacher.audience in p.audiences
        and (not p.subjects or not subjects.isdisjoint(p.subjects))
        and p.program_id not in done
    ]


def rank_programs(
    code: str,
    teacher: TeacherView,
    programs: Iterable[ProgramView],
    rules: Rules,
    completed: Iterable[str] = (),
) -> list[tuple[ProgramView, dict[str, float]]]:
    """Fitting programs, best first, each with its score parts.

    Best = the highest total score; ties go to the shorter program, then by id (stable).
    """
    scored = [
        (p, program_score(p, teacher, rules))
        for p in fitting_programs(code, teacher, programs, completed)
    ]
    return sorted(scored, key=lambda ps: (-sum(ps[1].values()), ps[0].hours, ps[0].program_id))


def ranked_for(
    code: str, teacher: TeacherView, catalogue: Catalogue, rules: Rules
) -> list[tuple[ProgramView, dict[str, float]]]:
    """``rank_programs`` of every program fitting ``code`` for this teacher, kept in the
    catalogue's cache per teacher profile (audience, remote or not, subjects): the ranking
    depends on nothing else, and thousands of drafts share a few hundred profiles. What a
    teacher has completed is filtered out afterwards (the order does not change)."""
    cache = catalogue.rank_cache
    key = (code, teacher.audience, teacher.remote, frozenset(teacher.subjects), rules.version)
    if cache is not None:
        found = cache.get(key)
        if found is not None:
            return found
    found = rank_programs(code, teacher, catalogue.programs_on(code), rules)
    if cache is not None:
        cache[key] = found
    return found


_PART_NAMES = {
    "federal_registry": "входит в Федеральный реестр ДПП",
    "subject_match": "по предмету педагога",
    "format": "формат подходит муниципалитету",
    "hours": "короче",
}


def _why_program(
    best: tuple[ProgramView, dict[str, float]],
    ranked: list[tuple[ProgramView, dict[str, float]]],
    teacher: TeacherView,
) -> str:
    program, parts = best
    why = [
        f"программа «{program.title}» ({program.hours} ч, "
        f"{wording.format_of(program.format)}) адресует компетенцию "
        f"и подходит категории слушателей «{wording.audience(teacher.audience)}»"
    ]
    if program.federal_registry:
        why.append("входит в Федеральный реестр ДПП")
    if teacher.remote and parts["format"] > 0:
        why.append("муниципалитет удалённый — выбран дистанционный/сетевой формат")
    if parts["subject_match"] > 0:
        why.append("программа по предмету педагога")
    if len(ranked) > 1:
        runner, runner_parts = ranked[1]
        wins = [
            _PART_NAMES[k]
            for k in ("federal_registry", "subject_match", "format", "hours")
            if parts[k] > runner_parts[k]
        ]
        if not wins:
            # Equal scores: the order of ``rank_programs`` decided (shorter, then its id).
            wins = [
                "при равных баллах короче"
                if program.hours < runner.hours
                else "при равных баллах и часах — первая по номеру в реестре"
            ]
        why.append(
            # Its hours and format too: the registers hold programs of the same title.
            f"подходящих программ: {len(ranked)}; выбрана вместо следующей по баллам "
            f"«{runner.title}» ({runner.hours} ч, {wording.format_of(runner.format)}): "
            f"{', '.join(wins)} (баллы {_points(sum(parts.values()))} против "
            f"{_points(sum(runner_parts.values()))})"
        )
    return "; ".join(why)


def _points(value: float) -> str:
    """A program's score as a Russian reader writes it: ``3,14``."""
    return f"{value:.2f}".replace(".", ",")


def best_site(
    code: str, teacher: TeacherView, sites: Iterable[SiteView]
) -> tuple[SiteView, int] | None:
    """An internship site with room that addresses ``code``: the teacher's municipality
    first, then the least loaded, then by id. The site and how many qualified."""
    fitting = [s for s in sites if code in s.competencies and s.load < s.capacity]
    if not fitting:
        return None
    fitting.sort(
        key=lambda s: (s.municipality_id != teacher.municipality_id, s.load / s.capacity, s.site_id)
    )
    return fitting[0], len(fitting)


def best_mentor(teacher: TeacherView, mentors: Iterable[MentorView]) -> MentorView | None:
    """A mentor with room: same organisation, then municipality, then subject, least loaded."""
    free = [m for m in mentors if m.load < m.capacity]
    if not free:
        return None
    return min(
        free,
        key=lambda m: (
            m.organization_id != teacher.organization_id,
            m.municipality_id != teacher.municipality_id,
            not set(m.subjects) & set(teacher.subjects),
            m.load,
            m.mentor_id,
        ),
    )


def best_community(
    code: str,
    teacher: TeacherView,
    communities: Iterable[CommunityView],
    rules: Rules,
    taken: set[str],
) -> CommunityView | None:
    """A community on the competency (or the teacher's subject) the teacher can join — of
    the teacher's subject when it names subjects: a municipal one of the teacher's
    municipality first, then by the level order."""
    order: dict[str, int] = {level: n for n, level in enumerate(rules.community.level_order)}
    subjects = set(teacher.subjects)
    fitting = [
        c
        for c in communities
        if c.community_id not in taken
        and (code in c.competencies or (not c.competencies and not subjects.isdisjoint(c.subjects)))
        # a community of named subjects is for their teachers
        and (not c.subjects or not subjects.isdisjoint(c.subjects))
        and (c.level != "municipal" or c.municipality_id == teacher.municipality_id)
    ]
    if not fitting:
        return None
    return min(
        fitting,
        key=lambda c: (
            code not in c.competencies,
            order.get(c.level, len(order)),
            c.community_id,
        ),
    )


def best_tutor(
    program_id: str, code: str, teacher: TeacherView, tutors: Iterable[TutorView]
) -> TutorView | None:
    """A ЦНППМ tutor with room who tutors the program (or any) in the teacher's
    municipality: the program named first, then the competency, then the least loaded."""
    free = [
        t
        for t in tutors
        if t.load < t.capacity
        and (not t.programs or program_id in t.programs)
        and (not t.municipalities or teacher.municipality_id in t.municipalities)
    ]
    if not free:
        return None
    return min(
        free,
        key=lambda t: (
            program_id not in t.programs,
            code not in t.specialisations,
            t.load / t.capacity,
            t.tutor_id,
        ),
    )


def draft_route(
    teacher: TeacherView,
    deficits: Sequence[CompetencyResult],
    catalogue: Catalogue,
    rules: Rules,
    start: date,
    completed_programs: Iterable[str] = (),
) -> Draft:
    """The route for a diagnosis's deficits, most severe first, every step with its reason.

    Per deficit: the best fitting program (with post-course support after it and a tutor
    when it is a federal one) or, with none, methodist consultations; an internship for a
    critical deficit; a community for horizontal learning (up to the rule's number per
    route). A young teacher gets one mentoring step for the whole route. Then the steps are
    paced within the yearly hours budget (``schedule``).
    """
    completed = set(completed_programs)
    steps: list[RouteStep] = []
    sites = {s.site_id: s for s in catalogue.sites}
    tutors = {t.tutor_id: t for t in catalogue.tutors}
    communities_taken: set[str] = set()
    chosen_programs: set[str] = set()
    ordered = ordered_deficits(deficits)

    def add(kind: str, code: str, hours: int, reason: str, **ids: str | None) -> RouteStep:
        step = RouteStep(
            step_id=f"s{len(steps) + 1}",
            competency=code,
            kind=kind,  # type: ignore[arg-type]
            hours=hours,
            reason=reason,
            **ids,  # type: ignore[arg-type]
        )
        steps.append(step)
        return step

    if teacher.young and ordered:
        mentor = best_mentor(teacher, catalogue.mentors)
        first = ordered[0]
        head = (
            "молодой педагог (до 35 лет, стаж до 3 лет) — наставничество; "
            f"начинаем с компетенции «{wording.competency(first.code)}» "
            f"({wording.severity(first.level)})"
        )
        if mentor is None:
            add(
                "mentoring",
                first.code,
                rules.hours.mentoring,
                f"{head}; свободного наставника в реестре нет — его назначит методист",
            )
        else:
            where = (
                "из той же организации"
                if mentor.organization_id == teacher.organization_id
                else "из того же муниципалитета"
                if mentor.municipality_id == teacher.municipality_id
                else "из региона"
            )
            add(
                "mentoring",
                first.code,
                rules.hours.mentoring,
                f"{head}; наставник {where}, занято мест {mentor.load} из {mentor.capacity}",
                mentor_id=mentor.mentor_id,
            )

    for deficit in ordered:
        code = deficit.code
        head = (
            f"{wording.severity(deficit.level)} по компетенции «{wording.competency(code)}» "
            f"(балл {deficit.score:g})".replace(".", ",")
        )
        on_code = catalogue.programs_on(code)
        excluded = completed | chosen_programs
        ranked = [
            ps
            for ps in ranked_for(code, teacher, catalogue, rules)
            if ps[0].program_id not in excluded
        ]
        if ranked:
            program, _ = ranked[0]
            chosen_programs.add(program.program_id)
            tutor = (
                best_tutor(program.program_id, code, teacher, tutors.values())
                if program.federal_registry
                else None
            )
            reason = f"{head}; {_why_program(ranked[0], ranked, teacher)}"
            if program.federal_registry:
                if tutor is None:
                    reason += "; свободного тьютора ЦНППМ нет"
                else:
                    reason += "; тьютор ЦНППМ сопровождает федеральную программу"
                    tutors[tutor.tutor_id] = replace(tutor, load=tutor.load + 1)
            step = add(
                "program",
                code,
                program.hours,
                reason,
                program_id=program.program_id,
                tutor_id=tutor.tutor_id if tutor else None,
            )
            add(
                "post_course_support",
                code,
                rules.hours.post_course_support,
                f"посткурсовое сопровождение после программы «{program.title}»: методист "
                "помогает применить освоенное в работе",
                program_id=program.program_id,
                follows=step.step_id,
            )
        else:
            fitting = fitting_programs(code, teacher, on_code, ())
            in_route = [p for p in fitting if p.program_id in chosen_programs]
            if in_route:
                why = (
                    f"программа «{in_route[0].title}» уже в маршруте и охватывает эту "
                    "компетенцию; других подходящих программ нет"
                )
            elif fitting:
                why = "все подходящие программы педагог уже прошёл"
            else:
                why = "в реестре нет программы по этой компетенции для аудитории педагога"
            add(
                "consultation",
                code,
                rules.hours.consultation,
                f"{head}; {why} — консультации регионального методиста",
            )

        if deficit.level in rules.internship.for_levels:
            found = best_site(code, teacher, sites.values())
            if found is not None:
                site, among = found
                where = (
                    "в муниципалитете педагога"
                    if site.municipality_id == teacher.municipality_id
                    else "в другом муниципалитете (в своём площадки нет)"
                )
                add(
                    "internship",
                    code,
                    rules.hours.internship,
                    f"{head}: стажировка на площадке «{site.title}» {where}; "
                    f"подходящих площадок с местами: {among}",
                    site_id=site.site_id,
                )
                sites[site.site_id] = replace(site, load=site.load + 1)

        if len(communities_taken) < rules.community.per_route:
            community = best_community(
                code, teacher, catalogue.communities, rules, communities_taken
            )
            if community is not None:
                communities_taken.add(community.community_id)
                on = "компетенции" if code in community.competencies else "предмету педагога"
                add(
                    "community",
                    code,
                    rules.hours.community,
                    f"{head}: горизонтальное обучение в сообществе «{community.title}» "
                    f"({wording.level(community.level)} уровень) по {on}",
                    community_id=community.community_id,
                )

    return schedule(steps, rules, start)


# --- pace ----------------------------------------------------------------------------------

PARALLEL = ("mentoring", "community")


def schedule(steps: Sequence[RouteStep], rules: Rules, start: date) -> Draft:
    """Dates per step within the yearly hours budget.

    Steps go one after another at the rule's hours per week, in their order; mentoring and
    communities run alongside from the step they belong to for their weeks. A step goes
    into the budget year it starts in; when the year's remaining hours cannot hold it, it
    moves to the start of the next budget year (its reason says so). A step longer than a
    whole year's budget gets a year of its own.
    """
    budget = rules.budget
    used: Counter[int] = Counter()
    cursor = start
    out: list[RouteStep] = []
    ends: dict[str, date] = {}

    def period_of(day: date) -> int:
        return day.year if day >= budget.period_start(day.year) else day.year - 1

    for step in steps:
        begin = cursor
        if step.kind == "post_course_support" and step.follows in ends:
            begin = max(begin, ends[step.follows] + timedelta(days=rules.pace.post_course_gap_days))
        period = period_of(begin)
        note = ""
        while used[period] and used[period] + step.hours > budget.yearly_hours:
            period += 1
            begin = max(begin, budget.period_start(period))
            note = (
                f"; перенесено на {period} г.: часов в году {period - 1} не хватает "
                f"(бюджет {budget.yearly_hours} ч)"
            )
        if step.hours > budget.yearly_hours:
            note += f"; шаг длиннее годового бюджета ({budget.yearly_hours} ч)"
        used[period] += step.hours
        if step.kind in PARALLEL:
            weeks = rules.pace.parallel_weeks.get(step.kind, 1)  # type: ignore[call-overload]
            end = begin + timedelta(weeks=weeks) - timedelta(days=1)
        else:
            weeks = max(1, math.ceil(step.hours / rules.pace.hours_per_week))
            end = begin + timedelta(weeks=weeks) - timedelta(days=1)
            cursor = end + timedelta(days=1)
        ends[step.step_id] = end
        out.append(
            step.model_copy(
                update={
                    "starts_on": begin,
                    "ends_on": end,
                    "period": period,
                    "reason": step.reason + note,
                }
            )
        )
    return Draft(
        steps=out,
        total_hours=sum(s.hours for s in out),
        starts_on=min((s.starts_on for s in out if s.starts_on), default=None),
        ends_on=max((s.ends_on for s in out if s.ends_on), default=None),
        hours_by_period={str(p): h for p, h in sorted(used.items())},
    )
