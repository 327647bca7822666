"""A pilot's timeline: its stage gates (prototype → pilot → scale), its experiments started and stopped,
the changes of its plan, the board's decisions, and the decisions' summaries published to citizens.

Two versions of one read:

- the lab's (`pilot_timeline(store, key)`): everything, plan changes and decisions with who and why;
- the citizens' (`pilot_timeline(store, key, public=True)`): the stage gates, the experiments started
  and stopped, and only the decisions whose summary the lab published ("you said, we did"); no name of
  a lab member, no plan detail, no unpublished decision.

Every entry is a small immutable record with its time (`at`, UTC); the timeline lists them oldest first.
The stage gates and experiments' statuses come from the plan history (`plan_changes`, append-only),
where `rhizome pilot apply` and the console record every change with its author and reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from experiments import models as m
from experiments.i18n import Language
from experiments.readmodels.catalog import as_utc
from experiments.registry import STAGES, Stage
from experiments.store import Store, StoreError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class StageGate:
    """The pilot entered `stage` (from `previous`; None when the pilot was registered at it)."""

    at: datetime
    stage: Stage
    previous: Stage | None
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class ExperimentStarted:
    """An experiment started measuring (`restarted`: again, after a stop)."""

    at: datetime
    experiment: str
    restarted: bool
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class ExperimentStopped:
    """An experiment stopped measuring."""

    at: datetime
    experiment: str
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlanChanged:
    """A change of the pilot's or an experiment's plan (`experiment` None: the pilot's own fields).
    `locked` marks a pre-registered field, `forced` a change of one made while the experiment ran."""

    at: datetime
    experiment: str | None
    field: str
    old: Any
    new: Any
    locked: bool
    forced: bool
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class BoardDecision:
    """A decision of the board, as recorded (the lab's timeline only)."""

    at: datetime
    decision_id: int
    experiment: str | None
    outcome: str
    recommendation: str
    rationale: str
    conditions: str
    members: tuple[str, ...]
    recorded_by: str


@dataclass(frozen=True, slots=True)
class PublishedDecision:
    """A board decision's summary published to citizens. `at` is when it was published, `decided_at`
    when the board decided."""

    at: datetime
    decision_id: int
    experiment: str | None
    outcome: str
    decided_at: datetime
    summary_fr: str
    summary_en: str
    published_by: str

    def summary(self, language: Language) -> str:
        """Returns the summary in the language, the other one when it is empty in that language."""
        first, other = (self.summary_fr, self.summary_en) if language == "fr" else (self.summary_en, self.summary_fr)
        return first or other


TimelineEntry = StageGate | ExperimentStarted | ExperimentStopped | PlanChanged | BoardDecision | PublishedDecision


@dataclass(frozen=True, slots=True)
class Timeline:
    """A pilot's timeline: its current stage, the stages it passed (in order) and its entries, oldest first."""

    pilot: str
    stage: Stage
    entries: tuple[TimelineEntry, ...]
    public: bool

    @property
    def gates(self) -> tuple[StageGate, ...]:
        """Returns the stage gates, oldest first."""
        return tuple(e for e in self.entries if isinstance(e, StageGate))

    @property
    def stages_reached(self) -> tuple[Stage, ...]:
        """Returns the stages of `STAGES` up to the current one, in their order (prototype → pilot → scale)."""
        return STAGES[: STAGES.index(self.stage) + 1]


def _stage(value: Any) -> Stage | None:
    return value if value in STAGES else None


def _at(value: datetime | None) -> datetime:
    return as_utc(value) or _EPOCH


def _plan_entries(rows: Iterable[m.PlanChange], public: bool) -> list[TimelineEntry]:
    """Returns the entries the plan history gives: stage gates, experiments' starts and stops, and (the
    lab's timeline) every other change."""
    out: list[TimelineEntry] = []
    for row in rows:
        at = _at(row.at)
        if row.experiment_key is None and row.field == "stage":
            stage = _stage(row.new)
            if stage is not None:
                out.append(StageGate(at, stage, _stage(row.old), row.actor, row.reason))
            continue
        if row.experiment_key is not None and row.field == "status":
            if row.new == "running":
                out.append(ExperimentStarted(at, row.experiment_key, row.old == "stopped", row.actor, row.reason))
                continue
            if row.new == "stopped":
                out.append(ExperimentStopped(at, row.experiment_key, row.actor, row.reason))
                continue
        if not public:
            out.append(
                PlanChanged(
                    at, row.experiment_key, row.field, row.old, row.new, row.locked, row.forced, row.actor, row.reason
                )
            )
    return out


def pilot_timeline(store: Store, pilot: str, *, public: bool = False) -> Timeline:
    """Returns the pilot's timeline, the lab's or (`public`) the citizens'; raises StoreError for an
    unknown pilot."""
    with store.session() as s:
        row = s.get(m.Pilot, pilot)
        if row is None:
            raise StoreError(f"pilot == {pilot!r}, no such pilot")
        stage: Stage = _stage(row.stage) or "pilot"
        changes = list(s.scalars(select(m.PlanChange).where(m.PlanChange.pilot_key == pilot).order_by(m.PlanChange.id)))
        experiments = s.execute(
            select(m.Experiment.key, m.Experiment.started_at, m.Experiment.created_at).where(
                m.Experiment.pilot_key == pilot
            )
        ).all()
        decisions = list(s.scalars(select(m.Decision).where(m.Decision.pilot_key == pilot).order_by(m.Decision.id)))
        summaries = {
            r.decision_id: r for r in s.scalars(select(m.DecisionSummary).where(m.DecisionSummary.pilot_key == pilot))
        }
    entries = _plan_entries(changes, public)
    # An experiment created running has no status change for its start: its start is its row's.
    started_by_change = {e.experiment for e in entries if isinstance(e, ExperimentStarted) and not e.restarted}
    created_by = {
        c.experiment_key: (c.actor, c.reason) for c in changes if c.experiment_key is not None and c.field == "variants"
    }
    for key, started_at, _created in experiments:
        if started_at is not None and key not in started_by_change:
            actor, reason = created_by.get(key, ("", ""))
            entries.append(ExperimentStarted(_at(started_at), key, False, actor, reason))
    for d in decisions:
        summary = summaries.get(d.id)
        if summary is not None:
            entries.append(
                PublishedDecision(
                    _at(summary.published_at),
                    d.id,
                    d.experiment_key,
                    d.outcome,
                    _at(d.at),
                    summary.summary_fr,
                    summary.summary_en,
                    summary.published_by,
                )
            )
        if not public:
            entries.append(
                BoardDecision(
                    _at(d.at),
                    d.id,
                    d.experiment_key,
                    d.outcome,
                    d.recommendation,
                    d.rationale,
                    d.conditions,
                    tuple(str(name) for name in d.members),
                    d.recorded_by,
                )
            )
    # Oldest first; at one time the order they happened in: a gate, a start, changes, a stop, decisions.
    order = {StageGate: 0, ExperimentStarted: 1, PlanChanged: 2, ExperimentStopped: 3, BoardDecision: 4}
    entries.sort(key=lambda e: (e.at, order.get(type(e), 5)))
    if public:
        # Citizens see what happened, not who in the lab did it nor the lab's internal reasons.
        entries = [_anonymous(e) for e in entries]
    return Timeline(pilot, stage, tuple(entries), public)


def _anonymous(entry: TimelineEntry) -> TimelineEntry:
    """Returns the entry without the lab member's name and internal reason."""
    if isinstance(entry, PublishedDecision):
        return replace(entry, published_by="")
    if isinstance(entry, StageGate | ExperimentStarted | ExperimentStopped):
        return replace(entry, actor="", reason="")
    return entry
