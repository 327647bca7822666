"""Citizens' voice: NPS, usability (SUS), ratings, recent comments, ideas ranked by votes, themes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import auth, charts, data
from ui.format import count
from ui.selection import choose_pilot

auth.require("read")
st.title("Citizens' voice")
url = data.database_url()
pilots = data.pilots(url)
pilot = choose_pilot(pilots)
if pilot is None:
    st.stop()
view = data.voice_view(url, pilot.key)
figures, summary = view.figures, view.summary

nps_box, sus_box, rating_box, comment_box, idea_box = st.columns(5)
nps_box.metric(
    "Net Promoter Score",
    "n/a" if figures.nps is None else f"{figures.nps:+.0f}",
    help=f"{count(summary.nps_respondents)} respondents; % promoters (9-10) minus % detractors (0-6), -100 to +100.",
)
sus_box.metric(
    "Usability (SUS)",
    "n/a" if figures.sus.mean is None else f"{figures.sus.mean:.1f}",
    help=f"{count(figures.sus.respondents)} respondents"
    + ("" if figures.sus.sd is None else f", standard deviation {figures.sus.sd:.1f}")
    + "; 0-100, 68 is average usability.",
)
rating_box.metric(
    "Rating",
    "n/a" if figures.rating.mean is None else f"{figures.rating.mean:.2f} / 5",
    help=f"{count(figures.rating.respondents)} ratings",
)
comment_box.metric("Comments", count(figures.comments))
idea_box.metric("Ideas", count(figures.ideas))

left, right = st.columns(2)
with left:
    st.subheader("Would they recommend it?")
    charts.show(charts.nps_chart(figures))
    st.caption(
        f"{count(figures.promoters)} promoters, {count(figures.passives)} passives, "
        f"{count(figures.detractors)} detractors."
    )
    st.subheader("Ratings")
    charts.show(charts.rating_chart(figures))
with right:
    st.subheader("Themes")
    if summary.themes:
        st.dataframe(
            pd.DataFrame(summary.themes, columns=["Theme", "Comments and ideas using it"]),
            hide_index=True,
        )
    else:
        st.info("No comment or idea yet.")
    st.subheader("Ideas, most supported first")
    if view.ideas:
        st.dataframe(
            pd.DataFrame(
                [(i.text, i.votes, i.voters, i.occurred_at) for i in view.ideas],
                columns=["Idea", "Net votes", "Voters", "Proposed"],
            ),
            hide_index=True,
            column_config={"Proposed": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
        )
    else:
        st.info("No idea proposed yet.")

st.subheader("Recent comments")
if view.comments:
    st.dataframe(
        pd.DataFrame([(c.occurred_at, c.text) for c in view.comments], columns=["When", "Comment"]),
        hide_index=True,
        column_config={"When": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )
else:
    st.info("No comment yet.")

experiments = [e for e in data.experiments(url) if e.pilot_key == pilot.key and e.status != "draft"]
if experiments:
    st.subheader("By variant")
    key = st.selectbox("Experiment", [e.spec.key for e in experiments], key="voice_experiment")
    by_variant = data.voice_by_variant(url, pilot.key, key)
    if by_variant:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Variant": variant,
                        "NPS": f.nps,
                        "NPS respondents": f.promoters + f.passives + f.detractors,
                        "Rating": f.rating.mean,
                        "Ratings": f.rating.respondents,
                        "SUS": f.sus.mean,
                        "SUS respondents": f.sus.respondents,
                    }
                    for variant, f in by_variant.items()
                ]
            ),
            hide_index=True,
            column_config={
                "NPS": st.column_config.NumberColumn(format="%+.0f"),
                "Rating": st.column_config.NumberColumn(format="%.2f"),
                "SUS": st.column_config.NumberColumn(format="%.1f"),
            },
        )
        st.caption("Feedback of the participants exposed to each variant (their latest answer counts).")
    else:
        st.info("No feedback from this experiment's participants yet.")
