"""Gaussian Bayesian inference on the effect: chance to win, credible interval, expected loss."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from experiments.stats.statistics import Values


class Posterior(NamedTuple):
    """The posterior of the effect summarised for a decision."""

    mean: Values
    sd: Values
    chance_to_win: Values
    low: Values
    high: Values
    #: E[max(-effect, 0)]: what choosing the treatment loses on average, in the effect's scale.
    expected_loss: Values


def gaussian_posterior(effect: Values, variance: Values, alpha: float) -> Posterior:
    """Returns the posterior of the effect under a flat prior: Normal(effect, variance).

    Chance to win is P(effect > 0); the interval is the central 1 - alpha credible interval; the
    expected loss of choosing the treatment is sd phi(m/sd) - m Phi(-m/sd), the risk of
    Stucchio (2015), "Bayesian A/B Testing at VWO".
    """
    sd = np.sqrt(variance)
    z = effect / sd
    z_alpha = special.ndtri(1 - alpha / 2)
    return Posterior(
        mean=effect,
        sd=sd,
        chance_to_win=special.ndtr(z),
        low=effect - z_alpha * sd,
        high=effect + z_alpha * sd,
        expected_loss=sd * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi) - effect * special.ndtr(-z),
    )
