"""An experiment's current results: per-variant sufficient statistics from the store and their analysis.

The document is the one `rhizome results EXPERIMENT --json` prints. It also carries
the analysis settings (engine, difference, relative_interval, alpha, correction, sequential_tuning,
control) and each variant's weight, so that it is a valid request of `rhizome analyze` once `metrics`
is a list: `request_of(results)` does that, and `rhizome analyze` accepts a results document directly.
`relative_interval` says which interval a relative difference's rows carry: the pilot's plan defaults
to "log" (Fieller's, calibrated), where a bare `analyze` request keeps gbstats' parity.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard

from experiments.registry import ExperimentSpec, MetricSpec
from experiments.stats import analyze_dict
from experiments.store import UNITS, Statistic, Store

#: Analysis request fields that a results document carries at its top level.
REQUEST_FIELDS = ("engine", "difference", "relative_interval", "alpha", "sequential_tuning", "correction", "control")


def metric_data(metric: MetricSpec, stat: Statistic | None) -> dict[str, float | int]:
    """Returns one arm's statistics in the request format of docs/statistics.md for the metric's type."""
    s = stat or Statistic(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if metric.type in ("proportion", "retention"):
        return {"n": s.n, "sum": round(s.sum)}
    if metric.type == "ratio":
        return {
            "n": s.n,
            "sum": s.sum,
            "sum_squares": s.sum_squares,
            "den_sum": s.x_sum,
            "den_sum_squares": s.x_sum_squares,
            "sum_products": s.sum_products,
        }
    data: dict[str, float | int] = {"n": s.n, "sum": s.sum, "sum_squares": s.sum_squares}
    if metric.covariate_days:
        data |= {
            "pre_sum": s.x_sum,
            "pre_sum_squares": s.x_sum_squares,
            "pre_post_sum_products": s.sum_products,
        }
    return data


def analysis_type(metric: MetricSpec) -> str:
    """Returns the docs/statistics.md type of a registry metric (retention is a proportion)."""
    return "proportion" if metric.type == "retention" else metric.type


def build_results(
    experiment: ExperimentSpec,
    pilot: str,
    statistics: Mapping[str, Mapping[str, Statistic]],
    as_of: datetime | None,
) -> dict[str, Any]:
    """Returns the results document of an experiment from its summed statistics."""
    units = statistics.get(UNITS, {})
    weights = experiment.variant_weights
    plan = experiment.analysis
    doc: dict[str, Any] = {
        "experiment": experiment.key,
        "pilot": pilot,
        "as_of": (as_of or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine": plan.engine,
        "difference": plan.difference,
        # Which interval a relative difference's row carries: "log" (Fieller's) or "gbstats".
        "relative_interval": plan.relative_interval,
        "alpha": plan.alpha,
        "sequential_tuning": plan.sequential_tuning,
        "correction": plan.correction,
        "control": experiment.control,
        "variants": {v: {"units": units[v].n if v in units else 0, "weight": w} for v, w in weights.items()},
        "metrics": {
            m.key: {
                "type": analysis_type(m),
                "data": {v: metric_data(m, statistics.get(m.key, {}).get(v)) for v in weights},
            }
            for m in experiment.metrics
        },
    }
    doc["analysis"] = analyze_dict(request_of(doc))
    return doc


def request_of(results: Mapping[str, Any]) -> dict[str, Any]:
    """Returns the analysis request a results document stands for."""
    request: dict[str, Any] = {k: results[k] for k in REQUEST_FIELDS if k in results}
    variants = results.get("variants")
    # A misshapen part is passed on as it is, for the request parser to name.
    request["variants"] = (
        {
            v: {"units": d.get("units", 0), **({"weight": d["weight"]} if "weight" in d else {})}
            if isinstance(d, dict)
            else d
            for v, d in variants.items()
        }
        if isinstance(variants, dict)
        else variants
    )
    request["metrics"] = [{"name": name, **metric} for name, metric in results["metrics"].items()]
    return request


def is_results_document(doc: object) -> TypeGuard[dict[str, Any]]:
    """Returns whether `doc` is a results document (rather than an analysis request)."""
    return isinstance(doc, dict) and isinstance(doc.get("metrics"), dict) and "experiment" in doc


def experiment_results(store: Store, key: str, segment: str = "") -> dict[str, Any]:
    """Returns the current results document of the experiment (raises StoreError when unknown)."""
    stored = store.experiment(key)
    return build_results(
        stored.spec, stored.pilot_key, store.experiment_statistics(key, segment), store.last_update(key)
    )
