"""Fieller's interval for a relative difference: the calibrated alternative to the delta method.

The relative effect e = gap / m_c is a ratio: gap is the difference of the tested means (treatment minus
control, CUPED-adjusted when the metric is) and m_c the control's unadjusted mean. The delta method
(gbstats) gives it a symmetric interval e +- q se whose standard error is smaller when the treatment's
mean is low, so at small samples an A/A test calls "treatment worse" far more often than alpha.

Fieller's theorem (Fieller 1954, "Some problems in interval estimation", JRSS B 16) inverts instead, for
every candidate e, the test of the linear contrast gap - e m_c = 0, which is asymptotically normal with
variance V(e) = var(gap) - 2 e cov(gap, m_c) + e^2 var(m_c). The interval is every e with
(gap - e m_c)^2 <= q^2 V(e), a quadratic inequality in e. At e = 0 the contrast is the absolute difference,
so the interval excludes 0 exactly when the absolute test rejects: the relative result is as calibrated as
the absolute one. When m_c is within q standard errors of 0 the set is unbounded and no interval exists.

The same inversion serves each engine with its own multiplier q: Student's t with Welch's degrees of freedom
(frequentist), the confidence sequence's (sequential, valid at every look since it holds at the true e),
and the normal quantile (Bayesian: the central credible interval of the ratio of the flat-prior Gaussian
posteriors of gap and m_c, by the Geary-Hinkley transformation).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from experiments.stats.statistics import Moments, Values


class RatioTerms(NamedTuple):
    """The estimates a relative difference is a ratio of, and their (co)variances as estimates."""

    gap: Values
    control_mean: Values
    gap_variance: Values
    #: cov(gap, m_c): only the control arm's tested value and unadjusted mean co-vary.
    covariance: Values
    control_variance: Values


def ratio_terms(control: Moments, treatment: Moments) -> RatioTerms:
    """Returns the numerator (gap), denominator (control's unadjusted mean) and their variances."""
    return RatioTerms(
        gap=treatment.mean - control.mean,
        control_mean=control.unadjusted_mean,
        gap_variance=control.variance / control.n + treatment.variance / treatment.n,
        covariance=-control.covariance / control.n,
        control_variance=control.unadjusted_variance / control.n,
    )


def contrast_variance(terms: RatioTerms, effect: Values) -> Values:
    """Returns V(e), the variance of gap - e m_c: var(gap) - 2 e cov(gap, m_c) + e^2 var(m_c)."""
    return terms.gap_variance - 2 * effect * terms.covariance + effect**2 * terms.control_variance


def fieller_interval(terms: RatioTerms, q: Values) -> tuple[Values, Values, npt.NDArray[np.bool_]]:
    """Returns the bounds of {e : (gap - e m_c)^2 <= q^2 V(e)} and where that set is bounded (NaN bounds
    where it is not).

    The set is a e^2 - 2 b e + c <= 0 with a = m_c^2 - q^2 var(m_c), b = gap m_c - q^2 cov(gap, m_c) and
    c = gap^2 - q^2 var(gap): bounded when a > 0. The roots are taken in the form that loses no digits
    to cancellation, so that the bound nearest 0 has the sign of c, exactly as the test of e = 0 decides.
    """
    q2 = q**2
    a = terms.control_mean**2 - q2 * terms.control_variance
    b = terms.gap * terms.control_mean - q2 * terms.covariance
    c = terms.gap**2 - q2 * terms.gap_variance
    root = np.sqrt(np.maximum(b**2 - a * c, 0.0))
    far = b + np.where(b < 0, -root, root)
    # Numbers that are not finite leave the interval NaN but are not called unbounded: the checks name them.
    bounded = np.asarray(~(a <= 0))
    first = np.where(bounded, far / np.where(bounded, a, 1.0), np.nan)
    second = np.where(bounded, np.where(far != 0, c / np.where(far != 0, far, 1.0), 0.0), np.nan)
    return np.minimum(first, second), np.maximum(first, second), bounded
