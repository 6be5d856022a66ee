"""The README's first command, as a user runs it: ``iomflow demo`` exits 0 and prints the
KPI table and one trace across the services, after a year of history: diagnoses of teachers
all over the region dated over the year's campaigns, and the year's course completions
taken by routes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from iomflow.cli import demo as cli_demo
from iomflow.monitoring.context import catalogue


# The demo loads a 40,000-teacher region and replays its year: under half a minute on a quiet
# 2-core machine, minutes on a busy one (past pytest's default 300 s under load). The chain
# gets 500 s to settle, the process 600 s.
@pytest.mark.timeout(660)
def test_demo_prints_kpis_and_one_trace_across_the_services(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "iomflow.cli.main",
            "demo",
            "--teachers",
            "400",
            "--workdir",
            str(tmp_path / "demo"),
            "--timeout",
            "500",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)},
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]

    # The KPI table names each KPI as the catalogue does (no codes); a long name wraps onto
    # the rows below, whose other cells are empty.
    rows: dict[str, str] = {}
    name = ""
    for line in out[out.index("Показатели РС НМС") :].splitlines()[4:]:
        if not line.startswith("│"):
            break
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells[1]:
            name = cells[0]
            rows[name] = cells[1]
        else:
            rows[f"{name} {cells[0]}"] = rows.pop(name)
            name = f"{name} {cells[0]}"
    names = {k.code: k.name for k in catalogue().kpis}
    assert set(rows) == set(names.values()), rows

    def value(code: str) -> float:
        shown = rows[names[code]]
        # a total past its deadline shows its value then, and «(сейчас …)»: now's is read
        match = re.search(r"сейчас (\d+(?:,\d)?)\s", shown) or re.match(r"(\d+(?:,\d)?)\s", shown)
        assert match, f"{code}: {shown!r} is not a number to 0,1 with a decimal comma"
        return float(match.group(1).replace(",", "."))

    assert value("diagnosed_share") > 0
    assert value("route_share") > 0
    assert value("methodist_support_share") == 100.0
    assert 0 < value("methodist_load_max") <= 250
    trace = re.search(r"Трасса ([0-9a-f]{32}): \d+ спанов, сервисы: (.+)", out)
    assert trace, out[-3000:]
    assert {"diagnostics", "routes", "monitoring"} <= set(trace.group(2).split(", "))
    assert "monitoring   iomflow.routes.events process" in out

    # The year's history: three campaigns, the diagnoses dated by their evidence over the
    # months of the year (as diagnostics says), of teachers all over the region.
    opened = re.search(r"Кампании года открыты оператором [^:]*: (.+)", out)
    assert opened, out[-3000:]
    assert re.findall(r"(demo-[\w-]+) «", opened.group(1)) == [
        w.campaign_id for w in cli_demo.HISTORY
    ]
    history = re.search(
        r"История диагностик \(по дате доказательств\): (.+); месяцев (\d+), муниципалитетов (\d+)",
        out,
    )
    assert history, out[-3000:]
    months = dict(re.findall(r"(\d\d\.\d{4}) (\d+)", history.group(1)))
    assert len(months) == int(history.group(2)) >= 6
    assert sum(map(int, months.values())) == 400
    assert {m[-4:] for m in months} == {str(y) for w in cli_demo.HISTORY for y, _ in w.months}
    assert int(history.group(3)) >= 10  # not the registry's first page: one municipality
    # The year's course completions, of programs in routes and outside them, all taken.
    published = re.search(
        r"Опубликовано завершений курсов в \S+: (\d+) — по программам маршрутов (\d+), "
        r"вне маршрутов (\d+)",
        out,
    )
    assert published, out[-3000:]
    _, in_routes, outside = map(int, published.groups())
    assert in_routes > 0 and outside > 0
    taken = re.search(
        r"Маршруты приняли завершения курсов: по шагам маршрутов (\d+), вне маршрутов (\d+), "
        r"отложено 0",
        out,
    )
    assert taken, out[-3000:]
    assert (int(taken.group(1)), int(taken.group(2))) == (in_routes, outside)
    past = ", ".join(w.campaign_id for w in cli_demo.HISTORY[:-1])
    assert f"Прошлые кампании закрыты оператором: {past}" in out
    assert re.search(
        r"«Доля педагогических работников и управленческих кадров, прошедших диагностику "
        r"профессиональных дефицитов» по месяцам: .*\d",
        out,
    )
    assert "diagnosed_share" not in out and ">=" not in out

    # The printed route reads in words: competencies, kinds and reasons without codes (the
    # only Latin left is the teacher's and the methodist's pseudonymous ids), and the roles
    # still to agree by name.
    route = out[out.index("ИОМ педагога") : out.index("Часы по годам")]
    assert not re.findall(r"[A-Za-z_]{2,}", re.sub(r"\b(?:t-\d{6}|met-\d{3})\b", "", route))
    assert "ждёт согласования: педагог, методист, управленческая команда ОО" in out

    # The year of support outside a route: needs answers, activities with their attendance,
    # the practices' course, support plans; then a line per new indicator.
    needs = re.search(r"Опубликовано ответов анкеты образовательных потребностей в \S+: (\d+)", out)
    assert needs and int(needs.group(1)) > 0, out[-3000:]
    year = re.search(
        r"Записано мероприятий года: (\d+) .*участий (\d+): региональных мероприятий (\d+), "
        r"консультаций школьных команд «Школы Минпросвещения России» (\d+) \((\d+) команд; "
        r"команда (\S+) без консультации с",
        out,
    )
    assert year, out[-3000:]
    assert int(year.group(3)) >= 4 and int(year.group(5)) == 16
    assert int(year.group(4)) == 16 * 13 - 2  # a consultation a month; one team's last two not
    assert re.search(r"Банк практик: рассмотрено [1-9]\d*.*тиражировано [1-9]", out)
    assert re.search(r"Планы поддержки школ с низкими результатами: [1-9]\d* .*просрочено 1\)", out)
    shown = out[out.index("Поддержка вне маршрутов — показатели:") :].splitlines()
    lines = shown[1 : 1 + len(cli_demo.NEW_KPIS)]
    assert [line.strip()[1 : line.strip().index("»: ")] for line in lines] == [
        names[code] for code in cli_demo.NEW_KPIS
    ], lines
    assert value("regional_activities") >= 4
    # the register's 16 teams and the 11 methodists they name (003_*, items 1 and 2)
    assert value("school_of_ministry_teams") == 16
    assert value("school_of_ministry_methodists") == 11
    assert 0 < value("school_of_ministry_consultations") < 100  # one team went without
    assert value("needs_surveyed_share") > 0 and value("burnout_high_share") > 0
    assert value("practices_in_bank") > 0 and value("practices_replicated") > 0
    assert value("contest_participants") > 0 and value("support_plans_share") > 0
    assert value("young_supported_share") > 0 and value("mentoring_orgs_share") > 0
    assert value("burnout_prevention_share") > 0 and value("expert_involvement") > 0
    assert "Оповещение: " in out, out[-3000:]  # the team's month without, the overdue action
