"""Admin: apply a pilot spec, start and stop experiments, create and revoke API keys (lab and admin);
console accounts (admin only)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from experiments.accounts import ROLES, add_user
from experiments.console_setup import console_users, set_user_disabled
from experiments.registry import ExperimentStatus
from experiments.specs import SpecError, parse_pilot_spec
from experiments.store import LockedChangeError, StoreError
from ui import auth, data

NOTICE = "admin_notice"
#: A new API key is shown once, right after it was made, then forgotten.
NEW_KEY = "admin_new_key"

account = auth.require("manage")
st.title("Admin")
url = data.database_url()
db = data.store()
notice = st.session_state.pop(NOTICE, None)
if notice:
    (st.success if notice[0] == "ok" else st.error)(notice[1])
fresh_key = st.session_state.pop(NEW_KEY, None)
if fresh_key:
    st.warning(f"New API key for pilot **{fresh_key[0]}**. Copy it now: it is shown only once (only its hash is kept).")
    st.code(fresh_key[1], language=None)

tabs = ["Pilots and experiments", "API keys"] + (["Users"] if auth.allowed(account, "accounts") else [])
sections = st.tabs(tabs)

with sections[0]:
    st.subheader("Apply a pilot spec")
    upload = st.file_uploader("Spec file (YAML)", type=["yaml", "yml"], key="spec_file")
    pasted = st.text_area("…or paste the spec", height=220, key="spec_text")
    draft, force = st.columns(2)
    as_draft = draft.checkbox("Create new experiments as drafts (start them later)", key="spec_draft")
    forced = force.checkbox("Force a change to a running experiment's pre-registered plan", key="spec_force")
    reason = st.text_input("Reason (recorded with every change; required to force)", key="spec_reason")
    if st.button("Apply", type="primary", key="spec_apply"):
        text = upload.getvalue() if upload is not None else pasted
        source = upload.name if upload is not None else "pasted spec"
        if not text.strip():
            st.error("Paste a spec or choose a file first.")
        else:
            try:
                spec = parse_pilot_spec(text, source)
                applied = db.apply_pilot(spec, actor=account.username, reason=reason, force=forced, start=not as_draft)
            except SpecError as exc:
                st.error(f"The spec has {len(exc.issues)} problem(s); nothing was applied.")
                st.dataframe(
                    pd.DataFrame(
                        [(i.line, i.field, i.message) for i in exc.issues], columns=["Line", "Field", "Problem"]
                    ),
                    hide_index=True,
                )
            except (LockedChangeError, StoreError) as exc:
                st.error(str(exc))
            else:
                data.forget()
                created = "created" if applied.created else "updated"
                st.session_state[NOTICE] = (
                    "ok",
                    f"Pilot {applied.pilot} {created}: {len(applied.experiments)} experiment(s), "
                    f"{len(applied.changes)} change(s) recorded.",
                )
                if applied.api_key:
                    st.session_state[NEW_KEY] = (applied.pilot, applied.api_key)
                st.rerun()

    st.subheader("Experiments")
    experiments = data.experiments(url)
    if experiments:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Pilot": e.pilot_key,
                        "Experiment": e.spec.key,
                        "Status": e.status,
                        "Started": e.started_at,
                        "Stopped": e.stopped_at,
                    }
                    for e in experiments
                ]
            ),
            hide_index=True,
            column_config={
                "Started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
                "Stopped": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            },
        )
        by_key = {e.spec.key: e for e in experiments}
        chosen = st.selectbox(
            "Experiment", list(by_key), format_func=lambda k: f"{k} ({by_key[k].status})", key="status_experiment"
        )
        why = st.text_input("Why (recorded in the plan history)", key="status_reason")
        start, stop = st.columns(2)
        target: ExperimentStatus | None = None
        if start.button("Start", disabled=by_key[chosen].status not in ("draft", "stopped"), key="status_start"):
            target = "running"
        if stop.button("Stop", disabled=by_key[chosen].status != "running", key="status_stop"):
            target = "stopped"
        if target is not None:
            try:
                moved = db.set_status(chosen, target, actor=account.username, reason=why)
            except StoreError as exc:
                st.error(str(exc))
            else:
                data.forget()
                st.session_state[NOTICE] = ("ok", f"Experiment {chosen} is now {moved.status}.")
                st.rerun()
    else:
        st.info("No experiment yet.")

with sections[1]:
    st.subheader("API keys")
    keys = db.api_keys()
    if keys:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Id": k.id,
                        "Pilot": k.pilot_key,
                        "Key starts with": f"{k.prefix}…",
                        "Label": k.label,
                        "Created": k.created_at,
                        "State": "revoked" if k.revoked_at else "active",
                    }
                    for k in keys
                ]
            ),
            hide_index=True,
            column_config={"Created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
        )
    pilots = data.pilots(url)
    if pilots:
        with st.form("new_key"):
            pilot = st.selectbox("Pilot", list(pilots), key="key_pilot")
            label = st.text_input("Label (who uses it)", key="key_label")
            if st.form_submit_button("Create a key"):
                st.session_state[NEW_KEY] = (pilot, db.create_api_key(pilot, label))
                st.rerun()
    active = [k for k in keys if k.revoked_at is None]
    if active:
        with st.form("revoke_key"):
            revoked = st.selectbox(
                "Key to revoke",
                [k.id for k in active],
                format_func=lambda i: next(f"{k.id}: {k.pilot_key} {k.prefix}… {k.label}" for k in active if k.id == i),
                key="key_revoke",
            )
            if st.form_submit_button("Revoke"):
                db.revoke_api_key(int(revoked))
                st.session_state[NOTICE] = ("ok", f"Key {revoked} revoked: the ingest API refuses it from now on.")
                st.rerun()

if auth.allowed(account, "accounts"):
    with sections[2]:
        st.subheader("Console accounts")
        users = console_users(db)
        st.dataframe(
            pd.DataFrame(
                [(u.username, u.role, u.created_at, "disabled" if u.disabled else "active") for u in users],
                columns=["Name", "Role", "Created", "State"],
            ),
            hide_index=True,
            column_config={"Created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
        )
        with st.form("new_user", clear_on_submit=True):
            st.caption("Adds an account, or gives an existing one a new password and role (and enables it).")
            username = st.text_input("Name", key="user_name")
            role = st.selectbox("Role", list(ROLES), key="user_role")
            password = st.text_input("Password (10 characters at least)", type="password", key="user_password")
            if st.form_submit_button("Save account"):
                try:
                    saved = add_user(db, username.strip(), password, role)
                except StoreError as exc:
                    st.error(str(exc))
                else:
                    st.session_state[NOTICE] = ("ok", f"Account {saved.username} ({saved.role}) saved.")
                    st.rerun()
        others = [u for u in users if u.username != account.username]
        if others:
            with st.form("disable_user"):
                who = st.selectbox(
                    "Account", [u.username for u in others], key="user_toggle", help="You cannot disable yourself."
                )
                if st.form_submit_button("Disable or enable"):
                    now_disabled = set_user_disabled(db, who, not next(u.disabled for u in others if u.username == who))
                    state = "disabled" if now_disabled else "enabled"
                    st.session_state[NOTICE] = ("ok", f"Account {who} {state}.")
                    st.rerun()
