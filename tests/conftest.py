"""Shared fixtures: the real Apache Kafka broker and PostgreSQL server the integration tests need.

Both are started once per test session (the broker from the jars Maven fetched into
infra/kafka/target/dependency), and every test gets its own topic namespace and database.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from experiments.settings import load_settings
from experiments.store import Store
from services.broker import LocalBroker
from tests.support.ports import free_ports
from tests.support.postgres import PostgresServer
from tests.support.stack import Stack

# Property tests check what is true, never how fast: no example fails for taking long on a busy machine.
hypothesis_settings.register_profile("rhizome", deadline=None)
hypothesis_settings.load_profile("rhizome")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Returns the bootstrap address of a single-node KRaft broker started for the session."""
    external = os.environ.get("RHIZOME_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    state = tmp_path_factory.mktemp("kafka")
    port = free_ports(2)  # the broker's port and its controller's, the next one
    settings = replace(load_settings({"RHIZOME_STATE_DIR": str(state)}), kafka_port=port)
    broker = LocalBroker(settings)
    broker.start(timeout=120)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Returns a fresh, empty database: SQLite and PostgreSQL in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rhizome.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """Returns a store on a fresh database (SQLite and PostgreSQL in turn), migrated, closed after."""
    s = Store(database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rhizome.db'}"


@pytest.fixture
def stack(tmp_path: Path, kafka_bootstrap: str, sqlite_url: str) -> Iterator[Stack]:
    """Returns the platform's processes for one test: own namespace, own SQLite database."""
    s = Stack(tmp_path, kafka_bootstrap, sqlite_url, f"t{uuid.uuid4().hex[:12]}")
    try:
        yield s
    finally:
        s.stop()
        # A supervisor's restart keeps the figures exact, so the test may pass: it is shown, not hidden.
        if not s.expect_restarts:
            for reason in s.restarts():
                warnings.warn(f"a worker's supervisor restarted it: {reason}", RuntimeWarning, stacklevel=1)
