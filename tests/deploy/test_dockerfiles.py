"""Each service's Dockerfile, read as text (there is no Docker engine to build with here).

Each image is built from the repository root (``docker build -f services/<name>/Dockerfile .``):
uv installs exactly the lock's versions of one workspace package and its dependencies, and
the image carries the sources of iomflow-shared and of that service only.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from iomflow.cli.launcher import SERVICES

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN, ...
    args: str
    stage: int  # index of the FROM this instruction belongs to; -1 before the first


def parse(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, continuation lines joined."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments (and parser directives) may sit inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def dockerfile(name: str) -> Path:
    return ROOT / "services" / name / "Dockerfile"


def instructions(name: str) -> list[Instruction]:
    return parse(dockerfile(name).read_text(encoding="utf-8"))


def final_stage(items: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in items)
    return [i for i in items if i.stage == last]


def copy_sources(item: Instruction) -> tuple[dict[str, str], list[str]]:
    """(flags, sources) of a COPY/ADD: everything but the flags and the destination."""
    words = shlex.split(item.args)
    if words and words[0].startswith("["):
        words = json.loads(item.args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words[:-1]


def service_port(name: str) -> int:
    settings = importlib.import_module(f"iomflow.{name}.settings").Settings
    return int(settings.model_fields["http_port"].default)


def test_every_service_has_a_dockerfile() -> None:
    services = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))
    assert services == sorted(SERVICES)
    missing = [name for name in services if not dockerfile(name).is_file()]
    assert not missing, f"no services/<name>/Dockerfile for {missing}"


@pytest.mark.parametrize("name", SERVICES)
def test_multi_stage_from_python_slim_with_uv_from_its_image(name: str) -> None:
    items = instructions(name)
    froms = [i.args for i in items if i.keyword == "FROM"]
    assert len(froms) >= 2, "a builder stage and a runtime stage"
    assert all(f.split()[0] == "python:3.11-slim" for f in froms), froms
    uv_copies = [
        i
        for i in items
        if i.keyword == "COPY"
        and copy_sources(i)[0].get("from", "").startswith("ghcr.io/astral-sh/uv")
    ]
    assert uv_copies, "uv is copied from the ghcr.io/astral-sh/uv image"
    assert all(i.stage < max(j.stage for j in items) for i in uv_copies), "uv stays in the builder"
    runtime_copies = [i for i in final_stage(items) if i.keyword == "COPY"]
    assert runtime_copies and all(copy_sources(i)[0].get("from") for i in runtime_copies), (
        "the runtime stage copies only from the builder (the venv), never the build context"
    )


@pytest.mark.parametrize("name", SERVICES)
def test_uv_sync_installs_the_locked_service_package(name: str) -> None:
    syncs = [i.args for i in instructions(name) if i.keyword == "RUN" and "uv sync" in i.args]
    assert syncs, "the venv is built with uv sync"
    for args in syncs:
        words = shlex.split(args[args.index("uv sync") :])
        assert "--frozen" in words, f"uv sync without --frozen: {args}"
        assert "--no-dev" in words, f"uv sync with the dev group: {args}"
        assert "--no-editable" in words, f"an editable install needs the sources: {args}"
        assert re.search(rf"--package[ =]iomflow-{name}(\s|$)", args), args
    assert "--no-install-workspace" not in syncs[-1], "the last uv sync installs the service"


@pytest.mark.parametrize("name", SERVICES)
def test_copies_only_shared_and_its_own_sources(name: str) -> None:
    allowed_src = {"shared/src", f"services/{name}/src"}
    copied_src = set()
    for item in instructions(name):
        if item.keyword == "ADD":
            pytest.fail(f"use COPY, not ADD: {item.args}")
        if item.keyword != "COPY":
            continue
        flags, sources = copy_sources(item)
        if "from" in flags:
            continue
        for source in sources:
            path = source.removeprefix("./").rstrip("/")
            assert path not in ("", ".", "*"), "the whole build context is never copied"
            parts = path.split("/")
            if parts[0] == "services":
                assert len(parts) >= 3, f"a whole services folder is copied: {source}"
                other = parts[1]
                assert other == name or path == f"services/{other}/pyproject.toml", (
                    f"{name}'s image copies {source} from another service"
                )
            if "src" in parts:
                assert path in allowed_src, f"{name}'s image copies sources {source}"
                copied_src.add(path)
            if parts[0] == "cli":
                assert path == "cli/pyproject.toml", f"the CLI is not in a service image: {source}"
    assert copied_src == allowed_src, "the image needs shared/src and its own src"


@pytest.mark.parametrize("name", SERVICES)
def test_runtime_runs_as_a_non_root_user(name: str) -> None:
    users = [i.args for i in final_stage(instructions(name)) if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1]} is root"


@pytest.mark.parametrize("name", SERVICES)
def test_runtime_listens_on_all_interfaces_on_the_service_port(name: str) -> None:
    runtime = final_stage(instructions(name))
    port = service_port(name)
    exposed = [w.split("/")[0] for i in runtime if i.keyword == "EXPOSE" for w in i.args.split()]
    assert exposed == [str(port)], f"EXPOSE {exposed}, settings.http_port is {port}"
    env = " ".join(i.args for i in runtime if i.keyword == "ENV")
    assert re.search(r"\bIOMFLOW_HTTP_HOST=0\.0\.0\.0\b", env), "IOMFLOW_HTTP_HOST=0.0.0.0"
    port_env = re.search(r"\bIOMFLOW_HTTP_PORT=(\d+)", env)
    assert port_env is None or int(port_env.group(1)) == port


@pytest.mark.parametrize("name", SERVICES)
def test_healthcheck_probes_liveness_without_curl(name: str) -> None:
    checks = [i.args for i in final_stage(instructions(name)) if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1, "one HEALTHCHECK in the runtime stage"
    check = checks[0]
    assert "CMD" in check.split()
    assert "/health/live" in check
    assert "urllib" in check and "python" in check
    assert "curl" not in check and "wget" not in check, "the slim image has neither"
    assert str(service_port(name)) in check


@pytest.mark.parametrize("name", SERVICES)
def test_cmd_serves_the_service(name: str) -> None:
    runtime = final_stage(instructions(name))
    cmds = [i.args for i in runtime if i.keyword == "CMD"]
    assert cmds, "a CMD"
    assert json.loads(cmds[-1]) == [f"iomflow-{name}", "serve"], "exec form, the console script"
    assert not [i for i in runtime if i.keyword == "ENTRYPOINT"], (
        "no ENTRYPOINT, so `docker run IMAGE iomflow-<name> migrate` works"
    )
    assert f"iomflow-{name} migrate" in dockerfile(name).read_text(encoding="utf-8"), (
        "the migration one-shot is documented"
    )


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    path = ROOT / ".dockerignore"
    assert path.is_file()
    patterns = {
        line.strip().rstrip("/")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", "var", ".git", "tests", "bench", "**/__pycache__"):
        assert needed in patterns, f".dockerignore lacks {needed}"
    for kept in ("uv.lock", "pyproject.toml", "shared", "services", "cli", "src", "*"):
        assert kept not in patterns and f"!{kept}" not in patterns, f"{kept} must stay in"
