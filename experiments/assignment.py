"""Which variant a participant gets: deterministic hashing that any SDK, in any language, reproduces.

The rule (`docs/pilot-spec.md`, "Assignment"):

- A participant's bucket in an experiment is the first 8 bytes, big-endian, of
  SHA-256 of the UTF-8 bytes of `"<experiment key>:<salt>:<participant id>"`, divided by 2^64.
  The quotient is rounded to the nearest double, as every language's integer-to-double
  conversion does; so the 1,024 highest hash values give exactly 1.0 (probability 2^-54).
- Variant i of n, declared in that order with weights w_0 .. w_{n-1}, takes the range
  [allocation * c_i, allocation * c_{i+1}) where c_0 = 0, c_i = w_0 + ... + w_{i-1} added left to
  right in double precision, and c_n = 1 exactly. A bucket at or above `allocation` gets no variant.
- On top of that rule, `variant_for` applies the pilot-wide holdout and the experiment's layer,
  each with a bucket of its own (see `holdout_bucket` and `layer_bucket`). Their hash inputs start
  with `#`, which no experiment key can, so they never coincide with an experiment's bucket input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from experiments.registry import WEIGHT_TOLERANCE, ExperimentSpec, PilotSpec


def _unit_interval(hash_input: str) -> float:
    """Returns the first 8 bytes of SHA-256(hash_input), big-endian, divided by 2^64."""
    digest = hashlib.sha256(hash_input.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def bucket(experiment_key: str, participant_id: str, salt: str = "") -> float:
    """Returns the participant's bucket in the experiment: a number in [0, 1], below 1 but for 2^-54 of ids.

    It is the first 8 bytes, big-endian, of SHA-256("<experiment key>:<salt>:<participant id>")
    (UTF-8, no Unicode normalisation) divided by 2^64, rounded to the nearest double; the 1,024
    highest hash values round to exactly 1.0, which is outside every allocation.
    """
    return _unit_interval(f"{experiment_key}:{salt}:{participant_id}")


def holdout_bucket(pilot_key: str, participant_id: str) -> float:
    """Returns the participant's pilot-wide holdout bucket, mapped to [0, 1) as in `bucket`.

    The hash input is "#holdout:<pilot key>:<participant id>"; a participant whose holdout bucket
    is below the pilot's `holdout` is in none of its experiments.
    """
    return _unit_interval(f"#holdout:{pilot_key}:{participant_id}")


def layer_bucket(pilot_key: str, layer_name: str, participant_id: str) -> float:
    """Returns the participant's bucket in one of the pilot's layers, mapped to [0, 1) as in `bucket`.

    The hash input is "#layer:<pilot key>:<layer name>:<participant id>"; an experiment of the
    layer applies to the participant when this bucket is in [layer.start, layer.end).
    """
    return _unit_interval(f"#layer:{pilot_key}:{layer_name}:{participant_id}")


def assign(
    experiment_key: str,
    participant_id: str,
    variants: Mapping[str, float] | Sequence[tuple[str, float]],
    salt: str = "",
    allocation: float = 1.0,
) -> str | None:
    """Returns the variant the participant gets, or None when the bucket is outside the allocation.

    `variants` maps names to weights (or lists (name, weight) pairs) in declaration order. Variant i
    takes [allocation * c_i, allocation * c_{i+1}) with c_i the running sum of the weights declared
    before it (left to right) and c_n = 1, so the last range ends at `allocation` exactly and
    [allocation, 1) is unassigned.
    """
    pairs = list(variants.items()) if isinstance(variants, Mapping) else list(variants)
    if not pairs:
        raise ValueError("variants == [], must name at least one variant")
    if not 0.0 < allocation <= 1.0:
        raise ValueError(f"allocation == {allocation!r}, must be in (0, 1]")
    weights = [weight for _, weight in pairs]
    if any(not weight > 0.0 for weight in weights) or abs(sum(weights) - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"variant weights == {weights!r}, must be positive and sum to 1")
    value = bucket(experiment_key, participant_id, salt)
    if value >= allocation:
        return None
    cumulative = 0.0
    for name, weight in pairs[:-1]:
        cumulative += weight
        if value < allocation * cumulative:
            return name
    return pairs[-1][0]


def variant_for(pilot: PilotSpec, experiment: ExperimentSpec, participant_id: str) -> str | None:
    """Returns the variant the participant sees in one of the pilot's experiments, or None.

    None when the participant is in the pilot's holdout (holdout bucket below `pilot.holdout`),
    outside the experiment's slice of its layer (layer bucket not in [layer.start, layer.end)), or
    outside the experiment's allocation; otherwise `assign` with the experiment's key, variants,
    salt and allocation.
    """
    if pilot.holdout > 0.0 and holdout_bucket(pilot.key, participant_id) < pilot.holdout:
        return None
    layer = experiment.layer
    if layer is not None:
        position = layer_bucket(pilot.key, layer.name, participant_id)
        if not layer.start <= position < layer.end:
            return None
    return assign(experiment.key, participant_id, experiment.variants, experiment.salt, experiment.allocation)
