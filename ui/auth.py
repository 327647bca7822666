"""Signing in to the console, and what each role may do.

- lab: everything but recording decisions (pilots, experiments, API keys);
- board: read everything and record decisions;
- admin: everything, console accounts included.

The account lives in the Streamlit session; no page but the sign-in page is registered with
`st.navigation` until someone signs in, and every page checks the permission it needs again.
"""

from __future__ import annotations

from typing import Literal

import streamlit as st

from experiments.accounts import Account, authenticate, has_users
from experiments.console_setup import FIRST_ACCOUNT_HELP
from ui import data, language
from ui.language import _

Permission = Literal["read", "decide", "manage", "accounts"]
PERMISSIONS: dict[Permission, frozenset[str]] = {
    "read": frozenset({"lab", "board", "admin"}),
    "decide": frozenset({"board", "admin"}),
    "manage": frozenset({"lab", "admin"}),
    "accounts": frozenset({"admin"}),
}
ACCOUNT_KEY = "account"


def current_account() -> Account | None:
    """Returns the signed-in account of this browser session, None before signing in."""
    account = st.session_state.get(ACCOUNT_KEY)
    return account if isinstance(account, Account) else None


def allowed(account: Account | None, permission: Permission) -> bool:
    """Returns whether the account's role grants the permission."""
    return account is not None and account.role in PERMISSIONS[permission]


def require(permission: Permission = "read") -> Account:
    """Returns the signed-in account when its role grants the permission; otherwise says why and stops
    the page."""
    account = current_account()
    if account is None:
        st.warning(_("Sign in to use the console."))
        st.stop()
    if not allowed(account, permission):
        st.error(_("Your role ({role}) does not give access to this page.").format(role=account.role))
        st.stop()
    return account


def sign_in_page() -> None:
    """Draws the sign-in form (or, on a store without accounts, how to create the first one)."""
    st.title(_("Rhizome console"))
    db = data.store()
    if not has_users(db):
        st.info(_(FIRST_ACCOUNT_HELP))
        return
    with st.form("sign-in"):
        username = st.text_input(_("Name"), key="sign_in_name")
        password = st.text_input(_("Password"), type="password", key="sign_in_password")
        submitted = st.form_submit_button(_("Sign in"), type="primary")
    if submitted:
        account = authenticate(db, username.strip(), password)
        if account is None:
            st.error(_("Unknown name or wrong password."))
            return
        st.session_state[ACCOUNT_KEY] = account
        language.signed_in(account.username)
        st.rerun()


def sign_out() -> None:
    """Forgets the session's account and everything the session selected but its language."""
    for key in list(st.session_state):
        if key != language.LANGUAGE_KEY:
            del st.session_state[key]
