"""`rhizome up`: the whole platform on one machine, its worker supervised (restarted when it dies), and
Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from streams.events import port_in_use
from tests.support.ports import free_port, free_ports
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_ctrl_c_stops_every_process_rhizome_up_started(tmp_path: Path) -> None:
    kafka_port = free_ports(2)  # the broker's port and its controller's, the next one
    ingest_port, console_port, portal_port = free_port(), free_port(), free_port()
    env = dict(
        os.environ,
        RHIZOME_STATE_DIR=str(tmp_path / "state"),
        RHIZOME_KAFKA_PORT=str(kafka_port),
        RHIZOME_INGEST_PORT=str(ingest_port),
        RHIZOME_CONSOLE_PORT=str(console_port),
        RHIZOME_PORTAL_PORT=str(portal_port),
        RHIZOME_SECRET="up-test-secret",
    )
    env.pop("RHIZOME_KAFKA_BOOTSTRAP", None)
    env.pop("RHIZOME_DATABASE_URL", None)
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:

        def serving(url: str) -> bool:
            if up.poll() is not None:  # fail at once, with the reason, rather than at the deadline
                raise RuntimeError(f"rhizome up exited with {up.returncode}:\n{(tmp_path / 'up.log').read_text()}")
            return _answers(url)

        wait_until(lambda: serving(f"http://127.0.0.1:{ingest_port}/healthz"), 180, what="ingest")
        wait_until(lambda: serving(f"http://127.0.0.1:{console_port}/_stcore/health"), 120, what="the console")
        wait_until(lambda: serving(f"http://127.0.0.1:{portal_port}/healthz"), 60, what="the portal")
        wait_until(lambda: "Rhizome is up" in (tmp_path / "up.log").read_text(), 60, what="the banner")
        health = re.search(r"^worker +(http://127\.0\.0\.1:\d+/healthz) ", (tmp_path / "up.log").read_text(), re.M)
        assert health, (tmp_path / "up.log").read_text()
        wait_until(lambda: serving(health[1]), 120, what="the worker's health")
        metrics = httpx.get(health[1].replace("/healthz", "/metrics"), timeout=5).text
        assert "rhizome_worker_events_applied_total" in metrics

        # A worker that dies is started again by the supervisor, which says why.
        [worker] = [p for p in psutil.Process(up.pid).children(recursive=True) if "worker" in p.cmdline()]
        worker.kill()
        wait_until(
            lambda: (
                f"supervisor: restarting worker (pid {worker.pid}) in 1.0 s: exited with code -9"
                in (tmp_path / "up.log").read_text()
            ),
            60,
            what="the supervisor to restart the worker",
        )
        wait_until(lambda: serving(health[1]), 120, what="the restarted worker's health")
        started = psutil.Process(up.pid).children(recursive=True)
        assert worker.pid not in {p.pid for p in started}
        broker = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
        assert any("kafka.Kafka" in " ".join(p.cmdline()) for p in broker)
        assert len(started) >= 4  # worker, ingest, portal, console (the broker runs in its own session)

        os.killpg(up.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        os.killpg(up.pid, signal.SIGINT)  # impatient: a second Ctrl-C must not leave anything behind
        assert up.wait(timeout=90) == 0
        for proc in [*started, *broker]:
            assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE, proc
        assert not any(port_in_use(p) for p in (kafka_port, ingest_port, console_port, portal_port))
        assert "stopped" in (tmp_path / "up.log").read_text()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        subprocess.run(
            [sys.executable, "-m", "services.cli", "broker", "stop"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
