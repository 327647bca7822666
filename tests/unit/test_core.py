"""The processor's native core (streams/core, built by `make native`): on every record it takes, the
decoder's verdict and values; on every batch, the same states (byte for byte), aggregates, dead letters,
texts, counts and watermarks as the Python path alone; and it takes what the SDK and the simulator write
(else the comparisons would compare the Python path with itself)."""

from __future__ import annotations

import math
import os
import random
import zlib
from datetime import UTC, datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from experiments import native
from experiments.attribution import ExperimentRuntime, PilotRuntime, to_ms
from experiments.feedback import sus_score
from experiments.specs import parse_pilot_spec
from services.simulator.citizens import BEHAVIOURS, generate
from streams import wire
from streams.events import InvalidEvent, encode_erasure, new_event
from streams.processor import (
    LiveStates,
    Outcome,
    ParticipantState,
    Processor,
    Registry,
    by_participant,
    decoded_chunk,
    forget_events,
)
from tests.support.records import worker_record
from tests.unit.test_wire import EVENT_ID, encode
from tests.unit.test_wire import records as wire_records

LAB = """
pilot: {key: lab, name: Lab, consent: required, segments: [district, channel], key_action: buy}
experiments:
  - key: exp
    variants: {a: 0.5, b: 0.5}
    metrics:
      - {key: bought, type: proportion, action: buy, window_days: 2}
      - {key: spent, type: mean, action: buy, window_days: 2, covariate_days: 1}
      - {key: per_visit, type: ratio, action: buy, denominator: visit, window_days: 2}
      - {key: back, type: retention, action: "*", week: 0}
    primary: bought
  - key: later
    variants: {x: 0.5, y: 0.5}
    metrics:
      - {key: visits, type: mean, action: visit, aggregate: count, window_days: 1}
    primary: visits
"""
KIOSK = """
pilot: {key: kiosk, name: Kiosk, consent: collected_by_service, segments: [district]}
experiments:
  - key: layout
    variants: {old: 0.5, new: 0.5}
    metrics:
      - {key: used, type: retention, action: "*", week: 0}
      - {key: spent, type: mean, action: open, window_days: 3}
    primary: used
"""
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
CLOCK = (NOW + timedelta(days=4)).timestamp()
ERASURE = "ns.erasure"
PARTITIONS = 3


@pytest.fixture(scope="module")
def core_module() -> ModuleType:
    if os.environ.get(native.PURE_ENV):
        pytest.skip("RHIZOME_PURE_PYTHON asks for the Python modules, without the native core")
    module = native.core_module()
    assert module is not None, "no native core in build/native: run `make native` (needs cargo)"
    return module


def test_the_tests_run_the_native_core(core_module: ModuleType) -> None:
    assert native.core(10) is not None
    assert core_module.Core(10).digest == ""


def registry(later: str = "draft", stopped: datetime | None = None) -> Registry:
    lab, kiosk = parse_pilot_spec(LAB), parse_pilot_spec(KIOSK)
    stop = to_ms(stopped) if stopped else None
    lab_exps = {
        "exp": ExperimentRuntime(lab.experiments[0], "stopped" if stopped else "running", stop),
        "later": ExperimentRuntime(lab.experiments[1], later),  # type: ignore[arg-type]
    }
    kiosk_exps = {"layout": ExperimentRuntime(kiosk.experiments[0], "running")}
    return Registry.of({"lab": PilotRuntime(lab, lab_exps), "kiosk": PilotRuntime(kiosk, kiosk_exps)})


# --- the decoder -------------------------------------------------------------------------------


def assert_decoded_alike(core_module: ModuleType, data: bytes) -> bool:
    """When the core decodes the record, the worker's decoder takes it with the same values; returns
    whether the core decoded it."""
    got = core_module.decode(data)
    if got is None:
        return False
    try:
        event = wire.decode(data)
    except InvalidEvent as exc:
        raise AssertionError(f"the core took a record the contract refuses: {exc}") from exc
    event_id, pilot, participant, micros, ms, kind, payload = got
    assert (event_id, pilot, participant, kind) == (
        event.event_id.int,
        event.pilot_id,
        event.participant_id,
        event.type,
    )
    since_epoch = event.occurred_at - datetime(1970, 1, 1, tzinfo=UTC)
    assert micros == since_epoch // timedelta(microseconds=1)
    assert ms == int(event.occurred_at.timestamp() * 1000)
    p = event.payload
    match event:
        case wire.Exposure():
            assert payload == (p.experiment, p.variant)  # type: ignore[union-attr]
        case wire.Usage():
            assert payload == (p.action, p.value, list(p.properties.items()))  # type: ignore[union-attr]
        case wire.Feedback():
            sus = sus_score(p.answers) if p.kind == "sus" and p.answers else None  # type: ignore[union-attr]
            assert payload == (p.kind, p.score, sus, p.text, p.target, p.experiment)  # type: ignore[union-attr]
        case wire.Consent():
            assert payload == (p.granted,)  # type: ignore[union-attr]
    return True


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_records())
@example(encode(new_event("usage", "lab", "p-1", {"action": "ride", "value": 2**53}, event_id=EVENT_ID)))
@example(encode(new_event("usage", "lab", "p-1", {"action": "ride", "value": 2**53 + 1}, event_id=EVENT_ID)))
@example(encode({**new_event("usage", "lab", "p-1", {"action": "ride"}), "occurred_at": "2026-11-17T02:15:45+05:30"}))
@example(encode({**new_event("usage", "lab", "p-1", {"action": "ride"}), "occurred_at": "2200-12-31T23:59:59.999999Z"}))
def test_a_record_the_core_decodes_is_the_event_the_worker_decodes(core_module: ModuleType, data: bytes) -> None:
    assert_decoded_alike(core_module, data)


CANONICAL = orjson.dumps(new_event("usage", "lab", "p-1", {"action": "ride", "value": 2.5}, event_id=EVENT_ID))


def spelled(old: bytes, new: bytes) -> bytes:
    assert old in CANONICAL, old
    return CANONICAL.replace(old, new, 1)


@pytest.mark.parametrize(
    ("data", "taken"),
    [
        (CANONICAL, True),
        # Other spellings of valid JSON the core reads: whitespace, the payload before the type,
        # escapes other than \u in free texts.
        (b" \n" + CANONICAL.replace(b',"', b' ,\t"').replace(b'":', b'" : ') + b"\r\n", True),
        (
            b'{"payload":{"action":"ride"},' + CANONICAL[1:].replace(b',"payload":{"action":"ride","value":2.5}', b""),
            True,
        ),
        (spelled(b'"p-1"', b'"p\\"1\\/\\n"'), True),
        (spelled(b"2.5", b"-0.0"), True),
        (spelled(b"2.5", b"25e-1"), True),
        (spelled(b"2.5", b"9007199254740992"), True),
        # What it leaves to the Python path, valid or not.
        (spelled(b"2.5", b"9007199254740993"), False),
        (spelled(b'"schema_version":1', b'"schema_version":1.0'), False),
        (spelled(b'"schema_version":1', b'"schema_version":2.0'), False),
        (spelled(b'"schema_version":1', b'"schema_version":1,"schema_version":1'), False),
        (spelled(b'"source":"unknown"', b'"source":"a","source":"b"'), False),
        (spelled(b'"p-1"', b'"p\x01-1"'), False),
        (spelled(b'"p-1"', b'"p\xff-1"'), False),
        (spelled(b'"p-1"', b'"p\\x-1"'), False),
        (spelled(b"2.5", b"02.5"), False),
        (spelled(b"2.5", b"2."), False),
        (spelled(b"2.5", b".5"), False),
        (spelled(b"2.5", b"+2.5"), False),
        (spelled(b"2.5", b"1e999"), False),
        (spelled(b"2.5", b"NaN"), False),
        (spelled(b"2.5", b"2.5e"), False),
        (CANONICAL + b"x", False),
        (CANONICAL[:-1], False),
        (spelled(b'"action":"ride"', b'"action":"ride","action":"walk"'), False),
        (spelled(b'"action":"ride"', b'"action":"ride","properties":{"a":"1","a":"2"}'), False),
        (spelled(b'"action":"ride"', b'"action":"ride","properties":null'), False),
        (spelled(b'"action":"ride"', b'"action":"ride","session_id":null'), True),
        (spelled(b'"occurred_at":"', b'"received_at":null,"occurred_at":"'), True),
    ],
)
def test_spellings_of_a_record_are_taken_or_left_as_the_core_says(
    core_module: ModuleType, data: bytes, taken: bool
) -> None:
    assert assert_decoded_alike(core_module, data) is taken


def sdk_events(seed: int, participants: int = 40) -> list[dict[str, Any]]:
    """Events as the simulator (and the SDK, through the ingest API) writes them."""
    spec = parse_pilot_spec((native.ROOT / "examples" / "bike-share.yaml").read_text())
    return generate(BEHAVIOURS["bike-share"], spec, NOW - timedelta(days=6), NOW, participants, seed=seed)


def test_the_core_takes_the_events_the_simulator_writes(core_module: ModuleType) -> None:
    events = sdk_events(3, participants=150)
    kinds = {e["type"] for e in events} | {e["payload"].get("kind") for e in events if e["type"] == "feedback"}
    assert kinds >= {"usage", "exposure", "consent", "feedback", "rating", "nps", "sus", "comment", "idea", "vote"}
    assert all(assert_decoded_alike(core_module, orjson.dumps(e)) for e in events)


# --- the processor ------------------------------------------------------------------------------


def odd_record(rng: random.Random, pid: str, at: datetime) -> dict[str, Any] | bytes:
    """A record the processor refuses or the core leaves to the Python path (an escape, an offset)."""
    usage = new_event("usage", "lab", pid, {"action": "buy"}, occurred_at=at)
    return rng.choice(
        [
            b'{"type": "usage"',
            orjson.dumps(usage).replace(b"buy", b"b\\u0075y"),
            orjson.dumps({**usage, "occurred_at": at.astimezone(timezone(timedelta(hours=2))).isoformat()}),
            new_event("usage", "other", pid, {"action": "buy"}, occurred_at=at),
            new_event("usage", "lab", pid, {"action": "buy"}, occurred_at=NOW + timedelta(days=9)),
            new_event("exposure", "lab", pid, {"experiment": "nope", "variant": "a"}, occurred_at=at),
            new_event("exposure", "lab", pid, {"experiment": "exp", "variant": "zz"}, occurred_at=at),
            new_event("feedback", "lab", pid, {"kind": "rating", "score": 2.2}, occurred_at=at),
            new_event("feedback", "lab", pid, {"kind": "comment", "text": "   "}, occurred_at=at),
            new_event("feedback", "lab", pid, {"kind": "idea", "text": "A", "experiment": "nope"}, occurred_at=at),
        ]
    )


def lab_event(rng: random.Random, pid: str, odd: float, exposed: bool = False) -> dict[str, Any] | bytes:
    """One event of participant `pid`, of any kind the worker meets; with probability `odd`, a record
    that is not one, or an event the processor refuses. A participant `exposed` is mostly exposed to
    experiment `exp` (more often than a log keeps)."""
    if rng.random() < 0.3:  # a few instants, so that events share their millisecond
        at = NOW + timedelta(hours=rng.randint(0, 3))
    else:
        at = NOW + timedelta(hours=rng.uniform(-40, 90), microseconds=rng.choice([0, 0, 1, 999, 123_456]))
    if rng.random() < odd:
        return odd_record(rng, pid, at)
    if exposed and rng.random() < 0.6:
        return new_event("exposure", "lab", pid, {"experiment": "exp", "variant": rng.choice("ab")}, occurred_at=at)
    pilot = rng.choice(["lab", "lab", "lab", "kiosk"])
    kind = rng.choice(["consent", "consent", "exposure", "exposure", "usage", "usage", "usage", "feedback", "feedback"])
    payload: dict[str, Any]
    if kind == "consent":
        payload = {"granted": rng.random() < 0.7}
    elif kind == "exposure":
        exp = {"lab": rng.choice(["exp", "exp", "later"]), "kiosk": "layout"}[pilot]
        payload = {
            "experiment": exp,
            "variant": rng.choice({"exp": ["a", "b"], "later": ["x", "y"], "layout": ["old", "new"]}[exp]),
        }
    elif kind == "usage":
        props = rng.choice([{}, {"district": rng.choice(["n", "s"])}, {"channel": "app", "district": "e"}])
        value = rng.choice([None, 1.5, 2.0, 0.1, 1e-7, 12345.678])
        payload = {"action": rng.choice(["buy", "visit", "open"]), "value": value, "properties": props}
    else:
        payload = rng.choice(
            [
                {"kind": "rating", "score": rng.choice([1, 1.5, 3, 4.5, 5])},
                {"kind": "nps", "score": rng.randint(0, 10)},
                {"kind": "sus", "answers": [rng.randint(1, 5) for _ in range(10)]},
                {"kind": "comment", "text": rng.choice(["Too slow", "Très bien", 'say "hi"\n'])},
                {
                    "kind": "idea",
                    "text": "A map",
                    "experiment": rng.choice({"lab": ["exp", "later"], "kiosk": ["layout"]}[pilot] + [None]),
                },
                {"kind": "vote", "target": rng.choice(["i1", "i2"]), "score": rng.choice([1, -1, None])},
            ]
        )
    return new_event(kind, pilot, pid, payload, occurred_at=at)  # type: ignore[arg-type]


def fetches(rng: random.Random, participants: int, per_participant: int, batch: int, odd: float) -> list[list[Any]]:
    """Fetches of records: every participant's events, some twice, an erasure or two, shuffled."""
    rows: list[tuple[bytes, str, bytes]] = []
    for p in range(participants):
        pid = f"p{p}"
        exposed = rng.random() < 0.3
        for _ in range(per_participant):
            ev = lab_event(rng, pid, odd, exposed)
            if isinstance(ev, bytes):
                rows.append((pid.encode(), "ns.usage", ev))
            else:
                rows.append((pid.encode(), f"ns.{ev['type']}", orjson.dumps(ev)))
    rows += [r for r in rows if rng.random() < 0.2]
    for pid in rng.sample(range(participants), k=min(2, participants)):
        at = NOW + timedelta(hours=rng.uniform(-10, 40))
        rows.append((f"p{pid}".encode(), ERASURE, encode_erasure(f"p{pid}", at)))
    rng.shuffle(rows)
    out = []
    for start in range(0, len(rows), batch):
        out.append(
            [
                worker_record(topic, zlib.crc32(key) % PARTITIONS, offset, key, value)
                for offset, (key, topic, value) in enumerate(rows[start : start + batch], start)
            ]
        )
    return out


class Run:
    """A processor fed fetches as the worker feeds them, with or without the native core."""

    def __init__(self, core: Any, limit: int, grace_hours: int = 36) -> None:
        self.proc = Processor(registry(), grace_ms=grace_hours * 3_600_000, clock=lambda: CLOCK, core=core)
        self.store: dict[bytes, bytes] = {}
        self.live = LiveStates(limit)
        self.outcome = Outcome()
        self.changelog: list[tuple[bytes, int, bytes]] = []
        #: Participants of a fetch: all, and those whose records the core took.
        self.groups = 0
        self.taken = 0

    def fetch(self, records: list[Any]) -> None:
        groups = by_participant(records)
        keys = list(groups)
        self.groups += len(keys)
        for start in range(0, len(keys), 7):  # small chunks
            fast, changed, rest = self.proc.process_fast(self.store, groups, keys[start : start + 7], ERASURE)
            self.taken += len(keys[start : start + 7]) - len(rest)
            chunk = decoded_chunk(groups, rest, ERASURE)
            slow, slow_changed = self.proc.process_chunk(self.store, chunk, self.live)
            forget_events(chunk)
            for got in (fast, slow):
                self.outcome.dead_letters += got.dead_letters
                self.outcome.texts += got.texts
                self.outcome.erasures += got.erasures
                self.outcome.applied += got.applied
                self.outcome.duplicates += got.duplicates
            self.changelog += changed + slow_changed
        self.proc.end_batch()

    def switch(self, reg: Registry) -> None:
        """The registry changes: the worker rebuilds the aggregates from the stored states."""
        self.proc.registry = reg
        states = ((k.decode(), ParticipantState.from_bytes(v)) for k, v in self.store.items())
        self.proc.rebuild(states, range(PARTITIONS))

    def view(self) -> dict[str, Any]:
        letters = sorted(
            orjson.dumps({k: v for k, v in orjson.loads(d).items() if k != "at"}) for d in self.outcome.dead_letters
        )
        return {
            "states": self.store,
            "changelog": sorted(self.changelog),
            "dead_letters": letters,
            "texts": sorted(repr(sorted(t.items())) for t in self.outcome.texts),
            "erasures": sorted(self.outcome.erasures),
            "counts": (self.outcome.applied, self.outcome.duplicates),
            "newest": {p: dict(t) for p, t in self.proc.newest.items() if t},
        }


def assert_same_sums(a: Processor, b: Processor) -> None:
    got, want = a.aggregates.everything(), b.aggregates.everything()
    for p in set(got) | set(want):
        keys = set(got.get(p, {})) | set(want.get(p, {}))
        for key in keys:
            x, y = got.get(p, {}).get(key), want.get(p, {}).get(key)
            x, y = x or [0.0] * len(y or []), y or [0.0] * len(x or [])
            assert all(math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9) for u, v in zip(x, y, strict=True)), (
                p,
                key,
                x,
                y,
            )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 100_000),
    batch=st.integers(1, 60),
    limit=st.integers(1, 8),
    switch=st.sampled_from(["none", "running", "stopped"]),
    meddle=st.booleans(),
    odd=st.sampled_from([0.0, 0.0, 0.02, 0.1]),
    grace_hours=st.sampled_from([36, 1000]),
)
def test_the_core_and_the_python_path_compute_the_same(
    core_module: ModuleType, seed: int, batch: int, limit: int, switch: str, meddle: bool, odd: float, grace_hours: int
) -> None:
    rng = random.Random(seed)
    batches = fetches(rng, rng.randint(1, 9), rng.randint(1, 30), batch, odd)
    python, fast = Run(None, limit, grace_hours), Run(core_module.Core(limit), limit, grace_hours)
    turn = len(batches) // 2
    for i, records in enumerate(batches):
        if i == turn and switch != "none":
            stopped = NOW + timedelta(hours=rng.uniform(-10, 60)) if switch == "stopped" else None
            for run in (python, fast):
                run.switch(registry("running", stopped))
        if i == turn and meddle and python.store:
            # Another worker wrote a participant's state meanwhile (here: one without its logs), not
            # the one either path kept parsed: both must read it from the store.
            for key in rng.sample(sorted(python.store), k=(len(python.store) + 1) // 2):
                partition = ParticipantState.from_bytes(python.store[key]).partition
                for run in (python, fast):
                    run.store[key] = ParticipantState(partition).to_bytes()
        python.fetch(records)
        fast.fetch(records)
    assert fast.view() == python.view()
    assert_same_sums(fast.proc, python.proc)
    assert python.taken == 0
    if odd == 0 and grace_hours == 1000:
        # Nothing late, from the future or invalid: the core took every participant's records but
        # those of the two fetches with an erasure request.
        assert fast.taken >= fast.groups - 2


def test_the_core_takes_most_participants_of_a_run(core_module: ModuleType) -> None:
    rng = random.Random(7)
    fast = Run(core_module.Core(100), 100)
    python = Run(None, 100)
    for records in fetches(rng, participants=30, per_participant=6, batch=40, odd=0.05):
        fast.fetch(records)
        python.fetch(records)
    assert fast.view() == python.view()
    # Participants with an odd record or a refused event go to the Python path, for the whole fetch.
    assert fast.taken > 30


def test_a_simulated_pilot_is_counted_by_the_core_alone_as_by_the_python_path(core_module: ModuleType) -> None:
    spec = parse_pilot_spec((native.ROOT / "examples" / "bike-share.yaml").read_text())
    reg = Registry.of(
        {spec.key: PilotRuntime(spec, {e.key: ExperimentRuntime(e, "running") for e in spec.experiments})}
    )
    events = sdk_events(11, participants=120)
    records = [
        worker_record(
            f"ns.{e['type']}",
            zlib.crc32(e["participant_id"].encode()) % PARTITIONS,
            i,
            e["participant_id"].encode(),
            orjson.dumps(e),
        )
        for i, e in enumerate(events)
    ]
    runs = []
    for core in (None, core_module.Core(1000)):
        run = Run(core, 1000)
        run.proc = Processor(reg, grace_ms=30 * 86_400_000, clock=lambda: CLOCK, core=core)
        for start in range(0, len(records), 500):
            run.fetch(records[start : start + 500])
        runs.append(run)
    python, fast = runs
    # Every participant of every fetch went through the core.
    assert fast.taken == sum(len(by_participant(records[s : s + 500])) for s in range(0, len(records), 500))
    assert fast.view() == python.view()
    assert_same_sums(fast.proc, python.proc)
    assert fast.outcome.dead_letters == [] and fast.outcome.applied == len(events)


def test_a_state_written_by_the_python_path_is_read_by_the_core_and_the_other_way_round(
    core_module: ModuleType,
) -> None:
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("consent", "lab", {"granted": True}),
        ("exposure", "lab", {"experiment": "exp", "variant": "b"}),
        ("usage", "lab", {"action": "buy", "value": 2.5, "properties": {"district": "n", "channel": "web"}}),
        ("feedback", "lab", {"kind": "rating", "score": 4.5}),
        ("feedback", "lab", {"kind": "nps", "score": 9}),
        ("feedback", "lab", {"kind": "comment", "text": 'Quite "good"\n', "experiment": "exp"}),
        ("usage", "kiosk", {"action": "open", "properties": {"district": "s"}}),
        ("feedback", "lab", {"kind": "vote", "target": "i1", "score": -1}),
        ("exposure", "lab", {"experiment": "later", "variant": "x"}),
        ("feedback", "lab", {"kind": "sus", "answers": [5, 1, 4, 2, 5, 1, 4, 2, 5, 1]}),
        ("usage", "lab", {"action": "visit", "properties": {"district": "e"}}),
        ("consent", "lab", {"granted": False}),
        ("usage", "lab", {"action": "buy", "value": 1.0}),
        ("feedback", "lab", {"kind": "idea", "text": "A map"}),
    ]
    rows = [
        worker_record(
            f"ns.{kind}",
            0,
            i,
            b"p1",
            orjson.dumps(new_event(kind, pilot, "p1", payload, occurred_at=NOW + timedelta(minutes=i))),
        )  # type: ignore[arg-type]
        for i, (kind, pilot, payload) in enumerate(steps)
    ]
    both, python = Run(None, 10), Run(None, 10)
    for i, record in enumerate(rows):
        # Alternately the core (a new one: nothing kept parsed) and the Python path: every state
        # either reads was written by the other.
        both.proc.core = core_module.Core(10) if i % 2 else None
        both.fetch([record])
        python.fetch([record])
    assert both.view() == python.view()
    assert_same_sums(both.proc, python.proc)
    assert both.taken == len(rows) // 2


@pytest.mark.parametrize("order", [1, -1])
def test_events_of_one_millisecond_are_ordered_as_the_python_path_orders_them(
    core_module: ModuleType, order: int
) -> None:
    # The same instant: which consent, segment value, variant, rating and vote count is decided by the
    # tie rules (a withdrawal wins; the least value; tuples' order), whatever order the events came in.
    at = NOW + timedelta(hours=1)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("consent", {"granted": True}),
        ("consent", {"granted": False}),
        ("consent", {"granted": True}),
        ("usage", {"action": "visit", "properties": {"district": "s", "channel": "web"}}),
        ("usage", {"action": "buy", "value": 2.0, "properties": {"district": "n"}}),
        ("usage", {"action": "buy", "value": 1.0, "properties": {"channel": "app"}}),
        ("exposure", {"experiment": "exp", "variant": "b"}),
        ("exposure", {"experiment": "exp", "variant": "a"}),
        ("feedback", {"kind": "rating", "score": 5}),
        ("feedback", {"kind": "rating", "score": 3}),
        ("feedback", {"kind": "vote", "target": "i1", "score": 1}),
        ("feedback", {"kind": "vote", "target": "i1", "score": -1}),
    ]
    later = [("consent", "lab", {"granted": True}), ("usage", "lab", {"action": "buy", "value": 4.0})]
    events = [new_event(k, "lab", "p1", p, occurred_at=at) for k, p in steps[::order]]  # type: ignore[arg-type]
    events += [new_event(k, pilot, "p1", p, occurred_at=at + timedelta(minutes=5)) for k, pilot, p in later]  # type: ignore[arg-type]
    records = [worker_record(f"ns.{e['type']}", 0, i, b"p1", orjson.dumps(e)) for i, e in enumerate(events)]
    python, fast = Run(None, 10), Run(core_module.Core(10), 10)
    for run in (python, fast):
        run.fetch(records[:-2])
        run.fetch(records[-2:])
    assert fast.view() == python.view()
    assert_same_sums(fast.proc, python.proc)
    assert fast.taken == fast.groups == 2


def test_a_payload_written_before_its_type_is_read_once_the_type_is_known(core_module: ModuleType) -> None:
    # The reader skips the payload (arrays, nested objects, nulls) and reads it once the type has come.
    answers = [5, 1, 4, 2, 5, 1, 4, 2, 5, 1]
    event = new_event("feedback", "lab", "p-1", {"kind": "sus", "answers": answers, "text": None}, event_id=EVENT_ID)
    payload = orjson.dumps(event.pop("payload"))
    data = b'{"payload":' + payload + b"," + orjson.dumps(event)[1:]
    assert data.index(b'"payload"') < data.index(b'"type"')
    assert assert_decoded_alike(core_module, data)
    usage = new_event("usage", "lab", "p-1", {"action": "a", "properties": {"district": "n"}}, event_id=EVENT_ID)
    body = orjson.dumps(usage.pop("payload"))
    assert assert_decoded_alike(core_module, b'{"payload":' + body + b"," + orjson.dumps(usage)[1:])
    # A payload that is not JSON is refused while skipped.
    assert not assert_decoded_alike(core_module, b'{"payload":[1,,2],' + orjson.dumps(usage)[1:])
