"""``iomflow``: run a service, migrate it, or run the whole chain on embedded defaults.

iomflow serve <service>     run one service (settings from IOMFLOW_* variables)
iomflow migrate <service>   apply its migrations to IOMFLOW_DATABASE_URL
iomflow demo                the whole chain with a demo region; prints KPIs and a trace
iomflow dev                 the same, then stays up and prints the URLs
iomflow contracts           guard the event contracts against breaking changes, then write
                            the JSON Schemas, snapshots, AsyncAPI and OpenAPI (into docs/)
iomflow registries …        the registries' admin commands: import, export, resync, stale,
                            keys (iomflow registries --help); demo-files: iomflow region files
iomflow region [files]      the demo region: a summary, or spreadsheets (files --out DIR)
iomflow diagnostics …       the diagnostics' admin commands: framework export/import,
                            revise, close, keys, publishers, audit (iomflow diagnostics --help)
iomflow routes …            the routes' admin commands: rebalance, tick, keys, publishers,
                            audit (iomflow routes --help)
iomflow monitoring rebuild  replay the streams into fresh projections and compare

The services' admin commands work on the service's database: IOMFLOW_DATABASE_URL or
IOMFLOW_DATA_DIR when set; else, while ``iomflow demo``/``dev`` runs, the databases of that
suite (read from var/demo/suite.json, or the file $IOMFLOW_SUITE_FILE names); else var/.
``--data-dir PATH`` (anywhere after the service) overrides them all: PATH/<service>.db.

Operators (Redis from IOMFLOW_REDIS_URL or --redis-url; traces from files or Jaeger):
iomflow streams             length, lag, pending and dead letters per stream and group
iomflow dlq list|show|replay|drop
                            the dead-letter streams; replay keeps the event id
iomflow trace <id>          the span tree of a diagnosis or teacher across the services
iomflow acl                 the Redis ACL users of the services and publishers
iomflow apicheck [service]  schemathesis (--checks all) against the running suite's APIs
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from iomflow.cli.launcher import SERVICES, SETTINGS_ENV, SETTINGS_FILE, read_settings

OPERATOR_COMMANDS = {
    "streams": "lag, pending and dead letters per stream and group",
    "dlq": "dead-letter streams: list, show, replay, drop",
    "trace": "the span tree of a diagnosis or teacher",
    "acl": "Redis ACL users for services and publishers",
    "apicheck": "schemathesis against a running suite's HTTP APIs",
    "region": "the demo region: a summary, or its spreadsheets (region files --out DIR)",
}
"""Command -> what it does; each lives in ``iomflow.cli.<command>`` with ``main(argv)``."""

DATABASE_COMMANDS = {"publishers", "audit", "keys"}
"""Admin commands that need the service's tables: refused clearly when its database is
missing (instead of SQLite's «no such table»)."""


def _take_data_dir(argv: list[str]) -> tuple[list[str], Path | None]:
    rest: list[str] = []
    found: Path | None = None
    items = iter(argv)
    for item in items:
        if item == "--data-dir":
            value = next(items, None)
            if value is None:
                print("iomflow: после --data-dir укажите каталог баз", file=sys.stderr)
                sys.exit(2)
            found = Path(value)
        elif item.startswith("--data-dir="):
            found = Path(item.split("=", 1)[1])
        else:
            rest.append(item)
    return rest, found


def admin_settings(
    service: str, argv: list[str], environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str], str | None]:
    """For ``iomflow <service> …``: its arguments without ``--data-dir``, the ``IOMFLOW_*``
    variables to run them with, and a note for people (where the database comes from).

    ``--data-dir`` wins; then the variables already set; then, for an admin command (not
    serve or migrate), the settings file of a running demo suite (``launcher``)."""
    argv, data_dir = _take_data_dir(argv)
    if data_dir is not None:
        return argv, {"IOMFLOW_DATA_DIR": str(data_dir), "IOMFLOW_DATABASE_URL": ""}, None
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in (None, "serve", "migrate"):
        return argv, {}, None
    if "IOMFLOW_DATABASE_URL" in environ or "IOMFLOW_DATA_DIR" in environ:
        return argv, {}, None
    path = Path(environ.get(SETTINGS_ENV) or SETTINGS_FILE)
    try:
        suite = read_settings(path)
    except RuntimeError as exc:
        raise SystemExit(f"Ошибка: {exc}") from exc
    own = (suite or {}).get("services", {}).get(service)
    if suite is None or own is None:
        return argv, {}, None
    env = {"IOMFLOW_DATABASE_URL": own["database_url"], "IOMFLOW_DATA_DIR": suite["data_dir"]}
    if "IOMFLOW_REDIS_URL" not in environ:
        env["IOMFLOW_REDIS_URL"] = own["redis_url"]
    note = (
        f"База сервиса {service} — запущенного набора iomflow demo/dev ({path}): "
        f"{own['database_url']}; другой каталог баз: --data-dir ПУТЬ"
    )
    return argv, env, note


def _missing_database(service: str, environ: Mapping[str, str]) -> Path | None:
    """The SQLite file the service would open, when it does not exist (and nothing would
    create its tables)."""
    if environ.get("IOMFLOW_MIGRATE_ON_START", "").lower() in ("1", "true", "yes", "on"):
        return None
    url = environ.get("IOMFLOW_DATABASE_URL", "")
    if url and not url.startswith("sqlite"):
        return None
    path = (
        Path(url.split(":///", 1)[1])
        if url
        else Path(environ.get("IOMFLOW_DATA_DIR") or "var") / f"{service}.db"
    )
    return None if path.exists() else path


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` set in ``os.environ`` (the services' settings read it) for a while."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_admin(service: str, argv: list[str]) -> None:
    """``iomflow <service> …``: the service's own command line, on the database chosen by
    ``admin_settings``."""
    argv, env, note = admin_settings(service, argv, os.environ)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in DATABASE_COMMANDS and "-h" not in argv and "--help" not in argv:
        missing = _missing_database(service, {**os.environ, **env})
        if missing is not None:
            raise SystemExit(
                f"Ошибка: базы сервиса {service} нет: {missing}. Если запущен make dev "
                f"(iomflow dev), его настройки ищутся в {SETTINGS_FILE} (или в файле "
                f"${SETTINGS_ENV}); укажите каталог баз явно: --data-dir ПУТЬ (у make dev — "
                "var/demo/data) или IOMFLOW_DATABASE_URL."
            )
    if note:
        print(note, file=sys.stderr)
    with _environment(env):
        importlib.import_module(f"iomflow.{service}.__main__").main(argv)


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
    if argv[:2] == ["registries", "demo-files"]:
        # The demo region is the CLI's (iomflow.cli.region), not the service's.
        sys.exit(importlib.import_module("iomflow.cli.region").main(["files", *argv[2:]]))
    if argv[:1] and argv[0] in SERVICES:
        run_admin(argv[0], argv[1:])
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
