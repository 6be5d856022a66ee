"""``iomflow-routes`` (also ``iomflow routes``): the service and its admin commands.

  serve | migrate                         the service (settings from IOMFLOW_* variables)
  rebalance [--capacity-only]             bring methodists within capacity, even loads out
  tick                                    start agreed routes, complete overdue ones,
                                          seat waiting routes where there is room
  keys add NAME --role R | list | revoke KEY_ID
                                          roles: operator, methodist, teacher, management
  publishers add ID --types courses.course.enrolled,courses.course.completed [--rate N]
             | list | revoke ID | rotate ID | set ID [--types …] [--rate N | --default-rate]
                                          course providers posting events (POST /v1/events;
                                          also courses.internship.completed)
  audit [--outcome forbidden] [--publisher ID] [--limit N]
                                          what was posted over HTTP and the answers

Admin commands work on the service's database directly and publish what they stage when
they finish (iomflow.shared.admin).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from iomflow.routes import domain, lifecycle, service
from iomflow.routes.app import INGESTS, create_app
from iomflow.routes.ledger import Ledger, ledger_of
from iomflow.routes.repository import ingest_tables, tables
from iomflow.routes.settings import Settings
from iomflow.shared.admin import Admin
from iomflow.shared.entry import service_main
from iomflow.shared.outbox import Outbox
from iomflow.shared.unit import unit_of_work

serve_main = service_main("routes", "iomflow.routes", Settings, create_app)
ADMIN = Admin("routes", "iomflow.routes", tables, ingest_tables)
ROLES = ("operator", "methodist", "teacher", "management")
T = TypeVar("T")


async def _command(
    settings: Settings, sessions: Any, outbox: Outbox, work: Callable[[Ledger], Awaitable[T]]
) -> T:
    """One transaction over the service's database, as the running service would do it."""
    ctx = service.Routes(rules=domain.load_rules(settings.rules_path))
    async with unit_of_work(sessions, outbox, ctx) as deps, ledger_of(deps) as ledger:
        return await work(ledger)


def cmd_rebalance(args: argparse.Namespace, settings: Settings) -> int:
    async def work(sessions: Any, outbox: Outbox) -> list[domain.Move]:
        return await _command(
            settings,
            sessions,
            outbox,
            lambda ledger: service.rebalance(ledger, even=not args.capacity_only, by="cli"),
        )

    moves = ADMIN.run(settings, work)
    queued = sum(1 for m in moves if m.to_methodist is None)
    print(f"Перемещено маршрутов: {len(moves) - queued}; в очередь: {queued}")
    for reason, n in Counter(m.reason.split(":")[0] for m in moves).most_common():
        print(f"  {reason}: {n}")
    return 0


def cmd_tick(args: argparse.Namespace, settings: Settings) -> int:
    async def work(sessions: Any, outbox: Outbox) -> dict[str, int]:
        return await _command(settings, sessions, outbox, lifecycle.tick)

    done = ADMIN.run(settings, work)
    print(
        f"Начато маршрутов: {done['activated']}; завершено по сроку: {done['completed']}; "
        f"назначено методистов из очереди: {done['seated']}"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p, commands = ADMIN.parser(__doc__)
    sub = commands.add_parser("rebalance", help="methodists within capacity, loads evened")
    sub.add_argument(
        "--capacity-only", action="store_true", help="only fix overloads and seat the queue"
    )
    commands.add_parser("tick", help="start agreed routes, complete overdue ones")
    ADMIN.add_keys_parser(commands, ROLES)
    ADMIN.add_publishers_parser(commands, list(INGESTS))
    return p


COMMANDS = {
    "rebalance": cmd_rebalance,
    "tick": cmd_tick,
    "keys": ADMIN.keys,
    "publishers": ADMIN.publishers,
    "audit": ADMIN.audit,
}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    ADMIN.main(args, serve_main, COMMANDS, Settings)


if __name__ == "__main__":
    main()
