"""The event contract (streams/events.py), defined once: its two doors (a JSON text, as the worker and
the ingest API read it; plain Python values, as the SDK makes them) give the same verdict; what it
accepts is within its bounds and described by the JSON Schema the ingest API publishes; what it
refuses is named by the field, the reason and the value received."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams.events import (
    FREE_TEXT,
    MAX_BATCH,
    NAME,
    NUMBER_MAX,
    ONE_LINE,
    AnyEvent,
    Consent,
    EventError,
    Exposure,
    Feedback,
    InvalidEvent,
    NotJson,
    Usage,
    decode_batch,
    decode_event,
    encode_event,
    envelope_refusal,
    event_schema,
    new_event,
    parse_event,
    time_refusal,
)

EVENT_ID = "2d459902-424b-5425-b121-d639f0fa4c2e"
#: A value written into the JSON text as it is (a token orjson cannot write, or writes otherwise).
RAW = "\x00raw:"


def verdict(read: Any, doc: Any) -> AnyEvent | list[tuple[str, str]]:
    """The contract's verdict through one door: the event, or its errors as (field, message)."""
    try:
        event: AnyEvent = read(doc)
    except InvalidEvent as exc:
        return [(e.field, e.message) for e in exc.errors]
    return event


def same(a: AnyEvent | list[tuple[str, str]], b: AnyEvent | list[tuple[str, str]]) -> bool:
    """Whether two verdicts agree: both refuse (an event with several faults may be refused for a
    different one: msgspec checks a list's length before its items from Python values, after them from
    a JSON text), or both give the same event."""
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list)
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


def has_raw(doc: Any) -> bool:
    """Whether `doc` holds a value only a JSON text can hold (a RAW token, an integer orjson cannot write)."""
    if isinstance(doc, dict):
        return any(has_raw(k) or has_raw(v) for k, v in doc.items())
    if isinstance(doc, list):
        return any(map(has_raw, doc))
    if isinstance(doc, str):
        return doc.startswith(RAW)
    return isinstance(doc, int) and not isinstance(doc, bool) and not -(2**63) <= doc < 2**64


# --- generated events: valid ones, then fields swapped for values near the contract's edges -------

#: Control characters and their neighbours, spliced into texts.
awkward = st.sampled_from(
    ["\x00", "\x01", "\t", "\n", "\r", "\x1f", " ", "\x7f", "\x85", "\x9f", "\xa0", "\u2028", "é"]
)
names = st.one_of(
    st.sampled_from(["ride", "app_open", "Bike.v2:a-b", "a", "x" * 64, "x" * 65, "", " ride", "ride\n", "é", "-a"]),
    st.builds(lambda c: f"ri{c}de", awkward),
)
pilot_keys = st.sampled_from(["lab", "bike-share", "b2", "Lab", "lab\n", "-lab", "", "lab_1", "x" * 64, "x" * 65])
times = st.builds(
    lambda date, sep, clock, fraction, zone: f"{date}{sep}{clock}{fraction}{zone}",
    st.sampled_from(["2026-11-17", "2026-02-29", "2024-02-29", "0001-01-01", "0004-01-01", "9999-12-31", "20261117"]),
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from(["02:15:45", "23:59:59", "23:59:60", "24:00:00", "02:15", "021545"]),
    st.sampled_from(["", ".", ".0", ".028", ".028499", ".0284999", ".9999995", ".123456789", ",5"]),
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+01:00", "+0100", "+01", "-23:59", "+24:00", "UTC"]),
)
numbers = st.one_of(
    st.sampled_from([0, 1, -1, 3, 5, 10, 11, 0.5, 4.5, 1e9, -1e9, 1e9 + 1, 1e200, 2**63, 2**64, 10**30, True, None]),
    st.sampled_from(["4", "true", "nan", RAW + "1e999", RAW + "-0", RAW + "1E2", RAW + "NaN", RAW + "1e400"]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
)
texts = st.one_of(
    st.text(max_size=12),
    st.builds(lambda c: f"a{c}b", awkward),
    st.sampled_from(["", " ", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 200, "x" * 201, "x" * 4000, "x" * 4001]),
    st.sampled_from([RAW + '"\\ud800"', RAW + '"\\u0000"', RAW + '"a\\nb"', 1, None, True, ["a"], {"a": "b"}]),
)
event_ids = st.sampled_from(
    [EVENT_ID, EVENT_ID.upper(), EVENT_ID.replace("-", ""), "urn:uuid:" + EVENT_ID, EVENT_ID[:-1], " " + EVENT_ID, 123]
)
answers = st.one_of(
    st.lists(st.integers(0, 6), min_size=9, max_size=11),
    st.just([3] * 10),
    st.just([RAW + "3.0"] * 10),
    st.just(["3"] * 10),
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
                {"kind": "comment", "text": "Too slow\nreally", "target": EVENT_ID},
                {"kind": "idea", "text": "Add a map", "experiment": "exp", "title": "Map", "theme": "mobility"},
                {"kind": "vote", "target": EVENT_ID, "score": -1},
            ]
        )
        fields = {
            "kind": st.sampled_from(["rating", "nps", "sus", "comment", "idea", "vote", "Rating", ""]),
            "score": numbers,
            "answers": answers,
            "text": texts,
            "target": st.one_of(event_ids, texts),
            "experiment": st.one_of(names, st.none()),
            "title": texts,
            "theme": names,
            "district": names,
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
def documents(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["exposure", "usage", "feedback", "consent"]))
    event = new_event(kind, "lab", "p-1", {}, event_id=EVENT_ID, source="app")  # type: ignore[arg-type]
    event["occurred_at"] = "2026-11-17T02:15:45.028Z"
    event["payload"] = draw(payloads(kind))
    envelope = {
        "event_id": event_ids,
        "type": st.sampled_from(["exposure", "usage", "feedback", "consent", "Usage", "click", 1]),
        "pilot_id": pilot_keys,
        "participant_id": st.one_of(texts, st.just("p" * 128), st.just("p" * 129)),
        "occurred_at": st.one_of(times, numbers),
        "received_at": st.one_of(times, st.none()),
        "source": texts,
        "schema_version": st.sampled_from([1, 2, RAW + "1.0", "1", True, None]),
    }
    return draw(mutated(event, envelope))


BODY_SCHEMA, COMPONENTS = event_schema("#/$defs/{name}")
#: The schema of one event, as the ingest API's OpenAPI document publishes it.
ONE_EVENT = jsonschema.Draft202012Validator({**BODY_SCHEMA["oneOf"][0], "$defs": COMPONENTS})


def within_bounds(event: AnyEvent) -> None:
    """Asserts what every accepted event holds: texts without control characters (but tab and line
    breaks in a free text), names as the pattern says, finite numbers within the bound."""
    texts = [event.participant_id, event.source, event.pilot_id]
    names: list[str] = []
    numbers: list[float] = []
    free: list[str] = []
    match event:
        case Exposure(payload=p):
            names += [p.experiment, p.variant]
        case Usage(payload=p):
            names += [p.action, *p.properties]
            texts += [*p.properties.values(), *([p.session_id] if p.session_id is not None else [])]
            numbers += [p.value] if p.value is not None else []
        case Feedback(payload=p):
            names += [n for n in (p.experiment, p.theme, p.district) if n is not None]
            texts += [p.title] if p.title is not None else []
            free += [p.text] if p.text is not None else []
            numbers += [p.score] if p.score is not None else []
            assert p.answers is None or (p.kind == "sus" and len(p.answers) == 10 and set(p.answers) <= {1, 2, 3, 4, 5})
            assert p.target is None or p.kind in ("vote", "comment")
            assert p.kind == "idea" or (p.title, p.theme, p.district) == (None, None, None)
        case Consent(payload=p):
            texts.append(p.scope)
    assert all(re.fullmatch(r"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*", t) for t in texts), texts
    assert all(re.fullmatch(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]*", t) for t in free), free
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}", n) for n in names), names
    assert all(math.isfinite(x) and abs(x) <= NUMBER_MAX for x in numbers), numbers


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
@example(new_event("usage", "lab\n", "p-1", {"action": "ride"}, event_id=EVENT_ID))
@example(new_event("usage", "lab", "p-1", {"action": "ride", "properties": {"district\n": "n"}}, event_id=EVENT_ID))
@example(new_event("feedback", "lab", "p-1", {"kind": "comment", "text": "a\x00b"}, event_id=EVENT_ID))
@example(new_event("feedback", "lab", "p-1", {"kind": "idea", "text": "x", "experiment": "e\n"}, event_id=EVENT_ID))
@example({**new_event("usage", "lab", "p-1", {"action": "ride"}, event_id=EVENT_ID), "occurred_at": 1700000000})
@example(
    {**new_event("usage", "lab", "p-1", {"action": "ride"}, event_id=EVENT_ID), "occurred_at": "0004-01-01T00:00Z"}
)
@example(new_event("usage", "lab", "p-1", {"action": "ride", "value": RAW + "1e999"}, event_id=EVENT_ID))
@example(new_event("feedback", "lab", "p-1", {"kind": "sus", "answers": [3] * 11}, event_id=EVENT_ID))
def test_both_doors_give_one_verdict_and_what_they_take_is_bounded_and_in_the_schema(doc: dict[str, Any]) -> None:
    data = encode(doc)
    read = verdict(decode_event, data)
    if not has_raw(doc):
        assert same(read, verdict(parse_event, doc)), doc
    if isinstance(read, list):
        [(field, message)] = read
        assert field and message, read
        return
    within_bounds(read)
    ONE_EVENT.validate(orjson.loads(data))
    # What the ingest API publishes and the SDK sends is read back as the same event.
    assert same(decode_event(encode_event(read)), read)


# --- each bound, refused with the field, the reason and the value -------------------------------


def usage(**payload: Any) -> dict[str, Any]:
    return new_event("usage", "lab", "p-1", {"action": "ride", **payload}, event_id=EVENT_ID)


def feedback(**payload: Any) -> dict[str, Any]:
    return new_event("feedback", "lab", "p-1", payload, event_id=EVENT_ID)


def refusal(doc: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(InvalidEvent) as refused:
        decode_event(encode(doc))
    [error] = refused.value.errors
    return error.field, error.message


#: Where each text of an event is, with an event that holds it.
TEXT_FIELDS = [
    ("participant_id", lambda v: {**usage(), "participant_id": v}),
    ("source", lambda v: {**usage(), "source": v}),
    ("payload.session_id", lambda v: usage(session_id=v)),
    ("payload.properties.district", lambda v: usage(properties={"district": v})),
    ("payload.scope", lambda v: new_event("consent", "lab", "p-1", {"granted": True, "scope": v})),
    ("payload.title", lambda v: feedback(kind="idea", text="Maps", title=v)),
]
NAME_FIELDS = [
    ("pilot_id", lambda v: {**usage(), "pilot_id": v}),
    ("payload.action", lambda v: usage(action=v)),
    ("payload.properties." + "district\x00", lambda v: usage(properties={v: "north"})),
    ("payload.experiment", lambda v: new_event("exposure", "lab", "p-1", {"experiment": v, "variant": "a"})),
    ("payload.variant", lambda v: new_event("exposure", "lab", "p-1", {"experiment": "e", "variant": v})),
    ("payload.theme", lambda v: feedback(kind="idea", text="Maps", theme=v)),
    ("payload.district", lambda v: feedback(kind="idea", text="Maps", district=v)),
]
CONTROLS = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9f"]


@pytest.mark.parametrize("control", [*CONTROLS, "\t", "\n", "\r"], ids=repr)
@pytest.mark.parametrize(("field", "make"), TEXT_FIELDS, ids=[f for f, _ in TEXT_FIELDS])
def test_a_control_character_in_any_text_is_refused_naming_the_field_and_the_value(
    field: str, make: Any, control: str
) -> None:
    assert refusal(make(f"a{control}b")) == (
        field,
        f"must be one line of text, without control characters (NUL, tab, line breaks...) (got {f'a{control}b'!r})",
    )


@pytest.mark.parametrize("control", [*CONTROLS, "\n", "\t", " ", "é"], ids=repr)
@pytest.mark.parametrize(("field", "make"), NAME_FIELDS, ids=[f for f, _ in NAME_FIELDS])
def test_a_name_holds_only_the_names_characters(field: str, make: Any, control: str) -> None:
    value = "district" + control if "properties" in field else "ride" + control
    got_field, message = refusal(make(value))
    assert got_field == (field.replace("\x00", control))
    assert message.startswith("must be ") and message.endswith(f"(got {value!r})"), message


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
def test_a_free_text_keeps_tab_and_line_breaks_and_refuses_other_control_characters(control: str) -> None:
    text = "First line\r\n\tsecond line\n"
    assert decode_event(orjson.dumps(feedback(kind="comment", text=text))).payload.text == text  # type: ignore[union-attr]
    assert refusal(feedback(kind="comment", text=f"a{control}b")) == (
        "payload.text",
        f"must be a text without control characters other than tab and line breaks (NUL...) (got {f'a{control}b'!r})",
    )


def test_a_lone_surrogate_is_refused_through_either_door() -> None:
    # JSON can write one (\ud800); no database can store it.
    data = orjson.dumps(feedback(kind="comment", text="x")).replace(b'"text":"x"', b'"text":"a\\ud800"')
    with pytest.raises(NotJson):
        decode_event(data)
    with pytest.raises(InvalidEvent, match=r"payload\.text: must be a text without control characters"):
        parse_event(feedback(kind="comment", text="a\ud800"))


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        (feedback(kind="vote", target="x" * 41), "payload.target", "must be a UUID (an event_id) (got 'xxxx"),
        (feedback(kind="vote"), "payload.target", "must be the event_id of the idea voted on"),
        (feedback(kind="vote", target=EVENT_ID, score=2), "payload.score", "must be 1 or -1 for a vote (got 2)"),
        (feedback(kind="comment", text="t", target="idea-7"), "payload.target", "must be a UUID (an event_id)"),
        (feedback(kind="rating", score=4, target=EVENT_ID), "payload.target", "must be left out for rating"),
        (feedback(kind="idea", text="t", target=EVENT_ID), "payload.target", "must be left out for idea"),
        (feedback(kind="sus", answers=[3] * 11), "payload.answers", "must have at most 10 items (got [3, 3"),
        (feedback(kind="sus", answers=[3] * 9), "payload.answers", "must be ten integers from 1 to 5 for sus"),
        (feedback(kind="sus", answers=[3] * 9 + [6]), "payload.answers.9", "must be at most 5 (got 6)"),
        (feedback(kind="sus", answers=[3] * 9 + [3.5]), "payload.answers.9", "must be an integer (got 3.5)"),
        (feedback(kind="rating", score=4, answers=[3]), "payload.answers", "must be left out for rating"),
        (feedback(kind="nps", score=11), "payload.score", "must be an integer from 0 to 10 for nps (got 11)"),
        (feedback(kind="comment", text="t", score=1e200), "payload.score", "must be at most 1000000000 (got 1e+200)"),
        (usage(value=1e9 + 1), "payload.value", "must be at most 1000000000 (got 1000000001.0)"),
        (usage(value=-1e200), "payload.value", "must be at least -1000000000 (got -1e+200)"),
        (usage(value=10**30), "payload.value", "must be at most 1000000000 (got 10000000000"),
        (usage(value="12"), "payload.value", "must be a number or null (got '12')"),
        (usage(value=True), "payload.value", "must be a number or null (got True)"),
        (usage(properties={f"k{i}": "v" for i in range(17)}), "payload.properties", "must have at most 16 entries"),
        (usage(properties={"district": "n" * 65}), "payload.properties.district", "must have at most 64 characters"),
        (feedback(kind="idea", text="t", title="T" * 201), "payload.title", "must have at most 200 characters"),
        (feedback(kind="idea", text="t", title=" "), "payload.title", "must be a non-empty text when given (got ' ')"),
        (feedback(kind="comment", text="t", title="T"), "payload.title", "must be left out for comment"),
        (feedback(kind="vote", target=EVENT_ID, theme="x"), "payload.theme", "must be left out for vote"),
        (feedback(kind="rating", score=3, district="north"), "payload.district", "must be left out for rating"),
        (feedback(kind="comment", text="x" * 4001), "payload.text", "must have at most 4000 characters"),
        ({**usage(), "occurred_at": 1_700_000_000}, "occurred_at", "must be an RFC 3339 time with an offset"),
        ({**usage(), "occurred_at": 17e8}, "occurred_at", "must be an RFC 3339 time with an offset"),
        ({**usage(), "occurred_at": True}, "occurred_at", "must be an RFC 3339 time with an offset"),
        ({**usage(), "occurred_at": ["2026"]}, "occurred_at", "must be an RFC 3339 time with an offset"),
        ({**usage(), "occurred_at": "2026-11-20"}, "occurred_at", "must be an RFC 3339 time with an offset"),
        ({**usage(), "occurred_at": "2026-11-20T09:15:02"}, "occurred_at", "must carry a time zone (UTC"),
        ({**usage(), "received_at": 5}, "received_at", "must be an RFC 3339 time with an offset (e.g. 2026"),
        ({**usage(), "type": "click"}, "type", "must be one of exposure, usage, feedback, consent (got 'click')"),
        ({**usage(), "colour": "red"}, "colour", "unknown field, not part of the event contract"),
        ({**usage(), "schema_version": 2}, "schema_version", "must be 1 (got 2)"),
        ({**usage(), "event_id": "5"}, "event_id", "must be a UUID (an event_id) (got '5')"),
        ({**usage(), "participant_id": ""}, "participant_id", "must have at least 1 characters (got '')"),
        ({k: v for k, v in usage().items() if k != "pilot_id"}, "pilot_id", "is required"),
    ],
)
def test_each_bound_is_refused_naming_the_field_the_reason_and_the_value(
    doc: dict[str, Any], field: str, message: str
) -> None:
    got_field, got = refusal(doc)
    assert (got_field, got[: len(message)]) == (field, message)


@pytest.mark.parametrize(
    "doc",
    [
        feedback(kind="vote", target=EVENT_ID.upper(), score=1),
        feedback(kind="comment", text="Yes!", target=EVENT_ID),
        feedback(kind="comment", text="No target"),
        feedback(kind="idea", text="Benches", title="Benches by the river", theme="public-space", district="north"),
        feedback(kind="sus", answers=[1, 2, 3, 4, 5, 5, 4, 3, 2, 1]),
        usage(value=NUMBER_MAX, properties={"district": "n" * 64}),
        usage(value=-NUMBER_MAX),
        {**usage(), "occurred_at": "2026-11-20T09:15:02.5+05:30"},
    ],
)
def test_values_at_the_bounds_are_taken(doc: dict[str, Any]) -> None:
    event = decode_event(orjson.dumps(doc))
    within_bounds(event)
    if isinstance(event, Feedback) and event.payload.target is not None:
        assert str(event.payload.target) == EVENT_ID  # one spelling of an idea's id


def test_a_record_that_is_not_json_is_said_to_be_so() -> None:
    for data in (b"", b"not json", b"\xef\xbb\xbf{}", b'{"type":"usage","score":NaN}', b"{} x"):
        with pytest.raises(NotJson, match=r"^\(event\): is not valid JSON"):
            decode_event(data)
    with pytest.raises(InvalidEvent, match=r"^\(event\): must be an object \(got \[1\]\)$"):
        decode_event(b"[1]")


# --- the times of an event, bounded around the time it was received ----------------------------


NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
YEAR = timedelta(days=400)


@pytest.mark.parametrize(
    ("occurred", "received", "refused"),
    [
        (NOW, None, None),
        (NOW - YEAR, None, None),
        (NOW - YEAR - timedelta(microseconds=1), None, ("occurred_at", "must be at most 400 days before the time it")),
        (NOW + timedelta(minutes=10), None, None),
        (NOW + timedelta(minutes=10, microseconds=1), None, ("occurred_at", "must be at most 10 minutes after")),
        (datetime(4, 1, 1, tzinfo=UTC), None, ("occurred_at", "must be at most 400 days before the time it")),
        (
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            None,
            ("occurred_at", "must be at most 400 days before"),
        ),
        (
            datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),
            None,
            ("occurred_at", "must be at most 10 m"),
        ),
        # Against the time it was received, which is itself bounded by now.
        (NOW - 2 * YEAR + timedelta(days=1), NOW - YEAR, None),
        (NOW - YEAR, NOW - YEAR - timedelta(days=1), ("received_at", "must be at most 400 days before now")),
        (NOW - timedelta(hours=1), NOW - timedelta(hours=2), ("occurred_at", "must be at most 10 minutes after")),
        (datetime(4, 1, 1, tzinfo=UTC), datetime(4, 1, 1, tzinfo=UTC), ("received_at", "must be at most 400 days")),
    ],
)
def test_event_times_are_bounded_around_the_time_the_event_was_received(
    occurred: datetime, received: datetime | None, refused: tuple[str, str] | None
) -> None:
    doc = {**usage(), "occurred_at": occurred.isoformat()}
    if received is not None:
        doc["received_at"] = received.isoformat()
    why = time_refusal(parse_event(doc), NOW, YEAR)
    if refused is None:
        assert why is None
    else:
        assert why is not None and (why[0], why[1][: len(refused[1])]) == refused
        assert why[1].endswith(f"(got {occurred.isoformat() if why[0] == 'occurred_at' else received.isoformat()!r})")  # type: ignore[union-attr]


# --- request bodies, the schema, the envelope's fields apart -------------------------------------


def test_a_request_body_is_one_event_or_an_array_of_one_to_max_batch() -> None:
    one = orjson.dumps(usage())
    assert [type(e) for e in decode_batch(one)[0]] == [Usage]
    assert len(decode_batch(b" [" + b",".join([one] * MAX_BATCH) + b"] ")[0]) == MAX_BATCH
    assert decode_batch(b"[]") == ([], [EventError(0, "(body)", "must hold at least one event")])
    too_many = decode_batch(b"[" + b",".join([one] * (MAX_BATCH + 1)) + b"]")
    assert too_many == ([], [EventError(0, "(body)", f"holds {MAX_BATCH + 1} events, must hold at most {MAX_BATCH}")])
    events, errors = decode_batch(orjson.dumps([usage(), usage(value="x"), feedback(kind="nps", score=11), usage()]))
    assert len(events) == 2
    assert [(e.index, e.field) for e in errors] == [(1, "payload.value"), (2, "payload.score")]
    for body in (b"[1,", b"", b"nope"):
        with pytest.raises(NotJson, match=r"^\(body\): is not valid JSON"):
            decode_batch(body)


def test_the_published_schema_is_the_structs_with_their_bounds() -> None:
    usage_schema = COMPONENTS["Usage"]["properties"]
    assert usage_schema["participant_id"]["pattern"] == ONE_LINE
    assert COMPONENTS["UsagePayload"]["properties"]["action"]["pattern"] == NAME
    assert COMPONENTS["FeedbackPayload"]["properties"]["text"]["anyOf"][0]["pattern"] == FREE_TEXT
    assert COMPONENTS["UsagePayload"]["properties"]["value"]["anyOf"][0] == {
        "type": "number",
        "minimum": -NUMBER_MAX,
        "maximum": NUMBER_MAX,
    }
    assert BODY_SCHEMA["oneOf"][1]["maxItems"] == MAX_BATCH
    # A trailing newline, which Python's `$` lets through, is refused by the schema's regex too.
    with pytest.raises(jsonschema.ValidationError):
        ONE_EVENT.validate(usage() | {"participant_id": "p-1\n"})


@pytest.mark.parametrize(
    ("field", "value", "refused"),
    [
        ("participant_id", "p-1", None),
        ("participant_id", "p\x00", "must be one line of text"),
        ("participant_id", "p" * 129, "must have at most 128 characters"),
        ("source", "app@1.4.0", None),
        ("source", "app\n", "must be one line of text"),
        ("pilot_id", "Lab", "must be a pilot key"),
    ],
)
def test_a_field_of_the_envelope_is_checked_by_the_same_rule_apart_from_an_event(
    field: str, value: str, refused: str | None
) -> None:
    why = envelope_refusal(field, value)
    assert (why is None) if refused is None else (why is not None and why.startswith(refused))
    if refused is not None:
        assert refusal({**usage(), field: value})[1] == why


def test_an_event_id_is_a_uuid_in_any_of_its_spellings_but_one_value() -> None:
    ids = {decode_event(orjson.dumps({**usage(), "event_id": s})).event_id for s in (EVENT_ID, EVENT_ID.upper())}
    assert ids == {uuid.UUID(EVENT_ID)}
