"""Deficit analytics the roadmap asks for (items 14–16): deficits by competency,
municipality, organisation and subject, and the program gap — frequent deficits that no
program of the registries covers — as recommendations for updating program content.

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


# --- the workbook ----------------------------------------------------------------------------


def _sheet(book: Workbook, title: str, header: list[str], rows: Iterable[list[Any]]) -> None:
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
    _sheet(
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
        _sheet(
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
    _sheet(
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
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


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

    return {
        "campaign_id": campaign_id,
        "framework_version": framework.version,
        "diagnosed": len({lv.teacher_id for lv in levels}),
        "competencies": by_competency(framework, levels),
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
        "program_gap": program_gap(
            framework,
            levels,
            {t: row.audience for t, row in teachers.items()},
            programs,
            min_share,
        ),
    }
