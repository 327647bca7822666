"""Request parsing: a good request becomes typed records; a bad one raises RequestError naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.stats import RequestError, parse_request
from experiments.stats.checks import load_json
from experiments.stats.statistics import (
    CupedStatistic,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
)
from tests.unit.stats.examples import EXAMPLE

DELETE = object()


def edited(request: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    """Returns the request with the field at `path` set to `value` (or removed, for DELETE)."""
    parent: Any = request
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return request


BAD_FIELDS = [
    (
        ("metrics", 1, "data", "treatment", "n"),
        -1,
        "metrics[1].data.treatment.n: must be >= 0 and <= 9007199254740991 (got -1)",
    ),
    (
        ("metrics", 0, "data", "treatment", "n"),
        10.5,
        "metrics[0].data.treatment.n: must be an integer (got 10.5)",
    ),
    (
        ("metrics", 0, "data", "treatment", "n"),
        "100",
        'metrics[0].data.treatment.n: must be an integer (got "100")',
    ),
    (
        ("metrics", 0, "data", "treatment", "n"),
        True,
        "metrics[0].data.treatment.n: must be an integer (got true)",
    ),
    (
        ("metrics", 0, "data", "treatment", "sum"),
        10001,
        "metrics[0].data.treatment.sum: must be >= 0 and <= 10000",
    ),
    (("metrics", 0, "data", "control", "sum"), -2, "metrics[0].data.control.sum: must be >= 0 and <= 10000"),
    (
        ("metrics", 1, "data", "control", "sum"),
        None,
        "metrics[1].data.control.sum: must be a number (got null)",
    ),
    (
        ("metrics", 1, "data", "control", "sum"),
        float("nan"),
        "metrics[1].data.control.sum: must be a finite number",
    ),
    (
        ("metrics", 1, "data", "control", "sum_squares"),
        -1.0,
        "metrics[1].data.control.sum_squares: must be >= 0",
    ),
    (
        ("metrics", 1, "data", "control", "sum_squares"),
        DELETE,
        "metrics[1].data.control.sum_squares: required",
    ),
    (("metrics", 1, "data", "treatment"), DELETE, "metrics[1].data.treatment: required"),
    (
        ("metrics", 1, "data", "treatment"),
        [1, 2],
        "metrics[1].data.treatment: must be a JSON object (got [1, 2])",
    ),
    (("metrics", 1, "data", "holdout"), {"n": 1}, "metrics[1].data.holdout: not a variant"),
    (("metrics", 1, "data"), DELETE, "metrics[1].data: required"),
    (
        ("metrics", 0, "data", "control", "sum_squares"),
        3.0,
        "metrics[0].data.control.sum_squares: unknown field",
    ),
    (("metrics", 2, "data", "treatment", "pre_sum"), DELETE, "metrics[2].data.treatment.pre_sum: required"),
    (("metrics", 1, "data", "control", "pre_sum"), 5.0, "metrics[1].data.control.pre_sum_squares: required"),
    (("metrics", 3, "data", "control", "den_sum"), DELETE, "metrics[3].data.control.den_sum: required"),
    (
        ("metrics", 3, "data", "control", "den_sum_squares"),
        -4.0,
        "metrics[3].data.control.den_sum_squares: must",
    ),
    (("metrics", 3, "type"), "quantile", "metrics[3].type: must be one of proportion, mean, ratio"),
    (("metrics", 3, "type"), DELETE, "metrics[3].type: required"),
    (("metrics", 3, "name"), "", "metrics[3].name: must be a non-empty string"),
    (("metrics", 3, "name"), 42, "metrics[3].name: must be a non-empty string (got 42)"),
    (("metrics", 3, "name"), "converted", "metrics[3].name: duplicate of metrics[0].name"),
    (("metrics", 3, "colour"), "red", "metrics[3].colour: unknown field"),
    (("metrics", 2), "minutes", 'metrics[2]: must be a JSON object (got "minutes")'),
    (("metrics",), {"a": 1}, 'metrics: must be a list of metrics (got {"a": 1})'),
    (("experiment",), "onboarding", "experiment: unknown field"),
    (("metrics",), "all", 'metrics: must be a list of metrics (got "all")'),
    (("metrics",), DELETE, "metrics: required"),
    (
        ("engine",),
        "frequentest",
        'engine: must be one of frequentist, sequential, bayesian (got "frequentest")',
    ),
    (("engine",), None, "engine: must be one of frequentist, sequential, bayesian (got null)"),
    (("difference",), "ratio", "difference: must be one of relative, absolute"),
    (("correction",), "bonferroni", "correction: must be one of none, holm, bh"),
    (("alpha",), 0, "alpha: must be > 0 and < 1 (got 0)"),
    (("alpha",), 1.0, "alpha: must be > 0 and < 1 (got 1)"),
    (("alpha",), -0.05, "alpha: must be > 0 and < 1 (got -0.05)"),
    (("alpha",), "0.05", 'alpha: must be a number (got "0.05")'),
    (("sequential_tuning",), 0, "sequential_tuning: must be > 0 (got 0)"),
    (("control",), "baseline", 'control: must be one of the variants control, treatment (got "baseline")'),
    (("control",), 3, "control: must be one of the variants control, treatment (got 3)"),
    (("variants",), DELETE, "variants: required"),
    (("variants",), [], "variants: must be a JSON object (got [])"),
    (("variants", "treatment"), DELETE, "variants: must name at least 2 variants (got 1)"),
    (("variants", "treatment", "units"), -5, "variants.treatment.units: must be >= 0 and <= 9007199254740991 (got -5)"),
    (("variants", "treatment", "units"), DELETE, "variants.treatment.units: required"),
    (("variants", "treatment", "weight"), 0, "variants.treatment.weight: must be > 0 (got 0)"),
    (("variants", "treatment", "weight"), DELETE, "variants.treatment.weight: required, as variants.control"),
    (("variants", "treatment", "share"), 0.5, "variants.treatment.share: unknown field"),
    (("analyses",), [], "analyses: unknown field"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BAD_FIELDS, ids=[case[2][:60] for case in BAD_FIELDS])
def test_bad_request_names_the_field(
    example: dict[str, Any], path: tuple[str | int, ...], value: object, expected: str
) -> None:
    with pytest.raises(RequestError) as raised:
        parse_request(edited(example, path, value))
    message = str(raised.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert message == f"{raised.value.field}: {raised.value.message}"


@pytest.mark.parametrize("obj", [None, [], "request", 3, {"variants": {"a": {"units": 1}}}])
def test_a_request_that_is_not_an_object_or_too_small_is_refused(obj: object) -> None:
    with pytest.raises(RequestError):
        parse_request(obj)


def test_odd_variant_names_are_quoted_in_the_field_path(example: dict[str, Any]) -> None:
    example["variants"]["new flow"] = example["variants"].pop("treatment")
    for metric in example["metrics"]:
        metric["data"]["new flow"] = metric["data"].pop("treatment")
    example["metrics"][0]["data"]["new flow"]["n"] = -1
    with pytest.raises(RequestError, match=r'^metrics\[0\]\.data\["new flow"\]\.n: must be >= 0'):
        parse_request(example)


def test_the_example_parses_into_typed_statistics_stacked_by_type(example: dict[str, Any]) -> None:
    request = parse_request(example)
    assert (request.engine, request.difference, request.alpha, request.correction) == (
        "frequentist",
        "relative",
        0.05,
        "none",
    )
    assert request.treatments == ("treatment",)
    assert [(m.name, m.type, m.cuped) for m in request.metrics] == [
        ("converted", "proportion", False),
        ("minutes", "mean", False),
        ("minutes_cuped", "mean", True),
        ("tasks_per_session", "ratio", False),
    ]
    kinds = {type(group.arms["control"]): group.positions.tolist() for group in request.groups}
    assert kinds == {ProportionStatistic: [0], SampleMeanStatistic: [1], CupedStatistic: [2], RatioStatistic: [3]}
    cuped = next(group.arms["treatment"] for group in request.groups if group.positions.tolist() == [2])
    assert isinstance(cuped, CupedStatistic)
    assert cuped.pre.sum.tolist() == [26500.0]  # type: ignore[union-attr]


def test_defaults_apply_when_fields_are_left_out(example: dict[str, Any]) -> None:
    for key in ("engine", "difference", "alpha", "sequential_tuning", "correction", "control"):
        del example[key]
    request = parse_request(example)
    assert (request.engine, request.difference, request.alpha, request.sequential_tuning) == (
        "frequentist",
        "relative",
        0.05,
        5000.0,
    )
    assert (request.correction, request.control) == ("none", "control")


def test_weights_may_be_left_out_for_equal_shares(example: dict[str, Any]) -> None:
    for variant in example["variants"].values():
        del variant["weight"]
    assert [variant.weight for variant in parse_request(example).variants] == [1.0, 1.0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(path_index=st.integers(min_value=0, max_value=200), value=json_values)
def test_any_edit_of_a_request_parses_or_raises_request_error(path_index: int, value: object) -> None:
    request = json.loads(json.dumps(EXAMPLE))
    paths = list(_paths(request))
    edited(request, paths[path_index % len(paths)], value)
    try:
        parse_request(request)
    except RequestError as error:
        assert "\n" not in str(error)


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    keys = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    found = []
    for key, child in keys:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


HUGE = 10**400


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("metrics", 1, "data", "control", "sum"), "metrics[1].data.control.sum: must be a finite number"),
        (("metrics", 0, "data", "treatment", "n"), "metrics[0].data.treatment.n: must be a finite number"),
        (("metrics", 3, "data", "treatment", "sum_products"), "metrics[3].data.treatment.sum_products: must be a"),
        (("variants", "treatment", "units"), "variants.treatment.units: must be a finite number"),
        (("alpha",), "alpha: must be a finite number"),
        (("sequential_tuning",), "sequential_tuning: must be a finite number"),
    ],
)
@pytest.mark.parametrize("sign", [1, -1])
def test_an_integer_beyond_a_double_names_its_field(
    example: dict[str, Any], path: tuple[str | int, ...], expected: str, sign: int
) -> None:
    """Issue 24: an integer of 10^400 raised OverflowError (exit 1)."""
    with pytest.raises(RequestError) as raised:
        parse_request(edited(example, path, sign * HUGE))
    assert str(raised.value).startswith(expected)
    assert str(raised.value).endswith("(got an integer of 401 digits)")


def test_the_first_bad_number_in_request_order_is_named_even_beside_an_oversized_integer(
    example: dict[str, Any],
) -> None:
    example["metrics"][1]["data"]["control"]["n"] = -4
    example["metrics"][1]["data"]["treatment"]["sum"] = HUGE
    with pytest.raises(RequestError, match=r"^metrics\[1\]\.data\.control\.n: must be >= 0"):
        parse_request(example)


def test_an_integer_too_long_for_python_to_read_is_named_too(example: dict[str, Any]) -> None:
    text = json.dumps(example).replace('"sum": 27000.0', '"sum": 1' + "0" * 5000, 1)
    with pytest.raises(ValueError, match="Exceeds the limit"):
        json.loads(text)
    with pytest.raises(RequestError) as raised:
        parse_request(load_json(text))
    assert str(raised.value) == "metrics[1].data.control.sum: must be a finite number (got an integer of 5001 digits)"


def test_load_json_reads_ordinary_json_as_json_does(example: dict[str, Any]) -> None:
    text = json.dumps(example)
    assert load_json(text) == json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        load_json(text[:-1])


@pytest.mark.parametrize("path", [("metrics", 0, "data", "control", "n"), ("variants", "control", "units")])
def test_a_count_beyond_what_a_double_holds_exactly_is_refused(example: dict[str, Any], path: tuple[str, ...]) -> None:
    edited(example, path, 2**53)
    with pytest.raises(RequestError, match=r"must be >= 0 and <= 9007199254740991 \(got 9007199254740992\)"):
        parse_request(example)
    edited(example, path, 2**53 - 1)
    edited(example, ("metrics", 0, "data", "control", "sum"), 0)
    parse_request(example)


def test_the_relative_interval_is_gbstats_unless_the_request_says_log(example: dict[str, Any]) -> None:
    assert parse_request(example).relative_interval == "gbstats"
    assert parse_request(example | {"relative_interval": "log"}).relative_interval == "log"
    with pytest.raises(RequestError, match=r'^relative_interval: must be one of gbstats, log \(got "fieller"\)$'):
        parse_request(example | {"relative_interval": "fieller"})
