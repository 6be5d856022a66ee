"""The KPI catalogue walked row by row against Appendix 1 of the regulation (the seed in
``../shared/seeds/002_*.txt``): every row is answered, by a KPI or a tracked item, with
its target, deadline and population; and the README says how many there are."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from iomflow.monitoring import domain

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = domain.load_catalogue(
    ROOT / "services/monitoring/src/iomflow/monitoring/data/kpis.json"
)
SEEDS = ROOT.parent / "shared" / "seeds"


@dataclass(frozen=True)
class Row:
    number: int
    result: str
    indicator: str


def appendix_rows() -> list[Row]:
    """The table of Appendix 1 as the seed has it: rows start with a tab (an empty number
    column); a row broken by a page goes on after a blank line, also tab-first, with a
    word that does not begin a sentence (a new row after a page break begins with one)."""
    found = sorted(SEEDS.glob("002_*.txt"))
    if not found:
        pytest.skip("the seeds are not beside the checkout (../shared/seeds)")
    text = found[0].read_text(encoding="utf-8")
    table = text[text.index("№ п/п") : text.index("Приложение 2")]
    rows: list[list[str]] = []
    blank_before = False
    for line in table.splitlines()[1:]:
        if not line.strip():
            blank_before = True
            continue
        if line.startswith("\t"):
            cells = [c.strip() for c in line.split("\t")[1:]]
            if blank_before and rows and not cells[0][:1].isupper():  # the row goes on
                more = [*cells, "", ""][:2]
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], more, strict=True)]
            else:
                rows.append([*cells, "", ""][:2])
        blank_before = False
    return [Row(n, r, i) for n, (r, i) in enumerate(rows, start=1)]


ROWS = appendix_rows() if sorted(SEEDS.glob("002_*.txt")) else []


def answering(number: int) -> list[domain.Kpi | domain.Tracked]:
    return [e for e in [*CATALOGUE.kpis, *CATALOGUE.tracked] if number in e.appendix_rows]


def test_the_appendix_has_25_rows_and_each_is_answered_once() -> None:
    assert len(ROWS) == 25, [r.result[:40] for r in ROWS]
    for row in ROWS:
        assert len(answering(row.number)) == 1, (row.number, row.result)
    numbers = [n for e in [*CATALOGUE.kpis, *CATALOGUE.tracked] for n in e.appendix_rows]
    assert sorted(set(numbers)) == list(range(1, 26))


def _numbers(text: str) -> set[float]:
    return {float(m.replace(",", ".")) for m in re.findall(r"\d+(?:,\d+)?(?= ?%)", text)}


def _deadline(text: str) -> date | None:
    found = re.search(r"(?:до|к) 31\.12\. ?(\d{4})", text)
    return date(int(found.group(1)), 12, 31) if found else None


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"row{r.number}")
def test_each_row_s_target_deadline_and_population(row: Row) -> None:
    (entry,) = answering(row.number)
    text = f"{row.result} {row.indicator}"
    if isinstance(entry, domain.Tracked):
        assert entry.target == row.indicator
        assert entry.name.replace("«", "“").replace("»", "”")[:30] == row.result[:30] or (
            entry.name[:20] in row.result or row.result[:20] in entry.name
        )
        if "ежегодно" in row.indicator.lower():
            assert entry.recurrence == "yearly"
            assert str(entry.since) in row.indicator
        else:
            assert entry.recurrence == "once" and entry.deadline == _deadline(row.indicator)
        return
    kpi = entry
    # the target in force is the row's own figure (percent, or a count of people)
    if kpi.comparison == "growth":
        assert "динамик" in row.indicator
    elif kpi.unit == "%":
        assert kpi.target in _numbers(row.indicator), (kpi.code, row.indicator)
    else:
        assert str(int(kpi.target)) in row.indicator, (kpi.code, row.indicator)
    assert kpi.deadline == _deadline(row.indicator), kpi.code
    if "ежегодно" in row.indicator or "начиная с 2023" in row.indicator:
        assert kpi.accumulation == "yearly", kpi.code
    if "накопительн" in text:
        assert kpi.accumulation == "cumulative", kpi.code
    if "не более" in row.indicator.lower():
        assert kpi.comparison == "<="
    # the population the row counts over
    pop = kpi.population
    if "до 35 лет" in text:
        assert pop.where == {"young": True}, kpi.code
    elif "дошкольных" in row.indicator:
        assert pop.where == {"audience": "preschool"}, kpi.code
    elif "низкими результатами" in text:
        assert pop.where == {"school_at_risk": True}, kpi.code
    elif "реализующих ИОМ" in row.indicator:
        assert pop.holding == "route", kpi.code
    elif "управленческих команд" in text:
        assert (pop.of, pop.holding) == ("organizations", "team"), kpi.code
    elif "Доля образовательных организаций" in row.result:
        assert pop.of == "organizations", kpi.code
    elif "общеобразовательных" in text:
        assert pop.where.get("audience") == "general", kpi.code
    else:
        assert pop.of == "teachers" and not pop.where and not pop.holding, kpi.code


def test_every_conflict_of_the_seed_is_recorded_with_its_source() -> None:
    """Where the documents disagree, the catalogue keeps each figure with its source."""
    federal = next(k for k in CATALOGUE.kpis if k.code == "federal_programs_share")
    assert [t.value for t in federal.targets] == [9.5, 30]
    assert all(t.source for k in CATALOGUE.kpis for t in k.targets)
    young = next(k for k in CATALOGUE.kpis if k.code == "young_supported_share")
    assert young.appendix_rows == [20, 24]  # the appendix repeats the row
    assert "mentored" in young.numerator.kinds  # «в том числе … наставничества»


def test_the_readme_counts_the_catalogue_truly() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    kpis, tracked = len(CATALOGUE.kpis), len(CATALOGUE.tracked)
    appendix = sum(1 for k in CATALOGUE.kpis if k.appendix_rows)
    assert f"{kpis} показател" in readme or f"{kpis} KPI" in readme, kpis
    assert f"{len(ROWS) or 25} строк" in readme
    assert (appendix, tracked) == (22, 2)
