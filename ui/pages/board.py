"""Decision board: the recommendation and its reasons in plain words, the scorecard on three axes, the
form to record the board's decision (board and admin roles), the history, and the exported report."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from experiments import board
from experiments.report import describe, headline, metric_roles, render_html, render_pdf
from experiments.store import StoreError
from ui import auth, charts, data
from ui.format import OUTCOME_BACKGROUNDS, OUTCOME_ICONS, STATUS_ICONS, share
from ui.selection import choose_experiment

#: The evaluation each experiment's board form was drawn with: a decision is recorded against it.
SEEN = "board_seen"
MESSAGE = "board_message"
REASON_ICONS = {
    "srm": ":red[:material/report:]",
    "primary": ":material/target:",
    "guardrail": ":material/shield:",
    "error": ":orange[:material/warning:]",
    "sample": ":material/groups:",
    "scorecard": ":material/fact_check:",
}

account = auth.require("read")
st.title("Decision board")
url = data.database_url()
pilots = data.pilots(url)
stored = choose_experiment(data.experiments(url), pilots)
if stored is None:
    st.stop()
key = stored.spec.key
ev = data.evaluation(url, key)
st.session_state.setdefault(SEEN, {})[key] = ev
content = board.snapshot_content(ev)
advice = ev.recommendation
spec = ev.experiment.spec
plan = spec.analysis

st.markdown(
    f"### :{OUTCOME_BACKGROUNDS[advice.outcome]}-background[{OUTCOME_ICONS[advice.outcome]} {headline(content)}]"
)
st.caption(
    f"{ev.pilot.name} · experiment {key} ({ev.experiment.status}) · next decision "
    f"{ev.pilot.next_decision or 'not set'} · figures as of {ev.results['as_of']} · engine {plan.engine}, "
    f"alpha {plan.alpha:g}, correction {plan.correction}, minimum effect for go "
    f"{share(ev.pilot.decision.minimum_effect, 1)}"
)
if spec.hypothesis:
    st.markdown(f"*Hypothesis:* {spec.hypothesis}")

st.subheader("Why")
for reason in advice.reasons:
    st.markdown(f"{REASON_ICONS.get(reason.kind, '-')} {reason.text}")

st.subheader("Key results")
roles = metric_roles(spec.primary, [g.metric for g in spec.guardrails], [mk.key for mk in spec.metrics])
for row in ev.comparisons:
    said = describe(row, spec)
    st.markdown(f"- **{roles.get(row.metric, 'secondary')}**: {said.text}")
left, right = st.columns(2)
with left:
    charts.show(
        charts.forest_chart(
            ev.comparisons,
            roles,
            difference=plan.difference,
            alpha=plan.alpha,
            engine=plan.engine,
            minimum_effect=ev.pilot.decision.minimum_effect,
        )
    )
with right:
    cumulative = [(float(day), n) for day, n in ev.evidence.adoption.cumulative_adopters]
    charts.show(charts.adoption_chart(cumulative, ev.forecast))

st.subheader("Scorecard")
for column, axis in zip(st.columns(3), ev.evidence.scorecard, strict=True):
    with column:
        column.metric(
            axis.name.capitalize(),
            "no target" if axis.score is None else f"{axis.score * 100:.0f} % met",
            help="Share of this axis' criteria with a pre-registered target that are met.",
        )
        for c in axis.criteria:
            observed = "no data" if c.observed is None else f"{c.observed:,.4g}"
            target = "" if c.target is None else f" (target {'≥' if c.comparison == '>=' else '≤'} {c.target:,.4g})"
            st.markdown(f"{STATUS_ICONS[c.status]} **{c.label}**: {observed}{target}", help=c.detail)

st.subheader("Record the board's decision")
message = st.session_state.pop(MESSAGE, None)
if message:
    (st.success if message[0] == "ok" else st.error)(message[1])


def record(experiment: str, recorder: str) -> None:
    """Records the decision against a snapshot of the evaluation the form was drawn with."""
    seen: board.Evaluation = st.session_state[SEEN][experiment]
    try:
        shot = board.take_snapshot(data.store(), seen)
        decision = board.record_decision(
            data.store(),
            shot.id,
            st.session_state["decision_outcome"],
            st.session_state["decision_rationale"],
            st.session_state["decision_members"],
            st.session_state["decision_conditions"],
            recorder,
        )
    except StoreError as exc:
        st.session_state[MESSAGE] = ("error", f"Not recorded: {exc}")
        return
    data.forget()
    st.session_state[MESSAGE] = (
        "ok",
        f"Decision {decision.id} recorded: {decision.outcome}, against snapshot {shot.id} "
        f"(SHA-256 {shot.digest[:16]}…).",
    )


if auth.allowed(account, "decide"):
    outcomes = list(board.DECISION_OUTCOMES)
    with st.form("decision", clear_on_submit=True):
        st.selectbox(
            "Outcome",
            outcomes,
            index=outcomes.index(advice.outcome) if advice.outcome in outcomes else outcomes.index("iterate"),
            key="decision_outcome",
        )
        st.text_area("Rationale", key="decision_rationale", placeholder="Why the board decides this")
        st.text_area("Members present (one per line)", key="decision_members")
        st.text_area("Conditions (optional)", key="decision_conditions")
        st.form_submit_button("Record decision", type="primary", on_click=record, args=(key, account.username))
    st.caption(
        "The decision is recorded against a snapshot of exactly the figures above (SHA-256 of their canonical JSON). "
        "Recording it closes a stopped experiment; a running one keeps running until the lab stops it."
    )
else:
    st.info(f"Board members record decisions; you are signed in with the {account.role} role.")

st.subheader("History")
history = board.decision_history(data.store(), ev.pilot.key)
if history:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When": d.at,
                    "Experiment": d.experiment_key,
                    "Decision": d.outcome,
                    "Recommended": d.recommendation,
                    "Rationale": d.rationale,
                    "Members": ", ".join(d.members),
                    "Conditions": d.conditions,
                    "Recorded by": d.recorded_by,
                    "Snapshot SHA-256": d.digest,
                }
                for d in history
            ]
        ),
        hide_index=True,
        column_config={"When": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )
else:
    st.caption("No decision recorded for this pilot yet.")

st.subheader("Decision report")
own = [d for d in history if d.experiment_key == key]
choices = ["current", *(str(d.id) for d in own)]
chosen = st.radio(
    "Report of",
    choices,
    format_func=lambda c: (
        "the figures shown above"
        if c == "current"
        else f"decision {c} ({next(d for d in own if str(d.id) == c).outcome})"
    ),
    horizontal=True,
)
decided = next((d for d in own if str(d.id) == chosen), None)
name = f"decision-report-{key}-{'current' if decided is None else f'decision-{decided.id}'}"


def report_content() -> tuple[dict[str, object], str]:
    """Returns the content and digest the report is made of: a decision's snapshot, or the figures shown."""
    if decided is None:
        return content, board.digest_of(content)
    shot = board.snapshot(data.store(), decided.snapshot_id)
    return shot.content, shot.digest


html_box, pdf_box = st.columns(2)
html_box.download_button(
    "Download HTML",
    data=lambda: render_html(*report_content(), decided),
    file_name=f"{name}.html",
    mime="text/html",
    on_click="ignore",
    key="report_html",
)
pdf_box.download_button(
    "Download PDF",
    data=lambda: render_pdf(*report_content(), decided),
    file_name=f"{name}.pdf",
    mime="application/pdf",
    on_click="ignore",
    key="report_pdf",
)
if decided is None:
    st.caption(f"SHA-256 of the figures shown: {board.digest_of(content)}")
if advice.expected_days is not None:
    st.caption(f"Expected days to the planned sample at the current rate: {math.ceil(advice.expected_days)}.")
