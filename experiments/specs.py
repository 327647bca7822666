"""The pilot spec file: reading it safely, errors that name the line and field, the JSON form the store
keeps, and the differences between two versions of a plan.

The file format is documented field by field in `docs/pilot-spec.md`; its rules are those of the
records of `experiments.registry`, which validate themselves (pydantic). `parse_pilot_spec` reads YAML
and `spec_from_dict` the JSON form written by `spec_to_dict`; both lay the document out as the
records' fields (`_pilot_arguments`) and validate it the same way, so a spec is checked alike whichever
way it arrives. A refusal's location (pydantic's `loc`) is mapped back to the document's path and, for
YAML, to the line that path was written on (`_YamlTree.lines`).

YAML is read with bounds, because the console reads specs pasted by its users: at most MAX_SPEC_BYTES,
values nested at most MAX_DEPTH deep, and at most MAX_VALUES values once aliases are expanded (a
495-byte alias bomb expands to a billion), with no alias inside the node it refers to.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from yaml.constructor import SafeConstructor

from experiments.registry import ExperimentSpec, LocalizedText, PilotSpec, show

#: The largest spec file read, in bytes (1 MiB).
MAX_SPEC_BYTES = 1 << 20
#: How deep values may be nested in a spec file (a spec needs six levels).
MAX_DEPTH = 32
#: How many values (scalars, lists and mappings) a spec file may hold, also once its aliases are
#: expanded (a pilot with 20 experiments of 10 metrics, named and described in two languages, holds
#: about 7,000).
MAX_VALUES = 20_000

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
        "analysis.relative_interval",
    }
)

_TOP_FIELDS = ("pilot", "experiments", "decision")
#: The fields of `pilot:`. `district_population` is written as the mapping form of `districts`.
_PILOT_FIELDS = tuple(
    f.name for f in dataclasses.fields(PilotSpec) if f.name not in {"experiments", "decision", "district_population"}
)
#: A metric's texts for people: plan changes record them apart from its (maybe locked) definition.
_METRIC_TEXTS = ("name", "description")
#: Fields read as [name, value] pairs (from a mapping, or a list of pairs): what the name and the
#: value of a pair are called in a message.
_PAIR_LABELS = {"variants": ("variant name", "weight of {!r}"), "districts": ("district", "population of {!r}")}
#: What a value must be, by pydantic's error type, for the errors no rule of the registry words.
_EXPECTED = {
    "string_type": "a string (quote it)",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "dataclass_type": "a mapping",
    "dataclass_exact_type": "a mapping",
    "dict_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
    "iterable_type": "a list",
}

_ADAPTERS: dict[type, TypeAdapter[Any]] = {record: TypeAdapter(record) for record in (PilotSpec, ExperimentSpec)}
_R = TypeVar("_R")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem in a spec: where (line, None when unknown; field path) and what."""

    line: int | None
    field: str
    message: str


class SpecError(ValueError):
    """A spec that cannot be accepted, with every issue found in it."""

    def __init__(self, issues: Sequence[SpecIssue], source: str = "<spec>") -> None:
        self.issues = sorted(issues, key=lambda i: math.inf if i.line is None else i.line)
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


def field_path(path: Path) -> str:
    """Returns a path as messages write it: `experiments[0].metrics[2].week`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


# --- YAML ---------------------------------------------------------------------------------------


class _Refused(Exception):
    """A document that is not read at all (too large, too deep, an alias bomb, a loop)."""

    def __init__(self, line: int | None, field: str, message: str) -> None:
        super().__init__(message)
        self.issue = SpecIssue(line, field, message)


_TOO_MANY = (
    f"the spec holds more than {MAX_VALUES:,} values (counting those aliases repeat), must hold at most {MAX_VALUES:,}"
)
_TOO_DEEP = f"values are nested more than {MAX_DEPTH} levels deep (inside aliases too), must be at most {MAX_DEPTH}"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _decoded(text: str | bytes) -> str:
    """Returns the text of a spec, refusing one over MAX_SPEC_BYTES or, as bytes, not UTF-8."""
    size = len(text) if isinstance(text, bytes) or len(text) > MAX_SPEC_BYTES else len(text.encode("utf-8", "replace"))
    if size > MAX_SPEC_BYTES:
        raise _Refused(
            None,
            "yaml",
            f"the spec has more than {MAX_SPEC_BYTES:,} bytes, must have at most {MAX_SPEC_BYTES:,} (1 MiB)",
        )
    if isinstance(text, str):
        return text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(
            text.count(b"\n", 0, exc.start) + 1,
            "yaml",
            f"byte {text[exc.start]:#04x} at offset {exc.start} is not UTF-8, must be UTF-8 text",
        ) from None


def _check_events(text: str) -> None:
    """Refuses a document nested deeper than MAX_DEPTH or holding more than MAX_VALUES values as
    written, before it is composed: composing recurses, and takes about 20 us a value."""
    depth = values = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = None if event.start_mark is None else event.start_mark.line + 1
        if isinstance(event, yaml.CollectionStartEvent | yaml.ScalarEvent | yaml.AliasEvent):
            values += 1
            if values > MAX_VALUES:
                raise _Refused(line, "yaml", _TOO_MANY)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(line, "yaml", _TOO_DEEP)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _YamlTree:
    """The plain data of a composed YAML document (str, int, float, bool, date, None, lists and
    mappings), with the line each path was written on and the problems YAML itself has."""

    def __init__(self) -> None:
        self.constructor = SafeConstructor()
        self.lines: dict[Path, int] = {}
        self.issues: list[SpecIssue] = []
        #: Per mapping node, its own keys (not those a merge `<<` brings): only those may not repeat.
        self.own_keys: dict[int, set[int]] = {}
        #: Per node, the values it holds once aliases are expanded, and how deep they are nested.
        self.measured: dict[int, tuple[int, int]] = {}

    def read(self, document: yaml.Node) -> object:
        """Returns the document's plain data, once its expansion is measured (raises _Refused)."""
        self.measure(document, (), _line(document), 0, set())
        return self.plain(document, (), _line(document))

    def measure(self, node: yaml.Node, path: Path, line: int, depth: int, inside: set[int]) -> tuple[int, int]:
        """Returns how many values the node holds and how deep, aliases expanded, refusing a node
        inside itself, more than MAX_VALUES values or more than MAX_DEPTH levels. Each node is walked
        once: an alias to a node measured already costs nothing. `line` is where the value's field (or
        item) is written, not the anchored node an alias refers to."""
        key = id(node)
        if key in inside:
            raise _Refused(
                line,
                field_path(path) or "yaml",
                "an alias refers to a node that holds it (a loop), must refer to a node outside it",
            )
        measured = self.measured.get(key)
        if measured is None:
            if depth > MAX_DEPTH:
                raise _Refused(line, "yaml", _TOO_DEEP)
            children: list[tuple[yaml.Node, Path, int]] = []
            if isinstance(node, yaml.MappingNode):
                self.own_keys[key] = {id(key_node) for key_node, _ in node.value}
                for key_node, value_node in node.value:
                    name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                    children += [(key_node, path, _line(key_node)), (value_node, (*path, name), _line(key_node))]
            elif isinstance(node, yaml.SequenceNode):
                children = [(item, (*path, i), _line(item)) for i, item in enumerate(node.value)]
            inside.add(key)
            values, height = 1, 0
            for child, child_path, child_line in children:
                child_values, child_height = self.measure(child, child_path, child_line, depth + 1, inside)
                values, height = values + child_values, max(height, child_height + 1)
                if values > MAX_VALUES:
                    raise _Refused(child_line, "yaml", _TOO_MANY)
            inside.discard(key)
            measured = self.measured[key] = (values, height)
        if depth + measured[1] > MAX_DEPTH:
            raise _Refused(line, "yaml", _TOO_DEEP)
        return measured

    def fail(self, line: int | None, path: Path, message: str) -> None:
        self.issues.append(SpecIssue(line, field_path(path) or "yaml", message))

    def plain(self, node: yaml.Node, path: Path, line: int) -> object:
        """Returns a node's plain data; `line` is where the value's field (or item) is written."""
        self.lines[path] = line
        if isinstance(node, yaml.MappingNode):
            try:
                self.constructor.flatten_mapping(node)
            except yaml.YAMLError as exc:
                self.fail(line, path, f"merge (<<) cannot be read: {exc}")
            own = self.own_keys.get(id(node), set())
            entries: dict[str, object] = {}
            own_lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                key_line = _line(key_node)
                key = self.scalar(key_node, path, key_line)
                if not isinstance(key, str):
                    self.fail(key_line, path, f"key == {show(key)}, must be a string (quote it)")
                elif key in own_lines:
                    self.fail(
                        key_line,
                        (*path, key),
                        f"{key} is given twice (first on line {own_lines[key]}), must be given once",
                    )
                else:
                    # Keys merged in with `<<` come first: the mapping's own keys override them.
                    if id(key_node) in own:
                        own_lines[key] = key_line
                    entries[key] = self.plain(value_node, (*path, key), key_line)
            return entries
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(item, (*path, i), _line(item)) for i, item in enumerate(node.value)]
        return self.scalar(node, path, line)

    def scalar(self, node: yaml.Node, path: Path, line: int) -> object:
        """Returns the Python value of a YAML scalar (str, int, float, bool, date or None)."""
        if not isinstance(node, yaml.ScalarNode):
            self.fail(line, path, "a key must be a plain value, not a list or a mapping")
            return None
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            self.fail(line, path, f"{node.value[:60]!r} cannot be read: {exc}")
            return None


def _read_yaml(text: str | bytes) -> tuple[object, _YamlTree]:
    """Returns a spec file's plain data and its tree (lines, issues); raises _Refused or SpecError."""
    decoded = _decoded(text)
    try:
        _check_events(decoded)
        document = yaml.compose(decoded, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise _Refused(None if mark is None else mark.line + 1, "yaml", f"{problem}, must be valid YAML") from None
    if document is None:
        raise _Refused(None, "pilot", "the file is empty, must declare pilot: with key and name")
    tree = _YamlTree()
    return tree.read(document), tree


# --- validation and its errors ------------------------------------------------------------------


class _Absent:
    """A place in a document that holds nothing (a missing field)."""


_ABSENT = _Absent()


def _pilot_arguments(document: object, fail: Callable[[Path, str], None]) -> tuple[dict[str, Any], bool]:
    """Returns the PilotSpec fields a spec document gives (pilot:, experiments:, decision: laid out
    flat; districts with populations split in two), and whether it has a readable `pilot:`."""
    if not isinstance(document, Mapping):
        fail((), f"the spec == {show(document)}, must be a mapping with pilot:, experiments: and decision:")
        return {}, False
    for name in document:
        if name not in _TOP_FIELDS:
            fail((name,), f"unknown field {name!r}, must be one of: {', '.join(_TOP_FIELDS)}")
    arguments = {name: document[name] for name in ("experiments", "decision") if name in document}
    pilot = document.get("pilot")
    if not isinstance(pilot, Mapping):
        expected = "must be a mapping with key and name"
        fail(("pilot",), f"pilot is missing, {expected}" if pilot is None else f"pilot == {show(pilot)}, {expected}")
        return arguments, False
    for name, value in pilot.items():
        if name in _PILOT_FIELDS:
            arguments[name] = value
        else:
            fail(("pilot", name), f"unknown field {name!r}, must be one of: {', '.join(_PILOT_FIELDS)}")
    districts = arguments.get("districts")
    if isinstance(districts, Mapping) or (isinstance(districts, list) and any(isinstance(d, list) for d in districts)):
        pairs = list(districts.items()) if isinstance(districts, Mapping) else districts
        arguments["districts"] = [pair[0] if isinstance(pair, list | tuple) and pair else pair for pair in pairs]
        arguments["district_population"] = pairs
    return arguments, True


def _bare(annotation: Any) -> Any:
    """Returns a type without its Annotated metadata and without `| None`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is UnionType:
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _field_info(record: type, loc: Sequence[str | int]) -> tuple[type | None, FieldInfo | None]:
    """Returns the record that holds the last field of a pydantic `loc` and that field's info (None
    for a field the record does not have)."""
    annotation: Any = record
    holder: type | None = None
    info: FieldInfo | None = None
    for part in loc:
        annotation = _bare(annotation)
        fields: dict[str, FieldInfo] | None = getattr(annotation, "__pydantic_fields__", None)
        if isinstance(part, str) and fields is not None:
            holder, info = annotation, fields.get(part)
            if info is None:
                return holder, None
            annotation = info.annotation
        elif isinstance(part, int) and get_origin(annotation) is tuple:
            annotation = get_args(annotation)[0]
        else:
            return None, None
    return holder, info


def _locate(loc: Sequence[str | int], document: object) -> tuple[Path, str]:
    """Returns the document path a location names, and what a message calls the value there.

    A location goes into the records' fields; the path into the document: through a mapping read
    as a list of pairs (variants, districts) it names the pair's key, and it stops at a bare value
    written for a record (`layer: onboarding`).
    """
    path: list[str | int] = []
    node: object = document
    label: str | None = None
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        field = next((p for p in reversed(path) if isinstance(p, str)), "")
        if isinstance(node, Mapping) and isinstance(part, int):
            keys = list(node)
            name = keys[part] if part < len(keys) else part
            path.append(name)
            position = parts[0] if parts and parts[0] in (0, 1) else 0
            if field in _PAIR_LABELS:
                label = _PAIR_LABELS[field][position].format(name)
            break
        if isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if part < len(node) else _ABSENT
            if field in _PAIR_LABELS and parts and parts[0] in (0, 1):
                name = node[0] if isinstance(node, list) and node else part
                label = _PAIR_LABELS[field][parts[0]].format(name)
                break
        elif isinstance(node, Mapping):
            path.append(part)
            node = node.get(part, _ABSENT)
        elif node is _ABSENT:
            path.append(part)
        else:
            break
    text = field_path(tuple(path))
    return tuple(path), label or text.rsplit(".", 1)[-1]


def _message(error: ErrorDetails, record: type, label: str) -> str:
    """Returns what an error says: the value, and what it must be."""
    kind, context = error["type"], error.get("ctx") or {}
    loc = error["loc"]
    leaf = str(loc[-1]) if loc else label
    if kind == "spec_rule":
        return str(context["message"])
    value = show(context.get("value", error["input"]))
    if kind == "spec_value":
        return f"{label} == {value}, must be {context['expected']}"
    holder, info = _field_info(record, loc)
    if kind == "missing":
        return f"{leaf} is missing, must be {info.description if info and info.description else 'given'}"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        allowed = ", ".join(getattr(holder, "__pydantic_fields__", {}))
        return f"unknown field {leaf!r}, must be one of: {allowed}"
    if kind == "literal_error" and info is not None:
        return f"{label} == {value}, must be one of: {', '.join(map(str, get_args(_bare(info.annotation))))}"
    if kind in _EXPECTED:
        return f"{label} == {value}, must be {_EXPECTED[kind]}"
    return f"{label} == {value}, {error['msg']}"


def _line_at(lines: Mapping[Path, int], path: Path) -> int | None:
    """Returns the line a path was written on, else its nearest parent's (None for the JSON form)."""
    return next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)


def _validated(
    record: type[_R],
    arguments: object,
    document: object,
    path_of: Callable[[Sequence[str | int]], Sequence[str | int]],
    lines: Mapping[Path, int],
    issues: list[SpecIssue],
) -> _R | None:
    """Returns the record the arguments make, or None with the refusals added to `issues`, each at
    the document path `path_of` gives for its location and that path's line."""
    adapter: TypeAdapter[_R] = _ADAPTERS[record]
    try:
        return adapter.validate_python(arguments)
    except ValidationError as exc:
        errors: list[ErrorDetails] = exc.errors()
        for error in errors:
            at: Path = tuple((error.get("ctx") or {}).get("at", ()))
            path, label = _locate((*path_of(error["loc"]), *at), document)
            issues.append(SpecIssue(_line_at(lines, path), field_path(path), _message(error, record, label)))
        return None


def _pilot_path(loc: Sequence[str | int]) -> Sequence[str | int]:
    """Returns where in a spec document a PilotSpec field's location is written."""
    if loc and loc[0] in ("experiments", "decision"):
        return loc
    if loc and loc[0] == "district_population":
        return ("pilot", "districts", *loc[1:])
    return ("pilot", *loc)


def _read_pilot(document: object, lines: Mapping[Path, int], issues: list[SpecIssue], source: str) -> PilotSpec:
    """Returns the pilot a spec document declares; raises SpecError with `issues` and its own."""

    def fail(path: Path, message: str) -> None:
        issues.append(SpecIssue(_line_at(lines, path), field_path(path) or "pilot", message))

    arguments, has_pilot = _pilot_arguments(document, fail)
    found: list[SpecIssue] = []
    spec = _validated(PilotSpec, arguments, document, _pilot_path, lines, found)
    # Without a readable `pilot:`, its fields are all missing: that is said once, above.
    issues += [i for i in found if has_pilot or not (i.field == "pilot" or i.field.startswith("pilot."))]
    if issues or spec is None:
        raise SpecError(issues, source)
    return spec


def parse_pilot_spec(text: str | bytes, source: str = "<spec>") -> PilotSpec:
    """Returns the pilot spec a YAML file declares (text, or bytes in UTF-8); raises SpecError naming
    each issue's line and field."""
    try:
        document, tree = _read_yaml(text)
    except _Refused as refused:
        raise SpecError([refused.issue], source) from None
    return _read_pilot(document, tree.lines, tree.issues, source)


def spec_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> PilotSpec:
    """Returns the pilot spec of its JSON form (`spec_to_dict`, or a parsed spec file); raises SpecError."""
    return _read_pilot(data, {}, [], source)


def experiment_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ExperimentSpec:
    """Returns the experiment of its JSON form (`experiment_to_dict`); raises SpecError."""
    issues: list[SpecIssue] = []
    experiment = _validated(ExperimentSpec, data, {"experiment": data}, lambda loc: ("experiment", *loc), {}, issues)
    if experiment is None:
        raise SpecError(issues, source)
    return experiment


# --- the JSON form ------------------------------------------------------------------------------


def text_to_json(text: LocalizedText) -> str | dict[str, str]:
    """Returns a text's JSON form: the plain string of a text without a language ("" when empty),
    else the mapping of language to text."""
    given = text.given()
    return given.get("", "") if not given or "" in given else given


def _json(value: object) -> Any:
    """Returns a record or a value in JSON form: lists for tuples, ISO dates, texts as text_to_json."""
    if isinstance(value, LocalizedText):
        return text_to_json(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def spec_to_dict(spec: PilotSpec) -> dict[str, Any]:
    """Returns the JSON form of a spec: every field, lists for what is ordered; `spec_from_dict` inverts it.

    Variants (and districts with populations) are lists of [name, value] pairs rather than objects
    so that a store which reorders object keys (PostgreSQL jsonb) keeps the bucketing order.
    """
    pilot = {name: _json(getattr(spec, name)) for name in _PILOT_FIELDS}
    pilot["districts"] = _json(spec.district_population) or list(spec.districts)
    return {
        "pilot": pilot,
        "experiments": [experiment_to_dict(e) for e in spec.experiments],
        "decision": _json(spec.decision),
    }


def experiment_to_dict(experiment: ExperimentSpec) -> dict[str, Any]:
    """Returns the JSON form of one experiment, as it appears in `spec_to_dict`'s `experiments`."""
    return dict(_json(experiment))


# --- changes ------------------------------------------------------------------------------------


def _plan_fields(experiment: ExperimentSpec) -> dict[str, object]:
    """Returns the analysis plan of an experiment as field path -> JSON-ready value."""
    plan = experiment_to_dict(experiment)
    fields: dict[str, object] = {
        "variants": [name for name, _ in experiment.variants],
        "weights": [weight for _, weight in experiment.variants],
    }
    for name in ("salt", "allocation", "layer"):
        fields[name] = plan[name]
    texts: dict[str, object] = {}
    for metric in plan["metrics"]:
        for name in _METRIC_TEXTS:
            text = metric.pop(name)
            if text:
                texts[f"metrics.{metric['key']}.{name}"] = text
        fields[f"metrics.{metric['key']}"] = metric
    fields.update(texts)
    for name in ("primary", "secondary", "guardrails"):
        fields[name] = plan[name]
    fields.update({f"analysis.{name}": value for name, value in plan["analysis"].items()})
    for name in ("minimum_detectable_effect", "planned_sample", "planned_days", "hypothesis", "name"):
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
    whole definition but its texts), metrics.<key>.name and metrics.<key>.description (when given),
    primary, secondary, guardrails, analysis.<field>, minimum_detectable_effect, planned_sample,
    planned_days, hypothesis, name. `locked` is True for the pre-registered fields (`LOCKED_FIELDS`)
    and for the definition of the primary metric.
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
