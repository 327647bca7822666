"""The lab's registry: what a pilot is, what it experiments on, and what go means for it.

These are the typed records every layer shares. They are built from a pilot spec file by
`experiments.specs.parse_pilot_spec` and persisted by `experiments.store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Stage = Literal["prototype", "pilot", "scale"]
ConsentMode = Literal["required", "collected_by_service"]
MetricType = Literal["proportion", "mean", "ratio", "retention"]
Aggregate = Literal["sum", "count"]
Engine = Literal["frequentist", "sequential", "bayesian"]
Difference = Literal["relative", "absolute"]
Correction = Literal["none", "holm", "bh"]
#: A relative difference's interval: gbstats' delta method, or the calibrated one (Fieller's theorem).
RelativeInterval = Literal["gbstats", "log"]
ExperimentStatus = Literal["draft", "running", "stopped", "decided"]

STAGES: tuple[Stage, ...] = ("prototype", "pilot", "scale")
METRIC_TYPES: tuple[MetricType, ...] = ("proportion", "mean", "ratio", "retention")
EXPERIMENT_STATUSES: tuple[ExperimentStatus, ...] = ("draft", "running", "stopped", "decided")
#: The action name a retention metric may use to mean "any usage event".
ANY_ACTION = "*"
#: Experiment, variant, metric and action names (also enforced on events).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
#: Pilot keys: they are also the pilot_id of events.
PILOT_KEY_PATTERN = r"^[a-z0-9][a-z0-9\-]*$"
NAME_MAX_LENGTH = 64


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """How one metric is computed per participant, from the participant's first exposure.

    - proportion: 1 when the participant has at least one `action` event in the window, else 0.
    - mean: the participant's total of `action` in the window (`aggregate`: sum of `value`, a null
      value counting 0, or count of events); 0 when there is none.
    - ratio: total of `action` (`aggregate`) over total of `denominator` (`denominator_aggregate`),
      analysed per variant as sum over sum with the delta method.
    - retention: 1 when the participant has an `action` event (or any usage for `*`) during days
      [7 * week, 7 * week + 7) after first exposure, else 0.

    `covariate_days` (mean metrics) adds the same quantity measured over the days before first
    exposure as the CUPED pre-period covariate.
    """

    key: str
    type: MetricType
    action: str
    window_days: float = 7.0
    aggregate: Aggregate = "sum"
    denominator: str | None = None
    denominator_aggregate: Aggregate = "count"
    week: int | None = None
    covariate_days: float | None = None
    higher_is_better: bool = True
    description: str = ""

    @property
    def horizon_days(self) -> float:
        """Returns how many days after first exposure can still change this metric's value."""
        if self.type == "retention":
            return 7.0 * ((self.week or 0) + 1)
        return self.window_days

    @property
    def actions(self) -> frozenset[str]:
        """Returns the usage actions this metric reads."""
        names = {self.action}
        if self.denominator:
            names.add(self.denominator)
        return frozenset(names)


@dataclass(frozen=True, slots=True)
class Guardrail:
    """A metric that must not degrade significantly; `tolerance` is the degradation accepted
    (in the experiment's difference scale, so 0.02 is 2 % under a relative difference)."""

    metric: str
    tolerance: float = 0.0


@dataclass(frozen=True, slots=True)
class AnalysisPlan:
    engine: Engine = "frequentist"
    difference: Difference = "relative"
    alpha: float = 0.05
    correction: Correction = "none"
    sequential_tuning: int = 5000
    #: Pilot decisions rest on the calibrated interval unless the plan asks for gbstats parity.
    relative_interval: RelativeInterval = "log"


@dataclass(frozen=True, slots=True)
class Layer:
    """Mutually exclusive experiments share a layer; each claims a range of the layer's [0, 1)."""

    name: str
    start: float = 0.0
    end: float = 1.0


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    key: str
    variants: tuple[tuple[str, float], ...]
    metrics: tuple[MetricSpec, ...]
    primary: str
    hypothesis: str = ""
    salt: str = ""
    allocation: float = 1.0
    layer: Layer | None = None
    secondary: tuple[str, ...] = ()
    guardrails: tuple[Guardrail, ...] = ()
    analysis: AnalysisPlan = field(default_factory=AnalysisPlan)
    minimum_detectable_effect: float | None = None
    #: Exposed participants wanted across all variants before the analysis is final.
    planned_sample: int | None = None
    planned_days: int | None = None

    @property
    def control(self) -> str:
        """Returns the control variant: the first one declared."""
        return self.variants[0][0]

    @property
    def variant_weights(self) -> dict[str, float]:
        return dict(self.variants)

    def metric(self, key: str) -> MetricSpec:
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(key)


@dataclass(frozen=True, slots=True)
class DecisionRules:
    """What go means, written before the pilot starts. Every target is optional.

    Evidence: the primary metric must be significantly better than `minimum_effect`; no guardrail
    may degrade beyond its tolerance. Economic: `min_active_participants`, `max_cost_per_active`
    (budget / active participants), `min_adopters_forecast` (Bass forecast of cumulative adopters
    `forecast_horizon_days` after the pilot start). Social: `min_district_reach` (share of the
    target districts with active participants), `max_reach_gap` (1 - worst / best adoption rate
    among target districts). Human: `min_nps`, `min_sus`, `min_rating`.
    """

    minimum_effect: float = 0.0
    min_active_participants: int | None = None
    max_cost_per_active: float | None = None
    min_adopters_forecast: int | None = None
    forecast_horizon_days: int = 365
    min_district_reach: float | None = None
    max_reach_gap: float | None = None
    min_nps: float | None = None
    min_sus: float | None = None
    min_rating: float | None = None


@dataclass(frozen=True, slots=True)
class PilotSpec:
    key: str
    name: str
    stage: Stage = "pilot"
    consent: ConsentMode = "required"
    owner: str = ""
    description: str = ""
    budget: float | None = None
    currency: str = "EUR"
    #: Citizens the pilot could reach (the market-potential prior of the adoption forecast).
    population: int | None = None
    districts: tuple[str, ...] = ()
    #: Citizens per target district, when known (reach is then a rate, not a count).
    district_population: tuple[tuple[str, int], ...] = ()
    #: Usage `properties` that segment every figure (district, channel, age_band, ...).
    segments: tuple[str, ...] = ("district", "channel")
    #: The action that marks a participant as activated.
    key_action: str | None = None
    #: Share of participants held out of every experiment of the pilot.
    holdout: float = 0.0
    start: date | None = None
    next_decision: date | None = None
    experiments: tuple[ExperimentSpec, ...] = ()
    decision: DecisionRules = field(default_factory=DecisionRules)

    def experiment(self, key: str) -> ExperimentSpec:
        for e in self.experiments:
            if e.key == key:
                return e
        raise KeyError(key)
