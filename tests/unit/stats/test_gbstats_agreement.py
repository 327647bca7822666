"""Agreement with GrowthBook's gbstats 0.8.0 on seeded random requests (fixtures/gbstats_0_8_0.json).

Tolerance: every number within a relative 1e-6, or an absolute 1e-12 for numbers near 0 (gbstats
computes p-values as 1 - cdf, which loses the digits of p-values below about 1e-4). Rows where
docs/statistics.md and gbstats differ (`spec_differs`, see tools/gbstats/generate_fixtures.py) are checked against
an independent scipy computation of docs/statistics.md's conventions instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from experiments.stats import Comparison, analyze, parse_request

FIXTURES = Path(__file__).parent / "fixtures" / "gbstats_0_8_0.json"
CASES: list[dict[str, Any]] = json.loads(FIXTURES.read_text())["cases"]
NUMBERS = (
    "control_mean",
    "mean",
    "effect",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "chance_to_win",
    "expected_loss",
)
RELATIVE_TOLERANCE = 1e-6
ABSOLUTE_TOLERANCE = 1e-12


def assert_agrees(ours: Comparison, reference: dict[str, Any], where: str) -> None:
    for name in NUMBERS:
        expected = reference[name]
        actual = getattr(ours, name)
        if expected is None:
            assert actual is None, f"{where} {name}: {actual} where the reference has none"
            continue
        assert actual is not None, f"{where} {name}: none where the reference has {expected}"
        assert math.isclose(actual, expected, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE), (
            f"{where} {name}: {actual} != {expected}"
        )


def test_the_fixtures_cover_every_engine_difference_metric_type_and_arm_count() -> None:
    computed = [
        (case["request"]["engine"], case["request"]["difference"], row["metric"].split("_")[0])
        for case in CASES
        for row in case["comparisons"]
        if row["error"] is None
    ]
    kinds = {"proportion", "mean", "cuped", "ratio"}
    combinations = {
        (e, d, k) for e in ("frequentist", "sequential", "bayesian") for d in ("relative", "absolute") for k in kinds
    }
    assert combinations <= set(computed)
    assert {len(case["request"]["variants"]) for case in CASES} >= {2, 3, 4}
    assert len(computed) > 500


@pytest.mark.parametrize("index", range(len(CASES)))
def test_rows_agree_with_gbstats(index: int) -> None:
    case = CASES[index]
    result = analyze(parse_request(case["request"]))
    assert math.isclose(result.srm.p_value, case["srm_p_value"], rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)
    assert len(result.comparisons) == len(case["comparisons"])
    for ours, reference in zip(result.comparisons, case["comparisons"], strict=True):
        where = f"case {index} {reference['metric']}/{reference['variant']}"
        assert (ours.metric, ours.variant) == (reference["metric"], reference["variant"])
        if reference["spec_differs"]:
            assert_agrees(ours, scipy_reference(case["request"], ours.metric, ours.variant), where)
        elif reference["error"] is not None:
            assert ours.error is not None, f"{where}: gbstats refuses ({reference['error']}), we computed"
        else:
            assert ours.error is None, f"{where}: we refuse ({ours.error}), gbstats computed"
            assert_agrees(ours, reference, where)


def test_some_rows_differ_from_gbstats_by_design() -> None:
    assert any(row["spec_differs"] for case in CASES for row in case["comparisons"])


def test_absolute_difference_with_a_zero_control_mean_is_computed_in_every_engine() -> None:
    values = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, -0.5, 0.5])
    treated = values + 0.8
    request: dict[str, Any] = {
        "difference": "absolute",
        "variants": {"control": {"units": 7}, "treatment": {"units": 7}},
        "metrics": [{"name": "m", "type": "mean", "data": {"control": arm(values), "treatment": arm(treated)}}],
    }
    welch = stats.ttest_ind(treated, values, equal_var=False)
    for engine in ("frequentist", "sequential", "bayesian"):
        request["engine"] = engine
        (row,) = analyze(parse_request(request)).comparisons
        assert row.error is None
        assert_agrees(row, scipy_reference(request, "m", "treatment"), engine)
        if engine == "frequentist":
            assert row.p_value == pytest.approx(welch.pvalue, rel=1e-9)


def arm(values: np.ndarray) -> dict[str, float]:
    return {"n": values.size, "sum": float(values.sum()), "sum_squares": float(values @ values)}


def scipy_reference(request: dict[str, Any], metric_name: str, variant: str) -> dict[str, Any]:
    """Returns docs/statistics.md's numbers for one comparison, written out from its conventions with scipy."""
    metric = next(m for m in request["metrics"] if m["name"] == metric_name)
    control_name = request.get("control", next(iter(request["variants"])))
    alpha = request.get("alpha", 0.05)
    relative = request.get("difference", "relative") == "relative"
    engine = request.get("engine", "frequentist")
    c, t = metric["data"][control_name], metric["data"][variant]
    (n_c, mean_c, raw_c, var_c), (n_t, mean_t, raw_t, var_t) = arm_moments(metric["type"], c, t)
    if relative:
        effect = (mean_t - mean_c) / raw_c
        variance = var_t / (raw_c**2 * n_t) + var_c * raw_t**2 / (raw_c**4 * n_c)
    else:
        effect = mean_t - mean_c
        variance = var_c / n_c + var_t / n_t
    se = math.sqrt(variance)
    row: dict[str, Any] = {"control_mean": raw_c, "mean": raw_t, "effect": effect, "se": se}
    row |= {"p_value": None, "chance_to_win": None, "expected_loss": None}
    if engine == "frequentist":
        df = (var_c / n_c + var_t / n_t) ** 2 / (var_c**2 / (n_c**2 * (n_c - 1)) + var_t**2 / (n_t**2 * (n_t - 1)))
        width = stats.t.ppf(1 - alpha / 2, df) * se
        row["p_value"] = 2 * stats.t.sf(abs(effect) / se, df)
    elif engine == "sequential":
        n = n_c + n_t
        tuning = request.get("sequential_tuning", 5000)
        rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
        width = math.sqrt(variance * n * 2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha))
        e_value = math.exp(rho2 * n * effect**2 / variance / (2 * (n * rho2 + 1))) / math.sqrt(n * rho2 + 1)
        row["p_value"] = min(1.0, 1 / e_value)
    else:
        posterior = stats.norm(effect, se)
        width = posterior.ppf(1 - alpha / 2) - effect
        row["chance_to_win"] = posterior.sf(0)
        row["expected_loss"] = stats.norm(-effect, se).expect(lambda x: max(x, 0.0), lb=0)
    return row | {"ci_low": effect - width, "ci_high": effect + width}


def arm_moments(kind: str, c: dict[str, float], t: dict[str, float]) -> list[tuple[float, float, float, float]]:
    """Returns (n, tested mean, unadjusted mean, variance) of control and treatment."""

    def cov(n: float, sx: float, sy: float, sxy: float) -> float:
        return (sxy - sx * sy / n) / (n - 1)

    if kind == "proportion":
        return [
            (a["n"], a["sum"] / a["n"], a["sum"] / a["n"], a["sum"] / a["n"] * (1 - a["sum"] / a["n"])) for a in (c, t)
        ]
    if kind == "ratio":
        moments = []
        for a in (c, t):
            n, mu_m, mu_d = a["n"], a["sum"] / a["n"], a["den_sum"] / a["n"]
            var_m, var_d = (
                cov(n, a["sum"], a["sum"], a["sum_squares"]),
                cov(n, a["den_sum"], a["den_sum"], a["den_sum_squares"]),
            )
            cov_md = cov(n, a["sum"], a["den_sum"], a["sum_products"])
            variance = var_m / mu_d**2 - 2 * cov_md * mu_m / mu_d**3 + mu_m**2 * var_d / mu_d**4
            moments.append((n, a["sum"] / a["den_sum"], a["sum"] / a["den_sum"], variance))
        return moments
    if "pre_sum" not in c:
        return [
            (a["n"], a["sum"] / a["n"], a["sum"] / a["n"], cov(a["n"], a["sum"], a["sum"], a["sum_squares"]))
            for a in (c, t)
        ]
    pooled = {key: c[key] + t[key] for key in c}
    pre_var = cov(pooled["n"], pooled["pre_sum"], pooled["pre_sum"], pooled["pre_sum_squares"])
    post_var = cov(pooled["n"], pooled["sum"], pooled["sum"], pooled["sum_squares"])
    theta = 0.0
    if pre_var > 0 and post_var > 0:
        theta = cov(pooled["n"], pooled["sum"], pooled["pre_sum"], pooled["pre_post_sum_products"]) / pre_var
    moments = []
    for a in (c, t):
        n = a["n"]
        variance = (
            cov(n, a["sum"], a["sum"], a["sum_squares"])
            + theta**2 * cov(n, a["pre_sum"], a["pre_sum"], a["pre_sum_squares"])
            - 2 * theta * cov(n, a["sum"], a["pre_sum"], a["pre_post_sum_products"])
        )
        moments.append((n, a["sum"] / n - theta * a["pre_sum"] / n, a["sum"] / n, variance))
    return moments
