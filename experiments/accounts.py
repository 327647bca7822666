"""Console accounts: roles and Argon2id password hashes (argon2-cffi)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from experiments import models as m
from experiments.store import Store, StoreError, now

Role = Literal["lab", "board", "admin"]
ROLES: tuple[Role, ...] = ("lab", "board", "admin")
MIN_PASSWORD = 10
_HASHER = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: Role


def add_user(store: Store, username: str, password: str, role: str) -> Account:
    """Returns the account created or updated with a new password and role."""
    if role not in ROLES:
        raise StoreError(f"role == {role!r}, must be one of {', '.join(ROLES)}")
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise StoreError(f"username == {username!r}, must be 1 to 64 letters, digits, '.', '-' or '_'")
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"password: {len(password)} characters, must be at least {MIN_PASSWORD}")
    with store.session() as s:
        row = s.get(m.User, username)
        if row is None:
            row = m.User(username=username, created_at=now(), disabled=False)
            s.add(row)
        row.password_hash = _HASHER.hash(password)
        row.role = role
        row.disabled = False
    return Account(username, role)


def authenticate(store: Store, username: str, password: str) -> Account | None:
    """Returns the account when the password is right and the account enabled, else None."""
    with store.session() as s:
        row = s.scalar(select(m.User).where(m.User.username == username))
        if row is None or row.disabled:
            _HASHER.hash(password)  # same work whether or not the user exists
            return None
        try:
            _HASHER.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if _HASHER.check_needs_rehash(row.password_hash):
            row.password_hash = _HASHER.hash(password)
        return Account(row.username, row.role)  # type: ignore[arg-type]


def has_users(store: Store) -> bool:
    with store.session() as s:
        return s.scalar(select(m.User.username).limit(1)) is not None
