"""Runs an analysis request of analysis.md through GrowthBook's gbstats 0.8.0, one comparison at a time.

Runs inside .venv-gbstats (gbstats pins numpy<2), never inside the project's virtualenv. Shared by the
fixture generator (tools/gbstats/generate_fixtures.py) and the benchmark baseline
(benchmarks/gbstats_timing.py).
"""

from __future__ import annotations

from typing import Any

from gbstats.bayesian.tests import BayesianTestResult, EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import (
    FrequentistConfig,
    FrequentistTestResult,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    TestStatistic,
)
from gbstats.utils import check_srm

Request = dict[str, Any]


def statistic(metric_type: str, arm: dict[str, Any]) -> TestStatistic:
    """Returns the gbstats statistic of one arm (a new object: gbstats writes theta into CUPED statistics)."""
    n = arm["n"]
    if metric_type == "proportion":
        return ProportionStatistic(n=n, sum=arm["sum"])
    post = SampleMeanStatistic(n=n, sum=arm["sum"], sum_squares=arm["sum_squares"])
    if metric_type == "ratio":
        return RatioStatistic(
            n=n,
            m_statistic=post,
            d_statistic=SampleMeanStatistic(n=n, sum=arm["den_sum"], sum_squares=arm["den_sum_squares"]),
            m_d_sum_of_products=arm["sum_products"],
        )
    if "pre_sum" in arm:
        return RegressionAdjustedStatistic(
            n=n,
            post_statistic=post,
            pre_statistic=SampleMeanStatistic(n=n, sum=arm["pre_sum"], sum_squares=arm["pre_sum_squares"]),
            post_pre_sum_of_products=arm["pre_post_sum_products"],
            theta=0,
        )
    return post


def ab_test(
    request: Request, control: TestStatistic, treatment: TestStatistic
) -> TwoSidedTTest | SequentialTwoSidedTTest | EffectBayesianABTest:
    """Returns the gbstats per-comparison test the request's engine corresponds to."""
    engine = request.get("engine", "frequentist")
    difference = request.get("difference", "relative")
    alpha = request.get("alpha", 0.05)
    if engine == "bayesian":
        return EffectBayesianABTest(control, treatment, EffectBayesianConfig(difference_type=difference, alpha=alpha))
    if engine == "sequential":
        tuning = request.get("sequential_tuning", 5000)
        config = SequentialConfig(difference_type=difference, alpha=alpha, sequential_tuning_parameter=tuning)
        return SequentialTwoSidedTTest(control, treatment, config)
    return TwoSidedTTest(control, treatment, FrequentistConfig(difference_type=difference, alpha=alpha))


Outcome = FrequentistTestResult | BayesianTestResult | ZeroDivisionError


def statistic_pairs(request: Request) -> list[tuple[str, str, TestStatistic, TestStatistic]]:
    """Returns (metric, treatment, control statistic, treatment statistic) for every comparison, in request order."""
    variants = list(request["variants"])
    control_name = request.get("control", variants[0])
    return [
        (
            metric["name"],
            name,
            statistic(metric["type"], metric["data"][control_name]),
            statistic(metric["type"], metric["data"][name]),
        )
        for metric in request["metrics"]
        for name in variants
        if name != control_name
    ]


def outcome(request: Request, control: TestStatistic, treatment: TestStatistic) -> Outcome:
    """Returns gbstats' result for one comparison, or the ZeroDivisionError it raises.

    It raises one where its Bayesian test rescales its (flat) prior by the control mean under an
    absolute difference and divides by the result.
    """
    test = ab_test(request, control, treatment)
    try:
        return test.compute_result()
    except ZeroDivisionError as error:
        return error


def srm_p_value(request: Request) -> float:
    """Returns gbstats' SRM p-value for the request's variants."""
    variants = request["variants"].values()
    return float(check_srm([v["units"] for v in variants], [v.get("weight", 1.0) for v in variants]))
