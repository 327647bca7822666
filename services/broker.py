"""The local Apache Kafka: one KRaft node, or a cluster of three, run from Maven Central's jars with `java`.

`rhizome broker start [--nodes 3] | stop [--node N] | status`. The jars are fetched once with Maven
into `infra/kafka/target/dependency/`. A single node keeps its data, log and pid in `<state dir>/kafka`;
the nodes of a cluster each in `<state dir>/kafka/node-<id>`. Every node is a broker and a controller
(one JVM): node i listens on the Kafka port + 2 (i - 1) and its controller on the next port, and the
controllers of all nodes form the metadata quorum. Everything they write is their owner's alone.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from string import Template

from experiments.settings import (
    KAFKA_NODE_COUNTS,
    PRIVATE_UMASK,
    Settings,
    local_bootstrap,
    min_insync_replicas,
    narrow,
    private_dir,
)
from streams.events import port_in_use

INFRA_KAFKA = Path(__file__).resolve().parents[1] / "infra" / "kafka"
POM = INFRA_KAFKA / "pom.xml"
SERVER_TEMPLATE = INFRA_KAFKA / "server.properties"
LOG4J_CONFIG = INFRA_KAFKA / "log4j2.properties"
#: `mvn dependency:copy-dependencies` puts the jars here (Maven's default output directory).
LIBS = INFRA_KAFKA / "target" / "dependency"
_FETCHED_MARKER = LIBS / ".complete"
#: A node that misses heartbeats this long is fenced: its partitions get other leaders and it leaves
#: every in-sync replica set, so writes stop waiting for it. Kafka's default is 9 s; 6 s still lets a
#: node that is slow but alive (a 2-core machine under test load) miss five heartbeats in a row.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
#: How recently (by the quorum leader's clock) every voter must have caught up with the metadata log
#: for the quorum to count as whole.
QUORUM_CAUGHT_UP_MS = 5000


class BrokerError(RuntimeError):
    """The local broker could not be fetched, formatted, started or reached."""


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the cluster says of itself: the brokers registered and unfenced, the voters of the
    metadata quorum that have caught up with it, and the active controller (the quorum's leader)."""

    brokers: frozenset[int]
    voters: frozenset[int]
    caught_up: frozenset[int]
    controller: int | None

    def whole(self, node_ids: Sequence[int]) -> bool:
        """Returns True when every node is a registered broker and a caught-up voter under a leader."""
        ids = frozenset(node_ids)
        return self.brokers == ids and self.voters == ids and self.caught_up == ids and self.controller in ids


def cluster_view(bootstrap: str, timeout: float = 3.0) -> ClusterView | None:
    """Returns the cluster's view of itself, or None while no node answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    ms = int(timeout * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=ms, bootstrap_timeout_ms=ms, client_id="rhizome-probe"
        )
    except (KafkaError, OSError, ValueError):
        return None
    try:
        cluster = admin.describe_cluster()
        quorum = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]
    except (KafkaError, OSError, LookupError):
        return None
    finally:
        admin.close()
    voters = quorum["current_voters"]
    newest = max((v["last_caught_up_timestamp"] for v in voters), default=-1)
    return ClusterView(
        brokers=frozenset(b["broker_id"] for b in cluster["brokers"] if not b.get("is_fenced")),
        voters=frozenset(v["replica_id"] for v in voters),
        caught_up=frozenset(
            v["replica_id"]
            for v in voters
            if v["last_caught_up_timestamp"] >= 0 and newest - v["last_caught_up_timestamp"] <= QUORUM_CAUGHT_UP_MS
        ),
        controller=quorum["leader_id"] if quorum["leader_id"] >= 0 else None,
    )


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node_id: int
    pid: int | None
    address: str
    controller_address: str
    data_dir: Path

    def describe(self) -> str:
        state = f"running (pid {self.pid})" if self.pid is not None else "stopped"
        return (
            f"node {self.node_id}: {state} at {self.address}, controller {self.controller_address}, "
            f"data in {self.data_dir}"
        )


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    nodes: tuple[NodeStatus, ...]
    #: A metadata request succeeds and, for a cluster, the quorum and every broker are whole.
    reachable: bool
    bootstrap: str
    #: The active controller (the metadata quorum's leader), when a node answered.
    controller: int | None

    @property
    def running(self) -> bool:
        return any(n.pid is not None for n in self.nodes)

    def describe(self) -> str:
        if len(self.nodes) == 1:
            node = self.nodes[0]
            if self.reachable:
                return f"running (pid {node.pid}) at {self.bootstrap}, data in {node.data_dir}"
            if self.running:
                return f"started (pid {node.pid}) but not answering at {self.bootstrap}"
            return f"stopped (data in {node.data_dir})"
        running = sum(n.pid is not None for n in self.nodes)
        head = f"cluster of {len(self.nodes)} nodes"
        if self.reachable:
            head += f" ready at {self.bootstrap} (active controller: node {self.controller})"
        elif running:
            head += f": {running} running, not whole at {self.bootstrap}"
        else:
            head += ": stopped"
        return "\n".join([head, *(f"  {n.describe()}" for n in self.nodes)])


def fetch_jars(quiet: bool = True) -> Path:
    """Returns the directory of the broker's jars, fetching them with Maven the first time."""
    if _FETCHED_MARKER.exists():
        return LIBS
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars.")
    cmd = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime"]
    if quiet:
        cmd.insert(1, "-q")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise BrokerError("fetching the Kafka jars with Maven failed:\n" + "\n".join(tail))
    _FETCHED_MARKER.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return LIBS


def new_cluster_id(raw: bytes | None = None) -> str:
    """A KRaft cluster id: 16 bytes in URL-safe base64 without padding (it may start with "-")."""
    return base64.urlsafe_b64encode(raw or uuid.uuid4().bytes).decode().rstrip("=")


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        raise BrokerError("java is not on PATH: the local broker needs Java 17 or newer.")
    return java


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class KafkaNode:
    """One KRaft node, broker and controller in one JVM, whose files live in `home`."""

    def __init__(self, node_id: int, port: int, home: Path) -> None:
        self.node_id = node_id
        self.port = port
        self.controller_port = port + 1
        self.home = home
        self.data_dir = home / "data"
        self.config_file = home / "server.properties"
        self.pid_file = home / "broker.pid"
        self.log_file = home / "broker.log"
        self.address = f"127.0.0.1:{port}"

    def write_config(self, voters: str, replicas: int, partitions: int) -> None:
        private_dir(self.home)
        text = Template(SERVER_TEMPLATE.read_text()).substitute(
            node_id=self.node_id,
            voters=voters,
            port=self.port,
            controller_port=self.controller_port,
            log_dir=self.data_dir,
            partitions=partitions,
            replication=replicas,
            min_insync=min_insync_replicas(replicas),
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )
        _write_private(self.config_file, text)

    def cluster_id(self) -> str | None:
        """Returns the cluster id its storage was formatted with, or None before formatting."""
        try:
            lines = (self.data_dir / "meta.properties").read_text().splitlines()
        except FileNotFoundError:
            return None
        return next((line.split("=", 1)[1] for line in lines if line.startswith("cluster.id=")), None)

    def format(self, cluster_id: str) -> None:
        """Formats the node's storage for the cluster (the storage tool, run once per data directory)."""
        cmd = [
            _java(),
            "-cp",
            str(fetch_jars() / "*"),
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "kafka.tools.StorageTool",
            "format",
            # One token: a cluster id may begin with "-" and must not be read as an option.
            f"--cluster-id={cluster_id}",
            f"--config={self.config_file}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, umask=PRIVATE_UMASK)
        if result.returncode != 0:
            raise BrokerError(f"formatting {self.data_dir} failed: {result.stdout}{result.stderr}")

    def launch(self, heap: str) -> subprocess.Popen[bytes]:
        """Returns the node's JVM, started in a session of its own with a private umask."""
        cmd = [
            _java(),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            str(fetch_jars() / "*"),
            "kafka.Kafka",
            str(self.config_file),
        ]
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        _write_private(self.pid_file, f"{proc.pid}\n")
        return proc

    def pid(self) -> int | None:
        """Returns the pid of the node's running JVM, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        with contextlib.suppress(OSError):
            if b"kafka.Kafka" not in cmdline.read_bytes():
                return None
        return pid

    def signal(self, sig: int) -> int | None:
        """Returns the pid it sent `sig` to, or None when the node was not running."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pid

    def wait_gone(self, pid: int, timeout: float) -> bool:
        """Returns True once the process `pid` has exited, False at the deadline."""
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def status(self) -> NodeStatus:
        return NodeStatus(self.node_id, self.pid(), self.address, f"127.0.0.1:{self.controller_port}", self.data_dir)


class LocalBroker:
    """The local Kafka of `<state dir>/kafka`: a single node, or a cluster of `nodes`, each node a broker
    and a controller. Topics get a replica on every node (up to three), a majority of them in sync."""

    def __init__(self, settings: Settings, nodes: int | None = None) -> None:
        count = nodes or settings.kafka_nodes
        if count not in KAFKA_NODE_COUNTS:
            raise BrokerError(f"nodes == {count!r}, must be one of {KAFKA_NODE_COUNTS}.")
        self.state_dir = settings.state_dir
        self.home = settings.kafka_dir
        self.port = settings.kafka_port
        self.partitions = settings.topic_partitions
        self.heap = settings.kafka_heap
        self.nodes = _nodes(self.home, self.port, count)
        self.replicas = min(count, 3)
        self.bootstrap = local_bootstrap(self.port, count)
        #: The single node's data (and, for a cluster, node 1's).
        self.data_dir = self.nodes[0].data_dir

    def node(self, node_id: int) -> KafkaNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise BrokerError(f"node == {node_id!r}, must be one of {[n.node_id for n in self.nodes]}.")

    @property
    def voters(self) -> str:
        return ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)

    def _prepare(self, nodes: Sequence[KafkaNode]) -> None:
        """Writes the nodes' configs and formats the storage of those never formatted, all with the
        cluster's id, and narrows files an older version left readable by others."""
        private_dir(self.state_dir)
        private_dir(self.home)
        narrow(self.home, recursive=True)
        for node in nodes:
            node.write_config(self.voters, self.replicas, self.partitions)
        known = {cid for n in self.nodes if (cid := n.cluster_id()) is not None}
        if len(known) > 1:
            raise BrokerError(f"the nodes in {self.home} belong to different clusters ({sorted(known)})")
        cluster_id = known.pop() if known else new_cluster_id()
        blank = [n for n in nodes if n.cluster_id() is None]
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(lambda n: n.format(cluster_id), blank))

    def _check_layout(self) -> None:
        running = _running_count(self.home)
        if running is not None and running != len(self.nodes):
            raise BrokerError(
                f"a local Kafka of {running} node(s) is running from {self.home}: stop it first "
                f"(rhizome broker stop), or set RHIZOME_KAFKA_NODES={running}."
            )

    def start(self, timeout: float = 90.0) -> float:
        """Starts every node not running, then returns the seconds it took until the cluster was
        ready: a metadata request succeeds and every node is a registered broker and a caught-up voter."""
        started = time.monotonic()
        self._check_layout()
        stopped = [n for n in self.nodes if n.pid() is None]
        for node in stopped:
            if port_in_use(node.port) or port_in_use(node.controller_port):
                raise BrokerError(
                    f"port {node.port} or {node.controller_port} (node {node.node_id}) is taken by another process: "
                    "set RHIZOME_KAFKA_PORT, or point RHIZOME_KAFKA_BOOTSTRAP at the broker already there."
                )
        self._prepare(stopped)
        procs = {node.node_id: node.launch(self.heap) for node in stopped}

        def alive() -> bool:
            return all(p.poll() is None for p in procs.values())

        if not self.wait_ready(timeout, alive):
            dead = [n for n in stopped if procs[n.node_id].poll() is not None] or stopped
            for node in stopped:
                self.stop_node(node.node_id)
            tails = "\n".join(f"--- node {n.node_id}:\n{n.log_tail()}" for n in dead)
            raise BrokerError(f"the local Kafka did not become ready within {timeout:.0f} s; last log lines:\n{tails}")
        return time.monotonic() - started

    def wait_ready(self, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
        """Returns True once the cluster is ready, False at the deadline or when `alive()` turns false."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if self.ready():
                return True
            time.sleep(0.2)
        return False

    def ready(self) -> bool:
        """Returns True when a metadata request succeeds and the quorum and every broker are whole."""
        if not any(port_in_use(n.port) for n in self.nodes):
            return False
        view = cluster_view(self.bootstrap)
        return view is not None and view.whole([n.node_id for n in self.nodes])

    def view(self) -> ClusterView | None:
        """Returns the cluster's view of itself (brokers, quorum, active controller), or None."""
        return cluster_view(self.bootstrap)

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL) -> int:
        """Returns the pid of the node's JVM, sent `sig` (SIGKILL: no clean shutdown) and gone."""
        node = self.node(node_id)
        pid = node.signal(sig)
        if pid is None:
            raise BrokerError(f"node {node_id} is not running")
        if not node.wait_gone(pid, 60):
            raise BrokerError(f"node {node_id} (pid {pid}) did not exit within 60 s of signal {sig}")
        return pid

    def stop_node(self, node_id: int, timeout: float = 30.0) -> bool:
        """Returns True when the node was running and is stopped (SIGTERM, then SIGKILL after `timeout`)."""
        return self._stop([self.node(node_id)], timeout)

    def stop(self, timeout: float = 30.0) -> bool:
        """Returns True when a running node was stopped: all nodes at once (SIGTERM, then SIGKILL after
        `timeout`), since a node shutting down cleanly waits for the quorum the others form."""
        return self._stop(self.nodes, timeout)

    @staticmethod
    def _stop(nodes: Sequence[KafkaNode], timeout: float) -> bool:
        pids = {node: pid for node in nodes if (pid := node.signal(signal.SIGTERM)) is not None}
        deadline = time.monotonic() + timeout
        for node, pid in pids.items():
            if not node.wait_gone(pid, max(0.0, deadline - time.monotonic())):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                node.wait_gone(pid, 60)
        for node in nodes:
            if node not in pids:
                node.pid_file.unlink(missing_ok=True)
        return bool(pids)

    def status(self) -> BrokerStatus:
        nodes = tuple(n.status() for n in self.nodes)
        view = cluster_view(self.bootstrap) if any(n.pid is not None for n in nodes) else None
        reachable = view is not None and view.whole([n.node_id for n in nodes])
        return BrokerStatus(nodes, reachable, self.bootstrap, view.controller if view else None)


def _nodes(home: Path, port: int, count: int) -> tuple[KafkaNode, ...]:
    """Returns the nodes of a local Kafka of `count` nodes: a single one lives in `home` itself."""
    return tuple(
        KafkaNode(i, port + 2 * (i - 1), home if count == 1 else home / f"node-{i}") for i in range(1, count + 1)
    )


def running_nodes(settings: Settings) -> int | None:
    """Returns the node count of the local Kafka running from the state directory, or None."""
    return _running_count(settings.kafka_dir)


def _running_count(home: Path) -> int | None:
    for count in KAFKA_NODE_COUNTS:
        # A node's pid file is found by its folder alone: the port plays no part.
        if any(node.pid() is not None for node in _nodes(home, 0, count)):
            return count
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (when we are its parent) counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return ") Z " not in stat.read_text()
    return False
