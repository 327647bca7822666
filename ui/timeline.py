"""The pilot's timeline on the Pilot and Decision board pages: stage gates, experiments started and
stopped, plan changes with who and why, the board's decisions (`experiments.readmodels.timeline`, the
lab's version), drawn on one time axis and listed; beside them the stage's budget, what has been spent of
it to date and the cost per active participant."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from experiments import formatting as fmt
from experiments.i18n import Language
from experiments.readmodels.timeline import (
    BoardDecision,
    ExperimentStarted,
    ExperimentStopped,
    PlanChanged,
    PublishedDecision,
    StageGate,
    Timeline,
    TimelineEntry,
)
from experiments.registry import PilotSpec
from experiments.report import AnyChart
from ui import charts, data, export
from ui.language import _

#: A plan change's old or new value is shown up to this many characters.
VALUE_CHARACTERS = 60
#: The most entries the chart draws (the latest); the table lists them all.
CHART_ENTRIES = 400


def spent_share(pilot: PilotSpec, today: date) -> float | None:
    """Returns the share of the stage's budget spent by `today` when it is spent evenly from the pilot's
    start to its next decision (None when either date is unknown)."""
    if pilot.start is None or pilot.next_decision is None or pilot.next_decision <= pilot.start:
        return None
    elapsed = (min(today, pilot.next_decision) - pilot.start).days
    return max(0.0, min(1.0, elapsed / (pilot.next_decision - pilot.start).days))


def _value(value: Any) -> str:
    """Returns a plan value in a few characters (JSON, cut with an ellipsis)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= VALUE_CHARACTERS else text[: VALUE_CHARACTERS - 1] + "…"


def lane_and_text(entry: TimelineEntry, language: Language) -> tuple[str, str]:
    """Returns the lane of the chart an entry goes on and what happened, in the language."""
    if isinstance(entry, StageGate):
        stage = fmt.term(fmt.STAGES, entry.stage, language)
        if entry.previous is None:
            return _("Stage gates"), _("Registered at the {stage} stage").format(stage=stage)
        previous = fmt.term(fmt.STAGES, entry.previous, language)
        return _("Stage gates"), _("From {previous} to {stage}").format(previous=previous, stage=stage)
    if isinstance(entry, ExperimentStarted):
        text = _("Experiment {key} restarted") if entry.restarted else _("Experiment {key} started")
        return _("Experiments"), text.format(key=entry.experiment)
    if isinstance(entry, ExperimentStopped):
        return _("Experiments"), _("Experiment {key} stopped").format(key=entry.experiment)
    if isinstance(entry, PlanChanged):
        where = entry.experiment or _("the pilot")
        text = _("{field} of {where}: {old} → {new}").format(
            field=entry.field, where=where, old=_value(entry.old), new=_value(entry.new)
        )
        if entry.forced:
            text += " " + _("(pre-registered, changed while running)")
        return _("Plan changes"), text
    if isinstance(entry, BoardDecision):
        return _("Board decisions"), _("{outcome} on {experiment} (recommended: {recommended})").format(
            outcome=fmt.term(fmt.OUTCOMES, entry.outcome, language),
            experiment=entry.experiment or _("the pilot"),
            recommended=fmt.term(fmt.OUTCOMES, entry.recommendation, language),
        )
    assert isinstance(entry, PublishedDecision)
    return _("Board decisions"), _("Decision {id} published to citizens: {summary}").format(
        id=entry.decision_id, summary=entry.summary(language)
    )


def who_and_why(entry: TimelineEntry) -> tuple[str, str]:
    """Returns who made the entry and why, as they recorded it."""
    if isinstance(entry, BoardDecision):
        return entry.recorded_by, entry.rationale
    if isinstance(entry, PublishedDecision):
        return entry.published_by, ""
    return entry.actor, entry.reason


def timeline_chart(timeline: Timeline, language: Language) -> AnyChart:
    """Returns the timeline as points on one time axis, one lane per kind of entry (the latest
    `CHART_ENTRIES`)."""
    lanes = [_("Stage gates"), _("Experiments"), _("Plan changes"), _("Board decisions")]
    shown = timeline.entries[-CHART_ENTRIES:]
    records = []
    for entry in shown:
        lane, text = lane_and_text(entry, language)
        who, why = who_and_why(entry)
        records.append((entry.at.isoformat(), lane, text, who or fmt.MISSING, why or fmt.MISSING))
    frame = pd.DataFrame(records, columns=["at", "lane", "what", "who", "why"])
    # A day on each side at least: entries of one afternoon would otherwise spread over milliseconds.
    first, last = shown[0].at, shown[-1].at
    pad = max(timedelta(days=1), (last - first) / 20)
    chart: AnyChart = (
        alt.Chart(frame)
        .mark_point(filled=True, size=110)
        .encode(
            x=alt.X(
                "at:T",
                title=_("Date"),
                scale=alt.Scale(domain=[(first - pad).isoformat(), (last + pad).isoformat()]),
                # Whole days between ticks, about eight of them: never the same day twice.
                axis=alt.Axis(
                    format="%d %b %Y",
                    labelOverlap=True,
                    tickCount={"interval": "day", "step": max(1, ((last - first) + 2 * pad).days // 8)},
                ),
            ),
            y=alt.Y("lane:N", title=None, sort=lanes, scale=alt.Scale(domain=lanes), axis=alt.Axis(labelLimit=0)),
            color=alt.Color("lane:N", scale=alt.Scale(domain=lanes), legend=None),
            tooltip=[
                alt.Tooltip("at:T", title=_("When"), format="%Y-%m-%d %H:%M"),
                alt.Tooltip("what:N", title=_("What")),
                alt.Tooltip("who:N", title=_("Who")),
                alt.Tooltip("why:N", title=_("Why")),
            ],
        )
        .properties(height=charts.AXES_HEIGHT + 36 * len(lanes))
    )
    return chart


def show(pilot: PilotSpec, active: int, language: Language, today: date | None = None) -> None:
    """Draws the pilot's timeline with its budget, spend to date and cost per active participant beside."""
    st.subheader(_("Timeline and budget"))
    timeline = data.timeline(data.database_url(), pilot.key)
    events, money = st.columns([3, 1], gap="large")
    with money:
        if pilot.budget is None:
            st.caption(_("No budget is registered for this stage."))
        else:
            share = spent_share(pilot, today or date.today())
            st.metric(_("Budget of the stage"), fmt.money(pilot.budget, pilot.currency, language))
            st.metric(
                _("Spent to date"),
                fmt.money(None if share is None else pilot.budget * share, pilot.currency, language),
                help=_(
                    "The budget spread evenly from the pilot's start to its next decision: {share} of the stage "
                    "has run."
                ).format(share=fmt.share(share, language)),
            )
            st.metric(
                _("Cost per active participant"),
                fmt.money(pilot.budget / active if active else None, pilot.currency, language),
                help=_("The stage's budget divided by the {active} participants active so far.").format(
                    active=fmt.count(active, language)
                ),
            )
    with events:
        if not timeline.entries:
            st.info(_("Nothing recorded on this pilot's timeline yet."))
            return
        charts.show(timeline_chart(timeline, language))
    with st.expander(_("Every entry of the timeline, who and why"), icon=":material/history:"):
        rows = []
        for entry in reversed(timeline.entries):
            lane, text = lane_and_text(entry, language)
            who, why = who_and_why(entry)
            rows.append(
                {
                    _("When"): fmt.moment(entry.at, language),
                    _("Kind"): lane,
                    _("What"): text,
                    _("Who"): who or fmt.MISSING,
                    _("Why"): why or fmt.MISSING,
                }
            )
        export.table(pd.DataFrame(rows), f"timeline-{pilot.key}")
