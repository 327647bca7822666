"""Portfolio: every pilot with its stage, its experiments' status and recommendation, the pace towards the
planned sample, and the next decision."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from experiments import formatting as fmt
from experiments.i18n import spec_text
from experiments.readmodels.portfolio import PortfolioExperiment
from ui import auth, data, export
from ui.glossary import help_for
from ui.language import _, current

auth.require("read")
language = current()
st.title(_("Portfolio"))
st.caption(
    _(
        "Every pilot and its experiments: where each stands, what the pre-registered rules recommend today, and "
        "when the board decides next. Recommendations are recomputed from the stored figures on each visit."
    )
)
rows = data.portfolio(data.database_url())
if not rows:
    st.info(_("No pilot yet: the lab applies a pilot spec on the Admin page (or `rhizome pilot apply FILE.yaml`)."))
    st.stop()

experiments = [e for row in rows for e in row.experiments]
soon = date.today() + timedelta(days=30)
first, second, third, fourth = st.columns(4)
first.metric(_("Pilots"), fmt.count(len(rows), language))
second.metric(_("Experiments running"), fmt.count(sum(e.status == "running" for e in experiments), language))
third.metric(
    _("Recommended go"),
    fmt.count(sum(e.recommendation == "go" for e in experiments), language),
    help=help_for("recommendation"),
)
fourth.metric(
    _("Decisions due within 30 days"),
    fmt.count(sum(r.next_decision is not None and r.next_decision <= soon for r in rows), language),
)

stages = st.pills(
    _("Stages"),
    list(fmt.STAGES),
    default=sorted({row.stage for row in rows}),
    selection_mode="multi",
    format_func=lambda s: fmt.term(fmt.STAGES, s, language),
    key="portfolio_stages",
)


def pace(e: PortfolioExperiment) -> str:
    """Returns the days still needed to the planned sample at the current pace, in a few words."""
    exposure = e.exposure
    if e.status != "running" or not exposure.planned_sample:
        return fmt.MISSING
    if exposure.units_per_day is None:
        return _("not enough data yet")
    return fmt.days_to_go(exposure.days_to_reach, language)


table = pd.DataFrame(
    [
        {
            _("Pilot"): spec_text(row.name, language),
            _("Stage"): fmt.term(fmt.STAGES, row.stage, language),
            _("Next decision"): fmt.day(row.next_decision, language),
            _("Experiment"): e.key if e else fmt.MISSING,
            _("Status"): fmt.term(fmt.STATUSES, e.status, language) if e else _("no experiment"),
            _("Recommendation"): fmt.term(fmt.OUTCOMES, e.recommendation, language) if e else fmt.MISSING,
            _("Treatment to fund"): (e.variant or fmt.MISSING) if e else fmt.MISSING,
            _("Participants"): fmt.count(e.exposure.units, language) if e else fmt.MISSING,
            _("Progress"): fmt.share(e.exposure.progress, language) if e else fmt.MISSING,
            _("To planned sample"): pace(e) if e else fmt.MISSING,
            _("Sample ratio"): (_("⚠ mismatch") if e.srm_mismatch else _("ok"))
            if e and e.status != "draft"
            else fmt.MISSING,
            _("Board decision"): fmt.term(fmt.OUTCOMES, e.decision, language) if e and e.decision else fmt.MISSING,
        }
        for row in rows
        if row.stage in (stages or ())
        for e in (row.experiments or (None,))
    ]
)
if table.empty:
    st.info(_("No pilot at the stages chosen."))
else:
    export.table(table, "portfolio")
st.caption(
    _(
        "Recommendation: Go = fund the next stage with the treatment named; No-go = stop; Iterate = rework and test "
        "again; Keep running = not enough evidence yet. A sample-ratio mismatch means the split of participants "
        "between variants is not the one planned: no comparison of that experiment can be trusted until it is fixed."
    )
)
