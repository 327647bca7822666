"""What a console account keeps besides its password and role: the language it reads the console in."""

from __future__ import annotations

from sqlalchemy import select, update

from experiments import models as m
from experiments.i18n import LANGUAGES, Language
from experiments.store import Store, StoreError


def account_language(store: Store, username: str) -> Language | None:
    """Returns the language the account chose, None when it never chose (or is unknown)."""
    with store.engine.connect() as conn:
        language = conn.scalar(select(m.User.language).where(m.User.username == username))
    return language if language in LANGUAGES else None


def remember_language(store: Store, username: str, language: str) -> None:
    """Keeps the account's language (raises StoreError naming the value when it is not one of the product's)."""
    if language not in LANGUAGES:
        raise StoreError(f"language == {language!r}, must be one of {', '.join(LANGUAGES)}")
    with store.session() as s:
        s.execute(update(m.User).where(m.User.username == username).values(language=language))
