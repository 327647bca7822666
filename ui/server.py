"""The console's web server: Streamlit's own, plus the routes that set and clear the session cookie
(`ui.session`) and the console's handling of a failing script (`ui.failures`).

`rhizome console` runs `streamlit run ui/server.py`, which finds `app` below and serves `ui/app.py`.
"""

from __future__ import annotations

import logging

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from ui import failures, session

# The console's own log lines (sign-ins, refusals, page failures with their id) go to standard error
# beside Streamlit's, with the time.
_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
_console_log = logging.getLogger("rhizome")
_console_log.addHandler(_handler)
_console_log.setLevel(logging.INFO)

# The console's pages are `st.navigation`'s only (`ui/app.py`). Streamlit otherwise takes the `pages/`
# folder beside the main script for a legacy multipage app until the first `st.navigation` call, so the
# first session after a start would answer a link to a page with "Page not found".
PagesManager.uses_pages_directory = False

app = st.App("app.py", routes=session.routes(), on_script_error=failures.on_script_error)
