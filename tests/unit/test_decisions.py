from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import pytest

from experiments.decisions import ComparisonRow, Recommendation, recommend
from experiments.registry import (
    AnalysisPlan,
    DecisionRules,
    ExperimentSpec,
    Guardrail,
    MetricSpec,
    PilotSpec,
)
from experiments.scorecard import Criterion, CriterionStatus, Scorecard, ScorecardAxis
from experiments.stats import analyze, parse_request


class Row(NamedTuple):
    """A comparison row with the stats engine's field names."""

    metric: str
    variant: str
    control_mean: float | None
    mean: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    adjusted_p_value: float | None
    chance_to_win: float | None
    error: str | None


def row(
    metric: str,
    effect: float,
    low: float,
    high: float,
    *,
    variant: str = "guided",
    p: float | None = None,
    adjusted: float | None = None,
    chance: float | None = None,
) -> ComparisonRow:
    p_value = p if p is not None or chance is not None else (0.01 if low > 0 or high < 0 else 0.4)
    return Row(
        metric,
        variant,
        0.3,
        0.3 * (1 + effect),
        effect,
        low,
        high,
        p_value,
        adjusted if adjusted is not None else p_value,
        chance,
        None,
    )


def error_row(metric: str, variant: str = "guided", error: str = "zero variance in an arm") -> ComparisonRow:
    return Row(metric, variant, None, None, None, None, None, None, None, None, error)


EXPERIMENT = ExperimentSpec(
    key="onboarding-v2",
    variants=(("control", 0.5), ("guided", 0.5)),
    metrics=(
        MetricSpec("trip_completed", "proportion", "trip_completed"),
        MetricSpec("ride_minutes", "mean", "ride"),
        MetricSpec("support_calls", "proportion", "support_call", higher_is_better=False),
    ),
    primary="trip_completed",
    secondary=("ride_minutes",),
    guardrails=(Guardrail("support_calls", tolerance=0.0),),
    # The sequential engine's intervals are valid at any look, so its rules apply before the plan too.
    analysis=AnalysisPlan(engine="sequential"),
    planned_sample=4000,
)
PILOT = PilotSpec(key="bike-share", name="Bike share", experiments=(EXPERIMENT,), decision=DecisionRules())
UNDER_PLAN = {"control": 500, "guided": 500}
PLAN_REACHED = {"control": 2100, "guided": 2050}
SAFE = row("support_calls", -0.02, -0.10, 0.06)


def criterion(key: str, observed: float | None, target: float | None, status: CriterionStatus) -> Criterion:
    return Criterion("economic", key, key.replace("_", " "), observed, target, ">=", status, "")


def scorecard(*economic: Criterion) -> Scorecard:
    return Scorecard(
        ScorecardAxis("economic", economic, None),
        ScorecardAxis("social", (), None),
        ScorecardAxis("human", (), None),
    )


ALL_MET = scorecard(criterion("active_participants", 800, 500, "met"))


def decide(
    comparisons: list[ComparisonRow],
    *,
    experiment: ExperimentSpec = EXPERIMENT,
    pilot: PilotSpec = PILOT,
    units: dict[str, int] = UNDER_PLAN,
    units_per_day: float = 100.0,
    srm_mismatch: bool = False,
    card: Scorecard | None = ALL_MET,
    days_running: float | None = None,
) -> Recommendation:
    return recommend(
        pilot,
        experiment,
        comparisons,
        units=units,
        units_per_day=units_per_day,
        srm_mismatch=srm_mismatch,
        scorecard=card,
        days_running=days_running,
    )


def kinds(recommendation: Recommendation) -> list[str]:
    return [reason.kind for reason in recommendation.reasons]


def test_go_when_the_primary_beats_the_minimum_effect_and_nothing_blocks() -> None:
    result = decide([row("trip_completed", 0.081, 0.012, 0.150), SAFE])
    assert result.outcome == "go"
    assert result.variant == "guided"
    assert result.expected_days is None
    primary = result.reasons[0]
    assert (primary.kind, primary.metric, primary.variant) == ("primary", "trip_completed", "guided")
    assert (primary.threshold, primary.observed, primary.interval) == (0.0, 0.081, (0.012, 0.150))
    assert primary.text == (
        "trip_completed: guided beats control by +8.1% (95% always-valid interval +1.2% to +15.0% by "
        "the Fieller method), above the minimum effect of 0% required for go."
    )
    assert "no significant degradation" in result.reasons[1].text
    assert kinds(result) == ["primary", "guardrail", "sample", "scorecard"]


def test_go_needs_the_whole_interval_above_the_minimum_effect() -> None:
    pilot = replace(PILOT, decision=DecisionRules(minimum_effect=0.05))
    result = decide([row("trip_completed", 0.081, 0.012, 0.150), SAFE], pilot=pilot)
    assert result.outcome == "keep running"
    assert "not conclusive yet against the minimum effect of +5.0%" in result.reasons[0].text


def test_go_turns_into_iterate_when_a_scorecard_target_is_missed() -> None:
    card = scorecard(
        criterion("active_participants", 800, 500, "met"),
        criterion("adopters_forecast", 1200, 2000, "missed"),
        criterion("cost_per_active", None, 120, "no data"),
    )
    result = decide([row("trip_completed", 0.081, 0.012, 0.150), SAFE], card=card)
    assert result.outcome == "iterate"
    assert result.variant is None
    blocking = [reason for reason in result.reasons if reason.kind == "scorecard"]
    assert [reason.metric for reason in blocking] == ["adopters_forecast", "cost_per_active"]
    assert "1,200 against a target of at least 2,000: missed" in blocking[0].text
    assert "no data to check the target" in blocking[1].text


def test_go_without_a_scorecard_says_the_targets_were_not_checked() -> None:
    result = decide([row("trip_completed", 0.081, 0.012, 0.150), SAFE], card=None)
    assert result.outcome == "go"
    assert "not assessed" in result.reasons[-1].text


def test_go_names_how_many_scorecard_targets_are_met() -> None:
    card = scorecard(criterion("active_participants", 800, 500, "met"), criterion("cost", 90, 120, "met"))
    result = decide([row("trip_completed", 0.081, 0.012, 0.150), SAFE], card=card)
    assert result.reasons[-1].text == "All 2 scorecard targets (economic, social, human) are met."


def test_no_go_when_the_primary_is_significantly_worse() -> None:
    result = decide([row("trip_completed", -0.06, -0.11, -0.01), SAFE])
    assert result.outcome == "no-go"
    assert "significantly worse than control" in result.reasons[0].text


def test_no_go_when_the_planned_sample_shows_the_effect_falls_short_of_the_minimum() -> None:
    pilot = replace(PILOT, decision=DecisionRules(minimum_effect=0.05))
    comparisons = [row("trip_completed", 0.01, -0.01, 0.03), SAFE]
    assert decide(comparisons, pilot=pilot, units=PLAN_REACHED).outcome == "no-go"
    assert decide(comparisons, pilot=pilot, units=UNDER_PLAN).outcome == "keep running"


def test_keep_running_before_the_planned_sample_with_the_days_still_needed() -> None:
    result = decide([row("trip_completed", 0.03, -0.02, 0.08), SAFE], units=UNDER_PLAN, units_per_day=100.0)
    assert result.outcome == "keep running"
    assert result.expected_days == pytest.approx(30.0)
    sample = next(reason for reason in result.reasons if reason.kind == "sample")
    assert (sample.threshold, sample.observed) == (4000, 1000)
    assert "1,000 of 4,000 planned participants exposed (25%)" in sample.text
    assert "about 30 more days" in sample.text


def test_keep_running_without_exposures_does_not_know_when_it_ends() -> None:
    result = decide([row("trip_completed", 0.03, -0.02, 0.08), SAFE], units_per_day=0.0)
    assert result.outcome == "keep running"
    assert result.expected_days is None


def test_iterate_when_the_planned_sample_is_reached_without_a_conclusion() -> None:
    result = decide([row("trip_completed", 0.03, -0.02, 0.08), SAFE], units=PLAN_REACHED)
    assert result.outcome == "iterate"
    assert result.expected_days is None


def test_planned_days_stand_in_for_a_planned_sample() -> None:
    experiment = replace(EXPERIMENT, planned_sample=None, planned_days=28)
    comparisons = [row("trip_completed", 0.03, -0.02, 0.08), SAFE]
    running = decide(comparisons, experiment=experiment, days_running=20)
    assert (running.outcome, running.expected_days) == ("keep running", 8.0)
    assert running.reasons[-1].text == "20 of 28 planned days run; 8 more days are needed."
    assert decide(comparisons, experiment=experiment, days_running=28).outcome == "iterate"


def test_without_any_plan_an_inconclusive_experiment_keeps_running() -> None:
    experiment = replace(EXPERIMENT, planned_sample=None)
    result = decide([row("trip_completed", 0.03, -0.02, 0.08), SAFE], experiment=experiment)
    assert (result.outcome, result.expected_days) == ("keep running", None)
    assert "no planned sample" in result.reasons[-1].text


def test_guardrail_veto_blocks_go_and_asks_to_iterate_when_the_primary_wins() -> None:
    harmful = row("support_calls", 0.20, 0.05, 0.35)
    result = decide([row("trip_completed", 0.081, 0.012, 0.150), harmful])
    assert result.outcome == "iterate"
    guardrail = result.reasons[1]
    assert (guardrail.kind, guardrail.metric, guardrail.threshold) == ("guardrail", "support_calls", 0.0)
    assert guardrail.interval == (0.05, 0.35)
    assert "lower is better" in guardrail.text
    assert "significantly degraded" in guardrail.text and "blocks go" in guardrail.text


def test_guardrail_veto_without_a_winning_primary_is_no_go_even_before_the_planned_sample() -> None:
    harmful = row("support_calls", 0.20, 0.05, 0.35)
    result = decide([row("trip_completed", 0.03, -0.02, 0.08), harmful], units=UNDER_PLAN)
    assert result.outcome == "no-go"


def test_guardrail_tolerance_accepts_a_small_degradation() -> None:
    slightly_worse = row("support_calls", 0.05, 0.01, 0.09)
    winning = row("trip_completed", 0.081, 0.012, 0.150)
    tolerant = replace(EXPERIMENT, guardrails=(Guardrail("support_calls", tolerance=0.02),))
    assert decide([winning, slightly_worse], experiment=tolerant).outcome == "go"
    assert decide([winning, slightly_worse]).outcome == "iterate"
    beyond = row("support_calls", 0.08, 0.03, 0.13)
    assert decide([winning, beyond], experiment=tolerant).outcome == "iterate"


def test_guardrail_on_a_higher_is_better_metric_vetoes_a_significant_drop() -> None:
    experiment = replace(EXPERIMENT, guardrails=(Guardrail("ride_minutes", tolerance=0.01),))
    winning = row("trip_completed", 0.081, 0.012, 0.150)
    result = decide([winning, row("ride_minutes", -0.05, -0.08, -0.02)], experiment=experiment)
    assert result.outcome == "iterate"
    assert result.reasons[1].threshold == -0.01
    assert decide([winning, row("ride_minutes", 0.02, -0.005, 0.04)], experiment=experiment).outcome == "go"


def test_srm_mismatch_is_a_blocking_reason_whatever_the_evidence() -> None:
    result = decide(
        [row("trip_completed", 0.081, 0.012, 0.150), SAFE],
        srm_mismatch=True,
        units={"control": 600, "guided": 400},
    )
    assert result.outcome == "iterate"
    assert result.variant is None
    srm = result.reasons[0]
    assert srm.kind == "srm"
    assert "control 600, guided 400" in srm.text and "50% / 50%" in srm.text


def test_an_error_row_for_the_primary_is_a_reason_not_a_crash() -> None:
    result = decide([error_row("trip_completed"), SAFE])
    assert result.outcome == "keep running"
    error = result.reasons[0]
    assert (error.kind, error.metric, error.variant) == ("error", "trip_completed", "guided")
    assert "could not be computed (zero variance in an arm)" in error.text
    assert decide([error_row("trip_completed"), SAFE], units=PLAN_REACHED).outcome == "iterate"


def test_a_missing_primary_row_is_a_reason() -> None:
    result = decide([SAFE])
    assert result.outcome == "keep running"
    assert result.reasons[0].kind == "error"
    assert "no result was computed" in result.reasons[0].text


def test_an_unverifiable_guardrail_blocks_go() -> None:
    winning = row("trip_completed", 0.081, 0.012, 0.150)
    result = decide([winning, error_row("support_calls")])
    assert result.outcome == "keep running"
    assert kinds(result)[:2] == ["primary", "error"]
    assert decide([winning, error_row("support_calls")], units=PLAN_REACHED).outcome == "iterate"


THREE_ARMS = replace(EXPERIMENT, variants=(("control", 1 / 3), ("guided", 1 / 3), ("video", 1 / 3)))


def test_multiple_treatments_go_names_the_best_winning_variant() -> None:
    comparisons = [
        row("trip_completed", 0.05, 0.01, 0.09, variant="guided"),
        row("support_calls", 0.0, -0.05, 0.05, variant="guided"),
        row("trip_completed", 0.10, 0.04, 0.16, variant="video"),
        row("support_calls", 0.0, -0.05, 0.05, variant="video"),
    ]
    result = decide(comparisons, experiment=THREE_ARMS)
    assert (result.outcome, result.variant) == ("go", "video")
    assert [reason.variant for reason in result.reasons if reason.kind == "primary"] == ["guided", "video"]


def test_multiple_treatments_a_harmful_winner_does_not_stop_a_safe_one() -> None:
    comparisons = [
        row("trip_completed", 0.12, 0.05, 0.19, variant="guided"),
        row("support_calls", 0.3, 0.1, 0.5, variant="guided"),
        row("trip_completed", 0.05, 0.01, 0.09, variant="video"),
        row("support_calls", 0.0, -0.05, 0.05, variant="video"),
    ]
    assert decide(comparisons, experiment=THREE_ARMS)[0::3] == ("go", "video")


def test_multiple_treatments_keep_running_while_one_may_still_win() -> None:
    comparisons = [
        row("trip_completed", -0.06, -0.11, -0.01, variant="guided"),
        SAFE,
        row("trip_completed", 0.03, -0.02, 0.08, variant="video"),
        row("support_calls", 0.0, -0.05, 0.05, variant="video"),
    ]
    assert decide(comparisons, experiment=THREE_ARMS).outcome == "keep running"
    assert (
        decide(comparisons, experiment=THREE_ARMS, units={"control": 1500, "guided": 1500, "video": 1500}).outcome
        == "iterate"
    )


def test_multiple_treatments_no_go_when_every_treatment_fails() -> None:
    comparisons = [
        row("trip_completed", -0.06, -0.11, -0.01, variant="guided"),
        SAFE,
        row("trip_completed", 0.01, -0.01, 0.03, variant="video"),
        row("support_calls", 0.0, -0.05, 0.05, variant="video"),
    ]
    pilot = replace(PILOT, decision=DecisionRules(minimum_effect=0.05))
    units = {"control": 1500, "guided": 1500, "video": 1500}
    assert decide(comparisons, experiment=THREE_ARMS, pilot=pilot, units=units).outcome == "no-go"


def test_a_correction_can_make_a_clear_interval_inconclusive() -> None:
    experiment = replace(EXPERIMENT, analysis=AnalysisPlan(engine="sequential", correction="holm"))
    comparisons = [row("trip_completed", 0.081, 0.012, 0.150, p=0.03, adjusted=0.08), SAFE]
    result = decide(comparisons, experiment=experiment)
    assert result.outcome == "keep running"
    assert "corrected for multiple comparisons (Holm), its p-value 0.080 is not below 0.05" in result.reasons[0].text
    passing = [row("trip_completed", 0.081, 0.012, 0.150, p=0.01, adjusted=0.02), SAFE]
    assert decide(passing, experiment=experiment).outcome == "go"


def test_a_lower_is_better_primary_wins_by_going_down() -> None:
    experiment = replace(EXPERIMENT, primary="support_calls", guardrails=())
    pilot = replace(PILOT, decision=DecisionRules(minimum_effect=0.02))
    result = decide([row("support_calls", -0.10, -0.15, -0.05)], experiment=experiment, pilot=pilot)
    assert (result.outcome, result.variant) == ("go", "guided")
    assert result.reasons[0].threshold == -0.02
    assert "below the minimum effect of −2.0% required for go" in result.reasons[0].text
    assert decide([row("support_calls", 0.10, 0.05, 0.15)], experiment=experiment).outcome == "no-go"


def test_an_absolute_difference_is_written_as_a_number_not_a_percentage() -> None:
    experiment = replace(EXPERIMENT, analysis=AnalysisPlan(difference="absolute"))
    result = decide([row("trip_completed", 0.024, 0.004, 0.044), SAFE], experiment=experiment)
    assert "guided beats control by +0.024 (95% interval +0.004 to +0.044)" in result.reasons[0].text
    assert "minimum effect of 0 required" in result.reasons[0].text


BAYESIAN = replace(EXPERIMENT, analysis=AnalysisPlan(engine="bayesian"))
SAFE_BAYES = row("support_calls", -0.02, -0.10, 0.06, chance=0.3)


@pytest.mark.parametrize(
    ("effect", "chance", "outcome"),
    [(0.05, 0.97, "go"), (0.05, 0.90, "iterate"), (-0.05, 0.03, "no-go")],
)
def test_bayesian_engine_decides_on_the_chance_to_beat_control(effect: float, chance: float, outcome: str) -> None:
    primary = row("trip_completed", effect, effect - 0.06, effect + 0.06, chance=chance)
    result = decide([primary, SAFE_BAYES], experiment=BAYESIAN, units=PLAN_REACHED)
    assert result.outcome == outcome
    assert f"{chance * 100:.1f}% chance to beat control" in result.reasons[0].text
    assert "credible interval" in result.reasons[0].text


def test_bayesian_go_also_needs_the_mean_effect_to_reach_the_minimum() -> None:
    pilot = replace(PILOT, decision=DecisionRules(minimum_effect=0.06))
    primary = row("trip_completed", 0.05, 0.01, 0.09, chance=0.99)
    assert decide([primary, SAFE_BAYES], experiment=BAYESIAN, pilot=pilot).outcome == "keep running"


def test_bayesian_guardrail_vetoes_on_the_chance_of_a_degradation_beyond_tolerance() -> None:
    winning = row("trip_completed", 0.05, 0.02, 0.08, chance=0.999)
    # support_calls rising: +4% with 95% credible interval +0.08% to +7.92%, sd 2%.
    rising = row("support_calls", 0.04, 0.04 - 0.0392, 0.04 + 0.0392, chance=0.977)
    result = decide([winning, rising], experiment=BAYESIAN, units=PLAN_REACHED)
    assert result.outcome == "iterate"
    assert "2.3% chance to beat control; lower is better" in result.reasons[1].text
    assert "97.7% chance of a degradation beyond the tolerance of 0.0%" in result.reasons[1].text
    tolerant = replace(BAYESIAN, guardrails=(Guardrail("support_calls", tolerance=0.01),))
    # P(rise > 1%) = P(z > -1.5) = 93.3% < 95%: no veto.
    relaxed = decide([winning, rising], experiment=tolerant, units=PLAN_REACHED)
    assert relaxed.outcome == "go"
    assert "93.3% chance of a degradation beyond the tolerance of 1.0%" in relaxed.reasons[1].text


def test_sequential_engine_names_its_always_valid_interval() -> None:
    experiment = replace(EXPERIMENT, analysis=AnalysisPlan(engine="sequential"))
    result = decide([row("trip_completed", 0.081, 0.012, 0.150), SAFE], experiment=experiment)
    assert result.outcome == "go"
    assert "95% always-valid interval" in result.reasons[0].text


def test_rows_of_other_metrics_and_variants_are_ignored() -> None:
    comparisons = [
        row("trip_completed", 0.081, 0.012, 0.150),
        SAFE,
        row("ride_minutes", -0.5, -0.9, -0.1),
        row("trip_completed", -0.5, -0.9, -0.1, variant="retired"),
    ]
    result = decide(comparisons)
    assert result.outcome == "go"
    assert {reason.metric for reason in result.reasons} <= {"trip_completed", "support_calls", None}


def test_the_stats_engine_rows_feed_the_decision() -> None:
    arms = {"control": 2100, "guided": 2050}
    request = {
        "control": "control",
        "variants": {variant: {"units": n, "weight": 0.5} for variant, n in arms.items()},
        "metrics": [
            {
                "name": "trip_completed",
                "type": "proportion",
                "data": {"control": {"n": 2100, "sum": 600}, "guided": {"n": 2050, "sum": 700}},
            },
            {
                "name": "support_calls",
                "type": "proportion",
                "data": {"control": {"n": 2100, "sum": 100}, "guided": {"n": 2050, "sum": 95}},
            },
        ],
    }
    for interval in ("log", "gbstats"):
        experiment = replace(EXPERIMENT, analysis=replace(EXPERIMENT.analysis, relative_interval=interval))
        result = analyze(parse_request(request | {"relative_interval": interval}))
        recommendation = decide(
            list(result.comparisons), experiment=experiment, units=arms, srm_mismatch=result.srm.mismatch
        )
        if interval == "log":
            assert (recommendation.outcome, recommendation.variant) == ("go", "guided")
            assert recommendation.reasons[0].observed == pytest.approx((700 / 2050) / (600 / 2100) - 1)
        else:
            # About 650 conversions an arm: the ratio is known to 4.6 %, too loosely for gbstats' interval.
            assert recommendation.outcome == "iterate"
            assert kinds(recommendation)[:2] == ["error", "error"]
            assert "relative standard error of this ratio is 4.6%" in recommendation.reasons[0].text


FIXED_HORIZON = replace(EXPERIMENT, analysis=AnalysisPlan(engine="frequentist"))


@pytest.mark.parametrize(
    "primary", [row("trip_completed", 0.08, 0.01, 0.15), row("trip_completed", -0.08, -0.15, -0.01)]
)
def test_a_fixed_horizon_result_before_the_planned_sample_keeps_running(primary: ComparisonRow) -> None:
    early = decide([primary, SAFE], experiment=FIXED_HORIZON, units=UNDER_PLAN)
    assert early.outcome == "keep running" and early.expected_days is not None
    assert "fixed-horizon" in early.reasons[-1].text
    final = decide([primary, SAFE], experiment=FIXED_HORIZON, units=PLAN_REACHED)
    assert final.outcome in ("go", "no-go")


def test_a_guardrail_veto_stops_a_fixed_horizon_experiment_before_its_plan() -> None:
    harmful = row("support_calls", 0.3, 0.1, 0.5)
    result = decide([row("trip_completed", -0.01, -0.05, 0.03), harmful], experiment=FIXED_HORIZON, units=UNDER_PLAN)
    assert result.outcome == "no-go"


GBSTATS = replace(EXPERIMENT, analysis=AnalysisPlan(engine="sequential", relative_interval="gbstats"))
#: A ratio known to within 1.5 % (relative standard error 0.0294 / 1.96): where gbstats is calibrated.
PRECISE = row("trip_completed", 0.04, 0.04 - 0.0294 * 1.04, 0.04 + 0.0294 * 1.04)
PRECISE_SAFE = row("support_calls", -0.005, -0.03, 0.02)


def test_a_gbstats_relative_interval_too_imprecise_for_its_calibration_cannot_make_go() -> None:
    winning = row("trip_completed", 0.081, 0.012, 0.150)
    assert decide([winning, PRECISE_SAFE]).outcome == "go"
    result = decide([winning, PRECISE_SAFE], experiment=GBSTATS)
    assert (result.outcome, result.variant) == ("keep running", None)
    refusal = result.reasons[0]
    assert (refusal.kind, refusal.metric, refusal.variant) == ("error", "trip_completed", "guided")
    assert refusal.text == (
        "trip_completed (Primary): guided vs control +8.1% (95% always-valid interval +1.2% to +15.0% by "
        "the gbstats delta method): the relative standard error of this ratio is 3.3%, above the 2% up to which "
        "the calibration of the gbstats interval is shown. Less precise, it calls a treatment worse more often "
        "than alpha allows, and better less often, so it cannot support a decision: pre-register "
        "relative_interval: log (the Fieller method, calibrated at every sample size), or analyse the absolute "
        "difference."
    )
    assert decide([winning, PRECISE_SAFE], experiment=GBSTATS, units=PLAN_REACHED).outcome == "iterate"


def test_a_gbstats_relative_interval_precise_enough_supports_go_and_says_so() -> None:
    result = decide([PRECISE, PRECISE_SAFE], experiment=GBSTATS)
    assert result.outcome == "go"
    assert "by the gbstats delta method" in result.reasons[0].text
    assert kinds(result) == ["primary", "guardrail", "sample", "scorecard"]


def test_an_imprecise_gbstats_worse_result_stops_nothing_either() -> None:
    worse = row("trip_completed", -0.06, -0.11, -0.01)
    assert decide([worse, PRECISE_SAFE]).outcome == "no-go"
    result = decide([worse, PRECISE_SAFE], experiment=GBSTATS)
    assert result.outcome == "keep running"
    assert result.reasons[0].kind == "error"


def test_an_imprecise_gbstats_guardrail_is_unverified_and_blocks_go() -> None:
    loose = row("support_calls", 0.20, 0.05, 0.35)
    result = decide([PRECISE, loose], experiment=GBSTATS)
    assert result.outcome == "keep running"
    assert kinds(result)[:2] == ["primary", "error"]
    assert "support_calls (Guardrail)" in result.reasons[1].text


def test_a_gbstats_interval_around_a_ratio_of_zero_or_less_has_no_precision() -> None:
    collapse = row("trip_completed", -1.2, -1.5, -0.9)
    result = decide([collapse, PRECISE_SAFE], experiment=GBSTATS)
    assert "relative standard error of this ratio is not known" in result.reasons[0].text


def test_an_absolute_difference_names_no_relative_interval_and_is_never_refused() -> None:
    experiment = replace(GBSTATS, analysis=AnalysisPlan(engine="sequential", difference="absolute"))
    result = decide([row("trip_completed", 0.081, 0.012, 0.150), SAFE], experiment=experiment)
    assert result.outcome == "go"
    assert "method" not in result.reasons[0].text
