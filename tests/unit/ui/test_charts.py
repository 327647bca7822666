"""Every chart the console draws is a valid Vega-Lite specification in both languages (the console skips
Altair's validation when drawing, to save time, so it is done here); charts are sized by their content and
a daily series far in the past (the year 4) is bounded."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from experiments import board, report
from experiments.readmodels import adoption as adoption_reads
from experiments.readmodels import catalog
from experiments.readmodels import exposure as exposure_reads
from experiments.readmodels import voice as voice_reads
from experiments.readmodels.adoption import AdoptionDay
from experiments.readmodels.timeline import pilot_timeline
from experiments.store import Store
from ui import charts, timeline


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_chart_of_the_console_validates_against_the_vega_lite_schema(seeded_url: str, language: str) -> None:
    store = Store(seeded_url)
    spec = catalog.pilot_specs(store)["bike-share"]
    ev = board.evaluate(store, "onboarding")
    experiment = ev.experiment.spec
    plan = experiment.analysis
    series = adoption_reads.adoption_series(store, spec)
    figures = voice_reads.voice_figures(store, spec.key)
    roles = report.metric_roles(experiment.primary, [g.metric for g in experiment.guardrails], ["converted"])
    built = [
        charts.adoption_chart(
            [(float(r.days_since_start), r.cumulative_adopters) for r in series],
            ev.forecast,
            start=series[0].day,
            language=language,
        ),
        charts.daily_activity_chart(series),
        charts.retention_heatmap(adoption_reads.retention(store, spec)),
        charts.reach_chart(adoption_reads.reach(store, spec), "district"),
        charts.forest_chart(
            ev.comparisons,
            roles,
            difference=plan.difference,
            alpha=plan.alpha,
            engine=plan.engine,
            minimum_effect=0.05,
            limits=report.spec_limits(experiment),
            language=language,
        ),
        charts.monitoring_chart(
            exposure_reads.monitoring(store, experiment, ["converted"]),
            difference=plan.difference,
            alpha=plan.alpha,
            engine=plan.engine,
        ),
        charts.nps_chart(figures),
        charts.rating_chart(figures),
        timeline.timeline_chart(pilot_timeline(store, spec.key), language),
    ]
    for chart in built:
        drawn = report.localised(chart, language).to_dict(validate=True)
        assert drawn["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        assert drawn["config"]["locale"]["number"]["decimal"] == ("," if language == "fr" else ".")


def test_the_forest_plot_has_a_row_per_comparison_full_labels_and_labelled_lines(seeded_url: str) -> None:
    store = Store(seeded_url)
    ev = board.evaluate(store, "reminders")
    plan = ev.experiment.spec.analysis
    names = {"converted": "Newcomers who complete a first trip within a week of joining"}
    drawn = charts.forest_chart(
        ev.comparisons,
        {"converted": "primary", "support_calls": "guardrail"},
        difference=plan.difference,
        alpha=plan.alpha,
        engine=plan.engine,
        minimum_effect=0.05,
        names=names,
        limits={"support_calls": -0.02},
        language="en",
    ).to_dict()
    rows = [r for r in ev.comparisons if r.effect is not None]
    assert drawn["height"] == report.FOREST_ROW * len(rows)
    datasets = [d for values in drawn["datasets"].values() for d in values]
    labels = {d["comparison"] for d in datasets if "comparison" in d}
    assert f"{names['converted']} · early" in labels
    assert {d["what"] for d in datasets if "what" in d} == {"no difference", "minimum effect for go"}
    y = next(layer["encoding"]["y"] for layer in drawn["layer"] if "y" in layer["encoding"])
    assert y["axis"]["labelLimit"] == 0
    assert any(layer.get("encoding", {}).get("text", {}).get("value") == "guardrail limit" for layer in drawn["layer"])


def test_a_series_reaching_back_to_the_year_4_draws_only_its_latest_days() -> None:
    today = date(2026, 11, 26)
    series = [AdoptionDay(date(4, 1, 1), 0, 1, 1, 0, 0, 1, 0)] + [
        AdoptionDay(today - timedelta(days=k), 740_000 - k, 3, 1, 2, 0, 10, 0) for k in range(30, -1, -1)
    ]
    drawn = charts.daily_activity_chart(series).to_dict()
    days = {d["day"] for values in drawn["datasets"].values() for d in values}
    assert min(days) >= (today - timedelta(days=report.PLOTTED_DAYS)).isoformat()
    cumulative = [(float(r.days_since_start), r.cumulative_adopters) for r in series]
    curve = charts.adoption_chart(cumulative, None).to_dict()
    assert sum(len(v) for v in curve["datasets"].values()) <= report.PLOTTED_DAYS
