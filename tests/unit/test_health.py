"""The worker's watchdog: a recovery or a partition's commits that stop moving are noticed, ones that move
are not."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from streams.watchdog import CommitWatch, RecoveryWatch


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


def test_a_partition_whose_commits_stop_while_records_wait_is_stalled_after_the_limit() -> None:
    watch = CommitWatch(stall_after=60)
    assert watch.stalled(0, {"usage/3": (517, 718), "usage/1": (700, 700)}) == []
    assert watch.stalled(59, {"usage/3": (517, 740), "usage/1": (720, 730)}) == []
    assert watch.stalled(60, {"usage/3": (517, 760), "usage/1": (730, 730)}) == ["usage/3"]


def test_moving_catching_up_or_changing_hands_resets_a_partitions_clock() -> None:
    watch = CommitWatch(stall_after=60)
    watch.stalled(0, {"usage/3": (517, 718)})
    assert watch.stalled(50, {"usage/3": (520, 718)}) == []  # it moved
    assert watch.stalled(100, {"usage/3": (520, 718)}) == []
    assert watch.stalled(105, {"usage/3": (718, 718)}) == []  # caught up
    assert watch.stalled(110, {"usage/3": (718, 900)}) == []  # new records, clock starts now
    assert watch.stalled(150, {}) == []  # the partition went to another worker
    assert watch.stalled(160, {"usage/3": (718, 900)}) == []  # and came back: a fresh start
    assert watch.stalled(219, {"usage/3": (718, 900)}) == []
    assert watch.stalled(220, {"usage/3": (718, 900)}) == ["usage/3"]


def test_a_partition_never_committed_counts_from_offset_zero_and_reset_forgets_everything() -> None:
    watch = CommitWatch(stall_after=60)
    assert watch.stalled(0, {"usage/0": (None, 0), "usage/2": (None, 5)}) == []
    assert watch.stalled(30, {"usage/0": (None, 0), "usage/2": (None, 5)}) == []
    watch.reset()  # a rebalance
    assert watch.stalled(70, {"usage/0": (None, 0), "usage/2": (None, 5)}) == []
    assert watch.stalled(130, {"usage/0": (None, 0), "usage/2": (None, 5)}) == ["usage/2"]


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
