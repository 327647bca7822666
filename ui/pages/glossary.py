"""Glossary: every statistical and lab term of the console, in a sentence or two. Each term has an anchor
(`glossary#srm`) that the tooltips of the other pages link to."""

from __future__ import annotations

import streamlit as st

from ui import auth
from ui.glossary import TERMS
from ui.language import _

auth.require("read")
st.title(_("Glossary"))
st.caption(_("The words of the console, in plain language. Every tooltip that uses one of them links here."))
for term in TERMS:
    st.subheader(_(term.name), anchor=term.anchor)
    st.markdown(_(term.meaning))
