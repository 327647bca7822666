"""What a console user sees when a page fails: a short message and an error id. The log keeps the id
beside the full traceback; the page shows neither the traceback nor the exception's text, which may
name files, tables or values."""

from __future__ import annotations

import logging
import secrets

import streamlit as st

from experiments.accounts import Account
from experiments.i18n import N_
from ui.language import _
from ui.session import ACCOUNT_KEY

log = logging.getLogger("rhizome.console")

MESSAGE = N_(
    "Something went wrong on this page. Error id: {error_id}. "
    "The lab's administrator finds the details under this id in the console's log."
)


def report(exc: BaseException) -> str:
    """Returns the id under which the failure was logged, once the page says it failed with that id."""
    error_id = secrets.token_hex(6)
    account = st.session_state.get(ACCOUNT_KEY)
    log.error(
        "console error %s (account %r): %s",
        error_id,
        account.username if isinstance(account, Account) else None,
        type(exc).__name__,
        exc_info=exc,
    )
    st.error(_(MESSAGE).format(error_id=error_id), icon=":material/error:")
    return error_id


def on_script_error(exc: Exception) -> bool:
    """Returns True (Streamlit then shows nothing of its own) once the failure is reported: the hook of
    the console's server for what `ui/app.py` does not catch, a widget's callback for one."""
    report(exc)
    return True
