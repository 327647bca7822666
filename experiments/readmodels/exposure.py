"""Experiment results and exposure: the stored sufficient statistics summed over partitions, the pace
towards the planned sample, and the history behind the monitoring chart, all in event time.

The workers keep each experiment's statistics by the day its participants were first exposed
(`ExposureDay`, from the events' own times): the pace is the participants first exposed a day over the
last `EXPOSURE_WINDOW_DAYS` complete days, and the history at a day is the sum of the days up to it (the
participants exposed by then, with their outcomes as measured now). A backlog processed in an hour
shows as the days it covers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, select

from experiments import models as m
from experiments.readmodels.catalog import as_utc
from experiments.registry import ExperimentSpec
from experiments.results import analysis_type, metric_data
from experiments.stats import analyze_dict
from experiments.stats.power import days_to_reach
from experiments.stats.result import REPORTED_FIELDS
from experiments.store import UNITS, Statistic, Store, StoredExperiment

#: The exposure rate is measured over this many most recent days (fewer when the experiment is younger).
EXPOSURE_WINDOW_DAYS = 7
#: Looks drawn on the monitoring chart (the latest day always included).
MONITORING_LOOKS = 120

_STAT_COLUMNS = ("n", "sum", "sum_squares", "x_sum", "x_sum_squares", "sum_products")

Statistics = dict[str, dict[str, Statistic]]


def _statistic(values: Sequence[Any]) -> Statistic:
    return Statistic(int(values[0] or 0), *(float(v or 0.0) for v in values[1:]))


def experiment_statistics(store: Store, experiments: Iterable[str] | None = None) -> dict[str, Statistics]:
    """Returns {experiment: {metric: {variant: Statistic}}} for everyone (segment ""), summed over partitions."""
    a = m.Aggregate
    q = (
        select(a.experiment_key, a.metric, a.variant, *(func.sum(getattr(a, c)) for c in _STAT_COLUMNS))
        .where(a.segment == "")
        .group_by(a.experiment_key, a.metric, a.variant)
    )
    if experiments is not None:
        q = q.where(a.experiment_key.in_(list(experiments)))
    out: dict[str, Statistics] = defaultdict(lambda: defaultdict(dict))
    with store.engine.connect() as conn:
        for key, metric, variant, *values in conn.execute(q):
            out[key][metric][variant] = _statistic(values)
    return {key: dict(stats) for key, stats in out.items()}


def last_updates(store: Store) -> dict[str, datetime]:
    """Returns when each experiment's aggregates last changed."""
    a = m.Aggregate
    with store.engine.connect() as conn:
        rows = conn.execute(select(a.experiment_key, func.max(a.updated_at)).group_by(a.experiment_key)).all()
    return {key: t for key, at in rows if (t := as_utc(at)) is not None}


class ReportedComparison(NamedTuple):
    """One row of the engine's `analysis.comparisons`, as a typed record (fields of docs/statistics.md)."""

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


def comparisons(results: Mapping[str, Any]) -> tuple[ReportedComparison, ...]:
    """Returns the comparison rows of a results document's analysis."""
    return tuple(
        ReportedComparison(*(row.get(name) for name in REPORTED_FIELDS)) for row in results["analysis"]["comparisons"]
    )


def units_of(results: Mapping[str, Any]) -> dict[str, int]:
    """Returns the exposed participants per variant of a results document."""
    return {variant: int(v["units"]) for variant, v in results["variants"].items()}


class Exposure(NamedTuple):
    """How far an experiment is towards its planned sample and how fast it gets there, in event time.

    `units_per_day` is the participants first exposed a day over the last `rate_days` complete days
    (at most `EXPOSURE_WINDOW_DAYS`; 0 unless running); None when not a single complete day of first
    exposures is known yet ("not enough data yet"). `days_to_reach` is None when the plan sets no
    sample, the pace is unknown or nobody is being exposed.
    """

    units: int
    planned_sample: int | None
    units_per_day: float | None
    days_running: float | None
    days_to_reach: float | None
    rate_days: int = 0

    @property
    def progress(self) -> float | None:
        """Returns the share of the planned sample exposed (capped at 1), None without a plan."""
        if not self.planned_sample:
            return None
        return min(1.0, self.units / self.planned_sample)


def first_exposures(store: Store, experiments: Sequence[str], since: date) -> dict[str, dict[date, int]]:
    """Returns, per experiment, its participants first exposed each day from `since` (event time)."""
    e = m.ExposureDay
    q = (
        select(e.experiment_key, e.day, func.sum(e.n))
        .where(e.metric == UNITS, e.day >= since, e.experiment_key.in_(list(experiments)))
        .group_by(e.experiment_key, e.day)
    )
    out: dict[str, dict[date, int]] = defaultdict(dict)
    with store.engine.connect() as conn:
        for key, day, n in conn.execute(q):
            out[key][day] = int(n or 0)
    return dict(out)


def _first_days(store: Store, experiments: Sequence[str]) -> dict[str, date]:
    """Returns the day each experiment's first participant was exposed (event time)."""
    e = m.ExposureDay
    q = (
        select(e.experiment_key, func.min(e.day))
        .where(e.metric == UNITS, e.n > 0, e.experiment_key.in_(list(experiments)))
        .group_by(e.experiment_key)
    )
    with store.engine.connect() as conn:
        return {key: day for key, day in conn.execute(q)}


def exposures(
    store: Store,
    experiments: Sequence[StoredExperiment],
    units: Mapping[str, int],
    *,
    as_of: datetime | None = None,
) -> dict[str, Exposure]:
    """Returns the exposure of each experiment given its current exposed participants `units`.

    The pace is the participants first exposed over the last `EXPOSURE_WINDOW_DAYS` complete days (UTC,
    event time; today's are still arriving), or over the complete days since the first exposure when
    there are fewer, divided by those days; a stopped experiment exposes nobody (pace 0).
    """
    now = as_of or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    running = [e.spec.key for e in experiments if e.status == "running"]
    since = today - timedelta(days=EXPOSURE_WINDOW_DAYS)
    by_day = first_exposures(store, running, since) if running else {}
    first = _first_days(store, running) if running else {}
    out: dict[str, Exposure] = {}
    for e in experiments:
        key = e.spec.key
        exposed = units.get(key, 0)
        end = e.stopped_at if e.status in ("stopped", "decided") and e.stopped_at else now
        days_running = None if e.started_at is None else max(0.0, (end - e.started_at).total_seconds() / 86400)
        rate: float | None = 0.0
        span = 0
        if e.status == "running":
            start = max(since, first.get(key, today))
            span = (today - start).days
            counted = by_day.get(key, {})
            rate = sum(n for day, n in counted.items() if start <= day < today) / span if span > 0 else None
        planned = e.spec.planned_sample
        remaining = None if planned is None or rate is None else days_to_reach(planned, exposed, rate)
        out[key] = Exposure(exposed, planned, rate, days_running, remaining, span)
    return out


def exposure(store: Store, experiment: StoredExperiment, units: int, *, as_of: datetime | None = None) -> Exposure:
    """Returns one experiment's exposure (see `exposures`)."""
    return exposures(store, [experiment], {experiment.spec.key: units}, as_of=as_of)[experiment.spec.key]


def history_series(
    store: Store, experiment: str, metrics: Sequence[str] | None = None
) -> tuple[tuple[date, Statistics], ...]:
    """Returns, day by day of first exposure, the statistics of the participants exposed up to that day,
    summed over partitions (every day on which someone was first exposed is listed)."""
    e = m.ExposureDay
    q = (
        select(e.metric, e.variant, e.day, *(func.sum(getattr(e, c)) for c in _STAT_COLUMNS))
        .where(e.experiment_key == experiment)
        .group_by(e.metric, e.variant, e.day)
        .order_by(e.day)
    )
    if metrics is not None:
        q = q.where(e.metric.in_(list(metrics)))
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    totals: dict[str, dict[str, list[float]]] = defaultdict(dict)
    series: list[tuple[date, Statistics]] = []
    for i, (metric, variant, day, *values) in enumerate(rows):
        running = totals[metric].setdefault(variant, [0.0] * len(_STAT_COLUMNS))
        for c, value in enumerate(values):
            running[c] += float(value or 0.0)
        if i + 1 == len(rows) or rows[i + 1][2] != day:
            series.append((day, {k: {v: _statistic(sums) for v, sums in kept.items()} for k, kept in totals.items()}))
    return tuple(series)


class MonitoringPoint(NamedTuple):
    """The engine's interval for one (metric, treatment) on the participants first exposed up to a day."""

    day: date
    metric: str
    variant: str
    units: int
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    error: str | None


def monitoring(
    store: Store, experiment: ExperimentSpec, metrics: Sequence[str] | None = None, looks: int = MONITORING_LOOKS
) -> tuple[MonitoringPoint, ...]:
    """Returns the effect and interval of each (metric, treatment) day by day of first exposure.

    At most `looks` days are analysed (evenly spaced, the latest included), in one request to the
    engine with every look as a metric, under the experiment's engine, difference and alpha. The
    intervals are the engine's at each look; a multiple-comparison correction changes only
    p-values, so none is applied here.
    """
    wanted = [mk.key for mk in experiment.metrics if metrics is None or mk.key in metrics]
    series = history_series(store, experiment.key, [UNITS, *wanted])
    if not series:
        return ()
    step = max(1, -(-len(series) // looks))
    picked = [*series[len(series) - 1 :: -step]][::-1]
    weights = experiment.variant_weights
    request_metrics: list[dict[str, Any]] = []
    index: list[tuple[date, str, int]] = []
    for day, stats in picked:
        units = stats.get(UNITS, {})
        exposed = sum(units[v].n for v in weights if v in units)
        for key in wanted:
            spec = experiment.metric(key)
            data = {v: metric_data(spec, stats.get(key, {}).get(v)) for v in weights}
            request_metrics.append({"name": f"{key}@{len(index)}", "type": analysis_type(spec), "data": data})
            index.append((day, key, exposed))
    plan = experiment.analysis
    analysis = analyze_dict(
        {
            "engine": plan.engine,
            "difference": plan.difference,
            "relative_interval": plan.relative_interval,
            "alpha": plan.alpha,
            "sequential_tuning": plan.sequential_tuning,
            "correction": "none",
            "control": experiment.control,
            "variants": {v: {"units": 0, "weight": w} for v, w in weights.items()},
            "metrics": request_metrics,
        }
    )
    points = []
    for row in analysis["comparisons"]:  # type: ignore[attr-defined]
        day, key, exposed = index[int(row["metric"].rsplit("@", 1)[1])]
        points.append(
            MonitoringPoint(
                day, key, row["variant"], exposed, row["effect"], row["ci_low"], row["ci_high"], row["error"]
            )
        )
    return tuple(points)
