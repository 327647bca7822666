"""The effect of a treatment on a metric, absolute or relative, and the variance of that estimate."""

from __future__ import annotations

from experiments.stats.config import Difference
from experiments.stats.statistics import Moments, Values


def effect_and_variance(control: Moments, treatment: Moments, difference: Difference) -> tuple[Values, Values]:
    """Returns the effect of treatment over control and the variance of that estimate.

    Absolute: mean_t - mean_c, with variance var_c / n_c + var_t / n_t.
    Relative: (mean_t - mean_c) / mu_c, with the delta-method variance (Deng et al. 2018)
    var_t / (mu_c^2 n_t) + var_c mu_t^2 / (mu_c^4 n_c), where mu are the unadjusted means (they differ
    from `mean` only under CUPED) and var the arms' (adjusted) variances.
    """
    gap = treatment.mean - control.mean
    if difference == "absolute":
        return gap, control.variance / control.n + treatment.variance / treatment.n
    mu_c = control.unadjusted_mean
    mu_t = treatment.unadjusted_mean
    variance = treatment.variance / (mu_c**2 * treatment.n) + control.variance * mu_t**2 / (mu_c**4 * control.n)
    return gap / mu_c, variance
