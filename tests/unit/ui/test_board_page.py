"""The Decision board page: the one-minute summary, the recommendation and its reasons as the engine gives
them in the reader's language, the scorecard, the form (empty until the board chooses) that records a
decision against a snapshot of what was shown (board and admin only), the history and the timeline."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from experiments import board, report
from experiments import formatting as fmt
from experiments.store import Store
from tests.unit.ui.conftest import open_page, read, signed_in


def _board_on(role: str, experiment: str, language: str = "en") -> AppTest:
    at = open_page(signed_in(role, language), "board")
    at.selectbox(key="experiment_choice").select(experiment).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(at: AppTest) -> str:
    return " ".join(read(m.value) for m in at.markdown)


def test_board_shows_the_summary_the_recommendation_its_reasons_and_the_scorecard(console: str) -> None:
    store = Store(console)
    ev = board.evaluate(store, "onboarding")
    content = board.snapshot_content(ev)
    at = _board_on("lab", "onboarding")
    shown = _shown(at)
    said = report.summary(content, "en")
    assert said.recommendation.startswith("Recommendation: ")
    for part in (said.recommendation, said.tested, said.primary, *said.reasons):
        assert part and part in shown, part
    metrics = {m.label: m.value for m in at.metric}
    for axis in ev.evidence.scorecard:
        expected = "no target" if axis.score is None else f"{fmt.share(axis.score, 'en')} of targets met"
        assert metrics[fmt.term(fmt.AXES, axis.name, "en")] == expected
    assert [i.value for i in at.info] == ["Board members record decisions; you are signed in with the lab role."]
    assert not at.get("form")
    assert {b.proto.label for b in at.get("download_button")} >= {"Download HTML", "Download PDF"}
    assert any(e.proto.label == "Statistical settings" for e in at.expander)


def test_the_primary_metric_is_said_from_control_to_treatment_in_absolute_terms(console: str) -> None:
    store = Store(console)
    ev = board.evaluate(store, "onboarding")
    row = next(r for r in ev.comparisons if r.metric == "converted")
    at = _board_on("lab", "onboarding")
    line = f"converted: {fmt.share(row.control_mean, 'en')} with control → {fmt.share(row.mean, 'en')} with guided"
    assert line in _shown(at)


def test_the_board_page_speaks_french_every_reason_included(console: str) -> None:
    store = Store(console)
    ev = board.evaluate(store, "onboarding")
    at = _board_on("lab", "onboarding", "fr")
    shown = _shown(at)
    assert [t.value for t in at.title] == ["Comité de décision"]
    assert "Recommandation : " in shown
    for reason in ev.recommendation.reasons:
        french = fmt.render(reason.message, "fr")
        assert french != reason.text
        assert " ".join(french.split()) in shown
    assert "Grille d'évaluation" in [s.value for s in at.subheader]


def test_the_decision_form_starts_empty_and_records_nothing_until_the_board_chooses(writable_console: str) -> None:
    store = Store(writable_console)
    at = _board_on("board", "reminders")
    assert at.selectbox(key="decision_outcome").value is None
    at.text_area(key="decision_rationale").input("Not convinced yet.")
    at.text_area(key="decision_members").input("Ana Ruiz")
    at.get("form_submit_button")[0].click().run()  # type: ignore[attr-defined]
    assert any(read(e.value) == "Not recorded: give the decision." for e in at.error)
    assert board.decision_history(store, "bike-share") == ()


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
    assert any("Decision 1 recorded: Go" in read(s.value) for s in at.success)
    (decision,) = board.decision_history(store, "bike-share")
    assert decision.outcome == "go"
    assert decision.members == ("Ana Ruiz", "Ben Okafor")
    assert decision.recorded_by == "board-user"
    assert decision.recommendation == shown.recommendation.outcome
    snapshot = board.snapshot(store, decision.snapshot_id)
    assert board.verify_snapshot(store, snapshot.id)
    assert snapshot.content["results"]["analysis"] == board.snapshot_content(shown)["results"]["analysis"]
    assert store.experiment("onboarding").status == "decided"
    history = next(d.value for d in at.dataframe if "Snapshot SHA-256" in d.value.columns)
    assert list(history["Snapshot SHA-256"]) == [snapshot.digest]
    timeline = next(d.value for d in at.dataframe if "Who" in d.value.columns)
    assert "Go on onboarding (recommended: " + fmt.term(fmt.OUTCOMES, decision.recommendation, "en") + ")" in list(
        timeline["What"]
    )
    assert "Clear gain on trips, no harm on support calls." in list(timeline["Why"])


def test_a_decision_without_rationale_is_refused_with_the_field_named(writable_console: str) -> None:
    store = Store(writable_console)
    at = _board_on("admin", "reminders")
    at.selectbox(key="decision_outcome").select("iterate")
    at.text_area(key="decision_members").input("Ana Ruiz")
    at.get("form_submit_button")[0].click().run()  # type: ignore[attr-defined]
    assert any(read(e.value) == "Not recorded: give the rationale." for e in at.error)
    assert board.decision_history(store, "bike-share") == ()
