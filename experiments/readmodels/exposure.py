"""Experiment results and exposure: the stored sufficient statistics summed over partitions, the pace
towards the planned sample, and the hourly history behind the sequential monitoring chart.

The hourly history is cumulative per partition: the total at hour h is the sum over partitions of each
partition's latest row at or before h, computed as a running sum of each partition's increments (window
functions), so one query gives every hour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
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
#: Looks drawn on the sequential monitoring chart (the latest hour always included).
MONITORING_LOOKS = 120

#: An exposure rate is measured over a day at least: a few hours say little of a day's arrivals
#: (citizens come by day), and a backfilled history lands within the hour it is processed.
_SHORTEST_SPAN_DAYS = 1.0
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
    """How far an experiment is towards its planned sample and how fast it gets there.

    `units_per_day` is the rate over the last `EXPOSURE_WINDOW_DAYS` days (0 unless running);
    `days_to_reach` is None when the plan sets no sample or nobody is being exposed.
    """

    units: int
    planned_sample: int | None
    units_per_day: float
    days_running: float | None
    days_to_reach: float | None

    @property
    def progress(self) -> float | None:
        """Returns the share of the planned sample exposed (capped at 1), None without a plan."""
        if not self.planned_sample:
            return None
        return min(1.0, self.units / self.planned_sample)


def _units_at(store: Store, experiments: Sequence[str], at: datetime) -> dict[str, int]:
    """Returns each experiment's exposed participants at `at`: per partition and variant, the
    latest `$units` history row at or before it, summed."""
    h = m.AggregateHistory
    latest = (
        select(h.experiment_key, h.variant, h.partition, func.max(h.hour).label("hour"))
        .where(h.metric == UNITS, h.hour <= at, h.experiment_key.in_(list(experiments)))
        .group_by(h.experiment_key, h.variant, h.partition)
        .subquery()
    )
    q = (
        select(h.experiment_key, func.sum(h.n))
        .join(
            latest,
            (h.experiment_key == latest.c.experiment_key)
            & (h.variant == latest.c.variant)
            & (h.partition == latest.c.partition)
            & (h.hour == latest.c.hour),
        )
        .where(h.metric == UNITS)
        .group_by(h.experiment_key)
    )
    with store.engine.connect() as conn:
        return {key: int(n or 0) for key, n in conn.execute(q)}


def exposures(
    store: Store,
    experiments: Sequence[StoredExperiment],
    units: Mapping[str, int],
    *,
    as_of: datetime | None = None,
) -> dict[str, Exposure]:
    """Returns the exposure of each experiment given its current exposed participants `units`.

    The rate is (units now - units `EXPOSURE_WINDOW_DAYS` days ago) / those days, or over the days
    since the start when the experiment is younger; a stopped experiment exposes nobody (rate 0).
    """
    now = as_of or datetime.now(UTC)
    window = timedelta(days=EXPOSURE_WINDOW_DAYS)
    running = [e.spec.key for e in experiments if e.status == "running"]
    before = _units_at(store, running, now - window) if running else {}
    out: dict[str, Exposure] = {}
    for e in experiments:
        key = e.spec.key
        exposed = units.get(key, 0)
        end = e.stopped_at if e.status in ("stopped", "decided") and e.stopped_at else now
        days_running = None if e.started_at is None else max(0.0, (end - e.started_at).total_seconds() / 86400)
        rate = 0.0
        if e.status == "running":
            span = EXPOSURE_WINDOW_DAYS if days_running is None else min(EXPOSURE_WINDOW_DAYS, days_running)
            rate = max(0.0, exposed - before.get(key, 0)) / max(span, _SHORTEST_SPAN_DAYS)
        planned = e.spec.planned_sample
        remaining = None if planned is None else days_to_reach(planned, exposed, rate)
        out[key] = Exposure(exposed, planned, rate, days_running, remaining)
    return out


def exposure(store: Store, experiment: StoredExperiment, units: int, *, as_of: datetime | None = None) -> Exposure:
    """Returns one experiment's exposure (see `exposures`)."""
    return exposures(store, [experiment], {experiment.spec.key: units}, as_of=as_of)[experiment.spec.key]


def history_series(
    store: Store, experiment: str, metrics: Sequence[str] | None = None
) -> tuple[tuple[datetime, Statistics], ...]:
    """Returns, hour by hour, the experiment's cumulative statistics summed over partitions.

    Every hour at which any partition wrote a row is listed; a (metric, variant) without a row that
    hour keeps its previous total, per the rule of `AggregateHistory`.
    """
    h = m.AggregateHistory
    own_rows = (h.metric, h.variant, h.partition)
    increments = select(
        h.metric,
        h.variant,
        h.hour,
        *(
            (
                getattr(h, c) - func.coalesce(func.lag(getattr(h, c)).over(partition_by=own_rows, order_by=h.hour), 0)
            ).label(c)
            for c in _STAT_COLUMNS
        ),
    ).where(h.experiment_key == experiment)
    if metrics is not None:
        increments = increments.where(h.metric.in_(list(metrics)))
    d = increments.subquery()
    totals = (
        select(
            d.c.metric,
            d.c.variant,
            d.c.hour,
            *(
                func.sum(func.sum(d.c[c])).over(partition_by=(d.c.metric, d.c.variant), order_by=d.c.hour)
                for c in _STAT_COLUMNS
            ),
        )
        .group_by(d.c.metric, d.c.variant, d.c.hour)
        .order_by(d.c.hour)
    )
    series: list[tuple[datetime, Statistics]] = []
    current: Statistics = defaultdict(dict)
    with store.engine.connect() as conn:
        for metric, variant, hour, *values in conn.execute(totals):
            at = as_utc(hour)
            assert at is not None
            if not series or series[-1][0] != at:
                if series:
                    series[-1] = (series[-1][0], {k: dict(v) for k, v in current.items()})
                series.append((at, {}))
            current[metric][variant] = _statistic(values)
    if series:
        series[-1] = (series[-1][0], {k: dict(v) for k, v in current.items()})
    return tuple(series)


class MonitoringPoint(NamedTuple):
    """The engine's interval for one (metric, treatment) as it stood at the end of an hour."""

    hour: datetime
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
    """Returns the effect and interval of each (metric, treatment) over time, from the hourly history.

    At most `looks` hours are analysed (evenly spaced, the latest included), in one request to the
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
    index: list[tuple[datetime, str, int]] = []
    for hour, stats in picked:
        units = stats.get(UNITS, {})
        exposed = sum(units[v].n for v in weights if v in units)
        for key in wanted:
            spec = experiment.metric(key)
            data = {v: metric_data(spec, stats.get(key, {}).get(v)) for v in weights}
            request_metrics.append({"name": f"{key}@{len(index)}", "type": analysis_type(spec), "data": data})
            index.append((hour, key, exposed))
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
        hour, key, exposed = index[int(row["metric"].rsplit("@", 1)[1])]
        points.append(
            MonitoringPoint(
                hour, key, row["variant"], exposed, row["effect"], row["ci_low"], row["ci_high"], row["error"]
            )
        )
    return tuple(points)
