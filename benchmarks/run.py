"""`make bench`: every benchmark, each figure beside its baseline measured in the same run.

Runs the stats engine against gbstats (bench_stats), the backbone against a bare kafka-python
producer and a bare aiokafka consumer (bench_pipeline), the event contract's decoding and the ingest
API's memory under wrong keys (bench_ingest), the SDK's calls (bench_sdk), the console's page render
times (bench_console), and the citizens' portal's render times and freshness (bench_portal); their JSON
lands in bench-output/, and the figures with what each measures in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-output"
BENCHES = ("bench_stats", "bench_pipeline", "bench_ingest", "bench_sdk", "bench_console", "bench_portal")
#: The figures of the latest run, in the repository: the one place the docs quote them from.
DOC = ROOT / "docs" / "benchmarks.md"


def write_doc() -> None:
    """Writes docs/benchmarks.md from the JSON of the benchmarks in bench-output/."""
    lines = [
        "# Benchmarks",
        "",
        "The figures of the latest `make bench` (this file is written by `benchmarks/run.py`; do not edit it).",
        "Each figure stands beside its baseline, measured in the same run on the same machine; how each is",
        "measured is said at the top of its module in `benchmarks/`.",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}.",
        "",
    ]
    for name in BENCHES:
        path = OUT / f"{name.removeprefix('bench_')}.json"
        if path.exists():
            doc = (importlib.import_module(f"benchmarks.{name}").__doc__ or "").strip()
            figures = json.dumps(json.loads(path.read_text()), indent=2)
            when = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
            lines += [f"## {name}", "", f"Measured {when}.", "", doc, "", "```json", figures, "```", ""]
    DOC.write_text("\n".join(lines))
    print(f"figures: {DOC.relative_to(ROOT)}")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    failed = []
    for name in BENCHES:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, "-m", f"benchmarks.{name}"], cwd=ROOT) != 0:
            failed.append(name)
    write_doc()
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
