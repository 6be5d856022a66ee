"""The publishers' rate: events per minute over a sliding window counted in Redis.

Replicas share the counters; a batch counts each of its events; only what is accepted uses
the rate (a refused request gives its count back, ``refund``). Every answer to a known
publisher carries the ``RateLimit-*`` headers of ``Rate``; past the limit: 429
``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError

from iomflow.shared.publishers import Outcome, Publisher

if TYPE_CHECKING:
    from iomflow.shared.ingest.audit import Call

WINDOW_S = 60
clock: Callable[[], float] = time.time
"""Wall clock of the rate windows (tests hold it still)."""


def rate_keys(service: str) -> str:
    """The prefix of a service's rate counters: what its Redis ACL user may touch (INCRBY —
    a refusal gives its count back with a negative one — EXPIRE and GET, in MULTI/EXEC)."""
    return f"iomflow:ratelimit:{service}:"


def rate_key(service: str, publisher_id: str, window: int) -> str:
    """The Redis counter of one publisher's window. The publisher's id is the key's hash
    tag: this window and the last one are read in one MULTI, in one slot of a Cluster."""
    return f"{rate_keys(service)}{{{publisher_id}}}:{window}"


@dataclass
class Rate:
    """Where a publisher stands against its rate, as the ``RateLimit-*`` headers say it."""

    limit: int
    remaining: int
    reset: int  # seconds until the current window ends

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(max(0, self.reset)),
            "RateLimit-Policy": f"{self.limit};w={WINDOW_S}",
        }


def limit_of(call: Call, publisher: Publisher) -> int:
    """The publisher's events per minute: its own, or the service's default."""
    return publisher.rate_per_minute or call.runtime.settings.ingest_rate_per_minute


async def take(call: Call, publisher: Publisher, count: int) -> None:
    """Count ``count`` events against the publisher's rate; 429 past its limit.

    A sliding window, estimated from two fixed ones (this minute's counter and the last
    one's, weighted by how much of it the window still covers): no twice the limit across a
    minute's boundary, two counters a publisher, one MULTI a request."""
    settings = call.runtime.settings
    limit = limit_of(call, publisher)
    now = clock()
    window = int(now // WINDOW_S)
    into = now - window * WINDOW_S
    key = rate_key(settings.service, publisher.publisher_id, window)
    redis = call.runtime.redis
    try:
        pipe = redis.pipeline(transaction=True)
        pipe.incrby(key, count)
        pipe.expire(key, 2 * WINDOW_S)
        pipe.get(rate_key(settings.service, publisher.publisher_id, window - 1))
        taken, _, last = await pipe.execute()
    except RedisError as exc:
        raise await call.unavailable(exc) from exc  # gives back what it counted before
    fading = int(last or 0) * (1 - into / WINDOW_S)  # the last minute's share still inside
    used = fading + int(taken)
    reset = math.ceil(WINDOW_S - into)
    if used <= limit:
        call.counted.append((key, count))
        call.rate = Rate(limit, math.floor(limit - used), reset)
        return
    try:
        await give_back(redis, key, count)  # refused events do not use the window up
    except RedisError as exc:
        raise await call.unavailable(exc) from exc
    call.rate = Rate(limit, math.floor(limit - used + count), reset)
    excess = used - limit
    if excess <= fading:  # room comes back as the last minute's events fade out
        wait = excess * WINDOW_S / int(last)
    else:  # … and then as this minute's own do, in the next one
        wait = reset + (excess - fading) * WINDOW_S / max(1, int(taken) - count)
    retry = math.ceil(round(wait, 6))  # 10.999999999 is 11 s
    retry = max(1, min(retry, 2 * WINDOW_S))
    raise await call.refuse(
        429,
        "rate_limited",
        Outcome.RATE_LIMITED,
        f"Превышен лимит: не больше {limit} событий в минуту. Повторите через {retry} с.",
        headers={"Retry-After": str(retry)},
        limit=limit,
        retry_after=retry,
    )


async def give_back(redis: Redis, key: str, count: int) -> None:
    """Take ``count`` events off a window's counter.

    Apart from the count (it is known only after it): cancelled in between (the client
    gone), the count stays until the window's EXPIRE ends it. EXPIRE again so that a
    counter gone meanwhile does not come back without one."""
    pipe = redis.pipeline(transaction=True)
    pipe.incrby(key, -count)
    pipe.expire(key, 2 * WINDOW_S)
    await pipe.execute()


async def refund(call: Call) -> None:
    """Give back all the request counted: a refused request does not use the publisher's
    rate. Best effort: if Redis fails (it may just have), the count stays for the window."""
    for key, count in call.counted:
        with contextlib.suppress(RedisError):
            await give_back(call.runtime.redis, key, count)
        if call.rate is not None:
            call.rate.remaining = min(call.rate.limit, call.rate.remaining + count)
    call.counted.clear()
