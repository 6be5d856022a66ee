"""The registers of support outside a route (school teams, mentoring pairs, expert roles,
contests and their entries) and the practices' course, pure: their rules, their labels and
cells in Russian, the moves a practice's status allows, the count of expert activity."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from iomflow.registries import course, importing
from iomflow.registries.domain import REGISTRY, Known, check_record, young_on
from iomflow.registries.examples import EXAMPLES
from iomflow.shared.contracts import ExpertKind
from iomflow.shared.errors import Refused

NEW = ("school_teams", "mentoring_pairs", "expert_roles", "contests", "contest_entries")

ORGS = {
    "org-1": {"municipality_id": "mun-01", "kind": "school"},
    "org-2": {"municipality_id": "mun-02", "kind": "school"},
}
TEACHERS = {
    # young on 01.09.2025: 25 years old, hired 2024
    "t-young": {"organization_id": "org-1", "birth_date": "2000-03-01", "hire_date": "2024-09-01"},
    "t-old": {"organization_id": "org-1", "birth_date": "1975-03-01", "hire_date": "1998-09-01"},
    "t-other": {"organization_id": "org-2", "birth_date": "1980-03-01", "hire_date": "2005-09-01"},
}  # fmt: skip


def known(**more: dict[str, dict[str, Any]]) -> Known:
    return Known(
        {
            "municipalities": {"mun-01": {}, "mun-02": {}},
            "organizations": ORGS,
            "teachers": TEACHERS,
            "mentors": {"mnt-1": {}},
            "methodists": {"met-1": {}},
            **more,
        }
    )


def problems_of(register: str, values: dict[str, Any], where: Known | None = None) -> list[Any]:
    _, _, problems = check_record(REGISTRY[register], values, None, where or known())
    return problems


PAIR = {
    "pair_id": "mp-1",
    "organization_id": "org-1",
    "mentor_id": "mnt-1",
    "mentee_id": "t-young",
    "kind": "young_teacher",
    "starts_on": "2025-09-01",
}


# --- how they look to people ------------------------------------------------------------


@pytest.mark.parametrize("name", (*NEW, "practices"))
def test_every_column_of_the_new_registers_has_a_russian_title(name: str) -> None:
    for field in importing.columns(REGISTRY[name]):
        title = importing.title(field)
        assert title != field and any("а" <= ch.lower() <= "я" for ch in title), (name, field)
    assert any("а" <= ch.lower() <= "я" for ch in REGISTRY[name].title)


def test_a_kind_is_labelled_by_its_own_register() -> None:
    """Programs' and pairs' ``kind`` share a field name, not their values."""
    assert importing.labels_of(REGISTRY["programs"], "kind") == {"pk": "ПК", "pp": "ПП"}
    assert importing.labels_of(REGISTRY["mentoring_pairs"], "kind") == {
        "young_teacher": "молодой педагог",
        "management_team": "управленческая команда",
        "peer": "коллега",
    }
    assert importing.labels_of(REGISTRY["contest_entries"], "result") == {
        "participant": "участник",
        "prize_winner": "призёр",
        "winner": "победитель",
    }
    assert importing.labels_of(REGISTRY["practices"], "status")["included"] == "включена в банк"
    experts = importing.labels_of(REGISTRY["expert_roles"], "kind")
    assert experts is not None and set(experts) == {k.value for k in ExpertKind}
    assert experts["practice_review"] == "экспертиза практик"
    assert importing.parse_cell(REGISTRY["mentoring_pairs"], "kind", "Коллега") == "peer"
    assert importing.parse_cell(REGISTRY["programs"], "kind", "ПП") == "pp"


def test_a_replication_is_one_cell_and_back() -> None:
    spec = REGISTRY["practices"]
    cells = importing.parse_cell(spec, "replications", "org-2 21.04.2022 t-other; org-1 2023-01-10")
    assert cells == [
        {"organization_id": "org-2", "on": date(2022, 4, 21), "by": "t-other"},
        {"organization_id": "org-1", "on": date(2023, 1, 10), "by": None},
    ]
    shown = importing.cells_of(spec, EXAMPLES["practices"], ["replications", "included_on"])
    assert shown == ["org-0007 21.04.2022 t-000069", date(2021, 8, 30)]
    with pytest.raises(importing.CellError, match=r"код организации ДД\.ММ\.ГГГГ"):
        importing.parse_cell(spec, "replications", "org-2")
    with pytest.raises(importing.CellError, match="такой даты нет"):
        importing.parse_cell(spec, "replications", "org-2 31.02.2022")


# --- mentoring pairs ----------------------------------------------------------------------


def test_a_young_teachers_pair_takes_a_young_teacher_and_fills_its_municipality() -> None:
    data, _, problems = check_record(REGISTRY["mentoring_pairs"], PAIR, None, known())
    assert problems == [] and data is not None and data["municipality_id"] == "mun-01"


def test_a_pair_whose_mentee_is_not_young_is_a_peer_pair_not_a_young_teachers() -> None:
    problems = problems_of("mentoring_pairs", {**PAIR, "mentee_id": "t-old"})
    assert [field for field, _ in problems] == ["kind"]
    assert "не молодой педагог" in problems[0][1] and "«коллега»" in problems[0][1]
    assert problems_of("mentoring_pairs", {**PAIR, "mentee_id": "t-old", "kind": "peer"}) == []


def test_young_is_judged_on_the_pairs_start_not_today() -> None:
    hired_2020 = {"birth_date": "1996-01-01", "hire_date": "2020-09-01"}
    assert young_on(hired_2020, date(2021, 9, 1)) is True
    assert young_on(hired_2020, date(2025, 9, 1)) is False
    assert young_on({}, date(2025, 9, 1)) is None
    where = known(teachers={**TEACHERS, "t-2020": {"organization_id": "org-1", **hired_2020}})
    started_then = {**PAIR, "mentee_id": "t-2020", "starts_on": "2021-09-01"}
    assert problems_of("mentoring_pairs", started_then, where) == []


def test_a_pair_ends_after_it_starts_and_its_mentor_is_not_its_mentee() -> None:
    ended = problems_of("mentoring_pairs", {**PAIR, "ends_on": "2025-08-31"})
    assert ended == [("ends_on", "дата окончания раньше даты начала")]
    same = problems_of(
        "mentoring_pairs",
        {**PAIR, "mentor_id": "t-young"},
        known(mentors={"t-young": {}}),
    )
    assert ("mentee_id", "наставник не может быть наставляемым в своей паре") in same
    missing = problems_of("mentoring_pairs", {**PAIR, "mentor_id": "mnt-9"})
    assert missing == [("mentor_id", "«mnt-9» нет в реестре «Наставники»")]


# --- school teams, expert roles, contests ------------------------------------------------


def test_a_school_teams_members_work_in_its_organisation() -> None:
    team = {"team_id": "smt-1", "organization_id": "org-1", "methodists": ["met-1"]}
    assert problems_of("school_teams", {**team, "members": ["t-young", "t-old"]}) == []
    problems = problems_of("school_teams", {**team, "members": ["t-young", "t-other"]})
    assert problems == [
        ("members", "педагог «t-other» работает в «org-2», а команда — организации «org-1»")
    ]
    unknown = problems_of("school_teams", {**team, "methodists": ["met-9"]})
    assert unknown == [("methodists", "«met-9» нет в реестре «Региональные методисты»")]


def test_an_expert_roles_period_and_a_contests_day() -> None:
    role = {
        "role_id": "er-1",
        "teacher_id": "t-old",
        "organization_id": "org-1",
        "kind": "practice_review",
        "starts_on": "2025-09-01",
    }
    data, _, problems = check_record(REGISTRY["expert_roles"], role, None, known())
    assert problems == [] and data is not None and data["kind"] == "practice_review"
    ended = problems_of("expert_roles", {**role, "ends_on": "2025-01-01"})
    assert ended == [("ends_on", "дата окончания раньше даты начала")]
    contest = {"contest_id": "c-1", "title": "Учитель года", "level": "regional", "year": 2025}
    assert problems_of("contests", {**contest, "held_on": "2025-03-17"}) == []
    assert problems_of("contests", {**contest, "held_on": "2024-12-17"}) == [
        ("held_on", "дата проведения не в 2025 году конкурса")
    ]


def test_a_contest_entry_names_a_contest_the_register_holds() -> None:
    entry = {"entry_id": "ce-1", "contest_id": "c-1", "teacher_id": "t-old"}
    entry |= {"organization_id": "org-1", "result": "prize_winner"}
    assert problems_of("contest_entries", entry) == [
        ("contest_id", "«c-1» нет в реестре «Профессиональные конкурсы»")
    ]
    data, _, problems = check_record(
        REGISTRY["contest_entries"], entry, None, known(contests={"c-1": {}})
    )
    assert problems == [] and data is not None and data["result"] == "prize_winner"


# --- a practice's record -----------------------------------------------------------------

PRACTICE = {
    "practice_id": "prc-1",
    "title": "Смысловое чтение",
    "organization_id": "org-1",
    "year": 2024,
}


def test_a_practice_kept_before_the_course_is_of_the_bank() -> None:
    data, _, problems = check_record(REGISTRY["practices"], PRACTICE, None, known())
    assert problems == [] and data is not None and data["status"] == "included"
    assert course.status_of({"practice_id": "prc-0"}) == "included"


def test_a_replication_takes_its_organisations_municipality_and_must_agree_with_it() -> None:
    replicated = {
        **PRACTICE,
        "status": "replicated",
        "included_on": "2024-05-01",
        "replications": [{"organization_id": "org-2", "on": "2024-10-01", "by": "t-other"}],
    }
    data, _, problems = check_record(REGISTRY["practices"], replicated, None, known())
    assert problems == [] and data is not None
    assert data["replications"][0]["municipality_id"] == "mun-02"
    wrong = {**replicated, "replications": [{**replicated["replications"][0]}]}
    wrong["replications"][0]["municipality_id"] = "mun-01"
    assert problems_of("practices", wrong) == [
        ("replications", "организация «org-2» относится к МО «mun-02», а не к «mun-01»")
    ]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"status": "replicated"}, "replications", "укажите, где её переняли"),
        (
            {"replications": [{"organization_id": "org-2", "on": "2024-10-01"}]},
            "status",
            "«тиражирована»",
        ),
        ({"status": "reviewed", "reviewed_on": "2024-05-01"}, "reviewed_by", "эксперта"),
        ({"status": "rejected", "reviewed_by": "t-old"}, "reviewed_on", "дату"),
        ({"status": "submitted", "included_on": "2024-05-01"}, "included_on", "не включена"),
        (
            {"submitted_on": "2024-05-01", "reviewed_on": "2024-04-01", "reviewed_by": "t-old"},
            "reviewed_on",
            "раньше предыдущего шага",
        ),
        (
            {
                "status": "replicated",
                "included_on": "2024-05-01",
                "replications": [{"organization_id": "org-1", "on": "2024-10-01"}],
            },
            "replications",
            "в другой организации",
        ),
        (
            {
                "status": "replicated",
                "included_on": "2024-05-01",
                "replications": [{"organization_id": "org-2", "on": "2024-04-01"}],
            },
            "replications",
            "раньше включения",
        ),
        ({"reviewed_by": "t-9"}, "reviewed_by", "нет в реестре «Педагогические работники»"),
    ],
)
def test_a_practices_record_agrees_with_its_course(
    change: dict[str, Any], field: str, words: str
) -> None:
    problems = problems_of("practices", {**PRACTICE, **change})
    assert [f for f, _ in problems] == [field], problems
    assert words in problems[0][1]


# --- the course ---------------------------------------------------------------------------

SUBMITTED = course.submission({**PRACTICE, "municipality_id": "mun-01"}, date(2025, 3, 1))


def test_a_practice_goes_submitted_reviewed_included_replicated() -> None:
    assert SUBMITTED["status"] == "submitted" and SUBMITTED["submitted_on"] == date(2025, 3, 1)
    submitted = {**SUBMITTED, "submitted_on": "2025-03-01"}
    reviewed = course.reviewed(
        submitted, reviewer="t-old", verdict="include", review="Рекомендована", on=date(2025, 4, 1)
    )
    assert (reviewed["status"], reviewed["reviewed_by"], reviewed["reviewed_on"]) == (
        "reviewed",
        "t-old",
        "2025-04-01",
    )
    included = course.included(reviewed, date(2025, 4, 10))
    assert included["status"] == "included" and included["included_on"] == "2025-04-10"
    replicated, new = course.replicated(included, "org-2", "t-other", date(2025, 9, 1))
    assert new and replicated["status"] == "replicated"
    assert replicated["replications"] == [
        {"organization_id": "org-2", "by": "t-other", "on": "2025-09-01"}
    ]
    again, new = course.replicated(replicated, "org-2", "t-other", date(2025, 9, 1))
    assert not new and again == replicated
    with pytest.raises(Refused, match="уже тиражирована в «org-2»") as elsewhere:
        course.replicated(replicated, "org-2", None, date(2025, 10, 1))
    assert elsewhere.value.status == 409


def test_a_review_may_send_it_back_or_reject_it() -> None:
    submitted = {**SUBMITTED, "submitted_on": "2025-03-01"}
    back = course.reviewed(
        submitted, reviewer="t-old", verdict="revise", review="Доработать", on=date(2025, 4, 1)
    )
    assert back["status"] == "submitted" and back["review"] == "Доработать"
    with pytest.raises(Refused, match="прошлой экспертизы"):
        course.reviewed(back, reviewer="t-old", verdict="include", review="Да", on=date(2025, 3, 5))
    rejected = course.reviewed(
        back, reviewer="t-old", verdict="reject", review="Нет", on=date(2025, 5, 1)
    )
    assert rejected["status"] == "rejected"
    with pytest.raises(Refused, match="отклонена по итогам экспертизы") as refused:
        course.included(rejected, date(2025, 5, 2))
    assert refused.value.status == 409 and refused.value.code == "practice_status"


@pytest.mark.parametrize(
    ("move", "said"),
    [
        (lambda p: course.included(p, date(2025, 5, 1)), "ждёт экспертизы"),
        (
            lambda p: course.replicated(p, "org-2", None, date(2025, 5, 1)),
            "тиражируется только практика, включённая в банк",
        ),
        (
            lambda p: course.reviewed(
                {**p, "status": "included"}, reviewer="t", verdict="include", review="-",
                on=date(2025, 5, 1),
            ),
            "на экспертизу принимается только поданная",
        ),
    ],
)  # fmt: skip
def test_a_move_out_of_turn_is_refused_in_russian(move: Any, said: str) -> None:
    with pytest.raises(Refused) as refused:
        move({**SUBMITTED, "submitted_on": "2025-03-01"})
    assert refused.value.status == 409 and said in refused.value.detail


def test_dates_out_of_order_and_the_own_organisation_are_bad_requests() -> None:
    submitted = {**SUBMITTED, "submitted_on": "2025-03-01"}
    with pytest.raises(Refused, match="раньше подачи практики") as early:
        course.reviewed(submitted, reviewer="t", verdict="include", review="-", on=date(2025, 2, 1))
    assert early.value.status == 422
    included = {**submitted, "status": "included", "included_on": "2025-04-01"}
    with pytest.raises(Refused, match="раньше включения в банк"):
        course.replicated(included, "org-2", None, date(2025, 3, 1))
    with pytest.raises(Refused, match="перенос в другую организацию") as own:
        course.replicated(included, "org-1", None, date(2025, 5, 1))
    assert own.value.status == 422


def test_a_text_query_matches_the_words_of_a_title_in_any_case() -> None:
    practice = {"title": "Служба психологической поддержки: профилактика выгорания"}
    assert course.matches(practice, "СЛУЖБА выгорания")
    assert course.matches(practice, "профилактика ВЫГОРАНИЯ")
    assert not course.matches(practice, "служба чтения")


# --- expert activity -----------------------------------------------------------------------


def test_expert_activity_counts_distinct_teachers_by_kind_in_the_year() -> None:
    roles = [
        {"teacher_id": "t-1", "kind": "attestation", "starts_on": "2024-09-01", "ends_on": None},
        {"teacher_id": "t-1", "kind": "contest_jury", "starts_on": "2025-01-15",
         "ends_on": "2025-03-01"},
        {"teacher_id": "t-2", "kind": "attestation", "starts_on": "2023-09-01",
         "ends_on": "2024-12-31"},  # ended before 2025
        {"teacher_id": "t-3", "kind": "attestation", "starts_on": "2025-12-31", "ends_on": None},
        {"teacher_id": "t-3", "kind": "attestation", "starts_on": "2026-01-01", "ends_on": None},
    ]  # fmt: skip
    activity = course.expert_activity(roles, 2025)
    assert (activity.year, activity.teachers, activity.roles) == (2025, 2, 3)
    kinds = {k.kind: (k.teachers, k.roles) for k in activity.by_kind}
    assert list(kinds) == list(ExpertKind)
    assert kinds[ExpertKind.ATTESTATION] == (2, 2)
    assert kinds[ExpertKind.CONTEST_JURY] == (1, 1)
    assert kinds[ExpertKind.OTHER] == (0, 0)
    assert course.expert_activity(roles, 2024).teachers == 2
    assert course.expert_on(roles[:2], ExpertKind.CONTEST_JURY, date(2025, 2, 1))
    assert not course.expert_on(roles[:2], ExpertKind.CONTEST_JURY, date(2025, 3, 2))
