"""Citizens' voice: NPS, usability (SUS), ratings, recent comments, ideas ranked by votes, themes.

Citizens' texts are shown in tables (drawn as text, never as Markdown) and exported with formula signs
neutralised (`ui.export`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from experiments import formatting as fmt
from ui import auth, charts, data, export
from ui.glossary import help_for
from ui.language import _, current
from ui.selection import choose_pilot

auth.require("read")
language = current()
st.title(_("Citizens' voice"))
url = data.database_url()
pilots = data.pilots(url)
pilot = choose_pilot(pilots)
if pilot is None:
    st.stop()
view = data.voice_view(url, pilot.key)
figures, summary = view.figures, view.summary

nps_box, sus_box, rating_box, comment_box, idea_box = st.columns(5)
nps_box.metric(
    _("Net Promoter Score"),
    fmt.signed_number(figures.nps, language, 2) if figures.nps is not None else fmt.MISSING,
    help=_("{n} respondents.").format(n=fmt.count(summary.nps_respondents, language)) + "\n\n" + help_for("nps"),
)
sus_box.metric(
    _("Usability (SUS)"),
    fmt.number(figures.sus.mean, language, 0),
    help=_("{n} respondents; 0-100, 68 is average usability.").format(n=fmt.count(figures.sus.respondents, language))
    + "\n\n"
    + help_for("sus"),
)
rating_box.metric(
    _("Rating"),
    _("{mean} / 5").format(mean=fmt.number(figures.rating.mean, language, 1))
    if figures.rating.mean is not None
    else fmt.MISSING,
    help=_("{n} ratings").format(n=fmt.count(figures.rating.respondents, language)),
)
comment_box.metric(_("Comments"), fmt.count(figures.comments, language))
idea_box.metric(_("Ideas"), fmt.count(figures.ideas, language))

left, right = st.columns(2)
with left:
    st.subheader(_("Would they recommend it?"), help=help_for("nps"))
    charts.show(charts.nps_chart(figures))
    st.caption(
        _("{promoters} promoters, {passives} passives, {detractors} detractors.").format(
            promoters=fmt.count(figures.promoters, language),
            passives=fmt.count(figures.passives, language),
            detractors=fmt.count(figures.detractors, language),
        )
    )
    st.subheader(_("Ratings"))
    charts.show(charts.rating_chart(figures), frame=charts.SERIES_FRAME)
with right:
    st.subheader(_("Themes"))
    if summary.themes:
        export.table(
            pd.DataFrame(
                [(theme, fmt.count(n, language)) for theme, n in summary.themes],
                columns=[_("Theme"), _("Comments and ideas using it")],
            ),
            f"themes-{pilot.key}",
        )
    else:
        st.info(_("No comment or idea yet."))
    st.subheader(_("Ideas, most supported first"))
    if view.ideas:
        export.table(
            pd.DataFrame(
                [
                    (
                        i.text,
                        fmt.count(i.votes, language),
                        fmt.count(i.voters, language),
                        fmt.moment(i.occurred_at, language),
                    )
                    for i in view.ideas
                ],
                columns=[_("Idea"), _("Net votes"), _("Voters"), _("Proposed")],
            ),
            f"ideas-{pilot.key}",
        )
    else:
        st.info(_("No idea proposed yet."))

st.subheader(_("Recent comments"))
if view.comments:
    export.table(
        pd.DataFrame(
            [(fmt.moment(c.occurred_at, language), c.text) for c in view.comments], columns=[_("When"), _("Comment")]
        ),
        f"comments-{pilot.key}",
    )
else:
    st.info(_("No comment yet."))

experiments = [e for e in data.experiments(url) if e.pilot_key == pilot.key and e.status != "draft"]
if experiments:
    st.subheader(_("By variant"))
    key = st.selectbox(_("Experiment"), [e.spec.key for e in experiments], key="voice_experiment")
    by_variant = data.voice_by_variant(url, pilot.key, key)
    if by_variant:
        export.table(
            pd.DataFrame(
                [
                    {
                        _("Variant"): variant,
                        _("NPS"): fmt.signed_number(f.nps, language, 2) if f.nps is not None else fmt.MISSING,
                        _("NPS respondents"): fmt.count(f.promoters + f.passives + f.detractors, language),
                        _("Rating"): fmt.number(f.rating.mean, language, 1),
                        _("Ratings"): fmt.count(f.rating.respondents, language),
                        _("SUS"): fmt.number(f.sus.mean, language, 0),
                        _("SUS respondents"): fmt.count(f.sus.respondents, language),
                    }
                    for variant, f in by_variant.items()
                ]
            ),
            f"voice-{pilot.key}-{key}",
        )
        st.caption(_("Feedback of the participants exposed to each variant (their latest answer counts)."))
    else:
        st.info(_("No feedback from this experiment's participants yet."))
