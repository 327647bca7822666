"""What one participant contributes to every figure of a pilot, as a pure function of their events.

A participant's contribution to an aggregate (n, sum, sum of squares, ...) depends only on the set
of their events and on the registry, never on the order events arrive in. The stream processor keeps
each participant's small event log, and when it changes, adds `new - old` contributions to the
per-partition aggregates (sum += x' - x, sum_squares += x'^2 - x^2): exact, whatever the order,
redelivery (event ids are deduplicated) or crash (aggregates are rebuilt from the logs).

Semantics (docs/events.md and docs/statistics.md, "Metric semantics"):
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
  each); every comment and idea counts; a participant's latest vote on an idea counts, an idea being
  its canonical idea when the lab merged duplicates (`PilotRuntime.merged_ideas`): a participant who
  voted on two merged duplicates counts once, with their latest vote.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from experiments.feedback import nps_bucket
from experiments.registry import ANY_ACTION, ExperimentSpec, ExperimentStatus, MetricSpec, PilotSpec

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
UNITS = "$units"
#: At most this many exposures of one experiment are kept per participant: the earliest but one (only
#: the first counted one matters; a few more cover exposures logged before consent), and the newest,
#: whose time a rebuild reads for the lateness watermark (`PilotLog.latest`).
MAX_EXPOSURES = 8
#: The most texts (ideas, comments, reports) of one participant kept waiting for a consent that covers
#: them; beyond, the oldest waiting text is dropped.
MAX_WAITING_TEXTS = 16
#: The longest chain of merged ideas followed to its canonical idea.
MERGE_DEPTH = 64

#: A contribution key and its vector of sums. Keys (segmented ones take the segment as last element
#: when applied, see `Contributions.expanded`):
#:   ("a", experiment, metric, variant): (n, sum, sum_squares, x_sum, x_sum_squares, sum_products)
#:   ("x", experiment, metric, variant, day): the same, of the participants first exposed that day (days
#:                                            since 1970-01-01, event time); not segmented
#:   ("d", day): (active, new, activated)            day: days since 1970-01-01
#:   ("r", cohort_day, week_index): (participants,)  cohort_day: a Monday, days since epoch
#:   ("f", experiment, variant, kind, bucket): (n, sum, sum_squares)   "" = all; not segmented
Key = tuple[Any, ...]
Vector = tuple[float, ...]
SEGMENTED = frozenset({"a", "d", "r"})
V = TypeVar("V")


class Contributions:
    """A participant's contributions, each once, and the segments ("" = everyone) they count in; never
    changed once made.

    The hot classes of this module and of streams/processor.py are plain classes with `__slots__`:
    one is made for every event, and slots keep them small."""

    __slots__ = ("figures", "segments")

    def __init__(self, figures: dict[Key, Vector], segments: tuple[str, ...] = ("",)) -> None:
        self.figures = figures
        self.segments = segments

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


PLAIN, RATIO, COVARIATE = 0, 1, 2


class MetricPlan(NamedTuple):
    """How `metric_vector` reads a metric's windows, built once per experiment (it is read for every
    participant of every batch). The window is [t0 + start, t0 + end) in ms."""

    key: str
    shape: int  # PLAIN, RATIO or COVARIATE
    once: bool  # 1 when there is an `action` event (proportion, retention)
    action: str
    by_count: bool  # the number of `action` events, else the sum of their values
    start: int
    end: int
    denominator: str = ""
    denominator_count: bool = False
    covariate: int = 0  # ms before t0


def metric_plan(metric: MetricSpec) -> MetricPlan:
    """Returns how `metric_vector` reads the metric (see `MetricSpec` for the semantics)."""
    key, action = metric.key, metric.action
    if metric.type == "retention":
        week = metric.week or 0
        return MetricPlan(key, PLAIN, True, action, True, week * WEEK_MS, (week + 1) * WEEK_MS)
    once = metric.type == "proportion"
    end = int(metric.window_days * DAY_MS)
    count = metric.aggregate == "count"
    if metric.type == "ratio" and metric.denominator:
        denominator_count = metric.denominator_aggregate == "count"
        return MetricPlan(key, RATIO, once, action, count, 0, end, metric.denominator, denominator_count)
    if metric.covariate_days:
        covariate = int(metric.covariate_days * DAY_MS)
        return MetricPlan(key, COVARIATE, once, action, count, 0, end, covariate=covariate)
    return MetricPlan(key, PLAIN, once, action, count, 0, end)


@dataclass(frozen=True, slots=True)
class ExperimentRuntime:
    """An experiment as the stream processor counts it."""

    spec: ExperimentSpec
    status: ExperimentStatus
    stopped_at_ms: int | None = None
    #: The names of the experiment's variants (read for every exposure, so built once).
    variants: frozenset[str] = field(init=False, compare=False, repr=False)
    #: Its metrics as `metric_vector` reads them.
    metrics: tuple[MetricPlan, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", frozenset(self.spec.variant_weights))
        object.__setattr__(self, "metrics", tuple(metric_plan(m) for m in self.spec.metrics))

    @property
    def counts(self) -> bool:
        return self.status != "draft"


@dataclass(frozen=True, slots=True)
class PilotRuntime:
    spec: PilotSpec
    experiments: Mapping[str, ExperimentRuntime]
    #: Ideas the lab merged into another, each with the canonical idea its votes count for.
    merged_ideas: Mapping[str, str] = field(default_factory=dict)
    #: The experiments that count (not drafts), in the registry's order.
    counting: tuple[tuple[str, ExperimentRuntime], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counting", tuple((k, e) for k, e in self.experiments.items() if e.counts))

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


FeedbackItem = tuple[int, str, float | None, float | None, str | None, str | None]
_LOW_64 = 2**64 - 1


def event_key(event_id: int) -> str:
    """Returns what a log remembers an applied event by (`PilotLog.seen`), from its id's 128 bits: the
    two halves xor-ed, as 16 hex digits. Not the first half alone: UUIDv7s made in one millisecond
    (with a counter, as RFC 9562 and Python's `uuid.uuid7` make them) or UUIDv1s of one clock tick
    share it."""
    return "%016x" % ((event_id >> 64) ^ (event_id & _LOW_64))


def first_half_key(event_id: int) -> str:
    """Returns what logs written before `event_key` remembered an event by: its id's first 64 bits
    (`PilotLog.seen_before`)."""
    return "%016x" % (event_id >> 64)


#: A text waiting for its consent: (ms, occurred_at in ISO 8601, event id, kind, text, title, theme,
#: district, target idea).
WaitingText = tuple[int, str, str, str, str, str | None, str | None, str | None, str | None]


class PilotLog:
    """One participant's events in one pilot, kept small: times in ms, sorted, deduplicated.

    usage: (ms, action, value); feedback: (ms, kind, score, sus score, target idea, experiment);
    seen: the `event_key` of every applied event (a redelivered event is recognised by it);
    seen_before: the `first_half_key` of the events a log written before `event_key` had applied, read
    and kept as they are (a redelivered one is still recognised), never added to;
    waiting: the texts read before the consent that covers them (`WaitingText`): the consent and the
    text travel on different topics, so a consent given first may be read after; the worker stores
    them once it arrives (at most `MAX_WAITING_TEXTS`).
    """

    __slots__ = ("consent", "exposures", "feedback", "properties", "seen", "seen_before", "usage", "waiting")

    def __init__(
        self,
        consent: list[tuple[int, bool]] | None = None,
        exposures: dict[str, list[tuple[int, str]]] | None = None,
        usage: list[tuple[int, str, float | None]] | None = None,
        feedback: list[FeedbackItem] | None = None,
        properties: dict[str, tuple[int, str]] | None = None,
        seen: set[str] | None = None,
        seen_before: set[str] | None = None,
        waiting: list[WaitingText] | None = None,
    ) -> None:
        self.consent: list[tuple[int, bool]] = [] if consent is None else consent
        self.exposures: dict[str, list[tuple[int, str]]] = {} if exposures is None else exposures
        self.usage: list[tuple[int, str, float | None]] = [] if usage is None else usage
        self.feedback: list[FeedbackItem] = [] if feedback is None else feedback
        self.properties: dict[str, tuple[int, str]] = {} if properties is None else properties
        self.seen: set[str] = set() if seen is None else seen
        self.seen_before: set[str] = set() if seen_before is None else seen_before
        self.waiting: list[WaitingText] = [] if waiting is None else waiting

    # --- changes ------------------------------------------------------------------------------

    def add_consent(self, ms: int, granted: bool) -> None:
        bisect.insort(self.consent, (ms, granted))

    def add_waiting(self, text: WaitingText) -> None:
        """Keeps a text until a consent covers it (once per event id; the oldest beyond the limit go)."""
        if any(w[2] == text[2] for w in self.waiting):
            return
        bisect.insort(self.waiting, text)
        if len(self.waiting) > MAX_WAITING_TEXTS:
            del self.waiting[0]

    def add_exposure(self, experiment: str, ms: int, variant: str) -> None:
        items = self.exposures.setdefault(experiment, [])
        bisect.insort(items, (ms, variant))
        if len(items) > MAX_EXPOSURES:
            del items[MAX_EXPOSURES - 1 : -1]

    def add_usage(self, ms: int, action: str, value: float | None, properties: Mapping[str, str]) -> None:
        usage = self.usage
        item = (ms, action, value)
        # Events mostly arrive in time order: after the last one, the item is appended.
        if not usage or usage[-1][0] < ms or _usage_order(usage[-1]) <= _usage_order(item):
            usage.append(item)
        else:
            bisect.insort(usage, item, key=_usage_order)
        known = self.properties
        for name, val in properties.items():
            old = known.get(name)
            # = (ms, val) < old, without building the tuple for the usual later event
            if old is None or ms < old[0] or (ms == old[0] and val < old[1]):
                known[name] = (ms, val)

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
            doc["k"] = sorted(self.seen)
        if self.seen_before:
            doc["i"] = sorted(self.seen_before)
        if self.waiting:
            doc["w"] = self.waiting
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PilotLog:
        return cls(
            consent=[(t, bool(g)) for t, g in doc.get("c", ())],
            exposures={k: list(map(tuple, items)) for k, items in doc.get("x", {}).items()},
            usage=list(map(tuple, doc.get("u", ()))),
            feedback=list(map(tuple, doc.get("f", ()))),
            properties={k: tuple(v) for k, v in doc.get("s", {}).items()},
            seen=set(doc.get("k", ())),
            seen_before=set(doc.get("i", ())),
            waiting=[tuple(w) for w in doc.get("w", ())],
        )


def _usage_order(item: tuple[int, str, float | None]) -> tuple[int, str, float]:
    ms, action, value = item
    return (ms, action, -1e308 if value is None else value)


_TIME = itemgetter(0)


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
        """Returns the events (sorted by time, time first) made while consenting: `at` for each,
        found by bisecting the events at each consent change."""
        if self.always:
            return events
        times, granted = self.times, self.granted
        out: list[tuple[int, str, float | None]] = []
        last = len(times) - 1
        for i, t in enumerate(times):
            if granted[i]:
                lo = bisect.bisect_left(events, t, key=_TIME)
                hi = len(events) if i == last else bisect.bisect_left(events, times[i + 1], lo, key=_TIME)
                if lo == 0 and hi == len(events):
                    return events
                out += events[lo:hi]
        return out


def _window(
    usage: list[tuple[int, str, float | None]],
    times: list[int],
    start: int,
    end: int,
    action: str,
    once: bool,
    count: bool,
) -> float:
    """Returns the metric quantity of the counted usage events in [start, end): 1 when there is an
    `action` one (`once`), else their number (`count`) or the sum of their values."""
    if end <= start:
        return 0.0
    lo = bisect.bisect_left(times, start)
    hi = bisect.bisect_left(times, end, lo)
    if lo == hi:
        return 0.0
    if action == ANY_ACTION and (once or count):
        return 1.0 if once else float(hi - lo)
    total = 0.0
    for i in range(lo, hi):
        _ms, name, value = usage[i]
        if action in (name, ANY_ACTION):
            if once:
                return 1.0
            total += 1.0 if count else (value or 0.0)
    return total


def metric_vector(
    plan: MetricPlan,
    usage: list[tuple[int, str, float | None]],
    times: list[int],
    t0: int,
    stop: int | None,
) -> Vector:
    """Returns (n, sum, sum_squares, x_sum, x_sum_squares, sum_products) of one participant, from their
    counted usage events and those events' times."""
    _key, shape, once, action, by_count, start, end, denominator, denominator_count, covariate = plan
    end += t0
    if stop is not None and stop < end:
        end = stop
    x = _window(usage, times, t0 + start, end, action, once, by_count)
    if shape == RATIO:
        d = _window(usage, times, t0, end, denominator, False, denominator_count)
        return (1.0, x, x * x, d, d * d, x * d)
    if shape == COVARIATE:
        pre_end = t0 if stop is None or t0 < stop else stop
        pre = _window(usage, times, t0 - covariate, pre_end, action, once, by_count)
        return (1.0, x, x * x, pre, pre * pre, x * pre)
    return (1.0, x, x * x, 0.0, 0.0, 0.0)


def _add(out: dict[Key, Vector], key: Key, vec: Vector) -> None:
    old = out.get(key)
    out[key] = vec if old is None else tuple(a + b for a, b in zip(old, vec, strict=True))


UNIT: Vector = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def contributions(log: PilotLog, pilot: PilotRuntime) -> Contributions:
    """Returns every figure of the pilot this participant's events add to, with their amounts."""
    out: dict[Key, Vector] = {}
    spec = pilot.spec
    consent = ConsentTimeline(log.consent, spec.consent == "collected_by_service")
    usage = consent.counted(log.usage)
    times = [u[0] for u in usage]
    properties = log.properties
    segments = ("", *[f"{name}:{properties[name][1]}" for name in spec.segments if name in properties])

    variants: dict[str, str] = {}
    for key, exp in pilot.counting:
        stop = exp.stopped_at_ms
        allowed = exp.variants
        first = None
        for t, v in log.exposures.get(key, ()):
            if (stop is None or t < stop) and v in allowed and consent.at(t):
                first = (t, v)
                break
        if first is None:
            continue
        t0, variant = first
        variants[key] = variant
        exposed_day = day_of(t0)
        out["a", key, UNITS, variant] = out["x", key, UNITS, variant, exposed_day] = UNIT
        for plan in exp.metrics:
            out["a", key, plan.key, variant] = out["x", key, plan.key, variant, exposed_day] = metric_vector(
                plan, usage, times, t0, stop
            )

    if usage:
        # The times are sorted, so are their days and weeks: each is new when it differs from the last.
        days: list[int] = []
        for ms in times:
            d = day_of(ms)
            if not days or days[-1] != d:
                days.append(d)
        first_day = days[0]
        key_action = spec.key_action
        activated = next((day_of(ms) for ms, a, _ in usage if a == key_action), None) if key_action else None
        cohort = monday_of(first_day)
        last_week = -1
        for d in days:
            out["d", d] = (1.0, float(d == first_day), float(d == activated))
            w = (d - cohort) // 7
            if w != last_week:
                out["r", cohort, w] = (1.0,)
                last_week = w

    if log.feedback:
        _feedback(out, log, consent, variants, pilot.merged_ideas)
    return Contributions(out, segments)


def canonical_idea(merged: Mapping[str, str], idea: str) -> str:
    """Returns the idea an idea's votes count for: itself, or the end of its chain of merges (at most
    `MERGE_DEPTH` steps, so a cycle written by hand in the store cannot loop)."""
    steps = 0
    while idea in merged and steps < MERGE_DEPTH:
        idea = merged[idea]
        steps += 1
    return idea


def _feedback(
    out: dict[Key, Vector],
    log: PilotLog,
    consent: ConsentTimeline,
    variants: Mapping[str, str],
    merged: Mapping[str, str],
) -> None:
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
            votes[merged.get(target, target)] = 1.0 if score is None else score
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
