"""The command line every service has: ``iomflow-<name> [serve|migrate]``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import TypeVar

from fastapi import FastAPI

from iomflow.shared import logs, migrations
from iomflow.shared.service import serve
from iomflow.shared.settings import BaseServiceSettings

S = TypeVar("S", bound=BaseServiceSettings)


def service_main(
    name: str,
    package: str,
    settings_cls: type[S],
    create_app: Callable[[S], FastAPI],
) -> Callable[[list[str] | None], None]:
    def main(argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(
            prog=f"iomflow-{name}", description=f"iomflow {name} service"
        )
        parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
        args = parser.parse_args(argv)
        logs.configure_command(name, args.command)
        settings = settings_cls()
        if args.command == "migrate":
            url = settings.resolved_database_url()
            migrations.upgrade(package, url)
            logging.getLogger(name).info("migrated %s", url.split("@")[-1])
            return
        serve(create_app(settings), settings)

    return main
