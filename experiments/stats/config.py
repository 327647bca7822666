"""Every default of the stats engine, in one place; each can be overridden per request or per call."""

from __future__ import annotations

from typing import Final, Literal

Engine = Literal["frequentist", "sequential", "bayesian"]
Difference = Literal["relative", "absolute"]
Correction = Literal["none", "holm", "bh"]
MetricType = Literal["proportion", "mean", "ratio"]
#: How a relative difference gets its interval: the delta method of gbstats 0.8.0, or the calibrated one
#: (Fieller's theorem; named "log" in the analysis contract).
RelativeInterval = Literal["gbstats", "log"]

ENGINES: Final[tuple[Engine, ...]] = ("frequentist", "sequential", "bayesian")
DIFFERENCES: Final[tuple[Difference, ...]] = ("relative", "absolute")
CORRECTIONS: Final[tuple[Correction, ...]] = ("none", "holm", "bh")
METRIC_TYPES: Final[tuple[MetricType, ...]] = ("proportion", "mean", "ratio")
RELATIVE_INTERVALS: Final[tuple[RelativeInterval, ...]] = ("gbstats", "log")

ENGINE: Final[Engine] = "frequentist"
DIFFERENCE: Final[Difference] = "relative"
ALPHA: Final = 0.05
#: N*, the sample size at which the sequential confidence sequence is tightest (Waudby-Smith et al. 2021).
SEQUENTIAL_TUNING: Final = 5000.0
CORRECTION: Final[Correction] = "none"
#: An `analyze` request keeps gbstats' interval unless it asks for another (parity with gbstats 0.8.0);
#: a pilot's analysis plan defaults to the calibrated one (`experiments.registry.AnalysisPlan`).
RELATIVE_INTERVAL: Final[RelativeInterval] = "gbstats"
#: The largest count a request may carry: above 2^53 a double no longer holds every integer.
MAX_COUNT: Final = 2**53 - 1
#: Sums whose second moment is negative by more than this share of the sum of squares cannot come from
#: real values; within it the gap is floating-point rounding (sums of squares built by many updates).
ROUNDING: Final = 1e-9
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
#: Small samples: units per arm where the relative intervals are compared.
CALIBRATION_SMALL_UNITS: Final = (30, 100, 500)
#: The relative standard error of each arm's mean in the small-sample simulations: at 0.3 (a proportion
#: converting at 1 / (1 + 0.09 n)) gbstats' relative interval calls about 8 % of A/A experiments significant
#: at alpha 0.05, as issue 24 measured; at 0.2 its two-sided rate looks right but nearly every false
#: positive says "treatment worse".
CALIBRATION_RELATIVE_SE: Final = (0.3, 0.2)
#: Holm's family-wise rate: comparisons per A/A experiment, units per arm, and their conversion rate.
CALIBRATION_FAMILY_SIZE: Final = 10
CALIBRATION_FAMILY_UNITS: Final = 2000
CALIBRATION_FAMILY_RATE: Final = 0.2
#: The largest relative standard error of a ratio (treatment mean over control mean) at which gbstats'
#: relative interval is shown calibrated: each one-sided A/A rate within 15 % of alpha / 2. Decisions do
#: not rest on a less precise gbstats relative interval (`experiments.decisions`).
GBSTATS_RELATIVE_SE_LIMIT: Final = 0.02
