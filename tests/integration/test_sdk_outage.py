"""The broker stopped for ten seconds and restarted: the ingest API answers 503 meanwhile, the SDK buffers
and re-sends, nothing is lost and nothing is double counted (issue 5, "Exact under failure")."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer

from experiments.settings import load_settings
from experiments.specs import parse_pilot_spec
from services.broker import LocalBroker
from services.sdk import RhizomeClient
from services.simulator.truth import UNITS, expected
from streams.events import Topics, new_event
from tests.support.ports import free_ports
from tests.support.stack import Stack

pytestmark = pytest.mark.kafka

PILOT = "corner-shop"
SPEC = """
pilot: {key: corner-shop, name: Corner shop ordering, consent: collected_by_service}
experiments:
  - key: reorder-button
    variants: {control: 0.5, one_tap: 0.5}
    metrics:
      - {key: ordered, type: proportion, action: purchase, window_days: 7}
      - {key: spend, type: mean, action: purchase, window_days: 7}
    primary: ordered
"""
METRICS = (UNITS, "ordered", "spend")
OUTAGE_SECONDS = 10.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """Returns a broker of this test's own, so stopping it leaves the session's broker alone."""
    port = free_ports(2)  # the broker's port and its controller's, the next one
    settings = replace(load_settings({"RHIZOME_STATE_DIR": str(tmp_path / "own-broker")}), kafka_port=port)
    broker = LocalBroker(settings)
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def outage_stack(tmp_path: Path, own_broker: LocalBroker, sqlite_url: str) -> Iterator[Stack]:
    stack = Stack(tmp_path, own_broker.bootstrap, sqlite_url, f"t{uuid.uuid4().hex[:12]}")
    try:
        yield stack
    finally:
        stack.stop()


class Citizens(threading.Thread):
    """Citizens using a pilot service, without pause: each new one is assigned, then buys or browses."""

    def __init__(self, client: RhizomeClient) -> None:
        super().__init__(name="citizens", daemon=True)
        self.client = client
        self.halt = threading.Event()
        self.rng = random.Random(5)
        #: Every event the SDK accepted, as the ground truth reads them (exposure ids are the test's own).
        self.events: list[dict[str, Any]] = []

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            pid = f"c-{i}"
            i += 1
            seen_at = datetime.now(UTC)
            variant = self.client.variant("reorder-button", pid)
            if variant is not None:
                payload = {"experiment": "reorder-button", "variant": variant}
                self.events.append(new_event("exposure", PILOT, pid, payload, occurred_at=seen_at))
            for _ in range(self.rng.randint(0, 3)):
                at = datetime.now(UTC)
                value = round(self.rng.uniform(5, 80), 2) if self.rng.random() < 0.4 else None
                action = "purchase" if value is not None else "page_view"
                event_id = self.client.track(pid, action, value, occurred_at=at)
                usage: dict[str, Any] = {"action": action, "value": value, "session_id": None, "properties": {}}
                self.events.append(new_event("usage", PILOT, pid, usage, occurred_at=at, event_id=event_id))
            # About fifty citizens a second: a steady load, not a synchronisation.
            self.halt.wait(0.02)


def differences(stack: Stack, events: list[dict[str, Any]]) -> list[str]:
    """Returns how the store's aggregates differ from the ground truth of `events` (empty when equal)."""
    truth = expected(events, parse_pilot_spec(SPEC)).statistics["reorder-button"]
    stats = stack.store().experiment_statistics("reorder-button")
    out = []
    for metric in METRICS:
        for variant in ("control", "one_tap"):
            want = truth[metric][variant][:3]
            got = stats.get(metric, {}).get(variant)
            have = (got.n, got.sum, got.sum_squares) if got else None
            if (
                have is None
                or have[0] != want[0]
                or any(abs(h - w) > 1e-6 * max(1, abs(w)) for h, w in zip(have, want, strict=True))
            ):
                out.append(f"{metric}/{variant}: store {have}, truth {want}")
    return out


def kafka_records(stack: Stack) -> list[dict[str, Any]]:
    """Returns every event record on the stack's topics, copies included."""
    consumer = KafkaConsumer(
        *Topics(stack.namespace).events, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )  # fmt: skip
    records = [orjson.loads(m.value) for m in consumer]
    consumer.close()
    return records


def test_broker_down_ten_seconds_sdk_buffers_and_resends_nothing_lost_nothing_double_counted(
    outage_stack: Stack, own_broker: LocalBroker
) -> None:
    stack = outage_stack
    api_key = stack.apply(SPEC)
    stack.start_ingest()
    stack.start_worker()
    client = RhizomeClient(
        stack.ingest_url,
        api_key,
        source="outage-test",
        flush_interval=0.2,
        max_batch=200,
        backoff=0.2,
        max_backoff=2.0,
        request_timeout=30.0,
        close_timeout=60.0,
        secret="test-secret-not-for-production",
    )
    citizens = Citizens(client)
    citizens.start()
    load_started = time.monotonic()
    probes: list[dict[str, Any]] = []
    try:
        stack.wait(lambda: client.stats().sent >= 200, 60, what="the SDK to deliver before the outage")
        # The worker is past its start-up (which needs the broker) once it has written aggregates.
        stack.wait(lambda: stack.store().experiment_statistics("reorder-button").get(UNITS), 120, what="aggregates")

        stopped_at = time.monotonic()
        own_broker.stop()

        def probe() -> int:
            event = new_event("usage", PILOT, f"probe-{len(probes)}", {"action": "page_view"})
            answer = httpx.post(
                f"{stack.ingest_url}/v1/events",
                json=event,
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=30,
            )
            if answer.status_code == 202:
                probes.append(event)
            return answer.status_code

        stack.wait(lambda: probe() == 503, 60, what="the ingest API to answer 503 without its broker")
        first_503 = time.monotonic() - stopped_at
        stack.wait(
            lambda: client.stats().retries > 0 and client.stats().buffered > 0, 60, what="the SDK to buffer and retry"
        )
        assert client.stats().dropped_rejected == 0
        # The outage lasts ten seconds by design: this sleep is its length, not a synchronisation.
        time.sleep(max(0.0, stopped_at + OUTAGE_SECONDS - time.monotonic()))
        outage = time.monotonic() - stopped_at
        sent_before_restart = client.stats().sent
        own_broker.start(timeout=120)
        restarted_at = time.monotonic()
        stack.wait(lambda: client.stats().sent > sent_before_restart, 120, what="the SDK to deliver again")
        resumed = time.monotonic() - restarted_at
        stack.wait(
            lambda: client.stats().sent > sent_before_restart + 200, 120, what="more deliveries after the outage"
        )
    finally:
        citizens.halt.set()
        citizens.join(timeout=30)
        load_seconds = time.monotonic() - load_started
        client.close()
    stats = client.stats()
    events = [*citizens.events, *probes]
    assert (stats.buffered, stats.dropped_full, stats.dropped_rejected) == (0, 0, 0)
    assert stats.sent == len(citizens.events)
    assert stats.retries > 0

    closed_at = time.monotonic()
    stack.wait(lambda: not differences(stack, events), 240, what="aggregates equal to every event the SDK took")
    # Once the worker has read every record, re-sent copies included, the counts are still exact.
    stack.wait(stack.caught_up, 180, what="the worker to read every record")
    assert differences(stack, events) == []
    records = kafka_records(stack)
    on_kafka = {r["event_id"] for r in records}
    assert {e["event_id"] for e in citizens.events if e["type"] == "usage"} <= on_kafka
    exposed = {r["participant_id"] for r in records if r["type"] == "exposure"}
    assert exposed == {e["participant_id"] for e in citizens.events if e["type"] == "exposure"}
    print(
        f"\nSDK outage: {len(events)} events in {load_seconds:.0f} s ({stats.sent} through the SDK, "
        f"{stats.retries} retries); "
        f"first 503 after {first_503:.1f} s; outage {outage:.1f} s; SDK delivering {resumed:.1f} s after the "
        f"restart; exact {time.monotonic() - closed_at:.1f} s after close; {len(records) - len(on_kafka)} duplicate "
        "records on Kafka, none counted"
    )
