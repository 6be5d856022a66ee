"""Settings every service shares, read from ``IOMFLOW_*`` environment variables.

A service subclasses ``BaseServiceSettings`` for its own knobs. Nothing here is built at
import time: ``create_app(settings)`` receives an instance, so tests and deployments choose.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from iomflow.shared import redisconn


def _default_consumer() -> str:
    # Unique per replica: Redis tracks pending entries per consumer name.
    return f"{socket.gethostname()}-{os.getpid()}"


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IOMFLOW_", extra="ignore")

    service: str = Field(default="", description="Service name; also its consumer group")
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL; default: a SQLite file under data_dir",
    )
    data_dir: Path = Path("var")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    consumer: str = Field(default_factory=_default_consumer)

    batch_size: int = Field(
        default=500, ge=1, le=5000, description="Entries read and applied per transaction"
    )
    poll_ms: int = Field(default=200, ge=1, description="XREADGROUP block time")
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before the DLQ")
    reclaim_idle_ms: int = Field(
        default=30_000, ge=100, description="Pending this long = its consumer is gone"
    )
    reclaim_interval_s: float = Field(default=5.0, gt=0)
    relay_batch: int = Field(default=500, ge=1)
    inbox_retention_days: float = Field(
        default=30,
        ge=1,
        description="How long an applied event's id is kept (an event sent again later is "
        "applied again): longer than any publisher's retries, and than a reclaim cycle",
    )
    outbox_retention_days: float = Field(
        default=7, ge=0, description="How long a published event's outbox row is kept"
    )
    retention_check_s: float = Field(
        default=3600, gt=0, description="How often old inbox and outbox rows are pruned"
    )
    relay_poll_s: float = Field(default=0.5, gt=0)
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        description="Replicas that must have an entry (WAIT) before the outbox marks it "
        "sent and HTTP ingestion answers 202: 1 behind Sentinel, so a failover loses "
        "nothing acknowledged; 0 on one server or a Cluster",
    )
    redis_wait_timeout_ms: int = Field(default=1000, ge=1)

    traces_dir: Path | None = Field(
        default=None,
        description="Without an OTLP endpoint, spans go to <traces_dir>/<service>.jsonl",
    )
    migrate_on_start: bool = Field(
        default=False, description="Apply migrations at start (embedded runs; admins migrate apart)"
    )
    sql_tracing: bool = Field(default=True, description="A span per SQL statement")
    admin_key: SecretStr | None = Field(
        default=None,
        description="An API key holding every role (first admin, automation); keep it secret",
    )
    session_ttl_minutes: int = Field(
        default=480,
        ge=1,
        description="A sign-in on the pages lasts this long (then the person signs in again)",
    )
    session_cookie_secure: bool = Field(
        default=False,
        description="Send the session cookie over HTTPS only (set it behind TLS)",
    )
    ingest_max_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="HTTP ingestion (POST /v1/events): largest request body accepted, bytes",
    )
    ingest_rate_per_minute: int = Field(
        default=1200,
        ge=1,
        description="HTTP ingestion: events a publisher may send per minute (a batch counts "
        "each of its events); a publisher's own limit overrides it",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        redisconn.parse(value)  # one server, Sentinel or Cluster; else says which forms
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.split(":///", 1)[1]
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{self.service}.db'}"
