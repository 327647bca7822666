"""The analysis request of docs/statistics.md: parsed from JSON into typed records, or refused.

A refused request raises `RequestError` whose message is one line naming the field:
`metrics[1].data.treatment.n: must be >= 0 (got -3)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import chain, repeat
from operator import eq, itemgetter
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from experiments.stats import config
from experiments.stats.checks import (
    RequestError,
    as_float,
    check_choice,
    check_number,
    field_path,
    is_number,
    shown,
)
from experiments.stats.statistics import (
    CupedStatistic,
    ProportionStatistic,
    RatioStatistic,
    SampleMeanStatistic,
    Statistic,
)

_TOP_LEVEL_FIELDS: Final = frozenset(
    {
        "engine",
        "difference",
        "relative_interval",
        "alpha",
        "sequential_tuning",
        "correction",
        "control",
        "variants",
        "metrics",
    }
)
_METRIC_FIELDS: Final = frozenset({"name", "type", "data"})
_CUPED_FIELDS: Final = frozenset({"pre_sum", "pre_sum_squares", "pre_post_sum_products"})
#: How the arms of a metric are stored: CUPED means carry a pre-period, other means do not.
_Kind = Literal["proportion", "mean", "cuped", "ratio"]
_FIELDS: Final[Mapping[_Kind, tuple[str, ...]]] = {
    "proportion": ("n", "sum"),
    "mean": ("n", "sum", "sum_squares"),
    "cuped": ("n", "sum", "sum_squares", "pre_sum", "pre_sum_squares", "pre_post_sum_products"),
    "ratio": ("n", "sum", "sum_squares", "den_sum", "den_sum_squares", "sum_products"),
}
_KEYS: Final = {kind: frozenset(fields) for kind, fields in _FIELDS.items()}
#: Reads an arm's values in field order.
_VALUES_OF: Final[Mapping[_Kind, Callable[[Mapping[str, object]], tuple[object, ...]]]] = {
    kind: itemgetter(*fields) for kind, fields in _FIELDS.items()
}
_NON_NEGATIVE: Final = frozenset({"sum_squares", "pre_sum_squares", "den_sum_squares"})
#: Counts: units of an arm and of a variant.
_COUNT: Final[dict[str, Any]] = {"ge": 0, "le": config.MAX_COUNT, "integer": True}


class Variant(NamedTuple):
    """An arm of the experiment: units exposed and the share of traffic it should get."""

    name: str
    units: int
    weight: float = 1.0


class Metric(NamedTuple):
    """A metric of the request: its name, its type and whether it is CUPED-adjusted."""

    name: str
    type: config.MetricType
    cuped: bool = False


@dataclass(frozen=True, slots=True)
class MetricGroup:
    """The metrics of one statistic type, their statistics stacked per variant.

    Entry i of every array of `arms[variant]` belongs to `metrics[positions[i]]` of the request.
    """

    positions: npt.NDArray[np.intp]
    arms: Mapping[str, Statistic]


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    """What to analyse and how. Built by `parse_request`, which guarantees that every group has statistics
    for every variant and that `control` is one of the variants; build it by hand only with the same care.
    """

    variants: tuple[Variant, ...]
    metrics: tuple[Metric, ...]
    groups: tuple[MetricGroup, ...]
    control: str
    engine: config.Engine = config.ENGINE
    difference: config.Difference = config.DIFFERENCE
    alpha: float = config.ALPHA
    sequential_tuning: float = config.SEQUENTIAL_TUNING
    correction: config.Correction = config.CORRECTION
    relative_interval: config.RelativeInterval = config.RELATIVE_INTERVAL

    @property
    def treatments(self) -> tuple[str, ...]:
        """Returns the variants other than control, in request order."""
        return tuple(variant.name for variant in self.variants if variant.name != self.control)


def parse_request(obj: object) -> AnalysisRequest:
    """Returns the typed request for a JSON-decoded analysis request (docs/statistics.md).

    Where docs/statistics.md gives no default, `weight` may be left out of every variant (equal weights) and
    `control` defaults to the first variant. An unknown field is refused.

    Raises `RequestError` naming the offending field: the first misshapen field in request order, else
    the first bad number. Numbers are checked for all metrics at once, as arrays.
    """
    root = _object("request", obj)
    for key in root:
        if key not in _TOP_LEVEL_FIELDS:
            raise RequestError(field_path("", key), "unknown field")
    engine = check_choice("engine", root.get("engine", config.ENGINE), config.ENGINES)
    difference = check_choice("difference", root.get("difference", config.DIFFERENCE), config.DIFFERENCES)
    relative_interval = check_choice(
        "relative_interval", root.get("relative_interval", config.RELATIVE_INTERVAL), config.RELATIVE_INTERVALS
    )
    alpha = check_number("alpha", root.get("alpha", config.ALPHA), gt=0, lt=1)
    tuning = check_number("sequential_tuning", root.get("sequential_tuning", config.SEQUENTIAL_TUNING), gt=0)
    correction = check_choice("correction", root.get("correction", config.CORRECTION), config.CORRECTIONS)
    variants = _variants(_required(root, "variants", ""))
    names = tuple(variant.name for variant in variants)
    control = root.get("control", names[0])
    if not isinstance(control, str) or control not in names:
        raise RequestError("control", f"must be one of the variants {', '.join(names)} (got {shown(control)})")
    metrics, groups = _metrics(_required(root, "metrics", ""), names)
    return AnalysisRequest(
        variants=variants,
        metrics=metrics,
        groups=groups,
        control=control,
        engine=engine,
        difference=difference,
        alpha=alpha,
        sequential_tuning=tuning,
        correction=correction,
        relative_interval=relative_interval,
    )


def _variants(obj: object) -> tuple[Variant, ...]:
    entries = _object("variants", obj)
    if len(entries) < 2:
        raise RequestError("variants", f"must name at least 2 variants (got {len(entries)})")
    specs = {name: _object(field_path("variants", name), spec) for name, spec in entries.items()}
    weighted = [name for name, spec in specs.items() if "weight" in spec]
    variants = []
    for name, spec in specs.items():
        where = field_path("variants", name)
        if not isinstance(name, str):
            raise RequestError(where, "a variant name must be a string")
        for key in spec:
            if key not in ("units", "weight"):
                raise RequestError(field_path(where, key), "unknown field")
        if weighted and "weight" not in spec:
            raise RequestError(f"{where}.weight", f"required, as {field_path('variants', weighted[0])} has one")
        units = check_number(f"{where}.units", _required(spec, "units", where), **_COUNT)
        weight = check_number(f"{where}.weight", spec.get("weight", 1.0), gt=0)
        variants.append(Variant(name=name, units=int(units), weight=weight))
    return tuple(variants)


def _metrics(obj: object, variants: tuple[str, ...]) -> tuple[tuple[Metric, ...], tuple[MetricGroup, ...]]:
    """Returns the metrics and their statistics grouped by kind, after checking their shape, then their numbers.

    A well-formed metric takes a short path of cheap checks; any doubt sends it through `_metric_shape`,
    which finds the offending field.
    """
    if not isinstance(obj, list):
        raise RequestError("metrics", f"must be a list of metrics (got {shown(obj)})")
    variant_keys = frozenset(variants)
    arms_of = itemgetter(*variants)
    cells: dict[_Kind, list[object]] = {kind: [] for kind in _FIELDS}
    positions: dict[_Kind, list[int]] = {kind: [] for kind in _FIELDS}
    seen: dict[str, int] = {}
    metrics = []
    for index, item in enumerate(obj):
        if (
            type(item) is dict
            and item.keys() == _METRIC_FIELDS
            and type(name := item["name"]) is str
            and name
            and name not in seen
            and (metric_type := item["type"]) in config.METRIC_TYPES
            and type(data := item["data"]) is dict
            and data.keys() == variant_keys
        ):
            arms = arms_of(data)
            first = arms[0]
            kind: _Kind = (
                "cuped" if metric_type == "mean" and type(first) is dict and "pre_sum" in first else metric_type
            )
            if _all_shaped(arms, _KEYS[kind]):
                cells[kind].extend(chain.from_iterable(map(_VALUES_OF[kind], arms)))
            else:
                name, metric_type, kind, values = _metric_shape(index, item, variants, seen)
                cells[kind].extend(values)
        else:
            name, metric_type, kind, values = _metric_shape(index, item, variants, seen)
            cells[kind].extend(values)
        seen[name] = index
        positions[kind].append(index)
        metrics.append(Metric(name, metric_type, kind == "cuped"))
    groups = []
    for kind, table_of_kind in _checked_numbers(cells, positions, variants).items():
        table = table_of_kind.reshape(len(positions[kind]), len(variants), len(_FIELDS[kind]))
        arms_of_kind = {variant: _statistic(kind, table[:, j, :]) for j, variant in enumerate(variants)}
        groups.append(MetricGroup(positions=np.array(positions[kind], dtype=np.intp), arms=arms_of_kind))
    return tuple(metrics), tuple(groups)


def _all_shaped(arms: tuple[object, ...], keys: frozenset[str]) -> bool:
    """Returns whether every arm is a dict with exactly `keys` (C-level loops: this runs once per metric)."""
    try:
        return all(map(eq, map(dict.keys, arms), repeat(keys)))  # type: ignore[arg-type]
    except TypeError:
        return False


def _metric_shape(
    index: int, item: object, variants: tuple[str, ...], seen: Mapping[str, int]
) -> tuple[str, config.MetricType, _Kind, list[object]]:
    """Returns a metric's name, type, kind and raw values (arm after arm).

    Raises `RequestError` at its first misshapen field.
    """
    where = f"metrics[{index}]"
    spec = _object(where, item)
    for key in spec:
        if key not in _METRIC_FIELDS:
            raise RequestError(field_path(where, key), "unknown field")
    name = _required(spec, "name", where)
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where}.name", f"must be a non-empty string (got {shown(name)})")
    if name in seen:
        raise RequestError(f"{where}.name", f"duplicate of metrics[{seen[name]}].name (got {shown(name)})")
    metric_type = check_choice(f"{where}.type", _required(spec, "type", where), config.METRIC_TYPES)
    data_where = f"{where}.data"
    data = _object(data_where, _required(spec, "data", where))
    for key in data:
        if key not in variants:
            raise RequestError(field_path(data_where, key), f"not a variant (variants: {', '.join(variants)})")
    arms = [_required(data, variant, data_where) for variant in variants]
    cuped = metric_type == "mean" and any(
        isinstance(arm, Mapping) and not _CUPED_FIELDS.isdisjoint(arm) for arm in arms
    )
    kind: _Kind = "cuped" if cuped else metric_type
    values: list[object] = []
    for variant, arm in zip(variants, arms, strict=True):
        values.extend(_arm_values(field_path(data_where, variant), metric_type, kind, arm))
    return name, metric_type, kind, values


def _arm_values(where: str, metric_type: str, kind: _Kind, obj: object) -> tuple[object, ...]:
    """Returns an arm's raw values in field order, or raises `RequestError` for its first misshapen field."""
    arm = _object(where, obj)
    fields = _FIELDS[kind]
    for key in arm:
        if key not in fields:
            raise RequestError(field_path(where, key), f"unknown field for a {metric_type} metric")
    for key in fields:
        if key not in arm:
            hint = ", as other arms of this metric carry a pre-period" if key in _CUPED_FIELDS else ""
            raise RequestError(field_path(where, key), f"required{hint}")
    return _VALUES_OF[kind](arm)


def _checked_numbers(
    cells: Mapping[_Kind, list[object]], positions: Mapping[_Kind, list[int]], variants: tuple[str, ...]
) -> dict[_Kind, npt.NDArray[np.float64]]:
    """Returns each kind's values as a float table: one row per (metric, variant) in order, one column per field.

    Every cell is screened at once; the suspicious cells are then checked one by one by `check_number`,
    in request order, and the first that fails raises `RequestError`.
    """
    tables: dict[_Kind, npt.NDArray[np.float64]] = {}
    suspects: list[tuple[int, int, int, _Kind, int]] = []
    for kind, kind_cells in cells.items():
        if not kind_cells:
            continue
        width = len(_FIELDS[kind])
        if set(map(type, kind_cells)) <= {int, float} or all(map(is_number, kind_cells)):
            try:
                table = np.fromiter(kind_cells, dtype=float, count=len(kind_cells))
            except OverflowError:
                table = np.fromiter(map(as_float, kind_cells), dtype=float, count=len(kind_cells))
            tables[kind] = table.reshape(-1, width)
            odd = _odd_numbers(kind, tables[kind])
        else:
            odd = np.array([not is_number(value) for value in kind_cells]).reshape(-1, width)
        for row, column in np.argwhere(odd).tolist():
            metric, variant = divmod(row, len(variants))
            suspects.append((positions[kind][metric], variant, column, kind, row * width))
    for index, variant, column, kind, start in sorted(suspects):
        field = _FIELDS[kind][column]
        where = field_path(f"metrics[{index}].data", variants[variant])
        n = cells[kind][start]
        check_number(f"{where}.{field}", cells[kind][start + column], **_rule(kind, field, n))
    return tables


def _odd_numbers(kind: _Kind, table: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Returns where a table of numbers may break its field's rule (a superset of what `check_number` refuses)."""
    odd = ~np.isfinite(table)
    for column, field in enumerate(_FIELDS[kind]):
        rule = _rule(kind, field, table[:, 0])
        values = table[:, column]
        if "ge" in rule:
            odd[:, column] |= values < rule["ge"]
        if "le" in rule:
            odd[:, column] |= values > rule["le"]
        if rule.get("integer"):
            odd[:, column] |= values != np.floor(values)
    return odd


def _rule(kind: _Kind, field: str, n: object) -> dict[str, Any]:
    """Returns the bounds `check_number` applies to an arm field; a proportion's sum is at most its `n`."""
    if field == "n":
        return _COUNT
    if kind == "proportion":
        return {"ge": 0, "le": n}
    return {"ge": 0} if field in _NON_NEGATIVE else {}


def _statistic(kind: _Kind, table: npt.NDArray[np.float64]) -> Statistic:
    """Returns the stacked statistic of one variant from its table of values (one row per metric)."""
    columns = [np.ascontiguousarray(table[:, j]) for j in range(table.shape[1])]
    if kind == "proportion":
        return ProportionStatistic(n=columns[0], sum=columns[1])
    post = SampleMeanStatistic(n=columns[0], sum=columns[1], sum_squares=columns[2])
    if kind == "mean":
        return post
    other = SampleMeanStatistic(n=columns[0], sum=columns[3], sum_squares=columns[4])
    if kind == "cuped":
        return CupedStatistic(post=post, pre=other, pre_post_sum_products=columns[5])
    return RatioStatistic(numerator=post, denominator=other, sum_products=columns[5])


def _object(where: str, obj: object) -> Mapping[str, object]:
    if type(obj) is dict:
        return obj
    if not isinstance(obj, Mapping):
        raise RequestError(where, f"must be a JSON object (got {shown(obj)})")
    return obj


def _required(obj: Mapping[str, object], key: str, where: str) -> object:
    if key not in obj:
        raise RequestError(field_path(where, key), "required")
    return obj[key]
