"""The analysis of a request: the JSON of docs/statistics.md, error rows, corrections, any number of treatments."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from experiments.stats import analyze, analyze_dict, parse_request
from experiments.stats.result import REPORTED_FIELDS
from tests.unit.stats.references import statsmodels_adjusted


def test_the_example_of_analysis_md(example: dict[str, Any]) -> None:
    result = analyze_dict(example)
    assert result["srm"] == {"p_value": 1.0, "mismatch": False}
    row = result["comparisons"][0]
    assert list(row) == list(REPORTED_FIELDS)
    assert (row["metric"], row["variant"], row["control_mean"], row["mean"]) == (
        "converted",
        "treatment",
        0.1,
        0.11,
    )
    assert row["effect"] == pytest.approx(0.1, rel=1e-12)
    assert round(row["ci_low"], 4) == 0.0109
    assert round(row["ci_high"], 4) == 0.1891
    assert round(row["p_value"], 4) == 0.0279
    assert row["adjusted_p_value"] == row["p_value"]
    assert (row["chance_to_win"], row["error"]) == (None, None)
    json.dumps(result, allow_nan=False)


def test_cuped_reports_unadjusted_means_and_a_tighter_interval(example: dict[str, Any]) -> None:
    rows = {row.metric: row for row in analyze(parse_request(example)).comparisons}
    plain, cuped = rows["minutes"], rows["minutes_cuped"]
    assert (cuped.control_mean, cuped.mean) == (plain.control_mean, plain.mean)
    assert cuped.effect != plain.effect
    assert cuped.se is not None and plain.se is not None and cuped.se < plain.se


@pytest.mark.parametrize("engine", ["frequentist", "sequential", "bayesian"])
def test_each_engine_reports_its_own_numbers(example: dict[str, Any], engine: str) -> None:
    example["engine"] = engine
    for row in analyze(parse_request(example)).comparisons:
        bayesian = engine == "bayesian"
        assert (row.p_value is None, row.adjusted_p_value is None) == (bayesian, bayesian)
        assert (row.chance_to_win is None, row.expected_loss is None) == (not bayesian, not bayesian)
        assert row.ci_low is not None and row.effect is not None and row.ci_high is not None
        assert row.ci_low < row.effect < row.ci_high


def test_the_expected_loss_of_the_treatment_is_the_mean_of_its_shortfall(example: dict[str, Any]) -> None:
    example["engine"] = "bayesian"
    row = analyze(parse_request(example)).comparisons[0]
    assert row.effect is not None and row.se is not None and row.expected_loss is not None
    draws = np.random.default_rng(3).normal(row.effect, row.se, 2_000_000)
    assert row.expected_loss == pytest.approx(np.maximum(-draws, 0).mean(), rel=0.02)
    assert row.chance_to_win == pytest.approx(np.mean(draws > 0), abs=1e-3)


def three_arms(example: dict[str, Any]) -> dict[str, Any]:
    example["variants"]["bold"] = {"units": 10050, "weight": 0.5}
    for index, metric in enumerate(example["metrics"]):
        bold = dict(metric["data"]["treatment"])
        bold["sum"] = bold["sum"] * (1.02 + 0.01 * index)
        metric["data"]["bold"] = bold
    return example


def test_rows_follow_request_order_for_any_number_of_treatments(example: dict[str, Any]) -> None:
    rows = analyze(parse_request(three_arms(example))).comparisons
    assert [(row.metric, row.variant) for row in rows] == [
        (metric["name"], variant) for metric in example["metrics"] for variant in ("treatment", "bold")
    ]


def test_a_treatment_is_compared_with_control_alone(example: dict[str, Any]) -> None:
    with_bold = {(r.metric, r.variant): r for r in analyze(parse_request(three_arms(example))).comparisons}
    del example["variants"]["bold"]
    for metric in example["metrics"]:
        del metric["data"]["bold"]
    for row in analyze(parse_request(example)).comparisons:
        assert with_bold[(row.metric, row.variant)] == row


def test_control_need_not_be_the_first_variant(example: dict[str, Any]) -> None:
    example["variants"] = dict(reversed(list(example["variants"].items())))
    rows = analyze(parse_request(example)).comparisons
    assert [row.variant for row in rows] == ["treatment"] * 4
    assert rows[0].control_mean == 0.1


def degenerate(example: dict[str, Any]) -> dict[str, Any]:
    data = [metric["data"] for metric in example["metrics"]]
    data[0]["treatment"] = {"n": 0, "sum": 0}
    data[1]["control"] = {"n": 1, "sum": 3.0, "sum_squares": 9.0}
    data[2]["treatment"].update(
        n=50, sum=100.0, sum_squares=200.0, pre_sum=100.0, pre_sum_squares=200.0, pre_post_sum_products=200.0
    )
    data[3]["control"].update(den_sum=0.0, den_sum_squares=0.0, sum_products=0.0)
    return example


def test_impossible_comparisons_are_error_rows_with_null_numbers(example: dict[str, Any]) -> None:
    rows = analyze_dict(degenerate(example))["comparisons"]
    assert [row["error"] for row in rows] == [
        "empty arm: treatment has no units",
        "one unit only in control: variance undefined",
        "zero variance in treatment",
        "mean undefined in control: denominator sum is 0",
    ]
    for row in rows:
        assert [row[name] for name in REPORTED_FIELDS[2:-1]] == [None] * 8


@pytest.mark.parametrize("difference", ["relative", "absolute"])
def test_a_zero_control_mean_refuses_only_the_relative_difference(example: dict[str, Any], difference: str) -> None:
    example["difference"] = difference
    example["metrics"][1]["data"]["control"] = {"n": 4, "sum": 0.0, "sum_squares": 8.0}
    row = analyze(parse_request(example)).comparisons[1]
    if difference == "relative":
        assert row.error == "control mean is 0: relative difference undefined"
    else:
        assert row.error is None and row.effect == pytest.approx(28000 / 9100)


def test_numbers_out_of_range_are_an_error_row_not_a_crash(example: dict[str, Any]) -> None:
    example["difference"] = "absolute"
    huge = {"n": 2, "sum": 1.0, "sum_squares": 1.7e308}
    example["metrics"][1]["data"] = {"control": huge, "treatment": huge}
    row = analyze_dict(example)["comparisons"][1]
    assert row["error"] == "numbers out of range: the interval is not finite"
    json.dumps(row, allow_nan=False)


IMPOSSIBLE_SUMS = [
    (1, "control", {"sum_squares": 80000.0}, "sum_squares is smaller than sum^2/n (negative variance)"),
    (2, "treatment", {"pre_sum_squares": 1000.0}, "pre_sum_squares is smaller than pre_sum^2/n (negative variance)"),
    (
        2,
        "control",
        {"pre_post_sum_products": 1e7},
        "pre_post_sum_products is impossible with these sums (correlation beyond -1 or 1)",
    ),
    (3, "treatment", {"den_sum_squares": 100.0}, "den_sum_squares is smaller than den_sum^2/n (negative variance)"),
    (3, "control", {"sum_products": -1e6}, "sum_products is impossible with these sums (correlation beyond -1 or 1)"),
    (1, "treatment", {"sum": 1e160}, "sum is too large: sum^2/n overflows"),
    (2, "control", {"pre_sum": -1e160}, "pre_sum is too large: pre_sum^2/n overflows"),
]


@pytest.mark.parametrize(
    ("metric", "variant", "edit", "what"), IMPOSSIBLE_SUMS, ids=[c[3][:40] for c in IMPOSSIBLE_SUMS]
)
@pytest.mark.parametrize("interval", ["gbstats", "log"])
def test_impossible_sums_are_an_error_row_naming_the_arm_and_the_quantity(
    example: dict[str, Any], metric: int, variant: str, edit: dict[str, float], what: str, interval: str
) -> None:
    example["metrics"][metric]["data"][variant].update(edit)
    example |= {"correction": "holm", "relative_interval": interval}
    rows = analyze_dict(example)["comparisons"]
    assert rows[metric]["error"] == f"metrics[{metric}].data.{variant}: {what}"
    assert [rows[metric][name] for name in REPORTED_FIELDS[2:-1]] == [None] * 8
    assert all(row["error"] is None for index, row in enumerate(rows) if index != metric)


def test_cuped_with_a_negative_pre_period_variance_is_an_error_row_not_the_plain_test(
    example: dict[str, Any],
) -> None:
    """Issue 24: pre_sum_squares < pre_sum^2/n made theta 0, silently the plain test."""
    example["metrics"][2]["data"]["control"]["pre_sum_squares"] = 70000.0
    row = analyze_dict(example)["comparisons"][2]
    assert row["error"] == "metrics[2].data.control: pre_sum_squares is smaller than pre_sum^2/n (negative variance)"


@pytest.mark.parametrize(("shortfall", "error"), [
    (1e-12, "zero variance in control"),
    (1e-6, "metrics[1].data.control: sum_squares is smaller than sum^2/n (negative variance)"),
])  # fmt: skip
def test_a_second_moment_below_zero_by_rounding_is_zero_variance_beyond_it_impossible(
    example: dict[str, Any], shortfall: float, error: str
) -> None:
    square = 27000.0**2 / 9000
    example["metrics"][1]["data"]["control"]["sum_squares"] = square * (1 - shortfall)
    assert analyze_dict(example)["comparisons"][1]["error"] == error


@pytest.mark.parametrize(("correction", "method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_corrections_span_every_metric_and_treatment_but_skip_error_rows(
    example: dict[str, Any], correction: str, method: str
) -> None:
    request = three_arms(example)
    request["correction"] = correction
    request["metrics"][3]["data"]["bold"]["n"] = 0
    rows = analyze(parse_request(request)).comparisons
    usable = [row for row in rows if row.error is None]
    assert len(usable) == len(rows) - 1
    expected = statsmodels_adjusted([row.p_value for row in usable], method)
    np.testing.assert_allclose([row.adjusted_p_value for row in usable], expected, rtol=1e-12)
    assert all(row.adjusted_p_value is None for row in rows if row.error is not None)


def test_srm_flags_a_split_far_from_the_weights(example: dict[str, Any]) -> None:
    example["variants"]["treatment"]["units"] = 9500
    srm = analyze(parse_request(example)).srm
    assert srm.mismatch and srm.p_value < 0.001


arm_numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.sampled_from([0.0, 1.0, -1.0])
counts = st.integers(min_value=0, max_value=50) | st.sampled_from([0, 1, 2])


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    arms = draw(st.sampled_from([["control", "b"], ["control", "b", "c"]]))
    metrics = []
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["proportion", "mean", "cuped", "ratio"]))
        data = {}
        for name in arms:
            n = draw(counts)
            if kind == "proportion":
                data[name] = {"n": n, "sum": draw(st.integers(min_value=0, max_value=n))}
                continue
            data[name] = {"n": n, "sum": draw(arm_numbers), "sum_squares": abs(draw(arm_numbers))}
            if kind == "cuped":
                data[name] |= {
                    "pre_sum": draw(arm_numbers),
                    "pre_sum_squares": abs(draw(arm_numbers)),
                    "pre_post_sum_products": draw(arm_numbers),
                }
            if kind == "ratio":
                data[name] |= {
                    "den_sum": draw(arm_numbers),
                    "den_sum_squares": abs(draw(arm_numbers)),
                    "sum_products": draw(arm_numbers),
                }
        metrics.append({"name": f"m{index}", "type": "mean" if kind == "cuped" else kind, "data": data})
    return {
        "engine": draw(st.sampled_from(["frequentist", "sequential", "bayesian"])),
        "difference": draw(st.sampled_from(["relative", "absolute"])),
        "relative_interval": draw(st.sampled_from(["gbstats", "log"])),
        "correction": draw(st.sampled_from(["none", "holm", "bh"])),
        "alpha": draw(st.floats(min_value=1e-6, max_value=0.5)),
        "variants": {name: {"units": draw(counts)} for name in arms},
        "metrics": metrics,
    }


@settings(max_examples=200, deadline=None, derandomize=True)
@given(request=requests())
def test_any_valid_request_gives_rows_never_an_exception(request: dict[str, Any]) -> None:
    result = analyze_dict(request)
    json.dumps(result, allow_nan=False)
    for row in result["comparisons"]:
        numbers = [row[name] for name in REPORTED_FIELDS[2:-1]]
        if row["error"] is not None:
            assert numbers == [None] * 8
        else:
            assert row["ci_low"] <= row["effect"] <= row["ci_high"]
            assert all(number is None or math.isfinite(number) for number in numbers)


@pytest.mark.parametrize("engine", ["frequentist", "sequential", "bayesian"])
def test_a_request_without_metrics_reports_the_srm_check_alone(engine: str) -> None:
    request = {"engine": engine, "correction": "holm", "variants": {"a": {"units": 480}, "b": {"units": 520}}}
    result = analyze_dict(request | {"metrics": []})
    assert result["comparisons"] == []
    assert result["srm"]["p_value"] == pytest.approx(stats.chisquare([480, 520]).pvalue, rel=1e-12)
