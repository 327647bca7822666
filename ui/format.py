"""How the console writes counts, shares, days and outcomes (effects are worded by `experiments.report`)."""

from __future__ import annotations

import math

#: Material Symbols (served by Streamlit itself, so they show without any font of the browser's).
OUTCOME_ICONS = {
    "go": ":material/check_circle:",
    "no-go": ":material/block:",
    "iterate": ":material/autorenew:",
    "keep running": ":material/hourglass_top:",
}
#: Streamlit's Markdown background colour of each outcome.
OUTCOME_BACKGROUNDS = {"go": "green", "no-go": "red", "iterate": "orange", "keep running": "blue"}
STATUS_ICONS = {
    "met": ":green[:material/check_circle:]",
    "missed": ":red[:material/cancel:]",
    "no target": ":gray[:material/remove:]",
    "no data": ":orange[:material/help:]",
}

__all__ = [
    "OUTCOME_BACKGROUNDS",
    "OUTCOME_ICONS",
    "STATUS_ICONS",
    "count",
    "days",
    "outcome_badge",
    "share",
]


def count(value: float | None) -> str:
    """Returns a count with thousands separators, "n/a" for None."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:,.0f}"


def share(value: float | None, decimals: int = 0) -> str:
    """Returns a share as a percentage: 0.081 -> "8 %"."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value * 100:.{decimals}f} %"


def days(value: float | None) -> str:
    """Returns days to go in words: "about 12 days", "reached" for 0, "unknown" for None."""
    if value is None:
        return "unknown (nobody is being exposed)"
    if value <= 0:
        return "reached"
    return f"about {math.ceil(value)} day{'s' if math.ceil(value) > 1 else ''}"


def outcome_badge(outcome: str | None) -> str:
    """Returns an outcome as a table cell shows it (cells draw text only: no icon)."""
    return "—" if outcome is None else outcome
