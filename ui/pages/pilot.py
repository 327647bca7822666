"""Pilot: the adoption curve with its Bass forecast explained in words, daily activity on the same time
axis, retention cohorts, reach, and the pilot's budget with its timeline."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from experiments import formatting as fmt
from experiments.adoption import explain_forecast
from experiments.i18n import spec_text
from ui import auth, charts, data, timeline
from ui.glossary import help_for
from ui.language import _, current
from ui.selection import choose_pilot
from ui.text import plain

auth.require("read")
language = current()
st.title(_("Pilot"))
url = data.database_url()
pilot = choose_pilot(data.pilots(url))
if pilot is None:
    st.stop()

facts = [_("stage: {stage}").format(stage=fmt.term(fmt.STAGES, pilot.stage, language))]
if pilot.start:
    facts.append(_("started {day}").format(day=fmt.day(pilot.start, language)))
if pilot.next_decision:
    facts.append(_("next decision {day}").format(day=fmt.day(pilot.next_decision, language)))
if pilot.owner:
    facts.append(_("owner: {owner}").format(owner=pilot.owner))
st.caption(plain(" · ".join(facts)))
description = spec_text(pilot.description, language)
if description:
    st.markdown(plain(description))

everyone = data.pilot_view(url, pilot.key, "")
# Labels written now, once: a widget may call its format function again outside this run.
segment_labels = {"": _("Everyone"), **{s: s.replace(":", ": ") for s in everyone.segments}}
segment = st.selectbox(_("Participants"), list(segment_labels), format_func=segment_labels.__getitem__)
view = everyone if not segment else data.pilot_view(url, pilot.key, segment)
series = view.series
if not series:
    st.info(_("No usage recorded yet for these participants."))
    st.stop()

last = series[-1]
adopters, active, activated, age = st.columns(4)
adopters.metric(
    _("Participants so far"),
    fmt.count(last.cumulative_adopters, language),
    delta=_("+{n} on {day}").format(n=fmt.count(last.new, language), day=fmt.day(last.day, language, "short")),
)
active.metric(_("Active on {day}").format(day=fmt.day(last.day, language, "short")), fmt.count(last.active, language))
activated.metric(
    _("Activated"),
    fmt.share(last.cumulative_activated / last.cumulative_adopters if last.cumulative_adopters else None, language),
    help=plain(
        _("Share of participants who did the key action ({action}) at least once.").format(
            action=pilot.key_action or _("none set")
        )
    ),
)
age.metric(_("Days since the start"), fmt.count(last.days_since_start + 1, language))

left, right = st.columns(2)
with left:
    st.subheader(_("Adoption and forecast"), help=help_for("bass-forecast"))
    cumulative = [(float(r.days_since_start), r.cumulative_adopters) for r in series]
    start = series[0].day - timedelta(days=series[0].days_since_start)
    charts.show(
        charts.adoption_chart(cumulative, view.forecast, start=start, language=language, width=None),
        frame=charts.SERIES_FRAME,
    )
    fit = everyone.fit
    if segment:
        st.caption(_("The Bass forecast is fitted to everyone's adoption; choose Everyone to see it."))
    elif fit is not None:
        reading = explain_forecast(
            fit,
            pilot_age_days=float(last.days_since_start + 1),
            adopters=float(last.cumulative_adopters),
            latest_new=float(last.new),
            horizon_days=float(pilot.decision.forecast_horizon_days),
            population=pilot.population,
        )
        st.markdown(plain(fmt.render(reading.summary, language)))
        if reading.cautions:
            st.warning(
                "\n".join(f"- {plain(fmt.render(c, language))}" for c in reading.cautions),
                icon=":material/warning:",
            )
with right:
    st.subheader(_("Daily activity"))
    charts.show(charts.daily_activity_chart(series), frame=charts.SERIES_FRAME)
    st.caption(_("New: first day of use. Returning: active again after their first day."))

st.subheader(_("Retention by weekly cohort"), help=help_for("retention"))
if view.retention.cohorts:
    charts.show(charts.retention_heatmap(view.retention), frame=charts.AXES_HEIGHT)
    curve = view.retention.average()
    st.caption(
        _("Share of each week's newcomers still active k weeks later. Across cohorts: {weeks}.").format(
            weeks=", ".join(
                _("week {k}: {share}").format(k=k, share=fmt.share(rate, language))
                for k, rate in zip(view.retention.weeks, curve, strict=True)
            )
        )
    )
else:
    st.info(_("No retention cohort yet."))

st.subheader(_("Reach"))
names = list(dict.fromkeys(r.segment for r in view.reach))
for column, name in zip(st.columns(max(1, len(names))), names, strict=False):
    with column:
        st.markdown(_("**By {segment}**").format(segment=plain(name)))
        charts.show(charts.reach_chart(view.reach, name))
if pilot.districts:
    reached = [r for r in view.reach if r.segment == "district" and r.value in pilot.districts]
    missing = [r.value for r in reached if r.participants == 0]
    said = _("{reached} of {targets} target districts reached.").format(
        reached=fmt.count(len(reached) - len(missing), language), targets=fmt.count(len(pilot.districts), language)
    )
    if missing:
        said += " " + _("None yet in {districts}.").format(districts=", ".join(missing))
    st.caption(plain(said))

timeline.show(pilot, last.cumulative_adopters if not segment else everyone.series[-1].cumulative_adopters, language)
