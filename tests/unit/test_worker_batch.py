"""The worker's batch handler (streams/app.py) on the real faust app, without a broker: what it has
done by the time it first waits for Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest

from experiments import models as m
from experiments.attribution import to_ms
from experiments.registry import PilotSpec
from experiments.settings import load_settings
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from streams.app import create_app
from streams.delivery import BatchApp
from streams.events import Topics, encode_erasure, new_event
from streams.health import WorkerHealth
from streams.processor import Incoming, ParticipantState
from streams.sink import Sink
from tests.support.records import worker_record

SPEC = (Path(__file__).resolve().parents[2] / "examples" / "bike-share.yaml").read_text()


def record(topic: str, offset: int, event: dict[str, Any]) -> Incoming:
    return worker_record(topic, 0, offset, event["participant_id"].encode(), orjson.dumps(event))


def worker_app(tmp_path: Path, health: WorkerHealth | None = None) -> tuple[BatchApp, PilotSpec]:
    """The worker's app, on a store that knows the bike-share pilot."""
    settings = load_settings({"RHIZOME_STATE_DIR": str(tmp_path), "RHIZOME_NAMESPACE": "unit"})
    store = Store(settings.database_url)
    store.migrate()
    pilot = parse_pilot_spec(SPEC)
    store.apply_pilot(pilot)
    app = create_app(settings, health)
    assert isinstance(app, BatchApp)
    return app, pilot


def consent_and_text(pilot: PilotSpec, kind: str, at: datetime) -> list[dict[str, Any]]:
    """citizen-1's consent and a text of theirs ("More bikes"), both at `at`."""
    return [
        new_event("consent", pilot.key, "citizen-1", {"granted": True, "scope": "usage"}, occurred_at=at),
        new_event("feedback", pilot.key, "citizen-1", {"kind": kind, "text": "More bikes"}, occurred_at=at),  # type: ignore[arg-type]
    ]


def test_a_batch_keeps_its_states_and_texts_before_it_first_waits_for_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebuild (after a rebalance or a registry change) can run whenever the batch waits; it must
    # find every state whose deltas the aggregates already took, and a comment's text must not hang
    # on the changelog answering.
    app, pilot = worker_app(tmp_path)
    topics = Topics("unit")
    at = datetime.now(UTC) - timedelta(hours=1)
    events = consent_and_text(pilot, "comment", at)
    erased_at = at - timedelta(hours=1)
    erasure = worker_record(topics.erasure, 0, 0, b"citizen-2", encode_erasure("citizen-2", erased_at))
    batch = [record(topics.consent, 0, events[0]), record(topics.feedback, 0, events[1]), erasure]
    kafka_answers = asyncio.Event()
    sent: list[bytes] = []
    texts: list[str] = []
    erased: list[tuple[str, int]] = []
    monkeypatch.setattr(Sink, "keep_texts", lambda _self, kept: texts.extend(t["text"] for t in kept))
    monkeypatch.setattr(Sink, "forget", lambda _self, requests: erased.extend(requests))

    async def send_records(topic: str, records: list[tuple[bytes, int, bytes]]) -> None:
        sent.extend(key for key, _, _ in records)
        await kafka_answers.wait()

    async def scenario() -> None:
        app.send_records = send_records  # type: ignore[attr-defined]
        assert app.batch_handler is not None
        handling = asyncio.ensure_future(app.batch_handler(batch))
        while not sent:
            await asyncio.sleep(0)
        table = app.tables["participants"]
        state = ParticipantState.from_bytes(table.data[b"citizen-1"])
        assert len(state.logs[pilot.key].seen) == 2
        assert texts == ["More bikes"]
        # The erasure's texts are forgotten in the same turn (the sink deletes them at its next write).
        assert erased == [("citizen-2", to_ms(erased_at))]
        kafka_answers.set()
        await handling
        assert sent == [b"citizen-1", b"citizen-2"]

    asyncio.run(scenario())


def test_a_large_batch_is_applied_a_chunk_of_participants_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each chunk's states are kept (and sent) before the next chunk is applied, so a batch never
    # holds the loop for all of its participants at once, and none of them is lost.
    monkeypatch.setattr("streams.app.CHUNK_PARTICIPANTS", 2)
    app, pilot = worker_app(tmp_path)
    topics = Topics("unit")
    at = datetime.now(UTC) - timedelta(hours=1)
    citizens = [f"citizen-{i}" for i in range(5)]
    batch = [
        record(topics.consent, i, new_event("consent", pilot.key, pid, {"granted": True}, occurred_at=at))
        for i, pid in enumerate(citizens)
    ]
    sends: list[list[bytes]] = []
    table = app.tables["participants"]

    async def send_records(topic: str, records: list[tuple[bytes, int, bytes]]) -> None:
        # Every state sent so far is in the table's store when its chunk is sent.
        assert all(key in table.data for sent in sends for key in sent)
        sends.append([key for key, _, _ in records])

    async def scenario() -> None:
        app.send_records = send_records  # type: ignore[attr-defined]
        assert app.batch_handler is not None
        await app.batch_handler(batch)

    asyncio.run(scenario())
    assert sends == [[b"citizen-0", b"citizen-1"], [b"citizen-2", b"citizen-3"], [b"citizen-4"]]
    assert all(len(ParticipantState.from_bytes(table.data[p.encode()]).logs[pilot.key].seen) == 1 for p in citizens)
    # The fetch's records live until its offsets are acknowledged, the events decoded from them do not.
    assert all(rec.event is None and rec.error is None for rec in batch)


def test_a_batch_is_done_only_once_its_texts_are_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Texts are kept nowhere else (the participant's state holds no text): were the batch acknowledged
    # first, a worker stopping before the sink's next write would lose them. A failed write is tried
    # again; the batch waits.
    app, pilot = worker_app(tmp_path)
    topics = Topics("unit")
    events = consent_and_text(pilot, "idea", datetime.now(UTC) - timedelta(hours=1))
    batch = [record(topics.consent, 0, events[0]), record(topics.feedback, 0, events[1])]
    store = Store(load_settings({"RHIZOME_STATE_DIR": str(tmp_path)}).database_url)
    write, failures = Store.write_rows, []

    def fail_once(self: Store, *args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append(1)
            raise OSError("the database went away")
        write(self, *args, **kwargs)

    monkeypatch.setattr(Store, "write_rows", fail_once)
    monkeypatch.setattr("streams.app.TEXT_RETRY", 0.01)

    async def send_records(topic: str, records: list[tuple[bytes, int, bytes]]) -> None:
        pass

    async def scenario() -> None:
        app.send_records = send_records  # type: ignore[attr-defined]
        assert app.batch_handler is not None
        await app.batch_handler(batch)

    asyncio.run(scenario())
    assert failures == [1]
    with store.session() as s:
        assert [t.text for t in s.query(m.FeedbackText).all()] == ["More bikes"]


def test_the_metrics_count_a_batchs_events_and_the_stores_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = WorkerHealth(stall_after=60)
    app, pilot = worker_app(tmp_path, health)
    topics = Topics("unit")
    events = consent_and_text(pilot, "idea", datetime.now(UTC) - timedelta(hours=1))
    batch = [
        record(topics.consent, 0, events[0]),
        record(topics.feedback, 1, events[1]),
        record(topics.consent, 2, events[0]),  # delivered twice
        worker_record(topics.usage, 0, 3, b"citizen-2", b'{"type": "usage"'),  # not JSON: a dead letter
    ]
    write, failures = Store.write_rows, []

    def fail_once(self: Store, *args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append(1)
            raise OSError("the database went away")
        write(self, *args, **kwargs)

    dead: list[bytes] = []

    async def send_dead_letter(self: Any, key: Any = None, value: Any = None, **_: Any) -> None:
        dead.append(value)

    monkeypatch.setattr(Store, "write_rows", fail_once)
    monkeypatch.setattr(faust.topics.Topic, "send", send_dead_letter)
    monkeypatch.setattr("streams.app.TEXT_RETRY", 0.01)

    async def send_records(topic: str, records: list[tuple[bytes, int, bytes]]) -> None:
        pass

    async def scenario() -> None:
        app.send_records = send_records  # type: ignore[attr-defined]
        assert app.batch_handler is not None
        await app.batch_handler(batch)

    asyncio.run(scenario())
    r = health.metrics.registry
    assert len(dead) == 1
    assert r.get_sample_value("rhizome_worker_events_applied_total") == 2
    assert r.get_sample_value("rhizome_worker_duplicate_events_total") == 1
    assert r.get_sample_value("rhizome_worker_dead_letters_total") == 1
    assert r.get_sample_value("rhizome_worker_batch_seconds_count") == 1
    # The texts' first write failed, the second went through: no longer failing.
    assert r.get_sample_value("rhizome_worker_store_write_errors_total") == 1
    assert (r.get_sample_value("rhizome_worker_last_flush_timestamp_seconds") or 0) > 1.7e9
    assert health.store.failing_for(0) is None
