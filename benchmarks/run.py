"""`make bench`: every benchmark, each figure beside its baseline measured in the same run.

Runs the stats engine against gbstats (bench_stats), the backbone against a bare kafka-python
producer and a bare aiokafka consumer (bench_pipeline), and the console's page render times
(bench_console), the citizens' portal's render times and freshness (bench_portal); their JSON
lands in bench-output/, and a summary in bench-output/summary.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-output"
BENCHES = ("bench_stats", "bench_pipeline", "bench_console", "bench_portal")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    failed = []
    for name in BENCHES:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, "-m", f"benchmarks.{name}"], cwd=ROOT) != 0:
            failed.append(name)
    lines = ["# Rhizome benchmarks", ""]
    for name in ("stats", "pipeline", "console", "portal"):
        path = OUT / f"{name}.json"
        if path.exists():
            lines += [f"## {name}", "", "```json", json.dumps(json.loads(path.read_text()), indent=2), "```", ""]
    (OUT / "summary.md").write_text("\n".join(lines))
    print(f"\nsummary: {OUT / 'summary.md'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
