"""The event contract's cost and the ingest API's memory, each beside a baseline measured in the same run.

1. Decoding: events/s of `streams.events.decode_event` (the worker's and the ingest API's door: JSON
   text to a checked event) on the simulator's events, beside the previous release's decoder (msgspec
   structs with a fallback to the pydantic contract, streams/wire.py at `PREVIOUS`, read from git),
   beside parsing the same texts into plain values with msgspec and with orjson (no checks), and of
   `parse_event` (the SDK's door, from plain values). Best of `REPEATS` passes, on one core: this
   machine's speed drifts several-fold with its load, so compare figures of one run only.
2. The API-key cache (issue 24, 5): the ingest process's resident memory after 10,000 requests with
   the right key (the baseline), then after 10,000 with wrong 12 KB keys, then after 10,000 with wrong
   keys of the right format; and the same three rounds with the cache as it was before (every key
   looked up and kept, none refused for its format), in a process of its own.

Run with `make bench` (or `python -m benchmarks.bench_ingest`); writes bench-output/ingest.json.
"""

from __future__ import annotations

import gc
import json
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-output"
#: The last commit with the previous decoder (streams/wire.py and the pydantic contract).
PREVIOUS = "9d56c55"
PARTICIPANTS = 4_000
REPEATS = 5
REQUESTS = 10_000
KEY_BYTES = 12_000


def sample_records() -> list[bytes]:
    from experiments.specs import parse_pilot_spec
    from services.simulator.citizens import BEHAVIOURS, generate

    spec = parse_pilot_spec((ROOT / "examples" / "bike-share.yaml").read_text())
    end = datetime.now(UTC) - timedelta(minutes=5)
    events = generate(BEHAVIOURS["bike-share"], spec, end - timedelta(days=10), end, PARTICIPANTS, seed=5)
    return [orjson.dumps(e) for e in events]


def rates(readers: dict[str, tuple[Callable[[Any], object], list[Any]]]) -> dict[str, float]:
    """Returns items/s of each reader over its items, the best of REPEATS passes; the readers take
    turns within each pass, so that the machine's drift weighs on all of them alike."""
    best = dict.fromkeys(readers, float("inf"))
    for _ in range(REPEATS):
        for name, (read, items) in readers.items():
            began = time.perf_counter()
            for item in items:
                read(item)
            best[name] = min(best[name], time.perf_counter() - began)
    return {name: len(readers[name][1]) / best[name] for name in readers}


def previous_decoder() -> Callable[[bytes], object]:
    """Returns the previous release's `streams.wire.decode`, loaded from git as a package of its own
    (`previous`) beside this one."""
    package = Path(tempfile.mkdtemp(prefix="rhizome-bench-previous-")) / "previous"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("events", "wire"):
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS}:streams/{name}.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        (package / f"{name}.py").write_text(source.replace("from streams.events import", "from previous.events import"))
    sys.path.insert(0, str(package.parent))
    from previous import wire  # type: ignore[import-not-found]

    decode: Callable[[bytes], object] = wire.decode
    return decode


def decoding() -> dict[str, Any]:
    from streams.events import decode_event, parse_event

    records = sample_records()
    plain = [orjson.loads(r) for r in records]
    previous = previous_decoder()
    figures: dict[str, float] = rates(
        {
            "decode_event_per_s": (decode_event, records),
            "previous_decoder_per_s": (previous, records),
            "msgspec_plain_per_s": (msgspec.json.decode, records),
            "orjson_plain_per_s": (orjson.loads, records),
            "parse_event_per_s": (parse_event, plain),
        }
    )
    figures["events"] = len(records)
    figures["decode_event_us"] = 1e6 / figures["decode_event_per_s"]
    figures["ratio_to_previous_decoder"] = figures["decode_event_per_s"] / figures["previous_decoder_per_s"]
    figures["ratio_to_msgspec_plain"] = figures["decode_event_per_s"] / figures["msgspec_plain_per_s"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}


def key_memory(as_before: bool) -> dict[str, Any]:
    """Runs the three rounds of requests (see the module) in this process; returns its RSS after each."""
    from fastapi.testclient import TestClient

    from experiments.settings import load_settings
    from experiments.specs import parse_pilot_spec
    from experiments.store import Store
    from services.assignment import service
    from services.ingest.app import create_app
    from services.ingest.publisher import Publisher

    tmp = Path(tempfile.mkdtemp(prefix="rhizome-bench-keys-"))
    store = Store(f"sqlite:///{tmp / 'rhizome.db'}")
    store.migrate()
    key = store.apply_pilot(parse_pilot_spec((ROOT / "examples" / "bike-share.yaml").read_text())).api_key
    settings = load_settings({"RHIZOME_STATE_DIR": str(tmp), "RHIZOME_SECRET": "bench"})
    app = create_app(settings, store, Publisher("127.0.0.1:1"))
    cache = app.state.ingest.registry
    if as_before:
        service.API_KEY_FORMAT = re.compile(r".*", re.DOTALL)
        cache.keys_cached_limit = sys.maxsize
    process = psutil.Process()
    client = TestClient(app)

    def round_(keys: Callable[[int], str]) -> float:
        for i in range(REQUESTS):
            client.get("/v1/experiments", headers={"Authorization": f"Bearer {keys(i)}"})
        gc.collect()
        rss: int = process.memory_info().rss
        return rss / 2**20

    out: dict[str, float] = {"rss_mib_at_start": process.memory_info().rss / 2**20}
    out["rss_mib_after_right_key"] = round_(lambda _: key or "")
    out["rss_mib_after_wrong_12kb_keys"] = round_(lambda _: "rhz_" + secrets.token_urlsafe(KEY_BYTES)[:KEY_BYTES])
    out["rss_mib_after_wrong_keys_of_the_format"] = round_(lambda _: "rhz_" + secrets.token_urlsafe(32))
    out["growth_mib_over_right_key"] = out["rss_mib_after_wrong_keys_of_the_format"] - out["rss_mib_after_right_key"]
    return {**{k: round(v, 1) for k, v in out.items()}, "keys_cached": cache.keys_cached}


def main() -> dict[str, Any]:
    OUT.mkdir(exist_ok=True)
    results: dict[str, Any] = {"decoding": decoding()}
    # Each cache in a process of its own: freed memory is not always given back to the system.
    for name, flag in (("api_key_cache", []), ("api_key_cache_as_before", ["--as-before"])):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_ingest", "--keys", *flag],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(done.stdout)
    (OUT / "ingest.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if "--keys" in sys.argv:
        print(json.dumps(key_memory(as_before="--as-before" in sys.argv)))
    else:
        print(json.dumps(main(), indent=2))
