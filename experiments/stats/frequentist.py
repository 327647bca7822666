"""Welch's t-test on a difference of means, fixed horizon."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from experiments.stats.statistics import Moments, Values


class Interval(NamedTuple):
    """A two-sided test: p-value and the confidence (or credible) interval of the effect."""

    p_value: Values
    low: Values
    high: Values


def welch_degrees_of_freedom(control: Moments, treatment: Moments) -> Values:
    """Returns the Welch-Satterthwaite degrees of freedom from the arms' own variances (Welch 1947).

    (v_c/n_c + v_t/n_t)^2 / (v_c^2 / (n_c^2 (n_c - 1)) + v_t^2 / (n_t^2 (n_t - 1))).
    """
    share_c = control.variance / control.n
    share_t = treatment.variance / treatment.n
    return (share_c + share_t) ** 2 / (share_c**2 / (control.n - 1) + share_t**2 / (treatment.n - 1))


def welch_quantile(df: Values, alpha: float) -> Values:
    """Returns t(1 - alpha/2, df), the standard errors a two-sided 1 - alpha interval spans on either side."""
    quantile: Values = special.stdtrit(df, 1 - alpha / 2)
    return quantile


def welch_p_value(effect: Values, variance: Values, df: Values) -> Values:
    """Returns the two-sided p-value of Welch's test that the effect is 0."""
    p_value: Values = 2 * special.stdtr(df, -np.abs(effect) / np.sqrt(variance))
    return p_value


def welch_test(effect: Values, variance: Values, df: Values, alpha: float) -> Interval:
    """Returns Welch's two-sided p-value and the interval effect +- t(1 - alpha/2, df) * se.

    Welch, B. L. (1947), "The generalization of Student's problem when several different population
    variances are involved", Biometrika 34.
    """
    width = welch_quantile(df, alpha) * np.sqrt(variance)
    return Interval(p_value=welch_p_value(effect, variance, df), low=effect - width, high=effect + width)
