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
from datetime import date
from typing import Literal, NamedTuple

from experiments import formatting as fmt
from experiments.adoption import BassFit, explain_forecast, fit_bass
from experiments.feedback import VoiceSummary
from experiments.formatting import Figure, Message
from experiments.i18n import N_
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
    #: The day the days of `cumulative_adopters` are counted from.
    start: date | None = None
    active_by_district: tuple[tuple[str, int], ...] = ()
    active_by_segment: tuple[tuple[str, str, int], ...] = ()


class Criterion(NamedTuple):
    """One line of the scorecard: what was observed against the pre-registered target.

    `label` and `detail` are sentences kept language-neutral (`formatting.Message`); `unit` says how the
    observed value and the target are written: a figure kind and its option (`criterion_figure`)."""

    axis: Axis
    key: str
    label: Message
    observed: float | None
    target: float | None
    comparison: Comparison
    status: CriterionStatus
    detail: Message
    unit: tuple[str, object] = ("significant", None)

    def to_json(self) -> dict[str, object]:
        """Returns the criterion as a snapshot stores it (its sentences as JSON)."""
        return {
            **self._asdict(),
            "label": self.label.to_json(),
            "detail": self.detail.to_json(),
            "unit": list(self.unit),
        }


def criterion_figure(criterion: Criterion, value: float | None) -> Figure:
    """Returns a value of the criterion (observed or target) as a figure of its unit."""
    kind, option = criterion.unit
    return Figure(kind, value, option)  # type: ignore[arg-type]


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
    label: Message,
    *,
    observed: float | None,
    target: float | None,
    comparison: Comparison,
    detail: Message,
    unit: tuple[str, object] = ("significant", None),
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
    return Criterion(axis, key, label, observed, target, comparison, status, detail, unit)


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
            Message.of(N_("Active participants")),
            observed=float(active),
            target=None if rules.min_active_participants is None else float(rules.min_active_participants),
            comparison=">=",
            detail=Message.of(
                N_("{active} citizens active in the pilot after {days} days."),
                active=Figure("count", active),
                days=Figure("count", adoption.pilot_age_days),
            ),
            unit=("count", None),
        )
    ]
    cost: float | None = None
    if pilot.budget is None:
        cost_detail = Message.of(N_("No budget is registered for this stage."))
    elif active == 0:
        cost_detail = Message.of(N_("No active participant yet: the cost per participant is not defined."))
    else:
        cost = pilot.budget / active
        cost_detail = Message.of(
            N_("{budget} budget / {active} active participants."),
            budget=Figure("money", pilot.budget, pilot.currency),
            active=Figure("count", active),
        )
    criteria.append(
        _criterion(
            "economic",
            "cost_per_active",
            Message.of(N_("Cost per active participant")),
            observed=cost,
            target=rules.max_cost_per_active,
            comparison="<=",
            detail=cost_detail,
            unit=("money", pilot.currency),
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
        forecast_detail = explain_forecast(
            forecast,
            pilot_age_days=adoption.pilot_age_days,
            adopters=float(adoption.cumulative_adopters[-1][1]) if adoption.cumulative_adopters else 0.0,
            latest_new=0.0,
            horizon_days=horizon,
        ).summary
    else:
        band = forecast.forecast([horizon])
        forecast_detail = Message.of(
            N_(
                "Bass forecast {horizon} days after the start (the pilot is {age} days old): {adopters} adopters, "
                "{level} band {low} to {high}."
            ),
            horizon=Figure("count", horizon),
            age=Figure("count", adoption.pilot_age_days),
            adopters=Figure("count", band.adopters[0]),
            level=Figure("share", band.level),
            low=Figure("count", band.low[0]),
            high=Figure("count", band.high[0]),
        )
    criteria.append(
        _criterion(
            "economic",
            "adopters_forecast",
            Message.of(N_("Adopters forecast at {days} days"), days=Figure("count", horizon)),
            observed=predicted,
            target=None if rules.min_adopters_forecast is None else float(rules.min_adopters_forecast),
            comparison=">=",
            detail=forecast_detail,
            unit=("count", None),
        )
    )
    return criteria


def _listed(values: list[str]) -> Figure:
    """Returns names (districts, segment values) as one figure, as written."""
    return fmt.text(", ".join(values))


def _social(pilot: PilotSpec, adoption: AdoptionSummary) -> list[Criterion]:
    rules = pilot.decision
    districts = pilot.districts
    active_in = dict(adoption.active_by_district)
    population = dict(pilot.district_population)
    reach: float | None = None
    gap: float | None = None
    if not districts:
        reach_detail = gap_detail = Message.of(N_("No target districts are registered for this pilot."))
    else:
        unreached = [d for d in districts if active_in.get(d, 0) == 0]
        reach = 1.0 - len(unreached) / len(districts)
        reached = {"reached": Figure("count", len(districts) - len(unreached)), "of": Figure("count", len(districts))}
        if unreached:
            reach_detail = Message.of(
                N_("{reached} of {of} target districts have active participants. None yet in: {unreached}."),
                unreached=_listed(unreached),
                **reached,
            )
        else:
            reach_detail = Message.of(N_("{reached} of {of} target districts have active participants."), **reached)
        per_citizen = all(population.get(d, 0) > 0 for d in districts)
        adoption_of = {
            d: active_in.get(d, 0) / population[d] if per_citizen else float(active_in.get(d, 0)) for d in districts
        }
        best = max(districts, key=lambda d: adoption_of[d])
        worst = min(districts, key=lambda d: adoption_of[d])

        if adoption_of[best] == 0:
            gap_detail = Message.of(N_("No target district has active participants yet."))
        else:
            gap = 1.0 - adoption_of[worst] / adoption_of[best]
            ends = {"best": fmt.text(best), "worst": fmt.text(worst)}
            if per_citizen:
                gap_detail = Message.of(
                    N_(
                        "Best served: {best} ({best_share} of citizens active); worst: {worst} ({worst_share} of "
                        "citizens active)."
                    ),
                    best_share=Figure("share", adoption_of[best], 1),
                    worst_share=Figure("share", adoption_of[worst], 1),
                    **ends,
                )
            else:
                gap_detail = Message.of(
                    N_(
                        "Best served: {best} ({best_n} active participants); worst: {worst} ({worst_n} active "
                        "participants)."
                    ),
                    best_n=Figure("count", adoption_of[best]),
                    worst_n=Figure("count", adoption_of[worst]),
                    **ends,
                )
    criteria = [
        _criterion(
            "social",
            "district_reach",
            Message.of(N_("Target districts reached")),
            observed=reach,
            target=rules.min_district_reach,
            comparison=">=",
            detail=reach_detail,
            unit=("share", 0),
        ),
        _criterion(
            "social",
            "reach_gap",
            Message.of(N_("Gap between best- and worst-served district")),
            observed=gap,
            target=rules.max_reach_gap,
            comparison="<=",
            detail=gap_detail,
            unit=("share", 0),
        ),
    ]
    if districts and all(population.get(d, 0) > 0 for d in districts):
        citizens = sum(population[d] for d in districts)
        active = sum(active_in.get(d, 0) for d in districts)
        criteria.append(
            _criterion(
                "social",
                "population_reach",
                Message.of(N_("Citizens of the target districts who are active")),
                observed=active / citizens,
                target=None,
                comparison=">=",
                detail=Message.of(
                    N_("{active} active of {citizens} citizens in the target districts."),
                    active=Figure("count", active),
                    citizens=Figure("count", citizens),
                ),
                unit=("share", 1),
            )
        )
    for segment in pilot.segments:
        if segment == "district":
            continue
        counts = sorted(
            ((value, n) for name, value, n in adoption.active_by_segment if name == segment),
            key=lambda item: (-item[1], item[0]),
        )
        reached_values = [(value, n) for value, n in counts if n > 0]
        if counts:
            detail = Message.of(
                N_("{values}."),
                values=fmt.sentences(
                    [
                        Message.of(N_("{value}: {n}"), value=fmt.text(value), n=Figure("count", n))
                        for value, n in counts
                    ],
                    ", ",
                ),
            )
        else:
            detail = Message.of(N_("No active participant has a {segment} recorded."), segment=fmt.text(segment))
        criteria.append(
            _criterion(
                "social",
                f"segment:{segment}",
                Message.of(N_("Values of {segment} reached"), segment=fmt.text(segment)),
                observed=float(len(reached_values)) if counts else None,
                target=None,
                comparison=">=",
                detail=detail,
                unit=("count", None),
            )
        )
    return criteria


def _human(pilot: PilotSpec, voice: VoiceSummary) -> list[Criterion]:
    rules = pilot.decision
    rating = voice.rating
    themes = [
        Message.of(N_("{theme} ({n})"), theme=fmt.text(theme), n=Figure("count", n))
        for theme, n in voice.themes[:DETAIL_ITEMS]
    ]
    ideas = [
        Message.of(N_("“{idea}” ({votes} votes)"), idea=fmt.text(idea.text), votes=Figure("count", idea.votes))
        for idea in voice.top_ideas[:DETAIL_ITEMS]
    ]
    stars = [
        Message.of(N_("{stars} ★: {n}"), stars=Figure("count", stars), n=Figure("count", n))
        for stars, n in enumerate(rating.counts, start=1)
    ]
    return [
        _criterion(
            "human",
            "nps",
            Message.of(N_("Net Promoter Score")),
            observed=voice.nps,
            target=rules.min_nps,
            comparison=">=",
            detail=Message.of(N_("From {n} respondents."), n=Figure("count", voice.nps_respondents)),
            unit=("signed_number", None),
        ),
        _criterion(
            "human",
            "sus",
            Message.of(N_("Usability (SUS, 0-100)")),
            observed=voice.sus_mean,
            target=rules.min_sus,
            comparison=">=",
            detail=Message.of(
                N_("Mean of {n} respondents; 68 is average usability."), n=Figure("count", voice.sus_respondents)
            ),
            unit=("number", 1),
        ),
        _criterion(
            "human",
            "rating",
            Message.of(N_("Rating (1-5)")),
            observed=rating.mean,
            target=rules.min_rating,
            comparison=">=",
            detail=Message.of(
                N_("From {n} ratings; {stars}."),
                n=Figure("count", rating.respondents),
                stars=fmt.sentences(stars, ", "),
            ),
            unit=("number", 1),
        ),
        _criterion(
            "human",
            "comments",
            Message.of(N_("Comments")),
            observed=float(voice.comment_count),
            target=None,
            comparison=">=",
            detail=Message.of(N_("Top themes: {themes}."), themes=fmt.sentences(themes, ", "))
            if themes
            else Message.of(N_("No themes yet.")),
            unit=("count", None),
        ),
        _criterion(
            "human",
            "ideas",
            Message.of(N_("Ideas")),
            observed=float(voice.idea_count),
            target=None,
            comparison=">=",
            detail=Message.of(N_("Most voted: {ideas}."), ideas=fmt.sentences(ideas, "; "))
            if ideas
            else Message.of(N_("No ideas yet.")),
            unit=("count", None),
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
