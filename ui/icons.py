"""The console's badges: Material Symbols (served by Streamlit itself, so they show without any font of
the browser's) and Streamlit's Markdown colours for outcomes, verdicts and criteria."""

from __future__ import annotations

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
REASON_ICONS = {
    "srm": ":red[:material/report:]",
    "primary": ":material/target:",
    "guardrail": ":material/shield:",
    "error": ":orange[:material/warning:]",
    "sample": ":material/groups:",
    "scorecard": ":material/fact_check:",
}
VERDICT_ICONS = {
    "better": ":green[:material/thumb_up:]",
    "worse": ":red[:material/thumb_down:]",
    "unclear": ":gray[:material/radio_button_unchecked:]",
    "error": ":orange[:material/warning:]",
}
