"""Why a comparison could not be computed: the reasons an error row carries."""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """A comparison's outcome; checked in this order, the first that applies wins."""

    OK = 0
    EMPTY_ARM = 1
    SINGLE_UNIT = 2
    #: An arm's sums that no real values can produce (see `experiments.stats.sums`).
    NEGATIVE_VARIANCE = 3
    IMPOSSIBLE_CORRELATION = 4
    SUMS_OVERFLOW = 5
    UNDEFINED_MEAN = 6
    ZERO_CONTROL_MEAN = 7
    ZERO_VARIANCE = 8
    #: Fieller's relative interval is the whole line (or two half-lines): the control mean is too uncertain.
    UNBOUNDED_INTERVAL = 9
    NOT_FINITE = 10


_TEMPLATES = {
    Reason.EMPTY_ARM: "empty arm: {variant} has no units",
    Reason.SINGLE_UNIT: "one unit only in {variant}: variance undefined",
    Reason.NEGATIVE_VARIANCE: "{detail}",
    Reason.IMPOSSIBLE_CORRELATION: "{detail}",
    Reason.SUMS_OVERFLOW: "{detail}",
    Reason.UNDEFINED_MEAN: "mean undefined in {variant}: denominator sum is 0",
    Reason.ZERO_CONTROL_MEAN: "control mean is 0: relative difference undefined",
    Reason.ZERO_VARIANCE: "zero variance in {variant}",
    Reason.UNBOUNDED_INTERVAL: (
        "relative interval unbounded: the mean of {variant} is too uncertain to divide by "
        "(Fieller's interval); analyse the absolute difference or collect more units"
    ),
    Reason.NOT_FINITE: "numbers out of range: {detail} is not finite",
}


def describe(reason: Reason, variant: str, detail: str = "") -> str:
    """Returns the short reason shown in an error row; `variant` is the arm at fault, `detail` says what is
    wrong where the reason alone does not (which sums, which number)."""
    return _TEMPLATES[reason].format(variant=variant, detail=detail)
