"""A seeded store for the console's AppTest tests, and a helper that signs in with a role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from experiments import models as m
from experiments.accounts import Account, add_user
from experiments.store import UNITS, Store
from tests.support.seed import ExperimentPlan, seed_pilot
from ui.text import WORD_JOINER

APP = Path(__file__).resolve().parents[3] / "ui" / "app.py"
PAGES = ("portfolio", "pilot", "experiment", "voice", "board", "admin")
PASSWORD = "correct horse battery"
#: Seconds a page may take in a test (the first run imports Altair and pandas).
TIMEOUT = 60


def seed_console(url: str) -> None:
    """Seeds two pilots with their figures and an account per role; the `alerts` experiment's split of
    participants is broken (twice the planned control), so its sample-ratio check fails."""
    store = Store(url)
    store.migrate()
    seed_pilot(
        store,
        "bike-share",
        [
            ExperimentPlan("onboarding", effect=0.4, participants=3000),
            ExperimentPlan("reminders", treatments=("early", "late"), engine="bayesian", correction="holm"),
        ],
        seed=3,
    )
    seed_pilot(store, "parking", [ExperimentPlan("alerts", effect=0.0, engine="sequential")], seed=4, participants=600)
    with store.session() as s:
        s.execute(
            update(m.Aggregate)
            .where(
                m.Aggregate.experiment_key == "alerts", m.Aggregate.metric == UNITS, m.Aggregate.variant == "control"
            )
            .values(n=m.Aggregate.n * 2)
        )
    for role in ("lab", "board", "admin"):
        add_user(store, f"{role}-user", PASSWORD, role)
    store.close()


@pytest.fixture(scope="session")
def seeded_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Returns the URL of a seeded SQLite store that tests only read (`seed_console`)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'rhizome.db'}"
    seed_console(url)
    return url


@pytest.fixture
def writable_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Returns the URL of a seeded store of the test's own (for pages that write), the console pointed at it."""
    url = f"sqlite:///{tmp_path / 'rhizome.db'}"
    seed_console(url)
    monkeypatch.setenv("RHIZOME_DATABASE_URL", url)
    return url


@pytest.fixture
def console(seeded_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Points the console's settings at the seeded store; returns its URL."""
    monkeypatch.setenv("RHIZOME_DATABASE_URL", seeded_url)
    yield seeded_url


def console_in(language: str = "en", script: Path = APP) -> AppTest:
    """Returns the console (or one page's script) in a language, not run yet. The product speaks French
    unless the reader asks otherwise; most tests read the English texts."""
    at = AppTest.from_file(str(script), default_timeout=TIMEOUT)
    at.session_state["language"] = language
    return at


def signed_in(role: str, language: str = "en") -> AppTest:
    """Returns the console after a run with an account of the role in the session."""
    at = console_in(language)
    at.session_state["account"] = Account(f"{role}-user", role)  # type: ignore[arg-type]
    return at.run()


def read(markdown: str) -> str:
    """Returns Markdown as a reader sees its text: `ui.text.plain`'s escapes and word joiners removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")


def open_page(at: AppTest, page: str) -> AppTest:
    """Returns the console showing the page, failing on any exception the page raised."""
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at
