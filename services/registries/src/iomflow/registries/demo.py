"""The demo region: Irkutsk oblast's 42 municipalities with generated schools and teachers.

Deterministic from a seed, so every run and every test sees the same region. The shipped
``data/demo_region.json`` is ``python -m iomflow.registries.demo`` with the default seed.
Names of people are never generated: teachers are pseudonymous ids with attributes.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

MUNICIPALITIES: list[tuple[str, bool]] = [
    ("г. Иркутск", False),
    ("Ангарский городской округ", False),
    ("г. Братск", False),
    ("г. Усть-Илимск", False),
    ("г. Усолье-Сибирское", False),
    ("г. Черемхово", False),
    ("г. Саянск", False),
    ("г. Зима", False),
    ("г. Тулун", False),
    ("г. Свирск", False),
    ("Шелеховский район", False),
    ("Иркутский район", False),
    ("Братский район", False),
    ("Нижнеилимский район", False),
    ("Тайшетский район", False),
    ("Усть-Кутский район", False),
    ("Усть-Илимский район", False),
    ("Тулунский район", False),
    ("Куйтунский район", False),
    ("Нижнеудинский район", False),
    ("Зиминский район", False),
    ("Черемховский район", False),
    ("Усольский район", False),
    ("Заларинский район", False),
    ("Балаганский район", True),
    ("Аларский район", False),
    ("Нукутский район", False),
    ("Боханский район", False),
    ("Осинский район", False),
    ("Эхирит-Булагатский район", False),
    ("Баяндаевский район", True),
    ("Ольхонский район", True),
    ("Качугский район", True),
    ("Жигаловский район", True),
    ("Казачинско-Ленский район", True),
    ("Киренский район", True),
    ("Катангский район", True),
    ("Мамско-Чуйский район", True),
    ("Бодайбинский район", True),
    ("Слюдянский район", False),
    ("Чунский район", False),
    ("Усть-Удинский район", True),
]

COMPETENCY_GROUPS = {
    "subject_content": "Предметное содержание",
    "teaching_methods": "Методика преподавания",
    "psych_pedagogy": "Психолого-педагогические компетенции",
    "upbringing": "Воспитательная работа",
    "functional_literacy": "Формирование функциональной грамотности",
    "assessment": "Оценка образовательных результатов",
    "digital": "Цифровая образовательная среда",
    "communication": "Коммуникативные компетенции",
    "career_guidance": "Профориентация",
    "gifted_children": "Работа с одарёнными детьми",
}

SUBJECTS = [
    "математика",
    "русский язык",
    "физика",
    "химия",
    "биология",
    "история",
    "география",
    "информатика",
    "английский язык",
    "литература",
]

PROGRAM_TITLES = {
    "subject_content": "Углублённое предметное содержание: {s}",
    "teaching_methods": "Современные методики преподавания",
    "psych_pedagogy": "Психолого-педагогическое сопровождение обучающихся",
    "upbringing": "Реализация рабочей программы воспитания",
    "functional_literacy": "Формирование функциональной грамотности обучающихся",
    "assessment": "Оценка качества образования: инструменты учителя",
    "digital": "Цифровая образовательная среда в работе педагога",
    "communication": "Эффективная коммуникация в образовательной организации",
    "career_guidance": "Профориентационная работа в школе",
    "gifted_children": "Выявление и поддержка одарённых детей",
}


def generate(seed: int = 38, teachers: int = 3000) -> dict[str, Any]:
    """A region: municipalities, organisations, teachers, methodists, programs."""
    rng = random.Random(seed)
    municipalities = [
        {"municipality_id": f"mun-{i + 1:02d}", "name": name, "remote": remote}
        for i, (name, remote) in enumerate(MUNICIPALITIES)
    ]
    organizations: list[dict[str, Any]] = []
    for mun in municipalities:
        big = not mun["remote"] and mun["name"].startswith("г.")
        for _ in range(rng.randint(4, 7) if big else rng.randint(2, 4)):
            n = len(organizations) + 1
            kind = rng.choices(["school", "kindergarten", "college"], [6, 3, 1])[0]
            label = {"school": "СОШ", "kindergarten": "Детский сад", "college": "Колледж"}[kind]
            organizations.append(
                {
                    "organization_id": f"org-{n:04d}",
                    "municipality_id": mun["municipality_id"],
                    "name": f"{label} № {n}",
                    "kind": kind,
                    "low_results": kind == "school" and rng.random() < 0.12,
                    "unfavorable_conditions": kind == "school" and rng.random() < 0.08,
                }
            )
    audience = {"school": "general", "kindergarten": "preschool", "college": "college"}
    teacher_rows: list[dict[str, Any]] = []
    for i in range(teachers):
        org = rng.choice(organizations)
        kind = org["kind"]
        age_band = rng.choices(["<25", "25-34", "35-44", "45-54", "55+"], [8, 20, 25, 25, 22])[0]
        young = age_band in ("<25", "25-34")
        experience = rng.choices(
            ["<3", "3-10", "10-20", "20+"], [35, 35, 20, 10] if young else [3, 17, 35, 45]
        )[0]
        manager = rng.random() < 0.07
        teacher_rows.append(
            {
                "teacher_id": f"t-{i + 1:06d}",
                "organization_id": org["organization_id"],
                "municipality_id": org["municipality_id"],
                "position": "руководитель"
                if manager
                else (
                    "воспитатель"
                    if kind == "kindergarten"
                    else "преподаватель"
                    if kind == "college"
                    else "учитель"
                ),
                "audience": audience[kind],
                "subjects": []
                if kind == "kindergarten"
                else rng.sample(SUBJECTS, rng.randint(1, 2)),
                "age_band": age_band,
                "experience_band": experience,
                "is_manager": manager,
            }
        )
    # Methodists: enough room for every teacher's route (capacity 250 each), each serving a
    # cluster of neighbouring municipalities, plus two for the whole region.
    codes = list(COMPETENCY_GROUPS)
    methodists = []
    ids = [m["municipality_id"] for m in municipalities]
    clusters = [ids[i : i + 3] for i in range(0, len(ids), 3)]
    per_cluster = {tuple(c): 0 for c in clusters}
    for teacher in teacher_rows:
        for cluster in clusters:
            if teacher["municipality_id"] in cluster:
                per_cluster[tuple(cluster)] += 1
    for cluster in clusters:
        for _ in range(max(1, -(-per_cluster[tuple(cluster)] // 250))):
            methodists.append(
                {
                    "methodist_id": f"met-{len(methodists) + 1:03d}",
                    "specialisations": rng.sample(codes, 3),
                    "municipalities": cluster,
                    "capacity": 250,
                }
            )
    for _ in range(2):
        methodists.append(
            {
                "methodist_id": f"met-{len(methodists) + 1:03d}",
                "specialisations": rng.sample(codes, 4),
                "municipalities": [],
                "capacity": 250,
            }
        )
    programs = []
    for code in codes:
        variants = [("general", "college"), ("preschool",), ("general", "college", "preschool")]
        for j, audiences in enumerate(variants):
            title = PROGRAM_TITLES[code].format(s=rng.choice(SUBJECTS))
            if audiences == ("preschool",):
                title += " (дошкольное образование)"
            programs.append(
                {
                    "program_id": f"prg-{code}-{j + 1}",
                    "title": title,
                    "kind": "pk",
                    "hours": rng.choice([16, 24, 36, 72]),
                    "format": rng.choice(["in_person", "distance", "network"]),
                    "federal_registry": j != 1 and rng.random() < 0.6,
                    "competencies": [code],
                    "audiences": list(audiences),
                }
            )
    programs.append(
        {
            "program_id": "prg-pp-pedagogy",
            "title": "Педагогика и методика общего образования (профессиональная переподготовка)",
            "kind": "pp",
            "hours": 288,
            "format": "distance",
            "federal_registry": False,
            "competencies": ["teaching_methods", "psych_pedagogy"],
            "audiences": ["general", "college"],
        }
    )
    return {
        "seed": seed,
        "region": "Иркутская область (демонстрационные данные)",
        "municipalities": municipalities,
        "organizations": organizations,
        "teachers": teacher_rows,
        "methodists": methodists,
        "programs": programs,
    }


if __name__ == "__main__":
    json.dump(generate(), sys.stdout, ensure_ascii=False, indent=0)
    sys.stdout.write("\n")
