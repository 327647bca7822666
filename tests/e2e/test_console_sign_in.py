"""The console's sign-in in headless Chromium, against `rhizome console` on a seeded SQLite store (no
Kafka needed): the session survives a reload in an HttpOnly cookie, signing out ends it, a forged,
expired or signed-out cookie is refused, a link to a page returns to that page (and its query) after
signing in, guessing passwords is throttled, and a failing page shows an error id, never a traceback.

Each test signs in with an account of its own, so failures and session generations do not mix."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import text

from experiments.accounts import Account, add_user, session_token
from experiments.store import Store
from tests.support.ports import free_port
from tests.support.seed import ExperimentPlan, seed_pilot
from tests.support.stack import ROOT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SECRET = "e2e-sign-in-secret-not-for-production"
PASSWORD = "an e2e password"
COOKIE = "rhizome_session"


@dataclass(frozen=True)
class Console:
    url: str
    store: Store
    log: Path

    def account(self, name: str, role: str = "admin") -> str:
        """Returns the name of a new account of the role (the password is `PASSWORD`)."""
        add_user(self.store, name, PASSWORD, role)
        return name


def _start_console(tmp: Path, url: str) -> Iterator[Console]:
    store = Store(url)
    store.migrate()
    port = free_port()
    log = tmp / "console.log"
    env = dict(
        os.environ,
        RHIZOME_DATABASE_URL=url,
        RHIZOME_STATE_DIR=str(tmp / "state"),
        RHIZOME_SECRET=SECRET,
        PYTHONPATH=str(ROOT),
    )
    with log.open("ab") as out:
        console = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "console", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if console.poll() is not None:
            raise AssertionError(f"the console exited with {console.returncode}: {log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{address}/_stcore/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 90, what="the console to answer /_stcore/health")
        yield Console(address, store, log)
    finally:
        os.killpg(console.pid, signal.SIGTERM)
        try:
            console.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(console.pid, signal.SIGKILL)
            console.wait()
        store.close()


def _seeded(tmp: Path) -> str:
    """Returns the URL of a store with two pilots (parking's experiment: `alerts`)."""
    url = f"sqlite:///{tmp / 'rhizome.db'}"
    store = Store(url)
    store.migrate()
    seed_pilot(store, "bike-share", [ExperimentPlan("onboarding")], seed=3)
    seed_pilot(store, "parking", [ExperimentPlan("alerts", effect=0.0)], seed=4, participants=600)
    store.close()
    return url


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """Returns a console over a seeded store, shared by the tests of the module."""
    tmp = tmp_path_factory.mktemp("sign-in")
    yield from _start_console(tmp, _seeded(tmp))


@pytest.fixture
def fresh_console(tmp_path: Path) -> Iterator[Console]:
    """Returns a console over a seeded store that no browser has opened yet."""
    yield from _start_console(tmp_path, _seeded(tmp_path))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """Returns a fresh browser profile (no cookie) for one test."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield ctx
    finally:
        ctx.close()


def titles(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("h1").all_inner_texts()]


def settled(page: Page, title: str) -> bool:
    """Returns True once the page shows the title and the script has finished."""
    return title in titles(page) and not page.locator('[data-testid="stStatusWidget"]').count()


def sign_in_form(page: Page) -> bool:
    return settled(page, "Rhizome console") and page.get_by_role("textbox", name="Password").count() == 1


def session_cookie(context: BrowserContext) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == COOKIE), None)


def submit(page: Page, name: str, password: str) -> None:
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page: Page, context: BrowserContext, name: str, title: str = "Portfolio") -> str:
    """Returns the session cookie the browser keeps once signed in on the sign-in page shown."""
    wait_until(lambda: sign_in_form(page), 60, what="the sign-in form")
    submit(page, name, PASSWORD)
    wait_until(lambda: settled(page, title), 90, what=f"the {title} page after signing in")
    return wait_until(lambda: session_cookie(context), 30, what="the session cookie")


def alerts(page: Page) -> str:
    """Returns the error and info messages the page shows."""
    return " | ".join(page.locator('[data-testid="stAlert"]').all_inner_texts())


def test_a_reload_keeps_the_account_signed_in_with_an_httponly_strict_cookie(
    console: Console, context: BrowserContext
) -> None:
    name = console.account("reloading-admin")
    page = context.new_page()
    page.goto(console.url)
    sign_in(page, context, name)
    cookie = next(c for c in context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert COOKIE not in page.evaluate("document.cookie")
    page.reload()
    wait_until(lambda: settled(page, "Portfolio"), 90, what="the portfolio after the reload")
    assert page.get_by_text(f"Signed in as {name} (admin)").count() == 1
    assert page.get_by_role("textbox", name="Password").count() == 0


def test_signing_out_then_reloading_shows_the_sign_in_page_and_the_old_cookie_opens_nothing(
    console: Console, context: BrowserContext
) -> None:
    name = console.account("leaving-board", "board")
    page = context.new_page()
    page.goto(console.url)
    kept = sign_in(page, context, name)
    page.get_by_role("button", name="Sign out").click()
    wait_until(lambda: sign_in_form(page), 60, what="the sign-in form after signing out")
    wait_until(lambda: session_cookie(context) is None, 30, what="the browser to clear the session cookie")
    page.reload()
    wait_until(lambda: sign_in_form(page), 60, what="the sign-in form after the reload")
    # A copy of the cookie kept from before signing out: the store ended its session generation.
    context.add_cookies([{"name": COOKIE, "value": kept, "url": console.url}])
    page.reload()
    wait_until(lambda: sign_in_form(page), 60, what="the sign-in form with the signed-out cookie")
    assert "Your session has ended: sign in again." in alerts(page)
    wait_until(lambda: session_cookie(context) is None, 30, what="the browser to clear the refused cookie")


@pytest.mark.parametrize(
    ("case", "secret", "signed_at"),
    [
        ("valid", SECRET, datetime.now(UTC)),
        ("forged", "another deployment's secret", datetime.now(UTC)),
        ("expired", SECRET, datetime.now(UTC) - timedelta(hours=12, minutes=1)),
    ],
)
def test_a_forged_or_expired_cookie_is_refused(
    console: Console, context: BrowserContext, case: str, secret: str, signed_at: datetime
) -> None:
    name = console.account(f"cookie-{case}")
    token = session_token(secret, Account(name, "admin", 0), signed_at)
    context.add_cookies([{"name": COOKIE, "value": token, "url": console.url, "httpOnly": True}])
    page = context.new_page()
    page.goto(console.url)
    if case == "valid":
        wait_until(lambda: settled(page, "Portfolio"), 90, what="the portfolio opened by a valid cookie")
        return
    wait_until(lambda: sign_in_form(page), 60, what=f"the sign-in form with a {case} cookie")
    assert "Your session has ended: sign in again." in alerts(page)
    assert page.get_by_text("Signed in as").count() == 0
    wait_until(lambda: session_cookie(context) is None, 30, what=f"the browser to clear the {case} cookie")


def test_a_link_to_a_page_returns_to_that_page_and_its_query_after_signing_in(
    fresh_console: Console, context: BrowserContext
) -> None:
    # The first visit after the console starts: Streamlit runs its first session differently.
    console = fresh_console
    name = console.account("linked-lab", "lab")
    page = context.new_page()
    page.goto(f"{console.url}/experiments?pilot=parking&experiment=alerts")
    wait_until(lambda: sign_in_form(page), 60, what="the sign-in form at the page's address")
    assert page.get_by_text("Page not found").count() == 0
    sign_in(page, context, name, title="Experiment")
    assert page.get_by_text("Page not found").count() == 0
    assert page.url.startswith(f"{console.url}/experiments?")
    assert "experiment=alerts" in page.url and "pilot=parking" in page.url
    assert page.get_by_role("combobox", name="Experiment").input_value() == "Parking · alerts (Running)"


def test_the_sixth_attempt_after_five_wrong_passwords_waits_even_with_the_right_password(
    console: Console, context: BrowserContext
) -> None:
    name = console.account("guessed-admin")
    wrong = "not-the-password-{}"
    page = context.new_page()
    page.goto(console.url)
    wait_until(lambda: sign_in_form(page), 60, what="the sign-in form")
    for attempt in range(1, 6):
        submit(page, name, wrong.format(attempt))
        # The console logs each refusal with the failures in a row: the page's message of the attempt
        # before may still show, so the log says when this attempt was answered.
        counted = f"account '{name}', address local, {attempt} failures in a row for the account"
        wait_until(
            lambda counted=counted: counted in console.log.read_text(),
            60,
            what=f"the refusal of wrong password {attempt}",
        )
        wait_until(lambda: settled(page, "Rhizome console"), 60, what=f"the page after wrong password {attempt}")
        if attempt < 5:
            # The page may still be drawing its answer when the log has it.
            wait_until(
                lambda: alerts(page) == "Unknown name or wrong password.",
                60,
                what=f"the page to refuse wrong password {attempt}",
            )
    wait_until(lambda: "try again at" in alerts(page), 60, what="the fifth refusal to say when to try again")
    assert re.fullmatch(
        r"Unknown name or wrong password\. Too many failed sign-ins: try again at \d\d:\d\d:\d\d UTC "
        r"\(in \d+ seconds\)\.",
        alerts(page),
    ), alerts(page)
    submit(page, name, PASSWORD)
    wait_until(lambda: alerts(page).startswith("Too many failed sign-ins"), 60, what="the sixth attempt to be refused")
    assert page.get_by_text("Signed in as").count() == 0 and session_cookie(context) is None
    log = console.log.read_text()
    assert f"sign-in refused without checking the password: account '{name}', address local" in log
    assert "not-the-password" not in log and f"signed in: account '{name}'" not in log


@pytest.fixture
def broken_console(tmp_path: Path) -> Iterator[Console]:
    """Returns a console over a store whose aggregates table is gone: the Portfolio page fails."""
    url = f"sqlite:///{tmp_path / 'rhizome.db'}"
    store = Store(url)
    store.migrate()
    seed_pilot(store, "bike-share", [ExperimentPlan("onboarding")], seed=3)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE aggregates"))
    store.close()
    yield from _start_console(tmp_path, url)


def shown_error(page: Page, console: Console, cause: str) -> str:
    """Returns the error id the page shows, once checked that the page shows nothing else of the failure
    and that the console's log keeps the id beside the traceback of `cause`."""
    shown = wait_until(lambda: re.search(r"Error id: ([0-9a-f]{12})", alerts(page)), 90, what="an error id")
    body = page.inner_text("body")
    assert "Traceback" not in body and ".py" not in body and str(ROOT) not in body and cause not in body
    assert page.locator('[data-testid="stException"]').count() == 0
    error_id = shown.group(1)

    def logged() -> str | None:
        log = console.log.read_text()
        return log if error_id in log else None

    log = wait_until(logged, 30, what="the error id in the console's log")
    after = log[log.index(error_id) :]
    assert "Traceback (most recent call last)" in after and cause in after
    assert re.search(r'File "/[^"]+\.py", line \d+', after)
    return error_id


def test_a_failing_page_shows_an_error_id_and_no_traceback_and_the_log_keeps_both(
    broken_console: Console, context: BrowserContext
) -> None:
    name = broken_console.account("unlucky-admin")
    page = context.new_page()
    page.goto(broken_console.url)
    sign_in(page, context, name, title="Portfolio")
    in_page = shown_error(page, broken_console, "no such table: aggregates")
    # A failure before any page runs (checking the session's account) goes through the server's hook.
    with broken_console.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE users DROP COLUMN session_version"))
    page.reload()
    before_page = shown_error(page, broken_console, "no such column: users.session_version")
    assert before_page != in_page
