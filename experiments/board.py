"""The decision board: what it sees of an experiment, the snapshot of it, and the decision it records.

- `evaluate` gathers everything a board page shows: the results document with the engine's
  analysis, the exposure towards the planned sample, the recommendation with its reasons, the
  pilot's scorecard, citizens' voice and adoption forecast, and the decisions already recorded.
- `take_snapshot` stores the exact content the board saw (`snapshot_content`) in
  `results_snapshots`, with the SHA-256 digest of its canonical JSON (sorted keys, orjson), so the
  decision can later be checked against the figures it was made on (`verify_snapshot`).
- `record_decision` appends the board's decision (go, no-go or iterate; rationale, members present,
  conditions) against a snapshot. Decisions are append-only (database triggers refuse UPDATE and
  DELETE); `decision_history` reads them back, newest first.

The status rule: a decision closes a *stopped* experiment (stopped -> decided, through
`Store.set_status`, the change recorded in the plan history with the decision's id). A decision on
a *running* experiment is an interim decision: it is recorded and the experiment keeps running
until the lab stops it; the next decision then closes it. A *decided* experiment may still get
decisions (a correction, a later review), appended to its history; its status stays decided. A
*draft* has measured nothing, so no decision can be recorded against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import select

from experiments import models as m
from experiments.adoption import Forecast
from experiments.decisions import Recommendation
from experiments.i18n import localized, names
from experiments.readmodels import catalog
from experiments.readmodels import exposure as exposure_reads
from experiments.readmodels import portfolio as portfolio_reads
from experiments.registry import PilotSpec
from experiments.results import build_results
from experiments.store import Store, StoredExperiment, StoreError, canonical_json, now

DecisionOutcome = Literal["go", "no-go", "iterate"]
DECISION_OUTCOMES: tuple[DecisionOutcome, ...] = ("go", "no-go", "iterate")
#: The version of the snapshot content's layout: 2 keeps reasons and the scorecard's sentences
#: language-neutral (`formatting.Message` as JSON) and the metrics' names in each language.
SNAPSHOT_SCHEMA = 2
#: Points of the adoption forecast drawn, from the start to `forecast_window` days.
FORECAST_POINTS = 60


class RecordedDecision(NamedTuple):
    """A board decision as recorded, with the digest of the snapshot it was made on."""

    id: int
    pilot_key: str
    experiment_key: str | None
    snapshot_id: int
    digest: str
    outcome: str
    recommendation: str
    rationale: str
    members: tuple[str, ...]
    conditions: str
    recorded_by: str
    at: datetime


class Snapshot(NamedTuple):
    """A stored snapshot: the content the board saw and the SHA-256 of its canonical JSON."""

    id: int
    pilot_key: str
    experiment_key: str | None
    taken_at: datetime
    digest: str
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything the decision board sees of one experiment, as of `as_of`.

    `results` is the results document of `rhizome results --json` (with the engine's `analysis`);
    `comparisons` are its analysis rows as typed records.
    """

    pilot: PilotSpec
    experiment: StoredExperiment
    results: Mapping[str, Any]
    comparisons: tuple[exposure_reads.ReportedComparison, ...]
    exposure: exposure_reads.Exposure
    recommendation: Recommendation
    evidence: portfolio_reads.PilotEvidence
    forecast: Forecast | None
    decisions: tuple[RecordedDecision, ...]
    as_of: datetime

    @property
    def key(self) -> str:
        """Returns the experiment's key."""
        return self.experiment.spec.key


def forecast_window(pilot_age_days: float, horizon_days: int) -> float:
    """Returns how many days after the start the adoption chart's forecast reaches: three times the
    pilot's age (at least 90 days), never beyond the decision rules' forecast horizon."""
    return float(min(horizon_days, max(90.0, 3 * pilot_age_days)))


def adoption_forecast_band(evidence: portfolio_reads.PilotEvidence, pilot: PilotSpec) -> Forecast | None:
    """Returns the Bass forecast with its band on `FORECAST_POINTS` days, None when no fit could be made."""
    if evidence.forecast.parameters is None:
        return None
    end = forecast_window(evidence.adoption.pilot_age_days, pilot.decision.forecast_horizon_days)
    return evidence.forecast.forecast([end * i / (FORECAST_POINTS - 1) for i in range(FORECAST_POINTS)])


def evaluate(store: Store, experiment_key: str, *, as_of: datetime | None = None) -> Evaluation:
    """Returns what the board sees of the experiment now (raises StoreError when it is unknown)."""
    t = as_of or datetime.now(UTC)
    stored = store.experiment(experiment_key)
    pilot = store.pilot(stored.pilot_key)
    results = build_results(
        stored.spec, stored.pilot_key, store.experiment_statistics(experiment_key), store.last_update(experiment_key)
    )
    exposure = exposure_reads.exposure(store, stored, sum(exposure_reads.units_of(results).values()), as_of=t)
    evidence = portfolio_reads.pilot_evidence(store, pilot)
    advice = portfolio_reads.recommendation(pilot, stored.spec, results, exposure, lambda: evidence.scorecard)
    return Evaluation(
        pilot=pilot,
        experiment=stored,
        results=results,
        comparisons=exposure_reads.comparisons(results),
        exposure=exposure,
        recommendation=advice,
        evidence=evidence,
        forecast=adoption_forecast_band(evidence, pilot),
        decisions=decision_history(store, pilot.key, experiment_key),
        as_of=t,
    )


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def snapshot_content(evaluation: Evaluation) -> dict[str, Any]:
    """Returns the JSON content of what the board sees: the results with their analysis, exposure,
    recommendation and reasons, scorecard, citizens' voice and adoption with its forecast.

    The content is normalised through canonical JSON (a NaN becomes null), so what is stored is
    exactly what is hashed.
    """
    ev = evaluation
    spec = ev.experiment.spec
    pilot = ev.pilot
    voice = ev.evidence.voice
    adoption = ev.evidence.adoption
    fit = ev.evidence.forecast
    content = {
        "schema": SNAPSHOT_SCHEMA,
        "as_of": _iso(ev.as_of),
        "pilot": {
            "key": pilot.key,
            "name": localized(pilot.name),
            "stage": pilot.stage,
            "owner": pilot.owner,
            "next_decision": _iso(pilot.next_decision),
            "start": _iso(pilot.start),
            "budget": pilot.budget,
            "currency": pilot.currency,
        },
        "experiment": {
            "key": spec.key,
            "name": names(spec),
            "status": ev.experiment.status,
            "hypothesis": localized(spec.hypothesis),
            "control": spec.control,
            "primary": spec.primary,
            "guardrails": [{"metric": g.metric, "tolerance": g.tolerance} for g in spec.guardrails],
            "metrics": [
                {"key": mk.key, "type": mk.type, "higher_is_better": mk.higher_is_better, "name": names(mk)}
                for mk in spec.metrics
            ],
            "engine": spec.analysis.engine,
            "difference": spec.analysis.difference,
            "alpha": spec.analysis.alpha,
            "correction": spec.analysis.correction,
            "minimum_effect": pilot.decision.minimum_effect,
            "planned_sample": spec.planned_sample,
            "started_at": _iso(ev.experiment.started_at),
            "stopped_at": _iso(ev.experiment.stopped_at),
        },
        "results": dict(ev.results),
        "exposure": ev.exposure._asdict(),
        "recommendation": {
            "outcome": ev.recommendation.outcome,
            "variant": ev.recommendation.variant,
            "expected_days": ev.recommendation.expected_days,
            "reasons": [r.to_json() for r in ev.recommendation.reasons],
        },
        "scorecard": {
            axis.name: {"score": axis.score, "criteria": [c.to_json() for c in axis.criteria]}
            for axis in ev.evidence.scorecard
        },
        "voice": {
            "nps": voice.nps,
            "nps_respondents": voice.nps_respondents,
            "sus_mean": voice.sus_mean,
            "sus_respondents": voice.sus_respondents,
            "rating_mean": voice.rating.mean,
            "rating_counts": list(voice.rating.counts),
            "comments": voice.comment_count,
            "ideas": voice.idea_count,
            "themes": [list(t) for t in voice.themes],
            "top_ideas": [list(i) for i in voice.top_ideas],
        },
        "adoption": {
            "active_participants": adoption.active_participants,
            "pilot_age_days": adoption.pilot_age_days,
            "start": _iso(adoption.start),
            "cumulative_adopters": [list(p) for p in adoption.cumulative_adopters],
            "bass": None
            if fit.parameters is None
            else dict(zip(("innovation", "imitation", "market_potential"), fit.parameters, strict=True)),
            "bass_error": fit.error,
            "forecast": None if ev.forecast is None else ev.forecast._asdict(),
        },
    }
    normalised: dict[str, Any] = orjson.loads(canonical_json(content))
    return normalised


def digest_of(content: Mapping[str, Any]) -> str:
    """Returns the SHA-256 (hex) of the canonical JSON of the content."""
    return hashlib.sha256(canonical_json(content)).hexdigest()


def take_snapshot(store: Store, evaluation: Evaluation) -> Snapshot:
    """Returns the stored snapshot of exactly what the evaluation shows, with its digest."""
    content = snapshot_content(evaluation)
    digest = digest_of(content)
    taken = now()
    with store.session() as s:
        row = m.ResultsSnapshot(
            pilot_key=evaluation.pilot.key,
            experiment_key=evaluation.key,
            taken_at=taken,
            content=content,
            digest=digest,
        )
        s.add(row)
        s.flush()
        snapshot_id = row.id
    return Snapshot(snapshot_id, evaluation.pilot.key, evaluation.key, taken, digest, content)


def snapshot(store: Store, snapshot_id: int) -> Snapshot:
    """Returns a stored snapshot (raises StoreError when there is none with that id)."""
    with store.session() as s:
        row = s.get(m.ResultsSnapshot, snapshot_id)
        if row is None:
            raise StoreError(f"snapshot == {snapshot_id}, no such snapshot")
        return Snapshot(
            row.id, row.pilot_key, row.experiment_key, catalog.as_utc(row.taken_at) or now(), row.digest, row.content
        )


def verify_snapshot(store: Store, snapshot_id: int) -> bool:
    """Returns whether the stored content still hashes to the digest recorded with it."""
    stored = snapshot(store, snapshot_id)
    return digest_of(stored.content) == stored.digest


def _members(members: Sequence[str] | str) -> tuple[str, ...]:
    """Returns the members present, one per entry (or per line of a text), blanks dropped."""
    names = members.splitlines() if isinstance(members, str) else list(members)
    return tuple(name.strip() for name in names if name.strip())


def record_decision(
    store: Store,
    snapshot_id: int,
    outcome: str,
    rationale: str,
    members: Sequence[str] | str,
    conditions: str = "",
    recorded_by: str = "",
) -> RecordedDecision:
    """Returns the decision appended against the snapshot; closes a stopped experiment (module docstring).

    Raises StoreError naming the field for an unknown outcome, an empty rationale, no member
    present, no recorder, an unknown snapshot or a draft experiment.
    """
    if outcome not in DECISION_OUTCOMES:
        raise StoreError(f"outcome == {outcome!r}, must be one of {', '.join(DECISION_OUTCOMES)}")
    if not rationale.strip():
        raise StoreError("rationale == '', must say why the board decided (it is kept with the decision)")
    present = _members(members)
    if not present:
        raise StoreError("members == [], must name at least one board member present")
    if not recorded_by.strip():
        raise StoreError("recorded_by == '', must name who records the decision")
    seen = snapshot(store, snapshot_id)
    experiment = None if seen.experiment_key is None else store.experiment(seen.experiment_key)
    if experiment is not None and experiment.status == "draft":
        raise StoreError(f"experiment {seen.experiment_key!r} is a draft: it has measured nothing to decide on")
    advice = str(seen.content.get("recommendation", {}).get("outcome", ""))
    at = now()
    with store.session() as s:
        row = m.Decision(
            pilot_key=seen.pilot_key,
            experiment_key=seen.experiment_key,
            snapshot_id=seen.id,
            outcome=outcome,
            recommendation=advice,
            rationale=rationale.strip(),
            members=list(present),
            conditions=conditions.strip(),
            recorded_by=recorded_by.strip(),
            at=at,
        )
        s.add(row)
        s.flush()
        decision_id = row.id
    if experiment is not None and experiment.status == "stopped":
        store.set_status(
            experiment.spec.key,
            "decided",
            actor=recorded_by.strip(),
            reason=f"board decision {decision_id}: {outcome}",
        )
    return RecordedDecision(
        decision_id,
        seen.pilot_key,
        seen.experiment_key,
        seen.id,
        seen.digest,
        outcome,
        advice,
        rationale.strip(),
        present,
        conditions.strip(),
        recorded_by.strip(),
        at,
    )


def decision_history(store: Store, pilot: str, experiment: str | None = None) -> tuple[RecordedDecision, ...]:
    """Returns the pilot's decisions (of one experiment, or all), newest first, with their snapshots' digests."""
    d, r = m.Decision, m.ResultsSnapshot
    q = (
        select(
            d.id,
            d.pilot_key,
            d.experiment_key,
            d.snapshot_id,
            r.digest,
            d.outcome,
            d.recommendation,
            d.rationale,
            d.members,
            d.conditions,
            d.recorded_by,
            d.at,
        )
        .join(r, r.id == d.snapshot_id)
        .where(d.pilot_key == pilot)
        .order_by(d.id.desc())
    )
    if experiment is not None:
        q = q.where(d.experiment_key == experiment)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    return tuple(
        RecordedDecision(
            id=row.id,
            pilot_key=row.pilot_key,
            experiment_key=row.experiment_key,
            snapshot_id=row.snapshot_id,
            digest=row.digest,
            outcome=row.outcome,
            recommendation=row.recommendation,
            rationale=row.rationale,
            members=tuple(str(name) for name in row.members),
            conditions=row.conditions,
            recorded_by=row.recorded_by,
            at=catalog.as_utc(row.at) or now(),
        )
        for row in rows
    )
