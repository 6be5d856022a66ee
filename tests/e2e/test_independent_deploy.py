"""Deploying one service alone: routes is stopped, publishers keep writing, an admin applies a
new migration to routes' database and starts it again. It catches up from its consumer
group with nothing lost and nothing done twice, while the other services never stop.

The new migration is a real Alembic revision on top of routes' own head (an additive change,
as an expand step of a rolling deploy would be): routes' migrations are copied beside it and
applied with Alembic, then routes starts with ``IOMFLOW_MIGRATE_ON_START=false``, the way an
admin runs it after a separate migration Job.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
from importlib.resources import files
from pathlib import Path

import httpx
import redis
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from shared.test_metrics import Scrape
from sqlalchemy import inspect, text

from e2e.test_chain import REGION, get, settled, wait_until
from iomflow.cli.demo import RESULTS_PER_TEACHER, result_entries
from iomflow.cli.launcher import Suite
from iomflow.shared.contracts import Streams

NEW_REVISION = "9001_deploy_test"


def _new_migration(down_revision: str) -> str:
    return f'''"""routes: a note on each route (added by the independent-deploy test)"""

import sqlalchemy as sa
from alembic import op

revision = "{NEW_REVISION}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("routes") as batch:
        batch.add_column(sa.Column("deploy_note", sa.String(200), nullable=True))
    op.create_index("ix_routes_deploy_note", "routes", ["deploy_note"])


def downgrade() -> None:
    op.drop_index("ix_routes_deploy_note", table_name="routes")
    with op.batch_alter_table("routes") as batch:
        batch.drop_column("deploy_note")
'''


def migrations_with_a_new_revision(tmp: Path) -> tuple[Path, str]:
    """A copy of routes' migrations plus one new revision on top of its head."""
    source = Path(str(files("iomflow.routes") / "migrations"))
    target = tmp / "routes-migrations"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    config = Config()
    config.set_main_option("script_location", str(target))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    (target / "versions" / f"{NEW_REVISION}.py").write_text(_new_migration(head))
    return target, head


def routes_database_url(suite: Suite) -> str:
    return suite.database_urls.get(
        "routes", f"sqlite+aiosqlite:///{suite.workdir / 'data' / 'routes.db'}"
    )


async def schema_of(url: str) -> tuple[str, set[str], set[str], list[tuple[str, int]]]:
    """(alembic revision, routes' columns, routes' indexes, diagnoses with more than one
    route) of routes' database."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            revision = (
                await conn.execute(text("select version_num from alembic_version"))
            ).scalar_one()

            def shape(sync_conn):  # type: ignore[no-untyped-def]
                inspector = inspect(sync_conn)
                return (
                    {c["name"] for c in inspector.get_columns("routes")},
                    {i["name"] for i in inspector.get_indexes("routes")},
                )

            columns, indexes = await conn.run_sync(shape)
            twice = (
                await conn.execute(
                    text(
                        "select diagnosis_id, count(*) from routes group by diagnosis_id "
                        "having count(*) > 1"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    return str(revision), columns, indexes, [tuple(row) for row in twice]


def metrics(suite: Suite, service: str) -> Scrape:
    response = httpx.get(f"{suite.url(service)}/metrics", timeout=10)
    response.raise_for_status()
    return Scrape(response.text)


def routes_group(page: Scrape, name: str) -> float | None:
    return page.value(name, stream=Streams.DIAGNOSTICS, group="routes")


def operator_streams(redis_url: str) -> dict[tuple[str, str], dict[str, object]]:
    """``iomflow streams --json``, as an operator runs it: (stream, group) -> its stats."""
    done = subprocess.run(
        [sys.executable, "-m", "iomflow.cli.main", "streams", "--json", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {(s["stream"], s["group"]): s for s in json.loads(done.stdout)["streams"]}


def completed_not_delivered_to_routes(client: redis.Redis) -> list[bytes]:
    """Completed diagnoses on the stream past routes' group's last delivered entry."""
    group = next(g for g in client.xinfo_groups(Streams.DIAGNOSTICS) if g["name"] == b"routes")
    last = group["last-delivered-id"].decode()
    return [
        entry_id
        for entry_id, fields in client.xrange(Streams.DIAGNOSTICS, min=f"({last}")
        if fields[b"type"] == b"diagnostics.diagnosis.completed"
    ]


def test_routes_stopped_migrated_and_restarted_catches_up_with_no_loss_and_no_duplicate(
    chain: Suite, clean_redis: str, tmp_path: Path
) -> None:
    suite = chain  # the four services on SQLite, then on PostgreSQL (e2e/conftest.py)
    client = redis.Redis.from_url(clean_redis)
    teachers = [t["teacher_id"] for t in REGION["teachers"]][:90]
    waves = [teachers[:30], teachers[30:60], teachers[60:]]

    def publish(wave: list[str]) -> None:
        for stream, fields in result_entries(wave):
            client.xadd(stream, fields)  # type: ignore[arg-type]

    # Wave 1 while everything runs.
    publish(waves[0])
    wait_until(settled(suite, len(waves[0])), "the first wave to settle", within=180)
    routes_before = get(f"{suite.url('routes')}/v1/stats")["routes"]
    page = metrics(suite, "routes")
    assert routes_group(page, "iomflow_stream_lag") == 0
    assert routes_group(page, "iomflow_stream_pending") == 0
    assert (
        metrics(suite, "diagnostics").value(
            "iomflow_stream_dlq_length", stream=Streams.RESULTS_INBOUND
        )
        == 0
    )

    # Routes goes down; publishers do not notice. Diagnostics keeps completing diagnoses.
    suite.services["routes"].stop()
    publish(waves[1])
    wait_until(
        lambda: get(f"{suite.url('diagnostics')}/v1/stats")["diagnoses"] == 60,
        "diagnostics to complete the second wave while routes is down",
        within=180,
    )
    # Published by diagnostics' relay after each commit: on the stream, for routes to read.
    wait_until(
        lambda: len(completed_not_delivered_to_routes(client)) == len(waves[1]),
        "the second wave's diagnoses on the stream, past routes' group",
        within=60,
    )
    # What routes has not read yet is its group's lag, as the operator sees it.
    waiting = operator_streams(clean_redis)[(Streams.DIAGNOSTICS, "routes")]
    assert waiting["lag"] >= len(waves[1]) and waiting["pending"] == 0, waiting
    # A publisher's broken entry meanwhile: dead-lettered by diagnostics, seen in its metrics.
    client.xadd(Streams.RESULTS_INBOUND, {"event_id": "not-a-uuid", "type": "x"})
    wait_until(
        lambda: (
            metrics(suite, "diagnostics").value(
                "iomflow_stream_dlq_length", stream=Streams.RESULTS_INBOUND
            )
            == 1
        ),
        "diagnostics' /metrics to show the dead letter",
    )

    # The admin applies the new migration (a separate step, as a migration Job would), while
    # the third wave is being published.
    location, old_head = migrations_with_a_new_revision(tmp_path)
    third = threading.Thread(target=publish, args=(waves[2],))
    third.start()
    config = Config()
    config.set_main_option("script_location", str(location))
    config.attributes["database_url"] = routes_database_url(suite)
    command.upgrade(config, "head")
    third.join()

    # Routes starts again with the same code, not migrating by itself.
    routes = suite.services["routes"]
    routes.env["IOMFLOW_MIGRATE_ON_START"] = "false"
    routes.start()
    routes.wait_ready()
    wait_until(settled(suite, len(teachers)), "routes to catch up after the deploy", within=300)

    revision, columns, indexes, twice = asyncio.run(schema_of(routes_database_url(suite)))
    assert revision == NEW_REVISION, f"migration not applied: at {revision} (was {old_head})"
    assert "deploy_note" in columns and "ix_routes_deploy_note" in indexes
    assert twice == [], f"diagnoses with more than one route: {twice}"

    d = get(f"{suite.url('diagnostics')}/v1/stats")
    r = get(f"{suite.url('routes')}/v1/stats")
    m = get(f"{suite.url('monitoring')}/v1/stats")
    assert d["diagnoses"] == len(teachers)
    assert r["routes"] == d["with_deficits"] > routes_before, (d, r)
    assert m["with_route"] == r["routes"]
    # Each drafted route was published exactly once.
    drafted = [
        json.loads(fields[b"data"])["route_id"]
        for _, fields in client.xrange(Streams.ROUTES)
        if fields[b"type"] == b"routes.route.drafted"
    ]
    assert len(drafted) == len(set(drafted)) == r["routes"]
    # Nothing waits, nothing is dead: in Redis and in routes' /metrics.
    group = next(g for g in client.xinfo_groups(Streams.DIAGNOSTICS) if g["name"] == b"routes")
    assert int(group["pending"]) == 0
    page = metrics(suite, "routes")
    assert routes_group(page, "iomflow_stream_lag") == 0
    assert routes_group(page, "iomflow_stream_pending") == 0
    assert routes_group(page, "iomflow_stream_dlq_length") == 0
    applied = page.value(
        "iomflow_consumer_entries_total", stream=Streams.DIAGNOSTICS, outcome="applied"
    )
    assert applied is not None and applied >= len(waves[1]) + len(waves[2])
    assert client.xlen(Streams.dlq(Streams.DIAGNOSTICS)) == 0
    assert client.xlen(Streams.RESULTS_INBOUND) == len(teachers) * RESULTS_PER_TEACHER + 1
