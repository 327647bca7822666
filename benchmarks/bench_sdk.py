"""What an SDK call costs the pilot service that makes it, beside a baseline measured in the same run.

- `track()` while the ingest API holds the client's request and never answers, against the least a
  buffered call can cost: the same event serialised (orjson) and appended to a deque.
- `variant()` with the pilot's spec fetched, against the assignment rule alone (`variant_for`).

Each figure is the p50 and p99 of a round of calls, in microseconds; the best of three rounds, as
the machine is shared and a round disturbed by another process says nothing about the call.
"""

from __future__ import annotations

import json
import socket
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from experiments.assignment import variant_for
from experiments.settings import load_settings
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from services.ingest.app import create_app
from services.ingest.publisher import Publisher
from services.sdk import RhizomeClient

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-output"
SECRET = "bench-sdk-secret"
SPEC = """
pilot: {key: bench-sdk, name: SDK bench, consent: collected_by_service}
experiments:
  - key: signup-flow
    variants: {control: 0.5, short: 0.5}
    metrics: [{key: signed_up, type: proportion, action: signup, window_days: 7}]
    primary: signed_up
"""


class Discarding(Publisher):
    """Accepts every batch without Kafka: the bench measures the caller's side only."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:9", client_id="bench-sdk")

    def publish(self, records: Any, timeout: float = 0.0) -> None:
        del records, timeout

    def close(self) -> None:
        """No producer was made."""


def percentiles_us(call: Callable[[int], object], calls: int, rounds: int = 3) -> dict[str, float]:
    call(-1)
    best: tuple[float, float] | None = None
    for r in range(rounds):
        durations = []
        for i in range(calls):
            started = time.perf_counter_ns()
            call(r * calls + i)
            durations.append(time.perf_counter_ns() - started)
        cuts = statistics.quantiles(durations, n=100)
        result = (cuts[98] / 1e3, cuts[49] / 1e3)
        best = result if best is None else min(best, result)
    assert best is not None
    return {"p50_us": round(best[1], 1), "p99_us": round(best[0], 1)}


def track_costs() -> dict[str, Any]:
    event = {"participant_id": "p-0", "action": "ride", "value": 1.5, "properties": {"district": "north"}}
    floor: deque[bytes] = deque(maxlen=10_000)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = RhizomeClient(
            url, "rhz_bench", secret=SECRET, startup_timeout=0, flush_interval=0.01, request_timeout=60,
            close_timeout=0.1, max_buffer=20_000,
        )  # fmt: skip
        try:
            track = percentiles_us(
                lambda i: client.track(f"p-{i}", "ride", 1.5, properties={"district": "north"}), 3000
            )
        finally:
            client.close()
    baseline = percentiles_us(lambda i: floor.append(orjson.dumps(event | {"participant_id": f"p-{i}"})), 3000)
    return {"track_while_server_stalls": track, "baseline_serialise_and_append": baseline}


def variant_costs() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {"RHIZOME_STATE_DIR": tmp, "RHIZOME_SECRET": "bench", "RHIZOME_DATABASE_URL": f"sqlite:///{tmp}/r.db"}
        )
        store = Store(settings.database_url)
        store.migrate()
        pilot = parse_pilot_spec(SPEC)
        api_key = store.apply_pilot(pilot).api_key
        assert api_key is not None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, store, Discarding()), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off",
            )
        )  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the ingest app did not start in 30 s")
            time.sleep(0.02)
        client = RhizomeClient(f"http://127.0.0.1:{port}", api_key, secret=SECRET, max_batch=1000, flush_interval=60)
        try:
            # A batch never fills during a round, so the in-process server does not compete for the GIL.
            variant = percentiles_us(lambda i: client.variant("signup-flow", f"t-{i}"), 900)
        finally:
            client.close()
            server.should_exit = True
            thread.join(timeout=30)
            store.close()
    spec = pilot.experiments[0]
    baseline = percentiles_us(lambda i: variant_for(pilot, spec, f"t-{i}"), 900)
    return {"variant": variant, "baseline_assignment_rule": baseline}


def main() -> dict[str, Any]:
    OUT.mkdir(exist_ok=True)
    results = {"track": track_costs(), "variant": variant_costs()}
    (OUT / "sdk.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
