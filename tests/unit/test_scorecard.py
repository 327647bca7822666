from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from experiments.adoption import bass_cumulative, fit_bass
from experiments.feedback import Idea, summarise_voice
from experiments.formatting import english
from experiments.registry import DecisionRules, PilotSpec
from experiments.scorecard import AdoptionSummary, Criterion, Scorecard, build_scorecard

RULES = DecisionRules(
    min_active_participants=500,
    max_cost_per_active=120,
    min_adopters_forecast=2000,
    forecast_horizon_days=365,
    min_district_reach=0.8,
    max_reach_gap=0.6,
    min_nps=0,
    min_sus=68,
    min_rating=3.5,
)
PILOT = PilotSpec(
    key="bike-share",
    name="Neighbourhood bike-share",
    budget=60_000,
    population=20_000,
    districts=("north", "south", "east", "west", "centre"),
    segments=("district", "channel"),
    decision=RULES,
)
CURVE_DAYS = np.arange(0, 61, dtype=float)
CURVE = tuple(
    (float(day), round(adopters))
    for day, adopters in zip(CURVE_DAYS, bass_cumulative(CURVE_DAYS, 0.004, 0.09, 5000.0), strict=True)
)
ADOPTION = AdoptionSummary(
    active_participants=660,
    pilot_age_days=60,
    cumulative_adopters=CURVE,
    active_by_district=(("north", 200), ("south", 150), ("east", 120), ("west", 100), ("centre", 90)),
    active_by_segment=(("channel", "app", 500), ("channel", "web", 100), ("channel", "kiosk", 0)),
)
VOICE = summarise_voice(
    promoters=40,
    passives=30,
    detractors=30,
    sus_scores=[70.0, 75.0],
    rating_counts={4: 10, 5: 5},
    comments=["bike lanes please", "more bike lanes", "great bikes"],
    ideas=[Idea("Night service", 9), Idea("Cargo bikes", 4)],
)


def criterion(card: Scorecard, key: str) -> Criterion:
    return next(c for c in card.criteria if c.key == key)


def test_every_criterion_is_met_when_the_pilot_beats_its_targets() -> None:
    card = build_scorecard(PILOT, ADOPTION, VOICE)
    assert card.unmet == ()
    assert (card.economic.score, card.social.score, card.human.score) == (1.0, 1.0, 1.0)
    assert [c.status for c in card.criteria if c.target is not None] == ["met"] * 8


def test_criteria_sit_on_their_axes() -> None:
    card = build_scorecard(PILOT, ADOPTION, VOICE)
    assert [c.key for c in card.economic.criteria] == [
        "active_participants",
        "cost_per_active",
        "adopters_forecast",
    ]
    assert [c.key for c in card.social.criteria] == ["district_reach", "reach_gap", "segment:channel"]
    assert [c.key for c in card.human.criteria] == ["nps", "sus", "rating", "comments", "ideas"]
    assert {c.axis for c in card.human.criteria} == {"human"}


def test_cost_per_active_participant_is_budget_over_active_participants() -> None:
    card = build_scorecard(PILOT, replace(ADOPTION, active_participants=400), VOICE)
    cost = criterion(card, "cost_per_active")
    assert cost.observed == pytest.approx(150.0)
    assert (cost.target, cost.comparison, cost.status) == (120, "<=", "missed")
    assert criterion(card, "active_participants").status == "missed"
    assert card.economic.score == pytest.approx(1 / 3)


def test_cost_without_budget_or_participants_has_no_data() -> None:
    no_budget = build_scorecard(replace(PILOT, budget=None), ADOPTION, VOICE)
    assert criterion(no_budget, "cost_per_active").status == "no data"
    nobody = build_scorecard(PILOT, replace(ADOPTION, active_participants=0), VOICE)
    assert criterion(nobody, "cost_per_active").observed is None
    assert criterion(nobody, "cost_per_active") in nobody.unmet


def test_a_criterion_without_target_is_reported_but_not_scored() -> None:
    rules = replace(RULES, max_cost_per_active=None, min_active_participants=None)
    card = build_scorecard(replace(PILOT, decision=rules), replace(ADOPTION, active_participants=400), VOICE)
    assert criterion(card, "cost_per_active").status == "no target"
    assert criterion(card, "cost_per_active").observed == pytest.approx(150.0)
    assert card.economic.score == 1.0


def test_an_axis_without_any_target_has_no_score() -> None:
    card = build_scorecard(replace(PILOT, decision=DecisionRules()), ADOPTION, VOICE)
    assert (card.economic.score, card.social.score, card.human.score) == (None, None, None)
    assert card.unmet == ()


def test_adopters_forecast_is_the_bass_forecast_at_the_horizon() -> None:
    fit = fit_bass(*zip(*CURVE, strict=True), market_potential_prior=PILOT.population)
    card = build_scorecard(PILOT, ADOPTION, VOICE)
    forecast = criterion(card, "adopters_forecast")
    assert forecast.observed == pytest.approx(fit.adopters_at(365))
    assert forecast.observed == pytest.approx(5000.0, rel=0.02)
    assert "365 days" in english(forecast.detail) and "band" in english(forecast.detail)


def test_a_given_forecast_is_used_instead_of_fitting() -> None:
    small = fit_bass(*zip(*((d, a / 10) for d, a in CURVE), strict=True))
    card = build_scorecard(PILOT, ADOPTION, VOICE, forecast=small)
    forecast = criterion(card, "adopters_forecast")
    assert forecast.observed == pytest.approx(500.0, rel=0.02)
    assert forecast.status == "missed"


def test_a_forecast_that_cannot_be_fitted_has_no_data_and_says_why() -> None:
    card = build_scorecard(PILOT, replace(ADOPTION, cumulative_adopters=((0.0, 0), (1.0, 3))), VOICE)
    forecast = criterion(card, "adopters_forecast")
    assert forecast.status == "no data"
    assert "at least 4" in english(forecast.detail)


def test_district_reach_is_the_share_of_target_districts_with_active_participants() -> None:
    adoption = replace(ADOPTION, active_by_district=(("north", 300), ("south", 10), ("elsewhere", 50)))
    card = build_scorecard(PILOT, adoption, VOICE)
    reach = criterion(card, "district_reach")
    assert reach.observed == pytest.approx(2 / 5)
    assert reach.status == "missed"
    assert "east, west, centre" in english(reach.detail)
    gap = criterion(card, "reach_gap")
    assert gap.observed == 1.0
    assert gap.status == "missed"


def test_reach_gap_compares_active_participants_between_best_and_worst_district() -> None:
    gap = criterion(build_scorecard(PILOT, ADOPTION, VOICE), "reach_gap")
    assert gap.observed == pytest.approx(1 - 90 / 200)
    assert gap.status == "met"
    assert "north" in english(gap.detail) and "centre" in english(gap.detail)


def test_reach_gap_uses_adoption_rates_when_district_populations_are_known() -> None:
    populations = (("north", 8000), ("south", 3000), ("east", 2000), ("west", 1800), ("centre", 600))
    card = build_scorecard(replace(PILOT, district_population=populations), ADOPTION, VOICE)
    gap = criterion(card, "reach_gap")
    # rates: north 2.5 %, south 5 %, east 6 %, west 5.6 %, centre 15 %
    assert gap.observed == pytest.approx(1 - (200 / 8000) / (90 / 600))
    assert gap.status == "missed"
    population_reach = criterion(card, "population_reach")
    assert population_reach.observed == pytest.approx(660 / 15_400)
    assert population_reach.status == "no target"


def test_a_pilot_without_target_districts_has_no_reach_data() -> None:
    card = build_scorecard(replace(PILOT, districts=()), ADOPTION, VOICE)
    assert criterion(card, "district_reach").status == "no data"
    assert criterion(card, "reach_gap").status == "no data"
    assert card.social.score == 0.0


def test_segment_coverage_counts_the_values_reached() -> None:
    channel = criterion(build_scorecard(PILOT, ADOPTION, VOICE), "segment:channel")
    assert channel.observed == 2.0
    assert channel.status == "no target"
    assert english(channel.detail) == "app: 500, web: 100, kiosk: 0."


def test_human_axis_reads_the_citizens_voice() -> None:
    voice = summarise_voice(promoters=1, detractors=3, sus_scores=[60.0], rating_counts={2: 4})
    card = build_scorecard(PILOT, ADOPTION, voice)
    assert criterion(card, "nps").observed == pytest.approx(-50.0)
    assert criterion(card, "sus").observed == 60.0
    assert criterion(card, "rating").observed == 2.0
    assert card.human.score == 0.0
    assert {c.key for c in card.unmet} == {"nps", "sus", "rating"}


def test_comment_and_idea_volumes_come_with_themes_and_top_ideas() -> None:
    card = build_scorecard(PILOT, ADOPTION, VOICE)
    comments = criterion(card, "comments")
    assert comments.observed == 3.0
    assert "bike lanes (2)" in english(comments.detail)
    assert english(criterion(card, "ideas").detail) == "Most voted: “Night service” (9 votes); “Cargo bikes” (4 votes)."


def test_no_feedback_means_no_data_for_the_satisfaction_targets() -> None:
    card = build_scorecard(PILOT, ADOPTION, summarise_voice())
    statuses = {c.key: c.status for c in card.human.criteria}
    assert statuses == {
        "nps": "no data",
        "sus": "no data",
        "rating": "no data",
        "comments": "no target",
        "ideas": "no target",
    }
    assert card.human.score == 0.0
