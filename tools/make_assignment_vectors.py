"""Writes experiments/data/assignment_vectors.json: the published test vectors of assignment.

Run `python tools/make_assignment_vectors.py`; the output is the same on every run. The rule is
implemented here a second time, from its text in docs/pilot-spec.md,
without importing `experiments.assignment`, so the vectors check that module rather than echo it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "experiments" / "data" / "assignment_vectors.json"
SEED = 20261126
GENERATED_PER_EXPERIMENT = 18
#: Candidate ids searched for the ones nearest to each range boundary of an experiment.
BOUNDARY_POOL = 3000

#: (experiment key, salt, allocation, variants in declaration order)
EXPERIMENTS: list[tuple[str, str, float, list[tuple[str, float]]]] = [
    ("onboarding-v2", "", 1.0, [("control", 0.5), ("guided", 0.5)]),
    ("onboarding-v2", "2026-11", 1.0, [("control", 0.5), ("guided", 0.5)]),
    ("fare-cap", "", 0.3, [("control", 0.5), ("cap", 0.5)]),
    ("map-layout", "v3", 1.0, [("a", 0.1), ("b", 0.2), ("c", 0.7)]),
    (
        "reminder-timing",
        "",
        0.8,
        [("control", 0.25), ("morning", 0.25), ("evening", 0.25), ("weekend", 0.25)],
    ),
    ("parking-hints", "sälz:ü", 0.55, [("control", 1 / 3), ("arrows", 1 / 3), ("photos", 1 / 3)]),
    ("tariff.v2:beta", "", 1.0, [("control", 0.9), ("treatment", 0.1)]),
    ("feedback-form", "round 2", 0.05, [("short", 0.5), ("long", 0.5)]),
    ("nudge", "", 0.999, [("v1", 0.2), ("v2", 0.2), ("v3", 0.2), ("v4", 0.2), ("v5", 0.2)]),
    ("Station_Map", "x", 0.7, [("control", 0.6), ("heatmap", 0.3), ("list", 0.1)]),
]

#: Ids every experiment is checked on: non-ASCII, combining characters (no normalisation), colons.
FIXED_PARTICIPANTS = [
    "p-1842",
    "citoyen-é",
    "Zoë",
    "Zoe\u0308",
    "市民-42",
    "🚲-rider",
    "a:b:c",
    "h-5f0c2d9e4b7a4e1f8c3d2b1a09f8e7d6",
]


def unit_interval(text: str) -> float:
    """Returns the first 8 bytes of SHA-256(text), read as an unsigned big-endian integer, over 2^64."""
    prefix = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return math.ldexp(float(int(prefix, 16)), -64)


def upper_bounds(allocation: float, variants: list[tuple[str, float]]) -> list[float]:
    """Returns where each variant's range ends: allocation times the running sum of the weights,
    and exactly `allocation` for the last variant."""
    bounds: list[float] = []
    running = 0.0
    for _, weight in variants[:-1]:
        running += weight
        bounds.append(allocation * running)
    return [*bounds, allocation]


def variant_of(value: float, allocation: float, variants: list[tuple[str, float]]) -> str | None:
    """Returns the variant whose range holds `value`, or None at or above `allocation`."""
    index = bisect.bisect_right(upper_bounds(allocation, variants), value)
    return variants[index][0] if index < len(variants) else None


def near_boundaries(key: str, salt: str, allocation: float, variants: list[tuple[str, float]]) -> list[str]:
    """Returns, for each range boundary, the candidate ids whose buckets are nearest below and above it:
    the vectors most likely to catch a different range arithmetic."""
    candidates = [(unit_interval(f"{key}:{salt}:b-{i}"), f"b-{i}") for i in range(BOUNDARY_POOL)]
    chosen: list[str] = []
    for bound in upper_bounds(allocation, variants):
        below = [c for c in candidates if c[0] < bound]
        above = [c for c in candidates if c[0] >= bound]
        chosen += [max(below)[1]] if below else []
        chosen += [min(above)[1]] if above else []
    return chosen


def make_vectors() -> list[dict[str, object]]:
    """Returns the test vectors: every experiment above on the fixed ids, generated ids and the ids
    nearest to its range boundaries."""
    rng = random.Random(SEED)
    vectors: list[dict[str, object]] = []
    for key, salt, allocation, variants in EXPERIMENTS:
        generated = [f"p-{rng.randrange(10**6):06d}" for _ in range(GENERATED_PER_EXPERIMENT // 2)]
        generated += [f"{rng.getrandbits(64):016x}" for _ in range(GENERATED_PER_EXPERIMENT // 2)]
        boundary = near_boundaries(key, salt, allocation, variants)
        for participant in FIXED_PARTICIPANTS + generated + boundary:
            hash_input = f"{key}:{salt}:{participant}"
            value = unit_interval(hash_input)
            vectors.append(
                {
                    "experiment": key,
                    "salt": salt,
                    "participant": participant,
                    "allocation": allocation,
                    "variants": [[name, weight] for name, weight in variants],
                    "hash_prefix": hashlib.sha256(hash_input.encode("utf-8")).hexdigest()[:16],
                    "bucket": value,
                    "variant": variant_of(value, allocation, variants),
                }
            )
    return vectors


def render(vectors: list[dict[str, object]]) -> str:
    """Returns the vectors as the JSON text of the published file, one vector per line."""
    lines = ",\n".join(json.dumps(vector, ensure_ascii=False) for vector in vectors)
    return f"[\n{lines}\n]\n"


def main() -> None:
    OUTPUT.write_text(render(make_vectors()), encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
