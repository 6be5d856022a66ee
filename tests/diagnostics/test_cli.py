"""``iomflow diagnostics …`` as an admin runs it: the framework exported as CASE and CSV
and imported back into the file the service loads; clear errors for bad input; publishers'
keys issued on the database of the suite ``make dev`` runs (its settings file), or of
``--data-dir``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from iomflow.cli.demo import PUBLISHED_OVER_HTTP, admin_hints
from iomflow.cli.launcher import SETTINGS_FILE, Suite, write_settings
from iomflow.diagnostics.domain import load_framework
from iomflow.shared import migrations

SHIPPED = Path(str(resources.files("iomflow.diagnostics").joinpath("data/framework.json")))


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "IOMFLOW_DATA_DIR": str(tmp_path / "var"),
        "IOMFLOW_MIGRATE_ON_START": "true",
        "IOMFLOW_REDIS_URL": "redis://127.0.0.1:1/0",  # nothing to publish; never reached
    }
    return subprocess.run(
        [sys.executable, "-m", "iomflow.cli.main", "diagnostics", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize("fmt", ["case", "csv"])
def test_framework_exported_and_imported_back_is_the_same_framework(
    tmp_path: Path, fmt: str
) -> None:
    exported = tmp_path / f"framework.{fmt}"
    done = cli(tmp_path, "framework", "export", "--format", fmt, "--out", str(exported))
    assert done.returncode == 0, done.stderr
    if fmt == "case":
        package = json.loads(exported.read_text(encoding="utf-8"))
        assert package["CFDocument"]["version"] == "2026.2"
    back = tmp_path / "back.json"
    done = cli(tmp_path, "framework", "import", str(exported), "--format", fmt, "--out", str(back))
    assert done.returncode == 0, done.stderr
    assert "16 компетенций" in done.stderr
    assert load_framework(back) == load_framework(SHIPPED)


def test_an_import_under_a_new_version_keeps_the_content(tmp_path: Path) -> None:
    exported = tmp_path / "framework.csv"
    assert (
        cli(tmp_path, "framework", "export", "--format", "csv", "--out", str(exported)).returncode
        == 0
    )
    back = tmp_path / "next.json"
    done = cli(
        tmp_path, "framework", "import", str(exported), "--format", "csv",
        "--version", "2027.1", "--out", str(back),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    imported = load_framework(back)
    assert imported.version == "2027.1"
    assert imported.competencies == load_framework(SHIPPED).competencies


def test_a_broken_framework_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("code;name;group\nrobots;Робототехника;robotics\n", encoding="utf-8")
    done = cli(tmp_path, "framework", "import", str(bad), "--format", "csv")
    assert done.returncode != 0
    assert "Рамка не принята" in done.stderr and "robotics" in done.stderr


def test_closing_an_unknown_campaign_says_so(tmp_path: Path) -> None:
    done = cli(tmp_path, "close", "nowhere")
    assert done.returncode != 0
    assert "Кампания «nowhere» не найдена" in done.stderr


# --- which database the admin commands open ------------------------------------------------

TYPES = "diagnostics.result.submitted,diagnostics.needs.submitted"


def beside(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``iomflow …`` run in ``cwd`` with no IOMFLOW_* database settings, as an admin types
    it in the repository beside ``make dev``."""
    return subprocess.run(
        [sys.executable, "-m", "iomflow.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd), **env},
    )


def migrated(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    database = data_dir / "diagnostics.db"
    migrations.upgrade("iomflow.diagnostics", f"sqlite+aiosqlite:///{database}")
    return database


def publisher_ids(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT publisher_id FROM publishers ORDER BY 1")]


@pytest.fixture
def dev_suite(tmp_path: Path) -> Suite:
    """The settings of a suite as ``iomflow dev`` writes them (no services started: only its
    diagnostics database exists, migrated as the service does at start)."""
    suite = Suite(
        (tmp_path / SETTINGS_FILE).parent.resolve(), "redis://127.0.0.1:1/0"
    )  # nothing to publish; never reached
    migrated(suite.data_dir)
    write_settings(suite, tmp_path / SETTINGS_FILE)
    return suite


def test_publishers_add_beside_make_dev_writes_to_the_suites_database(
    tmp_path: Path, dev_suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where make dev runs: the repository
    (hint,) = [
        line.strip() for line in admin_hints(dev_suite, tmp_path / SETTINGS_FILE)
        if "iomflow diagnostics publishers add" in line
    ]  # fmt: skip
    assert hint == f"uv run iomflow diagnostics publishers add <код-издателя> --types {TYPES}"
    args = hint.removeprefix("uv run iomflow ").replace("<код-издателя>", "school-lms").split()
    done = beside(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("iomf")  # the key, shown once
    assert str(dev_suite.data_dir / "diagnostics.db") in done.stderr  # says which database
    assert publisher_ids(dev_suite.data_dir / "diagnostics.db") == ["school-lms"]
    assert not (tmp_path / "var" / "diagnostics.db").exists()
    listed = beside(tmp_path, "diagnostics", "publishers", "list")
    assert listed.returncode == 0 and "school-lms" in listed.stdout
    assert beside(tmp_path, "diagnostics", "audit").returncode == 0


def test_data_dir_overrides_the_suites_settings(tmp_path: Path, dev_suite: Suite) -> None:
    other = migrated(tmp_path / "elsewhere")
    for option in (["--data-dir", str(other.parent)], [f"--data-dir={other.parent}"]):
        publisher = f"lms-{len(option)}"
        done = beside(
            tmp_path, "diagnostics", "publishers", "add", publisher, "--types", TYPES, *option
        )
        assert done.returncode == 0, done.stderr
    assert publisher_ids(other) == ["lms-1", "lms-2"]
    assert publisher_ids(dev_suite.data_dir / "diagnostics.db") == []


def test_a_suite_elsewhere_is_named_in_the_printed_command(tmp_path: Path) -> None:
    suite = Suite(tmp_path / "run", "redis://127.0.0.1:1/0")
    hints = admin_hints(suite, suite.workdir / "suite.json")
    assert suite.admin_key in hints[0]
    assert any(line.endswith(f"--data-dir {suite.data_dir}") for line in hints)


def test_the_printed_types_are_those_the_services_take_over_http() -> None:
    from iomflow.diagnostics.app import INGESTS as DIAGNOSTICS
    from iomflow.routes.app import INGESTS as ROUTES

    assert PUBLISHED_OVER_HTTP["diagnostics"][1].split(",") == list(DIAGNOSTICS)
    assert PUBLISHED_OVER_HTTP["routes"][1].split(",") == list(ROUTES)


def test_the_suites_settings_file_is_private_and_names_every_service(
    tmp_path: Path, dev_suite: Suite
) -> None:
    path = tmp_path / SETTINGS_FILE
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the admin key
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["admin_key"] == dev_suite.admin_key
    assert set(document["services"]) == {"registries", "diagnostics", "routes", "monitoring"}
    assert document["services"]["routes"]["database_url"].endswith("/var/demo/data/routes.db")


def test_without_a_database_the_command_says_where_it_looked(tmp_path: Path) -> None:
    done = beside(tmp_path, "diagnostics", "publishers", "add", "lms", "--types", TYPES)
    assert done.returncode != 0
    assert "базы сервиса diagnostics нет" in done.stderr and "--data-dir" in done.stderr
    assert "no such table" not in done.stderr
    assert not (tmp_path / "var" / "diagnostics.db").exists()
