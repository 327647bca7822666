"""The worker's batch delivery (streams/delivery.py) on faust's real consumer and aiokafka's real
unpacking, without a broker: what reaches the handler, and which offsets become committable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, Fetcher, FetchError, FetchResult, PartitionRecords
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from streams.delivery import BatchApp, BatchConsumer, BatchFetcher, Records
from streams.processor import Incoming, fetched
from tests.support.records import kafka_record

USAGE, CONSENT, CHANGELOG = TP("u.usage", 0), TP("u.consent", 1), TP("u-participants-changelog", 0)


def unit_app(*topics: str) -> BatchApp:
    """A batch app that reaches no broker, handing the records of `topics` (if any) to no handler."""
    app = BatchApp("unit", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    if topics:
        app.deliver_batches(app.topic(*topics, key_type=bytes, value_type=bytes), nothing, fetched)
    return app


def records(tp: TP, *offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [kafka_record(tp.topic, tp.partition, o, b"p1", b"{}") for o in offsets]


@contextmanager
def consumer(handler: Callable[[BatchApp, BatchConsumer, Records], Awaitable[None]]) -> Iterator[Any]:
    """Yields (app, consumer, handed) for a batch app reading u.usage and u.consent, whose other
    topics' records are recorded in `consumer.singles`."""
    app = unit_app()
    handed: list[list[Any]] = []

    async def on_batch(batch: Records) -> None:
        handed.append(list(batch))
        await handler(app, c, batch)

    app.deliver_batches(app.topic("u.usage", "u.consent", key_type=bytes, value_type=bytes), on_batch, fetched)
    app.topics.add(app.topic(CHANGELOG.topic))
    c = app.consumer
    assert isinstance(c, BatchConsumer)
    singles: list[Any] = []

    async def callback(message: Any) -> None:
        singles.append(message)

    c.callback = callback
    c.singles = singles  # type: ignore[attr-defined]
    # faust indexes its topics (which of them are acknowledged) when it subscribes.
    asyncio.run(app.topics._update_indices())
    yield app, c, handed


async def nothing(*_: Any) -> None:
    return None


def deliver(app: BatchApp, c: BatchConsumer, fetched: dict[TP, list[Any]], active: set[TP] | None = None) -> None:
    asyncio.run(c._deliver(app, fetched, set(fetched) if active is None else active))


def test_one_fetch_reaches_the_handler_whole_and_every_offset_becomes_committable() -> None:
    with consumer(nothing) as (app, c, handed):
        deliver(app, c, {USAGE: records(USAGE, 0, 1, 2), CONSENT: records(CONSENT, 7, 8)})
        assert [[(r.topic, r.offset) for r in batch] for batch in handed] == [
            [("u.usage", 0), ("u.usage", 1), ("u.usage", 2), ("u.consent", 7), ("u.consent", 8)]
        ]
        assert c._new_offset(USAGE) == 3
        assert c._read_offset[USAGE] == 2 and c._read_offset[CONSENT] == 8


def test_other_topics_keep_fausts_own_path_record_by_record() -> None:
    with consumer(nothing) as (app, c, handed):
        deliver(app, c, {CHANGELOG: records(CHANGELOG, 4, 5), USAGE: records(USAGE, 0)})
        assert [(m.topic, m.offset) for m in c.singles] == [(CHANGELOG.topic, 4), (CHANGELOG.topic, 5)]
        assert [len(batch) for batch in handed] == [1]


def test_records_already_read_are_not_handed_again() -> None:
    with consumer(nothing) as (app, c, handed):
        deliver(app, c, {USAGE: records(USAGE, 0, 1, 2)})
        deliver(app, c, {USAGE: records(USAGE, 1, 2, 3, 4)})
        assert [[r.offset for r in batch] for batch in handed] == [[0, 1, 2], [2, 3, 4]]
        assert c._new_offset(USAGE) == 5


def test_a_jump_in_offsets_does_not_hold_the_commit_back() -> None:
    # Offsets can jump (compaction, transaction markers): the commit must pass the hole, as in faust.
    # (faust's gap includes the record after the hole, which it then holds twice: it takes two commits.)
    with consumer(nothing) as (app, c, _):
        c._read_offset[USAGE] = 10
        deliver(app, c, {USAGE: records(USAGE, 10, 11, 14, 15)})
        assert [c._new_offset(USAGE), c._new_offset(USAGE)] == [15, 16]


def test_a_batch_is_acknowledged_as_fausts_ack_of_each_record_would() -> None:
    # The committed offset is 5: faust ignores older offsets; 6 is already acknowledged.
    def prepared(c: BatchConsumer) -> None:
        c._committed_offset[USAGE] = 5
        c._acked_index[USAGE].add(6)
        c._acked[USAGE].append(6)

    with consumer(nothing) as (app, c, _), consumer(nothing) as (_, faust_way, _):
        prepared(c)
        prepared(faust_way)
        fetched = records(USAGE, 3, 4, 5, 6, 7, 8)
        deliver(app, c, {USAGE: fetched})
        for rec in fetched:
            faust_way.ack(faust_way._to_message(USAGE, rec))
        assert c._acked[USAGE] == faust_way._acked[USAGE] == [6, 5, 7, 8]
        assert c._acked_index[USAGE] == faust_way._acked_index[USAGE]
        assert c._n_acked == faust_way._n_acked == 3
        assert c._new_offset(USAGE) == faust_way._new_offset(USAGE) == 9


@pytest.mark.parametrize(("intervals", "size", "commits"), [(0.5, 4, 0), (1.5, 4, 1), (0.5, 3, 1)])
def test_a_batch_longer_than_the_commit_interval_or_large_is_committed_once_acknowledged(
    monkeypatch: pytest.MonkeyPatch, intervals: float, size: int, commits: int
) -> None:
    # The timer's commits during a long batch find nothing to commit, and the next one may be up to an
    # interval away: the batch's own commit follows it at once. So does a large batch's (here: of at
    # least `size` records: this one holds 3), however short. A short and small batch waits for the timer.
    monkeypatch.setattr(BatchConsumer, "commit_after_records", size)
    clock = [100.0]
    monkeypatch.setattr("streams.delivery.monotonic", lambda: clock[0])

    async def lasting(app: BatchApp, c: BatchConsumer, _: Records) -> None:
        clock[0] += intervals * c.commit_interval

    with consumer(lasting) as (app, c, _):
        committable: list[int | None] = []

        async def commit(*_: Any, **__: Any) -> bool:
            committable.append(c._new_offset(USAGE))
            return True

        monkeypatch.setattr(c, "commit", commit)

        async def run() -> None:
            await c._deliver(app, {USAGE: records(USAGE, 0, 1, 2)}, {USAGE})
            await asyncio.gather(*c._futures)

        # On the consumer's own loop, where the worker runs it and where it starts the commit.
        c.loop.run_until_complete(run())
        assert committable == [3] * commits


def test_records_of_a_partition_no_longer_active_are_dropped() -> None:
    with consumer(nothing) as (app, c, handed):
        deliver(app, c, {USAGE: records(USAGE, 0), CONSENT: records(CONSENT, 0)}, active={CONSENT})
        assert [[r.topic for r in batch] for batch in handed] == [["u.consent"]]
        assert c._new_offset(USAGE) is None


def test_a_batch_overtaken_by_a_rebalance_is_neither_acknowledged_nor_marked_read() -> None:
    async def rebalance(app: BatchApp, c: BatchConsumer, _: Records) -> None:
        c.stop_flow()  # what faust does first when partitions are revoked

    with consumer(rebalance) as (app, c, handed):
        c._read_offset[USAGE] = 3
        deliver(app, c, {USAGE: records(USAGE, 3, 4)})
        assert len(handed) == 1
        assert c._new_offset(USAGE) is None
        assert c._read_offset[USAGE] == 3


def test_a_batch_from_an_older_generation_is_not_acknowledged() -> None:
    async def new_generation(app: BatchApp, c: BatchConsumer, _: Records) -> None:
        app.consumer_generation_id += 1

    with consumer(new_generation) as (app, c, _):
        deliver(app, c, {USAGE: records(USAGE, 0, 1)})
        assert c._new_offset(USAGE) is None


def test_a_handler_that_fails_acknowledges_nothing() -> None:
    async def fail(*_: Any) -> None:
        raise RuntimeError("store away")

    with consumer(fail) as (app, c, _):
        with pytest.raises(RuntimeError, match="store away"):
            deliver(app, c, {USAGE: records(USAGE, 0, 1)})
        assert c._new_offset(USAGE) is None


def test_records_sent_in_batches_reach_each_partition_whole_and_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    app = unit_app()
    sent: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []

    class Producer:
        """aiokafka's batch interface, with aiokafka's own batch builder (1,000 bytes a batch)."""

        def create_batch(self) -> BatchBuilder:
            return BatchBuilder(1000, 0)

        async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> None:
            built = DefaultRecordBatch(bytes(batch._build()))
            sent.append((topic, partition, [(r.key, r.value) for r in built]))

    monkeypatch.setattr(app.producer, "_ensure_producer", Producer, raising=False)
    wanted = [(f"p{i}".encode(), i % 3, f"{i:03d}".encode() * 100) for i in range(40)]
    wanted.insert(7, (b"big", 1, b"x" * 5000))  # larger than a whole batch: sent in one of its own
    asyncio.run(app.send_records("u-changelog", wanted))

    assert {topic for topic, _, _ in sent} == {"u-changelog"}
    assert len(sent) > 3  # the partitions' records did not fit one batch each
    for partition in range(3):
        got = [rec for _, p, recs in sent if p == partition for rec in recs]
        assert got == [(key, value) for key, p, value in wanted if p == partition]


def fetched_bytes(first_offset: int, keys_and_values: list[tuple[bytes, bytes]], per_batch: int) -> bytes:
    """The bytes of a partition's fetch as the broker sends them: record batches (aiokafka's own
    builder) of `per_batch` records each, numbered from `first_offset`."""
    data = bytearray()
    for start in range(0, len(keys_and_values), per_batch):
        builder = BatchBuilder(1 << 20, 0)
        for i, (key, value) in enumerate(keys_and_values[start : start + per_batch]):
            assert builder.append(key=key, value=value, timestamp=None) is not None, i
        built = bytearray(builder._build())
        built[0:8] = (first_offset + start).to_bytes(8, "big")  # the base offset, set by the broker
        data += built
    return bytes(data)


def partition_records(tp: TP, data: bytes, fetch_offset: int = 0) -> PartitionRecords:
    """aiokafka's records of one partition's fetch of `data` from `fetch_offset`, as its fetcher makes them."""
    return PartitionRecords(tp, MemoryRecords(data), None, fetch_offset, None, None, True, READ_UNCOMMITTED)


def test_aiokafkas_unpacking_makes_the_apps_records_of_a_batch_topic() -> None:
    app = unit_app("u.usage")
    sent = [(f"p{i}".encode(), f'{{"n": {i}}}'.encode()) for i in range(100, 125)]

    def unpacked(data: bytes, kind: type[PartitionRecords] | None, fetch_offset: int) -> tuple[list[Any], int]:
        records = partition_records(USAGE, data, fetch_offset)
        if kind is not None:
            records.__class__ = kind
        return list(records), records.next_fetch_offset

    # A fetch from the first offset, and one from within a batch (the broker sends the whole batch).
    for first, fetch_offset in ((100, 100), (110, 113)):
        data = fetched_bytes(first, sent[first - 100 :], per_batch=10)
        made, after = unpacked(data, app.batch_partition_records, fetch_offset)
        theirs, their_after = unpacked(data, None, fetch_offset)
        assert all(isinstance(rec, Incoming) for rec in made)
        assert [(r.topic, r.partition, r.offset, r.key, r.value) for r in made] == [
            (r.topic, r.partition, r.offset, r.key, r.value) for r in theirs
        ]
        assert [(r.offset, r.key, r.value) for r in made] == [
            (offset, *sent[offset - 100]) for offset in range(fetch_offset, 125)
        ]
        assert after == their_after == 125


def test_the_fetcher_hands_only_the_batch_topics_records_to_the_apps_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    app = unit_app("u.usage", "u.consent")
    data = fetched_bytes(0, [(b"p1", b"{}")], per_batch=1)

    def partition(tp: TP) -> FetchResult:
        return FetchResult(tp, assignment=None, partition_records=partition_records(tp, data), backoff=0)

    async def aiokafkas(self: Fetcher, assignment: Any, node_id: int, request: Any) -> bool:
        # What aiokafka's own does with a response: each partition's result stored, or its error.
        self._records.update({USAGE: partition(USAGE), CHANGELOG: partition(CHANGELOG)})
        self._records[CONSENT] = FetchError(error=RuntimeError("not the leader"), backoff=0)
        return True

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", aiokafkas)
    fetcher = object.__new__(BatchFetcher)
    fetcher._records = {}
    fetcher.batch_app = app
    assert asyncio.run(fetcher._proc_fetch_request(None, 0, None)) is True
    kinds = {tp: type(getattr(result, "_partition_records", result)) for tp, result in fetcher._records.items()}
    assert kinds == {USAGE: app.batch_partition_records, CHANGELOG: PartitionRecords, CONSENT: FetchError}
    assert isinstance(next(fetcher._records[USAGE]._partition_records), Incoming)
    assert isinstance(next(fetcher._records[CHANGELOG]._partition_records), ConsumerRecord)
