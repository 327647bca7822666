"""Text from citizens and specs shown as plain text wherever Streamlit reads Markdown.

Streamlit reads Markdown, its own colour and icon directives (`:red[...]`, `:material/home:`), emoji
short codes and bare addresses (which it turns into live links) in `st.markdown`, captions, alerts,
headers, widget labels and tooltips (`help=`). An idea's text, a comment, a district's name, a metric's
name or a hypothesis goes to any of them only through `plain`, the one helper: every Markdown character
is escaped, and a word joiner (U+2060, invisible) follows each colon, each at sign and each dot after
a letter ("www.", "example.org", not "4.5"), so that no directive, short code, address or e-mail link
can form. Runs of white space, line breaks included,
become one space (no heading, list or code block can start).

Elements that draw text as it is (tables, select boxes' options, `st.text`) take the text unchanged.
"""

from __future__ import annotations

import re

#: ASCII punctuation CommonMark lets a backslash escape.
_MARKDOWN = re.compile(r"([!-/:-@\[-`{-~])")
WORD_JOINER = "\u2060"
#: What Streamlit's directives, short codes and link detection need to see joined.
_JOINED = re.compile(r"([:@]|(?<=[^\W\d_])\\\.)")


def plain(text: object) -> str:
    """Returns the text so that Streamlit's Markdown shows it exactly as written, never as markup."""
    collapsed = " ".join(str(text).split())
    escaped = _MARKDOWN.sub(r"\\\1", collapsed)
    return _JOINED.sub(lambda m: m.group(1) + WORD_JOINER, escaped)
