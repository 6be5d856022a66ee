"""Pure rules of registries: row validation, change detection and the demo region."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from iomflow.diagnostics.domain import load_framework
from iomflow.registries import demo
from iomflow.registries.domain import (
    ENTITIES,
    RowError,
    changes,
    digest,
    validate_rows,
)
from iomflow.routes.domain import MethodistView, ProgramView, TeacherView, draft_route
from iomflow.routes.domain import eligible_methodists as eligible
from iomflow.shared.contracts import (
    EVENT_TYPES,
    CompetencyResult,
    Level,
    MethodistUpserted,
    TeacherUpserted,
)

SHIPPED_DEMO = Path(str(resources.files("iomflow.registries").joinpath("data/demo_region.json")))
SHIPPED_FRAMEWORK = Path(
    str(resources.files("iomflow.diagnostics").joinpath("data/framework.json"))
)

TEACHERS = ENTITIES["teachers"]
METHODISTS = ENTITIES["methodists"]
PROGRAMS = ENTITIES["programs"]


def teacher_row(teacher_id: str = "t-000001", **changes_: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "teacher_id": teacher_id,
        "organization_id": "org-0001",
        "municipality_id": "mun-01",
        "position": "учитель",
        "audience": "general",
        "subjects": ["математика"],
        "age_band": "25-34",
        "experience_band": "3-10",
        "is_manager": False,
    }
    row.update(changes_)
    return row


@pytest.fixture(scope="module")
def region() -> dict[str, Any]:
    return demo.generate()


# --- entities ------------------------------------------------------------------------------


def test_entities_are_in_dependency_order() -> None:
    assert list(ENTITIES) == [
        "municipalities",
        "organizations",
        "programs",
        "methodists",
        "teachers",
    ]


def test_every_entity_publishes_a_known_event_type() -> None:
    for entity in ENTITIES.values():
        assert EVENT_TYPES[entity.event_type] is entity.contract
    assert TEACHERS.event_type == "registry.teacher.upserted"


# --- validate_rows -------------------------------------------------------------------------


def test_valid_rows_become_records() -> None:
    valid, errors = validate_rows(TEACHERS, [teacher_row("t-1"), teacher_row("t-2")])
    assert errors == []
    assert [r.teacher_id for r in valid] == ["t-1", "t-2"]  # type: ignore[attr-defined]
    assert all(isinstance(r, TeacherUpserted) for r in valid)


def test_missing_field_is_reported_in_russian_with_row_and_field() -> None:
    row = teacher_row()
    del row["age_band"]
    valid, errors = validate_rows(TEACHERS, [teacher_row("t-ok"), row])
    assert [r.teacher_id for r in valid] == ["t-ok"]  # type: ignore[attr-defined]
    assert errors == [RowError("teachers", 2, "age_band", "обязательное поле не заполнено")]


def test_row_numbers_are_one_based() -> None:
    row = teacher_row()
    del row["position"]
    _, errors = validate_rows(TEACHERS, [row])
    assert [e.row for e in errors] == [1]


def test_unknown_field_is_reported() -> None:
    _, errors = validate_rows(TEACHERS, [teacher_row(snils="123-456-789 00")])
    assert errors == [RowError("teachers", 1, "snils", "неизвестное поле")]


def test_value_outside_the_allowed_ones_is_reported() -> None:
    _, errors = validate_rows(TEACHERS, [teacher_row(audience="adults")])
    [error] = errors
    assert (error.register, error.row, error.field) == ("teachers", 1, "audience")
    assert error.reason.startswith("недопустимое значение")
    assert "general" in error.reason


def test_literal_value_outside_the_allowed_ones_is_reported() -> None:
    _, errors = validate_rows(TEACHERS, [teacher_row(age_band="70+")])
    [error] = errors
    assert error.field == "age_band"
    assert error.reason.startswith("недопустимое значение")


def test_badly_formatted_number_is_reported() -> None:
    row = {"methodist_id": "m", "specialisations": [], "municipalities": [], "capacity": "много"}
    _, errors = validate_rows(METHODISTS, [row])
    [error] = errors
    assert (error.register, error.row, error.field) == ("methodists", 1, "capacity")
    assert error.reason.startswith("неверный формат значения")


def test_every_error_of_a_row_is_reported() -> None:
    row = {"methodist_id": "m", "specialisations": "digital", "municipalities": [], "capacity": 0}
    valid, errors = validate_rows(METHODISTS, [row])
    assert valid == []
    assert [(e.row, e.field) for e in errors] == [(1, "specialisations"), (1, "capacity")]
    assert all(e.reason.startswith("ошибка проверки") for e in errors)


def test_nested_field_is_named_with_dots() -> None:
    row = {
        "program_id": "p",
        "title": "t",
        "kind": "pk",
        "hours": 36,
        "format": "distance",
        "competencies": ["digital"],
        "audiences": ["general", "adults"],
    }
    _, errors = validate_rows(PROGRAMS, [row])
    [error] = errors
    assert error.field == "audiences.1"


def test_row_that_is_not_an_object_is_reported_for_the_whole_row() -> None:
    valid, errors = validate_rows(TEACHERS, [teacher_row("t-1"), "garbage"])
    assert len(valid) == 1
    [error] = errors
    assert (error.row, error.field) == (2, "—")
    assert error.reason.startswith("ошибка проверки")


def test_duplicate_id_in_one_file_is_reported() -> None:
    rows = [teacher_row("t-1"), teacher_row("t-2"), teacher_row("t-1", position="руководитель")]
    valid, errors = validate_rows(TEACHERS, rows)
    assert [r.teacher_id for r in valid] == ["t-1", "t-2"]  # type: ignore[attr-defined]
    assert valid[0].position == "учитель"  # type: ignore[attr-defined]  # the first one wins
    assert errors == [
        RowError("teachers", 3, "teacher_id", "идентификатор t-1 повторяется в файле")
    ]


def test_invalid_rows_do_not_stop_the_rest() -> None:
    rows = [teacher_row("t-1", audience="x"), teacher_row("t-2"), teacher_row("t-3", age_band="x")]
    valid, errors = validate_rows(TEACHERS, rows)
    assert [r.teacher_id for r in valid] == ["t-2"]  # type: ignore[attr-defined]
    assert [e.row for e in errors] == [1, 3]


# --- digests and changes -------------------------------------------------------------------


def _teachers(*rows: dict[str, Any]) -> list[Any]:
    valid, errors = validate_rows(TEACHERS, list(rows))
    assert errors == []
    return valid


def test_digest_is_stable_and_content_based() -> None:
    a = TeacherUpserted.model_validate(teacher_row())
    b = TeacherUpserted.model_validate(dict(reversed(list(teacher_row().items()))))
    assert digest(a) == digest(b)
    assert len(digest(a)) == 64
    assert digest(a) != digest(TeacherUpserted.model_validate(teacher_row(position="руководитель")))


def test_everything_is_new_on_first_import() -> None:
    records = _teachers(teacher_row("t-1"), teacher_row("t-2"))
    found = changes(TEACHERS, records, {})
    assert [c.record_id for c in found] == ["t-1", "t-2"]
    assert [c.digest for c in found] == [digest(r) for r in records]
    assert all(c.entity is TEACHERS for c in found)


def test_reimport_changes_nothing() -> None:
    records = _teachers(teacher_row("t-1"), teacher_row("t-2"))
    known = {c.record_id: c.digest for c in changes(TEACHERS, records, {})}
    again = _teachers(teacher_row("t-1"), teacher_row("t-2"))
    assert changes(TEACHERS, again, known) == []


def test_only_new_or_changed_records_are_changes() -> None:
    first = _teachers(teacher_row("t-1"), teacher_row("t-2"), teacher_row("t-3"))
    known = {c.record_id: c.digest for c in changes(TEACHERS, first, {})}
    second = _teachers(
        teacher_row("t-1"),
        teacher_row("t-2", experience_band="10-20"),
        teacher_row("t-3"),
        teacher_row("t-4"),
    )
    found = changes(TEACHERS, second, known)
    assert [c.record_id for c in found] == ["t-2", "t-4"]
    assert found[0].record.experience_band == "10-20"  # type: ignore[attr-defined]
    assert found[0].digest != known["t-2"]


def test_defaults_made_explicit_are_no_change() -> None:
    implicit = teacher_row("t-1")
    del implicit["is_manager"]
    known = {c.record_id: c.digest for c in changes(TEACHERS, _teachers(implicit), {})}
    assert changes(TEACHERS, _teachers(teacher_row("t-1", is_manager=False)), known) == []


# --- the demo region -----------------------------------------------------------------------


def test_demo_is_deterministic_for_a_seed() -> None:
    assert demo.generate(seed=7, teachers=200) == demo.generate(seed=7, teachers=200)


def test_demo_differs_between_seeds() -> None:
    assert demo.generate(seed=7, teachers=200) != demo.generate(seed=8, teachers=200)


def test_demo_default_seed_and_size(region: dict[str, Any]) -> None:
    assert region["seed"] == 38
    assert len(region["teachers"]) == 3000


def test_demo_has_the_42_municipalities(region: dict[str, Any]) -> None:
    municipalities = region["municipalities"]
    assert len(municipalities) == 42
    assert [m["municipality_id"] for m in municipalities][:2] == ["mun-01", "mun-02"]
    assert municipalities[-1]["municipality_id"] == "mun-42"
    assert municipalities[0]["name"] == "г. Иркутск"
    assert len({m["name"] for m in municipalities}) == 42


def test_demo_ids_are_unique(region: dict[str, Any]) -> None:
    for plural, entity in ENTITIES.items():
        ids = [row[entity.key] for row in region[plural]]
        assert len(ids) == len(set(ids)), plural


def test_every_municipality_has_organisations(region: dict[str, Any]) -> None:
    with_orgs = {o["municipality_id"] for o in region["organizations"]}
    assert with_orgs == {m["municipality_id"] for m in region["municipalities"]}


def test_every_teachers_organisation_exists_in_the_same_municipality(
    region: dict[str, Any],
) -> None:
    orgs = {o["organization_id"]: o for o in region["organizations"]}
    for teacher in region["teachers"]:
        org = orgs[teacher["organization_id"]]
        assert org["municipality_id"] == teacher["municipality_id"], teacher["teacher_id"]


def test_teacher_audience_follows_the_organisation_kind(region: dict[str, Any]) -> None:
    kinds = {o["organization_id"]: o["kind"] for o in region["organizations"]}
    expected = {"school": "general", "kindergarten": "preschool", "college": "college"}
    for teacher in region["teachers"]:
        assert teacher["audience"] == expected[kinds[teacher["organization_id"]]]


def test_methodists_serve_known_municipalities(region: dict[str, Any]) -> None:
    known = {m["municipality_id"] for m in region["municipalities"]}
    for m in region["methodists"]:
        assert set(m["municipalities"]) <= known
    assert sum(1 for m in region["methodists"] if m["municipalities"] == []) == 2


def test_methodist_capacity_is_enough_for_every_teacher(region: dict[str, Any]) -> None:
    # Every municipality's teachers fit in the capacity of the methodists who serve only
    # its cluster (the two region-wide methodists are extra room).
    teachers_per_mun = Counter(t["municipality_id"] for t in region["teachers"])
    clusters: dict[tuple[str, ...], int] = {}
    for m in region["methodists"]:
        if m["municipalities"]:
            key = tuple(m["municipalities"])
            clusters[key] = clusters.get(key, 0) + m["capacity"]
    covered = {mun for cluster in clusters for mun in cluster}
    assert set(teachers_per_mun) <= covered
    assert len(covered) == 42
    for cluster, capacity in clusters.items():
        assert sum(teachers_per_mun[mun] for mun in cluster) <= capacity, cluster
    total = sum(m["capacity"] for m in region["methodists"])
    assert total >= len(region["teachers"])


def test_every_demo_teacher_gets_a_methodist_when_all_have_routes(
    region: dict[str, Any],
) -> None:
    """Seat every teacher greedily with the routes rules: nobody is left without one."""
    loads = {m["methodist_id"]: 0 for m in region["methodists"]}
    records = {m["methodist_id"]: m for m in region["methodists"]}
    codes = sorted(demo.COMPETENCY_GROUPS)
    unseated = []
    for i, row in enumerate(region["teachers"]):
        teacher = TeacherView(
            row["teacher_id"], row["organization_id"], row["municipality_id"], row["audience"]
        )
        views = [
            MethodistView(
                mid,
                tuple(m["specialisations"]),
                tuple(m["municipalities"]),
                m["capacity"],
                loads[mid],
            )
            for mid, m in records.items()
        ]
        found = eligible(teacher, {codes[i % len(codes)]}, views)
        if not found:
            unseated.append(row["teacher_id"])
            continue
        loads[found[0].methodist_id] += 1
    assert unseated == []
    assert max(loads.values()) <= 250


def test_demo_rows_are_valid_registry_rows(region: dict[str, Any]) -> None:
    for plural, entity in ENTITIES.items():
        valid, errors = validate_rows(entity, region[plural])
        assert errors == [], plural
        assert len(valid) == len(region[plural])


def test_demo_methodist_specialisations_are_framework_competencies(
    region: dict[str, Any],
) -> None:
    codes = load_framework(SHIPPED_FRAMEWORK).codes
    assert set(demo.COMPETENCY_GROUPS) == codes
    for m in region["methodists"]:
        MethodistUpserted.model_validate(m)
        assert set(m["specialisations"]) <= codes
    for p in region["programs"]:
        assert set(p["competencies"]) <= codes


def test_demo_programs_fit_every_competency_and_audience(region: dict[str, Any]) -> None:
    programs = [
        ProgramView(
            p["program_id"],
            p["title"],
            p["hours"],
            p["federal_registry"],
            tuple(p["competencies"]),
            tuple(p["audiences"]),
        )
        for p in region["programs"]
    ]
    deficits = [
        CompetencyResult(code=code, score=30, level=Level.CRITICAL)
        for code in demo.COMPETENCY_GROUPS
    ]
    for audience in ("general", "preschool", "college"):
        teacher = TeacherView("t", "o", "mun-01", audience)
        draft = draft_route(teacher, deficits, programs)
        assert [s.kind for s in draft.steps] == ["program"] * 10, audience


def test_shipped_demo_region_equals_generate_with_the_default_seed(
    region: dict[str, Any],
) -> None:
    shipped = json.loads(SHIPPED_DEMO.read_text(encoding="utf-8"))
    assert shipped == region
