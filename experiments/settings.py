"""The one settings object of Rhizome, and the one place that reads the environment.

It lives in `experiments` because every layer (streams, services, ui) may import `experiments`
and nothing else of ours is importable by all of them.

Precedence: environment variable, then `rhizome.toml` in the working directory (keys without
the `RHIZOME_` prefix, lower case), then the default.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import sys
import tomllib
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("rhizome")

#: The port of the local broker started by `rhizome broker start` (and its controller port + 1); the
#: nodes of a local cluster take the next pairs (9094 and 9095, 9096 and 9097).
DEFAULT_KAFKA_PORT = 9092
#: A single node, or a cluster of three (a quorum that outlives one node) on one machine.
KAFKA_NODE_COUNTS = (1, 3)
#: What Rhizome creates is its owner's alone: the state directory holds the password hashes, the
#: citizens' texts (rhizome.db), the pseudonymisation key and the Kafka logs. Processes run with this
#: umask (folders 0700, files 0600), and state found wider is narrowed at start.
PRIVATE_UMASK = 0o077
DEFAULT_INGEST_PORT = 8700
DEFAULT_CONSOLE_PORT = 8501
#: How long before the time it was received an event may be dated: a little over a year, so a pilot's
#: yearly figures can be backfilled while a mistyped year (0004, 1926) is refused.
DEFAULT_EVENT_MAX_AGE_DAYS = 400
#: The longest maximum age the settings take (a century): every time the worker accepts stays well
#: inside what UTC and the store can hold.
EVENT_MAX_AGE_DAYS_LIMIT = 36_500
DEFAULT_PORTAL_PORT = 8600


@dataclass(frozen=True, slots=True)
class Settings:
    """Where Rhizome keeps its state and how it reaches Kafka and the database."""

    state_dir: Path
    database_url: str
    kafka_bootstrap: str
    #: True when `kafka_bootstrap` was not given, i.e. the local broker is ours to manage.
    local_broker: bool
    kafka_port: int
    secret: str | None
    ingest_host: str
    ingest_port: int
    console_host: str
    console_port: int
    #: Where the citizens' portal listens (`rhizome portal`).
    portal_host: str
    portal_port: int
    topic_partitions: int
    #: How late (event time behind the newest event of its partition) an event may still count.
    grace_seconds: int
    #: Prefix of the Kafka topics and name of the workers' consumer group.
    namespace: str
    #: Replicas of every Rhizome topic (1 on one machine; 3 on a cluster).
    topic_replication: int
    #: Nodes of the local Kafka (`rhizome broker start`): 1, or 3 for a cluster.
    kafka_nodes: int
    #: Java heap of each node of the local broker.
    kafka_heap: str
    #: How long a worker may make no progress (a table recovery, the commits of a partition with
    #: records waiting, the store's writes) before its `/healthz` answers 503.
    worker_stall_seconds: int
    #: Where a worker serves `/healthz` and `/metrics`: loopback by default (a pod's address in
    #: Kubernetes, where the kubelet probes it); port 0 picks a free port, which the worker logs.
    worker_health_host: str
    worker_health_port: int
    #: How long before the time it was received (`received_at`, else the clock) an event may be
    #: dated; older events are refused by the ingest API and the SDK, dead-lettered by the worker.
    event_max_age_days: int

    @property
    def event_max_age(self) -> timedelta:
        return timedelta(days=self.event_max_age_days)

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def secret_file(self) -> Path:
        return self.state_dir / "secret"

    def ensure_secret(self) -> Settings:
        """Returns settings carrying the pseudonymisation key, generated and stored on first use."""
        if self.secret:
            return self
        private_dir(self.state_dir)
        if self.secret_file.exists():
            narrow(self.secret_file)
            return replace(self, secret=self.secret_file.read_text().strip())
        key = secrets.token_urlsafe(32)
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        # Every process of one deployment must share the key, or pseudonyms will not match.
        sys.stderr.write(
            f"rhizome: RHIZOME_SECRET is not set; generated a pseudonymisation key in {self.secret_file} "
            "(set RHIZOME_SECRET when several machines or containers share a deployment)\n"
        )
        return replace(self, secret=key)


def min_insync_replicas(replication: int) -> int:
    """Returns how many replicas must hold a write before it is acknowledged: a majority (2 of 3)."""
    return replication // 2 + 1


def narrow(path: Path, *, recursive: bool = False) -> int:
    """Returns how many paths it narrowed to their owner (group and others lose every access):
    `path`, and with `recursive` everything below it; a log line names what was wider."""
    narrowed: list[tuple[Path, int]] = []
    for p in _walk(path) if recursive else [path]:
        try:
            mode = stat.S_IMODE(p.lstat().st_mode)
            if mode & PRIVATE_UMASK and not p.is_symlink():
                p.chmod(mode & ~PRIVATE_UMASK)
                narrowed.append((p, mode))
        except FileNotFoundError:  # removed meanwhile by the process that owns it (a Kafka segment)
            continue
    if narrowed:
        first, mode = narrowed[0]
        log.warning(
            "rhizome: narrowed %d path(s) to their owner, group and others could reach them: %s (mode %o)%s",
            len(narrowed),
            first,
            mode,
            f" and {len(narrowed) - 1} more under {path}" if len(narrowed) > 1 else "",
        )
    return len(narrowed)


def _walk(root: Path) -> list[Path]:
    found = [root]
    for folder, dirs, files in os.walk(root):
        found.extend(Path(folder, name) for name in (*dirs, *files))
    return found


def private_dir(path: Path) -> Path:
    """Returns `path`, a folder created 0700 (with its missing parents) or narrowed to its owner."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    narrow(path)
    return path


def _file_values(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def load_settings(environ: dict[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Returns the settings read from the environment and the optional `rhizome.toml`."""
    env = dict(os.environ if environ is None else environ)
    file_values = _file_values(config_file or Path("rhizome.toml"))

    def get(name: str, default: str | None = None) -> str | None:
        value = env.get(f"RHIZOME_{name.upper()}")
        if value is not None and value != "":
            return value
        if name in file_values:
            return str(file_values[name])
        return default

    def get_int(name: str, default: int) -> int:
        raw = get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"RHIZOME_{name.upper()} == {raw!r}, must be an integer.") from None

    def get_bounded(name: str, default: int, ge: int, le: int) -> int:
        value = get_int(name, default)
        if not ge <= value <= le:
            raise ValueError(f"RHIZOME_{name.upper()} == {value}, must be >= {ge} and <= {le}.")
        return value

    state_dir = Path(get("state_dir", ".rhizome") or ".rhizome").resolve()
    kafka_port = get_int("kafka_port", DEFAULT_KAFKA_PORT)
    kafka_nodes = get_int("kafka_nodes", 1)
    if kafka_nodes not in KAFKA_NODE_COUNTS:
        raise ValueError(f"RHIZOME_KAFKA_NODES == {kafka_nodes!r}, must be one of {KAFKA_NODE_COUNTS}.")
    replication = get_int("topic_replication", kafka_nodes)
    if replication < 1:
        raise ValueError(f"RHIZOME_TOPIC_REPLICATION == {replication!r}, must be >= 1.")
    bootstrap = get("kafka_bootstrap")
    database_url = get("database_url") or f"sqlite:///{state_dir / 'rhizome.db'}"
    return Settings(
        state_dir=state_dir,
        database_url=database_url,
        kafka_bootstrap=bootstrap or local_bootstrap(kafka_port, kafka_nodes),
        local_broker=bootstrap is None,
        kafka_port=kafka_port,
        secret=get("secret"),
        ingest_host=get("ingest_host", "127.0.0.1") or "127.0.0.1",
        ingest_port=get_int("ingest_port", DEFAULT_INGEST_PORT),
        console_host=get("console_host", "127.0.0.1") or "127.0.0.1",
        console_port=get_int("console_port", DEFAULT_CONSOLE_PORT),
        portal_host=get("portal_host", "127.0.0.1") or "127.0.0.1",
        portal_port=get_int("portal_port", DEFAULT_PORTAL_PORT),
        topic_partitions=get_int("topic_partitions", 4),
        grace_seconds=get_int("grace_seconds", 2 * 86400),
        namespace=get("namespace", "rhizome") or "rhizome",
        topic_replication=replication,
        kafka_nodes=kafka_nodes,
        kafka_heap=get("kafka_heap") or ("768m" if kafka_nodes == 1 else "512m"),
        worker_stall_seconds=get_bounded("worker_stall_seconds", 60, 1, 86400),
        worker_health_host=get("worker_health_host", "127.0.0.1") or "127.0.0.1",
        worker_health_port=get_bounded("worker_health_port", 0, 0, 65535),
        event_max_age_days=get_bounded("event_max_age_days", DEFAULT_EVENT_MAX_AGE_DAYS, 1, EVENT_MAX_AGE_DAYS_LIMIT),
    )


def local_bootstrap(kafka_port: int, nodes: int) -> str:
    """Returns the bootstrap list of the local broker's nodes: node i listens on port + 2 (i - 1)."""
    return ",".join(f"127.0.0.1:{kafka_port + 2 * i}" for i in range(nodes))
