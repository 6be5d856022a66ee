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

from redis.exceptions import RedisError

from iomflow.shared import auth, db, logs, migrations, publishers, redisconn
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
    """One service's admin context: its package (migrations) and tables (outbox, keys,
    the publishers of HTTP ingestion)."""

    def __init__(
        self,
        name: str,
        package: str,
        tables: Tables,
        ingestion: publishers.IngestTables | None = None,
    ) -> None:
        self.name, self.package, self.tables = name, package, tables
        self.ingest = ingestion

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
        logs.configure_command(self.name, args.command)
        if args.command in logs.SERVICE_COMMANDS:
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
        redis = redisconn.async_client(settings.redis_url)
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
        sub.add_argument(
            "--person",
            default=None,
            help="add: the person the key belongs to (a methodist's id): what the key does is "
            "done by them",
        )

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
                    return await auth.issue(session, table, args.name, args.role, args.person)
                if args.action == "revoke":
                    return await auth.revoke(session, table, args.name)
                return await auth.list_keys(session, table)

        result = self.run(settings, work)
        if args.action == "add":
            key_id, key = result
            whose = f", лично {args.person}" if args.person else ""
            print(
                f"Ключ {key_id} для «{args.name}» ({', '.join(args.role)}{whose}); сохраните, "
                "он не показывается повторно:",
                file=sys.stderr,
            )
            print(key)
        elif args.action == "revoke":
            print("отозван" if result else "ключ не найден или уже отозван")
            return 0 if result else 1
        else:
            for row in result:
                state = "отозван" if row["revoked_at"] else "действует"
                person = row["person_id"] or "—"
                print(
                    f"{row['key_id']}  {row['name']:<24} {','.join(row['roles']):<30} "
                    f"{person:<16} {state}"
                )
        return 0

    # --- publishers of HTTP ingestion --------------------------------------------------------

    @staticmethod
    def add_publishers_parser(commands: Any, types: Sequence[str]) -> None:
        """``publishers`` (keys of outside systems posting events) and ``audit``."""
        sub = commands.add_parser(
            "publishers", help="publishers posting events over HTTP: keys and event types"
        )
        sub.add_argument("action", choices=["add", "list", "revoke", "rotate", "set"])
        sub.add_argument("publisher", nargs="?", help="the publisher's id (its events' source)")
        sub.add_argument(
            "--types", help=f"comma-separated event types it may send, of: {', '.join(types)}"
        )
        sub.add_argument("--rate", type=int, help="events per minute (default: the service's)")
        sub.add_argument("--default-rate", action="store_true", help="set: back to the default")
        sub.add_argument("--name", help="add: a title for people (default: the id)")
        sub.set_defaults(ingest_types=list(types))

        sub = commands.add_parser("audit", help="the HTTP ingestion audit, newest first")
        sub.add_argument("--outcome", choices=[o.value for o in publishers.Outcome])
        sub.add_argument("--publisher")
        sub.add_argument("--limit", type=int, default=50)

    def publishers(self, args: argparse.Namespace, settings: BaseServiceSettings) -> int:
        """``publishers add ID --types T1,T2 [--rate N] | list | revoke ID | rotate ID |
        set ID [--types …] [--rate N | --default-rate]``."""
        tables = self.ingest
        assert tables is not None, "this service ingests no events over HTTP"
        if args.action != "list" and not args.publisher:
            raise SystemExit("укажите код издателя")
        if args.action == "add" and not args.types:
            raise SystemExit("укажите типы событий: --types t1,t2")
        types = args.types.split(",") if args.types else None
        allowed = args.ingest_types

        async def work(sessions: Any, outbox: Outbox) -> Any:
            async with sessions() as session, session.begin():
                if args.action == "add":
                    assert types is not None
                    return await publishers.add_publisher(
                        session,
                        tables,
                        args.publisher,
                        types,
                        name=args.name,
                        rate_per_minute=args.rate,
                        allowed=allowed,
                    )
                if args.action == "rotate":
                    return await publishers.rotate_key(session, tables, args.publisher)
                if args.action == "revoke":
                    return await publishers.revoke_publisher(session, tables, args.publisher)
                if args.action == "set":
                    return await publishers.change_publisher(
                        session,
                        tables,
                        args.publisher,
                        types=types,
                        rate_per_minute=args.rate,
                        default_rate=args.default_rate,
                        allowed=allowed,
                    )
                return await publishers.list_publishers(session, tables)

        try:
            result = self.run(settings, work)
        except ValueError as exc:
            raise SystemExit(f"Ошибка: {exc}") from exc
        if args.action in ("add", "rotate"):
            if result is None:
                print(
                    f"издатель «{args.publisher}» уже есть"
                    if args.action == "add"
                    else "издатель не найден или отозван",
                    file=sys.stderr,
                )
                return 1
            print(
                f"Ключ издателя «{args.publisher}»; сохраните, он не показывается повторно"
                + (" (прежний ключ больше не действует)" if args.action == "rotate" else "")
                + ":",
                file=sys.stderr,
            )
            print(result)
        elif args.action in ("revoke", "set"):
            done = "отозван" if args.action == "revoke" else "изменён"
            print(done if result else "издатель не найден или уже отозван")
            return 0 if result else 1
        else:
            default = settings.ingest_rate_per_minute
            for row in result:
                state = "отозван" if row["revoked_at"] else "действует"
                rate = row["rate_per_minute"] or f"{default} (по умолчанию)"
                print(
                    f"{row['publisher_id']:<24} {','.join(row['event_types']):<50} "
                    f"{rate}/мин  {state}"
                )
        return 0

    def audit(self, args: argparse.Namespace, settings: BaseServiceSettings) -> int:
        """``audit [--outcome O] [--publisher ID] [--limit N]``: newest first."""
        tables = self.ingest
        assert tables is not None, "this service ingests no events over HTTP"

        async def work(sessions: Any, outbox: Outbox) -> list[dict[str, Any]]:
            async with sessions() as session:
                return await publishers.list_audit(
                    session,
                    tables,
                    outcome=args.outcome,
                    publisher_id=args.publisher,
                    limit=args.limit,
                )

        for row in self.run(settings, work):
            print(
                f"{row['at']:%Y-%m-%d %H:%M:%S}  {row['outcome']:<15} {row['status']}  "
                f"{row['publisher_id'] or '-':<20} {row['remote_addr'] or '-':<15} "
                f"{row['event_type'] or '-':<30} {row['event_id'] or '-'}  {row['detail'] or ''}"
            )
        return 0
