"""Input checks shared by request parsing and planning: one helper, one message format.

Every failure reads `{field}: {what was expected} (got {value})`, on one line.
"""

from __future__ import annotations

import json
import math
from typing import TypeGuard, TypeVar

Choice = TypeVar("Choice", bound=str)


class RequestError(ValueError):
    """A request to the stats engine breaks its contract; `field` is the path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def shown(value: object) -> str:
    """Returns a short one-line rendering of a value for an error message."""
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
    if not is_number(value):
        raise RequestError(field, f"must be {kind} (got {shown(value)})")
    number = float(value)
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
