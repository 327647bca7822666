"""The worker's recovery watchdog: a recovery that stops moving is noticed, one that moves is not."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from streams.watchdog import RecoveryWatch


def test_a_recovery_without_progress_is_stalled_after_the_limit() -> None:
    watch = RecoveryWatch(stall_after=60)
    assert not watch.stalled(0, True, (346, 2))
    assert not watch.stalled(59, True, (346, 2))
    assert watch.stalled(60, True, (346, 2))


def test_progress_or_the_end_of_recovery_resets_the_clock() -> None:
    watch = RecoveryWatch(stall_after=60)
    watch.stalled(0, True, (346, 2))
    assert not watch.stalled(50, True, (300, 2))  # records were read
    assert not watch.stalled(100, True, (300, 2))
    assert not watch.stalled(105, True, (300, 3))  # a new rebalance
    assert not watch.stalled(160, True, (300, 3))
    assert not watch.stalled(170, False, (0, 3))  # recovery ended
    assert not watch.stalled(200, True, (0, 3))
    assert watch.stalled(260, True, (0, 3))


def test_a_restart_runs_the_same_command_line_again_in_the_same_process() -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from streams.watchdog import restart_process
        print("run", os.getpid(), sys.argv[1:], flush=True)
        if os.environ.get("RESTARTED") != "1":
            os.environ["RESTARTED"] = "1"
            restart_process("test")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, "worker", "--loglevel", "info"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    runs = [line.split(" ", 2) for line in out.stdout.splitlines() if line.startswith("run ")]
    assert len(runs) == 2
    assert runs[0][1] == runs[1][1]  # same pid
    assert runs[0][2] == runs[1][2] == "['worker', '--loglevel', 'info']"
