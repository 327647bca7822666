"""Assignment: the hashing rule of docs/pilot-spec.md, its published vectors, holdout and layers."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from experiments.assignment import assign, bucket, holdout_bucket, layer_bucket, variant_for
from experiments.registry import ExperimentSpec, Layer, MetricSpec, PilotSpec

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "experiments" / "data" / "assignment_vectors.json"
PARTICIPANTS = [f"p-{i}" for i in range(100_000)]
#: Enough participants for the other statistical checks, at half the time.
SAMPLE = PARTICIPANTS[:50_000]
#: Below this a statistical check fails; a correct implementation fails it one run in a thousand.
P_FLOOR = 0.001


def _load_vector_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_assignment_vectors", ROOT / "tools" / "make_assignment_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _experiment(key: str, variants: tuple[tuple[str, float], ...], layer: Layer | None = None) -> ExperimentSpec:
    metric = MetricSpec(key="trip_completed", type="proportion", action="trip_completed")
    return ExperimentSpec(key=key, variants=variants, metrics=(metric,), primary="trip_completed", layer=layer)


def _split_p_value(counts: Counter[str | None], weights: dict[str, float]) -> float:
    observed = [counts[name] for name in weights]
    total = sum(observed)
    expected = [total * weight for weight in weights.values()]
    return float(stats.chisquare(observed, expected).pvalue)


def test_100000_participants_split_according_to_the_weights() -> None:
    weights = {"control": 0.2, "guided": 0.3, "tour": 0.5}
    counts = Counter(assign("onboarding-v2", pid, weights) for pid in PARTICIPANTS)
    assert set(counts) == set(weights)
    assert _split_p_value(counts, weights) > P_FLOOR


def test_assignments_of_two_experiments_are_independent() -> None:
    first = [assign("onboarding-v2", pid, {"control": 0.5, "guided": 0.5}) for pid in SAMPLE]
    second = [assign("fare-cap", pid, {"control": 0.3, "cap": 0.3, "free": 0.4}) for pid in SAMPLE]
    table = Counter(zip(first, second, strict=True))
    contingency = [[table[a, b] for b in ("control", "cap", "free")] for a in ("control", "guided")]
    assert stats.chi2_contingency(contingency).pvalue > P_FLOOR


def test_allocation_below_one_leaves_the_top_of_the_range_unassigned() -> None:
    weights = {"control": 0.5, "cap": 0.5}
    results = [(bucket("fare-cap", pid), assign("fare-cap", pid, weights, allocation=0.3)) for pid in SAMPLE]
    assert all((variant is None) == (value >= 0.3) for value, variant in results)
    assert all(variant == "control" for value, variant in results if value < 0.15)
    assigned = sum(variant is not None for _, variant in results)
    assert stats.binomtest(assigned, len(results), 0.3).pvalue > P_FLOOR
    assert _split_p_value(Counter(variant for _, variant in results if variant), weights) > P_FLOOR


def test_variants_take_ranges_in_declaration_order() -> None:
    for pid in SAMPLE[:2000]:
        forward = assign("onboarding-v2", pid, {"control": 0.25, "guided": 0.75})
        backward = assign("onboarding-v2", pid, {"guided": 0.75, "control": 0.25})
        value = bucket("onboarding-v2", pid)
        assert forward == ("control" if value < 0.25 else "guided")
        assert backward == ("guided" if value < 0.75 else "control")


def test_a_mapping_and_a_list_of_pairs_assign_alike() -> None:
    pairs = [("a", 0.1), ("b", 0.2), ("c", 0.7)]
    assert all(
        assign("map", pid, pairs, "v3", 0.9) == assign("map", pid, dict(pairs), "v3", 0.9) for pid in SAMPLE[:2000]
    )


def test_the_salt_changes_the_bucket() -> None:
    unsalted = [bucket("onboarding-v2", pid) for pid in SAMPLE[:1000]]
    salted = [bucket("onboarding-v2", pid, "2026-11") for pid in SAMPLE[:1000]]
    assert sum(a == b for a, b in zip(unsalted, salted, strict=True)) == 0


def test_published_vectors_match() -> None:
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert len(vectors) >= 300
    for vector in vectors:
        variants = [(name, weight) for name, weight in vector["variants"]]
        assert bucket(vector["experiment"], vector["participant"], vector["salt"]) == vector["bucket"], vector
        got = assign(vector["experiment"], vector["participant"], variants, vector["salt"], vector["allocation"])
        assert got == vector["variant"], vector


def test_published_vectors_cover_what_sdks_must_get_right() -> None:
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert any(v["allocation"] < 1 and v["variant"] is None for v in vectors)
    assert any(len(v["variants"]) >= 3 for v in vectors)
    assert any(not v["participant"].isascii() for v in vectors)
    assert {v["salt"] == "" for v in vectors} == {True, False}


def test_published_vectors_are_what_the_tool_writes() -> None:
    tool = _load_vector_tool()
    assert VECTORS.read_text(encoding="utf-8") == tool.render(tool.make_vectors())


def test_buckets_do_not_depend_on_the_process() -> None:
    code = "from experiments.assignment import bucket; print(repr(bucket('onboarding-v2', 'p-1842', 's')))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {repr(bucket("onboarding-v2", "p-1842", "s"))}


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=20))
def test_bucket_is_the_documented_hash_in_the_unit_interval(experiment: str, participant: str, salt: str) -> None:
    value = bucket(experiment, participant, salt)
    digest = hashlib.sha256(f"{experiment}:{salt}:{participant}".encode()).digest()
    assert value == float(Fraction(int.from_bytes(digest[:8], "big"), 2**64))
    assert 0.0 <= value < 1.0
    assert bucket(experiment, participant, salt) == value


@given(
    st.text(max_size=30),
    st.lists(st.integers(1, 20), min_size=1, max_size=6),
    st.floats(0.01, 1.0),
)
def test_assign_picks_a_declared_variant_inside_the_allocation(
    participant: str, parts: list[int], allocation: float
) -> None:
    variants = [(f"v{i}", part / sum(parts)) for i, part in enumerate(parts)]
    variant = assign("nudge", participant, variants, allocation=allocation)
    assert (variant is None) == (bucket("nudge", participant) >= allocation)
    assert variant is None or variant in dict(variants)


@pytest.mark.parametrize(
    ("variants", "allocation", "message"),
    [
        ({}, 1.0, r"variants == \[\], must name at least one variant"),
        ({"a": 0.5, "b": 0.5}, 0.0, r"allocation == 0.0, must be in \(0, 1\]"),
        ({"a": 0.5, "b": 0.4}, 1.0, r"variant weights == \[0.5, 0.4\], must be positive and sum to 1"),
        ({"a": 1.5, "b": -0.5}, 1.0, r"must be positive"),
    ],
)
def test_assign_refuses_variants_it_cannot_split(variants: dict[str, float], allocation: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assign("x", "p-1", variants, allocation=allocation)


def test_the_holdout_takes_its_share_of_participants_out_of_every_experiment() -> None:
    weights = (("control", 0.5), ("guided", 0.5))
    experiments = (_experiment("onboarding-v2", weights), _experiment("fare-cap", weights))
    pilot = PilotSpec(key="bike-share", name="Bike share", holdout=0.1, experiments=experiments)
    held_out = [pid for pid in SAMPLE if holdout_bucket("bike-share", pid) < 0.1]
    assert stats.binomtest(len(held_out), len(SAMPLE), 0.1).pvalue > P_FLOOR
    assert all(variant_for(pilot, e, pid) is None for e in experiments for pid in held_out[:2000])
    counts = Counter(variant_for(pilot, experiments[0], pid) for pid in SAMPLE)
    assert counts[None] == len(held_out)
    assert _split_p_value(counts, dict(weights)) > P_FLOOR


def test_experiments_of_one_layer_are_mutually_exclusive() -> None:
    weights = (("control", 0.5), ("guided", 0.5))
    first = _experiment("onboarding-v2", weights, Layer("onboarding", 0.0, 0.4))
    second = _experiment("onboarding-v3", weights, Layer("onboarding", 0.4, 1.0))
    other = _experiment("fare-cap", weights, Layer("pricing"))
    pilot = PilotSpec(key="bike-share", name="Bike share", experiments=(first, second, other))
    firsts = [variant_for(pilot, first, pid) for pid in SAMPLE]
    seconds = [variant_for(pilot, second, pid) for pid in SAMPLE]
    assert all((a is None) != (b is None) for a, b in zip(firsts, seconds, strict=True))
    in_first = sum(a is not None for a in firsts)
    assert stats.binomtest(in_first, len(SAMPLE), 0.4).pvalue > P_FLOOR
    assert all(
        (variant is not None) == (layer_bucket("bike-share", "onboarding", pid) < 0.4)
        for pid, variant in zip(SAMPLE[:2000], firsts, strict=False)
    )
    # The layer bucket is independent of the experiment's: the slice still splits 50/50,
    # and an experiment alone in another layer still sees everyone.
    assert _split_p_value(Counter(firsts), dict(weights)) > P_FLOOR
    assert all(variant_for(pilot, other, pid) is not None for pid in SAMPLE[:2000])


def test_layers_of_different_names_are_independent() -> None:
    onboarding = [layer_bucket("bike-share", "onboarding", pid) < 0.5 for pid in SAMPLE]
    pricing = [layer_bucket("bike-share", "pricing", pid) < 0.5 for pid in SAMPLE]
    table = Counter(zip(onboarding, pricing, strict=True))
    contingency = [[table[a, b] for b in (True, False)] for a in (True, False)]
    assert stats.chi2_contingency(contingency).pvalue > P_FLOOR


def test_holdout_and_layer_hash_inputs_are_the_documented_ones() -> None:
    def unit(text: str) -> float:
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64

    assert holdout_bucket("bike-share", "p-1842") == unit("#holdout:bike-share:p-1842")
    assert layer_bucket("bike-share", "onboarding", "p-1842") == unit("#layer:bike-share:onboarding:p-1842")
