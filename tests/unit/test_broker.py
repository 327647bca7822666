"""The local Kafka's layout, readiness and command line, without starting a JVM (the JVMs are in
tests/integration/test_broker.py and test_cluster.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.settings import load_settings
from services.broker import BrokerError, BrokerStatus, ClusterView, LocalBroker, NodeStatus
from services.cli import main


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RHIZOME_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RHIZOME_KAFKA_PORT", "9300")
    monkeypatch.delenv("RHIZOME_KAFKA_NODES", raising=False)
    # The command line sets the process's umask: put it back.
    old = os.umask(0o022)
    yield tmp_path / "state"
    os.umask(old)


def test_a_cluster_of_three_has_a_folder_two_ports_and_a_vote_for_each_node(state: Path) -> None:
    cluster = LocalBroker(load_settings(), nodes=3)
    assert [(n.node_id, n.port, n.controller_port, n.home) for n in cluster.nodes] == [
        (1, 9300, 9301, state / "kafka" / "node-1"),
        (2, 9302, 9303, state / "kafka" / "node-2"),
        (3, 9304, 9305, state / "kafka" / "node-3"),
    ]
    assert cluster.bootstrap == "127.0.0.1:9300,127.0.0.1:9302,127.0.0.1:9304"
    assert cluster.voters == "1@127.0.0.1:9301,2@127.0.0.1:9303,3@127.0.0.1:9305"
    assert cluster.replicas == 3
    single = LocalBroker(load_settings())
    # A single node keeps the folder it always had.
    assert [(n.node_id, n.port, n.home) for n in single.nodes] == [(1, 9300, state / "kafka")]
    with pytest.raises(BrokerError, match=r"nodes == 2, must be one of \(1, 3\)"):
        LocalBroker(load_settings(), nodes=2)


def test_each_node_gets_its_own_config_with_the_quorum_and_a_majority_in_sync(state: Path) -> None:
    cluster = LocalBroker(load_settings(), nodes=3)
    node = cluster.node(2)
    node.write_config(cluster.voters, cluster.replicas, 4)
    config = dict(
        line.split("=", 1) for line in node.config_file.read_text().splitlines() if line and not line.startswith("#")
    )
    assert config["node.id"] == "2"
    assert config["controller.quorum.voters"] == cluster.voters
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:9302,CONTROLLER://127.0.0.1:9303"
    assert config["log.dirs"] == str(state / "kafka" / "node-2" / "data")
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == ("3", "2")
    assert (config["offsets.topic.replication.factor"], config["transaction.state.log.min.isr"]) == ("3", "2")
    assert os.stat(node.config_file).st_mode & 0o077 == 0 and os.stat(node.home).st_mode & 0o077 == 0
    with pytest.raises(BrokerError, match=r"node == 4, must be one of \[1, 2, 3\]"):
        cluster.node(4)


def test_ready_only_when_every_node_is_a_broker_and_a_caught_up_voter_under_a_leader() -> None:
    nodes = (1, 2, 3)
    whole = ClusterView(frozenset(nodes), frozenset(nodes), frozenset(nodes), 2)
    assert whole.whole(nodes)
    for view in (
        ClusterView(frozenset({1, 2}), frozenset(nodes), frozenset(nodes), 2),  # a broker fenced or unregistered
        ClusterView(frozenset(nodes), frozenset({1, 2}), frozenset({1, 2}), 2),  # a quorum of two voters
        ClusterView(frozenset(nodes), frozenset(nodes), frozenset({1, 2}), 2),  # a voter behind
        ClusterView(frozenset(nodes), frozenset(nodes), frozenset(nodes), None),  # no leader elected
    ):
        assert not view.whole(nodes), view


def test_status_names_every_node_and_the_active_controller(tmp_path: Path) -> None:
    nodes = tuple(
        NodeStatus(i, 100 + i if i != 2 else None, f"127.0.0.1:{9300 + 2 * i}", f"127.0.0.1:{9301 + 2 * i}", tmp_path)
        for i in (1, 2, 3)
    )
    degraded = BrokerStatus(nodes, False, "b", 1).describe().splitlines()
    assert degraded[0] == "cluster of 3 nodes: 2 running, not whole at b"
    assert degraded[2].startswith("  node 2: stopped at 127.0.0.1:9304")
    ready = BrokerStatus(nodes, True, "b", 3).describe()
    assert ready.startswith("cluster of 3 nodes ready at b (active controller: node 3)")
    single = BrokerStatus(nodes[:1], True, "b", 1).describe()
    assert single == f"running (pid 101) at b, data in {tmp_path}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["broker", "start", "--node", "2"], "--node == 2, only `rhizome broker stop` takes one node"),
        (["broker", "stop", "--node", "4"], "--node == 4, the local Kafka has nodes 1 to 1"),
        (["broker", "stop", "--nodes", "3", "--node", "0"], "--node == 0, the local Kafka has nodes 1 to 3"),
    ],
)
def test_a_bad_node_is_refused_with_exit_2_naming_it(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == message


def test_a_cluster_of_two_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["broker", "start", "--nodes", "2"])
    assert stopped.value.code == 2
    assert "--nodes: invalid choice: 2 (choose from 1, 3)" in capsys.readouterr().err


def test_status_of_nothing_running_exits_1(capsys: pytest.CaptureFixture[str], state: Path) -> None:
    assert main(["broker", "status"]) == 1
    assert capsys.readouterr().out.strip() == f"stopped (data in {state / 'kafka' / 'data'})"
    assert main(["broker", "stop"]) == 0
    assert capsys.readouterr().out.strip() == "broker was not running"
