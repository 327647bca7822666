"""Portfolio: every pilot with its stage, its experiments' status and recommendation, and the next decision."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from ui import auth, data
from ui.format import count, days, outcome_badge

auth.require("read")
st.title("Portfolio")
st.caption(
    "Every pilot and its experiments: where each stands, what the pre-registered rules recommend today, and "
    "when the board decides next. Recommendations are recomputed from the stored figures on each visit."
)
rows = data.portfolio(data.database_url())
if not rows:
    st.info("No pilot yet: the lab applies a pilot spec on the Admin page (or `rhizome pilot apply FILE.yaml`).")
    st.stop()

experiments = [e for row in rows for e in row.experiments]
soon = date.today() + timedelta(days=30)
first, second, third, fourth = st.columns(4)
first.metric("Pilots", count(len(rows)))
second.metric("Experiments running", count(sum(e.status == "running" for e in experiments)))
third.metric("Recommended go", count(sum(e.recommendation == "go" for e in experiments)))
fourth.metric(
    "Decisions due within 30 days", count(sum(r.next_decision is not None and r.next_decision <= soon for r in rows))
)

table = pd.DataFrame(
    [
        {
            "Pilot": f"{row.name} ({row.key})",
            "Stage": row.stage,
            "Next decision": row.next_decision,
            "Experiment": e.key if e else "—",
            "Status": e.status if e else "no experiment",
            "Recommendation": outcome_badge(e.recommendation) if e else "—",
            "Treatment to fund": (e.variant or "") if e else "",
            "Participants": e.exposure.units if e else None,
            "Planned": e.exposure.planned_sample if e else None,
            "Progress": e.exposure.progress if e else None,
            "To planned sample": days(e.exposure.days_to_reach)
            if e and e.status == "running" and e.exposure.planned_sample
            else "",
            "Sample ratio": ("⚠ mismatch" if e.srm_mismatch else "ok") if e and e.status != "draft" else "",
            "Board decision": e.decision or "" if e else "",
        }
        for row in rows
        for e in (row.experiments or (None,))
    ]
)
stages = st.multiselect("Stages", sorted(table["Stage"].unique()), default=sorted(table["Stage"].unique()))
st.dataframe(
    table[table["Stage"].isin(stages)],
    hide_index=True,
    column_config={
        "Next decision": st.column_config.DateColumn(format="YYYY-MM-DD"),
        "Progress": st.column_config.ProgressColumn(
            "Progress", help="Share of the planned sample exposed", min_value=0.0, max_value=1.0, format="percent"
        ),
        "Participants": st.column_config.NumberColumn(format="localized"),
        "Planned": st.column_config.NumberColumn(format="localized"),
    },
)
st.caption(
    "Recommendation: go = fund the next stage with the treatment named; no-go = stop; iterate = rework and test "
    "again; keep running = not enough evidence yet. A sample-ratio mismatch means the split of participants between "
    "variants is not the one planned: no comparison of that experiment can be trusted until it is fixed."
)
