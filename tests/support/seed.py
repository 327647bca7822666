"""Seeding a store directly through the models, as the workers' sink would have written it.

`seed_pilot` applies a pilot spec and writes, per Kafka partition, everything the console reads:
aggregates (segment "" and one per district), their hourly history, daily adoption, retention
cohorts, feedback statistics and texts. Participants are simulated with a seeded generator, so a
seed gives the same store every time; the true effect of each treatment is `effect` (relative, on
the primary proportion). `seed_portfolio` seeds many pilots for the console benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import insert, update

from experiments import models as m
from experiments.registry import PilotSpec
from experiments.specs import parse_pilot_spec
from experiments.store import UNITS, Store

DISTRICTS = ("north", "south", "east", "west", "centre")
DISTRICT_WEIGHTS = (0.3, 0.25, 0.2, 0.15, 0.1)
CHANNELS = ("android", "ios", "web")
COMMENTS = (
    "The guided first ride made unlocking the bike easy",
    "Not enough bikes near the station in the morning",
    "Battery was low on the bike at the station",
    "Great service, I ride to work every day now",
    "The app crashed when I tried to pay",
    "More bikes in the north district please",
)
IDEAS = ("Add child seats to some bikes", "A docking station next to the north library", "Monthly pass for students")
#: Metrics of every seeded experiment: (key, type, higher is better).
METRICS = (
    ("converted", "proportion", True),
    ("minutes", "mean", True),
    ("minutes_per_trip", "ratio", True),
    ("support_calls", "proportion", False),
)

Rows = dict[type[m.Base], list[dict[str, Any]]]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ExperimentPlan:
    """One experiment to seed: its treatments' true relative effect on `converted`."""

    key: str
    treatments: tuple[str, ...] = ("guided",)
    effect: float = 0.2
    participants: int = 1200
    engine: str = "frequentist"
    correction: str = "none"
    planned_sample: int = 4000
    status: str = "running"


def pilot_yaml(key: str, experiments: Sequence[ExperimentPlan], *, start: date, name: str | None = None) -> str:
    """Returns the YAML spec of a seeded pilot (the bike-share example's shape)."""
    lines = [
        "pilot:",
        f"  key: {key}",
        f"  name: {name or key.replace('-', ' ').capitalize()}",
        "  stage: pilot",
        "  consent: collected_by_service",
        "  budget: 60000",
        "  population: 20000",
        f"  districts: [{', '.join(DISTRICTS)}]",
        "  segments: [district, channel]",
        "  key_action: converted",
        f"  start: {start.isoformat()}",
        f"  next_decision: {(start + timedelta(days=60)).isoformat()}",
        "experiments:",
    ]
    for plan in experiments:
        arms = ", ".join(f"{v}: {w}" for v, w in zip(("control", *plan.treatments), _weights(plan), strict=True))
        lines += [
            f"  - key: {plan.key}",
            "    hypothesis: A guided first use raises the share of citizens who convert.",
            f"    variants: {{{arms}}}",
            "    metrics:",
            "      - {key: converted, type: proportion, action: converted, window_days: 7}",
            "      - {key: minutes, type: mean, action: ride, window_days: 7}",
            "      - {key: minutes_per_trip, type: ratio, action: ride, denominator: converted, window_days: 7}",
            "      - {key: support_calls, type: proportion, action: support_call, higher_is_better: false}",
            "    primary: converted",
            "    secondary: [minutes, minutes_per_trip]",
            "    guardrails: [{metric: support_calls, tolerance: 0.0}]",
            f"    analysis: {{engine: {plan.engine}, difference: relative, correction: {plan.correction}}}",
            f"    planned_sample: {plan.planned_sample}",
        ]
    lines += [
        "decision:",
        "  minimum_effect: 0.0",
        "  min_active_participants: 500",
        "  max_cost_per_active: 120",
        "  min_district_reach: 0.8",
        "  max_reach_gap: 0.9",
        "  min_nps: -50",
        "  min_rating: 3.0",
    ]
    return "\n".join(lines) + "\n"


def _weights(plan: ExperimentPlan) -> tuple[float, ...]:
    """Returns the variants' weights as the spec writes them (they must sum to exactly 1)."""
    return {1: (0.5, 0.5), 2: (0.34, 0.33, 0.33)}[len(plan.treatments)]


def _experiment_rows(
    plan: ExperimentPlan,
    rng: np.random.Generator,
    now: datetime,
    days: int,
    partitions: int,
) -> Rows:
    """Returns the aggregates and the history by day of first exposure of one experiment's simulated
    participants."""
    variants = ("control", *plan.treatments)
    n = plan.participants
    arm = rng.choice(len(variants), n, p=_weights(plan))
    partition = rng.integers(0, partitions, n)
    district = rng.choice(len(DISTRICTS), n, p=DISTRICT_WEIGHTS)
    arrival_hours = np.sort(rng.uniform(0, days * 24, n))
    lift = np.where(arm > 0, 1 + plan.effect, 1.0)
    converted = (rng.random(n) < 0.3 * lift).astype(float)
    trips = converted * rng.poisson(2.0, n) + converted
    minutes = trips * rng.gamma(4.0, 3.5, n)
    support = (rng.random(n) < 0.05).astype(float)
    values: dict[str, tuple[FloatArray, FloatArray]] = {
        UNITS: (np.ones(n), np.zeros(n)),
        "converted": (converted, np.zeros(n)),
        "minutes": (minutes, np.zeros(n)),
        "minutes_per_trip": (minutes, trips),
        "support_calls": (support, np.zeros(n)),
    }
    frame = pd.DataFrame({"arm": arm, "partition": partition, "district": district, "hour": arrival_hours})
    for metric, (y, x) in values.items():
        frame[f"{metric}|n"] = np.ones(n)
        frame[f"{metric}|s"] = y
        frame[f"{metric}|ss"] = y * y
        frame[f"{metric}|xs"] = x
        frame[f"{metric}|xss"] = x * x
        frame[f"{metric}|sp"] = x * y
    rows: Rows = {m.Aggregate: [], m.ExposureDay: []}
    sums = [c for c in frame.columns if "|" in c]
    updated = now - timedelta(minutes=5)
    for segment_of, groups in (
        (lambda _: "", ["arm", "partition"]),
        (lambda d: f"district:{DISTRICTS[d]}", ["arm", "partition", "district"]),
    ):
        for key, group in frame.groupby(groups)[sums].sum().iterrows():
            arm_index, part = int(key[0]), int(key[1])
            segment = segment_of(int(key[2])) if len(key) > 2 else ""
            for metric in values:
                rows[m.Aggregate].append(
                    {
                        "experiment_key": plan.key,
                        "metric": metric,
                        "variant": variants[arm_index],
                        "segment": segment,
                        "partition": part,
                        **_statistics(group, metric),
                        "updated_at": updated,
                    }
                )
    # Each participant's first exposure day (event time), as the workers keep the history (ExposureDay).
    start = now - timedelta(days=days)
    frame["day"] = [(start + timedelta(hours=float(h))).date() for h in frame["hour"]]
    for (arm_index, part, day), group in frame.groupby(["arm", "partition", "day"])[sums].sum().iterrows():
        for metric in values:
            rows[m.ExposureDay].append(
                {
                    "experiment_key": plan.key,
                    "metric": metric,
                    "variant": variants[int(arm_index)],
                    "partition": int(part),
                    "day": day,
                    **_statistics(group, metric),
                }
            )
    return rows


_PARTS = ("n", "s", "ss", "xs", "xss", "sp")


def _statistics(values: pd.Series, metric: str) -> dict[str, Any]:
    n, total, squares, x_total, x_squares, products = (float(values[f"{metric}|{part}"]) for part in _PARTS)
    return {
        "n": round(n),
        "sum": total,
        "sum_squares": squares,
        "x_sum": x_total,
        "x_sum_squares": x_squares,
        "sum_products": products,
    }


def _adoption_rows(
    pilot: str, rng: np.random.Generator, today: date, days: int, participants: int, partitions: int
) -> Rows:
    """Returns daily adoption and weekly retention rows of a pilot whose arrivals follow a Bass curve."""
    t = np.arange(days)
    p, q = 0.02, 0.15
    share = (1 - np.exp(-(p + q) * (t + 1))) / (1 + (q / p) * np.exp(-(p + q) * (t + 1)))
    first_day = np.searchsorted(share / share[-1], rng.random(participants), side="left").clip(0, days - 1)
    district = rng.choice(len(DISTRICTS), participants, p=DISTRICT_WEIGHTS)
    channel = rng.integers(0, len(CHANNELS), participants)
    partition = rng.integers(0, partitions, participants)
    records = []
    for person in range(participants):
        active_days = [int(first_day[person])]
        for day in range(int(first_day[person]) + 1, days):
            weeks = (day - first_day[person]) // 7
            if rng.random() < 0.3 * 0.7**weeks:
                active_days.append(day)
        activated_day = int(first_day[person] + rng.integers(0, 3))
        for day in active_days:
            records.append((person, day, day == first_day[person], day == activated_day))
    activity = pd.DataFrame(records, columns=["person", "day", "new", "activated"])
    activity["partition"] = partition[activity["person"]]
    activity["district"] = district[activity["person"]]
    activity["channel"] = channel[activity["person"]]
    start = today - timedelta(days=days - 1)
    cohort_day = {d: start + timedelta(days=d) for d in range(days)}
    activity["date"] = activity["day"].map(cohort_day)
    first = activity.groupby("person")["date"].transform("min")
    monday = first.map(lambda d: d - timedelta(days=d.weekday()))
    activity["cohort"] = monday
    activity["week"] = (activity["date"] - activity["cohort"]).map(lambda delta: delta.days // 7)
    segments = {
        "": None,
        "district": ("district", DISTRICTS),
        "channel": ("channel", CHANNELS),
    }
    rows: Rows = {m.DailyAdoption: [], m.RetentionCohort: []}
    for name, spec in segments.items():
        by = ["date", "partition"] + ([spec[0]] if spec else [])
        daily = activity.groupby(by).agg(active=("person", "size"), new=("new", "sum"), activated=("activated", "sum"))
        for key, row in daily.iterrows():
            segment = f"{name}:{spec[1][int(key[2])]}" if spec else ""
            rows[m.DailyAdoption].append(
                {
                    "pilot_key": pilot,
                    "day": key[0],
                    "segment": segment,
                    "partition": int(key[1]),
                    "active": int(row["active"]),
                    "new": int(row["new"]),
                    "activated": int(row["activated"]),
                }
            )
        weekly = activity.drop_duplicates(["person", "week"])
        by = ["cohort", "week", "partition"] + ([spec[0]] if spec else [])
        for key, count in weekly.groupby(by)["person"].size().items():
            segment = f"{name}:{spec[1][int(key[3])]}" if spec else ""
            rows[m.RetentionCohort].append(
                {
                    "pilot_key": pilot,
                    "cohort_week": key[0],
                    "week_index": int(key[1]),
                    "segment": segment,
                    "partition": int(key[2]),
                    "participants": int(count),
                }
            )
    return rows


def _feedback_rows(
    pilot: str,
    experiments: Sequence[ExperimentPlan],
    rng: np.random.Generator,
    now: datetime,
    respondents: int,
    partitions: int,
) -> Rows:
    """Returns feedback statistics (whole pilot, and per experiment and variant of the respondents'
    assignment) and the texts of comments and ideas."""
    stats: dict[tuple[str, str, str, str, int], list[float]] = {}

    def add(kind: str, bucket: str, part: int, value: float, scopes: Sequence[tuple[str, str]] = (("", ""),)) -> None:
        for experiment, variant in scopes:
            entry = stats.setdefault((experiment, variant, kind, bucket, part), [0.0, 0.0, 0.0])
            entry[0] += 1.0
            entry[1] += value
            entry[2] += value * value

    for _ in range(respondents):
        part = int(rng.integers(0, partitions))
        scopes = [("", "")] + [
            (plan.key, ("control", *plan.treatments)[int(rng.integers(0, 1 + len(plan.treatments)))])
            for plan in experiments
        ]
        rating = int(rng.choice(5, p=(0.05, 0.1, 0.2, 0.35, 0.3))) + 1
        add("rating", str(rating), part, float(rating), scopes)
        score = int(rng.choice(11, p=(*([0.04] * 7), 0.12, 0.14, 0.16, 0.30)))
        add("nps", "promoter" if score >= 9 else "passive" if score >= 7 else "detractor", part, float(score), scopes)
        add("sus", "score", part, float(rng.choice(np.arange(0, 101, 2.5))), scopes)
    texts: list[dict[str, Any]] = []
    for i in range(respondents // 4):
        part = int(rng.integers(0, partitions))
        add("comment", "count", part, 0.0)
        texts.append(_text(pilot, f"c{i}", "comment", COMMENTS[i % len(COMMENTS)], now - timedelta(minutes=7 * i)))
    for i, idea in enumerate(IDEAS):
        event_id = f"{pilot}-idea-{i}"
        add("idea", "count", i % partitions, 0.0)
        texts.append(_text(pilot, f"i{i}", "idea", idea, now - timedelta(hours=i + 1), event_id))
        for voter in range(5 * (len(IDEAS) - i)):
            add("vote", event_id, voter % partitions, 1.0 if voter % 7 else -1.0)
    rows: Rows = {
        m.FeedbackStat: [
            {
                "pilot_key": pilot,
                "experiment_key": experiment,
                "variant": variant,
                "kind": kind,
                "bucket": bucket,
                "partition": part,
                "n": round(n),
                "sum": total,
                "sum_squares": squares,
            }
            for (experiment, variant, kind, bucket, part), (n, total, squares) in stats.items()
        ],
        m.FeedbackText: texts,
    }
    return rows


def _text(pilot: str, suffix: str, kind: str, text: str, at: datetime, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or f"{pilot}-{suffix}",
        "pilot_key": pilot,
        "participant_id": f"p-{suffix}",
        "kind": kind,
        "text": text,
        "occurred_at": at,
        "variants": {},
    }


def _insert(store: Store, rows: Rows) -> None:
    """Inserts fresh rows in one transaction (executemany: far faster than the sink's upserts)."""
    with store.session() as s:
        for table, batch in rows.items():
            if batch:
                s.execute(insert(table), batch)


def seed_pilot(
    store: Store,
    key: str,
    experiments: Sequence[ExperimentPlan] = (ExperimentPlan("onboarding"),),
    *,
    days: int = 21,
    participants: int = 1500,
    partitions: int = 2,
    seed: int = 1,
    now: datetime | None = None,
) -> PilotSpec:
    """Returns the pilot spec applied to the store, after writing its simulated figures."""
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    today = now.date()
    spec = parse_pilot_spec(pilot_yaml(key, experiments, start=today - timedelta(days=days - 1)), f"{key}.yaml")
    store.apply_pilot(spec, actor="seed", reason="seeded for a test")
    rng = np.random.default_rng(seed)
    rows: Rows = {}
    for plan in experiments:
        for table, batch in _experiment_rows(plan, rng, now, days, partitions).items():
            rows.setdefault(table, []).extend(batch)
    for produced in (
        _adoption_rows(key, rng, today, days, participants, partitions),
        _feedback_rows(key, experiments, rng, now, max(20, participants // 10), partitions),
    ):
        for table, batch in produced.items():
            rows.setdefault(table, []).extend(batch)
    _insert(store, rows)
    with store.session() as s:
        s.execute(
            update(m.Experiment)
            .where(m.Experiment.key.in_([plan.key for plan in experiments]))
            .values(started_at=now - timedelta(days=days))
        )
    for plan in experiments:
        if plan.status in ("stopped", "decided"):
            store.set_status(plan.key, "stopped", actor="seed")
        if plan.status == "decided":
            store.set_status(plan.key, "decided", actor="seed")
    return spec


def seed_portfolio(
    store: Store,
    pilots: int = 50,
    experiments: int = 200,
    *,
    days: int = 21,
    participants: int = 600,
    seed: int = 7,
) -> list[PilotSpec]:
    """Returns the specs of `pilots` pilots sharing `experiments` experiments, seeded into the store."""
    specs = []
    engines = ("frequentist", "sequential", "bayesian")
    for i in range(pilots):
        count = experiments // pilots + (1 if i < experiments % pilots else 0)
        plans = [
            ExperimentPlan(
                f"p{i:02d}-exp{j}",
                treatments=("guided",) if (i + j) % 3 else ("guided", "express"),
                effect=(0.25, 0.0, -0.15, 0.1)[(i + j) % 4],
                participants=participants * 2,
                engine=engines[(i + j) % 3],
                correction="holm" if j % 2 else "none",
            )
            for j in range(count)
        ]
        specs.append(
            seed_pilot(
                store,
                f"pilot-{i:02d}",
                plans,
                days=days,
                participants=participants,
                seed=seed + i,
            )
        )
    return specs
