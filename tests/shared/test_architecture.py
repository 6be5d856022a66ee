"""Boundaries between the packages, and nothing built at import time.

- A service never imports another service (they talk through streams only) nor the CLI
  (its image holds iomflow-shared and itself, nothing else); iomflow.shared imports neither.
- Importing a module builds nothing: engines, Redis clients, settings, brokers and apps are
  made by ``create_app(settings)`` and the like, so tests and deployments choose them.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis
import redis.asyncio
from fastapi import FastAPI
from faststream.redis import RedisBroker
from pydantic_settings import BaseSettings
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from iomflow.cli.launcher import SERVICES

ROOT = Path(__file__).resolve().parents[2]
SHARED_SRC = ROOT / "shared" / "src"
CLI_SRC = ROOT / "cli" / "src"


def service_src(name: str) -> Path:
    return ROOT / "services" / name / "src"


# --- imports between packages --------------------------------------------------------------


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, src: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of everything a source file imports.

    ``from iomflow import routes`` yields ``iomflow.routes``; relative imports are resolved
    against the file's package; ``importlib.import_module("...")`` and ``__import__`` with
    a literal name count too.
    """
    name = module_name(path, src)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            first = node.args[0]
            if (
                called in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield node.lineno, first.value


def refers_to(imported: str, package: str) -> bool:
    return imported == package or imported.startswith(package + ".")


def violations(src: Path, forbidden: list[str]) -> list[str]:
    """One ``path:line imports name`` per offending import statement."""
    found: dict[tuple[Path, int], str] = {}
    for path in sorted(src.rglob("*.py")):
        for line, imported in imported_modules(path, src):
            if (path, line) not in found and any(refers_to(imported, p) for p in forbidden):
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found[path, line] = f"{shown}:{line} imports {imported}"
    return list(found.values())


def test_the_services_are_the_launchers() -> None:
    on_disk = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))
    assert on_disk == sorted(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_imports_no_other_service_nor_the_cli(name: str) -> None:
    src = service_src(name)
    assert list(src.rglob("*.py")), f"no sources under {src}"
    forbidden = [f"iomflow.{other}" for other in SERVICES if other != name] + ["iomflow.cli"]
    assert not violations(src, forbidden), "services talk through streams only"


def test_shared_imports_no_service_nor_the_cli() -> None:
    forbidden = [f"iomflow.{name}" for name in SERVICES] + ["iomflow.cli"]
    assert not violations(SHARED_SRC, forbidden)


def test_refused_does_not_depend_on_the_stream_consumer() -> None:
    """``errors`` (``Rejected``, ``Refused``, ``ApiError``) is below the consumer: the
    consumer imports it, never the other way, not even through another module."""
    errors = SHARED_SRC / "iomflow" / "shared" / "errors.py"
    imported = {name for _, name in imported_modules(errors, SHARED_SRC)}
    shared = {n for n in imported if refers_to(n, "iomflow.shared")}
    assert shared <= {"iomflow.shared", "iomflow.shared.problems"}, shared
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, iomflow.shared.errors; "
            "print(sorted(m for m in sys.modules if m.startswith(('iomflow', 'faststream'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = done.stdout.strip()
    assert "iomflow.shared.streams" not in loaded and "faststream" not in loaded, loaded


def test_compat_lives_with_its_only_user_the_cli() -> None:
    assert not (SHARED_SRC / "iomflow" / "shared" / "compat.py").exists()
    assert (CLI_SRC / "iomflow" / "cli" / "compat.py").exists()


def test_ingest_is_a_package_of_its_parts() -> None:
    package = SHARED_SRC / "iomflow" / "shared" / "ingest"
    parts = {p.stem for p in package.glob("*.py")}
    assert {"auth", "ratelimit", "validation", "audit", "router"} <= parts, parts
    assert not (SHARED_SRC / "iomflow" / "shared" / "ingest.py").exists()


def test_the_import_scanner_sees_every_form(tmp_path: Path) -> None:
    package = tmp_path / "iomflow" / "diagnostics"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text(
        "import iomflow.routes.app\n"
        "from iomflow import monitoring\n"
        "from iomflow.registries.domain import x\n"
        "from .. import cli\n"
        "import importlib\n"
        "importlib.import_module('iomflow.routes')\n"
        "from iomflow.shared import contracts\n"
        "from . import domain\n"
    )
    found = violations(tmp_path, ["iomflow.routes", "iomflow.monitoring", "iomflow.registries"])
    found += violations(tmp_path, ["iomflow.cli"])
    lines = sorted(int(v.rsplit(":", 1)[1].split()[0]) for v in found)
    assert lines == [1, 2, 3, 4, 6]


# --- nothing built at import time ----------------------------------------------------------

BUILT_THINGS: tuple[type, ...] = (
    AsyncEngine,
    Engine,
    redis.asyncio.Redis,
    redis.Redis,
    BaseSettings,
    RedisBroker,
    FastAPI,
)


def walk(package_name: str) -> Iterator[ModuleType]:
    """The package and every module under it, imported; not migrations packages nor
    ``__main__`` modules (iomflow.shared.migrations, a plain module, is included)."""
    package = importlib.import_module(package_name)
    yield package
    for info in pkgutil.iter_modules(package.__path__, prefix=package_name + "."):
        last = info.name.rpartition(".")[2]
        if last == "__main__" or (info.ispkg and last == "migrations"):
            continue  # Alembic's env.py runs migrations when imported
        if info.ispkg:
            yield from walk(info.name)
        else:
            yield importlib.import_module(info.name)


PACKAGES = ["iomflow.shared", "iomflow.cli", *(f"iomflow.{name}" for name in SERVICES)]


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_builds_nothing(package: str) -> None:
    modules = list(walk(package))
    assert len(modules) > 1, f"{package} has no modules?"
    built = [
        f"{module.__name__}.{attribute} is a {type(value).__name__}"
        for module in modules
        for attribute, value in vars(module).items()
        if isinstance(value, BUILT_THINGS)
    ]
    assert not built, "build these in create_app / main, not at import time"


def test_the_import_time_check_catches_a_global(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "iomflow_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(
        "from fastapi import FastAPI\n"
        "from redis.asyncio import Redis\n"
        "app = FastAPI()\n"
        "client = Redis.from_url('redis://127.0.0.1:1/0')\n"
    )
    (package / "migrations").mkdir()
    (package / "migrations" / "__init__.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = {m.__name__: m for m in walk("iomflow_probe")}
    assert set(modules) == {"iomflow_probe", "iomflow_probe.app"}
    app = modules["iomflow_probe.app"]
    assert isinstance(app.app, BUILT_THINGS) and isinstance(app.client, BUILT_THINGS)
