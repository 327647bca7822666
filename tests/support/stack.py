"""The platform's processes for integration tests: ingest and workers as real subprocesses against
the test broker and database, each test in its own topic namespace. The workers are kept running by
`rhizome up`'s own supervisor (services/platform.py), with a quicker restart policy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from experiments.specs import parse_pilot_spec
from experiments.store import Store
from services.platform import RestartPolicy, Supervised, Supervisor
from streams.events import GroupOffsets, Topics
from tests.support.ports import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


#: `rhizome up`'s policy, quicker: a check every second, the first restart after half a second.
TEST_POLICY = RestartPolicy(check_every=1.0, backoff=0.5, backoff_max=5.0, max_restarts=3, stop_timeout=20.0)


class ProcessDied(RuntimeError):
    """A process of the stack exited on its own: the test fails at once, without waiting for a deadline."""


T = TypeVar("T")


@dataclass
class Stack:
    tmp: Path
    bootstrap: str
    database_url: str
    namespace: str
    partitions: int = 4
    grace_seconds: int = 2 * 86400
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)
    ingest_url: str = ""
    #: Environment of every process started from now on (on top of the stack's own).
    extra_env: dict[str, str] = field(default_factory=dict)
    #: A test that provokes restarts of its workers sets this, so they are not reported as a surprise.
    expect_restarts: bool = False
    #: The workers, each kept running by `supervisor`, which logs its restarts in supervisor.log.
    workers: list[Supervised] = field(default_factory=list)
    supervisor: Supervisor | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RHIZOME_STATE_DIR=str(self.tmp / "state"),
            RHIZOME_DATABASE_URL=self.database_url,
            RHIZOME_KAFKA_BOOTSTRAP=self.bootstrap,
            RHIZOME_NAMESPACE=self.namespace,
            RHIZOME_TOPIC_PARTITIONS=str(self.partitions),
            RHIZOME_GRACE_SECONDS=str(self.grace_seconds),
            RHIZOME_SECRET="test-secret-not-for-production",
            PYTHONPATH=str(ROOT),
        )
        env.update(self.extra_env)
        return env

    def store(self) -> Store:
        store = Store(self.database_url)
        store.migrate()
        return store

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}-{len(self.processes)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def start_ingest(self) -> str:
        port = free_port()
        self._spawn("ingest", "ingest", "--port", str(port))
        self.ingest_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{self.ingest_url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, what="the ingest API to answer /healthz")
        return self.ingest_url

    def start_worker(self) -> Supervised:
        """Starts a worker, kept running by the stack's supervisor."""
        if self.supervisor is None:
            log = self.tmp / "supervisor.log"
            self.supervisor = Supervisor(TEST_POLICY, say=lambda line: _append(log, line))
        worker = self.supervisor.start(
            "worker",
            [sys.executable, "-m", "services.cli", "worker", "--loglevel", "info"],
            log=self.tmp / f"worker-{len(self.processes) + len(self.workers)}.log",
            env=self.env(),
            cwd=ROOT,
        )
        self.workers.append(worker)
        return worker

    def kill(self, proc: subprocess.Popen[bytes] | Supervised, sig: int = signal.SIGKILL) -> None:
        """Stops a process on purpose: a worker's supervisor first lets it go, so it stays stopped."""
        if isinstance(proc, Supervised):
            assert self.supervisor is not None
            self.supervisor.release(proc)
            assert proc.proc is not None
            proc = proc.proc
        self.killed.add(proc.pid)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)

    def check_alive(self) -> None:  # raises ProcessDied, which wait_until does not retry
        """Fails the test when a process it started died on its own, showing its last log lines."""
        for i, proc in enumerate(self.processes):
            if proc.pid not in self.killed and proc.poll() is not None:
                logs = sorted(self.tmp.glob(f"*-{i}.log"))
                tail = logs[0].read_text(errors="replace").splitlines()[-25:] if logs else []
                raise ProcessDied(f"process {proc.args} exited with {proc.returncode}:\n" + "\n".join(tail))
        for reason in self.supervisor.gave_up() if self.supervisor is not None else []:
            raise ProcessDied(reason)

    def wait(
        self, check: Callable[[], T], timeout: float = 120.0, what: str = "the condition", interval: float = 0.2
    ) -> T:
        """Returns the first truthy value of `check()` (asked every `interval` s), failing early when a
        process of the stack died."""

        def guarded() -> T:
            self.check_alive()
            return check()

        try:
            return wait_until(guarded, timeout, interval, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.report()}") from None

    def report(self) -> str:
        """The last lines of every process's log and the group's lag, for a test that timed out."""
        parts = []
        runs: list[subprocess.Popen[bytes] | Supervised] = [*self.processes, *self.workers]
        for log in sorted(self.tmp.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-40:]
            parts.append(f"--- {log.name}:\n" + "\n".join(tail))
        parts.append("--- exit codes: " + ", ".join(f"{run.pid}: {run.poll()}" for run in runs))
        try:
            parts.append(f"--- lagging partitions (committed, end): {self.lagging()}")
        except Exception as exc:  # the broker itself may be the problem
            parts.append(f"--- lag unknown: {exc!r}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def restarts(self) -> list[str]:
        """Returns the reasons the supervisor gave for every restart of a worker, in order."""
        return [r.reason for r in sorted((r for w in self.workers for r in w.restarts), key=lambda r: r.at)]

    def caught_up(self, offsets: GroupOffsets | None = None) -> bool:
        """Returns True when the workers' committed offsets reach the end of every event topic (read
        through `offsets` when given, kept open by a caller that asks often)."""
        from kafka.errors import KafkaError

        try:
            return not self.lagging(offsets)
        except KafkaError as exc:  # a retriable one: the group's coordinator may still be loading
            if exc.retriable:
                return False
            raise

    def lagging(self, offsets: GroupOffsets | None = None) -> dict[str, tuple[int | None, int]]:
        """Returns the partitions whose committed offset is behind their end: {"topic/p": (committed, end)}."""
        reader = offsets or GroupOffsets(self.bootstrap, self.namespace)
        try:
            return reader.lagging((t, p) for t in Topics(self.namespace).partitioned for p in range(self.partitions))
        finally:
            if offsets is None:
                reader.close()

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env(),
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def apply(self, spec_text: str) -> str:
        """Returns the API key of the pilot the spec creates."""
        result = self.store().apply_pilot(parse_pilot_spec(spec_text))
        assert result.api_key is not None
        return result.api_key

    def post(self, api_key: str, events: Sequence[dict[str, Any]], batch: int = 1000) -> int:
        accepted = 0
        with httpx.Client(timeout=60) as client:
            for i in range(0, len(events), batch):
                r = client.post(
                    f"{self.ingest_url}/v1/events",
                    json=list(events[i : i + batch]),
                    headers={"Authorization": f"Bearer {api_key}"},
                )
                assert r.status_code == 202, r.text
                accepted += r.json()["accepted"]
        return accepted


def _append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")
