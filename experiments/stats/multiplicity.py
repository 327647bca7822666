"""Multiple-comparison corrections across every p-value of a request."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from experiments.stats.config import Correction

FloatArray = npt.NDArray[np.float64]


def holm(p_values: FloatArray) -> FloatArray:
    """Returns Holm's step-down adjusted p-values, controlling the family-wise error rate.

    Holm, S. (1979), "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6.
    """
    order = np.argsort(p_values, kind="stable")
    m = p_values.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p_values[order])
    return _unsort(np.minimum(stepped, 1.0), order)


def benjamini_hochberg(p_values: FloatArray) -> FloatArray:
    """Returns Benjamini-Hochberg adjusted p-values, controlling the false discovery rate.

    Benjamini, Y. and Hochberg, Y. (1995), "Controlling the false discovery rate", JRSS B 57.
    """
    order = np.argsort(p_values, kind="stable")
    m = p_values.size
    scaled = p_values[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    return _unsort(np.minimum(stepped, 1.0), order)


def adjust(p_values: FloatArray, correction: Correction) -> FloatArray:
    """Returns the p-values adjusted by `correction` (`none` returns them as they are)."""
    if correction == "holm":
        return holm(p_values)
    if correction == "bh":
        return benjamini_hochberg(p_values)
    return p_values


def _unsort(sorted_values: FloatArray, order: npt.NDArray[np.intp]) -> FloatArray:
    result = np.empty_like(sorted_values)
    result[order] = sorted_values
    return result
