"""The pilot spec file: parsing, validation with lines and fields, the JSON form, plan changes."""

from __future__ import annotations

import json
import operator
import string
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.registry import (
    AnalysisPlan,
    DecisionRules,
    ExperimentSpec,
    Guardrail,
    Layer,
    MetricSpec,
    PilotSpec,
)
from experiments.specs import (
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
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bike-share.yaml"

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


def test_the_example_parses_to_the_expected_spec() -> None:
    metrics = (
        MetricSpec("trip_completed", "proportion", "trip_completed", 7.0),
        MetricSpec("ride_minutes", "mean", "ride", 7.0),
        MetricSpec("minutes_per_trip", "ratio", "ride", 7.0, "sum", "trip_completed", "count"),
        MetricSpec("week1_retention", "retention", "*", week=1),
        MetricSpec("support_calls", "proportion", "support_call", 7.0, higher_is_better=False),
    )
    experiment = ExperimentSpec(
        key="onboarding-v2",
        hypothesis=("A guided first ride raises the share of citizens who complete a trip in their first week."),
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
        name="Neighbourhood bike-share",
        stage="pilot",
        consent="required",
        owner="mobility-lab@city.example",
        description="Shared e-bikes parked in every neighbourhood, booked from a phone.",
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
            BASE + "  - key: onboarding-v2\n",
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
texts = st.text(max_size=30)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)


@st.composite
def metric_specs(draw: st.DrawFn, key: str) -> MetricSpec:
    metric_type = draw(st.sampled_from(["proportion", "mean", "ratio", "retention"]))
    common = {
        "window_days": draw(positive),
        "higher_is_better": draw(st.booleans()),
        "description": draw(texts),
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
        hypothesis=draw(texts),
        salt=draw(texts),
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
        ),
        minimum_detectable_effect=draw(st.none() | positive),
        planned_sample=draw(st.none() | st.integers(1, 10**7)),
        planned_days=draw(st.none() | st.integers(1, 1000)),
    )


@st.composite
def pilot_specs(draw: st.DrawFn) -> PilotSpec:
    districts = draw(st.lists(st.text(min_size=1, max_size=12).filter(str.strip), unique=True, max_size=5))
    with_population = draw(st.booleans())
    start = draw(st.none() | st.dates())
    experiment_count = draw(st.integers(0, 3))
    return PilotSpec(
        key=draw(names.map(lambda name: name.replace("_", "-"))),
        name=draw(st.text(min_size=1, max_size=30).filter(str.strip)),
        stage=draw(st.sampled_from(["prototype", "pilot", "scale"])),
        consent=draw(st.sampled_from(["required", "collected_by_service"])),
        owner=draw(texts),
        description=draw(texts),
        budget=draw(st.none() | st.floats(0, 1e9)),
        currency=draw(st.text(string.ascii_uppercase, min_size=3, max_size=3)),
        population=draw(st.none() | st.integers(1, 10**8)),
        districts=tuple(districts),
        district_population=tuple((d, draw(st.integers(1, 10**6))) for d in districts) if with_population else (),
        segments=tuple(draw(st.lists(names, unique=True, max_size=3))),
        key_action=draw(st.none() | names),
        holdout=draw(st.floats(0, 1, exclude_max=True)),
        start=start,
        next_decision=None if start is None else draw(st.none() | st.dates(min_value=start)),
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
            min_rating=draw(st.none() | st.floats(0, 10)),
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
        ({"hypothesis": "h"}, "hypothesis", _example_experiment().hypothesis, "h", False),
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
