"""How the console writes numbers, effects and outcomes (the report's wording, shared)."""

from __future__ import annotations

import math

from experiments.report import OUTCOME_COLOURS, signed

OUTCOME_ICONS = {"go": "✅", "no-go": "⛔", "iterate": "🔁", "keep running": "⏳"}
STATUS_ICONS = {"met": "✅", "missed": "❌", "no target": "➖", "no data": "❔"}

__all__ = ["OUTCOME_COLOURS", "OUTCOME_ICONS", "STATUS_ICONS", "count", "days", "outcome_badge", "share", "signed"]


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
    """Returns an outcome with its icon, as a table cell shows it."""
    if outcome is None:
        return "—"
    return f"{OUTCOME_ICONS.get(outcome, '')} {outcome}".strip()
