"""The stream processor's logic, free of faust: apply a participant's new events to their state and
turn the change of their contributions into deltas of the per-partition aggregates.

The faust app (`streams.app`) feeds it the records of each fetch; tests and benchmarks can drive it
directly.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter, sub
from typing import Any

import orjson

from experiments.attribution import (
    NOTHING,
    ConsentTimeline,
    Contributions,
    Key,
    PilotLog,
    PilotRuntime,
    Vector,
    WaitingText,
    contributions,
    event_key,
    first_half_key,
    ms_datetime,
    spread,
)
from experiments.feedback import sus_score
from experiments.settings import DEFAULT_EVENT_MAX_AGE_DAYS
from streams.events import (
    FUTURE_SKEW,
    AnyEvent,
    Consent,
    Exposure,
    Feedback,
    InvalidEvent,
    Usage,
    dead_letter,
    decode_erasure,
    decode_event,
    time_refusal,
)

#: Events dated further than this after the worker's clock are refused (the contract's skew allowance).
FUTURE_SKEW_MS = int(FUTURE_SKEW.total_seconds() * 1000)
_TIME = itemgetter(0)


#: The first time UTC can hold. The contract takes times before it (the year 1 with a positive
#: offset), which the processor refuses: their day, a day of the year 0, could be written nowhere.
FIRST_UTC = datetime(1, 1, 1, tzinfo=UTC)
#: The same as a POSIX time, whose float is only precise to some microseconds there: the times within a
#: second of it are compared as datetimes.
_NEAR_FIRST_UTC = FIRST_UTC.timestamp() + 1


def _utc_text(t: datetime) -> str:
    """An event's time in UTC (events keep the offset they were sent with), as ISO 8601; as sent when
    UTC cannot hold it (the year 10000, from a time of 9999 with a negative offset)."""
    try:
        return t.astimezone(UTC).isoformat()
    except OverflowError:
        return t.isoformat()


@dataclass(frozen=True, slots=True)
class Registry:
    """The pilots the processor counts, with a digest that changes whenever they do."""

    pilots: Mapping[str, PilotRuntime]
    digest: str

    @classmethod
    def of(cls, pilots: Mapping[str, PilotRuntime]) -> Registry:
        doc = sorted(
            (
                key,
                repr(p.spec),
                sorted((k, e.status, e.stopped_at_ms) for k, e in p.experiments.items()),
                sorted(p.merged_ideas.items()),
            )
            for key, p in pilots.items()
        )
        return cls(dict(pilots), hashlib.sha256(repr(doc).encode()).hexdigest())

    def refers_to_unknown(self, chunk: Mapping[bytes, list[Incoming]]) -> bool:
        """Returns True when an event of the chunk names a pilot, or an exposure an experiment, that
        the registry does not have (so the registry may be out of date)."""
        pilots = self.pilots
        for records in chunk.values():
            for rec in records:
                event = rec.event
                if event is None:
                    continue
                pilot = pilots.get(event.pilot_id)
                if pilot is None:
                    return True
                if isinstance(event, Exposure) and event.payload.experiment not in pilot.experiments:
                    return True
        return False


def text_row(
    event_id: str,
    pilot_key: str,
    participant_id: str,
    kind: str,
    text: str,
    occurred_at: datetime,
    variants: dict[str, str],
    *,
    title: str | None = None,
    theme: str | None = None,
    district: str | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """A citizen's text as the sink stores it (`Outcome.texts`)."""
    return {
        "event_id": event_id,
        "pilot_key": pilot_key,
        "participant_id": participant_id,
        "kind": kind,
        "text": text,
        "occurred_at": occurred_at,
        "variants": variants,
        "title": title,
        "theme": theme,
        "district": district,
        "target": target,
    }


def _text_of(log: PilotLog, pilot: PilotRuntime, participant_id: str, text: WaitingText) -> dict[str, Any]:
    """Returns the store's row of a consented text, with the variants the participant was exposed to."""
    _ms, occurred_at, event_id, kind, body, title, theme, district, target = text
    variants = {exp: items[0][1] for exp, items in log.exposures.items() if items and exp in pilot.experiments}
    return text_row(
        event_id,
        pilot.key,
        participant_id,
        kind,
        body,
        datetime.fromisoformat(occurred_at),
        variants,
        title=title,
        theme=theme,
        district=district,
        target=target,
    )


class Incoming:
    """One record from Kafka: its key (the participant), its bytes, where it came from, and the event
    decoded from it (or why it could not be). Records of the erasure topic carry no event. (A plain
    class, not a dataclass: see `Contributions`.)"""

    __slots__ = ("error", "event", "key", "offset", "partition", "topic", "value")

    def __init__(
        self,
        value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        event: AnyEvent | None = None,
        error: InvalidEvent | None = None,
        key: bytes | None = None,
    ) -> None:
        self.value = value
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.event = event
        self.error = error
        self.key = key

    def decode(self, erasure_topic: str) -> None:
        """Decodes the record's event (unless it is an erasure request), or keeps why it is invalid."""
        value = self.value
        if value is not None and self.topic != erasure_topic:
            try:
                self.event = decode_event(value)
            except InvalidEvent as exc:
                self.error = exc


def fetched(tp: Any, record: Any) -> Incoming:
    """Returns a record of partition `tp` (a topic and a partition) as the worker keeps it, from the
    record aiokafka read (its own record, or the `ConsumerRecord` it would make of it): the fetcher
    makes it, in place of a `ConsumerRecord` (see streams/delivery.py)."""
    return Incoming(record.value, tp.topic, tp.partition, record.offset, key=record.key)


def by_participant(batch: Iterable[Incoming]) -> dict[bytes, list[Incoming]]:
    """Returns the records of a fetch grouped by key (participant), in their order."""
    groups: dict[bytes, list[Incoming]] = {}
    for rec in batch:
        key = rec.key or b""
        group = groups.get(key)
        if group is None:
            groups[key] = [rec]
        else:
            group.append(rec)
    return groups


def decoded_chunk(
    groups: Mapping[bytes, list[Incoming]], keys: Iterable[bytes], erasure_topic: str
) -> dict[bytes, list[Incoming]]:
    """Returns the records of these participants, decoded (see `Incoming.decode`)."""
    chunk: dict[bytes, list[Incoming]] = {}
    for key in keys:
        records = chunk[key] = groups[key]
        for rec in records:
            rec.decode(erasure_topic)
    return chunk


def forget_events(chunk: Mapping[bytes, list[Incoming]]) -> None:
    """Forgets the events decoded from the chunk's records once they are applied: the records live until
    the whole fetch is acknowledged, their events need not (about 45 MiB for the benchmark's 87,293,
    measured as the worker's RSS)."""
    for records in chunk.values():
        for rec in records:
            rec.event = None
            rec.error = None


@dataclass(slots=True)
class Outcome:
    """What processing a batch produced besides the aggregate deltas."""

    dead_letters: list[bytes] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    #: The erasure requests applied: (participant id, ms), their texts up to then to be deleted.
    erasures: list[tuple[str, int]] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0


class ParticipantState:
    """A participant's logs in every pilot, and the partition they live in (the faust table value).

    `counted` is not stored: the contributions of each pilot's log as the processor last counted them,
    under the registry whose digest is `counted_under`, so that a state kept parsed between batches
    (`LiveStates`) is not counted again before its next change."""

    __slots__ = ("counted", "counted_under", "erased_ms", "logs", "partition")

    def __init__(self, partition: int, logs: dict[str, PilotLog] | None = None, erased_ms: int | None = None):
        self.partition = partition
        self.logs = logs or {}
        self.erased_ms = erased_ms
        self.counted: dict[str, Contributions] = {}
        self.counted_under = ""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"p": self.partition, "l": {k: v.to_json() for k, v in self.logs.items()}}
        if self.erased_ms is not None:
            doc["e"] = self.erased_ms
        return doc

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> ParticipantState:
        return cls.from_json(orjson.loads(data))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ParticipantState:
        return cls(
            int(doc["p"]),
            {k: PilotLog.from_json(v) for k, v in doc.get("l", {}).items()},
            doc.get("e"),
        )


class LiveStates:
    """Participant states kept parsed between batches, each beside the stored bytes it equals.

    A state's `counted` contributions are what its next change is measured from, so a state kept
    parsed is neither parsed nor counted again at the participant's next batch. A state is taken out
    while it is processed and put back with the bytes it was stored as, and used again only while the
    store still holds those very bytes (the same object): anything else that wrote the key (a table
    recovery, a failed batch that never stored its states) makes the state be parsed from the store
    again. The newest `limit` participants are kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Ordered by last use. An OrderedDict forgets its oldest in constant time; a dict's first key,
        # after many keys taken out, is found by stepping over their holes (measured: 3.2 against
        # 1.2 µs per participant with 40,000 participants over a limit of 20,000).
        self._live: OrderedDict[bytes, tuple[bytes, ParticipantState]] = OrderedDict()

    def take(self, key: bytes, raw: bytes | None) -> ParticipantState | None:
        """Returns the participant's state stored as `raw` (None when there is none), no longer kept."""
        kept = self._live.pop(key, None)
        if raw is None:
            return None
        if kept is not None and kept[0] is raw:
            return kept[1]
        return ParticipantState.from_bytes(raw)

    def keep(self, key: bytes, raw: bytes, state: ParticipantState) -> None:
        """Keeps the state, stored as `raw`, forgetting the least recently kept beyond the limit."""
        live = self._live
        live[key] = (raw, state)
        if len(live) > self.limit:
            live.popitem(last=False)


class Aggregates:
    """Per-partition sums of every participant's contributions, and which changed since the flush.

    A batch's changes are first gathered per partition, pilot and segments (the participants sharing
    their segments), then summed and spread over the segments once, by `settle`: each participant's
    change would otherwise be added once per segment, the processor's largest cost (measured). A
    figure's changes are kept as they come and summed column by column at `settle` (in C), rather than
    added to a running sum with a new list each time (0.5 µs an addition, a tenth of the processor's
    time, measured)."""

    def __init__(self) -> None:
        self.sums: dict[int, dict[Key, list[float]]] = defaultdict(dict)
        self.dirty: dict[int, set[Key]] = defaultdict(set)
        #: Partitions whose figures were all counted anew (`Processor.rebuild`) since `take_rebuilt`.
        self.rebuilt: set[int] = set()
        self._pending: dict[tuple[int, str, tuple[str, ...]], dict[Key, list[Vector]]] = {}

    def change(self, partition: int, pilot_key: str, old: Contributions, new: Contributions) -> None:
        """Queues a participant's change of contributions in a pilot (`new - old`) until `settle`:
        the figures whose amount changed, each added to the sum of its partition, pilot and segments
        (the processor's most repeated additions, with no generator between)."""
        before, after = old.figures, new.figures
        if old.segments == new.segments:
            queued = self._queued(partition, pilot_key, new.segments)
            for key, now in after.items():
                prev = before.get(key)
                if prev is None:
                    _queue(queued, key, now)
                elif prev != now:
                    _queue(queued, key, tuple(map(sub, now, prev)))
            gone = [key for key in before if key not in after]
        else:
            queued = self._queued(partition, pilot_key, new.segments)
            for key, now in after.items():
                _queue(queued, key, now)
            gone = list(before)
            if gone:
                queued = self._queued(partition, pilot_key, old.segments)
        for key in gone:
            _queue(queued, key, tuple(-a for a in before[key]))

    def _queued(self, partition: int, pilot_key: str, segments: tuple[str, ...]) -> dict[Key, list[Vector]]:
        where = (partition, pilot_key, segments)
        queued = self._pending.get(where)
        if queued is None:
            queued = self._pending[where] = {}
        return queued

    def settle(self) -> None:
        """Adds the changes queued since the last call to the sums."""
        pending, self._pending = self._pending, {}
        for (partition, pilot_key, segments), queued in pending.items():
            # Column by column, in the order they came: the same sums as adding them one by one.
            changes = {
                key: vecs[0] if len(vecs) == 1 else list(map(sum, zip(*vecs, strict=True)))
                for key, vecs in queued.items()
            }
            for key, vec in spread(changes, segments):
                self.add(partition, (pilot_key, *key), vec)

    def add(self, partition: int, key: Key, vec: Iterable[float]) -> None:
        part = self.sums[partition]
        cur = part.get(key)
        if cur is None:
            part[key] = list(vec)
        else:
            for i, v in enumerate(vec):
                cur[i] += v
        self.dirty[partition].add(key)

    def drop(self, partitions: Iterable[int]) -> None:
        self.settle()
        for p in partitions:
            self.sums.pop(p, None)
            self.dirty.pop(p, None)
            self.rebuilt.discard(p)

    def take_dirty(self) -> dict[int, dict[Key, list[float]]]:
        """Returns the changed figures of each partition, and forgets that they changed."""
        self.settle()
        out = {p: {k: list(self.sums[p][k]) for k in keys} for p, keys in self.dirty.items() if keys}
        self.dirty = defaultdict(set)
        return out

    def take_rebuilt(self) -> set[int]:
        """Returns the partitions whose figures were all counted anew since the last call, and forgets
        them: the store's figures of such a partition are replaced by these (all marked changed), not
        updated, since a figure no participant contributes to any more is not among them."""
        rebuilt, self.rebuilt = self.rebuilt, set()
        return rebuilt

    def everything(self) -> dict[int, dict[Key, list[float]]]:
        self.settle()
        return {p: {k: list(v) for k, v in part.items()} for p, part in self.sums.items()}


def _queue(queued: dict[Key, list[Vector]], key: Key, vec: Vector) -> None:
    vecs = queued.get(key)
    if vecs is None:
        queued[key] = [vec]
    else:
        vecs.append(vec)


class Processor:
    """Applies batches of events to participant states and keeps the aggregates exact."""

    def __init__(
        self,
        registry: Registry,
        *,
        grace_ms: int,
        clock: Callable[[], float] = time.time,
        max_age: timedelta = timedelta(days=DEFAULT_EVENT_MAX_AGE_DAYS),
    ) -> None:
        self.registry = registry
        self.grace_ms = grace_ms
        self.clock = clock
        #: How long before the time it was received (`received_at`, else the clock) an event may be
        #: dated (`streams.events.time_refusal`).
        self.max_age = max_age
        self.aggregates = Aggregates()
        #: The newest event time applied in each partition, per event type (= per input topic), as of
        #: the end of the previous batch; this batch's own times wait in `_arriving`.
        self.newest: dict[int, dict[str, int]] = defaultdict(dict)
        self._arriving: dict[int, dict[str, int]] = defaultdict(dict)

    # --- batches ------------------------------------------------------------------------------

    def process_chunk(
        self, states: MutableMapping[bytes, bytes], chunk: Mapping[bytes, list[Incoming]], live: LiveStates
    ) -> tuple[Outcome, list[tuple[bytes, int, bytes]]]:
        """Applies each participant's records to their state, read from `states` (the table's store)
        or kept parsed in `live`; once the aggregates have taken the changes, writes the new states
        to `states` and keeps them in `live`. Returns the outcome and the new states as (key,
        partition, value) records for the changelog."""
        outcome = Outcome()
        changed: list[tuple[bytes, int, bytes]] = []
        kept: list[ParticipantState] = []
        for key, records in chunk.items():
            new = self.process(live.take(key, states.get(key)), records, outcome)
            if new is not None:
                changed.append((key, new.partition, new.to_bytes()))
                kept.append(new)
        self.aggregates.settle()
        for (key, _, value), state in zip(changed, kept, strict=True):
            states[key] = value
            live.keep(key, value, state)
        return outcome, changed

    def process(
        self,
        state: ParticipantState | None,
        records: list[Incoming],
        outcome: Outcome,
    ) -> ParticipantState | None:
        """Returns the participant's new state after the records (None when nothing changed)."""
        partition = records[0].partition
        state = state or ParticipantState(partition)
        state.partition = partition
        if state.counted_under != self.registry.digest:
            # Counted under another registry (or never): count again from the logs when they change.
            state.counted = {}
            state.counted_under = self.registry.digest
        # The valid events with their times (POSIX seconds, as precise as the microseconds of their
        # datetimes, not whole milliseconds: a consent a fraction of a millisecond before an idea must
        # be applied first): each time read once, for the sort and for `_apply`.
        valid: list[tuple[float, Incoming, AnyEvent]] = []
        erasures: list[int] = []
        for rec in records:
            if rec.value is None:
                continue
            event = rec.event
            if rec.error is not None:
                first = rec.error.errors[0]
                outcome.dead_letters.append(self._dead(rec, f"invalid event: {rec.error}", first.field))
            elif event is None:
                try:
                    erasure = decode_erasure(rec.value)
                except InvalidEvent as exc:
                    reason = f"invalid erasure request: {exc}"
                    outcome.dead_letters.append(self._dead(rec, reason, exc.errors[0].field))
                else:
                    erasures.append(erasure[1])
                    outcome.erasures.append(erasure)
            else:
                seconds = event.occurred_at.timestamp()
                if seconds > _NEAR_FIRST_UTC or event.occurred_at >= FIRST_UTC:
                    valid.append((seconds, rec, event))
                else:
                    reason = f"occurred_at {event.occurred_at.isoformat()} is before 0001-01-01T00:00:00Z"
                    outcome.dead_letters.append(self._dead(rec, reason, "occurred_at"))
        # Events in event-time order, so consent comes before what it gates (ties keep their order).
        valid.sort(key=_TIME)
        changed_pilots: dict[str, Contributions] = {}
        changed = False
        for ms in erasures:
            changed |= self._erase(state, ms, changed_pilots)
        # What every event of the participant is checked against, looked up once.
        clock = self.clock()
        horizon = clock * 1000 + FUTURE_SKEW_MS
        now = datetime.fromtimestamp(clock, UTC)
        watermarks = self.watermarks(partition)
        arriving = self._arriving[partition]
        for seconds, rec, event in valid:
            ms = int(seconds * 1000)  # = to_ms(event.occurred_at)
            changed |= self._apply(state, rec, event, ms, outcome, changed_pilots, horizon, now, watermarks, arriving)
        counted = state.counted
        for pilot_key, old in changed_pilots.items():
            pilot = self.registry.pilots.get(pilot_key)
            log = state.logs.get(pilot_key)
            new = contributions(log, pilot) if (pilot and log) else NOTHING
            self.aggregates.change(partition, pilot_key, old, new)
            counted[pilot_key] = new
        return state if changed else None

    def _erase(self, state: ParticipantState, ms: int, changed: dict[str, Contributions]) -> bool:
        for pilot_key, log in state.logs.items():
            if pilot_key not in changed:
                changed[pilot_key] = self._counted(state, pilot_key, log)
        state.logs = {}
        state.erased_ms = max(ms, state.erased_ms or 0)
        return True

    def _counted(self, state: ParticipantState, pilot_key: str, log: PilotLog) -> Contributions:
        """Returns what the pilot's log contributes as last counted (counted now when it never was)."""
        counted = state.counted.get(pilot_key)
        if counted is None:
            pilot = self.registry.pilots.get(pilot_key)
            counted = contributions(log, pilot) if pilot else NOTHING
        return counted

    def _apply(
        self,
        state: ParticipantState,
        rec: Incoming,
        event: AnyEvent,
        ms: int,
        outcome: Outcome,
        changed: dict[str, Contributions],
        horizon: float,
        now: datetime,
        watermarks: Mapping[str, int],
        arriving: dict[str, int],
    ) -> bool:
        """Applies one event, which occurred at `ms`, to the state; returns False when it was a
        duplicate or refused. `horizon` and `now` are the clock's, `watermarks` and `arriving` the
        participant's partition's, looked up once per participant."""
        if state.erased_ms is not None and ms <= state.erased_ms:
            outcome.duplicates += 1
            return False
        pilot_key = event.pilot_id
        pilot = self.registry.pilots.get(pilot_key)
        if pilot is None:
            outcome.dead_letters.append(self._dead(rec, f"unknown pilot {pilot_key!r}", "pilot_id"))
            return False
        log = state.logs.get(pilot_key)
        event_id = event.event_id.int
        seen_as = event_key(event_id)
        if log is not None and (
            seen_as in log.seen or (log.seen_before and first_half_key(event_id) in log.seen_before)
        ):
            outcome.duplicates += 1
            if isinstance(event, Feedback):
                # Its text again, if any: read again after a stop, it may never have been stored
                # (texts live in no state, and the store keys them by event id).
                self._keep_text(log, pilot, event, ms, outcome)
            return False
        kind = event.type
        # Dated after `horizon`, or more than the grace before the newest event of its type read from
        # its partition (see `watermarks`), or out of the contract's bounds around the time it was
        # received (a partition with no newer event has no watermark to judge a year-4 event by);
        # else, for the kinds that name one, an unknown experiment.
        watermark = watermarks.get(kind, 0)
        if ms > horizon or (watermark and ms < watermark - self.grace_ms):
            reason: tuple[str, str] | None = self._time_refusal(event, ms, horizon, watermark)
        elif (bound := time_refusal(event, now, self.max_age)) is not None:
            reason = f"{bound[0]} {bound[1]}", bound[0]
        elif kind in {"exposure", "feedback"}:
            reason = self._name_refusal(pilot, event)
        else:
            reason = None
        if reason is not None:
            outcome.dead_letters.append(self._dead(rec, *reason))
            return False
        if pilot_key not in changed:
            # What the log contributed before this batch: nothing when there was none (after an
            # erasure, `changed` already holds what the erased log contributed).
            changed[pilot_key] = NOTHING if log is None else self._counted(state, pilot_key, log)
        if log is None:
            log = state.logs[pilot_key] = PilotLog()
        log.seen.add(seen_as)
        match event:
            case Usage():
                used = event.payload
                log.add_usage(ms, used.action, used.value, used.properties)
            case Exposure():
                log.add_exposure(event.payload.experiment, ms, event.payload.variant)
            case Consent():
                log.add_consent(ms, event.payload.granted)
                self._release_texts(log, pilot, event.participant_id, outcome)
            case Feedback():
                p = event.payload
                sus = sus_score(p.answers) if p.kind == "sus" and p.answers else None
                target = str(p.target) if p.target is not None else None
                log.add_feedback(ms, p.kind, p.score, sus, target, p.experiment)
                self._keep_text(log, pilot, event, ms, outcome)
        if ms > arriving.get(kind, 0):
            arriving[kind] = ms
        outcome.applied += 1
        return True

    def _time_refusal(self, event: AnyEvent, ms: int, horizon: float, watermark: int) -> tuple[str, str]:
        """Returns (reason, field) for an event dated after `horizon` or too late behind `watermark`."""
        if ms > horizon:
            return f"occurred_at {_utc_text(event.occurred_at)} is in the future", "occurred_at"
        return (
            f"late event: occurred_at {_utc_text(event.occurred_at)} is more than the grace period "
            f"({self.grace_ms // 1000} s) before the newest {event.type} event of its partition "
            f"({ms_datetime(watermark).isoformat()})",
            "occurred_at",
        )

    @staticmethod
    def _name_refusal(pilot: PilotRuntime, event: AnyEvent) -> tuple[str, str] | None:
        """Returns (reason, field) when the event names an experiment (or variant) the pilot does not
        have, else None."""
        if isinstance(event, Exposure):
            exp = pilot.experiments.get(event.payload.experiment)
            if exp is None:
                return (
                    f"unknown experiment {event.payload.experiment!r} for pilot {pilot.key!r}",
                    "payload.experiment",
                )
            if event.payload.variant not in exp.variants:
                return (
                    f"variant {event.payload.variant!r} is not a variant of experiment "
                    f"{event.payload.experiment!r} ({', '.join(exp.spec.variant_weights)})",
                    "payload.variant",
                )
        if (
            isinstance(event, Feedback)
            and event.payload.experiment is not None
            and event.payload.experiment not in pilot.experiments
        ):
            return (
                f"unknown experiment {event.payload.experiment!r} for pilot {pilot.key!r}",
                "payload.experiment",
            )
        return None

    def watermarks(self, partition: int) -> Mapping[str, int]:
        """Returns the newest event time read from each event type's topic in the partition in earlier
        batches (none before any): an event more than the grace older than its type's arrived too
        late. Each topic is its own input, read at its own pace, so a topic read days ahead of another
        makes nothing late; and a batch, applied participant by participant, never judges its own
        events against each other."""
        return self.newest.get(partition, {})

    def end_batch(self) -> None:
        """Adds the batch's changes to the aggregates, and moves the event times of the batch just
        applied into the watermarks."""
        self.aggregates.settle()
        for partition, arriving in self._arriving.items():
            newest = self.newest[partition]
            for kind, ms in arriving.items():
                newest[kind] = max(newest.get(kind, 0), ms)
        self._arriving = defaultdict(dict)

    @staticmethod
    def _keep_text(log: PilotLog, pilot: PilotRuntime, event: Feedback, ms: int, outcome: Outcome) -> None:
        """Keeps the text of a comment, an idea or a report for the store if the participant consented then
        (a report may have no text: it is kept all the same, for the lab's moderation); else it waits in
        the log for a consent that covers it (`_release_texts`)."""
        p = event.payload
        if p.kind not in ("comment", "idea", "report") or (p.kind != "report" and not p.text):
            return
        text: WaitingText = (
            ms,
            event.occurred_at.astimezone(UTC).isoformat(),
            str(event.event_id),
            p.kind,
            p.text or "",
            p.title,
            p.theme,
            p.district,
            None if p.target is None else str(p.target),
        )
        if ConsentTimeline(log.consent, pilot.spec.consent == "collected_by_service").at(ms):
            outcome.texts.append(_text_of(log, pilot, event.participant_id, text))
        else:
            log.add_waiting(text)

    @staticmethod
    def _release_texts(log: PilotLog, pilot: PilotRuntime, participant_id: str, outcome: Outcome) -> None:
        """Keeps for the store the waiting texts a consent just applied covers."""
        if not log.waiting:
            return
        timeline = ConsentTimeline(log.consent, pilot.spec.consent == "collected_by_service")
        still = []
        for text in log.waiting:
            if timeline.at(text[0]):
                outcome.texts.append(_text_of(log, pilot, participant_id, text))
            else:
                still.append(text)
        log.waiting = still

    @staticmethod
    def _dead(rec: Incoming, reason: str, field: str | None) -> bytes:
        return dead_letter(reason, field, rec.value or b"", topic=rec.topic, partition=rec.partition, offset=rec.offset)

    # --- recovery -----------------------------------------------------------------------------

    def rebuild(self, states: Iterable[tuple[str, ParticipantState]], partitions: Iterable[int]) -> int:
        """Recomputes the aggregates of `partitions` from the participants' states; returns how many
        participants were read."""
        wanted = set(partitions)
        self.aggregates.drop(list(self.aggregates.sums) + list(wanted))
        for p in wanted:
            self.aggregates.sums[p] = {}
            self.newest[p] = {}
        count = 0
        for _pid, state in states:
            if state.partition not in wanted:
                continue
            count += 1
            for pilot_key, log in state.logs.items():
                newest = self.newest[state.partition]
                for kind, ms in log.latest().items():
                    newest[kind] = max(newest.get(kind, 0), ms)
                pilot = self.registry.pilots.get(pilot_key)
                if pilot is None:
                    continue
                for key, vec in contributions(log, pilot).expanded():
                    self.aggregates.add(state.partition, (pilot_key, *key), vec)
        for p in wanted:
            self.aggregates.dirty[p] = set(self.aggregates.sums[p])
        self.aggregates.rebuilt |= wanted
        return count
