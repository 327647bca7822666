"""Console accounts: roles, Argon2id password hashes (argon2-cffi), throttled sign-ins and signed sessions.

Signing in is throttled per subject, the account name tried (whether or not such an account exists, so
that the answer never tells) and the client's address: after `ThrottleRule.free_failures` failures in a
row, each next attempt waits a delay that doubles, up to a lockout. The failures are kept in the store
(`sign_in_throttle`), so they hold across console restarts and replicas; a refusal during a wait does
not check the password and does not count. A successful sign-in clears the account's failures, not the
address's: an address forgets them after `ThrottleRule.forget_after` (or when an admin clears them).

A signed-in browser keeps a session token (an itsdangerous signature, keyed by the deployment's secret,
over the account, its session generation and an expiry). `end_sessions` moves the account's generation
on, which refuses every token issued before: signing out ends the account's sessions everywhere.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Table, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from experiments import models as m
from experiments.store import Store, StoreError, now

Role = Literal["lab", "board", "admin"]
ROLES: tuple[Role, ...] = ("lab", "board", "admin")
MIN_PASSWORD = 10
#: Longest password checked: Argon2 hashes any length, so the bound is ours (a 900 KB "password" is refused
#: without being hashed).
MAX_PASSWORD = 1024
MAX_USERNAME = 64
_HASHER = PasswordHasher()

log = logging.getLogger("rhizome.console")

Scope = Literal["account", "address"]
SCOPES: tuple[Scope, ...] = ("account", "address")
#: What a session token is for: the browser's session cookie, or the one-minute hand-off from the signed-in
#: page to the server's route that sets that cookie. Each purpose signs with a key of its own.
Purpose = Literal["session", "handoff"]
TOKEN_LIFETIME: dict[Purpose, timedelta] = {"session": timedelta(hours=12), "handoff": timedelta(minutes=1)}
#: Longest token read: anything longer was not made here.
MAX_TOKEN = 512


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: Role
    #: The account's session generation when it signed in (`end_sessions` moves it on).
    session: int = 0


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    """How long a subject waits after failed sign-ins in a row."""

    #: Failures in a row allowed without any wait.
    free_failures: int
    #: The wait after `free_failures` failures; it doubles with each further failure.
    first_delay: timedelta
    #: Failures in a row from which the subject is locked out for `lockout` after each failure.
    lockout_failures: int
    lockout: timedelta
    #: Failures older than this are forgotten.
    forget_after: timedelta

    def wait(self, failures: int) -> timedelta:
        """Returns how long after the last of `failures` failures in a row the next attempt must wait."""
        if failures < self.free_failures:
            return timedelta(0)
        if failures >= self.lockout_failures:
            return self.lockout
        return min(self.first_delay * (1 << (failures - self.free_failures)), self.lockout)


#: Per account name: the 6th attempt after five failures waits 30 s, the 7th 1 min, ..., the 10th failure
#: locks the name for an hour (and each failure after that again). Per address the same, later: several
#: people may share an address (an office behind one proxy).
THROTTLE: dict[Scope, ThrottleRule] = {
    "account": ThrottleRule(5, timedelta(seconds=30), 10, timedelta(hours=1), timedelta(days=1)),
    "address": ThrottleRule(20, timedelta(seconds=30), 40, timedelta(hours=1), timedelta(days=1)),
}
#: The address subject of a client that has none (a local connection, a test).
LOCAL_ADDRESS = "local"


@dataclass(frozen=True, slots=True)
class SignInOutcome:
    """What an attempt to sign in gave: the account, or None with the time from which to try again."""

    account: Account | None
    #: None when the next attempt may be made at once.
    retry_at: datetime | None = None
    #: True when the attempt was refused for the wait alone, without checking the password.
    throttled: bool = False


class SignInFailures(NamedTuple):
    """A subject's failed sign-ins in a row, as the admin sees them."""

    scope: Scope
    subject: str
    failures: int
    first_failure_at: datetime
    last_failure_at: datetime
    #: When the subject may try again; None when it may at once.
    retry_at: datetime | None
    #: True once the failures reach the rule's lockout.
    locked: bool


def _utc(t: datetime) -> datetime:
    """Returns the time in UTC (SQLite gives back naive datetimes, PostgreSQL the session's time zone)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def valid_username(username: str) -> bool:
    """Returns whether the name can be an account's: 1 to 64 letters, digits, '.', '-' or '_'."""
    return 0 < len(username) <= MAX_USERNAME and username.replace("-", "").replace("_", "").replace(".", "").isalnum()


def account_subject(username: str) -> str:
    """Returns the throttle subject of an account name tried: the name itself when it could be an
    account's, else a digest (a name that cannot be an account, a password typed in the wrong field for
    one, is neither stored nor logged)."""
    if valid_username(username):
        return username
    return "invalid:" + hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def address_subject(address: str | None) -> str:
    """Returns the throttle subject of a client address: the address written canonically (an IPv4
    address mapped into IPv6 as IPv4), `LOCAL_ADDRESS` for none or a loopback address.

    Raises StoreError for a text that is not an IP address."""
    if address is None:
        return LOCAL_ADDRESS
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise StoreError(f"address == {address[:80]!r}, must be an IPv4 or IPv6 address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return LOCAL_ADDRESS if ip.is_loopback else str(ip)


# --- accounts ------------------------------------------------------------------------------------


def add_user(store: Store, username: str, password: str, role: str) -> Account:
    """Returns the account created or updated with a new password and role; a new password ends the
    account's sessions."""
    if role not in ROLES:
        raise StoreError(f"role == {role!r}, must be one of {', '.join(ROLES)}")
    if not valid_username(username):
        raise StoreError(f"username == {username!r}, must be 1 to 64 letters, digits, '.', '-' or '_'")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise StoreError(
            f"password: {len(password)} characters, must be at least {MIN_PASSWORD} and at most {MAX_PASSWORD}"
        )
    with store.session() as s:
        row = s.get(m.User, username)
        if row is None:
            row = m.User(username=username, created_at=now(), disabled=False, session_version=0)
            s.add(row)
        else:
            row.session_version += 1
        row.password_hash = _HASHER.hash(password)
        row.role = role
        row.disabled = False
        return Account(username, role, row.session_version)


def authenticate(store: Store, username: str, password: str) -> Account | None:
    """Returns the account when the password is right and the account enabled, else None."""
    if len(password) > MAX_PASSWORD:
        return None
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
        return Account(row.username, row.role, row.session_version)  # type: ignore[arg-type]


def has_users(store: Store) -> bool:
    with store.session() as s:
        return s.scalar(select(m.User.username).limit(1)) is not None


def session_account(store: Store, username: str, session: int) -> Account | None:
    """Returns the account as it is now (its role may have changed) while it is enabled and still in the
    session generation `session`, else None."""
    with store.session() as s:
        row = s.get(m.User, username)
        if row is None or row.disabled or row.session_version != session:
            return None
        return Account(row.username, row.role, row.session_version)  # type: ignore[arg-type]


def end_sessions(store: Store, username: str) -> None:
    """Moves the account's session generation on: every session of the account signed in before ends."""
    with store.session() as s:
        s.execute(update(m.User).where(m.User.username == username).values(session_version=m.User.session_version + 1))
    log.info("sessions ended: account %r", username)


# --- throttled sign-in ---------------------------------------------------------------------------


def sign_in(store: Store, username: str, password: str, address: str | None, at: datetime) -> SignInOutcome:
    """Returns the outcome of an attempt to sign in at `at` from the client `address` (None: local).

    Refused without checking the password while the account name or the address must wait; otherwise a
    failure counts against both and may impose a wait, and a success clears the account name's failures.
    Every refusal is logged with the account name, the address and the failures in a row (never the
    password)."""
    subjects = _subjects(username, address)
    rows = _remembered(store, subjects, at)
    waits = [r.retry_at for r in rows if r.retry_at is not None]
    if waits:
        counts = {r.scope: r.failures for r in rows}
        log.warning(
            "sign-in refused without checking the password: account %r, address %s, %d failures in a row "
            "for the account, %d for the address; next try at %s",
            subjects["account"],
            subjects["address"],
            counts.get("account", 0),
            counts.get("address", 0),
            max(waits).isoformat(timespec="seconds"),
        )
        return SignInOutcome(None, max(waits), throttled=True)
    account = authenticate(store, username, password)
    if account is None:
        failures = count_failure(store, username, address, at)
        retry = max((at + THROTTLE[scope].wait(n) for scope, n in failures.items()), default=at)
        log.warning(
            "sign-in refused: unknown name or wrong password: account %r, address %s, %d failures in a row "
            "for the account, %d for the address",
            subjects["account"],
            subjects["address"],
            failures["account"],
            failures["address"],
        )
        for scope, n in failures.items():
            if n == THROTTLE[scope].lockout_failures:
                log.warning(
                    "sign-in lockout: %s %r after %d failures in a row, until %s",
                    scope,
                    subjects[scope],
                    n,
                    (at + THROTTLE[scope].lockout).isoformat(timespec="seconds"),
                )
        return SignInOutcome(None, retry if retry > at else None)
    clear_failures(store, "account", subjects["account"])
    log.info("signed in: account %r, address %s", account.username, subjects["address"])
    return SignInOutcome(account)


def _subjects(username: str, address: str | None) -> dict[Scope, str]:
    return {"account": account_subject(username), "address": address_subject(address)}


def _remembered(store: Store, subjects: dict[Scope, str], at: datetime) -> list[SignInFailures]:
    t = m.SignInThrottle
    with store.session() as s:
        rows = s.scalars(
            select(t).where(
                ((t.scope == "account") & (t.subject == subjects["account"]))
                | ((t.scope == "address") & (t.subject == subjects["address"]))
            )
        ).all()
        return [f for f in (_failures(r, at) for r in rows) if f is not None]


def _failures(row: m.SignInThrottle, at: datetime) -> SignInFailures | None:
    """Returns what the row means at `at`, None once its rule forgets it."""
    scope = cast(Scope, row.scope)
    rule = THROTTLE[scope]
    last = _utc(row.last_failure_at)
    if last < at - rule.forget_after:
        return None
    retry = last + rule.wait(row.failures)
    return SignInFailures(
        scope,
        row.subject,
        row.failures,
        _utc(row.first_failure_at),
        last,
        retry if retry > at else None,
        row.failures >= rule.lockout_failures,
    )


def count_failure(store: Store, username: str, address: str | None, at: datetime) -> dict[Scope, int]:
    """Returns the failures in a row of the account name and of the address once a failure at `at` is
    counted against both; forgets the rows nobody remembers any more."""
    subjects = _subjects(username, address)
    t = cast(Table, m.SignInThrottle.__table__)
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    counts: dict[Scope, int] = {}
    with store.session() as s:
        for scope, subject in subjects.items():
            new = insert(t).values(scope=scope, subject=subject, failures=1, first_failure_at=at, last_failure_at=at)
            # One statement, so that replicas counting failures of one subject at once lose none.
            forgotten = t.c.last_failure_at < at - THROTTLE[scope].forget_after
            stmt = new.on_conflict_do_update(
                index_elements=[t.c.scope, t.c.subject],
                set_={
                    "failures": case((forgotten, 1), else_=t.c.failures + 1),
                    "first_failure_at": case((forgotten, new.excluded.first_failure_at), else_=t.c.first_failure_at),
                    "last_failure_at": new.excluded.last_failure_at,
                },
            ).returning(t.c.failures)
            counts[scope] = int(s.execute(stmt).scalar_one())
        oldest = max(rule.forget_after for rule in THROTTLE.values())
        s.execute(delete(t).where(t.c.last_failure_at < at - oldest))
    return counts


def sign_in_failures(store: Store, at: datetime) -> tuple[SignInFailures, ...]:
    """Returns the subjects whose failed sign-ins are still remembered at `at`, locked ones first."""
    with store.session() as s:
        rows = s.scalars(select(m.SignInThrottle)).all()
        remembered = [f for f in (_failures(r, at) for r in rows) if f is not None]
    return tuple(sorted(remembered, key=lambda f: (not f.locked, f.retry_at is None, f.scope, f.subject)))


def clear_failures(store: Store, scope: Scope, subject: str) -> bool:
    """Returns whether the subject had failed sign-ins, which are now forgotten (its wait or lockout ends)."""
    t = m.SignInThrottle
    with store.session() as s:
        result = s.execute(delete(t).where(t.scope == scope, t.subject == subject))
        return bool(getattr(result, "rowcount", 0))


# --- session tokens ------------------------------------------------------------------------------


def _serializer(secret: str, purpose: Purpose) -> URLSafeSerializer:
    return URLSafeSerializer(
        secret,
        salt=f"rhizome.console.{purpose}",
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )


def session_token(secret: str, account: Account, at: datetime, purpose: Purpose = "session") -> str:
    """Returns a token signed with a key derived from the deployment's secret, naming the account and its
    session generation, that expires `TOKEN_LIFETIME[purpose]` after `at`."""
    expires = int((at + TOKEN_LIFETIME[purpose]).timestamp())
    return _serializer(secret, purpose).dumps({"u": account.username, "s": account.session, "e": expires})


def token_account(store: Store, secret: str, token: str, at: datetime, purpose: Purpose = "session") -> Account | None:
    """Returns the account a token of the purpose names, None when it is forged, expired, of an ended
    session generation, or of an account that is gone or disabled (the reason is logged)."""
    reason = "longer than any token made here"
    if len(token) <= MAX_TOKEN:
        try:
            claims = _serializer(secret, purpose).loads(token)
        except BadSignature:
            reason = "bad signature"
        else:
            if not (
                isinstance(claims, dict)
                and isinstance(claims.get("u"), str)
                and isinstance(claims.get("s"), int)
                and isinstance(claims.get("e"), int)
            ):
                reason = "not a session token"
            elif claims["e"] <= at.timestamp():
                reason = f"expired at {datetime.fromtimestamp(claims['e'], UTC).isoformat(timespec='seconds')}"
            else:
                account = session_account(store, claims["u"], claims["s"])
                if account is not None:
                    return account
                reason = f"account {claims['u']!r} signed out, disabled or gone"
    log.info("%s token refused: %s", purpose, reason)
    return None
