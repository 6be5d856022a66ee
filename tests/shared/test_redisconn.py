"""Where Redis is (``IOMFLOW_REDIS_URL``): one server, Sentinel, Cluster — parsed, refused
with the forms it takes, and the key names that share a MULTI in one Cluster hash slot."""

from __future__ import annotations

import fnmatch

import pytest
import redis
from faststream.redis import RedisBroker, RedisClusterBroker, RedisSentinelBroker
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from iomflow.cli.acl import ERRORS_PATTERN, topology
from iomflow.shared import redisconn
from iomflow.shared.contracts import Streams
from iomflow.shared.ingest import rate_key
from iomflow.shared.settings import BaseServiceSettings
from iomflow.shared.streams import errors_key, unavailable_key


def test_one_server_urls_are_taken_as_they_are() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://u:p@h:6380/2", "unix:///run/redis.sock"):
        assert redisconn.parse(url) == redisconn.Target("server", url)


def test_a_sentinel_url_names_the_sentinels_the_master_the_database_and_the_credentials() -> None:
    target = redisconn.parse(
        "redis+sentinel://iomflow-routes:p%40ss@10.0.0.1:26379,10.0.0.2,[::1]:26380/iomflow/3"
        "?sentinel_password=s3"
    )
    assert target.kind == "sentinel" and target.master == "iomflow"
    assert target.nodes == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert target.options == {"username": "iomflow-routes", "password": "p@ss", "db": 3}
    assert target.sentinel == {"password": "s3"}
    assert target.url == "redis://iomflow-routes:p%40ss@10.0.0.1:26379/3"
    tls = redisconn.parse("rediss+sentinel://h/m")
    assert tls.options == {"ssl": True, "db": 0} and tls.nodes == (("h", 26379),)


def test_a_cluster_url_names_its_seed_nodes() -> None:
    target = redisconn.parse("redis+cluster://:pw@h1:7000,h2:7001")
    assert target.kind == "cluster" and target.nodes == (("h1", 7000), ("h2", 7001))
    assert target.options == {"password": "pw"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:6379", "expected one of"),
        ("http://h:6379", "expected one of"),
        ("redis+sentinel://h:26379", "/<master>"),
        ("redis+sentinel://h:26379/m/x", "not a number"),
        ("redis+sentinel://h:x/m", "not a number"),
        ("redis+sentinel://:26379/m", "no host"),
        ("redis+cluster://h:7000/1", "database 0"),
    ],
)
def test_a_url_of_no_known_form_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        redisconn.parse(url)
    with pytest.raises(ValidationError):  # as a service refuses it at start
        BaseServiceSettings(redis_url=url)


def test_each_form_gets_its_clients_and_its_broker() -> None:
    server, sentinel, cluster = (
        "redis://127.0.0.1:1/0",
        "redis+sentinel://127.0.0.1:1/iomflow",
        "redis+cluster://127.0.0.1:1",
    )
    assert type(redisconn.broker(server)) is RedisBroker
    assert isinstance(redisconn.broker(sentinel), RedisSentinelBroker)
    assert isinstance(redisconn.broker(cluster), RedisClusterBroker)
    assert type(redisconn.sync_client(server)) is redis.Redis
    assert "Sentinel" in type(redisconn.sync_client(sentinel).connection_pool).__name__
    # (redis-py's blocking RedisCluster asks its nodes at once: tests/e2e/test_redis_cluster.py)
    assert type(redisconn.async_client(server)) is Redis
    assert "Sentinel" in type(redisconn.async_client(sentinel).connection_pool).__name__
    assert isinstance(redisconn.async_client(cluster), RedisCluster)


def test_the_keys_of_each_multi_share_one_cluster_slot() -> None:
    """Settling a batch (XACK on the stream, XADD to its DLQ, the error and unavailable
    hashes), replaying a letter (XADD to the stream, XDEL from the DLQ) and the rate
    limit (this window and the last) are each one MULTI: one slot, or CROSSSLOT."""
    topo = topology()
    groups = {(s, svc.group) for svc in topo.services.values() for s in svc.reads}
    assert groups
    for stream, group in groups:
        keys = [
            stream,
            Streams.dlq(stream),
            errors_key(stream, group),
            unavailable_key(stream, group),
        ]
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys
    for stream in Streams.all():
        assert key_slot(stream.encode()) == key_slot(Streams.dlq(stream).encode())
    windows = [rate_key("diagnostics", "pub-1", w) for w in (41, 42)]
    assert len({key_slot(k.encode()) for k in windows}) == 1, windows
    # … and the streams themselves are not all in one slot (the tags are per stream).
    assert len({key_slot(s.encode()) for s in Streams.all()}) > 1


def test_the_operators_pattern_covers_every_error_hash() -> None:
    for svc in topology().services.values():
        for stream in svc.reads:
            key = errors_key(stream, svc.group)
            assert fnmatch.fnmatchcase(key, ERRORS_PATTERN), key
