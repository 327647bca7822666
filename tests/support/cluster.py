"""Looking at a Kafka cluster and at what the ingest answered, for the tests that kill its nodes."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from sqlalchemy import select

from experiments import models as m
from experiments.store import Store
from tests.support.stack import Stack


def _admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000, client_id="rhizome-test"
    )


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a partition lives: its leader, its replicas and those in sync with the leader."""

    leader: int
    replicas: frozenset[int]
    in_sync: frozenset[int]


def placements(bootstrap: str, topics: Sequence[str] | None = None) -> dict[tuple[str, int], Placement]:
    """Returns every partition of `topics` (default: all the cluster's) with its leader, replicas and
    in-sync replicas; a topic the node asked does not know yet (just created) is left out."""
    admin = _admin(bootstrap)
    try:
        described = admin.describe_topics(None if topics is None else list(topics))
    finally:
        admin.close()
    return {
        (t["name"], p["partition_index"]): Placement(
            p["leader_id"], frozenset(p["replica_nodes"]), frozenset(p["isr_nodes"])
        )
        for t in described
        if t["error_code"] == 0
        for p in t["partitions"]
    }


def fully_in_sync(bootstrap: str, nodes: int) -> bool:
    """Returns True when every partition of the cluster has a leader and `nodes` replicas in sync."""
    try:
        found = placements(bootstrap)
    except Exception:  # a node still joining: not yet
        return False
    return all(p.leader >= 0 and len(p.in_sync) == nodes for p in found.values())


def config(bootstrap: str, resource: ConfigResourceType, name: str, key: str) -> str:
    """Returns the value of one setting of a topic or a broker (`name`: the node id), as the cluster
    reports it."""
    admin = _admin(bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(resource, name)], config_filter="all")
    finally:
        admin.close()
    return str(described[resource.name.lower()][name][key]["value"])


@dataclass(frozen=True, slots=True)
class Answer:
    sent_at: float
    answered_at: float
    status: int


class Answers:
    """The ingest's answers to the POST /v1/events requests of one httpx client (the SDK's sender):
    when each request left, when it was answered and how."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[int, float] = {}
        self.answers: list[Answer] = []

    def watch(self, http: httpx.Client) -> None:
        http.event_hooks["request"].append(self._on_request)
        http.event_hooks["response"].append(self._on_response)

    def _on_request(self, request: httpx.Request) -> None:
        if request.url.path == "/v1/events":
            with self._lock:
                self._sent[id(request)] = time.monotonic()

    def _on_response(self, response: httpx.Response) -> None:
        with self._lock:
            sent_at = self._sent.pop(id(response.request), None)
            if sent_at is not None:
                self.answers.append(Answer(sent_at, time.monotonic(), response.status_code))

    def between(self, start: float, end: float) -> list[Answer]:
        """Returns the answers to the requests sent from `start` to `end` (monotonic seconds)."""
        with self._lock:
            return [a for a in self.answers if start <= a.sent_at <= end]

    def acknowledged_since(self, start: float) -> int:
        """Returns how many requests sent after `start` were answered 202."""
        return sum(a.status == 202 for a in self.between(start, math.inf))

    def longest_gap(self, start: float, end: float) -> float:
        """Returns the longest time from `start` to `end` without a 202 answer (seconds)."""
        with self._lock:
            times = sorted(a.answered_at for a in self.answers if a.status == 202 and start <= a.answered_at <= end)
        edges = [start, *times, end]
        return max(b - a for a, b in itertools.pairwise(edges))


def post_until_accepted(stack: Stack, api_key: str, events: Sequence[dict[str, Any]], batch: int = 500) -> None:
    """Posts the events in batches, each sent again while the ingest answers 503, as the SDK does (a
    cluster busy electing leaders for new topics may keep a first request past the ingest's timeout)."""
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as client:
        for i in range(0, len(events), batch):
            part = list(events[i : i + batch])

            def accepted(part: list[dict[str, Any]] = part) -> bool:
                answer = client.post(f"{stack.ingest_url}/v1/events", json=part)
                assert answer.status_code in (202, 503), answer.text
                return answer.status_code == 202

            stack.wait(accepted, 120, what="the ingest to accept a batch", interval=0.5)


def percentile(values: Iterable[float], q: float) -> float:
    """Returns the q-th percentile (0-100) of `values` by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


#: The tables of figures the workers write, each with the columns that identify a row and those that
#: hold its figures. The time of a write is left out, and so is the aggregates' hourly history, which
#: is filed under the hour of the write (its last row of a partition is that partition's aggregate).
FIGURES: Mapping[Any, tuple[tuple[str, ...], tuple[str, ...]]] = {
    m.Aggregate: (
        ("experiment_key", "metric", "variant", "segment", "partition"),
        ("n", "sum", "sum_squares", "x_sum", "x_sum_squares", "sum_products"),
    ),
    m.DailyAdoption: (("pilot_key", "day", "segment", "partition"), ("active", "new", "activated")),
    m.RetentionCohort: (("pilot_key", "cohort_week", "week_index", "segment", "partition"), ("participants",)),
    m.FeedbackStat: (
        ("pilot_key", "experiment_key", "variant", "kind", "bucket", "partition"),
        ("n", "sum", "sum_squares"),
    ),
    m.FeedbackText: (("event_id",), ("pilot_key", "participant_id", "kind", "text", "occurred_at", "variants")),
}


def stored_figures(store: Store) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Returns every figure row of the store, by table and key; rows whose figures are all zero are
    left out (a partition rebuilt writes zeros where another run writes nothing)."""
    out: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    with store.engine.connect() as conn:
        for model, (keys, values) in FIGURES.items():
            columns = [getattr(model, c) for c in (*keys, *values)]
            rows = conn.execute(select(*columns)).all()
            out[model.__tablename__] = {
                tuple(r[: len(keys)]): tuple(r[len(keys) :])
                for r in rows
                if any(v not in (0, 0.0, None) for v in r[len(keys) :])
            }
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b)


def figure_differences(
    one: Mapping[str, Mapping[tuple[Any, ...], tuple[Any, ...]]],
    other: Mapping[str, Mapping[tuple[Any, ...], tuple[Any, ...]]],
    limit: int = 8,
) -> list[str]:
    """Returns how two stores' figures differ, row by row (empty when they are the same)."""
    out = []
    for table in sorted({*one, *other}):
        a, b = one.get(table, {}), other.get(table, {})
        for key in sorted({*a, *b}, key=repr):
            if key not in a or key not in b or not all(_same(x, y) for x, y in zip(a[key], b[key], strict=True)):
                out.append(f"{table} {key}: {a.get(key)} != {b.get(key)}")
    return out[:limit]
