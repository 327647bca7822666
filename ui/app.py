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

from ui import auth, failures

PAGES = Path(__file__).with_name("pages")


class ConsolePage(NamedTuple):
    section: str
    file: str
    title: str
    icon: str
    url_path: str
    permission: auth.Permission = "read"


#: The console's pages in the order of the menu; the first is the default.
CONSOLE_PAGES = (
    ConsolePage("Decisions", "portfolio.py", "Portfolio", ":material/dashboard:", "overview"),
    ConsolePage("Decisions", "board.py", "Decision board", ":material/gavel:", "decision-board"),
    ConsolePage("Evidence", "pilot.py", "Pilot", ":material/trending_up:", "pilots"),
    ConsolePage("Evidence", "experiment.py", "Experiment", ":material/science:", "experiments"),
    ConsolePage("Evidence", "voice.py", "Citizens' voice", ":material/forum:", "citizens-voice"),
    ConsolePage("Lab", "admin.py", "Admin", ":material/settings:", "lab-admin", "manage"),
)

st.set_page_config(page_title="Rhizome console", page_icon="🌱", layout="wide")

account = auth.current_account()
if account is None:
    page = st.navigation(
        [
            st.Page(auth.sign_in_page, title="Sign in", url_path=p.url_path, default=p == CONSOLE_PAGES[0])
            for p in CONSOLE_PAGES
        ],
        position="hidden",
    )
else:
    sections: dict[str, list[st.Page]] = {}
    for p in CONSOLE_PAGES:
        if auth.allowed(account, p.permission):
            sections.setdefault(p.section, []).append(
                st.Page(PAGES / p.file, title=p.title, icon=p.icon, url_path=p.url_path, default=p == CONSOLE_PAGES[0])
            )
    page = st.navigation(sections)
    with st.sidebar:
        st.caption(f"Signed in as **{account.username}** ({account.role})")
        if st.button("Sign out", key="sign_out"):
            auth.sign_out()
            st.rerun()
auth.sync_cookie()
try:
    page.run()
except Exception as exc:
    failures.report(exc)
