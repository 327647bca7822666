"""`rhizome up`: the whole platform on one machine, and a clean stop of everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from experiments.settings import Settings
from experiments.store import Store
from services.broker import LocalBroker
from streams.events import ensure_settings_topics, wait_until_reachable

UI_APP = Path(__file__).resolve().parents[1] / "ui" / "app.py"


class PlatformError(RuntimeError):
    pass


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
        self.spawn("worker", [sys.executable, "-m", "services.cli", "worker"])
        self.spawn("ingest", [sys.executable, "-m", "services.cli", "ingest"])
        self.spawn("portal", [sys.executable, "-m", "services.cli", "portal"])
        if console:
            self.spawn("console", [sys.executable, "-m", "services.cli", "console"])
        self.wait_http(f"{self.ingest_url}/healthz", "ingest")
        self.say(f"ingest   {self.ingest_url}  (OpenAPI: {self.ingest_url}/docs)")
        self.wait_http(f"{self.portal_url}/healthz", "portal")
        self.say(f"portal   {self.portal_url}  (the citizens' portal)")
        if console:
            self.wait_http(f"{self.console_url}/_stcore/health", "console")
            self.say(f"console  {self.console_url}")

    def spawn(self, name: str, cmd: list[str]) -> Child:
        logs = self.settings.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}.log"
        with log.open("ab") as out:
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
        for c in self.children:
            code = c.proc.poll()
            if code is not None:
                tail = c.log.read_text(errors="replace").splitlines()[-15:]
                raise PlatformError(f"{c.name} exited with code {code}; last lines of {c.log}:\n" + "\n".join(tail))

    def stop(self) -> None:
        """Stops every child, then the broker."""
        for c in reversed(self.children):
            if c.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for c in self.children:
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGKILL)
                c.proc.wait()
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
