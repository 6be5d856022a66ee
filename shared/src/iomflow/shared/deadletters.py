"""The dead-letter streams (``{<stream>}.dlq``): what is in them, and putting a letter back
or dropping it. The core of ``iomflow dlq`` and of the operator's console of monitoring.

A dead letter is the original entry's fields plus ``dlq_reason``, ``dlq_error``,
``dlq_stream``, ``dlq_group``, ``dlq_entry_id``, ``dlq_deliveries`` and ``dlq_at``
(``iomflow.shared.streams.dead_letter_fields``).

``replay_one`` appends the original fields (without ``dlq_*``, with the same ``event_id``
and ``traceparent``) to the original stream and deletes the dead letter in one
``MULTI``/``EXEC`` under ``WATCH`` of the dead-letter stream: a crash leaves either the dead
letter or the replayed entry, never both and never neither, and two operators replaying the
same letter at once cannot both append it. The stream is read by every consumer group on
it, so the replayed entry reaches all of them; a group that had already applied the event
finds its ``event_id`` in its inbox and acknowledges it as a duplicate, with no effect.
Dead letters of one event written by several groups (selected together) are replayed as
one entry.

Blocking (``redis.Redis``): the CLI calls it as it is, a service in a thread
(``asyncio.to_thread``) with a client of its own; one replay is a handful of round trips.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError, WatchError

from iomflow.shared.contracts import Streams
from iomflow.shared.ops import ALL_STREAMS
from iomflow.shared.wire import as_text, text_fields

PAGE = 500
SCAN_LIMIT = 10_000
"""A listing counts reasons over at most this many letters of one DLQ."""
WATCH_RETRIES = 50
DLQ_PREFIX = "dlq_"


class UnknownStream(ValueError):
    """A stream name that names no stream of the suite (the message says which, in Russian)."""


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


def resolve(r: redis.Redis, name: str | None) -> list[str]:
    """The original streams meant by ``name``: all of the suite's when None; a stream or
    its DLQ by full name; or an unambiguous part of a suite stream's name
    (``results`` -> ``iomflow.diagnostics.results.inbound``). ``UnknownStream`` else."""
    if not name:
        return list(ALL_STREAMS)
    base = Streams.of_dlq(name)
    if base in ALL_STREAMS:
        return [base]
    matches = [s for s in ALL_STREAMS if base in s]
    if len(matches) == 1:
        return matches
    if len(matches) > 1:
        raise UnknownStream(f"Поток «{name}» неоднозначен: подходят {', '.join(matches)}.")
    if r.exists(Streams.dlq(base)) or r.exists(base):
        return [base]  # a stream outside the suite's list, named in full
    raise UnknownStream(
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
    """The newest letter's id now: a run over every letter stops there, so letters
    dead-lettered again while it runs (their cause not fixed yet) are not replayed round
    and round."""
    newest = r.xrevrange(dlq, count=1)
    return as_text(newest[0][0]) if newest else None


def matches(letter: Letter, reason: str | None, group: str | None) -> bool:
    f = letter.fields
    return (reason is None or f.get("dlq_reason") == reason) and (
        group is None or f.get("dlq_group") == group
    )


def valid_id(value: str) -> bool:
    """Whether ``value`` has the form of a stream entry's id (``1700000000000-0``)."""
    ms, _, seq = value.partition("-")
    return ms.isdigit() and seq.isdigit()


def find(r: redis.Redis, streams: Sequence[str], letter_id: str) -> list[Letter]:
    """The letter ``letter_id`` in the DLQs of ``streams`` (one per DLQ that has it)."""
    found = []
    for stream in streams:
        reply = r.xrange(Streams.dlq(stream), min=letter_id, max=letter_id)
        for entry_id, raw in _entries(reply):
            found.append(Letter(Streams.dlq(stream), entry_id, raw))
    return found


def same_event(r: redis.Redis, letter: Letter) -> list[Letter]:
    """``letter`` and the other letters of its event in its DLQ (other consumer groups
    dead-lettered it too; among the first ``SCAN_LIMIT``), ``letter`` first: replayed
    together, as one entry, since the stream gives it to every group anyway."""
    if not letter.event_id:
        return [letter]
    others = [
        x
        for x in letters(r, letter.dlq, count=SCAN_LIMIT)
        if x.event_id == letter.event_id and x.id != letter.id
    ]
    return [letter, *others]


def listing(
    r: redis.Redis,
    streams: Iterable[str],
    *,
    reason: str | None = None,
    group: str | None = None,
    limit: int = 50,
    describe: Callable[[Letter], dict[str, Any]] = Letter.summary,
) -> list[dict[str, Any]]:
    """Per stream: its DLQ, how many letters it holds, how many match the filters and
    their reasons (over the first ``SCAN_LIMIT``), and the first ``limit`` matching
    letters as ``describe`` tells them (their summaries; 0: all scanned)."""
    report = []
    for stream in streams:
        dlq = Streams.dlq(stream)
        count = int(r.xlen(dlq))
        reasons: dict[str, int] = {}
        shown: list[dict[str, Any]] = []
        filtered = 0
        for letter in letters(r, dlq, count=SCAN_LIMIT) if count else ():
            if not matches(letter, reason, group):
                continue
            filtered += 1
            why = letter.fields.get("dlq_reason", "")
            reasons[why] = reasons.get(why, 0) + 1
            if limit == 0 or len(shown) < limit:
                shown.append(describe(letter))
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
    return report


def groups_of(r: redis.Redis, stream: str) -> list[str]:
    """The consumer groups reading ``stream`` (none when it does not exist)."""
    try:
        return [as_text(g["name"]) for g in r.xinfo_groups(stream)]
    except RedisError:
        return []


# --- changing --------------------------------------------------------------------------


class StillChanging(RuntimeError):
    """The DLQ changed under every one of ``WATCH_RETRIES`` attempts."""


def replay_one(r: redis.Redis, batch: Sequence[Letter]) -> str | None:
    """Append ``batch[0]``'s original entry to its stream and delete every letter of the
    batch (dead letters of one event), atomically: the new entry's id. None when a letter
    is gone meanwhile (replayed or dropped by someone else)."""
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
    raise StillChanging(f"DLQ {first.dlq} всё время меняется: запись {first.id} не переиграна")


def batches(chosen: Iterable[Letter]) -> list[list[Letter]]:
    """Letters of the same event (several groups dead-lettered it) go back as one entry."""
    out: dict[tuple[str, str], list[Letter]] = {}
    for letter in chosen:
        key = (letter.dlq, letter.event_id or f"letter:{letter.id}")
        out.setdefault(key, []).append(letter)
    return list(out.values())


def drop(r: redis.Redis, chosen: Sequence[Letter]) -> Iterator[tuple[Letter, bool]]:
    """Delete ``chosen`` for good, ``PAGE`` per round trip, lazily: each letter and whether
    it was still there (False: someone else replayed or dropped it meanwhile)."""
    for start in range(0, len(chosen), PAGE):
        chunk = chosen[start : start + PAGE]
        pipe = r.pipeline(transaction=False)
        for letter in chunk:
            pipe.xdel(letter.dlq, letter.id)
        yield from zip(chunk, (bool(int(n)) for n in pipe.execute()), strict=True)
