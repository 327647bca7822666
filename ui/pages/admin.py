"""Admin: apply a pilot spec, start and stop experiments, create and revoke API keys (lab and admin);
console accounts (admin only)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from experiments import formatting as fmt
from experiments.accounts import ROLES, add_user
from experiments.console_setup import console_users, set_user_disabled
from experiments.registry import ExperimentStatus
from experiments.specs import SpecError, parse_pilot_spec
from experiments.store import LockedChangeError, StoreError
from ui import auth, data, export
from ui.language import _, current, ngettext
from ui.text import plain

NOTICE = "admin_notice"
#: A new API key is shown once, right after it was made, then forgotten.
NEW_KEY = "admin_new_key"

account = auth.require("manage")
language = current()
st.title(_("Admin"))
url = data.database_url()
db = data.store()
notice = st.session_state.pop(NOTICE, None)
if notice:
    (st.success if notice[0] == "ok" else st.error)(plain(notice[1]))
fresh_key = st.session_state.pop(NEW_KEY, None)
if fresh_key:
    st.warning(
        _("New API key for pilot **{pilot}**. Copy it now: it is shown only once (only its hash is kept).").format(
            pilot=plain(fresh_key[0])
        )
    )
    st.code(fresh_key[1], language=None)

tabs = [_("Pilots and experiments"), _("API keys")] + ([_("Users")] if auth.allowed(account, "accounts") else [])
sections = st.tabs(tabs)

with sections[0]:
    st.subheader(_("Apply a pilot spec"))
    upload = st.file_uploader(_("Spec file (YAML)"), type=["yaml", "yml"], key="spec_file")
    pasted = st.text_area(_("…or paste the spec"), height=220, key="spec_text")
    draft, force = st.columns(2)
    as_draft = draft.checkbox(_("Create new experiments as drafts (start them later)"), key="spec_draft")
    forced = force.checkbox(_("Force a change to a running experiment's pre-registered plan"), key="spec_force")
    reason = st.text_input(_("Reason (recorded with every change; required to force)"), key="spec_reason")
    if st.button(_("Apply"), type="primary", key="spec_apply"):
        text = upload.getvalue() if upload is not None else pasted
        source = upload.name if upload is not None else _("pasted spec")
        if not text.strip():
            st.error(_("Paste a spec or choose a file first."))
        else:
            try:
                spec = parse_pilot_spec(text, source)
                applied = db.apply_pilot(spec, actor=account.username, reason=reason, force=forced, start=not as_draft)
            except SpecError as exc:
                st.error(
                    ngettext(
                        "The spec has {n} problem; nothing was applied.",
                        "The spec has {n} problems; nothing was applied.",
                        len(exc.issues),
                    ).format(n=len(exc.issues))
                )
                st.dataframe(
                    pd.DataFrame(
                        [(i.line, i.field, i.message) for i in exc.issues],
                        columns=[_("Line"), _("Field"), _("Problem")],
                    ),
                    hide_index=True,
                )
            except (LockedChangeError, StoreError) as exc:
                st.error(plain(str(exc)))
            else:
                data.forget()
                done = (
                    _("Pilot {pilot} created: {experiments} experiments, {changes} changes recorded.")
                    if applied.created
                    else _("Pilot {pilot} updated: {experiments} experiments, {changes} changes recorded.")
                )
                st.session_state[NOTICE] = (
                    "ok",
                    done.format(
                        pilot=applied.pilot, experiments=len(applied.experiments), changes=len(applied.changes)
                    ),
                )
                if applied.api_key:
                    st.session_state[NEW_KEY] = (applied.pilot, applied.api_key)
                st.rerun()

    st.subheader(_("Experiments"))
    experiments = data.experiments(url)
    if experiments:
        export.table(
            pd.DataFrame(
                [
                    {
                        _("Pilot"): e.pilot_key,
                        _("Experiment"): e.spec.key,
                        _("Status"): fmt.term(fmt.STATUSES, e.status, language),
                        _("Started"): fmt.moment(e.started_at, language),
                        _("Stopped"): fmt.moment(e.stopped_at, language),
                    }
                    for e in experiments
                ]
            ),
            "experiments",
        )
        by_key = {e.spec.key: e for e in experiments}
        chosen = st.selectbox(
            _("Experiment"),
            list(by_key),
            format_func=lambda k: f"{k} ({fmt.term(fmt.STATUSES, by_key[k].status, language)})",
            key="status_experiment",
        )
        why = st.text_input(_("Why (recorded in the plan history)"), key="status_reason")
        start, stop = st.columns(2)
        target: ExperimentStatus | None = None
        if start.button(_("Start"), disabled=by_key[chosen].status not in ("draft", "stopped"), key="status_start"):
            target = "running"
        if stop.button(_("Stop"), disabled=by_key[chosen].status != "running", key="status_stop"):
            target = "stopped"
        if target is not None:
            try:
                moved = db.set_status(chosen, target, actor=account.username, reason=why)
            except StoreError as exc:
                st.error(plain(str(exc)))
            else:
                data.forget()
                st.session_state[NOTICE] = (
                    "ok",
                    _("Experiment {experiment} is now {status}.").format(
                        experiment=chosen, status=fmt.term(fmt.STATUSES, moved.status, language)
                    ),
                )
                st.rerun()
    else:
        st.info(_("No experiment yet."))

with sections[1]:
    st.subheader(_("API keys"))
    keys = db.api_keys()
    if keys:
        export.table(
            pd.DataFrame(
                [
                    {
                        _("Id"): str(k.id),
                        _("Pilot"): k.pilot_key,
                        _("Key starts with"): f"{k.prefix}…",
                        _("Label"): k.label,
                        _("Created"): fmt.moment(k.created_at, language),
                        _("State"): _("revoked") if k.revoked_at else _("active"),
                    }
                    for k in keys
                ]
            ),
            "api-keys",
        )
    pilots = data.pilots(url)
    if pilots:
        with st.form("new_key"):
            pilot = st.selectbox(_("Pilot"), list(pilots), key="key_pilot")
            label = st.text_input(_("Label (who uses it)"), key="key_label")
            if st.form_submit_button(_("Create a key")):
                st.session_state[NEW_KEY] = (pilot, db.create_api_key(pilot, label))
                st.rerun()
    active = [k for k in keys if k.revoked_at is None]
    if active:
        with st.form("revoke_key"):
            revoked = st.selectbox(
                _("Key to revoke"),
                [k.id for k in active],
                format_func=lambda i: next(f"{k.id}: {k.pilot_key} {k.prefix}… {k.label}" for k in active if k.id == i),
                key="key_revoke",
            )
            if st.form_submit_button(_("Revoke")):
                db.revoke_api_key(int(revoked))
                st.session_state[NOTICE] = (
                    "ok",
                    _("Key {key} revoked: the ingest API refuses it from now on.").format(key=revoked),
                )
                st.rerun()

if auth.allowed(account, "accounts"):
    with sections[2]:
        st.subheader(_("Console accounts"))
        users = console_users(db)
        export.table(
            pd.DataFrame(
                [
                    (
                        u.username,
                        u.role,
                        fmt.moment(u.created_at, language),
                        _("disabled") if u.disabled else _("active"),
                    )
                    for u in users
                ],
                columns=[_("Name"), _("Role"), _("Created"), _("State")],
            ),
            "accounts",
        )
        with st.form("new_user", clear_on_submit=True):
            st.caption(_("Adds an account, or gives an existing one a new password and role (and enables it)."))
            username = st.text_input(_("Name"), key="user_name")
            role = st.selectbox(_("Role"), list(ROLES), key="user_role")
            password = st.text_input(_("Password (10 characters at least)"), type="password", key="user_password")
            if st.form_submit_button(_("Save account")):
                try:
                    saved = add_user(db, username.strip(), password, role)
                except StoreError as exc:
                    st.error(plain(str(exc)))
                else:
                    st.session_state[NOTICE] = (
                        "ok",
                        _("Account {name} ({role}) saved.").format(name=saved.username, role=saved.role),
                    )
                    st.rerun()
        others = [u for u in users if u.username != account.username]
        if others:
            with st.form("disable_user"):
                who = st.selectbox(
                    _("Account"),
                    [u.username for u in others],
                    key="user_toggle",
                    help=_("You cannot disable yourself."),
                )
                if st.form_submit_button(_("Disable or enable")):
                    now_disabled = set_user_disabled(db, who, not next(u.disabled for u in others if u.username == who))
                    done = _("Account {name} disabled.") if now_disabled else _("Account {name} enabled.")
                    st.session_state[NOTICE] = ("ok", done.format(name=who))
                    st.rerun()
