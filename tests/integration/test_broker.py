"""The local broker manager: storage formatted for any cluster id Kafka can generate, and a single node
whose files are its owner's alone."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.settings import load_settings
from services.broker import BrokerError, LocalBroker, new_cluster_id
from tests.support.ports import free_ports


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask (022) in the test's process: what must be private is made so by the broker
    manager, not inherited from the process that runs it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_cluster_id_is_urlsafe_base64_of_sixteen_bytes() -> None:
    assert new_cluster_id(b"\x00" * 16) == "AAAAAAAAAAAAAAAAAAAAAA"
    assert new_cluster_id(b"\xf8" + b"\x00" * 15).startswith("-")
    assert len(new_cluster_id()) == 22


def test_a_cluster_id_starting_with_a_dash_is_formatted(tmp_path: Path) -> None:
    # One random id in 64 begins with "-": the storage tool must not read it as an option.
    settings = load_settings({"RHIZOME_STATE_DIR": str(tmp_path), "RHIZOME_KAFKA_PORT": str(free_ports(2))})
    broker = LocalBroker(settings)
    node = broker.nodes[0]
    cluster_id = new_cluster_id(b"\xf8" + bytes(range(15)))
    node.write_config(broker.voters, broker.replicas, broker.partitions)
    node.format(cluster_id)
    assert node.cluster_id() == cluster_id


def wider(root: Path) -> list[str]:
    """Returns every path under `root` (itself included) that group or others may reach, with its mode."""
    return [
        f"{p} {stat.S_IMODE(p.stat().st_mode):o}"
        for p in [root, *root.rglob("*")]
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    ]


def test_a_single_node_keeps_its_files_private_and_narrows_older_ones_at_start(
    tmp_path: Path, permissive_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings({"RHIZOME_STATE_DIR": str(tmp_path / "state"), "RHIZOME_KAFKA_PORT": str(free_ports(2))})
    broker = LocalBroker(settings)
    broker.start(timeout=180)
    try:
        assert broker.status().reachable
        home = settings.kafka_dir
        segments = list(home.glob("data/__cluster_metadata-0/*.log"))
        assert segments
        # The state directory, the broker's folder, its config, log and pid, and what the JVM wrote.
        assert stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o700
        assert wider(home) == []
        # A cluster is refused while this node runs from the same folder.
        with pytest.raises(BrokerError, match="a local Kafka of 1 node"):
            LocalBroker(settings, nodes=3).start(timeout=5)
    finally:
        broker.stop()
    # As an older version left them: readable by everyone.
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    settings.state_dir.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="rhizome"):
        broker.start(timeout=180)
    try:
        assert wider(home) == [] and stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o700
        assert f"to their owner, group and others could reach them: {home} (mode 755)" in caplog.text
    finally:
        broker.stop()
