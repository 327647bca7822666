"""The console end to end: the demo's stack (broker, ingest, worker), the simulator posting a few days
of citizens, the console started as `rhizome console`, and headless Chromium signing in and opening
every page. Each page is saved as a screenshot under test-output/screenshots/; the test fails on any
Streamlit exception shown on a page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from experiments.console_setup import ensure_bootstrap_admin
from experiments.store import UNITS
from services.simulator.citizens import BEHAVIOURS, generate
from services.simulator.demo import history_batches, history_window, prepare_demo_pilots
from streams.events import GroupOffsets, Topics
from tests.support.ports import free_port
from tests.support.stack import ROOT, Stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.kafka]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
ADMIN, PASSWORD = "e2e-admin", "an e2e password"
#: Page link in the sidebar -> the title the page shows.
PAGES = {
    "Portfolio": "Portfolio",
    "Decision board": "Decision board",
    "Pilot": "Pilot",
    "Experiment": "Experiment",
    "Citizens' voice": "Citizens' voice",
    "Admin": "Admin",
}
HISTORY_DAYS = 5
PARTICIPANTS = 160


def dead_letters(stack: Stack) -> int:
    """Returns how many records the dead-letter topic holds (the end offsets of its partitions)."""
    offsets = GroupOffsets(stack.bootstrap, stack.namespace)
    try:
        topic = Topics(stack.namespace).dead_letter
        return sum(end for _, end in offsets.positions((topic, p) for p in range(stack.partitions)).values())
    finally:
        offsets.close()


@pytest.fixture
def demo_console(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """Returns the address of a console over a store the simulator fed through the whole stack."""
    store = stack.store()
    pilots = prepare_demo_pilots(store)
    ensure_bootstrap_admin(store, ADMIN, PASSWORD)
    stack.start_ingest()
    stack.start_worker()
    end = datetime.now(UTC) - timedelta(minutes=1)
    histories = {
        key: generate(BEHAVIOURS[key], spec, end - timedelta(days=HISTORY_DAYS), end, PARTICIPANTS, seed=5)
        for key, (spec, _) in pilots.items()
    }
    # As the demo posts its history: every pilot's together, so that none of it arrives late.
    for key, events in history_batches(histories, history_window(stack.grace_seconds)):
        assert stack.post(pilots[key][1], events) == len(events)
    experiments = [e.key for spec, _ in pilots.values() for e in spec.experiments]
    stack.wait(
        lambda: all(store.experiment_statistics(key).get(UNITS) for key in experiments),
        240,
        what="the worker to write every demo experiment's aggregates",
    )
    stack.wait(stack.caught_up, 240, what="the worker to consume every posted event")
    assert dead_letters(stack) == 0, "the history (all of it within the grace period of its partition) was refused"
    port = free_port()
    log = (tmp_path / "console.log").open("ab")
    console = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "console", "--port", str(port)],
        env=stack.env(),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if console.poll() is not None:
            raise AssertionError(f"the console exited with {console.returncode}: see {tmp_path / 'console.log'}")
        try:
            return httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 90, what="the console to answer /_stcore/health")
        yield url
    finally:
        os.killpg(console.pid, signal.SIGTERM)
        try:
            console.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(console.pid, signal.SIGKILL)
            console.wait()
        store.close()


def _settled(page: Page, title: str) -> bool:
    """Returns True once the page shows its title, the script has finished and every chart is drawn."""
    if title not in [t.strip() for t in page.locator("h1").all_inner_texts()]:
        return False
    if page.locator('[data-testid="stStatusWidget"]').count():
        return False
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    return bool(charts.locator("canvas, svg").count() >= charts.count())


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/system-deps.sh)")
def test_headless_chromium_signs_in_and_opens_every_page_without_an_exception(
    demo_console: str, tmp_path: Path
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-quic",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
            ],
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.goto(demo_console)
            page.get_by_role("textbox", name="Name").fill(ADMIN)
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            wait_until(lambda: _settled(page, "Portfolio"), 60, what="the portfolio after signing in")
            for link, title in PAGES.items():
                page.locator('[data-testid="stSidebarNav"]').get_by_text(link, exact=True).click()
                wait_until(lambda title=title: _settled(page, title), 90, what=f"the {title} page to render")
                name = title.lower().replace("'", "").replace(" ", "-")
                page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
                errors = page.locator('[data-testid="stException"]').all_inner_texts()
                assert not errors, f"{title} page shows an exception: {errors}"
            assert page.locator('[data-testid="stDataFrame"]').count() >= 1
        finally:
            browser.close()
