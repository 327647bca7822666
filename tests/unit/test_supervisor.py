"""The supervisor of `rhizome up` and of the tests' workers (services/platform.py), on small stand-in
workers: one that exits is started again, one whose /healthz fails several times in a row is replaced,
each restart after a growing backoff and with its reason, up to a cap."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from services.platform import RestartPolicy, Supervised, Supervisor
from tests.support.waiting import wait_until

#: A worker that serves /healthz on RHIZOME_WORKER_HEALTH_PORT: 503 with the reason in the file SICK
#: while that file names its pid, 200 otherwise; it first writes its pid to RUNS, waits START seconds
#: and exits with EXIT when that is set.
STAND_IN = textwrap.dedent(
    """
    import http.server, json, os, pathlib, sys, time
    with open(os.environ["RUNS"], "a") as runs:
        runs.write(f"{os.getpid()}\\n")
    time.sleep(float(os.environ.get("START", "0")))
    if os.environ.get("EXIT"):
        sys.exit(int(os.environ["EXIT"]))
    sick = pathlib.Path(os.environ["SICK"])

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            text = sick.read_text() if sick.exists() else ""
            pid, _, reason = text.partition(" ")
            status, body = (503, {"status": "unhealthy", "reason": reason}) if pid == str(os.getpid()) else (200, {})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", int(os.environ["RHIZOME_WORKER_HEALTH_PORT"])), Health).serve_forever()
    """
)
QUICK = RestartPolicy(
    check_every=0.2, check_timeout=2.0, failures=3, start_grace=10.0, backoff=0.1, backoff_max=0.4,
    max_restarts=3, window=600.0, stop_timeout=5.0,
)  # fmt: skip


class StandIns:
    """Stand-in workers under one supervisor, and what it said."""

    def __init__(self, tmp: Path, policy: RestartPolicy = QUICK) -> None:
        self.tmp = tmp
        self.said: list[str] = []
        self.supervisor = Supervisor(policy, say=self.said.append)
        self.runs = tmp / "runs"
        self.sick = tmp / "sick"

    def start(self, **env: str) -> Supervised:
        environ = dict(os.environ, RUNS=str(self.runs), SICK=str(self.sick), **env)
        return self.supervisor.start(
            "stand-in", [sys.executable, "-c", STAND_IN], log=self.tmp / "logs" / "stand-in.log", env=environ
        )

    def pids(self) -> list[int]:
        return [int(line) for line in self.runs.read_text().split()] if self.runs.exists() else []


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[StandIns]:
    s = StandIns(tmp_path)
    yield s
    s.supervisor.stop()


def test_the_backoff_doubles_from_the_first_restart_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff=1.0, backoff_max=60.0)
    assert [policy.delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_worker_that_exits_is_restarted_until_the_cap_then_given_up(stand_ins: StandIns) -> None:
    worker = stand_ins.start(EXIT="3")
    wait_until(stand_ins.supervisor.gave_up, 30, 0.05, what="the supervisor to give up")
    assert [r.reason for r in worker.restarts] == ["exited with code 3"] * QUICK.max_restarts
    assert len(stand_ins.pids()) == QUICK.max_restarts + 1
    # Each restart waited longer than the one before (0.1, 0.2, 0.4 s).
    times = [r.at for r in worker.restarts]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2
    assert stand_ins.said[0].startswith(f"supervisor: restarting stand-in (pid {stand_ins.pids()[0]}) in 0.1 s: ")
    assert stand_ins.said[-1].startswith("supervisor: giving up: stand-in exited with code 3, after 3 restarts")


def test_a_worker_unhealthy_three_checks_in_a_row_is_replaced_with_the_reason(stand_ins: StandIns) -> None:
    worker = stand_ins.start()
    wait_until(stand_ins.pids, 30, 0.05, what="the first run")
    first = psutil.Process(stand_ins.pids()[0])
    wait_until(lambda: worker.answered, 30, 0.05, what="the first run to answer")
    stand_ins.sick.write_text(f"{first.pid} committed offsets stopped for 60 s while records waited: usage/0")
    wait_until(lambda: worker.restarts, 30, 0.05, what="the sick worker to be replaced")
    assert not first.is_running() or first.status() == psutil.STATUS_ZOMBIE
    reason = worker.restarts[0].reason
    assert reason.startswith("unhealthy, 3 checks in a row: http://127.0.0.1:")
    assert reason.endswith("/healthz answered 503: committed offsets stopped for 60 s while records waited: usage/0")
    # The new run is healthy: it stays.
    wait_until(lambda: len(stand_ins.pids()) == 2 and worker.poll() is None, 30, 0.05, what="the second run")
    wait_until(lambda: worker.answered, 30, 0.05, what="the second run to answer")
    assert len(worker.restarts) == 1


def test_a_starting_worker_has_its_grace_but_one_that_never_answers_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "slow").mkdir()
    (tmp_path / "silent").mkdir()
    slow = StandIns(tmp_path / "slow", replace(QUICK, start_grace=1.5))
    try:
        worker = slow.start(START="0.8")  # answers after 0.8 s, within its grace
        wait_until(lambda: worker.answered, 30, 0.05, what="the slow starter to answer")
        assert worker.restarts == []
    finally:
        slow.supervisor.stop()
    silent = StandIns(tmp_path / "silent", replace(QUICK, start_grace=0.5))
    try:
        worker = silent.start(START="600")  # never serves its health
        wait_until(lambda: worker.restarts, 30, 0.05, what="the silent worker to be replaced")
        assert worker.restarts[0].reason.startswith("unhealthy, 3 checks in a row: no answer from http://127.0.0.1:")
    finally:
        silent.supervisor.stop()


def test_a_released_worker_is_not_restarted_and_stop_ends_the_others(stand_ins: StandIns) -> None:
    kept, released = stand_ins.start(), stand_ins.start()
    wait_until(lambda: kept.answered and released.answered, 30, 0.05, what="both to answer")
    stand_ins.supervisor.release(released)
    os.killpg(released.pid, signal.SIGKILL)
    released.proc.wait()  # type: ignore[union-attr]
    running = psutil.Process(kept.pid)
    stand_ins.supervisor.stop()
    assert released.restarts == [] and kept.restarts == []
    assert not running.is_running() or running.status() == psutil.STATUS_ZOMBIE
    assert len(stand_ins.pids()) == 2
    # Both appended to one log, which only its owner may read.
    log = stand_ins.tmp / "logs" / "stand-in.log"
    assert (log.stat().st_mode & 0o777, log.parent.stat().st_mode & 0o777) == (0o600, 0o700)
