"""Reference computations from statsmodels, shared by the tests."""

from __future__ import annotations

import gc
from unittest import mock

import numpy as np
import numpy.typing as npt
from statsmodels.stats.multitest import multipletests


def statsmodels_adjusted(p_values: npt.ArrayLike, method: str) -> npt.NDArray[np.float64]:
    """Returns statsmodels' multipletests adjusted p-values (`holm` or `fdr_bh`).

    multipletests runs gc.collect() on every call, which takes a tenth of a second in a test process:
    switched off here so that Hypothesis can run many examples.
    """
    with mock.patch.object(gc, "collect", return_value=0):
        return np.asarray(multipletests(np.asarray(p_values, dtype=float), method=method)[1], dtype=float)
