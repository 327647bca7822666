"""The settings (experiments/settings.py): the local Kafka's size, events' maximum age, and the state
files kept private."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from experiments.settings import DEFAULT_EVENT_MAX_AGE_DAYS, load_settings, min_insync_replicas, narrow, private_dir
from experiments.store import Store

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """Runs the test under the usual umask (022), whatever an earlier test set: what must be private is
    made so by the code under test, not by the process's umask."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_three_nodes_give_the_clients_every_node_and_topics_of_three_replicas() -> None:
    one = load_settings({"RHIZOME_KAFKA_PORT": "9100"})
    assert (one.kafka_nodes, one.kafka_bootstrap, one.topic_replication, one.kafka_heap) == (
        1,
        "127.0.0.1:9100",
        1,
        "768m",
    )
    three = load_settings({"RHIZOME_KAFKA_PORT": "9100", "RHIZOME_KAFKA_NODES": "3"})
    assert three.kafka_bootstrap == "127.0.0.1:9100,127.0.0.1:9102,127.0.0.1:9104"
    assert (three.topic_replication, three.kafka_heap, three.local_broker) == (3, "512m", True)
    # Named explicitly, the replication and the heap are kept; so is a bootstrap of elsewhere.
    named = load_settings(
        {
            "RHIZOME_KAFKA_NODES": "3",
            "RHIZOME_TOPIC_REPLICATION": "2",
            "RHIZOME_KAFKA_HEAP": "300m",
            "RHIZOME_KAFKA_BOOTSTRAP": "kafka:9092",
        }
    )
    assert (named.topic_replication, named.kafka_heap, named.kafka_bootstrap) == (2, "300m", "kafka:9092")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RHIZOME_KAFKA_NODES", "2", "RHIZOME_KAFKA_NODES == 2, must be one of (1, 3)."),
        ("RHIZOME_KAFKA_NODES", "three", "RHIZOME_KAFKA_NODES == 'three', must be an integer."),
        ("RHIZOME_TOPIC_REPLICATION", "0", "RHIZOME_TOPIC_REPLICATION == 0, must be >= 1."),
    ],
)
def test_a_bad_size_is_refused_naming_the_setting_and_the_value(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        load_settings({name: value})
    assert str(caught.value) == message


def test_a_write_needs_a_majority_of_the_replicas() -> None:
    assert [min_insync_replicas(r) for r in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_narrow_takes_group_and_others_access_away_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = tmp_path / "kafka"
    (tree / "data" / "topic-0").mkdir(parents=True)
    tree.chmod(0o755)
    (tree / "data").chmod(0o775)
    (tree / "data" / "topic-0").chmod(0o711)
    segment = tree / "data" / "topic-0" / "00000.log"
    segment.write_text("records")
    segment.chmod(0o644)
    checkpoint = tree / "data" / "checkpoint"
    checkpoint.write_text("0")
    checkpoint.chmod(0o400)  # already private, and read-only: left as it is
    (tree / "link").symlink_to("/etc/hostname")
    with caplog.at_level(logging.WARNING, logger="rhizome"):
        assert narrow(tree, recursive=True) == 4
    modes = [mode(p) for p in (tree, tree / "data", tree / "data" / "topic-0", segment, checkpoint)]
    assert modes == [0o700, 0o700, 0o700, 0o600, 0o400]
    assert mode(Path("/etc/hostname")) & 0o044, "the link's target is not ours to change"
    assert len(caplog.records) == 1
    assert "narrowed 4 path(s) to their owner" in caplog.text and f"3 more under {tree}" in caplog.text
    caplog.clear()
    assert narrow(tree, recursive=True) == 0
    assert not caplog.records


def test_private_dir_creates_every_missing_folder_0700_and_narrows_an_existing_one(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "b" / "state")
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", made)] == [0o700, 0o700, 0o700]
    made.chmod(0o755)
    private_dir(made)
    assert mode(made) == 0o700


def test_the_secret_and_its_folder_are_private_and_an_old_secret_is_narrowed(tmp_path: Path) -> None:
    settings = load_settings({"RHIZOME_STATE_DIR": str(tmp_path / "state")})
    keyed = settings.ensure_secret()
    assert keyed.secret and mode(settings.state_dir) == 0o700 and mode(settings.secret_file) == 0o600
    settings.state_dir.chmod(0o755)
    settings.secret_file.chmod(0o644)
    assert settings.ensure_secret().secret == keyed.secret
    assert mode(settings.state_dir) == 0o700 and mode(settings.secret_file) == 0o600


def test_the_sqlite_store_is_created_0600_in_folders_0700_with_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "rhizome.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    try:
        assert mode(path.parent) == 0o700 and mode(path) == 0o600
        journal = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(p.exists() and mode(p) == 0o600 for p in journal), [(p, p.exists()) for p in journal]
    finally:
        store.close()


def test_an_older_store_readable_by_others_is_narrowed_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rhizome.db"
    Store(f"sqlite:///{path}").migrate()
    for p in (path, path.with_name("rhizome.db-wal")):
        if p.exists():
            p.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="rhizome"):
        Store(f"sqlite:///{path}").close()
    assert mode(path) == 0o600
    assert f"{path} (mode 644)" in caplog.text


def test_an_in_memory_store_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Store("sqlite://").close()
    Store("sqlite:///:memory:").close()
    assert list(tmp_path.iterdir()) == []


def test_every_rhizome_process_runs_with_a_private_umask() -> None:
    # In a process of its own: the umask is the process's.
    code = (
        "import contextlib, os, services.cli as cli\n"
        "with contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "print(oct(os.umask(0)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "0o77"


def test_events_may_be_dated_400_days_back_unless_the_deployment_says_otherwise(tmp_path: Path) -> None:
    none = tmp_path / "none.toml"
    assert load_settings({}, none).event_max_age == timedelta(days=DEFAULT_EVENT_MAX_AGE_DAYS) == timedelta(days=400)
    assert load_settings({"RHIZOME_EVENT_MAX_AGE_DAYS": "30"}, none).event_max_age == timedelta(days=30)
    (tmp_path / "rhizome.toml").write_text("event_max_age_days = 800\n")
    assert load_settings({}, tmp_path / "rhizome.toml").event_max_age_days == 800


@pytest.mark.parametrize("days", ["0", "-5", "36501", "a year"])
def test_a_maximum_age_out_of_bounds_is_refused_naming_the_setting(tmp_path: Path, days: str) -> None:
    with pytest.raises(ValueError, match=r"^RHIZOME_EVENT_MAX_AGE_DAYS == "):
        load_settings({"RHIZOME_EVENT_MAX_AGE_DAYS": days}, tmp_path / "none.toml")


def test_opening_an_existing_store_never_opens_its_file_outside_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing any descriptor of the database file releases every POSIX lock this process's SQLite
    connections hold on it; another process closing its last connection may then delete the WAL they
    still write to, and their writes are lost (seen with the worker and the portal on one SQLite file).
    So a store opened again only narrows the file's mode, without opening it."""
    path = tmp_path / "rhizome.db"
    first = Store(f"sqlite:///{path}")
    first.migrate()
    opened: list[str] = []
    real_open = os.open

    def recording_open(file: Any, *args: Any, **kwargs: Any) -> int:
        descriptor = real_open(file, *args, **kwargs)  # an open that fails leaves no descriptor to close
        opened.append(os.fspath(file))
        return descriptor

    monkeypatch.setattr(os, "open", recording_open)
    try:
        path.chmod(0o644)
        Store(f"sqlite:///{path}").close()
        assert str(path) not in opened
        assert mode(path) == 0o600
    finally:
        first.close()
