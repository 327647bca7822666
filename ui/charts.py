"""The console's Altair charts, in the reader's language; the forest plot and the adoption curve are the
report's own (`experiments.report`), so the page and the report draw the same thing.

Every chart is drawn across the page's width, as high as its content needs (one row per comparison,
cohort or segment value); a daily series draws its latest `report.PLOTTED_DAYS` days at most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from experiments import formatting as fmt
from experiments.adoption import RetentionMatrix
from experiments.readmodels.adoption import AdoptionDay, Reach
from experiments.readmodels.exposure import MonitoringPoint
from experiments.readmodels.voice import VoiceFigures
from experiments.registry import ExperimentSpec
from experiments.report import (
    CHART_HEIGHT,
    FOREST_FRAME,
    AnyChart,
    adoption_chart,
    forest_chart,
    interval_label,
    localised,
    plotted,
    spec_limits,
)
from ui.language import _, current

__all__ = [
    "adoption_chart",
    "daily_activity_chart",
    "forest_chart",
    "monitoring_chart",
    "nps_chart",
    "rating_chart",
    "reach_chart",
    "retention_heatmap",
    "show",
    "show_forest",
]

#: Room for the axes and their titles in a chart Streamlit sizes to fit (autosize "fit").
AXES_HEIGHT = 60
#: Room added to a time series' or a bar chart's plotting height (`CHART_HEIGHT`) for its axes, their titles
#: and its legend, which Streamlit fits inside the height it is given.
SERIES_FRAME = 110
#: The most rows a chart with one row per item draws (cohorts, segment values).
MOST_ROWS = 40


def show(chart: AnyChart, *, frame: int = 0) -> None:
    """Draws a chart across the page's width, numbers and dates in the reader's language. Streamlit fits
    the whole chart, axes and legend included, into its height: `frame` pixels are added for them to a
    chart whose height is its rows'. Its specification is built by this module from typed records, so
    Altair's schema validation (a good part of the drawing time) is left to the tests."""
    spec = localised(chart, current()).to_dict(validate=False)
    height = spec.get("height")
    if frame and isinstance(height, int | float):
        st.vega_lite_chart(spec, width="stretch", height=int(height) + frame)
    else:
        st.vega_lite_chart(spec, width="stretch")


def show_forest(
    rows: Sequence[Any],
    spec: ExperimentSpec,
    roles: Mapping[str, str],
    names: Mapping[str, str],
    minimum_effect: float,
) -> None:
    """Draws the experiment's forest plot across the page, as high as its rows (`report.forest_chart`)."""
    plan = spec.analysis
    chart = forest_chart(
        rows,
        roles,
        difference=plan.difference,
        alpha=plan.alpha,
        engine=plan.engine,
        minimum_effect=minimum_effect,
        names=names,
        limits=spec_limits(spec),
        language=current(),
        width=None,
    )
    show(chart, frame=FOREST_FRAME)


def daily_activity_chart(series: Sequence[AdoptionDay]) -> AnyChart:
    """Returns stacked bars of new and returning participants per day."""
    new, returning = _("new"), _("returning")
    days = plotted([(r.day, r) for r in series])
    frame = pd.DataFrame(
        [(d.isoformat(), new, r.new) for d, r in days] + [(d.isoformat(), returning, r.returning) for d, r in days],
        columns=["day", "participants", "count"],
    )
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title=_("Day")),
            y=alt.Y("count:Q", title=_("Active participants"), stack="zero"),
            color=alt.Color(
                "participants:N",
                title=None,
                scale=alt.Scale(domain=[new, returning], range=["#1a7f37", "#8c959f"]),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=[
                alt.Tooltip("day:T", title=_("Day")),
                alt.Tooltip("participants:N", title=_("Participants")),
                alt.Tooltip("count:Q", title=_("Count"), format=","),
            ],
        )
        .properties(height=CHART_HEIGHT)
    )
    return chart


def retention_heatmap(matrix: RetentionMatrix) -> AnyChart:
    """Returns the weekly retention heat map: one row per cohort (the latest `MOST_ROWS`), one column per
    week since joining."""
    language = current()
    records = [
        (fmt.day(cohort, language), cohort.isoformat(), size, week, rate)
        for cohort, size, row in zip(matrix.cohorts, matrix.sizes, matrix.rates, strict=True)
        for week, rate in zip(matrix.weeks, row, strict=True)
        if rate is not None and week < MOST_ROWS
    ]
    frame = pd.DataFrame(records, columns=["cohort", "order", "size", "week", "retained"])
    cohorts = sorted(set(frame["order"]))[-MOST_ROWS:]
    frame = frame[frame["order"].isin(cohorts)]
    base = alt.Chart(frame).encode(
        x=alt.X("week:O", title=_("Weeks since joining")),
        y=alt.Y("cohort:O", title=_("Cohort (week of joining)"), sort=alt.EncodingSortField("order")),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("retained:Q", title=_("Retained"), scale=alt.Scale(scheme="greens", domain=[0, 1])),
        tooltip=[
            alt.Tooltip("cohort:O", title=_("Cohort")),
            alt.Tooltip("size:Q", title=_("Participants"), format=","),
            alt.Tooltip("week:O", title=_("Week")),
            alt.Tooltip("retained:Q", title=_("Retained"), format=".0%"),
        ],
    )
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text("retained:Q", format=".0%"),
        color=alt.condition(alt.datum.retained > 0.6, alt.value("white"), alt.value("black")),
    )
    # Streamlit fits the whole chart, axes included, into the height: leave room for them.
    return alt.layer(cells, labels).properties(height=AXES_HEIGHT + 30 * len(cohorts))


def reach_chart(rows: Sequence[Reach], segment: str) -> AnyChart:
    """Returns horizontal bars of participants per value of one segment (district, channel, ...), the
    `MOST_ROWS` largest."""
    shown = sorted((r for r in rows if r.segment == segment), key=lambda r: -r.participants)[:MOST_ROWS]
    frame = pd.DataFrame(
        [(r.value, r.participants, r.share) for r in shown], columns=["value", "participants", "share"]
    )
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar(color="#0969da")
        .encode(
            x=alt.X("participants:Q", title=_("Participants")),
            y=alt.Y("value:N", title=segment.capitalize(), sort="-x", axis=alt.Axis(labelLimit=0)),
            tooltip=[
                alt.Tooltip("value:N", title=segment.capitalize()),
                alt.Tooltip("participants:Q", title=_("Participants"), format=","),
                alt.Tooltip("share:Q", title=_("Share of its citizens"), format=".1%"),
            ],
        )
        .properties(height=AXES_HEIGHT + 26 * max(1, len(frame)))
    )
    return chart


def monitoring_chart(points: Sequence[MonitoringPoint], *, difference: str, alpha: float, engine: str) -> AnyChart:
    """Returns the monitoring chart: each treatment's effect and interval day by day of first exposure."""
    frame = pd.DataFrame(
        [(p.day.isoformat(), p.variant, p.units, p.effect, p.ci_low, p.ci_high) for p in points if p.error is None],
        columns=["day", "variant", "participants", "effect", "low", "high"],
    )
    axis_format = ".0%" if difference == "relative" else ",.3~g"
    tip_format = ".1%" if difference == "relative" else ",.3~g"
    x = alt.X("day:T", title=_("Day of first exposure"))
    colour = alt.Color("variant:N", title=_("Treatment"), legend=alt.Legend(orient="bottom"))
    tooltip = [
        alt.Tooltip("day:T", title=_("Participants exposed up to")),
        alt.Tooltip("variant:N", title=_("Treatment")),
        alt.Tooltip("participants:Q", title=_("Participants"), format=","),
        alt.Tooltip("effect:Q", title=_("Effect"), format=tip_format),
        alt.Tooltip("low:Q", title=_("Interval low"), format=tip_format),
        alt.Tooltip("high:Q", title=_("Interval high"), format=tip_format),
    ]
    band = alt.Chart(frame).mark_area(opacity=0.2).encode(x=x, y="low:Q", y2="high:Q", color=colour)
    line = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y(
                "effect:Q",
                title=_("Effect ({interval})").format(interval=interval_label(alpha, engine, current())),
                axis=alt.Axis(format=axis_format),
            ),
            color=colour,
            tooltip=tooltip,
        )
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(strokeDash=[4, 3], color="#57606a").encode(y="y:Q")
    return alt.layer(band, line, zero).properties(height=CHART_HEIGHT + 40)


def rating_chart(figures: VoiceFigures) -> AnyChart:
    """Returns bars of how many citizens gave each star rating."""
    frame = pd.DataFrame(
        [(f"{stars} ★", n) for stars, n in enumerate(figures.rating.counts, start=1)], columns=["rating", "citizens"]
    )
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar(color="#bf8700")
        .encode(
            x=alt.X("rating:O", title=_("Rating"), axis=alt.Axis(labelAngle=0)),
            y=alt.Y("citizens:Q", title=_("Citizens")),
            tooltip=[
                alt.Tooltip("rating:O", title=_("Rating")),
                alt.Tooltip("citizens:Q", title=_("Citizens"), format=","),
            ],
        )
        .properties(height=CHART_HEIGHT)
    )
    return chart


def nps_chart(figures: VoiceFigures) -> AnyChart:
    """Returns one stacked bar of detractors, passives and promoters."""
    groups = [_("detractors (0-6)"), _("passives (7-8)"), _("promoters (9-10)")]
    frame = pd.DataFrame(
        [
            (groups[0], figures.detractors, 0),
            (groups[1], figures.passives, 1),
            (groups[2], figures.promoters, 2),
        ],
        columns=["group", "citizens", "order"],
    )
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("citizens:Q", title=_("Respondents"), stack="normalize", axis=alt.Axis(format=".0%")),
            color=alt.Color(
                "group:N",
                title=None,
                sort=groups,
                scale=alt.Scale(domain=groups, range=["#cf222e", "#8c959f", "#1a7f37"]),
                legend=alt.Legend(orient="bottom"),
            ),
            order="order:Q",
            tooltip=[
                alt.Tooltip("group:N", title=_("Group")),
                alt.Tooltip("citizens:Q", title=_("Citizens"), format=","),
            ],
        )
        .properties(height=AXES_HEIGHT + 60)
    )
    return chart
