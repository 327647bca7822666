"""The pilot's money beside its timeline, on the Pilot and Decision board pages: the stage's budget, what
has been spent of it to date, and the cost per active participant."""

from __future__ import annotations

from datetime import date

import streamlit as st

from experiments import formatting as fmt
from experiments.i18n import Language
from experiments.registry import PilotSpec
from ui.language import _


def spent_share(pilot: PilotSpec, today: date) -> float | None:
    """Returns the share of the stage's budget spent by `today` when it is spent evenly from the pilot's
    start to its next decision (None when either date is unknown)."""
    if pilot.start is None or pilot.next_decision is None or pilot.next_decision <= pilot.start:
        return None
    elapsed = (min(today, pilot.next_decision) - pilot.start).days
    return max(0.0, min(1.0, elapsed / (pilot.next_decision - pilot.start).days))


def show(pilot: PilotSpec, active: int, language: Language, today: date | None = None) -> None:
    """Draws the stage's budget, the spend to date and the cost per active participant."""
    st.subheader(_("Budget"))
    budget, spent, cost = st.columns(3)
    if pilot.budget is None:
        st.caption(_("No budget is registered for this stage."))
        return
    share = spent_share(pilot, today or date.today())
    budget.metric(_("Budget of the stage"), fmt.money(pilot.budget, pilot.currency, language))
    spent.metric(
        _("Spent to date"),
        fmt.money(None if share is None else pilot.budget * share, pilot.currency, language),
        help=_(
            "The budget spread evenly from the pilot's start to its next decision: {share} of the stage has run."
        ).format(share=fmt.share(share, language)),
    )
    cost.metric(
        _("Cost per active participant"),
        fmt.money(pilot.budget / active if active else None, pilot.currency, language),
        help=_("The stage's budget divided by the {active} participants active so far.").format(
            active=fmt.count(active, language)
        ),
    )
