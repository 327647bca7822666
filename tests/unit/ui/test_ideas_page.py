"""The Ideas page (Lab), in French (the console's default language): reported texts first, hidden with a
public reason, an idea's status, a duplicate merged, a decision's summary published to the portal;
citizens' texts shown as plain text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from experiments import board
from experiments import models as m
from experiments.readmodels import ideas as idea_reads
from experiments.readmodels.timeline import PublishedDecision, pilot_timeline
from experiments.store import Store
from tests.unit.ui.conftest import open_page, signed_in

HOSTILE = "**bold** <b>html</b> :red[red]"


def _texts(store: Store) -> tuple[str, str, str]:
    """Adds a reported comment and two ideas to the bike-share pilot; returns their event ids."""
    ids = tuple(str(uuid.uuid4()) for _ in range(3))
    at = datetime(2026, 11, 20, tzinfo=UTC)
    rows = [
        {"event_id": ids[0], "pilot_key": "bike-share", "participant_id": "p1", "kind": "comment", "text": HOSTILE,
         "occurred_at": at, "variants": {}},
        {"event_id": ids[1], "pilot_key": "bike-share", "participant_id": "p2", "kind": "idea",
         "text": "Student pass", "title": "Student pass", "occurred_at": at, "variants": {}},
        {"event_id": ids[2], "pilot_key": "bike-share", "participant_id": "p3", "kind": "idea",
         "text": "Pass for students", "title": "Pass for students", "occurred_at": at, "variants": {}},
        {"event_id": str(uuid.uuid4()), "pilot_key": "bike-share", "participant_id": "p4", "kind": "report",
         "text": "rude", "target": ids[0], "occurred_at": at, "variants": {}},
    ]  # fmt: skip
    empty = {"title": None, "theme": None, "district": None, "target": None}
    store.write_rows({m.FeedbackText: [{**empty, **row} for row in rows]})
    return ids


def test_the_lab_hides_a_reported_comment_with_a_public_reason(writable_console: str) -> None:
    store = Store(writable_console)
    comment, _idea, _other = _texts(store)
    at = open_page(signed_in("lab", "fr"), "ideas")
    assert at.expander[0].label.startswith("Commentaire") and "signalé par 1" in at.expander[0].label
    shown = [t.value for t in at.text]
    assert HOSTILE in shown and "rude" in " ".join(shown)
    at.text_input(key=f"reason-{comment}").input("Insults are not accepted.")
    for button in at.button:
        if button.label == "Masquer" and button.form_id == f"hide-{comment}":
            button.click().run()
    queue = idea_reads.moderation_queue(store, "bike-share")
    hidden = next(q for q in queue if q.event_id == comment)
    assert (hidden.hidden, hidden.public_reason) == (True, "Insults are not accepted.")


def test_the_lab_merges_a_duplicate_and_gives_an_idea_a_status(writable_console: str) -> None:
    store = Store(writable_console)
    _comment, idea, other = _texts(store)
    at = open_page(signed_in("lab", "fr"), "ideas")
    at.selectbox(key=f"into-{other}").set_value(idea)
    for button in at.button:
        if button.label == "Regrouper" and button.form_id == f"merge-{other}":
            button.click().run()
    assert store.idea_merges() == {"bike-share": {other: idea}}
    at.selectbox(key=f"status-{idea}").set_value("not_retained")
    at.text_area(key=f"why-{idea}").input("Already planned by the region.")
    for button in at.button:
        if button.label == "Enregistrer le statut" and button.form_id == f"status-{idea}":
            button.click().run()
    card = idea_reads.idea_cards(store, [idea])[idea]
    assert (card.status, card.status_reason) == ("not_retained", "Already planned by the region.")


def test_the_lab_publishes_a_decisions_summary_to_the_portal(writable_console: str) -> None:
    store = Store(writable_console)
    snap = board.take_snapshot(store, board.evaluate(store, "onboarding"))
    decision = board.record_decision(store, snap.id, "go", "internal rationale", ["Ana"], recorded_by="ana")
    at = open_page(signed_in("lab", "fr"), "ideas")
    at.text_area(key=f"summary-fr-{decision.id}").input("Vous l'avez dit : c'est fait.")
    at.text_area(key=f"summary-en-{decision.id}").input("You said it: done.")
    for button in at.button:
        if button.label == "Publier" and button.form_id == f"summary-{decision.id}":
            button.click().run()
    [published] = [
        e for e in pilot_timeline(store, "bike-share", public=True).entries if isinstance(e, PublishedDecision)
    ]
    assert (published.summary("fr"), published.summary("en")) == ("Vous l'avez dit : c'est fait.", "You said it: done.")
