"""Signing in to the console: no page without an account, roles decide which pages exist, guessing is
throttled per account name and per address (in the store), sessions are signed tokens that signing out
ends, and a failing page shows an error id instead of a traceback.

The throttle and the tokens run on SQLite and PostgreSQL (the `store` fixture); the clock is injected.
The browser's side (the cookie itself, reloads, links to pages) is tested in headless Chromium by
tests/e2e/test_console_sign_in.py."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.testclient import TestClient
from streamlit.testing.v1 import AppTest

from experiments import accounts
from experiments import models as m
from experiments.accounts import THROTTLE, Account, add_user, sign_in, sign_in_failures
from experiments.console_setup import set_user_disabled
from experiments.store import Store
from services.cli import main as rhizome
from tests.unit.ui.conftest import APP, PAGES, PASSWORD, TIMEOUT, console_in, signed_in
from ui import auth, session

SECRET = "unit-test-secret-not-for-production"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
WRONG = "not the password"


@pytest.fixture(autouse=True)
def deployment_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RHIZOME_SECRET", SECRET)


class Clock:
    """The time the console reads (`ui.auth.now`), moved by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(T0)
    monkeypatch.setattr(auth, "now", c)
    return c


@pytest.fixture
def people(store: Store) -> Store:
    """Returns the store (SQLite and PostgreSQL in turn) with a lab and a board account."""
    add_user(store, "lab-user", PASSWORD, "lab")
    add_user(store, "board-user", PASSWORD, "board")
    return store


def console_at() -> AppTest:
    return console_in().run()


def attempt(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run()


# --- who sees what ---------------------------------------------------------------------------------


def test_every_page_is_unreachable_before_signing_in(console: str) -> None:
    at = console_at()
    assert [t.value for t in at.title] == ["Rhizome console"]
    assert at.text_input(key="sign_in_password") is not None
    for page in PAGES:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}.py")


@pytest.mark.parametrize("page", PAGES)
def test_a_page_run_on_its_own_without_an_account_shows_nothing_but_the_sign_in_notice(console: str, page: str) -> None:
    at = console_in(script=APP.with_name("pages") / f"{page}.py").run()
    assert [w.value for w in at.warning] == ["Sign in to use the console."]
    assert not at.title and not at.dataframe and not at.metric


def test_signing_in_with_the_right_password_opens_the_portfolio(writable_console: str, clock: Clock) -> None:
    at = attempt(console_at(), "board-user", PASSWORD)
    assert at.session_state["account"] == Account("board-user", "board", 0)
    assert [t.value for t in at.title] == ["Portfolio"]


def test_a_wrong_password_is_refused(writable_console: str, clock: Clock) -> None:
    at = attempt(console_at(), "board-user", WRONG)
    assert [e.value for e in at.error] == ["Unknown name or wrong password."]
    assert "account" not in at.session_state


def test_a_store_without_accounts_tells_the_operator_how_to_create_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).migrate()
    monkeypatch.setenv("RHIZOME_DATABASE_URL", url)
    at = console_at()
    assert "rhizome users add NAME --role admin" in at.info[0].value
    assert not at.text_input


@pytest.mark.parametrize(("role", "admin_page"), [("lab", True), ("board", False), ("admin", True)])
def test_the_admin_page_exists_for_lab_and_admin_only(console: str, role: str, admin_page: bool) -> None:
    at = signed_in(role)
    if admin_page:
        at.switch_page("pages/admin.py").run()
        assert [t.value for t in at.title] == ["Admin"]
    else:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page("pages/admin.py")


# --- throttling in the console -----------------------------------------------------------------------


def test_the_sixth_attempt_after_five_failures_waits_even_with_the_right_password_then_opens(
    writable_console: str, clock: Clock
) -> None:
    at = console_at()
    for _ in range(4):
        assert [e.value for e in attempt(at, "lab-user", WRONG).error] == ["Unknown name or wrong password."]
    assert [e.value for e in attempt(at, "lab-user", WRONG).error] == [
        "Unknown name or wrong password. Too many failed sign-ins: try again at 09:00:30 UTC (in 30 seconds)."
    ]
    clock.at = T0 + timedelta(seconds=29)
    assert [e.value for e in attempt(at, "lab-user", PASSWORD).error] == [
        "Too many failed sign-ins: try again at 09:00:30 UTC (in 1 second)."
    ]
    assert "account" not in at.session_state
    clock.at = T0 + timedelta(seconds=30)
    at = attempt(at, "lab-user", PASSWORD)
    assert [t.value for t in at.title] == ["Portfolio"]
    # The success forgets the account name's failures, not the address's.
    left = sign_in_failures(Store(writable_console), clock.at)
    assert [(f.scope, f.subject, f.failures) for f in left] == [("address", "local", 5)]


def test_an_unknown_name_is_answered_in_the_same_words_and_waits_as_an_existing_one(
    writable_console: str, clock: Clock
) -> None:
    answers = {}
    for name in ("lab-user", "nobody-here"):
        at = console_at()
        answers[name] = [e.value for _ in range(6) for e in attempt(at, name, WRONG).error]
    assert answers["lab-user"] == answers["nobody-here"]
    assert answers["lab-user"][-1] == "Too many failed sign-ins: try again at 09:00:30 UTC (in 30 seconds)."


# --- the throttle's rule and its store -------------------------------------------------------------------


def test_the_rule_waits_after_five_failures_doubling_up_to_an_hour_from_the_tenth() -> None:
    rule = THROTTLE["account"]
    waits = [rule.wait(n).total_seconds() for n in range(13)]
    assert waits == [0, 0, 0, 0, 0, 30, 60, 120, 240, 480, 3600, 3600, 3600]
    assert THROTTLE["address"].wait(19) == timedelta(0) and THROTTLE["address"].wait(20) == timedelta(seconds=30)


def test_a_refused_attempt_during_the_wait_checks_no_password_and_counts_nothing(people: Store) -> None:
    for i in range(5):
        assert sign_in(people, "lab-user", WRONG, "203.0.113.9", T0 + timedelta(seconds=i)).account is None
    last = T0 + timedelta(seconds=4)
    refused = sign_in(people, "lab-user", PASSWORD, "203.0.113.9", last + timedelta(seconds=29))
    assert refused == accounts.SignInOutcome(None, last + timedelta(seconds=30), throttled=True)
    assert {f.scope: f.failures for f in sign_in_failures(people, last)} == {"account": 5, "address": 5}
    opened = sign_in(people, "lab-user", PASSWORD, "203.0.113.9", last + timedelta(seconds=30))
    assert opened.account == Account("lab-user", "lab", 0)


def test_the_tenth_failure_locks_the_name_for_an_hour_and_each_failure_after_it_again(
    people: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rhizome.console")
    at = T0
    for _ in range(10):
        outcome = sign_in(people, "lab-user", WRONG, None, at)
        at = outcome.retry_at or at
    assert at == T0 + timedelta(seconds=30 + 60 + 120 + 240 + 480 + 3600)
    (locked,) = [f for f in sign_in_failures(people, at - timedelta(seconds=1)) if f.scope == "account"]
    assert locked.locked and locked.failures == 10
    lockouts = [r.getMessage() for r in caplog.records if "lockout" in r.getMessage()]
    assert lockouts == [f"sign-in lockout: account 'lab-user' after 10 failures in a row, until {at.isoformat()}"]
    assert sign_in(people, "lab-user", PASSWORD, None, at - timedelta(seconds=1)).throttled
    assert sign_in(people, "lab-user", WRONG, None, at).retry_at == at + timedelta(hours=1)


def test_an_address_is_throttled_across_the_names_it_tries(people: Store) -> None:
    for i in range(20):
        sign_in(people, f"guess-{i}", WRONG, "198.51.100.7", T0)
    assert sign_in(people, "board-user", PASSWORD, "198.51.100.7", T0 + timedelta(seconds=29)).throttled
    assert sign_in(people, "board-user", PASSWORD, "198.51.100.8", T0 + timedelta(seconds=29)).account is not None
    # The same client written as an IPv4-mapped IPv6 address is the same subject.
    assert sign_in(people, "board-user", PASSWORD, "::ffff:198.51.100.7", T0 + timedelta(seconds=29)).throttled


def test_failures_hold_across_a_restart_and_between_replicas(people: Store) -> None:
    for _ in range(5):
        sign_in(people, "lab-user", WRONG, None, T0)
    replica = Store(people.url)
    try:
        assert sign_in(replica, "lab-user", PASSWORD, None, T0 + timedelta(seconds=10)).throttled
    finally:
        replica.close()


def test_failures_counted_at_once_by_several_replicas_are_all_counted(people: Store) -> None:
    replicas = [Store(people.url) for _ in range(4)]
    errors: list[BaseException] = []

    def count(store: Store) -> None:
        try:
            for _ in range(10):
                accounts.count_failure(store, "lab-user", "192.0.2.1", T0)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=count, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in replicas:
        r.close()
    assert errors == []
    assert {f.scope: f.failures for f in sign_in_failures(people, T0)} == {"account": 40, "address": 40}


def test_failures_older_than_a_day_are_forgotten(people: Store) -> None:
    for _ in range(5):
        sign_in(people, "lab-user", WRONG, None, T0)
    later = T0 + THROTTLE["account"].forget_after + timedelta(seconds=1)
    assert sign_in_failures(people, later) == ()
    assert sign_in(people, "lab-user", WRONG, None, later).retry_at is None
    assert {f.scope: f.failures for f in sign_in_failures(people, later)} == {"account": 1, "address": 1}
    with people.session() as s:
        assert s.scalar(select(m.SignInThrottle.first_failure_at).limit(1)).replace(tzinfo=UTC) == later


def test_the_log_names_the_account_the_address_and_the_count_never_the_password(
    people: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_guess = "Tr0ub4dor&3-guess"
    for _ in range(6):
        sign_in(people, "lab-user", secret_guess, "203.0.113.50", T0)
    sign_in(people, secret_guess, PASSWORD, "203.0.113.50", T0)
    assert secret_guess not in caplog.text
    messages = [r.getMessage() for r in caplog.records if r.name == "rhizome.console"]
    assert messages[4] == (
        "sign-in refused: unknown name or wrong password: account 'lab-user', address 203.0.113.50, "
        "5 failures in a row for the account, 5 for the address"
    )
    assert messages[5].startswith("sign-in refused without checking the password: account 'lab-user'")
    assert all(secret_guess not in message for message in messages)
    # A name that cannot be an account (a password typed in the name field) is kept as a digest only.
    assert re.search(r"account 'invalid:[0-9a-f]{16}'", messages[-1])
    with people.session() as s:
        assert secret_guess not in s.scalars(select(m.SignInThrottle.subject)).all()


@pytest.mark.parametrize(
    ("address", "subject"),
    [
        (None, "local"),
        ("127.0.0.1", "local"),
        ("::1", "local"),
        ("::ffff:127.0.0.1", "local"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("2001:DB8::1", "2001:db8::1"),
        (" 10.0.0.1 ", "10.0.0.1"),
    ],
)
def test_addresses_are_written_one_way(address: str | None, subject: str) -> None:
    assert accounts.address_subject(address) == subject


def test_a_text_that_is_no_address_is_refused_naming_it() -> None:
    with pytest.raises(accounts.StoreError, match=r"address == 'not-an-ip', must be an IPv4 or IPv6 address"):
        accounts.address_subject("not-an-ip")


def test_an_absurd_password_is_refused_without_hashing_it(people: Store) -> None:
    assert accounts.authenticate(people, "lab-user", "x" * 900_000) is None
    with pytest.raises(accounts.StoreError, match="password: 1025 characters, must be at least 10 and at most 1024"):
        add_user(people, "long-one", "x" * 1025, "lab")


# --- the admin's commands --------------------------------------------------------------------------------


def test_an_admin_lists_and_clears_lockouts_from_the_command_line(
    people: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RHIZOME_DATABASE_URL", people.url)
    now = datetime.now(UTC)
    for _ in range(10):
        accounts.count_failure(people, "lab-user", "203.0.113.9", now)
    assert rhizome(["users", "lockouts"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:3] for line in listed] == [
        ["account", "lab-user", "10 failures in a row, the last at " + f"{now:%Y-%m-%d %H:%M:%S} UTC"],
        ["address", "203.0.113.9", "10 failures in a row, the last at " + f"{now:%Y-%m-%d %H:%M:%S} UTC"],
    ]
    assert listed[0].split("\t")[3].startswith("locked until ") and listed[1].split("\t")[3] == "counting"
    assert sign_in(people, "lab-user", PASSWORD, "198.51.100.1", now).throttled
    assert rhizome(["users", "unlock", "lab-user"]) == 0
    assert capsys.readouterr().out == "account lab-user: failed sign-ins cleared\n"
    assert sign_in(people, "lab-user", PASSWORD, "198.51.100.1", now).account is not None
    assert rhizome(["users", "unlock", "--address", "::ffff:203.0.113.9"]) == 0
    assert capsys.readouterr().out == "address 203.0.113.9: failed sign-ins cleared\n"
    assert rhizome(["users", "unlock", "lab-user"]) == 0
    assert capsys.readouterr().out == "account lab-user: no failed sign-in remembered\n"
    assert rhizome(["users", "lockouts"]) == 0
    assert capsys.readouterr().out == "no failed sign-in remembered\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["users", "unlock"], "username: give an account name or --address ADDRESS (one of them)"),
        (["users", "unlock", "ana", "--address", "10.0.0.1"], "username: give an account name or --address"),
        (["users", "unlock", "--address", "10.0.0.300"], "address == '10.0.0.300', must be an IPv4 or IPv6 address"),
    ],
)
def test_unlock_refuses_bad_input_naming_the_field(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("RHIZOME_DATABASE_URL", f"sqlite:///{tmp_path / 'rhizome.db'}")
    with pytest.raises(SystemExit) as exit_:
        rhizome(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


# --- sessions ---------------------------------------------------------------------------------------------


def test_a_session_token_opens_its_account_until_it_expires(people: Store) -> None:
    account = Account("lab-user", "lab", 0)
    token = accounts.session_token(SECRET, account, T0)
    assert accounts.token_account(people, SECRET, token, T0 + timedelta(hours=11, minutes=59)) == account
    assert accounts.token_account(people, SECRET, token, T0 + timedelta(hours=12)) is None
    handoff = accounts.session_token(SECRET, account, T0, "handoff")
    assert accounts.token_account(people, SECRET, handoff, T0 + timedelta(seconds=59), "handoff") == account
    assert accounts.token_account(people, SECRET, handoff, T0 + timedelta(seconds=60), "handoff") is None


def test_a_forged_tampered_or_misused_token_is_refused(people: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "rhizome.console")
    account = Account("lab-user", "lab", 0)
    token = accounts.session_token(SECRET, account, T0)
    payload, signature = token.rsplit(".", 1)
    board = accounts.session_token(SECRET, Account("board-user", "board", 0), T0)
    refused = [
        accounts.session_token("another deployment's secret", account, T0),
        f"{board.rsplit('.', 1)[0]}.{signature}",
        f"{payload}.{signature[:-2]}",
        accounts.session_token(SECRET, account, T0, "handoff"),
        "",
        "not a token",
        "x" * 10_000,
    ]
    for forged in refused:
        assert accounts.token_account(people, SECRET, forged, T0) is None, forged
    assert accounts.token_account(people, SECRET, accounts.session_token(SECRET, account, T0), T0, "handoff") is None
    reasons = [r.getMessage() for r in caplog.records]
    assert reasons.count("session token refused: bad signature") == 6
    assert "handoff token refused: bad signature" in reasons
    assert "session token refused: longer than any token made here" in reasons


def test_signing_out_a_new_password_or_disabling_ends_every_session_before(people: Store) -> None:
    first = accounts.session_token(SECRET, Account("lab-user", "lab", 0), T0)
    accounts.end_sessions(people, "lab-user")
    assert accounts.token_account(people, SECRET, first, T0) is None
    second = accounts.session_token(SECRET, Account("lab-user", "lab", 1), T0)
    assert accounts.token_account(people, SECRET, second, T0) == Account("lab-user", "lab", 1)
    assert add_user(people, "lab-user", "a brand new password", "admin") == Account("lab-user", "admin", 2)
    assert accounts.token_account(people, SECRET, second, T0) is None
    third = accounts.session_token(SECRET, Account("lab-user", "lab", 2), T0)
    assert accounts.token_account(people, SECRET, third, T0) == Account("lab-user", "admin", 2)
    set_user_disabled(people, "lab-user", True)
    assert accounts.token_account(people, SECRET, third, T0) is None
    set_user_disabled(people, "lab-user", False)
    assert accounts.token_account(people, SECRET, third, T0) is None


def test_signing_in_hands_a_one_minute_token_to_the_browser_once(writable_console: str, clock: Clock) -> None:
    at = attempt(console_at(), "lab-user", PASSWORD)
    (handoff,) = at.get("html")
    script = handoff.proto.body
    assert re.search(r"fetch\(\"/_rhizome/session\", \{\"method\": \"POST\".*\"X-Rhizome-Console\": \"1\"", script)
    token = re.search(r"\"body\": \"([^\"]+)\"", script)
    assert token is not None
    store = Store(writable_console)
    assert accounts.token_account(store, SECRET, token.group(1), T0, "handoff") == Account("lab-user", "lab", 0)
    assert accounts.token_account(store, SECRET, token.group(1), T0, "session") is None
    assert not at.run().get("html")


def test_signing_out_ends_the_session_generation_and_has_the_cookie_cleared(writable_console: str) -> None:
    at = signed_in("lab")
    at.button(key="sign_out").click().run()
    assert "account" not in at.session_state
    assert [t.value for t in at.title] == ["Rhizome console"]
    (clearing,) = at.get("html")
    assert '"method": "DELETE"' in clearing.proto.body and '"body"' not in clearing.proto.body
    with Store(writable_console).session() as s:
        assert s.scalar(select(m.User.session_version).where(m.User.username == "lab-user")) == 1


def test_a_session_signed_out_elsewhere_ends_at_its_next_run(writable_console: str) -> None:
    at = signed_in("board")
    assert [t.value for t in at.title] == ["Portfolio"]
    accounts.end_sessions(Store(writable_console), "board-user")
    at.run()
    assert [t.value for t in at.title] == ["Rhizome console"]
    assert [i.value for i in at.info] == ["Your session has ended: sign in again."]


def test_a_role_changed_while_signed_in_applies_at_the_next_run(writable_console: str) -> None:
    at = signed_in("lab")
    store = Store(writable_console)
    with store.session() as s:
        s.execute(text("UPDATE users SET role = 'board' WHERE username = 'lab-user'"))
    at.run()
    assert at.session_state["account"] == Account("lab-user", "board", 0)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/admin.py")


# --- the server's route that turns a hand-off into the cookie ---------------------------------------------


@pytest.fixture
def route(writable_console: str) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=session.routes()), base_url="https://console.test") as client:
        yield client


def test_the_route_answers_a_hand_off_token_with_an_httponly_strict_cookie(
    route: TestClient, writable_console: str
) -> None:
    now = datetime.now(UTC)
    handoff = accounts.session_token(SECRET, Account("lab-user", "lab", 0), now, "handoff")
    answer = route.post("/_rhizome/session", content=handoff, headers={session.CALLER_HEADER: "1"})
    assert answer.status_code == 204
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{session.SESSION_COOKIE}=")
    assert {"HttpOnly", "Max-Age=43200", "Path=/", "SameSite=strict", "Secure"} <= {
        part.strip() for part in cookie.split(";")
    }
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert accounts.token_account(Store(writable_console), SECRET, value, now) == Account("lab-user", "lab", 0)


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        ("handoff", {}, 403, "header X-Rhizome-Console: missing"),
        ("session", {session.CALLER_HEADER: "1"}, 403, "body: not a hand-off token of this console"),
        ("stale", {session.CALLER_HEADER: "1"}, 403, "body: not a hand-off token of this console"),
        ("x" * 5000, {session.CALLER_HEADER: "1"}, 413, "body: over 512 bytes"),
    ],
)
def test_the_route_refuses_anything_but_a_fresh_hand_off_token_saying_why(
    route: TestClient, body: str, headers: dict[str, str], status: int, error: str
) -> None:
    now = datetime.now(UTC)
    account = Account("lab-user", "lab", 0)
    tokens = {
        "handoff": accounts.session_token(SECRET, account, now, "handoff"),
        "session": accounts.session_token(SECRET, account, now, "session"),
        "stale": accounts.session_token(SECRET, account, now - timedelta(minutes=2), "handoff"),
    }
    answer = route.post("/_rhizome/session", content=tokens.get(body, body), headers=headers)
    assert answer.status_code == status
    assert answer.json()["error"].startswith(error)
    assert "set-cookie" not in answer.headers


def test_the_route_clears_the_cookie(route: TestClient) -> None:
    assert route.delete("/_rhizome/session").status_code == 403
    answer = route.delete("/_rhizome/session", headers={session.CALLER_HEADER: "1"})
    assert answer.status_code == 204
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f'{session.SESSION_COOKIE}=""') and "Max-Age=0" in cookie and "HttpOnly" in cookie


# --- a failing page ------------------------------------------------------------------------------------------


def test_a_failing_page_shows_an_error_id_and_the_log_keeps_it_beside_the_traceback(
    writable_console: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(writable_console).engine.begin() as conn:
        conn.execute(text("DROP TABLE aggregates"))
    at = signed_in("board")
    assert not at.exception
    (shown,) = [e.value for e in at.error]
    error_id = re.fullmatch(r"Something went wrong on this page\. Error id: ([0-9a-f]{12})\. .*", shown)
    assert error_id is not None, shown
    assert "aggregates" not in shown and ".py" not in shown and "/" not in shown
    (record,) = [r for r in caplog.records if r.name == "rhizome.console" and error_id.group(1) in r.getMessage()]
    assert record.getMessage() == f"console error {error_id.group(1)} (account 'board-user'): OperationalError"
    assert record.exc_info is not None and "no such table: aggregates" in str(record.exc_info[1])
    assert "ui/pages/portfolio.py" in caplog.text


def test_a_failure_outside_the_page_is_reported_the_same_way_by_the_servers_hook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def script() -> None:
        import streamlit as st

        from ui import failures

        st.session_state["suppressed"] = failures.on_script_error(RuntimeError("/srv/rhizome/ui/pages/board.py"))

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert at.session_state["suppressed"] is True
    (shown,) = [e.value for e in at.error]
    # In the product's first language, French, unless the reader chose otherwise.
    assert re.fullmatch(r"Un problème est survenu sur cette page\. Identifiant de l'erreur : [0-9a-f]{12}\. .*", shown)
    assert "/srv" not in shown
    assert "/srv/rhizome/ui/pages/board.py" in caplog.text


def test_streamlit_shows_no_error_details_in_the_console() -> None:
    # Read as `streamlit run ui/server.py` reads it, in a process of its own (the config is global).
    probe = (
        "import sys; from streamlit import config; config._main_script_path = sys.argv[1]; "
        "print(config.get_option('client.showErrorDetails'))"
    )
    server = APP.with_name("server.py")
    shown = subprocess.run([sys.executable, "-c", probe, str(server)], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "none"
