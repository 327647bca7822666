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
import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from time import monotonic
from types import ModuleType
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

#: The releases every private name below was checked against (the versions constraints.txt pins).
CHECKED_AGAINST = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}


@dataclass(frozen=True, slots=True)
class PrivateName:
    """A name of faust, mode or aiokafka outside their public API that this module relies on.

    `owner` is "module:Class" or "module". A method we call is checked by its parameters; a method
    whose behaviour we replace or copy, by a digest of its source as well, so that any change of it
    upstream asks for a new look (docs/faust-integration.md says how). Any other name must exist: as
    an attribute of the class or module, or assigned to `self` in the class's or a base's source."""

    distribution: str
    owner: str
    name: str
    why: str
    parameters: tuple[str, ...] | None = None
    source: str | None = None


_FETCHER = "aiokafka.consumer.fetcher"
_CONSUMER = "faust.transport.consumer:Consumer"
_DRIVER = "faust.transport.drivers.aiokafka"

#: Every private name this module uses (docs/faust-integration.md gives the reasons at length).
PRIVATE_NAMES = (
    PrivateName("aiokafka", f"{_FETCHER}:Fetcher", "_proc_fetch_request", "extended: marks batch records",
                ("self", "assignment", "node_id", "request"), "59bf948fff47"),
    PrivateName("aiokafka", f"{_FETCHER}:Fetcher", "_records", "the fetch results just stored"),
    PrivateName("aiokafka", f"{_FETCHER}:FetchResult", "_partition_records", "a partition's records to unpack"),
    PrivateName("aiokafka", f"{_FETCHER}:PartitionRecords", "_consumer_record", "replaced: makes our record",
                ("self", "tp", "record"), "e668541600b0"),
    PrivateName("aiokafka", "aiokafka.consumer.consumer:AIOKafkaConsumer", "_fetcher", "its fetcher, retyped"),
    PrivateName("faust-streaming", f"{_DRIVER}:AIOKafkaConsumerThread", "on_start", "extended: starts the fetcher",
                ("self",), "38b4e8bd1e10"),
    PrivateName("faust-streaming", f"{_DRIVER}:AIOKafkaConsumerThread", "_consumer", "aiokafka's consumer"),
    PrivateName("faust-streaming", f"{_DRIVER}:Consumer", "_new_consumer_thread", "replaced: our thread",
                ("self",), "0870ec53dea7"),
    PrivateName("faust-streaming", f"{_DRIVER}:Consumer", "_to_message", "other topics' records",
                ("self", "tp", "record")),
    PrivateName("faust-streaming", f"{_DRIVER}:Transport", "Consumer", "replaced: our consumer class"),
    PrivateName("faust-streaming", f"{_DRIVER}:Producer", "_ensure_producer", "aiokafka's producer, for batches",
                ("self",)),
    PrivateName("faust-streaming", _CONSUMER, "_drain_messages", "replaced: hands over whole fetches",
                ("self", "fetcher"), "44a2500309e8"),
    PrivateName("faust-streaming", _CONSUMER, "_wait_next_records", "the next fetch", ("self", "timeout")),
    PrivateName("faust-streaming", _CONSUMER, "_add_gap", "offsets a commit may pass",
                ("self", "tp", "offset_from", "offset_to")),
    PrivateName("faust-streaming", _CONSUMER, "ack", "copied: a partition's acks at once",
                ("self", "message"), "5fcf41cf4515"),
    PrivateName("faust-streaming", _CONSUMER, "_read_offset", "the read position per partition"),
    PrivateName("faust-streaming", _CONSUMER, "_buffered_partitions", "partitions faust still delivers"),
    PrivateName("faust-streaming", _CONSUMER, "_committed_offset", "what the commit read"),
    PrivateName("faust-streaming", _CONSUMER, "_acked", "acknowledged offsets"),
    PrivateName("faust-streaming", _CONSUMER, "_acked_index", "acknowledged offsets, as a set"),
    PrivateName("faust-streaming", _CONSUMER, "_n_acked", "count of acknowledged offsets"),
    PrivateName("faust-streaming", _CONSUMER, "_waiting_for_ack", "woken when an ack arrives"),
    PrivateName("faust-streaming", "faust.transport.consumer", "CONSUMER_FETCHING", "the fetching flag"),
    PrivateName("faust-streaming", "faust.types.tuples", "ack_lock", "the lock acks and commits share"),
    PrivateName("faust-streaming", "faust.app.base:App", "_new_transport", "replaced: our transport",
                ("self",), "42db531312dd"),
    PrivateName("faust-streaming", "faust.stores.memory:Store", "data", "the table's dict, read directly"),
    PrivateName("faust-streaming", "faust.tables.recovery:Recovery", "in_recovery", "health: a recovery runs"),
    PrivateName("faust-streaming", "faust.tables.recovery:Recovery", "active_remaining_total",
                "health: recovery's progress", ("self",)),
    PrivateName("mode-streaming", "mode.services:Service", "_stopped", "a service's stopped event"),
    PrivateName("mode-streaming", "mode.utils.futures", "notify", "wakes the ack waiter", ("fut", "result")),
)  # fmt: skip


def _source_digest(obj: Any) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:12]


def _assigned(cls: type, name: str) -> bool:
    """Returns True when the class, or a base, has `name`, or the module of one of them assigns it to
    `self` (a whole module's text is searched: a class's own source takes seconds to find)."""
    assignment = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=\n]*)?=[^=]")
    for klass in cls.__mro__:
        if name in vars(klass):
            return True
        module = inspect.getmodule(klass)
        if module is not None and module.__name__ != "builtins" and assignment.search(_module_text(module)):
            return True
    return False


@functools.cache
def _module_text(module: ModuleType) -> str:
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):  # a module without source (built in, or compiled)
        return ""


def private_name_problem(use: PrivateName) -> str | None:
    """Returns what changed about one private name since it was checked, or None when nothing did."""
    module_name, _, class_name = use.owner.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
    except (ImportError, AttributeError):
        return f"{use.owner} is gone"
    if use.parameters is None and use.source is None:
        found = _assigned(owner, use.name) if inspect.isclass(owner) else hasattr(owner, use.name)
        return None if found else "is gone"
    target = inspect.getattr_static(owner, use.name, None)
    if isinstance(target, staticmethod | classmethod):
        target = target.__func__
    if not callable(target):
        return "is gone" if target is None else "is no longer a function"
    if use.parameters is not None and tuple(inspect.signature(target).parameters) != use.parameters:
        got = ", ".join(inspect.signature(target).parameters)
        return f"takes ({got}) where ({', '.join(use.parameters)}) was checked"
    if use.source is not None and _source_digest(target) != use.source:
        return f"changed: its source digest is {_source_digest(target)}, {use.source} was checked"
    return None


def integration_problems(names: Iterable[PrivateName] = PRIVATE_NAMES) -> list[str]:
    """Returns, for each private name that is gone or changed in the installed releases, a line naming
    it, the installed release and the one it was checked against; an empty list when all hold."""
    problems = []
    for use in names:
        problem = private_name_problem(use)
        if problem is not None:
            installed = importlib.metadata.version(use.distribution)
            checked = CHECKED_AGAINST[use.distribution]
            problems.append(
                f"{use.owner}.{use.name} ({use.why}) {problem}: {use.distribution} {installed} is installed, "
                f"this integration was checked against {checked} (see docs/faust-integration.md)"
            )
    return problems


def table_dict(table: Any) -> MutableMapping[bytes, bytes]:
    """Returns the dict a table of the memory store keeps its values in: read and written directly,
    as the table's and the store's `get` add three Python calls each."""
    store: MutableMapping[bytes, bytes] = table.data.data
    return store


def recovery_remaining(app: faust.App) -> int | None:
    """Returns how many changelog records the tables' recovery still has to read, None when none runs."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # faust's TableManager
    return int(recovery.active_remaining_total()) if recovery.in_recovery else None


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
