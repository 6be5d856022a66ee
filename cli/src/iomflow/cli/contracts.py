"""Contract documents generated from the code: ``iomflow contracts [--out DIR]``.

- ``<out>/contracts/<event type>.schema.json``: JSON Schema (envelope and payload) of each
  event that outside publishers write (``INBOUND_TYPES``);
- ``<out>/asyncapi/<service>.json``: the AsyncAPI document of each service's streams, as its
  ``/asyncapi.json`` route serves it.

The files under ``docs/`` are committed; ``tests/test_contract_docs.py`` fails when a contract
changed without them being regenerated.
"""

from __future__ import annotations

import importlib
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

from iomflow.cli.launcher import SERVICES
from iomflow.shared.contracts import INBOUND_TYPES, inbound_schema
from iomflow.shared.settings import BaseServiceSettings

CONTRACTS_DIR = "contracts"
ASYNCAPI_DIR = "asyncapi"

# Fixed values for what would otherwise leak the generating machine into the documents.
_REDIS_URL: str = BaseServiceSettings.model_fields["redis_url"].default
_CONSUMER = "{hostname}-{pid}"


def render(document: dict[str, Any]) -> str:
    """The one JSON layout of every generated document."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def inbound_schemas() -> dict[str, dict[str, Any]]:
    """Event type -> JSON Schema, for each inbound event type."""
    return {type_: inbound_schema(type_) for type_ in INBOUND_TYPES}


def asyncapi_documents() -> dict[str, dict[str, Any]]:
    """Service -> its AsyncAPI document, without Redis or a database."""
    with tempfile.TemporaryDirectory(prefix="iomflow-contracts-") as tmp:
        return {name: _asyncapi(name, Path(tmp)) for name in SERVICES}


def _asyncapi(name: str, tmp: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        # Starlette warns that its test client will move to httpx2; we use it for one GET.
        warnings.filterwarnings("ignore", message=r".*starlette\.testclient")
        from fastapi.testclient import TestClient

    app_module = importlib.import_module(f"iomflow.{name}.app")
    settings_module = importlib.import_module(f"iomflow.{name}.settings")
    settings = settings_module.Settings(
        service=name,
        redis_url=_REDIS_URL,
        data_dir=tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / name}.db",
        consumer=_CONSUMER,
        traces_dir=None,
        sql_tracing=False,
        migrate_on_start=False,
    )
    app = app_module.create_app(settings)
    runtime = app.state.runtime
    try:
        # Not entered as a context manager: the lifespan, which connects to Redis and the
        # database, never runs. The route needs only the runtime that create_app built.
        response = TestClient(app).get("/asyncapi.json")
        if response.status_code != 200:
            raise RuntimeError(
                f"{name}: GET /asyncapi.json answered {response.status_code}: {response.text}"
            )
        document: dict[str, Any] = response.json()
        return document
    finally:
        runtime.tracer_provider.shutdown()


def write_contracts(out_dir: Path) -> list[Path]:
    """Write every contract document under ``out_dir``; returns the files written.

    Generated files that no longer correspond to a contract (a removed inbound type or
    service) are deleted, so the directories hold exactly what the code defines.
    """
    out_dir = Path(out_dir)
    contracts_dir = out_dir / CONTRACTS_DIR
    asyncapi_dir = out_dir / ASYNCAPI_DIR
    # Everything is generated before anything is written: a failure leaves the docs intact.
    files: dict[Path, str] = {}
    for type_, schema in inbound_schemas().items():
        files[contracts_dir / f"{type_}.schema.json"] = render(schema)
    for name, document in asyncapi_documents().items():
        files[asyncapi_dir / f"{name}.json"] = render(document)

    for directory, pattern in ((contracts_dir, "*.schema.json"), (asyncapi_dir, "*.json")):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(pattern):
            if stale not in files:
                stale.unlink()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8", newline="\n")
    return sorted(files)
