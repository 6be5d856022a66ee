"""``iomflow-monitoring`` (also ``iomflow monitoring``): the service and its admin commands.

serve | migrate     the service (settings from IOMFLOW_* variables)
rebuild             replay the streams from the start into fresh projections, then
                    compare every KPI value (region and municipalities) with before
keys add NAME --role R… [--person ID] | list | revoke KEY_ID
                    API keys: operators (tracked measures, the console), auditors
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from iomflow.monitoring import rebuild, repository, views
from iomflow.monitoring.app import create_app
from iomflow.monitoring.context import Context, catalogue
from iomflow.monitoring.repository import tables
from iomflow.monitoring.settings import Settings
from iomflow.shared import redisconn
from iomflow.shared.admin import Admin, Printer
from iomflow.shared.entry import service_main
from iomflow.shared.outbox import Outbox

serve_main = service_main("monitoring", "iomflow.monitoring", Settings, create_app)
ADMIN = Admin("monitoring", "iomflow.monitoring", tables)
ROLES = ("operator", "auditor")


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    printer = Printer()
    kpis = catalogue()
    today = datetime.now(UTC).date()

    context = Context.of(settings, kpis, consumer="rebuild")

    async def values(sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            facts = await repository.load(session)
            names = await repository.municipality_names(session)
        return views.region(kpis, facts, names, today)

    async def work(sessions: Any, outbox: Outbox) -> tuple[rebuild.Replayed, list[str]]:
        before = await values(sessions)
        redis = redisconn.async_client(settings.redis_url)
        try:
            done = await rebuild.replay(
                redis,
                sessions,
                outbox,
                context,
                progress=lambda s, n, t: printer(f"повтор {s}", n, t),
            )
        finally:
            await redis.aclose()
        return done, rebuild.differences(before, await values(sessions))

    done, changed = ADMIN.run(settings, work)
    printer.close()
    applied = ", ".join(f"{stream}: {n}" for stream, n in done.applied.items())
    print(f"Применено событий: {applied}; пропущено {done.skipped}, некорректных {done.invalid}")
    if changed:
        print(f"Значения изменились ({len(changed)}):")
        for line in changed[:50]:
            print(f"  {line}")
        return 1
    print("Значения показателей после пересборки совпадают с прежними.")
    return 0


def parser() -> argparse.ArgumentParser:
    p, commands = ADMIN.parser(__doc__)
    commands.add_parser("rebuild", help="replay the streams into fresh projections, compare")
    ADMIN.add_keys_parser(commands, ROLES)
    return p


COMMANDS = {"rebuild": cmd_rebuild, "keys": ADMIN.keys}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    ADMIN.main(args, serve_main, COMMANDS, Settings)


if __name__ == "__main__":
    main()
