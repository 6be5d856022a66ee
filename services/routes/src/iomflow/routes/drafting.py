"""Drafting a route (ИОМ): the activities for a diagnosis's deficits (and a prevention
step for a high burnout level), each with its reason, and their pace within the yearly
hours budget. Pure rules, no I/O; the rule
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
    PairView,
    PracticeView,
    ProgramView,
    Rules,
    SiteView,
    TeacherView,
    TutorView,
)
from iomflow.shared.contracts import BurnoutResult, CompetencyResult, Level, RouteStep

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


PREVENTION = "burnout_prevention"
"""The theme (of communities and practices) and the purpose (of steps) of prevention."""

_BURNOUT_LEVELS = {"low": "низкий", "moderate": "умеренный", "high": "высокий"}


def _day(value: date) -> str:
    return value.strftime("%d.%m.%Y")


def active_pair(teacher: TeacherView, pairs: Iterable[PairView], today: date) -> PairView | None:
    """The young-teacher pair the teacher is the mentee of and that has not ended (no end
    date, or one not past): the earliest started, then by id."""
    mine = [
        p
        for p in pairs
        if p.mentee_id == teacher.teacher_id
        and p.kind == "young_teacher"
        and (p.ends_on is None or p.ends_on >= today)
    ]
    return min(mine, key=lambda p: (p.starts_on, p.pair_id), default=None)


def pair_note(pair: PairView) -> str:
    """Why a young teacher in a pair gets no mentoring step: the pair, its mentor, period."""
    until = f" по {_day(pair.ends_on)}" if pair.ends_on is not None else ""
    focus = f", направление «{pair.focus}»" if pair.focus else ""
    return (
        f"наставник маршрутом не назначается: молодой педагог уже в паре наставничества "
        f"«{pair.pair_id}» своей школы (наставник {pair.mentor_id}, с {_day(pair.starts_on)}"
        f"{until}{focus})"
    )


def prevention_community(
    teacher: TeacherView, communities: Iterable[CommunityView], rules: Rules, taken: set[str]
) -> CommunityView | None:
    """A community of the burnout prevention theme the teacher can join (of the teacher's
    subject when it names subjects): one of the teacher's municipality first, then by the
    level order (regional before federal), then by id."""
    order: dict[str, int] = {level: n for n, level in enumerate(rules.community.level_order)}
    subjects = set(teacher.subjects)
    fitting = [
        c
        for c in communities
        if PREVENTION in c.themes
        and c.community_id not in taken
        and (not c.subjects or not subjects.isdisjoint(c.subjects))
        and (c.level != "municipal" or c.municipality_id == teacher.municipality_id)
    ]
    return min(
        fitting,
        key=lambda c: (
            c.municipality_id != teacher.municipality_id,
            order.get(c.level, len(order)),
            c.community_id,
        ),
        default=None,
    )


def best_practice(
    code: str, teacher: TeacherView, catalogue: Catalogue, theme: str | None = None
) -> PracticeView | None:
    """An effective practice of the bank on the competency (or, given, the theme) to cite:
    of the teacher's municipality first, then of the region; on the competency before the
    theme; the newest, then by id."""
    found: dict[str, PracticeView] = {p.practice_id: p for p in catalogue.practices_on(code)}
    if theme is not None:
        found.update({p.practice_id: p for p in catalogue.practices_on(theme, "theme")})
    return min(
        found.values(),
        key=lambda p: (
            p.municipality_id != teacher.municipality_id,
            code not in p.competencies,
            -p.year,
            p.practice_id,
        ),
        default=None,
    )


def _cite(practice: PracticeView, teacher: TeacherView) -> str:
    where = (
        "муниципалитета педагога"
        if practice.municipality_id == teacher.municipality_id
        else "другого муниципалитета региона"
    )
    year = f", {practice.year}" if practice.year else ""
    return (
        f"методист опирается на эффективную практику «{practice.title}» из банка практик "
        f"({where}{year})"
    )


def prevention(
    burnout: BurnoutResult,
    teacher: TeacherView,
    catalogue: Catalogue,
    rules: Rules,
    taken: set[str],
) -> RouteStep:
    """The prevention step of a high burnout level (its id left to the route): a community of
    the prevention theme or, with none, methodist consultations (citing a practice of the
    bank when one fits). Its competency is the rule's (``burnout.competency``): prevention
    works on the teacher's psychological and pedagogical resources, not on a deficit."""
    rule = rules.burnout
    code = rule.competency
    head = (
        f"{_BURNOUT_LEVELS.get(burnout.level, burnout.level)} уровень профессионального "
        f"выгорания (индекс {burnout.index:g} из 100)".replace(".", ",")
        + " — шаг профилактики выгорания"
    )
    community = prevention_community(teacher, catalogue.communities, rules, taken)
    if community is not None:
        return RouteStep(
            kind="community",
            competency=code,
            hours=rule.community_hours,
            community_id=community.community_id,
            reason=f"{head}: сообщество «{community.title}» "
            f"({wording.level(community.level)} уровень) с темой профилактики выгорания",
            purpose=PREVENTION,
        )
    reason = (
        f"{head}: сообщества с темой профилактики выгорания, доступного педагогу, нет — "
        "консультации регионального методиста"
    )
    practice = best_practice(code, teacher, catalogue, PREVENTION)
    if practice is not None:
        reason += f"; {_cite(practice, teacher)}"
    return RouteStep(
        kind="consultation",
        competency=code,
        hours=rule.consultation_hours,
        practice_id=practice.practice_id if practice else None,
        reason=reason,
        purpose=PREVENTION,
    )


def draft_route(
    teacher: TeacherView,
    deficits: Sequence[CompetencyResult],
    catalogue: Catalogue,
    rules: Rules,
    start: date,
    completed_programs: Iterable[str] = (),
    *,
    burnout: BurnoutResult | None = None,
    pairs: Iterable[PairView] = (),
) -> Draft:
    """The route for a diagnosis's deficits, most severe first, every step with its reason.

    Per deficit: the best fitting program (with post-course support after it and a tutor
    when it is a federal one) or, with none, methodist consultations (citing a practice of
    the bank on the competency when there is one); an internship for a critical deficit; a
    community for horizontal learning (up to the rule's number per route). A young teacher
    gets one mentoring step for the whole route — unless a pair of the school's mentoring
    program already mentors them (``pairs``; the route's first step says so). A burnout
    level of the rule's (high) adds a prevention step first (``prevention``). Then the
    steps are paced within the yearly hours budget (``schedule``).
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

    prevention_communities: set[str] = set()
    pair = active_pair(teacher, pairs, start) if teacher.young and ordered else None
    notes = [pair_note(pair)] if pair is not None else []

    if burnout is not None and burnout.level in rules.burnout.for_levels and ordered:
        step = prevention(burnout, teacher, catalogue, rules, communities_taken)
        steps.append(step.model_copy(update={"step_id": f"s{len(steps) + 1}"}))
        if step.community_id is not None:
            # not one of the route's communities for deficits, but not offered twice
            prevention_communities.add(step.community_id)
            communities_taken.add(step.community_id)

    if teacher.young and ordered and pair is None:
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
            reason = f"{head}; {why} — консультации регионального методиста"
            practice = best_practice(code, teacher, catalogue)
            if practice is not None:
                reason += f"; {_cite(practice, teacher)}"
            add(
                "consultation",
                code,
                rules.hours.consultation,
                reason,
                practice_id=practice.practice_id if practice else None,
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

        if len(communities_taken - prevention_communities) < rules.community.per_route:
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

    if notes:  # the step mentoring would have begun with says why there is none
        first = next(i for i, s in enumerate(steps) if s.purpose == "deficit")
        steps[first] = steps[first].model_copy(
            update={"reason": f"{steps[first].reason}; {'; '.join(notes)}"}
        )
    return replace(schedule(steps, rules, start), notes=notes)


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
