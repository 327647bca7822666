"""Seeded simulations that check the engine keeps its promises about false positives.

An A/A experiment has no true effect, so a well-calibrated test at level alpha calls a fraction alpha
of them significant. Under continuous monitoring (an analysis after every batch, stopping at the first
significant look) the fixed-horizon t-test's false-positive rate grows with the number of looks, while
the sequential engine's stays at or below alpha (Waudby-Smith et al. 2021). Each simulation runs all
experiments and looks as one vectorised comparison.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from experiments.stats import config
from experiments.stats.engine import Estimates, compare
from experiments.stats.statistics import ProportionStatistic, SampleMeanStatistic, paired_moments

SimulatedMetric = Literal["proportion", "mean"]


class PeekingRates(NamedTuple):
    """Share of A/A experiments declared significant at any look, by engine."""

    fixed_horizon: float
    sequential: float
    experiments: int
    looks: int


def aa_rejection_rate(
    metric_type: SimulatedMetric,
    engine: config.Engine,
    *,
    difference: config.Difference = config.DIFFERENCE,
    experiments: int = config.CALIBRATION_EXPERIMENTS,
    units_per_arm: int = config.CALIBRATION_UNITS,
    alpha: float = config.ALPHA,
    seed: int = config.CALIBRATION_SEED,
) -> float:
    """Returns the share of seeded A/A experiments whose 1 - alpha interval excludes 0 (a false positive).

    Proportions convert at 20 %; means are normal (mean 3, sd 2), their sufficient statistics drawn
    exactly: the sample mean is normal and (n - 1) s^2 / sigma^2 is chi-square with n - 1 degrees of freedom.
    """
    rng = np.random.default_rng(seed)
    n = np.full(experiments, float(units_per_arm))
    if metric_type == "proportion":
        control: ProportionStatistic | SampleMeanStatistic = ProportionStatistic(n, _binomial(rng, n))
        treatment: ProportionStatistic | SampleMeanStatistic = ProportionStatistic(n, _binomial(rng, n))
    else:
        control, treatment = _normal_arm(rng, n), _normal_arm(rng, n)
    estimates = compare(*paired_moments(control, treatment), engine=engine, difference=difference, alpha=alpha)
    return float(np.mean(_rejected(estimates)))


def peeking_false_positive_rates(
    *,
    experiments: int = config.CALIBRATION_EXPERIMENTS,
    looks: int = config.CALIBRATION_LOOKS,
    units_per_look: int = config.CALIBRATION_UNITS_PER_LOOK,
    alpha: float = config.ALPHA,
    sequential_tuning: float = config.SEQUENTIAL_TUNING,
    seed: int = config.CALIBRATION_SEED,
) -> PeekingRates:
    """Returns the false-positive rates of the fixed-horizon and sequential engines under continuous peeking.

    Each A/A experiment (a proportion converting at 20 %) gains `units_per_look` units per arm between
    looks and is analysed at every look; it counts as a false positive when any look is significant.
    """
    rng = np.random.default_rng(seed)
    n = np.cumsum(np.full((experiments, looks), float(units_per_look)), axis=1)
    batch = np.full((experiments, looks), float(units_per_look))
    control = ProportionStatistic(n.ravel(), np.cumsum(_binomial(rng, batch), axis=1).ravel())
    treatment = ProportionStatistic(n.ravel(), np.cumsum(_binomial(rng, batch), axis=1).ravel())
    moments = paired_moments(control, treatment)
    rates = []
    for engine in ("frequentist", "sequential"):
        estimates = compare(*moments, engine=engine, alpha=alpha, sequential_tuning=sequential_tuning)
        rates.append(float(np.mean(_rejected(estimates).reshape(experiments, looks).any(axis=1))))
    return PeekingRates(fixed_horizon=rates[0], sequential=rates[1], experiments=experiments, looks=looks)


def _rejected(estimates: Estimates) -> npt.NDArray[np.bool_]:
    """Returns where the interval excludes 0: p < alpha for the frequentist and sequential engines."""
    return (estimates.ci_low > 0) | (estimates.ci_high < 0)


def _binomial(rng: np.random.Generator, n: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return rng.binomial(n.astype(np.int64), 0.2).astype(float)


def _normal_arm(rng: np.random.Generator, n: npt.NDArray[np.float64]) -> SampleMeanStatistic:
    mean, sd = 3.0, 2.0
    sample_mean = rng.normal(mean, sd / np.sqrt(n))
    sum_of_squared_deviations = sd**2 * rng.chisquare(n - 1)
    return SampleMeanStatistic(n=n, sum=n * sample_mean, sum_squares=sum_of_squared_deviations + n * sample_mean**2)
