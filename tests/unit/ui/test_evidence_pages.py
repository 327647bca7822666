"""The Portfolio, Pilot, Experiment and Citizens' voice pages show the engine's and the read models' numbers,
written by `experiments.formatting` in the reader's language, pace and history in event time."""

from __future__ import annotations

import pytest

from experiments import board, report
from experiments import formatting as fmt
from experiments.adoption import explain_forecast
from experiments.readmodels import adoption as adoption_reads
from experiments.readmodels import catalog
from experiments.readmodels import voice as voice_reads
from experiments.results import experiment_results
from experiments.store import Store
from tests.unit.ui.conftest import open_page, read, signed_in

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
        assert table.loc[key, "Recommendation"] == fmt.term(fmt.OUTCOMES, ev.recommendation.outcome, "en")
        assert table.loc[key, "Participants"] == fmt.count(ev.exposure.units, "en")
        assert table.loc[key, "Next decision"] == fmt.day(ev.pilot.next_decision, "en")
        assert table.loc[key, "Progress"] == fmt.share(ev.exposure.progress, "en")
    assert table.loc["alerts", "Sample ratio"] == "⚠ mismatch"
    assert {m.label: m.value for m in at.metric}["Pilots"] == "2"


def test_portfolio_in_french_writes_figures_the_french_way(console: str, store: Store) -> None:
    at = open_page(signed_in("board", "fr"), "portfolio")
    table = at.dataframe[0].value.set_index("Expérimentation")
    ev = board.evaluate(store, "onboarding")
    assert table.loc["onboarding", "Participants"] == fmt.count(ev.exposure.units, "fr")
    assert "\u202f" in table.loc["onboarding", "Participants"]
    assert table.loc["onboarding", "Recommandation"] == fmt.term(fmt.OUTCOMES, ev.recommendation.outcome, "fr")


@pytest.mark.parametrize("key", EXPERIMENTS)
def test_experiment_page_shows_the_engines_effects_and_intervals(console: str, store: Store, key: str) -> None:
    at = open_page(signed_in("lab"), "experiment")
    at.selectbox(key="experiment_choice").select(key).run()
    assert not at.exception
    spec = store.experiment(key).spec
    plan = spec.analysis
    expected = experiment_results(store, key)["analysis"]["comparisons"]
    table = at.dataframe[0].value
    interval = report.interval_label(plan.alpha, plan.engine, "en").capitalize()
    assert len(table) == len(expected)
    for (_, shown), row in zip(table.iterrows(), expected, strict=True):
        assert (shown["Metric"], shown["Variant"]) == (row["metric"], row["variant"])
        assert shown["Effect"] == report.signed(row["effect"], plan.difference, "en")
        low, high = (report.signed(row[end], plan.difference, "en") for end in ("ci_low", "ci_high"))
        assert shown[interval] == f"{low} to {high}"
    technical = at.dataframe[1].value
    assert list(technical["p-value"]) == [fmt.p_value(r["p_value"], "en") for r in expected]
    primary = next(r for r in expected if r["metric"] == spec.primary)
    said = report.describe(primary, spec, "en")
    assert said.text in " ".join(read(m.value) for m in at.markdown)
    assert len(at.get("vega_lite_chart")) == 2


def test_no_raw_fraction_none_or_nan_in_the_experiment_tables(console: str) -> None:
    at = open_page(signed_in("lab"), "experiment")
    at.selectbox(key="experiment_choice").select("reminders").run()
    for frame in at.dataframe:
        for value in frame.value.to_numpy().ravel():
            assert isinstance(value, str), value
            assert value not in ("None", "nan", "NaN") and "0.0000" not in value


def test_a_broken_split_of_participants_raises_the_sample_ratio_warning(console: str) -> None:
    at = open_page(signed_in("lab"), "experiment")
    at.selectbox(key="experiment_choice").select("alerts").run()
    assert any("Sample ratio mismatch" in e.value for e in at.error)
    at.selectbox(key="experiment_choice").select("onboarding").run()
    assert not any("Sample ratio mismatch" in e.value for e in at.error)


def test_experiment_page_shows_progress_and_the_pace_in_event_time(console: str, store: Store) -> None:
    at = open_page(signed_in("lab"), "experiment")
    at.selectbox(key="experiment_choice").select("reminders").run()
    ev = board.evaluate(store, "reminders")
    progress = at.get("progress")[0]
    assert f"{ev.exposure.units:,} of {ev.exposure.planned_sample:,} planned participants" in progress.proto.text
    assert ev.exposure.units_per_day is not None and ev.exposure.rate_days == 7
    pace = f"{fmt.number(ev.exposure.units_per_day, 'en', 1)} participants a day"
    assert any(pace in read(c.value) for c in at.caption)


def test_experiment_page_segments_show_the_segments_results(console: str, store: Store) -> None:
    at = open_page(signed_in("lab"), "experiment")
    at.selectbox(key="experiment_choice").select("onboarding").run()
    at.selectbox[1].select("district:north").run()
    expected = experiment_results(store, "onboarding", "district:north")["analysis"]["comparisons"]
    assert list(at.dataframe[0].value["Effect"]) == [report.signed(r["effect"], "relative", "en") for r in expected]


def test_pilot_page_shows_adoption_the_forecast_in_words_retention_and_reach(console: str, store: Store) -> None:
    at = open_page(signed_in("board"), "pilot")
    at.selectbox(key="pilot_choice").select("bike-share").run()
    spec = catalog.pilot_specs(store)["bike-share"]
    series = adoption_reads.adoption_series(store, spec)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Participants so far"] == fmt.count(series[-1].cumulative_adopters, "en")
    fit = adoption_reads.adoption_forecast(spec, adoption_reads.adoption_summary(store, spec))
    reading = explain_forecast(
        fit,
        pilot_age_days=float(series[-1].days_since_start + 1),
        adopters=float(series[-1].cumulative_adopters),
        latest_new=float(series[-1].new),
        horizon_days=float(spec.decision.forecast_horizon_days),
        population=spec.population,
    )
    shown = " ".join(read(m.value) for m in at.markdown)
    assert fmt.render(reading.summary, "en") in shown
    retention = adoption_reads.retention(store, spec)
    assert any(f"week 1: {fmt.share(retention.average()[1], 'en')}" in read(c.value) for c in at.caption)
    assert len(at.get("vega_lite_chart")) >= 6
    assert {m.label for m in at.metric} >= {"Budget of the stage", "Spent to date", "Cost per active participant"}
    at.selectbox[1].select("district:north").run()
    north = adoption_reads.adoption_series(store, spec, "district:north")
    assert {m.label: m.value for m in at.metric}["Participants so far"] == fmt.count(
        north[-1].cumulative_adopters, "en"
    )


def test_voice_page_shows_nps_sus_ratings_comments_and_ideas_by_votes(console: str, store: Store) -> None:
    at = open_page(signed_in("lab"), "voice")
    at.selectbox(key="pilot_choice").select("bike-share").run()
    figures = voice_reads.voice_figures(store, "bike-share")
    metrics = {m.label: m.value for m in at.metric}
    assert figures.nps is not None and figures.sus.mean is not None and figures.rating.mean is not None
    assert metrics["Net Promoter Score"] == fmt.signed_number(figures.nps, "en", 2)
    assert metrics["Usability (SUS)"] == fmt.number(figures.sus.mean, "en", 0)
    assert metrics["Rating"] == f"{fmt.number(figures.rating.mean, 'en', 1)} / 5"
    assert metrics["Comments"] == fmt.count(figures.comments, "en")
    tables = {tuple(d.value.columns): d.value for d in at.dataframe}
    ideas = tables[("Idea", "Net votes", "Voters", "Proposed")]
    ranked = voice_reads.ranked_ideas(store, "bike-share")
    assert list(ideas["Idea"]) == [i.text for i in ranked]
    assert list(ideas["Net votes"]) == [fmt.count(i.votes, "en") for i in ranked]
    comments = tables[("When", "Comment")]
    assert list(comments["Comment"]) == [c.text for c in voice_reads.recent_texts(store, "bike-share")]
    by_variant = tables[("Variant", "NPS", "NPS respondents", "Rating", "Ratings", "SUS", "SUS respondents")]
    expected = voice_reads.voice_by_variant(store, "bike-share", "onboarding")
    assert list(by_variant["NPS"]) == [fmt.signed_number(f.nps, "en", 2) for f in expected.values()]


@pytest.mark.parametrize("page", ["portfolio", "pilot", "experiment", "voice", "board", "admin", "glossary"])
def test_every_page_renders_in_both_languages(console: str, page: str) -> None:
    for language in ("fr", "en"):
        open_page(signed_in("admin", language), page)
