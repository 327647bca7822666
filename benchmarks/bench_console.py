"""Console render times with 50 pilots and 200 experiments in the store, in French and in English (goal:
under a second a page).

Seeds a SQLite store (or the database given) with `tests.support.seed.seed_portfolio`: every
experiment has its aggregates per partition and district and 21 days of history by day of first
exposure; every pilot its daily adoption, retention cohorts and feedback. Each page is then rendered
with Streamlit's AppTest, signed in as an admin, in each language:

- cold: the figures' cache emptied first, so every query and analysis runs;
- warm: the same page again, figures from the cache (what a board member clicking around sees).

The baseline, measured in the same run, is the sign-in page: Streamlit's own cost of a run,
without any read of the store. The table is printed and written to `bench-output/console.json`.

    python -m benchmarks.bench_console [--pilots 50] [--experiments 200] [--runs 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.testing.v1 import AppTest

from experiments.accounts import Account, add_user
from experiments.store import Store
from tests.support.seed import seed_portfolio

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "ui" / "app.py"
OUTPUT = ROOT / "bench-output" / "console.json"
PAGES = ("portfolio", "pilot", "experiment", "voice", "board", "admin", "glossary")
LANGUAGES = ("fr", "en")
GOAL_SECONDS = 1.0


def _app(signed_in: bool, language: str = "fr") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["language"] = language
    if signed_in:
        at.session_state["account"] = Account("bench-admin", "admin")
    return at.run()


def _timed(run: Callable[[], AppTest]) -> float:
    began = time.perf_counter()
    at = run()
    took = time.perf_counter() - began
    if at.exception:
        raise RuntimeError(f"the page raised: {at.exception[0].value}")
    return took


def measure(page: str, runs: int, language: str) -> dict[str, float]:
    """Returns the median cold and warm render times of a page in a language, in seconds."""
    cold, warm = [], []
    for _ in range(runs):
        at = _app(signed_in=True, language=language).switch_page(f"pages/{page}.py")
        st.cache_data.clear()
        cold.append(_timed(at.run))
        warm.append(_timed(at.run))
    return {"cold_s": statistics.median(cold), "warm_s": statistics.median(warm)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pilots", type=int, default=50)
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", help="an empty database to seed (default: a temporary SQLite file)")
    args = parser.parse_args(argv)

    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='rhizome-bench-')) / 'console.db'}"
    os.environ["RHIZOME_DATABASE_URL"] = url
    store = Store(url)
    store.migrate()
    began = time.perf_counter()
    seed_portfolio(store, pilots=args.pilots, experiments=args.experiments)
    add_user(store, "bench-admin", "bench password", "admin")
    seeded = time.perf_counter() - began
    with store.engine.connect() as conn:
        rows = {
            table: int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)
            for table in ("aggregates", "exposure_days", "daily_adoption", "feedback_stats")
        }
    store.close()
    print(f"seeded {args.pilots} pilots, {args.experiments} experiments in {seeded:.1f} s: {rows}")

    _app(signed_in=False)  # imports Streamlit, Altair and pandas once, outside the measures
    baseline = statistics.median(_timed(AppTest.from_file(str(APP), default_timeout=120).run) for _ in range(args.runs))
    results: dict[str, Any] = {
        f"{page} ({language})": measure(page, args.runs, language) for language in LANGUAGES for page in PAGES
    }

    print(f"\n{'page':<18}{'cold (s)':>10}{'warm (s)':>10}  goal < {GOAL_SECONDS:g} s")
    print(f"{'sign-in':<18}{baseline:>10.3f}{'':>10}  baseline: a run without any read of the store")
    for page, times in results.items():
        verdict = "ok" if times["cold_s"] < GOAL_SECONDS else "SLOW"
        print(f"{page:<18}{times['cold_s']:>10.3f}{times['warm_s']:>10.3f}  {verdict}")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(
        json.dumps(
            {
                "benchmark": "console page render times (Streamlit AppTest)",
                "database": url.split(":", 1)[0],
                "pilots": args.pilots,
                "experiments": args.experiments,
                "rows": rows,
                "seed_seconds": round(seeded, 2),
                "runs": args.runs,
                "goal_seconds": GOAL_SECONDS,
                "baseline": {"page": "sign-in", "seconds": round(baseline, 4)},
                "pages": {page: {k: round(v, 4) for k, v in times.items()} for page, times in results.items()},
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
