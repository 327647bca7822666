"""The demo: the two example pilots, a history of simulated weeks, then citizens arriving live.

Events go through the public ingest API with each pilot's API key, exactly as a pilot service's.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from experiments.registry import PilotSpec
from experiments.settings import Settings
from experiments.specs import parse_pilot_spec
from experiments.store import UNITS, Store
from services.simulator.citizens import BEHAVIOURS, generate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_SPECS = ("bike-share.yaml", "parking-finder.yaml")
#: Participants simulated over the history, per pilot.
HISTORY_PARTICIPANTS = {"bike-share": 2400, "parking-finder": 1800}
BATCH = 500


def post_events(client: httpx.Client, url: str, api_key: str, events: Sequence[dict[str, Any]]) -> int:
    """Returns how many events the ingest API accepted; retries on 503 with back-off."""
    accepted = 0
    for i in range(0, len(events), BATCH):
        chunk = events[i : i + BATCH]
        delay = 0.5
        while True:
            r = client.post(f"{url}/v1/events", json=chunk, headers={"Authorization": f"Bearer {api_key}"})
            if r.status_code == 202:
                accepted += int(r.json()["accepted"])
                break
            if r.status_code == 503:
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            raise RuntimeError(f"ingest refused a batch: {r.status_code} {r.text[:300]}")
    return accepted


@dataclass
class LiveCitizens:
    """Citizens arriving now: each tick, a few arrive; their events are posted when their time comes."""

    url: str
    pilots: dict[str, tuple[PilotSpec, str]]
    rate: float
    queue: list[tuple[str, int, str, dict[str, Any]]] = field(default_factory=list)
    posted: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _tick: int = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rhizome-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _arrive(self, now: datetime) -> None:
        self._tick += 1
        # About 12 events per arriving citizen over their first minutes.
        per_pilot = max(1, round(self.rate / 12 / len(self.pilots)))
        for key, (spec, _) in self.pilots.items():
            events = generate(
                BEHAVIOURS[key],
                spec,
                now,
                now + timedelta(minutes=15),
                per_pilot,
                seed=int(now.timestamp()) * 1000 + self._tick,
                id_prefix="live",
                arrival_end=now + timedelta(seconds=1),
            )
            for ev in events:
                heapq.heappush(self.queue, (ev["occurred_at"], self.posted + len(self.queue), key, ev))

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                now = datetime.now(UTC)
                self._arrive(now)
                due: dict[str, list[dict[str, Any]]] = {}
                stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                while self.queue and self.queue[0][0] <= stamp:
                    _, _, key, ev = heapq.heappop(self.queue)
                    due.setdefault(key, []).append(ev)
                for key, events in due.items():
                    with contextlib.suppress(httpx.HTTPError, RuntimeError):
                        self.posted += post_events(client, self.url, self.pilots[key][1], events)
                self._stop.wait(1.0)


def prepare_demo_pilots(store: Store) -> dict[str, tuple[PilotSpec, str]]:
    """Returns the demo pilots applied to the store, each with a fresh API key for the simulator."""
    pilots = {}
    for name in DEMO_SPECS:
        spec = parse_pilot_spec((EXAMPLES / name).read_text(), name)
        store.apply_pilot(spec, actor="demo", reason="demo pilot")
        pilots[spec.key] = (spec, store.create_api_key(spec.key, "demo simulator"))
    return pilots


#: The widest span of event time whose events of the different pilots are posted together in the history
#: (see `history_batches`); narrower when the grace period is (half of it, see `history_window`).
HISTORY_WINDOW = timedelta(hours=6)


def history_window(grace_seconds: int) -> timedelta:
    """Returns the window the history is posted in under this grace period: half of it at most, so that
    no history event is refused as late (see `history_batches`)."""
    return min(HISTORY_WINDOW, timedelta(seconds=grace_seconds) / 2)


def history_batches(
    histories: Mapping[str, Sequence[dict[str, Any]]], window: timedelta, batch: int = BATCH
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yields (pilot key, events) batches of up to `batch` events of one pilot, which post every pilot's
    history together, a `window` of event time at a time, in event-time order within each pilot.

    A worker judges an event late against the newest event of its type read from its partition, whatever
    the pilot (see `Processor.watermarks`). Posted one pilot after the other, a second pilot's history
    would arrive after the first pilot's recent events, and all of it but the last grace period would go
    to the dead-letter topic as late. Posted this way, no event arrives after one more than `window`
    newer than itself, so none is late while `window` is under the grace period."""
    timed = {
        key: sorted(((datetime.fromisoformat(ev["occurred_at"]), ev) for ev in events), key=lambda te: te[0])
        for key, events in histories.items()
        if events
    }
    if not timed:
        return
    bound = min(items[0][0] for items in timed.values()) + window
    cursor = dict.fromkeys(timed, 0)
    while any(cursor[key] < len(items) for key, items in timed.items()):
        for key, items in timed.items():
            start = end = cursor[key]
            while end < len(items) and items[end][0] < bound:
                end += 1
            for i in range(start, end, batch):
                yield key, [ev for _, ev in items[i : min(i + batch, end)]]
            cursor[key] = end
        bound += window


def backfill(
    url: str,
    pilots: dict[str, tuple[PilotSpec, str]],
    store: Store,
    days: int,
    say: Callable[[str], None],
    window: timedelta,
) -> int:
    """Returns the number of history events posted (none for pilots that already have data): every
    pilot's history together, a `window` of event time at a time (see `history_batches`)."""
    if days <= 0:
        return 0
    end = datetime.now(UTC) - timedelta(minutes=1)
    start = end - timedelta(days=days)
    histories: dict[str, list[dict[str, Any]]] = {}
    for key, (spec, _) in pilots.items():
        if not any(store.experiment_statistics(e.key).get(UNITS) for e in spec.experiments):
            histories[key] = generate(BEHAVIOURS[key], spec, start, end, HISTORY_PARTICIPANTS[key], seed=7)
    if not histories:
        return 0
    began = time.monotonic()
    posted = dict.fromkeys(histories, 0)
    with httpx.Client(timeout=60) as client:
        for key, events in history_batches(histories, window):
            posted[key] += post_events(client, url, pilots[key][1], events)
    took = time.monotonic() - began
    for key, n in posted.items():
        say(f"simulator posted {n} events of {days} days of {key}")
    say(f"simulator posted the history of {len(posted)} pilots together in {took:.1f} s")
    return sum(posted.values())


DEMO_ADMIN = "demo-admin"


def demo_admin(settings: Settings) -> tuple[str, str]:
    """Returns the demo console account and its password: created with a random password on the first
    demo, which is kept (mode 600) in the state directory so later demos can print it again."""
    from experiments.console_setup import ensure_bootstrap_admin

    path = settings.state_dir / "demo-admin-password"
    store = Store(settings.database_url)
    try:
        if path.exists():
            return DEMO_ADMIN, path.read_text().strip()
        password = secrets.token_urlsafe(12)
        if ensure_bootstrap_admin(store, DEMO_ADMIN, password) is None:
            return DEMO_ADMIN, "(accounts already exist: use yours, or `rhizome users add`)"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        return DEMO_ADMIN, password
    finally:
        store.close()


def start_demo(settings: Settings, url: str, *, days: int, rate: float, say: Callable[[str], None]) -> LiveCitizens:
    """Returns the running live simulator after applying the demo pilots and posting their history."""
    store = Store(settings.database_url)
    pilots = prepare_demo_pilots(store)
    say(f"pilots   {', '.join(pilots)} (specs in {EXAMPLES})")
    backfill(url, pilots, store, days, say, history_window(settings.grace_seconds))
    store.close()
    live = LiveCitizens(url, pilots, rate)
    live.start()
    say(f"simulator: about {rate:g} events/s of citizens arriving live")
    return live


def run_simulator(settings: Settings, url: str, *, days: int, rate: float, duration: float | None) -> None:
    """Runs the demo simulator in the foreground (for `rhizome simulate`)."""
    live = start_demo(settings, url, days=days, rate=rate, say=print)
    try:
        deadline = time.monotonic() + duration if duration else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        live.stop()
        print(f"simulator posted {live.posted} live events")
