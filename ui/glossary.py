"""The glossary: each statistical or lab term the console uses, in a sentence or two, on its own page and
in the tooltip of every place the term appears (`help_for`), with a link to the page."""

from __future__ import annotations

from typing import NamedTuple

from experiments.i18n import N_
from ui.language import _


class Term(NamedTuple):
    """A term of the glossary: its anchor on the glossary page, its name and what it means."""

    anchor: str
    name: str
    meaning: str


TERMS: tuple[Term, ...] = (
    Term(
        "recommendation",
        N_("Recommendation"),
        N_(
            "What the pre-registered decision rules say today: go (fund the next stage with the treatment named), "
            "no-go (stop), iterate (rework and test again) or keep running (not enough evidence yet). The board "
            "decides; the recommendation only applies the rules written before the pilot started."
        ),
    ),
    Term(
        "primary-metric",
        N_("Primary metric"),
        N_(
            "The one measure the experiment was set up to improve, chosen before it started. Go needs the "
            "treatment to beat the control on it by at least the minimum effect."
        ),
    ),
    Term(
        "guardrail",
        N_("Guardrail"),
        N_(
            "A measure that must not get worse (calls to the help desk, complaints...). A guardrail that worsens "
            "clearly beyond its tolerance blocks go, whatever the primary metric says."
        ),
    ),
    Term(
        "minimum-effect",
        N_("Minimum effect"),
        N_(
            "The smallest improvement of the primary metric worth funding, set before the pilot started. The "
            "whole interval of the effect must lie beyond it for go."
        ),
    ),
    Term(
        "interval",
        N_("Interval"),
        N_(
            "The range of effects compatible with the data: at 95 %, the true effect lies inside 95 times out of "
            "100. An interval that contains 0 means no clear difference yet."
        ),
    ),
    Term(
        "always-valid-interval",
        N_("Always-valid interval"),
        N_(
            "An interval of the sequential test that may be looked at every day without raising the risk of a "
            "false discovery: the experiment may stop as soon as it excludes 0. A fixed-horizon interval holds "
            "only once the planned sample is reached."
        ),
    ),
    Term(
        "credible-interval",
        N_("Credible interval"),
        N_("The Bayesian analysis' range in which the effect lies with the stated probability (95 %, say)."),
    ),
    Term(
        "p-value",
        N_("p-value"),
        N_(
            "How surprising the difference seen would be if the treatment changed nothing. Below alpha (often "
            "0.05), the difference is called significant. It is not the probability that the treatment works."
        ),
    ),
    Term(
        "alpha",
        N_("Alpha"),
        N_(
            "The risk of a false discovery the lab accepted before the experiment: with alpha at 5 %, one "
            "experiment in twenty where nothing changes would still look like a success."
        ),
    ),
    Term(
        "multiple-comparisons",
        N_("Correction for multiple comparisons"),
        N_(
            "Looking at many metrics and variants at once multiplies the chances of a false discovery. Holm's "
            "and Benjamini-Hochberg's corrections raise the p-values to keep that risk at alpha."
        ),
    ),
    Term(
        "chance-to-win",
        N_("Chance to beat the control"),
        N_("The Bayesian analysis' probability that the treatment does better than the control."),
    ),
    Term(
        "srm",
        N_("Sample ratio mismatch (SRM)"),
        N_(
            "The participants are not split between variants as planned (say 60/40 instead of 50/50). Assignment "
            "or logging is broken, so no comparison of the experiment can be trusted until it is fixed."
        ),
    ),
    Term(
        "cuped",
        N_("CUPED"),
        N_(
            "A way to make intervals narrower by taking into account what each participant did before the "
            "experiment (Deng et al., 2013). It changes no effect on average, only the precision."
        ),
    ),
    Term(
        "planned-sample",
        N_("Planned sample"),
        N_(
            "How many participants the experiment needs, decided before it started from the minimum effect. The "
            "pace is the number of participants first exposed per day over the last seven days."
        ),
    ),
    Term(
        "nps",
        N_("Net Promoter Score (NPS)"),
        N_(
            'From the question "Would you recommend this service?" scored 0 to 10: the share of promoters (9-10) '
            "minus the share of detractors (0-6), from -100 to +100."
        ),
    ),
    Term(
        "sus",
        N_("System Usability Scale (SUS)"),
        N_("Ten questions on ease of use, scored 0 to 100; 68 is an average usability, above 80 is good."),
    ),
    Term(
        "bass-forecast",
        N_("Bass forecast"),
        N_(
            "A model of how a new service spreads: some citizens come on their own (innovation), others because "
            "people around them use it (imitation), until the pool of citizens who could adopt it (the market "
            "potential) is used up. It needs adoption to have started slowing before it can say where it will stop."
        ),
    ),
    Term(
        "retention",
        N_("Retention by weekly cohort"),
        N_("Of the citizens who first used the service in a given week, the share still active k weeks later."),
    ),
    Term(
        "scorecard",
        N_("Scorecard"),
        N_(
            "The pilot's targets on three axes, set before it started: economic (participants, cost per active "
            "participant, forecast), social (districts reached, gap between them) and human (NPS, SUS, ratings)."
        ),
    ),
)
BY_ANCHOR = {t.anchor: t for t in TERMS}
#: The glossary page's address (relative to the console's other pages).
PAGE = "glossary"


def help_for(anchor: str) -> str:
    """Returns a tooltip (Markdown) for the term: what it means, and a link to the glossary."""
    term = BY_ANCHOR[anchor]
    return _("{meaning}\n\n[Glossary: {name}]({page}#{anchor})").format(
        meaning=_(term.meaning), name=_(term.name), page=PAGE, anchor=anchor
    )
