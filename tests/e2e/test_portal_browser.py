"""The citizens' portal end to end, in headless Chromium, on the real stack: the Kafka broker, a worker, the
portal (`rhizome portal`) and the console (`rhizome console`), one stack for the whole module.

- a citizen joins a pilot, proposes an idea, votes, answers the SUS questionnaire and withdraws consent;
  the console then shows exactly those figures, counted by the worker from the portal's events;
- duplicates merged by the lab: the idea's voters are the distinct voters of both;
- axe-core (npm, package-lock.json) on every portal page in both languages at 390 and 1440 px: no
  serious or critical violation; a screenshot of each under test-output/portal/;
- a keyboard-only walk of the join and idea flows;
- bad input on the live portal: hostile texts stored and shown as plain text, oversized and empty texts
  refused naming the field, the 31st vote in a minute refused with 429, a form without its token with 403.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import select

from experiments import board, moderation
from experiments import formatting as fmt
from experiments import models as m
from experiments.console_setup import ensure_bootstrap_admin
from experiments.feedback import sus_score
from experiments.readmodels import ideas as idea_reads
from experiments.readmodels import voice as voice_reads
from experiments.specs import parse_pilot_spec
from experiments.store import Store
from tests.support.ports import free_port
from tests.support.stack import ROOT, Stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.kafka]

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-output" / "portal"
ADMIN, PASSWORD = "e2e-lab", "an e2e lab password"
PILOT = "bike-share"
SUS_ANSWERS = [5, 2, 4, 1, 5, 2, 4, 1, 4, 2]
WIDTHS = (390, 1440)
BLOCKING = ("serious", "critical")


@dataclass
class PortalStack:
    stack: Stack
    store: Store
    portal: str
    console: str
    browser: Browser

    def wait(self, check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
        return self.stack.wait(check, timeout, what=what)

    def idea(self, title: str) -> m.FeedbackText | None:
        with self.store.session() as s:
            row = s.scalar(select(m.FeedbackText).where(m.FeedbackText.kind == "idea", m.FeedbackText.title == title))
            if row is not None:
                s.expunge(row)
            return row


def _spawn(stack: Stack, tmp: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = (tmp / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args],
        env=stack.env(),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _healthy(url: str, proc: subprocess.Popen[bytes], name: str) -> Callable[[], bool]:
    def check() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}")
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[PortalStack]:
    """Returns the running stack: two pilots (one being tested, one open for ideas), a published decision,
    a worker, the portal, the console with a lab account, and Chromium."""
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/system-deps.sh"
    assert AXE.exists(), "axe-core is missing: run `npm ci` (make test does)"
    tmp = tmp_path_factory.mktemp("portal-e2e")
    stack = Stack(tmp, kafka_bootstrap, f"sqlite:///{tmp / 'rhizome.db'}", f"t{uuid.uuid4().hex[:12]}")
    store = stack.store()
    spec = (ROOT / "examples" / "bike-share.yaml").read_text()
    store.apply_pilot(parse_pilot_spec(spec), actor="lab", reason="registered")
    store.apply_pilot(parse_pilot_spec((ROOT / "examples" / "parking-finder.yaml").read_text()))
    decision = board.record_decision(
        store,
        board.take_snapshot(store, board.evaluate(store, "onboarding-v2")).id,
        "iterate",
        "internal rationale",
        ["Ana"],
        recorded_by="ana",
    )
    moderation.publish_summary(
        store,
        decision.id,
        "Vous avez trouvé le premier trajet difficile : nous le simplifions.",
        "You found the first ride hard: we are making it simpler.",
        actor="ana",
    )
    ensure_bootstrap_admin(store, ADMIN, PASSWORD)
    stack.start_worker()
    portal_port, console_port = free_port(), free_port()
    portal = _spawn(stack, tmp, "portal", "portal", "--port", str(portal_port))
    console = _spawn(stack, tmp, "console", "console", "--port", str(console_port))
    portal_url, console_url = f"http://127.0.0.1:{portal_port}", f"http://127.0.0.1:{console_port}"
    try:
        wait_until(_healthy(f"{portal_url}/healthz", portal, "the portal"), 60, what="the portal")
        wait_until(_healthy(f"{console_url}/_stcore/health", console, "the console"), 90, what="the console")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                yield PortalStack(stack, store, portal_url, console_url, browser)
            finally:
                browser.close()
    finally:
        _stop(console)
        _stop(portal)
        stack.stop()
        store.close()


class Citizen:
    """A citizen using the live portal over HTTP (forms and cookies as a browser sends them)."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30, headers={"Accept-Language": "fr"})

    def token(self, page: str = f"/pilots/{PILOT}") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(page).text)
        assert found, page
        return found.group(1)

    def post(self, path: str, **form: str) -> httpx.Response:
        return self.client.post(path, data={"csrf": self.token(), **form})

    def join(self) -> None:
        assert self.post(f"/pilots/{PILOT}/join").status_code == 303

    def propose(self, title: str, text: str) -> httpx.Response:
        return self.post("/ideas", pilot=PILOT, title=title, text=text, theme="mobility", district="north")

    def vote(self, idea: str, score: int = 1) -> int:
        return self.post(f"/ideas/{idea}/vote", score=str(score)).status_code


def _context(live: PortalStack, language: str, width: int, **options: Any) -> Any:
    return live.browser.new_context(
        viewport={"width": width, "height": 900}, locale="fr-FR" if language == "fr" else "en-GB", **options
    )


def test_a_citizens_portal_actions_reach_the_console_exactly_through_kafka_and_the_worker(live: PortalStack) -> None:
    context = _context(live, "fr", 1440)
    page = context.new_page()
    page.goto(f"{live.portal}/pilots/{PILOT}")
    page.get_by_role("button", name="Participer à cette expérimentation").click()
    code = page.locator(".code").inner_text()
    assert re.fullmatch(r"(\d{4} ){5}\d{4}", code), code
    page.get_by_role("link", name="Continuer").click()
    page.get_by_role("link", name="Proposer une idée").click()
    page.get_by_label("Titre").fill("Carte mensuelle pour les étudiants")
    page.get_by_label("Votre idée").fill("Un abonnement mensuel à prix réduit pour les étudiants.")
    page.get_by_label("Thème").select_option("mobility")
    page.get_by_label("Quartier (facultatif)").select_option("north")
    page.get_by_role("button", name="Envoyer mon idée").click()
    assert "Votre idée a bien été reçue" in page.locator(".notice").inner_text()
    idea = live.wait(lambda: live.idea("Carte mensuelle pour les étudiants"), "the worker to store the idea")
    assert (idea.theme, idea.district) == ("mobility", "north")
    page.goto(f"{live.portal}/ideas/{idea.event_id}")
    page.get_by_role("button", name="Je soutiens cette idée").click()
    page.goto(f"{live.portal}/pilots/{PILOT}/questionnaire")
    for i, answer in enumerate(SUS_ANSWERS, start=1):
        page.locator(f'input[name="sus{i}"][value="{answer}"]').check()
    page.locator('input[name="nps"][value="9"]').check()
    page.locator('input[name="rating"][value="4"]').check()
    page.get_by_role("button", name="Envoyer mes réponses").click()
    assert "Vos réponses ont bien été reçues" in page.locator(".notice").inner_text()
    page.get_by_role("button", name="Quitter cette expérimentation (retirer mon consentement)").click()
    assert "Vous avez quitté" in page.locator(".notice").inner_text()
    context.close()

    expected_sus = sus_score(SUS_ANSWERS)

    def counted() -> bool:
        figures = voice_reads.voice_figures(live.store, PILOT)
        card = idea_reads.idea_cards(live.store, [idea.event_id])[idea.event_id]
        return (
            figures.sus.respondents == 1
            and figures.promoters == 1
            and figures.rating.respondents == 1
            and figures.ideas == 1
            and card.voters == 1
        )

    live.wait(counted, "the worker to count the citizen's idea, vote and answers")
    figures = voice_reads.voice_figures(live.store, PILOT)
    assert figures.sus.mean == expected_sus and figures.nps == 100.0 and figures.rating.mean == 4.0
    card = idea_reads.idea_cards(live.store, [idea.event_id])[idea.event_id]
    assert (card.votes, card.voters) == (1, 1)

    # The console's Citizens' voice page shows those very figures.
    console = live.browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    console.goto(live.console)
    console.get_by_role("textbox", name="Name").fill(ADMIN)
    console.get_by_role("textbox", name="Password").fill(PASSWORD)
    console.get_by_role("button", name="Sign in").click()
    console.locator('[data-testid="stSidebarNav"] a[href$="citizens-voice"]').click()

    def metrics() -> list[str]:
        values = console.locator('[data-testid="stMetricValue"]').all_inner_texts()
        return values if len(values) >= 5 else []

    values = wait_until(metrics, 60, what="the console's Citizens' voice figures")
    shown = " | ".join(values)
    # As the console writes them (experiments.formatting), in the browser's English.
    assert values[:3] == [fmt.signed_number(100.0, "en", 2), fmt.number(expected_sus, "en", 0), "4 / 5"], shown
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    console.screenshot(path=str(SCREENSHOTS / "console-citizens-voice.png"), full_page=True)
    console.context.close()


def test_a_merged_ideas_votes_are_its_distinct_voters(live: PortalStack) -> None:
    first = live.wait(lambda: live.idea("Carte mensuelle pour les étudiants"), "the first idea")
    proposer = Citizen(live.portal)
    proposer.join()
    assert proposer.propose("Abonnement étudiant", "Un abonnement pour les étudiants, par mois.").status_code == 303
    second = live.wait(lambda: live.idea("Abonnement étudiant"), "the duplicate idea")
    voters = {"b": (first, second), "c": (first,), "d": (second,)}
    for ideas in voters.values():
        citizen = Citizen(live.portal)
        citizen.join()
        for idea in ideas:
            assert citizen.vote(idea.event_id) == 303
    # The first citizen voted for the first idea too (the first test): four distinct voters in all.

    def voters_of() -> tuple[int, int]:
        cards = idea_reads.idea_cards(live.store, [first.event_id, second.event_id])
        return cards[first.event_id].voters, cards[second.event_id].voters

    live.wait(lambda: voters_of() == (3, 2), "the worker to count the votes of both ideas")
    moderation.merge(live.store, second.event_id, first.event_id, actor=ADMIN)
    live.wait(lambda: voters_of() == (4, 0), "the worker to recount the merged votes, each voter once")
    page = _context(live, "fr", 390).new_page()
    page.goto(f"{live.portal}/ideas/{first.event_id}")
    assert "4 votants" in page.locator(".figures").inner_text()
    assert "Abonnement étudiant" in page.locator("#dupes + ul").inner_text()
    page.context.close()


def _axe(page: Page) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text())
    result: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map(
            v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))"""
    )
    return result


def test_every_portal_page_passes_axe_in_both_languages_on_a_phone_and_a_desktop(live: PortalStack) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    first = live.wait(lambda: live.idea("Carte mensuelle pour les étudiants"), "the first idea")
    failures = []
    for language in ("fr", "en"):
        for width in WIDTHS:
            # The CSP forbids every script: axe is injected past it, as a test tool.
            context = _context(live, language, width, bypass_csp=True)
            page = context.new_page()
            visits: list[tuple[str, Callable[[Page], Any]]] = [
                ("home", lambda page: page.goto(live.portal)),
                ("pilot", lambda page: page.goto(f"{live.portal}/pilots/{PILOT}")),
                ("open-call", lambda page: page.goto(f"{live.portal}/pilots/parking-finder")),
                ("timeline", lambda page: page.goto(f"{live.portal}/pilots/{PILOT}/timeline")),
                ("ideas", lambda page: page.goto(f"{live.portal}/ideas?sort=recent")),
                ("idea", lambda page: page.goto(f"{live.portal}/ideas/{first.event_id}")),
                ("privacy", lambda page: page.goto(f"{live.portal}/privacy")),
                ("restore", lambda page: page.goto(f"{live.portal}/restore")),
                ("me-unknown", lambda page: page.goto(f"{live.portal}/me")),
                ("join-first", lambda page: page.goto(f"{live.portal}/ideas/new?pilot={PILOT}")),
                ("welcome", lambda page: page.locator("form[action$='/join'] button").click()),
                ("idea-form", lambda page: page.goto(f"{live.portal}/ideas/new?pilot={PILOT}")),
                ("idea-form-refused", lambda page: page.locator("form.stacked button[type=submit]").click()),
                ("questionnaire", lambda page: page.goto(f"{live.portal}/pilots/{PILOT}/questionnaire")),
                ("me", lambda page: page.goto(f"{live.portal}/me")),
                ("not-found", lambda page: page.goto(f"{live.portal}/pilots/nowhere")),
            ]
            for name, visit in visits:
                if name == "idea-form-refused":
                    # Past the browser's own checks, so the server's refusal page is the one shown.
                    page.evaluate("document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))")
                visit(page)
                page.wait_for_load_state()
                assert page.locator("html").get_attribute("lang") == language, (name, language)
                page.screenshot(path=str(SCREENSHOTS / f"{language}-{width}-{name}.png"), full_page=True)
                blocking = [v for v in _axe(page) if v["impact"] in BLOCKING]
                if blocking:
                    failures.append((language, width, name, blocking))
                # Nothing wider than the viewport (a phone never scrolls sideways).
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= width, (language, width, name, scroll)
            context.close()
    assert failures == []


def _tab_to(page: Page, matches: str, limit: int = 80) -> None:
    """Presses Tab until the focused element matches the CSS selector (a keyboard-only user's way)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement && document.activeElement.matches({matches!r})"):
            return
    raise AssertionError(f"{matches} was never reached with the Tab key")


def test_the_join_and_idea_flows_work_with_the_keyboard_alone(live: PortalStack) -> None:
    page = _context(live, "en", 390).new_page()
    page.goto(f"{live.portal}/pilots/{PILOT}")
    _tab_to(page, "form[action$='/join'] button")
    page.keyboard.press("Enter")
    page.wait_for_url("**/welcome**")
    _tab_to(page, "main a.button")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/pilots/{PILOT}**")
    _tab_to(page, "a[href^='/ideas/new']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/ideas/new**")
    _tab_to(page, "#title")
    page.keyboard.type("Typed with the keyboard")
    page.keyboard.press("Tab")
    page.keyboard.type("Bike racks near every school.")
    _tab_to(page, "#theme")
    page.keyboard.press("ArrowDown")
    _tab_to(page, "form.stacked button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/me**")
    idea = live.wait(lambda: live.idea("Typed with the keyboard"), "the keyboard idea to be stored")
    assert (idea.text, idea.theme) == ("Bike racks near every school.", "mobility")
    page.context.close()


def test_bad_input_on_the_live_portal(live: PortalStack) -> None:
    citizen = Citizen(live.portal)
    citizen.join()
    hostile = "<script>document.title='owned'</script> **gras** [lien](http://evil.example) <img src=x>"
    assert citizen.propose("# <i>Titre</i>", hostile).status_code == 303
    stored = live.wait(lambda: live.idea("# <i>Titre</i>"), "the hostile idea to be stored")
    assert stored.text == hostile
    page = _context(live, "fr", 1440).new_page()
    page.goto(f"{live.portal}/ideas/{stored.event_id}")
    assert page.title() != "owned" and page.locator("main script, main img, main i").count() == 0
    assert page.locator(".citizen-text").first.inner_text() == hostile
    assert page.locator("h1").inner_text() == "# <i>Titre</i>"
    page.context.close()

    oversized = citizen.propose("Trop long", "x" * 4001)
    assert oversized.status_code == 422 and "Votre idée : compte 4\u202f001 caractères" in oversized.text
    empty = citizen.propose("Vide", "  ")
    assert empty.status_code == 422 and "Votre idée : est vide" in empty.text
    nul = citizen.propose("Nul\x00", "texte")
    assert nul.status_code == 422 and "Titre : contient un caractère de contrôle (U+0000)" in nul.text
    assert citizen.client.post(f"/pilots/{PILOT}/join", data={}).status_code == 403
    codes = [citizen.vote(stored.event_id, 1 if i % 2 else -1) for i in range(31)]
    assert codes == [303] * 30 + [429]
