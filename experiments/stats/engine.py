"""The analysis: every (metric, treatment) comparison of a request at once, as numpy arrays."""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from experiments.stats import config
from experiments.stats.bayesian import gaussian_posterior
from experiments.stats.checks import field_path
from experiments.stats.difference import effect_and_variance
from experiments.stats.fieller import contrast_variance, fieller_interval, ratio_terms
from experiments.stats.frequentist import welch_degrees_of_freedom, welch_p_value, welch_quantile, welch_test
from experiments.stats.messages import Reason, describe
from experiments.stats.multiplicity import adjust
from experiments.stats.request import AnalysisRequest
from experiments.stats.result import AnalysisResult, Comparison
from experiments.stats.sequential import confidence_sequence, multiplier
from experiments.stats.srm import srm_check
from experiments.stats.statistics import Moments, Values, paired_moments
from experiments.stats.sums import DEFECTS, Defect, defects

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]


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
    #: Where `reason` is NOT_FINITE: the index in `OUT_OF_RANGE` of the first number that is not finite.
    out_of_range: npt.NDArray[np.int_]


#: The numbers of a comparison checked for overflow, in order; "{control}" and "{treatment}" name the arms.
OUT_OF_RANGE: Final = (
    "the mean of {control}",
    "the mean of {treatment}",
    "the variance of {control}",
    "the variance of {treatment}",
    "the effect",
    "the standard error",
    "the interval",
    "the interval",
    "the p-value or chance to win",
)


class _Inference(NamedTuple):
    """An engine's numbers for one difference scale, before the checks."""

    effect: Values
    se: Values
    low: Values
    high: Values
    p_value: Values
    chance_to_win: Values
    expected_loss: Values
    #: False where Fieller's interval is unbounded.
    bounded: npt.NDArray[np.bool_] | bool


def compare(
    control: Moments,
    treatment: Moments,
    *,
    engine: config.Engine = config.ENGINE,
    difference: config.Difference = config.DIFFERENCE,
    alpha: float = config.ALPHA,
    sequential_tuning: float = config.SEQUENTIAL_TUNING,
    relative_interval: config.RelativeInterval = config.RELATIVE_INTERVAL,
) -> Estimates:
    """Returns the estimates of treatment against control for arrays of arm moments, one entry per comparison.

    A relative difference gets the delta-method interval of gbstats, or Fieller's with `relative_interval`
    "log". Never raises on bad data: a comparison that cannot be computed gets a non-OK `reason`.
    """
    with np.errstate(all="ignore"):
        reason, treatment_at_fault = _reasons(control, treatment, difference)
        if difference == "relative" and relative_interval == "log":
            inference = _fieller_inference(control, treatment, engine, alpha, sequential_tuning)
        else:
            inference = _delta_inference(control, treatment, engine, difference, alpha, sequential_tuning)
        reason = np.where((reason == Reason.OK) & ~np.asarray(inference.bounded), Reason.UNBOUNDED_INTERVAL, reason)
        reported = [
            control.unadjusted_mean,
            treatment.unadjusted_mean,
            control.variance,
            treatment.variance,
            inference.effect,
            inference.se,
            inference.low,
            inference.high,
            inference.chance_to_win if engine == "bayesian" else inference.p_value,
        ]
        broadcast = np.broadcast_arrays(*(np.asarray(values, dtype=float) for values in reported))
        not_finite = ~np.isfinite(np.vstack(broadcast))
        if engine == "bayesian":
            not_finite[-1] |= ~np.isfinite(np.asarray(inference.expected_loss, dtype=float))
    reason = np.where((reason == Reason.OK) & not_finite.any(axis=0), Reason.NOT_FINITE, reason)
    return Estimates(
        reason=reason,
        treatment_at_fault=treatment_at_fault,
        effect=np.asarray(inference.effect, dtype=float),
        se=np.asarray(inference.se, dtype=float),
        ci_low=np.asarray(inference.low, dtype=float),
        ci_high=np.asarray(inference.high, dtype=float),
        p_value=np.asarray(inference.p_value, dtype=float),
        chance_to_win=np.asarray(inference.chance_to_win, dtype=float),
        expected_loss=np.asarray(inference.expected_loss, dtype=float),
        out_of_range=np.argmax(not_finite, axis=0),
    )


def _delta_inference(
    control: Moments,
    treatment: Moments,
    engine: config.Engine,
    difference: config.Difference,
    alpha: float,
    sequential_tuning: float,
) -> _Inference:
    """Returns each engine's numbers on the effect and its delta-method variance (gbstats 0.8.0)."""
    effect, variance = effect_and_variance(control, treatment, difference)
    se = np.sqrt(variance)
    missing: Values = np.full_like(se, np.nan)
    if engine == "bayesian":
        posterior = gaussian_posterior(effect, variance, alpha)
        return _Inference(
            effect, se, posterior.low, posterior.high, missing, posterior.chance_to_win, posterior.expected_loss, True
        )
    if engine == "sequential":
        interval = confidence_sequence(effect, variance, control.n + treatment.n, alpha, sequential_tuning)
    else:
        interval = welch_test(effect, variance, welch_degrees_of_freedom(control, treatment), alpha)
    return _Inference(effect, se, interval.low, interval.high, interval.p_value, missing, missing, True)


def _fieller_inference(
    control: Moments, treatment: Moments, engine: config.Engine, alpha: float, sequential_tuning: float
) -> _Inference:
    """Returns each engine's numbers on the relative effect with Fieller's interval (`experiments.stats.fieller`).

    The p-value (or chance to win) is the absolute difference's, the test of e = 0 the interval inverts;
    the standard error is the delta method's at the estimate, sqrt(V(e)) / |m_c|; the Bayesian expected
    loss is the absolute one over |m_c| (a ratio of Gaussians has no mean to take a loss from).
    """
    terms = ratio_terms(control, treatment)
    effect = terms.gap / terms.control_mean
    se = np.sqrt(contrast_variance(terms, effect)) / np.abs(terms.control_mean)
    missing: Values = np.full_like(se, np.nan)
    if engine == "bayesian":
        # A gain of the gap is a gain of the ratio when the control mean is positive, a loss when negative.
        posterior = gaussian_posterior(np.sign(terms.control_mean) * terms.gap, terms.gap_variance, alpha)
        low, high, bounded = fieller_interval(terms, special.ndtri(1 - alpha / 2))
        loss = posterior.expected_loss / np.abs(terms.control_mean)
        return _Inference(effect, se, low, high, missing, posterior.chance_to_win, loss, bounded)
    if engine == "sequential":
        n_total = control.n + treatment.n
        q = multiplier(n_total, alpha, sequential_tuning)
        p_value = confidence_sequence(terms.gap, terms.gap_variance, n_total, alpha, sequential_tuning).p_value
    else:
        df = welch_degrees_of_freedom(control, treatment)
        q = welch_quantile(df, alpha)
        p_value = welch_p_value(terms.gap, terms.gap_variance, df)
    low, high, bounded = fieller_interval(terms, q)
    return _Inference(effect, se, low, high, p_value, missing, missing, bounded)


def analyze(request: AnalysisRequest) -> AnalysisResult:
    """Returns the SRM check and one comparison per (metric, treatment) of the request, in request order.

    Never raises on bad data: a comparison that cannot be computed is a row with an `error` and null
    numbers, and takes no part in the multiple-comparison correction.
    """
    srm = srm_check([variant.units for variant in request.variants], [variant.weight for variant in request.variants])
    treatments = request.treatments
    control, treatment, control_defects, treatment_defects = _arm_moments(request)
    estimates = compare(
        control,
        treatment,
        engine=request.engine,
        difference=request.difference,
        alpha=request.alpha,
        sequential_tuning=request.sequential_tuning,
        relative_interval=request.relative_interval,
    )
    # Impossible sums outrank every reason but an empty or single-unit arm, which have no sums to speak of.
    without_sums = (estimates.reason == Reason.EMPTY_ARM) | (estimates.reason == Reason.SINGLE_UNIT)
    defective = ((control_defects > 0) | (treatment_defects > 0)) & ~without_sums
    treatment_at_fault = np.where(defective, control_defects == 0, estimates.treatment_at_fault)
    defect_index = np.where(treatment_at_fault, treatment_defects, control_defects)
    usable = (estimates.reason == Reason.OK) & ~defective
    adjusted = estimates.p_value.copy()
    adjusted[usable] = adjust(estimates.p_value[usable], request.correction)
    errors: list[str | None] = [None] * usable.size
    for row in np.flatnonzero(~usable).tolist():
        at_fault = treatments[row % len(treatments)] if treatment_at_fault[row] else request.control
        errors[row] = _error(request, row, at_fault, estimates, DEFECTS[defect_index[row]] if defective[row] else None)
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


def _error(request: AnalysisRequest, row: int, at_fault: str, estimates: Estimates, defect: Defect | None) -> str:
    """Returns the error of a row that cannot be computed: the arm's path and what is wrong with its sums,
    or the reason the numbers do not allow it."""
    if defect is not None:
        metric = row // len(request.treatments)
        return f"{field_path(f'metrics[{metric}].data', at_fault)}: {defect.text}"
    reason = Reason(estimates.reason[row])
    detail = ""
    if reason == Reason.NOT_FINITE:
        arms = {"control": request.control, "treatment": request.treatments[row % len(request.treatments)]}
        detail = OUT_OF_RANGE[estimates.out_of_range[row]].format(**arms)
    return describe(reason, at_fault, detail)


def _reported(values: Values, usable: npt.NDArray[np.bool_]) -> list[float | None]:
    """Returns the numbers as a list, None where the row is an error or the number does not apply (NaN)."""
    array = np.asarray(values, dtype=float)
    shown = array.astype(object)
    shown[~usable | np.isnan(array)] = None
    return list(shown.tolist())


def _arm_moments(request: AnalysisRequest) -> tuple[Moments, Moments, IntArray, IntArray]:
    """Returns control's and treatment's moments for every (metric, treatment), in request order, and the
    defects of their sums (indices in `sums.DEFECTS`, 0 where the sums are possible).

    Each group of metrics of one statistic type is computed in one vectorised step per treatment.
    """
    treatments = request.treatments
    size = len(request.metrics) * len(treatments)
    control_columns = [np.empty(size) for _ in Moments._fields]
    treatment_columns = [np.empty(size) for _ in Moments._fields]
    control_defects = np.zeros(size, dtype=np.int_)
    treatment_defects = np.zeros(size, dtype=np.int_)
    with np.errstate(all="ignore"):
        for group in request.groups:
            control = group.arms[request.control]
            found_in_control = defects(control)
            for offset, name in enumerate(treatments):
                rows = group.positions * len(treatments) + offset
                pair = paired_moments(control, group.arms[name])
                for columns, moments in zip((control_columns, treatment_columns), pair, strict=True):
                    for column, values in zip(columns, moments, strict=True):
                        column[rows] = values
                control_defects[rows] = found_in_control
                treatment_defects[rows] = defects(group.arms[name])
    return Moments(*control_columns), Moments(*treatment_columns), control_defects, treatment_defects


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
        # A variance that is not a number falls through to NOT_FINITE, which names it.
        (Reason.ZERO_VARIANCE, control.variance <= 0, treatment.variance <= 0),
    )
    reason = np.full(no_fault.shape, Reason.OK, dtype=np.int_)
    treatment_at_fault = no_fault
    for code, control_fails, treatment_fails in reversed(checks):
        fails = control_fails | treatment_fails
        reason = np.where(fails, code, reason)
        treatment_at_fault = np.where(fails, ~control_fails, treatment_at_fault)
    return reason, treatment_at_fault
