"""The decision board on SQLite and PostgreSQL: evaluation, snapshots with their digest, decisions
(append-only, refused without rationale or members), the status rule, history, the bootstrap admin
and the exported report."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import delete, update

from experiments import board, report
from experiments import formatting as fmt
from experiments import models as m
from experiments.accounts import add_user, authenticate
from experiments.console_setup import ensure_bootstrap_admin
from experiments.i18n import LANGUAGES, Language
from experiments.preferences import account_language, remember_language
from experiments.report import headline, reason_texts, render_html, render_pdf
from experiments.results import experiment_results
from experiments.store import Store, StoreError, canonical_json
from tests.support.readable import unreadable
from tests.support.seed import ExperimentPlan, seed_pilot

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
#: poppler-utils (scripts/system-deps.sh): `make test` installs it.
PDFTOPPM, PDFTOTEXT = shutil.which("pdftoppm") or "pdftoppm", shutil.which("pdftotext") or "pdftotext"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    seed_pilot(
        s,
        "bikes",
        [ExperimentPlan("trial", effect=0.5, participants=1500), ExperimentPlan("second", participants=300)],
        days=4,
        participants=200,
        now=NOW,
    )
    yield s
    s.close()


def _decide(store: Store, experiment: str = "trial", **changes: object) -> board.RecordedDecision:
    shot = board.take_snapshot(store, board.evaluate(store, experiment, as_of=NOW))
    fields: dict[str, object] = {
        "outcome": "go",
        "rationale": "Clear gain, no harm.",
        "members": ["Ana", "Ben"],
        "conditions": "",
        "recorded_by": "ana",
    }
    fields.update(changes)
    return board.record_decision(store, shot.id, **fields)  # type: ignore[arg-type]


def test_evaluation_carries_the_engines_results_and_a_recommendation_with_reasons(store: Store) -> None:
    ev = board.evaluate(store, "trial", as_of=NOW)
    expected = experiment_results(store, "trial")
    assert ev.results["analysis"] == expected["analysis"]
    assert [c.effect for c in ev.comparisons] == [r["effect"] for r in expected["analysis"]["comparisons"]]
    assert ev.exposure.units == sum(v["units"] for v in expected["variants"].values())
    assert ev.recommendation.outcome in ("go", "no-go", "iterate", "keep running")
    assert ev.recommendation.reasons
    assert {axis.name for axis in ev.evidence.scorecard} == {"economic", "social", "human"}
    assert ev.forecast is None or len(ev.forecast.days) == board.FORECAST_POINTS


def test_a_snapshot_stores_exactly_what_was_shown_with_the_sha256_of_its_canonical_json(store: Store) -> None:
    ev = board.evaluate(store, "trial", as_of=NOW)
    shot = board.take_snapshot(store, ev)
    content = board.snapshot_content(ev)
    assert shot.digest == hashlib.sha256(canonical_json(content)).hexdigest()
    stored = board.snapshot(store, shot.id)
    assert stored.content == content
    assert stored.digest == shot.digest
    assert board.verify_snapshot(store, shot.id)
    assert content["recommendation"]["outcome"] == ev.recommendation.outcome
    with store.session() as s:
        row = s.get(m.ResultsSnapshot, shot.id)
        assert row is not None
        row.content = {**row.content, "as_of": "tampered"}
    assert not board.verify_snapshot(store, shot.id)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"outcome": "maybe"}, "outcome == 'maybe'"),
        ({"outcome": "keep running"}, "outcome == 'keep running'"),
        ({"rationale": "   "}, "rationale == ''"),
        ({"members": ["", "  "]}, "members == []"),
        ({"members": ""}, "members == []"),
        ({"recorded_by": ""}, "recorded_by == ''"),
    ],
)
def test_a_decision_is_refused_with_the_field_named(store: Store, changes: dict[str, object], field: str) -> None:
    with pytest.raises(StoreError, match=re.escape(field)):
        _decide(store, **changes)
    assert board.decision_history(store, "bikes") == ()


def test_a_decision_against_an_unknown_snapshot_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="snapshot == 999"):
        board.record_decision(store, 999, "go", "why", ["Ana"], "", "ana")


def test_a_decision_closes_a_stopped_experiment_and_leaves_a_running_one_running(store: Store) -> None:
    interim = _decide(store, "trial", outcome="iterate")
    assert store.experiment("trial").status == "running"
    store.set_status("trial", "stopped", actor="lab")
    final = _decide(store, "trial", outcome="go", members="Ana\nBen\n\nCarla")
    assert store.experiment("trial").status == "decided"
    assert final.members == ("Ana", "Ben", "Carla")
    change = store.plan_history("bikes", "trial")[-1]
    assert (change.field, change.new, change.actor) == ("status", "decided", "ana")
    assert change.reason == f"board decision {final.id}: go"
    correction = _decide(store, "trial", outcome="no-go", rationale="Costs were underestimated.")
    assert store.experiment("trial").status == "decided"
    history = board.decision_history(store, "bikes", "trial")
    assert [d.id for d in history] == [correction.id, final.id, interim.id]
    assert history[0].digest == board.snapshot(store, correction.snapshot_id).digest
    assert board.decision_history(store, "bikes", "second") == ()


def test_a_draft_experiment_cannot_be_decided(store: Store) -> None:
    with store.session() as s:
        s.execute(update(m.Experiment).where(m.Experiment.key == "second").values(status="draft"))
    with pytest.raises(StoreError, match="draft"):
        _decide(store, "second")


def test_decisions_are_append_only(store: Store) -> None:
    decision = _decide(store)
    with pytest.raises(Exception, match="append-only"), store.session() as s:
        s.execute(update(m.Decision).where(m.Decision.id == decision.id).values(outcome="no-go"))
    with pytest.raises(Exception, match="append-only"), store.session() as s:
        s.execute(delete(m.Decision).where(m.Decision.id == decision.id))
    assert board.decision_history(store, "bikes")[0].outcome == "go"


def test_the_bootstrap_admin_is_created_only_on_a_store_without_accounts(store: Store) -> None:
    account = ensure_bootstrap_admin(store, "demo-admin", "demo password 1")
    assert account is not None and account.role == "admin"
    assert ensure_bootstrap_admin(store, "demo-admin", "another password") is None
    assert authenticate(store, "demo-admin", "demo password 1") == account
    assert authenticate(store, "demo-admin", "another password") is None


def test_no_bootstrap_admin_when_an_account_exists(store: Store) -> None:
    add_user(store, "lab-lead", "a lab password", "lab")
    assert ensure_bootstrap_admin(store, "demo-admin", "demo password 1") is None
    assert authenticate(store, "demo-admin", "demo password 1") is None


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_report_is_self_contained_and_carries_the_decision_and_digest(store: Store, language: Language) -> None:
    store.set_status("trial", "stopped", actor="lab")
    decision = _decide(store, rationale="Clear gain <on> trips & no harm.")
    shot = board.snapshot(store, decision.snapshot_id)
    page = render_html(shot.content, shot.digest, decision, language)
    assert f'<html lang="{language}">' in page
    assert "<script" not in page and 'src="http' not in page and 'href="http' not in page
    assert page.count("<svg") == 2
    assert shot.digest in page
    assert "Clear gain &lt;on&gt; trips &amp; no harm." in page
    assert html.escape(headline(shot.content, language)) in page
    for reason in reason_texts(shot.content, language):
        assert html.escape(reason) in page
    pdf = render_pdf(shot.content, shot.digest, decision, language)
    assert pdf.startswith(b"%PDF")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_pdf_report_renders_to_png_pages_nothing_clipped_nothing_raw(tmp_path: Path, language: Language) -> None:
    """The PDF in each language, turned into PNG pages by poppler's pdftoppm (kept under test-output/report
    to be looked at) and into text by pdftotext: no None, nan, unformatted fraction or vocabulary key in
    the French text, and every page keeps its white margins (no table or chart runs off the page)."""
    store = Store(f"sqlite:///{tmp_path / 'report.db'}")
    store.migrate()
    seed_pilot(store, "bikes", [ExperimentPlan("trial", effect=0.5, participants=1500)], days=9, now=NOW)
    ev = board.evaluate(store, "trial", as_of=NOW)
    content = board.snapshot_content(ev)
    pdf = tmp_path / f"report-{language}.pdf"
    pdf.write_bytes(render_pdf(content, board.digest_of(content), None, language))
    out = ROOT / "test-output" / "report"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"report-{language}-*.png"):
        old.unlink()
    subprocess.run([PDFTOPPM, "-r", "50", "-png", str(pdf), str(out / f"report-{language}")], check=True)
    pages = sorted(out.glob(f"report-{language}-*.png"))
    assert pages
    for page in pages:
        with Image.open(page) as image:
            grey = image.convert("L")
            width, height = grey.size
            margin = int(width * 0.03)
            for box in ((0, 0, margin, height), (width - margin, 0, width, height)):
                assert grey.crop(box).getextrema()[0] > 245, f"{page.name}: something runs into the margin"
    text = subprocess.run([PDFTOTEXT, "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    keys = {*fmt.OUTCOMES, *fmt.ROLES, *fmt.ENGINES, *fmt.STATUSES} - {"go", "no-go", "pilot"}
    assert unreadable(text, keys if language == "fr" else ()) == []
    said = report.summary(content, language)
    flat = " ".join(text.split())
    assert " ".join(said.recommendation.split()) in flat
    assert " ".join(said.tested.split()) in flat


def test_an_accounts_language_is_kept_and_a_language_not_of_the_product_refused(store: Store) -> None:
    add_user(store, "ana", "a long password", "board")
    assert account_language(store, "ana") is None
    remember_language(store, "ana", "en")
    assert account_language(store, "ana") == "en"
    with pytest.raises(StoreError, match="language == 'de'"):
        remember_language(store, "ana", "de")
    assert account_language(store, "ana") == "en"
