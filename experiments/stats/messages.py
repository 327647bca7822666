"""Why a comparison could not be computed: the reasons an error row carries."""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """A comparison's outcome; checked in this order, the first that applies wins."""

    OK = 0
    EMPTY_ARM = 1
    SINGLE_UNIT = 2
    UNDEFINED_MEAN = 3
    ZERO_CONTROL_MEAN = 4
    ZERO_VARIANCE = 5
    NOT_FINITE = 6


_TEMPLATES = {
    Reason.EMPTY_ARM: "empty arm: {variant} has no units",
    Reason.SINGLE_UNIT: "one unit only in {variant}: variance undefined",
    Reason.UNDEFINED_MEAN: "mean undefined in {variant}: denominator sum is 0",
    Reason.ZERO_CONTROL_MEAN: "control mean is 0: relative difference undefined",
    Reason.ZERO_VARIANCE: "zero variance in {variant}",
    Reason.NOT_FINITE: "numbers out of range: result not finite",
}


def describe(reason: Reason, variant: str) -> str:
    """Returns the short reason shown in an error row; `variant` is the arm at fault."""
    return _TEMPLATES[reason].format(variant=variant)
