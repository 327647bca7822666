"""Calibration by seeded simulation: A/A false positives, and continuous peeking."""

from __future__ import annotations

import pytest
from scipy import stats

from experiments.stats import config
from experiments.stats.calibration import aa_rejection_rate, peeking_false_positive_rates

EXPERIMENTS = config.CALIBRATION_EXPERIMENTS
ALPHA = 0.05
LOW, HIGH = (bound / EXPERIMENTS for bound in stats.binom.interval(0.99, EXPERIMENTS, ALPHA))


@pytest.mark.parametrize("metric_type", ["proportion", "mean"])
@pytest.mark.parametrize("engine", ["frequentist", "bayesian"])
@pytest.mark.parametrize("difference", ["relative", "absolute"])
def test_aa_tests_reject_at_alpha(metric_type: str, engine: str, difference: str) -> None:
    rate = aa_rejection_rate(metric_type, engine, difference=difference, alpha=ALPHA)  # type: ignore[arg-type]
    print(f"A/A {metric_type} {engine} {difference}: {rate:.4f} (99% interval {LOW:.4f}-{HIGH:.4f})")
    assert LOW <= rate <= HIGH


@pytest.mark.parametrize("metric_type", ["proportion", "mean"])
def test_sequential_aa_tests_reject_at_most_alpha_at_a_fixed_horizon(metric_type: str) -> None:
    rate = aa_rejection_rate(metric_type, "sequential", alpha=ALPHA)  # type: ignore[arg-type]
    print(f"A/A {metric_type} sequential: {rate:.4f}")
    assert rate <= ALPHA


def test_under_continuous_peeking_only_the_sequential_engine_keeps_alpha() -> None:
    rates = peeking_false_positive_rates(alpha=ALPHA)
    print(
        f"peeking over {rates.looks} looks: fixed-horizon {rates.fixed_horizon:.4f}, sequential {rates.sequential:.4f}"
    )
    assert rates.sequential <= ALPHA
    assert rates.fixed_horizon > 2 * HIGH
