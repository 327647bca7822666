"""Setting up the console's first account, for the demo and for fresh installs.

The console signs nobody in without an account. On a fresh store the operator creates the first
one with `rhizome users add NAME --role admin`; the demo, which must be usable at once, calls
`ensure_bootstrap_admin` with a name and a password it generates (and prints) itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import select

from experiments import models as m
from experiments.accounts import Account, add_user, has_users
from experiments.i18n import N_
from experiments.store import Store, StoreError

#: What the sign-in page tells the operator of a store without accounts.
FIRST_ACCOUNT_HELP = N_(
    "No console account exists yet. Create the first one on the machine that runs Rhizome:\n\n"
    "    rhizome users add NAME --role admin\n\n"
    "then sign in here with that name and password."
)


def ensure_bootstrap_admin(store: Store, username: str, password: str) -> Account | None:
    """Returns the admin account created when the store has no account yet, else None (nothing changes).

    An existing store keeps its accounts and passwords: the bootstrap admin exists only to open a
    fresh store. Raises StoreError for a bad name or a password shorter than `accounts.MIN_PASSWORD`.
    """
    if has_users(store):
        return None
    return add_user(store, username, password, "admin")


class ConsoleUser(NamedTuple):
    """A console account as the Admin page lists it (never its password hash)."""

    username: str
    role: str
    created_at: datetime
    disabled: bool


def console_users(store: Store) -> tuple[ConsoleUser, ...]:
    """Returns every console account, by name."""
    u = m.User
    with store.engine.connect() as conn:
        rows = conn.execute(select(u.username, u.role, u.created_at, u.disabled).order_by(u.username)).all()
    return tuple(
        ConsoleUser(name, role, at if at.tzinfo else at.replace(tzinfo=UTC), bool(off)) for name, role, at, off in rows
    )


def set_user_disabled(store: Store, username: str, disabled: bool) -> bool:
    """Returns the account's new state (True: disabled); a disabled account cannot sign in, and its
    sessions end for good (enabling it again does not bring them back).

    Raises StoreError when there is no such account.
    """
    with store.session() as s:
        row = s.get(m.User, username)
        if row is None:
            raise StoreError(f"username == {username!r}, no such account")
        if disabled and not row.disabled:
            row.session_version += 1
        row.disabled = disabled
        return disabled
