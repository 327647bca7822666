"""Taking part without a name: a random recovery code, the pseudonymous participant id derived from it
with the deployment's secret, the signed cookie that keeps it, and the forms' CSRF tokens.

The code is 24 random digits (about 80 bits), shown once in groups of four; the participant id is
`experiments.privacy.pseudonymise(code, secret)`, so the same code gives the same id on any device and
the id alone never gives the code back. The browser keeps the code in a signed, HttpOnly, SameSite=Lax
cookie; nothing about the citizen is kept on the server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field, replace

from itsdangerous import BadSignature, URLSafeTimedSerializer

from experiments.privacy import pseudonymise

CODE_DIGITS = 24
#: A code as a citizen may type it back: digits, grouped by spaces or dashes, or not.
_TYPED_CODE = re.compile(r"^[\d\s-]+$")
IDENTITY_COOKIE = "rhizome_portal_id"
CSRF_COOKIE = "rhizome_portal_csrf"
LANGUAGE_COOKIE = "rhizome_portal_lang"
#: How long the identity cookie lasts (a year): a citizen who comes back is still themselves.
IDENTITY_MAX_AGE = 365 * 86400
#: How long a form's token is accepted after the page was drawn.
CSRF_MAX_AGE = 2 * 86400


def new_code() -> str:
    """Returns a new recovery code: 24 random digits."""
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def grouped(code: str) -> str:
    """Returns the code in groups of four digits, as it is shown: "1234 5678 ..."."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def read_code(typed: str) -> str | None:
    """Returns the code a citizen typed (spaces and dashes ignored), None when it is not one."""
    if len(typed) > 100 or not _TYPED_CODE.match(typed):
        return None
    digits = "".join(c for c in typed if c.isdigit())
    return digits if len(digits) == CODE_DIGITS else None


def participant_of(code: str, secret: str) -> str:
    """Returns the pseudonymous participant id of a recovery code."""
    return pseudonymise(code, secret)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the identity cookie holds: the code, whether it was shown, and the pilots joined here."""

    code: str
    shown: bool = False
    joined: tuple[str, ...] = field(default=())

    def joining(self, pilot: str) -> Identity:
        return self if pilot in self.joined else replace(self, joined=(*self.joined, pilot))

    def leaving(self, pilot: str) -> Identity:
        return replace(self, joined=tuple(p for p in self.joined if p != pilot))


class Keys:
    """The portal's signing keys, derived from the deployment's secret (one per purpose)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        key = hmac.new(secret.encode(), b"rhizome-portal-cookies", hashlib.sha256).hexdigest()
        self._identity = URLSafeTimedSerializer(key, salt="identity")
        self._csrf = URLSafeTimedSerializer(key, salt="csrf")

    def identity_cookie(self, identity: Identity) -> str:
        return self._identity.dumps({"c": identity.code, "s": identity.shown, "j": list(identity.joined)})

    def identity(self, cookie: str | None) -> Identity | None:
        """Returns the identity of a cookie, None when there is none or it is forged or expired."""
        if not cookie:
            return None
        try:
            doc = self._identity.loads(cookie, max_age=IDENTITY_MAX_AGE)
        except BadSignature:
            return None
        code = doc.get("c") if isinstance(doc, dict) else None
        if not isinstance(code, str) or read_code(code) != code:
            return None
        joined = tuple(str(p) for p in doc.get("j", ()) if isinstance(p, str))
        return Identity(code, bool(doc.get("s")), joined)

    def participant(self, identity: Identity) -> str:
        return participant_of(identity.code, self.secret)

    def csrf_token(self, nonce: str) -> str:
        """Returns the token a form carries for the browser holding `nonce` in its CSRF cookie."""
        return str(self._csrf.dumps(nonce))

    def csrf_valid(self, token: str | None, nonce: str | None) -> bool:
        """Returns whether a form's token was made for this browser's nonce, recently."""
        if not token or not nonce:
            return False
        try:
            signed = self._csrf.loads(token, max_age=CSRF_MAX_AGE)
        except BadSignature:
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed, nonce)


def new_nonce() -> str:
    return secrets.token_urlsafe(24)
