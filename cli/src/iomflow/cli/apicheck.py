"""``iomflow apicheck [service ...]``: schemathesis against a running suite's HTTP APIs.

Start a suite first (``uv run iomflow dev --teachers 200``, in another terminal), then::

    uv run iomflow apicheck                 # every service, a few minutes each
    uv run iomflow apicheck routes -n 50    # one service, more examples per operation
    uv run iomflow apicheck routes --include-path-regex '^/v1/routes'   # to schemathesis

Each service is tested from its own ``/openapi.json`` with every check (``--checks all``),
as the suite's admin (its key from the suite's settings file, as the admin commands read
it). What counts for the documents is reported by two of those checks: an undocumented
status code (``status_code_conformance``) and a response that breaks its schema
(``response_schema_conformance``). The exit status is schemathesis's (0: nothing failed).
The run changes the suite's data (it posts, approves, cancels): run it on a demo suite.
Reports land in ``<workdir>/apicheck/<service>/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from iomflow.cli.launcher import SERVICES, read_settings, settings_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iomflow apicheck", description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", help=f"of {', '.join(SERVICES)} (all by default)")
    parser.add_argument("-n", "--max-examples", type=int, default=25)
    parser.add_argument("--max-time", type=int, default=240, help="seconds per service")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--checks", default="all")
    args, extra = parser.parse_known_args(argv)  # the rest goes to schemathesis
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        parser.error(f"нет такого сервиса: {', '.join(unknown)}")
    settings = read_settings(settings_file())
    if settings is None:
        print(
            f"apicheck: запущенного набора нет ({settings_file()} не найден): "
            "сначала uv run iomflow dev",
            file=sys.stderr,
        )
        return 2
    runner = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(runner).exists():
        print("apicheck: schemathesis не установлен: uv sync (группа dev)", file=sys.stderr)
        return 2
    worst = 0
    for name in args.services or SERVICES:
        url = settings["services"][name]["url"]
        if url is None:
            print(f"apicheck: {name} не запущен в этом наборе", file=sys.stderr)
            return 2
        reports = Path(settings["workdir"]) / "apicheck" / name
        command = [
            runner,
            "run",
            f"{url}/openapi.json",
            "--checks",
            args.checks,
            "--header",
            f"Authorization: Bearer {settings['admin_key']}",
            "--max-examples",
            str(args.max_examples),
            "--max-time",
            str(args.max_time),
            "--workers",
            "1",
            "--no-color",
            "--report",
            "ndjson",
            "--report-dir",
            str(reports),
            *(["--seed", str(args.seed)] if args.seed is not None else []),
            *[a for a in extra if a != "--"],
        ]
        print(f"== {name}: {url}", flush=True)
        code = subprocess.call(command)
        worst = max(worst, code)
    return worst
