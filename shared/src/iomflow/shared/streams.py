"""Consuming streams: groups, batches, the inbox, reclaim and the dead-letter stream.

FastStream reads new entries (``XREADGROUP``, in batches) and hands them to
``Consumer.process``. What FastStream does not do, this module does:

- groups are created by us at ``0`` with ``MKSTREAM`` before consuming, so nothing written
  before the first start is skipped; a group lost to a Redis flush or restart (``NOGROUP``)
  is created again and the stopped subscriber restarted, not hot-looped;
- a batch shares one transaction: its entries are recorded in the inbox in one statement
  (duplicates end there), each run of consecutive entries of one type goes to its handler
  as one call (set-based reads and multi-row writes), the events they stage go into the
  outbox in one statement; if a handler fails, the batch is redone entry by entry, each
  inside its own SAVEPOINT: one failing entry rolls back only itself and stays pending,
  the others commit and are acknowledged;
- an event a handler rejects (``deps.reject``) is dead-lettered with its code at once;
- an entry that fails validation goes to ``{<stream>}.dlq`` at once, with the errors;
- entries left pending (a handler failed, or its consumer died) are claimed again with
  ``XAUTOCLAIM`` after ``reclaim_idle_ms``; after ``max_deliveries`` deliveries an entry
  goes to the dead-letter stream with its last error, the group and the count.

Nothing here trims a stream: unread and pending entries must never be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from opentelemetry import propagate, trace
from opentelemetry.metrics import Meter
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iomflow.shared import inbox, logs, wire
from iomflow.shared.contracts import EVENT_TYPES, STREAM_OF, Event, Streams
from iomflow.shared.errors import Rejected
from iomflow.shared.metrics import ConsumerMetrics
from iomflow.shared.outbox import Outbox
from iomflow.shared.unit import Deps, utc_now

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[Event[Any]], Deps[Any]], Awaitable[None]]
"""A handler: (the batch's events of one type, in stream order; the batch's ``Deps``).

It loads what the whole batch needs in set-based reads, decides per event, writes with
multi-row statements and stages its events through ``deps`` — all in the batch's
transaction. An event it can never apply goes to ``deps.reject``; an exception fails the
batch, which is then redone entry by entry (each entry a batch of one, in a savepoint)."""

Entry = tuple[str, dict[str, str]]


class _BatchFailed(Exception):
    """An entry of the fast path failed: redo the batch entry by entry."""


class _Unavailable(Exception):
    """The database went away while an entry was applied in isolation."""


class _RejectedInIsolation(Exception):
    """A handler rejected the one event of an isolated batch: roll back its savepoint."""


@dataclass(frozen=True)
class Subscription:
    """The event types of one stream this service applies, each with its handler."""

    stream: str
    handlers: Mapping[str, Handler]
    description: str = ""
    digests: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    """Types this subscription reads through a digest of their contract (the fields its
    handlers use): events other services publish, whose bulk it does not need."""
    ignores: Collection[str] = ()
    """Types of this stream the service deliberately does not apply (another service's
    business): acknowledged, counted as ``skipped`` and logged with their event ids. Any
    other type of the stream it has no handler for is dead-lettered as ``not_handled``."""


@dataclass
class Outcome:
    """What became of a batch (for tests, logs and benchmarks)."""

    applied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Entries that failed because a dependency (the database) was unavailable: retried,
    and the attempt does not count towards ``max_deliveries``."""
    dead: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, Rejected] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliverySettings:
    batch_size: int = 500
    poll_ms: int = 200
    max_deliveries: int = 5
    reclaim_idle_ms: int = 30_000
    reclaim_interval_s: float = 5.0
    max_entry_bytes: int = 256 * 1024
    """An entry larger than this (its fields together, as HTTP ingestion limits a body) is
    dead-lettered as ``too_large`` at once, its fields cut short in the letter."""


async def ensure_group(redis: Redis, stream: str, group: str) -> bool:
    """Create ``group`` on ``stream`` from the beginning; False if it already existed."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    log.info("created consumer group %s on %s at 0", group, stream)
    return True


def errors_key(stream: str, group: str) -> str:
    """Per entry id: the last error of an entry that failed (in the stream's hash slot: it
    is written in the MULTI that acknowledges and dead-letters, see ``Streams.dlq``)."""
    return f"{{{stream}}}:errors:{group}"


def unavailable_key(stream: str, group: str) -> str:
    """Per entry id: how many of its deliveries failed only because a dependency was down
    (in the stream's hash slot, as ``errors_key``)."""
    return f"{{{stream}}}:unavailable:{group}"


def unavailable(exc: BaseException) -> bool:
    """Whether a failure says a dependency is unavailable (the database refused or dropped
    the connection, a lock timed out, the network failed), not that the entry is bad: such
    an entry must wait for the dependency, never go to the dead-letter stream for it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OperationalError | InterfaceError | DisconnectionError):
            return True
        if isinstance(current, OSError | TimeoutError | RedisConnectionError):
            return True
        if type(current).__module__.startswith("asyncpg") and type(current).__name__ in (
            "ConnectionDoesNotExistError",
            "CannotConnectNowError",
            "ConnectionFailureError",
            "TooManyConnectionsError",
            "AdminShutdownError",
            "CrashShutdownError",
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
OUTAGE_LOG_EVERY_S = 60.0


@dataclass
class _Todo:
    """An entry to apply: its id, fields and event, and its trace (set in the fast path)."""

    entry_id: str
    fields: dict[str, str]
    event: Event[Any]
    handler: Handler
    span: trace.Span | None = None
    carrier: dict[str, str] = field(default_factory=dict)


def _unsampled(traceparent: str) -> bool:
    """A well-formed W3C ``traceparent`` whose sampled flag is off."""
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return False
    try:
        return not int(parts[3], 16) & 1 and int(parts[1], 16) != 0 and int(parts[2], 16) != 0
    except ValueError:
        return False


@contextlib.contextmanager
def _current(span: trace.Span | None) -> Iterator[None]:
    """Make a sampled entry's span current while its run is handled (its SQL and log
    lines join that trace); with none sampled, the batch's own context stays."""
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False):
        yield


def runs(todo: Sequence[_Todo]) -> list[list[_Todo]]:
    """Consecutive entries of one type, in stream order: each run is one handler call, so
    a teacher upserted then removed (or two results of one teacher) apply in their order."""
    out: list[list[_Todo]] = []
    for item in todo:
        if out and out[-1][0].event.type == item.event.type:
            out[-1].append(item)
        else:
            out.append([item])
    return out


class Consumer:
    """One service's consumer of its subscribed streams, as one member of its group."""

    def __init__(
        self,
        *,
        group: str,
        consumer: str,
        redis: Redis,
        sessions: async_sessionmaker[AsyncSession],
        inbox_table: Table,
        outbox: Outbox,
        tracer: trace.Tracer,
        subscriptions: Sequence[Subscription],
        settings: DeliverySettings,
        context: Any = None,
        clock: Callable[[], datetime] = utc_now,
        meter: Meter | None = None,
    ) -> None:
        self.group = group
        self.consumer = consumer
        self.redis = redis
        self.sessions = sessions
        self.inbox_table = inbox_table
        self.outbox = outbox
        self.tracer = tracer
        self.subscriptions = {sub.stream: sub for sub in subscriptions}
        self.settings = settings
        self.context = context
        self.clock = clock
        self.metrics = ConsumerMetrics(meter, group)  # no-op without a meter
        self._subscribers: dict[str, Any] = {}
        self._backoff = 0.0
        self._outage_since: float | None = None
        self._outage_logged = 0.0

    # --- setup -----------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        for stream in self.subscriptions:
            await ensure_group(self.redis, stream, self.group)

    def attach(self, broker: RedisBroker) -> None:
        """Register one FastStream batch subscriber per subscribed stream."""
        for stream, sub in self.subscriptions.items():
            subscriber = broker.subscriber(
                stream=StreamSub(
                    stream,
                    group=self.group,
                    consumer=self.consumer,
                    batch=True,
                    max_records=self.settings.batch_size,
                    polling_interval=self.settings.poll_ms,
                ),
                ack_policy=AckPolicy.MANUAL,  # we acknowledge per entry, after commit
                title=f"{stream}:{self.group}",
                description=sub.description or ", ".join(sorted(sub.handlers)),
            )
            subscriber(self._faststream_handler(stream))
            self._subscribers[stream] = subscriber

    def _faststream_handler(self, stream: str) -> Callable[..., Awaitable[None]]:
        async def handle(body: list[Any], msg: RedisBatchStreamMessage) -> None:
            raw = msg.raw_message
            ids = [wire.as_text(i) for i in raw["message_ids"]]
            entries = [wire.text_fields(fields) for fields in raw["data"]]
            await self.process(stream, list(zip(ids, entries, strict=True)))

        handle.__name__ = f"consume_{stream.replace('.', '_')}"
        return handle

    def deps(
        self, session: AsyncSession, traces: Mapping[str, Mapping[str, str]] | None = None
    ) -> Deps[Any]:
        """What this consumer's handlers are given, over ``session``."""
        return Deps(session, self.outbox, self.context, self.clock, traces)

    # --- processing ------------------------------------------------------------------

    async def process(
        self, stream: str, entries: Sequence[Entry], deliveries: Mapping[str, int] | None = None
    ) -> Outcome:
        """Apply a batch of entries of one stream: one transaction, set-based handlers."""
        sub = self.subscriptions[stream]
        outcome = Outcome()
        self.metrics.batch(stream, len(entries))
        todo: list[_Todo] = []
        skipped: list[str] = []
        limit = self.settings.max_entry_bytes
        for entry_id, fields in entries:
            type_ = fields.get("type", "")
            size = sum(len(k) + len(v) for k, v in fields.items())
            if size > limit:
                outcome.rejected[entry_id] = Rejected(
                    f"the entry has {size} characters, over the limit of {limit}",
                    TOO_LARGE,
                )
                continue
            if type_ in EVENT_TYPES and type_ not in sub.handlers:
                if STREAM_OF[type_] != stream:  # a publisher's mistake: visible, not skipped
                    outcome.rejected[entry_id] = Rejected(
                        f"{type_} is carried by {STREAM_OF[type_]}, not by {stream}",
                        "wrong_stream",
                    )
                elif type_ in sub.ignores:  # another service's business, declared so
                    outcome.skipped.append(entry_id)
                    skipped.append(fields.get("event_id", entry_id))
                else:
                    outcome.rejected[entry_id] = Rejected(
                        f"{self.group} has no handler for {type_} and does not declare it ignored",
                        "not_handled",
                    )
                continue
            try:
                event = wire.decode(fields, sub.digests)
            except wire.BadEntry as bad:
                outcome.dead[entry_id] = bad.describe()
                continue
            todo.append(_Todo(entry_id, fields, event, sub.handlers[event.type]))

        if skipped:
            log.info(
                "%s: skipped %d entries of types %s does not apply: %s",
                stream,
                len(skipped),
                self.group,
                ", ".join(skipped[:20]) + (" …" if len(skipped) > 20 else ""),
                extra={"stream": stream},
            )
        if todo:
            await self._apply(stream, todo, outcome)

        await self._settle(stream, dict(entries), outcome, deliveries or {}, reason="invalid")
        await self._pace(stream, outcome)
        return outcome

    async def _pace(self, stream: str, outcome: Outcome) -> None:
        """While a dependency is down, wait before the next batch (doubling up to
        ``BACKOFF_MAX_S``) instead of reading entry after entry into failure; say so when
        it lasts. The entries stay pending and are retried when it is back."""
        if not outcome.unavailable:
            if self._outage_since is not None and (outcome.applied or outcome.duplicates):
                log.warning(
                    "%s: the database answers again after %.0f s",
                    stream,
                    time.monotonic() - self._outage_since,
                )
                self._outage_since, self._backoff = None, 0.0
            return
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        self._backoff = min(BACKOFF_MAX_S, max(BACKOFF_START_S, self._backoff * 2))
        lasting = now - self._outage_since
        if lasting >= OUTAGE_LOG_EVERY_S and now - self._outage_logged >= OUTAGE_LOG_EVERY_S:
            self._outage_logged = now
            log.error(
                "%s: the database has been unavailable for %.0f s; %d entries wait for it "
                "(nothing is dead-lettered for it): %s",
                stream,
                lasting,
                len(outcome.unavailable),
                next(iter(outcome.unavailable.values())),
            )
        await asyncio.sleep(self._backoff)

    @property
    def outage_s(self) -> float | None:
        """For how long the database has been unavailable to this consumer (None: it is not)."""
        return None if self._outage_since is None else time.monotonic() - self._outage_since

    async def _apply(self, stream: str, todo: list[_Todo], outcome: Outcome) -> None:
        # Fast path: the whole batch in one transaction, one inbox statement, each run of
        # one type one handler call, one outbox statement. If any handler fails, it is all
        # rolled back and redone entry by entry in savepoints, so one bad entry still
        # cannot sink the others.
        try:
            wrote = await self._apply_batch(stream, todo, outcome)
        except _BatchFailed as failed:
            if failed.__cause__ is not None and unavailable(failed.__cause__):
                self._unavailable(stream, todo, outcome, failed.__cause__)
                return
            # Visible: a batch redone entry by entry (a bad entry, or a seat another
            # replica took meanwhile) costs its whole batch a slower pass.
            log.info(
                "batch of %d on %s redone entry by entry: %s",
                len(todo),
                stream,
                logs.safe_error(failed.__cause__) if failed.__cause__ else "",
                extra={"stream": stream},
            )
            wrote = await self._apply_isolated(stream, todo, outcome)
        except Exception as exc:
            if unavailable(exc):
                self._unavailable(stream, todo, outcome, exc)
                return
            log.exception("batch transaction on %s failed", stream)
            for item in todo:
                outcome.failed[item.entry_id] = f"{type(exc).__name__}: {exc}"
            return
        if wrote:
            self.outbox.wake()

    def _unavailable(
        self, stream: str, todo: Sequence[_Todo], outcome: Outcome, exc: BaseException
    ) -> None:
        error = f"{type(exc).__name__}: {logs.safe_error(exc)}"[:2000]
        for item in todo:
            if item.entry_id not in outcome.applied and item.entry_id not in outcome.duplicates:
                outcome.unavailable[item.entry_id] = error
        log.warning(
            "%s: the database is unavailable, %d entries wait: %s",
            stream,
            len(outcome.unavailable),
            error,
            extra={"stream": stream},
        )

    async def _apply_batch(self, stream: str, todo: list[_Todo], outcome: Outcome) -> int:
        """The batch in one transaction; how many outbox rows it wrote."""
        timings: list[tuple[str, float]] = []  # recorded once committed: a failed fast path
        fresh_items: list[_Todo] = []  # is timed again, isolated
        duplicates: list[str] = []
        async with self.sessions() as session, session.begin():
            fresh = await inbox.record_many(
                session, self.inbox_table, self.group, [item.event.event_id for item in todo]
            )
            for item in todo:
                key = str(item.event.event_id)
                if key not in fresh:
                    duplicates.append(item.entry_id)
                    continue
                fresh.discard(key)  # the same event twice in one batch: once
                self._trace(stream, item)
                fresh_items.append(item)
            deps = self.deps(session, {str(i.event.event_id): i.carrier for i in fresh_items})
            deps.spans.update((str(i.event.event_id), i.span) for i in fresh_items if i.span)
            deps.entries.update((str(i.event.event_id), i.fields) for i in fresh_items)
            for run in runs(fresh_items):
                sampled = next((i.span for i in run if i.span is not None), None)
                started = time.perf_counter()
                # A log line of a run of one names its event; of a longer run, the trace of
                # its sampled entry (if any), whose span is current.
                scope = (
                    logs.event_scope(str(run[0].event.event_id))
                    if len(run) == 1
                    else contextlib.nullcontext()
                )
                try:
                    with _current(sampled), scope:
                        await run[0].handler([i.event for i in run], deps)
                except Exception as exc:
                    raise _BatchFailed from exc
                timings.append((run[0].event.type, time.perf_counter() - started))
            rejected = [i for i in fresh_items if deps.is_rejected(i.event)]
            if rejected:  # never applied: a replay of its dead letter must not be a duplicate
                await inbox.forget_many(
                    session, self.inbox_table, self.group, [str(i.event.event_id) for i in rejected]
                )
            wrote = await deps.flush()
        deps.committed()
        for type_, seconds in timings:
            self.metrics.handled(stream, type_, seconds)
        for item in fresh_items:
            refused = deps.rejected.get(str(item.event.event_id))
            if item.span is not None:
                if refused is not None:
                    item.span.set_status(trace.StatusCode.ERROR, str(refused))
                item.span.end()
            if refused is not None:
                outcome.rejected[item.entry_id] = refused
            else:
                outcome.applied.append(item.entry_id)
        outcome.duplicates.extend(duplicates)
        return wrote

    def _trace(self, stream: str, item: _Todo) -> None:
        """The entry's trace: a span of its own only where it is sampled (the producer's
        decision, or the sampler's for an entry that came with none); otherwise its
        context is passed on as it came, so what it causes is not sampled either. Cheap
        for the unsampled bulk: no propagator runs for them."""
        given = item.fields.get("traceparent")
        if given is not None and _unsampled(given):
            item.carrier = {k: item.fields[k] for k in wire.TRACE_FIELDS if k in item.fields}
            return
        parent = propagate.extract(item.fields) if given is not None else None
        if parent is not None and not trace.get_current_span(parent).get_span_context().is_valid:
            # Kept, with a trace of its own from here: a publisher's bad header is not a
            # reason to refuse its event, but it is said.
            log.warning(
                "%s: entry %s (event %s) has a malformed traceparent; it starts a new trace",
                stream,
                item.entry_id,
                item.event.event_id,
                extra={"stream": stream, "entry_id": item.entry_id},
            )
            parent = None
        span = self.tracer.start_span(
            f"{stream} process", context=parent, kind=trace.SpanKind.CONSUMER
        )
        context = span.get_span_context()
        if span.is_recording():
            span.set_attributes(self._attributes(stream, item))
            item.span = span
            propagate.inject(item.carrier, context=trace.set_span_in_context(span))
        else:  # the sampler said no: pass the decision on, with the trace it started
            item.carrier = {"traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-00"}

    async def _apply_isolated(self, stream: str, todo: list[_Todo], outcome: Outcome) -> int:
        try:
            return await self._isolated(stream, todo, outcome)
        except _Unavailable as gone:  # the rest of the batch would fail the same way
            assert gone.__cause__ is not None
            outcome.applied.clear()  # nothing of this transaction committed
            outcome.duplicates.clear()
            outcome.rejected.clear()
            outcome.failed.clear()
            self._unavailable(stream, todo, outcome, gone.__cause__)
            return 0

    async def _isolated(self, stream: str, todo: list[_Todo], outcome: Outcome) -> int:
        wrote = 0
        async with self.sessions() as session, session.begin():
            deps = self.deps(session)
            for item in todo:
                event = item.event
                parent = propagate.extract(item.fields)
                with (
                    self._entry_span(stream, item, parent, start=True) as span,
                    logs.event_scope(str(event.event_id)),
                ):
                    mark = deps.mark()
                    try:
                        async with session.begin_nested():
                            fresh = await inbox.record(
                                session, self.inbox_table, self.group, event.event_id
                            )
                            if fresh:
                                started = time.perf_counter()
                                deps.entries[str(event.event_id)] = item.fields
                                await item.handler([event], deps)
                                if deps.is_rejected(event):
                                    raise _RejectedInIsolation
                                wrote += await deps.flush()
                                self.metrics.handled(
                                    stream, event.type, time.perf_counter() - started
                                )
                    except _RejectedInIsolation:
                        deps.discard(mark)
                        refused = deps.rejected[str(event.event_id)]
                        span.set_status(trace.StatusCode.ERROR, str(refused))
                        outcome.rejected[item.entry_id] = refused
                        continue
                    except Rejected as exc:
                        deps.discard(mark)
                        span.set_status(trace.StatusCode.ERROR, str(exc))
                        outcome.rejected[item.entry_id] = exc
                        continue
                    except Exception as exc:
                        deps.discard(mark)
                        span.record_exception(exc)
                        span.set_status(trace.StatusCode.ERROR, str(exc))
                        if unavailable(exc):
                            raise _Unavailable(item.entry_id) from exc
                        outcome.failed[item.entry_id] = f"{type(exc).__name__}: {exc}"
                        log.warning(
                            "handler failed for %s %s (%s): %s",
                            event.type,
                            event.event_id,
                            item.entry_id,
                            logs.safe_error(exc),
                            extra={"stream": stream, "entry_id": item.entry_id},
                        )
                        continue
                    (outcome.applied if fresh else outcome.duplicates).append(item.entry_id)
        deps.committed()
        return wrote

    def _entry_span(self, stream: str, item: _Todo, parent: Any, *, start: bool) -> Any:
        # One span per entry, child of the producer's span: a diagnosis stays one trace
        # even when its entry was read in a batch (the batch span only links to it).
        opener = self.tracer.start_as_current_span if start else self.tracer.start_span
        return opener(
            f"{stream} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes=self._attributes(stream, item),
        )

    def _attributes(self, stream: str, item: _Todo) -> dict[str, str]:
        event = item.event
        return {
            "messaging.system": "redis",
            "messaging.destination.name": stream,
            "messaging.consumer.group.name": self.group,
            "messaging.message.id": str(event.event_id),
            "iomflow.stream.entry_id": item.entry_id,
            "iomflow.event.type": event.type,
            "iomflow.event.subject": event.subject,
        }

    async def _settle(
        self,
        stream: str,
        entries: Mapping[str, dict[str, str]],
        outcome: Outcome,
        deliveries: Mapping[str, int],
        *,
        reason: str,
    ) -> None:
        """Dead-letter, acknowledge and remember errors, in one atomic round trip."""
        done = outcome.applied + outcome.duplicates + outcome.skipped
        if not (done or outcome.dead or outcome.failed or outcome.rejected or outcome.unavailable):
            return
        pipe = self.redis.pipeline(transaction=True)
        key = errors_key(stream, self.group)
        dead = [(i, e, reason) for i, e in outcome.dead.items()]
        dead += [(i, str(e), e.code) for i, e in outcome.rejected.items()]
        for entry_id, error, why in dead:
            fields = entries[entry_id]
            if why == TOO_LARGE:
                fields = truncated(fields)
            pipe.xadd(
                Streams.dlq(stream),
                dead_letter_fields(  # type: ignore[arg-type]  # redis: invariant dict
                    fields,
                    stream=stream,
                    group=self.group,
                    entry_id=entry_id,
                    reason=why,
                    error=error,
                    deliveries=deliveries.get(entry_id, 1),
                ),
            )
        acked = done + [entry_id for entry_id, _, _ in dead]
        if acked:
            pipe.xack(stream, self.group, *acked)
        if outcome.failed:
            pipe.hset(key, mapping=outcome.failed)  # type: ignore[arg-type]
        if outcome.unavailable:
            waiting = unavailable_key(stream, self.group)
            for entry_id in outcome.unavailable:
                pipe.hincrby(waiting, entry_id, 1)
        retried = [entry_id for entry_id in acked if deliveries.get(entry_id, 1) > 1]
        if retried:
            pipe.hdel(key, *retried)
            pipe.hdel(unavailable_key(stream, self.group), *retried)
        await pipe.execute()
        self._count(stream, entries, outcome)
        if dead:
            # Entry ids and reasons only: the errors may quote the entries' values (they
            # are in the dead-letter stream for whoever may read it), a log line must not.
            log.warning(
                "dead-lettered %d entries of %s to %s: %s",
                len(dead),
                stream,
                Streams.dlq(stream),
                ", ".join(f"{entry_id} ({why})" for entry_id, _, why in dead),
                extra={"stream": stream},
            )

    def _count(self, stream: str, entries: Mapping[str, dict[str, str]], outcome: Outcome) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        for name, ids in (
            ("applied", outcome.applied),
            ("duplicate", outcome.duplicates),
            ("skipped", outcome.skipped),
            ("failed", outcome.failed),
            ("unavailable", outcome.unavailable),
            ("dead_lettered", [*outcome.dead, *outcome.rejected]),
        ):
            for entry_id in ids:
                counts[(name, entries.get(entry_id, {}).get("type", ""))] += 1
        self.metrics.outcomes(stream, counts)

    # --- reclaim ---------------------------------------------------------------------

    async def reclaim(self, stream: str) -> Outcome:
        """Claim entries idle past ``reclaim_idle_ms``; retry them or dead-letter them."""
        total = Outcome()
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                stream,
                self.group,
                self.consumer,
                min_idle_time=self.settings.reclaim_idle_ms,
                start_id=start,
                count=self.settings.batch_size,
            )
            start = wire.as_text(reply[0])
            claimed: list[Entry] = []
            gone: list[str] = []
            for item in reply[1]:
                if item is None or item[1] is None:  # deleted from the stream meanwhile
                    if item is not None:
                        gone.append(wire.as_text(item[0]))
                    continue
                claimed.append((wire.as_text(item[0]), wire.text_fields(item[1])))
            if len(reply) > 2:
                gone.extend(wire.as_text(i) for i in reply[2] or [])
            if gone:
                # Read, never applied, and no longer there to retry (trimmed or XDEL'd by
                # someone): said, by entry id, since the events are gone with them.
                log.error(
                    "%d pending entries of %s were deleted from the stream before %s "
                    "applied them (trimmed?): %s",
                    len(gone),
                    stream,
                    self.group,
                    ", ".join(gone[:100]),
                )
                await self.redis.xack(stream, self.group, *gone)
            if claimed:
                await self._retry(stream, claimed, total)
            if start == "0-0":
                return total

    async def _retry(self, stream: str, claimed: list[Entry], total: Outcome) -> None:
        pending = await self.redis.xpending_range(
            stream,
            self.group,
            min=claimed[0][0],
            max=claimed[-1][0],
            count=len(claimed) * 2 + 10,
            consumername=self.consumer,
        )
        deliveries = {wire.as_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        # Deliveries that failed only because the database was down do not count: such an
        # entry waits for it however long it takes, it is not poison.
        waited = await self.redis.hmget(
            unavailable_key(stream, self.group), [i for i, _ in claimed]
        )
        counted = {
            entry_id: deliveries.get(entry_id, 1) - int(w or 0)
            for (entry_id, _), w in zip(claimed, waited, strict=True)
        }
        over = [(i, f) for i, f in claimed if counted[i] > self.settings.max_deliveries]
        again = [(i, f) for i, f in claimed if counted[i] <= self.settings.max_deliveries]
        if over:
            errors = await self.redis.hmget(errors_key(stream, self.group), [i for i, _ in over])
            outcome = Outcome(
                dead={
                    entry_id: wire.as_text(error)
                    if error
                    else "no error recorded: its consumer died or timed out while handling it"
                    for (entry_id, _), error in zip(over, errors, strict=True)
                }
            )
            # count = failed deliveries so far (this claim is not a delivery to a handler)
            counts = {i: counted[i] - 1 for i, _ in over}
            await self._settle(stream, dict(over), outcome, counts, reason="max_deliveries")
            total.dead.update(outcome.dead)
        if again:
            outcome = await self.process(stream, again, deliveries)
            for name in ("applied", "duplicates", "skipped"):
                getattr(total, name).extend(getattr(outcome, name))
            total.failed.update(outcome.failed)
            total.unavailable.update(outcome.unavailable)
            total.dead.update(outcome.dead)
            total.rejected.update(outcome.rejected)

    async def supervise(self) -> None:
        """Reclaim forever; bring back groups and subscribers lost to a Redis flush."""
        while True:
            await asyncio.sleep(self.settings.reclaim_interval_s)
            for stream in self.subscriptions:
                try:
                    await self._restart_if_stopped(stream)
                    await self.reclaim(stream)
                except asyncio.CancelledError:
                    raise
                except ResponseError as exc:
                    if "NOGROUP" in str(exc):
                        await ensure_group(self.redis, stream, self.group)
                    else:
                        log.exception("reclaim on %s failed", stream)
                except Exception:
                    log.exception("reclaim on %s failed", stream)

    async def _restart_if_stopped(self, stream: str) -> None:
        subscriber = self._subscribers.get(stream)
        if subscriber is None or subscriber.running:
            return
        log.warning("subscriber of %s stopped (group lost?); recreating group, restarting", stream)
        await ensure_group(self.redis, stream, self.group)
        await subscriber.start()

    async def groups_exist(self) -> bool:
        for stream in self.subscriptions:
            try:
                groups = await self.redis.xinfo_groups(stream)
            except ResponseError:
                return False
            if not any(wire.as_text(g["name"]) == self.group for g in groups):
                return False
        return True


TOO_LARGE = "too_large"
KEPT_CHARACTERS = 2_000


def truncated(fields: Mapping[str, str]) -> dict[str, str]:
    """An oversized entry as its dead letter keeps it: each field cut to its first
    ``KEPT_CHARACTERS``, saying how long it was (the letter is for a person to read)."""
    return {
        name: value
        if len(value) <= KEPT_CHARACTERS
        else f"{value[:KEPT_CHARACTERS]}… [cut: {len(value)} characters]"
        for name, value in fields.items()
    }


def dead_letter_fields(
    fields: Mapping[str, str],
    *,
    stream: str,
    group: str,
    entry_id: str,
    reason: str,
    error: str,
    deliveries: int,
) -> dict[str, str]:
    """The original fields plus why, where from and how often it was tried."""
    return {
        **fields,
        "dlq_reason": reason,
        "dlq_error": error[:10_000],
        "dlq_stream": stream,
        "dlq_group": group,
        "dlq_entry_id": entry_id,
        "dlq_deliveries": str(deliveries),
        "dlq_at": datetime.now(UTC).isoformat(),
    }
