"""Whole fetches from Kafka handed to the worker at once, instead of faust's record-by-record path.

faust hands every fetched record to the streams one at a time: its fetcher races each record's
delivery against the flow-control event (four asyncio tasks per record), then the conductor
decodes it into an event, queues it, and the stream takes it off the queue and acks it. Measured
here, that path alone caps a worker at about 4,000 records/s, whatever the agent does. The
`BatchApp` keeps everything else of faust (the consumer group, the tables and their changelogs and
recovery, offsets committed on the timer, rebalances) and changes only the last step for the
topics it is told about: each fetch of those topics goes to one handler coroutine as a list of
records, and their offsets are acknowledged when it returns. Records of every other topic (the
tables' changelogs during recovery, for one) still take faust's own path.

What keeps this as safe as faust's path:

- A batch is handed over under the same race against the flow-control event as faust's single
  record, so a rebalance that suspends the flow cancels the batch at its next await, and its
  offsets are neither marked read nor acknowledged: the records are fetched again, after the seek
  to the committed offsets, by whichever worker owns them then.
- Offsets are acknowledged with the bookkeeping of faust's own `Consumer.ack`, a partition's
  offsets at once, so the commit (only up to the first unacknowledged offset, table changelogs
  flushed first) is faust's. It runs on faust's timer, and also right after a batch that lasted
  longer than the timer's interval (the timer's commits during the batch found nothing to commit) or
  held many records (a backlog's fetch, read again in full after a crash until committed).
- Records of a partition that is no longer active are dropped, as faust drops them, and a batch
  during which the consumer generation changed is not acknowledged.

The records of those topics are also made leaner than aiokafka's: its fetcher, which unpacks each
record into a `ConsumerRecord` (a dataclass of eleven fields, built by a Python function), makes the
app's own record of it instead (`BatchApp.deliver_batches`, `BatchFetcher`): offline, on the
benchmark's records, 1.1 to 1.8 µs a record unpacked against 2.3 to 4.5. The records of every other
topic stay aiokafka's.

`BatchApp.send_records` is the other half: the worker's new states go to the table's changelog
packed into aiokafka batches, rather than through a `send` per record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from time import monotonic
from typing import Any, ClassVar

import faust
from aiokafka.consumer.fetcher import Fetcher, FetchResult, PartitionRecords
from aiokafka.structs import ConsumerRecord
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

log = logging.getLogger("rhizome.worker")

#: What a batch handler receives: the records of one fetch (as its `RecordMaker` makes them), in
#: offset order within each partition.
Records = Sequence[Any]
BatchHandler = Callable[[Records], Awaitable[None]]
#: Makes a batch record from the record aiokafka read of partition `tp`: aiokafka's own (`offset`,
#: `key`, `value`, `timestamp`, `headers`), or a `ConsumerRecord`. What it makes must have `offset`.
RecordMaker = Callable[[TP, Any], Any]


class BatchFetcher(Fetcher):  # type: ignore[misc]  # aiokafka has no types
    """aiokafka's fetcher, whose records of the batch topics are made by the app (`RecordMaker`)."""

    batch_app: BatchApp

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        needs_wakeup: bool = await super()._proc_fetch_request(assignment, node_id, request)
        # Between the fetch's results stored and this, the loop has not run: none has been read yet.
        app = self.batch_app
        for tp, result in self._records.items():
            if isinstance(result, FetchResult) and tp.topic in app.batch_topics:
                records = result._partition_records
                if type(records) is PartitionRecords:
                    records.__class__ = app.batch_partition_records
        return needs_wakeup


class BatchConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """faust's thread of the aiokafka consumer, whose fetcher is a `BatchFetcher`."""

    async def on_start(self) -> None:
        await super().on_start()
        app = self.consumer.app
        assert isinstance(app, BatchApp)
        # Made by the consumer's start, before any partition is assigned, so before any fetch.
        fetcher = self._consumer._fetcher  # type: ignore[union-attr]
        fetcher.__class__ = BatchFetcher
        fetcher.batch_app = app


class BatchConsumer(aiokafka_driver.Consumer):
    """faust's aiokafka consumer, whose fetcher hands the batch topics' records over a fetch at a time."""

    _made_here = False
    #: A batch of at least this many records is committed as soon as it is acknowledged (see `_deliver`).
    commit_after_records: ClassVar[int] = 10_000

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        app = self.app
        assert isinstance(app, BatchApp)
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(timeout=1.0)
                # getmany can return at once many times over: give the loop a turn each time.
                await self.sleep(0)
                if self.should_stop:
                    break
                if not records:
                    continue
                if not self.flow_active:
                    await self.perform_seek()
                    continue
                await self.wait_first(self._deliver(app, records, active), self.suspend_flow.wait())
        except self.consumer_stopped_errors:
            if not app.should_stop:
                raise
        except asyncio.CancelledError:
            if not app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, app: BatchApp, records: Mapping[TP, list[Any]], active: set[TP] | None) -> None:
        generation = app.consumer_generation_id
        handler = app.batch_handler
        read = self._read_offset
        batch: list[Any] = []
        ends: dict[TP, list[Any]] = {}
        for tp, recs in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            fresh = await self._unread(tp, recs)
            if not fresh:
                continue
            if tp.topic in app.batch_topics:
                if type(fresh[0]) is ConsumerRecord:
                    fresh = self._made(app, tp, fresh)
                batch.extend(fresh)
                ends[tp] = fresh
                continue
            for rec in fresh:
                if app.consumer_generation_id != generation or not self.flow_active:
                    return
                await self.callback(self._to_message(tp, rec))
                read[tp] = rec.offset
        if not batch or app.consumer_generation_id != generation:
            return
        assert handler is not None  # batch topics are set together with their handler
        began = monotonic()
        await handler(batch)
        if app.consumer_generation_id != generation or not self.flow_active:
            return
        for tp, recs in ends.items():
            self._ack_offsets(tp, [rec.offset for rec in recs])
            read[tp] = recs[-1].offset
        if monotonic() - began > self.commit_interval or len(batch) >= self.commit_after_records:
            # The timer's commits during a long batch found nothing new to commit, and the next is up
            # to an interval away; a large batch (a backlog's fetch) is as much work to read again
            # after a crash: commit either now, beside the next batch, rather than up to an interval
            # later.
            self.add_future(self.commit())

    def _made(self, app: BatchApp, tp: TP, records: list[ConsumerRecord[bytes, bytes]]) -> list[Any]:
        """Returns the app's records made of ConsumerRecords, which only a fetcher that is not a
        `BatchFetcher` hands over (tests do): said once, as the worker is then slower."""
        if not self._made_here:
            self._made_here = True
            log.warning("records of %s came as ConsumerRecords, not from a BatchFetcher", tp.topic)
        return [app.batch_record(tp, rec) for rec in records]

    def _ack_offsets(self, tp: TP, offsets: list[int]) -> None:
        """faust's `Consumer.ack` for the records of one partition at once, without building a faust
        message for each (a sixth of a second per 30,000 records, measured): the same bookkeeping,
        under the same lock, that the commit reads. Batch records are never tracked as unacked
        messages, so there is none to forget."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return
        with ack_lock:
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            fresh = [o for o in offsets if (committed is None or o >= committed) and o not in index]
            try:
                if fresh:
                    index.update(fresh)
                    self._acked[tp].extend(fresh)
                    self._n_acked += len(fresh)
            finally:
                notify(self._waiting_for_ack)

    async def _unread(self, tp: TP, recs: list[Any]) -> list[Any]:
        """Returns the records not read yet; a jump in offsets is noted as a gap that commits may pass."""
        previous = self._read_offset[tp]
        if previous is None:
            return recs
        fresh = [rec for rec in recs if rec.offset >= previous]
        if self.app.topics.acks_enabled_for(tp.topic):
            for rec in fresh:
                if previous and rec.offset - previous > 1:
                    await self._add_gap(tp, previous + 1, rec.offset)
                previous = rec.offset
        return fresh


class BatchTransport(aiokafka_driver.Transport):
    Consumer: ClassVar[type[Any]] = BatchConsumer


class BatchApp(faust.App):
    """A faust app that hands the records of one topic description to a handler, a fetch at a time."""

    batch_topics: frozenset[str] = frozenset()
    batch_handler: BatchHandler | None = None
    batch_record: RecordMaker
    #: aiokafka's records of one partition's fetch, each made by `batch_record`.
    batch_partition_records: type[PartitionRecords]

    def deliver_batches(self, topic: faust.types.TopicT, handler: BatchHandler, record: RecordMaker) -> None:
        """Subscribes to the topic's names; their records, each made by `record`, go to the handler, a
        whole fetch at a time."""
        self.topics.add(topic)
        self.batch_topics = frozenset(topic.topics)
        self.batch_handler = handler
        self.batch_record = record
        # Called by aiokafka's unpacking for each record, in place of the method that makes a
        # ConsumerRecord of it, with the same arguments.
        self.batch_partition_records = type(
            "BatchPartitionRecords", (PartitionRecords,), {"_consumer_record": staticmethod(record)}
        )

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    async def send_records(self, topic: str, records: Iterable[tuple[bytes, int, bytes]]) -> None:
        """Queues (key, partition, value) records on the app's producer, packed into one aiokafka batch
        per partition (a new one when it is full), in order: a quarter to a tenth of the time of a
        `send` per record, which builds a future and a batch lookup for each (measured). The producer sends
        them like its other batches, and faust's flush before a commit waits for them too."""
        producer = self.producer._ensure_producer()  # type: ignore[attr-defined]  # aiokafka's, under faust's
        batches: dict[int, Any] = {}
        for key, partition, value in records:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                await producer.send_batch(batch, topic, partition=partition)
                batch = batches[partition] = producer.create_batch()
                # A new batch takes any record, however large, as its first.
                batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            await producer.send_batch(batch, topic, partition=partition)
