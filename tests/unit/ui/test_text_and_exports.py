"""Citizens' and specs' texts shown as plain text (`ui.text.plain`), and CSV exports whose cells cannot run
as formulas in a spreadsheet (`ui.export`), Streamlit's own export turned off."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
import streamlit as st

from tests.unit.ui.conftest import open_page, read, signed_in
from ui.export import csv_bytes, neutralised
from ui.text import WORD_JOINER, plain

PAYLOADS = [
    "![x](http://203.0.113.9/a.png) image",
    "[click](http://203.0.113.9/) link",
    "<img src=x onerror=alert(1)><b>bold</b>",
    ":red[red] :material/home: :smile: :streamlit:",
    "http://203.0.113.9/auto www.example.org a@example.org",
    "# heading\n- list\n1. one\n> quote\n    code",
    "*em* _em_ **strong** `code` ~strike~ $x^2$ | a | b |",
    "back\\slash \\*not em\\*",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_plain_escapes_every_markdown_character_and_reads_back_as_written(payload: str) -> None:
    escaped = plain(payload)
    assert read(escaped) == " ".join(payload.split())
    assert "\n" not in escaped
    # No character Markdown or Streamlit reads is left unescaped, and no directive, icon, short code or
    # address can form.
    bare = escaped.replace(WORD_JOINER, "")
    for i, c in enumerate(bare):
        if c in "[]()<>*_`#:!|~$":
            assert bare[i - 1] == "\\", (payload, bare, i)
    for formed in (":red[", ":material/", ":smile:", "http://", "www.", "a@example"):
        assert formed not in escaped


@pytest.mark.parametrize(
    ("cell", "exported"),
    [
        ('=HYPERLINK("http://203.0.113.9","x")', '\'=HYPERLINK("http://203.0.113.9","x")'),
        ("=1+1", "'=1+1"),
        ("+33 6 12", "'+33 6 12"),
        ("-2", "'-2"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("plain text", "plain text"),
        ("3 000 €", "3 000 €"),
    ],
)
def test_a_cell_starting_with_a_formula_sign_is_exported_as_text(cell: str, exported: str) -> None:
    assert neutralised(cell) == exported
    rows = list(
        csv.reader(io.StringIO(csv_bytes(pd.DataFrame({"=Idea": [cell], "n": [3]})).decode("utf-8-sig"), newline=""))
    )
    assert rows == [["'=Idea", "n"], [exported, "3"]]


def test_streamlits_own_table_export_is_off_and_tables_have_a_neutralised_download(console: str) -> None:
    at = open_page(signed_in("lab"), "voice")
    assert st.get_option("client.disableDataExport") is True
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels and set(labels) == {"Download CSV"}
    assert len(labels) == len(at.dataframe)
