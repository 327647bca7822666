"""Multiple-comparison corrections across every p-value of a request."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from experiments.stats.config import Correction

FloatArray = npt.NDArray[np.float64]


def holm(p_values: FloatArray) -> FloatArray:
    """Returns Holm's step-down adjusted p-values, controlling the family-wise error rate.

    A 2-D array holds one family per row. Holm, S. (1979), "A simple sequentially rejective multiple
    test procedure", Scand. J. Statist. 6.
    """
    order = np.argsort(p_values, axis=-1, kind="stable")
    m = p_values.shape[-1]
    stepped = np.maximum.accumulate((m - np.arange(m)) * np.take_along_axis(p_values, order, axis=-1), axis=-1)
    return _unsort(np.minimum(stepped, 1.0), order)


def benjamini_hochberg(p_values: FloatArray) -> FloatArray:
    """Returns Benjamini-Hochberg adjusted p-values, controlling the false discovery rate.

    A 2-D array holds one family per row. Benjamini, Y. and Hochberg, Y. (1995), "Controlling the false
    discovery rate", JRSS B 57.
    """
    order = np.argsort(p_values, axis=-1, kind="stable")
    m = p_values.shape[-1]
    scaled = np.take_along_axis(p_values, order, axis=-1) * m / np.arange(1, m + 1)
    stepped = np.flip(np.minimum.accumulate(np.flip(scaled, axis=-1), axis=-1), axis=-1)
    return _unsort(np.minimum(stepped, 1.0), order)


def adjust(p_values: FloatArray, correction: Correction) -> FloatArray:
    """Returns the p-values adjusted by `correction` (`none` returns them as they are); one family per row."""
    if correction == "holm":
        return holm(p_values)
    if correction == "bh":
        return benjamini_hochberg(p_values)
    return p_values


def _unsort(sorted_values: FloatArray, order: npt.NDArray[np.intp]) -> FloatArray:
    result = np.empty_like(sorted_values)
    np.put_along_axis(result, order, sorted_values, axis=-1)
    return result
