"""The stream processor's core, without Kafka: exact in any order, batching and redelivery."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.attribution import (
    MAX_EXPOSURES,
    ConsentTimeline,
    ExperimentRuntime,
    PilotLog,
    PilotRuntime,
    event_key,
    first_half_key,
    to_ms,
)
from experiments.specs import parse_pilot_spec
from services.simulator.truth import expected
from streams.events import InvalidEvent, dead_letter, decode_event, encode_erasure, format_time, new_event, parse_event
from streams.processor import Incoming, LiveStates, Outcome, ParticipantState, Processor, Registry
from streams.sink import rows_for
from tests.support.records import decoded_record

SPEC = """
pilot: {key: lab, name: Lab, consent: required, segments: [district], key_action: buy}
experiments:
  - key: exp
    variants: {a: 0.5, b: 0.5}
    metrics:
      - {key: bought, type: proportion, action: buy, window_days: 2}
      - {key: spent, type: mean, action: buy, window_days: 2, covariate_days: 1}
      - {key: per_visit, type: ratio, action: buy, denominator: visit, window_days: 2}
      - {key: back, type: retention, action: "*", week: 0}
    primary: bought
"""
PILOT = parse_pilot_spec(SPEC)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
ERASURE_TOPIC = "ns.erasure"


def registry(status: str = "running", stopped: datetime | None = None) -> Registry:
    exp = PILOT.experiments[0]
    runtime = ExperimentRuntime(exp, status, to_ms(stopped) if stopped else None)  # type: ignore[arg-type]
    return Registry.of({"lab": PilotRuntime(PILOT, {"exp": runtime})})


def processor(reg: Registry | None = None, grace_days: float = 30, max_age_days: int = 400) -> Processor:
    return Processor(
        reg or registry(),
        grace_ms=int(grace_days * 86_400_000),
        clock=lambda: NOW.timestamp() + 86_400 * 30,
        max_age=timedelta(days=max_age_days),
    )


def run(
    proc: Processor, events: list[dict[str, Any]], batch: int = 50, states: dict[str, Any] | None = None
) -> Outcome:
    """Feeds the events in batches grouped by participant, like the worker; returns the outcome."""
    states = {} if states is None else states
    outcome = Outcome()
    for i in range(0, len(events), batch):
        groups: dict[str, list[Incoming]] = defaultdict(list)
        for offset, ev in enumerate(events[i : i + batch]):
            groups[ev["participant_id"]].append(incoming(ev, i + offset))
        for pid, recs in groups.items():
            raw = states.get(pid)
            new = proc.process(ParticipantState.from_json(raw) if raw else None, recs, outcome)
            if new is not None:
                states[pid] = orjson.loads(orjson.dumps(new.to_json()))
        proc.end_batch()
    return outcome


def incoming(ev: dict[str, Any], offset: int) -> Incoming:
    """Returns the record the worker reads for an event (or an erasure request: participant_id and at)."""
    if "type" not in ev:
        return decoded_record(encode_erasure(ev["participant_id"], ev["at"]), ERASURE_TOPIC, 0, offset, ERASURE_TOPIC)
    return decoded_record(orjson.dumps(ev), f"ns.{ev['type']}", 0, offset, ERASURE_TOPIC)


def store_view(proc: Processor) -> dict[tuple[str, str, str], tuple[float, ...]]:
    """Returns {(metric, variant, segment): sums} of experiment `exp` summed over partitions."""
    out: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0] * 6)
    for part in proc.aggregates.sums.values():
        for key, vec in part.items():
            if key[1] == "a" and key[2] == "exp":
                acc = out[(key[3], key[4], key[5])]
                for i, v in enumerate(vec):
                    acc[i] += v
    return {k: tuple(v) for k, v in out.items() if v[0] != 0 or any(v)}


def assert_matches_truth(proc: Processor, events: list[dict[str, Any]]) -> None:
    truth = expected(events, PILOT).statistics.get("exp", {})
    view = store_view(proc)
    want = {(m, v, ""): vec for m, by_v in truth.items() for v, vec in by_v.items()}
    got = {k: v for k, v in view.items() if k[2] == ""}
    assert set(got) == set(want)
    for key, vec in want.items():
        assert got[key] == pytest.approx(vec, abs=1e-9), key


def ev(kind: str, pid: str, payload: dict[str, Any], hours: float) -> dict[str, Any]:
    return new_event(kind, "lab", pid, payload, occurred_at=NOW + timedelta(hours=hours))  # type: ignore[arg-type]


def test_metric_values_of_one_participant() -> None:
    events = [
        ev("consent", "p1", {"granted": True}, -30),
        ev("usage", "p1", {"action": "buy", "value": 4.0, "properties": {"district": "north"}}, -10),  # pre-period
        ev("exposure", "p1", {"experiment": "exp", "variant": "b"}, 0),
        ev("usage", "p1", {"action": "visit"}, 1),
        ev("usage", "p1", {"action": "visit"}, 2),
        ev("usage", "p1", {"action": "buy", "value": 10.0}, 3),
        ev("usage", "p1", {"action": "buy", "value": 5.0}, 47.9),
        ev("usage", "p1", {"action": "buy", "value": 99.0}, 48.1),  # after the 2-day window
    ]
    proc = processor()
    run(proc, events)
    view = store_view(proc)
    assert view[("$units", "b", "")][0] == 1
    assert view[("bought", "b", "")][:3] == (1, 1, 1)
    # mean with CUPED covariate: x = 15, pre = 4
    assert view[("spent", "b", "")] == (1, 15, 225, 4, 16, 60)
    # ratio: buys' value over visits' count
    assert view[("per_visit", "b", "")] == (1, 15, 225, 2, 4, 30)
    assert view[("back", "b", "")][:2] == (1, 1)
    assert view[("bought", "b", "district:north")][:2] == (1, 1)
    assert_matches_truth(proc, events)


def test_consent_gates_counting_from_that_moment_on() -> None:
    events = [
        ev("exposure", "p1", {"experiment": "exp", "variant": "a"}, 0),  # before consent: not counted
        ev("consent", "p1", {"granted": True}, 1),
        ev("exposure", "p1", {"experiment": "exp", "variant": "a"}, 2),  # first counted exposure
        ev("usage", "p1", {"action": "buy", "value": 3.0}, 3),
        ev("consent", "p1", {"granted": False}, 4),
        ev("usage", "p1", {"action": "buy", "value": 100.0}, 5),  # after withdrawal: not counted
        ev("exposure", "p2", {"experiment": "exp", "variant": "b"}, 0),  # never consents
        ev("usage", "p2", {"action": "buy", "value": 7.0}, 1),
    ]
    proc = processor()
    run(proc, list(reversed(events)))
    view = store_view(proc)
    assert view[("$units", "a", "")][0] == 1
    assert ("$units", "b", "") not in view
    assert view[("spent", "a", "")][1] == 3.0
    assert_matches_truth(proc, events)


def test_redelivery_changes_nothing_and_counts_duplicates() -> None:
    events = [ev("consent", "p1", {"granted": True}, 0), ev("exposure", "p1", {"experiment": "exp", "variant": "a"}, 1)]
    proc = processor()
    run(proc, events)
    states: dict[str, Any] = {}
    proc2 = processor()
    run(proc2, events, states=states)
    before = store_view(proc2)
    outcome = run(proc2, events, states=states)
    assert outcome.duplicates == 2 and outcome.applied == 0
    assert store_view(proc2) == before == store_view(proc)


def uuid7(ms: int, counter: int, rand: int = 0x5EED) -> str:
    """A UUIDv7 as RFC 9562 lays it out with a counter (and as Python 3.14's `uuid.uuid7` makes it): the
    48-bit time in ms, the counter's high 12 bits, its low 30 bits, then 32 random bits. Ids made in the
    same millisecond differ only past their first 64 bits while the counter's low bits do."""
    value = ms << 80 | 0x7 << 76 | (counter >> 30) << 64 | 0b10 << 62 | (counter & (2**30 - 1)) << 32 | rand
    return str(uuid.UUID(int=value))


def test_a_redelivered_comment_gives_its_text_again() -> None:
    """A worker can stop after a batch's states reached the changelog and before its texts were stored
    (texts live in no state); the records are then read again, as duplicates. Their texts are kept
    again (the store keys them by event id), or they would be lost."""
    events = [
        ev("consent", "p1", {"granted": True}, 0),
        ev("feedback", "p1", {"kind": "idea", "text": "Bike lanes"}, 1),
        ev("feedback", "p1", {"kind": "rating", "score": 4}, 1),
    ]
    states: dict[str, Any] = {}
    proc = processor()
    first = run(proc, events, states=states)
    before = store_view(proc)
    again = run(proc, events, states=states)
    assert again.duplicates == 3 and again.applied == 0 and store_view(proc) == before
    assert [t["text"] for t in first.texts] == [t["text"] for t in again.texts] == ["Bike lanes"]
    assert again.texts[0]["event_id"] == events[1]["event_id"]


def test_a_text_read_before_its_consent_is_stored_once_the_consent_is_read() -> None:
    """The portal publishes a citizen's consent, then their idea, on two topics: the worker may read the
    idea first, in an earlier batch. The idea waits in the participant's state for the consent that
    covers it; one that no consent covers is never stored, and an erasure forgets it."""
    consent = ev("consent", "p1", {"granted": True}, 0)
    idea = ev("feedback", "p1", {"kind": "idea", "text": "Bike lanes", "title": "Lanes", "theme": "mobility"}, 1)
    earlier = ev("feedback", "p1", {"kind": "comment", "text": "before consenting"}, -1)
    states: dict[str, Any] = {}
    proc = processor()
    first = run(proc, [idea, earlier], states=states)
    assert first.texts == [] and len(states["p1"]["l"]["lab"]["w"]) == 2
    again = run(proc, [idea], states=states)  # redelivered while it waits: still once
    assert again.texts == [] and len(states["p1"]["l"]["lab"]["w"]) == 2
    second = run(proc, [consent], states=states)
    [row] = second.texts
    assert (row["event_id"], row["text"], row["title"], row["theme"]) == (
        idea["event_id"],
        "Bike lanes",
        "Lanes",
        "mobility",
    )
    assert row["occurred_at"] == NOW + timedelta(hours=1)
    assert [w[3] for w in states["p1"]["l"]["lab"]["w"]] == ["comment"]
    erased = run(proc, [{"participant_id": "p1", "at": NOW + timedelta(hours=2)}], states=states)
    assert erased.texts == [] and states["p1"]["l"] == {}


def test_events_whose_ids_share_their_first_64_bits_all_count() -> None:
    """Ids are told apart by all their bits, not only the first 64 (which UUIDv7s of one millisecond,
    or UUIDv1s of one clock tick, share)."""
    at = NOW + timedelta(hours=1)
    ids = [uuid7(to_ms(at), 1_000 + i) for i in range(3)]
    assert len({i[:18] for i in ids}) == 1 and len(set(ids)) == 3
    events = [
        ev("consent", "p1", {"granted": True}, 0),
        ev("exposure", "p1", {"experiment": "exp", "variant": "a"}, 0.5),
        *({**ev("usage", "p1", {"action": "buy", "value": float(n + 1)}, 1), "event_id": ids[n]} for n in range(3)),
    ]
    proc = processor()
    outcome = run(proc, events, batch=2)
    assert outcome.applied == 5 and outcome.duplicates == 0
    assert store_view(proc)[("spent", "a", "")][1] == 6.0
    assert_matches_truth(proc, events)
    # Redelivered, they are all recognised.
    states: dict[str, Any] = {}
    proc2 = processor()
    run(proc2, events, states=states)
    again = run(proc2, events, states=states)
    assert again.duplicates == 5 and again.applied == 0


def test_a_log_written_before_event_keys_still_recognises_its_events() -> None:
    """A state stored by an earlier release remembers events by their ids' first 64 bits ("i"): their
    redelivery changes nothing; new events are remembered by `event_key` ("k") beside them."""
    events = [ev("consent", "p1", {"granted": True}, 0), ev("exposure", "p1", {"experiment": "exp", "variant": "a"}, 1)]
    states: dict[str, Any] = {}
    proc = processor()
    run(proc, events, states=states)
    log = states["p1"]["l"]["lab"]
    # As the earlier release wrote it.
    del log["k"]
    log["i"] = sorted(first_half_key(uuid.UUID(e["event_id"]).int) for e in events)
    before = store_view(proc)
    again = run(proc, events, states=states)
    assert again.duplicates == 2 and again.applied == 0
    assert store_view(proc) == before
    later = ev("usage", "p1", {"action": "buy", "value": 2.0}, 2)
    assert run(proc, [later], states=states).applied == 1
    log = states["p1"]["l"]["lab"]
    assert log["i"] == sorted(first_half_key(uuid.UUID(e["event_id"]).int) for e in events)
    assert log["k"] == [event_key(uuid.UUID(later["event_id"]).int)]
    assert run(proc, [later, *events], states=states).duplicates == 3


@pytest.mark.parametrize("watermark", [False, True], ids=["first-batch", "after-a-batch"])
@pytest.mark.parametrize(
    ("at", "reason"),
    [
        ("0001-01-01T00:00:00+01:00", "occurred_at 0001-01-01T00:00:00+01:00 is before 0001-01-01T00:00:00Z"),
        ("0001-01-01T00:59:59.999999+01:00", "occurred_at 0001-01-01T00:59:59.999999+01:00 is before 0001-01-01"),
        ("9999-12-31T23:59:59-01:00", "occurred_at 9999-12-31T23:59:59-01:00 is in the future"),
        ("9999-12-31T23:59:59.999999Z", "occurred_at 9999-12-31T23:59:59.999999+00:00 is in the future"),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_times_at_the_ends_of_the_calendar_are_refused_or_counted_never_raised(
    at: str, reason: str | None, watermark: bool
) -> None:
    """The contract takes any time with an offset; some are not times UTC can hold (the year 0 or
    10000 once converted). Such an event goes to the dead letters: raised, it would stop the worker at
    the same record after every restart, and counted, its day would stop every write of the sink.
    (With the default maximum age, all of them are far too old or too new: here nothing is.)"""
    proc = processor(grace_days=1_000_000, max_age_days=1_000_000)
    if watermark:
        run(proc, [ev("consent", "p0", {"granted": True}, 0)])
    dated = [
        {**ev("consent", "p1", {"granted": True}, 0), "occurred_at": at},
        {**ev("usage", "p1", {"action": "buy"}, 0), "occurred_at": at},
        {**ev("feedback", "p1", {"kind": "comment", "text": "Old"}, 0), "occurred_at": at},
    ]
    outcome = run(proc, dated)
    reasons = [orjson.loads(d)["reason"] for d in outcome.dead_letters]
    if reason is None:
        assert outcome.applied == 3 and reasons == [] and outcome.texts[0]["occurred_at"].year == 1
    else:
        assert outcome.applied == 0 and len(reasons) == 3
        assert all(r.startswith(reason) for r in reasons), reasons
    # Whatever was counted, the sink can write it.
    for partition, figures in proc.aggregates.everything().items():
        rows_for(partition, figures, NOW)


def test_unknown_experiment_variant_and_late_events_go_to_dead_letters() -> None:
    proc = processor(grace_days=1)
    outcome = run(
        proc,
        [
            ev("consent", "p1", {"granted": True}, 0),
            ev("exposure", "p1", {"experiment": "nope", "variant": "a"}, 1),
            ev("exposure", "p1", {"experiment": "exp", "variant": "zz"}, 1),
            ev("feedback", "p1", {"kind": "rating", "score": 4, "experiment": "nope"}, 2),
            ev("consent", "p2", {"granted": True}, 100),
            ev("usage", "p2", {"action": "buy"}, 100),
            ev("usage", "p3", {"action": "buy"}, 100 - 25),  # 25 h before the watermark: beyond the grace
            ev("usage", "p4", {"action": "buy"}, 100 - 23),  # within the grace: counted
        ],
        batch=1,
    )
    letters = [orjson.loads(d) for d in outcome.dead_letters]
    assert [(d["field"], d["reason"].split(" ")[0]) for d in letters] == [
        ("payload.experiment", "unknown"),
        ("payload.variant", "variant"),
        ("payload.experiment", "unknown"),
        ("occurred_at", "late"),
    ]
    assert letters[0]["event"]["payload"]["experiment"] == "nope"
    assert outcome.applied == 4


def test_an_event_dated_beyond_the_clock_skew_goes_to_dead_letters() -> None:
    proc = processor()  # its clock reads NOW + 30 days; ten minutes of skew are allowed
    now_hours = 30 * 24
    outcome = run(
        proc,
        [
            ev("consent", "p1", {"granted": True}, 0),
            ev("usage", "p1", {"action": "buy"}, now_hours + 0.1),  # six minutes ahead: counted
            ev("usage", "p1", {"action": "visit"}, now_hours + 1),  # an hour ahead: refused
        ],
    )
    letters = [orjson.loads(d) for d in outcome.dead_letters]
    assert [(d["field"], d["reason"].endswith("is in the future")) for d in letters] == [("occurred_at", True)]
    assert letters[0]["event"]["payload"]["action"] == "visit"
    assert outcome.applied == 2


def test_a_year_4_event_on_a_partition_with_no_newer_event_is_never_counted() -> None:
    """Regression (issue 24, 3): with no newer event in its partition there is no watermark to find it
    late, and it was counted; the daily series then began in the year 4. The worker bounds event times
    as the ingest API does, against `received_at`, else its clock."""
    proc = processor()  # its clock reads NOW + 30 days; events may be 400 days older than that
    ancient = [
        {**ev("consent", "p1", {"granted": True}, 0), "occurred_at": "0004-01-01T00:00:00Z"},
        {**ev("usage", "p1", {"action": "buy", "value": 3.0}, 0), "occurred_at": "0004-01-01T00:00:01Z"},
        {**ev("usage", "p2", {"action": "buy"}, 0), "occurred_at": format_time(NOW - timedelta(days=371))},
    ]
    outcome = run(proc, ancient)
    letters = [orjson.loads(d) for d in outcome.dead_letters]
    assert [d["field"] for d in letters] == ["occurred_at", "occurred_at", "occurred_at"]
    assert all("must be at most 400 days before the time it was received" in d["reason"] for d in letters)
    assert outcome.applied == 0 and proc.aggregates.everything() == {}
    # Within the bound, counted.
    assert run(proc, [{**ancient[2], "occurred_at": format_time(NOW - timedelta(days=369))}]).applied == 1


def test_event_times_are_bounded_by_received_at_when_the_event_has_one() -> None:
    """An event read again long after the ingest API took it (a replay) is judged by the time it was
    received, not by the worker's clock; a `received_at` of its own is bounded by the clock."""
    proc = processor(max_age_days=10)  # its clock reads NOW + 30 days

    def received(hours: float, received_days: float) -> dict[str, Any]:
        event = ev("usage", "p1", {"action": "buy"}, hours)
        return {**event, "received_at": format_time(NOW + timedelta(days=received_days))}

    outcome = run(
        proc,
        [
            ev("consent", "p1", {"granted": True}, 0),  # 30 days before the clock: too old
            {
                **ev("consent", "p1", {"granted": True}, 24 * 16 - 1),
                "received_at": format_time(NOW + timedelta(days=25)),
            },
            received(24 * 16, 25),  # 9 days before it was received (25 days before the clock): counted
            received(24 * 14, 25),  # 11 days before it was received: refused
            received(24 * 25 + 0.5, 25),  # half an hour after it was received: refused
            received(24 * 19, 19),  # received 11 days before the clock: refused
        ],
        batch=1,
    )
    letters = [(d["field"], d["reason"]) for d in map(orjson.loads, outcome.dead_letters)]
    assert [field for field, _ in letters] == ["occurred_at", "occurred_at", "occurred_at", "received_at"]
    assert "10 days before the time it was received" in letters[0][1]
    assert "10 days before the time it was received" in letters[1][1]
    assert "10 minutes after the time it was received" in letters[2][1]
    assert "10 days before now" in letters[3][1]
    assert outcome.applied == 2


def test_a_time_sent_with_an_offset_counts_on_its_utc_day_and_is_shown_in_utc() -> None:
    # 00:30 on the 20th at UTC+02:00 is 22:30 on the 19th in UTC.
    def sent_at(event: dict[str, Any], text: str) -> dict[str, Any]:
        return {**event, "occurred_at": text}

    events = [
        sent_at(ev("consent", "p1", {"granted": True}, 0), "2026-11-19T23:00:00+02:00"),
        sent_at(ev("usage", "p1", {"action": "buy"}, 0), "2026-11-20T00:30:00+02:00"),
        sent_at(ev("feedback", "p1", {"kind": "idea", "text": "more bikes"}, 0), "2026-11-20T00:31:00.5+02:00"),
    ]
    proc = processor(grace_days=0.5)
    outcome = run(proc, events)
    assert outcome.dead_letters == [] and outcome.applied == 3
    days = {key[2] for part in proc.aggregates.sums.values() for key in part if key[1] == "d"}
    assert days == {to_ms(datetime(2026, 11, 19, tzinfo=UTC)) // 86_400_000}
    [idea] = outcome.texts
    assert idea["occurred_at"] == datetime(2026, 11, 19, 22, 31, 0, 500_000, tzinfo=UTC)
    assert idea["occurred_at"].utcoffset() == timedelta(0)
    # A day later, out of the grace: the reason gives the time in UTC.
    late = run(proc, [sent_at(ev("usage", "p2", {"action": "buy"}, 0), "2026-11-19T01:00:00+02:00")])
    [letter] = [orjson.loads(d) for d in late.dead_letters]
    assert letter["reason"].startswith("late event: occurred_at 2026-11-18T23:00:00+00:00 is more than")


def test_a_time_without_an_offset_is_refused_naming_the_field() -> None:
    naive = {**ev("usage", "p1", {"action": "buy"}, 0), "occurred_at": "2026-11-20T09:15:02"}
    with pytest.raises(InvalidEvent) as refused:
        parse_event(naive)
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("occurred_at", "must carry a time zone (UTC, e.g. 2026-11-20T09:15:02Z) (got '2026-11-20T09:15:02')")
    ]
    outcome = run(processor(), [naive])
    assert [orjson.loads(d)["field"] for d in outcome.dead_letters] == ["occurred_at"]


def test_events_are_applied_in_the_order_of_their_exact_times_not_of_their_milliseconds() -> None:
    # An idea is kept as text only under consent, checked as it is applied: a consent given 0.2 ms
    # before it, in the same millisecond but read after it, must be applied first.
    second = "2026-11-20T12:00:00"
    idea = {**ev("feedback", "p1", {"kind": "idea", "text": "more bikes"}, 0), "occurred_at": f"{second}.0006Z"}
    consent = {**ev("consent", "p1", {"granted": True}, 0), "occurred_at": f"{second}.0004Z"}
    outcome = run(processor(), [idea, consent])
    assert outcome.applied == 2
    assert [t["text"] for t in outcome.texts] == ["more bikes"]


def test_a_batch_never_judges_its_own_events_late() -> None:
    """Regression: a batch is applied participant by participant; a participant whose events are days
    newer must not make another participant's earlier events of the same batch late."""
    events = [ev("usage", "p-old", {"action": "buy"}, 0), ev("usage", "p-new", {"action": "buy"}, 24 * 9)]
    proc = processor(grace_days=2)
    outcome = run(proc, list(reversed(events)), batch=10)
    assert outcome.dead_letters == [] and outcome.applied == 2
    late = run(proc, [ev("usage", "p-late", {"action": "buy"}, 24 * 3)], batch=10)
    assert len(late.dead_letters) == 1


def test_a_topic_read_days_ahead_of_another_makes_no_event_late() -> None:
    """Regression: with a backlog, the usage topic can be read days ahead of the exposure and consent
    topics of the same partition; lateness is judged within each topic, so nothing is late."""
    ahead = [ev("usage", f"p{i}", {"action": "buy", "value": 1.0}, 24 * 8 + i) for i in range(5)]
    behind = [ev("consent", f"p{i}", {"granted": True}, i) for i in range(5)]
    behind += [ev("exposure", f"p{i}", {"experiment": "exp", "variant": "a"}, i + 0.5) for i in range(5)]
    proc = processor(grace_days=2)
    outcome = run(proc, ahead + behind, batch=5)
    assert outcome.dead_letters == [] and outcome.applied == 15
    assert_matches_truth(proc, ahead + behind)


def test_invalid_bytes_on_a_topic_go_to_dead_letters_with_the_field() -> None:
    proc = processor()
    outcome = Outcome()
    bad = {**ev("usage", "p1", {"action": "buy"}, 0), "payload": {"action": "buy", "value": "x"}}
    recs = [
        decoded_record(b"not json", "ns.usage", 0, 0, ERASURE_TOPIC),
        decoded_record(orjson.dumps(bad), "ns.usage", 0, 1, ERASURE_TOPIC),
    ]
    proc.process(None, recs, outcome)
    letters = [orjson.loads(d) for d in outcome.dead_letters]
    assert letters[0]["event"] == "not json" and "not valid JSON" in letters[0]["reason"]
    assert letters[1]["field"] == "payload.value" and letters[1]["offset"] == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "comment", "text": "nul \x00 byte"}, "payload.text"),
        ({"kind": "vote", "target": "x" * 41}, "payload.target"),
        ({"kind": "sus", "answers": [3] * 11}, "payload.answers"),
        ({"kind": "idea", "text": "Maps", "title": "T" * 201}, "payload.title"),
        ({"kind": "nps", "score": 1e200}, "payload.score"),
    ],
)
def test_a_record_written_to_kafka_directly_out_of_the_contract_goes_to_the_dead_letters(
    payload: dict[str, Any], field: str
) -> None:
    """The ingest API refuses these with 422; a producer writing to Kafka directly meets the same
    contract in the worker, which sends the record to the dead letters with the field and the reason."""
    bad = ev("feedback", "p1", payload, 0)
    outcome = run(processor(), [ev("consent", "p1", {"granted": True}, 0), bad])
    [letter] = [orjson.loads(d) for d in outcome.dead_letters]
    assert letter["field"] == field and letter["reason"].startswith(f"invalid event: {field}: must ")
    assert letter["event"]["event_id"] == bad["event_id"] and outcome.applied == 1


@pytest.mark.parametrize(
    ("number", "why"),
    [
        (b"NaN", "(event): is not valid JSON"),
        (b"Infinity", "(event): is not valid JSON"),
        (b"-Infinity", "(event): is not valid JSON"),
        (b"1e400", "payload.score: must be a number from -1000000000 to 1000000000"),
    ],
)
def test_a_number_json_does_not_have_or_no_float_holds_is_refused(number: bytes, why: str) -> None:
    comment = orjson.dumps(ev("feedback", "p1", {"kind": "comment", "text": "hi"}, 0))
    with pytest.raises(InvalidEvent) as refused:
        decode_event(comment.replace(b'"kind":"comment"', b'"kind":"comment","score":' + number))
    assert str(refused.value).startswith(why)
    with pytest.raises(InvalidEvent, match=r"payload.value: must be a number .*, not NaN \(got nan\)"):
        parse_event(ev("usage", "p1", {"action": "ride", "value": float("nan")}, 0))


def counted_participants(seed: int) -> tuple[Processor, list[dict[str, Any]], dict[str, Any], str]:
    """Returns a processor that counted six participants' random events, the events, the stored states,
    and the participant whose data will be erased."""
    events = random_events(random.Random(seed), participants=6, per_participant=8)
    states: dict[str, Any] = {}
    proc = processor()
    run(proc, events, states=states)
    return proc, events, states, events[0]["participant_id"]


def test_erasure_gives_the_aggregates_computed_without_the_participant() -> None:
    proc, events, states, victim = counted_participants(3)
    run(proc, [{"participant_id": victim, "at": NOW + timedelta(days=20)}], states=states)
    without = [e for e in events if e["participant_id"] != victim]
    assert_matches_truth(proc, without)
    assert states[victim]["l"] == {}
    # Replaying the victim's old events never counts them again.
    run(proc, [e for e in events if e["participant_id"] == victim], states=states)
    assert_matches_truth(proc, without)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (b"not json", "$"),
        (b"[1]", "$"),
        (b'{"requested_ms": 5}', "participant_id"),
        (b'{"participant_id": "", "requested_ms": 5}', "participant_id"),
        (b'{"participant_id": "p1"}', "requested_ms"),
        (b'{"participant_id": "p1", "requested_ms": "5"}', "requested_ms"),
        (b'{"participant_id": "p1", "requested_ms": true}', "requested_ms"),
    ],
)
def test_a_malformed_erasure_request_goes_to_the_dead_letters(value: bytes, field: str) -> None:
    """Only the CLI writes erasure requests, but a record written there by hand must not stop the worker
    (it would fail on it again after every restart): it goes to the dead letters, saying why."""
    proc = processor()
    outcome = Outcome()
    records = [
        decoded_record(value, ERASURE_TOPIC, 0, 0, ERASURE_TOPIC),
        incoming(ev("consent", "p1", {"granted": True}, 0), 1),
    ]
    state = proc.process(None, records, outcome)
    assert state is not None and outcome.applied == 1 and outcome.erasures == []
    (letter,) = [orjson.loads(d) for d in outcome.dead_letters]
    assert letter["field"] == field and letter["reason"].startswith(f"invalid erasure request: {field}: ")
    assert letter["offset"] == 0 and letter["topic"] == ERASURE_TOPIC


def test_an_erasure_is_reported_with_its_participant_and_time() -> None:
    at = NOW + timedelta(days=2)
    outcome = Outcome()
    processor().process(None, [incoming({"participant_id": "p1", "at": at}, 0)], outcome)
    assert outcome.erasures == [("p1", to_ms(at))] and outcome.dead_letters == []


def test_an_erasure_and_later_events_in_one_batch_count_only_the_later_events() -> None:
    proc, events, states, victim = counted_participants(4)
    erased_at = NOW + timedelta(days=20)
    later = [
        ev("consent", victim, {"granted": True}, 20 * 24 + 1),
        ev("exposure", victim, {"experiment": "exp", "variant": "b"}, 20 * 24 + 2),
        ev("usage", victim, {"action": "buy", "value": 7.0, "properties": {"district": "east"}}, 20 * 24 + 3),
    ]
    # The erasure request and the new events in one batch: the erased log's contributions are taken
    # out, the new log's added, not the one mistaken for the other.
    run(proc, [{"participant_id": victim, "at": erased_at}, *later], states=states)
    kept = [e for e in events if e["participant_id"] != victim] + later
    assert_matches_truth(proc, kept)
    assert_aggregates_are_those_of_the_states(proc, {k.encode(): orjson.dumps(v) for k, v in states.items()})


def test_stopped_experiment_keeps_its_figures_and_ignores_later_exposures() -> None:
    events = [
        ev("consent", "p1", {"granted": True}, 0),
        ev("exposure", "p1", {"experiment": "exp", "variant": "a"}, 1),
        ev("consent", "p2", {"granted": True}, 0),
        ev("exposure", "p2", {"experiment": "exp", "variant": "b"}, 10),
    ]
    proc = processor(registry("stopped", NOW + timedelta(hours=5)))
    run(proc, events)
    view = store_view(proc)
    assert view[("$units", "a", "")][0] == 1
    assert ("$units", "b", "") not in view


def test_rebuild_from_states_equals_incremental_aggregates() -> None:
    rng = random.Random(5)
    events = random_events(rng, participants=10, per_participant=10)
    states: dict[str, Any] = {}
    proc = processor()
    run(proc, events, states=states)
    rebuilt = processor()
    rebuilt.rebuild(((pid, ParticipantState.from_json(doc)) for pid, doc in states.items()), [0])
    incremental, recomputed = store_view(proc), store_view(rebuilt)
    assert set(recomputed) == set(incremental)
    for key, vec in incremental.items():
        assert recomputed[key] == pytest.approx(vec, abs=1e-9), key


def test_the_watermarks_rebuilt_from_the_logs_are_the_ones_the_worker_had() -> None:
    """After a restart or a rebalance the lateness watermarks come from the participants' logs: they must
    be the ones the worker had, or a restart would change which late events are refused. A log keeps
    a few exposures of an experiment, not all (`MAX_EXPOSURES`); the newest is among them."""
    events = [
        ev("consent", "p1", {"granted": True}, 0),
        *(ev("exposure", "p1", {"experiment": "exp", "variant": "a"}, h) for h in range(1, MAX_EXPOSURES + 5)),
        ev("usage", "p1", {"action": "buy"}, 2),
    ]
    states: dict[str, Any] = {}
    proc = processor()
    run(proc, events, batch=3, states=states)
    rebuilt = processor()
    rebuilt.rebuild(((pid, ParticipantState.from_json(doc)) for pid, doc in states.items()), [0])
    assert rebuilt.watermarks(0) == proc.watermarks(0)
    assert proc.watermarks(0)["exposure"] == to_ms(NOW + timedelta(hours=MAX_EXPOSURES + 4))
    assert len(states["p1"]["l"]["lab"]["x"]["exp"]) == MAX_EXPOSURES
    assert_matches_truth(rebuilt, events)


def random_events(rng: random.Random, participants: int, per_participant: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for p in range(participants):
        pid = f"p{p}"
        for _ in range(per_participant):
            hours = rng.uniform(-30, 80)
            kind = rng.choice(["consent", "exposure", "usage", "usage", "usage", "feedback"])
            if kind == "consent":
                payload: dict[str, Any] = {"granted": rng.random() < 0.8}
            elif kind == "exposure":
                payload = {"experiment": "exp", "variant": rng.choice(["a", "b"])}
            elif kind == "usage":
                props = {"district": rng.choice(["n", "s"])} if rng.random() < 0.5 else {}
                payload = {
                    "action": rng.choice(["buy", "visit"]),
                    "value": rng.choice([None, 1.5, 2.0]),
                    "properties": props,
                }
            else:
                payload = {"kind": "nps", "score": rng.randint(0, 10)}
            events.append(ev(kind, pid, payload, round(hours, 3)))
    return events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 40), duplicates=st.floats(0, 0.5))
def test_any_order_batching_and_redelivery_give_the_ground_truth(seed: int, batch: int, duplicates: float) -> None:
    rng = random.Random(seed)
    events = random_events(rng, participants=5, per_participant=rng.randint(1, 12))
    delivered = events + [e for e in events if rng.random() < duplicates]
    rng.shuffle(delivered)
    proc = processor()
    run(proc, delivered, batch=batch)
    assert_matches_truth(proc, events)


@given(
    consents=st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=6),
    times=st.lists(st.integers(0, 30), max_size=20),
    by_service=st.booleans(),
)
def test_the_counted_usage_is_the_usage_made_while_consenting(
    consents: list[tuple[int, bool]], times: list[int], by_service: bool
) -> None:
    # Small times, so usage often falls on a consent's own millisecond (a withdrawal wins a tie).
    timeline = ConsentTimeline(sorted(consents), by_service)
    usage = sorted((t, "visit", None) for t in times)
    assert timeline.counted(usage) == [u for u in usage if timeline.at(u[0])]


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.sampled_from(["buy", "visit"]),
            st.sampled_from([None, 1.0, 2.0]),
            st.dictionaries(st.sampled_from(["district", "channel"]), st.sampled_from(["n", "s", "e"])),
        ),
        max_size=12,
    ),
    data=st.data(),
)
def test_a_log_holds_the_same_usage_and_segments_whatever_the_order_of_its_events(
    items: list[tuple[int, str, float | None, dict[str, str]]], data: st.DataObject
) -> None:
    # Times drawn from a few milliseconds, so that many events share one: ties are ordered by action
    # and value, and a segment is the value of the earliest event carrying it, the least on a tie.
    log = PilotLog()
    for ms, action, value, properties in data.draw(st.permutations(items)):
        log.add_usage(ms, action, value, properties)
    assert log.usage == sorted(((ms, a, v) for ms, a, v, _ in items), key=lambda u: (u[0], u[1], u[2] or -1e308))
    firsts: dict[str, tuple[int, str]] = {}
    for ms, _, _, properties in items:
        for name, val in properties.items():
            firsts[name] = min(firsts.get(name, (ms, val)), (ms, val))
    assert log.properties == firsts


def test_dead_letter_record_keeps_where_it_came_from() -> None:
    record = orjson.loads(dead_letter("why", "payload.x", b'{"a": 1}', topic="t", partition=2, offset=9))
    assert record == {"reason": "why", "field": "payload.x", "at": record["at"], "topic": "t", "partition": 2,
                      "offset": 9, "event": {"a": 1}}  # fmt: skip


def run_kept(
    proc: Processor, events: list[dict[str, Any]], store: dict[bytes, bytes], live: LiveStates, batch: int
) -> None:
    """Feeds the events in batches like the worker: states read from and written to the byte store,
    and kept parsed between batches in `live`."""
    for i in range(0, len(events), batch):
        chunk: dict[bytes, list[Incoming]] = defaultdict(list)
        for offset, e in enumerate(events[i : i + batch]):
            chunk[e["participant_id"].encode()].append(incoming(e, i + offset))
        proc.process_chunk(store, chunk, live)
        proc.end_batch()


def rebuild_from(proc: Processor, store: dict[bytes, bytes]) -> None:
    """Rebuilds the aggregates from the stored states, as the worker does after a recovery or a
    registry change."""
    proc.rebuild(((k.decode(), ParticipantState.from_bytes(v)) for k, v in store.items()), [0])


def assert_aggregates_are_those_of_the_states(proc: Processor, store: dict[bytes, bytes]) -> None:
    """The aggregates equal the contributions of the stored states, counted afresh."""
    recounted = processor(proc.registry)
    rebuild_from(recounted, store)
    got, want = proc.aggregates.everything().get(0, {}), recounted.aggregates.everything().get(0, {})
    nonzero = {k: v for k, v in got.items() if any(abs(x) > 1e-9 for x in v)}
    assert set(nonzero) == {k for k, v in want.items() if any(abs(x) > 1e-9 for x in v)}
    for key, vec in nonzero.items():
        assert vec == pytest.approx(want[key], abs=1e-9), key


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 30), limit=st.integers(1, 6))
def test_states_kept_parsed_across_a_registry_change_count_as_states_read_from_the_store(
    seed: int, batch: int, limit: int
) -> None:
    rng = random.Random(seed)
    events = random_events(rng, participants=5, per_participant=rng.randint(2, 12))
    rng.shuffle(events)
    switch = rng.randrange(1, len(events))
    proc, store, live = processor(), {}, LiveStates(limit)
    run_kept(proc, events[:switch], store, live, batch)
    # The experiment stops: the worker takes the new registry and rebuilds the aggregates from the
    # stored states; the contributions kept beside the live states were counted under the old one.
    proc.registry = registry("stopped", NOW + timedelta(hours=rng.uniform(-10, 60)))
    rebuild_from(proc, store)
    run_kept(proc, events[switch:], store, live, batch)
    assert_aggregates_are_those_of_the_states(proc, store)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 30))
def test_a_state_another_worker_changed_meanwhile_is_read_from_the_store_not_from_the_kept_one(
    seed: int, batch: int
) -> None:
    rng = random.Random(seed)
    events = random_events(rng, participants=4, per_participant=rng.randint(3, 12))
    rng.shuffle(events)
    first, second = sorted(rng.sample(range(1, len(events)), 2))
    proc, store, live = processor(), {}, LiveStates(100)
    run_kept(proc, events[:first], store, live, batch)
    # The partition moves to another worker, which applies the next events to the states it
    # recovers from the changelog, then comes back: this worker recovers the other's states.
    other_store = dict(store)
    other = processor()
    rebuild_from(other, other_store)
    run_kept(other, events[first:second], other_store, LiveStates(100), batch)
    store.clear()
    store.update((k, bytes(bytearray(v))) for k, v in other_store.items())  # recovered: new objects
    rebuild_from(proc, store)
    run_kept(proc, events[second:], store, live, batch)
    assert_aggregates_are_those_of_the_states(proc, store)
    assert_matches_truth(proc, events)
