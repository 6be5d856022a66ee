"""The README's first command, as a user runs it: ``iomflow demo`` exits 0 and prints the
KPI table and one trace across the services."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


# The demo loads a 40,000-teacher region and takes about 4 minutes on a quiet 2-core machine:
# past pytest's default 300 s under load. The chain gets 500 s to settle, the process 600 s.
@pytest.mark.timeout(660)
def test_demo_prints_kpis_and_one_trace_across_the_services(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "iomflow.cli.main",
            "demo",
            "--teachers",
            "400",
            "--workdir",
            str(tmp_path / "demo"),
            "--timeout",
            "500",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)},
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]

    def value(code: str) -> float:
        match = re.search(rf"│ {code}\s+│.*?│ ([\d.]+) ", out)
        assert match, f"{code} not in the KPI table:\n{out[-3000:]}"
        assert re.fullmatch(r"\d+(\.\d)?", match.group(1)), f"{code} not shown to 0.1"
        return float(match.group(1))

    assert value("diagnosed_share") > 0
    assert value("route_share") > 0
    assert value("methodist_support_share") == 100.0
    assert 0 < value("methodist_load_max") <= 250
    trace = re.search(r"Трасса ([0-9a-f]{32}): \d+ спанов, сервисы: (.+)", out)
    assert trace, out[-3000:]
    assert {"diagnostics", "routes", "monitoring"} <= set(trace.group(2).split(", "))
    assert "monitoring   iomflow.routes.events process" in out
