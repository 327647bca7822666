"""The faust app: the worker reads every event topic (co-partitioned by participant) a whole fetch at
a time (streams/delivery.py) and applies it a chunk of participants at a time, a table keeps each
participant's small state, and a timer flushes the per-partition aggregates to the store.

Processing is at-least-once: the states a batch changed go to the table's changelog before the
batch's offsets are acknowledged, and faust flushes the producer before it commits offsets, so an
event whose offset is committed is in the participant's state; an event processed again after a
crash is recognised by its event_id and skipped. Aggregates are never stored in Kafka: after every
rebalance they are rebuilt from the participants' states, so they always equal the sum of the
states' contributions, whatever was lost in flight.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import faust

import streams.processor
from experiments.native import compiled
from experiments.native import core as native_core
from experiments.settings import Settings, load_settings
from experiments.store import Store
from streams.delivery import BatchApp, Records
from streams.events import GroupOffsets, Topics, ensure_settings_topics, wait_until_reachable
from streams.processor import (
    Incoming,
    LiveStates,
    Outcome,
    ParticipantState,
    Processor,
    Registry,
    by_participant,
    decoded_chunk,
    fetched,
    forget_events,
)
from streams.sink import Sink
from streams.watchdog import WATCH_EVERY, CommitWatch, RecoveryWatch, restart_process

log = logging.getLogger("rhizome.worker")

#: Most records handed to the processor at once (one fetch). Under a backlog a larger fetch holds
#: more of each participant's records, whose state is then read, recounted and written once for all
#: of them; see `process_batch`. Measured on the benchmark's backlog of 87,000 events from 12,000
#: participants, in events/s while batches ran: 30,000 records a batch gave 1.3 to 1.5 times the rate
#: of 10,000; 100,000 (the whole backlog in one batch) gave 21,300 to 23,300 against 14,600 to 16,300
#: with 30,000. A batch's records stay in memory until it ends (about 40 MB for 100,000).
BATCH_SIZE = 100_000
#: Participants applied in one turn of the event loop.
CHUNK_PARTICIPANTS = 2_000
#: Participants whose states the worker keeps parsed between batches (see `LiveStates`): about
#: 6.5 KB each (measured on the benchmark's pilot, 540 bytes stored), so at most about 130 MB.
LIVE_STATES = 20_000
FLUSH_EVERY = 1.0
#: Seconds between two tries to store a batch's texts, which the batch waits for (`Sink.store_texts`).
TEXT_RETRY = 1.0
#: Seconds between two passes of the cycle collector (see `_started`).
COLLECT_EVERY = 30.0
REGISTRY_EVERY = 2.0
#: Least time between two registry reloads asked for by an event naming an unknown pilot or experiment.
UNKNOWN_RELOAD_GAP = 1.0
#: A commit count the worker never reaches: offsets are committed every `broker_commit_interval`.
COMMIT_NEVER_BY_COUNT = 2**62
#: How long a worker starting while Kafka is away waits for it before giving up.
STARTUP_WAIT = 120.0


def create_app(settings: Settings) -> faust.App:
    """Returns the faust app of the worker for these settings (topics, table, batch handler, timers)."""
    topics = Topics(settings.namespace)
    datadir = settings.state_dir / "worker"
    datadir.mkdir(parents=True, exist_ok=True)
    app = BatchApp(
        settings.namespace,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        table_standby_replicas=0,
        topic_replication_factor=settings.topic_replication,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        # Commit on the timer only. With a count, faust's fetcher itself commits between two records
        # and can wait there through a whole rebalance, then hand on a record fetched before it, whose
        # offset becomes the read position: the records between the committed offset and that one are
        # skipped, never acknowledged, and the partition never commits again (see streams/watchdog.py).
        broker_commit_every=COMMIT_NEVER_BY_COUNT,
        broker_commit_interval=1.0,
        # A worker that dies (even in the middle of a rebalance) is noticed in seconds, not minutes,
        # so its partitions move to the survivors quickly.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_rebalance_timeout=20.0,
        broker_max_poll_records=BATCH_SIZE,
        # Per partition and fetch: about 28,000 ordinary events (about 300 bytes each), so that a
        # fetch of a backlog spread over a few partitions fills a batch (aiokafka caps a whole fetch
        # at 50 MiB).
        consumer_max_fetch_size=8 * 1024**2,
        producer_linger_ms=5,
        producer_max_batch_size=512 * 1024,
        datadir=str(datadir),
    )
    source = app.topic(
        *topics.partitioned,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    dead_letters = app.topic(
        topics.dead_letter, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    participants = app.Table(
        "participants",
        default=None,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        # The changelog partition of a participant is chosen from its key, like the source topics',
        # so a batch mixing partitions writes each state where its events live.
        use_partitioner=True,
    )
    changelog = participants.changelog_topic.get_topic_name()
    store = Store(settings.database_url)
    processor = Processor(
        Registry.of(store.pilot_runtimes()),
        grace_ms=settings.grace_seconds * 1000,
        core=native_core(LIVE_STATES),
        max_age=settings.event_max_age,
    )
    sink = Sink(store, lambda value: dead_letters.send(key=None, value=value))
    live = LiveStates(LIVE_STATES)
    source_names = set(topics.partitioned)
    erasure_topic = topics.erasure
    last_unknown_reload = 0.0

    def active_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic in source_names}

    def rebuild() -> None:
        states = ((k, ParticipantState.from_bytes(v)) for k, v in participants.items() if v is not None)
        owned = active_partitions()
        read = processor.rebuild(((k.decode() if isinstance(k, bytes) else k, s) for k, s in states), owned)
        log.info("rebuilt aggregates of partitions %s from %d participants", sorted(owned), read)

    async def reload_registry() -> bool:
        loop = asyncio.get_running_loop()
        pilots = await loop.run_in_executor(None, store.pilot_runtimes)
        registry = Registry.of(pilots)
        if registry.digest == processor.registry.digest:
            return False
        processor.registry = registry
        rebuild()
        return True

    @participants.on_recover
    async def _recovered() -> None:
        rebuild()

    @app.on_partitions_revoked.connect
    async def _revoked(_sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[Any] = args[0]
        await sink.settle()
        processor.aggregates.drop({tp.partition for tp in revoked if tp.topic in source_names})

    def apply(chunk: dict[bytes, list[Incoming]]) -> tuple[Outcome, list[tuple[bytes, int, bytes]]]:
        """Applies a chunk of the batch's participants, and keeps their new states in the table's store
        and their texts in the sink: all in one turn of the loop, the one in which the aggregates take
        the chunk's changes, so a rebuild (after a rebalance or a registry change) never sees the
        aggregates without the states or the other way round, and a batch cancelled after this is
        never applied again (its events are seen). Returns what is left to send."""
        # The memory store's own dict, read and written directly: the table's and the store's `get`
        # add three Python calls each.
        outcome, changed = processor.process_chunk(participants.data.data, chunk, live)  # type: ignore[attr-defined]
        sink.forget(outcome.erasures)
        sink.keep_texts(outcome.texts)
        return outcome, changed

    async def process_batch(batch: Records) -> None:
        nonlocal last_unknown_reload
        # Grouped by participant over the whole fetch: a participant's state is read, recounted and
        # written once for all of their records in it. Then applied a chunk of participants at a
        # time, each chunk decoded just before, with a turn of the loop between chunks (heartbeats,
        # timers), so a large fetch never holds the loop for long.
        groups = by_participant(batch)
        keys = list(groups)
        store: dict[bytes, bytes] = participants.data.data  # type: ignore[attr-defined]
        for start in range(0, len(keys), CHUNK_PARTICIPANTS):
            # First the participants the native core takes (all but those with an invalid record,
            # an erasure or an event to refuse), in this turn of the loop; then the others.
            fast, changed, rest = processor.process_fast(
                store, groups, keys[start : start + CHUNK_PARTICIPANTS], erasure_topic
            )
            sink.keep_texts(fast.texts)
            chunk = decoded_chunk(groups, rest, erasure_topic)
            now = time.monotonic()
            if now - last_unknown_reload > UNKNOWN_RELOAD_GAP and processor.registry.refers_to_unknown(chunk):
                last_unknown_reload = now
                # The states already written reach the changelog before the loop turns.
                await asyncio.shield(app.send_records(changelog, changed))
                changed = []
                await reload_registry()
            outcome, slow = apply(chunk)
            forget_events(chunk)
            # To the changelog, past faust's table API, whose buffer sends one record per loop turn
            # (about 200 µs each, measured); faust flushes the producer before it commits offsets.
            # Shielded: a rebalance cancelling the batch cannot stop a state in the store from
            # reaching the changelog.
            await asyncio.shield(app.send_records(changelog, changed + slow))
            for value in outcome.dead_letters:
                await dead_letters.send(key=None, value=value)
        processor.end_batch()
        # Its citizens' texts (and erasures' deletions) are stored before the batch is acknowledged.
        await sink.store_texts(processor, active_partitions(), TEXT_RETRY)

    app.deliver_batches(source, process_batch, fetched)

    @app.timer(REGISTRY_EVERY)
    async def _registry() -> None:
        await reload_registry()

    @app.timer(FLUSH_EVERY)
    async def _flush() -> None:
        await sink.flush(processor, active_partitions())

    @app.timer(COLLECT_EVERY)
    async def _collect() -> None:
        gc.collect()

    @app.task
    async def _started() -> None:
        # Everything built so far (modules, faust's services, the clients) lives as long as the
        # worker: keep it out of the collector's passes. From here on the collector runs on the
        # timer above, not after every few hundred allocations: a batch makes hundreds of thousands
        # of short-lived objects, freed by reference counting, and keeps thousands of states parsed
        # (`LiveStates`), which the allocation-driven passes walked again and again between batches
        # (0.25 to 0.3 s a batch of 30,000 records with the states kept, against 0.04 s without,
        # measured; before, the passes during a batch took a fifth of its time).
        gc.freeze()
        gc.disable()
        log.info("worker %s reading %s", settings.namespace, ", ".join(sorted(source_names)))
        if compiled(streams.processor):
            log.info("processor compiled (build/native)")
        else:
            # Slower (README, Benchmarks): said at the worker's default level.
            log.warning("processor as Python: no build of the current sources in build/native (make native)")
        if processor.core is not None:
            log.info("native core in use (build/native)")
        else:
            log.warning("no native core: every record decoded and applied in Python (make native)")

    return app


async def watch(app: faust.App, settings: Settings) -> None:
    """Restarts the worker when it stalls (see streams/watchdog.py). Runs from the start of the worker,
    so it also sees the first recovery, which faust finishes before it starts the app's own tasks."""
    source_names = set(Topics(settings.namespace).partitioned)
    loop = asyncio.get_running_loop()
    stall = float(settings.worker_stall_seconds)
    recovery_watch, commit_watch = RecoveryWatch(stall), CommitWatch(stall)
    tables: Any = app.tables
    offsets: GroupOffsets | None = None
    try:
        while True:
            await asyncio.sleep(WATCH_EVERY)
            if app.should_stop:
                return
            recovery = tables.recovery
            in_recovery = bool(recovery.in_recovery)
            generation = app.consumer_generation_id
            progress = (recovery.active_remaining_total() if in_recovery else 0, generation)
            if recovery_watch.stalled(time.monotonic(), in_recovery, progress):
                restart_process(
                    f"table recovery made no progress for {recovery_watch.stall_after:.0f} s "
                    f"({progress[0]} changelog records still to read)"
                )
            if in_recovery or app.rebalancing:
                commit_watch.reset()
                continue
            actives = app.assignor.assigned_actives()
            owned = sorted((tp.topic, tp.partition) for tp in actives if tp.topic in source_names)
            try:
                if offsets is None:
                    offsets = await loop.run_in_executor(None, GroupOffsets, settings.kafka_bootstrap, app.conf.id)
                behind = await loop.run_in_executor(None, offsets.lagging, owned)
            except Exception as exc:  # the broker away: no judgement, and a fresh start once it answers
                log.info("watchdog could not read the group's offsets: %r", exc)
                commit_watch.reset()
                continue
            if app.should_stop:
                return
            if app.rebalancing or app.consumer_generation_id != generation:
                commit_watch.reset()
                continue
            stuck = commit_watch.stalled(time.monotonic(), behind)
            if stuck:
                where = ", ".join(f"{name} at {behind[name][0]} of {behind[name][1]}" for name in stuck)
                restart_process(
                    f"committed offsets stopped for {commit_watch.stall_after:.0f} s while records waited: {where}"
                )
    finally:
        if offsets is not None:
            offsets.close()


def run_worker(settings: Settings | None = None, loglevel: str = "warning") -> None:
    """Runs one faust worker until SIGTERM or Ctrl-C."""
    settings = settings or load_settings()
    wait_until_reachable(settings.kafka_bootstrap, STARTUP_WAIT)
    ensure_settings_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Started on the worker's loop before the app; this frame keeps it referenced while the worker
    # runs, and the worker cancels every task left when it shuts down.
    _watchdog = worker.loop.create_task(watch(app, settings))
    worker.execute_from_commandline()
