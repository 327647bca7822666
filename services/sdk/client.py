"""The Python client for pilot services: local assignment, and usage, feedback and consent events sent
in the background (contract: docs/events.md; guide: docs/sdk.md)."""

from __future__ import annotations

import atexit
import enum
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
import orjson

from experiments.assignment import variant_for
from experiments.privacy import looks_identifying, pseudonymise
from experiments.registry import NAME_MAX_LENGTH
from experiments.settings import load_settings
from services.sdk.buffer import ClientStats, EventBuffer, Pending
from services.sdk.registry import RegistryCopy, registry_from_response
from streams.events import (
    MAX_BATCH,
    EventError,
    EventType,
    FeedbackKind,
    InvalidEvent,
    encode_event,
    envelope_refusal,
    new_event,
    parse_event,
    time_refusal,
)

log = logging.getLogger("rhizome.sdk")

#: `POST /v1/events` answers 413 over 1 MB (docs/events.md).
MAX_REQUEST_BYTES = 1_000_000
#: Stands for the pilot while its key is unknown (no registry copy yet); the sender stamps the real one.
PILOT_PENDING = "pilot-pending"
_JSON = {"Content-Type": "application/json"}


class _Outcome(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    REFUSED = "refused"


class _ExposureMemory:
    """The (experiment, participant) pairs whose exposure this client logged, the most recent `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: tuple[str, str]) -> bool:
        """Returns True the first time a pair is seen (and remembers it), False while it is remembered."""
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} == {value!r}, must be > 0.")


class RhizomeClient:
    """A pilot service's connection to Rhizome; thread-safe, one per process.

    `variant` assigns locally from a copy of the pilot's registry; `track`, `feedback` and `consent`
    validate an event, put it in a bounded buffer and return at once. A daemon thread sends the
    buffer in batches, retrying 5xx answers and network errors with exponential back-off and jitter
    (an event keeps its event_id, so a re-sent event is not counted twice), dropping 4xx-refused
    batches, and refreshing the registry copy every `refresh_interval` seconds. `close()` (also at
    exit, and when leaving a `with` block) sends what is left.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        source: str = "rhizome-sdk",
        flush_interval: float = 1.0,
        max_batch: int = 500,
        max_buffer: int = 10_000,
        secret: str | None = None,
        refresh_interval: float = 30.0,
        startup_timeout: float = 2.0,
        request_timeout: float = 15.0,
        backoff: float = 0.5,
        max_backoff: float = 15.0,
        close_timeout: float = 10.0,
        remembered_exposures: int = 100_000,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch == {max_batch!r}, must be from 1 to {MAX_BATCH}.")
        if max_buffer < max_batch:
            raise ValueError(f"max_buffer == {max_buffer!r}, must be >= max_batch ({max_batch}).")
        if remembered_exposures < 1:
            raise ValueError(f"remembered_exposures == {remembered_exposures!r}, must be >= 1.")
        refused = envelope_refusal("source", source) if source else "must not be empty"
        if refused is not None:
            raise ValueError(f"source: {refused}")
        for name, value in (
            ("flush_interval", flush_interval),
            ("refresh_interval", refresh_interval),
            ("request_timeout", request_timeout),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
        ):
            _positive(name, value)
        for name, value in (("startup_timeout", startup_timeout), ("close_timeout", close_timeout)):
            if not value >= 0:
                raise ValueError(f"{name} == {value!r}, must be >= 0.")
        self.source = source
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.refresh_interval = refresh_interval
        self.request_timeout = request_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        settings = load_settings()
        self._secret = secret or settings.secret
        #: Events dated further back are refused here, as the ingest API would refuse them.
        self._max_age = settings.event_max_age
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "rhizome-sdk"},
            timeout=httpx.Timeout(request_timeout, connect=min(request_timeout, 5.0)),
        )
        self._buffer = EventBuffer(max_buffer, wake_at=max_batch)
        self._exposures = _ExposureMemory(remembered_exposures)
        self._registry: RegistryCopy | None = None
        self._registry_due = 0.0
        self._registry_failures = 0
        self._refusals_logged: set[tuple[str, int]] = set()
        self._unknown_logged: set[str] = set()
        self._closed = False
        self._close_lock = threading.Lock()
        if startup_timeout > 0:
            self._refresh_registry(timeout=startup_timeout)
        self._sender = threading.Thread(target=self._run, name="rhizome-sdk-sender", daemon=True)
        self._sender.start()
        atexit.register(self.close)

    # --- the calls a pilot service makes ----------------------------------------------------------

    def variant(self, experiment: str, participant: str) -> str | None:
        """Returns the variant the participant sees in the experiment, or None.

        None when the participant is held out or outside the allocation or layer slice (as
        `GET /v1/assign` answers), and also while no copy of the registry could be fetched yet or
        the experiment is not in it. The exposure is logged once per participant and client, only
        for a running experiment.
        """
        self._check_open()
        pid = self._participant_id(participant)
        registry = self._registry
        spec = registry.experiments.get(experiment) if registry is not None else None
        if registry is None or spec is None:
            if registry is not None and experiment not in self._unknown_logged:
                self._unknown_logged.add(experiment)
                log.warning(
                    "experiment == %r is not in pilot %r's registry: variant() answers None",
                    experiment,
                    registry.pilot.key,
                )
            return None
        name = variant_for(registry.pilot, spec, pid)
        if name is not None and registry.logs_exposure(experiment) and self._exposures.first_time((experiment, pid)):
            self._record("exposure", pid, {"experiment": experiment, "variant": name}, None)
        return name

    def track(
        self,
        participant: str,
        action: str,
        value: float | None = None,
        *,
        session_id: str | None = None,
        properties: Mapping[str, str] | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        """Returns the event_id of a usage event recorded for sending; raises ValueError naming a bad field."""
        payload = {"action": action, "value": value, "session_id": session_id, "properties": properties or {}}
        return self._record("usage", self._participant_id(participant), payload, occurred_at)

    def feedback(
        self,
        participant: str,
        kind: FeedbackKind,
        *,
        score: float | None = None,
        answers: Sequence[int] | None = None,
        text: str | None = None,
        target: str | None = None,
        experiment: str | None = None,
        title: str | None = None,
        theme: str | None = None,
        district: str | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        """Returns the event_id of a feedback event (an idea's id is the `target` of votes on it, and of
        comments about it; an idea may have a title, a theme and a district); raises ValueError naming
        a bad field."""
        payload = {
            "kind": kind,
            "score": score,
            "answers": answers,
            "text": text,
            "target": target,
            "experiment": experiment,
            "title": title,
            "theme": theme,
            "district": district,
        }
        return self._record("feedback", self._participant_id(participant), payload, occurred_at)

    def consent(
        self, participant: str, granted: bool, scope: str = "usage", *, occurred_at: datetime | None = None
    ) -> str:
        """Returns the event_id of a consent event (granted, or withdrawn when `granted` is False)."""
        return self._record(
            "consent", self._participant_id(participant), {"granted": granted, "scope": scope}, occurred_at
        )

    def stats(self) -> ClientStats:
        """Returns the counts of events sent, dropped (buffer full), rejected (4xx), retries and still buffered."""
        return self._buffer.stats()

    def flush(self, timeout: float | None = None) -> bool:
        """Returns True once every event recorded before the call has been sent (or dropped and counted),
        False when `timeout` seconds passed first; blocks the caller, unlike the other calls."""
        return self._buffer.flush(timeout)

    def close(self) -> None:
        """Sends what is buffered (waiting at most `close_timeout` seconds) and stops the sender; idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        deadline = time.monotonic() + self.close_timeout
        self._buffer.flush(self.close_timeout)
        self._buffer.close()
        self._sender.join(timeout=max(0.1, deadline - time.monotonic()))
        if not self._sender.is_alive():
            self._http.close()
        left = self._buffer.stats().buffered
        if left:
            log.warning("Rhizome SDK closed with %d events not sent (ingest API unreachable)", left)

    def __enter__(self) -> RhizomeClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- building events ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this RhizomeClient is closed")

    def _participant_id(self, participant: str) -> str:
        """Returns the id to send: unchanged when opaque, its keyed pseudonym when it looks identifying."""
        if not looks_identifying(participant):
            # Checked before an exposure is remembered as logged.
            if refused := envelope_refusal("participant_id", participant):
                raise ValueError(f"participant: {refused}")
            return participant
        if self._secret is None:
            # The id itself is left out of the message: it is personal data.
            raise ValueError(
                "participant looks like an e-mail address or a phone number: send an opaque id, or configure "
                "RHIZOME_SECRET (or RhizomeClient(secret=...)) so the SDK pseudonymises it"
            )
        return pseudonymise(participant, self._secret)

    def _record(
        self, type: EventType, participant_id: str, payload: Mapping[str, Any], occurred_at: datetime | None
    ) -> str:
        self._check_open()
        if occurred_at is not None and occurred_at.tzinfo is None:
            raise ValueError(f"occurred_at == {occurred_at!r}, must carry a time zone (datetime.now(UTC))")
        registry = self._registry
        pilot = registry.pilot.key if registry is not None else PILOT_PENDING
        raw = new_event(type, pilot, participant_id, payload, occurred_at=occurred_at, source=self.source)
        event = parse_event(raw)
        refused = time_refusal(event, datetime.now(UTC), self._max_age)
        if refused is not None:
            raise InvalidEvent([EventError(0, *refused)])
        self._buffer.put(encode_event(event), pilot_pending=registry is None)
        return str(event.event_id)

    # --- the sender thread ----------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._buffer.closing:
            if failures == 0:
                self._buffer.wait_for_batch(self.flush_interval)
            try:
                if time.monotonic() >= self._registry_due:
                    self._refresh_registry(self.request_timeout)
                batch = self._buffer.front(self.max_batch, MAX_REQUEST_BYTES, NAME_MAX_LENGTH)
                outcome = self._deliver(batch) if batch else _Outcome.OK
            except Exception:
                log.exception("Rhizome SDK sender failed unexpectedly; retrying")
                batch, outcome = [], _Outcome.RETRY
            if outcome is _Outcome.RETRY:
                failures += 1
                self._buffer.note_retry()
                self._buffer.pause(self._backoff_delay(failures))
            else:
                if failures:
                    log.warning("Rhizome SDK reached the ingest API again after %d failed attempts", failures)
                failures = 0
                self._buffer.settle(batch, sent=outcome is _Outcome.OK)

    def _backoff_delay(self, failures: int) -> float:
        """Returns the pause before retry `failures`: exponential, capped, with half of it random."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (failures - 1))
        return ceiling / 2 + random.uniform(0.0, ceiling / 2)

    def _deliver(self, batch: list[Pending]) -> _Outcome:
        registry = self._registry
        if registry is None:
            outcome = self._refresh_registry(self.request_timeout)
            registry = self._registry
            if registry is None:
                return outcome
        pilot = registry.pilot.key
        body = b"[" + b",".join(_stamp(p, pilot) for p in batch) + b"]"
        try:
            answer = self._http.post("/v1/events", content=body, headers=_JSON)
        except httpx.TransportError as exc:
            log.debug("POST /v1/events failed: %s", exc)
            return _Outcome.RETRY
        return self._judge("POST /v1/events", answer, expected=202)

    def _refresh_registry(self, timeout: float) -> _Outcome:
        """Fetches the registry copy; on failure, schedules the next attempt with back-off."""
        try:
            answer = self._http.get("/v1/experiments", timeout=timeout)
            outcome = self._judge("GET /v1/experiments", answer, expected=200)
            if outcome is _Outcome.OK:
                self._registry = registry_from_response(answer.json())
        except httpx.TransportError as exc:
            log.debug("GET /v1/experiments failed: %s", exc)
            outcome = _Outcome.RETRY
        except ValueError as exc:
            log.error("Rhizome SDK could not read the pilot's registry: %s", exc)
            outcome = _Outcome.RETRY
        if outcome is _Outcome.RETRY:
            self._registry_failures += 1
            wait = min(self.refresh_interval, self._backoff_delay(self._registry_failures))
        else:
            self._registry_failures = 0
            wait = self.refresh_interval
        self._registry_due = time.monotonic() + wait
        return outcome

    def _judge(self, what: str, answer: httpx.Response, expected: int) -> _Outcome:
        """Returns whether an answer succeeded, is worth retrying, or refuses the request for good."""
        status = answer.status_code
        if status == expected:
            return _Outcome.OK
        if status >= 500:
            log.debug("%s answered %d: %s", what, status, answer.text[:300])
            return _Outcome.RETRY
        if (what, status) not in self._refusals_logged:
            self._refusals_logged.add((what, status))
            log.error(
                "Rhizome %s answered %d: %s; events are dropped, not retried (stats().dropped_rejected)",
                what,
                status,
                answer.text[:500],
            )
        return _Outcome.REFUSED


def _stamp(pending: Pending, pilot: str) -> bytes:
    """Returns the event's JSON with its pilot_id set, when it was recorded before the pilot was known."""
    if not pending.pilot_pending:
        return pending.data
    raw = orjson.loads(pending.data)
    raw["pilot_id"] = pilot
    return orjson.dumps(raw)
