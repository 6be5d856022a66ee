"""Deficit analytics the roadmap asks for (items 14–16): deficits by competency,
municipality, organisation and subject, and the program gap — frequent deficits that no
program of the registries covers — as recommendations for updating program content; beside
them the educational needs teachers ask for (roadmap 15: by competency with its deficits and
programs, by municipality and organisation, the themes and formats wanted).

The breakdowns are pure: they take the levels of the current diagnoses and the read models
and return plain rows that the API serves as JSON and the workbook writes as sheets;
``report`` loads their inputs.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from sqlalchemy.ext.asyncio import AsyncSession

from iomflow.diagnostics import repository
from iomflow.diagnostics.domain import Framework

AUDIENCE_NAMES = {
    "preschool": "дошкольное образование",
    "general": "общее образование",
    "college": "СПО",
}


FORMAT_NAMES = {
    "course": "курсы повышения квалификации",
    "internship": "стажировка",
    "mentoring": "наставничество",
    "community": "профессиональное сообщество",
    "consultation": "консультация",
    "seminar": "семинар",
    "webinar": "вебинар",
}
THEME_NAMES = {
    "subject": "предметная",
    "functional_literacy": "функциональная грамотность",
    "updated_fgos": "обновлённые ФГОС",
    "digital_environment": "цифровая образовательная среда",
    "quality_assessment": "оценка качества образования",
    "gifted_children": "одарённые дети",
    "career_guidance": "профориентация",
    "upbringing": "воспитание",
    "preschool_quality": "качество дошкольного образования",
    "management": "управление",
    "burnout_prevention": "профилактика выгорания",
}


@dataclass(frozen=True)
class Answer:
    """One teacher's latest needs answer, where they worked when they answered."""

    teacher_id: str
    organization_id: str
    municipality_id: str
    competencies: Sequence[str]
    themes: Sequence[str]
    formats: Sequence[str]


@dataclass(frozen=True)
class Level:
    """One competency of one teacher's current diagnosis."""

    teacher_id: str
    organization_id: str
    municipality_id: str
    code: str
    level: str
    deficit: bool


@dataclass
class Tally:
    assessed: set[str] = field(default_factory=set)
    deficit: Counter[str] = field(default_factory=Counter)
    critical: Counter[str] = field(default_factory=Counter)
    teachers_with_deficits: set[str] = field(default_factory=set)

    def add(self, level: Level) -> None:
        self.assessed.add(level.teacher_id)
        if level.deficit:
            self.deficit[level.code] += 1
            self.teachers_with_deficits.add(level.teacher_id)
            if level.level == "critical_deficit":
                self.critical[level.code] += 1


def _share(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def tally(levels: Iterable[Level], key: Any) -> dict[str, Tally]:
    out: dict[str, Tally] = defaultdict(Tally)
    for level in levels:
        for k in key(level):
            out[k].add(level)
    return dict(out)


def by_competency(framework: Framework, levels: Sequence[Level]) -> list[dict[str, Any]]:
    assessed: Counter[str] = Counter(lv.code for lv in levels)
    region = tally(levels, lambda lv: [""]).get("", Tally())
    groups = {g.code: g.name for g in framework.groups}
    return [
        {
            "code": c.code,
            "name": c.name,
            "group": groups[c.group],
            "assessed": assessed[c.code],
            "deficits": region.deficit[c.code],
            "critical": region.critical[c.code],
            "share": _share(region.deficit[c.code], assessed[c.code]),
        }
        for c in framework.competencies
    ]


def by_area(
    framework: Framework,
    levels: Sequence[Level],
    key: Any,
    names: Mapping[str, str],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per area (municipality, organisation, subject): teachers diagnosed, with
    deficits, and the deficit count per competency code."""
    rows = []
    for area, t in sorted(tally(levels, key).items(), key=lambda kv: names.get(kv[0], kv[0])):
        rows.append(
            {
                "id": area,
                "name": names.get(area, area),
                **(extra or {}).get(area, {}),
                "diagnosed": len(t.assessed),
                "with_deficits": len(t.teachers_with_deficits),
                "share": _share(len(t.teachers_with_deficits), len(t.assessed)),
                "deficits": {c.code: t.deficit[c.code] for c in framework.competencies},
            }
        )
    return rows


def program_gap(
    framework: Framework,
    levels: Sequence[Level],
    audiences: Mapping[str, str],
    programs: Sequence[Any],
    min_share: float = 5.0,
) -> list[dict[str, Any]]:
    """Competencies with frequent deficits (at least ``min_share`` % of the teachers of an
    audience assessed on it) and no program for that audience that names the competency;
    those only reached through a program theme come after. Ranked by deficits."""
    assessed: Counter[tuple[str, str]] = Counter()
    deficits: Counter[tuple[str, str]] = Counter()
    for lv in levels:
        key = (lv.code, audiences.get(lv.teacher_id, "general"))
        assessed[key] += 1
        deficits[key] += lv.deficit
    rows = []
    for (code, audience), count in deficits.items():
        share = _share(count, assessed[(code, audience)])
        if not count or share < min_share:
            continue
        competency = framework.competency(code)
        fits = [p for p in programs if audience in p.audiences]
        direct = [p for p in fits if code in p.competencies]
        if direct:
            continue
        by_theme = [p for p in fits if set(competency.themes) & set(p.themes)]
        audience_name = AUDIENCE_NAMES.get(audience, audience)
        rows.append(
            {
                "code": code,
                "name": competency.name,
                "audience": audience,
                "audience_name": audience_name,
                "deficits": count,
                "assessed": assessed[(code, audience)],
                "share": share,
                "coverage": "theme" if by_theme else "none",
                "theme_programs": sorted(p.program_id for p in by_theme),
                "recommendation": (
                    f"Включить компетенцию «{competency.name}» в содержание программ по теме "
                    f"({len(by_theme)} ДПП): дефицит у {count} педагогов ({share} %), "
                    f"{audience_name}."
                    if by_theme
                    else f"Разработать ДПП ПК по компетенции «{competency.name}» "
                    f"({audience_name}): дефицит у {count} педагогов ({share} %), "
                    "программ в реестре нет."
                ),
            }
        )
    rows.sort(key=lambda r: (r["coverage"] != "none", -r["deficits"], r["code"], r["audience"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def _area_needs(
    answers: Sequence[Answer],
    key: Any,
    names: Mapping[str, str],
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    groups: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        groups[key(a)].append(a)
    rows = []
    for area, part in sorted(groups.items(), key=lambda kv: (names.get(kv[0], kv[0]), kv[0])):
        asking = Counter(c for a in part for c in set(a.competencies))
        formats = Counter(f for a in part for f in set(a.formats))
        rows.append(
            {
                "id": area,
                "name": names.get(area, area),
                **(extra or {}).get(area, {}),
                "answered": len(part),
                "competencies": dict(sorted(asking.items())),
                "formats": dict(sorted(formats.items())),
            }
        )
    return rows


def needs(
    framework: Framework,
    answers: Sequence[Answer],
    competencies: Sequence[Mapping[str, Any]],
    programs: Sequence[Any],
    gap: Sequence[Mapping[str, Any]],
    municipalities: Mapping[str, str],
    organizations: Sequence[Any] = (),
) -> dict[str, Any]:
    """The needs section: for each competency asked for, the teachers asking beside its
    deficit count (``competencies``: ``by_competency``'s rows), the programs that name it
    and whether it is in the program gap (``gap``); the same by municipality and
    organisation; the themes and formats wanted. One answer per teacher (``answers``)."""
    answered = len(answers)
    deficits = {r["code"]: r["deficits"] for r in competencies}
    in_gap = {r["code"] for r in gap}
    asking = Counter(c for a in answers for c in set(a.competencies))
    by_code = framework.by_code
    rows = [
        {
            "code": code,
            "name": by_code[code].name if code in by_code else code,
            "asking": count,
            "share": _share(count, answered),
            "deficits": deficits.get(code, 0),
            "programs": sorted(p.program_id for p in programs if code in p.competencies),
            "in_program_gap": code in in_gap,
        }
        for code, count in asking.items()
    ]
    rows.sort(key=lambda r: (-r["asking"], r["code"]))

    def counted(values: Counter[str], names: Mapping[str, str]) -> list[dict[str, Any]]:
        return [
            {"code": k, "name": names.get(k, k), "count": n, "share": _share(n, answered)}
            for k, n in sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    return {
        "answered": answered,
        "competencies": rows,
        "municipalities": _area_needs(answers, lambda a: a.municipality_id, municipalities),
        "organizations": _area_needs(
            answers,
            lambda a: a.organization_id,
            {o.organization_id: o.name for o in organizations},
            {
                o.organization_id: {
                    "municipality": municipalities.get(o.municipality_id, o.municipality_id)
                }
                for o in organizations
            },
        ),
        "themes": counted(Counter(t for a in answers for t in set(a.themes)), THEME_NAMES),
        "formats": counted(Counter(f for a in answers for f in set(a.formats)), FORMAT_NAMES),
    }


# --- the workbook ----------------------------------------------------------------------------


def add_sheet(book: Workbook, title: str, header: list[str], rows: Iterable[list[Any]]) -> None:
    sheet = book.create_sheet(title)
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "B2"
    for i, name in enumerate(header, 1):
        sheet.column_dimensions[get_column_letter(i)].width = min(max(len(name) + 2, 10), 45)


def workbook(framework: Framework, report: Mapping[str, Any]) -> bytes:
    """The analytics as an XLSX workbook, in Russian, one sheet per breakdown."""
    book = Workbook()
    assert book.active is not None
    book.remove(book.active)
    codes = [c.code for c in framework.competencies]
    names = [c.name for c in framework.competencies]
    add_sheet(
        book,
        "Компетенции",
        ["Код", "Компетенция", "Группа", "Оценено", "Дефицитов", "Критических", "Доля, %"],
        (
            [
                r["code"],
                r["name"],
                r["group"],
                r["assessed"],
                r["deficits"],
                r["critical"],
                r["share"],
            ]
            for r in report["competencies"]
        ),
    )
    area_header = ["Прошли диагностику", "С дефицитами", "Доля с дефицитами, %", *names]
    for title, key, lead in (
        ("Муниципалитеты", "municipalities", ["Код", "Муниципалитет"]),
        ("Организации", "organizations", ["Код", "Организация", "Муниципалитет"]),
        ("Предметы", "subjects", ["Предмет"]),
    ):
        add_sheet(
            book,
            title,
            lead + area_header,
            (
                [
                    *([r["id"], r["name"]] if len(lead) > 1 else [r["name"]]),
                    *([r.get("municipality", "")] if len(lead) > 2 else []),
                    r["diagnosed"],
                    r["with_deficits"],
                    r["share"],
                    *(r["deficits"][c] for c in codes),
                ]
                for r in report[key]
            ),
        )
    add_sheet(
        book,
        "Дефицит программ",
        [
            "Ранг",
            "Код",
            "Компетенция",
            "Аудитория",
            "Дефицитов",
            "Оценено",
            "Доля, %",
            "Покрытие",
            "Рекомендация",
        ],
        (
            [
                r["rank"],
                r["code"],
                r["name"],
                r["audience_name"],
                r["deficits"],
                r["assessed"],
                r["share"],
                "только по теме" if r["coverage"] == "theme" else "нет программ",
                r["recommendation"],
            ]
            for r in report["program_gap"]
        ),
    )
    if "needs" in report:  # a report of the deficits alone has no needs section
        needs_sheets(book, framework, report["needs"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def needs_sheets(book: Workbook, framework: Framework, section: Mapping[str, Any]) -> None:
    """The needs section's sheets: «Образовательные потребности» (by competency, beside its
    deficits and programs), by municipality and organisation, the themes and formats."""
    add_sheet(
        book,
        "Образовательные потребности",
        [
            "Код",
            "Компетенция",
            "Запрашивают, педагогов",
            "Доля ответивших, %",
            "Дефицитов по диагностике",
            "Программ в реестре",
            "Программы",
            "В дефиците программ",
        ],
        (
            [
                r["code"],
                r["name"],
                r["asking"],
                r["share"],
                r["deficits"],
                len(r["programs"]),
                ", ".join(r["programs"]),
                "да" if r["in_program_gap"] else "нет",
            ]
            for r in section["competencies"]
        ),
    )
    asked = [r["code"] for r in section["competencies"]]
    names = {c.code: c.name for c in framework.competencies}
    formats = list(FORMAT_NAMES)
    tail = [
        "Ответили, педагогов",
        *(names.get(c, c) for c in asked),
        *(f"Формат: {FORMAT_NAMES[f]}" for f in formats),
    ]
    for title, key, lead in (
        ("Потребности — муниципалитеты", "municipalities", ["Код", "Муниципалитет"]),
        ("Потребности — организации", "organizations", ["Код", "Организация", "Муниципалитет"]),
    ):
        add_sheet(
            book,
            title,
            lead + tail,
            (
                [
                    r["id"],
                    r["name"],
                    *([r.get("municipality") or ""] if len(lead) > 2 else []),
                    r["answered"],
                    *(r["competencies"].get(c, 0) for c in asked),
                    *(r["formats"].get(f, 0) for f in formats),
                ]
                for r in section[key]
            ),
        )
    add_sheet(
        book,
        "Потребности — темы и форматы",
        ["Вид", "Код", "Название", "Педагогов", "Доля ответивших, %"],
        [
            *(["тема", r["code"], r["name"], r["count"], r["share"]] for r in section["themes"]),
            *(["формат", r["code"], r["name"], r["count"], r["share"]] for r in section["formats"]),
        ],
    )


# --- analytics -------------------------------------------------------------------------------


async def report(
    session: AsyncSession,
    framework: Framework,
    campaign_id: str | None = None,
    min_share: float = 5.0,
) -> dict[str, Any]:
    """Every breakdown of the analytics, over the teachers' current diagnoses (or their
    diagnoses in one campaign)."""
    levels = [Level(*row) for row in await repository.level_rows(session, campaign_id)]
    teachers = {t.teacher_id: t for t in await repository.all_rows(session, repository.teachers)}
    municipalities = {
        m.municipality_id: m.name
        for m in await repository.all_rows(session, repository.municipalities)
    }
    organizations = await repository.all_rows(session, repository.organizations)
    programs = await repository.all_rows(session, repository.programs)

    def subjects(level: Level) -> list[str]:
        teacher = teachers.get(level.teacher_id)
        return (list(teacher.subjects) if teacher else []) or ["без предмета"]

    answers = [
        Answer(
            r.teacher_id,
            r.organization_id,
            r.municipality_id,
            list(r.competencies),
            list(r.themes),
            list(r.formats),
        )
        for r in await repository.needs_rows(session, campaign_id)
    ]
    competencies = by_competency(framework, levels)
    gap = program_gap(
        framework,
        levels,
        {t: row.audience for t, row in teachers.items()},
        programs,
        min_share,
    )
    return {
        "campaign_id": campaign_id,
        "framework_version": framework.version,
        "diagnosed": len({lv.teacher_id for lv in levels}),
        "competencies": competencies,
        "municipalities": by_area(
            framework, levels, lambda lv: [lv.municipality_id], municipalities
        ),
        "organizations": by_area(
            framework,
            levels,
            lambda lv: [lv.organization_id],
            {o.organization_id: o.name for o in organizations},
            {
                o.organization_id: {
                    "municipality": municipalities.get(o.municipality_id, o.municipality_id)
                }
                for o in organizations
            },
        ),
        "subjects": by_area(framework, levels, subjects, {}),
        "program_gap": gap,
        "needs": needs(
            framework, answers, competencies, programs, gap, municipalities, organizations
        ),
    }
