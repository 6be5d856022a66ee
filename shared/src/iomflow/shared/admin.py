"""Plumbing of the services' admin commands (``iomflow-<service> <command>``).

Admin commands work on the service's database directly (``IOMFLOW_DATABASE_URL``) and
publish what they staged to Redis (``IOMFLOW_REDIS_URL``) when they finish; if Redis
cannot be reached, the events wait in the outbox for the running service to publish them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from iomflow.shared import auth, db, migrations
from iomflow.shared.outbox import Outbox, OutboxRelay
from iomflow.shared.service import Tables
from iomflow.shared.settings import BaseServiceSettings
from iomflow.shared.telemetry import create_tracer_provider

T = TypeVar("T")
Work = Callable[[Any, Outbox], Awaitable[T]]


class Printer:
    """Progress on stderr: one updating line per phase, at most a few times a second."""

    def __init__(self) -> None:
        self.phase = ""
        self.shown = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase != self.phase:
            if self.phase:
                sys.stderr.write("\n")
            self.phase, self.shown = phase, 0.0
        if now - self.shown < 0.2 and done < total:
            return
        self.shown = now
        share = f" ({100 * done // total} %)" if total else ""
        sys.stderr.write(f"\r{phase}: {done}/{total}{share}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.phase:
            sys.stderr.write("\n")


class Admin:
    """One service's admin context: its package (migrations) and tables (outbox, keys)."""

    def __init__(self, name: str, package: str, tables: Tables) -> None:
        self.name, self.package, self.tables = name, package, tables

    def parser(self, description: str | None) -> tuple[argparse.ArgumentParser, Any]:
        """``iomflow-<name>`` with ``serve`` and ``migrate``; add the service's commands."""
        p = argparse.ArgumentParser(
            prog=f"iomflow-{self.name}",
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        commands = p.add_subparsers(dest="command")
        commands.add_parser("serve", help="run the service")
        commands.add_parser("migrate", help="apply the migrations")
        return p, commands

    def main(
        self,
        args: argparse.Namespace,
        serve_main: Callable[[list[str] | None], None],
        commands: dict[str, Callable[[argparse.Namespace, Any], int]],
        settings: Callable[[], BaseServiceSettings],
    ) -> None:
        """Serve or migrate, or run an admin command and exit with its status."""
        if args.command in (None, "serve", "migrate"):
            serve_main([args.command or "serve"])
            return
        sys.exit(commands[args.command](args, settings()))

    def run(self, settings: BaseServiceSettings, work: Work[T]) -> T:
        return asyncio.run(self.with_db(settings, work))

    async def with_db(self, settings: BaseServiceSettings, work: Work[T]) -> T:
        url = settings.resolved_database_url()
        if settings.migrate_on_start:
            await asyncio.to_thread(migrations.upgrade, self.package, url)
        engine = db.create_engine(url)
        sessions = db.sessionmaker(engine)
        outbox = Outbox(self.tables.outbox)
        try:
            result = await work(sessions, outbox)
            await self.publish(settings, sessions, outbox)
            return result
        finally:
            await engine.dispose()

    async def publish(self, settings: BaseServiceSettings, sessions: Any, outbox: Outbox) -> None:
        provider = create_tracer_provider(f"{self.name}-cli", settings.traces_dir)
        redis = Redis.from_url(settings.redis_url)
        relay = OutboxRelay(outbox, sessions, redis, provider.get_tracer(self.package))
        try:
            while await relay.publish_pending():
                pass
            if relay.published:
                print(f"Опубликовано событий: {relay.published}", file=sys.stderr)
        except (RedisError, OSError) as exc:
            print(
                f"Redis недоступен ({exc}): события ждут в outbox, сервис опубликует их сам.",
                file=sys.stderr,
            )
        finally:
            await redis.aclose()
            provider.shutdown()

    # --- API keys ------------------------------------------------------------------------

    @staticmethod
    def add_keys_parser(commands: Any, roles: Sequence[str]) -> None:
        sub = commands.add_parser("keys", help="API keys and their roles")
        sub.add_argument("action", choices=["add", "list", "revoke"])
        sub.add_argument("name", nargs="?", help="add: the holder's name; revoke: the key id")
        sub.add_argument("--role", action="append", choices=list(roles), default=[])

    def keys(self, args: argparse.Namespace, settings: BaseServiceSettings) -> int:
        """``keys add NAME --role R… | list | revoke KEY_ID``."""
        table = self.tables.api_keys
        assert table is not None, "this service keeps no API keys"
        if args.action != "list" and not args.name:
            raise SystemExit("укажите имя (add) или код ключа (revoke)")
        if args.action == "add" and not args.role:
            raise SystemExit("укажите хотя бы одну роль: --role …")

        async def work(sessions: Any, outbox: Outbox) -> Any:
            async with sessions() as session, session.begin():
                if args.action == "add":
                    return await auth.issue(session, table, args.name, args.role)
                if args.action == "revoke":
                    return await auth.revoke(session, table, args.name)
                return await auth.list_keys(session, table)

        result = self.run(settings, work)
        if args.action == "add":
            key_id, key = result
            print(
                f"Ключ {key_id} для «{args.name}» ({', '.join(args.role)}); сохраните, он не"
                " показывается повторно:",
                file=sys.stderr,
            )
            print(key)
        elif args.action == "revoke":
            print("отозван" if result else "ключ не найден или уже отозван")
            return 0 if result else 1
        else:
            for row in result:
                state = "отозван" if row["revoked_at"] else "действует"
                print(f"{row['key_id']}  {row['name']:<24} {','.join(row['roles']):<30} {state}")
        return 0
