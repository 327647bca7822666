"""The backbone end to end on the real broker: HTTP in, Kafka, faust worker, exact aggregates in SQL."""

from __future__ import annotations

import json
import random
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer

from experiments.assignment import assign
from experiments.results import experiment_results
from experiments.specs import parse_pilot_spec
from services.simulator.truth import UNITS, expected
from streams.events import Topics, new_event
from tests.support.stack import Stack

pytestmark = pytest.mark.kafka

SPEC = """
pilot: {key: backbone, name: Backbone check, consent: collected_by_service}
experiments:
  - key: checkout
    variants: {control: 0.5, express: 0.5}
    metrics:
      - {key: converted, type: proportion, action: purchase, window_days: 7}
      - {key: spend, type: mean, action: purchase, window_days: 7}
    primary: converted
"""
VARIANTS = {"control": 0.5, "express": 0.5}


def checkout_events(participants: int = 2000, total: int = 10_000, seed: int = 11) -> list[dict[str, Any]]:
    """Returns `total` events: one exposure per participant, then purchases (conversions) and page views."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=6)
    events: list[dict[str, Any]] = []
    for i in range(participants):
        pid = f"p-{seed}-{i}"
        variant = assign("checkout", pid, VARIANTS)
        at = start + timedelta(seconds=i)
        events.append(
            new_event("exposure", "backbone", pid, {"experiment": "checkout", "variant": variant}, occurred_at=at)
        )
    while len(events) < total:
        i = rng.randrange(participants)
        pid = f"p-{seed}-{i}"
        at = start + timedelta(seconds=i + rng.randint(1, 3 * 3600))
        p_buy = 0.35 if assign("checkout", pid, VARIANTS) == "express" else 0.25
        if rng.random() < p_buy:
            payload = {"action": "purchase", "value": round(rng.uniform(5, 80), 2), "properties": {"channel": "web"}}
        else:
            payload = {"action": "page_view", "value": None, "properties": {}}
        events.append(new_event("usage", "backbone", pid, payload, occurred_at=at))
    events.sort(key=lambda e: e["occurred_at"])
    return events


def store_matches(stack: Stack, events: list[dict[str, Any]]) -> bool:
    truth = expected(events, parse_pilot_spec(SPEC)).statistics["checkout"]
    stats = stack.store().experiment_statistics("checkout")
    for metric in (UNITS, "converted", "spend"):
        for variant in VARIANTS:
            want = truth[metric][variant]
            got = stats.get(metric, {}).get(variant)
            if got is None or got.n != want[0] or abs(got.sum - want[1]) > 1e-6 * max(1.0, abs(want[1])):
                return False
            if abs(got.sum_squares - want[2]) > 1e-6 * max(1.0, abs(want[2])):
                return False
    return True


def test_ten_thousand_events_give_exact_aggregates_even_posted_twice(stack: Stack) -> None:
    api_key = stack.apply(SPEC)
    stack.start_ingest()
    stack.start_worker()
    events = checkout_events()
    assert len({e["participant_id"] for e in events}) == 2000
    assert stack.post(api_key, events) == 10_000
    stack.wait(lambda: store_matches(stack, events), 180, what="aggregates equal to the posted events")

    assert stack.post(api_key, events) == 10_000
    # Redelivered events are recognised; wait for the worker to have read them all, then compare again.
    stack.wait(stack.caught_up, 180, what="the worker to consume the second copy")
    assert store_matches(stack, events)

    result = stack.cli("results", "checkout", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    truth = expected(events, parse_pilot_spec(SPEC)).statistics["checkout"]
    for variant in VARIANTS:
        assert doc["variants"][variant]["units"] == truth[UNITS][variant][0]
        assert doc["metrics"]["converted"]["data"][variant] == {
            "n": truth["converted"][variant][0],
            "sum": truth["converted"][variant][1],
        }


def test_worker_killed_with_sigkill_mid_stream_ends_exact(stack: Stack) -> None:
    api_key = stack.apply(SPEC)
    stack.start_ingest()
    worker = stack.start_worker()
    events = checkout_events(seed=12)
    half = len(events) // 2
    stack.post(api_key, events[:half])
    # Kill once the worker has written something, so the crash lands in the middle of the work.
    stack.wait(lambda: stack.store().experiment_statistics("checkout").get(UNITS), 120, what="first aggregates")
    stack.post(api_key, events[half:])
    stack.kill(worker, signal.SIGKILL)
    stack.start_worker()
    stack.wait(lambda: store_matches(stack, events), 240, what="exact aggregates after the restart")


def test_invalid_event_in_a_batch_is_refused_whole(stack: Stack) -> None:
    api_key = stack.apply(SPEC)
    stack.start_ingest()
    events = [new_event("usage", "backbone", f"p-{i}", {"action": "purchase", "value": 9.5}) for i in range(6)]
    bad = dict(events[3], payload={"action": "purchase", "value": "a lot"})
    r = httpx.post(
        f"{stack.ingest_url}/v1/events",
        json=[*events[:3], bad, *events[4:]],
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert errors[0]["index"] == 3 and errors[0]["field"] == "payload.value"
    assert "a lot" in errors[0]["message"]
    consumer = KafkaConsumer(
        *Topics(stack.namespace).events, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )  # fmt: skip
    assert list(consumer) == []
    consumer.close()


def test_event_valid_for_the_api_but_not_the_stream_goes_to_the_dead_letter_topic(stack: Stack) -> None:
    api_key = stack.apply(SPEC)
    stack.start_ingest()
    stack.start_worker()
    ghost = new_event("exposure", "backbone", "p-ghost", {"experiment": "no-such-experiment", "variant": "control"})
    assert stack.post(api_key, [ghost]) == 1
    consumer = KafkaConsumer(
        Topics(stack.namespace).dead_letter, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )  # fmt: skip

    def dead_letters() -> list[dict[str, Any]]:
        return [json.loads(m.value) for m in consumer]

    found = stack.wait(dead_letters, 120, what="the dead letter")
    consumer.close()
    assert found[0]["event"]["event_id"] == ghost["event_id"]
    assert found[0]["field"] == "payload.experiment"
    assert "unknown experiment 'no-such-experiment'" in found[0]["reason"]
    assert experiment_results(stack.store(), "checkout")["variants"]["control"]["units"] == 0
