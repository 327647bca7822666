"""Input checks shared by request parsing and planning: one helper, one message format.

Every failure reads `{field}: {what was expected} (got {value})`, on one line.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Final, NamedTuple, TypeGuard, TypeVar

Choice = TypeVar("Choice", bound=str)

_PLAIN_KEY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class RequestError(ValueError):
    """A request to the stats engine breaks its contract; `field` is the path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class OversizedInteger(NamedTuple):
    """An integer of a JSON text too long for Python to read (`load_json`); no field accepts it."""

    digits: int


def load_json(text: str) -> object:
    """Returns the value of a JSON text, reading an integer longer than Python's limit on integer digits
    (a guard against quadratic parsing) as an `OversizedInteger`, so that its field can be named.

    Raises `json.JSONDecodeError` when the text is not JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:
        # Only an over-long integer makes json.loads raise a plain ValueError.
        return json.loads(text, parse_int=_integer)


def _integer(digits: str) -> int | OversizedInteger:
    if len(digits) > sys.get_int_max_str_digits():
        return OversizedInteger(len(digits.lstrip("-")))
    return int(digits)


def field_path(where: str, key: object) -> str:
    """Returns the path of `key` inside `where`: `a.b` for plain keys, `a["b c"]` for others."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{shown(key)}]"


def shown(value: object) -> str:
    """Returns a short one-line rendering of a value for an error message."""
    if isinstance(value, OversizedInteger):
        return f"an integer of {value.digits} digits"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    text = text.replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


def is_number(value: object) -> TypeGuard[int | float]:
    """Returns whether `value` is a number `check_number` accepts the type of (a bool is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_float(value: object) -> float:
    """Returns a number as a float: an integer beyond the range of a double (or an `OversizedInteger`)
    becomes an infinity of its sign, which every number check refuses."""
    if isinstance(value, OversizedInteger):
        return math.inf
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


def check_number(
    field: str,
    value: object,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    integer: bool = False,
) -> float:
    """Returns `value` as a float after checking it is a finite number (an integer when asked) within bounds.

    Raises `RequestError` naming `field`, the expected range and the value received.
    """
    kind = "an integer" if integer else "a number"
    if not is_number(value) and not isinstance(value, OversizedInteger):
        raise RequestError(field, f"must be {kind} (got {shown(value)})")
    number = as_float(value)
    if not math.isfinite(number):
        raise RequestError(field, f"must be a finite number (got {shown(value)})")
    if integer and not number.is_integer():
        raise RequestError(field, f"must be an integer (got {shown(value)})")
    bounds = (
        (">=", ge, ge is not None and number < ge),
        (">", gt, gt is not None and number <= gt),
        ("<=", le, le is not None and number > le),
        ("<", lt, lt is not None and number >= lt),
    )
    if any(broken for _, _, broken in bounds):
        expected = " and ".join(f"{op} {shown(bound)}" for op, bound, _ in bounds if bound is not None)
        raise RequestError(field, f"must be {expected} (got {shown(value)})")
    return number


def check_choice(field: str, value: object, choices: tuple[Choice, ...]) -> Choice:
    """Returns `value` when it is one of `choices`; raises `RequestError` naming `field` otherwise."""
    for choice in choices:
        if value == choice:
            return choice
    raise RequestError(field, f"must be one of {', '.join(choices)} (got {shown(value)})")
