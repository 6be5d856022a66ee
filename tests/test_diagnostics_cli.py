"""``iomflow diagnostics …`` as an admin runs it: the framework exported as CASE and CSV
and imported back into the file the service loads; clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from iomflow.diagnostics.domain import load_framework

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
