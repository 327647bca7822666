"""The Rhizome decision console (Streamlit): `rhizome console`, or `streamlit run ui/app.py`.

Until someone signs in, the sign-in page is the only page registered with `st.navigation`, so no
other page can be reached by its address; each role then gets the pages it may use (`ui.auth`).
The pages' URL paths differ from their file names on purpose: Streamlit hashes both the same way,
and a `pages/` file whose name equals a URL path would be taken for a legacy page of that name.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import auth, language
from ui.glossary import PAGE as GLOSSARY
from ui.language import _
from ui.text import plain

PAGES = Path(__file__).with_name("pages")

st.set_page_config(page_title=_("Rhizome console"), page_icon="🌱", layout="wide")
# Tables are exported by the pages' own CSV buttons, whose cells cannot run as formulas (ui/export.py).
st.set_option("client.disableDataExport", True)

account = auth.current_account()
if account is None:
    page = st.navigation([st.Page(auth.sign_in_page, title=_("Sign in"), url_path="sign-in")], position="hidden")
else:
    decisions = [
        st.Page(
            PAGES / "portfolio.py", title=_("Portfolio"), icon=":material/dashboard:", url_path="overview", default=True
        ),
        st.Page(PAGES / "board.py", title=_("Decision board"), icon=":material/gavel:", url_path="decision-board"),
    ]
    evidence = [
        st.Page(PAGES / "pilot.py", title=_("Pilot"), icon=":material/trending_up:", url_path="pilots"),
        st.Page(PAGES / "experiment.py", title=_("Experiment"), icon=":material/science:", url_path="experiments"),
        st.Page(PAGES / "voice.py", title=_("Citizens' voice"), icon=":material/forum:", url_path="citizens-voice"),
        st.Page(PAGES / "glossary.py", title=_("Glossary"), icon=":material/menu_book:", url_path=GLOSSARY),
    ]
    sections = {_("Decisions"): decisions, _("Evidence"): evidence}
    if auth.allowed(account, "manage"):
        sections[_("Lab")] = [
            st.Page(PAGES / "admin.py", title=_("Admin"), icon=":material/settings:", url_path="lab-admin")
        ]
    page = st.navigation(sections)
    with st.sidebar:
        st.caption(_("Signed in as **{name}** ({role})").format(name=plain(account.username), role=plain(account.role)))
        if st.button(_("Sign out"), key="sign_out"):
            auth.sign_out()
            st.rerun()
with st.sidebar:
    language.switch(None if account is None else account.username)
page.run()
