"""The one settings object of Rhizome, and the one place that reads the environment.

It lives in `experiments` because every layer (streams, services, ui) may import `experiments`
and nothing else of ours is importable by all of them.

Precedence: environment variable, then `rhizome.toml` in the working directory (keys without
the `RHIZOME_` prefix, lower case), then the default.
"""

from __future__ import annotations

import os
import secrets
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

#: The port of the local broker started by `rhizome broker start` (and its controller port + 1).
DEFAULT_KAFKA_PORT = 9092
DEFAULT_INGEST_PORT = 8700
DEFAULT_CONSOLE_PORT = 8501
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
    #: Java heap of the local broker.
    kafka_heap: str
    #: How long a worker may make no progress (a table recovery, or the commits of a partition with
    #: records waiting) before its watchdog restarts it.
    worker_stall_seconds: int

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
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.secret_file.exists():
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

    state_dir = Path(get("state_dir", ".rhizome") or ".rhizome").resolve()
    kafka_port = get_int("kafka_port", DEFAULT_KAFKA_PORT)
    bootstrap = get("kafka_bootstrap")
    database_url = get("database_url") or f"sqlite:///{state_dir / 'rhizome.db'}"
    return Settings(
        state_dir=state_dir,
        database_url=database_url,
        kafka_bootstrap=bootstrap or f"127.0.0.1:{kafka_port}",
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
        topic_replication=get_int("topic_replication", 1),
        kafka_heap=get("kafka_heap", "768m") or "768m",
        worker_stall_seconds=get_int("worker_stall_seconds", 60),
    )
