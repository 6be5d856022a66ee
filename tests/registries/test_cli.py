"""The registries' admin commands as an admin runs them: ``iomflow registries demo-files``
writes spreadsheets, ``import`` loads them with progress into the service's database and
publishes to Redis; a second import of the same file publishes nothing; resync, keys, stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from iomflow.shared.contracts import Streams


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iomflow.cli.main", "registries", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_import_from_the_command_line(clean_redis: str, tmp_path: Path) -> None:
    env = {
        "IOMFLOW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'registries.db'}",
        "IOMFLOW_REDIS_URL": clean_redis,
        "IOMFLOW_MIGRATE_ON_START": "true",
        "IOMFLOW_TRACES_DIR": str(tmp_path / "traces"),
    }
    files = tmp_path / "region"
    made = run("demo-files", "--out", str(files), "--teachers", "1200", env=env)
    assert made.returncode == 0, made.stderr
    for register, kind in (("municipalities", "csv"), ("organizations", "xlsx")):
        path = files / f"{register}.xlsx"
        if kind == "csv":
            again = run(
                "demo-files", "--out", str(files), "--teachers", "1200", "--format", "csv", env=env
            )
            assert again.returncode == 0
            path = files / f"{register}.csv"
        done = run("import", str(path), "--register", register, "--mode", "all-or-nothing", env=env)
        assert done.returncode == 0, done.stdout + done.stderr

    teachers = files / "teachers.xlsx"
    dry = run("import", str(teachers), "--register", "teachers", "--mode", "dry-run", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Пробная проверка: ничего не записано" in dry.stdout
    done = run("import", str(teachers), "--register", "teachers", "--mode", "valid-rows", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "проверка: " in done.stderr and "запись: " in done.stderr  # progress
    assert "Загружено." in done.stdout
    client = redis.Redis.from_url(clean_redis, decode_responses=True)
    types = [f["type"] for _, f in client.xrange(Streams.REGISTRY)]
    published = types.count("registry.teacher.upserted")
    assert published > 1000

    again = run("import", str(teachers), "--register", "teachers", "--mode", "valid-rows", env=env)
    assert again.returncode == 0
    assert f"без изменений {published}" in again.stdout
    assert client.xlen(Streams.REGISTRY) == len(types)

    resync = run("resync", "teachers", env=env)
    assert resync.returncode == 0 and f"teachers: {published}" in resync.stdout
    assert client.xlen(Streams.REGISTRY) == len(types) + published

    key = run("keys", "add", "Оператор ЦНППМ", "--role", "registrar", env=env)
    assert key.returncode == 0 and key.stdout.startswith("iomf_")
    listed = run("keys", "list", env=env)
    assert "Оператор ЦНППМ" in listed.stdout and key.stdout.strip() not in listed.stdout
    stale = run("stale", env=env)
    assert stale.returncode == 0 and "Просроченных записей нет" in stale.stdout
    unknown = run("import", str(teachers), "--register", "pupils", "--mode", "dry-run", env=env)
    assert unknown.returncode != 0 and "pupils" in unknown.stderr
