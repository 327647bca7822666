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
from experiments.stats.messages import Reason
from experiments.stats.multiplicity import adjust
from experiments.stats.statistics import ProportionStatistic, SampleMeanStatistic, paired_moments

SimulatedMetric = Literal["proportion", "mean"]


class PeekingRates(NamedTuple):
    """Share of A/A experiments declared significant at any look, by engine."""

    fixed_horizon: float
    sequential: float
    experiments: int
    looks: int


class Rejections(NamedTuple):
    """Share of A/A experiments whose interval excludes 0, and the share of those that call the treatment worse."""

    rate: float
    worse: float


def aa_rejection_rate(
    metric_type: SimulatedMetric,
    engine: config.Engine,
    *,
    difference: config.Difference = config.DIFFERENCE,
    relative_interval: config.RelativeInterval = config.RELATIVE_INTERVAL,
    experiments: int = config.CALIBRATION_EXPERIMENTS,
    units_per_arm: int = config.CALIBRATION_UNITS,
    relative_se: float | None = None,
    alpha: float = config.ALPHA,
    seed: int = config.CALIBRATION_SEED,
) -> Rejections:
    """Returns the share of seeded A/A experiments whose 1 - alpha interval excludes 0 (a false positive).

    Proportions convert at 20 %; means are normal (mean 3, sd 2), their sufficient statistics drawn
    exactly: the sample mean is normal and (n - 1) s^2 / sigma^2 is chi-square with n - 1 degrees of freedom.
    With `relative_se`, each arm's mean has that relative standard error instead: proportions convert at
    1 / (1 + relative_se^2 n), means have sd relative_se * 3 * sqrt(n). A comparison that cannot be computed
    (an empty conversion count, an unbounded interval) is not a rejection.
    """
    rng = np.random.default_rng(seed)
    n = np.full(experiments, float(units_per_arm))
    if metric_type == "proportion":
        rate = 0.2 if relative_se is None else 1 / (1 + relative_se**2 * units_per_arm)
        control: ProportionStatistic | SampleMeanStatistic = ProportionStatistic(n, _binomial(rng, n, rate))
        treatment: ProportionStatistic | SampleMeanStatistic = ProportionStatistic(n, _binomial(rng, n, rate))
    else:
        sd = 2.0 if relative_se is None else relative_se * 3.0 * np.sqrt(units_per_arm)
        control, treatment = _normal_arm(rng, n, sd), _normal_arm(rng, n, sd)
    estimates = compare(
        *paired_moments(control, treatment),
        engine=engine,
        difference=difference,
        alpha=alpha,
        relative_interval=relative_interval,
    )
    rejected = int(np.count_nonzero(_rejected(estimates)))
    worse = int(np.count_nonzero(estimates.ci_high < 0))
    return Rejections(rate=rejected / experiments, worse=worse / max(rejected, 1))


def aa_family_wise_rate(
    engine: config.Engine,
    *,
    relative_interval: config.RelativeInterval = config.RELATIVE_INTERVAL,
    family_size: int = config.CALIBRATION_FAMILY_SIZE,
    units_per_arm: int = config.CALIBRATION_FAMILY_UNITS,
    conversion_rate: float = config.CALIBRATION_FAMILY_RATE,
    experiments: int = config.CALIBRATION_EXPERIMENTS,
    alpha: float = config.ALPHA,
    seed: int = config.CALIBRATION_SEED,
) -> float:
    """Returns the share of seeded A/A experiments with any Holm-adjusted p-value below alpha.

    Each experiment compares `family_size` independent proportions (relative differences), as a request
    with that many metrics and `correction` holm would. A comparison that cannot be computed counts as a
    p-value of 1 (the engine leaves it out of the family, which can only make the family smaller).
    """
    rng = np.random.default_rng(seed)
    n = np.full(experiments * family_size, float(units_per_arm))
    control = ProportionStatistic(n, _binomial(rng, n, conversion_rate))
    treatment = ProportionStatistic(n, _binomial(rng, n, conversion_rate))
    estimates = compare(
        *paired_moments(control, treatment), engine=engine, alpha=alpha, relative_interval=relative_interval
    )
    p_values = np.where(estimates.reason == Reason.OK, estimates.p_value, 1.0).reshape(experiments, family_size)
    return float(np.mean((adjust(p_values, "holm") < alpha).any(axis=1)))


def peeking_false_positive_rates(
    *,
    experiments: int = config.CALIBRATION_EXPERIMENTS,
    looks: int = config.CALIBRATION_LOOKS,
    units_per_look: int = config.CALIBRATION_UNITS_PER_LOOK,
    alpha: float = config.ALPHA,
    sequential_tuning: float = config.SEQUENTIAL_TUNING,
    relative_interval: config.RelativeInterval = config.RELATIVE_INTERVAL,
    seed: int = config.CALIBRATION_SEED,
) -> PeekingRates:
    """Returns the false-positive rates of the fixed-horizon and sequential engines under continuous peeking.

    Each A/A experiment (a proportion converting at 20 %, its relative difference analysed) gains
    `units_per_look` units per arm between looks and is analysed at every look; it counts as a false
    positive when any look is significant.
    """
    rng = np.random.default_rng(seed)
    n = np.cumsum(np.full((experiments, looks), float(units_per_look)), axis=1)
    batch = np.full((experiments, looks), float(units_per_look))
    control = ProportionStatistic(n.ravel(), np.cumsum(_binomial(rng, batch, 0.2), axis=1).ravel())
    treatment = ProportionStatistic(n.ravel(), np.cumsum(_binomial(rng, batch, 0.2), axis=1).ravel())
    moments = paired_moments(control, treatment)
    rates = []
    for engine in ("frequentist", "sequential"):
        estimates = compare(
            *moments,
            engine=engine,
            alpha=alpha,
            sequential_tuning=sequential_tuning,
            relative_interval=relative_interval,
        )
        rates.append(float(np.mean(_rejected(estimates).reshape(experiments, looks).any(axis=1))))
    return PeekingRates(fixed_horizon=rates[0], sequential=rates[1], experiments=experiments, looks=looks)


def _rejected(estimates: Estimates) -> npt.NDArray[np.bool_]:
    """Returns where the interval excludes 0: p < alpha for the frequentist and sequential engines."""
    return (estimates.ci_low > 0) | (estimates.ci_high < 0)


def _binomial(rng: np.random.Generator, n: npt.NDArray[np.float64], rate: float) -> npt.NDArray[np.float64]:
    return rng.binomial(n.astype(np.int64), rate).astype(float)


def _normal_arm(rng: np.random.Generator, n: npt.NDArray[np.float64], sd: float) -> SampleMeanStatistic:
    mean = 3.0
    sample_mean = rng.normal(mean, sd / np.sqrt(n))
    sum_of_squared_deviations = sd**2 * rng.chisquare(n - 1)
    return SampleMeanStatistic(n=n, sum=n * sample_mean, sum_squares=sum_of_squared_deviations + n * sample_mean**2)
