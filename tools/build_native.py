"""Compiles the stream processor's hot path (experiments.native.COMPILED) with mypyc, and its native core
(streams/core, Rust) with cargo, into build/native/.

    .venv/bin/python tools/build_native.py        (run by make, when a source of the packages changed)

The build is made in a fresh directory, which then takes the place of the previous build; a build that
fails, or does not import once in place, is removed (the modules then run as Python). Its manifest is the
fingerprint of the sources taken before compiling, so a source edited during the build leaves it unused
(see experiments/native.py). Needs a C compiler and Python's headers; the core needs cargo (on the PATH
or in ~/.cargo/bin) and its crates (from crates.io, cached by cargo in ~/.cargo/registry): without cargo,
the build holds no core and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from mypyc.build import mypycify
from setuptools import Distribution  # type: ignore[import-untyped]

from experiments.native import COMPILED, CORE, CORE_DIR, PURE_ENV, ROOT, build_dir, fingerprint

GROUP = "rhizome_native"
#: Run in a fresh interpreter once the build is in place: every compiled module imports from it.
CHECK = (
    "import importlib, experiments.native as n\n"
    f"for name in {[path.removesuffix('.py').replace('/', '.') for path in COMPILED]!r}:\n"
    "    module = importlib.import_module(name)\n"
    "    assert n.compiled(module), module.__file__\n"
    f"if any((n.build_dir() / 'shared').glob('{CORE}.*')):\n"
    "    assert n.core(1) is not None, 'the native core does not load'\n"
)


def cargo() -> str | None:
    """Returns cargo's path, from the PATH or rustup's default place, or None."""
    found = shutil.which("cargo")
    home = Path.home() / ".cargo" / "bin" / "cargo"
    return found or (str(home) if home.is_file() else None)


def build_core(shared: Path) -> bool:
    """Builds the native core (release) into `shared`; returns False when there is no cargo."""
    tool = cargo()
    if tool is None:
        return False
    env = {**os.environ, "PYO3_PYTHON": sys.executable, "CARGO_TARGET_DIR": str(ROOT / "build" / "cargo")}
    manifest = ROOT / CORE_DIR / "Cargo.toml"
    subprocess.run([tool, "build", "--release", "--quiet", "--manifest-path", str(manifest)], check=True, env=env)
    library = ROOT / "build" / "cargo" / "release" / f"lib{CORE}.so"
    shutil.copyfile(library, shared / f"{CORE}{sysconfig.get_config_var('EXT_SUFFIX')}")
    return True


def build(out: Path) -> bool:
    """Compiles the modules into `out`: lib/<package>/<module>.so and shared/<GROUP>__mypyc.so, and the
    native core into shared/; returns whether the core was built (not without cargo)."""
    work = out.with_name(out.name + ".new")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
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
        cored = build_core(work / "shared")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if not cored:
        print("build_native: no cargo: the build holds no native core (streams/core)", file=sys.stderr)
    for intermediate in ("c", "obj"):  # 3.3 MB that nothing loads (and the container image copies the build)
        shutil.rmtree(work / intermediate)
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return cored


def main() -> int:
    started = time.monotonic()
    sources = fingerprint()
    out = build_dir()
    try:
        cored = build(out)
    except Exception as exc:  # the compiler's own output is above
        shutil.rmtree(out, ignore_errors=True)
        print(f"build_native: compiling {', '.join(COMPILED)} failed: {exc}", file=sys.stderr)
        return 1
    (out / "manifest.json").write_text(json.dumps(sources, indent=2) + "\n")
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    checked = subprocess.run(
        [sys.executable, "-c", CHECK], check=False, cwd=ROOT, env=env, capture_output=True, text=True
    )
    if checked.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        print(f"build_native: the build does not import:\n{checked.stderr}", file=sys.stderr)
        return 1
    what = f"{', '.join(COMPILED)} compiled" + (", and the native core built," if cored else "")
    print(f"build_native: {what} in {time.monotonic() - started:.0f} s ({out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
