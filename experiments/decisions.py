"""The recommendation to the decision board: go, no-go, iterate or keep running, with every reason.

The rules are the pilot's, written before it started (`ExperimentSpec`, `DecisionRules`); this
module only applies them to the stats engine's comparison rows. Effects, intervals and thresholds
are in the experiment's difference scale (relative: 0.05 is +5 %). "Better" follows the metric's
`higher_is_better`; alpha is the analysis plan's.

Per treatment (each judged against the control):

1. Primary metric (`_judge_primary`):
   - better: the interval's good end clears `minimum_effect` (frequentist and sequential: the
     whole interval is above it in the good direction, and with a multiple-comparison correction
     the adjusted p-value is also below alpha; Bayesian: chance of beating the control >= 1 - alpha
     and the mean effect >= `minimum_effect`);
   - worse: significantly worse than the control (the whole interval on the bad side of 0, the
     adjusted p-value below alpha under a correction; Bayesian: chance of beating the control
     <= alpha);
   - not worth it: the planned sample is reached and the whole interval lies below
     `minimum_effect`;
   - inconclusive otherwise; an error row (or no row) leaves the treatment unjudged.
2. Guardrails (`_judge_guardrail`): a guardrail vetoes the treatment when it degraded beyond its
   tolerance significantly: the whole interval beyond the tolerance bound on the bad side;
   Bayesian: the posterior chance of a degradation beyond the tolerance >= 1 - alpha (the Gaussian
   posterior recovered from the credible interval; at a tolerance of 0 it is 1 - chance to win).
   The unadjusted interval is used: a guardrail protects citizens, so it is not relaxed for
   multiplicity. An error row leaves the guardrail unverified.
3. The treatment's verdict (`_treatment_verdict`):
   - a veto: iterate if the primary is better (promising, but it harms something), no-go otherwise;
   - primary better and every guardrail verified: go;
   - primary worse or not worth it: no-go;
   - otherwise (inconclusive, unjudged, or better with an unverified guardrail): keep running
     while the planned sample is not reached, iterate once it is.

Then for the experiment:

4. Sample ratio mismatch (`_srm_reason`): the split of participants between variants does not
   match the design, so assignment or logging is broken and no comparison can be trusted. This
   blocks every other outcome: the recommendation is iterate (investigate, fix, restart);
   keeping running would only collect more biased data.
5. Treatments combine (`_combine`) by precedence go > keep running > iterate > no-go: any treatment
   that can go is funded (the one with the largest effect in the good direction, first declared on
   a tie); otherwise the experiment keeps running while some treatment may still win, and so on.
6. Scorecard (`_scorecard_reasons`): go also needs every scorecard criterion that has a target to be
   met; a target missed, or without data to check it, turns go into iterate, naming each. Without
   a scorecard, go stands and a reason says the targets were not checked.
7. Planned sample (`_plan_progress`): `ExperimentSpec.planned_sample` (exposed participants across
   all variants) or else `planned_days` (with `days_running`). Keep running carries
   `expected_days`, the days still needed at the current exposure rate.
8. No peeking (`_too_early`): with a fixed-horizon engine (frequentist or Bayesian) and a planned
   sample or duration not yet reached, a go or no-go becomes keep running: only the sequential
   engine's always-valid intervals may end an experiment early. A guardrail veto still stops it.
9. Calibrated relative intervals (`_uncalibrated`): every reason on a relative difference names the
   interval it read, Fieller's ("log", the plan's default, calibrated at every sample size) or
   gbstats' delta method. The delta-method interval calls an A/A treatment "worse" more often than
   alpha / 2 (and "better" less often) by an amount that grows with the ratio's relative standard
   error; its calibration is shown only up to `GBSTATS_RELATIVE_SE_LIMIT` (2 %: each side within 15 %
   of alpha / 2). A gbstats relative interval less precise than that, judged by its half-width over
   z (1 + effect), supports nothing: the primary is unjudged and a guardrail unverified, each with an
   error reason, so the treatment cannot go (nor be stopped on it). The rows must come from the plan's
   own analysis (`experiments.results.build_results` passes it `relative_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple, Protocol

from scipy import stats

from experiments import formatting as fmt
from experiments.formatting import Figure, Message
from experiments.i18n import N_, Nn_, names
from experiments.registry import AnalysisPlan, ExperimentSpec, Guardrail, MetricSpec, PilotSpec, RelativeInterval
from experiments.scorecard import Criterion, Scorecard, criterion_figure
from experiments.stats.config import GBSTATS_RELATIVE_SE_LIMIT
from experiments.stats.power import days_to_reach

Outcome = Literal["go", "no-go", "iterate", "keep running"]
ReasonKind = Literal["srm", "primary", "guardrail", "error", "sample", "scorecard"]
PrimaryJudgement = Literal["better", "worse", "not worth it", "inconclusive", "unjudged"]

#: Which outcome prevails when treatments disagree, first first.
OUTCOME_PRECEDENCE: tuple[Outcome, ...] = ("go", "keep running", "iterate", "no-go")
#: How a reason names the interval of a relative difference.
RELATIVE_INTERVAL_NAMES: dict[RelativeInterval, str] = {
    "log": N_("the Fieller method"),
    "gbstats": N_("the gbstats delta method"),
}


class ComparisonRow(Protocol):
    """One (metric, treatment) comparison of the stats engine, as docs/statistics.md defines it."""

    @property
    def metric(self) -> str: ...
    @property
    def variant(self) -> str: ...
    @property
    def control_mean(self) -> float | None: ...
    @property
    def mean(self) -> float | None: ...
    @property
    def effect(self) -> float | None: ...
    @property
    def ci_low(self) -> float | None: ...
    @property
    def ci_high(self) -> float | None: ...
    @property
    def p_value(self) -> float | None: ...
    @property
    def adjusted_p_value(self) -> float | None: ...
    @property
    def chance_to_win(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...


class Reason(NamedTuple):
    """Why the recommendation is what it is, in words a board member reads.

    `threshold`, `observed` and `interval` are on the comparison's scale (the raw effect, not
    flipped for lower-is-better metrics), so the console can draw them on one axis. `message` is the
    sentence, kept language-neutral (`formatting.Message`): the page and the report write it in the
    reader's language.
    """

    kind: ReasonKind
    metric: str | None
    variant: str | None
    threshold: float | None
    observed: float | None
    interval: tuple[float, float] | None
    message: Message

    @property
    def text(self) -> str:
        """Returns the sentence in English (logs, the command line, tests)."""
        return fmt.english(self.message)

    def to_json(self) -> dict[str, object]:
        """Returns the reason as a snapshot stores it (the message as JSON)."""
        return {**self._asdict(), "message": self.message.to_json()}


class Recommendation(NamedTuple):
    """The recommendation to the board; `variant` is the treatment to fund when the outcome is go,
    `expected_days` the days still needed when it is keep running (None when unknown)."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    expected_days: float | None
    variant: str | None = None


class _Evidence(NamedTuple):
    """A computed comparison: as reported (raw) and turned so that positive is better."""

    raw_effect: float
    raw_interval: tuple[float, float]
    effect: float
    low: float
    high: float
    chance_better: float | None


class _PlanProgress(NamedTuple):
    reached: bool
    expected_days: float | None
    reason: Reason


class _TreatmentVerdict(NamedTuple):
    variant: str
    outcome: Outcome
    good_effect: float | None
    reasons: tuple[Reason, ...]
    vetoed: bool = False


def _evidence(row: ComparisonRow, metric: MetricSpec) -> _Evidence | None:
    """Returns the row's effect, interval and chance in the good direction, None for an error row."""
    if row.error is not None or row.effect is None or row.ci_low is None or row.ci_high is None:
        return None
    raw = (row.effect, (row.ci_low, row.ci_high))
    if metric.higher_is_better:
        return _Evidence(*raw, row.effect, row.ci_low, row.ci_high, row.chance_to_win)
    chance = None if row.chance_to_win is None else 1.0 - row.chance_to_win
    return _Evidence(*raw, -row.effect, -row.ci_high, -row.ci_low, chance)


def _signed(value: float, plan: AnalysisPlan) -> Figure:
    """Returns an effect as a board member reads it: "+8.1 %" (relative) or "+0.012" (absolute)."""
    return fmt.effect_figure(value, plan.difference)


def _amount(value: float, plan: AnalysisPlan) -> Figure:
    """Returns a size without sign on the experiment's scale: "2.0 %" (relative) or "0.02" (absolute)."""
    return Figure("share", abs(value), 1) if plan.difference == "relative" else Figure("significant", abs(value))


def _threshold(value: float, plan: AnalysisPlan) -> Figure:
    """Returns a threshold as written in the rules: signed, but a plain "0 %" (or "0") for zero."""
    if value == 0:
        return Figure("share", 0.0, 0) if plan.difference == "relative" else Figure("count", 0)
    return _signed(value, plan)


def _raw(value: float, metric: MetricSpec) -> float:
    """Returns a good-direction threshold on the comparison's raw scale."""
    return value if metric.higher_is_better else -value


def _metric(metric: MetricSpec) -> Figure:
    """Returns the metric's name as a figure, in each language."""
    return fmt.spec_label(names(metric))


def _observation(evidence: _Evidence, experiment: ExperimentSpec, metric: MetricSpec) -> Message:
    """Returns "+8.1 % (95 % interval +1.2 % to +15.0 %)", with the chance of beating the control
    under the Bayesian engine and a note when lower is better."""
    plan = experiment.analysis
    low, high = evidence.raw_interval
    return fmt.observation(
        evidence.raw_effect,
        low,
        high,
        difference=plan.difference,
        alpha=plan.alpha,
        engine=plan.engine,
        control=experiment.control,
        chance_better=evidence.chance_better,
        higher_is_better=metric.higher_is_better,
        method=RELATIVE_INTERVAL_NAMES[plan.relative_interval] if plan.difference == "relative" else None,
    )


def _comparison(metric: MetricSpec, variant: str, experiment: ExperimentSpec, role: str) -> dict[str, Figure]:
    """Returns the figures naming a comparison in a reason: the metric, its role, the treatment, the control."""
    return {
        "metric": _metric(metric),
        "role": fmt.words(fmt.ROLES[role]),
        "variant": fmt.text(variant),
        "control": fmt.text(experiment.control),
    }


def _error_reason(
    row: ComparisonRow | None, metric: MetricSpec, variant: str, experiment: ExperimentSpec, role: str
) -> Reason:
    """Returns the reason saying a comparison the decision needs could not be computed."""
    figures = _comparison(metric, variant, experiment, role)
    if row is None:
        message = Message.of(
            N_("{metric} ({role}): {variant} vs {control}: no result was computed, so it cannot support a decision."),
            **figures,
        )
    else:
        message = Message.of(
            N_(
                "{metric} ({role}): {variant} vs {control}: it could not be computed ({error}), so it cannot "
                "support a decision."
            ),
            error=fmt.text(str(row.error)),
            **figures,
        )
    return Reason("error", metric.key, variant, None, None, None, message)


def _ratio_relative_se(evidence: _Evidence, plan: AnalysisPlan) -> float:
    """Returns the relative standard error of the ratio treatment / control that a relative interval
    implies: half its width over z(1 - alpha/2) (1 + effect). The t and sequential intervals span more
    than z standard errors, so for them this overstates it (the rule is then stricter)."""
    low, high = evidence.raw_interval
    ratio = 1 + evidence.raw_effect
    if ratio <= 0:
        return math.inf
    return (high - low) / (2 * float(stats.norm.ppf(1 - plan.alpha / 2)) * ratio)


def _uncalibrated(
    evidence: _Evidence, metric: MetricSpec, variant: str, experiment: ExperimentSpec, role: str
) -> Reason | None:
    """Returns the error reason refusing a gbstats relative interval too imprecise for its calibration to be
    shown (rule 9), None when the interval is calibrated."""
    plan = experiment.analysis
    if plan.difference != "relative" or plan.relative_interval != "gbstats":
        return None
    relative_se = _ratio_relative_se(evidence, plan)
    if relative_se <= GBSTATS_RELATIVE_SE_LIMIT:
        return None
    precision = fmt.words(N_("not known")) if math.isinf(relative_se) else Figure("share", relative_se, 1)
    message = Message.of(
        N_(
            "{metric} ({role}): {variant} vs {control} {observed}: the relative standard error of this ratio is "
            "{precision}, above the {limit} up to which the calibration of the gbstats interval is shown. Less "
            "precise, it calls a treatment worse more often than alpha allows, and better less often, so it cannot "
            "support a decision: pre-register relative_interval: log (the Fieller method, calibrated at every "
            "sample size), or analyse the absolute difference."
        ),
        observed=fmt.sentence(_observation(evidence, experiment, metric)),
        precision=precision,
        limit=Figure("share", GBSTATS_RELATIVE_SE_LIMIT, 0),
        **_comparison(metric, variant, experiment, role),
    )
    return Reason("error", metric.key, variant, None, None, None, message)


def _survives_correction(row: ComparisonRow, plan: AnalysisPlan) -> bool:
    """Returns whether the row stays significant after the plan's multiple-comparison correction."""
    if plan.correction == "none" or row.adjusted_p_value is None:
        return True
    return row.adjusted_p_value < plan.alpha


def _judge_primary(
    row: ComparisonRow | None,
    variant: str,
    experiment: ExperimentSpec,
    minimum_effect: float,
    plan_reached: bool,
) -> tuple[PrimaryJudgement, Reason]:
    """Returns the judgement of one treatment's primary metric against the minimum effect, with its reason."""
    metric = experiment.metric(experiment.primary)
    evidence = None if row is None else _evidence(row, metric)
    if row is None or evidence is None:
        return "unjudged", _error_reason(row, metric, variant, experiment, "primary")
    refusal = _uncalibrated(evidence, metric, variant, experiment, "primary")
    if refusal is not None:
        return "unjudged", refusal
    plan = experiment.analysis
    figures = {
        "metric": _metric(metric),
        "variant": fmt.text(variant),
        "control": fmt.text(experiment.control),
        "observed": fmt.sentence(_observation(evidence, experiment, metric)),
        "threshold": _threshold(_raw(minimum_effect, metric), plan),
    }
    judgement: PrimaryJudgement
    if plan.engine == "bayesian" and evidence.chance_better is not None:
        better = evidence.chance_better >= 1 - plan.alpha and evidence.effect >= minimum_effect
        worse = evidence.chance_better <= plan.alpha
    else:
        better = evidence.low > minimum_effect and _survives_correction(row, plan)
        worse = evidence.high < 0 and _survives_correction(row, plan)
    if better:
        judgement = "better"
        template = (
            N_(
                "{metric}: {variant} beats {control} by {observed}, above the minimum effect of {threshold} "
                "required for go."
            )
            if metric.higher_is_better
            else N_(
                "{metric}: {variant} beats {control} by {observed}, below the minimum effect of {threshold} "
                "required for go."
            )
        )
        message = Message.of(template, **figures)
    elif worse:
        judgement = "worse"
        message = Message.of(
            N_("{metric}: {variant} vs {control} {observed}: significantly worse than {control}."), **figures
        )
    elif plan_reached and evidence.high < minimum_effect:
        judgement = "not worth it"
        message = Message.of(
            N_(
                "{metric}: {variant} vs {control} {observed}: with the planned sample reached, the whole interval "
                "falls short of the minimum effect of {threshold} required for go."
            ),
            **figures,
        )
    else:
        judgement = "inconclusive"
        if plan.engine != "bayesian" and not _survives_correction(row, plan):
            message = Message.of(
                N_(
                    "{metric}: {variant} vs {control} {observed}: not conclusive yet against the minimum effect of "
                    "{threshold} required for go (corrected for multiple comparisons ({correction}), its p-value "
                    "{p_value} is not below {alpha})."
                ),
                correction=fmt.text(
                    plan.correction.upper() if plan.correction == "bh" else plan.correction.capitalize()
                ),
                p_value=Figure("p_value", row.adjusted_p_value),
                alpha=Figure("number", plan.alpha, 3),
                **figures,
            )
        else:
            message = Message.of(
                N_(
                    "{metric}: {variant} vs {control} {observed}: not conclusive yet against the minimum effect of "
                    "{threshold} required for go."
                ),
                **figures,
            )
    reason = Reason(
        "primary",
        metric.key,
        variant,
        _raw(minimum_effect, metric),
        evidence.raw_effect,
        evidence.raw_interval,
        message,
    )
    return judgement, reason


def _chance_beyond(evidence: _Evidence, bound: float, alpha: float) -> float:
    """Returns the posterior chance that the good-direction effect is below `bound`, from the Gaussian
    posterior whose central 1 - alpha credible interval is (low, high)."""
    sd = (evidence.high - evidence.low) / (2 * stats.norm.ppf(1 - alpha / 2))
    if sd <= 0:
        return 1.0 if evidence.effect < bound else 0.0
    return float(stats.norm.cdf((bound - evidence.effect) / sd))


def _judge_guardrail(
    row: ComparisonRow | None, guardrail: Guardrail, variant: str, experiment: ExperimentSpec
) -> tuple[bool | None, Reason]:
    """Returns whether the guardrail vetoes the treatment (None: cannot be verified), with its reason."""
    metric = experiment.metric(guardrail.metric)
    evidence = None if row is None else _evidence(row, metric)
    if row is None or evidence is None:
        return None, _error_reason(row, metric, variant, experiment, "guardrail")
    refusal = _uncalibrated(evidence, metric, variant, experiment, "guardrail")
    if refusal is not None:
        return None, refusal
    plan = experiment.analysis
    bound = -guardrail.tolerance
    tolerance = _amount(guardrail.tolerance, plan)
    if plan.engine == "bayesian":
        chance = _chance_beyond(evidence, bound, plan.alpha)
        vetoed = chance >= 1 - plan.alpha
        degradation = Message.of(
            N_("{chance} chance of a degradation beyond the tolerance of {tolerance}"),
            chance=Figure("share", chance, 1),
            tolerance=tolerance,
        )
    else:
        vetoed = evidence.high < bound
        degradation = Message.of(N_("the whole interval is beyond the tolerance of {tolerance}"), tolerance=tolerance)
    if vetoed:
        verdict = Message.of(
            N_("significantly degraded ({degradation}), which blocks go"), degradation=fmt.sentence(degradation)
        )
    elif plan.engine == "bayesian":
        verdict = Message.of(
            N_("no significant degradation beyond the tolerance of {tolerance} ({degradation})"),
            tolerance=tolerance,
            degradation=fmt.sentence(degradation),
        )
    else:
        verdict = Message.of(N_("no significant degradation beyond the tolerance of {tolerance}"), tolerance=tolerance)
    reason = Reason(
        "guardrail",
        metric.key,
        variant,
        _raw(bound, metric),
        evidence.raw_effect,
        evidence.raw_interval,
        Message.of(
            N_("{metric} (guardrail): {variant} vs {control} {observed}: {verdict}."),
            metric=_metric(metric),
            variant=fmt.text(variant),
            control=fmt.text(experiment.control),
            observed=fmt.sentence(_observation(evidence, experiment, metric)),
            verdict=fmt.sentence(verdict),
        ),
    )
    return vetoed, reason


def _treatment_verdict(primary: PrimaryJudgement, vetoes: Sequence[bool | None], plan_reached: bool) -> Outcome:
    """Returns one treatment's outcome from its primary judgement and guardrail checks (rule 3)."""
    if any(veto is True for veto in vetoes):
        return "iterate" if primary == "better" else "no-go"
    if primary == "better" and all(veto is False for veto in vetoes):
        return "go"
    if primary in ("worse", "not worth it"):
        return "no-go"
    return "iterate" if plan_reached else "keep running"


def _judge_treatment(
    variant: str,
    rows: Mapping[tuple[str, str], ComparisonRow],
    experiment: ExperimentSpec,
    minimum_effect: float,
    plan_reached: bool,
) -> _TreatmentVerdict:
    """Returns one treatment's verdict with the reasons for its primary metric and guardrails."""
    primary_row = rows.get((experiment.primary, variant))
    judgement, primary_reason = _judge_primary(primary_row, variant, experiment, minimum_effect, plan_reached)
    checks = [
        _judge_guardrail(rows.get((guardrail.metric, variant)), guardrail, variant, experiment)
        for guardrail in experiment.guardrails
    ]
    vetoes = [veto for veto, _ in checks]
    outcome = _treatment_verdict(judgement, vetoes, plan_reached)
    evidence = None if primary_row is None else _evidence(primary_row, experiment.metric(experiment.primary))
    return _TreatmentVerdict(
        variant,
        outcome,
        None if evidence is None else evidence.effect,
        (primary_reason, *(reason for _, reason in checks)),
        any(veto is True for veto in vetoes),
    )


def _srm_reason(units: Mapping[str, int], experiment: ExperimentSpec) -> Reason:
    """Returns the blocking reason of a sample ratio mismatch (rule 4)."""
    observed = [
        Message.of(N_("{variant} {n}"), variant=fmt.text(variant), n=Figure("count", units.get(variant, 0)))
        for variant, _ in experiment.variants
    ]
    planned = [Message.of(N_("{share}"), share=Figure("share", weight)) for _, weight in experiment.variants]
    return Reason(
        "srm",
        None,
        None,
        None,
        None,
        None,
        Message.of(
            N_(
                "Sample ratio mismatch: the participants per variant ({observed}) do not match the planned split "
                "({planned}). Assignment or logging is broken, so no comparison can be trusted: investigate, fix "
                "and restart the experiment."
            ),
            observed=fmt.sentences(observed, ", "),
            planned=fmt.sentences(planned, " / "),
        ),
    )


def _plan_progress(
    experiment: ExperimentSpec, units: Mapping[str, int], units_per_day: float | None, days_running: float | None
) -> _PlanProgress:
    """Returns whether the planned sample (or duration) is reached and the days still needed (rule 7)."""
    exposed = sum(units.values())
    if experiment.planned_sample is not None:
        planned = experiment.planned_sample
        reached = exposed >= planned
        expected = None if reached or units_per_day is None else days_to_reach(planned, exposed, units_per_day)
        figures = {
            "exposed": Figure("count", exposed),
            "planned": Figure("count", planned),
            "share": Figure("share", exposed / planned if planned > 0 else None),
        }
        if reached:
            message = Message.of(
                N_(
                    "{exposed} of {planned} planned participants exposed ({share}): the planned sample is reached "
                    "and the analysis is final."
                ),
                **figures,
            )
        elif units_per_day is None:
            message = Message.of(
                N_(
                    "{exposed} of {planned} planned participants exposed ({share}): not enough days of first "
                    "exposures yet to measure the pace, so it cannot be said when it will be reached."
                ),
                **figures,
            )
        elif expected is None:
            message = Message.of(
                N_(
                    "{exposed} of {planned} planned participants exposed ({share}): nobody is being exposed at the "
                    "moment, so it cannot be said when it will be reached."
                ),
                **figures,
            )
        else:
            message = Message.of(
                Nn_(
                    "{exposed} of {planned} planned participants exposed ({share}); at {rate} a day (over the last "
                    "days of first exposures), about {n} more day is needed.",
                    "{exposed} of {planned} planned participants exposed ({share}); at {rate} a day (over the last "
                    "days of first exposures), about {n} more days are needed.",
                ),
                rate=Figure("significant", units_per_day),
                n=Figure("count", math.ceil(expected)),
                **figures,
            )
        return _PlanProgress(reached, expected, Reason("sample", None, None, planned, exposed, None, message))
    if experiment.planned_days is not None and days_running is not None:
        planned_days = experiment.planned_days
        reached = days_running >= planned_days
        remaining = planned_days - days_running
        figures = {"run": Figure("count", math.floor(days_running)), "planned": Figure("count", planned_days)}
        if reached:
            message = Message.of(
                N_("{run} of {planned} planned days run: the planned duration is reached and the analysis is final."),
                **figures,
            )
        else:
            message = Message.of(
                Nn_(
                    "{run} of {planned} planned days run; {n} more day is needed.",
                    "{run} of {planned} planned days run; {n} more days are needed.",
                ),
                n=Figure("count", math.ceil(remaining)),
                **figures,
            )
        return _PlanProgress(
            reached,
            None if reached else remaining,
            Reason("sample", None, None, planned_days, days_running, None, message),
        )
    return _PlanProgress(
        False,
        None,
        Reason(
            "sample",
            None,
            None,
            None,
            float(exposed),
            None,
            Message.of(
                N_(
                    "{exposed} participants exposed; no planned sample (nor duration with the days run) is known, "
                    "so the experiment runs until its evidence is conclusive."
                ),
                exposed=Figure("count", exposed),
            ),
        ),
    )


def _combine(verdicts: Sequence[_TreatmentVerdict]) -> tuple[Outcome, str | None]:
    """Returns the experiment's outcome by precedence (rule 5) and, for go, the treatment to fund."""
    for outcome in OUTCOME_PRECEDENCE:
        matching = [v for v in verdicts if v.outcome == outcome]
        if matching:
            if outcome != "go":
                return outcome, None
            best = max(matching, key=lambda v: v.good_effect if v.good_effect is not None else -math.inf)
            return outcome, best.variant
    return "keep running", None


def _criterion_reason(criterion: Criterion) -> Reason:
    """Returns the reason a scorecard criterion with a target is missed or cannot be checked."""
    bound = N_("at least {target}") if criterion.comparison == ">=" else N_("at most {target}")
    figures = {
        "axis": fmt.words(fmt.AXES[criterion.axis]),
        "label": fmt.sentence(criterion.label),
        "target": fmt.sentence(Message.of(bound, target=criterion_figure(criterion, criterion.target))),
        "detail": fmt.sentence(criterion.detail),
    }
    if criterion.observed is None:
        message = Message.of(N_("{axis}, {label}: no data to check the target of {target} ({detail})"), **figures)
    else:
        message = Message.of(
            N_("{axis}, {label}: {observed} against a target of {target}: missed ({detail})"),
            observed=criterion_figure(criterion, criterion.observed),
            **figures,
        )
    return Reason("scorecard", criterion.key, None, criterion.target, criterion.observed, None, message)


def _scorecard_reasons(scorecard: Scorecard | None) -> tuple[bool, tuple[Reason, ...]]:
    """Returns whether the scorecard allows go (rule 6) and the reasons naming each unmet target."""
    if scorecard is None:
        message = Message.of(
            N_("The scorecard was not assessed: the economic, social and human targets were not checked.")
        )
        return True, (Reason("scorecard", None, None, None, None, None, message),)
    unmet = scorecard.unmet
    if unmet:
        return False, tuple(_criterion_reason(c) for c in unmet)
    targets = sum(c.target is not None for c in scorecard.criteria)
    if targets == 0:
        message = Message.of(N_("The scorecard sets no economic, social or human target."))
    else:
        message = Message.of(
            Nn_(
                "The one scorecard target is met.",
                "All {n} scorecard targets (economic, social, human) are met.",
            ),
            n=Figure("count", targets),
        )
    return True, (Reason("scorecard", None, None, None, None, None, message),)


def _too_early(
    experiment: ExperimentSpec,
    progress: _PlanProgress,
    days_running: float | None,
    outcome: Outcome,
    verdicts: Sequence[_TreatmentVerdict],
) -> bool:
    """Returns True when a go or no-go rests on a fixed-horizon analysis looked at before its planned
    sample (rule 8); a guardrail veto still stops at once: it protects citizens."""
    planned = experiment.planned_sample is not None or (
        experiment.planned_days is not None and days_running is not None
    )
    return (
        planned
        and not progress.reached
        and experiment.analysis.engine != "sequential"
        and outcome in ("go", "no-go")
        and not any(v.vetoed for v in verdicts)
    )


def _peeking_reason(experiment: ExperimentSpec) -> Reason:
    message = Message.of(
        N_(
            "The analysis is fixed-horizon ({engine}): its intervals and p-values hold only at the planned sample. "
            "Deciding earlier, on a result that can still move, would raise the chance of a false discovery far "
            "above alpha (about 29 % instead of 5 % when looking after every batch). Keep running to the planned "
            "sample, or pre-register the sequential engine to decide early."
        ),
        engine=fmt.words(fmt.ENGINES[experiment.analysis.engine]),
    )
    return Reason("sample", None, None, None, None, None, message)


def recommend(
    pilot: PilotSpec,
    experiment: ExperimentSpec,
    comparisons: Sequence[ComparisonRow],
    *,
    units: Mapping[str, int],
    units_per_day: float | None,
    srm_mismatch: bool,
    scorecard: Scorecard | None,
    days_running: float | None = None,
) -> Recommendation:
    """Returns the recommendation to the board for one experiment of a pilot, with every reason.

    `comparisons` are the stats engine's rows for this experiment; `units` the exposed participants
    per variant, `units_per_day` the recent exposure rate across variants (None: not measured yet);
    `days_running` the days since the experiment started (used when the plan is a duration). See the
    module docstring for the rules.
    """
    rows = {(row.metric, row.variant): row for row in comparisons}
    progress = _plan_progress(experiment, units, units_per_day, days_running)
    treatments = [variant for variant, _ in experiment.variants if variant != experiment.control]
    verdicts = [
        _judge_treatment(variant, rows, experiment, pilot.decision.minimum_effect, progress.reached)
        for variant in treatments
    ]
    evidence_reasons = tuple(reason for verdict in verdicts for reason in verdict.reasons)
    if srm_mismatch:
        return Recommendation("iterate", (_srm_reason(units, experiment), *evidence_reasons, progress.reason), None)
    outcome, winner = _combine(verdicts)
    reasons = (*evidence_reasons, progress.reason)
    if _too_early(experiment, progress, days_running, outcome, verdicts):
        return Recommendation("keep running", (*reasons, _peeking_reason(experiment)), progress.expected_days)
    if outcome == "go":
        allowed, scorecard_reasons = _scorecard_reasons(scorecard)
        reasons += scorecard_reasons
        if not allowed:
            return Recommendation("iterate", reasons, None)
        return Recommendation("go", reasons, None, winner)
    return Recommendation(outcome, reasons, progress.expected_days if outcome == "keep running" else None)
