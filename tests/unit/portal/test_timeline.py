"""A pilot's timeline on SQLite and PostgreSQL: stage gates, experiments started and stopped, plan changes
and decisions for the lab; for citizens only what happened and the decisions' published summaries."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from experiments import board, moderation
from experiments.readmodels.timeline import (
    BoardDecision,
    ExperimentStarted,
    ExperimentStopped,
    PlanChanged,
    PublishedDecision,
    StageGate,
    pilot_timeline,
)
from experiments.specs import parse_pilot_spec
from experiments.store import Store, StoreError

SPEC = (Path(__file__).resolve().parents[3] / "examples" / "bike-share.yaml").read_text()


def _decide(store: Store, experiment: str, outcome: str, rationale: str) -> int:
    snap = board.take_snapshot(store, board.evaluate(store, experiment))
    return board.record_decision(store, snap.id, outcome, rationale, ["Ana", "Bo"], recorded_by="ana").id


def _lived(store: Store) -> tuple[int, int]:
    """Registers the bike-share pilot at stage prototype, moves it to pilot, changes a plan, stops its
    experiment, records two decisions and publishes the summary of the second one."""
    spec = parse_pilot_spec(SPEC.replace("stage: pilot ", "stage: prototype "))
    store.apply_pilot(spec, actor="ana", reason="registered")
    store.apply_pilot(dataclasses.replace(spec, stage="pilot"), actor="bo", reason="prototype passed its tests")
    exp = spec.experiments[0]
    store.apply_pilot(
        dataclasses.replace(spec, stage="pilot", experiments=(dataclasses.replace(exp, planned_sample=5000),)),
        actor="ana",
        reason="more precision",
    )
    first = _decide(store, exp.key, "iterate", "internal: the guided ride needs work")
    store.set_status(exp.key, "stopped", actor="ana", reason="sample reached")
    second = _decide(store, exp.key, "go", "internal: strong effect")
    moderation.publish_summary(
        store,
        second,
        "Vous l'avez demandé : le premier trajet guidé est adopté.",
        "You asked for it: the guided first ride is adopted.",
        actor="chloe",
    )
    return first, second


def test_the_labs_timeline_holds_every_gate_start_stop_change_and_decision_in_order(store: Store) -> None:
    first, second = _lived(store)
    timeline = pilot_timeline(store, "bike-share")
    kinds = [type(e).__name__ for e in timeline.entries]
    assert kinds[:2] == ["StageGate", "ExperimentStarted"]
    assert [(g.previous, g.stage, g.actor, g.reason) for g in timeline.gates] == [
        (None, "prototype", "ana", "registered"),
        ("prototype", "pilot", "bo", "prototype passed its tests"),
    ]
    assert timeline.stage == "pilot" and timeline.stages_reached == ("prototype", "pilot")
    changes = [e for e in timeline.entries if isinstance(e, PlanChanged) and e.field == "planned_sample"]
    assert [(c.old, c.new, c.actor, c.reason) for c in changes][-1] == (4000, 5000, "ana", "more precision")
    stops = [e for e in timeline.entries if isinstance(e, ExperimentStopped)]
    assert [(s.experiment, s.reason) for s in stops] == [("onboarding-v2", "sample reached")]
    decisions = [e for e in timeline.entries if isinstance(e, BoardDecision)]
    assert [(d.decision_id, d.outcome, d.rationale) for d in decisions] == [
        (first, "iterate", "internal: the guided ride needs work"),
        (second, "go", "internal: strong effect"),
    ]
    assert [e.at for e in timeline.entries] == sorted(e.at for e in timeline.entries)
    # The stop comes before the second decision, the start before the first.
    assert kinds.index("ExperimentStopped") < len(kinds) - 1 - kinds[::-1].index("BoardDecision")


def test_the_citizens_timeline_shows_only_what_happened_and_the_published_summaries(store: Store) -> None:
    _first, second = _lived(store)
    timeline = pilot_timeline(store, "bike-share", public=True)
    assert timeline.public
    assert {type(e) for e in timeline.entries} == {StageGate, ExperimentStarted, ExperimentStopped, PublishedDecision}
    published = [e for e in timeline.entries if isinstance(e, PublishedDecision)]
    assert [(p.decision_id, p.outcome) for p in published] == [(second, "go")]
    assert published[0].summary("fr").startswith("Vous l'avez demandé")
    assert published[0].summary("en").startswith("You asked for it")
    # No lab member's name, no internal reason, no rationale anywhere in the citizens' version.
    text = repr(timeline)
    for private in ("ana", "bo'", "chloe", "internal", "registered", "sample reached"):
        assert private not in text


def test_a_started_experiment_appears_once_whether_created_running_or_started_later(store: Store) -> None:
    spec = parse_pilot_spec(SPEC)
    store.apply_pilot(spec, start=False, actor="ana")
    assert not [e for e in pilot_timeline(store, "bike-share").entries if isinstance(e, ExperimentStarted)]
    store.set_status("onboarding-v2", "running", actor="bo", reason="go live")
    store.set_status("onboarding-v2", "stopped", actor="bo")
    store.set_status("onboarding-v2", "running", actor="bo", reason="one more week")
    starts = [e for e in pilot_timeline(store, "bike-share").entries if isinstance(e, ExperimentStarted)]
    assert [(s.restarted, s.reason) for s in starts] == [(False, "go live"), (True, "one more week")]


def test_a_summary_missing_in_one_language_falls_back_to_the_other_and_can_be_withdrawn(store: Store) -> None:
    spec = parse_pilot_spec(SPEC)
    store.apply_pilot(spec)
    decision = _decide(store, "onboarding-v2", "iterate", "why")
    moderation.publish_summary(store, decision, "", "Only in English", actor="ana")
    entries = pilot_timeline(store, "bike-share", public=True).entries
    [published] = [e for e in entries if isinstance(e, PublishedDecision)]
    assert published.summary("fr") == published.summary("en") == "Only in English"
    moderation.withdraw_summary(store, decision)
    assert not [e for e in pilot_timeline(store, "bike-share", public=True).entries if isinstance(e, PublishedDecision)]


def test_bad_summaries_and_unknown_pilots_are_refused_naming_the_field(store: Store) -> None:
    spec = parse_pilot_spec(SPEC)
    store.apply_pilot(spec)
    decision = _decide(store, "onboarding-v2", "iterate", "why")
    with pytest.raises(StoreError, match="summary_fr == '' and summary_en == ''"):
        moderation.publish_summary(store, decision, " ", "", actor="ana")
    with pytest.raises(StoreError, match="summary_en holds a control character"):
        moderation.publish_summary(store, decision, "ok", "bad\x00", actor="ana")
    with pytest.raises(StoreError, match="decision == 999"):
        moderation.publish_summary(store, 999, "ok", "ok", actor="ana")
    with pytest.raises(StoreError, match="pilot == 'nope'"):
        pilot_timeline(store, "nope")
