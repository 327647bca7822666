"""The exact aggregates a set of events must produce, computed directly from the events.

Written independently of the stream processor (whole-history, datetime arithmetic, no deltas), so
that tests comparing the store with this truth check the streaming machinery end to end:
partitioning, deduplication, delta updates, crash recovery and consent gating.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from experiments.registry import ANY_ACTION, MetricSpec, PilotSpec

UNITS = "$units"


@dataclass(frozen=True)
class Truth:
    """Expected figures: statistics[experiment][metric][variant] = (n, sum, sum_squares, x_sum,
    x_sum_squares, sum_products), `$units` included; active[day] and new[day] participants;
    feedback[(experiment, variant, kind, bucket)] = (n, sum)."""

    statistics: Mapping[str, Mapping[str, Mapping[str, tuple[float, ...]]]]
    active: Mapping[date, int]
    new: Mapping[date, int]
    feedback: Mapping[tuple[str, str, str, str], tuple[float, float]]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ms(t: datetime) -> datetime:
    """Returns the time truncated to the millisecond (the platform's resolution)."""
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def expected(events: Iterable[Mapping[str, Any]], pilot: PilotSpec, *, counted: Iterable[str] | None = None) -> Truth:
    """Returns what the store must show for `pilot` once every event has been processed once.

    `counted` names the experiments whose exposures count (default: all of the pilot's).
    """
    experiments = {e.key: e for e in pilot.experiments if counted is None or e.key in set(counted)}
    unique: dict[str, Mapping[str, Any]] = {}
    for ev in events:
        if ev["pilot_id"] == pilot.key:
            unique.setdefault(ev["event_id"], ev)
    per_participant: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for ev in unique.values():
        per_participant[ev["participant_id"]].append(ev)

    stats: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: [0.0] * 6))
    )
    active: dict[date, int] = defaultdict(int)
    new: dict[date, int] = defaultdict(int)
    feedback: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])

    for evs in per_participant.values():
        consents = sorted(
            ((_ms(_time(e["occurred_at"])), e["payload"]["granted"]) for e in evs if e["type"] == "consent"),
            key=lambda c: (c[0], c[1]),
        )

        verdicts: dict[datetime, bool] = {}
        for when, granted in consents:
            verdicts[when] = verdicts.get(when, True) and granted

        def consenting(t: datetime, verdicts: dict[datetime, bool] = verdicts) -> bool:
            if pilot.consent == "collected_by_service":
                return True
            earlier = [w for w in verdicts if w <= t]
            return bool(earlier) and verdicts[max(earlier)]

        usage = sorted(
            (_ms(_time(e["occurred_at"])), e["payload"]["action"], e["payload"].get("value"))
            for e in evs
            if e["type"] == "usage" and consenting(_ms(_time(e["occurred_at"])))
        )
        variants: dict[str, str] = {}
        for key, exp in experiments.items():
            exposures = sorted(
                (_ms(_time(e["occurred_at"])), e["payload"]["variant"])
                for e in evs
                if e["type"] == "exposure" and e["payload"]["experiment"] == key
            )
            first = next(((t, v) for t, v in exposures if consenting(t)), None)
            if first is None:
                continue
            t0, variant = first
            variants[key] = variant
            stats[key][UNITS][variant][0] += 1
            for metric in exp.metrics:
                vec = _metric(metric, usage, t0)
                acc = stats[key][metric.key][variant]
                for i, v in enumerate(vec):
                    acc[i] += v

        days = sorted({t.date() for t, _, _ in usage})
        for d in days:
            active[d] += 1
        if days:
            new[days[0]] += 1

        latest: dict[str, tuple[datetime, float]] = {}
        comments: dict[str, int] = defaultdict(int)
        for e in sorted(evs, key=lambda e: e["occurred_at"]):
            t = _ms(_time(e["occurred_at"]))
            if e["type"] != "feedback" or not consenting(t):
                continue
            p = e["payload"]
            if p["kind"] in ("rating", "nps"):
                latest[p["kind"]] = (t, float(p["score"]))
            elif p["kind"] == "sus":
                a = p["answers"]
                latest["sus"] = (t, 2.5 * sum((a[i] - 1) if i % 2 == 0 else (5 - a[i]) for i in range(10)))
            elif p["kind"] in ("comment", "idea"):
                comments[p["kind"]] += 1
        scopes = [("", ""), *variants.items()]
        for kind, (_, value) in latest.items():
            bucket = (
                ("promoter" if value >= 9 else "passive" if value >= 7 else "detractor")
                if kind == "nps"
                else f"{value:g}"
                if kind == "rating"
                else "score"
            )
            for exp_key, variant in scopes:
                acc = feedback[(exp_key, variant, kind, bucket)]
                acc[0] += 1
                acc[1] += value
        for kind, n in comments.items():
            for exp_key, variant in scopes:
                feedback[(exp_key, variant, kind, "count")][0] += n

    return Truth(
        {k: {m: {v: tuple(vec) for v, vec in by_v.items()} for m, by_v in by_m.items()} for k, by_m in stats.items()},
        dict(active),
        dict(new),
        {k: (v[0], v[1]) for k, v in feedback.items()},
    )


def _metric(metric: MetricSpec, usage: list[tuple[datetime, str, float | None]], t0: datetime) -> tuple[float, ...]:
    def total(start: datetime, end: datetime, action: str, aggregate: str, binary: bool) -> float:
        hits = [(a, v) for t, a, v in usage if start <= t < end and (action in (a, ANY_ACTION))]
        if binary:
            return 1.0 if hits else 0.0
        if aggregate == "count":
            return float(len(hits))
        return float(sum(v or 0.0 for _, v in hits))

    if metric.type == "retention":
        week = metric.week or 0
        x = total(t0 + timedelta(days=7 * week), t0 + timedelta(days=7 * week + 7), metric.action, "count", True)
        return (1.0, x, x * x, 0.0, 0.0, 0.0)
    end = t0 + timedelta(days=metric.window_days)
    binary = metric.type == "proportion"
    x = total(t0, end, metric.action, metric.aggregate, binary)
    if metric.type == "ratio" and metric.denominator:
        d = total(t0, end, metric.denominator, metric.denominator_aggregate, False)
        return (1.0, x, x * x, d, d * d, x * d)
    if metric.covariate_days:
        pre = total(t0 - timedelta(days=metric.covariate_days), t0, metric.action, metric.aggregate, binary)
        return (1.0, x, x * x, pre, pre * pre, x * pre)
    return (1.0, x, x * x, 0.0, 0.0, 0.0)
