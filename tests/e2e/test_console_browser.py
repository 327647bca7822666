"""The console end to end, in headless Chromium, on the demo's real stack (broker, ingest, worker, console
started as `rhizome console`), built once for the module:

- the demo pilots with eight days of simulated citizens, posted through the ingest API as the demo posts
  its history, and a hostile pilot whose name, description and hypothesis, district values, comments
  and ideas are Markdown, HTML, link, image and `:red[]` payloads;
- a browser whose Accept-Language is French signs in (the console answers in French), opens every page
  at 1440 and 390 px, switches to English and does it again: screenshots under test-output/screenshots,
  no exception, no table or chart wider than the viewport, no "None", "nan" or unformatted fraction in
  the page's text; on a phone the recommendation comes before the choice of experiment;
- the Decision board's pace (participants first exposed a day over the last seven complete days) is
  checked against the simulator's arrivals in the same days;
- the payloads are shown as the text they are (nothing rendered, tooltips included) and the browser
  asks no remote host for anything;
- the language chosen is remembered with the account: a new session signed in again is in English.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from experiments import board, report
from experiments.console_setup import ensure_bootstrap_admin
from experiments.i18n import localized, name_of
from experiments.readmodels.exposure import EXPOSURE_WINDOW_DAYS
from experiments.specs import parse_pilot_spec
from experiments.store import UNITS
from services.simulator.citizens import BEHAVIOURS, generate
from services.simulator.demo import history_batches, history_window, prepare_demo_pilots
from streams.events import GroupOffsets, Topics, new_event
from tests.support.ports import free_port
from tests.support.readable import unreadable
from tests.support.stack import ROOT, Stack
from tests.support.waiting import wait_until
from ui.text import WORD_JOINER

pytestmark = [pytest.mark.browser, pytest.mark.kafka]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
ADMIN, PASSWORD = "e2e-admin", "an e2e password"
HISTORY_DAYS = 8
PARTICIPANTS = 400
WIDTHS = (1440, 390)
NAMES = {"fr": "Français", "en": "English"}
#: The console's pages: (link in French, link in English, file name of the screenshot).
PAGES = (
    ("Portefeuille", "Portfolio", "portfolio"),
    ("Comité de décision", "Decision board", "decision-board"),
    ("Pilote", "Pilot", "pilot"),
    ("Expérimentation", "Experiment", "experiment"),
    ("Parole citoyenne", "Citizens' voice", "citizens-voice"),
    ("Glossaire", "Glossary", "glossary"),
    ("Administration", "Admin", "admin"),
)
#: Documentation addresses (TEST-NET-3): a request to one would be a payload rendered.
REMOTE = "203.0.113.9"
PAYLOADS = {
    "image": f"![pixel](http://{REMOTE}/pixel.png) image",
    "link": f"[prize](http://{REMOTE}/win) link",
    "html": f"<b>bold</b><img src=http://{REMOTE}/tag.png>",
    "red": ":red[alarm] :material/home: :smile:",
}
HOSTILE = f"""
pilot:
  key: hostile
  name: "Hostile {PAYLOADS["red"]}"
  description: "{PAYLOADS["link"]} {PAYLOADS["image"]}"
  consent: collected_by_service
  districts: [north]
  segments: [district]
  budget: 1000
  start: {date.today() - timedelta(days=3)}
  next_decision: {date.today() + timedelta(days=30)}
experiments:
  - key: hostile-exp
    hypothesis: "{PAYLOADS["html"]}"
    variants: {{control: 0.5, treated: 0.5}}
    metrics:
      - {{key: used, type: proportion, action: use, window_days: 7}}
    primary: used
"""


@dataclass
class Demo:
    url: str
    stack: Stack
    histories: dict[str, list[dict[str, Any]]]
    names: dict[str, str]
    #: The specs' prose in each language (descriptions, hypotheses), where a key may be an ordinary word
    #: ("Electric bikes parked in every neighbourhood").
    prose: list[str]


def _hostile_events(end: datetime) -> list[dict[str, Any]]:
    """Returns a few participants of the hostile pilot: exposed, using it from a district named by a
    payload, commenting and proposing ideas that are payloads."""
    events = []
    for i, (kind, text) in enumerate(PAYLOADS.items()):
        pid = f"hostile-{i}"
        at = end - timedelta(hours=30 - i)
        exposure = {"experiment": "hostile-exp", "variant": "treated"}
        events.append(new_event("exposure", "hostile", pid, exposure, occurred_at=at))
        district = PAYLOADS["link"] if kind == "link" else "north"
        usage = {"action": "use", "value": None, "session_id": None, "properties": {"district": district}}
        events.append(new_event("usage", "hostile", pid, usage, occurred_at=at + timedelta(minutes=1)))
        for feedback in ("comment", "idea"):
            said = {"kind": feedback, "text": text}
            events.append(new_event("feedback", "hostile", pid, said, occurred_at=at + timedelta(minutes=2)))
    return events


def _caught_up(stack: Stack) -> bool:
    offsets = GroupOffsets(stack.bootstrap, stack.namespace)
    try:
        return stack.caught_up(offsets)
    finally:
        offsets.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Demo]:
    """Returns the console over a store the demo's history reached through the whole stack."""
    tmp = tmp_path_factory.mktemp("console-e2e")
    stack = Stack(tmp, kafka_bootstrap, f"sqlite:///{tmp / 'rhizome.db'}", f"t{uuid.uuid4().hex[:12]}")
    console: subprocess.Popen[bytes] | None = None
    try:
        store = stack.store()
        pilots = prepare_demo_pilots(store)
        hostile_key = store.apply_pilot(parse_pilot_spec(HOSTILE)).api_key
        assert hostile_key is not None
        ensure_bootstrap_admin(store, ADMIN, PASSWORD)
        stack.start_ingest()
        stack.start_worker()
        end = datetime.now(UTC) - timedelta(minutes=1)
        histories = {
            key: generate(BEHAVIOURS[key], spec, end - timedelta(days=HISTORY_DAYS), end, PARTICIPANTS, seed=5)
            for key, (spec, _) in pilots.items()
        }
        for key, events in history_batches(histories, history_window(stack.grace_seconds)):
            assert stack.post(pilots[key][1], events) == len(events)
        assert stack.post(hostile_key, _hostile_events(end)) == 4 * len(PAYLOADS)
        experiments = [e.key for spec, _ in pilots.values() for e in spec.experiments] + ["hostile-exp"]
        stack.wait(
            lambda: all(store.experiment_statistics(key).get(UNITS) for key in experiments),
            240,
            what="the worker to write every experiment's aggregates",
        )
        stack.wait(lambda: _caught_up(stack), 240, what="the worker to consume every posted event")
        offsets = GroupOffsets(stack.bootstrap, stack.namespace)
        try:
            dead = Topics(stack.namespace).dead_letter
            assert sum(end for _, end in offsets.positions((dead, p) for p in range(stack.partitions)).values()) == 0
        finally:
            offsets.close()
        names = {mk.key: name_of(mk, "en") for spec, _ in pilots.values() for e in spec.experiments for mk in e.metrics}
        prose = sorted(
            {
                text
                for spec, _ in pilots.values()
                for item in (spec, *spec.experiments, *(mk for e in spec.experiments for mk in e.metrics))
                for field in ("description", "hypothesis")
                for text in localized(getattr(item, field, "")).values()
                if text
            },
            key=len,
            reverse=True,
        )
        port = free_port()
        log = (tmp / "console.log").open("ab")
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
            assert console is not None
            if console.poll() is not None:
                raise AssertionError(f"the console exited with {console.returncode}: see {tmp / 'console.log'}")
            try:
                return httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 90, what="the console to answer /_stcore/health")
        store.close()
        yield Demo(url, stack, {**histories}, names, prose)
    finally:
        if console is not None:
            os.killpg(console.pid, signal.SIGTERM)
            try:
                console.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(console.pid, signal.SIGKILL)
                console.wait()
        stack.stop()


@pytest.fixture(scope="module")
def browser(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrowserContext, list[str]]]:
    """Returns a headless Chromium whose reader prefers French, and every address it asked for."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run scripts/system-deps.sh (make test does)")
    requested: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            locale="fr-FR",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-quic",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
            ],
            viewport={"width": WIDTHS[0], "height": 1000},
        )
        context.on("request", lambda r: requested.append(r.url))
        try:
            yield context, requested
        finally:
            context.close()


def _settled(page: Page, title: str) -> bool:
    """Returns True once the page shows its title, the script has finished and every chart is drawn."""
    if title not in [t.strip() for t in page.locator("h1").all_inner_texts()]:
        return False
    if page.locator('[data-testid="stStatusWidget"]').count():
        return False
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    return bool(charts.locator("canvas, svg").count() >= charts.count())


def _sign_in(page: Page, url: str) -> None:
    """Signs in on the sign-in page, which speaks the browser's French, and waits for the portfolio (in the
    language remembered with the account, French until it chooses)."""
    page.goto(url)
    name = page.get_by_role("textbox", name="Nom")

    def portfolio() -> bool:
        return _settled(page, "Portefeuille") or _settled(page, "Portfolio")

    # A browser that signed in before keeps its session cookie, and opens on the portfolio.
    wait_until(lambda: name.is_visible() or portfolio(), 90, what="the sign-in form or the portfolio")
    if not portfolio():
        name.fill(ADMIN)
        page.get_by_role("textbox", name="Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
    wait_until(portfolio, 90, what="the portfolio after signing in")


def _speak(page: Page, language: str) -> None:
    """Chooses the console's language in the sidebar, waiting until the menu speaks it."""
    portfolio = "Portefeuille" if language == "fr" else "Portfolio"
    nav = page.locator('[data-testid="stSidebarNav"]')
    if not nav.get_by_text(portfolio, exact=True).count():
        page.locator('[data-testid="stSidebar"]').get_by_text(NAMES[language], exact=True).click()

    def spoken() -> bool:
        return (
            bool(nav.get_by_text(portfolio, exact=True).count())
            and not page.locator('[data-testid="stStatusWidget"]').count()
        )

    wait_until(spoken, 90, what=f"the console in {NAMES[language]}")


def _open(page: Page, link: str) -> None:
    """Opens a page from the sidebar (shown at this width), waiting until it is drawn."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(link, exact=True).click()
    wait_until(lambda: _settled(page, link), 90, what=f"the {link} page to render")


def _choose(page: Page, label: str, option: str, title: str) -> None:
    """Chooses an option of a select box by its label, waiting until the page is drawn again."""
    page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True)).first.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_until(lambda: _settled(page, title), 90, what=f"{title} with {option}")


def _text(page: Page) -> str:
    """Returns the text of the page's main block as a reader sees it (without `plain`'s invisible joiners)."""
    return page.locator('[data-testid="stMain"]').inner_text().replace(WORD_JOINER, "")


def _screenshot(page: Page, path: Path) -> None:
    """Saves the whole page: Streamlit scrolls its main block, not the document, so the viewport is made as
    high as the content for the picture, then given back its height."""
    size = page.viewport_size or {"width": WIDTHS[0], "height": 1000}
    heights: list[int] = []

    def laid_out() -> bool:
        # The content's height, once two looks in a row agree (charts and tables take a moment to size).
        heights.append(int(page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")))
        return len(heights) >= 3 and heights[-1] == heights[-2] == heights[-3]

    wait_until(laid_out, 20, interval=0.3, what=f"{path.name}: the page's height to settle")
    height = heights[-1]
    page.set_viewport_size({"width": size["width"], "height": min(height + 40, 16000)})
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def _check(page: Page, where: str, width: int, keys: set[str], prose: Sequence[str] = ()) -> None:
    """Fails on an exception shown, an element wider than the viewport, or an unreadable text."""
    errors = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not errors, f"{where}: {errors}"
    # What a reader can see: in a collapsed expander an element keeps the size it was last drawn at.
    overflow = page.evaluate(
        """(width) => [...document.querySelectorAll(
              '[data-testid="stDataFrame"], [data-testid="stVegaLiteChart"], [data-testid="stTable"], '
              + '[data-testid="stMetric"], [data-testid="stVegaLiteChart"] svg, [data-testid="stVegaLiteChart"] canvas'
            )]
            .filter(e => !e.closest('details:not([open])') && e.checkVisibility())
            .map(e => [e.getAttribute('data-testid') || e.tagName, e.getBoundingClientRect()])
            .filter(([, r]) => r.width > 0 && r.height > 0 && (r.left < -1 || r.right > width + 1))
            .map(([what, r]) => `${what} ${Math.round(r.left)}..${Math.round(r.right)}`)""",
        width,
    )
    assert overflow == [], f"{where}: clipped (viewport {width} px): {overflow}"
    scroll = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollWidth")
    assert scroll <= width + 1, f"{where}: the page scrolls sideways ({scroll} px for {width})"
    text = _text(page)
    for passage in prose:  # a spec's own words, shown as written
        text = text.replace(passage, " ")
    assert unreadable(text, keys) == [], f"{where}: {unreadable(text, keys)}"


def _pace(histories: dict[str, list[dict[str, Any]]], pilot: str, experiment: str, today: date) -> float:
    """Returns the simulator's arrivals a day of the experiment: its participants first exposed (event time)
    over the last `EXPOSURE_WINDOW_DAYS` complete days."""
    first: dict[str, date] = {}
    for ev in histories[pilot]:
        if ev["type"] == "exposure" and ev["payload"]["experiment"] == experiment:
            day = datetime.fromisoformat(ev["occurred_at"].replace("Z", "+00:00")).astimezone(UTC).date()
            first.setdefault(ev["participant_id"], day)
    since = today - timedelta(days=EXPOSURE_WINDOW_DAYS)
    return sum(since <= d < today for d in first.values()) / EXPOSURE_WINDOW_DAYS


#: What a rendered payload would add to a page: its image or link, its bold, its red text, its icon, its emoji.
RENDERED = (
    f'img[src*="{REMOTE}"], a[href*="{REMOTE}"], b, span[aria-label="home icon"], '
    '[class*="ColoredText"], [class*="ColoredBackground"]'
)
_FIND = """(root, selector) => [...root.querySelectorAll(selector)]
    .filter(e => !e.closest('[data-testid="stSidebar"]'))
    .filter(e => !e.matches('[class*="Colored"]') || /alarm/.test(e.textContent))
    .map(e => e.outerHTML.slice(0, 160))"""


def _payloads_are_text(page: Page, where: str) -> None:
    """Fails when a payload was rendered (an image, a link, bold, red text, an icon or an emoji from it) in
    the page or its tooltips."""
    rendered = page.locator('[data-testid="stMain"]').evaluate(_FIND, RENDERED)
    assert rendered == [], f"{where}: payload rendered: {rendered}"
    assert "😄" not in _text(page), f"{where}: an emoji short code was rendered"
    # The tooltips of Markdown lines: the scorecard's details, which quote themes, ideas and districts.
    for icon in page.locator('[data-testid="stMain"] [data-testid="stMarkdown"] [data-testid="stTooltipIcon"]').all():
        if not icon.is_visible():  # in a collapsed expander
            continue
        icon.hover()
        tooltip = page.locator('[data-testid="stTooltipContent"]')
        wait_until(lambda tooltip=tooltip: tooltip.count() > 0, 10, what=f"{where}: a tooltip")
        inside = tooltip.first.evaluate(_FIND, RENDERED)
        assert inside == [], f"{where}: payload rendered in a tooltip: {inside}"
        assert "😄" not in tooltip.first.inner_text(), f"{where}: an emoji short code was rendered in a tooltip"
        page.mouse.move(0, 0)


def test_every_page_in_both_languages_at_desktop_and_phone_widths(
    demo: Demo, browser: tuple[BrowserContext, list[str]]
) -> None:
    context, requested = browser
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    keys = {key for key, name in demo.names.items() if name != key}
    page = context.new_page()
    _sign_in(page, demo.url)
    for language in ("fr", "en"):
        _speak(page, language)
        for french, english, file in PAGES:
            title = french if language == "fr" else english
            _open(page, title)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 1000})
                wait_until(lambda title=title: _settled(page, title), 60, what=f"{title} at {width} px")
                _screenshot(page, SCREENSHOTS / f"{language}-{width}-{file}.png")
                _check(page, f"{title} ({language}, {width} px)", width, keys, demo.prose)
                if file == "decision-board" and width == 390:
                    headline = page.locator("h3").first.bounding_box()
                    choice = page.locator('[data-testid="stSelectbox"]').first.bounding_box()
                    assert headline and choice and headline["y"] < choice["y"], "the recommendation comes first"
            page.set_viewport_size({"width": WIDTHS[0], "height": 1000})
    remote = sorted({u for u in requested if urlparse(u).hostname not in ("127.0.0.1", "localhost", None)})
    assert remote == [], f"the browser asked remote hosts: {remote}"


def test_the_decision_boards_pace_is_the_simulators_arrivals_in_event_time(
    demo: Demo, browser: tuple[BrowserContext, list[str]]
) -> None:
    context, _ = browser
    page = context.new_page()
    _sign_in(page, demo.url)
    _speak(page, "en")
    _open(page, "Decision board")
    _choose(page, "Experiment", "Neighbourhood bike-share · A guided first ride (Running)", "Decision board")
    text = _text(page)
    match = re.search(r"at ([\d,.]+) a day \(over the last days of first exposures\)", text)
    assert match, text[:2000]
    shown = float(match.group(1).replace(",", ""))
    truth = _pace(demo.histories, "bike-share", "onboarding-v2", datetime.now(UTC).date())
    assert truth > 0
    assert abs(shown - truth) <= 0.2 * truth, f"pace shown {shown}, simulator's arrivals {truth:.1f} a day"
    # The forest plot is as high as its rows: one per comparison, axes and legend beside.
    store = demo.stack.store()
    rows = [c for c in board.evaluate(store, "onboarding-v2").comparisons if c.effect is not None]
    store.close()
    forest = page.locator('[data-testid="stVegaLiteChart"]').first.bounding_box()
    assert forest and forest["height"] >= report.FOREST_ROW * len(rows) + report.FOREST_FRAME - 2, forest


def test_citizens_and_specs_payloads_are_shown_as_plain_text_and_the_language_is_remembered(
    demo: Demo, browser: tuple[BrowserContext, list[str]]
) -> None:
    context, requested = browser
    first = context.new_page()
    _sign_in(first, demo.url)
    _speak(first, "en")
    # A reload keeps the session (its cookie), and the language with it.
    first.reload()
    wait_until(lambda: _settled(first, "Portfolio"), 90, what="the portfolio in English after a reload")
    first.close()
    # Another browser (no cookie): the sign-in page speaks the browser's French; once signed in, the
    # account's English.
    context.clear_cookies()
    page = context.new_page()
    _sign_in(page, demo.url)
    assert _settled(page, "Portfolio"), "the language chosen was not remembered with the account"
    pilot = "Hostile :red[alarm] :material/home: :smile: (hostile)"
    for link, label, option in (
        ("Decision board", "Experiment", "Hostile :red[alarm] :material/home: :smile: · hostile-exp (Running)"),
        ("Pilot", "Pilot", pilot),
        ("Experiment", "Experiment", "Hostile :red[alarm] :material/home: :smile: · hostile-exp (Running)"),
        ("Citizens' voice", "Pilot", pilot),
    ):
        _open(page, link)
        _choose(page, label, option, link)
        text = " ".join(_text(page).split())
        _payloads_are_text(page, link)
        if link == "Decision board":
            assert "Hostile :red[alarm] :material/home: :smile:" in text, "the pilot's name is not as written"
        if link in ("Decision board", "Experiment"):
            assert PAYLOADS["html"] in text, f"{link}: the hypothesis is not shown as written"
        if link == "Pilot":
            assert f"{PAYLOADS['link']} {PAYLOADS['image']}" in text, "the description is not shown as written"
        _screenshot(page, SCREENSHOTS / f"payloads-{link.lower().replace(' ', '-').replace(chr(39), '')}.png")
    remote = sorted({u for u in requested if REMOTE in u})
    assert remote == [], f"a payload made the browser ask {remote}"
