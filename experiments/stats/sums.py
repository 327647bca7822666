"""Sums that no real values can produce: a negative second moment, a correlation beyond -1 or 1, a square
that overflows a double.

Such sums are a fault upstream (a store, an export), not a property of the experiment: the comparison is
an error row naming the arm and the quantity, never a test on numbers that mean nothing. The sums of n
real values satisfy sum_squares >= sum^2 / n and (sum_products - sum_x sum_y / n)^2 <=
(sum_squares_x - sum_x^2 / n)(sum_squares_y - sum_y^2 / n); a gap within `config.ROUNDING` of the sums
is floating-point rounding and is let through.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from experiments.stats import config
from experiments.stats.messages import Reason
from experiments.stats.statistics import (
    CupedStatistic,
    ProportionStatistic,
    SampleMeanStatistic,
    Statistic,
)


class Defect(NamedTuple):
    """What is wrong with an arm's sums: the reason and the words after the arm's path."""

    reason: Reason
    text: str


def _moment_defects(total: str, squares: str) -> tuple[Defect, Defect]:
    return (
        Defect(Reason.SUMS_OVERFLOW, f"{total} is too large: {total}^2/n overflows"),
        Defect(Reason.NEGATIVE_VARIANCE, f"{squares} is smaller than {total}^2/n (negative variance)"),
    )


def _products_defect(products: str) -> Defect:
    return Defect(
        Reason.IMPOSSIBLE_CORRELATION, f"{products} is impossible with these sums (correlation beyond -1 or 1)"
    )


#: Every defect an arm can have, in the order its fields are checked; index 0 is "none".
_POST = _moment_defects("sum", "sum_squares")
_PRE = _moment_defects("pre_sum", "pre_sum_squares")
_DENOMINATOR = _moment_defects("den_sum", "den_sum_squares")
_PRE_POST = _products_defect("pre_post_sum_products")
_PRODUCTS = _products_defect("sum_products")
DEFECTS: Final[tuple[Defect | None, ...]] = (None, *_POST, *_PRE, *_DENOMINATOR, _PRE_POST, _PRODUCTS)

IntArray = npt.NDArray[np.int_]


def defects(statistic: Statistic) -> IntArray:
    """Returns, for each arm entry of a (stacked) statistic, the index in `DEFECTS` of the first defect of its
    sums in field order, 0 where they are possible. An arm without units has no defect (it has no sums)."""
    if isinstance(statistic, ProportionStatistic):
        # The request bounds a proportion's sum to [0, n]: always possible.
        return np.zeros(np.shape(statistic.n), dtype=np.int_)
    if isinstance(statistic, SampleMeanStatistic):
        return _first(_moment_checks(statistic, _POST))
    if isinstance(statistic, CupedStatistic):
        checks = _moment_checks(statistic.post, _POST) + _moment_checks(statistic.pre, _PRE)
        checks.append((_impossible_products(statistic.post, statistic.pre, statistic.pre_post_sum_products), _PRE_POST))
        return _first(checks)
    checks = _moment_checks(statistic.numerator, _POST) + _moment_checks(statistic.denominator, _DENOMINATOR)
    checks.append((_impossible_products(statistic.numerator, statistic.denominator, statistic.sum_products), _PRODUCTS))
    return _first(checks)


_Check = tuple[npt.NDArray[np.bool_], Defect]


def _moment_checks(values: SampleMeanStatistic, defects_of: tuple[Defect, Defect]) -> list[_Check]:
    overflow, negative = defects_of
    with np.errstate(all="ignore"):
        n = np.asarray(values.n, dtype=float)
        square = np.asarray(values.sum, dtype=float) ** 2 / n
        counted = n > 0
        return [
            (counted & ~np.isfinite(square), overflow),
            (counted & (np.asarray(values.sum_squares) < square * (1 - config.ROUNDING)), negative),
        ]


def _impossible_products(
    x: SampleMeanStatistic, y: SampleMeanStatistic, sum_products: npt.ArrayLike
) -> npt.NDArray[np.bool_]:
    """Returns where the centred cross-product exceeds what the centred squares allow, beyond rounding."""
    with np.errstate(all="ignore"):
        n = np.asarray(x.n, dtype=float)
        products = np.asarray(sum_products, dtype=float)
        cross = x.sum * y.sum / n
        centred_x = np.maximum(x.sum_squares - x.sum**2 / n, 0.0)
        centred_y = np.maximum(y.sum_squares - y.sum**2 / n, 0.0)
        slack = config.ROUNDING * (np.abs(products) + np.abs(cross))
        return np.asarray((n > 0) & (np.abs(products - cross) > np.sqrt(centred_x * centred_y) + slack))


def _first(checks: list[_Check]) -> IntArray:
    """Returns the index in `DEFECTS` of the first check that fails, 0 where none does."""
    found = np.zeros(np.shape(checks[0][0]), dtype=np.int_)
    for failed, defect in reversed(checks):
        found = np.where(failed, DEFECTS.index(defect), found)
    return found
