"""The analysis request of `shared/specs/analysis.md`: parsed from JSON into typed records, or refused.

A refused request raises `RequestError` whose message is one line naming the field:
`metrics[1].data.treatment.n: must be >= 0 (got -3)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from experiments.stats import config
from experiments.stats.checks import RequestError, check_choice, check_number, shown
from experiments.stats.statistics import (
    CupedStatistic,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    Statistic,
)

_TOP_LEVEL_FIELDS: Final = frozenset(
    {"engine", "difference", "alpha", "sequential_tuning", "correction", "control", "variants", "metrics"}
)
_CUPED_FIELDS: Final = ("pre_sum", "pre_sum_squares", "pre_post_sum_products")
_ARM_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "proportion": ("n", "sum"),
    "mean": ("n", "sum", "sum_squares", *_CUPED_FIELDS),
    "ratio": ("n", "sum", "sum_squares", "den_sum", "den_sum_squares", "sum_products"),
}
_NON_NEGATIVE: Final = frozenset({"sum_squares", "pre_sum_squares", "den_sum_squares"})
_PLAIN_KEY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True, slots=True)
class Variant:
    """An arm of the experiment: units exposed and the share of traffic it should get."""

    name: str
    units: int
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class MetricData:
    """A metric's sufficient statistics in every variant, keyed by variant name."""

    name: str
    type: config.MetricType
    data: Mapping[str, Statistic]

    @property
    def cuped(self) -> bool:
        """Returns whether the metric is CUPED-adjusted (a mean metric whose arms carry a pre-period)."""
        return any(isinstance(arm, CupedStatistic) for arm in self.data.values())


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    """What to analyse and how. Built by `parse_request`, which guarantees that every metric has data
    for every variant and that `control` is one of the variants; build it by hand only with the same care.
    """

    variants: tuple[Variant, ...]
    metrics: tuple[MetricData, ...]
    control: str
    engine: config.Engine = config.ENGINE
    difference: config.Difference = config.DIFFERENCE
    alpha: float = config.ALPHA
    sequential_tuning: float = config.SEQUENTIAL_TUNING
    correction: config.Correction = config.CORRECTION

    @property
    def treatments(self) -> tuple[str, ...]:
        """Returns the variants other than control, in request order."""
        return tuple(variant.name for variant in self.variants if variant.name != self.control)


def parse_request(obj: object) -> AnalysisRequest:
    """Returns the typed request for a JSON-decoded analysis request (analysis.md).

    Where analysis.md gives no default, `weight` may be left out of every variant (equal weights) and
    `control` defaults to the first variant. An unknown field is refused.

    Raises `RequestError` naming the first offending field.
    """
    root = _object("request", obj)
    for key in root:
        if key not in _TOP_LEVEL_FIELDS:
            raise RequestError(_path("", key), "unknown field")
    variants = _variants(_required(root, "variants", ""))
    names = tuple(variant.name for variant in variants)
    control = root.get("control", names[0])
    if not isinstance(control, str) or control not in names:
        raise RequestError("control", f"must be one of the variants {', '.join(names)} (got {shown(control)})")
    return AnalysisRequest(
        variants=variants,
        metrics=_metrics(_required(root, "metrics", ""), names),
        control=control,
        engine=check_choice("engine", root.get("engine", config.ENGINE), config.ENGINES),
        difference=check_choice("difference", root.get("difference", config.DIFFERENCE), config.DIFFERENCES),
        alpha=check_number("alpha", root.get("alpha", config.ALPHA), gt=0, lt=1),
        sequential_tuning=check_number(
            "sequential_tuning", root.get("sequential_tuning", config.SEQUENTIAL_TUNING), gt=0
        ),
        correction=check_choice("correction", root.get("correction", config.CORRECTION), config.CORRECTIONS),
    )


def _variants(obj: object) -> tuple[Variant, ...]:
    entries = _object("variants", obj)
    if len(entries) < 2:
        raise RequestError("variants", f"must name at least 2 variants (got {len(entries)})")
    specs = {name: _object(_path("variants", name), spec) for name, spec in entries.items()}
    weighted = [name for name, spec in specs.items() if "weight" in spec]
    variants = []
    for name, spec in specs.items():
        where = _path("variants", name)
        for key in spec:
            if key not in ("units", "weight"):
                raise RequestError(_path(where, key), "unknown field")
        if weighted and "weight" not in spec:
            raise RequestError(f"{where}.weight", f"required, as {_path('variants', weighted[0])} has one")
        units = check_number(f"{where}.units", _required(spec, "units", where), ge=0, integer=True)
        weight = check_number(f"{where}.weight", spec.get("weight", 1.0), gt=0)
        variants.append(Variant(name=name, units=int(units), weight=weight))
    return tuple(variants)


def _metrics(obj: object, variants: tuple[str, ...]) -> tuple[MetricData, ...]:
    if not isinstance(obj, list):
        raise RequestError("metrics", f"must be a list of metrics (got {shown(obj)})")
    seen: dict[str, str] = {}
    metrics = []
    for index, item in enumerate(obj):
        where = f"metrics[{index}]"
        spec = _object(where, item)
        name = _required(spec, "name", where)
        if not isinstance(name, str) or not name:
            raise RequestError(f"{where}.name", f"must be a non-empty string (got {shown(name)})")
        if name in seen:
            raise RequestError(f"{where}.name", f"duplicate of {seen[name]}.name (got {shown(name)})")
        seen[name] = where
        metrics.append(_metric(where, name, spec, variants))
    return tuple(metrics)


def _metric(where: str, name: str, spec: Mapping[str, object], variants: tuple[str, ...]) -> MetricData:
    for key in spec:
        if key not in ("name", "type", "data"):
            raise RequestError(_path(where, key), "unknown field")
    kind = check_choice(f"{where}.type", _required(spec, "type", where), config.METRIC_TYPES)
    data_where = f"{where}.data"
    data = _object(data_where, _required(spec, "data", where))
    for key in data:
        if key not in variants:
            raise RequestError(_path(data_where, key), f"not a variant (variants: {', '.join(variants)})")
    arms = {variant: _object(_path(data_where, variant), _required(data, variant, data_where)) for variant in variants}
    cuped = kind == "mean" and any(key in arm for arm in arms.values() for key in _CUPED_FIELDS)
    statistics = {
        variant: _arm_statistic(_path(data_where, variant), kind, cuped, arm) for variant, arm in arms.items()
    }
    return MetricData(name=name, type=kind, data=statistics)


def _arm_statistic(where: str, kind: config.MetricType, cuped: bool, arm: Mapping[str, object]) -> Statistic:
    allowed = _ARM_FIELDS[kind]
    for key in arm:
        if key not in allowed:
            raise RequestError(_path(where, key), f"unknown field for a {kind} metric")
    n = check_number(f"{where}.n", _required(arm, "n", where), ge=0, integer=True)

    def number(key: str) -> float:
        hint = ", as other arms of this metric carry a pre-period" if key in _CUPED_FIELDS else ""
        if key not in arm:
            raise RequestError(f"{where}.{key}", f"required{hint}")
        return check_number(f"{where}.{key}", arm[key], ge=0 if key in _NON_NEGATIVE else None)

    if kind == "proportion":
        return ProportionStatistic(n=n, sum=check_number(f"{where}.sum", _required(arm, "sum", where), ge=0, le=n))
    post = SampleMeanStatistic(n=n, sum=number("sum"), sum_squares=number("sum_squares"))
    if kind == "ratio":
        denominator = SampleMeanStatistic(n=n, sum=number("den_sum"), sum_squares=number("den_sum_squares"))
        return RatioStatistic(numerator=post, denominator=denominator, sum_products=number("sum_products"))
    if cuped:
        pre = SampleMeanStatistic(n=n, sum=number("pre_sum"), sum_squares=number("pre_sum_squares"))
        return CupedStatistic(post=post, pre=pre, pre_post_sum_products=number("pre_post_sum_products"))
    return post


def _object(where: str, obj: object) -> Mapping[str, object]:
    if not isinstance(obj, Mapping) or not all(isinstance(key, str) for key in obj):
        raise RequestError(where, f"must be a JSON object (got {shown(obj)})")
    return obj


def _required(obj: Mapping[str, object], key: str, where: str) -> object:
    if key not in obj:
        raise RequestError(_path(where, key), "required")
    return obj[key]


def _path(where: str, key: str) -> str:
    """Returns the path of `key` inside `where`: `a.b` for plain keys, `a["b c"]` for others."""
    if _PLAIN_KEY.match(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{json.dumps(key)}]"
