"""The stats engine: from sufficient statistics to the numbers a decision board trusts.

`analyze_dict` is the contract of `rhizome analyze` (docs/statistics.md); `power` plans samples.
"""

from __future__ import annotations

from experiments.stats import power
from experiments.stats.checks import RequestError, load_json
from experiments.stats.engine import analyze
from experiments.stats.request import AnalysisRequest, Metric, MetricGroup, Variant, parse_request
from experiments.stats.result import AnalysisResult, Comparison
from experiments.stats.srm import SrmResult

__all__ = [
    "AnalysisRequest",
    "AnalysisResult",
    "Comparison",
    "Metric",
    "MetricGroup",
    "RequestError",
    "SrmResult",
    "Variant",
    "analyze",
    "analyze_dict",
    "load_json",
    "parse_request",
    "power",
]


def analyze_dict(obj: object) -> dict[str, object]:
    """Returns the result object of docs/statistics.md for a JSON-decoded request.

    Raises `RequestError` naming the first offending field of a bad request.
    """
    return analyze(parse_request(obj)).to_dict()
