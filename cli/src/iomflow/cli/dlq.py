"""``iomflow dlq``: the dead-letter streams (``{<stream>}.dlq``): list, show, replay, drop,
and ``migrate`` (once, after the upgrade that gave them their hash tag: the letters of the
old ``<stream>.dlq`` names moved over).

What a dead letter is, and how a replay is atomic and reaches every consumer group once:
``iomflow.shared.deadletters``, the core this command shares with the operator's console of
monitoring (``/console``). Dead letters of one event written by several groups (selected
together) are replayed as one entry.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

import redis
from redis.exceptions import RedisError

from iomflow.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    UsageError,
    add_redis_option,
    redis_unreachable,
    redis_url,
    table,
)
from iomflow.shared import deadletters, redisconn
from iomflow.shared.contracts import Streams
from iomflow.shared.deadletters import (
    SCAN_LIMIT,
    Letter,
    StillChanging,
    UnknownStream,
    batches,
    drop,
    find,
    groups_of,
    last_id,
    letters,
    listing,
    matches,
    replay_one,
    valid_id,
)

__all__ = ["Letter", "main", "parser", "replay_one"]

SHOWN = 30
"""``replay``/``drop`` name each letter up to this many; beyond, a progress line."""


def connect(url: str) -> redis.Redis:
    client = redisconn.sync_client(url, socket_connect_timeout=5, socket_timeout=30)
    client.ping()
    return client


def resolve(r: redis.Redis, name: str | None) -> list[str]:
    """``iomflow.shared.deadletters.resolve``; a name it does not know is a command-line
    mistake (exit code 2)."""
    try:
        return deadletters.resolve(r, name)
    except UnknownStream as exc:
        raise UsageError(str(exc)) from None


def select(
    r: redis.Redis, args: argparse.Namespace, say: Callable[[str], None]
) -> tuple[list[Letter], int]:
    """The letters named by ids or by ``--all`` with the filters; and how many ids were not
    found (each said)."""
    streams = resolve(r, args.stream)
    if args.all:
        chosen = []
        for stream in streams:
            dlq = Streams.dlq(stream)
            up_to = last_id(r, dlq)
            if up_to is not None:
                chosen += [
                    x for x in letters(r, dlq, up_to=up_to) if matches(x, args.reason, args.group)
                ]
        return chosen, 0
    chosen, missing = [], 0
    for letter_id in dict.fromkeys(args.ids):
        if not valid_id(letter_id):
            say(f"«{letter_id}» — не идентификатор записи потока (ожидается вид 1700000000000-0).")
            missing += 1
            continue
        found = find(r, streams, letter_id)
        if not found:
            where = f"в {Streams.dlq(streams[0])}" if len(streams) == 1 else "ни в одной DLQ"
            say(f"Запись {letter_id} не найдена {where} (уже переиграна или удалена?).")
            missing += 1
        elif len(found) > 1:
            say(
                f"Запись {letter_id} есть в нескольких DLQ ({', '.join(x.dlq for x in found)}): "
                "укажите --stream."
            )
            missing += 1
        else:
            chosen.append(found[0])
    return chosen, missing


# --- commands --------------------------------------------------------------------------


def cmd_list(r: redis.Redis, args: argparse.Namespace) -> int:
    streams = resolve(r, args.stream)
    report = listing(r, streams, reason=args.reason, group=args.group, limit=args.limit)
    if args.json:
        print(json.dumps({"dlqs": report}, ensure_ascii=False, indent=2))
        return EXIT_OK
    filters = args.reason is not None or args.group is not None
    for item in report:
        if not item["count"] and args.stream is None:
            continue
        head = f"{item['dlq']}: {item['count']}"
        if filters:
            head += f", подходят под отбор: {item['matching']}"
        if item["reasons"]:
            by = ", ".join(f"{k or '—'} {v}" for k, v in sorted(item["reasons"].items()))
            scope = f" (по первым {SCAN_LIMIT})" if item["count"] > SCAN_LIMIT else ""
            head += f"; причины{scope}: {by}"
        print(head)
        if item["entries"]:
            rows = [
                [
                    e["id"],
                    e["type"] or "—",
                    e["event_id"] or "—",
                    e["subject"] or "—",
                    e["reason"] or "—",
                    e["group"] or "—",
                    str(e["deliveries"]),
                    e["at"][:19].replace("T", " ") or "—",
                ]
                for e in item["entries"]
            ]
            headers = ["id", "тип", "event_id", "субъект", "причина", "группа", "попыток", "когда"]
            for line in table(headers, rows, right={6}):
                print(f"  {line}")
            rest = item["matching"] - len(item["entries"])
            if rest > 0:
                print(f"  … и ещё {rest} (показать все: --limit 0)")
        print()
    total = sum(int(x["count"]) for x in report)
    if not total:
        print("Очереди недоставленных пусты." if args.stream is None else "Очередь пуста.")
    else:
        print(
            f"Всего недоставленных: {total}. Подробно: iomflow dlq show <id>; "
            "вернуть в поток после исправления причины: iomflow dlq replay <id>… | --all"
        )
    return EXIT_OK


def cmd_show(r: redis.Redis, args: argparse.Namespace) -> int:
    streams = resolve(r, args.stream)
    if not valid_id(args.id):
        print(f"«{args.id}» — не идентификатор записи потока (вид 1700000000000-0).")
        return EXIT_USAGE
    found = find(r, streams, args.id)
    if not found:
        where = f"в {Streams.dlq(streams[0])}" if len(streams) == 1 else "ни в одной DLQ"
        print(f"Запись {args.id} не найдена {where}.", file=sys.stderr)
        return EXIT_PARTIAL
    if args.json:
        documents = [x.full() for x in found]
        print(json.dumps(documents[0] if len(documents) == 1 else documents, ensure_ascii=False,
                         indent=2))  # fmt: skip
        return EXIT_OK
    for letter in found:
        doc = letter.full()
        print(f"Недоставленная запись {doc['id']} в {doc['dlq']}")
        for label, value in (
            ("исходный поток", f"{doc['stream']} (запись {doc['entry_id'] or '—'})"),
            ("группа", doc["group"] or "—"),
            ("причина", doc["reason"] or "—"),
            ("доставок", str(doc["deliveries"])),
            ("когда", doc["at"] or "—"),
        ):
            print(f"  {label + ':':16} {value}")
        print("  ошибка:")
        error = doc["error"]
        text = (
            json.dumps(error, ensure_ascii=False, indent=2)
            if not isinstance(error, str)
            else error or "—"
        )
        print(_indent(text, 4))
        print("Событие:")
        for key, value in doc["envelope"].items():
            print(f"  {key + ':':16} {value}")
        data = doc["data"]
        print("  data:")
        print(
            _indent(
                json.dumps(data, ensure_ascii=False, indent=2)
                if not isinstance(data, str)
                else data,
                4,
            )
        )
        if len(found) > 1:
            print()
    return EXIT_OK


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


class Progress:
    """Per-letter lines for a few letters; a progress line (stderr) for many."""

    def __init__(self, verb: str, total: int) -> None:
        self.verb, self.total, self.done = verb, total, 0
        self.verbose = total <= SHOWN
        self._last = time.monotonic()

    def step(self, n: int, line: str) -> None:
        self.done += n
        if self.verbose:
            print(line)
            return
        now = time.monotonic()
        if now - self._last >= 1 or self.done == self.total:
            self._last = now
            print(f"  {self.verb}: {self.done} из {self.total}", file=sys.stderr, flush=True)


def cmd_replay(r: redis.Redis, args: argparse.Namespace) -> int:
    chosen, missing = select(r, args, print)
    if not chosen:
        if args.all:
            print("Нечего переигрывать: под отбор не подошла ни одна недоставленная запись.")
        return EXIT_PARTIAL if missing else EXIT_OK
    progress = Progress("переиграно", len(chosen))
    replayed, gone, failed = 0, 0, 0
    for batch in batches(chosen):
        first = batch[0]
        try:
            new_id = replay_one(r, batch)
        except StillChanging as exc:
            print(str(exc), file=sys.stderr)
            failed += len(batch)
            continue
        if new_id is None:
            print(f"Запись {first.id} уже убрана из {first.dlq} (переиграна или удалена другим)")
            gone += len(batch)
            continue
        replayed += len(batch)
        also = f" (и {', '.join(x.id for x in batch[1:])} — то же событие)" if batch[1:] else ""
        progress.step(
            len(batch),
            f"Переиграно {first.id}{also} → {first.stream} {new_id} "
            f"({first.fields.get('type', '?')}, event_id {first.event_id or '—'})",
        )
    _replay_notes(r, chosen)
    print(
        f"Переиграно: {replayed}"
        + (f"; не найдено: {missing}" if missing else "")
        + (f"; уже убраны другими: {gone}" if gone else "")
        + (f"; не удалось: {failed}" if failed else "")
        + ". Проверьте: iomflow streams, iomflow dlq list"
    )
    return EXIT_OK if not (missing or failed) else EXIT_PARTIAL


def _replay_notes(r: redis.Redis, chosen: Sequence[Letter]) -> None:
    for stream in dict.fromkeys(x.stream for x in chosen):
        groups = groups_of(r, stream)
        if len(groups) > 1:
            print(
                f"Поток {stream} читают группы {', '.join(groups)}: событие снова получат все; "
                "группы, которые его уже применили, узнают event_id в своём inbox и отбросят "
                "как дубль."
            )
    if any(not x.event_id for x in chosen):
        print("Внимание: у части записей нет event_id — повторы таких записей не распознаются.")
    invalid = sum(1 for x in chosen if x.fields.get("dlq_reason") == "invalid")
    if invalid:
        print(
            f"Внимание: не прошли проверку контракта (invalid) — {invalid} из {len(chosen)}: "
            "если сервис не исправлен, они снова окажутся в DLQ."
        )


def cmd_drop(r: redis.Redis, args: argparse.Namespace) -> int:
    chosen, missing = select(r, args, print)
    if not chosen:
        if args.all:
            print("Нечего удалять: под отбор не подошла ни одна недоставленная запись.")
        return EXIT_PARTIAL if missing else EXIT_OK
    print(f"Будут удалены без возврата в поток ({len(chosen)}):")
    rows = [
        [s["id"], s["dlq"], s["type"] or "—", s["event_id"] or "—", s["reason"] or "—"]
        for s in (x.summary() for x in chosen[:SHOWN])
    ]
    for line in table(["id", "DLQ", "тип", "event_id", "причина"], rows, right=set()):
        print(f"  {line}")
    if len(chosen) > SHOWN:
        print(f"  … и ещё {len(chosen) - SHOWN}")
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "Удаление не подтверждено: добавьте --yes (вопрос задать некому — нет терминала).",
                file=sys.stderr,
            )
            return EXIT_USAGE
        answer = input(f"Удалить записи ({len(chosen)})? [y/N] ").strip().lower()
        if answer not in ("y", "yes", "д", "да"):
            print("Ничего не удалено.")
            return EXIT_OK
    progress = Progress("удалено", len(chosen))
    deleted = 0
    for letter, gone in drop(r, chosen):
        deleted += int(gone)
        progress.step(1, f"Удалено {letter.id} из {letter.dlq}" if gone else
                      f"Запись {letter.id} уже убрана из {letter.dlq}")  # fmt: skip
    print(f"Удалено: {deleted}" + (f"; не найдено: {missing}" if missing else "") + ".")
    return EXIT_OK if not missing else EXIT_PARTIAL


MIGRATE_BATCH = 500


def cmd_migrate(r: redis.Redis, args: argparse.Namespace) -> int:
    """The letters of a dead-letter stream under its old name (``<stream>.dlq``, before the
    hash tag) moved to ``{<stream>}.dlq``: renamed (ids kept) when the new one does not
    exist yet, else appended and deleted from the old one, ``MIGRATE_BATCH`` at a time in
    one MULTI each (so none is lost or copied twice). Once, after the upgrade, on one Redis
    server, as a user that may touch both names (``iomflow-admin``); a Cluster deployment
    never had the old names."""
    moved = 0
    for stream in resolve(r, args.stream):
        old, new = Streams.legacy_dlq(stream), Streams.dlq(stream)
        count = int(r.xlen(old))
        if not count:
            continue
        if not r.renamenx(old, new):
            while batch := r.xrange(old, count=MIGRATE_BATCH):
                pipe = r.pipeline(transaction=True)
                for _, fields in batch:
                    pipe.xadd(new, fields)  # type: ignore[arg-type]
                pipe.xdel(old, *[entry_id for entry_id, _ in batch if entry_id])
                pipe.execute()
            r.delete(old)
        print(f"{old} → {new}: {count}")
        moved += count
    print(f"Перенесено записей: {moved}." if moved else "DLQ со старыми именами нет.")
    return EXIT_OK


# --- the command line ------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iomflow dlq",
        description="Dead-letter streams ({<stream>}.dlq): list, show, replay, drop, "
        "migrate. STREAM is a stream or its DLQ by full name, or an unambiguous part of a "
        "suite stream's name (e.g. results, registry). Exit codes: 0 done, 1 something not "
        "found or not done, 2 wrong command line, 3 Redis does not answer.",
    )
    add_redis_option(p)
    commands = p.add_subparsers(dest="command", required=True)

    sub = commands.add_parser("list", help="each DLQ: count, reasons and its letters")
    sub.add_argument("stream", nargs="?", help="only this stream's DLQ")
    sub.add_argument("--reason", help="only letters with this dlq_reason")
    sub.add_argument("--group", help="only letters dead-lettered by this consumer group")
    sub.add_argument("--limit", type=int, default=50, help="letters shown per DLQ (0: all)")
    sub.add_argument("--json", action="store_true", help="one JSON document")

    sub = commands.add_parser("show", help="one letter: the error, the envelope and the data")
    sub.add_argument("id", help="the letter's id in its DLQ (as dlq list shows it)")
    sub.add_argument("--stream", help="look only in this stream's DLQ")
    sub.add_argument("--json", action="store_true", help="one JSON document")

    for name, text in (
        ("replay", "put letters back on their stream with the same event id, then delete them"),
        ("drop", "delete letters for good (prints them first; --yes to confirm)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("ids", nargs="*", help="letter ids (as dlq list shows them)")
        sub.add_argument("--all", action="store_true", help="every letter (after the filters)")
        sub.add_argument("--stream", help="only this stream's DLQ")
        sub.add_argument("--reason", help="with --all: only letters with this dlq_reason")
        sub.add_argument("--group", help="with --all: only letters of this consumer group")
        if name == "drop":
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sub = commands.add_parser(
        "migrate",
        help="once, after upgrading: move letters from the old <stream>.dlq names to "
        "{<stream>}.dlq (as iomflow-admin)",
    )
    sub.add_argument("stream", nargs="?", help="only this stream's DLQ")
    for sub in commands.choices.values():
        add_redis_option(sub, suppress=True)  # also after the subcommand
    return p


COMMANDS: dict[str, Callable[[redis.Redis, argparse.Namespace], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "replay": cmd_replay,
    "drop": cmd_drop,
    "migrate": cmd_migrate,
}


def check(args: argparse.Namespace) -> None:
    """What argparse cannot say about the command line."""
    if args.command in ("replay", "drop"):
        if bool(args.ids) == bool(args.all):
            raise UsageError("Укажите идентификаторы записей или --all (но не то и другое).")
        if args.ids and (args.reason is not None or args.group is not None):
            raise UsageError("--reason и --group отбирают записи только вместе с --all.")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        check(args)
        url = redis_url(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    try:
        r = connect(url)
    except (RedisError, OSError) as exc:
        return redis_unreachable(url, exc)
    try:
        return COMMANDS[args.command](r, args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except (RedisError, OSError) as exc:
        return redis_unreachable(url, exc)
    finally:
        r.close()
