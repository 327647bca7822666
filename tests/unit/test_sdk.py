"""The pilot-service SDK over real HTTP: the ingest FastAPI app served by uvicorn in a thread, with a
publisher that records what would go to Kafka (and answers 503 on demand), or a server that never answers."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.assignment import variant_for
from experiments.privacy import pseudonymise, safe_participant_id
from experiments.registry import PilotSpec
from experiments.settings import load_settings
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from services.ingest.app import create_app
from services.ingest.publisher import PUBLISH_TIMEOUT, Publisher, PublishError, Record
from services.sdk import ClientStats, RhizomeClient
from services.sdk.buffer import EventBuffer
from services.sdk.client import MAX_REQUEST_BYTES
from tests.support.ports import free_port
from tests.support.waiting import wait_until

SERVER_SECRET = "server-secret-for-tests"
SDK_SECRET = "sdk-secret-for-tests"
PILOT = "sdk-lab"
SPEC = """
pilot: {key: sdk-lab, name: SDK check, consent: collected_by_service, holdout: 0.1}
experiments:
  - key: signup-flow
    variants: {control: 0.4, short: 0.6}
    layer: {name: onboarding, start: 0.0, end: 0.5}
    metrics: [{key: signed_up, type: proportion, action: signup, window_days: 7}]
    primary: signed_up
  - key: welcome-mail
    salt: "2026"
    allocation: 0.8
    variants: {plain: 0.5, friendly: 0.5}
    layer: {name: onboarding, start: 0.5, end: 1.0}
    metrics: [{key: opened, type: proportion, action: open_mail, window_days: 7}]
    primary: opened
  - key: paused-banner
    variants: {hidden: 0.5, shown: 0.5}
    metrics: [{key: clicked, type: proportion, action: click, window_days: 7}]
    primary: clicked
"""


class RecordingPublisher(Publisher):
    """Records every publish attempt instead of talking to Kafka; fails (the API answers 503) on demand."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:9", client_id="sdk-tests")
        self.lock = threading.Lock()
        self.attempts: list[tuple[float, list[dict[str, Any]]]] = []
        self.accepted: list[dict[str, Any]] = []
        self.failing = False
        self.fail_next = 0

    def publish(self, records: Sequence[Record], timeout: float = PUBLISH_TIMEOUT) -> None:
        events = [orjson.loads(r.value) for r in records]
        with self.lock:
            self.attempts.append((time.monotonic(), events))
            if self.failing or self.fail_next:
                self.fail_next = max(0, self.fail_next - 1)
                raise PublishError("Kafka is down (test)")
            self.accepted.extend(events)

    def close(self) -> None:
        """Nothing to close: no producer was made."""

    def accepted_from(self, source: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.accepted if e["source"] == source]

    def attempts_from(self, source: str) -> list[tuple[float, list[dict[str, Any]]]]:
        with self.lock:
            return [(t, evs) for t, evs in self.attempts if evs and evs[0]["source"] == source]


@dataclass
class Ingest:
    url: str
    api_key: str
    store: Store
    publisher: RecordingPublisher
    pilot: PilotSpec
    clients: list[RhizomeClient] = field(default_factory=list)


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    """Returns the ingest app served on a local port, with a pilot of three experiments (one stopped)."""
    tmp = tmp_path_factory.mktemp("sdk")
    settings = load_settings(
        {
            "RHIZOME_STATE_DIR": str(tmp),
            "RHIZOME_SECRET": SERVER_SECRET,
            "RHIZOME_DATABASE_URL": f"sqlite:///{tmp / 'rhizome.db'}",
        }
    )
    store = Store(settings.database_url)
    store.migrate()
    pilot = parse_pilot_spec(SPEC)
    api_key = store.apply_pilot(pilot).api_key
    assert api_key is not None
    store.set_status("paused-banner", "stopped", actor="test")
    publisher = RecordingPublisher()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, store, publisher),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
            access_log=False,
            # No start-up or shut-down work: the app's lifespan talks to Kafka, which these tests replace.
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, interval=0.02, what="uvicorn to serve the ingest app")
    try:
        yield Ingest(f"http://127.0.0.1:{server.config.port}", api_key, store, publisher, pilot)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()


@pytest.fixture
def make_client(ingest: Ingest) -> Iterator[Callable[..., RhizomeClient]]:
    """Returns a factory of clients of the test ingest app (by default), closed after the test."""
    made: list[RhizomeClient] = []
    with ingest.publisher.lock:
        ingest.publisher.failing, ingest.publisher.fail_next = False, 0

    def make(url: str | None = None, api_key: str | None = None, **options: Any) -> RhizomeClient:
        options.setdefault("secret", SDK_SECRET)
        options.setdefault("close_timeout", 10.0)
        client = RhizomeClient(url or ingest.url, api_key or ingest.api_key, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def stalled_url() -> Iterator[str]:
    """Returns the address of a server that takes connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def accounted(stats: ClientStats) -> int:
    """Returns how many events the counters account for (each recorded event is in exactly one)."""
    return stats.sent + stats.dropped_full + stats.dropped_rejected + stats.buffered


def participants_in(pilot: PilotSpec, experiment: str, count: int, *, variant: bool = True) -> list[str]:
    """Returns the first `count` opaque ids that get a variant in the experiment (or none, `variant=False`)."""
    spec = next(e for e in pilot.experiments if e.key == experiment)
    ids = (f"p-{i}" for i in itertools.count())
    return list(itertools.islice((pid for pid in ids if (variant_for(pilot, spec, pid) is not None) == variant), count))


# --- batching and delivery ---------------------------------------------------------------------


def test_events_leave_in_batches_of_max_batch_and_the_rest_on_flush(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    client = make_client(source="batching", max_batch=50, flush_interval=60.0)
    ids = [client.track(f"p-{i}", "signup", float(i)) for i in range(120)]

    # Two full batches go at once; the 20 left wait for the flush interval or a flush.
    wait_until(lambda: len(ingest.publisher.accepted_from("batching")) == 100, 10, what="two full batches")
    assert client.stats().buffered == 20
    assert client.flush(10)

    sizes = [len(evs) for _, evs in ingest.publisher.attempts_from("batching")]
    assert sizes == [50, 50, 20]
    accepted = ingest.publisher.accepted_from("batching")
    assert [e["event_id"] for e in accepted] == ids
    assert accepted[7]["pilot_id"] == PILOT
    assert accepted[7]["payload"] == {"action": "signup", "value": 7.0, "session_id": None, "properties": {}}
    assert client.stats() == ClientStats(sent=120, dropped_full=0, dropped_rejected=0, retries=0, buffered=0)


def test_a_partial_batch_leaves_after_the_flush_interval(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    client = make_client(source="interval", max_batch=500, flush_interval=0.2)
    ids = [client.track("p-1", "open_mail") for _ in range(3)]
    wait_until(lambda: len(ingest.publisher.accepted_from("interval")) == 3, 10, what="the partial batch")
    assert [e["event_id"] for e in ingest.publisher.accepted_from("interval")] == ids


def test_503_is_retried_with_growing_backoff_keeping_the_event_ids(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    client = make_client(source="retry", flush_interval=0.05, backoff=0.1, max_backoff=2.0)
    ingest.publisher.fail_next = 3
    ids = [client.track(f"p-{i}", "signup") for i in range(5)]
    assert client.flush(30)

    attempts = ingest.publisher.attempts_from("retry")
    assert len(attempts) == 4
    assert all([e["event_id"] for e in evs] == ids for _, evs in attempts)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(attempts)]
    # Pause k is half of min(max_backoff, backoff * 2^(k-1)) plus up to as much again at random.
    assert [g >= 0.5 * 0.1 * 2**k for k, g in enumerate(gaps)] == [True, True, True]
    assert gaps[2] > gaps[0]
    assert [e["event_id"] for e in ingest.publisher.accepted_from("retry")] == ids
    assert client.stats() == ClientStats(sent=5, dropped_full=0, dropped_rejected=0, retries=3, buffered=0)


def test_a_4xx_answer_drops_the_batch_counts_it_and_logs_the_reason_once(
    ingest: Ingest, make_client: Callable[..., RhizomeClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="rhizome.sdk")
    key = ingest.store.create_api_key(PILOT, "revoked-during-the-test")
    client = make_client(api_key=key, source="revoked", flush_interval=60.0)
    assert client.variant("signup-flow", participants_in(ingest.pilot, "signup-flow", 1)[0]) is not None
    key_id = next(k.id for k in ingest.store.api_keys(PILOT) if k.label == "revoked-during-the-test")
    ingest.store.revoke_api_key(key_id)

    def refused() -> bool:
        answer = httpx.get(f"{ingest.url}/v1/experiments", headers={"Authorization": f"Bearer {key}"})
        return answer.status_code == 401

    wait_until(refused, 10, what="the ingest API to refuse the revoked key")
    client.track("p-1", "signup")
    assert client.flush(10)
    client.track("p-2", "signup")
    client.track("p-3", "signup")
    assert client.flush(10)

    stats = client.stats()
    assert (stats.dropped_rejected, stats.retries, stats.buffered) == (4, 0, 0)  # the exposure and 3 usages
    assert ingest.publisher.accepted_from("revoked") == []
    refusals = [r.getMessage() for r in caplog.records if r.name == "rhizome.sdk"]
    assert len(refusals) == 1
    assert "401" in refusals[0] and "invalid or revoked API key" in refusals[0]


def test_an_unknown_api_key_drops_events_as_rejected(
    make_client: Callable[..., RhizomeClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="rhizome.sdk")
    client = make_client(api_key="not-a-key", source="unknown-key", flush_interval=60.0)
    client.track("p-1", "signup")
    client.track("p-2", "signup")
    assert client.flush(10)
    assert client.stats() == ClientStats(sent=0, dropped_full=0, dropped_rejected=2, retries=0, buffered=0)
    assert any("GET /v1/experiments answered 401" in r.getMessage() for r in caplog.records)


def test_a_full_buffer_drops_the_oldest_events_counts_them_and_warns(
    ingest: Ingest, make_client: Callable[..., RhizomeClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rhizome.sdk")
    ingest.publisher.failing = True
    client = make_client(source="full", max_buffer=100, max_batch=20, flush_interval=0.05, max_backoff=0.2)
    ids = []
    for i in range(250):
        ids.append(client.track(f"p-{i}", "signup"))
        assert accounted(client.stats()) == i + 1
    stats = client.stats()
    assert (stats.dropped_full, stats.buffered, stats.sent) == (150, 100, 0)
    assert [r.getMessage() for r in caplog.records].count(
        "Rhizome SDK buffer full (100 events): dropping the oldest events until the ingest API takes them; "
        "client.stats() counts them"
    ) == 1
    wait_until(lambda: client.stats().retries >= 1, 10, what="a delivery refused with 503")

    ingest.publisher.failing = False
    assert client.flush(30)
    accepted = [e["event_id"] for e in ingest.publisher.accepted_from("full")]
    assert accepted[-100:] == ids[150:]
    # A batch in flight when the API recovered was delivered though the buffer had dropped it: it
    # counts as sent, not dropped.
    early = accepted[:-100]
    if early:
        first = ids.index(early[0])
        assert early == ids[first : first + len(early)]
        assert len(early) <= 20 and first + len(early) <= 150
    stats = client.stats()
    assert (stats.sent, stats.dropped_full, stats.dropped_rejected, stats.buffered) == (
        len(accepted),
        250 - len(accepted),
        0,
        0,
    )
    assert any(f"{250 - len(accepted)} events were dropped" in r.getMessage() for r in caplog.records)


def test_close_sends_what_is_buffered_and_then_refuses_calls(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    with make_client(source="close", flush_interval=60.0) as client:
        ids = [client.track(f"p-{i}", "signup") for i in range(10)]
        ids.append(client.feedback("p-1", "nps", score=9))
        ids.append(client.consent("p-1", granted=False))
    assert [e["event_id"] for e in ingest.publisher.accepted_from("close")] == ids
    assert client.stats() == ClientStats(sent=12, dropped_full=0, dropped_rejected=0, retries=0, buffered=0)
    with pytest.raises(RuntimeError, match="closed"):
        client.track("p-1", "signup")
    with pytest.raises(RuntimeError, match="closed"):
        client.variant("signup-flow", "p-1")


def test_events_recorded_before_the_registry_is_known_carry_the_pilot_id(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    client = make_client(source="early", startup_timeout=0, flush_interval=60.0)
    assert client.variant("signup-flow", "p-1") is None  # no copy of the registry yet
    event_id = client.track("p-1", "signup")
    assert client.flush(10)
    [event] = ingest.publisher.accepted_from("early")
    assert (event["event_id"], event["pilot_id"]) == (event_id, PILOT)


def test_the_buffer_counts_an_event_dropped_in_flight_and_then_delivered_as_sent() -> None:
    buffer = EventBuffer(capacity=5, wake_at=3)
    for i in range(5):
        buffer.put(b"%d" % i)
    in_flight = buffer.front(3, MAX_REQUEST_BYTES)
    for i in range(5, 9):
        buffer.put(b"%d" % i)
    assert [p.data for p in buffer.front(10, MAX_REQUEST_BYTES)] == [b"4", b"5", b"6", b"7", b"8"]
    assert buffer.stats() == ClientStats(sent=0, dropped_full=4, dropped_rejected=0, retries=0, buffered=5)
    buffer.settle(in_flight, sent=True)
    assert buffer.stats() == ClientStats(sent=3, dropped_full=1, dropped_rejected=0, retries=0, buffered=5)
    assert len(buffer.front(10, MAX_REQUEST_BYTES)) == 5


def test_a_batch_stays_under_the_byte_limit_but_holds_at_least_one_event() -> None:
    buffer = EventBuffer(capacity=10, wake_at=10)
    for _ in range(3):
        buffer.put(b"x" * 100)
    assert len(buffer.front(10, 250)) == 2  # [ + 2 x (100 + ,) fits, a third does not
    assert len(buffer.front(10, 250, per_event_overhead=64)) == 2
    buffer.put(b"y" * 100, pilot_pending=True)
    assert len(buffer.front(10, 50)) == 1
    # The event whose pilot_id is still to be stamped counts 64 bytes more (the longest pilot key).
    assert len(buffer.front(10, 2 + 4 * 101 + 64, per_event_overhead=64)) == 4
    assert len(buffer.front(10, 2 + 4 * 101 + 63, per_event_overhead=64)) == 3


# --- calls never block ---------------------------------------------------------------------------


def test_track_returns_while_the_server_holds_its_request(make_client: Callable[..., RhizomeClient]) -> None:
    """track() only buffers: 3,000 calls return while the client's request waits on a server that never
    answers (for up to 60 s). Their cost is measured in benchmarks/bench_sdk.py."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(30)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = make_client(url=url, startup_timeout=0, flush_interval=0.01, request_timeout=60, close_timeout=0.1)
        client.track("p-first", "ride", 1.5)
        held, _ = listener.accept()  # the client's request is in flight, and stays so
        with held:
            done = threading.Event()

            def calls() -> None:
                for i in range(3000):
                    client.track(f"p-{i}", "ride", 1.5, properties={"district": "north"})
                done.set()

            threading.Thread(target=calls, daemon=True).start()
            assert done.wait(30), "track() waited on the network"
            stats = client.stats()
            assert (stats.sent, stats.buffered) == (0, accounted(stats))
            assert stats.buffered >= 3000


def test_variant_is_decided_in_the_process_and_sent_later(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    """variant() sends nothing itself: its exposures wait for the next flush. Its cost is measured in
    benchmarks/bench_sdk.py."""
    client = make_client(source="variant-local", max_batch=1000, flush_interval=60.0)
    client.variant("signup-flow", "t-warm")
    client.flush(10)
    attempts = len(ingest.publisher.attempts_from("variant-local"))
    exposed = len(ingest.publisher.accepted_from("variant-local"))
    variants = [client.variant("signup-flow", f"t-{i}") for i in range(900)]
    assert len(ingest.publisher.attempts_from("variant-local")) == attempts
    assert client.stats().buffered == sum(v is not None for v in variants)
    client.flush(10)
    assert len(ingest.publisher.accepted_from("variant-local")) - exposed == sum(v is not None for v in variants)


# --- assignment and exposures -------------------------------------------------------------------


def test_variant_is_the_assignment_rule_and_the_api_answer(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    client = make_client(source="assignment", flush_interval=60.0, max_batch=1000)
    specs = {e.key: e for e in ingest.pilot.experiments}
    seen: dict[str, set[str | None]] = {key: set() for key in specs}
    for i in range(3000):
        for key, spec in specs.items():
            got = client.variant(key, f"citizen-{i}")
            assert got == variant_for(ingest.pilot, spec, f"citizen-{i}")
            seen[key].add(got)
    # Holdout, layers and allocation all leave some participants out; every variant is reached.
    assert seen == {
        "signup-flow": {None, "control", "short"},
        "welcome-mail": {None, "plain", "friendly"},
        "paused-banner": {None, "hidden", "shown"},
    }
    with httpx.Client(base_url=ingest.url, headers={"Authorization": f"Bearer {ingest.api_key}"}) as api:
        for i in range(40):
            for key in ("signup-flow", "welcome-mail"):
                answer = api.get("/v1/assign", params={"experiment": key, "participant": f"citizen-{i}"}).json()
                assert client.variant(key, f"citizen-{i}") == answer["variant"]


@pytest.fixture(scope="module")
def shared_client(ingest: Ingest) -> Iterator[RhizomeClient]:
    """Returns one client for every example of a property test."""
    with RhizomeClient(ingest.url, ingest.api_key, source="property", secret=SDK_SECRET, flush_interval=60.0) as c:
        yield c


#: Any text the contract takes as a participant id: no control character, no lone surrogate.
opaque_ids = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(participant=opaque_ids | st.emails() | st.from_regex(r"\+?[0-9 ]{9,14}", fullmatch=True))
def test_variant_of_any_id_is_the_rule_applied_to_its_pseudonym(
    ingest: Ingest, shared_client: RhizomeClient, participant: str
) -> None:
    sent_id = safe_participant_id(participant, SDK_SECRET)
    for spec in ingest.pilot.experiments:
        assert shared_client.variant(spec.key, participant) == variant_for(ingest.pilot, spec, sent_id)


def test_an_exposure_is_logged_once_per_participant_and_only_while_running(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    client = make_client(source="exposure", flush_interval=60.0, remembered_exposures=2)
    a, b, c = participants_in(ingest.pilot, "signup-flow", 3)
    for pid in (a, a, a, b, c, c):
        client.variant("signup-flow", pid)
    # Memory holds the two most recent pairs: `a` was forgotten, so its exposure is logged again.
    client.variant("signup-flow", a)
    [outside] = participants_in(ingest.pilot, "signup-flow", 1, variant=False)
    assert client.variant("signup-flow", outside) is None
    [stopped] = participants_in(ingest.pilot, "paused-banner", 1)
    assert client.variant("paused-banner", stopped) in ("hidden", "shown")
    assert client.variant("no-such-experiment", a) is None
    assert client.flush(10)

    exposures = [(e["participant_id"], e["payload"]) for e in ingest.publisher.accepted_from("exposure")]
    spec = ingest.pilot.experiments[0]
    assert exposures == [
        (pid, {"experiment": "signup-flow", "variant": variant_for(ingest.pilot, spec, pid)}) for pid in (a, b, c, a)
    ]


def test_the_registry_copy_is_refreshed_in_the_background(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    spec = """
pilot: {key: sdk-refresh, name: Refresh check, consent: collected_by_service}
experiments:
  - {key: early-banner, variants: {a: 0.5, b: 0.5}, metrics: [{key: clicked, type: proportion, action: click}],
     primary: clicked}
"""
    late = """
  - {key: late-banner, variants: {a: 0.5, b: 0.5}, metrics: [{key: clicked, type: proportion, action: click}],
     primary: clicked}
"""
    api_key = ingest.store.apply_pilot(parse_pilot_spec(spec)).api_key
    client = make_client(api_key=api_key, source="refresh", refresh_interval=0.2, flush_interval=0.05)
    # The ingest API's own registry cache may take a moment to know a new pilot.
    wait_until(lambda: client.variant("early-banner", "p-1") is not None, 15, what="the first copy")
    assert client.variant("late-banner", "p-1") is None
    ingest.store.apply_pilot(parse_pilot_spec(spec + late))
    wait_until(lambda: client.variant("late-banner", "p-1") is not None, 15, what="the new experiment to be seen")


# --- privacy and validation ---------------------------------------------------------------------


def test_identifying_ids_are_pseudonymised_before_they_leave_the_sdk(
    ingest: Ingest, make_client: Callable[..., RhizomeClient]
) -> None:
    # The SDK's key differs from the server's, so the pseudonyms show which side made them.
    client = make_client(source="privacy", flush_interval=60.0)
    ids = ["Ana.Lopez@example.org", "+44 20 7946 0958", "p-opaque-17"]
    for pid in ids:
        client.track(pid, "signup")
    assert client.flush(10)
    sent = [e["participant_id"] for e in ingest.publisher.accepted_from("privacy")]
    assert sent == [pseudonymise(ids[0], SDK_SECRET), pseudonymise(ids[1], SDK_SECRET), "p-opaque-17"]


def test_without_a_secret_identifying_ids_are_refused_without_echoing_them(
    make_client: Callable[..., RhizomeClient], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no rhizome.toml
    monkeypatch.delenv("RHIZOME_SECRET", raising=False)
    client = make_client(source="no-secret", secret=None, flush_interval=60.0)
    for pid in ("ana@example.org", "+34 600 123 456"):
        with pytest.raises(ValueError, match="RHIZOME_SECRET") as caught:
            client.track(pid, "signup")
        assert pid not in str(caught.value)
        with pytest.raises(ValueError, match="opaque id"):
            client.variant("signup-flow", pid)
    assert client.stats().buffered == 0


def test_the_secret_comes_from_the_settings_when_not_given(
    ingest: Ingest, make_client: Callable[..., RhizomeClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RHIZOME_SECRET", "from-the-environment")
    client = make_client(source="env-secret", secret=None, flush_interval=60.0)
    client.track("ana@example.org", "signup")
    assert client.flush(10)
    [event] = ingest.publisher.accepted_from("env-secret")
    assert event["participant_id"] == pseudonymise("ana@example.org", "from-the-environment")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.track("p-1", "not an action!"), "payload.action"),
        (lambda c: c.track("p-1", "ride", float("nan")), "payload.value"),
        (lambda c: c.track("p-1", "ride", properties={"district": "x" * 200}), "payload.properties.district"),
        (lambda c: c.track("p-1", "ride", occurred_at=datetime(2026, 1, 1)), "occurred_at"),
        (lambda c: c.track("", "ride"), "participant"),
        (lambda c: c.track("x" * 129, "ride"), "participant"),
        (lambda c: c.feedback("p-1", "nps", score=11), "payload.score"),
        (lambda c: c.feedback("p-1", "sus", answers=[3, 3, 3]), "payload.answers"),
        (lambda c: c.feedback("p-1", "vote"), "payload.target"),
        (lambda c: c.feedback("p-1", "review", text="nice"), "payload.kind"),
        (lambda c: c.consent("p-1", True, scope="s" * 200), "payload.scope"),
        # The contract's bounds (issue 24): the SDK refuses what the ingest API would.
        (lambda c: c.track("p-\x00", "ride"), "participant"),
        (lambda c: c.track("p-1", "ride", 1e200), "payload.value"),
        (lambda c: c.track("p-1", "ride", session_id="s\n1"), "payload.session_id"),
        (lambda c: c.feedback("p-1", "comment", text="nul \x00 byte"), "payload.text"),
        (lambda c: c.feedback("p-1", "vote", target="x" * 41), "payload.target"),
        (lambda c: c.feedback("p-1", "sus", answers=[3] * 11), "payload.answers"),
        (lambda c: c.feedback("p-1", "rating", score=4, title="A title"), "payload.title"),
        (lambda c: c.track("p-1", "ride", occurred_at=datetime(4, 1, 1, tzinfo=UTC)), "occurred_at"),
        (lambda c: c.track("p-1", "ride", occurred_at=datetime.now(UTC) + timedelta(hours=1)), "occurred_at"),
    ],
)
def test_a_bad_call_raises_value_error_naming_the_field(
    make_client: Callable[..., RhizomeClient], call: Callable[[RhizomeClient], object], field: str
) -> None:
    client = make_client(source="invalid", flush_interval=60.0)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        call(client)
    assert client.stats().buffered == 0


def test_a_source_the_contract_refuses_is_refused_when_the_client_is_made(ingest: Ingest) -> None:
    for source in ("", "app\n1.0", "x" * 129):
        with pytest.raises(ValueError, match="source"):
            RhizomeClient(ingest.url, ingest.api_key, source=source, startup_timeout=0)
