"""What the decision console reads: every query it needs over the store, as immutable typed records.

The workers write their figures per Kafka partition; every query here sums the partitions in SQL
(GROUP BY), on SQLite and PostgreSQL alike. The hourly history is cumulative per partition: the
total at hour h is the sum over partitions of each partition's latest row at or before h, computed
as a running sum of each partition's increments (window functions), so one query gives every hour.

Statistics are recomputed from the stored sufficient statistics with the stats engine
(`experiments.results.build_results`), never from raw events. The recommendation of an experiment
comes from `experiments.decisions.recommend`; the scorecard it needs for go is built only when the
evidence says go (the only outcome the scorecard can change, rule 6 of `decisions`), so the
portfolio does not fit a Bass curve per pilot when nobody could go.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, select

from experiments import models as m
from experiments.adoption import BassFit, RetentionMatrix, daily_adoption, fit_bass, retention_matrix
from experiments.decisions import Outcome, Recommendation, recommend
from experiments.feedback import (
    RATING_SCALE,
    Idea,
    RatingSummary,
    VoiceSummary,
    nps,
    rating_summary,
    themes,
)
from experiments.registry import ExperimentSpec, ExperimentStatus, PilotSpec
from experiments.results import analysis_type, build_results, metric_data
from experiments.scorecard import AdoptionSummary, Scorecard, build_scorecard
from experiments.specs import experiment_from_dict, spec_from_dict
from experiments.stats import analyze_dict
from experiments.stats.power import days_to_reach
from experiments.stats.result import REPORTED_FIELDS
from experiments.store import UNITS, Statistic, Store, StoredExperiment, canonical_json

#: The exposure rate is measured over this many most recent days (fewer when the experiment is younger).
EXPOSURE_WINDOW_DAYS = 7
#: Comments and ideas read for the themes, most recent first.
THEME_TEXTS = 500
RECENT_COMMENTS = 20
TOP_IDEAS = 10
#: Looks drawn on the sequential monitoring chart (the latest hour always included).
MONITORING_LOOKS = 120

#: An exposure rate is measured over a day at least: a few hours say little of a day's arrivals
#: (citizens come by day), and a backfilled history lands within the hour it is processed.
_SHORTEST_SPAN_DAYS = 1.0
_STAT_COLUMNS = ("n", "sum", "sum_squares", "x_sum", "x_sum_squares", "sum_products")
_EMPTY = Statistic(0, 0.0, 0.0, 0.0, 0.0, 0.0)

Statistics = dict[str, dict[str, Statistic]]


def as_utc(t: datetime | None) -> datetime | None:
    """Returns the time in UTC (SQLite gives back naive datetimes, PostgreSQL the session's zone)."""
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _statistic(values: Sequence[Any]) -> Statistic:
    return Statistic(int(values[0] or 0), *(float(v or 0.0) for v in values[1:]))


# --- pilots and experiments ---------------------------------------------------------------------


#: Pilot specs already parsed, by the exact JSON they were parsed from (parsing is the slow part).
_PARSED: dict[bytes, PilotSpec] = {}
_PARSED_LIMIT = 4096


def _parsed(document: dict[str, Any]) -> PilotSpec:
    """Returns the spec of a pilot document, parsed once per distinct document."""
    text = canonical_json(document)
    spec = _PARSED.get(text)
    if spec is None:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        spec = _PARSED[text] = spec_from_dict(document)
    return spec


def pilot_specs(store: Store) -> dict[str, PilotSpec]:
    """Returns every pilot's spec with its experiments, by key, in two queries."""
    with store.engine.connect() as conn:
        pilots = conn.execute(select(m.Pilot.key, m.Pilot.spec).order_by(m.Pilot.key)).all()
        experiments = conn.execute(
            select(m.Experiment.pilot_key, m.Experiment.spec).order_by(m.Experiment.created_at, m.Experiment.key)
        ).all()
    by_pilot: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pilot_key, spec in experiments:
        by_pilot[pilot_key].append(spec)
    return {key: _parsed({**spec, "experiments": by_pilot.get(key, [])}) for key, spec in pilots}


def stored_experiments(
    store: Store, pilot: str | None = None, *, specs: Mapping[str, PilotSpec] | None = None
) -> tuple[StoredExperiment, ...]:
    """Returns the experiments (of one pilot, or all) with status and dates, in creation order.

    With `specs` (from `pilot_specs`), each experiment's spec is taken from its pilot's instead of
    being parsed again.
    """
    e = m.Experiment
    q = select(e.key, e.spec, e.pilot_key, e.status, e.started_at, e.stopped_at).order_by(
        e.pilot_key, e.created_at, e.key
    )
    if pilot is not None:
        q = q.where(e.pilot_key == pilot)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    return tuple(
        StoredExperiment(
            specs[pilot_key].experiment(key) if specs is not None else experiment_from_dict(spec),
            pilot_key,
            status,
            as_utc(started),
            as_utc(stopped),
        )
        for key, spec, pilot_key, status, started, stopped in rows
    )


# --- experiment results -------------------------------------------------------------------------


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
    """One row of the engine's `analysis.comparisons`, as a typed record (fields of analysis.md)."""

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


# --- monitoring over time -----------------------------------------------------------------------


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


# --- adoption -----------------------------------------------------------------------------------


class AdoptionDay(NamedTuple):
    """One day of a pilot: active participants, first-time (new), returning and activated ones, and
    the cumulative adopters and activated participants up to that day."""

    day: date
    days_since_start: int
    active: int
    new: int
    returning: int
    activated: int
    cumulative_adopters: int
    cumulative_activated: int


def _start_of(pilot: PilotSpec, first_day: date) -> date:
    return first_day if pilot.start is None else min(pilot.start, first_day)


def adoption_series(store: Store, pilot: PilotSpec, segment: str = "") -> tuple[AdoptionDay, ...]:
    """Returns the pilot's adoption day by day from its start (days without data count 0)."""
    d = m.DailyAdoption
    q = (
        select(d.day, func.sum(d.active), func.sum(d.new), func.sum(d.activated))
        .where(d.pilot_key == pilot.key, d.segment == segment)
        .group_by(d.day)
        .order_by(d.day)
    )
    with store.engine.connect() as conn:
        rows = [(day, int(a or 0), int(n or 0), int(x or 0)) for day, a, n, x in conn.execute(q)]
    if not rows:
        return ()
    start = _start_of(pilot, rows[0][0])
    records = daily_adoption(start, {r[0]: r[2] for r in rows}, {r[0]: r[1] for r in rows})
    activated = {r[0]: r[3] for r in rows}
    out = []
    cumulative_activated = 0
    for record in records:
        cumulative_activated += activated.get(record.day, 0)
        out.append(AdoptionDay(*record[:5], activated.get(record.day, 0), record[5], cumulative_activated))
    return tuple(out)


def adoption_segments(store: Store, pilot: str) -> tuple[str, ...]:
    """Returns the segments ("district:north", ...) the pilot's adoption figures are broken down by."""
    d = m.DailyAdoption
    with store.engine.connect() as conn:
        return tuple(
            conn.scalars(select(d.segment).where(d.pilot_key == pilot, d.segment != "").distinct().order_by(d.segment))
        )


class Reach(NamedTuple):
    """The participants of one segment value ("district", "north"), and their share of its citizens
    when the pilot registers the district's population."""

    segment: str
    value: str
    participants: int
    population: int | None

    @property
    def share(self) -> float | None:
        """Returns participants / population, None when the population is unknown."""
        return None if not self.population else self.participants / self.population


def reach(store: Store, pilot: PilotSpec) -> tuple[Reach, ...]:
    """Returns the participants who ever used the pilot, by segment value, target districts first
    (a target district without participants is listed with 0)."""
    d = m.DailyAdoption
    q = (
        select(d.segment, func.sum(d.new))
        .where(d.pilot_key == pilot.key, d.segment != "")
        .group_by(d.segment)
        .order_by(d.segment)
    )
    with store.engine.connect() as conn:
        counts = {segment: int(n or 0) for segment, n in conn.execute(q)}
    population = dict(pilot.district_population)
    rows = [
        Reach("district", district, counts.pop(f"district:{district}", 0), population.get(district))
        for district in pilot.districts
    ]
    for segment, n in counts.items():
        name, _, value = segment.partition(":")
        rows.append(Reach(name, value, n, population.get(value) if name == "district" else None))
    return tuple(rows)


def retention(store: Store, pilot: PilotSpec, segment: str = "", *, as_of: date | None = None) -> RetentionMatrix:
    """Returns the pilot's weekly retention cohorts (cohort size = its participants active in week 0)."""
    r = m.RetentionCohort
    q = (
        select(r.cohort_week, r.week_index, func.sum(r.participants))
        .where(r.pilot_key == pilot.key, r.segment == segment)
        .group_by(r.cohort_week, r.week_index)
    )
    with store.engine.connect() as conn:
        counts = {(cohort, int(week)): int(n or 0) for cohort, week, n in conn.execute(q)}
    sizes = {cohort: n for (cohort, week), n in counts.items() if week == 0}
    active = {(cohort, week): min(n, sizes[cohort]) for (cohort, week), n in counts.items() if cohort in sizes}
    if as_of is None:
        d = m.DailyAdoption
        with store.engine.connect() as conn:
            as_of = conn.scalar(select(func.max(d.day)).where(d.pilot_key == pilot.key, d.segment == segment))
    return retention_matrix(sizes, active, as_of=as_of)


def adoption_summary(store: Store, pilot: PilotSpec) -> AdoptionSummary:
    """Returns the pilot's adoption as the scorecard reads it: participants ever active, by district and
    segment, and the cumulative adopters per day since the start."""
    d = m.DailyAdoption
    q = select(d.segment, func.sum(d.new)).where(d.pilot_key == pilot.key).group_by(d.segment)
    with store.engine.connect() as conn:
        totals = {segment: int(n or 0) for segment, n in conn.execute(q)}
    series = adoption_series(store, pilot)
    by_district = tuple((r.value, r.participants) for r in reach(store, pilot) if r.segment == "district")
    by_segment = []
    for segment, n in sorted(totals.items()):
        name, _, value = segment.partition(":")
        if segment and name != "district":
            by_segment.append((name, value, n))
    return AdoptionSummary(
        active_participants=totals.get("", 0),
        pilot_age_days=float(series[-1].days_since_start + 1) if series else 0.0,
        cumulative_adopters=tuple((float(r.days_since_start), r.cumulative_adopters) for r in series),
        active_by_district=by_district,
        active_by_segment=tuple(by_segment),
    )


def adoption_forecast(pilot: PilotSpec, adoption: AdoptionSummary) -> BassFit:
    """Returns the Bass diffusion fit of the pilot's cumulative adopters (population as the prior of m)."""
    return fit_bass(
        [day for day, _ in adoption.cumulative_adopters],
        [n for _, n in adoption.cumulative_adopters],
        market_potential_prior=pilot.population,
    )


# --- citizens' voice ----------------------------------------------------------------------------


class CitizenText(NamedTuple):
    """A comment or an idea as the console lists it; `votes` is the net of +1 and -1 votes (ideas)."""

    event_id: str
    kind: str
    text: str
    occurred_at: datetime
    votes: int = 0
    voters: int = 0


class UsabilityScores(NamedTuple):
    """SUS scores summed: respondents, mean and standard deviation (None when undefined)."""

    respondents: int
    mean: float | None
    sd: float | None


class VoiceFigures(NamedTuple):
    """The feedback figures of a pilot (or of one experiment's variant), summed over partitions."""

    rating: RatingSummary
    promoters: int
    passives: int
    detractors: int
    sus: UsabilityScores
    comments: int
    ideas: int

    @property
    def nps(self) -> float | None:
        """Returns the Net Promoter Score, None without respondents."""
        total = self.promoters + self.passives + self.detractors
        return None if total == 0 else nps(self.promoters, self.passives, self.detractors)


def _figures(rows: Iterable[tuple[str, str, int, float, float]]) -> VoiceFigures:
    ratings: dict[int, int] = {}
    buckets: dict[str, int] = defaultdict(int)
    sus = UsabilityScores(0, None, None)
    counts: dict[str, int] = defaultdict(int)
    for kind, bucket, n, total, squares in rows:
        if kind == "rating" and bucket.isdigit() and int(bucket) in RATING_SCALE:
            ratings[int(bucket)] = n
        elif kind == "nps":
            buckets[bucket] += n
        elif kind == "sus" and n > 0:
            mean = total / n
            sd = ((squares - total * total / n) / (n - 1)) ** 0.5 if n > 1 else None
            sus = UsabilityScores(n, mean, sd)
        elif kind in ("comment", "idea"):
            counts[kind] += n
    return VoiceFigures(
        rating_summary(ratings),
        buckets["promoter"],
        buckets["passive"],
        buckets["detractor"],
        sus,
        counts["comment"],
        counts["idea"],
    )


def _feedback_query(pilot: str) -> Any:
    f = m.FeedbackStat
    return (
        select(f.experiment_key, f.variant, f.kind, f.bucket, func.sum(f.n), func.sum(f.sum), func.sum(f.sum_squares))
        .where(f.pilot_key == pilot, f.kind != "vote")
        .group_by(f.experiment_key, f.variant, f.kind, f.bucket)
    )


def voice_figures(store: Store, pilot: str) -> VoiceFigures:
    """Returns the pilot's feedback figures, every participant counted once."""
    f = m.FeedbackStat
    q = _feedback_query(pilot).where(f.experiment_key == "", f.variant == "")
    with store.engine.connect() as conn:
        return _figures(
            (kind, bucket, int(n or 0), float(s or 0), float(ss or 0))
            for _, _, kind, bucket, n, s, ss in conn.execute(q)
        )


def voice_by_variant(store: Store, pilot: str, experiment: str) -> dict[str, VoiceFigures]:
    """Returns the feedback figures of each variant of an experiment (participants exposed to it)."""
    f = m.FeedbackStat
    q = _feedback_query(pilot).where(f.experiment_key == experiment)
    rows: dict[str, list[tuple[str, str, int, float, float]]] = defaultdict(list)
    with store.engine.connect() as conn:
        for _, variant, kind, bucket, n, s, ss in conn.execute(q):
            rows[variant].append((kind, bucket, int(n or 0), float(s or 0), float(ss or 0)))
    return {variant: _figures(r) for variant, r in sorted(rows.items())}


def _votes() -> Any:
    f = m.FeedbackStat
    return (
        select(
            f.pilot_key.label("pilot_key"),
            f.bucket.label("event_id"),
            func.sum(f.sum).label("net"),
            func.sum(f.n).label("voters"),
        )
        .where(f.kind == "vote")
        .group_by(f.pilot_key, f.bucket)
        .subquery()
    )


def ranked_ideas(store: Store, pilot: str, limit: int = TOP_IDEAS) -> tuple[CitizenText, ...]:
    """Returns the pilot's ideas with the most net votes first (the most recent first on a tie)."""
    t, v = m.FeedbackText, _votes()
    net = func.coalesce(v.c.net, 0)
    q = (
        select(t.event_id, t.text, t.occurred_at, net, func.coalesce(v.c.voters, 0))
        .outerjoin(v, (v.c.event_id == t.event_id) & (v.c.pilot_key == t.pilot_key))
        .where(t.pilot_key == pilot, t.kind == "idea")
        .order_by(net.desc(), t.occurred_at.desc(), t.event_id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return tuple(
            CitizenText(event_id, "idea", text, as_utc(at) or datetime.min.replace(tzinfo=UTC), round(net), int(n))
            for event_id, text, at, net, n in conn.execute(q)
        )


def recent_texts(
    store: Store, pilot: str, kinds: Sequence[str] = ("comment",), limit: int = RECENT_COMMENTS
) -> tuple[CitizenText, ...]:
    """Returns the pilot's most recent comments (or other kinds of text), newest first."""
    t = m.FeedbackText
    q = (
        select(t.event_id, t.kind, t.text, t.occurred_at)
        .where(t.pilot_key == pilot, t.kind.in_(list(kinds)))
        .order_by(t.occurred_at.desc(), t.event_id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return tuple(
            CitizenText(event_id, kind, text, as_utc(at) or datetime.min.replace(tzinfo=UTC))
            for event_id, kind, text, at in conn.execute(q)
        )


def voice_summary(store: Store, pilot: str) -> VoiceSummary:
    """Returns the citizens' voice of the pilot as the scorecard reads it (themes from the most recent
    `THEME_TEXTS` comments and ideas)."""
    figures = voice_figures(store, pilot)
    texts = recent_texts(store, pilot, ("comment", "idea"), THEME_TEXTS)
    ideas = ranked_ideas(store, pilot)
    return VoiceSummary(
        nps=figures.nps,
        nps_respondents=figures.promoters + figures.passives + figures.detractors,
        sus_mean=figures.sus.mean,
        sus_respondents=figures.sus.respondents,
        rating=figures.rating,
        comment_count=figures.comments,
        idea_count=figures.ideas,
        themes=tuple(themes([t.text for t in texts])),
        top_ideas=tuple(Idea(i.text, i.votes) for i in ideas),
    )


# --- evidence, recommendation, portfolio --------------------------------------------------------


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
        figures = _figures(feedback.get(pilot.key, ()))
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
        PortfolioRow(p.key, p.name, p.stage, p.owner, p.next_decision, tuple(by_pilot.get(p.key, ())))
        for p in specs.values()
    )


__all__ = [
    "AdoptionDay",
    "CitizenText",
    "Exposure",
    "MonitoringPoint",
    "PilotEvidence",
    "PortfolioExperiment",
    "PortfolioRow",
    "Reach",
    "ReportedComparison",
    "UsabilityScores",
    "VoiceFigures",
    "adoption_forecast",
    "adoption_segments",
    "adoption_series",
    "adoption_summary",
    "comparisons",
    "experiment_statistics",
    "exposure",
    "exposures",
    "history_series",
    "latest_decisions",
    "monitoring",
    "pilot_evidence",
    "pilot_specs",
    "portfolio",
    "reach",
    "recent_texts",
    "recommendation",
    "retention",
    "stored_experiments",
    "units_of",
    "voice_by_variant",
    "voice_figures",
    "voice_summary",
]
