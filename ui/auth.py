"""Signing in to the console, the session a browser keeps, and what each role may do.

- lab: everything but recording decisions (pilots, experiments, API keys);
- board: read everything and record decisions;
- admin: everything, console accounts included.

The account lives in the Streamlit session, checked against the store on every run (a session of an
account signed out elsewhere, disabled or given a new password ends at its next run). No page but the
sign-in page is registered with `st.navigation` until someone signs in, and every page checks the
permission it needs again. Signing in is throttled per account name and per client address
(`experiments.accounts.sign_in`).

A reload opens a new Streamlit session, so the browser keeps the session in an HttpOnly cookie, which
Streamlit's WebSocket handshake carries (`st.context.cookies`). Streamlit cannot set a response header
from a script; after signing in, the page hands a one-minute signed token to a route of the console's
server (`ui.session`), which answers with the cookie. Signing out ends the account's session generation
in the store, so the cookie is refused even if the browser kept it, and asks the same route to clear it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Literal

import streamlit as st

from experiments import accounts
from experiments.accounts import Account, SignInOutcome
from experiments.console_setup import FIRST_ACCOUNT_HELP
from experiments.i18n import N_
from experiments.store import now
from ui import data, language, session
from ui.language import _, ngettext
from ui.session import ACCOUNT_KEY

Permission = Literal["read", "decide", "manage", "accounts"]
PERMISSIONS: dict[Permission, frozenset[str]] = {
    "read": frozenset({"lab", "board", "admin"}),
    "decide": frozenset({"board", "admin"}),
    "manage": frozenset({"lab", "admin"}),
    "accounts": frozenset({"admin"}),
}
WRONG = N_("Unknown name or wrong password.")
ENDED = N_("Your session has ended: sign in again.")
#: Session keys: whether this session read its handshake's cookie (it never changes within a session), the
#: call the browser must make of the route at the next run, and the notice the sign-in page shows once.
_COOKIE_READ = "session_cookie_read"
_COOKIE_CALL = "session_cookie_call"
_NOTICE = "sign_in_notice"


def current_account() -> Account | None:
    """Returns the signed-in account of this browser session, checked against the store, or the account
    of the session cookie the browser sent; None before signing in."""
    db = data.store()
    held = st.session_state.get(ACCOUNT_KEY)
    if isinstance(held, Account):
        account = accounts.session_account(db, held.username, held.session)
        if account is None:
            _forget_session(ENDED)
        elif account != held:
            st.session_state[ACCOUNT_KEY] = account
        return account
    if st.session_state.get(_COOKIE_READ):
        return None
    st.session_state[_COOKIE_READ] = True
    token = st.context.cookies.get(session.SESSION_COOKIE)
    if not isinstance(token, str) or not token:
        return None
    account = accounts.token_account(db, session.secret(), token, now())
    if account is None:
        _forget_session(ENDED)
        return None
    st.session_state[ACCOUNT_KEY] = account
    language.signed_in(account.username)
    return account


def signed_in() -> Account | None:
    """Returns the account the console checked at the start of this run, None before signing in."""
    account = st.session_state.get(ACCOUNT_KEY)
    return account if isinstance(account, Account) else None


def allowed(account: Account | None, permission: Permission) -> bool:
    """Returns whether the account's role grants the permission."""
    return account is not None and account.role in PERMISSIONS[permission]


def require(permission: Permission = "read") -> Account:
    """Returns the signed-in account when its role grants the permission; otherwise says why and stops
    the page."""
    account = signed_in()
    if account is None:
        st.warning(_("Sign in to use the console."))
        st.stop()
    if not allowed(account, permission):
        st.error(_("Your role ({role}) does not give access to this page.").format(role=account.role))
        st.stop()
    return account


def _in(wait: timedelta) -> str:
    seconds = max(1, math.ceil(wait.total_seconds()))
    if seconds < 120:
        return ngettext("{n} second", "{n} seconds", seconds).format(n=seconds)
    minutes = math.ceil(seconds / 60)
    return ngettext("{n} minute", "{n} minutes", minutes).format(n=minutes)


def _client_address() -> str | None:
    """Returns the address of the browser's connection, None when local or unknown (Streamlit gives none
    for a loopback connection, and a test's client has none)."""
    address = st.context.ip_address
    return address if isinstance(address, str) else None


def refusal(outcome: SignInOutcome, at: datetime) -> str:
    """Returns what the sign-in page says of a refused attempt: the same words whether or not the account
    exists, and when to try again if a wait applies."""
    if outcome.retry_at is None:
        return _(WRONG)
    wait = _("Too many failed sign-ins: try again at {time} UTC (in {wait}).").format(
        time=f"{outcome.retry_at:%H:%M:%S}", wait=_in(outcome.retry_at - at)
    )
    return wait if outcome.throttled else f"{_(WRONG)} {wait}"


def sign_in_page() -> None:
    """Draws the sign-in form (or, on a store without accounts, how to create the first one)."""
    st.title(_("Rhizome console"))
    db = data.store()
    if not accounts.has_users(db):
        st.info(_(FIRST_ACCOUNT_HELP))
        return
    notice = st.session_state.pop(_NOTICE, None)
    if notice:
        st.info(_(notice))
    with st.form("sign-in"):
        username = st.text_input(_("Name"), key="sign_in_name", max_chars=accounts.MAX_USERNAME)
        password = st.text_input(
            _("Password"), type="password", key="sign_in_password", max_chars=accounts.MAX_PASSWORD
        )
        submitted = st.form_submit_button(_("Sign in"), type="primary")
    if submitted:
        at = now()
        outcome = accounts.sign_in(db, username.strip(), password, _client_address(), at)
        if outcome.account is None:
            st.error(refusal(outcome, at))
            return
        st.session_state[ACCOUNT_KEY] = outcome.account
        st.session_state[_COOKIE_CALL] = (
            "POST",
            accounts.session_token(session.secret(), outcome.account, at, "handoff"),
        )
        language.signed_in(outcome.account.username)
        st.rerun()


def sign_out() -> None:
    """Ends the account's sessions (in the store, so that no cookie of theirs opens the console again),
    forgets everything this session selected, and has the browser's cookie cleared."""
    account = signed_in()
    if account is not None:
        accounts.end_sessions(data.store(), account.username)
    _forget_session(None)


def _forget_session(notice: str | None) -> None:
    for key in list(st.session_state):
        if key != language.LANGUAGE_KEY:
            del st.session_state[key]
    st.session_state[_COOKIE_READ] = True
    st.session_state[_COOKIE_CALL] = ("DELETE", None)
    if notice:
        st.session_state[_NOTICE] = notice


def sync_cookie() -> None:
    """Has the browser call the session route once, if signing in or out asked for it: to exchange the
    hand-off token for the session cookie, or to clear the cookie."""
    call = st.session_state.pop(_COOKIE_CALL, None)
    if call is None:
        return
    method, token = call
    options = {"method": method, "credentials": "same-origin", "headers": {session.CALLER_HEADER: "1"}}
    if token is not None:
        options["body"] = token
    st.html(
        f"<script>fetch({json.dumps(session.route_path())}, {json.dumps(options)})</script>",
        width="content",
        unsafe_allow_javascript=True,
    )
