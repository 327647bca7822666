"""The console's language: French or English, chosen in the sidebar and remembered with the account.

Until someone chooses, the console speaks the language the browser asks for (Accept-Language), French
when it asks for neither; `?lang=en` in an address chooses too. A signed-in reader's choice is kept with
their account in the store, so it follows them to their next session and to another browser.

Pages write every text with `_` (and `ngettext`) from this module, which the catalog tools find, and
every figure with `experiments.formatting` in `current()`.
"""

from __future__ import annotations

import streamlit as st

from experiments.i18n import LANGUAGES, Language, language_of, negotiate, translations
from experiments.preferences import account_language, remember_language
from ui import data

#: Where the session keeps the language chosen (or found) for this browser session.
LANGUAGE_KEY = "language"
#: The query parameter that names a language in an address.
QUERY = "lang"
NAMES: dict[Language, str] = {"fr": "Français", "en": "English"}


def current() -> Language:
    """Returns the language of this session: chosen, named in the address, or the browser's."""
    chosen = st.session_state.get(LANGUAGE_KEY)
    if chosen in LANGUAGES:
        return chosen  # type: ignore[no-any-return]
    named = st.query_params.get(QUERY)
    language = language_of(named) if named else negotiate(st.context.headers.get("Accept-Language"))
    st.session_state[LANGUAGE_KEY] = language
    return language


def _(message: str) -> str:
    """Returns the message in the session's language."""
    return translations(current(), "console").gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Returns the form of the message the session's language uses for n."""
    return translations(current(), "console").ngettext(singular, plural, n)


def signed_in(username: str) -> None:
    """Takes the language remembered with the account, or remembers the session's for it."""
    remembered = account_language(data.store(), username)
    if remembered is None:
        remember_language(data.store(), username, current())
    else:
        st.session_state[LANGUAGE_KEY] = remembered


def switch(username: str | None) -> None:
    """Draws the language switch; a new choice is kept for the session and with the account."""
    language = current()

    def chosen() -> None:
        picked = st.session_state["language_switch"]
        st.session_state[LANGUAGE_KEY] = picked
        if username:
            remember_language(data.store(), username, picked)

    st.segmented_control(
        _("Language"),
        list(LANGUAGES),
        default=language,
        format_func=NAMES.__getitem__,
        key="language_switch",
        on_change=chosen,
        label_visibility="collapsed",
    )
