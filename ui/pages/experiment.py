"""Experiment: what the figures say, the effect and interval of every metric and variant (technical
columns behind an expander), the forest plot, the monitoring chart by day of first exposure, the
sample-ratio check and the pace towards the planned sample, in event time."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from experiments import formatting as fmt
from experiments import report
from experiments.i18n import description_of, name_of, spec_text
from experiments.readmodels.exposure import comparisons, units_of
from ui import auth, charts, data, export
from ui.glossary import help_for
from ui.icons import VERDICT_ICONS
from ui.language import _, current
from ui.selection import choose_experiment
from ui.text import plain

auth.require("read")
language = current()
st.title(_("Experiment"))
url = data.database_url()
pilots = data.pilots(url)
stored = choose_experiment(data.experiments(url), pilots)
if stored is None:
    st.stop()
spec = stored.spec
plan = spec.analysis
roles = report.metric_roles(spec.primary, [g.metric for g in spec.guardrails], [mk.key for mk in spec.metrics])
names = {mk.key: name_of(mk, language) for mk in spec.metrics}
kinds = {mk.key: mk.type for mk in spec.metrics}

ev = data.evaluation(url, spec.key)
hypothesis = spec_text(spec.hypothesis, language)
st.markdown(f"**{plain(hypothesis)}**" if hypothesis else _("No hypothesis written."))
started = fmt.day(stored.started_at.date(), language) if stored.started_at else fmt.MISSING
st.caption(
    plain(
        _("{status} · started {started} · control: {control} · figures as of {as_of}").format(
            status=fmt.term(fmt.STATUSES, stored.status, language),
            started=started,
            control=spec.control,
            as_of=fmt.moment(ev.as_of, language),
        )
    )
)

segment_box, metric_box = st.columns(2)
view_all = data.experiment_view(url, spec.key, "", spec.primary)
# Labels written now, once: a widget may call its format function again outside this run.
segment_labels = {"": _("Everyone"), **{s: s.replace(":", ": ") for s in view_all.segments}}
segment = segment_box.selectbox(_("Participants"), list(segment_labels), format_func=segment_labels.__getitem__)
results = ev.results if not segment else data.experiment_view(url, spec.key, segment, spec.primary).results
analysis = results["analysis"]
srm = analysis["srm"]
units = units_of(results)

if srm["mismatch"]:
    planned = " / ".join(f"{v} {fmt.share(w, language)}" for v, w in spec.variants)
    seen = ", ".join(f"{v} {fmt.count(units.get(v, 0), language)}" for v, _w in spec.variants)
    st.error(
        plain(
            _(
                "Sample ratio mismatch ({p}): participants per variant ({seen}) do not match the planned split "
                "({planned}). Assignment or logging is broken: no comparison below can be trusted."
            ).format(p=fmt.p_is(srm["p_value"], language), seen=seen, planned=planned)
        ),
        icon=":material/report:",
    )

exposure = ev.exposure
if exposure.planned_sample:
    st.progress(
        exposure.progress or 0.0,
        text=_("{units} of {planned} planned participants exposed ({share})").format(
            units=fmt.count(exposure.units, language),
            planned=fmt.count(exposure.planned_sample, language),
            share=fmt.share(exposure.progress, language),
        ),
    )
else:
    st.caption(
        _("{units} participants exposed; the plan sets no sample size.").format(
            units=fmt.count(exposure.units, language)
        )
    )
if stored.status == "running":
    if exposure.units_per_day is None:
        st.caption(
            _("Pace: not enough data yet (no complete day of first exposures)."), help=help_for("planned-sample")
        )
    else:
        st.caption(
            _(
                "Pace over the last {days} days of first exposures: {rate} participants a day; planned sample {when}."
            ).format(
                days=fmt.count(exposure.rate_days, language),
                rate=fmt.number(exposure.units_per_day, language, 1),
                when=_("reached in {days}").format(days=fmt.days_to_go(exposure.days_to_reach, language))
                if exposure.planned_sample
                else _("not set"),
            ),
            help=help_for("planned-sample"),
        )

rows = comparisons(results)
st.subheader(_("What the figures say"), help=help_for("interval"))
for row in rows:
    if roles.get(row.metric) == "secondary":
        continue
    said = report.describe(row, spec, language)
    role = fmt.term(fmt.ROLES, roles[row.metric], language)
    st.markdown(f"{VERDICT_ICONS[said.verdict]} **{plain(role)}** — {plain(said.text)}")

described = [(names[mk.key], description_of(mk, language)) for mk in spec.metrics if description_of(mk, language)]
if described:
    with st.expander(_("What each metric measures"), icon=":material/straighten:"):
        for name, text in described:
            st.markdown(f"**{plain(name)}**: {plain(text)}")

st.subheader(_("Results by metric and variant"))
interval = report.interval_label(plan.alpha, plan.engine, language).capitalize()
bayesian = plan.engine == "bayesian"
table = pd.DataFrame(
    [
        {
            _("Metric"): names.get(r.metric, r.metric),
            _("Role"): fmt.term(fmt.ROLES, roles.get(r.metric, "secondary"), language),
            _("Variant"): r.variant,
            _("Participants"): fmt.count(units.get(r.variant, 0), language),
            _("Control"): fmt.metric_value(r.control_mean, kinds.get(r.metric, "mean"), language),
            _("Variant's value"): fmt.metric_value(r.mean, kinds.get(r.metric, "mean"), language),
            _("Effect"): report.signed(r.effect, plan.difference, language),
            interval: _("{low} to {high}").format(
                low=report.signed(r.ci_low, plan.difference, language),
                high=report.signed(r.ci_high, plan.difference, language),
            ),
            (_("Chance to beat the control") if bayesian else _("p-value")): fmt.share(r.chance_to_win, language, 1)
            if bayesian
            else fmt.p_value(r.adjusted_p_value if plan.correction != "none" else r.p_value, language),
        }
        for r in rows
    ]
)
export.table(table, f"results-{spec.key}")
with st.expander(_("Technical details"), icon=":material/data_object:"):
    export.table(
        pd.DataFrame(
            [
                {
                    _("Metric key"): r.metric,
                    _("Variant"): r.variant,
                    _("Control mean"): fmt.significant(r.control_mean, language, 6),
                    _("Variant mean"): fmt.significant(r.mean, language, 6),
                    _("Effect"): fmt.significant(r.effect, language, 6),
                    _("Interval low"): fmt.significant(r.ci_low, language, 6),
                    _("Interval high"): fmt.significant(r.ci_high, language, 6),
                    _("p-value"): fmt.p_value(r.p_value, language),
                    _("Adjusted p-value"): fmt.p_value(r.adjusted_p_value, language),
                    _("Chance to win"): fmt.share(r.chance_to_win, language, 1),
                    _("Error"): r.error or fmt.MISSING,
                }
                for r in rows
            ]
        ),
        f"results-{spec.key}-technical",
    )
    for label, value in report.analysis_settings(
        engine=plan.engine,
        difference=plan.difference,
        alpha=plan.alpha,
        correction=plan.correction,
        minimum_effect=ev.pilot.decision.minimum_effect,
        srm=srm,
        as_of=None,
        language=language,
    ):
        st.markdown(f"**{plain(label)}**: {plain(value)}")

st.subheader(_("Forest plot"), help=help_for("minimum-effect"))
charts.show_forest(rows, spec, roles, names, ev.pilot.decision.minimum_effect)

st.subheader(
    _("Monitoring, day by day of first exposure"),
    help=help_for("always-valid-interval" if plan.engine == "sequential" else "interval"),
)
metric = metric_box.selectbox(
    _("Metric followed over time"),
    [mk.key for mk in spec.metrics],
    index=[mk.key for mk in spec.metrics].index(spec.primary),
    format_func=lambda k: f"{names[k]} ({fmt.term(fmt.ROLES, roles[k], language)})",
)
looks = [p for p in data.experiment_view(url, spec.key, "", metric).monitoring if p.metric == metric]
if len({p.day for p in looks}) >= 2:
    charts.show(
        charts.monitoring_chart(looks, difference=plan.difference, alpha=plan.alpha, engine=plan.engine),
        frame=charts.SERIES_FRAME,
    )
else:
    st.info(_("Not enough data yet: the chart needs participants first exposed on two different days at least."))
if plan.engine == "sequential":
    st.caption(
        _(
            "Each point: the participants first exposed up to that day, with their outcomes as measured now. "
            "Always-valid intervals: they may be read at any time without inflating false positives."
        )
    )
else:
    st.caption(
        _(
            "Each point: the participants first exposed up to that day, with their outcomes as measured now. "
            "These intervals hold at the planned sample only: reading them early and stopping on a good day "
            "inflates false positives."
        )
    )

st.subheader(_("Variants"), help=help_for("srm"))
total = max(1, sum(units.values()))
export.table(
    pd.DataFrame(
        [
            {
                _("Variant"): v,
                _("Planned share"): fmt.share(w, language),
                _("Participants"): fmt.count(units.get(v, 0), language),
                _("Observed share"): fmt.share(units.get(v, 0) / total, language, 1),
            }
            for v, w in spec.variants
        ]
    ),
    f"variants-{spec.key}",
)
st.caption(_("Sample ratio check: {p} against the planned shares.").format(p=fmt.p_is(srm["p_value"], language)))
