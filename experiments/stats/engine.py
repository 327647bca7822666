"""The analysis: every (metric, treatment) comparison of a request at once, as numpy arrays."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from experiments.stats import config
from experiments.stats.bayesian import gaussian_posterior
from experiments.stats.difference import effect_and_variance
from experiments.stats.frequentist import welch_degrees_of_freedom, welch_test
from experiments.stats.messages import Reason, describe
from experiments.stats.multiplicity import adjust
from experiments.stats.request import AnalysisRequest
from experiments.stats.result import AnalysisResult, Comparison
from experiments.stats.sequential import confidence_sequence
from experiments.stats.srm import srm_check
from experiments.stats.statistics import Moments, Values, paired_moments

FloatArray = npt.NDArray[np.float64]


class Estimates(NamedTuple):
    """The outcome of many comparisons: arrays with one entry per comparison, NaN where not applicable."""

    reason: npt.NDArray[np.int_]
    #: Where `reason` blames one arm: True for the treatment, False for control.
    treatment_at_fault: npt.NDArray[np.bool_]
    effect: FloatArray
    se: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    p_value: FloatArray
    chance_to_win: FloatArray
    expected_loss: FloatArray


def compare(
    control: Moments,
    treatment: Moments,
    *,
    engine: config.Engine = config.ENGINE,
    difference: config.Difference = config.DIFFERENCE,
    alpha: float = config.ALPHA,
    sequential_tuning: float = config.SEQUENTIAL_TUNING,
) -> Estimates:
    """Returns the estimates of treatment against control for arrays of arm moments, one entry per comparison.

    Never raises on bad data: a comparison that cannot be computed gets a non-OK `reason`.
    """
    with np.errstate(all="ignore"):
        reason, treatment_at_fault = _reasons(control, treatment, difference)
        effect, variance = effect_and_variance(control, treatment, difference)
        se = np.sqrt(variance)
        missing: Values = np.full_like(se, np.nan)
        if engine == "bayesian":
            posterior = gaussian_posterior(effect, variance, alpha)
            low, high, p_value = posterior.low, posterior.high, missing
            chance_to_win, expected_loss = posterior.chance_to_win, posterior.expected_loss
        else:
            if engine == "sequential":
                interval = confidence_sequence(effect, variance, control.n + treatment.n, alpha, sequential_tuning)
            else:
                df = welch_degrees_of_freedom(control, treatment)
                interval = welch_test(effect, variance, df, alpha)
            low, high, p_value = interval.low, interval.high, interval.p_value
            chance_to_win = expected_loss = missing
        reported = [control.unadjusted_mean, treatment.unadjusted_mean, effect, se, low, high]
        reported += [chance_to_win, expected_loss] if engine == "bayesian" else [p_value]
        finite = np.all(np.isfinite(np.vstack(reported)), axis=0)
    reason = np.where((reason == Reason.OK) & ~finite, Reason.NOT_FINITE, reason)
    return Estimates(
        reason=reason,
        treatment_at_fault=treatment_at_fault,
        effect=np.asarray(effect, dtype=float),
        se=np.asarray(se, dtype=float),
        ci_low=np.asarray(low, dtype=float),
        ci_high=np.asarray(high, dtype=float),
        p_value=np.asarray(p_value, dtype=float),
        chance_to_win=np.asarray(chance_to_win, dtype=float),
        expected_loss=np.asarray(expected_loss, dtype=float),
    )


def analyze(request: AnalysisRequest) -> AnalysisResult:
    """Returns the SRM check and one comparison per (metric, treatment) of the request, in request order.

    Never raises on bad data: a comparison that cannot be computed is a row with an `error` and null
    numbers, and takes no part in the multiple-comparison correction.
    """
    srm = srm_check([variant.units for variant in request.variants], [variant.weight for variant in request.variants])
    treatments = request.treatments
    control, treatment = _arm_moments(request)
    estimates = compare(
        control,
        treatment,
        engine=request.engine,
        difference=request.difference,
        alpha=request.alpha,
        sequential_tuning=request.sequential_tuning,
    )
    usable = estimates.reason == Reason.OK
    adjusted = estimates.p_value.copy()
    adjusted[usable] = adjust(estimates.p_value[usable], request.correction)
    errors: list[str | None] = [None] * usable.size
    for row in np.flatnonzero(~usable).tolist():
        at_fault = treatments[row % len(treatments)] if estimates.treatment_at_fault[row] else request.control
        errors[row] = describe(Reason(estimates.reason[row]), at_fault)
    columns = zip(
        [metric.name for metric in request.metrics for _ in treatments],
        treatments * len(request.metrics),
        _reported(control.unadjusted_mean, usable),
        _reported(treatment.unadjusted_mean, usable),
        _reported(estimates.effect, usable),
        _reported(estimates.ci_low, usable),
        _reported(estimates.ci_high, usable),
        _reported(estimates.p_value, usable),
        _reported(adjusted, usable),
        _reported(estimates.chance_to_win, usable),
        errors,
        _reported(estimates.se, usable),
        _reported(estimates.expected_loss, usable),
        list(map(int, np.asarray(control.n, dtype=float).tolist())),
        list(map(int, np.asarray(treatment.n, dtype=float).tolist())),
        strict=True,
    )
    return AnalysisResult(srm=srm, comparisons=tuple(map(Comparison._make, columns)))


def _reported(values: Values, usable: npt.NDArray[np.bool_]) -> list[float | None]:
    """Returns the numbers as a list, None where the row is an error or the number does not apply (NaN)."""
    array = np.asarray(values, dtype=float)
    shown = array.astype(object)
    shown[~usable | np.isnan(array)] = None
    return list(shown.tolist())


def _arm_moments(request: AnalysisRequest) -> tuple[Moments, Moments]:
    """Returns control's and treatment's moments for every (metric, treatment), in request order.

    Each group of metrics of one statistic type is computed in one vectorised step per treatment.
    """
    treatments = request.treatments
    size = len(request.metrics) * len(treatments)
    control_columns = [np.empty(size) for _ in Moments._fields]
    treatment_columns = [np.empty(size) for _ in Moments._fields]
    with np.errstate(all="ignore"):
        for group in request.groups:
            control = group.arms[request.control]
            for offset, name in enumerate(treatments):
                rows = group.positions * len(treatments) + offset
                pair = paired_moments(control, group.arms[name])
                for columns, moments in zip((control_columns, treatment_columns), pair, strict=True):
                    for column, values in zip(columns, moments, strict=True):
                        column[rows] = values
    return Moments(*control_columns), Moments(*treatment_columns)


def _reasons(
    control: Moments, treatment: Moments, difference: config.Difference
) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.bool_]]:
    """Returns why each comparison cannot be computed (`Reason.OK` if it can) and if treatment is to blame.

    The first failing check wins; control is blamed before treatment.
    """
    no_fault = np.zeros_like(np.asarray(control.n), dtype=bool)
    zero_control_mean = (np.asarray(control.unadjusted_mean) == 0) if difference == "relative" else no_fault
    checks = (
        (Reason.EMPTY_ARM, control.n == 0, treatment.n == 0),
        (Reason.SINGLE_UNIT, control.n == 1, treatment.n == 1),
        (
            Reason.UNDEFINED_MEAN,
            ~np.isfinite(control.unadjusted_mean),
            ~np.isfinite(treatment.unadjusted_mean),
        ),
        (Reason.ZERO_CONTROL_MEAN, zero_control_mean, no_fault),
        (Reason.ZERO_VARIANCE, ~(control.variance > 0), ~(treatment.variance > 0)),
    )
    reason = np.full(no_fault.shape, Reason.OK, dtype=np.int_)
    treatment_at_fault = no_fault
    for code, control_fails, treatment_fails in reversed(checks):
        fails = control_fails | treatment_fails
        reason = np.where(fails, code, reason)
        treatment_at_fault = np.where(fails, ~control_fails, treatment_at_fault)
    return reason, treatment_at_fault
