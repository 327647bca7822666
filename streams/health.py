"""The worker's health and metrics, served over HTTP: whether it is making progress (`GET /healthz`),
and what it has done (`GET /metrics`, Prometheus' text format).

A worker does not restart itself: its supervisor (`rhizome up`'s, services/platform.py, or
Kubernetes' liveness probe, infra/k8s/worker.yaml) asks `/healthz` every few seconds and replaces a
worker that answers 503, or not at all, several times in a row (docs/operations.md, "Worker health and
restarts"). Nothing is lost by a replacement: offsets are committed only after the changelog is
flushed, exactly as for a worker killed with SIGKILL, and replays are recognised by event_id.

Three stalls make a worker unhealthy, each for `worker_stall_seconds` (the settings):

- A table recovery that makes no progress. faust can hang in recovery after a quick succession of
  rebalances: the worker keeps its partitions, reads nothing from their changelog and logs "No event
  received for active tp ... since recovery start" forever (seen with faust-streaming 0.15, two
  workers starting together under load). A fresh process recovers its partitions again.
- A partition whose committed offset stops moving while records wait behind it. faust commits a
  partition only up to the first offset its stream has not acknowledged; when its fetcher's read
  position and its seek to the committed offsets cross (a seek while records are in flight), records
  can be skipped without ever being acknowledged, and that partition never commits again while the
  rest of the worker runs on (the likely mechanism; the stall itself was seen in CI). It is judged
  by the broker's own committed and end offsets, so it does not depend on how faust got stuck.
- Store writes that keep failing (the sink keeps what it could not write and tries again; a database
  that stays away, or a row it refuses every time, stops the figures).

While the worker starts (before its first judgement) it answers 200 with the status "starting".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from streams.events import records_wait

log = logging.getLogger("rhizome.worker")

#: How often the worker judges its progress (streams/app.py, `watch`).
WATCH_EVERY = 5.0
#: Seconds of a batch (from its fetch handed over to its texts stored) the histogram tells apart.
BATCH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class RecoveryWatch:
    """Decides, from periodic observations, whether a recovery has stalled.

    `progress` is anything that changes when recovery moves on (the number of changelog records
    still to read, the group generation); a recovery that ends, or moves, resets the clock.
    """

    stall_after: float
    _since: float | None = field(default=None, init=False)
    _progress: Hashable = field(default=None, init=False)

    def stalled(self, now: float, in_recovery: bool, progress: Hashable) -> bool:
        """Returns True when the recovery has not moved for `stall_after` seconds."""
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

    stall_after: float
    _since: dict[str, tuple[int, float]] = field(default_factory=dict, init=False)

    def reset(self) -> None:
        self._since.clear()

    def stalled(self, now: float, positions: Mapping[str, tuple[int | None, int]]) -> list[str]:
        """Returns the partitions whose committed offset has not moved for `stall_after` seconds while
        records waited behind it."""
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


@dataclass
class StoreWatch:
    """Decides whether the store's writes have been failing for too long: from the first failed write
    after a successful one (or the start) until the next successful one."""

    stall_after: float
    _failing_since: float | None = field(default=None, init=False)

    def written(self, now: float, succeeded: int, failed: int) -> None:
        """Takes what a call of the sink did: `succeeded` writes stored, `failed` writes refused."""
        if succeeded:
            self._failing_since = None
        elif failed and self._failing_since is None:
            self._failing_since = now

    def failing_for(self, now: float) -> float | None:
        """Returns how long the writes have been failing, None when the last one succeeded."""
        return None if self._failing_since is None else now - self._failing_since


class Verdict(NamedTuple):
    """What `/healthz` answers: 200 with `status` "ok" or "starting", or 503 with "unhealthy"."""

    status: str
    reason: str

    @property
    def healthy(self) -> bool:
        return self.status != "unhealthy"


class WorkerMetrics:
    """The worker's Prometheus metrics, in a registry of their own (so tests can make several)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.lag = Gauge(
            "rhizome_worker_consumer_lag",
            "Records past the group's committed offset, per partition the worker owns",
            ["topic", "partition"],
            registry=r,
        )
        self.applied = Counter("rhizome_worker_events_applied", "Events applied to participants' states", registry=r)
        self.duplicates = Counter(
            "rhizome_worker_duplicate_events", "Events already applied, recognised by their event_id", registry=r
        )
        self.dead_letters = Counter(
            "rhizome_worker_dead_letters", "Records sent to the dead-letter topic, with their reason", registry=r
        )
        self.batch_seconds = Histogram(
            "rhizome_worker_batch_seconds",
            "Time to apply one fetch and store its texts",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.store_write_errors = Counter(
            "rhizome_worker_store_write_errors", "Writes of figures and texts the store refused", registry=r
        )
        self.last_flush = Gauge(
            "rhizome_worker_last_flush_timestamp_seconds", "When the store last took a write (Unix time)", registry=r
        )
        self.healthy = Gauge("rhizome_worker_healthy", "1 while /healthz answers 200, else 0", registry=r)


class WorkerHealth:
    """The worker's judgements of its own progress, and its metrics; see the module's docstring."""

    def __init__(self, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after = stall_after
        self.clock = clock
        self.recovery = RecoveryWatch(stall_after)
        self.commits = CommitWatch(stall_after)
        self.store = StoreWatch(stall_after)
        self.metrics = WorkerMetrics()
        #: The stalls the last judgement found, by what stalled ("recovery", "commits").
        self._problems: dict[str, str] = {}
        self._judged_at: float | None = None

    def judge(self, what: str, problem: str | None) -> None:
        """Records the latest judgement of `what`: the problem found, or None."""
        if problem is None:
            self._problems.pop(what, None)
        else:
            if self._problems.get(what) is None:
                log.error("worker unhealthy: %s", problem)
            self._problems[what] = problem
        self._judged_at = self.clock()

    def store_written(self, succeeded: int, failed: int) -> None:
        """Takes what one call of the sink did: writes stored and writes refused (`Sink.flushes` and
        `Sink.failures` before and after it)."""
        self.store.written(self.clock(), succeeded, failed)
        if failed:
            self.metrics.store_write_errors.inc(failed)
        if succeeded:
            self.metrics.last_flush.set_to_current_time()

    def verdict(self) -> Verdict:
        """Returns the worker's health now."""
        now = self.clock()
        failing = self.store.failing_for(now)
        if failing is not None and failing >= self.stall_after:
            return Verdict("unhealthy", f"store writes have failed for {failing:.0f} s")
        for problem in self._problems.values():
            return Verdict("unhealthy", problem)
        if self._judged_at is None:
            return Verdict("starting", "")
        # The judgements themselves must go on: a loop that stopped judging hides any stall.
        if now - self._judged_at > self.stall_after + 2 * WATCH_EVERY:
            return Verdict("unhealthy", f"progress not judged for {now - self._judged_at:.0f} s")
        return Verdict("ok", "")


def health_app(health: WorkerHealth) -> web.Application:
    """Returns the HTTP application of `/healthz` and `/metrics`."""

    async def healthz(_request: web.Request) -> web.Response:
        verdict = health.verdict()
        body = {"status": verdict.status} | ({"reason": verdict.reason} if verdict.reason else {})
        return web.json_response(body, status=200 if verdict.healthy else 503)

    async def metrics(_request: web.Request) -> web.Response:
        health.metrics.healthy.set(1 if health.verdict().healthy else 0)
        body = generate_latest(health.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve_health(health: WorkerHealth, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Starts serving `/healthz` and `/metrics` on (host, port), 0 for a free port; returns the runner
    (whose `cleanup()` stops it) and the port."""
    runner = web.AppRunner(health_app(health), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(
            f"RHIZOME_WORKER_HEALTH_PORT == {port}: cannot serve the worker's health on {host}:{port} ({exc})"
        ) from exc
    bound = int(runner.addresses[0][1])
    return runner, bound
