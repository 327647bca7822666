"""Sample-ratio mismatch: do the units split across variants as the weights say?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

from experiments.stats import config


class SrmResult(NamedTuple):
    """The SRM check: `mismatch` when the p-value is below the threshold."""

    p_value: float
    mismatch: bool
    chi_square: float


def srm_check(units: Sequence[float], weights: Sequence[float], threshold: float = config.SRM_THRESHOLD) -> SrmResult:
    """Returns Pearson's chi-square test of the observed `units` against the split the `weights` expect.

    k - 1 degrees of freedom for k variants; p-value 1 when there are no units yet.
    """
    observed = np.asarray(units, dtype=float)
    total = observed.sum()
    if total == 0:
        return SrmResult(p_value=1.0, mismatch=False, chi_square=0.0)
    shares = np.asarray(weights, dtype=float)
    expected = shares / shares.sum() * total
    chi_square = float(np.sum((observed - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(chi_square, observed.size - 1))
    return SrmResult(p_value=p_value, mismatch=p_value < threshold, chi_square=chi_square)
