"""The demo region: Irkutsk oblast's 42 municipalities and all 13 registers, generated.

Deterministic: everything comes from one ``random.Random(seed)`` and the fixed
``REFERENCE_DATE``, so every run and every test sees the same region. People are invented
(common Russian names, СНИЛС with valid check digits, e-mails, phones) and their personal
fields ride inline in the rows of person registers, as in an operator's spreadsheet; every
row passes the registries' ``domain.check_record``. Sizes follow the real region at
``teachers=40_000`` and shrink in proportion for smaller ones, keeping what the chain needs
to run.

Demo data only: the registries service does not ship it. ``iomflow demo``/``dev`` load it
through ``POST /v1/load`` (``load``); ``iomflow region files --out DIR`` (also ``iomflow
registries demo-files``) writes it as spreadsheets, one per register, to try the import on.

    uv run iomflow region [summary] [--teachers N] [--seed S]
    uv run iomflow region files --out DIR [--teachers N] [--seed S] [--format xlsx|csv]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import time
from collections.abc import Sequence
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from iomflow.registries import importing
from iomflow.registries.domain import REGISTRY
from iomflow.registries.personal import format_snils, snils_check_digits
from iomflow.registries.tabular import write_xlsx
from iomflow.shared.contracts import Project

Row = dict[str, Any]

REFERENCE_DATE = date(2026, 9, 1)
"""The day the demo region describes: ages, experience and statuses are counted to it."""

FULL_SCALE = 40_000
"""Teachers of the real region; the other sizes below are for this many."""

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

POPULATION: dict[str, int] = {
    "г. Иркутск": 617,
    "Ангарский городской округ": 225,
    "г. Братск": 225,
    "г. Усть-Илимск": 78,
    "г. Усолье-Сибирское": 73,
    "г. Черемхово": 50,
    "г. Саянск": 38,
    "г. Зима": 30,
    "г. Тулун": 38,
    "г. Свирск": 13,
    "Шелеховский район": 67,
    "Иркутский район": 140,
    "Братский район": 48,
    "Нижнеилимский район": 45,
    "Тайшетский район": 68,
    "Усть-Кутский район": 44,
    "Усть-Илимский район": 14,
    "Тулунский район": 22,
    "Куйтунский район": 26,
    "Нижнеудинский район": 60,
    "Зиминский район": 12,
    "Черемховский район": 28,
    "Усольский район": 50,
    "Заларинский район": 27,
    "Балаганский район": 8,
    "Аларский район": 19,
    "Нукутский район": 15,
    "Боханский район": 23,
    "Осинский район": 20,
    "Эхирит-Булагатский район": 29,
    "Баяндаевский район": 10,
    "Ольхонский район": 10,
    "Качугский район": 15,
    "Жигаловский район": 8,
    "Казачинско-Ленский район": 15,
    "Киренский район": 16,
    "Катангский район": 3,
    "Мамско-Чуйский район": 3,
    "Бодайбинский район": 17,
    "Слюдянский район": 38,
    "Чунский район": 29,
    "Усть-Удинский район": 12,
}
"""Residents, thousands (2021 census, rounded): organisations and teachers follow it."""

ZONES: dict[str, tuple[str, ...]] = {
    "Иркутская агломерация": (
        "г. Иркутск",
        "Ангарский городской округ",
        "Шелеховский район",
        "Иркутский район",
        "Слюдянский район",
        "Ольхонский район",
    ),
    "Усольско-Черемховская зона": (
        "г. Усолье-Сибирское",
        "Усольский район",
        "г. Черемхово",
        "Черемховский район",
        "г. Свирск",
        "Заларинский район",
        "Балаганский район",
    ),
    "Усть-Ордынский Бурятский округ": (
        "Аларский район",
        "Нукутский район",
        "Боханский район",
        "Осинский район",
        "Эхирит-Булагатский район",
        "Баяндаевский район",
    ),
    "Западная зона": (
        "г. Саянск",
        "г. Зима",
        "Зиминский район",
        "г. Тулун",
        "Тулунский район",
        "Куйтунский район",
        "Нижнеудинский район",
        "Тайшетский район",
        "Чунский район",
    ),
    "Северная зона": (
        "г. Братск",
        "Братский район",
        "г. Усть-Илимск",
        "Усть-Илимский район",
        "Нижнеилимский район",
        "Усть-Удинский район",
    ),
    "Ленская зона": (
        "Усть-Кутский район",
        "Казачинско-Ленский район",
        "Киренский район",
        "Катангский район",
        "Качугский район",
        "Жигаловский район",
        "Бодайбинский район",
        "Мамско-Чуйский район",
    ),
}
"""Neighbouring municipalities a regional methodist serves together."""

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
"""The competency codes of the diagnostics framework: the only codes the registers use."""

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

# (genitive, dative) for titles: «учителей математики», «подготовка к олимпиадам по математике»
_SUBJECT_FORMS = {
    "математика": ("математики", "математике"),
    "русский язык": ("русского языка", "русскому языку"),
    "физика": ("физики", "физике"),
    "химия": ("химии", "химии"),
    "биология": ("биологии", "биологии"),
    "история": ("истории", "истории"),
    "география": ("географии", "географии"),
    "информатика": ("информатики", "информатике"),
    "английский язык": ("английского языка", "английскому языку"),
    "литература": ("литературы", "литературе"),
}
_SUBJECT_WEIGHTS = (18, 20, 7, 5, 7, 9, 6, 6, 14, 8)  # how many teach each, roughly
_SUBJECT_PAIRS = {
    "математика": ("информатика", "физика"),
    "русский язык": ("литература",),
    "физика": ("математика", "информатика"),
    "химия": ("биология",),
    "биология": ("химия", "география"),
    "история": ("география",),
    "география": ("биология", "история"),
    "информатика": ("математика",),
    "английский язык": ("русский язык",),
    "литература": ("русский язык",),
}

# --- people ----------------------------------------------------------------------------------

_SURNAMES = (
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов "
    "Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев "
    "Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв "
    "Сергеев Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков "
    "Сорокин Виноградов Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров "
    "Давыдов Беляев Герасимов Богданов Осипов Сидоров Матвеев Титов Марков Миронов Крылов "
    "Куликов Карпов Власов Мельников Денисов Гаврилов Тихонов Казаков Афанасьев Пономарёв "
    "Лазарев Щербаков Ершов Калинин Рыбаков Голубев Быков Третьяков Шубин Брагин Распутин "
    "Вампилов Тюменцев Бадмаев Цыренов Намсараев Хантаев Балданов Дашиев Вишневский Полянский "
    "Покровский Успенский Островский Черных Седых Белых Кравченко Шевченко Бондаренко Ткаченко"
).split()
_MALE_NAMES = (
    "Александр Алексей Андрей Антон Артём Борис Вадим Валерий Василий Виктор Виталий "
    "Владимир Владислав Вячеслав Геннадий Георгий Денис Дмитрий Евгений Егор Иван Игорь Илья "
    "Кирилл Константин Максим Михаил Никита Николай Олег Павел Роман Руслан Сергей Станислав "
    "Степан Юрий Ярослав Баир"
).split()
_FEMALE_NAMES = (
    "Александра Алина Алёна Анастасия Анна Валентина Валерия Вера Виктория Галина Дарья "
    "Евгения Екатерина Елена Елизавета Жанна Ирина Кристина Ксения Лариса Любовь Людмила "
    "Маргарита Марина Мария Надежда Наталья Нина Оксана Ольга Полина Светлана Софья Тамара "
    "Татьяна Юлия Яна Туяна"
).split()
# A father's name up to the gendered ending: «Сергеев» + «ич» / «на».
_PATRONYMIC_STEMS = (
    "Александров Алексеев Анатольев Андреев Борисов Валентинов Валерьев Васильев Викторов "
    "Витальев Владимиров Вячеславов Геннадьев Георгиев Григорьев Дмитриев Евгеньев Иванов "
    "Игорев Константинов Леонидов Михайлов Николаев Олегов Павлов Петров Сергеев Степанов "
    "Фёдоров Юрьев Романов Максимов"
).split()

_LATIN = {
    **dict(
        zip(
            "абвгдеёжзийклмнопрстуфхцчшщыэюя",
            "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch y e yu ya".split(),
            strict=True,
        )
    ),
    "ъ": "",
    "ь": "",
}
_MOBILE_CODES = ("902", "904", "908", "914", "924", "950", "952", "964", "983", "996")


def _feminine(surname: str) -> str:
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    if surname.endswith("ий"):
        return surname[:-2] + "ая"
    return surname  # Черных, Кравченко: the same for both


@cache
def _latin(word: str) -> str:
    return "".join(_LATIN.get(c, c) for c in word.lower())


class _People:
    """Invented people: gendered names, unique valid СНИЛС, unique e-mails and phones."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.snils: set[int] = set()
        self.phones: set[int] = set()
        self.count = 0

    def new(self, domain: str, female_share: float = 0.85) -> Row:
        rng = self.rng
        surname = rng.choice(_SURNAMES)
        stem = rng.choice(_PATRONYMIC_STEMS)
        if rng.random() < female_share:
            surname, first, patronymic = _feminine(surname), rng.choice(_FEMALE_NAMES), stem + "на"
        else:
            first, patronymic = rng.choice(_MALE_NAMES), stem + "ич"
        self.count += 1
        login = f"{_latin(surname)}.{_latin(first)[0]}.{_latin(patronymic)[0]}.{self.count}"
        return {
            "full_name": f"{surname} {first} {patronymic}",
            "snils": self._snils(),
            "email": f"{login}@{domain}",
            "phone": self._phone(),
        }

    def _snils(self) -> str:
        while True:
            number = self.rng.randint(1_002_000, 999_999_999)  # above 001-001-998: checked
            digits = f"{number:09d}"
            # Real numbers never hold one digit three times in a row.
            if number in self.snils or any(
                digits[i] == digits[i + 1] == digits[i + 2] for i in range(7)
            ):
                continue
            self.snils.add(number)
            return format_snils(f"{digits}{snils_check_digits(digits):02d}")

    def _phone(self) -> str:
        while True:
            code = self.rng.choice(_MOBILE_CODES)
            number = self.rng.randrange(10_000_000)
            key = int(code) * 10_000_000 + number
            if key not in self.phones:
                self.phones.add(key)
                n = f"{number:07d}"
                return f"+7 {code} {n[:3]}-{n[3:5]}-{n[5:]}"


# --- what organisations, teachers and programs look like -------------------------------------

_KINDS = ("school", "kindergarten", "college", "other")
_PROJECTS = [p.value for p in Project]
_KIND_CUM = {True: (50, 92, 96.5, 100), False: (67, 94.5, 97.5, 100)}  # urban / rural
_MIN_TEACHERS = {"school": 4, "kindergarten": 2, "college": 4, "other": 1}
_AUDIENCE = {"school": "general", "kindergarten": "preschool", "college": "college"}
_MAIL = {
    "school": "school38.ru",
    "kindergarten": "detsad38.ru",
    "college": "spo38.ru",
    "other": "dod38.ru",
}
_FEMALE_SHARE = {"school": 0.86, "kindergarten": 0.98, "college": 0.7, "other": 0.75}

# (form, teachers it usually has: urban, rural, cumulative weight: urban, rural)
_SCHOOL_FORMS = (
    ("СОШ", 55, 18, 76, 64),
    ("Лицей", 70, 25, 84, 65),
    ("Гимназия", 65, 25, 92, 66),
    ("Центр образования", 45, 20, 96, 71),
    ("ООШ", 20, 9, 100, 94),
    ("НОШ", 8, 4, 100, 100),
)
_COLLEGES = (
    "Педагогический колледж",
    "Политехнический колледж",
    "Техникум строительства и экономики",
    "Аграрный техникум",
    "Медицинский колледж",
    "Колледж автомобильного транспорта",
    "Техникум отраслевых технологий",
    "Энергетический колледж",
    "Колледж культуры",
    "Техникум индустрии питания и сервиса",
)
_OTHER_FORMS = (
    "Дом детского творчества",
    "Центр дополнительного образования детей",
    "Детско-юношеская спортивная школа",
    "Станция юных техников",
    "Детская школа искусств",
)

# position -> cumulative weight, per organisation kind
_POSITIONS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "school": (
        (
            "учитель",
            "учитель начальных классов",
            "педагог-психолог",
            "учитель-логопед",
            "социальный педагог",
            "педагог-организатор",
            "педагог дополнительного образования",
            "советник директора по воспитанию",
            "учитель-дефектолог",
            "педагог-библиотекарь",
        ),
        (70, 86, 89, 91, 93, 94.5, 97, 98, 99, 100),
    ),
    "kindergarten": (
        (
            "воспитатель",
            "старший воспитатель",
            "музыкальный руководитель",
            "инструктор по физической культуре",
            "учитель-логопед",
            "педагог-психолог",
        ),
        (74, 78, 85, 90, 96, 100),
    ),
    "college": (
        (
            "преподаватель",
            "мастер производственного обучения",
            "педагог-психолог",
            "социальный педагог",
            "педагог-организатор",
            "методист",
            "педагог дополнительного образования",
        ),
        (78, 88, 90, 92, 95, 98, 100),
    ),
    "other": (
        (
            "педагог дополнительного образования",
            "тренер-преподаватель",
            "методист",
            "педагог-организатор",
        ),
        (78, 86, 93, 100),
    ),
}
_DEPUTIES = {
    "school": (
        "заместитель директора по учебно-воспитательной работе",
        "заместитель директора по воспитательной работе",
        "заместитель директора по научно-методической работе",
    ),
    "college": (
        "заместитель директора по учебной работе",
        "заместитель директора по учебно-производственной работе",
        "заместитель директора по воспитательной работе",
    ),
}


class _Entry(NamedTuple):
    """One line of a catalogue: what a program, site topic or community is about."""

    title: str  # «{gen}» / «{dat}»: a subject goes here (genitive / dative)
    competencies: tuple[str, ...]
    themes: tuple[str, ...]
    scope: tuple[str, ...]  # audiences of a program, kinds of organisation of a topic


def _catalogue(text: str) -> tuple[_Entry, ...]:
    """Entries written as a title line and an indented ``competencies / themes / scope`` line
    (codes separated by spaces, «-» for none)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    entries = []
    for title, attributes in zip(lines[::2], lines[1::2], strict=True):
        codes, themes, scope = (
            tuple(p.split()) if p.strip() != "-" else () for p in attributes.split("/")
        )
        entries.append(_Entry(title, codes, themes, scope))
    return tuple(entries)


# Further-training (ПК) programs: together they cover every competency for every audience.
_PK_PROGRAMS = _catalogue(
    """
    Реализация требований обновлённых ФГОС НОО и ФГОС ООО в работе учителя
        teaching_methods assessment / updated_fgos / general
    Реализация требований обновлённого ФГОС СОО в работе учителя
        teaching_methods / updated_fgos / general
    Введение федеральных основных общеобразовательных программ: преподавание {gen}
        subject_content teaching_methods / subject updated_fgos / general
    Теория и методика обучения {dat}: трудные вопросы содержания
        subject_content / subject / general
    Школа современного учителя: функциональная грамотность на уроках {gen}
        functional_literacy subject_content / functional_literacy subject / general
    Функциональная грамотность обучающихся: читательская, математическая, естественнонаучная
        functional_literacy / functional_literacy / general
    Функциональная грамотность в общеобразовательной подготовке студентов СПО
        functional_literacy teaching_methods / functional_literacy / college
    Предпосылки функциональной грамотности у детей дошкольного возраста
        functional_literacy / functional_literacy preschool_quality / preschool
    Оценка качества образования: инструменты учителя
        assessment / quality_assessment / general
    Подготовка экспертов предметных комиссий ГИА по {dat}
        assessment subject_content / quality_assessment subject / general
    Внутренняя система оценки качества образования в образовательной организации
        assessment / quality_assessment management / general college
    Оценка качества дошкольного образования: инструменты МКДО
        assessment / quality_assessment preschool_quality / preschool
    Демонстрационный экзамен: оценка результатов обучения в СПО
        assessment / quality_assessment / college
    Цифровая образовательная среда: ФГИС «Моя школа» в работе педагога
        digital / digital_environment / general
    Цифровые инструменты в работе преподавателя СПО
        digital teaching_methods / digital_environment / college
    Информационно-коммуникационные технологии в работе воспитателя ДОО
        digital / digital_environment preschool_quality / preschool
    Безопасная цифровая среда: цифровая грамотность педагога
        digital communication / digital_environment / preschool general college
    Реализация рабочей программы воспитания в образовательной организации
        upbringing / upbringing / general college
    Советник директора по воспитанию: взаимодействие с детскими объединениями
        upbringing communication / upbringing / general
    Воспитательная работа в ДОО по федеральной образовательной программе
        upbringing / upbringing preschool_quality / preschool
    Реализация ФОП ДО: содержание и технологии дошкольного образования
        teaching_methods psych_pedagogy / preschool_quality updated_fgos / preschool
    Содержание образовательных областей ФОП ДО: речевое и познавательное развитие
        subject_content teaching_methods / preschool_quality / preschool
    Современные образовательные технологии в дошкольном образовании
        teaching_methods / preschool_quality / preschool
    Сопровождение обучающихся с ОВЗ в условиях инклюзивного образования
        psych_pedagogy / - / preschool general college
    Профилактика профессионального выгорания педагогов
        psych_pedagogy communication / burnout_prevention / preschool general college
    Эмоциональный интеллект и стрессоустойчивость педагога
        communication psych_pedagogy / burnout_prevention / preschool general college
    Эффективная коммуникация с родителями обучающихся
        communication / upbringing / preschool general college
    Медиация и профилактика конфликтов в образовательной среде
        communication psych_pedagogy / upbringing / general college
    Профориентационный минимум: реализация в общеобразовательной организации
        career_guidance / career_guidance / general
    Проект «Билет в будущее»: работа педагога-навигатора
        career_guidance / career_guidance / general
    Содействие профессиональному самоопределению и трудоустройству студентов СПО
        career_guidance / career_guidance / college
    Ранняя профориентация детей дошкольного возраста
        career_guidance / career_guidance preschool_quality / preschool
    Выявление и поддержка одарённых детей
        gifted_children psych_pedagogy / gifted_children / general
    Подготовка обучающихся к олимпиадам по {dat}
        gifted_children subject_content / gifted_children subject / general
    Развитие способностей детей дошкольного возраста: поддержка детской одарённости
        gifted_children / gifted_children preschool_quality / preschool
    Чемпионатное движение «Профессионалы»: подготовка участников
        gifted_children career_guidance / gifted_children career_guidance / college
    Управление качеством образования в общеобразовательной организации
        assessment communication / management quality_assessment / general college
    Управленческая команда: проектное управление развитием образовательной организации
        communication teaching_methods / management / general college
    Управление дошкольной образовательной организацией в условиях реализации ФОП ДО
        communication assessment / management preschool_quality / preschool
    Общеобразовательные дисциплины в СПО с учётом профессиональной направленности
        subject_content teaching_methods / subject updated_fgos / college
    Наставничество в образовательной организации: технологии и практики
        communication psych_pedagogy / management / preschool general college
    Проектная и исследовательская деятельность обучающихся
        teaching_methods gifted_children / functional_literacy / general college
    """
)
# Retraining (ПП) programs.
_PP_PROGRAMS = _catalogue(
    """
    Педагогика и методика общего образования
        teaching_methods psych_pedagogy / updated_fgos / general
    Педагогика и методика дошкольного образования
        teaching_methods psych_pedagogy / preschool_quality / preschool
    Педагогика профессионального образования
        teaching_methods psych_pedagogy / - / college
    Менеджмент в образовании
        communication assessment / management / preschool general college
    Педагогическая психология: педагог-психолог в образовательной организации
        psych_pedagogy / - / preschool general college
    Учитель {gen}: теория и методика преподавания
        subject_content teaching_methods / subject / general
    Педагог дополнительного образования детей и взрослых
        teaching_methods upbringing / upbringing / general
    Тьюторское сопровождение в образовании
        psych_pedagogy gifted_children / gifted_children / general college
    """
)

# (provider, cumulative weight, share of its programs in the Federal registry)
_PROVIDERS = (
    ("ГАУ ДПО ИРО", 32, 0.35),
    ("ЦНППМ Иркутской области", 54, 0.3),
    ("ФГАОУ ДПО «Академия Минпросвещения России»", 69, 0.8),
    ("ИГУ", 77, 0.2),
    ("ГБПОУ ИО «Иркутский региональный колледж педагогического образования»", 85, 0.2),
    ("ГАУ ИО ЦОПМКиМКО", 92, 0.3),
    ("ФГБНУ «Институт стратегии развития образования»", 100, 0.5),
)
_FORMATS = ("in_person", "distance", "network", "internship")
_PK_HOURS = (16, 24, 36, 36, 36, 48, 72, 72, 108, 144)
_PP_HOURS = (250, 256, 288, 300, 340, 360, 420, 504, 520)

# Topics of internship and innovation sites and of effective practices; the scope is the
# kinds of organisation that take a topic up.
_TOPICS = _catalogue(
    """
    Формирование функциональной грамотности через проектную деятельность
        functional_literacy teaching_methods / functional_literacy / school
    Смысловое чтение на уроках {gen}
        functional_literacy subject_content / functional_literacy subject / school
    Цифровые сервисы ФГИС «Моя школа» на уроках {gen}
        digital subject_content / digital_environment subject / school
    Профориентационная модель «Школа — колледж — предприятие»
        career_guidance / career_guidance / school college
    Система олимпиадной подготовки по {dat}
        gifted_children subject_content / gifted_children subject / school
    Внутренняя система оценки качества образования
        assessment / quality_assessment management / school college
    Критериальное оценивание на уроках {gen}
        assessment subject_content / quality_assessment subject / school
    Школа — центр воспитания: реализация рабочей программы воспитания
        upbringing / upbringing / school
    Методическое сопровождение педагогов при переходе на обновлённые ФГОС
        teaching_methods / updated_fgos / school
    Развивающая предметно-пространственная среда детского сада
        teaching_methods / preschool_quality / kindergarten
    Ранняя профориентация дошкольников
        career_guidance / career_guidance preschool_quality / kindergarten
    Поддержка детской инициативы и одарённости в детском саду
        gifted_children psych_pedagogy / gifted_children preschool_quality / kindergarten
    Воспитание в детском саду: партнёрство с семьёй
        upbringing communication / upbringing preschool_quality / kindergarten
    Цифровые технологии в работе воспитателя
        digital / digital_environment preschool_quality / kindergarten
    Служба психологической поддержки педагогов: профилактика выгорания
        psych_pedagogy communication / burnout_prevention / school kindergarten college other
    Наставничество как инструмент адаптации молодых педагогов
        communication psych_pedagogy / management / school kindergarten college other
    Управленческая команда: проектное управление развитием организации
        communication assessment / management / school kindergarten college
    Сельская школа: сетевое взаимодействие и дистанционные технологии
        digital teaching_methods / digital_environment / school
    Естественнонаучная грамотность на базе центра «Точка роста»
        functional_literacy subject_content / functional_literacy subject / school
    Практико-ориентированное обучение в колледже «Профессионалитета»
        teaching_methods career_guidance / career_guidance updated_fgos / college
    Цифровая образовательная среда колледжа
        digital / digital_environment / college
    Профессиональная направленность общеобразовательной подготовки в СПО
        subject_content teaching_methods / subject updated_fgos / college
    Психолого-педагогическое сопровождение обучающихся с ОВЗ
        psych_pedagogy / - / school kindergarten college other
    Медиация и профилактика конфликтов в образовательной среде
        communication upbringing / upbringing / school college
    Технопарк и детские объединения технической направленности
        gifted_children career_guidance / gifted_children career_guidance / other school
    Патриотическое воспитание в дополнительном образовании
        upbringing / upbringing / other
    Исследовательская деятельность обучающихся в дополнительном образовании
        gifted_children teaching_methods / gifted_children / other
    """
)
# Professional communities; the scope is their level. Regional ones are taken in turn
# (subject associations for several subjects), municipal ones at random.
_COMMUNITIES = _catalogue(
    """
    Региональное методическое объединение учителей {gen}
        subject_content teaching_methods / subject / regional
    Сообщество педагогов-психологов Иркутской области
        psych_pedagogy / burnout_prevention / regional
    Клуб молодых педагогов Приангарья
        communication teaching_methods / - / regional
    Ассоциация педагогов дошкольного образования Иркутской области
        teaching_methods / preschool_quality / regional
    Сообщество советников директора по воспитанию
        upbringing / upbringing / regional
    Сетевое сообщество «Цифровой учитель»
        digital / digital_environment / regional
    Сообщество педагогов-наставников «Наставник Приангарья»
        communication psych_pedagogy / - / regional
    Региональное сообщество экспертов оценки качества образования
        assessment / quality_assessment / regional
    Клуб «Функциональная грамотность»
        functional_literacy / functional_literacy / regional
    Сообщество руководителей образовательных организаций
        communication assessment / management / regional
    Сообщество педагогов-навигаторов «Билет в будущее»
        career_guidance / career_guidance / regional
    Ассоциация педагогов, работающих с одарёнными детьми
        gifted_children / gifted_children / regional
    Муниципальное методическое объединение учителей {gen}
        subject_content teaching_methods / subject / municipal
    Школа молодого педагога
        communication teaching_methods / - / municipal
    Методическое объединение воспитателей ДОО
        teaching_methods / preschool_quality / municipal
    Клуб педагогов-наставников
        communication psych_pedagogy / - / municipal
    Сообщество классных руководителей
        upbringing communication / upbringing / municipal
    Методическое объединение педагогов-психологов
        psych_pedagogy / burnout_prevention / municipal
    Сетевое сообщество «Функциональная грамотность»
        functional_literacy / functional_literacy / municipal
    """
)
_STAFF_POSITIONS = (
    "методист",
    "старший методист",
    "методист по дошкольному образованию",
    "методист по воспитательной работе",
    "специалист по аттестации педагогических работников",
    "методист по работе с молодыми педагогами",
)
_SITE_LEVEL_TITLE = {
    "federal": "Федеральная",
    "regional": "Региональная",
    "municipal": "Муниципальная",
}


# --- the generator ---------------------------------------------------------------------------


def generate(seed: int = 38, teachers: int = FULL_SCALE) -> dict[str, list[Row]]:
    """Every register of the demo region: register name -> rows, in ``REGISTRY`` order.

    Rows hold a register's record fields as JSON values (codes, ISO dates, lists) and, in
    person registers, the person's ``full_name``, ``snils``, ``email`` and ``phone``.
    """
    if teachers < 1:
        raise ValueError("teachers must be at least 1")
    rng = random.Random(seed)
    people = _People(rng)
    scale = min(1.0, teachers / FULL_SCALE)

    def sized(full: int, least: int) -> int:
        """``full`` rows in the full-size region, fewer in a smaller one, never below ``least``."""
        return max(least, round(full * scale))

    municipalities = [
        {"municipality_id": f"mun-{i + 1:02d}", "name": name, "remote": remote}
        for i, (name, remote) in enumerate(MUNICIPALITIES)
    ]
    # Organisations grow with teachers past the real region too; catalogues do not.
    wanted = max(len(municipalities), round(1500 * teachers / FULL_SCALE))
    organizations, sizes = _organizations(rng, municipalities, wanted)
    programs = _programs(rng, sized(300, len(_PK_PROGRAMS) + len(_PP_PROGRAMS)))
    staff = _teachers(rng, people, organizations, _teacher_counts(sizes, organizations, teachers))
    management = _management(rng, organizations, staff)
    region: dict[str, list[Row]] = {
        "municipalities": municipalities,
        "organizations": organizations,
        "programs": programs,
        "teachers": staff,
        "management_teams": management,
        "methodists": _methodists(rng, people, municipalities, staff),
        "tutors": _tutors(rng, people, municipalities, programs, sized(60, 3)),
        "mentors": _mentors(rng, people, organizations, staff),
        "municipal_staff": _municipal_staff(rng, people, municipalities, scale),
        "internship_sites": _internship_sites(rng, organizations, staff, sized(40, 3)),
        "innovation_sites": _innovation_sites(rng, organizations, sized(60, 3)),
        "communities": _communities(rng, municipalities, staff, sized(50, 3)),
        "practices": _practices(rng, organizations, staff, sized(200, 5)),
    }
    # Support outside a route, drawn after everything above (which it leaves as it was).
    region["school_teams"] = _school_teams(rng, organizations, staff, region["methodists"])
    region["mentoring_pairs"] = _mentoring_pairs(rng, region["mentors"], staff, management)
    region["expert_roles"] = _expert_roles(rng, staff)
    _practice_course(rng, region["practices"], organizations, staff, region["expert_roles"])
    region["contests"] = _contests(rng)
    region["contest_entries"] = _contest_entries(
        rng, region["contests"], organizations, staff, scale
    )
    return {name: region[name] for name in REGISTRY}


def _apportion(weights: Sequence[float], total: int) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; ties by position)."""
    if total <= 0 or not weights:
        return [0] * len(weights)
    whole = sum(weights)
    raw = [w * total / whole for w in weights]
    counts = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _urban(name: str) -> bool:
    return name.startswith("г.") or "городской округ" in name


def _fill(template: str, subject: str) -> str:
    genitive, dative = _SUBJECT_FORMS[subject]
    return template.format(gen=genitive, dat=dative)


def _pick_subject(rng: random.Random) -> str:
    return rng.choices(SUBJECTS, weights=_SUBJECT_WEIGHTS)[0]


def _organizations(
    rng: random.Random, municipalities: list[Row], wanted: int
) -> tuple[list[Row], list[float]]:
    """Organisations, and how many teachers each would have in the full-size region."""
    # Rural districts have many small schools: organisations grow slower than population.
    weights = [POPULATION[m["name"]] ** 0.85 for m in municipalities]
    counts = [1 + n for n in _apportion(weights, wanted - len(municipalities))]
    rows: list[Row] = []
    sizes: list[float] = []
    for mun, count in zip(municipalities, counts, strict=True):
        urban = _urban(mun["name"])
        where = mun["name"]
        numbers = dict.fromkeys(_KINDS, 0)
        named: dict[str, int] = {}
        for j in range(count):
            kind = "school" if j == 0 else rng.choices(_KINDS, cum_weights=_KIND_CUM[urban])[0]
            numbers[kind] += 1
            k = numbers[kind]
            flags = {"low_results": False, "unfavorable_conditions": False}
            projects: list[str] = []
            if kind == "school":
                cum = [f[3] if urban else f[4] for f in _SCHOOL_FORMS]
                form = rng.choices(_SCHOOL_FORMS, cum_weights=cum)[0]
                owner = "МБОУ" if urban else "МКОУ"
                name = f"{owner} «{form[0]} № {k}», {where}"
                size = form[1] if urban else form[2]
                flags["low_results"] = rng.random() < (0.16 if mun["remote"] else 0.11)
                flags["unfavorable_conditions"] = rng.random() < (0.04 if urban else 0.11)
                if rng.random() < 0.25:
                    projects.append("school_of_ministry")
                if rng.random() < (0.05 if urban else 0.6):
                    projects.append("tochka_rosta")
            elif kind == "kindergarten":
                label = (
                    "Центр развития ребёнка — детский сад" if rng.random() < 0.1 else "Детский сад"
                )
                name = f"{'МБДОУ' if urban else 'МКДОУ'} «{label} № {k}», {where}"
                size = 20 if urban else 8
                if rng.random() < 0.15:
                    projects.append("kindergarten_of_ministry")
            elif kind == "college":
                profile = rng.choice(_COLLEGES)
                named[profile] = named.get(profile, 0) + 1
                suffix = f" № {named[profile]}" if named[profile] > 1 else ""
                name = f"ГБПОУ ИО «{profile}{suffix}», {where}"
                size = 75 if urban else 45
                if rng.random() < 0.35:
                    projects.append("professionalitet")
            else:
                form_name = rng.choice(_OTHER_FORMS)
                named[form_name] = named.get(form_name, 0) + 1
                suffix = f" № {named[form_name]}" if named[form_name] > 1 else ""
                name = f"МБУ ДО «{form_name}{suffix}», {where}"
                size = 25 if urban else 9
            rows.append(
                {
                    "organization_id": f"org-{len(rows) + 1:04d}",
                    "municipality_id": mun["municipality_id"],
                    "name": name,
                    "kind": kind,
                    **flags,
                    "projects": projects,
                }
            )
            sizes.append(size * rng.uniform(0.6, 1.4))
    # The «Персональный потенциал» cascade: about 100 schools in the full region (≥ 93 by 2024).
    schools = [row for row in rows if row["kind"] == "school"]
    for row in rng.sample(schools, max(1, round(len(schools) * 0.11))):
        row["projects"] = sorted([*row["projects"], "personal_potential"], key=_PROJECTS.index)
    return rows, sizes


def _teacher_counts(sizes: list[float], organizations: list[Row], teachers: int) -> list[int]:
    """Teachers per organisation: each its minimum when there are enough, the rest by size."""
    minimums = [_MIN_TEACHERS[o["kind"]] for o in organizations]
    if sum(minimums) > teachers:
        return _apportion(sizes, teachers)
    extra = _apportion(sizes, teachers - sum(minimums))
    return [m + e for m, e in zip(minimums, extra, strict=True)]


def _teachers(
    rng: random.Random, people: _People, organizations: list[Row], counts: list[int]
) -> list[Row]:
    """Teachers aged 22–68 (most about 45), starting work at 20 or later; about half of those
    under 35 are in their first three years (the young teachers mentoring is for)."""
    reference = REFERENCE_DATE.toordinal()
    random_, triangular, uniform, choices = rng.random, rng.triangular, rng.uniform, rng.choices
    rows: list[Row] = []
    for org, count in zip(organizations, counts, strict=True):
        kind = org["kind"]
        positions, cum = _POSITIONS[kind]
        audience = _AUDIENCE.get(kind, "general")
        mail, female = _MAIL[kind], _FEMALE_SHARE[kind]
        for _ in range(count):
            position = choices(positions, cum_weights=cum)[0]
            subjects: list[str] = []
            if position == "учитель":
                first = _pick_subject(rng)
                subjects = [first]
                if random_() < 0.35:
                    subjects.append(rng.choice(_SUBJECT_PAIRS[first]))
            elif position == "учитель начальных классов":
                subjects = ["русский язык", "математика"]
            elif position == "преподаватель" and random_() < 0.35:
                subjects = [_pick_subject(rng)]
            age = triangular(22.0, 69.0, 45.0)
            since_twenty = age - 20.1  # nobody starts before 20
            if age < 35 and (since_twenty < 3 or random_() < 0.5):
                experience = uniform(0.0, min(2.95, since_twenty))  # young: in the first 3 years
            elif age >= 35 and random_() < 0.03:
                experience = uniform(0.0, 3.0)  # came to school from another career
            else:
                experience = 3.0 + (since_twenty - 3.0) * random_() ** 0.7
            if experience < 2:
                category = "none"
            elif experience < 5:
                category = choices(("none", "first", "highest"), cum_weights=(55, 92, 100))[0]
            else:
                category = choices(
                    ("none", "first", "highest", "methodist", "mentor"),
                    cum_weights=(22, 52, 94, 97, 100),
                )[0]
            senior = category in ("highest", "methodist", "mentor")
            rows.append(
                {
                    "teacher_id": f"t-{len(rows) + 1:06d}",
                    "organization_id": org["organization_id"],
                    "municipality_id": org["municipality_id"],
                    "position": position,
                    "audience": audience,
                    "subjects": subjects,
                    "category": category,
                    "birth_date": date.fromordinal(reference - int(age * 365.2425)).isoformat(),
                    "hire_date": date.fromordinal(
                        reference - int(experience * 365.2425)
                    ).isoformat(),
                    "is_manager": False,
                    "expert": random_() < (0.11 if senior else 0.01),
                    **people.new(mail, female),
                }
            )
    return rows


def _by_organization(teachers: list[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in teachers:
        grouped.setdefault(row["organization_id"], []).append(row)
    return grouped


def _management(rng: random.Random, organizations: list[Row], teachers: list[Row]) -> list[Row]:
    """A director and deputies for each school and college, chosen among its teachers."""
    staff = _by_organization(teachers)
    eight_years_ago = (REFERENCE_DATE - timedelta(days=round(8 * 365.2425))).isoformat()
    rows: list[Row] = []
    for org in organizations:
        kind, mine = org["kind"], staff.get(org["organization_id"], [])
        if kind not in _DEPUTIES or len(mine) < 2:
            continue
        size = min(len(mine), rng.randint(2, 4))
        seasoned = [t for t in mine if t["hire_date"] <= eight_years_ago]
        chosen = rng.sample(seasoned if len(seasoned) >= size else mine, size)
        chosen.sort(key=lambda t: t["hire_date"])  # the longest-serving leads
        for n, teacher in enumerate(chosen):
            teacher["is_manager"] = True
            teacher["position"] = "директор" if n == 0 else _DEPUTIES[kind][(n - 1) % 3]
            rows.append(
                {
                    "member_id": f"mt-{len(rows) + 1:05d}",
                    "organization_id": org["organization_id"],
                    "municipality_id": org["municipality_id"],
                    "teacher_id": teacher["teacher_id"],
                    "role": "director" if n == 0 else "deputy",
                }
            )
    return rows


def _methodists(
    rng: random.Random, people: _People, municipalities: list[Row], teachers: list[Row]
) -> list[Row]:
    """Regional methodists: enough in each territory for all its teachers, a few region-wide.

    A territory is a big city on its own or the rest of a zone of neighbouring
    municipalities; its methodists' capacity covers its teachers (≤ 250 each, the KPI), so
    the region-wide ones are room to spare.
    """
    ids = {m["name"]: m["municipality_id"] for m in municipalities}
    load: dict[str, int] = {}
    for row in teachers:
        load[row["municipality_id"]] = load.get(row["municipality_id"], 0) + 1
    units: list[list[str]] = []
    for names in ZONES.values():
        zone = [ids[n] for n in names]
        units += [[m] for m in zone if load.get(m, 0) >= 1500]
        rest = [m for m in zone if load.get(m, 0) < 1500]
        if rest:
            units.append(rest)
    codes = list(COMPETENCY_GROUPS)
    rows: list[Row] = []

    def add(specialisations: list[str], served: list[str]) -> None:
        subjects = []
        if "subject_content" in specialisations:
            subjects = sorted(rng.sample(SUBJECTS, rng.randint(1, 2)), key=SUBJECTS.index)
        rows.append(
            {
                "methodist_id": f"met-{len(rows) + 1:03d}",
                "specialisations": sorted(specialisations, key=codes.index),
                "subjects": subjects,
                "municipalities": served,
                "capacity": 250,
                **people.new("cnppm38.ru"),
            }
        )

    for unit in units:
        offset = rng.randrange(len(codes))
        for i in range(math.ceil(sum(load.get(m, 0) for m in unit) / 250)):
            # Three codes each, dealt in turn: four methodists cover the whole framework.
            own = {codes[(offset + 3 * i + j) % len(codes)] for j in range(3)}
            if rng.random() < 0.3:
                own.add(rng.choice(codes))
            add(list(own), unit)
    region_wide = max(2, round(len(rows) * 0.05), 5 - len(rows))  # at least five in all
    for i in range(region_wide):
        own = {c for n, c in enumerate(codes) if n % region_wide == i % len(codes)}
        own.update(rng.sample(codes, rng.randint(0, 2) if len(own) >= 2 else 2))
        add(list(own), [])
    return rows


def _programs(rng: random.Random, count: int) -> list[Row]:
    """Every template once (so every competency meets every audience), then variations."""
    plan = [(t, "pk") for t in _PK_PROGRAMS] + [(t, "pp") for t in _PP_PROGRAMS]
    while len(plan) < count:
        kind = "pp" if rng.random() < 0.1 else "pk"
        plan.append((rng.choice(_PP_PROGRAMS if kind == "pp" else _PK_PROGRAMS), kind))
    rows: list[Row] = []
    federal = 0
    for (template, codes, themes, audiences), kind in plan:
        provider, _, federal_share = rng.choices(
            _PROVIDERS, cum_weights=[p[1] for p in _PROVIDERS]
        )[0]
        academy = "Академия" in provider
        if kind == "pp":
            fmt = rng.choices(_FORMATS, cum_weights=(20, 90, 100, 100))[0]
            hours = rng.choice(_PP_HOURS)
        else:
            fmt = rng.choices(
                _FORMATS, cum_weights=(0, 70, 100, 100) if academy else (33, 68, 82, 100)
            )[0]
            hours = rng.choice((16, 24, 36)) if fmt == "internship" else rng.choice(_PK_HOURS)
        subjects: list[str] = []
        title = template
        if "{" in template:
            subject = _pick_subject(rng)
            title, subjects = _fill(template, subject), [subject]
        if fmt == "internship":
            title = f"Стажировка: {title[0].lower()}{title[1:]}"
        in_registry = rng.random() < federal_share
        number = None
        if in_registry:
            federal += 1
            number = f"ФР-{rng.randint(2023, 2026)}-{federal:04d}"
        rows.append(
            {
                "program_id": f"prg-{len(rows) + 1:04d}",
                "title": title,
                "kind": kind,
                "hours": hours,
                "format": fmt,
                "provider": provider,
                "federal_registry": in_registry,
                "federal_number": number,
                "competencies": list(codes),
                "themes": list(themes),
                "audiences": list(audiences),
                "subjects": subjects,
                # retraining in management is not «педагогической направленности»
                "pedagogical": "management" not in themes if kind == "pp" else None,
            }
        )
    return rows


def _tutors(
    rng: random.Random, people: _People, municipalities: list[Row], programs: list[Row], count: int
) -> list[Row]:
    """ЦНППМ tutors of Federal-registry programs."""
    codes = list(COMPETENCY_GROUPS)
    ids = {m["name"]: m["municipality_id"] for m in municipalities}
    zones = [[ids[n] for n in names] for names in ZONES.values()]
    federal = [p for p in programs if p["federal_registry"]]
    rows: list[Row] = []
    for i in range(count):
        own = {codes[i % len(codes)], *rng.sample(codes, rng.randint(0, 2))}
        fitting = [p["program_id"] for p in federal if own & set(p["competencies"])]
        tutored: list[str] = []
        if fitting and rng.random() < 0.85:
            tutored = sorted(rng.sample(fitting, min(len(fitting), rng.randint(2, 6))))
        rows.append(
            {
                "tutor_id": f"tut-{i + 1:03d}",
                "specialisations": sorted(own, key=codes.index),
                "programs": tutored,
                "municipalities": [] if rng.random() < 0.7 else rng.choice(zones),
                "capacity": rng.choice((30, 40, 50, 50)),
                **people.new("cnppm38.ru"),
            }
        )
    return rows


def _mentors(
    rng: random.Random, people: _People, organizations: list[Row], teachers: list[Row]
) -> list[Row]:
    """Mentors of young teachers, about 2 % of teachers, where the teachers are."""
    count = max(1, round(len(teachers) * 0.02))
    kinds = {o["organization_id"]: o["kind"] for o in organizations}
    rows: list[Row] = []
    for i, colleague in enumerate(rng.sample(teachers, min(count, len(teachers)))):
        kind = kinds[colleague["organization_id"]]
        rows.append(
            {
                "mentor_id": f"mnt-{i + 1:04d}",
                "organization_id": colleague["organization_id"],
                "municipality_id": colleague["municipality_id"],
                "subjects": list(colleague["subjects"][:1]),
                "capacity": rng.choices((1, 2, 3, 4, 5), cum_weights=(15, 40, 75, 90, 100))[0],
                **people.new(_MAIL[kind], _FEMALE_SHARE[kind]),
            }
        )
    return rows


def _municipal_staff(
    rng: random.Random, people: _People, municipalities: list[Row], scale: float
) -> list[Row]:
    """Municipal methodological services: a head and 2–5 specialists each (full size)."""
    codes = list(COMPETENCY_GROUPS)
    rows: list[Row] = []
    for mun in municipalities:
        for n in range(max(1, round(rng.randint(3, 6) * scale))):
            head = n == 0
            rows.append(
                {
                    "staff_id": f"mms-{len(rows) + 1:03d}",
                    "municipality_id": mun["municipality_id"],
                    "position": "руководитель муниципальной методической службы"
                    if head
                    else rng.choice(_STAFF_POSITIONS),
                    "specialisations": []
                    if head
                    else sorted(rng.sample(codes, rng.randint(1, 3)), key=codes.index),
                    **people.new("mms38.ru"),
                }
            )
    return rows


def _some_organizations(
    rng: random.Random, candidates: list[Row], teachers: list[Row], count: int
) -> list[Row]:
    """``count`` different organisations, bigger ones likelier (all when there are few)."""
    size: dict[str, int] = {}
    for row in teachers:
        size[row["organization_id"]] = size.get(row["organization_id"], 0) + 1
    pool = list(candidates)
    weights = [1 + size.get(o["organization_id"], 0) for o in pool]
    chosen: list[Row] = []
    while pool and len(chosen) < count:
        i = rng.choices(range(len(pool)), weights=weights)[0]
        chosen.append(pool.pop(i))
        weights.pop(i)
    return chosen


def _topic(rng: random.Random, kind: str) -> tuple[str, list[str], list[str]]:
    fitting = [t for t in _TOPICS if kind in t.scope]
    title, codes, themes, _ = rng.choice(fitting)
    if "{" in title:
        title = _fill(title, _pick_subject(rng))
    return title, list(codes), list(themes)


def _internship_sites(
    rng: random.Random, organizations: list[Row], teachers: list[Row], count: int
) -> list[Row]:
    good = [o for o in organizations if not o["low_results"]]
    rows: list[Row] = []
    for org in _some_organizations(rng, good, teachers, count):
        title, codes, themes = _topic(rng, org["kind"])
        rows.append(
            {
                "site_id": f"ssp-{len(rows) + 1:03d}",
                "organization_id": org["organization_id"],
                "municipality_id": org["municipality_id"],
                "title": f"Стажировочная площадка «{title}»",
                "competencies": codes,
                "themes": themes,
                "capacity": rng.choice((10, 15, 20, 20, 25, 30)),
            }
        )
    return rows


def _innovation_sites(rng: random.Random, organizations: list[Row], count: int) -> list[Row]:
    """Status for 3–5 years from 2023–2026: a few have lapsed by the reference date, as in a
    register that awaits its six-monthly check."""
    rows: list[Row] = []
    for org in rng.sample(organizations, min(count, len(organizations))):
        title, _, themes = _topic(rng, org["kind"])
        level = rng.choices(("federal", "regional", "municipal"), cum_weights=(8, 63, 100))[0]
        start = date(rng.randint(2023, REFERENCE_DATE.year), rng.choice((1, 9)), 1)
        end = date(start.year + rng.randint(3, 5), start.month, 1) - timedelta(days=1)
        rows.append(
            {
                "site_id": f"rip-{len(rows) + 1:03d}",
                "organization_id": org["organization_id"],
                "municipality_id": org["municipality_id"],
                "title": f"{_SITE_LEVEL_TITLE[level]} инновационная площадка «{title}»",
                "level": level,
                "themes": themes,
                "valid_from": start.isoformat(),
                "valid_to": end.isoformat(),
            }
        )
    return rows


def _communities(
    rng: random.Random, municipalities: list[Row], teachers: list[Row], count: int
) -> list[Row]:
    """Regional associations and municipal methodological associations (horizontal learning)."""
    regional = max(1, round(count * 0.3))
    size: dict[str, int] = {}
    for row in teachers:
        size[row["municipality_id"]] = size.get(row["municipality_id"], 0) + 1
    weights = [1 + size.get(m["municipality_id"], 0) for m in municipalities]
    names = {m["municipality_id"]: m["name"] for m in municipalities}
    rows: list[Row] = []
    subjects = list(SUBJECTS)
    rng.shuffle(subjects)
    for i in range(count):
        is_regional = i < regional
        level = "regional" if is_regional else "municipal"
        catalogue = [c for c in _COMMUNITIES if level in c.scope]
        title, codes, themes, _ = (
            catalogue[i % len(catalogue)] if is_regional else rng.choice(catalogue)
        )
        where = None if is_regional else rng.choices(municipalities, weights=weights)[0]
        chosen: list[str] = []
        if "{" in title:
            subject = subjects[i % len(subjects)] if is_regional else _pick_subject(rng)
            title, chosen = _fill(title, subject), [subject]
        if where is not None:
            title = f"{title}, {names[where['municipality_id']]}"
        rows.append(
            {
                "community_id": f"com-{i + 1:03d}",
                "title": title,
                "level": level,
                "municipality_id": None if where is None else where["municipality_id"],
                "subjects": chosen,
                "competencies": list(codes),
                "themes": list(themes),
            }
        )
    return rows


def _practices(
    rng: random.Random, organizations: list[Row], teachers: list[Row], count: int
) -> list[Row]:
    """The bank of effective practices: what organisations' teams have shown to work."""
    rows: list[Row] = []
    chosen = _some_organizations(rng, organizations, teachers, count)
    while len(chosen) < count:  # a small region: some organisations offer several
        chosen.append(rng.choice(organizations))
    for org in chosen:
        title, codes, themes = _topic(rng, org["kind"])
        rows.append(
            {
                "practice_id": f"prc-{len(rows) + 1:04d}",
                "title": title,
                "organization_id": org["organization_id"],
                "municipality_id": org["municipality_id"],
                "competencies": codes,
                "themes": themes,
                "year": rng.randint(2019, REFERENCE_DATE.year),
            }
        )
    return rows


# --- support outside a route: school teams, mentoring pairs, experts, practices, contests ---

SCHOOL_TEAMS = 16
"""School of the Ministry teams of the region (`003_*`): one per participating school."""
TEAM_METHODISTS = 11
"""Regional methodists (РМА) assigned to the School of the Ministry teams (`003_*`)."""

_FOCUSES = (
    ("Адаптация в профессии и в коллективе", ("communication", "psych_pedagogy")),
    ("Методика современного урока", ("teaching_methods",)),
    ("Классное руководство и воспитательная работа", ("upbringing", "communication")),
    ("Оценивание образовательных результатов", ("assessment",)),
    ("Функциональная грамотность на уроке", ("functional_literacy", "teaching_methods")),
    ("Цифровые инструменты в работе педагога", ("digital",)),
)
_MANAGEMENT_FOCUSES = (
    ("Управление качеством образования в организации", ("assessment", "communication")),
    ("Команда развития: проектное управление", ("communication",)),
)
# (kind, where, weight): the commissions and juries the region's experts sit in
_EXPERT_BODIES = (
    ("attestation", "Аттестационная комиссия министерства образования Иркутской области", 30),
    ("olympiad", "Предметная комиссия ГИА Иркутской области", 20),
    ("diagnostics", "Эксперты оценочных процедур ГАУ ИО ЦОПМКиМКО", 14),
    ("contest_jury", "Жюри региональных профессиональных конкурсов", 12),
    ("practice_review", "Экспертный совет банка эффективных практик", 12),
    ("program_review", "Экспертный совет ЦНППМ по программам ДПО", 10),
    ("other", "Муниципальный экспертный совет", 2),
)
# (title, level, who takes part, month held)
_CONTESTS = (
    ("Учитель года Приангарья", "regional", "school", 3),
    ("Воспитатель года Приангарья", "regional", "kindergarten", 4),
    ("Педагогический дебют", "regional", "young", 2),
    ("Мастер года", "regional", "college", 5),
    ("Сердце отдаю детям", "regional", "other", 4),
)
_PRACTICE_STAGES = ("submitted", "reviewed", "included", "replicated", "rejected")
_PRACTICE_STAGE_CUM = (10, 18, 75, 95, 100)
_REVIEWS = {
    "include": "Практика результативна и воспроизводима: рекомендована к включению в банк",
    "reject": "Результаты практики не подтверждены данными: в банк не рекомендована",
}


def _young(teacher: Row) -> bool:
    """In the first three years of work and under 35, as of the reference date."""
    born, hired = (
        date.fromisoformat(teacher["birth_date"]),
        date.fromisoformat(teacher["hire_date"]),
    )
    return _full_years(born) < 35 and _full_years(hired) < 3


def _full_years(since: date) -> int:
    end = REFERENCE_DATE
    return end.year - since.year - ((end.month, end.day) < (since.month, since.day))


def _school_teams(
    rng: random.Random, organizations: list[Row], teachers: list[Row], methodists: list[Row]
) -> list[Row]:
    """A team per School of the Ministry school (16 where the region has so many): its
    managers and a few of its teachers, and the 11 regional methodists assigned among them,
    a team's own from those serving its municipality where there is one."""
    staff = _by_organization(teachers)
    schools = [
        o
        for o in organizations
        if "school_of_ministry" in o["projects"] and len(staff.get(o["organization_id"], [])) >= 3
    ]
    chosen = sorted(
        _some_organizations(rng, schools, teachers, SCHOOL_TEAMS),
        key=lambda o: o["organization_id"],
    )

    if not chosen:
        return []

    def local(org: Row) -> list[Row]:
        return [m for m in methodists if org["municipality_id"] in m["municipalities"]]

    pool: list[str] = []
    for org in chosen:
        fresh = [m["methodist_id"] for m in local(org) if m["methodist_id"] not in pool]
        if fresh and len(pool) < TEAM_METHODISTS:
            pool.append(rng.choice(fresh))
    rest = [m["methodist_id"] for m in methodists if m["methodist_id"] not in pool]
    pool += rng.sample(rest, min(len(rest), TEAM_METHODISTS - len(pool)))
    assigned: list[list[str]] = []
    load = dict.fromkeys(pool, 0)
    for org in chosen:
        own = [m["methodist_id"] for m in local(org) if m["methodist_id"] in load]
        choice = min(own or pool, key=lambda m: (load[m], pool.index(m))) if pool else None
        assigned.append([] if choice is None else [choice])
        if choice is not None:
            load[choice] += 1
    for methodist in [m for m in pool if not load[m]]:  # everyone of the 11 has a team
        i = min(range(len(assigned)), key=lambda n: (len(assigned[n]), n))
        assigned[i].append(methodist)
        load[methodist] += 1
    rows: list[Row] = []
    for org, methodists_of in zip(chosen, assigned, strict=True):
        mine = staff[org["organization_id"]]
        managers = [t for t in mine if t["is_manager"]][:3]
        others = [t for t in mine if not t["is_manager"]]
        members = managers + rng.sample(others, min(len(others), rng.randint(2, 4)))
        rows.append(
            {
                "team_id": f"smt-{len(rows) + 1:02d}",
                "organization_id": org["organization_id"],
                "municipality_id": org["municipality_id"],
                "project": "school_of_ministry",
                "members": sorted(t["teacher_id"] for t in members),
                "methodists": sorted(methodists_of),
            }
        )
    return rows


def _mentoring_pairs(
    rng: random.Random, mentors: list[Row], teachers: list[Row], management: list[Row]
) -> list[Row]:
    """Schools' mentoring programs: each mentor with young teachers of their organisation
    (up to the mentor's capacity, each young teacher one mentor), and some mentors with a
    deputy of their organisation's management team."""
    young: dict[str, list[Row]] = {}
    for teacher in teachers:
        if _young(teacher):
            young.setdefault(teacher["organization_id"], []).append(teacher)
    deputies: dict[str, list[str]] = {}
    for member in management:
        if member["role"] == "deputy":
            deputies.setdefault(member["organization_id"], []).append(member["teacher_id"])
    school_year = date(REFERENCE_DATE.year - 1, 9, 1)
    rows: list[Row] = []

    def pair(mentor: Row, mentee: str, kind: str, start: date, focuses: Any) -> None:
        focus, codes = rng.choice(focuses)
        # Most programs go on; some pairs of last year have finished theirs.
        ends = start + timedelta(days=364)
        rows.append(
            {
                "pair_id": f"mp-{len(rows) + 1:05d}",
                "organization_id": mentor["organization_id"],
                "municipality_id": mentor["municipality_id"],
                "mentor_id": mentor["mentor_id"],
                "mentee_id": mentee,
                "kind": kind,
                "focus": focus,
                "competencies": list(codes),
                "starts_on": start.isoformat(),
                "ends_on": ends.isoformat()
                if ends < REFERENCE_DATE and rng.random() < 0.15
                else None,
            }
        )

    for mentor in mentors:
        waiting = young.get(mentor["organization_id"], [])
        room = mentor["capacity"]
        if waiting and rng.random() < 0.85:
            for teacher in waiting[: min(room, len(waiting))]:
                hired = date.fromisoformat(teacher["hire_date"])
                start = min(REFERENCE_DATE, max(hired, school_year) + timedelta(rng.randint(0, 30)))
                pair(mentor, teacher["teacher_id"], "young_teacher", start, _FOCUSES)
                room -= 1
            del waiting[: mentor["capacity"]]
        candidates = deputies.get(mentor["organization_id"], [])
        if room > 0 and candidates and rng.random() < 0.15:
            mentee = candidates.pop(rng.randrange(len(candidates)))
            start = school_year + timedelta(rng.randint(0, 300))
            pair(mentor, mentee, "management_team", start, _MANAGEMENT_FOCUSES)
    return rows


def _expert_roles(rng: random.Random, teachers: list[Row]) -> list[Row]:
    """The typed expert activity of the teachers the register marks as experts: one role
    each, some two; most go on, some have ended."""
    kinds = [kind for kind, _, _ in _EXPERT_BODIES]
    bodies = {kind: body for kind, body, _ in _EXPERT_BODIES}
    weights = [weight for _, _, weight in _EXPERT_BODIES]
    starts = [date(REFERENCE_DATE.year - 2, 9, 1), date(REFERENCE_DATE.year - 1, 1, 15)]
    starts += [date(REFERENCE_DATE.year - 1, 9, 1), date(REFERENCE_DATE.year, 1, 15)]
    rows: list[Row] = []
    experts = [t for t in teachers if t["expert"]]
    for n, teacher in enumerate(experts):
        own = {rng.choices(kinds, weights=weights)[0]}
        if rng.random() < 0.3:
            own.add(rng.choices(kinds, weights=weights)[0])
        if n == 0:
            own.add("practice_review")  # the bank's reviews have a reviewer in any region
        for kind in sorted(own, key=kinds.index):
            start = rng.choice(starts)
            end = date(start.year + 1, start.month, start.day) - timedelta(days=1)
            rows.append(
                {
                    "role_id": f"er-{len(rows) + 1:05d}",
                    "teacher_id": teacher["teacher_id"],
                    "organization_id": teacher["organization_id"],
                    "municipality_id": teacher["municipality_id"],
                    "kind": kind,
                    "body": bodies[kind],
                    "starts_on": start.isoformat(),
                    "ends_on": end.isoformat() if rng.random() < 0.2 else None,
                }
            )
    return rows


def _practice_course(
    rng: random.Random,
    practices: list[Row],
    organizations: list[Row],
    teachers: list[Row],
    roles: list[Row],
) -> None:
    """Where each practice of the bank is in its course (every stage present): its author,
    submission, the review (by an expert of the bank's council), inclusion and where it was
    replicated; all before the reference date."""
    staff = _by_organization(teachers)
    reviewers = sorted({r["teacher_id"] for r in roles if r["kind"] == "practice_review"})
    reviewers = reviewers or sorted(t["teacher_id"] for t in teachers if t["expert"])
    reviewers = reviewers or [t["teacher_id"] for t in teachers[:1]]
    kind_of = {o["organization_id"]: o["kind"] for o in organizations}
    kinds: dict[str, list[Row]] = {}
    for org in organizations:
        kinds.setdefault(org["kind"], []).append(org)
    latest = REFERENCE_DATE - timedelta(days=90)

    def day_of(year: int, last: date) -> date:
        first = date(year, 1, 1)
        return first + timedelta(
            rng.randint(0, max(0, (min(last, date(year, 12, 20)) - first).days))
        )

    for n, row in enumerate(practices):
        stage = (
            _PRACTICE_STAGES[n]
            if n < 4
            else rng.choices(_PRACTICE_STAGES, cum_weights=_PRACTICE_STAGE_CUM)[0]
        )
        authors = staff.get(row["organization_id"], [])
        if stage == "submitted":
            submitted = REFERENCE_DATE - timedelta(rng.randint(10, 80))
        else:
            submitted = day_of(min(row["year"], latest.year), latest)
        row["year"] = submitted.year
        row.update(
            status=stage,
            author_id=rng.choice(authors)["teacher_id"] if authors else None,
            submitted_on=submitted.isoformat(),
            reviewed_by=None,
            reviewed_on=None,
            review="",
            included_on=None,
            replications=[],
        )
        if stage == "submitted":
            continue
        reviewed = submitted + timedelta(rng.randint(14, 45))
        row.update(
            reviewed_by=rng.choice(reviewers),
            reviewed_on=reviewed.isoformat(),
            review=_REVIEWS["reject" if stage == "rejected" else "include"],
        )
        if stage in ("reviewed", "rejected"):
            continue
        included = reviewed + timedelta(rng.randint(7, 30))
        row["included_on"] = included.isoformat()
        if stage != "replicated":
            continue
        own = row["organization_id"]
        others = [o for o in kinds[kind_of[own]] if o["organization_id"] != own] or [
            o for o in organizations if o["organization_id"] != own
        ]
        taken_up = rng.sample(others, min(len(others), rng.randint(1, 3)))
        for org in sorted(taken_up, key=lambda o: o["organization_id"]):
            there = staff.get(org["organization_id"], [])
            on = min(REFERENCE_DATE, included + timedelta(rng.randint(30, 300)))
            row["replications"].append(
                {
                    "organization_id": org["organization_id"],
                    "municipality_id": org["municipality_id"],
                    "by": rng.choice(there)["teacher_id"] if there else None,
                    "on": on.isoformat(),
                }
            )
        row["replications"].sort(key=lambda r: (r["on"], r["organization_id"]))


def _contests(rng: random.Random) -> list[Row]:
    """The region's professional contests of last year and this one."""
    rows: list[Row] = []
    for year in (REFERENCE_DATE.year - 1, REFERENCE_DATE.year):
        for title, level, _, month in _CONTESTS:
            rows.append(
                {
                    "contest_id": f"cnt-{year}-{len(rows) % len(_CONTESTS) + 1:02d}",
                    "title": f"{title} — {year}",
                    "level": level,
                    "year": year,
                    "held_on": date(year, month, rng.randint(10, 25)).isoformat(),
                }
            )
    return rows


def _contest_entries(
    rng: random.Random,
    contests: list[Row],
    organizations: list[Row],
    teachers: list[Row],
    scale: float,
) -> list[Row]:
    """Each contest's participants, fitting who it is for, with a winner and prize winners."""
    kinds = {o["organization_id"]: o["kind"] for o in organizations}
    audience = {title: who for title, _, who, _ in _CONTESTS}
    rows: list[Row] = []
    for contest in contests:
        who = audience[contest["title"].rsplit(" — ", 1)[0]]
        pool = [
            t
            for t in teachers
            if (_young(t) if who == "young" else kinds[t["organization_id"]] == who)
            and not t["is_manager"]
        ]
        entrants = rng.sample(pool, min(len(pool), max(3, round(40 * scale))))
        for n, teacher in enumerate(entrants):
            rows.append(
                {
                    "entry_id": f"ce-{len(rows) + 1:05d}",
                    "contest_id": contest["contest_id"],
                    "teacher_id": teacher["teacher_id"],
                    "organization_id": teacher["organization_id"],
                    "municipality_id": teacher["municipality_id"],
                    "result": "winner" if n == 0 else "prize_winner" if n < 3 else "participant",
                }
            )
    return rows


def write_files(
    region: dict[str, list[Row]], out: Path, kind: str = "xlsx"
) -> list[tuple[Path, int]]:
    """The region as spreadsheets in ``out``, one per register (the import's columns,
    Russian titles): (path, rows) of each."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, spec in REGISTRY.items():
        content = importing.sheet(spec, region.get(name, []), importing.columns(spec))
        _, headers, rows = content
        path = out / f"{name}.{kind}"
        if kind == "xlsx":
            path.write_bytes(write_xlsx([content]))
        else:
            with path.open("w", newline="", encoding="utf-8-sig") as f:
                writer = csv.writer(f, delimiter=";")
                writer.writerow(headers)
                writer.writerows(rows)
        written.append((path, len(rows)))
    return written


def load(
    client: httpx.Client,
    registries_url: str,
    region: dict[str, list[Row]],
    key: str,
    since: date | None = None,
    timeout: float = 600,
) -> httpx.Response:
    """``POST /v1/load`` of the region, as a registrar (``key``): each register all or
    nothing; ``since``: the day the registers held these records from."""
    params = {} if since is None else {"since": since.isoformat()}
    return client.post(
        f"{registries_url}/v1/load",
        json=region,
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``iomflow region``: a summary of the demo region (how many rows of each register,
    how long it took), or ``files``: its spreadsheets."""
    parser = argparse.ArgumentParser(prog="iomflow region", description="Демонстрационный регион")
    parser.add_argument("command", nargs="?", choices=["summary", "files"], default="summary")
    parser.add_argument("--teachers", type=int, default=FULL_SCALE)
    parser.add_argument("--seed", type=int, default=38)
    parser.add_argument("--out", type=Path, help="files: the directory to write into")
    parser.add_argument("--format", choices=["xlsx", "csv"], default="xlsx")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    region = generate(seed=args.seed, teachers=args.teachers)
    took = time.perf_counter() - started
    if args.command == "files":
        if args.out is None:
            parser.error("files: укажите каталог --out")
        for path, count in write_files(region, args.out, args.format):
            print(f"{path}  ({count})")
        return 0
    for name, rows in region.items():
        print(f"{REGISTRY[name].title:<50} {name:<18} {len(rows):>7}")
    print(f"seed {args.seed}, as of {REFERENCE_DATE.isoformat()}, generated in {took:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
