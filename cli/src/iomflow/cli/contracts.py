"""Contract documents generated from the code: ``iomflow contracts [--out DIR]``.

- ``<out>/contracts/<event type>.schema.json``: JSON Schema (envelope and payload) of each
  event that outside publishers write (``INBOUND_TYPES``);
- ``<out>/contracts/snapshots/<event type>.v<version>.schema.json``: the same wire schema of
  *every* event type (``EVENT_TYPES``), one file per contract version: the contract guard
  compares the code with it (docs/VERSIONING.md);
- ``<out>/asyncapi/<service>.json``: the AsyncAPI document of each service's streams, as its
  ``/asyncapi.json`` route serves it;
- ``<out>/openapi/<service>.json``: the OpenAPI document of each service's HTTP API, as its
  ``/openapi.json`` route serves it.

The contract guard: before anything is written, the schema of each event type is compared
with its committed snapshot of the same version (``iomflow.cli.compat``). A change that
an entry written under the snapshot would not survive (a removed or retyped field, a new
required field, a narrowed enum, a tightened bound...) is refused, naming the type and the
changes, and nothing is written; under a raised version a new snapshot is written beside
the old one, which is kept.

The same guard for the HTTP APIs: each service's new OpenAPI document is compared with its
committed ``<out>/openapi/<service>.json`` (``iomflow.cli.apicompat``). What breaks a client
built on the committed one (an operation removed, a required parameter or field added, a
property of an answer removed or retyped, a 2xx status removed, an enum value of an answer
removed...) is refused, naming each operation and break, and nothing is written — unless the
break is intended: the service's ``info.version`` raised in its breaking part (the major,
or the minor under 1.0), or ``IOMFLOW_ACCEPT_API_BREAKS`` naming the service (a comma list,
or ``all``) for this one run; the breaks accepted are printed as notes.

The files under ``docs/`` are committed; ``tests/shared/test_contract_docs.py`` and
``tests/shared/test_contract_guard.py`` fail when a contract changed without them being regenerated.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iomflow.cli.apicompat import ApiBreak, api_breaks
from iomflow.cli.apicompat import describe as describe_api
from iomflow.cli.common import built_app
from iomflow.cli.compat import Change, breaking_changes, describe, old_reader_refusals
from iomflow.cli.launcher import SERVICES
from iomflow.shared.contracts import EVENT_TYPES, INBOUND_TYPES, event_version, inbound_schema

CONTRACTS_DIR = "contracts"
SNAPSHOTS_DIR = "contracts/snapshots"
ASYNCAPI_DIR = "asyncapi"
OPENAPI_DIR = "openapi"
SNAPSHOT_NAME = re.compile(r"^(?P<type>.+)\.v(?P<version>[1-9][0-9]*)\.schema\.json$")


def render(document: Mapping[str, Any]) -> str:
    """The one JSON layout of every generated document."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def inbound_schemas() -> dict[str, dict[str, Any]]:
    """Event type -> JSON Schema, for each inbound event type."""
    return {type_: inbound_schema(type_) for type_ in INBOUND_TYPES}


# --- snapshots and the guard ---------------------------------------------------------------


def snapshot_name(type_: str, version: int) -> str:
    return f"{type_}.v{version}.schema.json"


def current_snapshots() -> dict[str, tuple[int, dict[str, Any]]]:
    """Event type -> (its current version, its wire schema), for every event type."""
    return {type_: (event_version(type_), inbound_schema(type_)) for type_ in EVENT_TYPES}


def read_snapshots(directory: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """Event type -> version -> committed schema, from the snapshot files in ``directory``."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(Path(directory).glob("*.schema.json")):
        match = SNAPSHOT_NAME.match(path.name)
        if match is None:
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        found.setdefault(match["type"], {})[int(match["version"])] = schema
    return found


@dataclass
class SnapshotPlan:
    """What ``iomflow contracts`` would do to the snapshots, and why it may refuse."""

    files: dict[Path, str] = field(default_factory=dict)
    """Snapshot files to write (new or updated)."""
    refused: dict[str, tuple[int, list[Change]]] = field(default_factory=dict)
    """Event type -> (version, the breaking changes against its snapshot of that version)."""
    problems: list[str] = field(default_factory=list)
    """Refusals that are not schema changes (a lowered version)."""
    notes: list[str] = field(default_factory=list)
    """For the person running the command: nothing is refused for these."""


def plan_snapshots(
    directory: Path, current: Mapping[str, tuple[int, Mapping[str, Any]]] | None = None
) -> SnapshotPlan:
    """Compare each type's current schema with its committed snapshots in ``directory``."""
    directory = Path(directory)
    current = current_snapshots() if current is None else current
    committed = read_snapshots(directory)
    plan = SnapshotPlan()
    for type_, (version, schema) in sorted(current.items()):
        versions = committed.get(type_, {})
        path = directory / snapshot_name(type_, version)
        if versions and max(versions) > version:
            plan.problems.append(
                f"{type_}: version {version} is below the committed snapshot version "
                f"{max(versions)} (versions only go up) / версия {version} ниже версии "
                f"сохранённого снимка {max(versions)}"
            )
            continue
        if version in versions:
            changes = breaking_changes(versions[version], schema)
            if changes:
                plan.refused[type_] = (version, changes)
                continue
            if type_ not in INBOUND_TYPES:
                unread = old_reader_refusals(versions[version], schema)
                if unread:
                    plan.notes.append(
                        f"{type_} v{version}: compatible, but a consumer built before this "
                        "change refuses some new entries: deploy the consumers before the "
                        f"producer (docs/VERSIONING.md)\n{describe(unread)}"
                    )
        elif versions:
            previous = max(versions)
            changes = breaking_changes(versions[previous], schema)
            plan.notes.append(
                f"{type_}: new version {version} (the snapshot of v{previous} is kept)"
                + (f"; breaking against v{previous}:\n{describe(changes)}" if changes else "")
            )
        plan.files[path] = render(schema)
    for type_ in sorted(set(committed) - set(current)):
        plan.notes.append(f"{type_}: no longer an event type; its snapshots are kept")
    return plan


class ContractBreak(SystemExit):
    """``iomflow contracts`` refuses: exit status 1 with a message naming each type and its
    breaking changes (English and Russian)."""

    def __init__(self, plan: SnapshotPlan, directory: Path) -> None:
        self.plan = plan
        lines = [
            "iomflow contracts: refused: a contract changed incompatibly under the same "
            "version. Nothing was written.",
            "Отказ: контракт события изменён несовместимо без повышения версии. Ничего не "
            "записано.",
            "",
        ]
        for type_, (version, changes) in plan.refused.items():
            snapshot = directory / snapshot_name(type_, version)
            lines.append(f"{type_} (version {version}, snapshot {snapshot}):")
            lines.append(describe(changes))
        lines.extend(plan.problems)
        lines += [
            "",
            "Make the change compatible (docs/VERSIONING.md), or raise the type's version in "
            "EVENT_VERSIONS (shared/src/iomflow/shared/contracts.py) and tell its readers.",
            "Сделайте изменение совместимым или повысьте версию типа в EVENT_VERSIONS и "
            "предупредите читателей (docs/VERSIONING.md).",
        ]
        super().__init__("\n".join(lines))


ACCEPT_API_BREAKS = "IOMFLOW_ACCEPT_API_BREAKS"


def _breaking_part(version: Any) -> tuple[str, ...]:
    """The part of a semantic version a breaking change raises: the major, or under 1.0
    the minor."""
    parts = str(version or "0").split(".")
    return tuple(parts[:2]) if parts[0] == "0" else (parts[0],)


def plan_openapi(
    directory: Path,
    documents: Mapping[str, Mapping[str, Any]],
    accept: str | None = None,
) -> tuple[dict[str, list[ApiBreak]], list[str]]:
    """(service -> breaks refused, notes) of each new OpenAPI document against its committed
    ``<directory>/<service>.json``. ``accept``: the services whose breaks are accepted this
    once (comma list or ``all``; by default ``$IOMFLOW_ACCEPT_API_BREAKS``)."""
    accept = os.environ.get(ACCEPT_API_BREAKS, "") if accept is None else accept
    accepted = {name.strip() for name in accept.split(",") if name.strip()}
    refused: dict[str, list[ApiBreak]] = {}
    notes: list[str] = []
    for name, new in sorted(documents.items()):
        path = Path(directory) / f"{name}.json"
        if not path.exists():
            continue
        old = json.loads(path.read_text(encoding="utf-8"))
        breaks = api_breaks(old, new)
        if not breaks:
            continue
        old_version = old.get("info", {}).get("version")
        new_version = new.get("info", {}).get("version")
        if _breaking_part(new_version) > _breaking_part(old_version):
            notes.append(
                f"openapi {name}: version {old_version} -> {new_version}; breaking for "
                f"clients of {old_version}:\n{describe_api(breaks)}"
            )
        elif name in accepted or "all" in accepted:
            notes.append(
                f"openapi {name}: breaks accepted ({ACCEPT_API_BREAKS}):\n{describe_api(breaks)}"
            )
        else:
            refused[name] = breaks
    return refused, notes


class ApiBreakRefused(SystemExit):
    """``iomflow contracts`` refuses: an OpenAPI document breaks its clients (status 1 and a
    message naming each service, operation and break)."""

    def __init__(self, refused: Mapping[str, list[ApiBreak]], directory: Path) -> None:
        self.refused = dict(refused)
        lines = [
            "iomflow contracts: refused: an HTTP API changed incompatibly for its clients. "
            "Nothing was written.",
            "Отказ: HTTP API изменён несовместимо для клиентов. Ничего не записано.",
            "",
        ]
        for name, breaks in sorted(refused.items()):
            lines.append(f"{name} (against {Path(directory) / f'{name}.json'}):")
            lines.append(describe_api(breaks))
        names = ",".join(sorted(refused))
        lines += [
            "",
            "Make the change compatible (add, do not remove or retype), or, if the break is "
            f"intended and its clients are told: {ACCEPT_API_BREAKS}={names} uv run iomflow "
            "contracts (once), or raise the service's API version.",
            "Сделайте изменение совместимым или, если разрыв намеренный и клиенты "
            f"предупреждены: {ACCEPT_API_BREAKS}={names} uv run iomflow contracts.",
        ]
        super().__init__("\n".join(lines))


def _stderr(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


# --- the services' documents ---------------------------------------------------------------


def service_documents() -> dict[str, dict[str, dict[str, Any]]]:
    """Service -> {"asyncapi": ..., "openapi": ...}, from apps built but never started."""
    with tempfile.TemporaryDirectory(prefix="iomflow-contracts-") as tmp:
        return {name: _documents(name, Path(tmp)) for name in SERVICES}


def _documents(name: str, tmp: Path) -> dict[str, dict[str, Any]]:
    with warnings.catch_warnings():
        # Starlette warns that its test client will move to httpx2; we use it for one GET.
        warnings.filterwarnings("ignore", message=r".*starlette\.testclient")
        from fastapi.testclient import TestClient

    with built_app(name, tmp) as app:
        # Not entered as a context manager: the lifespan never runs. The route needs only
        # the runtime that create_app built.
        response = TestClient(app).get("/asyncapi.json")
        if response.status_code != 200:
            raise RuntimeError(
                f"{name}: GET /asyncapi.json answered {response.status_code}: {response.text}"
            )
        asyncapi: dict[str, Any] = response.json()
        # Through JSON, as /openapi.json serves it (and so that it renders like the rest).
        openapi: dict[str, Any] = json.loads(json.dumps(app.openapi()))
        return {"asyncapi": asyncapi, "openapi": openapi}


# --- all of it -----------------------------------------------------------------------------


def write_contracts(out_dir: Path, notes: Callable[[str], None] | None = None) -> list[Path]:
    """Write every contract document under ``out_dir``; returns the files written.

    Raises ``ContractBreak`` (a ``SystemExit``: status 1 and its message) before writing
    anything when a contract changed incompatibly under the same version. Generated files
    that no longer correspond to a contract (a removed inbound type or service) are deleted,
    so the directories hold exactly what the code defines; snapshots are never deleted.
    """
    out_dir = Path(out_dir)
    contracts_dir = out_dir / CONTRACTS_DIR
    asyncapi_dir = out_dir / ASYNCAPI_DIR
    openapi_dir = out_dir / OPENAPI_DIR
    # The guard first, then everything is generated before anything is written: a refusal
    # or a failure leaves the docs intact.
    plan = plan_snapshots(out_dir / SNAPSHOTS_DIR)
    if plan.refused or plan.problems:
        raise ContractBreak(plan, out_dir / SNAPSHOTS_DIR)
    files: dict[Path, str] = dict(plan.files)
    for type_, schema in inbound_schemas().items():
        files[contracts_dir / f"{type_}.schema.json"] = render(schema)
    documents = service_documents()
    refused, api_notes = plan_openapi(
        openapi_dir, {name: docs["openapi"] for name, docs in documents.items()}
    )
    if refused:
        raise ApiBreakRefused(refused, openapi_dir)
    for name, docs in documents.items():
        files[asyncapi_dir / f"{name}.json"] = render(docs["asyncapi"])
        files[openapi_dir / f"{name}.json"] = render(docs["openapi"])

    for directory, pattern in (
        (contracts_dir, "*.schema.json"),
        (asyncapi_dir, "*.json"),
        (openapi_dir, "*.json"),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(pattern):
            if stale not in files:
                stale.unlink()
    _write(files)
    for note in [*plan.notes, *api_notes]:
        (notes or _stderr)(note)
    return sorted(files)


def _write(files: Mapping[Path, str]) -> None:
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
