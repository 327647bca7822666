"""Sufficient statistics: merging in any split and order equals one pass; derived moments are right."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.stats.statistics import (
    CupedStatistic,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    Statistic,
    paired_moments,
)

values = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
pairs = st.lists(st.tuples(values, values), min_size=2, max_size=60)


def leaves(statistic: Statistic) -> list[float]:
    """Returns every number a statistic holds, nested statistics included."""
    if isinstance(statistic, ProportionStatistic):
        return [float(statistic.n), float(statistic.sum)]
    if isinstance(statistic, SampleMeanStatistic):
        return [float(statistic.n), float(statistic.sum), float(statistic.sum_squares)]
    if isinstance(statistic, RatioStatistic):
        return [*leaves(statistic.numerator), *leaves(statistic.denominator), float(statistic.sum_products)]
    return [*leaves(statistic.post), *leaves(statistic.pre), float(statistic.pre_post_sum_products)]


def one_pass(kind: str, rows: list[tuple[float, float]]) -> Statistic:
    x = np.array([row[0] for row in rows])
    y = np.array([row[1] for row in rows])
    if kind == "proportion":
        return ProportionStatistic.from_values(x > 0)
    if kind == "mean":
        return SampleMeanStatistic.from_values(x)
    if kind == "ratio":
        return RatioStatistic.from_values(x, y)
    return CupedStatistic.from_values(x, y)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(["proportion", "mean", "ratio", "cuped"]),
    rows=pairs,
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=5),
    order=st.randoms(use_true_random=False),
)
def test_merging_any_split_in_any_order_equals_one_pass(
    kind: str, rows: list[tuple[float, float]], cuts: list[int], order: random.Random
) -> None:
    bounds = sorted({0, len(rows), *(min(cut, len(rows)) for cut in cuts)})
    chunks = [rows[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    order.shuffle(chunks)
    merged = one_pass(kind, chunks[0])
    for chunk in chunks[1:]:
        merged = merged + one_pass(kind, chunk)
    whole = one_pass(kind, rows)
    scale = sum(abs(a) + abs(b) for a, b in rows) ** 2 + 1.0
    np.testing.assert_allclose(leaves(merged), leaves(whole), rtol=1e-9, atol=1e-12 * scale)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(rows=st.lists(st.tuples(values, values), min_size=3, max_size=60))
def test_cuped_never_increases_variance_for_theta_computed_on_the_data(
    rows: list[tuple[float, float]],
) -> None:
    statistic = CupedStatistic.from_values([r[0] for r in rows], [r[1] for r in rows])
    adjusted = statistic.adjusted(statistic.theta)
    tolerance = 1e-9 * (float(statistic.post.variance) + float(statistic.pre.variance) + 1.0)
    assert adjusted.variance <= statistic.post.variance + tolerance


@settings(max_examples=40, deadline=None, derandomize=True)
@given(control=pairs, treatment=pairs)
def test_cuped_pooled_theta_never_increases_the_pooled_variance(
    control: list[tuple[float, float]], treatment: list[tuple[float, float]]
) -> None:
    a = CupedStatistic.from_values([r[0] for r in control], [r[1] for r in control])
    b = CupedStatistic.from_values([r[0] for r in treatment], [r[1] for r in treatment])
    pooled = a + b
    tolerance = 1e-9 * (float(pooled.post.variance) + float(pooled.pre.variance) + 1.0)
    assert pooled.adjusted(pooled.theta).variance <= pooled.post.variance + tolerance


def test_moments_match_numpy() -> None:
    rng = np.random.default_rng(7)
    x = rng.lognormal(size=500)
    y = 1.0 + rng.poisson(2.0, size=500)
    mean = SampleMeanStatistic.from_values(x)
    assert mean.mean == pytest.approx(x.mean(), rel=1e-12)
    assert mean.variance == pytest.approx(x.var(ddof=1), rel=1e-10)
    ratio = RatioStatistic.from_values(x, y)
    assert ratio.covariance == pytest.approx(np.cov(x, y)[0, 1], rel=1e-10)
    assert ratio.mean == pytest.approx(x.sum() / y.sum(), rel=1e-12)
    cuped = CupedStatistic.from_values(x, y)
    assert cuped.theta == pytest.approx(np.cov(x, y)[0, 1] / y.var(ddof=1), rel=1e-10)
    residual = x - float(cuped.theta) * y
    adjusted = cuped.adjusted(cuped.theta)
    assert adjusted.variance == pytest.approx(residual.var(ddof=1), rel=1e-9)
    assert adjusted.mean == pytest.approx(residual.mean(), rel=1e-12)
    proportion = ProportionStatistic.from_values(x > 1.0)
    assert proportion.variance == pytest.approx(np.mean(x > 1.0) * np.mean(x <= 1.0), rel=1e-12)


def test_ratio_variance_is_the_delta_method_variance_of_the_ratio_of_means() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(5.0, 1.0, size=400)
    y = rng.normal(2.0, 0.5, size=400)
    ratio = RatioStatistic.from_values(x, y)
    gradient = np.array([1 / y.mean(), -x.mean() / y.mean() ** 2])
    assert ratio.variance == pytest.approx(gradient @ np.cov(x, y) @ gradient, rel=1e-10)


def test_theta_is_zero_without_pre_period_variance() -> None:
    statistic = CupedStatistic.from_values([1.0, 2.0, 4.0], [3.0, 3.0, 3.0])
    assert statistic.theta == 0.0
    assert statistic.adjusted(statistic.theta).variance == pytest.approx(statistic.post.variance)


def test_arrays_of_arms_compute_every_arm_at_once() -> None:
    arms = [RatioStatistic.from_values([1.0, 2.0, 5.0 + i], [1.0, 1.0, 2.0 + i]) for i in range(4)]
    column = lambda pick: np.array([pick(arm) for arm in arms])  # noqa: E731
    stacked = RatioStatistic(
        numerator=SampleMeanStatistic(
            column(lambda a: a.n), column(lambda a: a.numerator.sum), column(lambda a: a.numerator.sum_squares)
        ),
        denominator=SampleMeanStatistic(
            column(lambda a: a.n), column(lambda a: a.denominator.sum), column(lambda a: a.denominator.sum_squares)
        ),
        sum_products=column(lambda a: a.sum_products),
    )
    np.testing.assert_allclose(stacked.variance, [arm.variance for arm in arms], rtol=1e-12)
    np.testing.assert_allclose(stacked.mean, [arm.mean for arm in arms], rtol=1e-12)


def test_cuped_arms_share_the_theta_of_both_arms_pooled() -> None:
    control = CupedStatistic.from_values([1.0, 2.0, 3.5, 5.0], [1.0, 2.0, 3.0, 4.0])
    treatment = CupedStatistic.from_values([3.0, 4.5, 6.0, 6.5], [2.0, 2.5, 4.0, 5.0])
    post = [1.0, 2.0, 3.5, 5.0, 3.0, 4.5, 6.0, 6.5]
    pre = [1.0, 2.0, 3.0, 4.0, 2.0, 2.5, 4.0, 5.0]
    theta = np.cov(post, pre)[0, 1] / np.var(pre, ddof=1)
    adjusted_control, adjusted_treatment = paired_moments(control, treatment)
    assert adjusted_control.mean == pytest.approx(np.mean(post[:4]) - theta * np.mean(pre[:4]), rel=1e-12)
    assert adjusted_treatment.unadjusted_mean == pytest.approx(np.mean(post[4:]), rel=1e-12)


def test_cuped_adjusted_variance_does_not_overflow_when_the_pre_period_variance_is_tiny() -> None:
    control = CupedStatistic.from_values([0.0, 0.0], [0.0, 5.800468319560912e-153])
    treatment = CupedStatistic.from_values([0.0, 234.0], [0.0, 0.0])
    pooled = control + treatment
    adjusted = pooled.adjusted(pooled.theta)
    assert np.isfinite(adjusted.variance)
    assert adjusted.variance <= pooled.post.variance
