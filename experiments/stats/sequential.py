"""Always-valid inference: the asymptotic confidence sequence of Waudby-Smith et al.

Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas (2021), "Time-uniform central limit theory and
asymptotic confidence sequences", arXiv 2103.06476: eq. 9 (the sequence), eq. 155 (its e-value) and
eq. 161 (the rho that makes it tightest at N*). Valid however often the analysis is looked at.
"""

from __future__ import annotations

import numpy as np

from experiments.stats.frequentist import Interval
from experiments.stats.statistics import Values


def rho(alpha: float, tuning: float) -> float:
    """Returns the mixing parameter rho tightest at `tuning` = N* units (eq. 161)."""
    log_alpha = np.log(alpha)
    return float(np.sqrt((-2 * log_alpha + np.log(-2 * log_alpha + 1)) / tuning))


def multiplier(n_total: Values, alpha: float, tuning: float) -> Values:
    """Returns how many standard errors of the estimate the confidence sequence (eq. 9) spans on either side
    after `n_total` units: with a per-unit variance of variance * N, the half-width is this * sqrt(variance).
    """
    r = rho(alpha, tuning)
    r2n = n_total * r**2
    return np.sqrt(n_total * 2 * (r2n + 1) * np.log(np.sqrt(r2n + 1) / alpha) / (n_total * r) ** 2)


def half_width(variance: Values, n_total: Values, alpha: float, tuning: float) -> Values:
    """Returns the half-width of the asymptotic confidence sequence (eq. 9) after `n_total` units.

    `variance` is the variance of the effect estimate, so the per-unit variance is variance * N.
    """
    return multiplier(n_total, alpha, tuning) * np.sqrt(variance)


def confidence_sequence(effect: Values, variance: Values, n_total: Values, alpha: float, tuning: float) -> Interval:
    """Returns the always-valid p-value min(1, 1/e-value) (eq. 155) and the confidence sequence (eq. 9)."""
    r2 = rho(alpha, tuning) ** 2
    r2n_plus_1 = n_total * r2 + 1
    z2 = effect**2 / variance
    log_e_value = r2 * z2 * n_total / (2 * r2n_plus_1) - 0.5 * np.log(r2n_plus_1)
    width = half_width(variance, n_total, alpha, tuning)
    return Interval(p_value=np.minimum(1.0, np.exp(-log_e_value)), low=effect - width, high=effect + width)
