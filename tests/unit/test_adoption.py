from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from experiments.adoption import (
    BassFit,
    DailyAdoption,
    bass_cumulative,
    daily_adoption,
    fit_bass,
    retention_matrix,
)

P, Q, M = 0.004, 0.09, 5000.0
DAYS = np.arange(0, 121, dtype=float)


def noisy_curve(seed: int, noise_sd: float = 25.0, days: np.ndarray = DAYS) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.maximum(bass_cumulative(days, P, Q, M) + rng.normal(0.0, noise_sd, len(days)), 0.0))


def estimates(fit: BassFit) -> tuple[float, float, float]:
    assert fit.error is None, fit.error
    assert fit.parameters is not None
    return fit.parameters


def test_bass_cumulative_starts_at_zero_and_saturates_at_market_potential() -> None:
    curve = bass_cumulative([0.0, 30.0, 2000.0], P, Q, M)
    assert curve[0] == 0.0
    assert 0.0 < curve[1] < M
    assert curve[2] == pytest.approx(M)


def test_bass_cumulative_has_the_closed_form_of_bass_1969() -> None:
    t = 40.0
    expected = M * (1 - math.exp(-(P + Q) * t)) / (1 + (Q / P) * math.exp(-(P + Q) * t))
    assert bass_cumulative([t], P, Q, M)[0] == pytest.approx(expected)


def test_fit_recovers_known_parameters_within_their_intervals() -> None:
    fit = fit_bass(DAYS, noisy_curve(seed=0))
    p, q, m = estimates(fit)
    assert fit.innovation is not None and fit.imitation is not None and fit.market_potential is not None
    assert fit.innovation.low <= P <= fit.innovation.high
    assert fit.imitation.low <= Q <= fit.imitation.high
    assert fit.market_potential.low <= M <= fit.market_potential.high
    assert p == pytest.approx(P, rel=0.05)
    assert q == pytest.approx(Q, rel=0.03)
    assert m == pytest.approx(M, rel=0.01)
    assert fit.residual_sd == pytest.approx(25.0, rel=0.2)


def test_fit_intervals_cover_the_true_parameters_about_95_percent_of_the_time() -> None:
    runs = 60
    covered = np.zeros(3)
    for seed in range(runs):
        fit = fit_bass(DAYS, noisy_curve(seed))
        assert fit.innovation and fit.imitation and fit.market_potential
        for i, (estimate, truth) in enumerate(((fit.innovation, P), (fit.imitation, Q), (fit.market_potential, M))):
            covered[i] += estimate.low <= truth <= estimate.high
    assert np.all(covered / runs >= 0.85), covered / runs


def test_fit_accepts_unsorted_days() -> None:
    y = noisy_curve(seed=3)
    order = np.random.default_rng(0).permutation(len(DAYS))
    shuffled = fit_bass(DAYS[order], [y[i] for i in order])
    assert estimates(shuffled) == pytest.approx(estimates(fit_bass(DAYS, y)), rel=1e-6)


def test_forecast_band_surrounds_the_central_curve_and_is_reproducible() -> None:
    fit = fit_bass(DAYS[:40], noisy_curve(seed=1, noise_sd=5.0, days=DAYS[:40]))
    forecast = fit.forecast([10.0, 60.0, 365.0])
    assert forecast.level == 0.95
    for low, centre, high in zip(forecast.low, forecast.adopters, forecast.high, strict=True):
        assert low <= centre <= high
    assert forecast.high[2] - forecast.low[2] > forecast.high[0] - forecast.low[0]
    assert forecast == fit.forecast([10.0, 60.0, 365.0])
    assert forecast.adopters[2] == pytest.approx(fit.adopters_at(365.0))


def test_forecast_band_covers_the_true_curve() -> None:
    fit = fit_bass(DAYS[:45], noisy_curve(seed=2, noise_sd=10.0, days=DAYS[:45]))
    days = [20.0, 45.0, 90.0, 365.0]
    forecast = fit.forecast(days)
    truth = bass_cumulative(days, P, Q, M)
    assert np.all(np.array(forecast.low) <= truth)
    assert np.all(truth <= np.array(forecast.high))


def test_adopters_at_is_the_fitted_curve() -> None:
    fit = fit_bass(DAYS, noisy_curve(seed=4))
    assert fit.adopters_at(50.0) == pytest.approx(bass_cumulative([50.0], *estimates(fit))[0])


def test_market_potential_never_exceeds_the_prior() -> None:
    fit = fit_bass(DAYS[:30], noisy_curve(seed=5, noise_sd=5.0, days=DAYS[:30]), market_potential_prior=3000)
    assert fit.market_potential is not None
    assert fit.market_potential.value == pytest.approx(3000.0)
    assert fit.market_potential.standard_error == 0.0
    assert fit.market_potential.high <= 3000.0


def test_a_generous_prior_leaves_the_fit_unchanged() -> None:
    y = noisy_curve(seed=6)
    assert estimates(fit_bass(DAYS, y, market_potential_prior=1e6)) == pytest.approx(
        estimates(fit_bass(DAYS, y)), rel=1e-4
    )


def test_steady_growth_without_a_prior_cannot_give_a_market_potential() -> None:
    fit = fit_bass([0, 1, 2, 3, 4], [0, 10, 20, 30, 40])
    assert fit.parameters is None
    assert fit.error is not None and "population in the pilot spec" in fit.error


def test_steady_growth_with_a_prior_is_forecast_up_to_it() -> None:
    fit = fit_bass([0, 1, 2, 3, 4], [0, 10, 20, 30, 40], market_potential_prior=500)
    forecast = fit.adopters_at(10_000)
    assert fit.error is None
    assert forecast == pytest.approx(500.0, rel=1e-3)


@pytest.mark.parametrize(
    ("days", "adopters", "prior", "message"),
    [
        ([0, 1, 2], [0, 1, 2], None, "at least 4"),
        ([0, 1, 2, 3], [0, 1, 2], None, "must equal len"),
        ([0, 1, 2, 3], [5, 5, 5, 5], None, "do not grow"),
        ([0, 1, 2, 3], [0, 1, -2, 3], None, "must be >= 0"),
        ([0, 1, 2, 3], [0, 1, math.nan, 3], None, "missing or infinite"),
        ([0, 1, 1, 3], [0, 1, 2, 3], None, "only once"),
        ([0, 1, 2, 3], [0, 1, 2, 4], 0, "market_potential_prior == 0, must be > 0"),
    ],
)
def test_degenerate_data_give_a_fit_carrying_an_error(
    days: list[float], adopters: list[float], prior: float | None, message: str
) -> None:
    fit = fit_bass(days, adopters, market_potential_prior=prior)
    assert fit.error is not None and message in fit.error
    assert fit.adopters_at(100) is None
    forecast = fit.forecast([1.0, 2.0])
    assert forecast.days == (1.0, 2.0)
    assert all(math.isnan(v) for v in forecast.adopters + forecast.low + forecast.high)


WEEK0 = date(2026, 11, 2)
WEEK1 = WEEK0 + timedelta(weeks=1)
WEEK2 = WEEK0 + timedelta(weeks=2)


def test_retention_matrix_rates_per_cohort_and_week() -> None:
    matrix = retention_matrix(
        {WEEK1: 50, WEEK0: 100, WEEK2: 20},
        {(WEEK0, 0): 100, (WEEK0, 1): 40, (WEEK0, 2): 30, (WEEK1, 0): 50, (WEEK1, 1): 25, (WEEK2, 0): 20},
    )
    assert matrix.cohorts == (WEEK0, WEEK1, WEEK2)
    assert matrix.weeks == (0, 1, 2)
    assert matrix.sizes == (100, 50, 20)
    assert matrix.as_of == WEEK2
    assert matrix.rates == ((1.0, 0.4, 0.3), (1.0, 0.5, None), (1.0, None, None))
    assert matrix.active[1] == (50, 25, None)


def test_retention_matrix_counts_reached_weeks_without_activity_as_zero() -> None:
    matrix = retention_matrix({WEEK0: 10}, {(WEEK0, 0): 10}, as_of=WEEK2)
    assert matrix.rates == ((1.0, 0.0, 0.0),)


def test_retention_average_weights_cohorts_by_size_over_those_that_reached_the_week() -> None:
    matrix = retention_matrix(
        {WEEK0: 100, WEEK1: 50},
        {(WEEK0, 0): 80, (WEEK0, 1): 40, (WEEK1, 0): 20},
    )
    assert matrix.average() == pytest.approx((100 / 150, 0.4))


def test_retention_matrix_of_an_empty_cohort_has_no_rates() -> None:
    matrix = retention_matrix({WEEK0: 0}, {}, as_of=WEEK1)
    assert matrix.rates == ((None, None),)
    assert matrix.average() == (None, None)


@pytest.mark.parametrize(
    ("sizes", "active", "message"),
    [
        ({WEEK0: 10}, {(WEEK0, 0): 11}, "must be between 0 and the cohort size 10"),
        ({WEEK0: -1}, {}, "must be >= 0"),
        ({WEEK0: 10}, {(WEEK1, 0): 1}, "not in cohort_sizes"),
        ({WEEK0: 10}, {(WEEK0, -1): 1}, "week == -1"),
    ],
)
def test_retention_matrix_rejects_inconsistent_counts(
    sizes: dict[date, int], active: dict[tuple[date, int], int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        retention_matrix(sizes, active)


def test_daily_adoption_accumulates_new_participants_and_fills_quiet_days() -> None:
    start = date(2026, 11, 1)
    days = daily_adoption(
        start,
        new_by_day={start: 5, start + timedelta(days=2): 3},
        active_by_day={start: 5, start + timedelta(days=1): 2, start + timedelta(days=2): 6},
    )
    assert days == (
        DailyAdoption(start, 0, 5, 5, 0, 5),
        DailyAdoption(start + timedelta(days=1), 1, 2, 0, 2, 5),
        DailyAdoption(start + timedelta(days=2), 2, 6, 3, 3, 8),
    )


def test_daily_adoption_without_data_is_empty() -> None:
    assert daily_adoption(date(2026, 11, 1), {}, {}) == ()


def test_daily_adoption_rejects_more_new_than_active_participants() -> None:
    start = date(2026, 11, 1)
    with pytest.raises(ValueError, match=r"new_by_day\[2026-11-01\] == 4, must be <= active_by_day"):
        daily_adoption(start, {start: 4}, {start: 3})


def test_adoption_data_that_are_not_a_series_give_a_fit_carrying_an_error() -> None:
    assert fit_bass([[0, 1], [2, 3]], [[0, 1], [2, 3]]).error == (
        "days and cumulative adopters must be one-dimensional."
    )
    assert fit_bass(["a", "b", "c", "d"], [0, 1, 2, 3]).error == "days and cumulative adopters must be numbers."
