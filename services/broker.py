"""The local Apache Kafka broker: a single KRaft node run from Maven Central's jars with `java`.

`rhizome broker start | stop | status`. The jars are fetched once with Maven into
`infra/kafka/target/dependency/`; the broker's data, logs and pid live under the state directory.
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
from dataclasses import dataclass
from pathlib import Path
from string import Template

from experiments.settings import Settings
from streams.events import KafkaUnreachable, is_reachable, port_in_use, wait_until_reachable

INFRA_KAFKA = Path(__file__).resolve().parents[1] / "infra" / "kafka"
POM = INFRA_KAFKA / "pom.xml"
SERVER_TEMPLATE = INFRA_KAFKA / "server.properties"
LOG4J_CONFIG = INFRA_KAFKA / "log4j2.properties"
#: `mvn dependency:copy-dependencies` puts the jars here (Maven's default output directory).
LIBS = INFRA_KAFKA / "target" / "dependency"
_FETCHED_MARKER = LIBS / ".complete"


class BrokerError(RuntimeError):
    """The local broker could not be fetched, formatted, started or reached."""


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    running: bool
    reachable: bool
    pid: int | None
    bootstrap: str
    data_dir: Path

    def describe(self) -> str:
        if self.reachable:
            return f"running (pid {self.pid}) at {self.bootstrap}, data in {self.data_dir}"
        if self.running:
            return f"started (pid {self.pid}) but not answering at {self.bootstrap}"
        return f"stopped (data in {self.data_dir})"


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


class LocalBroker:
    """One single-node KRaft broker whose files live in `<state dir>/kafka`."""

    def __init__(self, settings: Settings) -> None:
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_port + 1
        self.partitions = settings.topic_partitions
        self.home = settings.kafka_dir
        self.data_dir = self.home / "data"
        self.config_file = self.home / "server.properties"
        self.pid_file = self.home / "broker.pid"
        self.log_file = self.home / "broker.log"
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.heap = settings.kafka_heap

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java:
            raise BrokerError("java is not on PATH: the local broker needs Java 17 or newer.")
        return java

    def _classpath(self) -> str:
        return str(fetch_jars() / "*")

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        text = Template(SERVER_TEMPLATE.read_text()).substitute(
            port=self.port,
            controller_port=self.controller_port,
            log_dir=self.data_dir,
            partitions=self.partitions,
        )
        self.config_file.write_text(text)

    def _format_once(self, cluster_id: str | None = None) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = [
            self._java(),
            "-cp",
            self._classpath(),
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "kafka.tools.StorageTool",
            "format",
            # One token: a cluster id may begin with "-" and must not be read as an option.
            f"--cluster-id={cluster_id or new_cluster_id()}",
            f"--config={self.config_file}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting {self.data_dir} failed: {result.stdout}{result.stderr}")

    def pid(self) -> int | None:
        """Returns the pid of the running broker process, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"kafka.Kafka" not in cmdline.read_bytes():
            return None
        return pid

    def start(self, timeout: float = 90.0) -> float:
        """Returns the seconds it took until a client's metadata request succeeded."""
        started = time.monotonic()
        if self.pid() is not None:
            wait_until_reachable(self.bootstrap, timeout)
            return time.monotonic() - started
        if port_in_use(self.port):
            raise BrokerError(
                f"port {self.port} is taken by another process: set RHIZOME_KAFKA_PORT, or point "
                "RHIZOME_KAFKA_BOOTSTRAP at the broker already there."
            )
        self._write_config()
        self._format_once()
        cmd = [
            self._java(),
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.config_file),
        ]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        try:
            wait_until_reachable(self.bootstrap, timeout, alive=lambda: proc.poll() is None)
        except KafkaUnreachable:
            self.stop()
            tail = self.log_file.read_text(errors="replace").splitlines()[-20:]
            raise BrokerError("the broker did not become ready; last log lines:\n" + "\n".join(tail)) from None
        return time.monotonic() - started

    def stop(self, timeout: float = 30.0) -> bool:
        """Returns True when a running broker was stopped (SIGTERM, then SIGKILL after `timeout`)."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> BrokerStatus:
        pid = self.pid()
        reachable = pid is not None and is_reachable(self.bootstrap)
        return BrokerStatus(pid is not None, reachable, pid, self.bootstrap, self.data_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child (when we are its parent) counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and ") Z " in stat.read_text())
