"""Noticing a worker that has stopped making progress, and restarting it.

Two stalls are watched, both seen here with faust-streaming 0.15 under load.

The first: faust can hang in recovery after a quick succession of rebalances: the worker keeps
its partitions, reads nothing from their changelog and logs "No event received for active tp ...
since recovery start" forever, so its partitions are never processed again (seen here with two
workers starting together under load). A worker that is stuck that way is as good as dead, and a
restart is what recovers it: the process replaces itself (same pid, same process group, same
command line), rejoins the group and recovers its partitions again. Nothing is lost: offsets are
committed only after the changelog is flushed, exactly as for a worker killed with SIGKILL.

The second: a partition whose committed offset stops moving while records wait behind it. faust
commits a partition only up to the first offset its stream has not acknowledged; when its fetcher's
read position and its seek to the committed offsets cross (a seek while records are in flight), the
records between them can be skipped without ever being acknowledged, and from two such records on
that partition never commits again while the rest of the worker runs on (the likely mechanism; the
stall itself was seen in CI). Its figures then lag until a restart replays the partition from the
committed offset, which is harmless: replays are recognised by event_id. The watch judges by the
broker's own committed and end offsets, so it does not depend on how faust got stuck.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from streams.events import records_wait

log = logging.getLogger("rhizome.worker")

#: How long a recovery may go without any progress before the worker restarts itself.
RECOVERY_STALL_SECONDS = 60.0
#: How long an owned partition may have records waiting without its committed offset moving.
COMMIT_STALL_SECONDS = 60.0
#: How often the watchdog looks.
WATCH_EVERY = 5.0
#: What the log line of a restart begins with (the reason follows); the tests look for it.
RESTART_LOG = "restarting the worker: "
#: The exit code of a worker that stalled and could not replace itself.
EXIT_STALLED = 75


@dataclass
class RecoveryWatch:
    """Decides, from periodic observations, whether a recovery has stalled.

    `progress` is anything that changes when recovery moves on (the number of changelog records
    still to read, the group generation); a recovery that ends, or moves, resets the clock.
    """

    stall_after: float = RECOVERY_STALL_SECONDS
    _since: float | None = field(default=None, init=False)
    _progress: Hashable = field(default=None, init=False)

    def stalled(self, now: float, in_recovery: bool, progress: Hashable) -> bool:
        if not in_recovery:
            self._since = None
            return False
        if self._since is None or progress != self._progress:
            self._since, self._progress = now, progress
            return False
        return now - self._since >= self.stall_after


@dataclass
class CommitWatch:
    """Decides, from periodic observations of the partitions a worker owns, which have stalled.

    Each observation maps a partition to (committed offset or None, end offset). A partition stalls
    when records wait behind its committed offset (committed < end) and that offset has not moved
    for `stall_after` seconds. A partition that catches up, moves, or is missing from an observation
    (not owned at that moment) starts afresh, and so does every partition after `reset()` (called
    during rebalances and recoveries, which the recovery watch judges).
    """

    stall_after: float = COMMIT_STALL_SECONDS
    _since: dict[str, tuple[int, float]] = field(default_factory=dict, init=False)

    def reset(self) -> None:
        self._since.clear()

    def stalled(self, now: float, positions: Mapping[str, tuple[int | None, int]]) -> list[str]:
        since: dict[str, tuple[int, float]] = {}
        stuck: list[str] = []
        for partition, (committed, end) in sorted(positions.items()):
            if not records_wait(committed, end):
                continue
            offset = committed or 0
            seen = self._since.get(partition)
            start = seen[1] if seen is not None and seen[0] == offset else now
            since[partition] = (offset, start)
            if now - start >= self.stall_after:
                stuck.append(partition)
        self._since = since
        return stuck


def restart_process(reason: str) -> NoReturn:
    """Replaces this process with a fresh run of the same command line."""
    log.error("%s%s", RESTART_LOG, reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError:
        log.exception("could not restart the worker; exiting with %d", EXIT_STALLED)
    os._exit(EXIT_STALLED)
