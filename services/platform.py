"""`rhizome up`: the whole platform on one machine, and a clean stop of everything it started; the
supervisor that keeps its workers running (and the tests' workers, tests/support/stack.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx

from experiments.settings import Settings
from experiments.store import Store
from services.broker import LocalBroker
from streams.events import ensure_settings_topics, wait_until_reachable

UI_APP = Path(__file__).resolve().parents[1] / "ui" / "server.py"


class PlatformError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When the supervisor replaces a worker (docs/operations.md, "Worker health and restarts")."""

    #: Seconds between two health checks (`GET /healthz`) of a running worker.
    check_every: float = 5.0
    #: A check with no answer within this many seconds failed.
    check_timeout: float = 5.0
    #: Consecutive failed checks (503, or no answer) after which the worker is replaced.
    failures: int = 3
    #: Seconds a new worker has to answer its first check before checks without an answer count.
    start_grace: float = 60.0
    #: Seconds before the first restart of a window; doubled for each further one, up to `backoff_max`.
    backoff: float = 1.0
    backoff_max: float = 60.0
    #: Most restarts within `window` seconds: at one more, the supervisor gives up (`rhizome up` stops).
    max_restarts: int = 5
    window: float = 600.0
    #: Seconds a worker has to stop on SIGTERM (flushing its figures) before it is killed.
    stop_timeout: float = 30.0

    def delay(self, recent: int) -> float:
        """Returns the wait before a restart that follows `recent` restarts within the window."""
        return float(min(self.backoff * 2**recent, self.backoff_max))


@dataclass(frozen=True, slots=True)
class Restart:
    """One replacement of a supervised process: when (Unix time) and why."""

    at: float
    reason: str


#: The setting a supervised worker serves its health on (experiments/settings.py).
HEALTH_PORT_ENV = "RHIZOME_WORKER_HEALTH_PORT"


class Supervised:
    """A worker the supervisor keeps running: its command line and its current run (`proc`, the last
    one while a restart waits for its backoff). Its runs serve their health on `health_port`, or, when that
    is 0, on a port found free (given to them in their environment): the same for every run, so the
    address printed at start stays right, unless another process took it meanwhile."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: Path | None,
        log: Path,
        health_host: str,
        health_port: int,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.log = log
        # A worker serving every interface is asked on the loopback one.
        self.health_host = "127.0.0.1" if health_host in ("", "0.0.0.0") else health_host
        self.health_port = health_port
        self._port = health_port or free_loopback_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts: list[Restart] = []
        #: Why the supervisor gave up on it (too many restarts), or None.
        self.gave_up: str | None = None
        #: Set by `Supervisor.release`: the caller stops it, the supervisor no longer restarts it.
        self.released = False
        self._started = 0.0
        self._answered = False
        self._failed_checks = 0
        self._next_check = 0.0
        #: When the next run starts, while a restart waits for its backoff; else None.
        self._next_start: float | None = None

    @property
    def pid(self) -> int:
        """The current run's process id (the last one's while a restart waits)."""
        assert self.proc is not None, f"{self.name} has not started"
        return self.proc.pid

    @property
    def answered(self) -> bool:
        """Whether the current run has answered a health check yet (with any status)."""
        return self._answered

    def poll(self) -> int | None:
        """Returns the current run's exit code, None while it runs."""
        return None if self.proc is None else self.proc.poll()

    @property
    def health_url(self) -> str:
        return f"http://{self.health_host}:{self._port}/healthz"

    def spawn(self, now: float) -> str | None:
        """Starts a run; returns a note when its health moved to another port, else None."""
        note = None
        if self.proc is not None and not self.health_port and not loopback_port_free(self._port):
            self._port = free_loopback_port()
            note = f"{self.name}'s health port was taken by another process: now {self.health_url}"
        self._next_start = None
        with private_log(self.log) as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env={**self.env, HEALTH_PORT_ENV: str(self._port)},
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._started = now
        self._answered = False
        self._failed_checks = 0
        self._next_check = now
        return note


def stop_process(proc: subprocess.Popen[bytes], timeout: float, sig: int = signal.SIGTERM) -> None:
    """Stops a process started in a session of its own, with its group: `sig`, then SIGKILL after
    `timeout` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def health_problem(url: str, timeout: float) -> tuple[bool, str | None]:
    """Asks a `/healthz`; returns (whether it answered, the problem), the problem None when healthy."""
    try:
        answer = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"no answer from {url} ({type(exc).__name__})"
    if answer.status_code == 200:
        return True, None
    try:
        reason = str(answer.json().get("reason") or answer.text)
    except ValueError:
        reason = answer.text[:200]
    return True, f"{url} answered {answer.status_code}: {reason}"


class Supervisor:
    """Keeps processes running by a `RestartPolicy`, from a thread of its own: one that exits is
    started again, and so is one whose health check fails `policy.failures` times in a row (stopped
    first); after a backoff, each restart logged (`say`) with its reason."""

    def __init__(self, policy: RestartPolicy | None = None, say: Callable[[str], None] = print) -> None:
        self.policy = policy or RestartPolicy()
        self.say = say
        self.children: list[Supervised] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        log: Path,
        health_host: str = "127.0.0.1",
        health_port: int = 0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Supervised:
        """Starts a worker (its output appended to `log`) and keeps it running; returns it."""
        child = Supervised(name, cmd, env, cwd, log, health_host, health_port)
        with self._lock:
            child.spawn(time.monotonic())
            self.children.append(child)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rhizome-supervisor", daemon=True)
                self._thread.start()
        return child

    def release(self, child: Supervised) -> None:
        """Stops supervising `child`, left running: whoever stops it next means it."""
        with self._lock:
            child.released = True

    def gave_up(self) -> list[str]:
        """Returns why the supervisor gave up on each process it gave up on."""
        with self._lock:
            return [c.gave_up for c in self.children if c.gave_up is not None]

    def stop(self) -> None:
        """Stops supervising, then stops every process still running (SIGTERM, SIGKILL after the policy's
        `stop_timeout`)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in running:
            stop_process(proc, self.policy.stop_timeout)

    def _run(self) -> None:
        while not self._stopping.wait(0.2):
            with self._lock:
                children = [c for c in self.children if not c.released and c.gave_up is None]
            for child in children:
                try:
                    self._tend(child)
                except Exception as exc:  # one child's trouble (its log unwritable, ...) stops no supervision
                    self.say(f"supervisor: {child.name}: {exc!r}")

    def _tend(self, child: Supervised) -> None:
        now = time.monotonic()
        if child._next_start is not None:
            if now >= child._next_start:
                with self._lock:
                    if not child.released and not self._stopping.is_set():
                        note = child.spawn(now)
                        if note:
                            self.say(f"supervisor: {note}")
            return
        assert child.proc is not None
        code = child.proc.poll()
        if code is not None:
            self._replace(child, f"exited with code {code}", now)
            return
        if now < child._next_check:
            return
        child._next_check = now + self.policy.check_every
        answered, problem = health_problem(child.health_url, self.policy.check_timeout)
        child._answered |= answered
        if problem is None:
            child._failed_checks = 0
            return
        if not child._answered and now - child._started < self.policy.start_grace:
            return  # still starting: not serving its health yet
        child._failed_checks += 1
        if child._failed_checks >= self.policy.failures:
            self._replace(child, f"unhealthy, {child._failed_checks} checks in a row: {problem}", now)

    def _replace(self, child: Supervised, reason: str, now: float) -> None:
        """Stops the child if it runs, and schedules its next run after the backoff, or gives up."""
        proc = child.proc
        assert proc is not None
        with self._lock:
            if child.released or self._stopping.is_set():
                return
        stop_process(proc, self.policy.stop_timeout)
        wall = time.time()
        recent = sum(1 for r in child.restarts if wall - r.at < self.policy.window)
        with self._lock:
            if child.released or self._stopping.is_set():
                return
            if recent >= self.policy.max_restarts:
                child.gave_up = (
                    f"{child.name} {reason}, after {recent} restarts within {self.policy.window:.0f} s: "
                    f"not restarted again (see {child.log})"
                )
                self.say(f"supervisor: giving up: {child.gave_up}")
                return
            delay = self.policy.delay(recent)
            child.restarts.append(Restart(wall, reason))
            child._next_start = now + delay
        self.say(f"supervisor: restarting {child.name} (pid {proc.pid}) in {delay:.1f} s: {reason}")


def private_log(path: Path) -> BinaryIO:
    """Returns a process's log opened for appending; created readable by its owner only (0600, in a
    0700 folder), as a log may quote what citizens sent."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


def loopback_port_free(port: int) -> bool:
    """Whether a server could listen on `port` of the loopback interface now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_loopback_port() -> int:
    """Returns a TCP port free on the loopback interface now (a worker that cannot bind it after all
    exits, and is restarted on another)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Platform:
    """The processes of one machine's Rhizome; `stop()` ends all of them, the broker last."""

    settings: Settings
    children: list[Child] = field(default_factory=list)
    broker: LocalBroker | None = None
    say: Callable[[str], None] = print
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    supervisor: Supervisor | None = None

    @property
    def ingest_url(self) -> str:
        return f"http://{self.settings.ingest_host}:{self.settings.ingest_port}"

    @property
    def portal_url(self) -> str:
        return f"http://{self.settings.portal_host}:{self.settings.portal_port}"

    @property
    def console_url(self) -> str:
        return f"http://{self.settings.console_host}:{self.settings.console_port}"

    def start(self, console: bool = True) -> None:
        s = self.settings
        if s.local_broker:
            self.broker = LocalBroker(s)
            took = self.broker.start()
            self.say(f"kafka    {self.broker.bootstrap} (local broker, ready in {took:.1f} s)")
        else:
            wait_until_reachable(s.kafka_bootstrap, 60)
            self.say(f"kafka    {s.kafka_bootstrap}")
        created = ensure_settings_topics(s)
        if created:
            self.say(f"topics   created {', '.join(created)}")
        store = Store(s.database_url)
        store.migrate()
        store.close()
        self.say(f"database {s.database_url}")
        self.supervisor = Supervisor(self.policy, say=self.say)
        worker = self.supervisor.start(
            "worker",
            [sys.executable, "-m", "services.cli", "worker"],
            log=s.state_dir / "logs" / "worker.log",
            health_host=s.worker_health_host,
            health_port=s.worker_health_port,
        )
        self.spawn("ingest", [sys.executable, "-m", "services.cli", "ingest"])
        self.spawn("portal", [sys.executable, "-m", "services.cli", "portal"])
        if console:
            self.spawn("console", [sys.executable, "-m", "services.cli", "console"])
        self.wait_http(f"{self.ingest_url}/healthz", "ingest")
        self.say(f"ingest   {self.ingest_url}  (OpenAPI: {self.ingest_url}/docs)")
        self.say(f"worker   {worker.health_url} (supervised: restarted when it exits or stalls)")
        self.wait_http(f"{self.portal_url}/healthz", "portal")
        self.say(f"portal   {self.portal_url}  (the citizens' portal)")
        if console:
            self.wait_http(f"{self.console_url}/_stcore/health", "console")
            self.say(f"console  {self.console_url}")

    def spawn(self, name: str, cmd: list[str]) -> Child:
        logs = self.settings.state_dir / "logs"
        log = logs / f"{name}.log"
        with private_log(log) as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def wait_http(self, url: str, name: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.25)
        raise PlatformError(
            f"{name} did not answer at {url} within {timeout:.0f} s (see {self.settings.state_dir}/logs)"
        )

    def check_children(self) -> None:
        """Raises PlatformError when a process exited, or the supervisor gave up on a worker."""
        if self.supervisor is not None:
            for reason in self.supervisor.gave_up():
                raise PlatformError(reason)
        for c in self.children:
            code = c.proc.poll()
            if code is not None:
                tail = c.log.read_text(errors="replace").splitlines()[-15:]
                raise PlatformError(f"{c.name} exited with code {code}; last lines of {c.log}:\n" + "\n".join(tail))

    def stop(self) -> None:
        """Stops every child and the workers, then the broker."""
        for c in reversed(self.children):
            if c.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGTERM)
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
        deadline = time.monotonic() + 15
        for c in self.children:
            stop_process(c.proc, max(0.1, deadline - time.monotonic()))
        self.children.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def wait(self, stop_when: Callable[[], bool] = lambda: False) -> None:
        """Returns when a child process exits or `stop_when()` is true; Ctrl-C raises KeyboardInterrupt."""
        while not stop_when():
            self.check_children()
            time.sleep(0.5)


def handle_termination() -> None:
    """Makes the first Ctrl-C or SIGTERM raise KeyboardInterrupt, so `finally:` blocks stop the children,
    and ignores the next ones, so an impatient second Ctrl-C cannot cut the clean stop short."""
    fired = False

    def _once(_signum: int, _frame: object) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _once)
    signal.signal(signal.SIGTERM, _once)
