"""Ideas and moderation (Lab): citizens' ideas and comments with the reported ones first, hidden with a
public reason, ideas given a public status (adopted into a pilot, not retained and why, done), duplicates
merged (their votes count once per voter), and board decisions' summaries published to the portal.

Citizens' texts are shown with `st.text`, never interpreted as Markdown or HTML.
"""

from __future__ import annotations

import streamlit as st

from experiments import formatting as fmt
from experiments import moderation
from experiments.board import decision_history
from experiments.readmodels import ideas as idea_reads
from experiments.readmodels.timeline import PublishedDecision, pilot_timeline
from experiments.store import StoreError
from ui import auth, data
from ui.language import _
from ui.language import current as language
from ui.selection import choose_pilot

STATUS_NAMES = {
    "new": _("New"),
    "under_review": _("Under review"),
    "adopted": _("Adopted into a pilot"),
    "not_retained": _("Not retained"),
    "done": _("Done"),
}
NOTICE = "ideas_notice"

account = auth.require("manage")
st.title(_("Ideas and moderation"))
url = data.database_url()
db = data.store()
notice = st.session_state.pop(NOTICE, None)
if notice:
    (st.success if notice[0] == "ok" else st.error)(notice[1])
pilots = data.pilots(url)
pilot = choose_pilot(pilots)
if pilot is None:
    st.stop()


def _done(action: str) -> None:
    st.session_state[NOTICE] = ("ok", action)
    data.forget()
    st.rerun()


def _failed(exc: StoreError) -> None:
    st.session_state[NOTICE] = ("error", str(exc))
    st.rerun()


queue = idea_reads.moderation_queue(db, pilot.key)
ideas = [item for item in queue if item.kind == "idea"]
titles = {item.event_id: (item.title or item.text[:60]) for item in ideas}
moderate, summaries = st.tabs([_("Ideas and comments"), _("Decisions published to citizens")])

with moderate:
    reported = sum(1 for item in queue if item.reports)
    st.caption(
        _("%(total)d texts, %(reported)d reported (listed first). Hidden texts show their public reason on the portal.")
        % {"total": len(queue), "reported": reported}
    )
    if not queue:
        st.info(_("No idea or comment yet."))
    for item in queue:
        kind = _("Idea") if item.kind == "idea" else _("Comment")
        flags = [kind, fmt.moment(item.occurred_at, language())]
        if item.reports:
            flags.append(_("reported by %(n)d") % {"n": item.reports})
        if item.hidden:
            flags.append(_("hidden"))
        if item.kind == "idea":
            flags.append(STATUS_NAMES.get(item.status, item.status))
            flags.append(_("%(voters)d voters, net %(net)+d") % {"voters": item.voters, "net": item.votes})
        with st.expander(" · ".join(flags), expanded=bool(item.reports) and not item.hidden):
            if item.title:
                st.text(item.title)
            st.text(item.text)
            if item.report_reasons:
                st.caption(_("Why citizens reported it:"))
                for reason in item.report_reasons:
                    st.text(f"- {reason}")
            key = item.event_id
            with st.form(f"hide-{key}"):
                reason = st.text_input(
                    _("Public reason (shown on the portal)"), value=item.public_reason, key=f"reason-{key}"
                )
                hide_col, show_col = st.columns(2)
                hide = hide_col.form_submit_button(_("Hide"), disabled=item.hidden)
                show = show_col.form_submit_button(_("Show again"), disabled=not item.hidden)
            if hide or show:
                try:
                    if hide:
                        moderation.hide(db, key, reason, actor=account.username)
                    else:
                        moderation.show(db, key, actor=account.username)
                except StoreError as exc:
                    _failed(exc)
                _done(_("Hidden.") if hide else _("Shown again."))
            if item.kind != "idea":
                continue
            with st.form(f"status-{key}"):
                statuses = list(STATUS_NAMES)
                status = st.selectbox(
                    _("Public status"),
                    statuses,
                    index=statuses.index(item.status) if item.status in statuses else 0,
                    format_func=lambda s: STATUS_NAMES[s],
                    key=f"status-{key}",
                )
                pilot_keys = list(pilots)
                adopted = st.selectbox(
                    _("Pilot it became (for “adopted”)"),
                    pilot_keys,
                    index=pilot_keys.index(item.adopted_pilot) if item.adopted_pilot in pilot_keys else 0,
                    key=f"adopted-{key}",
                )
                why = st.text_area(
                    _("Public answer (required when not retained)"), value=item.status_reason, key=f"why-{key}"
                )
                if st.form_submit_button(_("Save the status")):
                    try:
                        moderation.set_status(
                            db,
                            key,
                            status,
                            actor=account.username,
                            reason=why,
                            adopted_pilot=adopted if status == "adopted" else None,
                        )
                    except StoreError as exc:
                        _failed(exc)
                    _done(_("Status saved."))
            others = [k for k in titles if k != key]
            with st.form(f"merge-{key}"):
                if item.merged_into:
                    st.caption(_("Merged into: %(title)s") % {"title": titles.get(item.merged_into, item.merged_into)})
                into = st.selectbox(
                    _("Merge this duplicate into"),
                    others,
                    format_func=lambda k: titles[k],
                    key=f"into-{key}",
                    disabled=not others,
                )
                merge_col, split_col = st.columns(2)
                merge = merge_col.form_submit_button(_("Merge"), disabled=not others)
                split = split_col.form_submit_button(_("Separate again"), disabled=item.merged_into is None)
            if merge or split:
                try:
                    if merge and into:
                        moderation.merge(db, key, into, actor=account.username)
                    else:
                        moderation.unmerge(db, key, actor=account.username)
                except StoreError as exc:
                    _failed(exc)
                _done(
                    _("Merged: its votes now count for the other idea, each voter once.") if merge else _("Separated.")
                )

with summaries:
    st.caption(_("A board decision appears on the pilot's public timeline once its summary is published."))
    published = {e.decision_id: e for e in pilot_timeline(db, pilot.key).entries if isinstance(e, PublishedDecision)}
    decisions = decision_history(db, pilot.key)
    if not decisions:
        st.info(_("No board decision recorded for this pilot yet."))
    for d in decisions:
        outcome = fmt.term(fmt.OUTCOMES, d.outcome, language())
        label = f"#{d.id} · {d.experiment_key or pilot.key} · {outcome} · {fmt.day(d.at, language())}"
        if d.id in published:
            label += " · " + _("published")
        with st.expander(label):
            st.caption(_("The board's rationale (internal):"))
            st.text(d.rationale)
            current = published.get(d.id)
            with st.form(f"summary-{d.id}"):
                fr = st.text_area(
                    _("Public summary in French"), value=current.summary_fr if current else "", key=f"summary-fr-{d.id}"
                )
                en = st.text_area(
                    _("Public summary in English"),
                    value=current.summary_en if current else "",
                    key=f"summary-en-{d.id}",
                )
                publish_col, withdraw_col = st.columns(2)
                publish = publish_col.form_submit_button(_("Publish"))
                withdraw = withdraw_col.form_submit_button(_("Withdraw"), disabled=current is None)
            if publish or withdraw:
                try:
                    if publish:
                        moderation.publish_summary(db, d.id, fr, en, actor=account.username)
                    else:
                        moderation.withdraw_summary(db, d.id)
                except StoreError as exc:
                    _failed(exc)
                _done(_("Published on the portal.") if publish else _("Withdrawn from the portal."))
