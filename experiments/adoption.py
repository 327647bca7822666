"""Adoption of a pilot: the Bass diffusion forecast, weekly retention cohorts and daily figures.

Bass diffusion (Bass, F. M. (1969). A new product growth for model consumer durables. Management
Science 15(5), 215-227): citizens adopt either on their own (innovation, rate p) or because others
already have (imitation, rate q); of a market potential of m eventual adopters, the cumulative
number who have adopted t days after the start is

    F(t) = m (1 - exp(-(p + q) t)) / (1 + (q / p) exp(-(p + q) t)).

`fit_bass` fits p, q and m to the observed cumulative adopters by nonlinear least squares on that
curve (Srinivasan & Mason, 1986), started from Bass's own discrete-time regression of daily new
adopters on the cumulative ones. Standard errors come from the fit's covariance (the inverse
Gauss-Newton Hessian scaled by the residual variance), intervals from Student's t with n - 3
degrees of freedom, their lower ends clipped at 0 since no parameter can be negative (and the upper
end of m's at the market-potential prior, when one is given). The
forecast band is a confidence band for the curve (not for a single day's noisy count): parameters
are drawn from the normal of the fit's covariance, with a fixed seed, draws with a negative
parameter are rejected, and the band is the central quantiles of the curves drawn.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

from experiments.formatting import Figure, Message
from experiments.i18n import N_

FloatArray = npt.NDArray[np.float64]
BassProblem = Literal["few days", "no growth", "no slowing", "undetermined"]

DEFAULT_LEVEL = 0.95
FORECAST_DRAWS = 4000
FORECAST_SEED = 20260101
#: Fewer observations than this leave no residual degree of freedom for three parameters.
MIN_BASS_OBSERVATIONS = 4
#: The smallest daily innovation rate fitted; a fit that ends on it has found no slowing of adoption.
_SMALLEST_P = 1e-6
#: Upper bounds of the daily innovation and imitation rates, far above any plausible pilot.
_LARGEST_P = 1.0
_LARGEST_Q = 10.0
#: Relative distance under which a fitted parameter counts as sitting on its bound.
_AT_BOUND = 1e-3


class Estimate(NamedTuple):
    """A fitted parameter with its standard error and confidence interval."""

    value: float
    standard_error: float
    low: float
    high: float


class Forecast(NamedTuple):
    """Cumulative adopters forecast on given days since the start, with a confidence band."""

    days: tuple[float, ...]
    adopters: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    level: float


def bass_cumulative(
    days: npt.ArrayLike, p: float | FloatArray, q: float | FloatArray, m: float | FloatArray
) -> FloatArray:
    """Returns F(t), the Bass cumulative adopters on each day t since the start (parameters broadcast)."""
    t = np.asarray(days, dtype=np.float64)
    decay = np.exp(-(p + q) * t)
    return np.asarray(m * (1.0 - decay) / (1.0 + (q / p) * decay), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class BassFit:
    """A Bass diffusion model fitted to a pilot's cumulative adopters (see the module docstring).

    `innovation` is p and `imitation` q, both per day; `market_potential` is m, in citizens.
    A fit that could not be made carries `error` and no estimates.
    """

    innovation: Estimate | None
    imitation: Estimate | None
    market_potential: Estimate | None
    #: Covariance of (p, q, m).
    covariance: tuple[tuple[float, float, float], ...] | None
    observations: int
    residual_sd: float | None
    level: float
    error: str | None = None
    #: Why no fit was made, in a word `explain_forecast` reads: few days, no growth, no slowing, or
    #: undetermined (any other failure).
    problem: BassProblem | None = None

    @property
    def parameters(self) -> tuple[float, float, float] | None:
        """Returns the fitted (p, q, m), or None when the fit failed."""
        if self.innovation is None or self.imitation is None or self.market_potential is None:
            return None
        return self.innovation.value, self.imitation.value, self.market_potential.value

    def adopters_at(self, day: float) -> float | None:
        """Returns the forecast cumulative adopters `day` days after the start (None without a fit)."""
        if self.parameters is None:
            return None
        return float(bass_cumulative([day], *self.parameters)[0])

    def forecast(self, days: npt.ArrayLike, *, seed: int = FORECAST_SEED) -> Forecast:
        """Returns the forecast cumulative adopters on `days`, with its confidence band at `level`.

        The band comes from `FORECAST_DRAWS` parameter draws (see the module docstring); without a
        fit every value is NaN.
        """
        t = np.asarray(days, dtype=np.float64)
        if self.parameters is None or self.covariance is None:
            nan = (math.nan,) * len(t)
            return Forecast(tuple(float(d) for d in t), nan, nan, nan, self.level)
        centre = np.array(self.parameters)
        draws = np.random.default_rng(seed).multivariate_normal(
            centre, np.array(self.covariance), size=FORECAST_DRAWS, method="eigh"
        )
        draws = draws[(draws[:, 0] > 0) & (draws[:, 1] >= 0) & (draws[:, 2] > 0)]
        curves = bass_cumulative(t[None, :], draws[:, 0:1], draws[:, 1:2], draws[:, 2:3])
        tail = (1.0 - self.level) / 2.0
        low, high = np.quantile(curves, [tail, 1.0 - tail], axis=0)
        return Forecast(
            days=tuple(float(d) for d in t),
            adopters=tuple(float(a) for a in bass_cumulative(t, *centre)),
            low=tuple(float(a) for a in low),
            high=tuple(float(a) for a in high),
            level=self.level,
        )


def _failed_fit(observations: int, level: float, error: str, problem: BassProblem = "undetermined") -> BassFit:
    return BassFit(None, None, None, None, observations, None, level, error, problem)


def _bass_regression_start(t: FloatArray, y: FloatArray) -> tuple[float, float, float] | None:
    """Returns (p, q, m) from Bass's discrete-time regression, or None when it gives no valid model.

    New adopters per day n = a + b N + c N^2 on the previous cumulative N, with a = p m,
    b = q - p and c = -q / m (Bass, 1969).
    """
    rate = np.diff(y) / np.diff(t)
    previous = y[:-1]
    design = np.column_stack([np.ones_like(previous), previous, previous**2])
    (a, b, c), *_ = np.linalg.lstsq(design, rate, rcond=None)
    discriminant = b * b - 4.0 * a * c
    if c >= 0 or discriminant < 0:
        return None
    m = (-b - math.sqrt(discriminant)) / (2.0 * c)
    if m <= 0:
        return None
    p = a / m
    q = p + b
    if not (0 < p < _LARGEST_P and 0 <= q < _LARGEST_Q):
        return None
    return p, q, m


def _least_squares_fit(
    t: FloatArray, y: FloatArray, start: tuple[float, float, float], ceiling: float, *, fixed_m: bool
) -> tuple[FloatArray, FloatArray, float] | None:
    """Returns (p, q, m), their covariance and the residual sum of squares, or None on failure.

    With `fixed_m`, m stays at `start`'s and its row and column of the covariance are 0.
    """
    lower = np.array([_SMALLEST_P, 0.0, _SMALLEST_P])
    upper = np.array([_LARGEST_P, _LARGEST_Q, ceiling])
    x0 = np.clip(np.array(start), lower, upper)
    free = 2 if fixed_m else 3

    def model(days: FloatArray, *theta: float) -> FloatArray:
        return bass_cumulative(days, *theta, *x0[free:])

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            theta, covariance = optimize.curve_fit(
                model,
                t,
                y,
                p0=x0[:free],
                bounds=(lower[:free], upper[:free]),
                x_scale="jac",
                max_nfev=400,
            )
    except (RuntimeError, ValueError):
        return None
    full_theta = np.concatenate([theta, x0[free:]])
    full_covariance = np.zeros((3, 3))
    full_covariance[:free, :free] = covariance
    residuals = y - bass_cumulative(t, *full_theta)
    return full_theta, full_covariance, float(residuals @ residuals)


def fit_bass(
    days: npt.ArrayLike,
    cumulative_adopters: npt.ArrayLike,
    *,
    market_potential_prior: float | None = None,
    level: float = DEFAULT_LEVEL,
) -> BassFit:
    """Returns the Bass diffusion model fitted to cumulative adopters observed on days since the start.

    `market_potential_prior` is the number of citizens the pilot could reach (`PilotSpec.population`):
    m cannot exceed it (nor the adopters already seen, if more); when the best fit reaches it, m is
    held there (standard error 0) and p and q are fitted again with m fixed. Without a prior, data
    that show no slowing of adoption leave m undetermined and give an error. Data that cannot be
    fitted (fewer than four days, no growth, negative or non-finite values, mismatched lengths) give
    a fit carrying an error message, never an exception.
    """
    try:
        t = np.asarray(days, dtype=np.float64)
        y = np.asarray(cumulative_adopters, dtype=np.float64)
    except (TypeError, ValueError):
        return _failed_fit(0, level, "days and cumulative adopters must be numbers.")
    if t.ndim != 1 or y.ndim != 1:
        return _failed_fit(0, level, "days and cumulative adopters must be one-dimensional.")
    observations = len(t)
    if market_potential_prior is not None and not market_potential_prior > 0:
        return _failed_fit(observations, level, f"market_potential_prior == {market_potential_prior}, must be > 0.")
    if len(y) != observations:
        return _failed_fit(
            observations,
            level,
            f"len(cumulative_adopters) == {len(y)}, must equal len(days) == {observations}.",
        )
    if observations < MIN_BASS_OBSERVATIONS:
        return _failed_fit(
            observations,
            level,
            f"{observations} days of adoption data, at least {MIN_BASS_OBSERVATIONS} are needed for a forecast.",
            "few days",
        )
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        return _failed_fit(observations, level, "adoption data contain a missing or infinite value.")
    if np.any(t < 0) or np.any(y < 0):
        return _failed_fit(observations, level, "days and cumulative adopters must be >= 0.")
    if len(np.unique(t)) != observations:
        return _failed_fit(observations, level, "each day may appear only once in the adoption data.")
    order = np.argsort(t)
    t, y = t[order], y[order]
    if y[-1] <= y[0]:
        return _failed_fit(
            observations, level, "cumulative adopters do not grow: there is nothing to forecast.", "no growth"
        )
    seen = float(y.max())
    ceiling = math.inf if market_potential_prior is None else max(float(market_potential_prior), seen)
    starts = [(0.01, 0.1, min(2.0 * seen, ceiling))]
    regression_start = _bass_regression_start(t, y)
    if regression_start is not None:
        starts.insert(0, regression_start)
    fits = [_least_squares_fit(t, y, start, ceiling, fixed_m=False) for start in starts]
    candidates = [fit for fit in fits if fit is not None]
    if not candidates:
        return _failed_fit(observations, level, "the Bass model could not be fitted to these adoption data.")
    best = min(candidates, key=lambda fit: fit[2])
    fixed_m = best[0][2] >= ceiling * (1.0 - _AT_BOUND)
    if fixed_m:
        refit = _least_squares_fit(t, y, (best[0][0], best[0][1], ceiling), ceiling, fixed_m=True)
        if refit is None:
            return _failed_fit(observations, level, "the Bass model could not be fitted to these adoption data.")
        best = refit
    theta, covariance, residual_ss = best
    if theta[0] <= _SMALLEST_P * (1.0 + _AT_BOUND):
        return _failed_fit(
            observations,
            level,
            "adoption shows no sign of slowing yet, so the market potential cannot be estimated: "
            + (
                "give the number of citizens the pilot could reach (population in the pilot spec), or wait "
                "for more days."
                if market_potential_prior is None
                else "wait for more days of adoption."
            ),
            "no slowing",
        )
    standard_errors = np.sqrt(np.diag(covariance))
    if not np.all(np.isfinite(standard_errors)):
        return _failed_fit(
            observations,
            level,
            "these adoption data do not determine p, q and m (singular covariance): more days are needed.",
        )
    degrees_of_freedom = observations - (2 if fixed_m else 3)
    half_widths = stats.t.ppf(0.5 + level / 2.0, degrees_of_freedom) * standard_errors
    p, q, m = (
        Estimate(float(value), float(se), max(0.0, float(value - half)), min(bound, float(value + half)))
        for value, se, half, bound in zip(
            theta, standard_errors, half_widths, (math.inf, math.inf, ceiling), strict=True
        )
    )
    return BassFit(
        innovation=p,
        imitation=q,
        market_potential=m,
        covariance=tuple((float(row[0]), float(row[1]), float(row[2])) for row in covariance),
        observations=observations,
        residual_sd=math.sqrt(residual_ss / degrees_of_freedom),
        level=level,
    )


class RetentionMatrix(NamedTuple):
    """Weekly retention cohorts, drawn as a heat map: one row per cohort, one column per week.

    `rates[i][k]` is the share of cohort `cohorts[i]` (the participants whose first week starts
    that day, `sizes[i]` of them) active during its week `weeks[k]`; None for weeks not yet reached
    by `as_of`.
    """

    cohorts: tuple[date, ...]
    weeks: tuple[int, ...]
    sizes: tuple[int, ...]
    active: tuple[tuple[int | None, ...], ...]
    rates: tuple[tuple[float | None, ...], ...]
    as_of: date

    def average(self) -> tuple[float | None, ...]:
        """Returns the retention curve: per week, active over size summed over the cohorts that reached it."""
        curve: list[float | None] = []
        for k in range(len(self.weeks)):
            reached = [(row[k], size) for row, size in zip(self.active, self.sizes, strict=True) if row[k] is not None]
            total = sum(size for _, size in reached)
            curve.append(sum(active or 0 for active, _ in reached) / total if total else None)
        return tuple(curve)


def retention_matrix(
    cohort_sizes: Mapping[date, int],
    active_counts: Mapping[tuple[date, int], int],
    *,
    as_of: date | None = None,
) -> RetentionMatrix:
    """Returns the weekly retention matrix of cohorts keyed by the first day of their first week.

    `active_counts[(cohort, k)]` is how many of the cohort were active during days [7k, 7k + 7)
    after the cohort's start; a week a cohort has reached without a count has 0 active. `as_of`
    (by default the start of the latest week any count refers to) decides which weeks each cohort
    has reached.
    """
    for cohort, size in cohort_sizes.items():
        if size < 0:
            raise ValueError(f"cohort_sizes[{cohort}] == {size}, must be >= 0.")
    for (cohort, week), count in active_counts.items():
        if cohort not in cohort_sizes:
            raise ValueError(f"active_counts has cohort {cohort}, which is not in cohort_sizes.")
        if week < 0:
            raise ValueError(f"active_counts[({cohort}, {week})] has week == {week}, must be >= 0.")
        if not 0 <= count <= cohort_sizes[cohort]:
            raise ValueError(
                f"active_counts[({cohort}, {week})] == {count}, must be between 0 and the cohort size "
                f"{cohort_sizes[cohort]}."
            )
    cohorts = tuple(sorted(cohort_sizes))
    if as_of is None:
        starts = [cohort + timedelta(weeks=week) for cohort, week in active_counts]
        as_of = max([*cohorts, *starts]) if cohorts else date.min
    last_week = max(((as_of - cohort).days // 7 for cohort in cohorts), default=-1)
    weeks = tuple(range(last_week + 1))
    active = tuple(
        tuple(
            active_counts.get((cohort, week), 0) if cohort + timedelta(weeks=week) <= as_of else None for week in weeks
        )
        for cohort in cohorts
    )
    sizes = tuple(cohort_sizes[cohort] for cohort in cohorts)
    rates = tuple(
        tuple(None if count is None or size == 0 else count / size for count in row)
        for row, size in zip(active, sizes, strict=True)
    )
    return RetentionMatrix(cohorts, weeks, sizes, active, rates, as_of)


class DailyAdoption(NamedTuple):
    """One day of a pilot: active participants, those active for the first time, the others, and
    the cumulative adopters up to that day."""

    day: date
    days_since_start: int
    active: int
    new: int
    returning: int
    cumulative_adopters: int


def daily_adoption(
    start: date, new_by_day: Mapping[date, int], active_by_day: Mapping[date, int]
) -> tuple[DailyAdoption, ...]:
    """Returns one record per day from `start` to the last day with data (days without data count 0).

    `new_by_day` are participants active for the first time that day, `active_by_day` all those
    active that day; returning = active - new.
    """
    for name, counts in (("new_by_day", new_by_day), ("active_by_day", active_by_day)):
        for day, count in counts.items():
            if count < 0:
                raise ValueError(f"{name}[{day}] == {count}, must be >= 0.")
            if day < start:
                raise ValueError(f"{name} has day {day}, must be >= start == {start}.")
    last = max([*new_by_day, *active_by_day], default=None)
    if last is None:
        return ()
    records: list[DailyAdoption] = []
    cumulative = 0
    for offset in range((last - start).days + 1):
        day = start + timedelta(days=offset)
        new, active = new_by_day.get(day, 0), active_by_day.get(day, 0)
        if new > active:
            raise ValueError(f"new_by_day[{day}] == {new}, must be <= active_by_day[{day}] == {active}.")
        cumulative += new
        records.append(DailyAdoption(day, offset, active, new, active - new, cumulative))
    return tuple(records)


#: Fewer days of adoption than this make any forecast fragile, however well the curve fits.
TRUSTED_DAYS = 28
#: A band whose upper end is more than this many times its lower end says little.
WIDE_BAND = 2.0


class ForecastReading(NamedTuple):
    """The Bass forecast in words: what it says (`summary`), its band, and when not to trust it
    (`cautions`, empty when nothing calls for caution). Sentences are language-neutral messages."""

    summary: Message
    cautions: tuple[Message, ...]

    @property
    def trusted(self) -> bool:
        """Returns True when nothing calls for caution."""
        return not self.cautions


def peak_day(p: float, q: float) -> float:
    """Returns the day newcomers peak under the Bass model (the curve's inflection): ln(q/p) / (p + q),
    0 when imitation does not exceed innovation (newcomers only decline)."""
    return math.log(q / p) / (p + q) if q > p > 0 else 0.0


def explain_forecast(
    fit: BassFit,
    *,
    pilot_age_days: float,
    adopters: float,
    latest_new: float,
    horizon_days: float,
    population: float | None = None,
) -> ForecastReading:
    """Returns the forecast explained: where the curve is heading and why it flattens, with its band,
    and the reasons not to trust it (too few days, no inflection yet, a market potential held at the
    population, a wide band)."""
    if fit.parameters is None or fit.market_potential is None:
        reasons = {
            "few days": N_(
                "No forecast yet: {days} days of adoption, the model needs at least {needed} to be fitted and "
                "about {trusted} to be trusted."
            ),
            "no growth": N_("No forecast: the number of adopters does not grow, so there is nothing to project."),
            "no slowing": N_(
                "No forecast yet: adoption has not started slowing, so nothing says yet where it will stop. "
                "The model needs the daily newcomers to pass their peak (or the pilot's population as a ceiling)."
            ),
            "undetermined": N_("No forecast: the model could not be fitted to these adoption figures."),
        }
        summary = Message.of(
            reasons[fit.problem or "undetermined"],
            days=Figure("count", pilot_age_days),
            needed=Figure("count", MIN_BASS_OBSERVATIONS),
            trusted=Figure("count", TRUSTED_DAYS),
        )
        return ForecastReading(summary, ())
    p, q, m = fit.parameters
    band = fit.forecast([horizon_days])
    tomorrow = float(bass_cumulative([pilot_age_days + 1], p, q, m)[0] - bass_cumulative([pilot_age_days], p, q, m)[0])
    summary = Message.of(
        N_(
            "The model expects about {total} adopters in all ({low} to {high}, {level} band of the curve), "
            "{at_horizon} by day {horizon}. {adopters} have joined so far, {latest} on the latest day. The curve "
            "flattens because it assumes the citizens who could adopt the service are being used up: each day "
            "fewer are left to join, about {tomorrow} a day from now on."
        ),
        total=Figure("count", m),
        low=Figure("count", fit.market_potential.low),
        high=Figure("count", fit.market_potential.high),
        level=Figure("share", fit.level),
        at_horizon=Figure("count", band.adopters[0]),
        horizon=Figure("count", horizon_days),
        adopters=Figure("count", adopters),
        latest=Figure("count", latest_new),
        tomorrow=Figure("count", max(0.0, tomorrow)),
    )
    cautions: list[Message] = []
    if pilot_age_days < TRUSTED_DAYS:
        cautions.append(
            Message.of(
                N_("Only {days} days of adoption: with fewer than {trusted}, the forecast can still move a lot."),
                days=Figure("count", pilot_age_days),
                trusted=Figure("count", TRUSTED_DAYS),
            )
        )
    peak = peak_day(p, q)
    if peak > pilot_age_days:
        cautions.append(
            Message.of(
                N_(
                    "No inflection yet: the model puts the peak of newcomers on day {peak}, still to come. Until "
                    "adoption slows, where it stops is a guess."
                ),
                peak=Figure("count", peak),
            )
        )
    if population is not None and fit.market_potential.standard_error == 0:
        cautions.append(
            Message.of(
                N_(
                    "The total is held at the pilot's population ({population} citizens): the figures alone would "
                    "put it higher."
                ),
                population=Figure("count", population),
            )
        )
    low, high = band.low[0], band.high[0]
    if math.isfinite(low) and math.isfinite(high) and high > WIDE_BAND * max(low, 1.0):
        cautions.append(
            Message.of(
                N_("The band is wide ({low} to {high} adopters by day {horizon}): the figures do not settle it yet."),
                low=Figure("count", low),
                high=Figure("count", high),
                horizon=Figure("count", horizon_days),
            )
        )
    return ForecastReading(summary, tuple(cautions))
