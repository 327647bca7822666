"""The Rhizome decision console (Streamlit): `rhizome console`, or `streamlit run ui/server.py`.

Until someone signs in, the sign-in page is the only page registered with `st.navigation`, under the
address of every page: a link to a page shows the sign-in form, then the page itself with its query
parameters once signed in (a page's script hash is derived from its URL path alone). Each role then gets
the pages it may use (`ui.auth`).
The pages' URL paths differ from their file names on purpose: Streamlit hashes both the same way,
and a `pages/` file whose name equals a URL path would be taken for a legacy page of that name.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import streamlit as st

from experiments.i18n import N_
from ui import auth, failures, language
from ui.glossary import PAGE as GLOSSARY
from ui.language import _
from ui.text import plain

PAGES = Path(__file__).with_name("pages")


class ConsolePage(NamedTuple):
    section: str
    file: str
    #: A message of the catalog, translated where the menu is drawn.
    title: str
    icon: str
    url_path: str
    permission: auth.Permission = "read"


#: The console's pages in the order of the menu; the first is the default.
CONSOLE_PAGES = (
    ConsolePage(N_("Decisions"), "portfolio.py", N_("Portfolio"), ":material/dashboard:", "overview"),
    ConsolePage(N_("Decisions"), "board.py", N_("Decision board"), ":material/gavel:", "decision-board"),
    ConsolePage(N_("Evidence"), "pilot.py", N_("Pilot"), ":material/trending_up:", "pilots"),
    ConsolePage(N_("Evidence"), "experiment.py", N_("Experiment"), ":material/science:", "experiments"),
    ConsolePage(N_("Evidence"), "voice.py", N_("Citizens' voice"), ":material/forum:", "citizens-voice"),
    ConsolePage(N_("Evidence"), "glossary.py", N_("Glossary"), ":material/menu_book:", GLOSSARY),
    ConsolePage(N_("Lab"), "admin.py", N_("Admin"), ":material/settings:", "lab-admin", "manage"),
    ConsolePage(N_("Lab"), "ideas.py", N_("Ideas"), ":material/lightbulb:", "lab-ideas", "manage"),
)

st.set_page_config(page_title=_("Rhizome console"), page_icon="🌱", layout="wide")
# Tables are exported by the pages' own CSV buttons, whose cells cannot run as formulas (ui/export.py).
st.set_option("client.disableDataExport", True)

account = auth.current_account()
if account is None:
    page = st.navigation(
        [
            st.Page(auth.sign_in_page, title=_("Sign in"), url_path=p.url_path, default=p == CONSOLE_PAGES[0])
            for p in CONSOLE_PAGES
        ],
        position="hidden",
    )
else:
    sections: dict[str, list[st.Page]] = {}
    for p in CONSOLE_PAGES:
        if auth.allowed(account, p.permission):
            sections.setdefault(_(p.section), []).append(
                st.Page(
                    PAGES / p.file, title=_(p.title), icon=p.icon, url_path=p.url_path, default=p == CONSOLE_PAGES[0]
                )
            )
    page = st.navigation(sections)
    with st.sidebar:
        st.caption(_("Signed in as **{name}** ({role})").format(name=plain(account.username), role=plain(account.role)))
        if st.button(_("Sign out"), key="sign_out"):
            auth.sign_out()
            st.rerun()
with st.sidebar:
    language.switch(None if account is None else account.username)
auth.sync_cookie()
try:
    page.run()
except Exception as exc:
    failures.report(exc)
