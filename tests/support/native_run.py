"""Runs the processor on the events of a JSON file and prints what it computed, as JSON; run in a
subprocess by tests/unit/test_native.py, once on the compiled build and once as Python.

    python -m tests.support.native_run EVENTS.json

The events are applied as the worker applies them (Kafka records of a fetch grouped by participant and
decoded by the worker's own functions, states stored as bytes between batches, kept parsed in
`LiveStates`), in batches of 500: every event twice, then events
dated too late, an invalid record and the first participant's erasure. Printed: whether the modules
ran compiled, every aggregate sum, the states, and every dead letter, text and count of the outcome.
"""

from __future__ import annotations

import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

import experiments.attribution
import streams.processor
from experiments.attribution import ExperimentRuntime, PilotRuntime
from experiments.native import compiled
from experiments.specs import parse_pilot_spec
from streams.events import encode_erasure
from streams.processor import LiveStates, Outcome, Processor, Registry, by_participant, decoded_chunk
from tests.support.records import worker_record

SPEC = Path(__file__).resolve().parents[2] / "examples" / "bike-share.yaml"
ERASURE = "ns.erasure"
BATCH = 500


def run(events: list[dict[str, Any]], clock: float) -> dict[str, Any]:
    spec = parse_pilot_spec(SPEC.read_text())
    experiments_ = {e.key: ExperimentRuntime(e, "running") for e in spec.experiments}
    proc = Processor(
        Registry.of({spec.key: PilotRuntime(spec, experiments_)}), grace_ms=86_400_000, clock=lambda: clock
    )
    # Late (dated at the first event, more than the grace before the newest) and invalid records.
    late = [
        {**ev, "event_id": f"00000000-0000-4000-8000-{i:012x}", "occurred_at": events[0]["occurred_at"]}
        for i, ev in enumerate(events[-20:])
    ]
    records = [
        (ev["participant_id"].encode(), f"ns.{ev['type']}", orjson.dumps(ev)) for ev in [*events, *events[::-1], *late]
    ]
    records.append((b"someone", "ns.usage", b'{"type": "usage"'))
    first = events[0]["participant_id"]
    records.append((first.encode(), ERASURE, encode_erasure(first, datetime.fromtimestamp(clock, UTC))))
    states: dict[bytes, bytes] = {}
    live = LiveStates(200)
    outcome = Outcome()
    for start in range(0, len(records), BATCH):
        fetch = [
            worker_record(topic, zlib.crc32(key) % 4, offset, key, value)
            for offset, (key, topic, value) in enumerate(records[start : start + BATCH], start)
        ]
        groups = by_participant(fetch)
        chunk = decoded_chunk(groups, groups, ERASURE)
        got, _changed = proc.process_chunk(states, chunk, live)
        outcome.dead_letters += got.dead_letters
        outcome.texts += got.texts
        outcome.applied += got.applied
        outcome.duplicates += got.duplicates
        proc.end_batch()
    return {
        "compiled": [compiled(experiments.attribution), compiled(streams.processor)],
        "sums": sorted((p, repr(k), v) for p, part in proc.aggregates.everything().items() for k, v in part.items()),
        # Without the time each was written at.
        "dead_letters": [{k: v for k, v in orjson.loads(d).items() if k != "at"} for d in outcome.dead_letters],
        "texts": [repr(t) for t in outcome.texts],
        "applied": outcome.applied,
        "duplicates": outcome.duplicates,
        "states": {k.decode(): v.decode() for k, v in sorted(states.items())},
    }


if __name__ == "__main__":
    doc = orjson.loads(Path(sys.argv[1]).read_bytes())
    sys.stdout.buffer.write(orjson.dumps(run(doc["events"], doc["clock"])))
