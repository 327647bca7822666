"""The Portfolio, Pilot, Experiment and Citizens' voice pages show the engine's and the read models' numbers."""

from __future__ import annotations

import math

import pytest

from experiments import board
from experiments.readmodels import adoption as adoption_reads
from experiments.readmodels import catalog
from experiments.readmodels import voice as voice_reads
from experiments.report import describe, signed
from experiments.results import experiment_results
from experiments.store import Store
from tests.unit.ui.conftest import open_page, signed_in

EXPERIMENTS = ("onboarding", "reminders", "alerts")


@pytest.fixture(scope="module")
def store(seeded_url: str) -> Store:
    return Store(seeded_url)


def test_portfolio_lists_every_experiment_with_the_boards_recommendation(console: str, store: Store) -> None:
    at = open_page(signed_in("board"), "portfolio")
    table = at.dataframe[0].value.set_index("Experiment")
    assert sorted(table.index) == sorted(EXPERIMENTS)
    for key in EXPERIMENTS:
        ev = board.evaluate(store, key)
        assert ev.recommendation.outcome in table.loc[key, "Recommendation"]
        assert table.loc[key, "Participants"] == ev.exposure.units
        assert table.loc[key, "Next decision"] == ev.pilot.next_decision
    assert table.loc["alerts", "Sample ratio"] == "⚠ mismatch"
    assert {m.label: m.value for m in at.metric}["Pilots"] == "2"


@pytest.mark.parametrize("key", EXPERIMENTS)
def test_experiment_page_shows_the_engines_effects_and_intervals(console: str, store: Store, key: str) -> None:
    at = signed_in("lab")
    at.switch_page("pages/experiment.py").run()
    at.selectbox(key="experiment_choice").select(key).run()
    assert not at.exception
    expected = experiment_results(store, key)["analysis"]["comparisons"]
    table = at.dataframe[0].value
    assert len(table) == len(expected)
    for (_, shown), row in zip(table.iterrows(), expected, strict=True):
        assert (shown["Metric"], shown["Variant"]) == (row["metric"], row["variant"])
        for column, field in (
            ("Effect", "effect"),
            ("Interval low", "ci_low"),
            ("Interval high", "ci_high"),
            ("Control mean", "control_mean"),
            ("p-value", "p_value"),
            ("Adjusted p-value", "adjusted_p_value"),
            ("Chance to win", "chance_to_win"),
        ):
            value = shown[column]
            if row[field] is None:
                assert value is None or math.isnan(value), (column, value)
            else:
                assert value == pytest.approx(row[field], rel=1e-12), column
    spec = store.experiment(key).spec
    primary = next(r for r in expected if r["metric"] == spec.primary)
    said = describe(primary, spec)
    shown_text = " ".join(m.value for m in at.markdown)
    assert said.text in shown_text
    assert f"by {signed(primary['effect'], 'relative')}" in said.text or "No clear" in said.text or "worse" in said.text
    assert len(at.get("vega_lite_chart")) == 2


def test_a_broken_split_of_participants_raises_the_sample_ratio_warning(console: str) -> None:
    at = signed_in("lab")
    at.switch_page("pages/experiment.py").run()
    at.selectbox(key="experiment_choice").select("alerts").run()
    assert any("Sample ratio mismatch" in e.value for e in at.error)
    at.selectbox(key="experiment_choice").select("onboarding").run()
    assert not any("Sample ratio mismatch" in e.value for e in at.error)


def test_experiment_page_shows_progress_towards_the_planned_sample(console: str, store: Store) -> None:
    at = signed_in("lab")
    at.switch_page("pages/experiment.py").run()
    at.selectbox(key="experiment_choice").select("reminders").run()
    ev = board.evaluate(store, "reminders")
    progress = at.get("progress")[0]
    assert f"{ev.exposure.units:,} of {ev.exposure.planned_sample:,} planned participants" in progress.proto.text
    assert any(f"{ev.exposure.units_per_day:,.1f} participants a day" in c.value for c in at.caption)


def test_experiment_page_segments_show_the_segments_results(console: str, store: Store) -> None:
    at = signed_in("lab")
    at.switch_page("pages/experiment.py").run()
    at.selectbox(key="experiment_choice").select("onboarding").run()
    at.selectbox[1].select("district:north").run()
    expected = experiment_results(store, "onboarding", "district:north")["analysis"]["comparisons"]
    assert list(at.dataframe[0].value["Effect"]) == pytest.approx([r["effect"] for r in expected])


def test_pilot_page_shows_adoption_retention_and_reach(console: str, store: Store) -> None:
    at = open_page(signed_in("board"), "pilot")
    at.selectbox(key="pilot_choice").select("bike-share").run()
    spec = catalog.pilot_specs(store)["bike-share"]
    series = adoption_reads.adoption_series(store, spec)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Participants so far"] == f"{series[-1].cumulative_adopters:,}"
    fit = adoption_reads.adoption_forecast(spec, adoption_reads.adoption_summary(store, spec))
    assert fit.market_potential is not None
    assert any(f"market potential m = {fit.market_potential.value:,.0f}" in c.value for c in at.caption)
    retention = adoption_reads.retention(store, spec)
    assert any(f"week 1: {retention.average()[1] * 100:.0f} %" in c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) >= 5
    at.selectbox[1].select("district:north").run()
    north = adoption_reads.adoption_series(store, spec, "district:north")
    assert {m.label: m.value for m in at.metric}["Participants so far"] == f"{north[-1].cumulative_adopters:,}"


def test_voice_page_shows_nps_sus_ratings_comments_and_ideas_by_votes(console: str, store: Store) -> None:
    at = open_page(signed_in("lab"), "voice")
    at.selectbox(key="pilot_choice").select("bike-share").run()
    figures = voice_reads.voice_figures(store, "bike-share")
    metrics = {m.label: m.value for m in at.metric}
    assert figures.nps is not None and figures.sus.mean is not None and figures.rating.mean is not None
    assert metrics["Net Promoter Score"] == f"{figures.nps:+.0f}"
    assert metrics["Usability (SUS)"] == f"{figures.sus.mean:.1f}"
    assert metrics["Rating"] == f"{figures.rating.mean:.2f} / 5"
    assert metrics["Comments"] == f"{figures.comments:,}"
    tables = {tuple(d.value.columns): d.value for d in at.dataframe}
    ideas = tables[("Idea", "Net votes", "Voters", "Proposed")]
    assert list(ideas["Net votes"]) == sorted(ideas["Net votes"], reverse=True)
    assert list(ideas["Idea"]) == [i.text for i in voice_reads.ranked_ideas(store, "bike-share")]
    comments = tables[("When", "Comment")]
    assert list(comments["Comment"]) == [c.text for c in voice_reads.recent_texts(store, "bike-share")]
    by_variant = tables[("Variant", "NPS", "NPS respondents", "Rating", "Ratings", "SUS", "SUS respondents")]
    expected = voice_reads.voice_by_variant(store, "bike-share", "onboarding")
    assert list(by_variant["NPS"]) == pytest.approx([f.nps for f in expected.values()])
