"""The integrated scorecard: is the pilot worth its cost, does it reach everyone, do citizens like it?

Three axes, each a few criteria whose targets come from the pilot's pre-registered `DecisionRules`:

- economic: active participants (`min_active_participants`), cost per active participant = budget /
  active participants (`max_cost_per_active`), Bass forecast of cumulative adopters
  `forecast_horizon_days` after the start (`min_adopters_forecast`);
- social: reach = share of the target districts with at least one active participant
  (`min_district_reach`); gap = 1 - worst / best adoption among target districts (`max_reach_gap`),
  adoption being active participants per citizen when every target district's population is known
  and active participants otherwise; the share of the target districts' citizens who are active
  (when populations are known) and the values reached of every other segment, without targets;
- human: NPS (`min_nps`), SUS mean (`min_sus`), rating mean (`min_rating`); the volume and top themes
  of comments and ideas, without targets.

A criterion is "no data" when its figure cannot be computed, "no target" when the rules set none,
else "met" or "missed". An axis scores the share of its criteria with a target that are met, a
target without data counting as not met; None when the axis has no target at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from experiments.adoption import BassFit, fit_bass
from experiments.feedback import VoiceSummary
from experiments.registry import PilotSpec

Axis = Literal["economic", "social", "human"]
Comparison = Literal[">=", "<="]
CriterionStatus = Literal["met", "missed", "no target", "no data"]

#: Themes and ideas named in a criterion's detail.
DETAIL_ITEMS = 3


@dataclass(frozen=True, slots=True)
class AdoptionSummary:
    """A pilot's adoption as the scorecard reads it.

    `cumulative_adopters` are (days since the pilot start, cumulative adopters) pairs, the input of
    the Bass forecast; `active_by_district` counts active participants per district and
    `active_by_segment` per (segment, value) for the other segments (channel, age band, ...).
    """

    active_participants: int
    pilot_age_days: float
    cumulative_adopters: tuple[tuple[float, int], ...] = ()
    active_by_district: tuple[tuple[str, int], ...] = ()
    active_by_segment: tuple[tuple[str, str, int], ...] = ()


class Criterion(NamedTuple):
    """One line of the scorecard: what was observed against the pre-registered target."""

    axis: Axis
    key: str
    label: str
    observed: float | None
    target: float | None
    comparison: Comparison
    status: CriterionStatus
    detail: str


class ScorecardAxis(NamedTuple):
    """One axis of the scorecard: its criteria and the share of those with a target that are met."""

    name: Axis
    criteria: tuple[Criterion, ...]
    score: float | None


class Scorecard(NamedTuple):
    """The integrated scorecard on its three axes."""

    economic: ScorecardAxis
    social: ScorecardAxis
    human: ScorecardAxis

    @property
    def criteria(self) -> tuple[Criterion, ...]:
        """Returns every criterion, axis by axis."""
        return self.economic.criteria + self.social.criteria + self.human.criteria

    @property
    def unmet(self) -> tuple[Criterion, ...]:
        """Returns the criteria that have a target and are not met (missed, or without data)."""
        return tuple(c for c in self.criteria if c.target is not None and c.status != "met")


def _criterion(
    axis: Axis,
    key: str,
    label: str,
    *,
    observed: float | None,
    target: float | None,
    comparison: Comparison,
    detail: str,
) -> Criterion:
    """Returns the criterion with its status decided from observed, target and comparison."""
    status: CriterionStatus
    if observed is None:
        status = "no data"
    elif target is None:
        status = "no target"
    elif observed >= target if comparison == ">=" else observed <= target:
        status = "met"
    else:
        status = "missed"
    return Criterion(axis, key, label, observed, target, comparison, status, detail)


def _axis(name: Axis, criteria: list[Criterion]) -> ScorecardAxis:
    with_target = [c for c in criteria if c.target is not None]
    met = sum(c.status == "met" for c in with_target)
    return ScorecardAxis(name, tuple(criteria), met / len(with_target) if with_target else None)


def _economic(pilot: PilotSpec, adoption: AdoptionSummary, forecast: BassFit | None) -> list[Criterion]:
    rules = pilot.decision
    active = adoption.active_participants
    criteria = [
        _criterion(
            "economic",
            "active_participants",
            "Active participants",
            observed=float(active),
            target=None if rules.min_active_participants is None else float(rules.min_active_participants),
            comparison=">=",
            detail=f"{active:,} citizens active in the pilot after {adoption.pilot_age_days:,.0f} days.",
        )
    ]
    cost: float | None = None
    if pilot.budget is None:
        cost_detail = "No budget is registered for this stage."
    elif active == 0:
        cost_detail = "No active participant yet: the cost per participant is not defined."
    else:
        cost = pilot.budget / active
        cost_detail = f"{pilot.budget:,.0f} {pilot.currency} budget / {active:,} active participants."
    criteria.append(
        _criterion(
            "economic",
            "cost_per_active",
            f"Cost per active participant ({pilot.currency})",
            observed=cost,
            target=rules.max_cost_per_active,
            comparison="<=",
            detail=cost_detail,
        )
    )
    horizon = rules.forecast_horizon_days
    if forecast is None:
        forecast = fit_bass(
            [day for day, _ in adoption.cumulative_adopters],
            [adopters for _, adopters in adoption.cumulative_adopters],
            market_potential_prior=pilot.population,
        )
    predicted = forecast.adopters_at(horizon)
    if forecast.error is not None or forecast.parameters is None:
        forecast_detail = f"No forecast: {forecast.error}"
    else:
        band = forecast.forecast([horizon])
        p, q, m = forecast.parameters
        forecast_detail = (
            f"Bass forecast {horizon} days after the start (the pilot is "
            f"{adoption.pilot_age_days:,.0f} days old): {band.adopters[0]:,.0f} adopters, "
            f"{band.level * 100:.0f} % band {band.low[0]:,.0f} to {band.high[0]:,.0f}; "
            f"innovation p = {p:.4f}, imitation q = {q:.4f} per day, market potential m = {m:,.0f}."
        )
    criteria.append(
        _criterion(
            "economic",
            "adopters_forecast",
            f"Adopters forecast at {horizon} days",
            observed=predicted,
            target=None if rules.min_adopters_forecast is None else float(rules.min_adopters_forecast),
            comparison=">=",
            detail=forecast_detail,
        )
    )
    return criteria


def _social(pilot: PilotSpec, adoption: AdoptionSummary) -> list[Criterion]:
    rules = pilot.decision
    districts = pilot.districts
    active_in = dict(adoption.active_by_district)
    population = dict(pilot.district_population)
    reach: float | None = None
    gap: float | None = None
    if not districts:
        reach_detail = gap_detail = "No target districts are registered for this pilot."
    else:
        unreached = [d for d in districts if active_in.get(d, 0) == 0]
        reach = 1.0 - len(unreached) / len(districts)
        reach_detail = (
            f"{len(districts) - len(unreached)} of {len(districts)} target districts have active participants."
        )
        if unreached:
            reach_detail += f" None yet in: {', '.join(unreached)}."
        per_citizen = all(population.get(d, 0) > 0 for d in districts)
        adoption_of = {
            d: active_in.get(d, 0) / population[d] if per_citizen else float(active_in.get(d, 0)) for d in districts
        }
        best = max(districts, key=lambda d: adoption_of[d])
        worst = min(districts, key=lambda d: adoption_of[d])
        unit = "of citizens active" if per_citizen else "active participants"

        def shown(d: str) -> str:
            return f"{adoption_of[d] * 100:.1f} %" if per_citizen else f"{adoption_of[d]:,.0f}"

        if adoption_of[best] == 0:
            gap_detail = "No target district has active participants yet."
        else:
            gap = 1.0 - adoption_of[worst] / adoption_of[best]
            gap_detail = f"Best served: {best} ({shown(best)} {unit}); worst: {worst} ({shown(worst)} {unit})."
    criteria = [
        _criterion(
            "social",
            "district_reach",
            "Target districts reached",
            observed=reach,
            target=rules.min_district_reach,
            comparison=">=",
            detail=reach_detail,
        ),
        _criterion(
            "social",
            "reach_gap",
            "Gap between best- and worst-served district",
            observed=gap,
            target=rules.max_reach_gap,
            comparison="<=",
            detail=gap_detail,
        ),
    ]
    if districts and all(population.get(d, 0) > 0 for d in districts):
        citizens = sum(population[d] for d in districts)
        active = sum(active_in.get(d, 0) for d in districts)
        criteria.append(
            _criterion(
                "social",
                "population_reach",
                "Citizens of the target districts who are active",
                observed=active / citizens,
                target=None,
                comparison=">=",
                detail=f"{active:,} active of {citizens:,} citizens in the target districts.",
            )
        )
    for segment in pilot.segments:
        if segment == "district":
            continue
        counts = sorted(
            ((value, n) for name, value, n in adoption.active_by_segment if name == segment),
            key=lambda item: (-item[1], item[0]),
        )
        reached = [(value, n) for value, n in counts if n > 0]
        criteria.append(
            _criterion(
                "social",
                f"segment:{segment}",
                f"Values of {segment} reached",
                observed=float(len(reached)) if counts else None,
                target=None,
                comparison=">=",
                detail=", ".join(f"{value}: {n:,}" for value, n in counts) + "."
                if counts
                else f"No active participant has a {segment} recorded.",
            )
        )
    return criteria


def _human(pilot: PilotSpec, voice: VoiceSummary) -> list[Criterion]:
    rules = pilot.decision
    rating = voice.rating
    themes = ", ".join(f"{theme} ({n})" for theme, n in voice.themes[:DETAIL_ITEMS])
    ideas = "; ".join(f"{idea.text} ({idea.votes} votes)" for idea in voice.top_ideas[:DETAIL_ITEMS])
    return [
        _criterion(
            "human",
            "nps",
            "Net Promoter Score",
            observed=voice.nps,
            target=rules.min_nps,
            comparison=">=",
            detail=f"From {voice.nps_respondents:,} respondents.",
        ),
        _criterion(
            "human",
            "sus",
            "Usability (SUS, 0-100)",
            observed=voice.sus_mean,
            target=rules.min_sus,
            comparison=">=",
            detail=f"Mean of {voice.sus_respondents:,} respondents; 68 is average usability.",
        ),
        _criterion(
            "human",
            "rating",
            "Rating (1-5)",
            observed=rating.mean,
            target=rules.min_rating,
            comparison=">=",
            detail=f"From {rating.respondents:,} ratings; "
            + ", ".join(f"{stars}: {n:,}" for stars, n in enumerate(rating.counts, start=1))
            + ".",
        ),
        _criterion(
            "human",
            "comments",
            "Comments",
            observed=float(voice.comment_count),
            target=None,
            comparison=">=",
            detail=f"Top themes: {themes}." if themes else "No themes yet.",
        ),
        _criterion(
            "human",
            "ideas",
            "Ideas",
            observed=float(voice.idea_count),
            target=None,
            comparison=">=",
            detail=f"Most voted: {ideas}." if ideas else "No ideas yet.",
        ),
    ]


def build_scorecard(
    pilot: PilotSpec, adoption: AdoptionSummary, voice: VoiceSummary, *, forecast: BassFit | None = None
) -> Scorecard:
    """Returns the pilot's integrated scorecard against its pre-registered decision rules.

    `forecast` is a Bass fit already made (the console keeps one per pilot); without it the
    forecast is fitted here from `adoption.cumulative_adopters`, with `pilot.population` as the
    market-potential prior.
    """
    return Scorecard(
        economic=_axis("economic", _economic(pilot, adoption, forecast)),
        social=_axis("social", _social(pilot, adoption)),
        human=_axis("human", _human(pilot, voice)),
    )
