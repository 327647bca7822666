"""Sufficient statistics of one arm of one metric: small immutable records that merge with `+`.

Fields are plain numbers for one arm, or numpy arrays holding many arms at once: the same
properties then compute every arm's mean and variance in one vectorised step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeAlias, cast

import numpy as np
import numpy.typing as npt

#: One number, or one number per arm.
Values: TypeAlias = float | npt.NDArray[np.float64]


def co_moment(n: Values, sum_x: Values, sum_y: Values, sum_products: Values) -> Values:
    """Returns the sample covariance of x and y (n - 1 in the denominator) from their sums.

    With x = y it is the sample variance: (sum_squares - sum^2 / n) / (n - 1).
    """
    return (sum_products - sum_x * sum_y / n) / (n - 1)


class Moments(NamedTuple):
    """What a comparison needs from one arm: units, the mean it tests and its per-unit variance, and the
    unadjusted mean (the denominator of a relative difference) with its own per-unit variance and its
    per-unit covariance with the tested value. Without CUPED the tested and unadjusted values are one.
    """

    n: Values
    mean: Values
    unadjusted_mean: Values
    variance: Values
    unadjusted_variance: Values
    covariance: Values

    @classmethod
    def of(cls, n: Values, mean: Values, variance: Values) -> Moments:
        """Returns the moments of an arm whose tested value is its unadjusted value."""
        return cls(n, mean, mean, variance, variance, variance)


@dataclass(frozen=True, slots=True)
class ProportionStatistic:
    """Units `n` and how many of them converted, `sum`; variance p(1 - p)."""

    n: Values
    sum: Values

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> ProportionStatistic:
        """Returns the statistic of 0/1 outcomes in one pass."""
        x = np.asarray(values, dtype=float)
        return cls(n=x.size, sum=float(x.sum()))

    def __add__(self, other: ProportionStatistic) -> ProportionStatistic:
        return ProportionStatistic(n=self.n + other.n, sum=self.sum + other.sum)

    @property
    def mean(self) -> Values:
        """Returns the conversion rate sum / n."""
        return self.sum / self.n

    @property
    def variance(self) -> Values:
        """Returns the per-unit Bernoulli variance p(1 - p)."""
        p = self.mean
        return p * (1 - p)

    @property
    def moments(self) -> Moments:
        """Returns the arm's moments."""
        return Moments.of(self.n, self.mean, self.variance)


@dataclass(frozen=True, slots=True)
class SampleMeanStatistic:
    """Units `n`, the sum and the sum of squares of their values."""

    n: Values
    sum: Values
    sum_squares: Values

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> SampleMeanStatistic:
        """Returns the statistic of per-unit values in one pass."""
        x = np.asarray(values, dtype=float)
        return cls(n=x.size, sum=float(x.sum()), sum_squares=float(x @ x))

    def __add__(self, other: SampleMeanStatistic) -> SampleMeanStatistic:
        return SampleMeanStatistic(
            n=self.n + other.n, sum=self.sum + other.sum, sum_squares=self.sum_squares + other.sum_squares
        )

    @property
    def mean(self) -> Values:
        """Returns sum / n."""
        return self.sum / self.n

    @property
    def variance(self) -> Values:
        """Returns the sample variance (sum_squares - sum^2 / n) / (n - 1)."""
        return co_moment(self.n, self.sum, self.sum, self.sum_squares)

    @property
    def moments(self) -> Moments:
        """Returns the arm's moments."""
        return Moments.of(self.n, self.mean, self.variance)


@dataclass(frozen=True, slots=True)
class RatioStatistic:
    """A per-unit numerator and denominator (tasks over sessions) and the sum of their products.

    The metric is sum(numerator) / sum(denominator); its variance comes from the delta method
    (Deng, Knoblich and Lu 2018, "Applying the Delta Method in Metric Analytics").
    """

    numerator: SampleMeanStatistic
    denominator: SampleMeanStatistic
    sum_products: Values

    @classmethod
    def from_values(cls, numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> RatioStatistic:
        """Returns the statistic of per-unit (numerator, denominator) pairs in one pass."""
        x = np.asarray(numerator, dtype=float)
        y = np.asarray(denominator, dtype=float)
        return cls(
            numerator=SampleMeanStatistic.from_values(x),
            denominator=SampleMeanStatistic.from_values(y),
            sum_products=float(x @ y),
        )

    def __add__(self, other: RatioStatistic) -> RatioStatistic:
        return RatioStatistic(
            numerator=self.numerator + other.numerator,
            denominator=self.denominator + other.denominator,
            sum_products=self.sum_products + other.sum_products,
        )

    @property
    def n(self) -> Values:
        """Returns the number of units."""
        return self.numerator.n

    @property
    def mean(self) -> Values:
        """Returns sum(numerator) / sum(denominator)."""
        return self.numerator.sum / self.denominator.sum

    @property
    def covariance(self) -> Values:
        """Returns the sample covariance of numerator and denominator."""
        return co_moment(self.n, self.numerator.sum, self.denominator.sum, self.sum_products)

    @property
    def variance(self) -> Values:
        """Returns the per-unit delta-method variance of the ratio (Deng et al. 2018).

        var_m / mu_d^2 - 2 cov mu_m / mu_d^3 + mu_m^2 var_d / mu_d^4.
        """
        mu_m = self.numerator.mean
        mu_d = self.denominator.mean
        return (
            self.numerator.variance / mu_d**2
            - 2 * self.covariance * mu_m / mu_d**3
            + mu_m**2 * self.denominator.variance / mu_d**4
        )

    @property
    def moments(self) -> Moments:
        """Returns the arm's moments."""
        return Moments.of(self.n, self.mean, self.variance)


@dataclass(frozen=True, slots=True)
class CupedStatistic:
    """A mean metric with its pre-period covariate: post and pre statistics and their sum of products.

    Regression adjustment by CUPED (Deng, Xu, Kohavi and Walker 2013, "Improving the Sensitivity of
    Online Controlled Experiments by Utilizing Pre-Experiment Data").
    """

    post: SampleMeanStatistic
    pre: SampleMeanStatistic
    pre_post_sum_products: Values

    @classmethod
    def from_values(cls, post: npt.ArrayLike, pre: npt.ArrayLike) -> CupedStatistic:
        """Returns the statistic of per-unit (post, pre) pairs in one pass."""
        x = np.asarray(post, dtype=float)
        y = np.asarray(pre, dtype=float)
        return cls(
            post=SampleMeanStatistic.from_values(x),
            pre=SampleMeanStatistic.from_values(y),
            pre_post_sum_products=float(x @ y),
        )

    def __add__(self, other: CupedStatistic) -> CupedStatistic:
        return CupedStatistic(
            post=self.post + other.post,
            pre=self.pre + other.pre,
            pre_post_sum_products=self.pre_post_sum_products + other.pre_post_sum_products,
        )

    @property
    def n(self) -> Values:
        """Returns the number of units."""
        return self.post.n

    @property
    def covariance(self) -> Values:
        """Returns the sample covariance of post and pre values."""
        return co_moment(self.n, self.post.sum, self.pre.sum, self.pre_post_sum_products)

    @property
    def theta(self) -> Values:
        """Returns the regression coefficient cov(post, pre) / var(pre) on this data.

        0 when the pre or the post variance is 0 (no adjustment possible).
        """
        pre_variance = self.pre.variance
        usable = (pre_variance > 0) & (self.post.variance > 0)
        return cast(Values, np.where(usable, self.covariance / np.where(usable, pre_variance, 1.0), 0.0))

    def adjusted(self, theta: Values) -> Moments:
        """Returns the moments adjusted by `theta`: mean_post - theta mean_pre and
        var_post + theta^2 var_pre - 2 theta cov(post, pre); the unadjusted mean stays the post mean, with
        the post variance, and cov(post - theta pre, post) = var_post - theta cov(post, pre).
        """
        post_variance = self.post.variance
        covariance = self.covariance
        return Moments(
            n=self.n,
            mean=self.post.mean - theta * self.pre.mean,
            unadjusted_mean=self.post.mean,
            # theta (theta var_pre - 2 cov) is theta^2 var_pre - 2 theta cov without overflowing theta^2.
            variance=post_variance + theta * (theta * self.pre.variance - 2 * covariance),
            unadjusted_variance=post_variance,
            covariance=post_variance - theta * covariance,
        )


Statistic: TypeAlias = ProportionStatistic | SampleMeanStatistic | RatioStatistic | CupedStatistic


def paired_moments(control: Statistic, treatment: Statistic) -> tuple[Moments, Moments]:
    """Returns the moments of two arms compared with each other.

    CUPED arms share one theta, computed on both arms pooled into one sample (their sums added), so the
    gap between the arm means counts; theta is 0 when the pooled pre or post variance is 0.
    """
    if isinstance(control, CupedStatistic) and isinstance(treatment, CupedStatistic):
        theta = (control + treatment).theta
        return control.adjusted(theta), treatment.adjusted(theta)
    if isinstance(control, CupedStatistic) or isinstance(treatment, CupedStatistic):
        raise TypeError("a CUPED arm can only be compared with a CUPED arm")
    return control.moments, treatment.moments
