"""Sample-ratio mismatch against scipy's chi-square goodness-of-fit test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from experiments.stats.srm import srm_check


@pytest.mark.parametrize(
    ("units", "weights"),
    [([5012, 4988], [0.5, 0.5]), ([1000, 2100, 2950], [1, 2, 3]), ([300, 330, 290, 320], [0.25] * 4)],
)
def test_srm_matches_scipy_chisquare(units: list[int], weights: list[float]) -> None:
    expected = np.array(weights) / sum(weights) * sum(units)
    reference = stats.chisquare(units, expected)
    result = srm_check(units, weights)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert result.chi_square == pytest.approx(reference.statistic, rel=1e-12)
    assert result.mismatch == (reference.pvalue < 0.001)


def test_a_split_far_from_the_weights_is_a_mismatch() -> None:
    assert srm_check([10000, 9500], [0.5, 0.5]).mismatch


def test_no_units_yet_is_no_mismatch() -> None:
    assert srm_check([0, 0, 0], [1, 1, 1]) == (1.0, False, 0.0)
