"""The pilot spec file: parsing, validation with lines and fields, the JSON form, plan changes."""

from __future__ import annotations

import itertools
import json
import operator
import string
import time
from dataclasses import FrozenInstanceError, replace
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from experiments import specs
from experiments.i18n import LANGUAGES
from experiments.registry import (
    FIRST_DAY,
    LAST_DAY,
    TEXT_LANGUAGES,
    AnalysisPlan,
    DecisionRules,
    ExperimentSpec,
    Guardrail,
    Layer,
    LocalizedText,
    MetricSpec,
    PilotSpec,
)
from experiments.specs import (
    MAX_DEPTH,
    MAX_SPEC_BYTES,
    MAX_VALUES,
    PlanChange,
    SpecError,
    SpecIssue,
    experiment_from_dict,
    experiment_to_dict,
    parse_pilot_spec,
    pilot_changes,
    plan_changes,
    spec_from_dict,
    spec_to_dict,
    text_to_json,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bike-share.yaml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "pilot-spec.md"

# Line numbers in the tests below refer to this spec.
BASE = """\
pilot:
  key: bike-share
  name: Neighbourhood bike-share
experiments:
  - key: onboarding-v2
    variants: {control: 0.5, guided: 0.5}
    metrics:
      - {key: trip_completed, type: proportion, action: trip_completed, window_days: 7}
      - {key: ride_minutes, type: mean, action: ride}
    primary: trip_completed
"""


def _issues(text: str) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        parse_pilot_spec(text, "bike-share.yaml")
    return caught.value.issues


def _with(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def _pilot_lines(*lines: str) -> str:
    """Returns BASE with the lines added to the pilot, from line 4 on."""
    return BASE.replace(
        "Neighbourhood bike-share\n", "Neighbourhood bike-share\n" + "".join(f"  {line}\n" for line in lines)
    )


def _experiment_lines(*lines: str) -> str:
    return BASE + "".join(f"    {line}\n" for line in lines)


def _both(fr: str, en: str) -> LocalizedText:
    return LocalizedText(fr=fr, en=en)


def test_the_example_parses_to_the_expected_spec() -> None:
    week1 = _both(
        "Part des personnes qui utilisent encore le service la deuxième semaine (du 8e au 14e jour).",
        "Share of people still using the service in their second week (days 8 to 14).",
    )
    metrics = (
        MetricSpec(
            "trip_completed",
            "proportion",
            "trip_completed",
            7.0,
            name=_both("A fait un trajet", "Completed a trip"),
            description=_both(
                "Part des personnes qui font au moins un trajet complet dans les 7 jours après leur première visite.",
                "Share of people who complete at least one trip in the 7 days after their first visit.",
            ),
        ),
        MetricSpec(
            "ride_minutes",
            "mean",
            "ride",
            7.0,
            name=_both("Minutes à vélo", "Minutes of riding"),
            description=_both(
                "Minutes passées à vélo, par personne, dans les 7 jours après leur première visite.",
                "Minutes spent riding, per person, in the 7 days after their first visit.",
            ),
        ),
        MetricSpec(
            "minutes_per_trip",
            "ratio",
            "ride",
            7.0,
            "sum",
            "trip_completed",
            "count",
            name=_both("Minutes par trajet", "Minutes per trip"),
            description=_both(
                "Durée moyenne d'un trajet pendant la première semaine.",
                "How long a trip lasts on average during the first week.",
            ),
        ),
        MetricSpec(
            "week1_retention",
            "retention",
            "*",
            week=1,
            name=_both("Revenu la deuxième semaine", "Came back in week two"),
            description=week1,
        ),
        MetricSpec(
            "support_calls",
            "proportion",
            "support_call",
            7.0,
            higher_is_better=False,
            name=_both("A appelé l'assistance", "Called the help line"),
            description=_both(
                "Part des personnes qui appellent l'assistance pendant la première semaine. Moins, c'est mieux.",
                "Share of people who call the help line during their first week. Fewer is better.",
            ),
        ),
    )
    experiment = ExperimentSpec(
        key="onboarding-v2",
        name=_both("Une première sortie accompagnée", "A guided first ride"),
        hypothesis=_both(
            "Guider les nouveaux venus pendant leur première sortie aide plus de personnes à faire un "
            "trajet complet dès leur première semaine.",
            "Guiding newcomers through their first ride helps more people complete a trip in their first week.",
        ),
        salt="",
        variants=(("control", 0.5), ("guided", 0.5)),
        allocation=1.0,
        metrics=metrics,
        primary="trip_completed",
        secondary=("ride_minutes", "minutes_per_trip", "week1_retention"),
        guardrails=(Guardrail("support_calls", 0.0),),
        analysis=AnalysisPlan("frequentist", "relative", 0.05, "none"),
        minimum_detectable_effect=0.05,
        planned_sample=4000,
    )
    expected = PilotSpec(
        key="bike-share",
        name=_both("Vélos partagés de quartier", "Neighbourhood bike-share"),
        stage="pilot",
        consent="required",
        owner="mobility-lab@city.example",
        description=_both(
            "Des vélos électriques garés dans chaque quartier, que vous réservez depuis votre téléphone. "
            "Nous essayons le service avec vous pendant trois mois avant de décider s'il reste.",
            "Electric bikes parked in every neighbourhood, booked from your phone. We are trying the "
            "service with you for three months before deciding whether it stays.",
        ),
        budget=60000.0,
        currency="EUR",
        population=20000,
        districts=("north", "south", "east", "west", "centre"),
        segments=("district", "channel"),
        key_action="trip_completed",
        holdout=0.0,
        start=date(2026, 11, 1),
        next_decision=date(2027, 1, 15),
        experiments=(experiment,),
        decision=DecisionRules(
            minimum_effect=0.0,
            min_active_participants=500,
            max_cost_per_active=120.0,
            min_adopters_forecast=2000,
            forecast_horizon_days=365,
            min_district_reach=0.8,
            max_reach_gap=0.6,
            min_nps=0.0,
            min_sus=68.0,
            min_rating=3.5,
        ),
    )
    assert parse_pilot_spec(EXAMPLE.read_text(encoding="utf-8"), "bike-share.yaml") == expected


@pytest.mark.parametrize("example", sorted(EXAMPLE.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_text_of_the_demo_pilots_is_in_french_and_english(example: Path) -> None:
    spec = parse_pilot_spec(example.read_bytes(), example.name)
    texts = [spec.name, spec.description]
    for experiment in spec.experiments:
        texts += [experiment.name, experiment.hypothesis]
        texts += [text for metric in experiment.metrics for text in (metric.name, metric.description)]
    assert all(text.fr and text.en and not text.neutral for text in texts), texts


def test_the_interfaces_example_parses_with_defaults() -> None:
    spec = parse_pilot_spec(
        BASE.replace("    primary: trip_completed\n", "")
        + "    salt: ''\n    primary: trip_completed\n"
        + "    analysis: {engine: frequentist, difference: relative, alpha: 0.05}\n"
    )
    assert spec.stage == "pilot" and spec.consent == "required" and spec.holdout == 0.0
    assert spec.segments == ("district", "channel") and spec.decision == DecisionRules()
    (experiment,) = spec.experiments
    assert experiment.variants == (("control", 0.5), ("guided", 0.5))
    assert experiment.allocation == 1.0 and experiment.layer is None and experiment.analysis == AnalysisPlan()


def test_an_issue_reads_source_line_field_and_message() -> None:
    with pytest.raises(SpecError) as caught:
        parse_pilot_spec(_with("{control: 0.5, guided: 0.5}", "{control: 0.5, guided: 0.4}"), "bike-share.yaml")
    assert str(caught.value) == "bike-share.yaml:6: experiments[0].variants: weights sum to 0.9, must sum to 1"


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            _with("key: bike-share", "key: Bike_Share"),
            2,
            "pilot.key",
            "key == 'Bike_Share', must be lower-case",
        ),
        (_with("key: bike-share", "key: " + "b" * 65), 2, "pilot.key", "at most 64 characters"),
        (_with("name: Neighbourhood bike-share", "name: ''"), 3, "pilot.name", "must be a non-empty string"),
        (_with("  key: bike-share\n", ""), 1, "pilot.key", "key is missing"),
        (
            _with("key: onboarding-v2", "key: onboarding v2"),
            5,
            "experiments[0].key",
            "== 'onboarding v2', must be",
        ),
        (
            _with("guided: 0.5}", "'guided arm': 0.5}"),
            6,
            "experiments[0].variants.guided arm",
            "variant name == 'guided arm', must be letters",
        ),
        (
            _with("metrics:\n      - {key: trip_completed", "metrics:\n      - {key: trip/completed"),
            8,
            "experiments[0].metrics[0].key",
            "key == 'trip/completed'",
        ),
        (
            _pilot_lines("stage: pilott"),
            4,
            "pilot.stage",
            "stage == 'pilott', must be one of: prototype, pilot, scale",
        ),
        (
            _pilot_lines("consent: maybe"),
            4,
            "pilot.consent",
            "must be one of: required, collected_by_service",
        ),
        (
            _experiment_lines("analysis: {engine: freq}"),
            11,
            "experiments[0].analysis.engine",
            "engine == 'freq', must be one of",
        ),
        (
            _experiment_lines("analysis: {difference: ratio}"),
            11,
            "experiments[0].analysis.difference",
            "must be one of: relative, absolute",
        ),
        (
            _experiment_lines("analysis: {correction: bonferroni}"),
            11,
            "experiments[0].analysis.correction",
            "must be one of: none, holm, bh",
        ),
        (
            _experiment_lines("analysis: {alpha: 1}"),
            11,
            "experiments[0].analysis.alpha",
            "alpha == 1, must be in (0, 1)",
        ),
        (
            _experiment_lines("analysis: {alpha: 0}"),
            11,
            "experiments[0].analysis.alpha",
            "alpha == 0, must be in (0, 1)",
        ),
        (
            _experiment_lines("analysis:", "  alpha: 0.05", "  sequential_tuning: 0"),
            13,
            "experiments[0].analysis.sequential_tuning",
            "must be > 0",
        ),
        (
            _with("{control: 0.5, guided: 0.5}", "{control: 0, guided: 1}"),
            6,
            "experiments[0].variants.control",
            "weight of 'control' == 0, must be > 0",
        ),
        (
            _with("{control: 0.5, guided: 0.5}", "{control: 0.5, guided: 0.6}"),
            6,
            "experiments[0].variants",
            "weights sum to 1.1, must sum to 1",
        ),
        (
            _with("{control: 0.5, guided: 0.5}", "{control: 1.0}"),
            6,
            "experiments[0].variants",
            "variants has 1, must have at least 2",
        ),
        (
            _with("{control: 0.5, guided: 0.5}", "{control: 0.5, control: 0.5}"),
            6,
            "experiments[0].variants.control",
            "control is given twice",
        ),
        (
            _with("{control: 0.5, guided: 0.5}", "[[control, 0.5], [control, 0.5]]"),
            6,
            "experiments[0].variants[1]",
            "variant 'control' is declared twice",
        ),
        (
            _with("{control: 0.5, guided: 0.5}", "[control, guided]"),
            6,
            "experiments[0].variants[0]",
            "must be a [name, value] pair",
        ),
        (
            _experiment_lines("allocation: 0"),
            11,
            "experiments[0].allocation",
            "allocation == 0, must be in (0, 1]",
        ),
        (
            _experiment_lines("allocation: 1.5"),
            11,
            "experiments[0].allocation",
            "allocation == 1.5, must be in (0, 1]",
        ),
        (
            _with("primary: trip_completed", "primary: rides"),
            10,
            "experiments[0].primary",
            "primary == 'rides', must be one of the metrics: trip_completed, ride_minutes",
        ),
        (_with("    primary: trip_completed\n", ""), 5, "experiments[0].primary", "primary is missing"),
        (
            _experiment_lines("secondary: [ride_minutes, rides]"),
            11,
            "experiments[0].secondary[1]",
            "secondary[1] == 'rides', must be one of the metrics",
        ),
        (
            _experiment_lines("secondary: [trip_completed]"),
            11,
            "experiments[0].secondary",
            "must not list the primary metric",
        ),
        (
            _experiment_lines("guardrails: [rides]"),
            11,
            "experiments[0].guardrails[0]",
            "metric == 'rides', must be one of the metrics",
        ),
        (
            _experiment_lines("guardrails:", "  - {metric: ride_minutes, tolerance: -0.1}"),
            12,
            "experiments[0].guardrails[0].tolerance",
            "tolerance == -0.1, must be >= 0",
        ),
        (
            _experiment_lines("guardrails: [ride_minutes, ride_minutes]"),
            11,
            "experiments[0].guardrails[1]",
            "has a guardrail already",
        ),
        (
            _with(
                "{key: ride_minutes, type: mean, action: ride}",
                "{key: ride_minutes, type: ratio, action: ride}",
            ),
            9,
            "experiments[0].metrics[1].denominator",
            "denominator is missing, must be given for a ratio metric",
        ),
        (
            _with(
                "{key: ride_minutes, type: mean, action: ride}",
                "{key: ride_minutes, type: retention, action: '*'}",
            ),
            9,
            "experiments[0].metrics[1].week",
            "week is missing, must be given for a retention metric",
        ),
        (
            _with(
                "{key: ride_minutes, type: mean, action: ride}",
                "{key: ride_minutes, type: retention, action: ride, week: -1}",
            ),
            9,
            "experiments[0].metrics[1].week",
            "week == -1, must be >= 0",
        ),
        (
            _with(
                "{key: ride_minutes, type: mean, action: ride}",
                "{key: ride_minutes, type: mean, action: ride, week: 1}",
            ),
            9,
            "experiments[0].metrics[1].week",
            "must be left out: only retention metrics use it",
        ),
        (
            _with(
                "{key: ride_minutes, type: mean, action: ride}",
                "{key: ride_minutes, type: mean, action: ride, denominator: trips}",
            ),
            9,
            "experiments[0].metrics[1].denominator",
            "only ratio metrics use it",
        ),
        (
            _with(
                "{key: ride_minutes, type: mean, action: ride}",
                "{key: ride_minutes, type: mean, action: '*'}",
            ),
            9,
            "experiments[0].metrics[1].action",
            "action == '*', must be an action name",
        ),
        (
            _with(
                "{key: ride_minutes, type: mean, action: ride}",
                "{key: ride_minutes, type: median, action: ride}",
            ),
            9,
            "experiments[0].metrics[1].type",
            "type == 'median', must be one of: proportion, mean, ratio, retention",
        ),
        (
            _with("window_days: 7}", "window_days: 0}"),
            8,
            "experiments[0].metrics[0].window_days",
            "window_days == 0, must be > 0",
        ),
        (
            _with("window_days: 7}", "window_days: 7, covariate_days: 14}"),
            8,
            "experiments[0].metrics[0].covariate_days",
            "covariate_days == 14, must be left out: only mean metrics use it",
        ),
        (
            _with("action: ride}", "action: ride, covariate_days: 0}"),
            9,
            "experiments[0].metrics[1].covariate_days",
            "covariate_days == 0, must be > 0",
        ),
        (
            _with("action: ride}", "action: ride, higher_is_better: maybe}"),
            9,
            "experiments[0].metrics[1].higher_is_better",
            "must be true or false",
        ),
        (
            _with("      - {key: ride_minutes", "      - {key: trip_completed"),
            9,
            "experiments[0].metrics[1].key",
            "key == 'trip_completed', must be unique among the metrics",
        ),
        (
            _with("    metrics:\n", "    metrics: []\n    old_metrics:\n"),
            7,
            "experiments[0].metrics",
            "metrics == [], must define at least one metric",
        ),
        (
            _pilot_lines("holdout: 1"),
            4,
            "pilot.holdout",
            "holdout == 1, must be in [0, 1)",
        ),
        (
            _pilot_lines("districts: [north, south, north]"),
            4,
            "pilot.districts[2]",
            "district 'north' is listed twice",
        ),
        (
            _pilot_lines("districts: {north: 100, south: 0}"),
            4,
            "pilot.districts.south",
            "population of 'south' == 0, must be > 0",
        ),
        (
            _with(
                "  name: Neighbourhood bike-share\n",
                "  name: x\n  start: 2026-11-01\n  next_decision: 2026-10-01\n",
            ),
            5,
            "pilot.next_decision",
            "must be on or after start (2026-11-01)",
        ),
        (
            _pilot_lines("start: soon"),
            4,
            "pilot.start",
            "start == 'soon', must be a date (YYYY-MM-DD)",
        ),
        (
            _pilot_lines("budget: lots"),
            4,
            "pilot.budget",
            "budget == 'lots', must be a number",
        ),
        (
            _pilot_lines("currency: euro"),
            4,
            "pilot.currency",
            "must be a three-letter ISO 4217 code",
        ),
        (
            _pilot_lines("owner: 42"),
            4,
            "pilot.owner",
            "owner == 42, must be a string (quote it)",
        ),
        (
            _experiment_lines("planned_sample: 4000.5"),
            11,
            "experiments[0].planned_sample",
            "planned_sample == 4000.5, must be a whole number",
        ),
        (
            _experiment_lines("minimum_detectable_effect: -0.1"),
            11,
            "experiments[0].minimum_detectable_effect",
            "must be > 0",
        ),
        (
            _experiment_lines("layer: {name: onboarding, start: 0.6, end: 0.4}"),
            11,
            "experiments[0].layer.start",
            "start == 0.6, must be below end (0.4)",
        ),
        (
            _experiment_lines("layer: {name: onboarding, end: 1.5}"),
            11,
            "experiments[0].layer.end",
            "end == 1.5, must be in (0, 1]",
        ),
        (_experiment_lines("layer: {start: 0.5}"), 11, "experiments[0].layer.name", "name is missing"),
        (BASE + "decision: {min_sus: 120}\n", 11, "decision.min_sus", "min_sus == 120, must be in [0, 100]"),
        (
            BASE + "decision: {min_district_reach: 1.2}\n",
            11,
            "decision.min_district_reach",
            "must be in [0, 1]",
        ),
        (
            BASE + "decision: {min_active_participants: many}\n",
            11,
            "decision.min_active_participants",
            "must be a whole number",
        ),
        (
            BASE + BASE[BASE.index("  - key: onboarding-v2") :],
            11,
            "experiments[1].key",
            "key == 'onboarding-v2', must be unique: experiments[0] has it",
        ),
        (
            BASE + "colour: red\n",
            11,
            "colour",
            "unknown field 'colour', must be one of: pilot, experiments, decision",
        ),
        (
            _pilot_lines("colour: red"),
            4,
            "pilot.colour",
            "unknown field 'colour'",
        ),
        (_experiment_lines("colour: red"), 11, "experiments[0].colour", "unknown field 'colour'"),
        (
            _with("action: ride}", "action: ride, colour: red}"),
            9,
            "experiments[0].metrics[1].colour",
            "unknown field 'colour'",
        ),
        (
            _experiment_lines("analysis: {alpha: 0.05, power: 0.8}"),
            11,
            "experiments[0].analysis.power",
            "unknown field 'power'",
        ),
        (
            _experiment_lines("layer: {name: onboarding, size: 0.5}"),
            11,
            "experiments[0].layer.size",
            "unknown field 'size'",
        ),
        (
            _experiment_lines("guardrails: [{metric: ride_minutes, limit: 1}]"),
            11,
            "experiments[0].guardrails[0].limit",
            "unknown field 'limit'",
        ),
        (
            BASE + "decision:\n  minimum_effect: 0\n  go_if: always\n",
            13,
            "decision.go_if",
            "unknown field 'go_if'",
        ),
        (BASE + "  - key: [\n", 12, "yaml", "must be valid YAML"),
    ],
)
def test_each_rule_names_the_line_and_field(text: str, line: int, field: str, message: str) -> None:
    issues = _issues(text)
    assert any(i.line == line and i.field == field and message in i.message for i in issues), issues


def test_experiments_of_one_layer_must_not_overlap() -> None:
    second = (
        "  - key: onboarding-v3\n"
        "    variants: {control: 0.5, guided: 0.5}\n"
        "    metrics: [{key: trips, type: proportion, action: trip_completed}]\n"
        "    primary: trips\n"
    )
    text = _experiment_lines("layer: {name: onboarding, end: 0.5}") + second
    assert parse_pilot_spec(text + "    layer: {name: onboarding, start: 0.5}\n").experiments[1].layer == Layer(
        "onboarding", 0.5, 1.0
    )
    (issue,) = _issues(text + "    layer: onboarding\n")
    assert (issue.line, issue.field) == (16, "experiments[1].layer")
    assert issue.message == (
        "layer 'onboarding' range [0, 1) overlaps [0, 0.5) of experiment 'onboarding-v2', "
        "must not overlap another experiment of the layer"
    )


def test_every_issue_is_collected_in_line_order() -> None:
    text = (
        _with("key: bike-share", "key: Bike_Share")
        .replace("{control: 0.5, guided: 0.5}", "{control: 0.5, guided: 0.4}")
        .replace("primary: trip_completed", "primary: rides")
    )
    with pytest.raises(SpecError) as caught:
        parse_pilot_spec(text + "decision: {min_nps: 200}\n", "s.yaml")
    assert [(i.line, i.field) for i in caught.value.issues] == [
        (2, "pilot.key"),
        (6, "experiments[0].variants"),
        (10, "experiments[0].primary"),
        (11, "decision.min_nps"),
    ]
    assert len(str(caught.value).splitlines()) == 4


def test_an_empty_file_says_what_it_must_declare() -> None:
    assert (
        str(SpecError(_issues(""), "x.yaml"))
        == "x.yaml: pilot: the file is empty, must declare pilot: with key and name"
    )


def test_optional_forms_are_read() -> None:
    text = """\
pilot:
  key: bike-share
  name: Neighbourhood bike-share
  districts: {north: 5000, south: 4000}
  start: '2026-11-01'
experiments:
  - key: onboarding-v2
    variants: [[guided, 0.25], [control, 0.75]]
    layer: onboarding
    metrics:
      - &trips {key: trip_completed, type: proportion, action: trip_completed}
      - {<<: *trips, key: trips_14, window_days: 14}
    primary: trip_completed
    guardrails: [trips_14, {metric: trip_completed, tolerance: 0.02}]
"""
    spec = parse_pilot_spec(text)
    assert spec.districts == ("north", "south")
    assert spec.district_population == (("north", 5000), ("south", 4000))
    assert spec.start == date(2026, 11, 1)
    (experiment,) = spec.experiments
    assert experiment.variants == (("guided", 0.25), ("control", 0.75))
    assert experiment.layer == Layer("onboarding", 0.0, 1.0)
    assert experiment.metrics[1] == MetricSpec("trips_14", "proportion", "trip_completed", 14.0)
    assert experiment.guardrails == (Guardrail("trips_14", 0.0), Guardrail("trip_completed", 0.02))


def test_the_json_form_round_trips_even_through_a_store_that_sorts_keys() -> None:
    spec = parse_pilot_spec(EXAMPLE.read_text(encoding="utf-8"))
    stored = json.loads(json.dumps(spec_to_dict(spec), sort_keys=True))
    assert spec_from_dict(stored) == spec


def test_the_json_form_is_itself_a_valid_spec_file() -> None:
    spec = parse_pilot_spec(EXAMPLE.read_text(encoding="utf-8"))
    spec = replace(spec, district_population=(("north", 1), ("south", 2), ("east", 3), ("west", 4), ("centre", 5)))
    assert parse_pilot_spec(yaml.safe_dump(spec_to_dict(spec), sort_keys=True)) == spec


def test_a_bad_dict_is_reported_without_lines() -> None:
    data = spec_to_dict(parse_pilot_spec(BASE))
    data["experiments"][0]["analysis"]["alpha"] = 2
    with pytest.raises(SpecError) as caught:
        spec_from_dict(data, "store")
    assert str(caught.value) == "store: experiments[0].analysis.alpha: alpha == 2, must be in (0, 1)"
    with pytest.raises(SpecError) as caught:
        experiment_from_dict(data["experiments"][0], "store")
    assert str(caught.value) == "store: experiment.analysis.alpha: alpha == 2, must be in (0, 1)"


names = st.builds(
    operator.add,
    st.sampled_from(string.ascii_lowercase),
    st.text(string.ascii_lowercase + string.digits + "_-", max_size=11),
)
# Texts hold no control characters (the spec refuses them), lines only where prose may have them.
line_texts = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=30)
texts = st.text(st.characters(exclude_categories=("Cc", "Cs"), include_characters="\n\t"), max_size=30)
positive = st.floats(min_value=1e-6, max_value=3660, allow_nan=False)
days = st.dates(min_value=FIRST_DAY, max_value=LAST_DAY)


def localized(text: st.SearchStrategy[str]) -> st.SearchStrategy[LocalizedText]:
    """Returns texts without a language, or in French, English or both."""
    given = text.filter(bool)
    return st.one_of(
        text.map(lambda t: LocalizedText(neutral=t)),
        st.builds(LocalizedText, fr=given, en=given),
        st.builds(LocalizedText, fr=given),
        st.builds(LocalizedText, en=given),
    )


labels = localized(line_texts)
prose = localized(texts)
pilot_names = localized(line_texts.filter(str.strip))


@st.composite
def metric_specs(draw: st.DrawFn, key: str) -> MetricSpec:
    metric_type = draw(st.sampled_from(["proportion", "mean", "ratio", "retention"]))
    common = {
        "window_days": draw(positive),
        "higher_is_better": draw(st.booleans()),
        "description": draw(prose),
        "name": draw(labels),
    }
    if metric_type == "mean":
        common["aggregate"] = draw(st.sampled_from(["sum", "count"]))
        common["covariate_days"] = draw(st.none() | positive)
    if metric_type == "ratio":
        common["aggregate"] = draw(st.sampled_from(["sum", "count"]))
        common["denominator"] = draw(names)
        common["denominator_aggregate"] = draw(st.sampled_from(["sum", "count"]))
    if metric_type == "retention":
        common["week"] = draw(st.integers(0, 52))
    action = draw(st.just("*") | names) if metric_type == "retention" else draw(names)
    return MetricSpec(key=key, type=metric_type, action=action, **common)  # type: ignore[arg-type]


@st.composite
def experiment_specs(draw: st.DrawFn, key: str, layer: str) -> ExperimentSpec:
    variant_names = draw(st.lists(names, min_size=2, max_size=4, unique=True))
    parts = draw(st.lists(st.integers(1, 9), min_size=len(variant_names), max_size=len(variant_names)))
    metric_keys = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    metrics = tuple(draw(metric_specs(k)) for k in metric_keys)
    others = metric_keys[1:]
    bounds = draw(st.lists(st.floats(0, 1), min_size=2, max_size=2, unique=True).map(sorted))
    return ExperimentSpec(
        key=key,
        variants=tuple((name, part / sum(parts)) for name, part in zip(variant_names, parts, strict=True)),
        metrics=metrics,
        primary=metric_keys[0],
        name=draw(labels),
        hypothesis=draw(prose),
        salt=draw(line_texts),
        allocation=draw(st.floats(1e-6, 1.0)),
        layer=draw(st.none() | st.just(Layer(layer, bounds[0], bounds[1]))),
        secondary=tuple(draw(st.lists(st.sampled_from(others), unique=True))) if others else (),
        guardrails=tuple(
            Guardrail(metric, draw(st.floats(0, 1)))
            for metric in (draw(st.lists(st.sampled_from(metric_keys), unique=True)))
        ),
        analysis=AnalysisPlan(
            engine=draw(st.sampled_from(["frequentist", "sequential", "bayesian"])),
            difference=draw(st.sampled_from(["relative", "absolute"])),
            alpha=draw(st.floats(1e-6, 0.5)),
            correction=draw(st.sampled_from(["none", "holm", "bh"])),
            sequential_tuning=draw(st.integers(1, 10**6)),
            relative_interval=draw(st.sampled_from(["gbstats", "log"])),
        ),
        minimum_detectable_effect=draw(st.none() | positive),
        planned_sample=draw(st.none() | st.integers(1, 10**7)),
        planned_days=draw(st.none() | st.integers(1, 1000)),
    )


@st.composite
def pilot_specs(draw: st.DrawFn) -> PilotSpec:
    districts = draw(st.lists(line_texts.filter(str.strip), unique=True, max_size=5))
    with_population = draw(st.booleans())
    start = draw(st.none() | days)
    experiment_count = draw(st.integers(0, 3))
    return PilotSpec(
        key=draw(names.map(lambda name: name.replace("_", "-"))),
        name=draw(pilot_names),
        stage=draw(st.sampled_from(["prototype", "pilot", "scale"])),
        consent=draw(st.sampled_from(["required", "collected_by_service"])),
        owner=draw(line_texts),
        description=draw(prose),
        budget=draw(st.none() | st.floats(0, 1e9)),
        currency=draw(st.text(string.ascii_uppercase, min_size=3, max_size=3)),
        population=draw(st.none() | st.integers(1, 10**8)),
        districts=tuple(districts),
        district_population=tuple((d, draw(st.integers(1, 10**6))) for d in districts) if with_population else (),
        segments=tuple(draw(st.lists(names, unique=True, max_size=3))),
        key_action=draw(st.none() | names),
        holdout=draw(st.floats(0, 1, exclude_max=True)),
        start=start,
        next_decision=None if start is None else draw(st.none() | st.dates(min_value=start, max_value=LAST_DAY)),
        experiments=tuple(draw(experiment_specs(f"e{i}", f"layer-{i}")) for i in range(experiment_count)),
        decision=DecisionRules(
            minimum_effect=draw(st.floats(-1, 1)),
            min_active_participants=draw(st.none() | st.integers(0, 10**6)),
            max_cost_per_active=draw(st.none() | st.floats(0, 1e4)),
            min_adopters_forecast=draw(st.none() | st.integers(0, 10**6)),
            forecast_horizon_days=draw(st.integers(1, 3650)),
            min_district_reach=draw(st.none() | st.floats(0, 1)),
            max_reach_gap=draw(st.none() | st.floats(0, 1)),
            min_nps=draw(st.none() | st.floats(-100, 100)),
            min_sus=draw(st.none() | st.floats(0, 100)),
            min_rating=draw(st.none() | st.floats(1, 5)),
        ),
    )


# Each example is a whole pilot with up to three experiments: 40 of them keep the suite fast.
@settings(max_examples=40)
@given(pilot_specs())
def test_round_trip_through_json_is_identity(spec: PilotSpec) -> None:
    restored = spec_from_dict(json.loads(json.dumps(spec_to_dict(spec), sort_keys=True)))
    assert restored == spec
    assert pilot_changes(spec, restored) == []
    assert all(plan_changes(a, b) == [] for a, b in zip(spec.experiments, restored.experiments, strict=True))
    assert all(experiment_from_dict(json.loads(json.dumps(experiment_to_dict(e)))) == e for e in spec.experiments)


def test_applying_the_same_file_twice_changes_nothing() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    first, second = parse_pilot_spec(text), parse_pilot_spec(text)
    stored = spec_from_dict(json.loads(json.dumps(spec_to_dict(first))))
    assert pilot_changes(stored, second) == []
    assert [plan_changes(a, b) for a, b in zip(stored.experiments, second.experiments, strict=True)] == [[]]


def _example_experiment() -> ExperimentSpec:
    return parse_pilot_spec(EXAMPLE.read_text(encoding="utf-8")).experiments[0]


@pytest.mark.parametrize(
    ("change", "field", "old", "new", "locked"),
    [
        (
            {"variants": (("control", 0.5), ("tour", 0.5))},
            "variants",
            ["control", "guided"],
            ["control", "tour"],
            True,
        ),
        (
            {"variants": (("guided", 0.5), ("control", 0.5))},
            "variants",
            ["control", "guided"],
            ["guided", "control"],
            True,
        ),
        ({"variants": (("control", 0.4), ("guided", 0.6))}, "weights", [0.5, 0.5], [0.4, 0.6], True),
        ({"salt": "2026"}, "salt", "", "2026", True),
        ({"allocation": 0.5}, "allocation", 1.0, 0.5, True),
        ({"primary": "support_calls"}, "primary", "trip_completed", "support_calls", True),
        ({"analysis": AnalysisPlan(alpha=0.1)}, "analysis.alpha", 0.05, 0.1, True),
        ({"analysis": AnalysisPlan(engine="bayesian")}, "analysis.engine", "frequentist", "bayesian", True),
        (
            {"analysis": AnalysisPlan(difference="absolute")},
            "analysis.difference",
            "relative",
            "absolute",
            True,
        ),
        ({"analysis": AnalysisPlan(correction="holm")}, "analysis.correction", "none", "holm", False),
        ({"analysis": AnalysisPlan(sequential_tuning=100)}, "analysis.sequential_tuning", 5000, 100, False),
        (
            {"layer": Layer("onboarding", 0, 0.5)},
            "layer",
            None,
            {"name": "onboarding", "start": 0, "end": 0.5},
            False,
        ),
        (
            {"secondary": ("ride_minutes",)},
            "secondary",
            ["ride_minutes", "minutes_per_trip", "week1_retention"],
            ["ride_minutes"],
            False,
        ),
        ({"guardrails": ()}, "guardrails", [{"metric": "support_calls", "tolerance": 0.0}], [], False),
        ({"minimum_detectable_effect": 0.1}, "minimum_detectable_effect", 0.05, 0.1, False),
        ({"planned_sample": 5000}, "planned_sample", 4000, 5000, False),
        ({"planned_days": 28}, "planned_days", None, 28, False),
        ({"hypothesis": "h"}, "hypothesis", text_to_json(_example_experiment().hypothesis), "h", False),
        (
            {"name": {"fr": "Sortie guidée"}},
            "name",
            {"fr": "Une première sortie accompagnée", "en": "A guided first ride"},
            {"fr": "Sortie guidée"},
            False,
        ),
        (
            {"analysis": AnalysisPlan(relative_interval="gbstats")},
            "analysis.relative_interval",
            "log",
            "gbstats",
            True,
        ),
    ],
)
def test_plan_changes_name_the_field_and_whether_it_is_locked(
    change: dict[str, object], field: str, old: object, new: object, locked: bool
) -> None:
    before = _example_experiment()
    changes = plan_changes(before, replace(before, **change))  # type: ignore[arg-type]
    assert changes == [PlanChange(field, old, new, locked)]


def test_changing_the_primary_metric_definition_is_locked_and_others_are_not() -> None:
    before = _example_experiment()
    primary, ride, *rest = before.metrics
    after = replace(before, metrics=(replace(primary, window_days=14.0), replace(ride, window_days=14.0), *rest))
    changes = plan_changes(before, after)
    assert [(c.field, c.locked) for c in changes] == [
        ("metrics.trip_completed", True),
        ("metrics.ride_minutes", False),
    ]
    assert changes[0].old["window_days"] == 7.0 and changes[0].new["window_days"] == 14.0  # type: ignore[index]


def test_removing_a_metric_is_a_change_to_none() -> None:
    before = _example_experiment()
    after = replace(before, metrics=before.metrics[:-1], guardrails=())
    removed = [c for c in plan_changes(before, after) if c.field == "metrics.support_calls"]
    assert removed == [PlanChange("metrics.support_calls", removed[0].old, None, False)]


def test_a_new_experiment_records_its_whole_plan() -> None:
    experiment = _example_experiment()
    changes = plan_changes(None, experiment)
    assert all(c.old is None for c in changes)
    assert {c.field for c in changes} >= {
        "variants",
        "weights",
        "salt",
        "allocation",
        "primary",
        "analysis.alpha",
    }
    assert {c.field for c in changes if c.locked} == {
        "variants",
        "weights",
        "salt",
        "allocation",
        "primary",
        "metrics.trip_completed",
        "analysis.alpha",
        "analysis.engine",
        "analysis.difference",
        "analysis.relative_interval",
    }


def test_plans_of_different_experiments_are_not_compared() -> None:
    experiment = _example_experiment()
    with pytest.raises(ValueError, match=r"new.key == 'other', must be the key of the old plan"):
        plan_changes(experiment, replace(experiment, key="other"))


def test_pilot_changes_cover_pilot_fields_decision_rules_and_experiments() -> None:
    before = parse_pilot_spec(EXAMPLE.read_text(encoding="utf-8"))
    after = replace(
        before,
        holdout=0.1,
        start=date(2026, 12, 1),
        experiments=(),
        decision=replace(before.decision, min_sus=70.0),
    )
    assert pilot_changes(before, after) == [
        PlanChange("holdout", 0.0, 0.1, False),
        PlanChange("start", "2026-11-01", "2026-12-01", False),
        PlanChange("experiments", ["onboarding-v2"], [], False),
        PlanChange("decision.min_sus", 68.0, 70.0, False),
    ]
    assert {c.field for c in pilot_changes(None, before)} >= {
        "key",
        "name",
        "experiments",
        "decision.min_nps",
    }


# --- reading YAML safely ------------------------------------------------------------------------

LEVELS = "abcdefghi"
#: Nine levels of nine aliases: 9^9 values once expanded, from a few hundred bytes.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in itertools.pairwise(LEVELS)
)
#: The same with merge keys: each mapping merges the one before nine times.
MERGE_BOMB = "a: &a {x: 1, y: 2, z: 3}\n" + "".join(
    f"{b}: &{b} {{<<: [{', '.join(['*' + a] * 9)}], {b}: 1}}\n" for a, b in itertools.pairwise(LEVELS)
)
#: Well under the 29 s the alias bomb took before the bounds; the refusals take milliseconds.
QUICKLY = 3.0


def _refusal(text: str | bytes) -> tuple[SpecIssue, float]:
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        parse_pilot_spec(text, "hostile.yaml")
    elapsed = time.perf_counter() - started
    (issue,) = caught.value.issues
    return issue, elapsed


@pytest.mark.parametrize("bomb", [ALIAS_BOMB, MERGE_BOMB], ids=["aliases", "merges"])
def test_an_alias_bomb_is_refused_at_once(bomb: str) -> None:
    assert len(bomb.encode()) < 500
    issue, elapsed = _refusal(bomb)
    assert elapsed < QUICKLY
    assert issue.field == "yaml"
    assert issue.message == (
        f"the spec holds more than {MAX_VALUES:,} values (counting those aliases repeat), "
        f"must hold at most {MAX_VALUES:,}"
    )


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("a: &a [*a]\n", 1, "a[0]"),
        ("pilot: &p\n  key: bike-share\n  name: x\n  again: *p\n", 4, "pilot.again"),
        ("pilot: &p {<<: *p, key: bike-share}\n", 1, "pilot.<<"),
    ],
    ids=["list", "mapping", "merge"],
)
def test_an_alias_inside_the_node_it_refers_to_is_refused(text: str, line: int, field: str) -> None:
    issue, elapsed = _refusal(text)
    assert elapsed < QUICKLY
    assert (issue.line, issue.field) == (line, field)
    assert issue.message == "an alias refers to a node that holds it (a loop), must refer to a node outside it"


@pytest.mark.parametrize("as_bytes", [False, True], ids=["text", "bytes"])
def test_a_spec_over_one_mebibyte_is_refused_unread(as_bytes: bool) -> None:
    text = BASE.replace("Neighbourhood bike-share\n", "x\n  description: " + "a" * MAX_SPEC_BYTES + "\n")
    issue, elapsed = _refusal(text.encode() if as_bytes else text)
    assert elapsed < QUICKLY
    assert issue == SpecIssue(
        None, "yaml", f"the spec has more than {MAX_SPEC_BYTES:,} bytes, must have at most {MAX_SPEC_BYTES:,} (1 MiB)"
    )


def test_many_values_are_refused_before_they_are_composed() -> None:
    flat = "pilot: [" + ",".join(["1"] * (MAX_SPEC_BYTES // 2 - 8)) + "]\n"
    assert len(flat) <= MAX_SPEC_BYTES
    issue, elapsed = _refusal(flat)
    assert elapsed < QUICKLY
    assert issue.field == "yaml" and f"more than {MAX_VALUES:,} values" in issue.message


@pytest.mark.parametrize(
    "text",
    [
        "pilot: " + "[" * 500 + "]" * 500 + "\n",
        "".join(f"a{i}: &a{i} [{f'*a{i - 1}' if i else 1}]\n" for i in range(MAX_DEPTH + 2)),
    ],
    ids=["as written", "through aliases"],
)
@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"], ids=["libyaml", "pure Python"])
def test_values_nested_too_deep_are_refused(text: str, loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nesting is bounded before the document is composed: PyYAML's composer recurses, and without
    # libyaml 500 levels exhaust Python's stack.
    monkeypatch.setattr(specs, "_LOADER", getattr(yaml, loader))
    issue, elapsed = _refusal(text)
    assert elapsed < QUICKLY
    assert issue.field == "yaml"
    assert issue.message.startswith(f"values are nested more than {MAX_DEPTH} levels deep")


def test_a_file_of_other_bytes_than_utf8_is_refused_naming_the_byte() -> None:
    issue, _ = _refusal(BASE.replace("Neighbourhood", "Quartier \xe9").encode("latin-1"))
    assert issue == SpecIssue(3, "yaml", "byte 0xe9 at offset 42 is not UTF-8, must be UTF-8 text")
    assert parse_pilot_spec(BASE.replace("Neighbourhood", "Quartier é").encode()).name.neutral.startswith("Quartier é")


# --- absurd values, bounded at the contract -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            _with("name: Neighbourhood bike-share", 'name: "Bike\\0share"'),
            3,
            "pilot.name",
            "name == 'Bike\\x00share', must be text on one line without control characters (not '\\x00')",
        ),
        (
            _pilot_lines('description: "Bikes\\nfor all\\x07"'),
            4,
            "pilot.description",
            "must be text without control characters (not '\\x07')",
        ),
        (
            _pilot_lines("description: " + "a" * 900_000),
            4,
            "pilot.description",
            "must be at most 4,000 characters (not 900,000)",
        ),
        (
            _with("window_days: 7}", "window_days: 1.0e+200}"),
            8,
            "experiments[0].metrics[0].window_days",
            "at most 3,660",
        ),
        (_pilot_lines("start: 0004-01-01"), 4, "pilot.start", "must be a date from 2000-01-01 to 2100-12-31"),
        (
            _with("key: bike-share", 'key: "bike-share\\n"'),
            2,
            "pilot.key",
            "key == 'bike-share\\n', must be lower-case",
        ),
        (_with("key: onboarding-v2", 'key: "onboarding-v2\\n"'), 5, "experiments[0].key", "must be letters, digits"),
        (_experiment_lines("planned_sample: 1000000000000"), 11, "experiments[0].planned_sample", "at most"),
        (_pilot_lines("budget: 1.0e+20"), 4, "pilot.budget", "budget == 1e+20, must be at most"),
        (_pilot_lines("owner: " + "o" * 300), 4, "pilot.owner", "must be at most 128 characters (not 300)"),
        (_experiment_lines('salt: "a\\0"'), 11, "experiments[0].salt", "without control characters"),
        (_pilot_lines("districts: [north, ' ']"), 4, "pilot.districts[1]", "must be a non-empty string"),
        (BASE + "decision: {min_rating: 7}\n", 11, "decision.min_rating", "min_rating == 7, must be in [1, 5]"),
        (_pilot_lines("population: " + "9" * 5000), 4, "pilot.population", "cannot be read"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_absurd_values_are_refused(text: str, line: int, field: str, message: str) -> None:
    issues = _issues(text)
    assert any(i.line == line and i.field == field and message in i.message for i in issues), issues


# --- texts in two languages ---------------------------------------------------------------------


def test_a_text_is_plain_or_given_per_language() -> None:
    spec = parse_pilot_spec(
        _with("name: Neighbourhood bike-share", "name: {fr: Vélos de quartier, en: Neighbourhood bikes}")
        + "    name: Onboarding\n"
        + "    hypothesis: {en: Guided rides help.}\n"
    )
    assert spec.name == LocalizedText(fr="Vélos de quartier", en="Neighbourhood bikes")
    assert (spec.name.text("fr"), spec.name.text("en-GB"), spec.name.text(None), str(spec.name)) == (
        "Vélos de quartier",
        "Neighbourhood bikes",
        "Vélos de quartier",
        "Vélos de quartier",
    )
    (experiment,) = spec.experiments
    assert experiment.name == LocalizedText(neutral="Onboarding")
    assert experiment.name.text("fr") == experiment.name.text("en") == str(experiment.name) == "Onboarding"
    # A text in one language is shown in the other rather than nothing; str() falls back to English.
    assert experiment.hypothesis.text("fr") == str(experiment.hypothesis) == "Guided rides help."
    assert not spec.description and str(spec.description) == "" and spec.description.text("en") == ""


def test_a_metric_and_an_experiment_are_labelled_by_their_key_without_a_name() -> None:
    experiment = parse_pilot_spec(EXAMPLE.read_bytes()).experiments[0]
    metric = experiment.metric("trip_completed")
    assert (metric.label("fr"), metric.label("en")) == ("A fait un trajet", "Completed a trip")
    bare = parse_pilot_spec(BASE).experiments[0]
    assert bare.metric("ride_minutes").label("fr") == "ride_minutes" and bare.label("en") == "onboarding-v2"
    english_only = replace(metric, name={"en": "Completed a trip"})
    assert english_only.label("fr") == english_only.label("en") == "Completed a trip"


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            _with("name: Neighbourhood bike-share", "name:\n    fr: Vélos\n    de: Fahrräder"),
            5,
            "pilot.name.de",
            "unknown language 'de', must be one of: fr, en",
        ),
        (_with("name: Neighbourhood bike-share", "name: {}"), 3, "pilot.name", "must be a text, or a mapping with"),
        (
            _with("name: Neighbourhood bike-share", "name: {fr: '', en: Bikes}"),
            3,
            "pilot.name.fr",
            "fr == '', must be a non-empty text (leave the language out instead)",
        ),
        (
            _with("name: Neighbourhood bike-share", "name: {fr: ' ', en: Bikes}"),
            3,
            "pilot.name",
            "must be a non-empty string",
        ),
        (
            _with("name: Neighbourhood bike-share", "name:\n    fr: Vélos\n    en: 42"),
            5,
            "pilot.name.en",
            "en == 42, must be a string (quote it)",
        ),
        (
            _with("name: Neighbourhood bike-share", "name: [Vélos]"),
            3,
            "pilot.name",
            "name == ['Vélos'], must be a text, or a mapping of language (fr, en) to text",
        ),
        (_experiment_lines("hypothesis: 2026"), 11, "experiments[0].hypothesis", "hypothesis == 2026, must be a text"),
        (
            _with("action: ride}", 'action: ride, name: {fr: "A\\nB"}}'),
            9,
            "experiments[0].metrics[1].name.fr",
            "must be text on one line without control characters (not '\\n')",
        ),
        (_experiment_lines("name: {fr: " + "n" * 201 + "}"), 11, "experiments[0].name.fr", "at most 200 characters"),
    ],
)
def test_a_text_per_language_is_checked_language_by_language(text: str, line: int, field: str, message: str) -> None:
    issues = _issues(text)
    assert any(i.line == line and i.field == field and message in i.message for i in issues), issues


def test_a_text_has_the_product_s_languages() -> None:
    assert TEXT_LANGUAGES == LANGUAGES


def test_a_text_is_either_without_a_language_or_per_language() -> None:
    with pytest.raises(ValidationError, match="either without a language or per language"):
        LocalizedText(fr="Vélos", neutral="Bikes")


def test_texts_keep_their_form_in_the_json_form() -> None:
    spec = parse_pilot_spec(EXAMPLE.read_bytes())
    data = spec_to_dict(spec)
    assert data["pilot"]["name"] == {"fr": "Vélos partagés de quartier", "en": "Neighbourhood bike-share"}
    assert data["experiments"][0]["metrics"][0]["name"] == {"fr": "A fait un trajet", "en": "Completed a trip"}
    plain = spec_to_dict(replace(spec, name="Bikes", description={"en": "Bikes for all."}))
    assert (plain["pilot"]["name"], plain["pilot"]["description"]) == ("Bikes", {"en": "Bikes for all."})
    assert spec_to_dict(parse_pilot_spec(BASE))["pilot"]["description"] == ""


#: A spec as the store kept it before texts had languages (spec_to_dict of the parking-finder
#: example, sorted keys as PostgreSQL jsonb gives them back).
STORED_BEFORE_TEXTS = json.loads("""
{"decision": {"forecast_horizon_days": 365, "max_cost_per_active": 80.0, "max_reach_gap": 0.7,
  "min_active_participants": 300, "min_adopters_forecast": null, "min_district_reach": 0.8, "min_nps": 10.0,
  "min_rating": 3.8, "min_sus": null, "minimum_effect": 0.02},
 "experiments": [{"allocation": 1.0,
  "analysis": {"alpha": 0.05, "correction": "holm", "difference": "relative", "engine": "sequential",
               "sequential_tuning": 5000},
  "guardrails": [{"metric": "search_minutes", "tolerance": 0.0}],
  "hypothesis": "Alerting drivers five minutes before arrival (early) helps more of them park without circling.",
  "key": "alert-timing", "layer": null,
  "metrics": [
   {"action": "parked", "aggregate": "sum", "covariate_days": null, "denominator": null,
    "denominator_aggregate": "count", "description": "", "higher_is_better": true, "key": "parked",
    "type": "proportion", "week": null, "window_days": 7.0},
   {"action": "search", "aggregate": "sum", "covariate_days": 14.0, "denominator": null,
    "denominator_aggregate": "count", "description": "", "higher_is_better": false, "key": "search_minutes",
    "type": "mean", "week": null, "window_days": 7.0},
   {"action": "search", "aggregate": "sum", "covariate_days": null, "denominator": "parked",
    "denominator_aggregate": "count", "description": "", "higher_is_better": false, "key": "minutes_per_park",
    "type": "ratio", "week": null, "window_days": 7.0},
   {"action": "*", "aggregate": "sum", "covariate_days": null, "denominator": null,
    "denominator_aggregate": "count", "description": "", "higher_is_better": true, "key": "week1_retention",
    "type": "retention", "week": 1, "window_days": 7.0}],
  "minimum_detectable_effect": 0.08, "planned_days": null, "planned_sample": 3000, "primary": "parked", "salt": "",
  "secondary": ["search_minutes", "minutes_per_park", "week1_retention"],
  "variants": [["control", 0.34], ["early", 0.33], ["late", 0.33]]}],
 "pilot": {"budget": 25000.0, "consent": "collected_by_service", "currency": "EUR",
  "description": "Tells drivers where a free kerbside space is, before they start circling.",
  "districts": [["north", 2000], ["south", 2000], ["east", 1500], ["west", 1500], ["centre", 1000]],
  "holdout": 0.0, "key": "parking-finder", "key_action": "parked", "name": "Parking finder",
  "next_decision": "2027-02-01", "owner": "smart-streets@city.example", "population": 8000,
  "segments": ["district", "channel"], "stage": "prototype", "start": "2026-11-01"}}
""")


def _kept(before: object, after: object) -> bool:
    """Returns True when every field of `before` is in `after` with the same value."""
    if isinstance(before, dict):
        return isinstance(after, dict) and all(k in after and _kept(v, after[k]) for k, v in before.items())
    if isinstance(before, list):
        return isinstance(after, list) and len(before) == len(after) and all(map(_kept, before, after))
    return before == after


def test_a_spec_stored_before_texts_had_languages_still_loads_unchanged() -> None:
    spec = spec_from_dict(STORED_BEFORE_TEXTS, "store")
    assert spec.name == LocalizedText(neutral="Parking finder") and str(spec.name) == "Parking finder"
    (experiment,) = spec.experiments
    assert experiment.analysis.relative_interval == "log"
    assert [m.label("fr") for m in experiment.metrics] == [m.key for m in experiment.metrics]
    assert experiment.variants == (("control", 0.34), ("early", 0.33), ("late", 0.33))
    assert spec.district_population[-1] == ("centre", 1000)
    assert _kept(STORED_BEFORE_TEXTS, spec_to_dict(spec))
    assert pilot_changes(spec, spec_from_dict(spec_to_dict(spec))) == []


# --- the analysis plan, the records -------------------------------------------------------------


def test_the_relative_interval_is_read_from_the_analysis_block() -> None:
    assert parse_pilot_spec(BASE).experiments[0].analysis.relative_interval == "log"
    plan = parse_pilot_spec(_experiment_lines("analysis: {relative_interval: gbstats}")).experiments[0].analysis
    assert plan == AnalysisPlan(relative_interval="gbstats")
    (issue,) = _issues(_experiment_lines("analysis: {relative_interval: fieller}"))
    assert (issue.line, issue.field, issue.message) == (
        11,
        "experiments[0].analysis.relative_interval",
        "relative_interval == 'fieller', must be one of: gbstats, log",
    )


def test_texts_for_people_are_not_part_of_the_locked_definition() -> None:
    before = _example_experiment()
    primary = before.metrics[0]
    after = replace(
        before,
        metrics=(replace(primary, name={"fr": "Trajet fait"}, description="Trips."), *before.metrics[1:]),
    )
    assert plan_changes(before, after) == [
        PlanChange("metrics.trip_completed.name", text_to_json(primary.name), {"fr": "Trajet fait"}, False),
        PlanChange("metrics.trip_completed.description", text_to_json(primary.description), "Trips.", False),
    ]


def test_the_records_are_frozen_hashable_and_validated_when_made() -> None:
    first, second = parse_pilot_spec(EXAMPLE.read_bytes()), parse_pilot_spec(EXAMPLE.read_bytes())
    assert first == second and hash(first) == hash(second) and len({first, second}) == 1
    assert hash(replace(first, name="Bikes")) != hash(first)
    with pytest.raises(FrozenInstanceError):
        first.key = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="must be in \\(0, 1\\)"):
        replace(first.experiments[0], analysis=AnalysisPlan(alpha=1.5))
    with pytest.raises(ValidationError, match=r"weights sum to 0\.9"):
        replace(first.experiments[0], variants=(("control", 0.5), ("guided", 0.4)))


def _documented_fields() -> dict[str, set[str]]:
    """Returns the fields docs/pilot-spec.md documents, by section (the first cell of its tables)."""
    sections: dict[str, set[str]] = {}
    section = ""
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            section = line.strip("# ").strip("`")
        elif line.startswith("| `"):
            sections.setdefault(section, set()).add(line.split("`")[1])
    return sections


def test_every_field_is_documented() -> None:
    documented = _documented_fields()
    records = {
        "pilot": [
            f for f in PilotSpec.__dataclass_fields__ if f not in {"experiments", "decision", "district_population"}
        ],
        "experiments[]": list(ExperimentSpec.__dataclass_fields__),
        "metrics[]": list(MetricSpec.__dataclass_fields__),
        "analysis": list(AnalysisPlan.__dataclass_fields__),
        "decision": list(DecisionRules.__dataclass_fields__),
        "Texts": ["fr", "en"],
    }
    for section, fields in records.items():
        assert set(fields) <= documented.get(section, set()), (section, set(fields) - documented.get(section, set()))
