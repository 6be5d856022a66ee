"""``iomflow dlq``: the dead-letter streams (``{<stream>}.dlq``): list, show, replay, drop,
and ``migrate`` (once, after the upgrade that gave them their hash tag: the letters of the
old ``<stream>.dlq`` names moved over).

A dead letter is the original entry's fields plus ``dlq_reason``, ``dlq_error``,
``dlq_stream``, ``dlq_group``, ``dlq_entry_id``, ``dlq_deliveries`` and ``dlq_at``
(``iomflow.shared.streams.dead_letter_fields``).

``replay`` appends the original fields (without ``dlq_*``, with the same ``event_id`` and
``traceparent``) to the original stream and deletes the dead letter in one ``MULTI``/``EXEC``
under ``WATCH`` of the dead-letter stream: a crash leaves either the dead letter or the
replayed entry, never both and never neither, and two operators replaying the same letter
at once cannot both append it. The stream is read by every consumer group on it, so the
replayed entry reaches all of them; a group that had already applied the event finds its
``event_id`` in its inbox and acknowledges it as a duplicate, with no effect. Dead letters
of one event written by several groups (selected together) are replayed as one entry.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError, WatchError

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
from iomflow.shared import redisconn
from iomflow.shared.contracts import Streams
from iomflow.shared.ops import ALL_STREAMS
from iomflow.shared.wire import as_text, text_fields

PAGE = 500
SCAN_LIMIT = 10_000
"""``list`` counts reasons over at most this many letters of one DLQ."""
SHOWN = 30
"""``replay``/``drop`` name each letter up to this many; beyond, a progress line."""
WATCH_RETRIES = 50
DLQ_PREFIX = "dlq_"


@dataclass(frozen=True)
class Letter:
    """One dead letter: where it is, its id there and its fields (raw, as stored)."""

    dlq: str
    id: str
    raw: dict[bytes, bytes]

    @functools.cached_property  # writes the instance's __dict__: fine on a frozen dataclass
    def fields(self) -> dict[str, str]:
        """The fields as text, decoded once."""
        return text_fields(self.raw)  # type: ignore[arg-type]

    @property
    def stream(self) -> str:
        return Streams.of_dlq(self.dlq)

    @property
    def original(self) -> dict[bytes, bytes]:
        """The entry as it was first written (and as it is replayed)."""
        return {k: v for k, v in self.raw.items() if not as_text(k).startswith(DLQ_PREFIX)}

    @property
    def event_id(self) -> str:
        return self.fields.get("event_id", "")

    def summary(self) -> dict[str, Any]:
        f = self.fields
        return {
            "id": self.id,
            "dlq": self.dlq,
            "stream": f.get("dlq_stream", self.stream),
            "type": f.get("type", ""),
            "event_id": f.get("event_id", ""),
            "subject": f.get("subject", ""),
            "reason": f.get("dlq_reason", ""),
            "group": f.get("dlq_group", ""),
            "deliveries": int(f["dlq_deliveries"]) if f.get("dlq_deliveries", "").isdigit() else 0,
            "at": f.get("dlq_at", ""),
            "entry_id": f.get("dlq_entry_id", ""),
        }

    def full(self) -> dict[str, Any]:
        f = self.fields
        data: Any = f.get("data")
        if data is not None:
            try:
                data = json.loads(data)
            except json.JSONDecodeError:
                pass
        error: Any = f.get("dlq_error", "")
        if error.startswith("{"):
            try:
                error = json.loads(error)
            except json.JSONDecodeError:
                pass
        envelope = {k: v for k, v in f.items() if not k.startswith(DLQ_PREFIX) and k != "data"}
        return {**self.summary(), "error": error, "envelope": envelope, "data": data}


# --- reading ---------------------------------------------------------------------------


def connect(url: str) -> redis.Redis:
    client = redisconn.sync_client(url, socket_connect_timeout=5, socket_timeout=30)
    client.ping()
    return client


def resolve(r: redis.Redis, name: str | None) -> list[str]:
    """The original streams meant by ``name``: all of the suite's when None; a stream or
    its DLQ by full name; or an unambiguous part of a suite stream's name
    (``results`` -> ``iomflow.diagnostics.results.inbound``)."""
    if not name:
        return list(ALL_STREAMS)
    base = Streams.of_dlq(name)
    if base in ALL_STREAMS:
        return [base]
    matches = [s for s in ALL_STREAMS if base in s]
    if len(matches) == 1:
        return matches
    if len(matches) > 1:
        raise UsageError(f"Поток «{name}» неоднозначен: подходят {', '.join(matches)}.")
    if r.exists(Streams.dlq(base)) or r.exists(base):
        return [base]  # a stream outside the suite's list, named in full
    raise UsageError(
        f"Поток «{name}» не найден. Потоки iomflow: {', '.join(ALL_STREAMS)} "
        "(можно указать часть имени, например results)."
    )


def letters(
    r: redis.Redis, dlq: str, *, up_to: str = "+", count: int | None = None
) -> Iterator[Letter]:
    """The letters of ``dlq`` oldest first, up to id ``up_to``, page by page."""
    start = "-"
    seen = 0
    while True:
        page = _entries(r.xrange(dlq, min=start, max=up_to, count=PAGE))
        for entry_id, raw in page:
            yield Letter(dlq, entry_id, raw)
            seen += 1
            if count is not None and seen >= count:
                return
        if len(page) < PAGE:
            return
        start = f"({page[-1][0]}"


def _entries(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """XRANGE's reply (typed loosely by redis-py), skipping entries deleted meanwhile."""
    return [(as_text(i), dict(raw)) for i, raw in reply or [] if raw is not None]


def last_id(r: redis.Redis, dlq: str) -> str | None:
    """The newest letter's id now: a ``--all`` run stops there, so letters dead-lettered
    again while it runs (their cause not fixed yet) are not replayed round and round."""
    newest = r.xrevrange(dlq, count=1)
    return as_text(newest[0][0]) if newest else None


def matches(letter: Letter, reason: str | None, group: str | None) -> bool:
    f = letter.fields
    return (reason is None or f.get("dlq_reason") == reason) and (
        group is None or f.get("dlq_group") == group
    )


def find(r: redis.Redis, streams: Sequence[str], letter_id: str) -> list[Letter]:
    found = []
    for stream in streams:
        reply = r.xrange(Streams.dlq(stream), min=letter_id, max=letter_id)
        for entry_id, raw in _entries(reply):
            found.append(Letter(Streams.dlq(stream), entry_id, raw))
    return found


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
        if not _valid_id(letter_id):
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


def _valid_id(value: str) -> bool:
    ms, _, seq = value.partition("-")
    return ms.isdigit() and seq.isdigit()


# --- commands --------------------------------------------------------------------------


def cmd_list(r: redis.Redis, args: argparse.Namespace) -> int:
    streams = resolve(r, args.stream)
    report = []
    for stream in streams:
        dlq = Streams.dlq(stream)
        count = int(r.xlen(dlq))
        reasons: dict[str, int] = {}
        shown: list[dict[str, Any]] = []
        filtered = 0
        for letter in letters(r, dlq, count=SCAN_LIMIT) if count else ():
            if not matches(letter, args.reason, args.group):
                continue
            filtered += 1
            summary = letter.summary()
            reasons[summary["reason"]] = reasons.get(summary["reason"], 0) + 1
            if args.limit == 0 or len(shown) < args.limit:
                shown.append(summary)
        report.append(
            {
                "stream": stream,
                "dlq": dlq,
                "count": count,
                "matching": filtered,
                "scanned": min(count, SCAN_LIMIT),
                "reasons": reasons,
                "entries": shown,
            }
        )
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
    if not _valid_id(args.id):
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


def replay_one(r: redis.Redis, batch: Sequence[Letter]) -> str | None:
    """Append ``batch[0]``'s original entry to its stream and delete every letter of the
    batch (dead letters of one event), atomically. None when a letter is gone meanwhile."""
    first = batch[0]
    ids = [x.id for x in batch]
    with r.pipeline(transaction=True) as pipe:
        for _ in range(WATCH_RETRIES):
            try:
                pipe.watch(first.dlq)
                for letter_id in ids:
                    if not pipe.xrange(first.dlq, min=letter_id, max=letter_id):
                        pipe.unwatch()
                        return None
                pipe.multi()
                pipe.xadd(first.stream, first.original)  # type: ignore[arg-type]
                pipe.xdel(first.dlq, *ids)
                added, _deleted = pipe.execute()
                return as_text(added)
            except WatchError:  # the DLQ changed between the check and EXEC: look again
                time.sleep(0.01)
                continue
    raise RuntimeError(f"DLQ {first.dlq} всё время меняется: запись {first.id} не переиграна")


def _batches(chosen: Iterable[Letter]) -> list[list[Letter]]:
    """Letters of the same event (several groups dead-lettered it) go back as one entry."""
    out: dict[tuple[str, str], list[Letter]] = {}
    for letter in chosen:
        key = (letter.dlq, letter.event_id or f"letter:{letter.id}")
        out.setdefault(key, []).append(letter)
    return list(out.values())


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
    batches = _batches(chosen)
    progress = Progress("переиграно", len(chosen))
    replayed, gone, failed = 0, 0, 0
    for batch in batches:
        first = batch[0]
        try:
            new_id = replay_one(r, batch)
        except RuntimeError as exc:
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
        try:
            groups = [as_text(g["name"]) for g in r.xinfo_groups(stream)]
        except RedisError:
            groups = []
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
    for start in range(0, len(chosen), PAGE):
        chunk = chosen[start : start + PAGE]
        pipe = r.pipeline(transaction=False)
        for letter in chunk:
            pipe.xdel(letter.dlq, letter.id)
        counts = pipe.execute()
        for letter, n in zip(chunk, counts, strict=True):
            deleted += int(n)
            progress.step(1, f"Удалено {letter.id} из {letter.dlq}" if n else
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
