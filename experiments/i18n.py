"""The product's two languages: French and English, each text a person reads taken from a gettext catalog.

French is a first language of Rhizome, not a translation: the organisations it serves are francophone.
Every text of the console, the board's report and the citizens' portal goes through a catalog,
`experiments/locale/<language>/LC_MESSAGES/<domain>.po`, one per domain:

- `console`: the decision console and the board's report (sources under `ui/` and `experiments/`);
- `portal`: the citizens' portal (sources under `services/portal/`, its templates included).

The catalogs are read with Babel and compiled in memory the first time a language is used, so there is
no build step and no compiled file to keep beside them. `tools/catalogs.py` extracts the messages from
the sources into both catalogs; a test fails when a message is missing from either language.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

Language = Literal["fr", "en"]
#: The languages of the product, the first one the default.
LANGUAGES: tuple[Language, ...] = ("fr", "en")
DEFAULT_LANGUAGE: Language = "fr"
Domain = Literal["console", "portal"]
DOMAINS: tuple[Domain, ...] = ("console", "portal")
#: Where the catalogs live (package data).
CATALOGS = Path(__file__).with_name("locale")

#: One entry of an Accept-Language header: a language range and an optional quality.
_ACCEPT_ITEM = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([01](?:\.\d{0,3})?))?\s*$")


def catalog_path(language: Language, domain: Domain, base: Path = CATALOGS) -> Path:
    """Returns the path of the catalog of a language and a domain."""
    return base / language / "LC_MESSAGES" / f"{domain}.po"


def language_of(value: str | None) -> Language:
    """Returns the product's language `value` names ("fr", "fr-CA", "en_GB", ...), the default otherwise."""
    if value:
        base = value.replace("_", "-").split("-", 1)[0].lower()
        for language in LANGUAGES:
            if base == language:
                return language
    return DEFAULT_LANGUAGE


def negotiate(accept_language: str | None) -> Language:
    """Returns the language to answer in for an HTTP Accept-Language header (RFC 9110): the most
    preferred of the product's languages the reader accepts, the default when they accept none."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language.split(",")[:32]):
        match = _ACCEPT_ITEM.match(item)
        if match is None:
            continue
        quality = float(match.group(2)) if match.group(2) else 1.0
        if quality > 0:
            ranked.append((-quality, position, match.group(1)))
    preferred = [tag.replace("-", "_") for _, _, tag in sorted(ranked) if tag != "*"]
    try:
        chosen = Locale.negotiate(preferred, list(LANGUAGES), sep="_")
    except (ValueError, UnknownLocaleError):
        chosen = None
    return language_of(str(chosen)) if chosen is not None else DEFAULT_LANGUAGE


@lru_cache(maxsize=len(LANGUAGES) * len(DOMAINS))
def translations(language: Language, domain: Domain) -> Translations:
    """Returns the catalog of a language and a domain, compiled in memory once per process."""
    with catalog_path(language, domain).open("rb") as po:
        catalog = read_po(po, locale=language, domain=domain)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=domain)


def N_(message: str) -> str:  # noqa: N802 - the name gettext's tools look for
    """Returns the message unchanged: marks a text for extraction, translated later where it is shown."""
    return message


def Nn_(singular: str, plural: str) -> tuple[str, str]:  # noqa: N802 - as N_, for a text with a plural
    """Returns the singular and plural unchanged: marks a text with a plural for extraction."""
    return singular, plural


def translate(language: Language, message: str) -> str:
    """Returns the message in the language (the `console` catalog)."""
    return translations(language, "console").gettext(message)


def translate_plural(language: Language, singular: str, plural: str, n: int) -> str:
    """Returns the form of the message the language uses for n (the `console` catalog)."""
    return translations(language, "console").ngettext(singular, plural, n)


def spec_text(value: object, language: Language) -> str:
    """Returns a text of a pilot spec (a name, a description, a hypothesis) in the language.

    A text written in one language only is a plain string, shown as written; a text written in both
    carries `.text(language)`."""
    if isinstance(value, str):
        return value
    text = getattr(value, "text", None)
    return str(text(language)) if callable(text) else str(value)


def name_of(item: object, language: Language) -> str:
    """Returns the name of a spec's item (an experiment, a metric) in the language, its key when the spec
    gives it none."""
    label = getattr(item, "label", None)
    if callable(label):
        return str(label(language))
    return str(getattr(item, "key", item))


def localized(value: object) -> dict[Language, str]:
    """Returns a spec's text in each language (what a snapshot keeps, so its report can be written in either)."""
    return {language: spec_text(value, language) for language in LANGUAGES}


def names(item: object) -> dict[Language, str]:
    """Returns an item's name in each language (see `name_of`)."""
    return {language: name_of(item, language) for language in LANGUAGES}


def translator(language: Language) -> Callable[[str], str]:
    """Returns the function that translates a message into the language (bound as `_` where texts are written)."""
    return translations(language, "console").gettext


def plural_translator(language: Language) -> Callable[[str, str, int], str]:
    """Returns the function that gives the form of a message the language uses for n (bound as `ngettext`)."""
    return translations(language, "console").ngettext


def description_of(item: object, language: Language) -> str:
    """Returns what a spec's item (a metric, an experiment) measures or is, in the language ("" when the
    spec says nothing)."""
    return spec_text(getattr(item, "description", "") or "", language)
