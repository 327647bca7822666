"""The lab's registry: what a pilot is, what it experiments on, and what go means for it.

These are the typed records every layer shares, and the pilot spec's rules: each record is a frozen
pydantic dataclass that validates itself when it is made, so a record that exists obeys every rule of
`docs/pilot-spec.md`, whether it was read from a spec file, loaded from the store or built in Python.
`experiments.specs` reads spec files and the JSON form the store keeps into these records, and turns
a refusal into errors that name the file's line and field.

A rule's refusal is a `PydanticCustomError` of one of two types: `spec_value` (the value is not what
the field takes; `ctx["expected"]` says what it must be) or `spec_rule` (values disagree with each
other; `ctx["message"]` is the whole sentence). Either may carry `ctx["at"]`, the path below the
field that the refusal is about (an item of a list, a field of a record checked as a whole).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import field
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, ValidationInfo
from pydantic import field_validator as _field_validator
from pydantic import model_validator as _model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from experiments.i18n import Language

Stage = Literal["prototype", "pilot", "scale"]
ConsentMode = Literal["required", "collected_by_service"]
MetricType = Literal["proportion", "mean", "ratio", "retention"]
Aggregate = Literal["sum", "count"]
Engine = Literal["frequentist", "sequential", "bayesian"]
Difference = Literal["relative", "absolute"]
Correction = Literal["none", "holm", "bh"]
#: A relative difference's interval: gbstats' delta method, or the calibrated one (Fieller's theorem).
RelativeInterval = Literal["gbstats", "log"]
ExperimentStatus = Literal["draft", "running", "stopped", "decided"]

STAGES: tuple[Stage, ...] = ("prototype", "pilot", "scale")
METRIC_TYPES: tuple[MetricType, ...] = ("proportion", "mean", "ratio", "retention")
EXPERIMENT_STATUSES: tuple[ExperimentStatus, ...] = ("draft", "running", "stopped", "decided")
#: The action name a retention metric may use to mean "any usage event".
ANY_ACTION = "*"
#: Experiment, variant, metric and action names (also enforced on events).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
#: Pilot keys: they are also the pilot_id of events.
PILOT_KEY_PATTERN = r"^[a-z0-9][a-z0-9\-]*$"
NAME_MAX_LENGTH = 64
#: A name people read (a pilot's, an experiment's, a metric's), in each language; the store's limit.
LABEL_MAX_LENGTH = 200
#: A description or a hypothesis, in each language (as long as a citizen's comment may be).
PROSE_MAX_LENGTH = 4000
#: An owner, a salt, a district (as long as an event's property value may be).
SHORT_TEXT_MAX_LENGTH = 128

# Bounds past which a value is absurd whatever the field's own rule (a window of 1e200 days): they
# keep every figure the platform derives from a spec finite.
MAX_DAYS = 3660
MAX_WEEK = 520
MAX_COUNT = 10**10
MAX_AMOUNT = 10**15
MAX_EFFECT = 10**9
#: How far the weights of an experiment's variants may sum from 1.
WEIGHT_TOLERANCE = 1e-9
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)

_N = TypeVar("_N", int, float)
_S = TypeVar("_S", str, "LocalizedText")
#: C0 and C1 control characters and lone surrogates (which no UTF-8 text or PostgreSQL column holds).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_RECORD = ConfigDict(extra="forbid", allow_inf_nan=False)


def show(value: object) -> str:
    """Returns a value as an error message quotes it: as written, shortened to 60 characters."""
    text = value.isoformat() if isinstance(value, date) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _must_be(expected: str, *at: str | int, value: object = None) -> PydanticCustomError:
    """Returns the refusal of a value that is not what its field takes (`value`: the one to quote,
    when it is not the field's whole input)."""
    context: dict[str, object] = {"expected": expected, "at": at}
    if value is not None:
        context["value"] = value
    return PydanticCustomError("spec_value", "must be {expected}", context)


def _rule_broken(message: str, *at: str | int) -> PydanticCustomError:
    """Returns the refusal of values that disagree, `message` saying which and what is expected."""
    return PydanticCustomError("spec_rule", "{message}", {"message": message, "at": at})


def _number_text(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


class _Range:
    """A number's range (`low`, `high`, open or closed), and `at_most`: the bound past which a value
    is absurd whatever the range says."""

    def __init__(
        self,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
        at_most: int | None = None,
    ) -> None:
        self.low, self.high, self.low_open, self.high_open, self.at_most = low, high, low_open, high_open, at_most

    @property
    def expected(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"in {'(' if self.low_open else '['}{low:g}, {high:g}{')' if self.high_open else ']'}"
        if low is not None:
            return f"{'>' if self.low_open else '>='} {low:g}"
        return f"{'<' if self.high_open else '<='} {high:g}"

    def __call__(self, value: _N) -> _N:
        low, high = self.low, self.high
        if (low is not None and (value <= low if self.low_open else value < low)) or (
            high is not None and (value >= high if self.high_open else value > high)
        ):
            raise _must_be(self.expected)
        if self.at_most is not None and value > self.at_most:
            raise _must_be(f"at most {_number_text(self.at_most)}")
        return value


class _Pattern:
    """A name's form: the whole string matches `pattern`, at most NAME_MAX_LENGTH characters."""

    def __init__(self, pattern: str, expected: str) -> None:
        self.regex = re.compile(pattern)
        self.expected = f"{expected}, at most {NAME_MAX_LENGTH} characters"

    def __call__(self, value: str) -> str:
        # fullmatch: `$` alone would let a name end with a line break.
        if len(value) > NAME_MAX_LENGTH or self.regex.fullmatch(value) is None:
            raise _must_be(self.expected)
        return value


_NAME = _Pattern(NAME_PATTERN, "letters, digits and _ . : - starting with a letter or digit")
_PILOT_KEY = _Pattern(PILOT_KEY_PATTERN, "lower-case letters, digits and - starting with a letter or digit")
_CURRENCY = _Pattern(r"[A-Z]{3}", "a three-letter ISO 4217 code such as EUR")


class _TextRule:
    """A text's bounds: at most `max_length` characters, no control characters (line breaks and tabs
    only in `multiline` texts). For a LocalizedText, each language's text."""

    def __init__(self, max_length: int, *, multiline: bool) -> None:
        self.max_length = max_length
        self.control = _CONTROL_BUT_LINES if multiline else _CONTROL
        self.kind = "text" if multiline else "text on one line"

    def __call__(self, value: _S) -> _S:
        texts = value.given() if isinstance(value, LocalizedText) else {"": value}
        for language, text in texts.items():
            at = (language,) if language else ()
            if len(text) > self.max_length:
                raise _must_be(f"at most {self.max_length:,} characters (not {len(text):,})", *at, value=text)
            bad = self.control.search(text)
            if bad is not None:
                raise _must_be(f"{self.kind} without control characters (not {bad.group()!r})", *at, value=text)
        return value


def _non_blank(value: _S) -> _S:
    """Returns a text that is not empty, in no language it is given in."""
    texts = list(value.given().values()) if isinstance(value, LocalizedText) else [value]
    if not texts or not all(text.strip() for text in texts):
        raise _must_be("a non-empty string")
    return value


def _day(value: object) -> object:
    """Returns the date a spec gives (a date, or its ISO text) when it lies in FIRST_DAY .. LAST_DAY."""
    day: date | None = None
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            day = None
    if day is None:
        raise _must_be("a date (YYYY-MM-DD)")
    if not FIRST_DAY <= day <= LAST_DAY:
        raise _must_be(f"a date from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}")
    return day


def _pairs(value: object) -> object:
    """Returns a mapping of name to value as the list of its [name, value] pairs, in order."""
    return [[name, item] for name, item in value.items()] if isinstance(value, Mapping) else value


def _pair(value: object) -> object:
    if isinstance(value, list | tuple) and len(value) == 2:
        return value
    raise _must_be("a [name, value] pair")


Name = Annotated[str, Strict(), AfterValidator(_NAME)]
PilotKey = Annotated[str, Strict(), AfterValidator(_PILOT_KEY)]
Currency = Annotated[str, Strict(), AfterValidator(_CURRENCY)]
ShortText = Annotated[str, Strict(), AfterValidator(_TextRule(SHORT_TEXT_MAX_LENGTH, multiline=False))]
District = Annotated[ShortText, AfterValidator(_non_blank)]
Day = Annotated[date, BeforeValidator(_day)]
Flag = Annotated[bool, Strict()]
Days = Annotated[float, Strict(), AfterValidator(_Range(0, low_open=True, at_most=MAX_DAYS))]
Share = Annotated[float, Strict(), AfterValidator(_Range(0, 1))]
Count = Annotated[int, Strict(), AfterValidator(_Range(0, at_most=MAX_COUNT))]
PositiveCount = Annotated[int, Strict(), AfterValidator(_Range(0, low_open=True, at_most=MAX_COUNT))]
Amount = Annotated[float, Strict(), AfterValidator(_Range(0, at_most=MAX_AMOUNT))]
Weight = Annotated[float, Strict(), AfterValidator(_Range(0, low_open=True))]
Variant = Annotated[tuple[Name, Weight], BeforeValidator(_pair)]
DistrictPopulation = Annotated[tuple[District, PositiveCount], BeforeValidator(_pair)]


@dataclass(frozen=True, slots=True, config=_RECORD)
class LocalizedText:
    """A text people read, in French, English or both; or, as a plain string in a spec, one text
    without a language (`neutral`), shown in every language. The empty text has none of them.

    `str()` gives the French text, else the English one (French is the product's first language).
    """

    fr: str = ""
    en: str = ""
    neutral: str = ""

    @_model_validator(mode="after")
    def _one_form(self) -> LocalizedText:
        if self.neutral and (self.fr or self.en):
            raise _rule_broken("a text is given either without a language or per language, not both")
        return self

    def given(self) -> dict[str, str]:
        """Returns the texts given, by language ("" for the text without a language)."""
        if self.neutral:
            return {"": self.neutral}
        return {language: text for language, text in (("fr", self.fr), ("en", self.en)) if text}

    def text(self, locale: str | None = None) -> str:
        """Returns the text in the language of `locale` ("fr", "en-GB", ... ; French when None), else
        the text without a language, else the other language's, else ""."""
        from experiments.i18n import language_of  # Babel is loaded by the readers of texts only.

        language: Language = language_of(locale)
        wanted = self.fr if language == "fr" else self.en
        return wanted or self.neutral or self.fr or self.en

    def __str__(self) -> str:
        """Returns the French text, else the one without a language, else the English one."""
        return self.fr or self.neutral or self.en

    def __bool__(self) -> bool:
        return bool(self.fr or self.en or self.neutral)


#: The languages a spec may give a text in: LocalizedText's (the product's, `experiments.i18n.LANGUAGES`).
TEXT_LANGUAGES = tuple(name for name in LocalizedText.__dataclass_fields__ if name != "neutral")
_EMPTY = LocalizedText()


def _localized(value: object) -> object:
    """Returns what a LocalizedText is made of: a plain string is the text without a language; a
    mapping gives the text per language, at least one, each non-empty."""
    if isinstance(value, str):
        return LocalizedText(neutral=value)
    if isinstance(value, Mapping):
        for language, text in value.items():
            if language not in TEXT_LANGUAGES:
                raise _rule_broken(
                    f"unknown language {language!r}, must be one of: {', '.join(TEXT_LANGUAGES)}", str(language)
                )
            if text == "":
                raise _must_be("a non-empty text (leave the language out instead)", language, value=text)
        if not value:
            raise _must_be(f"a text, or a mapping with at least one of: {', '.join(TEXT_LANGUAGES)}")
    elif not isinstance(value, LocalizedText):
        raise _must_be(f"a text, or a mapping of language ({', '.join(TEXT_LANGUAGES)}) to text")
    return value


Label = Annotated[
    LocalizedText, BeforeValidator(_localized), AfterValidator(_TextRule(LABEL_MAX_LENGTH, multiline=False))
]
Prose = Annotated[
    LocalizedText, BeforeValidator(_localized), AfterValidator(_TextRule(PROSE_MAX_LENGTH, multiline=True))
]


def _listed_once(values: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise _rule_broken(f"{value!r} is listed twice, must be listed once", i)
        seen.add(value)
    return values


def _one_of_metrics(keys: list[str]) -> str:
    """Returns what a metric reference must be, listing the experiment's metrics."""
    return f"must be one of the metrics: {', '.join(keys)}" if keys else "must be a metric, and none is defined"


@dataclass(frozen=True, slots=True, config=_RECORD)
class MetricSpec:
    """How one metric is computed per participant, from the participant's first exposure.

    - proportion: 1 when the participant has at least one `action` event in the window, else 0.
    - mean: the participant's total of `action` in the window (`aggregate`: sum of `value`, a null
      value counting 0, or count of events); 0 when there is none.
    - ratio: total of `action` (`aggregate`) over total of `denominator` (`denominator_aggregate`),
      analysed per variant as sum over sum with the delta method.
    - retention: 1 when the participant has an `action` event (or any usage for `*`) during days
      [7 * week, 7 * week + 7) after first exposure, else 0.

    `covariate_days` (mean metrics) adds the same quantity measured over the days before first
    exposure as the CUPED pre-period covariate. `name` and `description` are for people (`label`).
    """

    key: Annotated[Name, Field(description="a name identifying the metric in the experiment")]
    type: Annotated[MetricType, Field(description=f"one of: {', '.join(METRIC_TYPES)}")]
    action: Annotated[str, Strict(), Field(description="the usage action the metric counts")]
    window_days: Days = 7.0
    aggregate: Aggregate = "sum"
    denominator: Name | None = None
    denominator_aggregate: Aggregate = "count"
    week: Annotated[int, Strict(), AfterValidator(_Range(0, at_most=MAX_WEEK))] | None = None
    covariate_days: Days | None = None
    higher_is_better: Flag = True
    description: Prose = _EMPTY
    name: Label = _EMPTY

    @_field_validator("action")
    @classmethod
    def _action_of_its_type(cls, action: str, info: ValidationInfo) -> str:
        if action != ANY_ACTION:
            return _NAME(action)
        if info.data.get("type") != "retention":
            raise _must_be(f"an action name ('{ANY_ACTION}' is for retention only)")
        return action

    @_model_validator(mode="after")
    def _fields_of_its_type(self) -> MetricSpec:
        if self.type == "ratio" and self.denominator is None:
            raise _rule_broken(
                "denominator is missing, must be given for a ratio metric (the action below the line)", "denominator"
            )
        if self.type == "retention" and self.week is None:
            raise _rule_broken(
                "week is missing, must be given for a retention metric "
                "(0 for the first week after first use, 1 for the next, ...)",
                "week",
            )
        # Fields another metric type uses must keep their default here, or they would change what the
        # stream processors read without changing the metric's value.
        for name, types in _USED_BY.items():
            value = getattr(self, name)
            if self.type not in types and value != _METRIC_DEFAULTS[name]:
                shown = f"{value:g}" if isinstance(value, float) else show(value)
                raise _rule_broken(
                    f"{name} == {shown}, must be left out: only {' and '.join(types)} metrics use it", name
                )
        return self

    @property
    def horizon_days(self) -> float:
        """Returns how many days after first exposure can still change this metric's value."""
        if self.type == "retention":
            return 7.0 * ((self.week or 0) + 1)
        return self.window_days

    @property
    def actions(self) -> frozenset[str]:
        """Returns the usage actions this metric reads."""
        names = {self.action}
        if self.denominator:
            names.add(self.denominator)
        return frozenset(names)

    def label(self, locale: str | None = None) -> str:
        """Returns the metric's name in the language of `locale` (see LocalizedText.text), else its key."""
        return self.name.text(locale) or self.key


#: The metric fields only some types use, and those types.
_USED_BY: dict[str, tuple[MetricType, ...]] = {
    "aggregate": ("mean", "ratio"),
    "denominator": ("ratio",),
    "denominator_aggregate": ("ratio",),
    "week": ("retention",),
    "covariate_days": ("mean",),
}
_METRIC_DEFAULTS = {name: MetricSpec.__dataclass_fields__[name].default for name in _USED_BY}


@dataclass(frozen=True, slots=True, config=_RECORD)
class Guardrail:
    """A metric that must not degrade significantly; `tolerance` is the degradation accepted
    (in the experiment's difference scale, so 0.02 is 2 % under a relative difference)."""

    metric: Annotated[Name, Field(description="the key of one of the experiment's metrics")]
    tolerance: Annotated[float, Strict(), AfterValidator(_Range(0, at_most=MAX_EFFECT))] = 0.0


@dataclass(frozen=True, slots=True, config=_RECORD)
class AnalysisPlan:
    """How an experiment is analysed (`experiments.stats`), pre-registered with it."""

    engine: Engine = "frequentist"
    difference: Difference = "relative"
    alpha: Annotated[float, Strict(), AfterValidator(_Range(0, 1, low_open=True, high_open=True))] = 0.05
    correction: Correction = "none"
    sequential_tuning: Annotated[int, Strict(), AfterValidator(_Range(0, low_open=True, at_most=10**9))] = 5000
    #: Pilot decisions rest on the calibrated interval unless the plan asks for gbstats parity.
    relative_interval: RelativeInterval = "log"


@dataclass(frozen=True, slots=True, config=_RECORD)
class Layer:
    """Mutually exclusive experiments share a layer; each claims a range of the layer's [0, 1)."""

    name: Annotated[Name, Field(description="the layer's name")]
    start: Annotated[float, Strict(), AfterValidator(_Range(0, 1, high_open=True))] = 0.0
    end: Annotated[float, Strict(), AfterValidator(_Range(0, 1, low_open=True))] = 1.0

    @_model_validator(mode="after")
    def _start_below_end(self) -> Layer:
        if self.start >= self.end:
            raise _rule_broken(f"start == {self.start!r}, must be below end ({self.end!r})", "start")
        return self


def _named(field_name: str) -> BeforeValidator:
    """Returns the validator reading a bare name as the record whose `field_name` it is."""
    return BeforeValidator(lambda value: {field_name: value} if isinstance(value, str) else value)


@dataclass(frozen=True, slots=True, config=_RECORD)
class ExperimentSpec:
    """An experiment and its pre-registered analysis plan. `name` and `hypothesis` are for people."""

    key: Annotated[Name, Field(description="a name identifying the experiment in the pilot")]
    variants: Annotated[
        tuple[Variant, ...],
        BeforeValidator(_pairs),
        Field(description="a mapping of variant name to weight"),
    ]
    metrics: Annotated[tuple[MetricSpec, ...], Field(description="a list of metric definitions")]
    primary: Annotated[Name, Field(description="the key of one of the experiment's metrics")]
    hypothesis: Prose = _EMPTY
    salt: ShortText = ""
    allocation: Annotated[float, Strict(), AfterValidator(_Range(0, 1, low_open=True))] = 1.0
    layer: Annotated[Layer, _named("name")] | None = None
    secondary: tuple[Name, ...] = ()
    guardrails: tuple[Annotated[Guardrail, _named("metric")], ...] = ()
    analysis: AnalysisPlan = field(default_factory=AnalysisPlan)
    minimum_detectable_effect: (
        Annotated[float, Strict(), AfterValidator(_Range(0, low_open=True, at_most=MAX_EFFECT))] | None
    ) = None
    #: Exposed participants wanted across all variants before the analysis is final.
    planned_sample: PositiveCount | None = None
    planned_days: Annotated[int, Strict(), AfterValidator(_Range(0, low_open=True, at_most=MAX_DAYS))] | None = None
    name: Label = _EMPTY

    @_field_validator("variants")
    @classmethod
    def _variants_share_the_range(cls, variants: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
        seen: set[str] = set()
        for i, (name, _) in enumerate(variants):
            if name in seen:
                raise _rule_broken(f"variant {name!r} is declared twice, must be declared once", i)
            seen.add(name)
        if len(variants) < 2:
            raise _rule_broken(f"variants has {len(variants)}, must have at least 2")
        total = math.fsum(weight for _, weight in variants)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise _rule_broken(f"weights sum to {total:.12g}, must sum to 1")
        return variants

    @_field_validator("metrics")
    @classmethod
    def _metrics_keyed_once(cls, metrics: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
        if not metrics:
            raise _rule_broken("metrics == [], must define at least one metric")
        keys: set[str] = set()
        for i, metric in enumerate(metrics):
            if metric.key in keys:
                raise _rule_broken(f"key == {metric.key!r}, must be unique among the metrics", i, "key")
            keys.add(metric.key)
        return metrics

    @_field_validator("primary")
    @classmethod
    def _primary_is_a_metric(cls, primary: str, info: ValidationInfo) -> str:
        keys = _metric_keys(info)
        if keys is not None and primary not in keys:
            raise _rule_broken(f"primary == {primary!r}, {_one_of_metrics(keys)}")
        return primary

    @_field_validator("secondary")
    @classmethod
    def _secondary_are_other_metrics(cls, secondary: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        _listed_once(secondary)
        keys = _metric_keys(info)
        for i, key in enumerate(secondary):
            if keys is not None and key not in keys:
                raise _rule_broken(f"secondary[{i}] == {key!r}, {_one_of_metrics(keys)}", i)
        if info.data.get("primary") in secondary:
            raise _rule_broken(f"secondary lists {info.data['primary']!r}, must not list the primary metric")
        return secondary

    @_field_validator("guardrails")
    @classmethod
    def _guardrails_on_metrics(cls, guardrails: tuple[Guardrail, ...], info: ValidationInfo) -> tuple[Guardrail, ...]:
        keys = _metric_keys(info)
        seen: set[str] = set()
        for i, guardrail in enumerate(guardrails):
            if keys is not None and guardrail.metric not in keys:
                raise _rule_broken(f"metric == {guardrail.metric!r}, {_one_of_metrics(keys)}", i)
            if guardrail.metric in seen:
                raise _rule_broken(f"metric == {guardrail.metric!r} has a guardrail already, must have one only", i)
            seen.add(guardrail.metric)
        return guardrails

    @property
    def control(self) -> str:
        """Returns the control variant: the first one declared."""
        return self.variants[0][0]

    @property
    def variant_weights(self) -> dict[str, float]:
        return dict(self.variants)

    def metric(self, key: str) -> MetricSpec:
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(key)

    def label(self, locale: str | None = None) -> str:
        """Returns the experiment's name in the language of `locale` (see LocalizedText.text), else its key."""
        return self.name.text(locale) or self.key


def _metric_keys(info: ValidationInfo) -> list[str] | None:
    """Returns the keys of the experiment's metrics, None when the metrics were refused."""
    metrics = info.data.get("metrics")
    return None if metrics is None else [m.key for m in metrics]


@dataclass(frozen=True, slots=True, config=_RECORD)
class DecisionRules:
    """What go means, written before the pilot starts. Every target is optional.

    Evidence: the primary metric must be significantly better than `minimum_effect`; no guardrail
    may degrade beyond its tolerance. Economic: `min_active_participants`, `max_cost_per_active`
    (budget / active participants), `min_adopters_forecast` (Bass forecast of cumulative adopters
    `forecast_horizon_days` after the pilot start). Social: `min_district_reach` (share of the
    target districts with active participants), `max_reach_gap` (1 - worst / best adoption rate
    among target districts). Human: `min_nps`, `min_sus`, `min_rating`.
    """

    minimum_effect: Annotated[float, Strict(), AfterValidator(_Range(-MAX_EFFECT, MAX_EFFECT))] = 0.0
    min_active_participants: Count | None = None
    max_cost_per_active: Amount | None = None
    min_adopters_forecast: Count | None = None
    forecast_horizon_days: Annotated[int, Strict(), AfterValidator(_Range(0, low_open=True, at_most=MAX_DAYS))] = 365
    min_district_reach: Share | None = None
    max_reach_gap: Share | None = None
    min_nps: Annotated[float, Strict(), AfterValidator(_Range(-100, 100))] | None = None
    min_sus: Annotated[float, Strict(), AfterValidator(_Range(0, 100))] | None = None
    #: Ratings are 1 to 5 stars (the event contract).
    min_rating: Annotated[float, Strict(), AfterValidator(_Range(1, 5))] | None = None


@dataclass(frozen=True, slots=True, config=_RECORD)
class PilotSpec:
    """A pilot: what citizens are told about it, where and whom it serves, its experiments and the
    board's decision rules."""

    key: Annotated[PilotKey, Field(description="the pilot's key, also the pilot_id of its events")]
    name: Annotated[Label, AfterValidator(_non_blank), Field(description="a non-empty text")]
    stage: Stage = "pilot"
    consent: ConsentMode = "required"
    owner: ShortText = ""
    #: The purpose shown to citizens.
    description: Prose = _EMPTY
    budget: Amount | None = None
    currency: Currency = "EUR"
    #: Citizens the pilot could reach (the market-potential prior of the adoption forecast).
    population: PositiveCount | None = None
    districts: tuple[District, ...] = ()
    #: Citizens per target district, when known (reach is then a rate, not a count).
    district_population: tuple[DistrictPopulation, ...] = ()
    #: Usage `properties` that segment every figure (district, channel, age_band, ...).
    segments: tuple[Name, ...] = ("district", "channel")
    #: The action that marks a participant as activated.
    key_action: Name | None = None
    #: Share of participants held out of every experiment of the pilot.
    holdout: Annotated[float, Strict(), AfterValidator(_Range(0, 1, high_open=True))] = 0.0
    start: Day | None = None
    next_decision: Day | None = None
    experiments: tuple[ExperimentSpec, ...] = ()
    decision: DecisionRules = field(default_factory=DecisionRules)

    @_field_validator("districts")
    @classmethod
    def _districts_once(cls, districts: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for i, district in enumerate(districts):
            if district in seen:
                raise _rule_broken(f"district {district!r} is listed twice, must be listed once", i)
            seen.add(district)
        return districts

    @_field_validator("district_population")
    @classmethod
    def _populations_of_districts(
        cls, populations: tuple[tuple[str, int], ...], info: ValidationInfo
    ) -> tuple[tuple[str, int], ...]:
        districts = info.data.get("districts")
        names = tuple(name for name, _ in populations)
        if populations and districts is not None and names != districts:
            raise _rule_broken(
                f"district_population names {show(list(names))}, must name every district, in the order of districts"
            )
        return populations

    @_field_validator("segments")
    @classmethod
    def _segments_once(cls, segments: tuple[str, ...]) -> tuple[str, ...]:
        return _listed_once(segments)

    @_field_validator("next_decision")
    @classmethod
    def _decision_after_start(cls, next_decision: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if start is not None and next_decision is not None and next_decision < start:
            raise _must_be(f"on or after start ({start.isoformat()})")
        return next_decision

    @_field_validator("experiments")
    @classmethod
    def _experiments_apart(cls, experiments: tuple[ExperimentSpec, ...]) -> tuple[ExperimentSpec, ...]:
        first: dict[str, int] = {}
        by_layer: dict[str, list[ExperimentSpec]] = {}
        for j, experiment in enumerate(experiments):
            if experiment.key in first:
                raise _rule_broken(
                    f"key == {experiment.key!r}, must be unique: experiments[{first[experiment.key]}] has it", j, "key"
                )
            first[experiment.key] = j
            a = experiment.layer
            if a is None:
                continue
            for earlier in by_layer.setdefault(a.name, []):
                b = earlier.layer
                if b is not None and a.start < b.end and b.start < a.end:
                    raise _rule_broken(
                        f"layer {a.name!r} range [{a.start:g}, {a.end:g}) overlaps [{b.start:g}, {b.end:g}) of "
                        f"experiment {earlier.key!r}, must not overlap another experiment of the layer",
                        j,
                        "layer",
                    )
            by_layer[a.name].append(experiment)
        return experiments

    def experiment(self, key: str) -> ExperimentSpec:
        for e in self.experiments:
            if e.key == key:
                return e
        raise KeyError(key)
