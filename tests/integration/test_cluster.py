"""A three-node KRaft cluster on this machine, with nodes killed under load (issue 24, items 17, 18, 12).

The cluster is started once for the module (each node a broker and a controller); every test begins
with all three nodes up, and the store is PostgreSQL. While the SDK sends steadily, the leader of a
partition and later the active controller are killed with SIGKILL and restarted: every event the
ingest answered 202 is counted exactly once. With one node of three left, the ingest answers 503,
never 202. Three workers on twelve partitions store the same figures as one, and still do when one
of them is killed.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResourceType
from kafka.partitioner.default import murmur2

from experiments.assignment import variant_for
from experiments.settings import load_settings
from experiments.specs import parse_pilot_spec
from services.broker import LocalBroker
from services.sdk import RhizomeClient
from services.simulator.citizens import BEHAVIOURS, generate
from services.simulator.truth import UNITS, expected
from streams.events import Topics, ensure_settings_topics, new_event
from tests.integration.test_sdk_outage import SPEC as SHOP_SPEC
from tests.integration.test_sdk_outage import Citizens
from tests.integration.test_stream_exactness import PILOT as BIKE_SHARE
from tests.integration.test_stream_exactness import SPEC as BIKE_SHARE_SPEC
from tests.integration.test_stream_exactness import assert_exact, simulated
from tests.support.cluster import (
    Answers,
    Placement,
    config,
    figure_differences,
    fully_in_sync,
    percentile,
    placements,
    post_until_accepted,
    stored_figures,
)
from tests.support.postgres import PostgresServer
from tests.support.stack import ROOT, Stack
from tests.support.truthcheck import differences
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka

NODES = (1, 2, 3)
SHOP = parse_pilot_spec(SHOP_SPEC)
SECRET = "test-secret-not-for-production"
TOPIC, BROKER = ConfigResourceType.TOPIC, ConfigResourceType.BROKER


@pytest.fixture
def whole_cluster(kafka_cluster: LocalBroker) -> LocalBroker:
    """Returns the module's cluster with all three nodes running and every partition fully in sync
    (a test before may have killed nodes)."""
    kafka_cluster.start(timeout=180)
    deadline = time.monotonic() + 120
    while not fully_in_sync(kafka_cluster.bootstrap, len(NODES)):
        assert time.monotonic() < deadline, "the cluster's partitions did not get back in sync"
        time.sleep(0.5)
    return kafka_cluster


@pytest.fixture
def new_stack(
    tmp_path: Path, whole_cluster: LocalBroker, postgres_server: PostgresServer
) -> Iterator[Callable[[int], Stack]]:
    """Returns a maker of stacks on the cluster (topics of three replicas, a PostgreSQL database of
    their own); every stack made is stopped after the test."""
    made: list[Stack] = []

    def make(partitions: int) -> Stack:
        name = f"t{uuid.uuid4().hex[:12]}"
        folder = tmp_path / name
        folder.mkdir()
        stack = Stack(folder, whole_cluster.bootstrap, postgres_server.create_database(name), name, partitions)
        stack.extra_env = {"RHIZOME_TOPIC_REPLICATION": str(len(NODES))}
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.stop()
        for reason in stack.restarts():
            warnings.warn(f"a worker's watchdog restarted it: {reason}", RuntimeWarning, stacklevel=1)


def test_three_nodes_form_one_quorum_and_topics_get_three_replicas_two_in_sync(
    whole_cluster: LocalBroker, tmp_path: Path
) -> None:
    view = whole_cluster.view()
    assert view is not None and view.whole(NODES), view
    assert view.voters == frozenset(NODES) and view.controller in NODES
    # The settings of a deployment on the local cluster: RHIZOME_KAFKA_NODES=3 gives the bootstrap
    # list of the three nodes and topics of three replicas.
    settings = load_settings(
        {
            "RHIZOME_KAFKA_NODES": "3",
            "RHIZOME_KAFKA_PORT": str(whole_cluster.port),
            "RHIZOME_NAMESPACE": f"t{uuid.uuid4().hex[:12]}",
            "RHIZOME_STATE_DIR": str(tmp_path),
        }
    )
    assert settings.kafka_bootstrap == whole_cluster.bootstrap
    topics = Topics(settings.namespace)
    assert sorted(ensure_settings_topics(settings)) == sorted(topics.all)

    def every_partition() -> dict[tuple[str, int], Placement] | None:
        # Every node learns of new topics from the quorum, some a little later than others.
        found = placements(whole_cluster.bootstrap, topics.all)
        return found if len(found) == len(topics.all) * settings.topic_partitions else None

    found = wait_until(every_partition, 30, what="every partition of the new topics")
    assert all(p.replicas == frozenset(NODES) == p.in_sync for p in found.values()), found
    assert {config(whole_cluster.bootstrap, TOPIC, t, "min.insync.replicas") for t in topics.all} == {"2"}
    # And so do the topics Kafka and faust make: the consumer groups' offsets, the workers' changelogs.
    for node in NODES:
        defaults = {
            key: config(whole_cluster.bootstrap, BROKER, str(node), key)
            for key in ("default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor")
        }
        assert defaults == {
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            "offsets.topic.replication.factor": "3",
        }

    status = subprocess.run(
        [sys.executable, "-m", "services.cli", "broker", "status"],
        env={
            **os.environ,
            "RHIZOME_STATE_DIR": str(whole_cluster.state_dir),
            "RHIZOME_KAFKA_PORT": str(whole_cluster.port),
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"cluster of 3 nodes ready at {whole_cluster.bootstrap}" in status.stdout
    assert f"(active controller: node {view.controller})" in status.stdout
    assert all(f"node {i}: running (pid" in status.stdout for i in NODES)


def test_the_nodes_files_are_their_owners_alone(whole_cluster: LocalBroker) -> None:
    # Written by the JVMs (under the umask they were started with) and by the broker manager.
    wider = [
        f"{path} {stat.S_IMODE(path.stat().st_mode):o}"
        for path in [whole_cluster.home, *whole_cluster.home.rglob("*")]
        if stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    assert not wider, wider
    segments = list(whole_cluster.home.glob("node-*/data/__cluster_metadata-0/*.log"))
    assert len(segments) == len(NODES)


def test_partition_leader_then_active_controller_killed_while_the_sdk_sends_every_event_counts_once(
    whole_cluster: LocalBroker, new_stack: Callable[[int], Stack]
) -> None:
    cluster = whole_cluster
    stack = new_stack(4)
    api_key = stack.apply(SHOP_SPEC)
    stack.start_ingest()
    workers = [stack.start_worker(), stack.start_worker()]
    client = RhizomeClient(
        stack.ingest_url,
        api_key,
        source="failover-test",
        flush_interval=0.2,
        max_batch=200,
        backoff=0.2,
        max_backoff=2.0,
        request_timeout=30.0,
        close_timeout=60.0,
        secret=SECRET,
    )
    answers = Answers()
    # The SDK's own HTTP client (private): the test times every answer its sender gets.
    answers.watch(client._http)
    citizens = Citizens(client)
    citizens.start()
    topics = Topics(stack.namespace)
    recovered: list[float] = []
    try:
        stack.wait(lambda: client.stats().sent >= 200, 60, what="the SDK to deliver before the failover")
        stack.wait(lambda: stack.store().experiment_statistics("reorder-button").get(UNITS), 180, what="aggregates")

        # A partition whose leader is not the active controller: its death is a broker's alone.
        view = cluster.view()
        assert view is not None
        usage = placements(cluster.bootstrap, [topics.usage])
        leader = next(p.leader for _, p in sorted(usage.items()) if p.leader != view.controller)
        failover_start = time.monotonic()
        for victim in ("leader", "controller"):
            if victim == "controller":
                view = cluster.view()
                assert view is not None and view.controller is not None
                node = view.controller
            else:
                node = leader
            killed_at = time.monotonic()
            cluster.kill_node(node, signal.SIGKILL)
            stack.wait(
                lambda at=killed_at: answers.acknowledged_since(at) >= 5,
                120,
                what=f"the ingest to acknowledge events again after the {victim} (node {node}) was killed",
            )
            recovered.append(time.monotonic() - killed_at)
            if victim == "leader":
                moved = placements(cluster.bootstrap, [topics.usage])
                assert all(p.leader != node for p in moved.values()), moved
            cluster.start(timeout=180)
            stack.wait(lambda: fully_in_sync(cluster.bootstrap, len(NODES)), 180, what="the restarted node in sync")
        failover_end = time.monotonic()
        sent_after = client.stats().sent
        stack.wait(lambda: client.stats().sent > sent_after + 200, 120, what="more deliveries after the failover")
    finally:
        citizens.halt.set()
        citizens.join(timeout=30)
        client.close()
    stats = client.stats()
    assert (stats.buffered, stats.dropped_full, stats.dropped_rejected) == (0, 0, 0)
    assert stats.sent == len(citizens.events)

    def exact() -> bool:
        return not differences(stack.store(), SHOP, expected(citizens.events, SHOP))

    stack.wait(exact, 300, what="figures equal to every event answered 202")
    # Once the workers have read every record, re-sent copies included, still exactly once.
    stack.wait(stack.caught_up, 180, what="the workers to read every record")
    assert differences(stack.store(), SHOP, expected(citizens.events, SHOP)) == []
    assert all(w.poll() is None for w in workers), "a worker stopped during the failover"

    during = answers.between(failover_start, failover_end)
    latencies = [a.answered_at - a.sent_at for a in during]
    print(
        f"\nfailover: {len(citizens.events)} events through the SDK ({stats.retries} retries); "
        f"killed node {leader} (a partition leader), then the active controller; acknowledgements back "
        f"{recovered[0]:.1f} s and {recovered[1]:.1f} s after the kills; during the failover "
        f"({failover_end - failover_start:.0f} s, {len(during)} requests, "
        f"{sum(a.status == 503 for a in during)} answered 503): longest gap in acknowledgements "
        f"{answers.longest_gap(failover_start, failover_end):.2f} s, ingest latency p50 "
        f"{percentile(latencies, 50):.3f} s, p99 {percentile(latencies, 99):.3f} s, max {max(latencies):.3f} s"
    )


def _shop_events(participants: list[str]) -> list[dict[str, Any]]:
    """Returns an exposure and a purchase of each participant, at the current time."""
    experiment = SHOP.experiments[0]
    events = []
    for pid in participants:
        variant = variant_for(SHOP, experiment, pid)
        assert variant is not None
        events.append(new_event("exposure", SHOP.key, pid, {"experiment": experiment.key, "variant": variant}))
        events.append(new_event("usage", SHOP.key, pid, {"action": "purchase", "value": 12.5}))
    return events


def test_with_one_node_of_three_the_ingest_answers_503_never_202(
    whole_cluster: LocalBroker, new_stack: Callable[[int], Stack]
) -> None:
    cluster = whole_cluster
    stack = new_stack(4)
    api_key = stack.apply(SHOP_SPEC)
    stack.start_ingest()
    stack.start_worker()
    headers = {"Authorization": f"Bearer {api_key}"}
    accepted = _shop_events([f"before-{i}" for i in range(20)])
    post_until_accepted(stack, api_key, accepted)
    # The worker is past its start-up (which needs a whole cluster) once it has counted them.
    stack.wait(
        lambda: not differences(stack.store(), SHOP, expected(accepted, SHOP)), 180, what="the first events counted"
    )

    usage = placements(cluster.bootstrap, [Topics(stack.namespace).usage])
    survivor = usage[(Topics(stack.namespace).usage, 0)].leader
    for node in NODES:
        if node != survivor:
            cluster.kill_node(node, signal.SIGKILL)
    # Every partition: some led by the survivor (their only replica in sync), some by dead nodes; and
    # one participant alone whose partition the survivor leads.
    own = next(f"own-{i}" for i in range(1000) if (murmur2(f"own-{i}".encode()) & 0x7FFFFFFF) % 4 == 0)
    refused: list[list[dict[str, Any]]] = [_shop_events([f"during-{i}" for i in range(20)]), _shop_events([own])]
    answered = []
    for batch in refused:
        answer = httpx.post(f"{stack.ingest_url}/v1/events", json=batch, headers=headers, timeout=60)
        answered.append(answer.status_code)
        assert answer.status_code == 503, answer.text
        assert "nothing was accepted" in answer.json()["error"]

    # What the ingest says of its health meanwhile (printed, not asserted: a metadata request succeeds).
    health = httpx.get(f"{stack.ingest_url}/healthz", timeout=60).status_code
    cluster.start(timeout=180)

    # As the SDK does: what was refused is sent again until it is accepted (the same event ids).
    for batch in refused:
        post_until_accepted(stack, api_key, batch)
    events = [*accepted, *(e for batch in refused for e in batch)]
    stack.wait(
        lambda: not differences(stack.store(), SHOP, expected(events, SHOP)), 180, what="each event counted once"
    )
    stack.wait(stack.caught_up, 180, what="the worker to read every record")
    assert differences(stack.store(), SHOP, expected(events, SHOP)) == []
    print(f"\none node of three (node {survivor}): the ingest answered {answered}, /healthz {health}")


def _send_consents_and_exposures(stack: Stack, api_key: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Posts the consents, then the exposures, each read by the workers before the next; returns the
    other events, to be posted.

    A comment or an idea is stored as a text with its author's consent and exposures as the worker
    knows them when it reads the comment. Read before them (another topic, a later fetch: on a
    cluster the two topics' partitions have different leaders), its text is never stored although
    it is counted (no consent yet), or is stored without the variants (no exposure yet): a defect of
    streams/processor.py (texts live in no state), reported. The workers are compared here with the
    consents and exposures read first, as a pilot service records them before the rest.
    """
    for kind in ("consent", "exposure"):
        post_until_accepted(stack, api_key, [e for e in events if e["type"] == kind])
        stack.wait(stack.caught_up, 180, what=f"the {kind} events to be read")
    return [e for e in events if e["type"] not in ("consent", "exposure")]


def test_three_workers_on_twelve_partitions_equal_one_and_stay_exact_when_one_is_killed(
    whole_cluster: LocalBroker, new_stack: Callable[[int], Stack]
) -> None:
    events = simulated(participants=200, seed=41)
    one = new_stack(12)
    key = one.apply(BIKE_SHARE_SPEC)
    one.start_ingest()
    one.start_worker()
    post_until_accepted(one, key, _send_consents_and_exposures(one, key, events))
    assert_exact(one, events)
    figures_of_one = stored_figures(one.store())
    one.stop()

    three = new_stack(12)
    key = three.apply(BIKE_SHARE_SPEC)
    three.start_ingest()
    workers = [three.start_worker() for _ in range(3)]
    post_until_accepted(three, key, _send_consents_and_exposures(three, key, events))
    assert_exact(three, events)
    assert figure_differences(figures_of_one, stored_figures(three.store())) == []
    assert {p for (*_, p) in figures_of_one["aggregates"]} == set(range(12))
    admin = KafkaAdminClient(bootstrap_servers=whole_cluster.bootstrap)
    try:
        members = admin.describe_groups([three.namespace])[three.namespace]["members"]
    finally:
        admin.close()
    assert len(members) == 3, members

    # More citizens, newer (within the grace of the partitions' newest events), and a worker killed
    # while their events stream in.
    end = datetime.now(UTC) - timedelta(minutes=1)
    later = generate(BEHAVIOURS["bike-share"], BIKE_SHARE, end - timedelta(days=1), end, 150, seed=42)
    rest = _send_consents_and_exposures(three, key, later)
    before = three.store().experiment_statistics("onboarding-v2")
    post_until_accepted(three, key, rest[: len(rest) // 2])
    three.wait(lambda: three.store().experiment_statistics("onboarding-v2") != before, 120, what="the workers to write")
    three.kill(workers[0], signal.SIGKILL)
    post_until_accepted(three, key, rest[len(rest) // 2 :])
    assert_exact(three, [*events, *later])
    three.wait(three.caught_up, 180, what="the two workers left to read every record")
    assert_exact(three, [*events, *later], timeout=60)
    # The state the workers keep is their owner's alone, like the rest of the state directory.
    worker_dir = three.tmp / "state" / "worker"
    assert stat.S_IMODE(worker_dir.stat().st_mode) == 0o700
