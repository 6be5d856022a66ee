"""``iomflow``: run a service, migrate it, or run the whole chain on embedded defaults.

iomflow serve <service>     run one service (settings from IOMFLOW_* variables)
iomflow migrate <service>   apply its migrations to IOMFLOW_DATABASE_URL
iomflow demo                the whole chain with a demo region; prints KPIs and a trace
iomflow dev                 the same, then stays up and prints the URLs
iomflow contracts           guard the event contracts against breaking changes, then write
                            the JSON Schemas, snapshots, AsyncAPI and OpenAPI (into docs/)
iomflow registries …        the registries' admin commands: import, export, resync, stale,
                            keys, demo-files (iomflow registries --help)
iomflow diagnostics …       the diagnostics' admin commands: framework export/import,
                            revise, close, keys, publishers, audit (iomflow diagnostics --help)
iomflow routes …            the routes' admin commands: rebalance, tick, keys, publishers,
                            audit (iomflow routes --help)
iomflow monitoring rebuild  replay the streams into fresh projections and compare

Operators (Redis from IOMFLOW_REDIS_URL or --redis-url; traces from files or Jaeger):
iomflow streams             length, lag, pending and dead letters per stream and group
iomflow dlq list|show|replay|drop
                            the dead-letter streams; replay keeps the event id
iomflow trace <id>          the span tree of a diagnosis or teacher across the services
iomflow acl                 the Redis ACL users of the services and publishers
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
from pathlib import Path

from iomflow.cli.launcher import SERVICES

OPERATOR_COMMANDS = {
    "streams": "lag, pending and dead letters per stream and group",
    "dlq": "dead-letter streams: list, show, replay, drop",
    "trace": "the span tree of a diagnosis or teacher",
    "acl": "Redis ACL users for services and publishers",
}
"""Command -> what it does; each lives in ``iomflow.cli.<command>`` with ``main(argv)``."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="iomflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run one service"), ("migrate", "migrate one service")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("service", choices=SERVICES)
    for name, text in (
        ("demo", "run the chain once and exit"),
        ("dev", "run the chain and stay up"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument(
            "--teachers",
            type=int,
            default=2000,
            help="how many teachers to diagnose (default 2000)",
        )
        sub.add_argument(
            "--region-teachers",
            type=int,
            default=40_000,
            help="size of the generated demo region in teachers (default 40000, as Irkutsk)",
        )
        sub.add_argument(
            "--workdir",
            type=Path,
            default=Path("var/demo"),
            help="databases, logs, traces (wiped first; default var/demo)",
        )
        sub.add_argument(
            "--redis-url",
            default=None,
            help="use this Redis instead of starting one (its streams are used as they are)",
        )
        sub.add_argument(
            "--timeout", type=float, default=600, help="seconds to wait for the chain to settle"
        )
    sub = commands.add_parser("contracts", help="check, then write the contract documents")
    sub.add_argument(
        "--out",
        type=Path,
        default=Path("docs"),
        help="directory to write contracts/, asyncapi/ and openapi/ into (default docs)",
    )
    commands.add_parser(
        "registries", help="registries admin: import, export, resync, stale, keys", add_help=False
    )
    commands.add_parser(
        "diagnostics",
        help="diagnostics admin: framework, revise, close, keys, publishers, audit",
        add_help=False,
    )
    commands.add_parser(
        "routes", help="routes admin: rebalance, tick, keys, publishers, audit", add_help=False
    )
    commands.add_parser("monitoring", help="monitoring admin: rebuild", add_help=False)
    for name, text in OPERATOR_COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["registries"], ["diagnostics"], ["routes"], ["monitoring"]):
        importlib.import_module(f"iomflow.{argv[0]}.__main__").main(argv[1:])
        return
    if argv[:1] and argv[0] in OPERATOR_COMMANDS:
        sys.exit(importlib.import_module(f"iomflow.cli.{argv[0]}").main(argv[1:]))
    args = parser.parse_args(argv)

    if args.command == "contracts":
        from iomflow.cli.contracts import write_contracts

        for path in write_contracts(args.out):
            print(path)
        return

    if args.command in ("serve", "migrate"):
        module = importlib.import_module(f"iomflow.{args.service}.__main__")
        module.main([args.command])
        return

    from iomflow.cli import demo

    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    code = demo.run(
        teachers=args.teachers,
        workdir=args.workdir,
        redis_url=args.redis_url,
        timeout=args.timeout,
        stay=args.command == "dev",
        region_teachers=args.region_teachers,
    )
    sys.exit(code)


if __name__ == "__main__":
    main()
