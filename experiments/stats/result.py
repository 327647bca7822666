"""What an analysis returns: immutable typed records, and their JSON form of docs/statistics.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from experiments.stats.srm import SrmResult

#: The fields of a comparison row in the JSON result, in order.
REPORTED_FIELDS: Final = (
    "metric",
    "variant",
    "control_mean",
    "mean",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "adjusted_p_value",
    "chance_to_win",
    "error",
)


class Comparison(NamedTuple):
    """One (metric, treatment) comparison against control. An error row has every number None.

    The reported fields come first, in the order of the JSON row.

    `p_value` and `adjusted_p_value` are None under the Bayesian engine, `chance_to_win` and
    `expected_loss` under the others. `control_mean` and `mean` are unadjusted (before CUPED); `effect`,
    `ci_low`, `ci_high` and `se` are in the request's difference scale (relative or absolute).
    """

    metric: str
    variant: str
    control_mean: float | None
    mean: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    adjusted_p_value: float | None
    chance_to_win: float | None
    error: str | None
    se: float | None
    expected_loss: float | None
    control_units: int
    units: int


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """The sample-ratio check and one comparison per (metric, treatment), in request order."""

    srm: SrmResult
    comparisons: tuple[Comparison, ...]

    def to_dict(self) -> dict[str, object]:
        """Returns the result object of docs/statistics.md, ready for `json.dumps`."""
        return {
            "srm": {"p_value": self.srm.p_value, "mismatch": self.srm.mismatch},
            "comparisons": [dict(zip(REPORTED_FIELDS, row, strict=False)) for row in self.comparisons],
        }
