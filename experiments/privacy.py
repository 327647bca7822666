"""Pseudonymous participant ids: what looks identifying, and how it is replaced."""

from __future__ import annotations

import hashlib
import hmac
import re

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: A phone number: optional +, then 7 to 15 digits with spaces, dots, dashes or brackets between.
_PHONE = re.compile(r"^\+?[\d\s().-]{7,20}$")
PSEUDONYM_PREFIX = "h-"


def looks_identifying(participant_id: str) -> bool:
    """Returns True when the id looks like an e-mail address or a phone number."""
    pid = participant_id.strip()
    if _EMAIL.match(pid):
        return True
    digits = sum(c.isdigit() for c in pid)
    return bool(_PHONE.match(pid)) and 7 <= digits <= 15


def pseudonymise(participant_id: str, secret: str) -> str:
    """Returns the keyed HMAC-SHA-256 pseudonym of an id (`h-` and 32 hex digits)."""
    normalised = participant_id.strip().lower()
    if not _EMAIL.match(normalised):
        normalised = "".join(c for c in normalised if c.isdigit() or c == "+")
    digest = hmac.new(secret.encode(), normalised.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


def safe_participant_id(participant_id: str, secret: str) -> str:
    """Returns the id unchanged when it is opaque, its pseudonym when it looks identifying."""
    if looks_identifying(participant_id):
        return pseudonymise(participant_id, secret)
    return participant_id
