"""The pilot spec file: parsing with errors that name the line and field, the JSON form the store
keeps, and the differences between two versions of an analysis plan.

The file format is documented field by field in `docs/pilot-spec.md`. `parse_pilot_spec` reads
YAML and `spec_from_dict` reads the JSON form written by `spec_to_dict`; both go through the same
reader, so a spec is validated the same way whichever way it arrives.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor

from experiments.assignment import WEIGHT_TOLERANCE
from experiments.registry import (
    ANY_ACTION,
    METRIC_TYPES,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    PILOT_KEY_PATTERN,
    STAGES,
    Aggregate,
    AnalysisPlan,
    ConsentMode,
    Correction,
    DecisionRules,
    Difference,
    Engine,
    ExperimentSpec,
    Guardrail,
    Layer,
    MetricSpec,
    MetricType,
    PilotSpec,
)

CONSENT_MODES: tuple[ConsentMode, ...] = ("required", "collected_by_service")
ENGINES: tuple[Engine, ...] = ("frequentist", "sequential", "bayesian")
DIFFERENCES: tuple[Difference, ...] = ("relative", "absolute")
CORRECTIONS: tuple[Correction, ...] = ("none", "holm", "bh")
AGGREGATES: tuple[Aggregate, ...] = ("sum", "count")

#: Analysis-plan fields pre-registered with an experiment: once it runs they change only when forced.
LOCKED_FIELDS = frozenset(
    {
        "variants",
        "weights",
        "salt",
        "allocation",
        "primary",
        "analysis.alpha",
        "analysis.engine",
        "analysis.difference",
    }
)

_TOP_FIELDS = ("pilot", "experiments", "decision")
#: `district_population` is written as the mapping form of `districts`.
_PILOT_FIELDS = tuple(
    f.name for f in dataclasses.fields(PilotSpec) if f.name not in {"experiments", "decision", "district_population"}
)
_EXPERIMENT_FIELDS = tuple(f.name for f in dataclasses.fields(ExperimentSpec))
_METRIC_FIELDS = tuple(f.name for f in dataclasses.fields(MetricSpec))
_ANALYSIS_FIELDS = tuple(f.name for f in dataclasses.fields(AnalysisPlan))
_DECISION_FIELDS = tuple(f.name for f in dataclasses.fields(DecisionRules))
_LAYER_FIELDS = tuple(f.name for f in dataclasses.fields(Layer))
_GUARDRAIL_FIELDS = tuple(f.name for f in dataclasses.fields(Guardrail))

#: The registry's defaults, the only place they are written down.
_PILOT_DEFAULTS = PilotSpec(key="", name="")
_EXPERIMENT_DEFAULTS = ExperimentSpec(key="", variants=(), metrics=(), primary="")
_LAYER_DEFAULTS = Layer(name="")
_GUARDRAIL_DEFAULTS = Guardrail(metric="")

_D = TypeVar("_D")
_L = TypeVar("_L", bound=str)


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem in a spec: where (line, None when unknown; field path) and what."""

    line: int | None
    field: str
    message: str


class SpecError(ValueError):
    """A spec that cannot be accepted, with every issue found in it."""

    def __init__(self, issues: Sequence[SpecIssue], source: str = "<spec>") -> None:
        self.issues = list(issues)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        """Returns one issue per line: `{source}:{line}: {field}: {message}` (no `:{line}` when unknown)."""
        return "\n".join(
            f"{self.source}{'' if issue.line is None else f':{issue.line}'}: {issue.field}: {issue.message}"
            for issue in self.issues
        )


@dataclass(frozen=True, slots=True)
class PlanChange:
    """One difference between two versions of a plan; `locked` marks a pre-registered field."""

    field: str
    old: object
    new: object
    locked: bool


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    expected: str


_NAME = _Pattern(
    re.compile(NAME_PATTERN),
    f"letters, digits and _ . : - starting with a letter or digit, at most {NAME_MAX_LENGTH} characters",
)
_PILOT_KEY = _Pattern(
    re.compile(PILOT_KEY_PATTERN),
    f"lower-case letters, digits and - starting with a letter or digit, at most {NAME_MAX_LENGTH} characters",
)
_CURRENCY = _Pattern(re.compile(r"^[A-Z]{3}$"), "a three-letter ISO 4217 code such as EUR")

_Rule = tuple[Callable[[float], bool], str]
_POSITIVE: _Rule = (lambda v: v > 0, "> 0")
_NON_NEGATIVE: _Rule = (lambda v: v >= 0, ">= 0")
_OPEN_UNIT: _Rule = (lambda v: 0 < v < 1, "in (0, 1)")
_UNIT: _Rule = (lambda v: 0 <= v <= 1, "in [0, 1]")


@dataclass(frozen=True, slots=True)
class _Node:
    """A value read from a spec and the line it was written on (None for values from a dict).

    `value` is a scalar, a list of `_Node`, or a dict of field name to `_Node`; the line of a
    mapping entry is the line of its key.
    """

    value: object
    line: int | None


def _show(value: object) -> str:
    """Returns a value as an error message quotes it: as written, shortened to 60 characters."""
    plain = _plain(value)
    text = plain.isoformat() if isinstance(plain, date) else repr(plain)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: object) -> object:
    """Returns the value with every `_Node` inside it unwrapped."""
    if isinstance(value, _Node):
        return _plain(value.value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class _Reader:
    """Reads `_Node` trees into registry records, collecting every issue instead of stopping."""

    def __init__(self) -> None:
        self.issues: list[SpecIssue] = []

    def fail(self, node: _Node | None, path: str, message: str) -> None:
        self.issues.append(SpecIssue(None if node is None else node.line, path, message))

    def fields(self, node: _Node, path: str, allowed: Sequence[str]) -> _Fields:
        """Returns the fields of a mapping node, reporting a node that is no mapping and unknown fields."""
        if not isinstance(node.value, dict):
            self.fail(node, path, f"{_leaf(path)} == {_show(node)}, must be a mapping")
            return _Fields(self, node, path, {})
        entries: dict[str, _Node] = node.value
        for name, entry in entries.items():
            if name not in allowed:
                self.fail(entry, _join(path, name), f"unknown field {name!r}, must be one of: {', '.join(allowed)}")
        return _Fields(self, node, path, {k: v for k, v in entries.items() if k in allowed})

    def items(self, node: _Node, path: str) -> list[_Node]:
        """Returns the items of a list node, reporting a node that is no list."""
        if isinstance(node.value, list):
            return list(node.value)
        self.fail(node, path, f"{_leaf(path)} == {_show(node)}, must be a list")
        return []

    def name(self, node: _Node, path: str, pattern: _Pattern = _NAME, what: str = "") -> str:
        """Returns the string of a node that must be a name matching `pattern`, or "" after an issue."""
        label = what or _leaf(path)
        value = node.value
        if not isinstance(value, str):
            self.fail(node, path, f"{label} == {_show(node)}, must be a string")
            return ""
        if len(value) > NAME_MAX_LENGTH or not pattern.regex.match(value):
            self.fail(node, path, f"{label} == {_show(node)}, must be {pattern.expected}")
            return ""
        return value

    def number(self, node: _Node, path: str, rule: _Rule | None = None, what: str = "") -> float | None:
        """Returns the float of a node that must be a finite number obeying `rule`, or None after an issue."""
        label = what or _leaf(path)
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(node, path, f"{label} == {_show(node)}, must be a number")
            return None
        if rule is not None and not rule[0](value):
            self.fail(node, path, f"{label} == {_show(node)}, must be {rule[1]}")
            return None
        return float(value)

    def integer(self, node: _Node, path: str, rule: _Rule | None = None, what: str = "") -> int | None:
        """Returns the int of a node that must be a whole number obeying `rule`, or None after an issue."""
        label = what or _leaf(path)
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(node, path, f"{label} == {_show(node)}, must be a whole number")
            return None
        if rule is not None and not rule[0](value):
            self.fail(node, path, f"{label} == {_show(node)}, must be {rule[1]}")
            return None
        return value


def _one_of_metrics(keys: Sequence[str]) -> str:
    """Returns what a metric reference must be, listing the experiment's metrics."""
    return f"must be one of the metrics: {', '.join(keys)}" if keys else "must be a metric, and none is defined"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _leaf(path: str) -> str:
    """Returns the last part of a field path: `alpha` of `experiments[0].analysis.alpha`."""
    return path.rsplit(".", 1)[-1]


class _Fields:
    """The known fields of one mapping in a spec, read with a default when absent."""

    def __init__(self, reader: _Reader, node: _Node, path: str, entries: dict[str, _Node]) -> None:
        self.reader = reader
        self.node = node
        self.path = path
        self.entries = entries

    def at(self, name: str) -> str:
        return _join(self.path, name)

    def get(self, name: str) -> _Node | None:
        """Returns the field's node, or None when it is absent or null."""
        entry = self.entries.get(name)
        return None if entry is None or entry.value is None else entry

    def missing(self, name: str, expected: str) -> None:
        self.reader.fail(self.node, self.at(name), f"{name} is missing, must be {expected}")

    def required(self, name: str, expected: str) -> _Node | None:
        """Returns the field's node, reporting it when absent."""
        entry = self.get(name)
        if entry is None:
            self.missing(name, expected)
        return entry

    def text(self, name: str, default: str) -> str:
        entry = self.get(name)
        if entry is None:
            return default
        if isinstance(entry.value, str):
            return entry.value
        self.reader.fail(entry, self.at(name), f"{name} == {_show(entry)}, must be a string (quote it)")
        return default

    def required_text(self, name: str) -> str:
        entry = self.required(name, "a non-empty string")
        if entry is None:
            return ""
        if not isinstance(entry.value, str) or not entry.value.strip():
            self.reader.fail(entry, self.at(name), f"{name} == {_show(entry)}, must be a non-empty string")
            return ""
        return entry.value

    def name(self, name: str, pattern: _Pattern = _NAME) -> str:
        entry = self.required(name, pattern.expected)
        return "" if entry is None else self.reader.name(entry, self.at(name), pattern)

    def optional_name(self, name: str) -> str | None:
        entry = self.get(name)
        return None if entry is None else self.reader.name(entry, self.at(name)) or None

    def choice(self, name: str, options: tuple[_L, ...], default: _L) -> _L:
        entry = self.get(name)
        if entry is None:
            return default
        for option in options:
            if entry.value == option:
                return option
        self.reader.fail(entry, self.at(name), f"{name} == {_show(entry)}, must be one of: {', '.join(options)}")
        return default

    def number(self, name: str, default: _D, rule: _Rule | None = None) -> float | _D:
        entry = self.get(name)
        if entry is None:
            return default
        value = self.reader.number(entry, self.at(name), rule)
        return default if value is None else value

    def integer(self, name: str, default: _D, rule: _Rule | None = None) -> int | _D:
        entry = self.get(name)
        if entry is None:
            return default
        value = self.reader.integer(entry, self.at(name), rule)
        return default if value is None else value

    def flag(self, name: str, default: bool) -> bool:
        entry = self.get(name)
        if entry is None:
            return default
        if isinstance(entry.value, bool):
            return entry.value
        self.reader.fail(entry, self.at(name), f"{name} == {_show(entry)}, must be true or false")
        return default

    def day(self, name: str) -> date | None:
        entry = self.get(name)
        if entry is None:
            return None
        value = entry.value
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.reader.fail(entry, self.at(name), f"{name} == {_show(entry)}, must be a date (YYYY-MM-DD)")
        return None

    def names(self, name: str, default: tuple[str, ...], metrics: Sequence[str] | None = None) -> tuple[str, ...]:
        """Returns a list of unique names (NAME_PATTERN), each one of `metrics` when that is given."""
        entry = self.get(name)
        if entry is None:
            return default
        found: list[str] = []
        for i, item in enumerate(self.reader.items(entry, self.at(name))):
            at = f"{self.at(name)}[{i}]"
            value = self.reader.name(item, at)
            if value in found:
                self.reader.fail(item, at, f"{value!r} is listed twice, must be listed once")
            elif value and metrics is not None and value not in metrics:
                self.reader.fail(item, at, f"{_leaf(at)} == {value!r}, {_one_of_metrics(metrics)}")
            elif value:
                found.append(value)
        return tuple(found)


def _pairs(reader: _Reader, node: _Node, path: str) -> list[tuple[object, _Node, str]]:
    """Returns (name, value node, path) for a mapping or a list of [name, value] pairs, in order."""
    if isinstance(node.value, dict):
        return [(name, entry, _join(path, name)) for name, entry in node.value.items()]
    pairs: list[tuple[object, _Node, str]] = []
    for i, item in enumerate(reader.items(node, path)):
        if isinstance(item.value, list) and len(item.value) == 2:
            name_node, value_node = item.value
            pairs.append((name_node.value, value_node, f"{path}[{i}]"))
        else:
            reader.fail(item, f"{path}[{i}]", f"{_leaf(path)} item == {_show(item)}, must be a [name, value] pair")
    return pairs


def _read_pilot(reader: _Reader, root: _Node) -> PilotSpec:
    if not isinstance(root.value, dict):
        reader.fail(
            root,
            "pilot",
            f"the spec == {_show(root)}, must be a mapping with pilot:, experiments: and decision:",
        )
        return PilotSpec(key="", name="")
    top = reader.fields(root, "", _TOP_FIELDS)
    experiments_node = top.get("experiments")
    experiment_items = [] if experiments_node is None else reader.items(experiments_node, "experiments")
    experiments = tuple(_read_experiment(reader, item, f"experiments[{i}]") for i, item in enumerate(experiment_items))
    _check_experiments_together(reader, experiments, experiment_items)
    decision_node = top.get("decision")
    decision = _PILOT_DEFAULTS.decision if decision_node is None else _read_decision(reader, decision_node)
    pilot_node = top.required("pilot", "a mapping with key and name")
    if pilot_node is None:
        return PilotSpec(key="", name="", experiments=experiments, decision=decision)
    fields = reader.fields(pilot_node, "pilot", _PILOT_FIELDS)
    districts, district_population = _read_districts(reader, fields)
    start, next_decision = fields.day("start"), fields.day("next_decision")
    if start is not None and next_decision is not None and next_decision < start:
        reader.fail(
            fields.get("next_decision"),
            "pilot.next_decision",
            f"next_decision == {next_decision.isoformat()}, must be on or after start ({start.isoformat()})",
        )
    return PilotSpec(
        key=fields.name("key", _PILOT_KEY),
        name=fields.required_text("name"),
        stage=fields.choice("stage", STAGES, _PILOT_DEFAULTS.stage),
        consent=fields.choice("consent", CONSENT_MODES, _PILOT_DEFAULTS.consent),
        owner=fields.text("owner", _PILOT_DEFAULTS.owner),
        description=fields.text("description", _PILOT_DEFAULTS.description),
        budget=fields.number("budget", None, _NON_NEGATIVE),
        currency=_read_currency(reader, fields),
        population=fields.integer("population", None, _POSITIVE),
        districts=districts,
        district_population=district_population,
        segments=fields.names("segments", _PILOT_DEFAULTS.segments),
        key_action=fields.optional_name("key_action"),
        holdout=fields.number("holdout", _PILOT_DEFAULTS.holdout, (lambda v: 0 <= v < 1, "in [0, 1)")),
        start=start,
        next_decision=next_decision,
        experiments=experiments,
        decision=decision,
    )


def _read_currency(reader: _Reader, fields: _Fields) -> str:
    entry = fields.get("currency")
    default = _PILOT_DEFAULTS.currency
    return default if entry is None else reader.name(entry, "pilot.currency", _CURRENCY) or default


def _read_districts(reader: _Reader, fields: _Fields) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """Returns the districts and, when the spec gives them, their populations.

    Districts are a list of names, a mapping of name to population, or a list of [name, population]
    pairs (the JSON form, which keeps the order in stores that reorder object keys)."""
    entry = fields.get("districts")
    if entry is None:
        return (), ()
    path = fields.at("districts")
    if isinstance(entry.value, list) and all(isinstance(item.value, str) for item in entry.value):
        return _unique_districts(reader, [(item.value, item, f"{path}[{i}]") for i, item in enumerate(entry.value)]), ()
    named: list[tuple[object, _Node, str]] = []
    populations: list[tuple[str, int]] = []
    for name, population_node, at in _pairs(reader, entry, path):
        named.append((name, population_node, at))
        population = reader.integer(population_node, at, _POSITIVE, what=f"population of {name!r}")
        if isinstance(name, str) and population is not None:
            populations.append((name, population))
    districts = _unique_districts(reader, named)
    return districts, tuple(p for p in populations if p[0] in districts)


def _unique_districts(reader: _Reader, named: list[tuple[object, _Node, str]]) -> tuple[str, ...]:
    found: list[str] = []
    for name, node, at in named:
        if not isinstance(name, str) or not name.strip():
            reader.fail(node, at, f"district == {_show(name)}, must be a non-empty string")
        elif name in found:
            reader.fail(node, at, f"district {name!r} is listed twice, must be listed once")
        else:
            found.append(name)
    return tuple(found)


def _read_experiment(reader: _Reader, node: _Node, path: str) -> ExperimentSpec:
    fields = reader.fields(node, path, _EXPERIMENT_FIELDS)
    metrics = _read_metrics(reader, fields)
    metric_keys = list(dict.fromkeys(m.key for m in metrics if m.key))
    primary = _read_primary(reader, fields, metric_keys)
    secondary = fields.names("secondary", _EXPERIMENT_DEFAULTS.secondary, metric_keys)
    if primary and primary in secondary:
        reader.fail(
            fields.get("secondary"),
            fields.at("secondary"),
            f"secondary lists {primary!r}, must not list the primary metric",
        )
    analysis = fields.get("analysis")
    return ExperimentSpec(
        key=fields.name("key"),
        variants=_read_variants(reader, fields),
        metrics=metrics,
        primary=primary,
        hypothesis=fields.text("hypothesis", _EXPERIMENT_DEFAULTS.hypothesis),
        salt=fields.text("salt", _EXPERIMENT_DEFAULTS.salt),
        allocation=fields.number("allocation", _EXPERIMENT_DEFAULTS.allocation, (lambda v: 0 < v <= 1, "in (0, 1]")),
        layer=_read_layer(reader, fields),
        secondary=secondary,
        guardrails=_read_guardrails(reader, fields, metric_keys),
        analysis=_EXPERIMENT_DEFAULTS.analysis
        if analysis is None
        else _read_analysis(reader, analysis, fields.at("analysis")),
        minimum_detectable_effect=fields.number("minimum_detectable_effect", None, _POSITIVE),
        planned_sample=fields.integer("planned_sample", None, _POSITIVE),
        planned_days=fields.integer("planned_days", None, _POSITIVE),
    )


def _read_variants(reader: _Reader, fields: _Fields) -> tuple[tuple[str, float], ...]:
    """Returns the variants in declaration order: a mapping of name to weight, or [name, weight] pairs."""
    entry = fields.required("variants", "a mapping of variant name to weight")
    if entry is None:
        return ()
    path = fields.at("variants")
    variants: list[tuple[str, float]] = []
    weights: list[float | None] = []
    for name, weight_node, at in _pairs(reader, entry, path):
        variant = reader.name(_Node(name, weight_node.line), at, what="variant name")
        weight = reader.number(weight_node, at, _POSITIVE, what=f"weight of {name!r}")
        weights.append(weight)
        if variant and variant in dict(variants):
            reader.fail(weight_node, at, f"variant {variant!r} is declared twice, must be declared once")
        elif variant and weight is not None:
            variants.append((variant, weight))
    if isinstance(entry.value, dict | list) and len(entry.value) < 2:
        reader.fail(entry, path, f"variants has {len(entry.value)}, must have at least 2")
    valid = [weight for weight in weights if weight is not None]
    total = math.fsum(valid)
    if valid and len(valid) == len(weights) and abs(total - 1.0) > WEIGHT_TOLERANCE:
        reader.fail(entry, path, f"weights sum to {total:.12g}, must sum to 1")
    return tuple(variants)


def _read_layer(reader: _Reader, fields: _Fields) -> Layer | None:
    """Returns the layer: a name (the whole range) or {name, start, end}."""
    entry = fields.get("layer")
    path = fields.at("layer")
    if entry is None:
        return None
    if isinstance(entry.value, str):
        return Layer(reader.name(entry, path, what="layer"))
    layer = reader.fields(entry, path, _LAYER_FIELDS)
    start = layer.number("start", _LAYER_DEFAULTS.start, (lambda v: 0 <= v < 1, "in [0, 1)"))
    end = layer.number("end", _LAYER_DEFAULTS.end, (lambda v: 0 < v <= 1, "in (0, 1]"))
    if start >= end:
        reader.fail(layer.get("start") or entry, layer.at("start"), f"start == {start!r}, must be below end ({end!r})")
    return Layer(layer.name("name"), start, end)


def _read_metrics(reader: _Reader, fields: _Fields) -> tuple[MetricSpec, ...]:
    entry = fields.required("metrics", "a list of metric definitions")
    if entry is None:
        return ()
    path = fields.at("metrics")
    metrics: list[MetricSpec] = []
    for i, item in enumerate(reader.items(entry, path)):
        metric = _read_metric(reader, item, f"{path}[{i}]")
        if metric.key and metric.key in {m.key for m in metrics}:
            reader.fail(item, f"{path}[{i}].key", f"key == {metric.key!r}, must be unique among the metrics")
        metrics.append(metric)
    if not metrics and isinstance(entry.value, list):
        reader.fail(entry, path, "metrics == [], must define at least one metric")
    return tuple(metrics)


def _read_metric(reader: _Reader, node: _Node, path: str) -> MetricSpec:
    fields = reader.fields(node, path, _METRIC_FIELDS)
    type_node = fields.required("type", f"one of: {', '.join(METRIC_TYPES)}")
    metric_type = fields.choice("type", METRIC_TYPES, "proportion")
    defaults = MetricSpec(key="", type=metric_type, action="")
    metric = MetricSpec(
        key=fields.name("key"),
        type=metric_type,
        action=_read_action(reader, fields, metric_type),
        window_days=fields.number("window_days", defaults.window_days, _POSITIVE),
        aggregate=fields.choice("aggregate", AGGREGATES, defaults.aggregate),
        denominator=fields.optional_name("denominator"),
        denominator_aggregate=fields.choice("denominator_aggregate", AGGREGATES, defaults.denominator_aggregate),
        week=fields.integer("week", None, _NON_NEGATIVE),
        covariate_days=fields.number("covariate_days", None, _POSITIVE),
        higher_is_better=fields.flag("higher_is_better", defaults.higher_is_better),
        description=fields.text("description", defaults.description),
    )
    if type_node is None:
        return metric
    if metric_type == "ratio" and metric.denominator is None and fields.get("denominator") is None:
        fields.missing("denominator", "given for a ratio metric (the action below the line)")
    if metric_type == "retention" and metric.week is None and fields.get("week") is None:
        fields.missing(
            "week", "given for a retention metric (0 for the first week after first use, 1 for the next, ...)"
        )
    # Fields another metric type uses must keep their default here, or they would change what the
    # stream processors read without changing the metric's value.
    applies = {
        "aggregate": ("mean", "ratio"),
        "denominator": ("ratio",),
        "denominator_aggregate": ("ratio",),
        "week": ("retention",),
        "covariate_days": ("mean",),
    }
    for name, types in applies.items():
        entry = fields.get(name)
        if metric_type not in types and entry is not None and getattr(metric, name) != getattr(defaults, name):
            reader.fail(
                entry,
                fields.at(name),
                f"{name} == {_show(entry)}, must be left out: only {' and '.join(types)} metrics use it",
            )
    return metric


def _read_action(reader: _Reader, fields: _Fields, metric_type: MetricType) -> str:
    entry = fields.required("action", "the usage action the metric counts")
    if entry is None:
        return ""
    if entry.value == ANY_ACTION:
        if metric_type == "retention":
            return ANY_ACTION
        reader.fail(
            entry,
            fields.at("action"),
            f"action == '{ANY_ACTION}', must be an action name ('{ANY_ACTION}' is for retention only)",
        )
        return ""
    return reader.name(entry, fields.at("action"))


def _read_primary(reader: _Reader, fields: _Fields, metric_keys: list[str]) -> str:
    entry = fields.required("primary", "the key of one of the experiment's metrics")
    key = "" if entry is None else reader.name(entry, fields.at("primary"))
    if key and key not in metric_keys:
        reader.fail(
            entry,
            fields.at("primary"),
            f"primary == {key!r}, {_one_of_metrics(metric_keys)}",
        )
    return key


def _read_guardrails(reader: _Reader, fields: _Fields, metric_keys: list[str]) -> tuple[Guardrail, ...]:
    """Returns the guardrails: each a metric key or {metric, tolerance}."""
    entry = fields.get("guardrails")
    if entry is None:
        return ()
    path = fields.at("guardrails")
    guardrails: list[Guardrail] = []
    for i, item in enumerate(reader.items(entry, path)):
        at = f"{path}[{i}]"
        if isinstance(item.value, str):
            guardrail = Guardrail(reader.name(item, at, what="guardrail metric"))
        else:
            spec = reader.fields(item, at, _GUARDRAIL_FIELDS)
            guardrail = Guardrail(
                spec.name("metric"), spec.number("tolerance", _GUARDRAIL_DEFAULTS.tolerance, _NON_NEGATIVE)
            )
        if guardrail.metric and guardrail.metric not in metric_keys:
            reader.fail(
                item,
                at,
                f"metric == {guardrail.metric!r}, {_one_of_metrics(metric_keys)}",
            )
        elif guardrail.metric and guardrail.metric in {g.metric for g in guardrails}:
            reader.fail(item, at, f"metric == {guardrail.metric!r} has a guardrail already, must have one only")
        guardrails.append(guardrail)
    return tuple(guardrails)


def _read_analysis(reader: _Reader, node: _Node, path: str) -> AnalysisPlan:
    fields = reader.fields(node, path, _ANALYSIS_FIELDS)
    defaults = AnalysisPlan()
    return AnalysisPlan(
        engine=fields.choice("engine", ENGINES, defaults.engine),
        difference=fields.choice("difference", DIFFERENCES, defaults.difference),
        alpha=fields.number("alpha", defaults.alpha, _OPEN_UNIT),
        correction=fields.choice("correction", CORRECTIONS, defaults.correction),
        sequential_tuning=fields.integer("sequential_tuning", defaults.sequential_tuning, _POSITIVE),
    )


def _read_decision(reader: _Reader, node: _Node) -> DecisionRules:
    fields = reader.fields(node, "decision", _DECISION_FIELDS)
    defaults = DecisionRules()
    return DecisionRules(
        minimum_effect=fields.number("minimum_effect", defaults.minimum_effect),
        min_active_participants=fields.integer("min_active_participants", None, _NON_NEGATIVE),
        max_cost_per_active=fields.number("max_cost_per_active", None, _NON_NEGATIVE),
        min_adopters_forecast=fields.integer("min_adopters_forecast", None, _NON_NEGATIVE),
        forecast_horizon_days=fields.integer("forecast_horizon_days", defaults.forecast_horizon_days, _POSITIVE),
        min_district_reach=fields.number("min_district_reach", None, _UNIT),
        max_reach_gap=fields.number("max_reach_gap", None, _UNIT),
        min_nps=fields.number("min_nps", None, (lambda v: -100 <= v <= 100, "in [-100, 100]")),
        min_sus=fields.number("min_sus", None, (lambda v: 0 <= v <= 100, "in [0, 100]")),
        min_rating=fields.number("min_rating", None),
    )


def _check_experiments_together(reader: _Reader, experiments: Sequence[ExperimentSpec], nodes: list[_Node]) -> None:
    """Reports experiment keys given twice and experiments whose ranges of one layer overlap."""
    for j, (experiment, node) in enumerate(zip(experiments, nodes, strict=True)):
        for i, earlier in enumerate(experiments[:j]):
            if experiment.key and experiment.key == earlier.key:
                reader.fail(
                    _entry(node, "key"),
                    f"experiments[{j}].key",
                    f"key == {experiment.key!r}, must be unique: experiments[{i}] has it",
                )
            a, b = experiment.layer, earlier.layer
            if a is not None and b is not None and a.name == b.name and a.start < b.end and b.start < a.end:
                reader.fail(
                    _entry(node, "layer"),
                    f"experiments[{j}].layer",
                    f"layer {a.name!r} range [{a.start:g}, {a.end:g}) overlaps [{b.start:g}, {b.end:g}) of "
                    f"experiment {earlier.key!r}, must not overlap another experiment of the layer",
                )


def _entry(node: _Node, name: str) -> _Node:
    """Returns the node of a mapping's field when it has it, else the mapping's node."""
    return node.value.get(name, node) if isinstance(node.value, dict) else node


def _from_yaml(node: yaml.Node, line: int, path: str, reader: _Reader, constructor: SafeConstructor) -> _Node:
    """Returns the `_Node` tree of a composed YAML node; `line` is where the value's field is written."""
    if isinstance(node, yaml.MappingNode):
        # Keys merged in with `<<` may be overridden; keys written twice in the mapping may not.
        own_keys = {id(key_node) for key_node, _ in node.value}
        try:
            constructor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            reader.fail(_Node(None, line), path, f"merge (<<) cannot be read: {exc}")
        entries: dict[str, _Node] = {}
        own_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = _construct(key_node, key_line, path, reader, constructor)
            if not isinstance(key, str):
                reader.fail(_Node(key, key_line), path, f"key == {_show(key)}, must be a string (quote it)")
            elif key in own_lines:
                reader.fail(
                    _Node(key, key_line),
                    _join(path, key),
                    f"{key} is given twice (first on line {own_lines[key]}), must be given once",
                )
            else:
                if id(key_node) in own_keys:
                    own_lines[key] = key_line
                entries[key] = _from_yaml(value_node, key_line, _join(path, key), reader, constructor)
        return _Node(entries, line)
    if isinstance(node, yaml.SequenceNode):
        items = [
            _from_yaml(item, item.start_mark.line + 1, f"{path}[{i}]", reader, constructor)
            for i, item in enumerate(node.value)
        ]
        return _Node(items, line)
    return _Node(_construct(node, line, path, reader, constructor), line)


def _construct(node: yaml.Node, line: int, path: str, reader: _Reader, constructor: SafeConstructor) -> object:
    """Returns the Python value of a YAML scalar (str, int, float, bool, date or None)."""
    if not isinstance(node, yaml.ScalarNode):
        reader.fail(_Node(None, line), path, "a key must be a plain value, not a list or a mapping")
        return None
    try:
        return constructor.construct_object(node)
    except (yaml.YAMLError, ValueError) as exc:
        reader.fail(_Node(None, line), path, f"{node.value!r} cannot be read: {exc}")
        return None


def _from_plain(value: object, path: str, reader: _Reader) -> _Node:
    """Returns the `_Node` tree of plain data (the JSON form), without lines."""
    if isinstance(value, Mapping):
        entries: dict[str, _Node] = {}
        for key, item in value.items():
            if isinstance(key, str):
                entries[key] = _from_plain(item, _join(path, key), reader)
            else:
                reader.fail(None, path, f"key == {_show(key)}, must be a string")
        return _Node(entries, None)
    if isinstance(value, list | tuple):
        return _Node([_from_plain(item, f"{path}[{i}]", reader) for i, item in enumerate(value)], None)
    return _Node(value, None)


def _finish(reader: _Reader, read: _D, source: str) -> _D:
    """Returns what was read when nothing was reported, else raises SpecError with the issues by line."""
    if reader.issues:
        raise SpecError(sorted(reader.issues, key=lambda i: math.inf if i.line is None else i.line), source)
    return read


def parse_pilot_spec(text: str, source: str = "<spec>") -> PilotSpec:
    """Returns the pilot spec a YAML file declares; raises SpecError naming each issue's line and field."""
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = None if mark is None else mark.line + 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([SpecIssue(line, "yaml", f"{problem}, must be valid YAML")], source) from exc
    if document is None:
        raise SpecError([SpecIssue(None, "pilot", "the file is empty, must declare pilot: with key and name")], source)
    reader = _Reader()
    root = _from_yaml(document, document.start_mark.line + 1, "", reader, SafeConstructor())
    return _finish(reader, _read_pilot(reader, root), source)


def spec_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> PilotSpec:
    """Returns the pilot spec of its JSON form (`spec_to_dict`, or a parsed spec file); raises SpecError."""
    reader = _Reader()
    root = _from_plain(data, "", reader)
    return _finish(reader, _read_pilot(reader, root), source)


def experiment_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ExperimentSpec:
    """Returns the experiment of its JSON form (`experiment_to_dict`); raises SpecError."""
    reader = _Reader()
    return _finish(reader, _read_experiment(reader, _from_plain(data, "experiment", reader), "experiment"), source)


def spec_to_dict(spec: PilotSpec) -> dict[str, Any]:
    """Returns the JSON form of a spec: every field, lists for what is ordered; `spec_from_dict` inverts it.

    Variants (and districts with populations) are lists of [name, value] pairs rather than objects
    so that a store which reorders object keys (PostgreSQL jsonb) keeps the bucketing order.
    """
    pilot = {name: getattr(spec, name) for name in _PILOT_FIELDS}
    pilot["districts"] = [list(pair) for pair in spec.district_population] or list(spec.districts)
    pilot["segments"] = list(spec.segments)
    pilot["start"] = None if spec.start is None else spec.start.isoformat()
    pilot["next_decision"] = None if spec.next_decision is None else spec.next_decision.isoformat()
    return {
        "pilot": pilot,
        "experiments": [experiment_to_dict(e) for e in spec.experiments],
        "decision": dataclasses.asdict(spec.decision),
    }


def experiment_to_dict(experiment: ExperimentSpec) -> dict[str, Any]:
    """Returns the JSON form of one experiment, as it appears in `spec_to_dict`'s `experiments`."""
    return {
        "key": experiment.key,
        "hypothesis": experiment.hypothesis,
        "salt": experiment.salt,
        "variants": [[name, weight] for name, weight in experiment.variants],
        "allocation": experiment.allocation,
        "layer": None if experiment.layer is None else dataclasses.asdict(experiment.layer),
        "metrics": [dataclasses.asdict(m) for m in experiment.metrics],
        "primary": experiment.primary,
        "secondary": list(experiment.secondary),
        "guardrails": [dataclasses.asdict(g) for g in experiment.guardrails],
        "analysis": dataclasses.asdict(experiment.analysis),
        "minimum_detectable_effect": experiment.minimum_detectable_effect,
        "planned_sample": experiment.planned_sample,
        "planned_days": experiment.planned_days,
    }


def _plan_fields(experiment: ExperimentSpec) -> dict[str, object]:
    """Returns the analysis plan of an experiment as field path -> JSON-ready value."""
    plan = experiment_to_dict(experiment)
    fields: dict[str, object] = {
        "variants": [name for name, _ in experiment.variants],
        "weights": [weight for _, weight in experiment.variants],
    }
    for name in ("salt", "allocation", "layer"):
        fields[name] = plan[name]
    fields.update({f"metrics.{m['key']}": m for m in plan["metrics"]})
    for name in ("primary", "secondary", "guardrails"):
        fields[name] = plan[name]
    fields.update({f"analysis.{name}": value for name, value in plan["analysis"].items()})
    for name in ("minimum_detectable_effect", "planned_sample", "planned_days", "hypothesis"):
        fields[name] = plan[name]
    return fields


def _differences(
    before: dict[str, object], after: dict[str, object], locked: Callable[[str], bool]
) -> list[PlanChange]:
    """Returns a change for every field whose value differs, in the order of `after` then removed fields."""
    names = list(after) + [name for name in before if name not in after]
    return [
        PlanChange(name, before.get(name), after.get(name), locked(name))
        for name in names
        if before.get(name) != after.get(name)
    ]


def plan_changes(old: ExperimentSpec | None, new: ExperimentSpec) -> list[PlanChange]:
    """Returns every difference between two versions of an experiment's analysis plan (all of it when
    `old` is None), each with its JSON-ready old and new value.

    Fields: variants (names in order), weights, salt, allocation, layer, metrics.<key> (a metric's
    whole definition), primary, secondary, guardrails, analysis.<field>, minimum_detectable_effect,
    planned_sample, planned_days, hypothesis. `locked` is True for the pre-registered fields
    (`LOCKED_FIELDS`) and for the definition of the primary metric.
    """
    if old is not None and old.key != new.key:
        raise ValueError(f"new.key == {new.key!r}, must be the key of the old plan ({old.key!r})")
    primary_definition = f"metrics.{(old or new).primary}"
    return _differences(
        {} if old is None else _plan_fields(old),
        _plan_fields(new),
        lambda name: name in LOCKED_FIELDS or name == primary_definition,
    )


def pilot_changes(old: PilotSpec | None, new: PilotSpec) -> list[PlanChange]:
    """Returns every difference between two versions of a pilot outside its experiments' plans: the
    pilot's fields, `experiments` (the keys, in order) and decision.<rule>; none of them is locked."""
    if old is not None and old.key != new.key:
        raise ValueError(f"new.key == {new.key!r}, must be the key of the old pilot ({old.key!r})")

    def fields(spec: PilotSpec) -> dict[str, object]:
        data = spec_to_dict(spec)
        flat: dict[str, object] = dict(data["pilot"])
        flat["experiments"] = [e.key for e in spec.experiments]
        flat.update({f"decision.{name}": value for name, value in data["decision"].items()})
        return flat

    return _differences({} if old is None else fields(old), fields(new), lambda _: False)
