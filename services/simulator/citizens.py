"""Synthetic citizens of the demo pilots, with known true effects, generated deterministically.

`generate(behaviour, pilot, start, end, participants, seed)` returns the events (JSON objects of the
contract) that citizens of one pilot produce over a period, sorted by event time. The variant each
citizen sees comes from `experiments.assignment.variant_for`, as for a real pilot service.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from experiments.assignment import variant_for
from experiments.registry import PilotSpec
from streams.events import EventType, new_event

NAMESPACE = uuid.UUID("6f1c2b55-93a4-4b0e-9d0f-6a8f8c1e2d10")


@dataclass(frozen=True)
class VariantTruth:
    """How citizens behave under one variant: per-session probability of each action and the mean
    value it carries, plus satisfaction."""

    action_rates: Mapping[str, float]
    action_values: Mapping[str, float] = field(default_factory=dict)
    rating_mean: float = 3.8
    nps_mean: float = 7.0


@dataclass(frozen=True)
class Behaviour:
    """The true behaviour of a pilot's citizens (what the platform must rediscover)."""

    variants: Mapping[str, Mapping[str, VariantTruth]]
    #: Actions of any session, with their per-session probability and mean value.
    base_actions: Mapping[str, tuple[float, float | None]]
    #: Probability to come back on a given day, decaying with weeks since arrival.
    daily_return: float = 0.35
    weekly_decay: float = 0.7
    consent_rate: float = 0.92
    withdraw_rate: float = 0.03
    district_weights: Mapping[str, float] = field(default_factory=dict)
    channels: tuple[str, ...] = ("android", "ios", "web")
    feedback_rate: float = 0.25
    comments: tuple[str, ...] = ()
    ideas: tuple[str, ...] = ()


BIKE_SHARE = Behaviour(
    variants={
        "onboarding-v2": {
            "control": VariantTruth({"trip_completed": 0.30, "support_call": 0.05}, {"ride": 14.0}, 3.7, 6.8),
            "guided": VariantTruth({"trip_completed": 0.36, "support_call": 0.05}, {"ride": 15.5}, 4.0, 7.4),
        }
    },
    base_actions={"app_open": (1.0, None), "ride": (0.45, 14.0), "search_bike": (0.6, None)},
    district_weights={"north": 0.3, "south": 0.25, "east": 0.2, "west": 0.15, "centre": 0.1},
    comments=(
        "The guided first ride made unlocking the bike easy",
        "Not enough bikes near the station in the morning",
        "Battery was low on the bike at the station",
        "Great service, I ride to work every day now",
        "The app crashed when I tried to pay",
        "More bikes in the north district please",
        "Unlocking the bike took too long",
    ),
    ideas=(
        "Add child seats to some bikes",
        "A docking station next to the north library",
        "Monthly pass for students",
    ),
)

PARKING_FINDER = Behaviour(
    variants={
        "alert-timing": {
            "control": VariantTruth({"parked": 0.55}, {"search": 9.0}, 3.6, 6.5),
            "early": VariantTruth({"parked": 0.63}, {"search": 7.8}, 4.1, 7.6),
            "late": VariantTruth({"parked": 0.53}, {"search": 9.4}, 3.4, 6.2),
        }
    },
    base_actions={"app_open": (1.0, None), "search": (0.8, 9.0)},
    daily_return=0.3,
    district_weights={"north": 0.25, "south": 0.25, "east": 0.2, "west": 0.2, "centre": 0.1},
    comments=(
        "The early alert found me a space near the market",
        "Alerts arrive too late when I am already in the street",
        "The map is hard to read while driving",
        "Found a free space in two minutes, great",
        "Sensors in the east district seem wrong",
    ),
    ideas=("Show disabled parking spaces", "Voice alerts for drivers", "Show the price of each street"),
)

BEHAVIOURS: dict[str, Behaviour] = {"bike-share": BIKE_SHARE, "parking-finder": PARKING_FINDER}


def _event_id(seed: int, pilot: str, n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{seed}:{pilot}:{n}"))


def generate(
    behaviour: Behaviour,
    pilot: PilotSpec,
    start: datetime,
    end: datetime,
    participants: int,
    seed: int = 1,
    *,
    id_prefix: str = "p",
    arrival_end: datetime | None = None,
) -> list[dict[str, Any]]:
    """Returns the pilot's events between `start` and `end`, sorted by event time.

    Citizens arrive following a Bass-like curve until `arrival_end` (default `end`); each consents
    (if the pilot requires it), is exposed to every experiment, uses the service in sessions on the
    days after, sometimes rates it, answers NPS or SUS, comments, proposes or votes on ideas.
    """
    rng = np.random.default_rng(seed)
    arrival_end = arrival_end or end
    span = (arrival_end - start).total_seconds()
    # Bass-shaped arrivals: the adoption rate rises then falls over the arrival window.
    u = np.sort(rng.beta(1.6, 1.3, size=participants))
    arrivals = [start + timedelta(seconds=float(x * span)) for x in u]
    districts = list(behaviour.district_weights) or list(pilot.districts) or ["centre"]
    dw = np.array([behaviour.district_weights.get(d, 1.0) for d in districts], dtype=float)
    dw /= dw.sum()
    counter = 0
    events: list[dict[str, Any]] = []
    ideas: list[str] = []

    def emit(kind: EventType, pid: str, payload: dict[str, Any], at: datetime) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        ev = new_event(
            kind,
            pilot.key,
            pid,
            payload,
            occurred_at=at,
            source="simulator",
            event_id=_event_id(seed, pilot.key, counter),
        )
        if at < end:
            events.append(ev)
        return ev

    for i, arrived in enumerate(arrivals):
        pid = f"{id_prefix}-{pilot.key}-{seed}-{i}"
        district = str(rng.choice(districts, p=dw))
        channel = str(rng.choice(behaviour.channels))
        props = {"district": district, "channel": channel}
        t = arrived
        if pilot.consent == "required":
            if rng.random() > behaviour.consent_rate:
                continue
            emit("consent", pid, {"granted": True, "scope": "usage"}, t)
            t += timedelta(seconds=1)
        seen: dict[str, str] = {}
        for exp in pilot.experiments:
            variant = variant_for(pilot, exp, pid)
            if variant is None:
                continue
            seen[exp.key] = variant
            emit("exposure", pid, {"experiment": exp.key, "variant": variant}, t)
        t += timedelta(seconds=2)
        truths = [behaviour.variants[e][v] for e, v in seen.items() if e in behaviour.variants]
        withdraw_day = int(rng.integers(1, 20)) if rng.random() < behaviour.withdraw_rate else None
        day = 0
        session_at = t
        while session_at < end:
            if withdraw_day is not None and day == withdraw_day and pilot.consent == "required":
                emit("consent", pid, {"granted": False, "scope": "usage"}, session_at)
                break
            _session(emit, rng, behaviour, truths, pid, props, session_at)
            if rng.random() < behaviour.feedback_rate / (1 + day):
                _feedback(emit, rng, behaviour, truths, pid, session_at + timedelta(minutes=20), ideas)
            # Next active day: geometric gaps, fewer returns as weeks pass.
            p_return = behaviour.daily_return * behaviour.weekly_decay ** (day / 7)
            gap = int(rng.geometric(max(p_return, 0.02)))
            day += gap
            session_at = t + timedelta(days=day, hours=float(rng.uniform(-3, 3)))
            if session_at <= t:
                session_at = t + timedelta(minutes=5)
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return events


def _session(
    emit: Any,
    rng: np.random.Generator,
    behaviour: Behaviour,
    truths: list[VariantTruth],
    pid: str,
    props: dict[str, str],
    at: datetime,
) -> None:
    session = f"s-{pid}-{int(at.timestamp())}"
    rates: dict[str, tuple[float, float | None]] = dict(behaviour.base_actions)
    for truth in truths:
        for action, rate in truth.action_rates.items():
            rates[action] = (rate, truth.action_values.get(action))
        for action, value in truth.action_values.items():
            rate, _ = rates.get(action, (1.0, None))
            rates[action] = (rate, value)
    offset = 0
    for action, (p, mean) in sorted(rates.items()):
        if rng.random() < p:
            offset += int(rng.integers(5, 120))
            amount = None if mean is None else round(float(rng.gamma(4.0, mean / 4.0)), 2)
            emit(
                "usage",
                pid,
                {"action": action, "value": amount, "session_id": session, "properties": props},
                at + timedelta(seconds=offset),
            )


def _feedback(
    emit: Any,
    rng: np.random.Generator,
    behaviour: Behaviour,
    truths: list[VariantTruth],
    pid: str,
    at: datetime,
    ideas: list[str],
) -> None:
    truth = truths[0] if truths else VariantTruth({})
    kind = str(rng.choice(["rating", "nps", "sus", "comment", "idea", "vote"], p=[0.3, 0.25, 0.1, 0.2, 0.05, 0.1]))
    if kind == "rating":
        emit(
            "feedback",
            pid,
            {"kind": "rating", "score": int(np.clip(round(rng.normal(truth.rating_mean, 0.9)), 1, 5))},
            at,
        )
    elif kind == "nps":
        emit(
            "feedback",
            pid,
            {"kind": "nps", "score": int(np.clip(round(rng.normal(truth.nps_mean, 2.0)), 0, 10))},
            at,
        )
    elif kind == "sus":
        lean = truth.rating_mean - 3.0
        answers = [
            int(np.clip(round(3 + (lean if i % 2 == 0 else -lean) + rng.normal(0, 0.8)), 1, 5)) for i in range(10)
        ]
        emit("feedback", pid, {"kind": "sus", "answers": answers}, at)
    elif kind == "comment" and behaviour.comments:
        emit("feedback", pid, {"kind": "comment", "text": str(rng.choice(behaviour.comments))}, at)
    elif kind == "idea" and behaviour.ideas:
        ev = emit("feedback", pid, {"kind": "idea", "text": str(rng.choice(behaviour.ideas))}, at)
        ideas.append(ev["event_id"])
    elif kind == "vote" and ideas:
        emit("feedback", pid, {"kind": "vote", "target": str(rng.choice(ideas)), "score": 1}, at)
