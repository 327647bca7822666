"""Merged ideas' votes: each participant's latest vote counts once per canonical idea, in the processor
(recounted when a merge changes the registry) and in the store's merge map."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from experiments import models as m
from experiments import moderation
from experiments.attribution import PilotLog, PilotRuntime, canonical_idea, contributions
from experiments.specs import parse_pilot_spec
from experiments.store import Store, StoreError
from streams.events import new_event
from streams.processor import Incoming, Outcome, ParticipantState, Processor, Registry
from tests.support.records import decoded_record

SPEC = "pilot: {key: town, name: Town, consent: collected_by_service}\n"
PILOT = parse_pilot_spec(SPEC)
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
A, B, C = (str(uuid.UUID(int=i)) for i in (1, 2, 3))


def _registry(merged: dict[str, str] | None = None) -> Registry:
    return Registry.of({"town": PilotRuntime(PILOT, {}, merged or {})})


def _votes(figures: dict[Any, Any]) -> dict[str, tuple[float, ...]]:
    return {key[4]: vec for key, vec in figures.items() if key[0] == "f" and key[3] == "vote"}


def test_a_participants_latest_vote_counts_once_for_the_canonical_idea() -> None:
    log = PilotLog()
    log.add_feedback(1000, "vote", 1.0, None, A, None)
    log.add_feedback(2000, "vote", -1.0, None, B, None)
    log.add_feedback(3000, "vote", 1.0, None, C, None)
    apart = contributions(log, PilotRuntime(PILOT, {}))
    assert _votes(apart.figures) == {A: (1.0, 1.0, 1.0), B: (1.0, -1.0, 1.0), C: (1.0, 1.0, 1.0)}
    merged = contributions(log, PilotRuntime(PILOT, {}, {B: A}))
    # B's vote came after A's: the latest vote on the merged idea is -1, one voter.
    assert _votes(merged.figures) == {A: (1.0, -1.0, 1.0), C: (1.0, 1.0, 1.0)}


def test_a_chain_of_merges_ends_at_its_canonical_idea_and_a_cycle_does_not_loop() -> None:
    assert canonical_idea({A: B, B: C}, A) == C
    assert canonical_idea({A: B}, C) == C
    assert canonical_idea({A: B, B: A}, A) in {A, B}


def test_a_merge_in_the_registry_changes_its_digest_and_the_processor_recounts_distinct_voters() -> None:
    proc = Processor(_registry(), grace_ms=30 * 86_400_000, clock=lambda: NOW.timestamp() + 3600)
    # Three citizens vote for A, two of them also for its duplicate B, one only for B.
    voters = {"p1": (A, B), "p2": (A, B), "p3": (A,), "p4": (B,)}
    events = [
        new_event(
            "feedback",
            "town",
            pid,
            {"kind": "vote", "target": idea, "score": 1},
            occurred_at=NOW - timedelta(minutes=10 - i),
        )
        for pid, ideas in voters.items()
        for i, idea in enumerate(ideas)
    ]
    states: dict[bytes, ParticipantState] = {}
    groups: dict[str, list[Incoming]] = defaultdict(list)
    for offset, ev in enumerate(events):
        groups[ev["participant_id"]].append(decoded_record(orjson.dumps(ev), "t.feedback", 0, offset, "t.erasure"))
    outcome = Outcome()
    for pid, records in groups.items():
        new = proc.process(None, records, outcome)
        assert new is not None
        states[pid.encode()] = new
    proc.end_batch()

    def votes() -> dict[str, list[float]]:
        return {key[5]: vec for key, vec in proc.aggregates.sums[0].items() if key[1] == "f" and key[4] == "vote"}

    assert votes() == {A: [3.0, 3.0, 3.0], B: [3.0, 3.0, 3.0]}
    merged = _registry({B: A})
    assert merged.digest != proc.registry.digest
    proc.registry = merged
    proc.rebuild(((k.decode(), s) for k, s in states.items()), [0])
    # Four distinct voters for A and its duplicate, none left on B.
    assert votes()[A] == [4.0, 4.0, 4.0]
    assert votes().get(B, [0.0])[0] == 0.0


def _idea(store: Store, event_id: str, pilot: str = "town") -> None:
    store.write_rows(
        {
            m.FeedbackText: [
                {
                    "event_id": event_id,
                    "pilot_key": pilot,
                    "participant_id": "p",
                    "kind": "idea",
                    "text": "an idea",
                    "occurred_at": NOW,
                    "variants": {},
                }
            ]
        }
    )


def test_the_store_resolves_merge_chains_and_refuses_merges_that_would_loop(store: Store) -> None:
    store.apply_pilot(PILOT)
    store.apply_pilot(parse_pilot_spec(SPEC.replace("town", "city")))
    for idea in (A, B, C):
        _idea(store, idea)
    other = str(uuid.UUID(int=9))
    _idea(store, other, "city")
    moderation.merge(store, A, B, actor="ana")
    moderation.merge(store, B, C, actor="ana")
    assert store.idea_merges() == {"town": {A: C, B: C}}
    assert store.pilot_runtimes()["town"].merged_ideas == {A: C, B: C}
    with pytest.raises(StoreError, match="merge the other way"):
        moderation.merge(store, C, A, actor="ana")
    with pytest.raises(StoreError, match="into itself"):
        moderation.merge(store, C, C, actor="ana")
    with pytest.raises(StoreError, match="an idea of pilot 'city'"):
        moderation.merge(store, C, other, actor="ana")
    moderation.unmerge(store, B, actor="ana")
    assert store.idea_merges() == {"town": {A: B}}


def test_ideas_carry_a_title_theme_and_district_reports_a_target_and_both_are_stored_as_texts() -> None:
    from streams.events import InvalidEvent, decode_event, parse_event

    idea = new_event(
        "feedback",
        "town",
        "p1",
        {"kind": "idea", "text": "Benches", "title": "More benches", "theme": "public-space", "district": "north"},
        occurred_at=NOW,
    )
    report = new_event("feedback", "town", "p2", {"kind": "report", "target": idea["event_id"]}, occurred_at=NOW)
    for raw in (idea, report):
        assert decode_event(orjson.dumps(raw)) is not None and parse_event(raw) is not None
    with pytest.raises(InvalidEvent, match=r"payload\.title: must be left out for comment"):
        parse_event(new_event("feedback", "town", "p", {"kind": "comment", "text": "x", "title": "t"}))
    with pytest.raises(InvalidEvent, match=r"payload\.target"):
        parse_event(new_event("feedback", "town", "p", {"kind": "report"}))
    with pytest.raises(InvalidEvent, match=r"payload\.title"):
        parse_event(new_event("feedback", "town", "p", {"kind": "idea", "text": "x", "title": "t" * 201}))
    proc = Processor(_registry(), grace_ms=30 * 86_400_000, clock=lambda: NOW.timestamp() + 3600)
    outcome = Outcome()
    for offset, raw in enumerate((idea, report)):
        proc.process(None, [decoded_record(orjson.dumps(raw), "t.feedback", 0, offset, "t.erasure")], outcome)
    stored = {row["kind"]: row for row in outcome.texts}
    assert (stored["idea"]["title"], stored["idea"]["theme"], stored["idea"]["district"]) == (
        "More benches",
        "public-space",
        "north",
    )
    assert (stored["report"]["target"], stored["report"]["text"]) == (idea["event_id"], "")
