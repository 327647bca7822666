"""The console's Altair charts; the forest plot and the adoption curve are the report's own."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st

from experiments.adoption import RetentionMatrix
from experiments.readmodels.adoption import AdoptionDay, Reach
from experiments.readmodels.exposure import MonitoringPoint
from experiments.readmodels.voice import VoiceFigures
from experiments.report import CHART_HEIGHT, AnyChart, adoption_chart, forest_chart, interval_label

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
]

#: Room for the axes and their titles in a chart Streamlit sizes to fit (autosize "fit").
AXES_HEIGHT = 60


def show(chart: AnyChart) -> None:
    """Draws a chart across the page's width. Its specification is built by this module from typed
    records, so Altair's schema validation (a good part of the drawing time) is left to the tests."""
    st.vega_lite_chart(chart.to_dict(validate=False), width="stretch")


def daily_activity_chart(series: Sequence[AdoptionDay]) -> AnyChart:
    """Returns stacked bars of new and returning participants per day."""
    frame = pd.DataFrame(
        [(r.day.isoformat(), "new", r.new) for r in series]
        + [(r.day.isoformat(), "returning", r.returning) for r in series],
        columns=["day", "participants", "count"],
    )
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title="Day"),
            y=alt.Y("count:Q", title="Active participants", stack="zero"),
            color=alt.Color("participants:N", title=None, scale=alt.Scale(range=["#1a7f37", "#8c959f"])),
            tooltip=["day:T", "participants", "count"],
        )
        .properties(height=CHART_HEIGHT)
    )
    return chart


def retention_heatmap(matrix: RetentionMatrix) -> AnyChart:
    """Returns the weekly retention heat map: one row per cohort, one column per week since joining."""
    records = [
        (cohort.isoformat(), size, week, rate)
        for cohort, size, row in zip(matrix.cohorts, matrix.sizes, matrix.rates, strict=True)
        for week, rate in zip(matrix.weeks, row, strict=True)
        if rate is not None
    ]
    frame = pd.DataFrame(records, columns=["cohort", "size", "week", "retained"])
    base = alt.Chart(frame).encode(
        x=alt.X("week:O", title="Weeks since joining"),
        y=alt.Y("cohort:O", title="Cohort (week of joining)"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("retained:Q", title="Retained", scale=alt.Scale(scheme="greens", domain=[0, 1])),
        tooltip=["cohort", "size", "week", alt.Tooltip("retained:Q", format=".0%")],
    )
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text("retained:Q", format=".0%"),
        color=alt.condition(alt.datum.retained > 0.6, alt.value("white"), alt.value("black")),
    )
    # Streamlit fits the whole chart, axes included, into the height: leave room for them.
    return alt.layer(cells, labels).properties(height=AXES_HEIGHT + 30 * len(matrix.cohorts))


def reach_chart(rows: Sequence[Reach], segment: str) -> AnyChart:
    """Returns horizontal bars of participants per value of one segment (district, channel, ...)."""
    frame = pd.DataFrame(
        [(r.value, r.participants, r.share) for r in rows if r.segment == segment],
        columns=["value", "participants", "share of citizens"],
    )
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar(color="#0969da")
        .encode(
            x=alt.X("participants:Q", title="Participants"),
            y=alt.Y("value:N", title=segment.capitalize(), sort="-x"),
            tooltip=["value", "participants", alt.Tooltip("share of citizens:Q", format=".1%")],
        )
        .properties(height=AXES_HEIGHT + 26 * len(frame))
    )
    return chart


def monitoring_chart(points: Sequence[MonitoringPoint], *, difference: str, alpha: float, engine: str) -> AnyChart:
    """Returns the sequential monitoring chart: each treatment's effect and interval over time."""
    frame = pd.DataFrame(
        [(p.hour, p.variant, p.units, p.effect, p.ci_low, p.ci_high) for p in points if p.error is None],
        columns=["hour", "variant", "participants", "effect", "low", "high"],
    )
    axis_format = ".0%" if difference == "relative" else ".3~g"
    x = alt.X("hour:T", title="Time")
    colour = alt.Color("variant:N", title="Treatment")
    tooltip = [
        alt.Tooltip("hour:T", title="as of", format="%Y-%m-%d %H:00"),
        "variant",
        "participants",
        alt.Tooltip("effect:Q", format=axis_format.replace("0", "1")),
        alt.Tooltip("low:Q", format=axis_format.replace("0", "1")),
        alt.Tooltip("high:Q", format=axis_format.replace("0", "1")),
    ]
    band = alt.Chart(frame).mark_area(opacity=0.2).encode(x=x, y="low:Q", y2="high:Q", color=colour)
    line = (
        alt.Chart(frame)
        .mark_line()
        .encode(
            x=x,
            y=alt.Y("effect:Q", title=f"Effect ({interval_label(alpha, engine)})", axis=alt.Axis(format=axis_format)),
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
            x=alt.X("rating:O", title="Rating"), y=alt.Y("citizens:Q", title="Citizens"), tooltip=["rating", "citizens"]
        )
        .properties(height=CHART_HEIGHT)
    )
    return chart


def nps_chart(figures: VoiceFigures) -> AnyChart:
    """Returns one stacked bar of detractors, passives and promoters."""
    frame = pd.DataFrame(
        [
            ("detractors (0-6)", figures.detractors, 0),
            ("passives (7-8)", figures.passives, 1),
            ("promoters (9-10)", figures.promoters, 2),
        ],
        columns=["group", "citizens", "order"],
    )
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("citizens:Q", title="Respondents", stack="normalize", axis=alt.Axis(format=".0%")),
            color=alt.Color(
                "group:N",
                title=None,
                sort=alt.EncodingSortField("order"),
                scale=alt.Scale(range=["#cf222e", "#8c959f", "#1a7f37"]),
            ),
            order="order:Q",
            tooltip=["group", "citizens"],
        )
        .properties(height=AXES_HEIGHT + 40)
    )
    return chart
