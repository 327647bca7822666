"""What the portal says in each language beyond its templates: the pilots' own texts from their specs, the
pre-registered decision rules in plain words, the standard SUS statements, stages and statuses.

Every sentence goes through the `portal` catalog (experiments/locale/<language>/LC_MESSAGES/portal.po);
figures and dates through `experiments.formatting`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from experiments import formatting as fmt
from experiments.i18n import Language, translations
from experiments.registry import ExperimentSpec, MetricSpec, PilotSpec


def N_(message: str) -> str:  # noqa: N802 (the name gettext tools look for)
    """Marks a message for extraction; it is translated where it is shown."""
    return message


#: The System Usability Scale's ten statements (Brooke, 1996), in the wording of the standard English
#: version; the French catalog gives those of its validated French version (F-SUS, Gronier and Baudet, 2021).
SUS_STATEMENTS: tuple[str, ...] = (
    N_("I think that I would like to use this system frequently."),
    N_("I found the system unnecessarily complex."),
    N_("I thought the system was easy to use."),
    N_("I think that I would need the support of a technical person to be able to use this system."),
    N_("I found the various functions in this system were well integrated."),
    N_("I thought there was too much inconsistency in this system."),
    N_("I would imagine that most people would learn to use this system very quickly."),
    N_("I found the system very cumbersome to use."),
    N_("I felt very confident using the system."),
    N_("I needed to learn a lot of things before I could get going with this system."),
)
SUS_SCALE: tuple[str, ...] = (
    N_("Strongly disagree"),
    N_("Disagree"),
    N_("Neither agree nor disagree"),
    N_("Agree"),
    N_("Strongly agree"),
)
STAGE_NAMES = {"prototype": N_("Prototype"), "pilot": N_("Pilot"), "scale": N_("Scale")}
STAGE_MEANINGS = {
    "prototype": N_("An early version, open to ideas: tell us what it should do."),
    "pilot": N_("Being tested with volunteers: try it and tell us what you think."),
    "scale": N_("Rolled out to the whole city after the tests."),
}
IDEA_STATUS_NAMES = {
    "new": N_("New"),
    "under_review": N_("Under review"),
    "adopted": N_("Adopted"),
    "not_retained": N_("Not retained"),
    "done": N_("Done"),
}
OUTCOME_NAMES = {
    "go": N_("Go ahead to the next stage"),
    "no-go": N_("Stop"),
    "iterate": N_("Rework and test again"),
}
#: What the page says after an action (`?done=` names one: never a text of the address itself).
NOTICES = {
    "joined": N_("You joined this pilot. Thank you! You can leave it at any time."),
    "withdrawn": N_("You left this pilot: nothing you do from now on is counted for it."),
    "idea": N_("Your idea was received. It appears on the ideas board in a few seconds."),
    "vote": N_("Your vote was received. You can change it at any time: only your latest vote counts."),
    "comment": N_("Your comment was received. It appears below in a few seconds."),
    "report": N_("Thank you: the lab's moderators will look at it."),
    "answers": N_("Your answers were received. Thank you!"),
    "restored": N_("Welcome back: your contributions are yours again on this device."),
    "forgotten": N_("This device no longer knows who you are. Your code still gives you back your contributions."),
}
ROLE_NAMES = {
    "primary": N_("Main measure"),
    "guardrail": N_("Must not get worse"),
    "secondary": N_("Also followed"),
}


class Words:
    """The portal's sentences in one language."""

    def __init__(self, language: Language) -> None:
        self.language = language
        catalog = translations(language, "portal")
        self.gettext: Callable[[str], str] = catalog.gettext
        self.ngettext: Callable[[str, str, int], str] = catalog.ngettext

    def __call__(self, message: str, **values: Any) -> str:
        """Returns the message translated, with its `%(name)s` values filled in."""
        text = self.gettext(message)
        return text % values if values else text

    # --- the specs' own texts ---------------------------------------------------------------------

    def localized(self, value: Any) -> str:
        """Returns a text of a spec in this language: a bilingual text's (`.text(language)`), else as written."""
        text = getattr(value, "text", None)
        if callable(text):
            return str(text(self.language))
        return "" if value is None else str(value)

    def pilot_name(self, pilot: PilotSpec) -> str:
        return self.localized(pilot.name) or pilot.key

    def metric_name(self, metric: MetricSpec) -> str:
        """Returns the metric's name in this language; its key in words when the spec gives no name."""
        label = getattr(metric, "label", None)
        if callable(label):
            return str(label(self.language))
        name = self.localized(getattr(metric, "name", None))
        return name or metric.key.replace("_", " ").capitalize()

    def experiment_name(self, experiment: ExperimentSpec) -> str:
        name = self.localized(getattr(experiment, "name", None))
        return name or experiment.key.replace("-", " ").replace("_", " ").capitalize()

    # --- figures ----------------------------------------------------------------------------------

    def count(self, value: float | None) -> str:
        return fmt.count(value, self.language)

    def number(self, value: float | None, decimals: int = 1) -> str:
        return fmt.number(value, self.language, decimals)

    def share(self, value: float | None, decimals: int = 0) -> str:
        return fmt.share(value, self.language, decimals)

    def day(self, value: Any) -> str:
        return fmt.day(value, self.language, "long")

    def moment(self, value: Any) -> str:
        return fmt.moment(value, self.language)

    # --- the decision rules -----------------------------------------------------------------------

    def rules(self, pilot: PilotSpec) -> list[str]:
        """Returns the pilot's pre-registered decision rules as sentences a citizen reads."""
        rules = pilot.decision
        out: list[str] = []
        for exp in pilot.experiments:
            main = self.metric_name(exp.metric(exp.primary))
            if rules.minimum_effect > 0:
                effect = (
                    self.share(rules.minimum_effect, 1)
                    if exp.analysis.difference == "relative"
                    else self.number(rules.minimum_effect, 3)
                )
                out.append(
                    self(
                        N_("“%(metric)s” must improve by at least %(effect)s with the new version."),
                        metric=main,
                        effect=effect,
                    )
                )
            else:
                out.append(self(N_("“%(metric)s” must clearly improve with the new version."), metric=main))
            for guardrail in exp.guardrails:
                out.append(
                    self(N_("“%(metric)s” must not get worse."), metric=self.metric_name(exp.metric(guardrail.metric)))
                )
        if rules.min_active_participants is not None:
            out.append(
                self(
                    N_("At least %(count)s people must use the service."),
                    count=self.count(rules.min_active_participants),
                )
            )
        if rules.max_cost_per_active is not None:
            money = fmt.money(rules.max_cost_per_active, pilot.currency, self.language)
            out.append(self(N_("It must cost at most %(money)s per person using it."), money=money))
        if rules.min_adopters_forecast is not None:
            out.append(
                self(
                    N_("The forecast must show at least %(count)s users within %(days)s days."),
                    count=self.count(rules.min_adopters_forecast),
                    days=self.count(rules.forecast_horizon_days),
                )
            )
        if rules.min_district_reach is not None:
            out.append(
                self(
                    N_("It must reach at least %(share)s of the districts it targets."),
                    share=self.share(rules.min_district_reach),
                )
            )
        if rules.max_reach_gap is not None:
            out.append(
                self(
                    N_(
                        "In the least reached district, use must be at least %(share)s of what it is "
                        "in the most reached one."
                    ),
                    share=self.share(1 - rules.max_reach_gap),
                )
            )
        if rules.min_nps is not None:
            out.append(
                self(
                    N_(
                        "Users' willingness to recommend it (Net Promoter Score, from -100 to 100) "
                        "must be at least %(value)s."
                    ),
                    value=self.number(rules.min_nps, 0),
                )
            )
        if rules.min_sus is not None:
            out.append(
                self(
                    N_("Its ease of use (SUS score, out of 100) must be at least %(value)s."),
                    value=self.number(rules.min_sus, 0),
                )
            )
        if rules.min_rating is not None:
            out.append(
                self(
                    N_("Its average rating must be at least %(value)s out of 5."),
                    value=self.number(rules.min_rating, 1),
                )
            )
        return out


class MeasuredMetric(NamedTuple):
    """A metric as the pilot page explains it: its name, why it is measured and its role."""

    name: str
    description: str
    role: str


def measured(words: Words, experiment: ExperimentSpec) -> list[MeasuredMetric]:
    """Returns what an experiment measures and why, the main measure first, then those that must not get
    worse, then the others."""
    guardrails = {g.metric for g in experiment.guardrails}
    ranked = []
    for metric in experiment.metrics:
        role = (
            "primary" if metric.key == experiment.primary else "guardrail" if metric.key in guardrails else "secondary"
        )
        ranked.append((list(ROLE_NAMES).index(role), metric, role))
    ranked.sort(key=lambda item: item[0])
    return [
        MeasuredMetric(words.metric_name(metric), words.localized(metric.description), words(ROLE_NAMES[role]))
        for _, metric, role in ranked
    ]
