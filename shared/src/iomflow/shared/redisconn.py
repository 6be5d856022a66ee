"""Where Redis is, from one URL (``IOMFLOW_REDIS_URL``): one server, the master a set of
Sentinels watches, or a Redis Cluster — and the clients and broker for it.

- ``redis://[user:password@]host:port/db``, ``rediss://…``, ``unix:///path``: one server.
- ``redis+sentinel://[user:password@]host:port[,host:port…]/<master>[/<db>]``
  (``rediss+sentinel://`` for TLS to the data nodes): the master that the Sentinels at
  those addresses name. After a failover the clients ask the Sentinels again and reach the
  new master by themselves. The user and password are the data nodes' (the ACL users of
  ``iomflow acl``); ``?sentinel_username=…&sentinel_password=…`` if the Sentinels ask for
  their own.
- ``redis+cluster://[user:password@]host:port[,host:port…]`` (``rediss+cluster://``): a
  Redis Cluster, discovered from any of the nodes named. Every key the suite touches in one
  transaction shares a hash slot (``Streams.dlq``, ``errors_key``, ``unavailable_key``,
  ``rate_key`` keep their stream's or publisher's tag), so nothing is CROSSSLOT.

The services, the admin commands and the operator CLI all build their clients here; a URL
of any other form is refused with what the forms are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
import redis.cluster
import redis.sentinel
from faststream.redis import RedisBroker, RedisClusterBroker, RedisSentinelBroker
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

__all__ = [
    "NotReplicated",
    "Target",
    "async_client",
    "broker",
    "parse",
    "replicated",
    "sync_client",
]

Kind = Literal["server", "sentinel", "cluster"]

SERVER_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
FORMS = (
    "redis://host:port/db, rediss://…, unix:///path (one server); "
    "redis+sentinel://host:port[,host:port…]/<master>[/<db>] (Sentinel); "
    "redis+cluster://host:port[,host:port…] (Cluster)"
)
SENTINEL_PORT = 26379
PORT = 6379


@dataclass(frozen=True)
class Target:
    """A parsed ``IOMFLOW_REDIS_URL``."""

    kind: Kind
    url: str
    """For ``server`` the URL itself; for the others a ``redis[s]://`` URL of the first node
    with the credentials and database (what a single-node parser expects)."""
    nodes: tuple[tuple[str, int], ...] = ()
    """The Sentinels (``sentinel``) or the seed nodes (``cluster``)."""
    master: str = ""
    sentinel: dict[str, str] = field(default_factory=dict)
    """Credentials of the Sentinels themselves, when they have their own."""
    options: dict[str, Any] = field(default_factory=dict)
    """username, password, db, ssl: the data nodes' connection options."""


def parse(url: str) -> Target:
    """The target of ``url``; ValueError saying which forms are understood."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in SERVER_SCHEMES:
        return Target("server", url)
    if scheme not in SENTINEL_SCHEMES + CLUSTER_SCHEMES:
        raise ValueError(f"Redis URL: expected one of {FORMS}")
    parts = urlsplit(url)
    nodes = _nodes(parts.netloc.rpartition("@")[2], scheme)
    tls = scheme.startswith("rediss")
    options: dict[str, Any] = {}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if tls:
        options["ssl"] = True
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    path = [p for p in parts.path.split("/") if p]
    if scheme in CLUSTER_SCHEMES:
        if path:
            raise ValueError("Redis URL: a Cluster has only database 0, give no path")
        return Target("cluster", _node_url(tls, options, nodes[0], 0), nodes, options=options)
    if not path or len(path) > 2:
        raise ValueError("Redis URL: redis+sentinel://host:port[,host:port…]/<master>[/<db>]")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"Redis URL: database {path[1]!r} is not a number")
        db = int(path[1])
    options["db"] = db
    sentinel = {
        key.removeprefix("sentinel_"): value
        for key, value in query.items()
        if key in ("sentinel_username", "sentinel_password")
    }
    return Target(
        "sentinel",
        _node_url(tls, options, nodes[0], db),
        nodes,
        master=unquote(path[0]),
        sentinel=sentinel,
        options=options,
    )


def _nodes(netloc: str, scheme: str) -> tuple[tuple[str, int], ...]:
    default = SENTINEL_PORT if scheme in SENTINEL_SCHEMES else PORT
    found: list[tuple[str, int]] = []
    for part in netloc.split(","):
        part = part.strip()
        if part.startswith("["):  # [::1]:26379
            host, _, rest = part[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = part.partition(":")
        if not host:
            raise ValueError(f"Redis URL: no host in {part!r}")
        if port and not port.isdigit():
            raise ValueError(f"Redis URL: port {port!r} is not a number")
        found.append((host, int(port) if port else default))
    return tuple(found)


def _node_url(tls: bool, options: dict[str, Any], node: tuple[str, int], db: int) -> str:
    auth = ""
    if "password" in options:
        auth = (
            f"{quote(options.get('username', ''), safe='')}:{quote(options['password'], safe='')}@"
        )
    return f"{'rediss' if tls else 'redis'}://{auth}{node[0]}:{node[1]}/{db}"


def async_client(url: str, **kwargs: Any) -> Redis:
    """An asyncio client of the target. For a Cluster it is redis-py's ``RedisCluster``,
    which has the commands (and single-slot MULTI) of ``Redis`` that the suite uses."""
    target = parse(url)
    if target.kind == "server":
        return Redis.from_url(url, **kwargs)
    if target.kind == "sentinel":
        manager = Sentinel(
            list(target.nodes),
            sentinel_kwargs=dict(target.sentinel) or None,
            **{**target.options, **kwargs},
        )
        return manager.master_for(target.master)
    nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes]
    return cast(Redis, RedisCluster(startup_nodes=nodes, **{**target.options, **kwargs}))


def sync_client(url: str, **kwargs: Any) -> redis.Redis:
    """The same, blocking (the operator CLI, the benchmark, the tests)."""
    target = parse(url)
    if target.kind == "server":
        return redis.Redis.from_url(url, **kwargs)
    if target.kind == "sentinel":
        manager = redis.sentinel.Sentinel(
            list(target.nodes),
            sentinel_kwargs=dict(target.sentinel) or None,
            **{**target.options, **kwargs},
        )
        return manager.master_for(target.master)
    nodes = [redis.cluster.ClusterNode(h, p) for h, p in target.nodes]
    return cast(
        redis.Redis, redis.cluster.RedisCluster(startup_nodes=nodes, **{**target.options, **kwargs})
    )


def broker(url: str, **kwargs: Any) -> RedisBroker:
    """FastStream's broker for the target: ``RedisBroker``, ``RedisSentinelBroker`` or
    ``RedisClusterBroker`` (FastStream 0.7 has all three)."""
    target = parse(url)
    if target.kind == "server":
        return RedisBroker(url, **kwargs)
    if target.kind == "sentinel":
        return RedisSentinelBroker(
            target.url,
            sentinels=list(target.nodes),
            sentinel_master_name=target.master,
            sentinel_kwargs=dict(target.sentinel) or None,
            **kwargs,
        )
    return RedisClusterBroker(target.url, startup_nodes=list(target.nodes[1:]), **kwargs)


class NotReplicated(RedisError):
    """Entries written to the primary, but not to enough replicas in time (``WAIT``)."""


async def replicated(redis: Redis, replicas: int, timeout_ms: int, count: int) -> None:
    """With ``replicas`` (``IOMFLOW_REDIS_WAIT_REPLICAS``, behind Sentinel): return once that
    many replicas have what this connection wrote, else ``NotReplicated`` — so a failover
    right after cannot lose what the caller is about to confirm (an outbox row marked sent,
    a 202). Nothing asked (0): return at once."""
    if not replicas:
        return
    have = int(await redis.wait(replicas, timeout_ms))
    if have < replicas:
        raise NotReplicated(
            f"{count} entries reached {have} of {replicas} replicas within {timeout_ms} ms"
        )
