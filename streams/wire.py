"""The events as the worker decodes them: the event contract (`streams.events`) as msgspec structs.

The pydantic models of `streams.events` stay the one definition of what is valid. These structs mirror
them with a narrower door: canonical JSON types only (no "4" for the number 4, no number for a time),
and every name checked against the contract's own patterns. Whatever they refuse is decoded by the
contract itself, which accepts it (converted to these structs) or refuses it with its reasons naming
the field. So `decode` gives the contract's verdict on every record, and takes 3.5 to 4.7 µs an event
rather than 6.0 to 7.4 for events in canonical form, as the SDK and the simulator write them (measured
on the benchmark's events). tests/unit/test_wire.py checks, on generated records, that both doors agree.

Kept equal to the contract by hand, and by those tests:

- the fields, their types and limits (shared constants), and the feedback rules (`check_feedback`);
- names: msgspec would check a pattern with Python's `re.search`, where `$` also matches before a
  final newline (pydantic's regex does not), and at 0.7 µs a name; they are checked here with
  `fullmatch`, each distinct name once, then looked up (`_Names`);
- times: msgspec rounds a fraction beyond microseconds where pydantic cuts it, so a record holding a
  run of seven digits after a dot goes to the contract; so does a record holding a `\\u` escape, which
  may write that dot or those digits (the ingest API never writes one for them: it sends each event
  as orjson writes it, but a producer writing to Kafka directly may).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct

from experiments.registry import NAME_MAX_LENGTH, NAME_PATTERN, PILOT_KEY_PATTERN
from streams.events import (
    PARTICIPANT_ID_MAX,
    PROPERTIES_MAX,
    SHORT_TEXT_MAX,
    TEXT_MAX,
    TITLE_MAX,
    EventType,
    FeedbackKind,
    check_feedback,
    check_idea_fields,
    decode_event,
)
from streams.events import AnyEvent as ContractEvent

#: Names (experiments, variants, actions, property keys) and pilot keys; their patterns are checked
#: apart (see `_Names`).
Name = Annotated[str, Meta(min_length=1, max_length=NAME_MAX_LENGTH)]
ShortText = Annotated[str, Meta(max_length=SHORT_TEXT_MAX)]
Time = Annotated[datetime, Meta(tz=True)]
#: A fraction of a second finer than microseconds, which msgspec rounds and pydantic cuts, as JSON
#: writes it unescaped (records with an escape are searched for none: see `decode`).
_FINER_THAN_MICROSECONDS = re.compile(rb"\.[0-9]{7}")


class _Names:
    """Names known to match a pattern (as pydantic matches it: the whole text). The payloads look
    their names up in `known` (a set, in C); only a name not in it is matched, by `learn`, and kept.
    All are forgotten past `limit`, so that names never seen again cannot pile up."""

    def __init__(self, pattern: str, limit: int = 10_000) -> None:
        self._match = re.compile(pattern).fullmatch
        self.known: set[str] = set()
        self._limit = limit

    def learn(self, *names: str) -> bool:
        """Returns True when every name matches the pattern, and keeps them as known."""
        if not all(self._match(name) for name in names):
            return False
        if len(self.known) + len(names) > self._limit:
            self.known.clear()
        self.known.update(names)
        return True


_NAMES = _Names(NAME_PATTERN)
_KNOWN_NAMES = _NAMES.known
_PILOT_KEYS = _Names(PILOT_KEY_PATTERN)
_KNOWN_PILOT_KEYS = _PILOT_KEYS.known


class _Strict(Struct, frozen=True, forbid_unknown_fields=True):
    pass


class ExposurePayload(_Strict, frozen=True):
    experiment: Name
    variant: Name

    def names_ok(self) -> bool:
        known = _KNOWN_NAMES
        return (self.experiment in known and self.variant in known) or _NAMES.learn(self.experiment, self.variant)


class UsagePayload(_Strict, frozen=True):
    action: Name
    value: float | None = None
    session_id: ShortText | None = None
    properties: Annotated[dict[Name, ShortText], Meta(max_length=PROPERTIES_MAX)] = {}

    def names_ok(self) -> bool:
        known = _KNOWN_NAMES
        return (self.action in known and known.issuperset(self.properties)) or _NAMES.learn(
            self.action, *self.properties
        )


class FeedbackPayload(_Strict, frozen=True):
    kind: FeedbackKind
    score: float | None = None
    answers: list[int] | None = None
    text: Annotated[str, Meta(max_length=TEXT_MAX)] | None = None
    target: str | None = None
    experiment: Name | None = None
    title: Annotated[str, Meta(min_length=1, max_length=TITLE_MAX)] | None = None
    theme: Name | None = None
    district: Name | None = None

    def __post_init__(self) -> None:
        # Raised as a msgspec.ValidationError: the record goes to the contract, which says why.
        check_feedback(self.kind, self.score, self.answers, self.text, self.target)
        check_idea_fields(self.kind, self.title, self.theme, self.district)

    def names_ok(self) -> bool:
        names = [n for n in (self.experiment, self.theme, self.district) if n is not None]
        return _KNOWN_NAMES.issuperset(names) or _NAMES.learn(*names)


class ConsentPayload(_Strict, frozen=True):
    granted: bool
    scope: ShortText = "usage"

    def names_ok(self) -> bool:
        return True


class _Envelope(_Strict, frozen=True, tag_field="type", kw_only=True):
    event_id: uuid.UUID
    pilot_id: Name
    participant_id: Annotated[str, Meta(min_length=1, max_length=PARTICIPANT_ID_MAX)]
    occurred_at: Time
    received_at: Time | None = None
    source: ShortText = "unknown"
    schema_version: Literal[1] = 1


class Exposure(_Envelope, frozen=True, tag="exposure"):
    type: ClassVar[EventType] = "exposure"
    payload: ExposurePayload


class Usage(_Envelope, frozen=True, tag="usage"):
    type: ClassVar[EventType] = "usage"
    payload: UsagePayload


class Feedback(_Envelope, frozen=True, tag="feedback"):
    type: ClassVar[EventType] = "feedback"
    payload: FeedbackPayload


class Consent(_Envelope, frozen=True, tag="consent"):
    type: ClassVar[EventType] = "consent"
    payload: ConsentPayload


AnyEvent = Exposure | Usage | Feedback | Consent
_DECODER: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)


def decode(data: bytes) -> AnyEvent:
    """Returns the event encoded in a Kafka record value, or raises `InvalidEvent` with the contract's
    reasons: decoded by the structs when they take it, by the contract otherwise."""
    # A `\u` escape may write a time's dot or digits, out of the search's sight: such a record (rare:
    # the ingest API writes none for them) goes to the contract whatever it holds.
    if b"\\u" not in data and _FINER_THAN_MICROSECONDS.search(data) is None:
        try:
            event = _DECODER.decode(data)
        except msgspec.DecodeError:  # malformed, or not what the structs take (ValidationError)
            pass
        else:
            if (event.pilot_id in _KNOWN_PILOT_KEYS or _PILOT_KEYS.learn(event.pilot_id)) and event.payload.names_ok():
                return event
    return from_contract(decode_event(data))


def from_contract(event: ContractEvent) -> AnyEvent:
    """Returns the contract's event (validated by pydantic) as a struct."""
    converted: AnyEvent = msgspec.convert(event.model_dump(), AnyEvent)
    return converted
