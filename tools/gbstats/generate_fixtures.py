"""Writes the reference fixtures of the stats engine with GrowthBook's gbstats 0.8.0.

Run inside its own virtualenv (gbstats pins numpy<2):

    python3 -m venv .venv-gbstats
    .venv-gbstats/bin/pip install -r tools/gbstats/requirements.txt
    .venv-gbstats/bin/python tools/gbstats/generate_fixtures.py

It draws seeded random analysis requests (analysis.md format: proportion, mean, CUPED mean and ratio
metrics; relative and absolute differences; the three engines; 2 to 4 arms; degenerate arms on purpose),
runs every (metric, treatment) comparison through gbstats' per-comparison classes (TwoSidedTTest,
SequentialTwoSidedTTest, EffectBayesianABTest, with RegressionAdjustedStatistic and RatioStatistic) and
its SRM check, and writes requests and results to tests/unit/stats/fixtures/gbstats_0_8_0.json.

Where analysis.md and gbstats 0.8.0 differ, analysis.md wins and the row carries `spec_differs` with the
reason; tests/unit/stats check such rows against an independent scipy computation instead:

- Absolute difference, frequentist or sequential engine, control mean 0: gbstats refuses the comparison
  (ZERO_NEGATIVE_BASELINE_VARIATION; its TTest checks the control mean whatever the difference type);
  analysis.md only refuses a zero control mean under a relative difference.
- CUPED, control's *adjusted* mean 0 while its unadjusted mean is not (every engine and difference but
  Bayesian absolute): gbstats refuses (it tests `stat_a.mean`, the adjusted mean); analysis.md only
  refuses a zero unadjusted control mean under a relative difference, and computes.
- Absolute difference, Bayesian engine, control mean 0: gbstats raises ZeroDivisionError (its flat
  prior, stated on the relative scale, is rescaled by the squared control mean to variance 0, then
  divided by); analysis.md computes the flat-prior posterior.
- Error rows: gbstats returns placeholder numbers (effect 0, p-value 1, chance to win 0.5) with an error
  message; analysis.md returns null numbers, and the row takes no part in the corrections. Fixture rows
  keep gbstats' message in `error`; the tests only require that both refuse.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adapter import Request, outcome, srm_p_value, statistic_pairs
from gbstats.messages import BASELINE_VARIATION_ZERO_MESSAGE

SEED = 20261126
CASES = 240
OUTPUT = Path(__file__).resolve().parents[2] / "tests" / "unit" / "stats" / "fixtures" / "gbstats_0_8_0.json"
ENGINES = ("frequentist", "sequential", "bayesian")
KINDS = ("proportion", "mean", "cuped", "ratio")
#: Chance that an arm of a metric is degenerate (empty, one unit, constant, zero mean, zero denominator).
DEGENERATE_SHARE = 0.05
DEGENERATES = {
    "proportion": ("empty", "single", "constant", "zero"),
    "mean": ("empty", "single", "constant", "zero", "zero_mean"),
    "cuped": ("empty", "single", "constant", "zero", "zero_mean", "constant_pre"),
    "ratio": ("empty", "single", "constant", "zero", "zero_denominator"),
}


def main() -> None:
    rng = np.random.default_rng(SEED)
    cases = [case(rng, index) for index in range(CASES)]
    cases += [case_of(request) for request in handmade_requests()]
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    header = {"gbstats_version": "0.8.0", "seed": SEED, "generator": "tools/gbstats/generate_fixtures.py"}
    lines = ",\n".join(json.dumps(c, separators=(",", ":")) for c in cases)
    OUTPUT.write_text(json.dumps(header)[:-1] + ', "cases": [\n' + lines + "\n]}\n")
    rows = sum(len(c["comparisons"]) for c in cases)
    errors = sum(r["error"] is not None for c in cases for r in c["comparisons"])
    differing = sum(r["spec_differs"] is not None for c in cases for r in c["comparisons"])
    print(f"wrote {OUTPUT}: {len(cases)} requests, {rows} comparisons ({errors} refused, {differing} differ)")


def case(rng: np.random.Generator, index: int) -> dict[str, Any]:
    """Returns one fixture case for a random request."""
    return case_of(random_request(rng, index))


def case_of(request: Request) -> dict[str, Any]:
    """Returns one fixture case: a request, gbstats' SRM p-value and its comparison results."""
    rows = [
        row(request, metric, variant, control, treatment, outcome(request, control, treatment))
        for metric, variant, control, treatment in statistic_pairs(request)
    ]
    return {"request": request, "srm_p_value": srm_p_value(request), "comparisons": rows}


def random_request(rng: np.random.Generator, index: int) -> Request:
    arms = int(rng.choice([2, 2, 3, 3, 4]))
    names = ["control", *(f"treatment_{i}" for i in range(1, arms))]
    if index % 5 == 0:
        names = names[1:] + names[:1]
    weights = rng.dirichlet(np.full(arms, 8.0)) if rng.random() < 0.5 else np.full(arms, 1.0 / arms)
    base_units = int(rng.choice([30, 300, 3000, 20000]))
    units = rng.multinomial(base_units * arms, weights)
    if rng.random() < 0.15:
        units[-1] = int(units[-1] * rng.uniform(0.8, 0.97))
    metrics = []
    for m in range(int(rng.integers(1, 5))):
        kind = str(rng.choice(KINDS))
        data = arm_data(rng, kind, names)
        metrics.append({"name": f"{kind}_{m}", "type": "mean" if kind == "cuped" else kind, "data": data})
    return {
        "engine": ENGINES[index % 3],
        "difference": "relative" if index % 6 < 3 else "absolute",
        "alpha": float(rng.choice([0.01, 0.05, 0.05, 0.1, round(float(rng.uniform(0.001, 0.3)), 6)])),
        "sequential_tuning": float(rng.choice([500, 5000, 5000, 50000])),
        "correction": str(rng.choice(["none", "holm", "bh"])),
        "control": "control",
        "variants": {n: {"units": int(u), "weight": float(w)} for n, u, w in zip(names, units, weights, strict=True)},
        "metrics": metrics,
    }


def handmade_requests() -> list[Request]:
    """Returns requests that reach every documented difference between analysis.md and gbstats 0.8.0.

    A mean metric whose control mean is exactly 0 (values symmetric around 0), and a CUPED metric whose
    pooled theta is exactly 1 and whose control post and pre means are equal, so that control's adjusted
    mean is exactly 0 while its unadjusted mean is not; each under every engine and difference.
    """
    zero_mean = [-2.0, -1.0, 0.0, 1.0, 2.0, -0.5, 0.5]
    pre = [1.0, 2.0, 3.0, 4.0]
    metrics = [
        {
            "name": "mean_zero_control",
            "type": "mean",
            "data": {"control": sums_of(zero_mean), "treatment": sums_of([x + 0.8 for x in zero_mean])},
        },
        {
            "name": "cuped_zero_adjusted_control",
            "type": "mean",
            "data": {
                "control": sums_of([1.5, 1.5, 2.5, 4.5], pre),
                "treatment": sums_of([2.5, 2.5, 3.5, 5.5], pre),
            },
        },
    ]
    return [
        {
            "engine": engine,
            "difference": difference,
            "control": "control",
            "variants": {"control": {"units": 7, "weight": 0.5}, "treatment": {"units": 7, "weight": 0.5}},
            "metrics": metrics,
        }
        for engine in ENGINES
        for difference in ("relative", "absolute")
    ]


def sums_of(post: list[float], pre: list[float] | None = None) -> dict[str, Any]:
    values = np.array(post)
    if pre is None:
        return {"n": values.size, **sums("", values)}
    covariate = np.array(pre)
    products = {"pre_post_sum_products": float(values @ covariate)}
    return {"n": values.size, **sums("", values), **sums("pre_", covariate), **products}


def arm_data(rng: np.random.Generator, kind: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """Returns one metric's sufficient statistics in every arm, from simulated per-unit values."""
    scale = float(rng.lognormal(0.0, 1.5))
    lift = float(rng.normal(0.0, 0.08))
    data = {}
    for position, name in enumerate(names):
        n = int(rng.choice([3, 12, 40, 400, 3000, 3000]))
        effect = 1.0 + (lift if position > 0 else 0.0)
        degenerate = str(rng.choice(DEGENERATES[kind])) if rng.random() < DEGENERATE_SHARE else ""
        data[name] = simulate(rng, kind, n, scale, effect, degenerate)
    return data


def simulate(
    rng: np.random.Generator, kind: str, n: int, scale: float, effect: float, degenerate: str
) -> dict[str, Any]:
    """Returns one arm's sufficient statistics; `degenerate` names a case the engine must refuse or handle."""
    if degenerate == "empty":
        n = 0
    elif degenerate == "single":
        n = 1
    if kind == "proportion":
        p = min(0.95, 1.0 / (1.0 + scale)) * effect
        conversions = int(rng.binomial(n, min(p, 1.0)))
        if degenerate in ("constant", "zero"):
            conversions = 0 if degenerate == "zero" else n
        return {"n": n, "sum": conversions}
    if kind == "ratio":
        den = rng.poisson(3.0, n).astype(float) + 1.0
        num = rng.poisson(den * scale * effect).astype(float)
        if degenerate == "constant":
            num, den = np.full(n, 2.0), np.full(n, 1.0)
        elif degenerate == "zero":
            num = np.zeros(n)
        elif degenerate == "zero_denominator":
            num, den = np.zeros(n), np.zeros(n)
        return {
            "n": n,
            **sums("", num),
            "den_sum": float(den.sum()),
            "den_sum_squares": float(den @ den),
            "sum_products": float(num @ den),
        }
    pre = rng.lognormal(np.log(scale), 0.7, n)
    post = 0.3 * scale + rng.uniform(0.4, 1.1) * pre * effect + rng.normal(0.0, scale * 0.6, n)
    if degenerate == "constant":
        post = np.full(n, scale)
    elif degenerate == "zero":
        post = np.zeros(n)
    elif degenerate == "zero_mean":
        half = rng.normal(0.0, scale, n // 2).round(3)
        post = np.concatenate([half, -half, np.zeros(n % 2)])
    elif degenerate == "constant_pre":
        pre = np.full(n, scale)
    if kind == "mean":
        return {"n": n, **sums("", post)}
    return {"n": n, **sums("", post), **sums("pre_", pre), "pre_post_sum_products": float(post @ pre)}


def sums(prefix: str, values: np.ndarray) -> dict[str, float]:
    return {f"{prefix}sum": float(values.sum()), f"{prefix}sum_squares": float(values @ values)}


def row(request: Request, metric: str, variant: str, control: Any, treatment: Any, result: Any) -> dict[str, Any]:
    """Returns gbstats' numbers for one comparison in the fixture's row format."""
    engine = request["engine"]
    error = f"gbstats raised {result!r}" if isinstance(result, ZeroDivisionError) else result.error_message
    if error is not None:
        numbers = ("control_mean", "mean", "effect", "se", "ci_low", "ci_high", "p_value", "chance_to_win")
        return {
            "metric": metric,
            "variant": variant,
            **dict.fromkeys((*numbers, "expected_loss")),
            "error": error,
            "spec_differs": spec_differs(request, control, treatment, error),
        }
    return {
        "metric": metric,
        "variant": variant,
        "control_mean": finite(control.unadjusted_mean),
        "mean": finite(treatment.unadjusted_mean),
        "effect": finite(result.expected),
        "se": finite(result.uplift.stddev),
        "ci_low": finite(result.ci[0]),
        "ci_high": finite(result.ci[1]),
        "p_value": finite(result.p_value) if engine != "bayesian" else None,
        "chance_to_win": finite(result.chance_to_win) if engine == "bayesian" else None,
        "expected_loss": finite(result.risk[1]) if engine == "bayesian" else None,
        "error": error,
        "spec_differs": spec_differs(request, control, treatment, error),
    }


def spec_differs(request: Request, control: Any, treatment: Any, error: str | None) -> str | None:
    """Returns why analysis.md and gbstats 0.8.0 disagree on this comparison, or None when they agree."""
    computable = min(control.n, treatment.n) >= 2 and min(control.variance, treatment.variance) > 0
    if not computable:
        return None
    if error == BASELINE_VARIATION_ZERO_MESSAGE and control.unadjusted_mean != 0:
        return "CUPED control adjusted mean 0: gbstats refuses, analysis.md divides by the unadjusted mean"
    if request["difference"] != "absolute":
        return None
    if error == BASELINE_VARIATION_ZERO_MESSAGE and request["engine"] != "bayesian":
        return "absolute difference with control mean 0: gbstats refuses, analysis.md computes"
    if error is not None and error.startswith("gbstats raised ZeroDivisionError"):
        return "absolute difference with control mean 0: gbstats' Bayesian test divides by 0, analysis.md computes"
    return None


def finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


if __name__ == "__main__":
    main()
