"""What one participant contributes to every figure of a pilot, as a pure function of their events.

A participant's contribution to an aggregate (n, sum, sum of squares, ...) depends only on the set
of their events and on the registry, never on the order events arrive in. The stream processor keeps
each participant's small event log, and when it changes, adds `new - old` contributions to the
per-partition aggregates (sum += x' - x, sum_squares += x'^2 - x^2): exact, whatever the order,
redelivery (event ids are deduplicated) or crash (aggregates are rebuilt from the logs).

Semantics (interfaces.md, "Metric semantics"):
- Consent: an event counts only when, at its event time, the participant's latest consent event
  (any scope) granted consent, unless the pilot's consent mode is `collected_by_service`. On equal
  times a withdrawal wins.
- First exposure: the earliest counted exposure of the experiment; it fixes the variant and t0.
  Exposures of draft experiments are not counted; nor are those at or after a stop.
- Windows are [t0, t0 + window_days) at millisecond precision; usage at or after a stop is not
  counted. A CUPED covariate is the same quantity over [t0 - covariate_days, t0).
- Segments: a participant's value of each segment property (district, channel, ...) is the one of
  their earliest usage event carrying it.
- Adoption: active on a UTC day when a counted usage event falls on it; new on the first such day;
  activated on the day of the first counted `key_action`; retention cohorts by the Monday of the
  week of the first active day.
- Feedback: the latest counted rating, NPS and SUS answer of a participant count (one respondent
  each); every comment and idea counts; a participant's latest vote on an idea counts.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from experiments.feedback import nps_bucket
from experiments.registry import ANY_ACTION, ExperimentSpec, ExperimentStatus, MetricSpec, PilotSpec

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
UNITS = "$units"
#: At most this many exposures of one experiment are kept per participant (only the first counted
#: one matters; a few more cover exposures logged before consent).
MAX_EXPOSURES = 8

#: A contribution key and its vector of sums. Keys (segmented ones take the segment as last element
#: when applied, see `Contributions.expanded`):
#:   ("a", experiment, metric, variant): (n, sum, sum_squares, x_sum, x_sum_squares, sum_products)
#:   ("d", day): (active, new, activated)            day: days since 1970-01-01
#:   ("r", cohort_day, week_index): (participants,)  cohort_day: a Monday, days since epoch
#:   ("f", experiment, variant, kind, bucket): (n, sum, sum_squares)   "" = all; not segmented
Key = tuple[Any, ...]
Vector = tuple[float, ...]
SEGMENTED = frozenset({"a", "d", "r"})
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Contributions:
    """A participant's contributions, each once, and the segments ("" = everyone) they count in."""

    figures: dict[Key, Vector]
    segments: tuple[str, ...] = ("",)

    def expanded(self) -> Iterable[tuple[Key, Vector]]:
        """Yields every (key with segment, vector) this participant adds to."""
        return spread(self.figures, self.segments)


def spread(figures: Mapping[Key, V], segments: tuple[str, ...]) -> Iterable[tuple[Key, V]]:
    """Yields each figure under each of the segments (those of a segmented kind) or once (the others)."""
    for key, vec in figures.items():
        if key[0] in SEGMENTED:
            for seg in segments:
                yield (*key, seg), vec
        else:
            yield key, vec


NOTHING = Contributions({}, ())


@dataclass(frozen=True, slots=True)
class ExperimentRuntime:
    """An experiment as the stream processor counts it."""

    spec: ExperimentSpec
    status: ExperimentStatus
    stopped_at_ms: int | None = None
    #: The names of the experiment's variants (read for every exposure, so built once).
    variants: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", frozenset(self.spec.variant_weights))

    @property
    def counts(self) -> bool:
        return self.status != "draft"


@dataclass(frozen=True, slots=True)
class PilotRuntime:
    spec: PilotSpec
    experiments: Mapping[str, ExperimentRuntime]

    @property
    def key(self) -> str:
        return self.spec.key


def to_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def day_of(ms: int) -> int:
    return ms // DAY_MS


def day_date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day)


def monday_of(day: int) -> int:
    # 1970-01-01 was a Thursday: weekday (Monday = 0) of day d is (d + 3) % 7.
    return day - (day + 3) % 7


def ms_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(slots=True)
class PilotLog:
    """One participant's events in one pilot, kept small: times in ms, sorted, deduplicated.

    usage: (ms, action, value); feedback: (ms, kind, score, sus score, target idea, experiment).
    """

    consent: list[tuple[int, bool]] = field(default_factory=list)
    exposures: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    usage: list[tuple[int, str, float | None]] = field(default_factory=list)
    feedback: list[tuple[int, str, float | None, float | None, str | None, str | None]] = field(default_factory=list)
    properties: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: The first 16 hex digits of every applied event's id: a redelivered event is recognised by it.
    seen: set[str] = field(default_factory=set)

    # --- changes ------------------------------------------------------------------------------

    def add_consent(self, ms: int, granted: bool) -> None:
        bisect.insort(self.consent, (ms, granted))

    def add_exposure(self, experiment: str, ms: int, variant: str) -> None:
        items = self.exposures.setdefault(experiment, [])
        bisect.insort(items, (ms, variant))
        del items[MAX_EXPOSURES:]

    def add_usage(self, ms: int, action: str, value: float | None, properties: Mapping[str, str]) -> None:
        bisect.insort(self.usage, (ms, action, value), key=lambda u: (u[0], u[1], -1e308 if u[2] is None else u[2]))
        for name, val in properties.items():
            old = self.properties.get(name)
            if old is None or (ms, val) < old:
                self.properties[name] = (ms, val)

    def add_feedback(
        self,
        ms: int,
        kind: str,
        score: float | None,
        sus: float | None,
        target: str | None,
        experiment: str | None,
    ) -> None:
        self.feedback.append((ms, kind, score, sus, target, experiment))
        self.feedback.sort(key=lambda f: (f[0], f[1], f[4] or "", -1e308 if f[2] is None else f[2]))

    def latest(self) -> dict[str, int]:
        """Returns the newest event time of each event type in the log (for the lateness watermark)."""
        out: dict[str, int] = {}
        if self.consent:
            out["consent"] = self.consent[-1][0]
        if self.exposures:
            out["exposure"] = max(items[-1][0] for items in self.exposures.values() if items)
        if self.usage:
            out["usage"] = self.usage[-1][0]
        if self.feedback:
            out["feedback"] = self.feedback[-1][0]
        return out

    # --- compact form (the faust table value) -------------------------------------------------

    # Read and written for every participant of every batch: tuples go to JSON arrays as they are
    # (orjson writes a tuple as an array), and arrays come back as tuples of what the log wrote.

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.consent:
            doc["c"] = [[t, int(g)] for t, g in self.consent]
        if self.exposures:
            doc["x"] = self.exposures
        if self.usage:
            doc["u"] = self.usage
        if self.feedback:
            doc["f"] = self.feedback
        if self.properties:
            doc["s"] = self.properties
        if self.seen:
            doc["i"] = sorted(self.seen)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PilotLog:
        return cls(
            consent=[(t, bool(g)) for t, g in doc.get("c", ())],
            exposures={k: list(map(tuple, items)) for k, items in doc.get("x", {}).items()},
            usage=list(map(tuple, doc.get("u", ()))),
            feedback=list(map(tuple, doc.get("f", ()))),
            properties={k: tuple(v) for k, v in doc.get("s", {}).items()},
            seen=set(doc.get("i", ())),
        )


class ConsentTimeline:
    """Answers "was the participant consenting at time t?" from their consent events."""

    def __init__(self, events: list[tuple[int, bool]], collected_by_service: bool) -> None:
        self.always = collected_by_service
        # Within one millisecond a withdrawal wins: (t, False) sorts before (t, True), so keep the
        # first verdict of each time.
        self.times: list[int] = []
        self.granted: list[bool] = []
        for t, g in events:
            if self.times and self.times[-1] == t:
                self.granted[-1] = self.granted[-1] and g
            else:
                self.times.append(t)
                self.granted.append(g)

    def at(self, ms: int) -> bool:
        if self.always:
            return True
        i = bisect.bisect_right(self.times, ms)
        return i > 0 and self.granted[i - 1]

    def counted(self, events: list[tuple[int, str, float | None]]) -> list[tuple[int, str, float | None]]:
        """Returns the events (sorted by time, time first) made while consenting: `at` for each, in
        one walk over both lists."""
        if self.always:
            return events
        times, granted = self.times, self.granted
        out = []
        i, n = 0, len(times)
        for item in events:
            ms = item[0]
            while i < n and times[i] <= ms:
                i += 1
            if i and granted[i - 1]:
                out.append(item)
        return out


def _metric_value(
    metric: MetricSpec,
    usage: list[tuple[int, str, float | None]],
    times: list[int],
    start: int,
    end: int,
    action: str,
    agg: str,
) -> float:
    lo = bisect.bisect_left(times, start)
    hi = bisect.bisect_left(times, end, lo)
    if lo == hi:
        return 0.0
    once = metric.type in ("proportion", "retention")
    if action == ANY_ACTION and (once or agg == "count"):
        return 1.0 if once else float(hi - lo)
    total = 0.0
    for i in range(lo, hi):
        _ms, name, value = usage[i]
        if action in (name, ANY_ACTION):
            if once:
                return 1.0
            total += 1.0 if agg == "count" else (value or 0.0)
    return total


def metric_vector(
    metric: MetricSpec,
    usage: list[tuple[int, str, float | None]],
    times: list[int],
    t0: int,
    stop: int | None,
) -> Vector:
    """Returns (n, sum, sum_squares, x_sum, x_sum_squares, sum_products) of one participant, from their
    counted usage events and those events' times."""

    def window(start: int, end: int, action: str, agg: str) -> float:
        if stop is not None:
            end = min(end, stop)
        return _metric_value(metric, usage, times, start, end, action, agg) if end > start else 0.0

    if metric.type == "retention":
        week = metric.week or 0
        x = window(t0 + week * WEEK_MS, t0 + (week + 1) * WEEK_MS, metric.action, "count")
        return (1.0, x, x * x, 0.0, 0.0, 0.0)
    end = t0 + int(metric.window_days * DAY_MS)
    x = window(t0, end, metric.action, metric.aggregate)
    if metric.type == "ratio" and metric.denominator:
        d = window(t0, end, metric.denominator, metric.denominator_aggregate)
        return (1.0, x, x * x, d, d * d, x * d)
    if metric.covariate_days:
        pre = window(t0 - int(metric.covariate_days * DAY_MS), t0, metric.action, metric.aggregate)
        return (1.0, x, x * x, pre, pre * pre, x * pre)
    return (1.0, x, x * x, 0.0, 0.0, 0.0)


def _add(out: dict[Key, Vector], key: Key, vec: Vector) -> None:
    old = out.get(key)
    out[key] = vec if old is None else tuple(a + b for a, b in zip(old, vec, strict=True))


def contributions(log: PilotLog, pilot: PilotRuntime) -> Contributions:
    """Returns every figure of the pilot this participant's events add to, with their amounts."""
    out: dict[Key, Vector] = {}
    consent = ConsentTimeline(log.consent, pilot.spec.consent == "collected_by_service")
    usage = consent.counted(log.usage)
    times = [u[0] for u in usage]
    segments = ("", *(f"{name}:{log.properties[name][1]}" for name in pilot.spec.segments if name in log.properties))

    variants: dict[str, str] = {}
    for key, exp in pilot.experiments.items():
        if not exp.counts:
            continue
        stop = exp.stopped_at_ms
        first = next(
            (
                (t, v)
                for t, v in log.exposures.get(key, ())
                if consent.at(t) and (stop is None or t < stop) and v in exp.variants
            ),
            None,
        )
        if first is None:
            continue
        t0, variant = first
        variants[key] = variant
        out["a", key, UNITS, variant] = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        for metric in exp.spec.metrics:
            out["a", key, metric.key, variant] = metric_vector(metric, usage, times, t0, stop)

    if usage:
        days = sorted({day_of(ms) for ms in times})
        first_day = days[0]
        key_action = pilot.spec.key_action
        activated = next((day_of(ms) for ms, a, _ in usage if a == key_action), None) if key_action else None
        cohort = monday_of(first_day)
        weeks = sorted({(d - cohort) // 7 for d in days})
        for d in days:
            out["d", d] = (1.0, float(d == first_day), float(d == activated))
        for w in weeks:
            out["r", cohort, w] = (1.0,)

    _feedback(out, log, consent, variants)
    return Contributions(out, segments)


def _feedback(out: dict[Key, Vector], log: PilotLog, consent: ConsentTimeline, variants: Mapping[str, str]) -> None:
    latest: dict[str, tuple[float, float | None]] = {}
    votes: dict[str, float] = {}
    counts: dict[str, int] = {}
    for ms, kind, score, sus, target, _experiment in log.feedback:
        if not consent.at(ms):
            continue
        if kind in ("rating", "nps") and score is not None:
            latest[kind] = (score, None)
        elif kind == "sus" and sus is not None:
            latest[kind] = (sus, None)
        elif kind in ("comment", "idea"):
            counts[kind] = counts.get(kind, 0) + 1
        elif kind == "vote" and target:
            votes[target] = 1.0 if score is None else score
    scopes = [("", ""), *list(variants.items())]
    for kind, (value, _) in latest.items():
        bucket = _bucket(kind, value)
        for exp, variant in scopes:
            _add(out, ("f", exp, variant, kind, bucket), (1.0, value, value * value))
    for kind, n in counts.items():
        for exp, variant in scopes:
            _add(out, ("f", exp, variant, kind, "count"), (float(n), 0.0, 0.0))
    for target, value in votes.items():
        _add(out, ("f", "", "", "vote", target), (1.0, value, value * value))


def _bucket(kind: str, value: float) -> str:
    if kind == "nps":
        return nps_bucket(int(value))
    if kind == "rating":
        return f"{value:g}"
    return "score"


def figure_delta(old: Mapping[Key, Vector], new: Mapping[Key, Vector]) -> Iterable[tuple[Key, Vector]]:
    """Yields (key, new - old) for every figure whose amount changed (segments apart)."""
    for key, vec in new.items():
        prev = old.get(key)
        if prev is None:
            yield key, vec
        elif prev != vec:
            yield key, tuple(a - b for a, b in zip(vec, prev, strict=True))
    for key, prev in old.items():
        if key not in new:
            yield key, tuple(-a for a in prev)
