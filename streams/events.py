"""The event contract: envelopes, payloads, their bounds and the errors naming the field, defined once
(msgspec structs) for the ingest API, the SDK, the simulator, the workers and the portal; plus the
topic names and the Kafka helpers the services share.

Imports no faust. Every check of an event is stated here once, as the structs' types and constraints
(msgspec checks them while it reads the JSON) or in `FeedbackPayload.__post_init__` (the rules by
kind); the JSON Schema the ingest API publishes is generated from the same structs (`event_schema`).
The bounds on event times need the time an event was received and the deployment's maximum age
(`Settings.event_max_age`, default `DEFAULT_EVENT_MAX_AGE_DAYS`), so they are a function of their own
(`time_refusal`), applied by the ingest, the SDK and the worker.
"""

from __future__ import annotations

import math
import re
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal

import msgspec
import orjson
from msgspec import Meta, Struct

from experiments.registry import NAME_MAX_LENGTH, NAME_PATTERN, PILOT_KEY_PATTERN

if TYPE_CHECKING:
    from collections.abc import Callable

    from experiments.settings import Settings

SCHEMA_VERSION = 1
TIME_ZONE_MISSING = "must carry a time zone (UTC, e.g. 2026-11-20T09:15:02Z)"
MAX_BATCH = 1000

EventType = Literal["exposure", "usage", "feedback", "consent"]
EVENT_TYPES: tuple[EventType, ...] = ("exposure", "usage", "feedback", "consent")
FeedbackKind = Literal["rating", "nps", "sus", "comment", "idea", "vote", "report"]
FEEDBACK_KINDS: tuple[FeedbackKind, ...] = ("rating", "nps", "sus", "comment", "idea", "vote", "report")


@dataclass(frozen=True, slots=True)
class Topics:
    """Kafka topic names under a namespace (default `rhizome`; tests use one each).

    Every event topic is keyed by participant_id and has the same number of partitions, so one
    citizen's events stay in one partition, in order, on one worker.
    """

    namespace: str = "rhizome"

    @property
    def exposures(self) -> str:
        return f"{self.namespace}.exposures"

    @property
    def usage(self) -> str:
        return f"{self.namespace}.usage"

    @property
    def feedback(self) -> str:
        return f"{self.namespace}.feedback"

    @property
    def consent(self) -> str:
        return f"{self.namespace}.consent"

    @property
    def erasure(self) -> str:
        """Erasure requests (`rhizome erase`): the workers forget the participant."""
        return f"{self.namespace}.erasure"

    @property
    def dead_letter(self) -> str:
        """Events that failed validation in the stream, each with its reason."""
        return f"{self.namespace}.deadletter"

    def for_type(self, event_type: str) -> str:
        return f"{self.namespace}.{_TOPIC_OF_TYPE[event_type]}"

    @property
    def events(self) -> tuple[str, ...]:
        return (self.exposures, self.usage, self.feedback, self.consent)

    @property
    def partitioned(self) -> tuple[str, ...]:
        """The topics keyed by participant that a worker reads together (co-partitioned)."""
        return (*self.events, self.erasure)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.partitioned, self.dead_letter)


_TOPIC_OF_TYPE = {"exposure": "exposures", "usage": "usage", "feedback": "feedback", "consent": "consent"}


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def is_reachable(bootstrap: str, timeout: float = 5.0) -> bool:
    """Returns True when a Kafka client's metadata request to `bootstrap` succeeds."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
            client_id="rhizome-probe",
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def wait_until_reachable(bootstrap: str, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    """Returns once a metadata request to `bootstrap` succeeds; raises KafkaUnreachable at the deadline."""
    deadline = time.monotonic() + timeout
    # A bootstrap may list several brokers ("host:port,host:port"): one listening is enough to ask.
    addresses = [address.rpartition(":") for address in bootstrap.split(",")]
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise KafkaUnreachable("the broker process exited during start-up")
        listening = any(port_in_use(int(port), host or "127.0.0.1") for host, _, port in addresses)
        if listening and is_reachable(bootstrap, timeout=3.0):
            return
        time.sleep(0.2)
    raise KafkaUnreachable(f"no Kafka broker answered at {bootstrap} within {timeout:.0f} s")


class KafkaUnreachable(RuntimeError):
    """No Kafka broker answered in time."""


def ensure_topics(
    bootstrap: str, topics: Topics, partitions: int, timeout: float = 30.0, replication: int = 1
) -> list[str]:
    """Returns the topics it created: every Rhizome topic missing on the broker, `partitions` each, with
    `replication` replicas of which a majority must hold a write before it is acknowledged (2 of 3:
    acks=all survives one node lost, and refuses writes rather than keep them on one node only)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from experiments.settings import min_insync_replicas

    topic_configs = {"min.insync.replicas": str(min_insync_replicas(replication))}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics.all if t not in existing]
        created: list[str] = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, partitions, replication, topic_configs=topic_configs)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


def ensure_settings_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """`ensure_topics` for a deployment's settings: its namespace, partitions and replication."""
    return ensure_topics(
        settings.kafka_bootstrap,
        Topics(settings.namespace),
        settings.topic_partitions,
        timeout,
        settings.topic_replication,
    )


def records_wait(committed: int | None, end: int) -> bool:
    """Returns True when a partition holds records past a group's committed offset (None: never committed)."""
    return (committed or 0) < end


class GroupOffsets:
    """The broker's own view of a consumer group: for each partition, the group's committed offset
    and the partition's end. One admin client and one group-less consumer, kept open between calls;
    every call blocks, so async code runs it in an executor."""

    def __init__(self, bootstrap: str, group: str, timeout: float = 10.0) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        ms = int(timeout * 1000)
        self.group = group
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ms, client_id="rhizome-lag")
        try:
            self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=ms, client_id="rhizome-lag")
        except Exception:
            self._admin.close()
            raise

    def positions(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], tuple[int | None, int]]:
        """Returns {(topic, partition): (committed offset or None, end offset)}."""
        from kafka import TopicPartition

        tps = [TopicPartition(t, p) for t, p in partitions]
        if not tps:
            return {}
        committed = self._admin.list_group_offsets(self.group).get(self.group, {})
        ends = self._consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): (committed[tp].offset if tp in committed else None, ends[tp]) for tp in tps}

    def lagging(self, partitions: Iterable[tuple[str, int]]) -> dict[str, tuple[int | None, int]]:
        """Returns the partitions whose committed offset is behind their end: {"topic/p": (committed, end)}."""
        return {
            f"{topic}/{partition}": (committed, end)
            for (topic, partition), (committed, end) in self.positions(partitions).items()
            if records_wait(committed, end)
        }

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()


# --- the event contract ---------------------------------------------------------------------------

#: One line of text: a participant id, a source, a session id, a consent's scope.
SHORT_TEXT_MAX = 128
#: A comment's or an idea's text.
TEXT_MAX = 4000
#: An idea's title.
TITLE_MAX = 200
PARTICIPANT_ID_MAX = 128
PROPERTIES_MAX = 16
#: A usage property's value: the store keeps a segment as `name:value` in 160 characters.
PROPERTY_VALUE_MAX = 64
#: A sus questionnaire has ten answers, each from 1 to 5.
SUS_ANSWERS = 10
#: The largest magnitude of a usage value or a score. A participant's total over n events is at most
#: n * 1e9, its square n^2 * 1e18, so a sum of squares over m participants stays finite (below
#: 1.8e308) while m * n^2 < 1e290: for any realistic count.
NUMBER_MAX = 1e9
#: How far after the time it was received an event may be dated (the clocks of phones and servers
#: disagree).
FUTURE_SKEW = timedelta(minutes=10)

#: The end of the text. msgspec matches a pattern with Python's `re.search`, where `$` also matches
#: before a final newline; this lookahead means the same in Python and in JSON Schema (ECMAScript).
_END = r"(?![\s\S])"
#: Names (experiments, variants, actions, property names, themes, districts) and pilot keys, as the
#: pilot spec names them, matched against the whole text.
NAME = NAME_PATTERN.removesuffix("$") + _END
PILOT_KEY = PILOT_KEY_PATTERN.removesuffix("$") + _END
#: A line of text: no control character (C0, DEL, C1) and no lone surrogate half (which no database
#: can store); PostgreSQL refuses NUL outright.
ONE_LINE = rf"^[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*{_END}"
#: A free text (a comment, an idea): the same, but tab and line breaks (LF, and the CR that browsers
#: send before it) are allowed.
FREE_TEXT = rf"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]*{_END}"
#: What each pattern means, for the errors people read (msgspec's errors quote a pattern's repr).
_PATTERN_MEANS = {
    NAME: "must be a name: letters, digits and _ . : - starting with a letter or digit",
    PILOT_KEY: "must be a pilot key: lower-case letters, digits and - starting with a letter or digit",
    ONE_LINE: "must be one line of text, without control characters (NUL, tab, line breaks...)",
    FREE_TEXT: "must be a text without control characters other than tab and line breaks (NUL...)",
}

Name = Annotated[str, Meta(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME)]
PilotKey = Annotated[str, Meta(min_length=1, max_length=NAME_MAX_LENGTH, pattern=PILOT_KEY)]
ShortText = Annotated[str, Meta(max_length=SHORT_TEXT_MAX, pattern=ONE_LINE)]
ParticipantId = Annotated[str, Meta(min_length=1, max_length=PARTICIPANT_ID_MAX, pattern=ONE_LINE)]
PropertyValue = Annotated[str, Meta(max_length=PROPERTY_VALUE_MAX, pattern=ONE_LINE)]
Title = Annotated[str, Meta(min_length=1, max_length=TITLE_MAX, pattern=ONE_LINE)]
FreeText = Annotated[str, Meta(max_length=TEXT_MAX, pattern=FREE_TEXT)]
Number = Annotated[float, Meta(ge=-NUMBER_MAX, le=NUMBER_MAX)]
SusAnswer = Annotated[int, Meta(ge=1, le=5)]
#: RFC 3339 text with an offset (`Z` for UTC); kept with the offset it was sent with.
Time = Annotated[datetime, Meta(tz=True)]


class _Strict(Struct, frozen=True, forbid_unknown_fields=True):
    """Unknown fields are refused, not ignored."""


class ExposurePayload(_Strict, frozen=True):
    experiment: Name
    variant: Name


class UsagePayload(_Strict, frozen=True):
    action: Name
    value: Number | None = None
    session_id: ShortText | None = None
    properties: Annotated[dict[Name, PropertyValue], Meta(max_length=PROPERTIES_MAX)] = {}


class FeedbackPayload(_Strict, frozen=True):
    kind: FeedbackKind
    score: Number | None = None
    answers: Annotated[list[SusAnswer], Meta(max_length=SUS_ANSWERS)] | None = None
    text: FreeText | None = None
    #: The idea (its event_id) a vote is for, or a comment is about.
    target: uuid.UUID | None = None
    #: The experiment the feedback is about (otherwise every experiment of the pilot).
    experiment: Name | None = None
    #: An idea's title, theme and district (the citizens' portal).
    title: Title | None = None
    theme: Name | None = None
    district: Name | None = None

    def __post_init__(self) -> None:
        # Raised as a msgspec.ValidationError whose cause is this _FieldError (see `_error`).
        _check_by_kind(self)


def _check_by_kind(p: FeedbackPayload) -> None:
    """Checks what a feedback payload needs, and may hold, for its kind; raises a _FieldError."""
    kind, score = p.kind, p.score
    if kind == "rating" and (score is None or not 1 <= score <= 5):
        raise _FieldError("score", "must be a number from 1 to 5 for a rating")
    if kind == "nps" and (score is None or score != int(score) or not 0 <= score <= 10):
        raise _FieldError("score", "must be an integer from 0 to 10 for nps")
    if kind == "sus":
        if p.answers is None or len(p.answers) != SUS_ANSWERS:
            raise _FieldError("answers", "must be ten integers from 1 to 5 for sus")
    elif p.answers is not None:
        raise _FieldError("answers", f"must be left out for {kind}: only sus has answers")
    if kind in ("comment", "idea") and not (p.text and p.text.strip()):
        raise _FieldError("text", f"must be a non-empty text for {kind}")
    if kind == "vote":
        if p.target is None:
            raise _FieldError("target", "must be the event_id of the idea voted on")
        if score is not None and score not in (-1, 1):
            raise _FieldError("score", "must be 1 or -1 for a vote")
    elif kind == "report":
        if p.target is None:
            raise _FieldError("target", "must be the event_id of the idea or comment reported")
    elif kind != "comment" and p.target is not None:
        raise _FieldError("target", f"must be left out for {kind}: only a vote, a comment or a report names an idea")
    if kind != "idea":
        for name in ("title", "theme", "district"):
            if getattr(p, name) is not None:
                raise _FieldError(name, f"must be left out for {kind}: only an idea has a {name}")
    elif p.title is not None and not p.title.strip():
        raise _FieldError("title", "must be a non-empty text when given")


class ConsentPayload(_Strict, frozen=True):
    granted: bool
    scope: ShortText = "usage"


class _Envelope(_Strict, frozen=True, tag_field="type", kw_only=True):
    """What every event carries; `type` (the tag) says which payload follows."""

    event_id: uuid.UUID
    pilot_id: PilotKey
    participant_id: ParticipantId
    occurred_at: Time
    #: Set by the ingest API (whatever the event said).
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
_DECODER: Final = msgspec.json.Decoder(AnyEvent)
_BY_TYPE: Final[dict[str, Any]] = {struct.type: struct for struct in (Exposure, Usage, Feedback, Consent)}
_ENCODER: Final = msgspec.json.Encoder()


def event_schema(ref_template: str = "#/components/schemas/{name}") -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns the JSON Schema of a body of `POST /v1/events` (one event, or an array of 1 to
    MAX_BATCH) and the schemas it refers to by `ref_template`, generated from the structs."""
    (event,), components = msgspec.json.schema_components([AnyEvent], ref_template=ref_template)
    body = {"oneOf": [event, {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_BATCH}]}
    return body, components


# --- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventError:
    """Why one event is invalid: its index in the batch, the field (dotted path) and the reason."""

    index: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidEvent(ValueError):
    """An event (or a batch) that breaks the contract, with an error per bad event."""

    def __init__(self, errors: list[EventError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


class NotJson(InvalidEvent):
    """A record or a request body that is not JSON at all."""


class _FieldError(ValueError):
    """A payload rule that names the field it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_MISSING: Final = object()
#: msgspec's "- at `$.payload.answers[2]`", or "- at `key` in `$.payload.properties`" for a mapping's key.
_WHERE = re.compile(r" - at (`key` in )?`\$([^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_EXPECTED = re.compile(r"Expected `(?P<types>[^`]+)`(?P<rest>.*)")
_BOUND = re.compile(r" (?P<op>[<>]=?) (?P<n>\S+)$")
_LENGTH = re.compile(r" of length (?P<op>[<>]=?) (?P<n>\d+)$")
_TYPE_WORDS = {
    "float": "a number",
    "int": "an integer",
    "str": "a text",
    "bool": "true or false",
    "null": "null",
    "object": "an object",
    "array": "an array",
    "uuid": "a UUID",
    "datetime": "an RFC 3339 time with an offset (e.g. 2026-11-20T09:15:02Z)",
}
_CHOICES: dict[str, tuple[object, ...]] = {
    "type": EVENT_TYPES,
    "payload.kind": FEEDBACK_KINDS,
    "schema_version": (SCHEMA_VERSION,),
}


def _error(exc: msgspec.ValidationError, index: int, document: Any) -> EventError:
    """Returns msgspec's error as the contract says it: the field as a dotted path, what it must be,
    and the value received (looked up in `document`, the event as plain JSON values)."""
    text = str(exc)
    where = _WHERE.search(text)
    what = text[: where.start()] if where else text
    path = [a or b for a, b in _STEP.findall(where.group(2))] if where else []
    value: Any = _MISSING
    if where and where.group(1):
        path, value = _culprit(path, document, keys=True)
    elif "..." in path:
        path, value = _culprit(path[: path.index("...")], document, keys=False)
    cause = exc.__cause__
    if isinstance(cause, _FieldError):
        path, what = [*path, cause.field], cause.message
    elif what.startswith(("Object missing required field `", "Object contains unknown field `")):
        path = [*path, what.split("`")[1]]
    field = ".".join(path)
    message = _plain(what, field)
    if value is _MISSING:
        value = _value_at(document, path)
    if isinstance(value, float) and math.isnan(value):
        message = f"must be a number from {-NUMBER_MAX:.0f} to {NUMBER_MAX:.0f}, not NaN"
    if value is not _MISSING and not what.startswith("Object contains unknown field"):
        message = f"{message} (got {_short(value)})"
    return EventError(index, field or "(event)", message)


def _plain(what: str, field: str) -> str:
    """Returns msgspec's message in words: what the field must be."""
    if what.startswith("Object missing required field"):
        return "is required"
    if what.startswith("Object contains unknown field"):
        return "unknown field, not part of the event contract"
    if what.startswith(("Invalid enum value", "Invalid value")) and field in _CHOICES:
        choices = _CHOICES[field]
        return f"must be {choices[0]}" if len(choices) == 1 else f"must be one of {', '.join(map(str, choices))}"
    if what.startswith("Invalid RFC3339"):
        return f"must be {_TYPE_WORDS['datetime']}"
    if what.startswith("Invalid UUID"):
        return "must be a UUID (an event_id)"
    if what.startswith("Number out of range"):
        return f"must be a number from {-NUMBER_MAX:.0f} to {NUMBER_MAX:.0f}"
    expected = _EXPECTED.match(what)
    if expected is None:
        return what
    types, rest = expected["types"], expected["rest"]
    if rest.endswith("with a timezone component"):
        return TIME_ZONE_MISSING
    if rest.startswith(" matching regex "):
        return _PATTERN_MEANS_BY_REPR.get(rest.removeprefix(" matching regex "), what)
    if length := _LENGTH.match(rest):
        unit = {"str": "characters", "array": "items", "object": "entries"}.get(types, "items")
        return f"must have {_OPS[length['op']]} {length['n']} {unit}"
    if bound := _BOUND.match(rest):
        n = float(bound["n"])
        return f"must be {_OPS[bound['op']]} {int(n) if n.is_integer() else n}"
    return "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types.split(" | "))


_OPS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}
_PATTERN_MEANS_BY_REPR = {repr(pattern): means for pattern, means in _PATTERN_MEANS.items()}


def _culprit(path: list[str], document: Any, *, keys: bool) -> tuple[list[str], Any]:
    """Returns the path of the entry of the mapping at `path` whose key (or value) the contract
    refuses, and that key (or value): msgspec names the mapping only. The contract's one mapping is
    a usage's properties."""
    mapping = _value_at(document, path)
    if isinstance(mapping, dict):
        kind = Name if keys else PropertyValue
        for key, value in mapping.items():
            try:
                msgspec.convert(key if keys else value, kind)
            except msgspec.ValidationError:
                return [*path, str(key)], key if keys else value
    return path, _MISSING


def _value_at(document: Any, path: list[str]) -> Any:
    cur = document
    for part in path:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- reading and writing events -------------------------------------------------------------------


def decode_event(data: bytes | msgspec.Raw, index: int = 0) -> AnyEvent:
    """Returns the event encoded in a JSON text (a Kafka record's value, an item of a request body),
    or raises `InvalidEvent` naming the field (`NotJson` when it is not JSON at all)."""
    try:
        event: AnyEvent = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        try:
            document = msgspec.json.decode(data)
        except msgspec.DecodeError as unread:
            try:
                msgspec.json.decode(data, type=msgspec.Raw)
            except msgspec.DecodeError:
                # Refused while msgspec read it, before the part that is not JSON.
                raise _not_json(unread, index) from None
            document = _MISSING  # JSON, with a number no float holds (1e400): no value to show
        raise InvalidEvent([_error(exc, index, document)]) from None
    except msgspec.DecodeError as exc:
        raise _not_json(exc, index) from None
    return event


def _not_json(exc: msgspec.DecodeError, index: int, field: str = "(event)") -> NotJson:
    return NotJson([EventError(index, field, f"is not valid JSON: {exc}")])


def decode_batch(body: bytes) -> tuple[list[AnyEvent], list[EventError]]:
    """Returns the events of a request body (one event, or an array of 1 to MAX_BATCH) and an error
    for each one that breaks the contract (or one for the body); raises `NotJson` for a body that is
    not JSON."""
    try:
        whole = msgspec.json.decode(body, type=msgspec.Raw)
    except msgspec.DecodeError as exc:
        raise _not_json(exc, 0, "(body)") from None
    items = msgspec.json.decode(whole, type=list[msgspec.Raw]) if body.lstrip()[:1] == b"[" else [whole]
    if not items:
        return [], [EventError(0, "(body)", "must hold at least one event")]
    if len(items) > MAX_BATCH:
        return [], [EventError(0, "(body)", f"holds {len(items)} events, must hold at most {MAX_BATCH}")]
    events: list[AnyEvent] = []
    errors: list[EventError] = []
    for i, item in enumerate(items):
        try:
            events.append(decode_event(item, i))
        except InvalidEvent as exc:
            errors.extend(exc.errors)
    return events, errors


def parse_event(raw: Any, index: int = 0) -> AnyEvent:
    """Returns the event in `raw` (plain Python values, as `new_event` makes them), checked by the same
    structs as a JSON text; raises `InvalidEvent` naming the field."""
    tag = raw.get("type") if isinstance(raw, dict) else None
    # Converted to its own struct when it names one: the same checks, at a third of the union's cost
    # (measured: msgspec 0.22 converts to a tagged union slowly); the union says why for the others.
    target = _BY_TYPE.get(tag, AnyEvent) if isinstance(tag, str) else AnyEvent
    try:
        event: AnyEvent = msgspec.convert(raw, target)
    except msgspec.ValidationError as exc:
        raise InvalidEvent([_error(exc, index, raw)]) from None
    return event


#: The envelope's fields that a client may be given apart from an event (a query parameter, a setting).
_ENVELOPE_FIELDS: dict[str, Any] = {"participant_id": ParticipantId, "pilot_id": PilotKey, "source": ShortText}


def envelope_refusal(field: str, value: str) -> str | None:
    """Returns what the envelope's `field` (participant_id, pilot_id or source) must be when the
    contract refuses `value` for it, else None: for values that arrive before their event does
    (`GET /v1/assign`'s participant, the SDK's source)."""
    try:
        msgspec.convert(value, _ENVELOPE_FIELDS[field])
    except msgspec.ValidationError as exc:
        return f"{_plain(str(exc), field)} (got {_short(value)})"
    return None


def encode_event(event: AnyEvent) -> bytes:
    """Returns the event's JSON text, as the ingest API publishes it and the SDK sends it."""
    return _ENCODER.encode(event)


def time_refusal(event: AnyEvent, now: datetime, max_age: timedelta) -> tuple[str, str] | None:
    """Returns (field, why) when the event's times are out of bounds, else None: `received_at`, when
    the event has one, from `max_age` before `now` to FUTURE_SKEW after it; `occurred_at` as much
    around `received_at`, or around `now` without one. The ingest API and the SDK check with `now`
    the time they take the event; the worker with its clock."""
    received = event.received_at
    if received is not None and (why := _out_of_bounds(received, now, max_age, "now")):
        return "received_at", why
    why = _out_of_bounds(event.occurred_at, received or now, max_age, "the time it was received")
    return ("occurred_at", why) if why else None


def _out_of_bounds(t: datetime, reference: datetime, max_age: timedelta, reference_is: str) -> str | None:
    # A difference of two times never overflows, where `reference - max_age` may (the year 4).
    ahead = t - reference
    if ahead > FUTURE_SKEW:
        bound = f"at most {FUTURE_SKEW.total_seconds() / 60:.0f} minutes after"
    elif -ahead > max_age:
        bound = f"at most {max_age.days} days before"
    else:
        return None
    return f"must be {bound} {reference_is}, {reference.isoformat()} (got {t.isoformat()!r})"


def new_event(
    type: EventType,
    pilot_id: str,
    participant_id: str,
    payload: Mapping[str, Any],
    *,
    occurred_at: datetime | None = None,
    source: str = "unknown",
    event_id: uuid.UUID | str | None = None,
) -> dict[str, Any]:
    """Returns a JSON-ready event object with a fresh event_id, for SDKs, the simulator and tests."""
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "type": type,
        "pilot_id": pilot_id,
        "participant_id": participant_id,
        "occurred_at": format_time(occurred_at or datetime.now(UTC)),
        "source": source,
        "schema_version": SCHEMA_VERSION,
        "payload": dict(payload),
    }


def format_time(t: datetime) -> str:
    """Returns an RFC 3339 UTC timestamp with a `Z` suffix and millisecond precision."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter(reason: str, field: str | None, raw: bytes | str | Mapping[str, Any], **where: Any) -> bytes:
    """Returns the dead-letter record for an event the stream could not take."""
    if isinstance(raw, bytes | bytearray):
        try:
            original: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            original = raw.decode("utf-8", errors="replace")
    else:
        original = raw
    return orjson.dumps(
        {"reason": reason, "field": field, "at": format_time(datetime.now(UTC)), **where, "event": original}
    )


def encode_erasure(participant_id: str, requested_at: datetime) -> bytes:
    """Returns the erasure request published (keyed by the participant) on the erasure topic."""
    return orjson.dumps({"participant_id": participant_id, "requested_ms": int(requested_at.timestamp() * 1000)})


def decode_erasure(data: bytes) -> tuple[str, int]:
    """Returns the participant of an erasure request and its time (ms since the epoch): their events up
    to it are forgotten. Raises `InvalidEvent` naming the field ("$" for the whole record) when the
    record is not one `encode_erasure` writes."""

    def invalid(field: str, message: str) -> InvalidEvent:
        return InvalidEvent([EventError(0, field, message)])

    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise invalid("$", f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise invalid("$", f"must be an object, not {type(doc).__name__}")
    participant = doc.get("participant_id")
    if not isinstance(participant, str) or not participant:
        raise invalid("participant_id", f"must be a participant id, not {participant!r}")
    ms = doc.get("requested_ms")
    if type(ms) is not int:
        raise invalid("requested_ms", f"must be an integer (ms since 1970), not {ms!r}")
    return participant, ms
