"""``iomflow-diagnostics`` (also ``iomflow diagnostics``): the service and its admin commands.

  serve | migrate                          the service (settings from IOMFLOW_* variables)
  framework export --format case|csv|json  the framework in force (or --version V) to stdout
  framework import FILE --format case|csv  convert an exchanged framework into our JSON file
                   [--defaults F] [--version V] [--out F]
  revise --from-version V --reason R       re-score every diagnosis of an older framework
  close CAMPAIGN                           close a campaign: complete what is in
  keys add NAME --role operator | list | revoke KEY_ID
  publishers add ID --types diagnostics.result.submitted [--rate N] [--name TITLE]
             | list | revoke ID | rotate ID | set ID [--types …] [--rate N | --default-rate]
                                           outside systems posting results (POST /v1/events)
  audit [--outcome forbidden] [--publisher ID] [--limit N]
                                           what was posted over HTTP and the answers

Admin commands work on the service's database directly and publish what they stage when
they finish (iomflow.shared.admin).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from iomflow.diagnostics import campaigns, domain, exchange, service
from iomflow.diagnostics.app import INGESTS, NAME, create_app, framework_for
from iomflow.diagnostics.repository import ingest_tables, tables
from iomflow.diagnostics.settings import Settings
from iomflow.shared.admin import Admin, Printer
from iomflow.shared.entry import service_main
from iomflow.shared.errors import Refused
from iomflow.shared.outbox import Outbox

serve_main = service_main("diagnostics", "iomflow.diagnostics", Settings, create_app)
ADMIN = Admin("diagnostics", "iomflow.diagnostics", tables, ingest_tables)
ROLES = ("operator",)


def _transactions(settings: Settings, sessions: Any, outbox: Outbox) -> service.Transaction:
    ctx = service.Diagnostics(framework=framework_for(settings), group=NAME)
    return service.transactions(sessions, outbox, ctx)


def cmd_framework(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "export":
        framework = framework_for(settings)
        if args.version and args.version != framework.version:

            async def work(sessions: Any, _: Outbox) -> domain.Framework | None:
                async with sessions() as session:
                    return await campaigns.framework_at(session, args.version)

            found = ADMIN.run(settings, work)
            if found is None:
                raise SystemExit(f"Рамка версии «{args.version}» не найдена в базе сервиса.")
            framework = found
        if args.format == "case":
            text = json.dumps(exchange.to_case(framework), ensure_ascii=False, indent=2)
        elif args.format == "csv":
            text = exchange.to_csv(framework)
        else:
            text = framework.model_dump_json(indent=2)
        _write(text, args.out)
        return 0
    # import: an exchanged framework becomes the JSON file the service loads
    if args.file is None:
        raise SystemExit("укажите файл рамки")
    defaults = domain.load_framework(args.defaults) if args.defaults else framework_for(settings)
    raw = args.file.read_text(encoding="utf-8-sig")
    try:
        if args.format == "case":
            framework = exchange.from_case(json.loads(raw), defaults=defaults)
        else:
            framework = exchange.from_csv(raw, defaults=defaults, version=args.version)
        if args.version and framework.version != args.version:
            framework = framework.model_copy(update={"version": args.version})
    except (ValueError, json.JSONDecodeError) as exc:
        raise SystemExit(f"Рамка не принята: {exc}") from exc
    _write(framework.model_dump_json(indent=2), args.out)
    print(
        f"Рамка «{framework.version}»: {len(framework.competencies)} компетенций, "
        f"{len(framework.groups)} групп. Укажите файл в IOMFLOW_FRAMEWORK_PATH.",
        file=sys.stderr,
    )
    return 0


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out.write_text(text, encoding="utf-8")
        print(out, file=sys.stderr)


def cmd_revise(args: argparse.Namespace, settings: Settings) -> int:
    printer = Printer()

    async def work(sessions: Any, outbox: Outbox) -> int:
        transaction = _transactions(settings, sessions, outbox)
        async with transaction() as deps:
            await campaigns.register_framework(deps.session, deps.ctx.framework)
        return await service.revise_version(
            transaction,
            args.from_version,
            args.reason,
            progress=lambda done, total: printer("пересчёт диагностик", done, total),
        )

    done = ADMIN.run(settings, work)
    printer.close()
    print(f"Пересчитано диагностик: {done}")
    return 0


def cmd_close(args: argparse.Namespace, settings: Settings) -> int:
    printer = Printer()

    async def work(sessions: Any, outbox: Outbox) -> int:
        return await service.close_campaign(
            _transactions(settings, sessions, outbox),
            args.campaign,
            progress=lambda done, total: printer("завершение диагностик", done, total),
        )

    try:
        done = ADMIN.run(settings, work)
    except Refused as exc:
        raise SystemExit(f"Ошибка: {exc.detail}") from exc
    printer.close()
    print(f"Кампания «{args.campaign}» закрыта; завершено диагностик: {done}")
    return 0


def parser() -> argparse.ArgumentParser:
    p, commands = ADMIN.parser(__doc__)

    sub = commands.add_parser("framework", help="export or import the competency framework")
    sub.add_argument("action", choices=["export", "import"])
    sub.add_argument("file", nargs="?", type=Path, help="import: the CASE JSON or CSV file")
    sub.add_argument("--format", choices=["case", "csv", "json"], default="case")
    sub.add_argument("--version", help="export: a version kept in the database; import: set it")
    sub.add_argument("--defaults", type=Path, help="import: framework JSON for what CSV lacks")
    sub.add_argument("--out", type=Path, help="write here instead of stdout")

    sub = commands.add_parser("revise", help="re-score diagnoses of an older framework")
    sub.add_argument("--from-version", required=True)
    sub.add_argument("--reason", required=True)

    sub = commands.add_parser("close", help="close a campaign, completing what is in")
    sub.add_argument("campaign")

    ADMIN.add_keys_parser(commands, ROLES)
    ADMIN.add_publishers_parser(commands, list(INGESTS))
    return p


COMMANDS = {
    "framework": cmd_framework,
    "revise": cmd_revise,
    "close": cmd_close,
    "keys": ADMIN.keys,
    "publishers": ADMIN.publishers,
    "audit": ADMIN.audit,
}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    ADMIN.main(args, serve_main, COMMANDS, Settings)


if __name__ == "__main__":
    main()
