"""The contract guard: committed snapshots, the compatibility checker, ``iomflow contracts``.

(a) every event type has a committed snapshot of its current version that matches the
    code, and no type breaks its snapshot;
(b) the checker (``iomflow.cli.compat``) on deliberately incompatible and compatible
    schema changes;
(c) the guard end to end, through ``write_contracts`` as ``iomflow contracts`` runs it, on
    modified copies of real contract models: refused under the same version (nothing
    written), accepted under a raised one, accepted for a compatible change;
(d) the OpenAPI guard (``iomflow.cli.apicompat``) on small hand-made documents: each kind
    of break refused, additions accepted; through ``write_contracts`` with its override.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field, create_model

from iomflow.cli import contracts
from iomflow.cli.apicompat import api_breaks
from iomflow.cli.apicompat import describe as describe_api
from iomflow.cli.compat import Change, breaking_changes, describe, old_reader_refusals
from iomflow.cli.contracts import (
    ASYNCAPI_DIR,
    CONTRACTS_DIR,
    OPENAPI_DIR,
    SNAPSHOT_NAME,
    SNAPSHOTS_DIR,
    ContractBreak,
    current_snapshots,
    plan_snapshots,
    render,
    snapshot_name,
    write_contracts,
)
from iomflow.shared.contracts import (
    EVENT_TYPES,
    EVENT_VERSIONS,
    Contract,
    CourseEvent,
    DiagnosisCompleted,
    entry_schema,
    event_version,
    inbound_schema,
    new_event,
)

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "docs" / SNAPSHOTS_DIR
REGENERATE = "run `uv run iomflow contracts` and commit docs/"
COMPLETED = "diagnostics.diagnosis.completed"


# --- (a) the committed snapshots ------------------------------------------------------------


@pytest.fixture(scope="module")
def current() -> dict[str, tuple[int, dict[str, Any]]]:
    return current_snapshots()


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_committed_snapshot_of_the_current_version_matches_the_code(
    type_: str, current: dict[str, tuple[int, dict[str, Any]]]
) -> None:
    version, schema = current[type_]
    path = SNAPSHOTS / snapshot_name(type_, version)
    assert path.is_file(), f"no snapshot {path.relative_to(ROOT)} of {type_}: {REGENERATE}"
    assert path.read_text(encoding="utf-8") == render(schema), (
        f"{path.relative_to(ROOT)} differs from the contract of {type_} v{version}: "
        f"{REGENERATE} (it refuses a breaking change: then raise the version)"
    )


def test_no_type_breaks_its_committed_snapshot_of_the_same_version() -> None:
    plan = plan_snapshots(SNAPSHOTS)
    found = "\n".join(
        f"{type_} v{version}:\n{describe(changes)}"
        for type_, (version, changes) in plan.refused.items()
    )
    assert not plan.refused, (
        f"breaking changes under the same version (raise it in EVENT_VERSIONS):\n{found}"
    )
    assert not plan.problems, plan.problems


def test_snapshot_files_are_named_by_type_and_version_and_say_so() -> None:
    files = sorted(SNAPSHOTS.iterdir())
    assert files, f"no snapshots in {SNAPSHOTS}: {REGENERATE}"
    for path in files:
        match = SNAPSHOT_NAME.match(path.name)
        assert match, f"{path.name} is not <type>.v<version>.schema.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["title"] == match["type"]
        assert schema["properties"]["version"]["const"] == match["version"]
        assert schema["properties"]["type"]["const"] == match["type"]


def test_event_versions_name_known_types_and_start_at_one() -> None:
    assert set(EVENT_VERSIONS) <= set(EVENT_TYPES)
    assert all(isinstance(v, int) and v >= 1 for v in EVENT_VERSIONS.values())
    assert {t: event_version(t) for t in EVENT_TYPES if event_version(t) != 1} == EVENT_VERSIONS


def test_the_declared_version_is_what_producers_write_and_the_schema_pins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payload = CourseEvent.model_validate(
        {"teacher_id": "t-1", "program_id": "p-1", "on": "2026-10-01"}
    )
    assert new_event("courses.course.enrolled", payload, source="s", subject="t-1").version == 1
    assert entry_schema("courses.course.enrolled")[0]["properties"]["version"]["const"] == "1"
    monkeypatch.setitem(EVENT_VERSIONS, "courses.course.enrolled", 2)
    assert new_event("courses.course.enrolled", payload, source="s", subject="t-1").version == 2
    assert entry_schema("courses.course.enrolled")[0]["properties"]["version"]["const"] == "2"
    assert current_snapshots()["courses.course.enrolled"][0] == 2
    assert event_version("courses.course.completed") == 1


# --- (b) the checker ------------------------------------------------------------------------


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
        **extra,
    }


BASE = obj(
    {
        "id": {"type": "string", "maxLength": 100, "description": "The id"},
        "level": {"$ref": "#/$defs/Level"},
        "score": {"type": "number", "minimum": 0, "maximum": 100},
        "count": {"type": "integer"},
        "on": {"type": "string", "format": "date"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
    },
    ["id", "level", "score"],
    title="Thing",
    **{
        "$defs": {
            "Level": {"enum": ["low", "high"], "type": "string", "title": "Level"},
            "Item": obj({"code": {"type": "string"}, "weight": {"type": "number"}}, ["code"]),
        }
    },
)


def changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    edit(schema)
    return schema


def _retype(s: dict) -> None:
    s["properties"]["count"] = {"type": "string"}


def _drop(s: dict) -> None:
    del s["properties"]["on"]


def _new_required(s: dict) -> None:
    s["properties"]["campaign"] = {"type": "string"}
    s["required"].append("campaign")


def _now_required(s: dict) -> None:
    s["required"].append("count")


def _narrow_enum(s: dict) -> None:
    s["$defs"]["Level"]["enum"] = ["low"]


def _not_nullable(s: dict) -> None:
    s["properties"]["note"] = {"type": "string"}


def _shorter(s: dict) -> None:
    s["properties"]["id"]["maxLength"] = 50


def _higher_minimum(s: dict) -> None:
    s["properties"]["score"]["minimum"] = 10


def _exclusive_minimum(s: dict) -> None:
    s["properties"]["score"]["exclusiveMinimum"] = 0


def _format(s: dict) -> None:
    s["properties"]["on"]["format"] = "date-time"


def _pattern(s: dict) -> None:
    s["properties"]["id"]["pattern"] = "^t-"


def _nested_removed(s: dict) -> None:
    del s["$defs"]["Item"]["properties"]["weight"]


def _nested_retyped(s: dict) -> None:
    s["$defs"]["Item"]["properties"]["weight"] = {"type": "string"}


def _map_values(s: dict) -> None:
    s["properties"]["scores"]["additionalProperties"] = {"type": "number", "maximum": 1}


def _number_to_integer(s: dict) -> None:
    s["properties"]["score"]["type"] = "integer"


def _union_narrowed(s: dict) -> None:
    s["properties"]["count"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    s["properties"]["note"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}


def _closed_map(s: dict) -> None:
    s["properties"]["scores"]["additionalProperties"] = False


def _min_items(s: dict) -> None:
    s["properties"]["items"]["minItems"] = 1


def _default(s: dict) -> None:
    s["properties"]["note"]["default"] = "none"


BREAKING = {
    "default of an optional field changed": (_default, "note", "default"),
    "removed field": (_drop, "on", "removed"),
    "retyped field": (_retype, "count", "retyped"),
    "new required field": (_new_required, "campaign", "required"),
    "field became required": (_now_required, "count", "required"),
    "narrowed enum": (_narrow_enum, "level", "enum"),
    "nullable to not nullable": (_not_nullable, "note", "nullable"),
    "maxLength smaller": (_shorter, "id", "constraint"),
    "minimum larger": (_higher_minimum, "score", "constraint"),
    "exclusive minimum added": (_exclusive_minimum, "score", "constraint"),
    "format changed": (_format, "on", "format"),
    "pattern added": (_pattern, "id", "constraint"),
    "nested field removed (through $ref and items)": (_nested_removed, "items[].weight", "removed"),
    "nested field retyped": (_nested_retyped, "items[].weight", "retyped"),
    "map values bounded": (_map_values, "scores.*", "constraint"),
    "number to integer": (_number_to_integer, "score", "retyped"),
    "union member removed": (_union_narrowed, "note", "retyped"),
    "map closed": (_closed_map, "scores", "closed"),
    "array must not be empty": (_min_items, "items", "constraint"),
}


@pytest.mark.parametrize("name", BREAKING)
def test_checker_reports_a_breaking_change(name: str) -> None:
    edit, path, kind = BREAKING[name]
    changes = breaking_changes(BASE, changed(edit))
    assert changes, f"{name} was not reported"
    assert any(c.path == path and c.kind == kind for c in changes), describe(changes)
    assert all(str(c).startswith(c.path) and c.message for c in changes)


def _optional_field(s: dict) -> None:
    s["properties"]["extra"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def _widen_enum(s: dict) -> None:
    s["$defs"]["Level"]["enum"] = ["low", "high", "critical"]


def _descriptions(s: dict) -> None:
    s["properties"]["id"]["description"] = "Another description"
    s["properties"]["id"]["examples"] = ["t-1"]
    s["title"] = "Renamed"
    s["$defs"]["Item"]["description"] = "An item"


def _no_longer_required(s: dict) -> None:
    s["required"].remove("score")


def _nullable(s: dict) -> None:
    s["properties"]["count"] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}


def _integer_to_number(s: dict) -> None:
    s["properties"]["count"]["type"] = "number"


def _loosened(s: dict) -> None:
    s["properties"]["id"]["maxLength"] = 200
    del s["properties"]["score"]["minimum"]
    s["properties"]["score"]["maximum"] = 1000


def _inlined_ref(s: dict) -> None:
    s["properties"]["level"] = {"enum": ["low", "high"], "type": "string"}


def _enum_to_string(s: dict) -> None:
    s["properties"]["level"] = {"type": "string"}


def _format_dropped(s: dict) -> None:
    del s["properties"]["on"]["format"]


COMPATIBLE = {
    "new optional field": _optional_field,
    "widened enum": _widen_enum,
    "new description, title, examples": _descriptions,
    "field no longer required": _no_longer_required,
    "not nullable to nullable": _nullable,
    "integer to number": _integer_to_number,
    "constraints loosened or dropped": _loosened,
    "a $ref inlined": _inlined_ref,
    "enum opened to any string": _enum_to_string,
    "format dropped": _format_dropped,
}


@pytest.mark.parametrize("name", COMPATIBLE)
def test_checker_accepts_a_compatible_change(name: str) -> None:
    assert breaking_changes(BASE, changed(COMPATIBLE[name])) == []


def test_checker_finds_nothing_between_a_schema_and_itself() -> None:
    for type_ in EVENT_TYPES:
        schema = inbound_schema(type_)
        assert breaking_changes(schema, copy.deepcopy(schema)) == [], type_
        assert old_reader_refusals(schema, copy.deepcopy(schema)) == [], type_


def test_checker_reports_every_change_of_a_combined_edit_once() -> None:
    def edit(s: dict) -> None:
        _drop(s)
        _retype(s)
        _narrow_enum(s)

    changes = breaking_changes(BASE, changed(edit))
    assert {(c.path, c.kind) for c in changes} == {
        ("on", "removed"),
        ("count", "retyped"),
        ("level", "enum"),
    }
    assert len(changes) == len(set(changes))
    enum = next(c for c in changes if c.kind == "enum")
    assert '"high"' in enum.message


def test_checker_follows_the_alternatives_of_a_model_level_any_of() -> None:
    """CourseEvent needs program_id or federal_number (a top-level anyOf)."""
    old = inbound_schema("courses.course.enrolled")
    new = copy.deepcopy(old)
    payload = new["$defs"]["CourseEvent"]
    payload["anyOf"] = [{"required": ["program_id"]}]  # federal_number alone no longer enough
    changes = breaking_changes(old, new)
    assert [(c.path, c.kind) for c in changes] == [("data.program_id", "required")]
    del payload["anyOf"]  # either alone, or neither: wider
    assert breaking_changes(old, new) == []


def test_checker_looks_inside_the_data_field_of_the_entry() -> None:
    old = inbound_schema("diagnostics.result.submitted")
    new = copy.deepcopy(old)
    new["$defs"]["ResultSubmitted"]["properties"]["scores"]["additionalProperties"]["maximum"] = 10
    new["properties"]["source"]["maxLength"] = 20
    assert {c.path for c in breaking_changes(old, new)} == {"data.scores.*", "source"}


def test_old_reader_refusals_is_the_other_direction() -> None:
    """An old consumer refuses unknown fields and unknown enum values; a dropped optional
    field or a narrowed enum does not bother it."""
    assert [c.kind for c in old_reader_refusals(BASE, changed(_optional_field))] == ["added"]
    assert [c.kind for c in old_reader_refusals(BASE, changed(_widen_enum))] == ["enum"]
    assert old_reader_refusals(BASE, changed(_narrow_enum)) == []
    assert old_reader_refusals(BASE, changed(_not_nullable)) == []
    loosened = old_reader_refusals(BASE, changed(_loosened))
    assert {(c.path, c.kind) for c in loosened} >= {("id", "constraint"), ("score", "constraint")}
    dropped = old_reader_refusals(BASE, changed(lambda s: s["required"].remove("id")))
    assert [(c.path, c.kind) for c in dropped] == [("id", "required")]


def test_checker_is_conservative_about_keywords_it_does_not_know() -> None:
    new = changed(lambda s: s["properties"]["id"].update({"not": {"const": "x"}}))
    assert [c.kind for c in breaking_changes(BASE, new)] == ["unproven"]
    assert breaking_changes(new, copy.deepcopy(new)) == []


def test_checker_handles_recursive_schemas() -> None:
    tree: dict[str, Any] = {
        "$ref": "#/$defs/Node",
        "$defs": {"Node": obj({"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}})},
    }
    deeper = copy.deepcopy(tree)
    deeper["$defs"]["Node"]["properties"]["name"] = {"type": "string"}
    deeper["$defs"]["Node"]["required"] = ["name"]
    assert breaking_changes(tree, copy.deepcopy(tree)) == []
    assert [(c.path, c.kind) for c in breaking_changes(tree, deeper)] == [("name", "required")]


def test_change_reads_as_path_and_words() -> None:
    change = Change("data.rule", "removed", "field removed")
    assert str(change) == "data.rule: field removed"
    assert str(Change("", "closed", "x")) == "(document): x"


# --- (c) the guard end to end --------------------------------------------------------------


def completed_variant(drop: tuple[str, ...] = (), **fields: tuple[Any, Any]) -> type[Contract]:
    """A copy of DiagnosisCompleted (same name, so the same $defs) with fields dropped,
    replaced or added."""
    kept = {
        name: (info.annotation, info)
        for name, info in DiagnosisCompleted.model_fields.items()
        if name not in drop
    }
    return create_model(  # type: ignore[no-any-return, call-overload]
        "DiagnosisCompleted", __base__=Contract, **{**kept, **fields}
    )


@pytest.fixture(scope="module")
def built_documents() -> dict[str, dict[str, dict[str, Any]]]:
    """The services' AsyncAPI and OpenAPI documents, built once: the guard does not read
    them, and building the apps takes seconds."""
    return contracts.service_documents()


@pytest.fixture
def docs(
    tmp_path: Path,
    built_documents: dict[str, dict[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A docs directory written by ``iomflow contracts`` (``write_contracts``) from the code
    as it is; the guard runs as the command runs it."""
    monkeypatch.setattr(contracts, "service_documents", lambda: built_documents)
    out = tmp_path / "docs"
    write_contracts(out, notes=lambda _: None)
    assert len(list((out / SNAPSHOTS_DIR).iterdir())) == len(EVENT_TYPES)
    return out


def v(docs: Path, version: int, type_: str = COMPLETED) -> Path:
    return docs / SNAPSHOTS_DIR / snapshot_name(type_, version)


def texts(docs: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in sorted(docs.rglob("*")) if p.is_file()}


def test_guard_refuses_a_removed_field_under_the_same_version(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = texts(docs)
    monkeypatch.setitem(EVENT_TYPES, COMPLETED, completed_variant(drop=("rule",)))
    with pytest.raises(ContractBreak) as refused:
        write_contracts(docs, notes=lambda _: None)
    message = str(refused.value)
    assert COMPLETED in message and "data.rule: field removed" in message
    assert "Отказ" in message and "EVENT_VERSIONS" in message
    assert refused.value.code == message  # SystemExit: status 1, the message on stderr
    assert texts(docs) == before, "nothing may be written"


def test_guard_writes_a_new_snapshot_under_a_raised_version(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = v(docs, 1).read_text(encoding="utf-8")
    monkeypatch.setitem(EVENT_TYPES, COMPLETED, completed_variant(drop=("rule",)))
    monkeypatch.setitem(EVENT_VERSIONS, COMPLETED, 2)
    notes: list[str] = []
    written = write_contracts(docs, notes=notes.append)
    assert v(docs, 2) in written
    assert v(docs, 1).read_text(encoding="utf-8") == before, "the old version is kept"
    new = json.loads(v(docs, 2).read_text(encoding="utf-8"))
    assert new["properties"]["version"]["const"] == "2"
    assert "rule" not in new["$defs"]["DiagnosisCompleted"]["properties"]
    assert any(COMPLETED in n and "data.rule: field removed" in n for n in notes)
    # and from then on the v2 snapshot is the one guarded
    monkeypatch.setitem(EVENT_TYPES, COMPLETED, completed_variant(drop=("rule", "burnout")))
    with pytest.raises(ContractBreak, match=r"data\.burnout: field removed"):
        write_contracts(docs, notes=lambda _: None)


def test_guard_accepts_a_compatible_change_and_updates_the_snapshot(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variant = completed_variant(
        note=(str | None, Field(default=None, description="A new optional field")),
        deficits=(
            DiagnosisCompleted.model_fields["deficits"].annotation,
            Field(description="Most severe first: reworded"),
        ),
        completed_by=(Literal["instruments", "operator", "migration"], "instruments"),
    )
    monkeypatch.setitem(EVENT_TYPES, COMPLETED, variant)
    notes: list[str] = []
    write_contracts(docs, notes=notes.append)
    updated = json.loads(v(docs, 1).read_text(encoding="utf-8"))
    payload = updated["$defs"]["DiagnosisCompleted"]["properties"]
    assert "note" in payload and "migration" in payload["completed_by"]["enum"]
    assert not v(docs, 2).exists()
    # a published type: the note says what a consumer built before the change refuses
    (note,) = notes
    assert COMPLETED in note and "data.note" in note and "migration" in note


def test_guard_refuses_a_new_required_field_of_an_inbound_event(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stricter = create_model(
        "CourseEvent",
        __base__=CourseEvent,
        provider_id=(str, Field(min_length=1)),
    )
    monkeypatch.setitem(EVENT_TYPES, "courses.course.completed", stricter)
    before = texts(docs)
    with pytest.raises(ContractBreak) as refused:
        write_contracts(docs, notes=lambda _: None)
    assert "courses.course.completed" in str(refused.value)
    assert "data.provider_id: new required field" in str(refused.value)
    assert "courses.course.enrolled" not in refused.value.plan.refused
    assert texts(docs) == before, "nor its published schema (contracts/<type>.schema.json)"


def test_guard_refuses_a_narrowed_enum_of_a_nested_model(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrowed = completed_variant(
        instruments=(list[Literal["standardized_test"]], Field(default_factory=list))
    )
    monkeypatch.setitem(EVENT_TYPES, COMPLETED, narrowed)
    with pytest.raises(ContractBreak, match=r"data\.instruments\[\]: value\(s\) .*no longer"):
        write_contracts(docs, notes=lambda _: None)


def test_guard_refuses_a_lowered_version(docs: Path) -> None:
    v(docs, 2).write_text(v(docs, 1).read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ContractBreak, match="versions only go up"):
        write_contracts(docs, notes=lambda _: None)


def test_guard_keeps_snapshots_of_old_versions_and_removed_types(docs: Path) -> None:
    old = v(docs, 1, "registry.gone.upserted")
    old.write_text("{}\n", encoding="utf-8")
    notes: list[str] = []
    write_contracts(docs, notes=notes.append)
    assert old.exists()
    assert any("registry.gone.upserted" in n for n in notes)


def test_write_contracts_refuses_before_writing_anything(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the snapshots there (the other documents not generated yet): none is made."""
    shutil.rmtree(docs / ASYNCAPI_DIR)
    shutil.rmtree(docs / OPENAPI_DIR)
    for schema in (docs / CONTRACTS_DIR).glob("*.json"):
        schema.unlink()
    before = texts(docs)
    monkeypatch.setitem(EVENT_TYPES, COMPLETED, completed_variant(drop=("framework_version",)))
    with pytest.raises(ContractBreak, match="framework_version"):
        write_contracts(docs)
    assert texts(docs) == before
    assert sorted(p.name for p in docs.iterdir()) == [CONTRACTS_DIR]


def test_iomflow_contracts_exits_non_zero_naming_the_type(docs: Path) -> None:
    """The command itself, in a fresh process: a snapshot that has a field the code no
    longer has (as if the field had been removed from the model)."""
    snapshot = json.loads(v(docs, 1).read_text(encoding="utf-8"))
    snapshot["$defs"]["DiagnosisCompleted"]["properties"]["legacy_score"] = {"type": "number"}
    v(docs, 1).write_text(render(snapshot), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from iomflow.cli.main import main; main()",
            "contracts",
            "--out",
            str(docs),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert COMPLETED in done.stderr
    assert "data.legacy_score: field removed" in done.stderr
    assert "Отказ" in done.stderr
    assert "Traceback" not in done.stderr


# --- (d) the OpenAPI guard -------------------------------------------------------------------


def api() -> dict[str, Any]:
    """A small OpenAPI document: a list of routes, a route, a route to create."""
    route = {
        "type": "object",
        "properties": {
            "route_id": {"type": "string"},
            "status": {"type": "string", "enum": ["draft", "active", "closed"]},
            "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["route_id", "status", "steps"],
    }
    step = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "hours": {"type": "integer"}},
        "required": ["title", "hours"],
    }
    create = {
        "type": "object",
        "properties": {"teacher_id": {"type": "string"}, "note": {"type": "string"}},
        "required": ["teacher_id"],
    }

    def answer(schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": "ok", "content": {"application/json": {"schema": schema}}}

    problem = {"$ref": "#/components/schemas/Problem"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "0.1.0"},
        "paths": {
            "/v1/routes": {
                "get": {
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": answer(
                            {"type": "array", "items": {"$ref": "#/components/schemas/Route"}}
                        ),
                        "422": answer(problem),
                    },
                },
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/RouteCreate"}
                            }
                        },
                    },
                    "responses": {"201": answer({"$ref": "#/components/schemas/Route"})},
                },
            },
            "/v1/routes/{route_id}": {
                "parameters": [
                    {
                        "name": "route_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "get": {
                    "responses": {
                        "200": answer({"$ref": "#/components/schemas/Route"}),
                        "404": answer(problem),
                    }
                },
                "delete": {"responses": {"204": {"description": "gone"}}},
            },
            "/v1/stats": {
                "get": {
                    "responses": {"200": answer({"type": "object", "additionalProperties": True})}
                }
            },
            "/v1/stats.xlsx": {"get": {"responses": {"200": answer({})}}},
        },
        "components": {
            "schemas": {
                "Route": route,
                "Step": step,
                "RouteCreate": create,
                "Problem": {"type": "object", "additionalProperties": True},
            }
        },
    }


def _components(d: dict[str, Any]) -> dict[str, Any]:
    return d["components"]["schemas"]


def _get_routes(d: dict[str, Any]) -> dict[str, Any]:
    return d["paths"]["/v1/routes"]["get"]


API_BREAKS: dict[str, tuple[Any, str]] = {
    "operation removed": (
        lambda d: d["paths"]["/v1/routes/{route_id}"].pop("delete"),
        "DELETE /v1/routes/{route_id}: operation removed",
    ),
    "path removed": (
        lambda d: d["paths"].pop("/v1/stats"),
        "GET /v1/stats: operation removed",
    ),
    "required parameter added": (
        lambda d: _get_routes(d)["parameters"].append(
            {"name": "region", "in": "query", "required": True, "schema": {"type": "string"}}
        ),
        "GET /v1/routes: query parameter region: required, added",
    ),
    "parameter now required": (
        lambda d: _get_routes(d)["parameters"][0].update(required=True),
        "GET /v1/routes: query parameter status: now required",
    ),
    "parameter retyped": (
        lambda d: _get_routes(d)["parameters"][0].update(schema={"type": "integer"}),
        "GET /v1/routes: query parameter status: type changed from string to integer",
    ),
    "required body field added": (
        lambda d: (
            _components(d)["RouteCreate"]["properties"].update(region={"type": "string"}),
            _components(d)["RouteCreate"]["required"].append("region"),
        ),
        "POST /v1/routes: request body.region: ",
    ),
    "answer property removed": (
        lambda d: (
            _components(d)["Route"]["properties"].pop("steps"),
            _components(d)["Route"]["required"].remove("steps"),
        ),
        "GET /v1/routes/{route_id}: answer 200.steps: field removed",
    ),
    "optional answer property removed": (
        lambda d: _components(d)["Route"]["properties"].pop("note"),
        "GET /v1/routes/{route_id}: answer 200.note: property removed",
    ),
    "answer property retyped": (
        lambda d: _components(d)["Step"]["properties"].update(hours={"type": "string"}),
        "GET /v1/routes/{route_id}: answer 200.steps[].hours: type changed from integer to string",
    ),
    "answer property made nullable": (
        lambda d: _components(d)["Route"]["properties"].update(
            route_id={"anyOf": [{"type": "string"}, {"type": "null"}]}
        ),
        "GET /v1/routes/{route_id}: answer 200.route_id: ",
    ),
    "answer enum value removed": (
        lambda d: _components(d)["Route"]["properties"]["status"].update(enum=["draft", "active"]),
        "GET /v1/routes/{route_id}: answer 200.status: enum value 'closed' removed",
    ),
    "2xx status removed": (
        lambda d: d["paths"]["/v1/routes"]["post"]["responses"].update(
            {"200": d["paths"]["/v1/routes"]["post"]["responses"].pop("201")}
        ),
        "POST /v1/routes: status 201: no longer answered",
    ),
    "media type changed": (
        lambda d: _get_routes(d)["responses"]["200"].update(
            content={"text/csv": {"schema": {"type": "string"}}}
        ),
        "GET /v1/routes: status 200: application/json no longer answered",
    ),
    "list became a Page": (
        lambda d: _get_routes(d)["responses"]["200"]["content"]["application/json"].update(
            schema={
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Route"}},
                    "total": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "limit": {"type": "integer"},
                },
                "required": ["items", "total", "offset", "limit"],
            }
        ),
        "GET /v1/routes: answer 200: type changed from array to object",
    ),
}


@pytest.mark.parametrize("name", sorted(API_BREAKS))
def test_api_guard_refuses_each_kind_of_break(name: str) -> None:
    edit, expected = API_BREAKS[name]
    new = api()
    edit(new)
    found = [str(b) for b in api_breaks(api(), new)]
    assert any(line.startswith(expected) for line in found), found


def _typed_stats(d: dict[str, Any]) -> None:
    d["paths"]["/v1/stats"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "properties": {"routes": {"type": "integer"}, "by_status": {"type": "object"}},
        "required": ["routes", "by_status"],
    }


API_ADDITIONS: dict[str, Any] = {
    "operation added": lambda d: d["paths"].update(
        {"/v1/other": {"get": {"responses": {"200": {"description": "ok"}}}}}
    ),
    "optional parameter added": lambda d: _get_routes(d)["parameters"].append(
        {"name": "offset", "in": "query", "schema": {"type": "integer"}}
    ),
    "optional body field added": lambda d: _components(d)["RouteCreate"]["properties"].update(
        region={"type": "string"}
    ),
    "answer property added": lambda d: _components(d)["Route"]["properties"].update(
        created_at={"type": "string", "format": "date-time"}
    ),
    "answer enum value added": lambda d: _components(d)["Route"]["properties"]["status"].update(
        enum=["draft", "active", "closed", "cancelled"]
    ),
    "error status added": lambda d: _get_routes(d)["responses"].update(
        {"429": {"description": "slow down"}}
    ),
    "untyped answer typed": _typed_stats,
    "a bound on a parameter": lambda d: _get_routes(d)["parameters"][1].update(
        schema={"type": "integer", "minimum": 1, "maximum": 1000}
    ),
    "an untyped JSON answer documented as a file": lambda d: d["paths"]["/v1/stats.xlsx"]["get"][
        "responses"
    ]["200"].update(content={"text/csv": {"schema": {"type": "string"}}}),
    "a model inlined": lambda d: d["paths"]["/v1/routes/{route_id}"]["get"]["responses"]["200"][
        "content"
    ]["application/json"].update(schema=copy.deepcopy(_components(d)["Route"])),
}


@pytest.mark.parametrize("name", sorted(API_ADDITIONS))
def test_api_guard_accepts_additions(name: str) -> None:
    new = api()
    API_ADDITIONS[name](new)
    assert api_breaks(api(), new) == []


def test_api_guard_refuses_writing_and_accepts_an_intended_break_once(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``write_contracts``: a committed document with an operation the code no
    longer has is refused (nothing written); ``IOMFLOW_ACCEPT_API_BREAKS`` naming the service
    lets it through once, noted."""
    path = docs / OPENAPI_DIR / "routes.json"
    committed = json.loads(path.read_text(encoding="utf-8"))
    committed["paths"]["/v1/legacy"] = {"get": {"responses": {"200": {"description": "ok"}}}}
    path.write_text(render(committed), encoding="utf-8")
    before = texts(docs)
    monkeypatch.delenv(contracts.ACCEPT_API_BREAKS, raising=False)
    with pytest.raises(contracts.ApiBreakRefused) as refused:
        write_contracts(docs)
    message = str(refused.value.code)
    assert "routes" in message and "GET /v1/legacy: operation removed" in message
    assert "IOMFLOW_ACCEPT_API_BREAKS=routes uv run iomflow contracts" in message
    assert texts(docs) == before

    monkeypatch.setenv(contracts.ACCEPT_API_BREAKS, "diagnostics")  # another service
    with pytest.raises(contracts.ApiBreakRefused):
        write_contracts(docs)
    monkeypatch.setenv(contracts.ACCEPT_API_BREAKS, "diagnostics,routes")
    notes: list[str] = []
    write_contracts(docs, notes=notes.append)
    assert "/v1/legacy" not in json.loads(path.read_text(encoding="utf-8"))["paths"]
    assert any("routes" in n and "GET /v1/legacy: operation removed" in n for n in notes)


def test_api_guard_plans_against_committed_documents(tmp_path: Path) -> None:
    old = api()
    (tmp_path / "routes.json").write_text(render(old), encoding="utf-8")
    new = api()
    new["paths"].pop("/v1/stats")
    refused, notes = contracts.plan_openapi(tmp_path, {"routes": new}, accept="")
    assert [str(b) for b in refused["routes"]] == ["GET /v1/stats: operation removed"]
    new["info"]["version"] = "0.2.0"  # raised in its breaking part (a minor under 1.0)
    refused, notes = contracts.plan_openapi(tmp_path, {"routes": new}, accept="")
    assert refused == {} and "0.1.0 -> 0.2.0" in notes[0]
    new["info"]["version"] = "0.1.5"  # a patch is not
    refused, _ = contracts.plan_openapi(tmp_path, {"routes": new}, accept="")
    assert list(refused) == ["routes"]


def test_the_committed_openapi_documents_break_no_client(
    built_documents: dict[str, dict[str, dict[str, Any]]],
) -> None:
    """The code's documents against docs/openapi/ (what ``iomflow contracts`` refuses)."""
    documents = {name: d["openapi"] for name, d in built_documents.items()}
    refused, _ = contracts.plan_openapi(ROOT / "docs" / OPENAPI_DIR, documents, accept="")
    assert refused == {}, "\n".join(
        f"{name}:\n{describe_api(breaks)}" for name, breaks in refused.items()
    )
