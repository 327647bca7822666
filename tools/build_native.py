"""Compiles the stream processor's hot path (experiments.native.COMPILED) with mypyc into build/native/.

    .venv/bin/python tools/build_native.py        (run by make, when a source of the packages changed)

The build is made in a fresh directory and takes the place of the previous one only once it imports;
its manifest is the fingerprint of the sources taken before compiling, so a source edited during the
build leaves it unused (see experiments/native.py). Needs a C compiler and Python's headers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mypyc.build import mypycify
from setuptools import Distribution  # type: ignore[import-untyped]

from experiments.native import COMPILED, ROOT, build_dir, fingerprint

GROUP = "rhizome_native"
CHECK = (
    "import experiments.attribution as a, streams.processor as p, experiments.native as n; "
    "assert n.compiled(a) and n.compiled(p), (a.__file__, p.__file__)"
)


def build(out: Path) -> None:
    """Compiles the modules into `out`: lib/<package>/<module>.so and shared/<GROUP>__mypyc.so."""
    work = out.with_name(out.name + ".new")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chdir(ROOT)  # mypyc names the modules from their paths
    extensions = mypycify(list(COMPILED), opt_level="3", target_dir=str(work / "c"), group_name=GROUP)
    dist = Distribution({"name": "rhizome-native", "ext_modules": extensions})
    dist.verbose = 0
    command = dist.get_command_obj("build_ext")
    command.build_lib = str(work / "lib")
    command.build_temp = str(work / "obj")
    command.parallel = os.cpu_count() or 1
    dist.run_command("build_ext")
    (work / "shared").mkdir()
    for runtime in (work / "lib").glob(f"{GROUP}__mypyc*"):
        runtime.rename(work / "shared" / runtime.name)
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)


def main() -> int:
    started = time.monotonic()
    sources = fingerprint()
    out = build_dir()
    try:
        build(out)
    except Exception as exc:  # the compiler's own output is above
        shutil.rmtree(out, ignore_errors=True)
        print(f"build_native: compiling {', '.join(COMPILED)} failed: {exc}", file=sys.stderr)
        return 1
    (out / "manifest.json").write_text(json.dumps(sources, indent=2) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "RHIZOME_PURE_PYTHON"}
    checked = subprocess.run(
        [sys.executable, "-c", CHECK], check=False, cwd=ROOT, env=env, capture_output=True, text=True
    )
    if checked.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        print(f"build_native: the build does not import:\n{checked.stderr}", file=sys.stderr)
        return 1
    print(f"build_native: {', '.join(COMPILED)} compiled in {time.monotonic() - started:.0f} s ({out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
