"""Planning against statsmodels' NormalIndPower, and against simulation for the sequential engine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.power import NormalIndPower

from experiments.stats import RequestError, power
from experiments.stats.engine import compare
from experiments.stats.statistics import ProportionStatistic, paired_moments

TOLERANCE = 1e-6
CASES = [
    # metric_type, baseline mean, baseline variance, effect, relative, alpha, weights
    ("mean", 3.0, 4.0, 0.1, False, 0.05, (0.5, 0.5)),
    ("mean", 120.0, 900.0, 2.5, False, 0.01, (0.3, 0.7)),
    ("mean", 3.0, 4.0, 0.05, True, 0.05, (0.5, 0.5)),
    ("mean", -8.0, 25.0, 0.02, True, 0.1, (0.6, 0.4)),
    ("proportion", 0.1, None, 0.1, True, 0.05, (0.5, 0.5)),
    ("proportion", 0.1, None, 0.01, False, 0.05, (0.5, 0.5)),
    ("proportion", 0.42, None, -0.03, True, 0.02, (0.25, 0.75)),
    ("proportion", 0.9, None, 0.05, False, 0.05, (0.5, 0.5)),
]
#: sample_size and minimum_detectable_effect plan for an increase.
INCREASES = [case for case in CASES if case[3] > 0]


def effect_size(
    kind: str, mean: float, variance: float | None, effect: float, relative: bool, weights: tuple[float, float]
) -> float:
    """Returns the standardised effect that makes NormalIndPower's test the one planned for.

    NormalIndPower assumes one variance s^2 in both arms: se^2 = s^2 (1/n_c + 1/n_t). The planned test's
    se^2 = (a / w_c + b / w_t) / N, so s^2 = (a / w_c + b / w_t) / (1 / w_c + 1 / w_t).
    """
    w_c, w_t = weights[0] / sum(weights), weights[1] / sum(weights)
    treated = mean * (1 + effect) if relative else mean + effect
    var_c = mean * (1 - mean) if kind == "proportion" else variance
    var_t = treated * (1 - treated) if kind == "proportion" else variance
    assert var_c is not None and var_t is not None
    if relative:
        a, b = var_c * treated**2 / mean**4, var_t / mean**2
    else:
        a, b = var_c, var_t
    return effect / math.sqrt((a / w_c + b / w_t) / (1 / w_c + 1 / w_t))


@pytest.mark.parametrize(("kind", "mean", "variance", "effect", "relative", "alpha", "weights"), CASES)
@pytest.mark.parametrize("n_total", [200, 5000, 120000])
def test_observed_power_matches_statsmodels(
    kind: str,
    mean: float,
    variance: float | None,
    effect: float,
    relative: bool,
    alpha: float,
    weights: tuple[float, float],
    n_total: int,
) -> None:
    d = effect_size(kind, mean, variance, effect, relative, weights)
    expected = NormalIndPower().power(d, nobs1=n_total * weights[0], alpha=alpha, ratio=weights[1] / weights[0])
    ours = power.observed_power(kind, mean, variance, effect, n_total, relative=relative, alpha=alpha, weights=weights)
    assert ours == pytest.approx(expected, rel=TOLERANCE)


@pytest.mark.parametrize(("kind", "mean", "variance", "effect", "relative", "alpha", "weights"), INCREASES)
def test_sample_size_matches_statsmodels(
    kind: str,
    mean: float,
    variance: float | None,
    effect: float,
    relative: bool,
    alpha: float,
    weights: tuple[float, float],
) -> None:
    d = effect_size(kind, mean, variance, effect, relative, weights)
    nobs1 = NormalIndPower().solve_power(d, nobs1=None, alpha=alpha, power=0.8, ratio=weights[1] / weights[0])
    n_total = power.sample_size(kind, mean, variance, effect, relative=relative, alpha=alpha, weights=weights)
    assert n_total == math.ceil(nobs1 / weights[0] - 1e-6)
    assert (
        power.observed_power(kind, mean, variance, effect, n_total, relative=relative, alpha=alpha, weights=weights)
        >= 0.8
    )
    previous = power.observed_power(
        kind, mean, variance, effect, n_total - 1, relative=relative, alpha=alpha, weights=weights
    )
    assert previous < 0.8


@pytest.mark.parametrize(
    ("mean", "variance", "alpha", "weights"), [(3.0, 4.0, 0.05, (0.5, 0.5)), (10.0, 2.0, 0.01, (0.2, 0.8))]
)
@pytest.mark.parametrize("n_total", [100, 4000, 250000])
def test_minimum_detectable_effect_matches_statsmodels(
    mean: float, variance: float, alpha: float, weights: tuple[float, float], n_total: int
) -> None:
    # NormalIndPower.solve_power stops about 1e-5 short of the root: solve its power function exactly.
    ratio = weights[1] / weights[0]
    d = optimize.brentq(
        lambda d: NormalIndPower().power(d, nobs1=n_total * weights[0], alpha=alpha, ratio=ratio) - 0.8,
        1e-6,
        100.0,
        xtol=1e-15,
        rtol=1e-14,
    )
    mde = power.minimum_detectable_effect("mean", mean, variance, n_total, relative=False, alpha=alpha, weights=weights)
    assert mde == pytest.approx(d * math.sqrt(variance), rel=TOLERANCE)


@pytest.mark.parametrize(("kind", "mean", "variance", "effect", "relative", "alpha", "weights"), INCREASES)
def test_the_minimum_detectable_effect_of_the_planned_sample_is_the_planned_effect(
    kind: str,
    mean: float,
    variance: float | None,
    effect: float,
    relative: bool,
    alpha: float,
    weights: tuple[float, float],
) -> None:
    for tuning in (None, 5000.0):
        options = {"relative": relative, "alpha": alpha, "weights": weights, "sequential_tuning": tuning}
        n_total = power.sample_size(kind, mean, variance, effect, **options)  # type: ignore[arg-type]
        mde = power.minimum_detectable_effect(kind, mean, variance, n_total, **options)  # type: ignore[arg-type]
        assert mde <= effect
        assert mde == pytest.approx(effect, rel=2 / n_total + 1e-9)


@pytest.mark.parametrize("tuning", [None, 5000.0])
def test_the_planned_sample_detects_the_effect_as_often_as_planned_in_simulation(tuning: float | None) -> None:
    baseline, lift, experiments = 0.1, 0.01, 4000
    n_total = power.sample_size("proportion", baseline, None, lift, relative=False, sequential_tuning=tuning)
    rng = np.random.default_rng(5)
    n = np.full(experiments, float(n_total // 2))
    control = ProportionStatistic(n, rng.binomial(n.astype(int), baseline).astype(float))
    treatment = ProportionStatistic(n, rng.binomial(n.astype(int), baseline + lift).astype(float))
    engine = "frequentist" if tuning is None else "sequential"
    moments = paired_moments(control, treatment)
    estimates = compare(*moments, engine=engine, difference="absolute", sequential_tuning=tuning or 5000.0)
    detected = int(np.sum(estimates.ci_low > 0))
    low, high = stats.binom.interval(0.99, experiments, 0.8)
    assert low <= detected <= high


def test_sequential_testing_needs_more_units_than_a_fixed_horizon() -> None:
    fixed = power.sample_size("mean", 3.0, 4.0, 0.02)
    sequential = power.sample_size("mean", 3.0, 4.0, 0.02, sequential_tuning=5000)
    assert sequential > fixed


def test_a_proportion_cannot_detect_beyond_one() -> None:
    assert power.minimum_detectable_effect("proportion", 0.9, None, 10) == math.inf


def test_days_to_reach() -> None:
    assert power.days_to_reach(10000, 4000, 500.0) == 12.0
    assert power.days_to_reach(10000, 4000, 0.0) is None
    assert power.days_to_reach(10000, 12000, 0.0) == 0.0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: power.sample_size("mean", 3.0, None, 0.1), "baseline_variance"),
        (lambda: power.sample_size("mean", 3.0, -1.0, 0.1), "baseline_variance"),
        (lambda: power.sample_size("proportion", 1.2, None, 0.1), "baseline_mean"),
        (lambda: power.sample_size("proportion", 0.2, 0.16, 0.1), "baseline_variance"),
        (lambda: power.sample_size("proportion", 0.5, None, 1.5), "mde"),
        (lambda: power.sample_size("ratio", 0.5, None, 0.1), "metric_type"),  # type: ignore[arg-type]
        (lambda: power.sample_size("mean", 0.0, 1.0, 0.1), "baseline_mean"),
        (lambda: power.sample_size("mean", 3.0, 4.0, 0.1, alpha=1.0), "alpha"),
        (lambda: power.sample_size("mean", 3.0, 4.0, 0.1, power=0.01), "power"),
        (lambda: power.sample_size("mean", 3.0, 4.0, 0.1, weights=(1.0, 0.0)), "weights[1]"),
        (lambda: power.sample_size("mean", 3.0, 4.0, 0.1, sequential_tuning=0), "sequential_tuning"),
        (lambda: power.minimum_detectable_effect("mean", 3.0, 4.0, 0), "n_total"),
        (lambda: power.observed_power("proportion", 0.3, None, -0.5, 100, relative=False), "effect"),
        (lambda: power.days_to_reach(100, 10, -1.0), "units_per_day"),
    ],
)
def test_bad_planning_arguments_name_the_argument(call: object, field: str) -> None:
    with pytest.raises(RequestError) as raised:
        call()  # type: ignore[operator]
    assert raised.value.field == field
