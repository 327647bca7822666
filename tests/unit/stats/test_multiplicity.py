"""Holm and Benjamini-Hochberg against statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.stats.multiplicity import adjust
from tests.unit.stats.references import statsmodels_adjusted

p_values = st.lists(
    st.floats(min_value=0.0, max_value=1.0) | st.sampled_from([0.01, 0.04, 0.5, 1.0]), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(p=p_values, correction=st.sampled_from([("holm", "holm"), ("bh", "fdr_bh")]))
def test_adjusted_p_values_match_statsmodels(p: list[float], correction: tuple[str, str]) -> None:
    ours, method = correction
    expected = statsmodels_adjusted(p, method)
    np.testing.assert_allclose(adjust(np.array(p), ours), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_many_random_families_match_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=200), rng.uniform(0, 1e-4, size=20)])
    np.testing.assert_allclose(adjust(p, "holm"), statsmodels_adjusted(p, "holm"), rtol=1e-12)
    np.testing.assert_allclose(adjust(p, "bh"), statsmodels_adjusted(p, "fdr_bh"), rtol=1e-12)


def test_no_correction_and_an_empty_family_leave_p_values_as_they_are() -> None:
    p = np.array([0.2, 0.01])
    assert adjust(p, "none") is p
    assert adjust(np.array([]), "holm").size == 0
    assert adjust(np.array([]), "bh").size == 0


@pytest.mark.parametrize(("correction", "method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_each_row_of_a_2d_array_is_a_family_of_its_own(correction: str, method: str) -> None:
    p = np.random.default_rng(7).uniform(0, 0.1, size=(6, 10))
    adjusted = adjust(p, correction)  # type: ignore[arg-type]
    for row, family in zip(adjusted, p, strict=True):
        np.testing.assert_allclose(row, statsmodels_adjusted(family, method), rtol=1e-12)
