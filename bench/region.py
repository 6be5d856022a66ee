"""How long the demo region takes to generate (``iomflow.cli.region.generate``).

    uv run python bench/region.py              # the default region (40,000 teachers), 3 runs
    uv run python bench/region.py --teachers 2000 --runs 5

Prints each run and the median in seconds. It was a timed assertion in the tests (under
6 s); a benchmark reports it instead (about 1 s on a laptop).
"""

from __future__ import annotations

import argparse
import statistics
import time

from iomflow.cli import region


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", type=int, default=region.FULL_SCALE)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        started = time.perf_counter()
        rows = region.generate(teachers=args.teachers)
        runs.append(time.perf_counter() - started)
    sizes = ", ".join(f"{name} {len(r)}" for name, r in rows.items())
    print(f"region of {args.teachers} teachers: {sizes}")
    print("runs: " + ", ".join(f"{s:.2f} s" for s in runs))
    print(f"median: {statistics.median(runs):.2f} s")


if __name__ == "__main__":
    main()
