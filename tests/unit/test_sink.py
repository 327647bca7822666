"""The sink on SQLite and PostgreSQL, fed by the processor as the worker feeds it: after a partition's
figures are counted anew (a registry change, a rebalance, a restart), the store holds exactly them;
after an erasure request, none of the participant's texts from before it."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from experiments import models as m
from experiments.attribution import to_ms
from experiments.readmodels import adoption as adoption_reads
from experiments.readmodels import exposure as exposure_reads
from experiments.registry import PilotSpec
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from streams.events import encode_erasure, new_event
from streams.processor import Outcome, ParticipantState, Processor, Registry, text_row
from streams.sink import Sink
from tests.support.records import decoded_record

SPEC = parse_pilot_spec("""
pilot: {key: lab, name: Lab, consent: collected_by_service, segments: [district], key_action: buy}
experiments:
  - key: exp
    variants: {a: 0.5, b: 0.5}
    metrics:
      - {key: bought, type: proportion, action: buy, window_days: 2}
    primary: bought
""")
DAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
ERASURE_TOPIC = "ns.erasure"
#: A Kafka record as the tests write it: (participant, topic, value).
Record = tuple[str, str, bytes]


def event(kind: str, pid: str, payload: dict[str, object], days: float) -> Record:
    at = DAY + timedelta(days=days)
    return pid, f"ns.{kind}", orjson.dumps(new_event(kind, "lab", pid, payload, occurred_at=at))  # type: ignore[arg-type]


def erasure(pid: str, at: datetime) -> Record:
    return pid, ERASURE_TOPIC, encode_erasure(pid, at)


class Worker:
    """The processor and the sink of a worker owning partition 0, driven as its batch handler and its
    flush timer drive them (streams/app.py)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.proc = Processor(Registry.of(store.pilot_runtimes()), grace_ms=30 * 86_400_000)
        #: The records the sink sent to the dead-letter topic.
        self.dead_letters: list[dict[str, Any]] = []

        async def send_dead_letter(value: bytes) -> None:
            self.dead_letters.append(orjson.loads(value))

        self.sink = Sink(store, send_dead_letter)
        self.states: dict[str, ParticipantState] = {}

    def batch(self, records: list[Record]) -> Outcome:
        outcome = Outcome()
        for pid in dict.fromkeys(p for p, _, _ in records):
            mine = [decoded_record(v, t, 0, i, ERASURE_TOPIC) for i, (p, t, v) in enumerate(records) if p == pid]
            new = self.proc.process(self.states.get(pid), mine, outcome)
            if new is not None:
                self.states[pid] = ParticipantState.from_bytes(new.to_bytes())
        self.proc.end_batch()
        self.sink.forget(outcome.erasures)
        self.sink.keep_texts(outcome.texts)
        return outcome

    def flush(self) -> None:
        asyncio.run(self.sink.flush(self.proc, {0}))

    def registry_changed(self, pilot: PilotSpec) -> None:
        self.store.apply_pilot(pilot, force=True)
        self.proc.registry = Registry.of(self.store.pilot_runtimes())
        self.proc.rebuild(self.states.items(), [0])


def adoption_rows(store: Store) -> dict[tuple[date, str], tuple[int, int]]:
    """{(day, segment): (active, new)} of the rows the store holds that count anyone."""
    with store.session() as s:
        rows = {(d.day, d.segment): (d.active, d.new) for d in s.query(m.DailyAdoption).all()}
    return {k: v for k, v in rows.items() if v != (0, 0)}


def held(store: Store) -> dict[tuple[object, ...], list[float]]:
    """The figures the store holds for partition 0, as the processor keys them."""
    epoch = date(1970, 1, 1)
    out: dict[tuple[object, ...], list[float]] = {}
    with store.session() as s:
        for a in s.query(m.Aggregate).all():
            vec = [float(a.n), a.sum, a.sum_squares, a.x_sum, a.x_sum_squares, a.sum_products]
            out["lab", "a", a.experiment_key, a.metric, a.variant, a.segment] = vec
        for e in s.query(m.ExposureDay).all():
            vec = [float(e.n), e.sum, e.sum_squares, e.x_sum, e.x_sum_squares, e.sum_products]
            out["lab", "x", e.experiment_key, e.metric, e.variant, (e.day - epoch).days] = vec
        for d in s.query(m.DailyAdoption).all():
            out["lab", "d", (d.day - epoch).days, d.segment] = [float(d.active), float(d.new), float(d.activated)]
        for r in s.query(m.RetentionCohort).all():
            out["lab", "r", (r.cohort_week - epoch).days, r.week_index, r.segment] = [float(r.participants)]
        for f in s.query(m.FeedbackStat).all():
            out["lab", "f", f.experiment_key, f.variant, f.kind, f.bucket] = [float(f.n), f.sum, f.sum_squares]
    return out


def texts_of(store: Store) -> list[tuple[str, str]]:
    with store.session() as s:
        return sorted((t.participant_id, t.text) for t in s.query(m.FeedbackText).all())


@pytest.mark.parametrize("change", ["consent", "segments"])
def test_after_a_rebuild_the_store_holds_only_the_figures_that_still_exist(store: Store, change: str) -> None:
    store.apply_pilot(SPEC)
    worker = Worker(store)
    worker.batch(
        [
            # p1 never gave consent: counted only while the pilot's service collects it.
            event("usage", "p1", {"action": "buy", "properties": {"district": "north"}}, 0),
            event("exposure", "p1", {"experiment": "exp", "variant": "a"}, 0),
            event("consent", "p2", {"granted": True}, 0),
            event("usage", "p2", {"action": "ride", "properties": {"district": "south"}}, 1),
        ]
    )
    worker.flush()
    day0, day1 = DAY.date(), (DAY + timedelta(days=1)).date()
    assert adoption_rows(store)[(day0, "")] == (1, 1)
    assert adoption_reads.adoption_segments(store, "lab") == ("district:north", "district:south")

    worker.registry_changed(replace(SPEC, consent="required") if change == "consent" else replace(SPEC, segments=()))
    worker.flush()

    if change == "consent":
        # p1's day is no longer anyone's: no participant is counted active on it.
        assert adoption_rows(store) == {(day1, ""): (1, 1), (day1, "district:south"): (1, 1)}
        assert adoption_reads.adoption_segments(store, "lab") == ("district:south",)
    else:
        assert adoption_rows(store) == {(day0, ""): (1, 1), (day1, ""): (1, 1)}
        assert adoption_reads.adoption_segments(store, "lab") == ()
    # The experiment's figures, the retention cohorts and the feedback are rewritten the same way.
    assert worker.proc.aggregates.everything() == {0: held(store)}
    # The experiment's history (by day of first exposure) ends on the current figures: under `required`
    # consent p1's exposure no longer counts, and no day holds anyone.
    history = exposure_reads.history_series(store, "exp")
    last = history[-1][1] if history else {}
    units = {} if change == "consent" else {("$units", "a"): 1, ("bought", "a"): 1}
    assert {(k, v): s.n for k, by_v in last.items() for v, s in by_v.items()} == units


def test_an_erasure_deletes_the_texts_the_worker_writes_after_the_request(store: Store) -> None:
    """`rhizome erase` deletes the participant's stored texts, then the worker reads the request: a text
    it keeps in between (in its buffer, or read from Kafka before the request) is deleted with the
    request, and a text of after the request's time stays."""
    store.apply_pilot(replace(SPEC, consent="required"))
    worker = Worker(store)

    def comment(pid: str, text: str, days: float) -> Record:
        return event("feedback", pid, {"kind": "comment", "text": text}, days)

    consent = [event("consent", p, {"granted": True}, 0) for p in ("p1", "p2")]
    worker.batch([*consent, comment("p1", "stored", 0.1), comment("p2", "other", 0.1)])
    worker.flush()
    worker.batch([comment("p1", "buffered", 0.2)])
    requested = DAY + timedelta(days=0.5)
    assert store.erase_participant("p1", requested_by="test") == 1
    # Read from Kafka after the CLI deleted the stored texts, before the request reaches the worker.
    worker.batch([comment("p1", "late", 0.3), comment("p1", "at the request's time", 0.5)])
    worker.flush()
    # The request; then the participant consents again, and comments.
    outcome = worker.batch([erasure("p1", requested), event("consent", "p1", {"granted": True}, 0.55)])
    worker.batch([comment("p1", "after", 0.6)])
    assert outcome.erasures == [("p1", to_ms(requested))]
    worker.flush()
    assert texts_of(store) == [("p1", "after"), ("p2", "other")]


def test_a_failed_write_keeps_the_rebuilt_partitions_and_the_erasures_for_the_next(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply_pilot(SPEC)
    worker = Worker(store)
    worker.batch(
        [
            event("usage", "p1", {"action": "buy", "properties": {"district": "north"}}, 0),
            event("feedback", "p1", {"kind": "idea", "text": "More bikes"}, 0),
        ]
    )
    worker.flush()
    worker.registry_changed(replace(SPEC, segments=()))
    worker.batch([erasure("p1", DAY + timedelta(days=1))])
    write = store.write_rows

    def fail_once(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(store, "write_rows", write)
        raise OSError("the database went away")

    monkeypatch.setattr(store, "write_rows", fail_once)
    worker.flush()
    assert worker.sink.failures == 1
    assert adoption_reads.adoption_segments(store, "lab") == ("district:north",) and texts_of(store) == [
        ("p1", "More bikes")
    ]
    worker.flush()
    assert adoption_reads.adoption_segments(store, "lab") == () and texts_of(store) == []
    assert worker.proc.aggregates.everything() == {0: held(store)}


def idea_with_a_held_write(store: Store, monkeypatch: pytest.MonkeyPatch) -> tuple[Worker, list[int], threading.Event]:
    """A worker holding a citizen's idea not stored yet, on a store whose first write waits until the
    event returned is set, then fails; returns the worker, the writes begun, and the event."""
    store.apply_pilot(SPEC)
    worker = Worker(store)
    worker.batch([event("feedback", "p1", {"kind": "idea", "text": "More bikes"}, 0)])
    write, calls, release = store.write_rows, [], threading.Event()

    def held_then_failed(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            release.wait(10)
            raise OSError("the database went away")
        write(*args, **kwargs)

    monkeypatch.setattr(store, "write_rows", held_then_failed)
    return worker, calls, release


def test_storing_the_texts_waits_for_a_write_in_flight(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flush timer's write may be carrying the batch's texts when the batch asks for them to be
    stored: the batch waits for it, and writes them again if it failed."""
    worker, calls, release = idea_with_a_held_write(store, monkeypatch)

    async def scenario() -> None:
        timer = asyncio.ensure_future(worker.sink.flush(worker.proc, {0}))
        while not calls:  # the timer's write is in flight, with the text
            await asyncio.sleep(0.001)
        stored = asyncio.ensure_future(worker.sink.store_texts(worker.proc, {0}, retry=0.001))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not stored.done()
        release.set()
        await asyncio.gather(timer, stored)

    asyncio.run(scenario())
    assert len(calls) == 2 and texts_of(store) == [("p1", "More bikes")]


def test_a_flush_cancelled_in_flight_keeps_what_it_carried(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebalance cancels the batch waiting for its texts; the write goes on in its thread, and may fail.
    Not knowing, the sink keeps the texts (written again, under the same event id, at the next flush);
    a revocation still waits for the write (`settle`), and so does the next flush before it writes."""
    worker, calls, release = idea_with_a_held_write(store, monkeypatch)

    async def scenario() -> None:
        stored = asyncio.ensure_future(worker.sink.store_texts(worker.proc, {0}, retry=0.001))
        while not calls:
            await asyncio.sleep(0.001)
        stored.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stored
        settled = asyncio.ensure_future(worker.sink.settle())
        flushed = asyncio.ensure_future(worker.sink.flush(worker.proc, {0}))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not settled.done() and not flushed.done() and len(calls) == 1
        release.set()
        await asyncio.gather(settled, flushed)

    asyncio.run(scenario())
    assert len(calls) == 2 and texts_of(store) == [("p1", "More bikes")]


# --- a row the database refuses ------------------------------------------------------------------


def refused_text(store: Store) -> str:
    """Returns a text the database refuses for the feedback_texts table: on PostgreSQL a NUL (which it
    never stores), on SQLite (which stores anything) one a trigger refuses."""
    if store.dialect == "postgresql":
        return "a NUL \x00 slipped through"
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON feedback_texts WHEN NEW.text = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poison refused by the test'); END"
            )
        )
    return "poison"


def refused_segment(store: Store) -> str:
    """Returns a segment the database refuses for the daily_adoption table: on PostgreSQL longer than
    its column, on SQLite one a trigger refuses."""
    if store.dialect == "postgresql":
        return "district:" + "x" * 200
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse_segment BEFORE INSERT ON daily_adoption WHEN NEW.segment = 'district:poison' "
                "BEGIN SELECT RAISE(ABORT, 'segment refused by the test'); END"
            )
        )
    return "district:poison"


def test_a_text_the_database_refuses_goes_to_the_dead_letters_and_blocks_nothing(store: Store) -> None:
    """Regression (issue 24, 1): on PostgreSQL one text holding a NUL stopped every write of the store,
    for every pilot, for good: the sink tried the same rows again forever."""
    other = parse_pilot_spec("pilot: {key: other, name: Other, consent: collected_by_service}")
    store.apply_pilot(SPEC)
    store.apply_pilot(other)
    worker = Worker(store)
    worker.proc.registry = Registry.of(store.pilot_runtimes())
    worker.batch(
        [
            event("usage", "p1", {"action": "buy", "properties": {"district": "north"}}, 0),
            event("feedback", "p1", {"kind": "idea", "text": "More bikes"}, 0),
        ]
    )
    bad = text_row(str(uuid.uuid4()), "lab", "p2", "comment", refused_text(store), DAY, {})
    elsewhere = text_row(str(uuid.uuid4()), "other", "p3", "comment", "Another pilot", DAY, {})
    worker.sink.keep_texts([bad, elsewhere])
    worker.flush()
    assert texts_of(store) == [("p1", "More bikes"), ("p3", "Another pilot")]
    assert adoption_reads.adoption_segments(store, "lab") == ("district:north",)
    assert (worker.sink.failures, worker.sink.refused) == (0, 1)
    [letter] = worker.dead_letters
    assert letter["reason"].startswith("the store refused the text: ")
    assert ("NUL" if store.dialect == "postgresql" else "poison refused by the test") in letter["reason"]
    assert letter["table"] == "feedback_texts" and letter["event"]["event_id"] == bad["event_id"]
    # Never tried again: the next writes go through, and nothing more is refused.
    worker.batch([event("feedback", "p4", {"kind": "comment", "text": "Later"}, 1)])
    worker.flush()
    worker.flush()
    assert ("p4", "Later") in texts_of(store)
    assert (worker.sink.failures, worker.sink.refused, len(worker.dead_letters)) == (0, 1, 1)


def test_a_figure_the_database_refuses_is_logged_and_dropped_and_blocks_nothing(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.apply_pilot(SPEC)
    worker = Worker(store)
    worker.batch(
        [
            event("usage", "p1", {"action": "buy", "properties": {"district": "north"}}, 0),
            event("exposure", "p1", {"experiment": "exp", "variant": "a"}, 0),
        ]
    )
    segment = refused_segment(store)
    day = (DAY.date() - date(1970, 1, 1)).days
    worker.proc.aggregates.add(0, ("lab", "d", day, segment), [1.0, 1.0, 0.0])
    with caplog.at_level(logging.ERROR, logger="rhizome.sink"):
        worker.flush()
    assert adoption_reads.adoption_segments(store, "lab") == ("district:north",)
    assert held(store) == {k: v for k, v in worker.proc.aggregates.everything()[0].items() if k[3] != segment}
    assert (worker.sink.failures, worker.sink.refused, worker.dead_letters) == (0, 1, [])
    assert any("refused a row of daily_adoption, dropped" in r.getMessage() for r in caplog.records)
    worker.batch([event("usage", "p2", {"action": "buy", "properties": {"district": "south"}}, 0)])
    worker.flush()
    assert adoption_reads.adoption_segments(store, "lab") == ("district:north", "district:south")
    assert (worker.sink.failures, worker.sink.refused) == (0, 1)


def test_a_figure_that_is_not_finite_is_never_written(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.apply_pilot(SPEC)
    worker = Worker(store)
    worker.batch([event("exposure", "p1", {"experiment": "exp", "variant": "a"}, 0)])
    overflowed = ("lab", "a", "exp", "spent", "a", "")
    worker.proc.aggregates.add(0, overflowed, [1.0, 1e200, float("inf"), 0.0, 0.0, 0.0])
    with caplog.at_level(logging.ERROR, logger="rhizome.sink"):
        worker.flush()
    assert overflowed not in held(store) and ("lab", "a", "exp", "$units", "a", "") in held(store)
    assert worker.sink.failures == 0
    assert any("is not finite" in r.getMessage() for r in caplog.records)
