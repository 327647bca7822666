"""Evidence, recommendations and the portfolio: what the decision board reads across pilots.

The recommendation of an experiment comes from `experiments.decisions.recommend`; the scorecard it needs
for go is built only when the evidence says go (the only outcome the scorecard can change, rule 6 of
`decisions`), so the portfolio does not fit a Bass curve per pilot when nobody could go.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select

from experiments import models as m
from experiments.adoption import BassFit
from experiments.decisions import Outcome, Recommendation, recommend
from experiments.feedback import (
    VoiceSummary,
)
from experiments.readmodels.adoption import adoption_forecast, adoption_summary
from experiments.readmodels.catalog import pilot_specs, stored_experiments
from experiments.readmodels.exposure import (
    Exposure,
    comparisons,
    experiment_statistics,
    exposures,
    last_updates,
    units_of,
)
from experiments.readmodels.voice import figures_of, voice_summary
from experiments.registry import ExperimentSpec, ExperimentStatus, PilotSpec
from experiments.results import build_results
from experiments.scorecard import AdoptionSummary, Scorecard, build_scorecard
from experiments.store import Store


@dataclass(frozen=True, slots=True)
class PilotEvidence:
    """What the scorecard of a pilot is built from, and the scorecard itself."""

    adoption: AdoptionSummary
    voice: VoiceSummary
    forecast: BassFit
    scorecard: Scorecard


def pilot_evidence(store: Store, pilot: PilotSpec) -> PilotEvidence:
    """Returns the pilot's adoption, citizens' voice, Bass forecast and integrated scorecard."""
    adoption = adoption_summary(store, pilot)
    voice = voice_summary(store, pilot.key)
    forecast = adoption_forecast(pilot, adoption)
    return PilotEvidence(adoption, voice, forecast, build_scorecard(pilot, adoption, voice, forecast=forecast))


def _judged(
    pilot: PilotSpec,
    experiment: ExperimentSpec,
    results: Mapping[str, Any],
    exposure: Exposure,
    scorecard: Scorecard | None,
) -> Recommendation:
    """Returns `decisions.recommend` on a results document (scorecard None: the evidence alone)."""
    return recommend(
        pilot,
        experiment,
        comparisons(results),
        units=units_of(results),
        units_per_day=exposure.units_per_day,
        srm_mismatch=bool(results["analysis"]["srm"]["mismatch"]),
        scorecard=scorecard,
        days_running=exposure.days_running,
    )


def recommendation(
    pilot: PilotSpec,
    experiment: ExperimentSpec,
    results: Mapping[str, Any],
    exposure: Exposure,
    scorecard: Callable[[], Scorecard],
) -> Recommendation:
    """Returns the recommendation of `decisions.recommend`, asking for the scorecard only when the
    evidence alone says go (rule 6: the scorecard can only turn go into iterate)."""
    first = _judged(pilot, experiment, results, exposure, None)
    return _judged(pilot, experiment, results, exposure, scorecard()) if first.outcome == "go" else first


def _outcome_scorecards(store: Store, pilots: Sequence[PilotSpec]) -> dict[str, Scorecard]:
    """Returns the pilots' scorecards as far as the go / iterate outcome needs them, in a few queries.

    Only criteria with a target decide the outcome (`Scorecard.unmet`), so what has none is left
    out: the themes and ideas of the citizens' voice, and the Bass fit unless the rules set a
    minimum adopters forecast. The board's page builds the full scorecard (`pilot_evidence`).
    """
    keys = [p.key for p in pilots]
    d, f = m.DailyAdoption, m.FeedbackStat
    adoption_q = (
        select(d.pilot_key, d.segment, func.sum(d.new), func.max(d.day))
        .where(d.pilot_key.in_(keys))
        .group_by(d.pilot_key, d.segment)
    )
    feedback_q = (
        select(f.pilot_key, f.kind, f.bucket, func.sum(f.n), func.sum(f.sum), func.sum(f.sum_squares))
        .where(f.pilot_key.in_(keys), f.experiment_key == "", f.variant == "", f.kind != "vote")
        .group_by(f.pilot_key, f.kind, f.bucket)
    )
    totals: dict[str, dict[str, tuple[int, date]]] = defaultdict(dict)
    feedback: dict[str, list[tuple[str, str, int, float, float]]] = defaultdict(list)
    with store.engine.connect() as conn:
        for key, segment, n, last in conn.execute(adoption_q):
            totals[key][segment] = (int(n or 0), last)
        for key, kind, bucket, n, total, squares in conn.execute(feedback_q):
            feedback[key].append((kind, bucket, int(n or 0), float(total or 0), float(squares or 0)))
    cards = {}
    for pilot in pilots:
        counts = totals.get(pilot.key, {})
        whole = counts.get("", (0, None))
        age = 0.0 if whole[1] is None or pilot.start is None else float((whole[1] - pilot.start).days + 1)
        segments = [(seg.partition(":")[0], seg.partition(":")[2], n) for seg, (n, _) in sorted(counts.items()) if seg]
        adoption = AdoptionSummary(
            active_participants=whole[0],
            pilot_age_days=age,
            active_by_district=tuple((value, n) for name, value, n in segments if name == "district"),
            active_by_segment=tuple(item for item in segments if item[0] != "district"),
        )
        if pilot.decision.min_adopters_forecast is not None:
            adoption = adoption_summary(store, pilot)
            forecast = adoption_forecast(pilot, adoption)
        else:
            forecast = BassFit(None, None, None, None, 0, None, 0.95, "not fitted: the rules set no adopters target")
        figures = figures_of(feedback.get(pilot.key, ()))
        voice = VoiceSummary(
            nps=figures.nps,
            nps_respondents=figures.promoters + figures.passives + figures.detractors,
            sus_mean=figures.sus.mean,
            sus_respondents=figures.sus.respondents,
            rating=figures.rating,
            comment_count=figures.comments,
            idea_count=figures.ideas,
            themes=(),
            top_ideas=(),
        )
        cards[pilot.key] = build_scorecard(pilot, adoption, voice, forecast=forecast)
    return cards


class PortfolioExperiment(NamedTuple):
    """One experiment of the portfolio: its status, current recommendation and latest board decision."""

    key: str
    status: ExperimentStatus
    recommendation: Outcome | None
    variant: str | None
    exposure: Exposure
    srm_mismatch: bool
    decision: str | None


class PortfolioRow(NamedTuple):
    """One pilot of the portfolio."""

    key: str
    name: str
    stage: str
    owner: str
    next_decision: date | None
    experiments: tuple[PortfolioExperiment, ...]


def latest_decisions(store: Store) -> dict[str, str]:
    """Returns the outcome of the latest board decision of each experiment."""
    d = m.Decision
    last = select(func.max(d.id)).where(d.experiment_key.is_not(None)).group_by(d.experiment_key).scalar_subquery()
    with store.engine.connect() as conn:
        rows = conn.execute(select(d.experiment_key, d.outcome).where(d.id.in_(last))).all()
    return {key: outcome for key, outcome in rows if key is not None}


def portfolio(store: Store, *, as_of: datetime | None = None) -> tuple[PortfolioRow, ...]:
    """Returns every pilot with its experiments' status, recommendation and latest decision.

    Drafts carry no recommendation (nothing is measured yet). The scorecards of the pilots with
    an experiment the evidence says go are built in a batch, with what the outcome needs only
    (`_outcome_scorecards`).
    """
    now = as_of or datetime.now(UTC)
    specs = pilot_specs(store)
    experiments = stored_experiments(store, specs=specs)
    statistics = experiment_statistics(store)
    updated = last_updates(store)
    results = {
        e.spec.key: build_results(e.spec, e.pilot_key, statistics.get(e.spec.key, {}), updated.get(e.spec.key, now))
        for e in experiments
        if e.status != "draft"
    }
    rates = exposures(store, experiments, {k: sum(units_of(r).values()) for k, r in results.items()}, as_of=now)
    decided = latest_decisions(store)
    verdicts = {
        key: _judged(specs[e.pilot_key], e.spec, results[key], rates[key], None)
        for e in experiments
        if (key := e.spec.key) in results
    }
    going = sorted(
        {e.pilot_key for e in experiments if e.spec.key in verdicts and verdicts[e.spec.key].outcome == "go"}
    )
    cards = _outcome_scorecards(store, [specs[key] for key in going])
    by_pilot: dict[str, list[PortfolioExperiment]] = defaultdict(list)
    for e in experiments:
        key = e.spec.key
        doc = results.get(key)
        advice = verdicts.get(key)
        if advice is not None and advice.outcome == "go":
            advice = _judged(specs[e.pilot_key], e.spec, results[key], rates[key], cards[e.pilot_key])
        by_pilot[e.pilot_key].append(
            PortfolioExperiment(
                key,
                e.status,
                None if advice is None else advice.outcome,
                None if advice is None else advice.variant,
                rates[key],
                bool(doc and doc["analysis"]["srm"]["mismatch"]),
                decided.get(key),
            )
        )
    return tuple(
        PortfolioRow(p.key, str(p.name), p.stage, p.owner, p.next_decision, tuple(by_pilot.get(p.key, ())))
        for p in specs.values()
    )
