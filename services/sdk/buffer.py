"""The SDK's bounded buffer of events waiting to be sent: the oldest are dropped first, and every event is
counted exactly once as sent, dropped (buffer full), rejected (a 4xx answer) or still buffered."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

log = logging.getLogger("rhizome.sdk")


class ClientStats(NamedTuple):
    """What became of the events a client recorded: `sent + dropped_full + dropped_rejected + buffered`
    is the number of events recorded so far."""

    #: Events the ingest API accepted (202).
    sent: int
    #: Oldest events dropped because the buffer was full.
    dropped_full: int
    #: Events the ingest API refused with a 4xx answer (not retried).
    dropped_rejected: int
    #: Delivery attempts that failed with a 5xx answer or a network error and were retried.
    retries: int
    #: Events waiting to be sent, including a batch in flight.
    buffered: int


@dataclass(frozen=True, slots=True)
class Pending:
    """One event waiting to be sent: its JSON, and whether its pilot_id is still to be stamped."""

    seq: int
    data: bytes
    pilot_pending: bool


class EventBuffer:
    """A thread-safe FIFO of at most `capacity` events.

    The sender reads a batch from the front without removing it (`front`) and settles it once the
    ingest API answered (`settle`); a failed batch stays at the front and is read again, so an event
    keeps its bytes, and its event_id, across retries. When the buffer is full, `put` drops the
    oldest event, even one in flight: if that flight then succeeds, the event counts as sent, not
    dropped.
    """

    def __init__(self, capacity: int, wake_at: int) -> None:
        self.capacity = capacity
        #: The sender is woken as soon as this many events wait (a full batch).
        self.wake_at = wake_at
        self._queue: deque[Pending] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._seq = 0
        self._flush_waiters = 0
        #: Flush and close calls so far: a back-off pause ends early when one comes.
        self._requests = 0
        self._closing = False
        self._sent = 0
        self._dropped_full = 0
        self._dropped_rejected = 0
        self._retries = 0
        #: Events dropped since the buffer last overflowed after a successful delivery.
        self._episode_drops = 0

    def put(self, data: bytes, *, pilot_pending: bool = False) -> None:
        """Appends an event, dropping (and counting) the oldest one when the buffer is full."""
        with self._cond:
            if len(self._queue) >= self.capacity:
                self._queue.popleft()
                self._dropped_full += 1
                self._episode_drops += 1
                first_drop = self._episode_drops == 1
            else:
                first_drop = False
            self._seq += 1
            self._queue.append(Pending(self._seq, data, pilot_pending))
            if len(self._queue) >= self.wake_at:
                self._cond.notify_all()
        if first_drop:
            log.warning(
                "Rhizome SDK buffer full (%d events): dropping the oldest events until the ingest API takes them; "
                "client.stats() counts them",
                self.capacity,
            )

    def wait_for_batch(self, timeout: float) -> None:
        """Returns when a full batch waits, a flush or close is requested, or after `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closing or len(self._queue) >= self.wake_at or bool(self._flush_waiters and self._queue),
                timeout,
            )

    def front(self, max_events: int, max_bytes: int, per_event_overhead: int = 0) -> list[Pending]:
        """Returns the oldest events, at most `max_events` and `max_bytes` of JSON array (at least one)."""
        batch: list[Pending] = []
        size = 2
        with self._cond:
            for pending in self._queue:
                size += len(pending.data) + 1 + (per_event_overhead if pending.pilot_pending else 0)
                if len(batch) >= max_events or (batch and size > max_bytes):
                    break
                batch.append(pending)
        return batch

    def settle(self, batch: list[Pending], *, sent: bool) -> None:
        """Removes a batch the ingest API answered: accepted (`sent`) or refused with a 4xx."""
        if not batch:
            return
        last = batch[-1].seq
        with self._cond:
            removed = 0
            while self._queue and self._queue[0].seq <= last:
                self._queue.popleft()
                removed += 1
            # Events dropped while in flight were delivered (or refused) after all: count them once.
            self._dropped_full -= len(batch) - removed
            self._episode_drops = max(0, self._episode_drops - (len(batch) - removed))
            if sent:
                self._sent += len(batch)
                episode, self._episode_drops = self._episode_drops, 0
            else:
                self._dropped_rejected += len(batch)
                episode = 0
            self._cond.notify_all()
        if episode:
            log.warning("Rhizome SDK delivering again; %d events were dropped while the buffer was full", episode)

    def note_retry(self) -> None:
        with self._cond:
            self._retries += 1

    def pause(self, delay: float) -> None:
        """Returns after `delay` seconds, or earlier when `flush` or `close` is called meanwhile."""
        with self._cond:
            seen = self._requests
            self._cond.wait_for(lambda: self._requests != seen, delay)

    def flush(self, timeout: float | None) -> bool:
        """Returns True once every event put before the call has left the buffer (sent, or dropped and
        counted), False when `timeout` seconds passed first."""
        with self._cond:
            target = self._seq
            self._flush_waiters += 1
            self._requests += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._queue or self._queue[0].seq > target, timeout)
            finally:
                self._flush_waiters -= 1

    def close(self) -> None:
        """Tells the sender to stop: `wait_for_batch` returns at once from now on."""
        with self._cond:
            self._closing = True
            self._requests += 1
            self._cond.notify_all()

    @property
    def closing(self) -> bool:
        with self._cond:
            return self._closing

    def stats(self) -> ClientStats:
        with self._cond:
            return ClientStats(self._sent, self._dropped_full, self._dropped_rejected, self._retries, len(self._queue))
