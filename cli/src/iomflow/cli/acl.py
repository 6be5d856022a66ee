"""Redis ACL users for the services, the outside publishers and the operators: ``iomflow acl``.

Writes a Redis ACL file (``aclfile`` in redis.conf, or ``ACL LOAD``) with one user each for:

- ``default``: turned off, so nobody reaches the streams without a user of their own;
- ``iomflow-admin``: everything (loading the ACL, ``ACL LOG``, maintenance);
- ``iomflow-operator``: reads every stream, dead-letter stream and pending-error hash
  (``iomflow streams``, ``iomflow dlq list|show``: XINFO, XLEN, XRANGE, XREVRANGE,
  XPENDING, HGETALL…), appends to the original streams (``dlq replay``: XADD) and deletes
  dead letters (``dlq drop``: XDEL); it cannot consume (no XREADGROUP, XACK, XGROUP);
- ``iomflow-<service>``, for each service: its subscribed streams through its consumer group
  (XREADGROUP, XACK, XAUTOCLAIM, XPENDING, XINFO, XGROUP CREATE … MKSTREAM, XLEN, XRANGE for
  lag and rebuilds), their dead-letter streams, the streams it publishes and the inbound
  streams its HTTP ingestion appends to (its ``INGESTS``) (XADD, XLEN, XINFO, XRANGE,
  MULTI/EXEC), its error hashes ``{<stream>}:errors:<group>`` and
  ``{<stream>}:unavailable:<group>`` (HSET, HDEL, HMGET, HINCRBY…), its rate-limit
  counters ``iomflow:ratelimit:<service>:*`` (INCR, EXPIRE…),
  and for monitoring the size (XLEN) of every dead-letter stream it raises alerts on;
- ``pub-<name>``, for each outside publisher: XADD, and nothing else, on exactly the inbound
  streams that carry the event types it may send. No read command at all.

Every user may also connect: ``+@connection -@admin -@dangerous +select +client|setname``
(PING, AUTH, HELLO, ECHO, SELECT, COMMAND, CLIENT SETNAME/GETNAME/ID…; on Redis 7.2+ also
CLIENT SETINFO, which redis-py sends on connecting and 6.2/7.0 do not have). No user but the
admin has pub/sub channels.

The streams each service reads and writes are not a table here: each service's app is built
as ``create_app`` builds it (never started) and its consumer's subscriptions, consumer group
and broker publishers are read (what its AsyncAPI document shows), so the ACL follows the
code. The inbound stream of each inbound event type is the stream whose consumer applies it.

Syntax. By default the rules are Redis 6.2-compatible: one set of commands and one set of key
patterns per user. A user may then run any of its commands on any of its keys, e.g. a service
may XADD to a stream it only reads. ``--selectors`` (Redis 7.0+) splits each user into
selectors so that a service may only consume what it reads and only append to what it
writes, and the operator may only XDEL on dead-letter streams. A publisher is exact in both.

Passwords. The file holds SHA-256 hashes only (``#<hex>``). Each user's password is taken,
in this order, from the environment variable ``<NAME>_REDIS_PASSWORD`` (``iomflow-routes`` →
``ROUTES_REDIS_PASSWORD``, ``pub-copmko`` → ``PUB_COPMKO_REDIS_PASSWORD``, the operator
``OPERATOR_REDIS_PASSWORD``, the admin ``ADMIN_REDIS_PASSWORD``), then from the ``--secrets``
file if it exists, else it is generated. The ``--secrets`` file (mode 0600, an env file for
``docker-compose --env-file`` or ``set -a; . FILE``) gets ``<NAME>_REDIS_USER`` and
``<NAME>_REDIS_PASSWORD`` of every user; running the command again with it keeps every
password and adds those of new users. Without ``--secrets``, generated passwords are printed
to stdout, once (then the ACL must go to ``--out``). A password must be 16+ characters of
``A-Z a-z 0-9 . _ ~ -`` so it can stand in a ``redis://user:password@host`` URL as it is.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import secrets
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from iomflow.cli.common import EXIT_OK, EXIT_USAGE, UsageError, built_app, checked_redis_url
from iomflow.shared.auth import hash_key
from iomflow.shared.contracts import INBOUND_TYPES, Streams
from iomflow.shared.ingest import rate_keys
from iomflow.shared.streams import errors_key, unavailable_key

ADMIN = "iomflow-admin"
OPERATOR = "iomflow-operator"
SERVICE_PREFIX = "iomflow-"
PUBLISHER_PREFIX = "pub-"

CONNECTION = ("+@connection", "-@admin", "-@dangerous", "+select", "+client|setname")
"""Connecting, authenticating and naming the connection; nothing that reads or writes data."""

CONSUME = (
    "+xreadgroup",
    "+xack",
    "+xautoclaim",
    "+xpending",
    "+xgroup|create",
    "+xinfo",
    "+xlen",
    "+xrange",
)
"""A service on a stream it subscribes to: its consumer group, pending entries, lag."""

PUBLISH = (
    "+xadd",
    "+xlen",
    "+xinfo",
    "+xrange",
    "+xpending",
    "+multi",
    "+exec",
    "+discard",
    "+wait",
)
"""A service on the streams it writes: its own stream, the dead-letter streams of its
subscriptions (in one MULTI with the XACK), what ``/metrics`` asks of them, and WAIT for
replicas (``IOMFLOW_REDIS_WAIT_REPLICAS``, behind Sentinel)."""

ERRORS = ("+hset", "+hdel", "+hmget", "+hget", "+hgetall", "+hlen", "+hincrby")
"""The last error of each failing entry, ``{<stream>}:errors:<group>``; the deliveries
that failed only for an unavailable dependency, ``{<stream>}:unavailable:<group>``."""

RATE_LIMIT = ("+incr", "+incrby", "+expire", "+pexpire", "+ttl", "+pttl", "+get")
"""Fixed-window counters of the HTTP ingestion, ``iomflow:ratelimit:<service>:*``."""

OBSERVE = ("+xlen",)
"""Sizes of dead-letter streams a service raises alerts on (monitoring)."""

INSPECT = (
    "+xinfo",
    "+xlen",
    "+xrange",
    "+xrevrange",
    "+xpending",
    "+hgetall",
    "+hget",
    "+hmget",
    "+hlen",
    "+watch",
    "+unwatch",
    "+multi",
    "+exec",
    "+discard",
)
"""The operator, on every stream, dead-letter stream and error hash: look, never consume
(WATCH/MULTI: ``dlq replay`` appends and deletes at once, under a watch of the DLQ)."""

ERRORS_PATTERN = "{iomflow.*}:errors:*"
"""Every error hash (``errors_key``), for the operator's ``dlq show``."""

REPLAY = ("+xadd",)
DROP = ("+xdel",)
PUBLISHER = ("+xadd",)

PASSWORD_RE = re.compile(r"[A-Za-z0-9._~-]{16,}")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
EXAMPLE_PASSWORD = "example-only-{user}"
"""``--example``: known passwords, for trying the suite out; never for a real deployment."""


# --- what the code says about the streams ---------------------------------------------------


@dataclass(frozen=True)
class ServiceStreams:
    """One service's place on the streams, as its AsyncAPI document states it."""

    name: str
    group: str
    reads: tuple[str, ...]  # streams it consumes through its group
    writes: tuple[str, ...]  # streams it appends to
    consumes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # stream -> types
    observes: tuple[str, ...] = ()  # streams it only measures (XLEN)


@dataclass(frozen=True)
class Topology:
    services: Mapping[str, ServiceStreams]
    inbound: Mapping[str, str]  # inbound event type -> the stream it goes to

    @property
    def streams(self) -> tuple[str, ...]:
        """Every stream that is read or written (dead-letter streams excluded)."""
        found = {s for svc in self.services.values() for s in (*svc.reads, *svc.writes)} | set(
            self.inbound.values()
        )
        return tuple(sorted(s for s in found if Streams.of_dlq(s) == s))


def topology_of(
    services: Mapping[str, tuple[str, Mapping[str, Sequence[str]], Sequence[str]]],
    observes: Mapping[str, Sequence[str]] | None = None,
) -> Topology:
    """From each service's (group, {subscribed stream: event types}, published streams); the
    inbound stream of an inbound type is the stream a service consumes it from."""
    out: dict[str, ServiceStreams] = {}
    inbound: dict[str, str] = {}
    for name, (group, subscribed, published) in services.items():
        for stream, types in subscribed.items():
            for type_ in types:
                if type_ in INBOUND_TYPES and inbound.setdefault(type_, stream) != stream:
                    raise ValueError(f"{type_} is consumed from {inbound[type_]} and {stream}")
        reads = sorted(subscribed)
        writes = sorted(set(published))
        own = {*reads, *writes, *(Streams.dlq(s) for s in reads)}
        watched = {s for s in (observes or {}).get(name, ()) if s not in own}
        out[name] = ServiceStreams(
            name=name,
            group=group,
            reads=tuple(reads),
            writes=tuple(writes),
            consumes={stream: tuple(sorted(types)) for stream, types in subscribed.items()},
            observes=tuple(sorted(watched)),
        )
    missing = sorted(set(INBOUND_TYPES) - set(inbound))
    if missing:
        raise ValueError(f"no service consumes the inbound types {missing}")
    return Topology(services=out, inbound=inbound)


def _service_streams(name: str, tmp: Path) -> tuple[str, dict[str, list[str]], list[str]]:
    """The service's consumer group, subscriptions and broker publishers, read from its app
    as ``create_app`` builds it (never started: nothing connects)."""
    with built_app(name, tmp) as app:
        runtime = app.state.runtime
        group: str = runtime.consumer.group
        subscribed = {s: sorted(sub.handlers) for s, sub in runtime.consumer.subscriptions.items()}
        published = [publisher.channel.name for publisher in runtime.broker.publishers]
    # HTTP ingestion (POST /v1/events): the service appends posted events to the inbound
    # stream of their type itself.
    app_module = importlib.import_module(f"iomflow.{name}.app")
    ingests: Mapping[str, str] = getattr(app_module, "INGESTS", {})
    return group, subscribed, [*published, *ingests.values()]


def observed_streams() -> dict[str, list[str]]:
    """Streams a service measures beside its own (XLEN): monitoring's dead-letter alerts."""
    checks = importlib.import_module("iomflow.monitoring.checks")
    return {"monitoring": [Streams.dlq(s) for s in checks.DLQ_STREAMS]}


def topology() -> Topology:
    """The suite's topology as the code builds it (no Redis, no database needed)."""
    from iomflow.cli.launcher import SERVICES

    with tempfile.TemporaryDirectory(prefix="iomflow-acl-") as tmp:
        found = {name: _service_streams(name, Path(tmp)) for name in SERVICES}
    return topology_of(found, observed_streams())


# --- users and their rules --------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """Commands allowed on keys (a selector on Redis 7)."""

    keys: tuple[str, ...]
    commands: tuple[str, ...]


@dataclass(frozen=True)
class User:
    name: str
    grants: tuple[Grant, ...]  # the first is the user's root permissions
    raw: str = ""  # rules as they are (admin, default), instead of grants
    password_variable: str = ""

    def rules(self, password_hash: str | None, *, selectors: bool) -> str:
        """The ACL file line of this user."""
        if self.raw:
            auth = f"on #{password_hash} " if password_hash else ""
            return f"user {self.name} reset {auth}{self.raw}".rstrip()
        assert password_hash, self.name
        parts = ["user", self.name, "reset", "on", f"#{password_hash}", "resetchannels"]
        grants = [g for g in self.grants if g.keys and g.commands]
        if selectors:
            root, rest = grants[0], grants[1:]
            parts += [*_patterns(root.keys), "-@all", *CONNECTION, *_unique(root.commands)]
            for grant in rest:
                inner = [*_patterns(grant.keys), "resetchannels", "-@all", *_unique(grant.commands)]
                parts.append("(" + " ".join(inner) + ")")
        else:
            keys = _unique(k for g in grants for k in g.keys)
            commands = _unique(c for g in grants for c in g.commands)
            parts += [*_patterns(keys), "-@all", *CONNECTION, *commands]
        return " ".join(parts)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _patterns(keys: Iterable[str]) -> list[str]:
    out = []
    for key in _unique(keys):
        if re.search(r"\s|[\[\]?\\\"']", key):
            raise ValueError(f"a key pattern may not hold spaces, quotes or ?[]\\: {key!r}")
        out.append(f"~{key}")
    return out


def rate_limit_pattern(service: str) -> str:
    """The keys of ``iomflow.shared.ingest.rate_key`` for this service."""
    return f"{rate_keys(service)}*"


def password_variable(user: str) -> str:
    """``iomflow-routes`` -> ``ROUTES_REDIS_PASSWORD``, ``pub-iro`` -> ``PUB_IRO_REDIS_PASSWORD``
    (the names deploy/compose.yaml reads)."""
    base = user.removeprefix(SERVICE_PREFIX)
    return re.sub(r"[^A-Za-z0-9]", "_", base).upper() + "_REDIS_PASSWORD"


def user_variable(user: str) -> str:
    return password_variable(user).removesuffix("_PASSWORD") + "_USER"


def service_user(svc: ServiceStreams) -> User:
    dlqs = [Streams.dlq(s) for s in svc.reads]
    errors = [
        *(errors_key(s, svc.group) for s in svc.reads),
        *(unavailable_key(s, svc.group) for s in svc.reads),
    ]
    own = Grant(
        keys=(*svc.writes, *dlqs, *errors, rate_limit_pattern(svc.name)),
        commands=(*PUBLISH, *(ERRORS if errors else ()), *RATE_LIMIT),
    )
    consume = Grant(keys=svc.reads, commands=CONSUME)
    observe = Grant(keys=tuple(s for s in svc.observes if s not in own.keys), commands=OBSERVE)
    name = SERVICE_PREFIX + svc.name
    return User(name, (own, consume, observe), password_variable=password_variable(name))


def publisher_user(name: str, types: Sequence[str], topo: Topology) -> User:
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"publisher name {name!r}: lowercase letters, digits, '-' and '_'")
    unknown = [t for t in types if t not in topo.inbound]
    if unknown or not types:
        raise ValueError(
            f"publisher {name}: unknown inbound types {unknown or '(none given)'}; "
            f"inbound types are: {', '.join(sorted(topo.inbound))}"
        )
    streams = tuple(sorted({topo.inbound[t] for t in types}))
    user = PUBLISHER_PREFIX + name
    return User(user, (Grant(streams, PUBLISHER),), password_variable=password_variable(user))


def operator_user(topo: Topology) -> User:
    streams = topo.streams
    dlqs = tuple(Streams.dlq(s) for s in streams)
    look = Grant(keys=(*streams, *dlqs, ERRORS_PATTERN), commands=INSPECT)
    return User(
        OPERATOR,
        (look, Grant(streams, REPLAY), Grant(dlqs, DROP)),
        password_variable=password_variable(OPERATOR),
    )


def default_user() -> User:
    return User("default", (), raw="off resetchannels -@all")


def admin_user() -> User:
    return User(ADMIN, (), raw="~* &* +@all", password_variable=password_variable(ADMIN))


def users(topo: Topology, publishers: Mapping[str, Sequence[str]]) -> list[User]:
    """Every user of the ACL file, in its order."""
    out = [default_user(), admin_user(), operator_user(topo)]
    out += [service_user(svc) for svc in topo.services.values()]
    out += [publisher_user(name, types, topo) for name, types in sorted(publishers.items())]
    return out


def render(accounts: Sequence[User], passwords: Mapping[str, str], *, selectors: bool) -> str:
    """The ACL file: one ``user`` line per user (ACL files allow no comments)."""
    lines = []
    for user in accounts:
        password = passwords.get(user.name)
        lines.append(user.rules(hash_key(password) if password else None, selectors=selectors))
    return "\n".join(lines) + "\n"


def user_url(base_url: str, user: str, password: str) -> str:
    """``redis://host:port/db`` with ``user:password@`` in it."""
    parts = urlsplit(base_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


# --- publishers, passwords, files -------------------------------------------------------------


def parse_publisher(value: str) -> tuple[str, list[str]]:
    name, sep, types = value.partition(":")
    if not sep or not types.strip():
        raise ValueError(f"--publisher {value!r}: expected NAME:TYPE[,TYPE...]")
    return name.strip(), [t.strip() for t in types.split(",") if t.strip()]


def load_publishers(path: Path) -> dict[str, list[str]]:
    """``[publishers]`` of a TOML file: ``name = ["event.type", ...]``."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    table = data.get("publishers")
    if not isinstance(table, dict):
        raise ValueError(f"{path}: no [publishers] table")
    out: dict[str, list[str]] = {}
    for name, types in table.items():
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ValueError(f"{path}: publishers.{name} must be a list of event types")
        out[str(name)] = list(types)
    return out


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


@dataclass
class Passwords:
    values: dict[str, str]  # user -> password
    generated: list[str]  # users whose password was made now


def choose_passwords(
    accounts: Sequence[User],
    env: Mapping[str, str],
    known: Mapping[str, str],
    *,
    example: bool = False,
) -> Passwords:
    values: dict[str, str] = {}
    generated: list[str] = []
    for user in accounts:
        if not user.password_variable:
            continue
        var = user.password_variable
        if example:
            password = EXAMPLE_PASSWORD.format(user=user.name)
        elif env.get(var):
            password = env[var]
        elif known.get(var):
            password = known[var]
        else:
            password = secrets.token_urlsafe(32)
            generated.append(user.name)
        if not PASSWORD_RE.fullmatch(password):
            raise ValueError(
                f"{var}: a password must be at least 16 characters of A-Z a-z 0-9 . _ ~ -"
            )
        values[user.name] = password
    return Passwords(values, generated)


def secrets_text(
    accounts: Sequence[User], passwords: Mapping[str, str], redis_url: str | None
) -> str:
    lines = [
        "# Redis users of iomflow and their passwords (iomflow acl). Keep this file secret.",
        "# An env file: docker-compose --env-file, or `set -a; . FILE; set +a`.",
    ]
    for user in accounts:
        if user.name not in passwords:
            continue
        lines.append(f"{user_variable(user.name)}={user.name}")
        lines.append(f"{user.password_variable}={passwords[user.name]}")
        if redis_url:
            url = user_url(redis_url, user.name, passwords[user.name])
            lines.append(f"{user.password_variable.removesuffix('_PASSWORD')}_URL={url}")
    return "\n".join(lines) + "\n"


def write_file(path: Path, text: str, mode: int) -> None:
    """Write atomically with ``mode`` from the start (never readable by others meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the command ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iomflow acl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  iomflow acl --publishers deploy/redis/publishers.toml \\\n"
            "      --out deploy/redis/users.acl --secrets deploy/redis/secrets.env\n"
            "  iomflow acl --publisher copmko:diagnostics.result.submitted --selectors \\\n"
            "      --out users.acl          # generated passwords are printed once\n"
            "  iomflow acl --inbound        # which stream each inbound event type goes to"
        ),
    )
    p.add_argument(
        "--publisher",
        action="append",
        default=[],
        metavar="NAME:TYPE[,TYPE...]",
        help="an outside publisher (user pub-NAME) and the inbound event types it may send",
    )
    p.add_argument(
        "--publishers",
        type=Path,
        metavar="FILE",
        help='TOML with a [publishers] table: NAME = ["event.type", ...]',
    )
    p.add_argument(
        "--selectors",
        action="store_true",
        help="Redis 7.0+ selectors: services cannot write what they only read (tighter)",
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="write the ACL file here (mode 0640)")
    p.add_argument(
        "--secrets",
        type=Path,
        metavar="FILE",
        help="env file of users and passwords (mode 0600); read first if it exists",
    )
    p.add_argument(
        "--redis-url",
        metavar="URL",
        help="also put each user's redis://user:password@host URL in the secrets (e.g. "
        "redis://redis:6379/0)",
    )
    p.add_argument(
        "--example",
        action="store_true",
        help="known example passwords (example-only-<user>): for deploy/redis/*.example only",
    )
    p.add_argument(
        "--inbound",
        action="store_true",
        help="print each inbound event type and its stream, and exit",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.redis_url is not None:
            checked_redis_url(args.redis_url, "--redis-url")
        topo = topology()
        if args.inbound:
            for type_, stream in sorted(topo.inbound.items()):
                print(f"{type_}\t{stream}")
            return EXIT_OK
        publishers: dict[str, list[str]] = {}
        if args.publishers is not None:
            publishers.update(load_publishers(args.publishers))
        for value in args.publisher:
            name, types = parse_publisher(value)
            publishers[name] = types
        accounts = users(topo, publishers)
        known = read_env_file(args.secrets) if args.secrets and args.secrets.exists() else {}
        passwords = choose_passwords(accounts, os.environ, known, example=args.example)
    except (ValueError, OSError, tomllib.TOMLDecodeError, UsageError) as exc:
        print(f"iomflow acl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if passwords.generated and args.secrets is None and args.out is None:
        print(
            "iomflow acl: passwords were generated for "
            f"{', '.join(passwords.generated)}; give --secrets FILE to keep them, or --out "
            "FILE so that they can be printed here once (or set <NAME>_REDIS_PASSWORD)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    text = render(accounts, passwords.values, selectors=args.selectors)
    if args.out is not None:
        write_file(args.out, text, 0o640)
        print(f"ACL: {len(accounts)} users written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.secrets is not None:
        write_file(args.secrets, secrets_text(accounts, passwords.values, args.redis_url), 0o600)
        print(f"passwords: {args.secrets} (keep it secret)", file=sys.stderr)
    elif passwords.generated:
        fresh = [u for u in accounts if u.name in passwords.generated]
        print("# Generated now and shown only this once:")
        sys.stdout.write(secrets_text(fresh, passwords.values, args.redis_url))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
