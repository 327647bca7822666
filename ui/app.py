"""The Rhizome decision console (Streamlit): `rhizome console`, or `streamlit run ui/app.py`.

Until someone signs in, the sign-in page is the only page registered with `st.navigation`, so no
other page can be reached by its address; each role then gets the pages it may use (`ui.auth`).
The pages' URL paths differ from their file names on purpose: Streamlit hashes both the same way,
and a `pages/` file whose name equals a URL path would be taken for a legacy page of that name.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import auth

PAGES = Path(__file__).with_name("pages")

st.set_page_config(page_title="Rhizome console", page_icon="🌱", layout="wide")

account = auth.current_account()
if account is None:
    page = st.navigation([st.Page(auth.sign_in_page, title="Sign in", url_path="sign-in")], position="hidden")
else:
    decisions = [
        st.Page(
            PAGES / "portfolio.py", title="Portfolio", icon=":material/dashboard:", url_path="overview", default=True
        ),
        st.Page(PAGES / "board.py", title="Decision board", icon=":material/gavel:", url_path="decision-board"),
    ]
    evidence = [
        st.Page(PAGES / "pilot.py", title="Pilot", icon=":material/trending_up:", url_path="pilots"),
        st.Page(PAGES / "experiment.py", title="Experiment", icon=":material/science:", url_path="experiments"),
        st.Page(PAGES / "voice.py", title="Citizens' voice", icon=":material/forum:", url_path="citizens-voice"),
    ]
    sections = {"Decisions": decisions, "Evidence": evidence}
    if auth.allowed(account, "manage"):
        sections["Lab"] = [st.Page(PAGES / "admin.py", title="Admin", icon=":material/settings:", url_path="lab-admin")]
        sections["Lab"].append(
            st.Page(PAGES / "ideas.py", title="Ideas", icon=":material/lightbulb:", url_path="lab-ideas")
        )
    page = st.navigation(sections)
    with st.sidebar:
        st.caption(f"Signed in as **{account.username}** ({account.role})")
        if st.button("Sign out", key="sign_out"):
            auth.sign_out()
            st.rerun()
page.run()
