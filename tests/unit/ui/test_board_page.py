"""The Decision board page: recommendation and reasons as the engine gives them, the scorecard, the
form that records a decision against a snapshot of what was shown (board and admin only), the history."""

from __future__ import annotations

from experiments import board
from experiments.store import Store
from tests.unit.ui.conftest import open_page, signed_in


def _board_on(role: str, experiment: str):  # type: ignore[no-untyped-def]
    at = open_page(signed_in(role), "board")
    at.selectbox(key="experiment_choice").select(experiment).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_board_shows_the_recommendation_its_reasons_and_the_scorecard(console: str) -> None:
    store = Store(console)
    ev = board.evaluate(store, "onboarding")
    at = _board_on("lab", "onboarding")
    shown = " ".join(m.value for m in at.markdown)
    assert f"Recommendation: {ev.recommendation.outcome}" in shown
    for reason in ev.recommendation.reasons:
        assert reason.text in shown
    metrics = {m.label: m.value for m in at.metric}
    for axis in ev.evidence.scorecard:
        expected = "no target" if axis.score is None else f"{axis.score * 100:.0f} % met"
        assert metrics[axis.name.capitalize()] == expected
    assert [i.value for i in at.info] == ["Board members record decisions; you are signed in with the lab role."]
    assert not at.get("form")
    assert {b.proto.label for b in at.get("download_button")} == {"Download HTML", "Download PDF"}


def test_a_board_member_records_a_decision_against_a_snapshot_of_what_was_shown(writable_console: str) -> None:
    store = Store(writable_console)
    store.set_status("onboarding", "stopped", actor="lab")
    at = _board_on("board", "onboarding")
    shown = board.evaluate(store, "onboarding")
    at.selectbox(key="decision_outcome").select("go")
    at.text_area(key="decision_rationale").input("Clear gain on trips, no harm on support calls.")
    at.text_area(key="decision_members").input("Ana Ruiz\nBen Okafor\n")
    at.text_area(key="decision_conditions").input("Review the north district in three months.")
    at.get("form_submit_button")[0].click().run()  # type: ignore[attr-defined]
    assert not at.exception
    assert any("Decision 1 recorded: go" in s.value for s in at.success)
    (decision,) = board.decision_history(store, "bike-share")
    assert decision.outcome == "go"
    assert decision.members == ("Ana Ruiz", "Ben Okafor")
    assert decision.recorded_by == "board-user"
    assert decision.recommendation == shown.recommendation.outcome
    snapshot = board.snapshot(store, decision.snapshot_id)
    assert board.verify_snapshot(store, snapshot.id)
    assert snapshot.content["results"]["analysis"] == board.snapshot_content(shown)["results"]["analysis"]
    assert store.experiment("onboarding").status == "decided"
    history = at.dataframe[-1].value
    assert list(history["Snapshot SHA-256"]) == [snapshot.digest]


def test_a_decision_without_rationale_is_refused_with_the_field_named(writable_console: str) -> None:
    store = Store(writable_console)
    at = _board_on("admin", "reminders")
    at.text_area(key="decision_members").input("Ana Ruiz")
    at.get("form_submit_button")[0].click().run()  # type: ignore[attr-defined]
    assert any(e.value.startswith("Not recorded: rationale ==") for e in at.error)
    assert board.decision_history(store, "bike-share") == ()
