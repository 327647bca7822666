"""The faust app: the worker reads every event topic (co-partitioned by participant) a whole fetch at
a time (streams/delivery.py) and applies it a chunk of participants at a time, a table keeps each
participant's small state, and a timer flushes the per-partition aggregates to the store.

Processing is at-least-once: the states a batch changed go to the table's changelog before the
batch's offsets are acknowledged, and faust flushes the producer before it commits offsets, so an
event whose offset is committed is in the participant's state; an event processed again after a
crash is recognised by its event_id and skipped. Aggregates are never stored in Kafka: after every
rebalance they are rebuilt from the participants' states, so they always equal the sum of the
states' contributions, whatever was lost in flight.

The worker serves its health and metrics over HTTP (streams/health.py); its supervisor replaces it
when it stalls.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable
from typing import Any

import faust

from experiments.settings import Settings, load_settings
from experiments.store import Store
from streams.delivery import BatchApp, Records, integration_problems, recovery_remaining, table_dict
from streams.events import GroupOffsets, Topics, ensure_settings_topics, wait_until_reachable
from streams.health import WATCH_EVERY, WorkerHealth, serve_health
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


def create_app(settings: Settings, health: WorkerHealth | None = None) -> faust.App:
    """Returns the faust app of the worker for these settings (topics, table, batch handler, timers),
    counting what it does in `health`'s metrics (a health of its own when none is given)."""
    health = health or WorkerHealth(settings.worker_stall_seconds)
    metrics = health.metrics
    topics = Topics(settings.namespace)
    datadir = settings.state_dir / "worker"
    datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        # skipped, never acknowledged, and the partition never commits again (see streams/health.py).
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
    processor = Processor(Registry.of(store.pilot_runtimes()), grace_ms=settings.grace_seconds * 1000)
    sink = Sink(store)
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
        outcome, changed = processor.process_chunk(table_dict(participants), chunk, live)
        sink.forget(outcome.erasures)
        sink.keep_texts(outcome.texts)
        metrics.applied.inc(outcome.applied)
        metrics.duplicates.inc(outcome.duplicates)
        metrics.dead_letters.inc(len(outcome.dead_letters))
        return outcome, changed

    async def written(call: Awaitable[None]) -> None:
        """Awaits a call of the sink, and tells the health what it stored and what the store refused."""
        flushes, failures = sink.flushes, sink.failures
        try:
            await call
        finally:
            health.store_written(sink.flushes - flushes, sink.failures - failures)

    async def process_batch(batch: Records) -> None:
        began = time.perf_counter()
        await apply_batch(batch)
        metrics.batch_seconds.observe(time.perf_counter() - began)

    async def apply_batch(batch: Records) -> None:
        nonlocal last_unknown_reload
        # Grouped by participant over the whole fetch: a participant's state is read, recounted and
        # written once for all of their records in it. Then applied a chunk of participants at a
        # time, each chunk decoded just before, with a turn of the loop between chunks (heartbeats,
        # timers), so a large fetch never holds the loop for long.
        groups = by_participant(batch)
        keys = list(groups)
        for start in range(0, len(keys), CHUNK_PARTICIPANTS):
            chunk = decoded_chunk(groups, keys[start : start + CHUNK_PARTICIPANTS], erasure_topic)
            now = time.monotonic()
            if now - last_unknown_reload > UNKNOWN_RELOAD_GAP and processor.registry.refers_to_unknown(chunk):
                last_unknown_reload = now
                await reload_registry()
            outcome, changed = apply(chunk)
            forget_events(chunk)
            # To the changelog, past faust's table API, whose buffer sends one record per loop turn
            # (about 200 µs each, measured); faust flushes the producer before it commits offsets.
            # Shielded: a rebalance cancelling the batch cannot stop a state in the store from
            # reaching the changelog.
            await asyncio.shield(app.send_records(changelog, changed))
            for value in outcome.dead_letters:
                await dead_letters.send(key=None, value=value)
        processor.end_batch()
        # Its citizens' texts (and erasures' deletions) are stored before the batch is acknowledged.
        await written(sink.store_texts(processor, active_partitions(), TEXT_RETRY))

    app.deliver_batches(source, process_batch, fetched)

    @app.timer(REGISTRY_EVERY)
    async def _registry() -> None:
        await reload_registry()

    @app.timer(FLUSH_EVERY)
    async def _flush() -> None:
        await written(sink.flush(processor, active_partitions()))

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

    return app


async def watch(app: faust.App, settings: Settings, health: WorkerHealth) -> None:
    """Judges the worker's progress every few seconds, for its health (streams/health.py). Runs from
    the start of the worker, so it also sees the first recovery, which faust finishes before it starts
    the app's own tasks."""
    source_names = set(Topics(settings.namespace).partitioned)
    loop = asyncio.get_running_loop()
    offsets: GroupOffsets | None = None
    try:
        while True:
            await asyncio.sleep(WATCH_EVERY)
            if app.should_stop:
                return
            remaining = recovery_remaining(app)
            generation = app.consumer_generation_id
            progress = (remaining or 0, generation)
            if health.recovery.stalled(time.monotonic(), remaining is not None, progress):
                stall = health.recovery.stall_after
                health.judge("recovery", f"table recovery made no progress for {stall:.0f} s "
                             f"({progress[0]} changelog records still to read)")  # fmt: skip
            else:
                health.judge("recovery", None)
            if remaining is not None or app.rebalancing:
                health.commits.reset()
                health.judge("commits", None)
                continue
            actives = app.assignor.assigned_actives()
            owned = sorted((tp.topic, tp.partition) for tp in actives if tp.topic in source_names)
            try:
                if offsets is None:
                    offsets = await loop.run_in_executor(None, GroupOffsets, settings.kafka_bootstrap, app.conf.id)
                positions = await loop.run_in_executor(None, offsets.positions, owned)
            except Exception as exc:  # the broker away: no judgement, and a fresh start once it answers
                log.info("could not read the group's offsets: %r", exc)
                health.commits.reset()
                health.judge("commits", None)
                continue
            lag = health.metrics.lag
            lag.clear()
            for (topic, partition), (committed, end) in positions.items():
                lag.labels(topic, str(partition)).set(max(0, end - (committed or 0)))
            if app.should_stop:
                return
            if app.rebalancing or app.consumer_generation_id != generation:
                health.commits.reset()
                health.judge("commits", None)
                continue
            behind = {f"{topic}/{partition}": position for (topic, partition), position in positions.items()}
            stuck = health.commits.stalled(time.monotonic(), behind)
            where = ", ".join(f"{name} at {behind[name][0]} of {behind[name][1]}" for name in stuck)
            stall = health.commits.stall_after
            problem = f"committed offsets stopped for {stall:.0f} s while records waited: {where}"
            health.judge("commits", problem if stuck else None)
    finally:
        if offsets is not None:
            offsets.close()


def run_worker(settings: Settings | None = None, loglevel: str = "warning") -> None:
    """Runs one faust worker, serving its health, until SIGTERM or Ctrl-C."""
    settings = settings or load_settings()
    problems = integration_problems()
    if problems:
        # The batch delivery relies on these names; with any of them changed it would fail, or worse.
        raise RuntimeError("the worker's faust integration does not hold:\n" + "\n".join(problems))
    health = WorkerHealth(settings.worker_stall_seconds)
    app = create_app(settings, health)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    loop = worker.loop
    # Served from the start, so a supervisor sees the worker alive while it waits for Kafka.
    _server, port = loop.run_until_complete(
        serve_health(health, settings.worker_health_host, settings.worker_health_port)
    )
    where = f"http://{settings.worker_health_host}:{port}"
    if settings.worker_health_port == 0:
        log.warning("worker health on a free port: %s/healthz and %s/metrics", where, where)
    else:
        log.info("worker health: %s/healthz and %s/metrics", where, where)
    loop.run_until_complete(asyncio.to_thread(wait_until_reachable, settings.kafka_bootstrap, STARTUP_WAIT))
    loop.run_until_complete(asyncio.to_thread(ensure_settings_topics, settings))
    # Started on the worker's loop before the app; this frame keeps it referenced while the worker
    # runs, and the worker cancels every task left when it shuts down.
    _watching = loop.create_task(watch(app, settings, health))
    worker.execute_from_commandline()
