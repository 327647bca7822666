"""The request of docs/statistics.md, with the elided treatment arms filled in."""

from __future__ import annotations

from typing import Any

EXAMPLE: dict[str, Any] = {
    "engine": "frequentist",
    "difference": "relative",
    "alpha": 0.05,
    "sequential_tuning": 5000,
    "correction": "none",
    "control": "control",
    "variants": {"control": {"units": 10000, "weight": 0.5}, "treatment": {"units": 10000, "weight": 0.5}},
    "metrics": [
        {
            "name": "converted",
            "type": "proportion",
            "data": {"control": {"n": 10000, "sum": 1000}, "treatment": {"n": 10000, "sum": 1100}},
        },
        {
            "name": "minutes",
            "type": "mean",
            "data": {
                "control": {"n": 9000, "sum": 27000.0, "sum_squares": 120000.0},
                "treatment": {"n": 9100, "sum": 28000.0, "sum_squares": 125000.0},
            },
        },
        {
            "name": "minutes_cuped",
            "type": "mean",
            "data": {
                "control": {
                    "n": 9000,
                    "sum": 27000.0,
                    "sum_squares": 120000.0,
                    "pre_sum": 26000.0,
                    "pre_sum_squares": 110000.0,
                    "pre_post_sum_products": 100000.0,
                },
                "treatment": {
                    "n": 9100,
                    "sum": 28000.0,
                    "sum_squares": 125000.0,
                    "pre_sum": 26500.0,
                    "pre_sum_squares": 112000.0,
                    "pre_post_sum_products": 103000.0,
                },
            },
        },
        {
            "name": "tasks_per_session",
            "type": "ratio",
            "data": {
                "control": {
                    "n": 5000,
                    "sum": 9000.0,
                    "sum_squares": 30000.0,
                    "den_sum": 7000.0,
                    "den_sum_squares": 12000.0,
                    "sum_products": 15000.0,
                },
                "treatment": {
                    "n": 5000,
                    "sum": 9500.0,
                    "sum_squares": 31000.0,
                    "den_sum": 7100.0,
                    "den_sum_squares": 12500.0,
                    "sum_products": 15500.0,
                },
            },
        },
    ],
}
