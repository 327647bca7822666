"""Noticing a worker whose table recovery has stopped making progress, and restarting it.

faust-streaming 0.15 can hang in recovery after a quick succession of rebalances: the worker keeps
its partitions, reads nothing from their changelog and logs "No event received for active tp ...
since recovery start" forever, so its partitions are never processed again (seen here with two
workers starting together under load). A worker that is stuck that way is as good as dead, and a
restart is what recovers it: the process replaces itself (same pid, same process group, same
command line), rejoins the group and recovers its partitions again. Nothing is lost: offsets are
committed only after the changelog is flushed, exactly as for a worker killed with SIGKILL.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NoReturn

log = logging.getLogger("rhizome.worker")

#: How long a recovery may go without any progress before the worker restarts itself.
RECOVERY_STALL_SECONDS = 60.0
#: How often the watchdog looks.
WATCH_EVERY = 5.0
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


def restart_process(reason: str) -> NoReturn:
    """Replaces this process with a fresh run of the same command line."""
    log.error("restarting the worker: %s", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError:
        log.exception("could not restart the worker; exiting with %d", EXIT_STALLED)
    os._exit(EXIT_STALLED)
