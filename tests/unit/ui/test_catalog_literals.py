"""Every text the console shows a person goes through the catalog: an AST check of the string arguments
of Streamlit's elements and of the charts' titles in ui/, which fails on a literal written in English
(or any language) instead of `_("...")`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parents[3] / "ui"

#: Streamlit elements whose first argument (and whose label-like keywords) people read.
ELEMENTS = frozenset(
    {
        "title",
        "header",
        "subheader",
        "caption",
        "markdown",
        "write",
        "text",
        "info",
        "warning",
        "error",
        "success",
        "toast",
        "metric",
        "button",
        "download_button",
        "form_submit_button",
        "link_button",
        "page_link",
        "selectbox",
        "multiselect",
        "radio",
        "pills",
        "segmented_control",
        "checkbox",
        "toggle",
        "text_input",
        "text_area",
        "number_input",
        "file_uploader",
        "expander",
        "popover",
        "progress",
        "tabs",
        "Page",
        "set_page_config",
        "TextColumn",
        "NumberColumn",
        "ProgressColumn",
        "DateColumn",
        "DatetimeColumn",
        "LinkColumn",
    }
)
#: Keywords of those elements that people read.
READ_KEYWORDS = frozenset({"label", "body", "help", "placeholder", "text", "title", "page_title", "caption", "delta"})
#: Altair's encodings and parts whose `title` people read.
CHART_PARTS = frozenset({"X", "Y", "Color", "Tooltip", "Legend", "Axis", "Size", "Shape", "StrokeDash", "Text"})
#: Streamlit's own Markdown syntax inside a string: colours, backgrounds and icons are not words.
MARKUP = re.compile(r":material/[a-z_]+:|-background\[|:[a-z]+\[|[\[\]]")
TRANSLATORS = frozenset({"_", "ngettext"})
#: The names the console's modules give their loggers.
LOGGERS = frozenset({"log", "logger", "logging"})


def _words(fragment: str) -> bool:
    """Returns whether a piece of literal text holds a word (letters), markup aside."""
    return bool(re.search(r"[^\W\d_]", MARKUP.sub("", fragment)))


def _literal_words(node: ast.expr) -> list[str]:
    """Returns the literal words an argument shows without the catalog (empty when it is translated,
    computed, or holds no word)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if _words(node.value) else []
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant) and _words(str(v.value))]
    if isinstance(node, ast.BinOp):
        return _literal_words(node.left) + _literal_words(node.right)
    if isinstance(node, ast.IfExp):
        return _literal_words(node.body) + _literal_words(node.orelse)
    if isinstance(node, ast.List | ast.Tuple):
        return [w for element in node.elts for w in _literal_words(element)]
    if isinstance(node, ast.Call):
        func = node.func
        # "...".format(...) on a literal shows the literal; _("...").format(...) is translated.
        if isinstance(func, ast.Attribute) and func.attr in ("format", "join"):
            return _literal_words(func.value)
    return []


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def untranslated(source: str, filename: str = "<source>") -> list[str]:
    """Returns "file:line: text" for each literal a person would read that is not passed through the catalog."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in LOGGERS:
            continue  # a log line is for the operator, in English
        checked: list[ast.expr] = []
        if name in ELEMENTS:
            checked += node.args[:1] if name != "Page" else []
            checked += [k.value for k in node.keywords if k.arg in READ_KEYWORDS]
        elif name in CHART_PARTS or name == "properties":
            checked += [k.value for k in node.keywords if k.arg == "title"]
        for argument in checked:
            found += [f"{filename}:{argument.lineno}: {text!r}" for text in _literal_words(argument)]
    return found


@pytest.mark.parametrize("path", sorted(UI.rglob("*.py")), ids=lambda p: str(p.relative_to(UI)))
def test_every_literal_a_person_reads_in_the_console_goes_through_the_catalog(path: Path) -> None:
    assert untranslated(path.read_text(encoding="utf-8"), str(path.relative_to(UI))) == []


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ('st.caption("Figures as of today")', True),
        ('st.caption(_("Figures as of today"))', False),
        ('column.metric("Pilots", count)', True),
        ('st.subheader(f"Scorecard of {name}")', True),
        ('st.subheader(_("Scorecard of {name}").format(name=name))', False),
        ('st.markdown("Hello {x}".format(x=1))', True),
        ('st.selectbox(_("Outcome"), options, help="Pick one")', True),
        ('st.selectbox(_("Outcome"), options, placeholder=_("Choose"))', False),
        ('st.tabs(["Pilots", _("Keys")])', True),
        ('st.Page(path, title="Portfolio", url_path="overview")', True),
        ('alt.X("day:T", title="Day")', True),
        ('alt.X("day:T", title=_("Day"))', False),
        ('alt.Tooltip("n:Q", title="Participants", format=",")', True),
        ('chart.properties(title="Effects", height=20)', True),
        ('st.markdown(f":{colour}-background[:material/check: {plain(text)}]")', False),
        ('st.markdown(f"**{plain(label)}**: {plain(value)}")', False),
        ('st.caption(" · ".join(parts))', False),
        ('st.error(plain(message) if ok else "Failed")', True),
        ('st.dataframe(frame, key="table")', False),
    ],
)
def test_the_check_catches_an_untranslated_literal_and_lets_translated_ones_pass(source: str, caught: bool) -> None:
    assert bool(untranslated(source)) is caught
