"""Times GrowthBook's gbstats 0.8.0 on an analysis request, one comparison at a time (the baseline of bench_stats).

Runs inside .venv-gbstats (gbstats pins numpy<2):

    .venv-gbstats/bin/python benchmarks/gbstats_timing.py REQUEST.json

Prints one JSON object: wall seconds end to end (the request's dicts to results: statistics built,
SRM checked, every comparison's test run) and for the tests alone, comparisons analysed and how many
gbstats refused.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "gbstats"))

from adapter import outcome, srm_p_value, statistic_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("request", type=Path)
    request = json.loads(parser.parse_args().request.read_text())
    warnings.simplefilter("ignore")
    gc.collect()
    start = time.perf_counter()
    srm_p_value(request)
    pairs = statistic_pairs(request)
    tests_start = time.perf_counter()
    rows = [outcome(request, control, treatment) for _, _, control, treatment in pairs]
    end = time.perf_counter()
    refused = sum(isinstance(r, ZeroDivisionError) or r.error_message is not None for r in rows)
    timing = {"seconds": end - start, "tests_seconds": end - tests_start, "comparisons": len(rows), "refused": refused}
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
