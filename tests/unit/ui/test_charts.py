"""Every chart the console draws is a valid Vega-Lite specification (the console skips Altair's
validation when drawing, to save time, so it is done here)."""

from __future__ import annotations

from experiments import board
from experiments.readmodels import adoption as adoption_reads
from experiments.readmodels import catalog
from experiments.readmodels import exposure as exposure_reads
from experiments.readmodels import voice as voice_reads
from experiments.store import Store
from ui import charts


def test_every_chart_of_the_console_validates_against_the_vega_lite_schema(seeded_url: str) -> None:
    store = Store(seeded_url)
    spec = catalog.pilot_specs(store)["bike-share"]
    ev = board.evaluate(store, "onboarding")
    plan = ev.experiment.spec.analysis
    series = adoption_reads.adoption_series(store, spec)
    figures = voice_reads.voice_figures(store, spec.key)
    roles = {"converted": "primary", "support_calls": "guardrail"}
    built = [
        charts.adoption_chart([(float(r.days_since_start), r.cumulative_adopters) for r in series], ev.forecast),
        charts.daily_activity_chart(series),
        charts.retention_heatmap(adoption_reads.retention(store, spec)),
        charts.reach_chart(adoption_reads.reach(store, spec), "district"),
        charts.forest_chart(ev.comparisons, roles, difference=plan.difference, alpha=plan.alpha, engine=plan.engine),
        charts.monitoring_chart(
            exposure_reads.monitoring(store, ev.experiment.spec, ["converted"]),
            difference=plan.difference,
            alpha=plan.alpha,
            engine=plan.engine,
        ),
        charts.nps_chart(figures),
        charts.rating_chart(figures),
    ]
    for chart in built:
        assert chart.to_dict(validate=True)["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
