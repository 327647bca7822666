"""The relative intervals: gbstats' delta method (an `analyze` request's default) and Fieller's ("log").

Fieller's interval is checked against the textbook formula and, under CUPED, against a direct inversion
of the contrast test computed from per-unit values; its test of "no effect" is the absolute difference's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from experiments.stats import analyze, analyze_dict, parse_request
from experiments.stats.statistics import CupedStatistic

ENGINES = ["frequentist", "sequential", "bayesian"]


def arm(values: np.ndarray) -> dict[str, float]:
    return {"n": values.size, "sum": float(values.sum()), "sum_squares": float(values @ values)}


def cuped_arm(post: np.ndarray, pre: np.ndarray) -> dict[str, float]:
    statistic = CupedStatistic.from_values(post, pre)
    return {
        "n": post.size,
        "sum": float(statistic.post.sum),
        "sum_squares": float(statistic.post.sum_squares),
        "pre_sum": float(statistic.pre.sum),
        "pre_sum_squares": float(statistic.pre.sum_squares),
        "pre_post_sum_products": float(statistic.pre_post_sum_products),
    }


def request(control: dict[str, float], treatment: dict[str, float], **settings: Any) -> dict[str, Any]:
    return {
        "variants": {"control": {"units": int(control["n"])}, "treatment": {"units": int(treatment["n"])}},
        "metrics": [{"name": "m", "type": "mean", "data": {"control": control, "treatment": treatment}}],
        **settings,
    }


def multiplier(engine: str, alpha: float, n_c: int, n_t: int, v_c: float, v_t: float) -> float:
    """Returns the standard errors each engine's interval spans: t (Welch), the confidence sequence's, z."""
    if engine == "frequentist":
        df = (v_c / n_c + v_t / n_t) ** 2 / (v_c**2 / (n_c**2 * (n_c - 1)) + v_t**2 / (n_t**2 * (n_t - 1)))
        return float(stats.t.ppf(1 - alpha / 2, df))
    if engine == "sequential":
        n = n_c + n_t
        rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / 5000
        return math.sqrt(n * 2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha))
    return float(stats.norm.ppf(1 - alpha / 2))


@pytest.fixture
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.gamma(2.0, 1.5, 40), rng.gamma(2.0, 1.3, 45)


def test_a_request_keeps_the_gbstats_interval_unless_it_asks_for_log(samples: tuple[np.ndarray, np.ndarray]) -> None:
    control, treatment = (arm(values) for values in samples)
    default = analyze_dict(request(control, treatment))
    assert default == analyze_dict(request(control, treatment, relative_interval="gbstats"))
    log = analyze_dict(request(control, treatment, relative_interval="log"))
    assert log["comparisons"][0]["effect"] == default["comparisons"][0]["effect"]
    assert log["comparisons"][0]["ci_low"] != default["comparisons"][0]["ci_low"]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_log_interval_is_fiellers_textbook_interval(samples: tuple[np.ndarray, np.ndarray], engine: str) -> None:
    control, treatment = samples
    (row,) = analyze(
        parse_request(request(arm(control), arm(treatment), engine=engine, relative_interval="log"))
    ).comparisons
    n_c, n_t = control.size, treatment.size
    v_c, v_t = control.var(ddof=1), treatment.var(ddof=1)
    q = multiplier(engine, 0.05, n_c, n_t, v_c, v_t)
    # Fieller (1954) for T / C with independent T and C: g = q^2 var(C) / C^2.
    big_t, big_c, var_t, var_c = treatment.mean(), control.mean(), v_t / n_t, v_c / n_c
    g = q**2 * var_c / big_c**2
    ratio = big_t / big_c
    half = q / abs(big_c) * math.sqrt(var_t * (1 - g) + ratio**2 * var_c)
    assert row.ci_low == pytest.approx((ratio - half) / (1 - g) - 1, rel=1e-9)
    assert row.ci_high == pytest.approx((ratio + half) / (1 - g) - 1, rel=1e-9)
    assert row.effect == pytest.approx(ratio - 1, rel=1e-12)
    assert row.se == pytest.approx(math.sqrt(var_t + ratio**2 * var_c) / big_c, rel=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_swapping_the_arms_inverts_the_log_interval_but_not_gbstats(
    samples: tuple[np.ndarray, np.ndarray], engine: str
) -> None:
    a, b = (arm(values) for values in samples)
    for interval, inverts in (("log", True), ("gbstats", False)):
        (ab,) = analyze_dict(request(a, b, engine=engine, relative_interval=interval))["comparisons"]
        (ba,) = analyze_dict(request(b, a, engine=engine, relative_interval=interval))["comparisons"]
        product = (1 + ab["ci_low"]) * (1 + ba["ci_high"]), (1 + ab["ci_high"]) * (1 + ba["ci_low"])
        assert (product == pytest.approx((1.0, 1.0), rel=1e-9)) is inverts


unit_values = st.lists(st.floats(min_value=0.0, max_value=50.0), min_size=3, max_size=40)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    control=unit_values,
    treatment=unit_values,
    engine=st.sampled_from(ENGINES),
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
)
def test_the_log_interval_excludes_zero_exactly_when_the_absolute_test_rejects(
    control: list[float], treatment: list[float], engine: str, alpha: float
) -> None:
    arms = arm(np.array(control)), arm(np.array(treatment))
    (relative,) = analyze_dict(request(*arms, engine=engine, alpha=alpha, relative_interval="log"))["comparisons"]
    (absolute,) = analyze_dict(request(*arms, engine=engine, alpha=alpha, difference="absolute"))["comparisons"]
    if relative["error"] is not None:
        return
    assert relative["ci_low"] <= relative["effect"] <= relative["ci_high"]
    excludes_zero = relative["ci_low"] > 0 or relative["ci_high"] < 0
    if engine == "bayesian":
        assert relative["chance_to_win"] == absolute["chance_to_win"]
        assert excludes_zero == (min(absolute["chance_to_win"], 1 - absolute["chance_to_win"]) < alpha / 2)
    else:
        assert relative["p_value"] == absolute["p_value"]
        assert excludes_zero == (absolute["p_value"] < alpha)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_cuped_log_interval_inverts_the_contrast_test_computed_from_unit_values(engine: str) -> None:
    rng = np.random.default_rng(5)
    pre_c, pre_t = rng.gamma(3.0, 2.0, 60), rng.gamma(3.0, 2.0, 70)
    post_c = 0.8 * pre_c + rng.normal(1.0, 1.5, 60)
    post_t = 0.8 * pre_t + rng.normal(1.4, 1.5, 70)
    (row,) = analyze(
        parse_request(
            request(cuped_arm(post_c, pre_c), cuped_arm(post_t, pre_t), engine=engine, relative_interval="log")
        )
    ).comparisons
    pooled_pre, pooled_post = np.concatenate([pre_c, pre_t]), np.concatenate([post_c, post_t])
    theta = np.cov(pooled_post, pooled_pre)[0, 1] / pooled_pre.var(ddof=1)
    adjusted_c, adjusted_t = post_c - theta * pre_c, post_t - theta * pre_t
    gap, m_c = adjusted_t.mean() - adjusted_c.mean(), post_c.mean()
    n_c, n_t = post_c.size, post_t.size

    def contrast_variance(e: float) -> float:
        """var(gap - e m_c) from unit values: the control's adjusted and raw means co-vary, and
        gap - e m_c = mean(adjusted_t) - mean(adjusted_c + e post_c)."""
        control_part = np.var(adjusted_c + e * post_c, ddof=1) / n_c
        return float(control_part + adjusted_t.var(ddof=1) / n_t)

    q = multiplier(engine, 0.05, n_c, n_t, adjusted_c.var(ddof=1), adjusted_t.var(ddof=1))

    def excess(e: float) -> float:
        return (gap - e * m_c) ** 2 - q**2 * contrast_variance(e)

    effect = gap / m_c
    low = optimize.brentq(excess, effect - 2, effect)
    high = optimize.brentq(excess, effect, effect + 2)
    assert row.effect == pytest.approx(effect, rel=1e-9)
    assert (row.ci_low, row.ci_high) == pytest.approx((low, high), rel=1e-7)
    assert row.se == pytest.approx(math.sqrt(contrast_variance(effect)) / m_c, rel=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_control_mean_too_uncertain_to_divide_by_is_an_error_row(engine: str) -> None:
    noisy = np.array([-3.0, 4.0, -2.0, 3.5, 0.1, -1.0])
    control, treatment = arm(noisy), arm(noisy + 1.0)
    (row,) = analyze_dict(request(control, treatment, engine=engine, relative_interval="log"))["comparisons"]
    assert row["error"] == (
        "relative interval unbounded: the mean of control is too uncertain to divide by (Fieller's interval); "
        "analyse the absolute difference or collect more units"
    )
    assert [row[name] for name in ("control_mean", "effect", "ci_low", "ci_high", "p_value")] == [None] * 5
    for other in ({"relative_interval": "gbstats"}, {"difference": "absolute"}):
        (computed,) = analyze_dict(request(control, treatment, engine=engine, **other))["comparisons"]
        assert computed["error"] is None


@pytest.mark.parametrize("interval", ["gbstats", "log"])
def test_holm_adjusts_the_p_values_of_the_relative_interval_used(interval: str) -> None:
    rng = np.random.default_rng(2)
    metrics = [
        {"name": f"m{i}", "type": "proportion",
         "data": {"control": {"n": 80, "sum": int(rng.integers(5, 20))},
                  "treatment": {"n": 80, "sum": int(rng.integers(5, 20))}}}
        for i in range(6)
    ]  # fmt: skip
    base = {"variants": {"control": {"units": 80}, "treatment": {"units": 80}}, "metrics": metrics}
    rows = analyze_dict(base | {"relative_interval": interval, "correction": "holm"})["comparisons"]
    plain = analyze_dict(base | {"relative_interval": interval})["comparisons"]
    p_values = np.array([row["p_value"] for row in plain])
    m = p_values.size
    order = np.argsort(p_values)
    expected = np.empty(m)
    expected[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p_values[order]), 1)
    np.testing.assert_allclose([row["adjusted_p_value"] for row in rows], expected, rtol=1e-12)
    absolute = analyze_dict(base | {"difference": "absolute"})["comparisons"]
    same_as_absolute = [row["p_value"] for row in plain] == [row["p_value"] for row in absolute]
    assert same_as_absolute is (interval == "log")


@pytest.mark.parametrize("engine", ENGINES)
def test_with_a_negative_control_mean_a_higher_treatment_is_a_negative_relative_effect(
    samples: tuple[np.ndarray, np.ndarray], engine: str
) -> None:
    control, treatment = (arm(-values) for values in samples)
    (relative,) = analyze_dict(request(control, treatment, engine=engine, relative_interval="log"))["comparisons"]
    (absolute,) = analyze_dict(request(control, treatment, engine=engine, difference="absolute"))["comparisons"]
    assert relative["ci_low"] <= relative["effect"] <= relative["ci_high"]
    assert (relative["effect"] < 0) == (absolute["effect"] > 0)
    if engine == "bayesian":
        assert relative["chance_to_win"] == pytest.approx(1 - absolute["chance_to_win"], rel=1e-12)
    else:
        assert relative["p_value"] == absolute["p_value"]
