"""Every default of the stats engine, in one place; each can be overridden per request or per call."""

from __future__ import annotations

from typing import Final, Literal

Engine = Literal["frequentist", "sequential", "bayesian"]
Difference = Literal["relative", "absolute"]
Correction = Literal["none", "holm", "bh"]
MetricType = Literal["proportion", "mean", "ratio"]

ENGINES: Final[tuple[Engine, ...]] = ("frequentist", "sequential", "bayesian")
DIFFERENCES: Final[tuple[Difference, ...]] = ("relative", "absolute")
CORRECTIONS: Final[tuple[Correction, ...]] = ("none", "holm", "bh")
METRIC_TYPES: Final[tuple[MetricType, ...]] = ("proportion", "mean", "ratio")

ENGINE: Final[Engine] = "frequentist"
DIFFERENCE: Final[Difference] = "relative"
ALPHA: Final = 0.05
#: N*, the sample size at which the sequential confidence sequence is tightest (Waudby-Smith et al. 2021).
SEQUENTIAL_TUNING: Final = 5000.0
CORRECTION: Final[Correction] = "none"
#: An SRM p-value below this flags a sample-ratio mismatch.
SRM_THRESHOLD: Final = 0.001
#: Planning: the probability of detecting the minimum detectable effect.
POWER: Final = 0.8
#: Planning: the share of units in control and in treatment.
WEIGHTS: Final = (0.5, 0.5)

#: Calibration simulations: how many A/A experiments, of how many units per arm, with which seed.
CALIBRATION_EXPERIMENTS: Final = 4000
CALIBRATION_UNITS: Final = 1000
CALIBRATION_SEED: Final = 20261126
#: Continuous peeking: analyses per experiment, and units per arm added between two analyses.
CALIBRATION_LOOKS: Final = 40
CALIBRATION_UNITS_PER_LOOK: Final = 250
