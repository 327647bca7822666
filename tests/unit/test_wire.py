"""The worker's decoder (msgspec structs) against the event contract (pydantic): the same verdict and
the same values on every record, whichever of the two decoded it."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams import wire
from streams.events import InvalidEvent, decode_event, new_event

EVENT_ID = "2d459902-424b-5425-b121-d639f0fa4c2e"
#: A value written into the JSON text as it is (a token orjson cannot write, or writes otherwise).
RAW = "\x00raw:"


def contract_verdict(data: bytes) -> wire.AnyEvent | str:
    """The contract's verdict: the event as a struct, or its reasons."""
    try:
        return wire.from_contract(decode_event(data))
    except InvalidEvent as exc:
        return str(exc)


def wire_verdict(data: bytes) -> wire.AnyEvent | str:
    try:
        return wire.decode(data)
    except InvalidEvent as exc:
        return str(exc)


def same(a: wire.AnyEvent | str, b: wire.AnyEvent | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    # Struct equality compares times as instants; the offsets they were sent with must agree too.
    return (
        a == b
        and a.occurred_at.utcoffset() == b.occurred_at.utcoffset()
        and (a.received_at is None) == (b.received_at is None)
        and (a.received_at is None or a.received_at.utcoffset() == b.received_at.utcoffset())  # type: ignore[union-attr]
    )


def encode(doc: Any) -> bytes:
    """JSON text of `doc`, where a string `RAW + token` is written as the token itself."""
    tokens: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, dict):
            return {swap(k): swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        if isinstance(v, str) and v.startswith(RAW):
            tokens.append(v.removeprefix(RAW))
            return f"\x01{len(tokens) - 1}\x01"
        if isinstance(v, int) and not -(2**63) <= v < 2**64:  # beyond orjson's integers
            return swap(RAW + str(v))
        return v

    text = orjson.dumps(swap(doc)).decode()
    for i, token in enumerate(tokens):
        text = text.replace(f'"\\u0001{i}\\u0001"', token)
    return text.encode()


# --- generated records: valid events, then fields swapped for values near the contract's edges ----

names = st.sampled_from(
    ["ride", "app_open", "Bike.v2:a-b", "a", "x" * 64, "x" * 65, "", " ride", "ride\n", "ride\r", "é", "-a", "a b"]
)
pilot_keys = st.sampled_from(["lab", "bike-share", "b2", "Lab", "lab\n", "-lab", "", "lab_1", "x" * 64, "x" * 65])
times = st.builds(
    lambda date, sep, clock, fraction, zone: f"{date}{sep}{clock}{fraction}{zone}",
    st.sampled_from(["2026-11-17", "2026-02-29", "2024-02-29", "0001-01-01", "9999-12-31", "2026-1-17", "20261117"]),
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from(["02:15:45", "23:59:59", "23:59:60", "24:00:00", "02:15", "2:15:45", "021545"]),
    st.sampled_from(["", ".", ".0", ".028", ".028499", ".0284999", ".9999995", ".9999999", ".123456789", ",5"]),
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+01:00", "+0100", "+01", "-23:59", "+24:00", "+1:00", "UTC"]),
)


def escaped(text: str, which: str) -> str:
    """The time as a JSON string token whose characters in `which` are written as \\u escapes (as a
    producer other than the ingest API may write them): the same string once decoded."""
    return RAW + '"' + "".join(f"\\u{ord(c):04x}" if c in which else c for c in text) + '"'


#: Times as JSON writes them, or with their dot or digits escaped.
time_tokens = st.one_of(
    times,
    st.builds(escaped, times, st.sampled_from([".", "7", ".0123456789"])),
)
numbers = st.one_of(
    st.sampled_from([0, 1, -1, 3, 5, 10, 11, 0.5, 4.5, 2**63, 2**64, 10**30, True, False, None, "4", "true", "nan"]),
    st.sampled_from([RAW + t for t in ["1e999", "-1e999", "-0", "1E2", "3.0", "1.0e0", "0.1e1", "Infinity", "NaN"]]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
)
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "x" * 128, "x" * 129, "x" * 4000, "x" * 4001, "\u0000", RAW + '"\\ud800"']),
    st.sampled_from([RAW + '"\\u0041\\u00e9"', RAW + '"a\\nb"', 1, None, True, ["a"], {"a": "b"}]),
)
event_ids = st.sampled_from(
    [
        EVENT_ID,
        EVENT_ID.upper(),
        EVENT_ID.replace("-", ""),
        "{" + EVENT_ID + "}",
        "urn:uuid:" + EVENT_ID,
        EVENT_ID[:-1],
        EVENT_ID + "0",
        " " + EVENT_ID,
        "00000000-0000-0000-0000-000000000000",
        str(uuid.UUID(int=2**128 - 1)),
        123,
    ]
)
answers = st.one_of(
    st.lists(st.integers(0, 6), min_size=9, max_size=11),
    st.just([3] * 10),
    st.just([RAW + "3.0"] * 10),
    st.just(["3"] * 10),
    st.just([True] * 10),
)
properties = st.one_of(
    st.dictionaries(names, texts, max_size=3),
    st.just({f"k{i}": "v" for i in range(16)}),
    st.just({f"k{i}": "v" for i in range(17)}),
)


def payloads(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    base = {
        "exposure": {"experiment": "exp", "variant": "a"},
        "usage": {"action": "ride", "value": 2.5, "session_id": "s-1", "properties": {"district": "north"}},
        "consent": {"granted": True, "scope": "usage"},
    }
    if kind == "feedback":
        by_kind = st.sampled_from(
            [
                {"kind": "rating", "score": 4},
                {"kind": "nps", "score": 9},
                {"kind": "sus", "answers": [3, 4, 2, 5, 1, 3, 4, 2, 5, 1]},
                {"kind": "comment", "text": "Too slow"},
                {"kind": "idea", "text": "Add a map", "experiment": "exp"},
                {"kind": "vote", "target": EVENT_ID, "score": -1},
            ]
        )
        fields = {
            "kind": st.sampled_from(["rating", "nps", "sus", "comment", "idea", "vote", "Rating", ""]),
            "score": numbers,
            "answers": answers,
            "text": texts,
            "target": texts,
            "experiment": st.one_of(names, st.none()),
        }
        return by_kind.flatmap(lambda doc: mutated(doc, fields))
    fields = {
        "experiment": names,
        "variant": names,
        "action": names,
        "value": numbers,
        "session_id": texts,
        "properties": properties,
        "granted": st.one_of(st.booleans(), numbers),
        "scope": texts,
    }
    return mutated(base[kind], {k: v for k, v in fields.items() if k in base[kind]})


def mutated(doc: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """The document with up to two of its fields given other values, maybe one dropped or one added."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = dict(doc)
        for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
            out[name] = draw(fields[name])
        change = draw(st.sampled_from(["none", "none", "none", "drop", "add"]))
        if change == "drop" and out:
            out.pop(draw(st.sampled_from(sorted(out))))
        elif change == "add":
            out[draw(st.sampled_from(["extra", "type", "Action"]))] = draw(texts)
        return out

    return build()


@st.composite
def records(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["exposure", "usage", "feedback", "consent"]))
    event = new_event(kind, "lab", "p-1", {}, event_id=EVENT_ID, source="app")  # type: ignore[arg-type]
    event["occurred_at"] = "2026-11-17T02:15:45.028Z"
    event["payload"] = draw(payloads(kind))
    envelope = {
        "event_id": event_ids,
        "type": st.sampled_from(["exposure", "usage", "feedback", "consent", "Usage", "click", 1]),
        "pilot_id": pilot_keys,
        "participant_id": st.one_of(texts, st.just("p" * 128), st.just("p" * 129)),
        "occurred_at": st.one_of(time_tokens, numbers),
        "received_at": st.one_of(time_tokens, st.none()),
        "source": texts,
        "schema_version": st.sampled_from([1, 2, RAW + "1.0", "1", True, None]),
    }
    return encode(draw(mutated(event, envelope)))


def timed(field: str, text: str) -> bytes:
    return encode({**new_event("usage", "lab", "p-1", {"action": "ride"}), field: text})


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
@example(encode(new_event("usage", "lab\n", "p-1", {"action": "ride"}, event_id=EVENT_ID)))
@example(encode(new_event("usage", "lab", "p-1", {"action": "ride\n"}, event_id=EVENT_ID)))
@example(encode(new_event("usage", "lab", "p-1", {"action": "ride", "properties": {"district\n": "n"}})))
@example(encode(new_event("exposure", "lab", "p-1", {"experiment": "exp", "variant": "a\n"})))
@example(encode(new_event("feedback", "lab", "p-1", {"kind": "idea", "text": "x", "experiment": "e\n"})))
@example(timed("occurred_at", "2026-11-17T02:15:45.9999999Z"))
@example(timed("occurred_at", escaped("2026-11-17T02:15:45.1234567Z", ".")))
@example(timed("received_at", escaped("2026-11-17T02:15:46.9999999Z", "9")))
@example(timed("occurred_at", "2026-11-17T02:15:45"))
@example(timed("received_at", "2026-11-17T02:15:46"))
@example(encode(new_event("usage", "lab", "p-1", {"action": "ride", "value": RAW + "1e999"})))
@example(encode(new_event("feedback", "lab", "p-1", {"kind": "rating", "score": "4"})))
@example(encode(new_event("feedback", "lab", "p-1", {"kind": "sus", "answers": [3] * 9})))
def test_the_decoder_gives_the_contracts_verdict_on_every_record(data: bytes) -> None:
    assert same(wire_verdict(data), contract_verdict(data)), data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b"null",
        b'{"type": "usage"}',
        b"\xef\xbb\xbf" + orjson.dumps(new_event("consent", "lab", "p-1", {"granted": True})),
        orjson.dumps(new_event("consent", "lab", "p-1", {"granted": True})) + b" x",
        orjson.dumps(new_event("consent", "lab", "p-1", {"granted": True}))[:-1] + b',"pilot_id":"Lab"}',
        orjson.dumps(new_event("consent", "lab", "p-1", {"granted": True}))[:-1] + b',"pilot_id":"lab2"}',
        b"\xff" + orjson.dumps(new_event("consent", "lab", "p-1", {"granted": True})),
    ],
)
def test_the_decoder_gives_the_contracts_verdict_on_malformed_records(data: bytes) -> None:
    assert same(wire_verdict(data), contract_verdict(data)), data


def test_canonical_events_never_reach_the_contracts_slower_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed of the worker's decoding rests on this: events as the SDK, the simulator and the ingest
    send them are taken by the structs."""

    def refuse(data: bytes) -> None:
        raise AssertionError(f"decoded by the contract: {data!r}")

    monkeypatch.setattr(wire, "decode_event", refuse)
    sent = [
        new_event("exposure", "bike-share", "p-1", {"experiment": "onboarding-v2", "variant": "guided"}),
        new_event("usage", "bike-share", "p-1", {"action": "ride", "value": 3, "properties": {"district": "west"}}),
        new_event("usage", "bike-share", "p-1", {"action": "app_open", "value": None, "session_id": "s-1"}),
        new_event("consent", "bike-share", "p-1", {"granted": False}),
        new_event("feedback", "bike-share", "p-1", {"kind": "sus", "answers": [5, 1] * 5}),
        new_event("feedback", "bike-share", "p-1", {"kind": "nps", "score": 10, "experiment": "onboarding-v2"}),
        new_event("feedback", "bike-share", "p-1", {"kind": "vote", "target": EVENT_ID}),
        {**new_event("feedback", "bike-share", "p-1", {"kind": "idea", "text": "Maps"}), "received_at": None},
        {**new_event("consent", "bike-share", "p-1", {"granted": True}), "received_at": "2026-11-17T02:15:46.1Z"},
    ]
    for event in sent:
        decoded = wire.decode(orjson.dumps(event))
        assert decoded.type == event["type"]
        assert str(decoded.event_id) == event["event_id"]


def test_names_checked_once_each_are_forgotten_past_the_limit() -> None:
    names = wire._Names(r"^[a-z]+$", limit=3)
    assert names.learn("a", "b") and names.learn("c") and names.known == {"a", "b", "c"}
    assert names.learn("d") and names.known == {"d"}
    assert not names.learn("e", "a\n") and not names.learn("A") and not names.learn("")
    assert names.known == {"d"}


def test_every_name_of_an_event_is_checked_even_beside_names_already_known() -> None:
    known = new_event("usage", "lab", "p-1", {"action": "ride", "properties": {"district": "north"}})
    assert isinstance(wire.decode(orjson.dumps(known)), wire.Usage)
    for payload in (
        {"action": "ride", "properties": {"district": "north", "channel\n": "ios"}},
        {"action": "ride", "properties": {"district\n": "north"}},
    ):
        data = orjson.dumps(new_event("usage", "lab", "p-1", payload))
        with pytest.raises(InvalidEvent, match="String should match pattern"):
            wire.decode(data)
        assert same(wire_verdict(data), contract_verdict(data))
