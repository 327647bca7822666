"""Experiment: the effect and interval of every metric and variant, the forest plot, the sequential
monitoring chart, the sample-ratio check and the progress towards the planned sample."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from experiments.readmodels.exposure import comparisons, units_of
from experiments.report import describe, metric_roles
from ui import auth, charts, data
from ui.format import count, days, share
from ui.selection import choose_experiment

auth.require("read")
st.title("Experiment")
url = data.database_url()
pilots = data.pilots(url)
stored = choose_experiment(data.experiments(url), pilots)
if stored is None:
    st.stop()
spec = stored.spec
plan = spec.analysis
roles = metric_roles(spec.primary, [g.metric for g in spec.guardrails], [mk.key for mk in spec.metrics])

ev = data.evaluation(url, spec.key)
st.markdown(f"**{spec.hypothesis or 'No hypothesis written.'}**")
started = "" if stored.started_at is None else f" · started {stored.started_at:%Y-%m-%d}"
st.caption(
    f"Status **{stored.status}**{started} · control **{spec.control}** · engine **{plan.engine}** · "
    f"{plan.difference} difference · alpha **{plan.alpha:g}** · correction **{plan.correction}**"
    + (f" · sequential tuning N* = {plan.sequential_tuning:,}" if plan.engine == "sequential" else "")
    + f" · figures as of {ev.results['as_of']}"
)

segment_box, metric_box = st.columns(2)
view_all = data.experiment_view(url, spec.key, "", spec.primary)
segment = segment_box.selectbox(
    "Participants", ["", *view_all.segments], format_func=lambda s: "Everyone" if not s else s.replace(":", ": ")
)
results = ev.results if not segment else data.experiment_view(url, spec.key, segment, spec.primary).results
analysis = results["analysis"]
srm = analysis["srm"]
units = units_of(results)

if srm["mismatch"]:
    planned = " / ".join(f"{v} {share(w)}" for v, w in spec.variants)
    seen = ", ".join(f"{v} {count(units.get(v, 0))}" for v, _ in spec.variants)
    st.error(
        f"Sample ratio mismatch (p = {srm['p_value']:.2g}): participants per variant ({seen}) do not match the "
        f"planned split ({planned}). Assignment or logging is broken: no comparison below can be trusted."
    )

exposure = ev.exposure
if exposure.planned_sample:
    st.progress(
        exposure.progress or 0.0,
        text=f"{count(exposure.units)} of {count(exposure.planned_sample)} planned participants exposed "
        f"({share(exposure.progress)})",
    )
    if stored.status == "running":
        st.caption(
            f"Exposure rate over the last days: {exposure.units_per_day:,.1f} participants a day; planned sample "
            f"reached in {days(exposure.days_to_reach)}."
        )
else:
    st.caption(f"{count(exposure.units)} participants exposed; the plan sets no sample size.")

rows = comparisons(results)
st.subheader("What the figures say")
for row in rows:
    if roles.get(row.metric) == "secondary":
        continue
    said = describe(row, spec)
    icon = {
        "better": ":green[:material/thumb_up:]",
        "worse": ":red[:material/thumb_down:]",
        "unclear": ":gray[:material/radio_button_unchecked:]",
        "error": ":orange[:material/warning:]",
    }[said.verdict]
    st.markdown(f"{icon} **{roles[row.metric]}** — {said.text}")

st.subheader("Results by metric and variant")
table = pd.DataFrame(
    [
        {
            "Metric": r.metric,
            "Role": roles.get(r.metric, "secondary"),
            "Variant": r.variant,
            "Participants": units.get(r.variant, 0),
            "Control mean": r.control_mean,
            "Variant mean": r.mean,
            "Effect": r.effect,
            "Interval low": r.ci_low,
            "Interval high": r.ci_high,
            "p-value": r.p_value,
            "Adjusted p-value": r.adjusted_p_value,
            "Chance to win": r.chance_to_win,
            "Error": r.error or "",
        }
        for r in rows
    ]
)
effect_format = "percent" if plan.difference == "relative" else "%.4g"
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "Effect": st.column_config.NumberColumn(format=effect_format),
        "Interval low": st.column_config.NumberColumn(format=effect_format),
        "Interval high": st.column_config.NumberColumn(format=effect_format),
        "Control mean": st.column_config.NumberColumn(format="%.4g"),
        "Variant mean": st.column_config.NumberColumn(format="%.4g"),
        "p-value": st.column_config.NumberColumn(format="%.4f"),
        "Adjusted p-value": st.column_config.NumberColumn(format="%.4f"),
        "Chance to win": st.column_config.NumberColumn(format="percent"),
    },
)
st.caption(
    f"Effect = (variant - control) / control mean ({plan.difference} difference); interval at "
    f"{share(1 - plan.alpha)}; p-values adjusted with {plan.correction} across every metric and treatment. "
    f"Sample-ratio check: p = {srm['p_value']:.3g} against the planned weights "
    + ", ".join(f"{v} {w:g}" for v, w in spec.variants)
    + "."
)

left, right = st.columns(2)
with left:
    st.subheader("Forest plot")
    charts.show(
        charts.forest_chart(
            rows,
            roles,
            difference=plan.difference,
            alpha=plan.alpha,
            engine=plan.engine,
            minimum_effect=ev.pilot.decision.minimum_effect,
        )
    )
with right:
    st.subheader("Sequential monitoring")
    metric = metric_box.selectbox(
        "Metric followed over time",
        [mk.key for mk in spec.metrics],
        index=[mk.key for mk in spec.metrics].index(spec.primary),
        format_func=lambda k: f"{k} ({roles[k]})",
    )
    looks = data.experiment_view(url, spec.key, "", metric).monitoring
    if looks:
        charts.show(
            charts.monitoring_chart(
                [p for p in looks if p.metric == metric],
                difference=plan.difference,
                alpha=plan.alpha,
                engine=plan.engine,
            )
        )
    else:
        st.info("No hourly history yet for this experiment.")
    if plan.engine == "sequential":
        st.caption("Always-valid intervals: they may be read at any time without inflating false positives.")
    else:
        st.caption(
            f"Intervals of the {plan.engine} engine at each hour. They are valid at the planned sample only: "
            "reading them early and stopping on a good day inflates false positives."
        )

st.subheader("Variants")
st.dataframe(
    pd.DataFrame(
        [
            {
                "Variant": v,
                "Planned weight": w,
                "Participants": units.get(v, 0),
                "Observed share": units.get(v, 0) / max(1, sum(units.values())),
            }
            for v, w in spec.variants
        ]
    ),
    hide_index=True,
    column_config={
        "Planned weight": st.column_config.NumberColumn(format="percent"),
        "Observed share": st.column_config.NumberColumn(format="percent"),
    },
)
