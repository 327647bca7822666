"""Tables as the console shows them and as it exports them: CSV files a spreadsheet cannot run.

Streamlit's own table download is turned off for the whole console (`client.disableDataExport`, set in
`ui/app.py`); each table that people may take away has a "Download CSV" button of this module instead,
whose cells starting with a formula sign (=, +, -, @, a tab or a carriage return, OWASP's list) are
prefixed with an apostrophe, so a spreadsheet shows them as text (`=HYPERLINK(...)` stays text).
"""

from __future__ import annotations

import csv
from typing import Any

import pandas as pd
import streamlit as st

from ui.language import _

#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value: Any) -> Any:
    """Returns a cell as it is exported: a text starting with a formula sign gets an apostrophe first."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """Returns the table as CSV (UTF-8 with a byte order mark, which spreadsheets read as UTF-8), every
    text cell and header neutralised."""
    safe = frame.rename(columns=lambda c: neutralised(str(c))).map(neutralised)
    # Every text quoted, so that a carriage return inside one cannot end the row for a spreadsheet.
    text: str = safe.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)
    return text.encode("utf-8-sig")


def table(frame: pd.DataFrame, name: str, **options: Any) -> None:
    """Draws the table across the page with a button that downloads it as CSV (`name`.csv)."""
    st.dataframe(frame, hide_index=True, width="stretch", **options)
    st.download_button(
        _("Download CSV"),
        data=lambda: csv_bytes(frame),
        file_name=f"{name}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key=f"csv_{name}",
    )
