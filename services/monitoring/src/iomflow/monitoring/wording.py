"""How the report writes numbers, units, dates and counted words in Russian: decimal commas,
a thin grouping space, the plural form a number takes («1 муниципалитет, 3 муниципалитета,
41 муниципалитет»), statuses in words."""

from __future__ import annotations

from datetime import date

STATUS_NAMES = {
    "met": "достигнут",
    "on_track": "в графике",
    "at_risk": "под угрозой",
    "missed": "не достигнут",
    "no_data": "нет данных",
    "not_judged": "без цели на этом уровне",
}


def status_name(status: str) -> str:
    """A status in words (a status the report does not know yet: as it comes)."""
    return STATUS_NAMES.get(status, status)


Forms = tuple[str, str, str]
"""A word's forms after 1, 2-4 and 5 (or 0, 11-14): муниципалитет, муниципалитета,
муниципалитетов."""

MUNICIPALITIES: Forms = ("муниципалитет", "муниципалитета", "муниципалитетов")
KPIS: Forms = ("показатель", "показателя", "показателей")
TEACHERS: Forms = ("педагог", "педагога", "педагогов")
ORGANIZATIONS: Forms = ("организация", "организации", "организаций")
TEAMS: Forms = ("команда", "команды", "команд")
METHODISTS: Forms = ("методист", "методиста", "методистов")
EVENTS: Forms = ("мероприятие", "мероприятия", "мероприятий")
PRACTICES: Forms = ("практика", "практики", "практик")

UNIT_FORMS: dict[str, Forms] = {
    "команд": TEAMS,
    "методистов": METHODISTS,
    "мероприятий": EVENTS,
    "практик": PRACTICES,
}
"""Units that are words (as the dashboard has them): «1 команда, 3 команды, 16 команд»."""
UNIT_GENITIVE: dict[str, Forms] = {
    "команд": ("команды", "команд", "команд"),
    "методистов": ("методиста", "методистов", "методистов"),
    "мероприятий": ("мероприятия", "мероприятий", "мероприятий"),
    "практик": ("практики", "практик", "практик"),
}
"""The same after «не менее» / «не более»: «не менее 1 практики, 4 мероприятий»."""

COMPARED = {
    ">=": "не менее",
    "<=": "не более",
    "growth": "рост к прошлому году",
    "decline": "снижение к прошлому году",
}
"""A target's comparison (the catalogue's ``comparison``), in words."""


def goal(comparison: str, target: float | None, unit: str) -> str:
    """A KPI's target in words: «не менее 95 %», «не менее 4 мероприятий», «не более 250
    чел.», «рост к прошлому году»; a relative target has no amount."""
    if comparison in ("growth", "decline"):
        return COMPARED[comparison]
    forms = UNIT_GENITIVE.get(unit)
    shown = (
        f"{number(target)}\u00a0{form(target, forms)}"
        if forms and target is not None
        else amount(target, unit)
    )
    return f"{COMPARED.get(comparison, comparison)} {shown}"


def form(n: float, forms: Forms) -> str:
    """The form of a word after the number ``n`` (a fraction takes the second: 1,5 команды)."""
    one, few, many = forms
    if n != int(n):
        return few
    k = abs(int(n))
    if k % 10 == 1 and k % 100 != 11:
        return one
    if 2 <= k % 10 <= 4 and not 12 <= k % 100 <= 14:
        return few
    return many


def plural(n: float, forms: Forms) -> str:
    """«41 муниципалитет», «3 показателя», «12 педагогов»."""
    return f"{number(n)}\u00a0{form(n, forms)}"


def number(value: float | None) -> str:
    """A value the Russian way: 3,1 · 10 · 1 250; a dash for none."""
    if value is None:
        return "—"
    text = f"{value:,.1f}".replace(",", "\u00a0").replace(".", ",")
    return text.removesuffix(",0")


def amount(value: float | None, unit: str) -> str:
    """A value with its unit, the unit in the number's form: «7,2 %», «3 команды»; a dash
    for none."""
    if value is None:
        return number(value)
    forms = UNIT_FORMS.get(unit)
    return f"{number(value)}\u00a0{form(value, forms) if forms else unit}"


def change(delta: float, unit: str) -> str:
    """A difference with its sign: «+3,5 п. п.» for a share, «−2 чел.» otherwise."""
    sign = "+" if delta > 0 else "−" if delta < 0 else "±"
    if unit == "%":
        return f"{sign}{number(abs(delta))}\u00a0п.\u00a0п."
    return f"{sign}{amount(abs(delta), unit)}"


def ru_date(day: date) -> str:
    return f"{day:%d.%m.%Y}"


def quoted(names: list[str]) -> str:
    """«А», «Б» и «В»."""
    marked = [f"«{n}»" for n in names]
    if len(marked) < 2:
        return "".join(marked)
    return ", ".join(marked[:-1]) + " и " + marked[-1]
