"""The translation catalogs: extract every message of the sources into both languages, or check them.

    python tools/catalogs.py update   # add new messages to every catalog, keep translations, drop the gone
    python tools/catalogs.py check    # exit 1, listing them, when a message lacks a catalog entry

`make catalogs` runs `update`; a unit test runs `check`'s logic (`missing`). A French entry must carry a
translation; an English entry may leave it empty, the English message being the source text.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from experiments.i18n import CATALOGS, DOMAINS, LANGUAGES, Domain, Language, catalog_path

ROOT = Path(__file__).resolve().parent.parent
#: The folders each domain's messages are extracted from.
SOURCES: dict[Domain, tuple[str, ...]] = {
    "console": ("experiments", "ui"),
    "portal": ("services/portal",),
}
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"trimmed": "true"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "N_": None, "Nn_": (1, 2)}
#: The language every message is written in, in the sources.
SOURCE_LANGUAGE: Language = "en"


def extracted(domain: Domain, root: Path = ROOT) -> Catalog:
    """Returns a catalog of every message the domain's sources hold."""
    catalog = _new(domain)
    for folder in SOURCES[domain]:
        if not (root / folder).is_dir():
            continue
        found = extract_from_dir(
            root / folder, METHODS, OPTIONS, keywords=KEYWORDS, comment_tags=("Translators:",), strip_comment_tags=True
        )
        for filename, line, message, comments, context in found:
            catalog.add(
                message,
                None,
                [(f"{folder}/{filename}", line)],
                auto_comments=comments,
                context=context,
            )
    return catalog


def _new(domain: Domain, language: Language | None = None) -> Catalog:
    return Catalog(
        locale=language,
        domain=domain,
        project="Rhizome",
        version="0.1",
        copyright_holder="the Rhizome contributors",
        msgid_bugs_address="",
        charset="utf-8",
    )


def _read(language: Language, domain: Domain, base: Path) -> Catalog:
    path = catalog_path(language, domain, base)
    if not path.exists():
        return _new(domain, language)
    with path.open("rb") as po:
        return read_po(po, locale=language, domain=domain)


def update(root: Path = ROOT, base: Path = CATALOGS) -> None:
    """Writes every catalog with the messages the sources hold now, translations kept."""
    for domain in DOMAINS:
        template = extracted(domain, root)
        for language in LANGUAGES:
            catalog = _read(language, domain, base)
            catalog.update(template, no_fuzzy_matching=True, update_creation_date=False)
            path = catalog_path(language, domain, base)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as po:
                write_po(po, catalog, width=110, sort_output=True, omit_header=False, ignore_obsolete=True)


def missing(root: Path = ROOT, base: Path = CATALOGS) -> Iterator[str]:
    """Yields each message of the sources that a catalog lacks, or whose French translation is empty or fuzzy."""
    for domain in DOMAINS:
        template = extracted(domain, root)
        for language in LANGUAGES:
            catalog = _read(language, domain, base)
            for message in template:
                if not message.id:
                    continue
                entry = catalog.get(message.id, message.context)
                first = message.id if isinstance(message.id, str) else message.id[0]
                where = ", ".join(f"{f}:{n}" for f, n in message.locations[:2])
                if entry is None:
                    yield f"{domain}/{language}: missing {first!r} ({where})"
                elif language != SOURCE_LANGUAGE and (entry.fuzzy or not _translated(entry.string)):
                    yield f"{domain}/{language}: not translated {first!r} ({where})"


def _translated(string: str | tuple[str, ...] | None) -> bool:
    if isinstance(string, tuple):
        return all(string)
    return bool(string)


def main(argv: list[str]) -> int:
    if argv[1:] == ["update"]:
        update()
        return 0
    if argv[1:] == ["check"]:
        problems = list(missing())
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
