"""Pilot: the adoption curve with its Bass forecast, daily activity, retention cohorts and reach."""

from __future__ import annotations

import streamlit as st

from ui import auth, charts, data
from ui.format import count, share
from ui.selection import choose_pilot

auth.require("read")
st.title("Pilot")
url = data.database_url()
pilot = choose_pilot(data.pilots(url))
if pilot is None:
    st.stop()

facts = [f"stage **{pilot.stage}**"]
if pilot.start:
    facts.append(f"started {pilot.start:%Y-%m-%d}")
if pilot.next_decision:
    facts.append(f"next decision **{pilot.next_decision:%Y-%m-%d}**")
if pilot.budget is not None:
    facts.append(f"budget {pilot.budget:,.0f} {pilot.currency}")
if pilot.owner:
    facts.append(f"owner {pilot.owner}")
st.caption(" · ".join(facts))
if pilot.description:
    st.markdown(pilot.description)

everyone = data.pilot_view(url, pilot.key, "")
segment = st.selectbox(
    "Participants", ["", *everyone.segments], format_func=lambda s: "Everyone" if not s else s.replace(":", ": ")
)
view = everyone if not segment else data.pilot_view(url, pilot.key, segment)
series = view.series
if not series:
    st.info("No usage recorded yet for these participants.")
    st.stop()

last = series[-1]
adopters, active, activated, age = st.columns(4)
adopters.metric("Participants so far", count(last.cumulative_adopters), delta=f"+{last.new:,} on {last.day:%d %b}")
active.metric(f"Active on {last.day:%d %b}", count(last.active))
activated.metric(
    "Activated",
    share(last.cumulative_activated / last.cumulative_adopters if last.cumulative_adopters else None),
    help=f"Share of participants who did the key action ({pilot.key_action or 'none set'}) at least once.",
)
age.metric("Days since the start", count(last.days_since_start + 1))

left, right = st.columns(2)
with left:
    st.subheader("Adoption and forecast")
    cumulative = [(float(r.days_since_start), r.cumulative_adopters) for r in series]
    charts.show(charts.adoption_chart(cumulative, view.forecast))
    fit = everyone.fit
    if segment:
        st.caption("The Bass forecast is fitted to everyone's adoption; choose Everyone to see it.")
    elif fit is None or fit.parameters is None:
        st.caption(f"No forecast yet: {fit.error if fit else 'no data'}")
    else:
        p, q, m = fit.innovation, fit.imitation, fit.market_potential
        assert p is not None and q is not None and m is not None
        st.caption(
            f"Bass diffusion fit: innovation p = {p.value:.4f} ({p.low:.4f} to {p.high:.4f}), imitation "
            f"q = {q.value:.4f} ({q.low:.4f} to {q.high:.4f}) per day, market potential m = {m.value:,.0f} "
            f"({m.low:,.0f} to {m.high:,.0f}) citizens; {fit.level * 100:.0f} % intervals, band from "
            "the fit's covariance."
        )
with right:
    st.subheader("Daily activity")
    charts.show(charts.daily_activity_chart(series))
    st.caption("New: first day of use. Returning: active again after their first day.")

st.subheader("Retention by weekly cohort")
if view.retention.cohorts:
    charts.show(charts.retention_heatmap(view.retention))
    curve = view.retention.average()
    st.caption(
        "Share of each week's newcomers still active k weeks later. Across cohorts: "
        + ", ".join(f"week {k}: {share(rate)}" for k, rate in zip(view.retention.weeks, curve, strict=True))
        + "."
    )
else:
    st.info("No retention cohort yet.")

st.subheader("Reach")
names = list(dict.fromkeys(r.segment for r in view.reach))
for column, name in zip(st.columns(max(1, len(names))), names, strict=False):
    with column:
        st.markdown(f"**By {name}**")
        charts.show(charts.reach_chart(view.reach, name))
if pilot.districts:
    reached = [r for r in view.reach if r.segment == "district" and r.value in pilot.districts]
    missing = [r.value for r in reached if r.participants == 0]
    st.caption(
        f"{len(reached) - len(missing)} of {len(pilot.districts)} target districts reached"
        + (f"; none yet in {', '.join(missing)}." if missing else ".")
    )
