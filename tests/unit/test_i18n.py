"""The two languages: catalogs complete in both, Accept-Language honoured, figures written per language."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from experiments import formatting as fmt
from experiments import i18n
from tools import catalogs


def test_every_message_of_the_sources_is_in_both_languages() -> None:
    assert list(catalogs.missing()) == []


def _project(tmp_path: Path, source: str) -> tuple[Path, Path]:
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "page.py").write_text(source)
    return tmp_path, tmp_path / "locale"


def test_a_message_missing_from_a_catalog_or_untranslated_in_french_is_reported(tmp_path: Path) -> None:
    root, base = _project(tmp_path, 'from x import _\n\n_("Go")\n_("Keep running")\n')
    catalogs.update(root, base)
    assert sorted(catalogs.missing(root, base)) == [
        "console/fr: not translated 'Go' (ui/page.py:3)",
        "console/fr: not translated 'Keep running' (ui/page.py:4)",
    ]
    french = i18n.catalog_path("fr", "console", base)
    french.write_text(
        french.read_text().replace('msgid "Go"\nmsgstr ""', 'msgid "Go"\nmsgstr "Poursuivre"'), encoding="utf-8"
    )
    (root / "ui" / "page.py").write_text('from x import _\n\n_("Go")\n_("Keep running")\n_("Stop")\n')
    assert sorted(catalogs.missing(root, base)) == [
        "console/en: missing 'Stop' (ui/page.py:5)",
        "console/fr: missing 'Stop' (ui/page.py:5)",
        "console/fr: not translated 'Keep running' (ui/page.py:4)",
    ]


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "fr"),
        ("", "fr"),
        ("en-GB,en;q=0.9", "en"),
        ("de-DE, de;q=0.9, en;q=0.5", "en"),
        ("de-DE, en;q=0.4, fr-CA;q=0.6", "fr"),
        ("en;q=0, fr;q=0.1", "fr"),
        ("es, it", "fr"),
        ("*", "fr"),
        ("garbage;;;, en;q=nope", "fr"),
        ("x" * 5000, "fr"),
    ],
)
def test_the_language_is_negotiated_from_accept_language_french_by_default(header: str | None, language: str) -> None:
    assert i18n.negotiate(header) == language


def test_language_of_reads_codes_and_falls_back_to_french() -> None:
    assert [i18n.language_of(v) for v in ("en_GB", "EN-us", "fr-CA", "de", None, "")] == [
        "en",
        "en",
        "fr",
        "fr",
        "fr",
        "fr",
    ]


def test_figures_are_written_as_each_language_writes_them() -> None:
    nbsp = "\u202f"
    assert fmt.count(1211, "fr") == f"1{nbsp}211"
    assert fmt.count(1211, "en") == "1,211"
    assert fmt.number(1234.5, "fr") == f"1{nbsp}234,5"
    assert fmt.number(3.779, "en", 1) == "3.8"
    assert fmt.share(0.5541, "fr") == "55\u00a0%"
    assert fmt.share(0.5541, "en", 1) == "55.4%"
    assert fmt.signed_share(0.052, "en") == "+5.2%"
    assert fmt.signed_share(-0.03, "fr") == "−3,0\u00a0%"
    assert fmt.money(25.64, "EUR", "fr") == "25,64\u00a0€"
    assert fmt.money(25.64, "EUR", "en") == "€25.64"
    assert fmt.money(12500, "EUR", "fr") == f"12{nbsp}500\u00a0€"
    assert fmt.p_value(0.00001, "fr") == "< 0,001"
    assert fmt.p_value(0.0421, "en") == "0.042"
    assert fmt.day(date(2026, 11, 20), "fr", "long") == "20 novembre 2026"
    assert fmt.day(date(2026, 11, 20), "en") == "Nov 20, 2026"
    assert fmt.moment(datetime(2026, 11, 20, 9, 15, tzinfo=UTC), "fr").startswith("20 nov. 2026")


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), -float("inf")])
def test_a_missing_or_non_finite_figure_is_a_dash_never_none_or_nan(value: float | None) -> None:
    for language in i18n.LANGUAGES:
        texts = {fmt.count(value, language), fmt.share(value, language), fmt.money(value, "EUR", language)}
        assert texts == {fmt.MISSING}
        assert fmt.p_value(value, language) == fmt.MISSING
