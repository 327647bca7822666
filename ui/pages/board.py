"""Decision board: the one-minute summary (what was tested, the primary metric from control to treatment,
the recommendation and its reasons), the key results, the scorecard on three axes, the statistical
settings behind an expander, the form to record the board's decision (board and admin roles; it starts
empty), the history and the exported report in the reader's language.

On a phone the columns stack: the recommendation comes first, the choice of experiment after it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from experiments import board, report
from experiments import formatting as fmt
from experiments.i18n import description_of, name_of, spec_text
from experiments.store import StoreError
from ui import auth, charts, data, export, timeline
from ui.glossary import help_for
from ui.icons import OUTCOME_BACKGROUNDS, OUTCOME_ICONS, REASON_ICONS, STATUS_ICONS, VERDICT_ICONS
from ui.language import _, current
from ui.selection import choose_experiment
from ui.text import plain

#: The evaluation each experiment's board form was drawn with: a decision is recorded against it.
SEEN = "board_seen"
MESSAGE = "board_message"

account = auth.require("read")
language = current()
st.title(_("Decision board"))
url = data.database_url()
pilots = data.pilots(url)
summary_box, choice_box = st.columns([3, 2], gap="large")
with choice_box:
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
said = report.summary(content, language)

with summary_box:
    st.markdown(
        f"### :{OUTCOME_BACKGROUNDS[advice.outcome]}-background[{OUTCOME_ICONS[advice.outcome]} "
        f"{plain(said.recommendation)}]",
        help=help_for("recommendation"),
    )
    st.markdown(plain(said.tested))
    if said.hypothesis:
        st.markdown(_("**Hypothesis:** {text}").format(text=plain(said.hypothesis)))
    if said.primary:
        described = description_of(spec.metric(spec.primary), language)
        st.markdown(
            f"**{plain(said.primary)}**",
            help=(plain(described) + "\n\n" if described else "") + help_for("primary-metric"),
        )
with choice_box:
    st.caption(
        plain(
            _("{pilot} · {status} · next decision {next} · figures as of {as_of}").format(
                pilot=spec_text(ev.pilot.name, language),
                status=fmt.term(fmt.STATUSES, ev.experiment.status, language),
                next=fmt.day(ev.pilot.next_decision, language) if ev.pilot.next_decision else _("not set"),
                as_of=fmt.moment(ev.as_of, language),
            )
        )
    )

st.subheader(_("Why"))
for reason in advice.reasons:
    st.markdown(f"{REASON_ICONS.get(reason.kind, '-')} {plain(fmt.render(reason.message, language))}")

with st.expander(_("Statistical settings"), icon=":material/tune:"):
    glossary_of = {
        _("Analysis"): "interval",
        _("Risk of a false discovery (alpha)"): "alpha",
        _("Multiple comparisons"): "multiple-comparisons",
        _("Minimum effect for go"): "minimum-effect",
        _("Sample ratio check (SRM)"): "srm",
    }
    for label, value in report.settings_lines(content, language):
        anchor = glossary_of.get(label)
        st.markdown(f"**{plain(label)}**: {plain(value)}", help=help_for(anchor) if anchor else None)

st.subheader(_("Key results"), help=help_for("interval"))
roles = report.metric_roles(spec.primary, [g.metric for g in spec.guardrails], [mk.key for mk in spec.metrics])
names = {mk.key: name_of(mk, language) for mk in spec.metrics}
for row in ev.comparisons:
    if roles.get(row.metric) == "secondary":
        continue
    statement = report.describe(row, spec, language)
    role = fmt.term(fmt.ROLES, roles.get(row.metric, "secondary"), language)
    st.markdown(f"{VERDICT_ICONS[statement.verdict]} **{plain(role)}**: {plain(statement.text)}")
charts.show_forest(ev.comparisons, spec, roles, names, ev.pilot.decision.minimum_effect)
st.caption(
    _(
        "Each row is one metric for one treatment: the dot is the effect, the line its interval. Dashed lines: "
        "no difference and the minimum effect for go; red marks: how far a guardrail may degrade."
    )
)

st.subheader(_("Scorecard"), help=help_for("scorecard"))
for column, axis in zip(st.columns(3), ev.evidence.scorecard, strict=True):
    with column:
        column.metric(
            fmt.term(fmt.AXES, axis.name, language),
            _("no target")
            if axis.score is None
            else _("{share} of targets met").format(share=fmt.share(axis.score, language)),
            help=_("Share of this axis' criteria with a pre-registered target that are met."),
        )
        for c in axis.criteria:
            line = report.criterion_line(c.to_json(), language)
            shown = line.observed
            if c.target is not None:
                shown = _("{observed} (target {target})").format(observed=line.observed, target=line.target)
            st.markdown(
                f"{STATUS_ICONS[c.status]} **{plain(line.label)}**: {plain(shown)}",
                help=plain(line.detail),
            )

timeline.show(ev.pilot, ev.evidence.adoption.active_participants, language)

st.subheader(_("Record the board's decision"))
message = st.session_state.pop(MESSAGE, None)
if message:
    (st.success if message[0] == "ok" else st.error)(plain(message[1]))


def record(experiment: str, recorder: str) -> None:
    """Records the decision against a snapshot of the evaluation the form was drawn with; a missing
    choice, rationale or member is named without recording anything."""
    seen: board.Evaluation = st.session_state[SEEN][experiment]
    outcome = str(st.session_state.get("decision_outcome") or "")
    missing = [
        label
        for label, given in (
            (_("the decision"), outcome),
            (_("the rationale"), (st.session_state.get("decision_rationale") or "").strip()),
            (_("the members present"), (st.session_state.get("decision_members") or "").strip()),
        )
        if not given
    ]
    if missing:
        st.session_state[MESSAGE] = ("error", _("Not recorded: give {missing}.").format(missing=", ".join(missing)))
        return
    try:
        shot = board.take_snapshot(data.store(), seen)
        decision = board.record_decision(
            data.store(),
            shot.id,
            outcome,
            st.session_state["decision_rationale"],
            st.session_state["decision_members"],
            st.session_state["decision_conditions"],
            recorder,
        )
    except StoreError as exc:
        st.session_state[MESSAGE] = ("error", _("Not recorded: {reason}").format(reason=exc))
        return
    data.forget()
    st.session_state[MESSAGE] = (
        "ok",
        _("Decision {id} recorded: {outcome}, against snapshot {snapshot} (SHA-256 {digest}…).").format(
            id=decision.id,
            outcome=fmt.term(fmt.OUTCOMES, decision.outcome, current()),
            snapshot=shot.id,
            digest=shot.digest[:16],
        ),
    )


if auth.allowed(account, "decide"):
    outcomes = list(board.DECISION_OUTCOMES)
    with st.form("decision", clear_on_submit=True):
        st.selectbox(
            _("Decision"),
            outcomes,
            index=None,
            placeholder=_("Choose the board's decision"),
            format_func=lambda o: fmt.term(fmt.OUTCOMES, o, language),
            key="decision_outcome",
            help=help_for("recommendation"),
        )
        st.text_area(_("Rationale"), key="decision_rationale", placeholder=_("Why the board decides this"))
        st.text_area(_("Members present (one per line)"), key="decision_members")
        st.text_area(_("Conditions (optional)"), key="decision_conditions")
        st.form_submit_button(_("Record decision"), type="primary", on_click=record, args=(key, account.username))
    st.caption(
        _(
            "The decision is recorded against a snapshot of exactly the figures above (SHA-256 of their canonical "
            "JSON). Recording it closes a stopped experiment; a running one keeps running until the lab stops it."
        )
    )
else:
    st.info(
        _("Board members record decisions; you are signed in with the {role} role.").format(role=plain(account.role))
    )

st.subheader(_("History"))
history = board.decision_history(data.store(), ev.pilot.key)
if history:
    export.table(
        pd.DataFrame(
            [
                {
                    _("When"): fmt.moment(d.at, language),
                    _("Experiment"): d.experiment_key or fmt.MISSING,
                    _("Decision"): fmt.term(fmt.OUTCOMES, d.outcome, language),
                    _("Recommended"): fmt.term(fmt.OUTCOMES, d.recommendation, language),
                    _("Rationale"): d.rationale,
                    _("Members"): ", ".join(d.members),
                    _("Conditions"): d.conditions or fmt.MISSING,
                    _("Recorded by"): d.recorded_by,
                    _("Snapshot SHA-256"): d.digest,
                }
                for d in history
            ]
        ),
        f"decisions-{ev.pilot.key}",
    )
else:
    st.caption(_("No decision recorded for this pilot yet."))

st.subheader(_("Decision report"))
own = [d for d in history if d.experiment_key == key]
# Labels written now, once: a widget may call its format function again outside this run.
choices = {
    "current": _("the figures shown above"),
    **{
        str(d.id): _("decision {id} ({outcome})").format(id=d.id, outcome=fmt.term(fmt.OUTCOMES, d.outcome, language))
        for d in own
    },
}
chosen = st.radio(_("Report of"), list(choices), format_func=choices.__getitem__, horizontal=True)
decided = next((d for d in own if str(d.id) == chosen), None)
name = f"decision-report-{key}-{'current' if decided is None else f'decision-{decided.id}'}-{language}"


def report_content() -> tuple[dict[str, object], str]:
    """Returns the content and digest the report is made of: a decision's snapshot, or the figures shown."""
    if decided is None:
        return content, board.digest_of(content)
    shot = board.snapshot(data.store(), decided.snapshot_id)
    return shot.content, shot.digest


html_box, pdf_box = st.columns(2)
html_box.download_button(
    _("Download HTML"),
    data=lambda: report.render_html(*report_content(), decided, language),
    file_name=f"{name}.html",
    mime="text/html",
    on_click="ignore",
    key="report_html",
)
pdf_box.download_button(
    _("Download PDF"),
    data=lambda: report.render_pdf(*report_content(), decided, language),
    file_name=f"{name}.pdf",
    mime="application/pdf",
    on_click="ignore",
    key="report_pdf",
)
if decided is None:
    st.caption(_("SHA-256 of the figures shown: {digest}").format(digest=board.digest_of(content)))
