"""Benchmark of the stats engine against GrowthBook's gbstats 0.8.0, measured in the same run.

10,000 comparisons (5,000 metrics of mixed types, proportion, mean, CUPED mean and ratio, in 3 arms)
are analysed by the engine and by gbstats' per-comparison classes (in .venv-gbstats, via
benchmarks/gbstats_timing.py on the same request), for each of the three engines. Two timings each:
end to end (the request's dicts in; ours parses, analyses and renders the JSON rows, gbstats builds its
statistics, checks SRM and runs every test) and the analysis alone (ours `analyze` on the parsed request,
gbstats' tests on prebuilt statistics).
Also reports the calibration rates: A/A rejection rate, the false-positive rates of the fixed-horizon and
sequential engines under continuous peeking, and the relative intervals (gbstats' delta method and
Fieller's, "log") at small samples: two-sided and one-sided A/A rates, Holm's family-wise rate, and, as a
limit of every t-based test, log-normal (skewed) values where the absolute Welch test itself drifts.

    .venv/bin/python benchmarks/bench_stats.py     # prints a table, writes bench-output/stats.json
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.stats import analyze, analyze_dict, config, parse_request
from experiments.stats.calibration import aa_family_wise_rate, aa_rejection_rate, peeking_false_positive_rates
from experiments.stats.engine import compare
from experiments.stats.statistics import SampleMeanStatistic, paired_moments

ROOT = Path(__file__).resolve().parents[1]
GBSTATS_VENV = ROOT / ".venv-gbstats"
GBSTATS_PYTHON = GBSTATS_VENV / "bin" / "python"
OUTPUT = ROOT / "bench-output" / "stats.json"
METRICS = 5000
ARMS = ("control", "treatment_a", "treatment_b")
REPEATS = 5
SEED = 20261126


def mixed_request(rng: np.random.Generator) -> dict[str, Any]:
    """Returns a request with METRICS metrics, cycling proportion, mean, CUPED mean and ratio, in 3 arms."""
    metrics = []
    for index in range(METRICS):
        kind = ("proportion", "mean", "cuped", "ratio")[index % 4]
        data = {arm: arm_statistics(rng, kind, int(rng.integers(500, 5000))) for arm in ARMS}
        metrics.append({"name": f"{kind}_{index}", "type": "mean" if kind == "cuped" else kind, "data": data})
    return {
        "variants": {arm: {"units": 20000 + int(rng.integers(-150, 150)), "weight": 1 / 3} for arm in ARMS},
        "control": "control",
        "metrics": metrics,
    }


def arm_statistics(rng: np.random.Generator, kind: str, n: int) -> dict[str, float]:
    """Returns consistent sufficient statistics of one arm drawn from its moments."""
    if kind == "proportion":
        return {"n": n, "sum": int(rng.binomial(n, rng.uniform(0.05, 0.5)))}
    mean, sd = rng.uniform(1, 10), rng.uniform(0.5, 5)
    arm = {"n": n, "sum": n * mean, "sum_squares": (n - 1) * sd**2 + n * mean**2}
    if kind == "mean":
        return arm
    other_mean, other_sd, correlation = rng.uniform(1, 10), rng.uniform(0.5, 5), rng.uniform(0.2, 0.9)
    other = {"sum": n * other_mean, "sum_squares": (n - 1) * other_sd**2 + n * other_mean**2}
    products = (n - 1) * correlation * sd * other_sd + n * mean * other_mean
    if kind == "cuped":
        return arm | {
            "pre_sum": other["sum"],
            "pre_sum_squares": other["sum_squares"],
            "pre_post_sum_products": products,
        }
    return arm | {"den_sum": other["sum"], "den_sum_squares": other["sum_squares"], "sum_products": products}


def ensure_gbstats_venv() -> None:
    """Creates .venv-gbstats with tools/gbstats/requirements.txt when it is missing."""
    if GBSTATS_PYTHON.exists():
        return
    print(f"creating {GBSTATS_VENV} (gbstats 0.8.0 pins numpy<2)", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(GBSTATS_VENV)], check=True)
    requirements = ROOT / "tools" / "gbstats" / "requirements.txt"
    subprocess.run([str(GBSTATS_PYTHON), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)


def time_ours(request: dict[str, Any]) -> dict[str, float]:
    """Returns the median seconds of the engine end to end (parse, analyse, JSON form) and of `analyze` alone.

    Each run starts after a garbage collection, as gbstats' does; the collector stays on while it runs.
    """
    analyze_dict(request)
    end_to_end, analysis = [], []
    for _ in range(REPEATS):
        gc.collect()
        start = time.perf_counter()
        parsed = parse_request(request)
        analysis_start = time.perf_counter()
        result = analyze(parsed)
        analysis_end = time.perf_counter()
        result.to_dict()
        end_to_end.append(time.perf_counter() - start)
        analysis.append(analysis_end - analysis_start)
    return {"seconds": statistics.median(end_to_end), "analyze_seconds": statistics.median(analysis)}


def time_gbstats(path: Path) -> dict[str, Any]:
    """Returns gbstats' timing of the request at `path`, run in .venv-gbstats."""
    script = ROOT / "benchmarks" / "gbstats_timing.py"
    completed = subprocess.run(
        [str(GBSTATS_PYTHON), str(script), str(path)], check=True, capture_output=True, text=True
    )
    return dict(json.loads(completed.stdout))


def relative_intervals() -> dict[str, Any]:
    """Returns the A/A rates of both relative intervals at small samples (10,000 experiments a cell).

    `rate` is two-sided, `worse` and `better` one-sided (each should be alpha / 2); proportions convert at
    1 / (1 + s^2 n) and normal means have sd 3 s sqrt(n), so each arm's mean has relative standard error s.
    """
    cells = {}
    for relative_se in config.CALIBRATION_RELATIVE_SE:
        for metric in ("proportion", "mean"):
            for units in config.CALIBRATION_SMALL_UNITS:
                for interval in ("gbstats", "log"):
                    for engine in ("frequentist", "bayesian"):
                        found = aa_rejection_rate(
                            metric, engine, relative_interval=interval, units_per_arm=units,
                            relative_se=relative_se, experiments=10_000,
                        )  # fmt: skip
                        cells[f"se {relative_se}/{metric}/{units}/{interval}/{engine}"] = {
                            "rate": found.rate,
                            "worse": found.rate * found.worse,
                            "better": found.rate * (1 - found.worse),
                        }
    return {
        "aa": cells,
        "holm_family_wise_rate": {
            interval: aa_family_wise_rate("frequentist", relative_interval=interval, experiments=40_000)
            for interval in ("gbstats", "log")
        },
        "lognormal": lognormal_rates(),
    }


def lognormal_rates(experiments: int = 10_000, sigma: float = 1.0) -> dict[str, float]:
    """Returns A/A rates on log-normal values (sigma 1: skewed like time spent), frequentist engine:
    absolute, gbstats relative and log relative, at each small sample size."""
    rng = np.random.default_rng(SEED)
    rates = {}
    for units in config.CALIBRATION_SMALL_UNITS:
        arms = []
        for _ in range(2):
            values = rng.lognormal(0.0, sigma, (experiments, units))
            arms.append(SampleMeanStatistic(np.full(experiments, float(units)), values.sum(1), (values**2).sum(1)))
        moments = paired_moments(*arms)
        for name, settings in (
            ("absolute", {"difference": "absolute"}),
            ("gbstats", {"relative_interval": "gbstats"}),
            ("log", {"relative_interval": "log"}),
        ):
            estimates = compare(*moments, **settings)  # type: ignore[arg-type]
            rates[f"{units}/{name}"] = float(np.mean((estimates.ci_low > 0) | (estimates.ci_high < 0)))
    return rates


def calibration() -> dict[str, Any]:
    """Returns the calibration rates of the engine (seeded simulations, alpha 0.05)."""
    peeking = peeking_false_positive_rates()
    return {
        "alpha": 0.05,
        "aa_rejection_rate": {
            f"{metric}/{engine}": aa_rejection_rate(metric, engine).rate
            for metric in ("proportion", "mean")
            for engine in ("frequentist", "sequential", "bayesian")
        },
        "relative_intervals": relative_intervals(),
        "peeking": {
            "looks": peeking.looks,
            "experiments": peeking.experiments,
            "fixed_horizon_false_positive_rate": peeking.fixed_horizon,
            "sequential_false_positive_rate": peeking.sequential,
        },
    }


def main() -> None:
    ensure_gbstats_venv()
    base = mixed_request(np.random.default_rng(SEED))
    runs = []
    with tempfile.TemporaryDirectory() as directory:
        for engine in ("frequentist", "sequential", "bayesian"):
            request = base | {"engine": engine}
            path = Path(directory) / f"{engine}.json"
            path.write_text(json.dumps(request))
            ours = time_ours(request)
            rows = analyze(parse_request(request)).comparisons
            gbstats = time_gbstats(path)
            if gbstats["comparisons"] != len(rows):
                raise SystemExit(f"{engine}: gbstats analysed {gbstats['comparisons']} comparisons, we {len(rows)}")
            runs.append(
                {
                    "engine": engine,
                    "comparisons": len(rows),
                    "ours_seconds": ours["seconds"],
                    "gbstats_seconds": gbstats["seconds"],
                    "speedup": gbstats["seconds"] / ours["seconds"],
                    "ours_analyze_seconds": ours["analyze_seconds"],
                    "gbstats_tests_seconds": gbstats["tests_seconds"],
                    "analysis_speedup": gbstats["tests_seconds"] / ours["analyze_seconds"],
                    "ours_error_rows": sum(row.error is not None for row in rows),
                    "gbstats_refused": gbstats["refused"],
                }
            )
    report = {"runs": runs, "calibration": calibration()}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(report, indent=2) + "\n")
    print("end to end: request dicts in, results out; analysis: typed statistics in, typed results out")
    print(f"{'engine':<12} {'comparisons':>11} | {'end to end: ours s':>18} {'gbstats s':>9} {'speedup':>7} |", end="")
    print(f" {'analysis: ours s':>16} {'gbstats s':>9} {'speedup':>7}")
    for run in runs:
        print(
            f"{run['engine']:<12} {run['comparisons']:>11} | {run['ours_seconds']:>18.3f} "
            f"{run['gbstats_seconds']:>9.2f} {run['speedup']:>6.0f}x | {run['ours_analyze_seconds']:>16.3f} "
            f"{run['gbstats_tests_seconds']:>9.2f} {run['analysis_speedup']:>6.0f}x"
        )
    rates = report["calibration"]
    print("A/A rejection rate at alpha 0.05:")
    for name, rate in rates["aa_rejection_rate"].items():
        print(f"  {name:<24} {rate:.4f}")
    peeking = rates["peeking"]
    print(
        f"continuous peeking ({peeking['looks']} looks, {peeking['experiments']} A/A experiments): "
        f"fixed-horizon FPR {peeking['fixed_horizon_false_positive_rate']:.4f}, "
        f"sequential FPR {peeking['sequential_false_positive_rate']:.4f}"
    )
    relative = rates["relative_intervals"]
    print("relative intervals, A/A at alpha 0.05 (two-sided; one-sided worse / better, each should be 0.025):")
    for name, cell in relative["aa"].items():
        print(f"  {name:<44} {cell['rate']:.4f}  {cell['worse']:.4f} / {cell['better']:.4f}")
    holm = relative["holm_family_wise_rate"]
    print(f"Holm over 10 proportions at 2,000 units: gbstats {holm['gbstats']:.4f}, log {holm['log']:.4f}")
    print("log-normal values (sigma 1), frequentist:")
    for name, rate in relative["lognormal"].items():
        print(f"  {name:<16} {rate:.4f}")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
