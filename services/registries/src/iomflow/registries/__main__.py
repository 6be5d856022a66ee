"""``iomflow-registries`` (also ``iomflow registries``): the service and its admin commands.

  serve | migrate                       the service (settings from IOMFLOW_* variables)
  import FILE --register R --mode M     import a CSV/XLSX file; M: dry-run, all-or-nothing,
                                        valid-rows; --errors OUT.xlsx writes the row errors
  export --register R --out FILE        a register as XLSX (teachers: age and experience
                                        bands; --purpose P: their dates, audited)
  resync [REGISTER ...]                 publish the current state again
  stale [--publish]                     records overdue for verification (6 months)
  keys add NAME --role R… | list | revoke KEY_ID

Admin commands work on the service's database directly, in units of work of their own
(``service.transactions``), and publish what they staged when they finish
(iomflow.shared.admin).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TypeVar

from iomflow.registries import domain, importing, service
from iomflow.registries.app import create_app
from iomflow.registries.domain import REGISTRY
from iomflow.registries.repository import tables
from iomflow.registries.settings import Settings
from iomflow.registries.tabular import TableError, read_table, write_xlsx
from iomflow.shared.admin import Admin, Printer
from iomflow.shared.entry import service_main
from iomflow.shared.outbox import Outbox

serve_main = service_main("registries", "iomflow.registries", Settings, create_app)

T = TypeVar("T")
ROLES = ("registrar", "personal_data", "auditor")
ADMIN = Admin("registries", "iomflow.registries", tables)


def _register(name: str) -> domain.Register:
    spec = REGISTRY.get(name)
    if spec is None:
        raise SystemExit(f"Реестр «{name}» не найден. Доступны: {', '.join(REGISTRY)}")
    return spec


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    spec = _register(args.register)
    path: Path = args.file
    if not path.is_file():
        raise SystemExit(f"Файл не найден: {path}")
    printer = Printer()
    printer("чтение файла", 0, 1)
    try:
        table = read_table(path.read_bytes(), path.name)
    except TableError as exc:
        printer.close()
        raise SystemExit(f"Ошибка: {exc}") from exc
    printer("чтение файла", table.total, table.total)
    mode = service.Mode(args.mode.replace("-", "_"))

    async def work(sessions: Any, outbox: Outbox) -> service.ImportReport:
        return await service.import_table(
            service.transactions(sessions, outbox),
            spec,
            table,
            mode=mode,
            actor=args.actor,
            confirm=args.confirm,
            progress=printer,
        )

    report = ADMIN.run(settings, work)
    printer.close()
    print(report.message)
    for error in report.errors[: args.show]:
        place = f"строка {error.row}, столбец {error.letter} «{error.column}»"
        print(f"  {place}: «{error.value}» — {error.reason}")
    if len(report.errors) > args.show:
        print(f"  … и ещё {len(report.errors) - args.show}")
    if args.errors and report.errors:
        errors = [e.as_dict() for e in report.errors]
        args.errors.write_bytes(write_xlsx([importing.errors_sheet(errors)]))
        print(f"Отчёт об ошибках: {args.errors}")
    if mode == service.Mode.DRY_RUN:
        return 0 if not report.errors else 2
    return 0 if report.applied and not report.errors else (2 if report.applied else 1)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    spec = _register(args.register)

    # Teachers' dates only for a stated purpose, audited as for the API.
    reader = (args.actor, args.purpose) if args.purpose else None

    async def work(sessions: Any, outbox: Outbox) -> bytes:
        return await service.export_xlsx(sessions, spec, reader)

    args.out.write_bytes(ADMIN.run(settings, work))
    print(args.out)
    return 0


def cmd_resync(args: argparse.Namespace, settings: Settings) -> int:
    for name in args.registers:
        _register(name)
    printer = Printer()

    async def work(sessions: Any, outbox: Outbox) -> dict[str, int]:
        return await service.resync(
            service.transactions(sessions, outbox), args.registers or None, progress=printer
        )

    counts = ADMIN.run(settings, work)
    printer.close()
    for name, count in counts.items():
        print(f"{name}: {count}")
    return 0


def cmd_stale(args: argparse.Namespace, settings: Settings) -> int:
    async def work(sessions: Any, outbox: Outbox) -> list[dict[str, Any]]:
        async with service.transactions(sessions, outbox)() as unit:
            groups = await service.check_stale(unit, days=settings.stale_after_days)
            if not args.publish:  # a look only: no event, no notice saved
                unit.discard()
                await unit.session.rollback()
            return groups

    groups = ADMIN.run(settings, work)
    if not groups:
        print(f"Просроченных записей нет (проверка раз в {settings.stale_after_days} дн.).")
    for group in groups:
        print(
            f"{group['register']:<18} {group['owner']:<24} просрочено {group['stale']} "
            f"из {group['total']}, старейшая проверка {group['oldest']:%d.%m.%Y}"
        )
    return 0


def parser() -> argparse.ArgumentParser:
    p, commands = ADMIN.parser(__doc__)

    sub = commands.add_parser("import", help="import a CSV or XLSX file into a register")
    sub.add_argument("file", type=Path)
    sub.add_argument("--register", required=True, choices=list(REGISTRY))
    sub.add_argument(
        "--mode",
        required=True,
        choices=["dry-run", "all-or-nothing", "valid-rows"],
        help="dry-run: report only; all-or-nothing: any error, nothing; valid-rows: the rest",
    )
    sub.add_argument("--confirm", action="store_true", help="mark unchanged rows verified now")
    sub.add_argument("--actor", default="cli", help="who imports (verified_by)")
    sub.add_argument("--errors", type=Path, help="write the row errors to this XLSX")
    sub.add_argument("--show", type=int, default=20, help="row errors to print (default 20)")

    sub = commands.add_parser("export", help="a register as XLSX")
    sub.add_argument("--register", required=True, choices=list(REGISTRY))
    sub.add_argument("--out", type=Path, required=True)
    sub.add_argument(
        "--purpose",
        help="export teachers' birth and hire dates (not bands) for this purpose, audited",
    )
    sub.add_argument("--actor", default="cli", help="who reads the dates (audit log)")

    sub = commands.add_parser("resync", help="publish the current state again")
    sub.add_argument("registers", nargs="*", help="registers (default: all)")

    sub = commands.add_parser("stale", help="records overdue for verification")
    sub.add_argument("--publish", action="store_true", help="publish registry.stale too")

    ADMIN.add_keys_parser(commands, ROLES)

    return p


COMMANDS = {
    "import": cmd_import,
    "export": cmd_export,
    "resync": cmd_resync,
    "stale": cmd_stale,
    "keys": ADMIN.keys,
}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    ADMIN.main(args, serve_main, COMMANDS, Settings)


if __name__ == "__main__":
    main()
