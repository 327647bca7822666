"""An event of the year 4 (issue 24, item 3): counted on a partition with no newer event, it made daily
series start in the year 4, and the Pilot and Decision board pages failed (Altair's MaxRowsError) after
seconds and a gigabyte. Every series and chart is bounded: the pages draw their latest days only."""

from __future__ import annotations

import json
import time
from datetime import date

from experiments import models as m
from experiments.readmodels import adoption as adoption_reads
from experiments.readmodels import catalog
from experiments.report import PLOTTED_DAYS
from experiments.store import UNITS, Store
from tests.unit.ui.conftest import open_page, signed_in

YEAR_4 = date(4, 1, 1)


def _year_4(store: Store) -> None:
    stats = {"n": 1, "sum": 1.0, "sum_squares": 1.0, "x_sum": 0.0, "x_sum_squares": 0.0, "sum_products": 0.0}
    store.write_rows(
        {
            m.DailyAdoption: [
                {
                    "pilot_key": "bike-share",
                    "day": YEAR_4,
                    "segment": "",
                    "partition": 9,
                    "active": 1,
                    "new": 1,
                    "activated": 0,
                }
            ],
            m.RetentionCohort: [
                {
                    "pilot_key": "bike-share",
                    "cohort_week": YEAR_4,
                    "week_index": 0,
                    "segment": "",
                    "partition": 9,
                    "participants": 1,
                }
            ],
            m.ExposureDay: [
                {
                    "experiment_key": "onboarding",
                    "metric": metric,
                    "variant": "control",
                    "day": YEAR_4,
                    "partition": 9,
                    **stats,
                }
                for metric in (UNITS, "converted")
            ],
        }
    )


def _rows_drawn(at) -> int:  # type: ignore[no-untyped-def]
    return max(
        sum(len(values) for values in json.loads(chart.proto.spec).get("datasets", {}).values())
        for chart in at.get("vega_lite_chart")
    )


def test_a_year_4_event_leaves_every_page_quick_and_every_chart_bounded(writable_console: str) -> None:
    store = Store(writable_console)
    _year_4(store)
    spec = catalog.pilot_specs(store)["bike-share"]
    series = adoption_reads.adoption_series(store, spec)
    assert len(series) <= adoption_reads.SERIES_DAYS
    assert series[-1].cumulative_adopters == sum(r.new for r in series) + 1  # the year-4 adopter still counts
    for page, choose in (("pilot", ("pilot_choice", "bike-share")), ("board", ("experiment_choice", "onboarding"))):
        at = open_page(signed_in("admin"), page)
        began = time.perf_counter()
        at.selectbox(key=choose[0]).select(choose[1]).run()
        took = time.perf_counter() - began
        assert not at.exception, [e.value for e in at.exception]
        assert took < 10, f"{page}: {took:.1f} s"
        assert _rows_drawn(at) <= 2 * PLOTTED_DAYS + 200
