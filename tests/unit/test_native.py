"""The processor's compiled build (experiments/native.py): loaded only when built from the current
sources, and computing exactly what the Python modules compute."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import experiments.attribution
import streams.processor
from experiments import native
from experiments.specs import parse_pilot_spec
from services.simulator.citizens import BEHAVIOURS, generate
from tests.support.native_run import SPEC


def python(
    *args: str, pure: bool, cwd: Path = native.ROOT, packages: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs this interpreter, as Python or not, importing the packages from `packages` when given."""
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    if pure:
        env[native.PURE_ENV] = "1"
    if packages is not None:
        env["PYTHONPATH"] = str(packages)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.mark.skipif(bool(os.environ.get(native.PURE_ENV)), reason="RHIZOME_PURE_PYTHON asks for the Python modules")
def test_the_tests_run_the_compiled_processor() -> None:
    # make test builds it first (make native); everything else in the suite then tests the build.
    assert native.usable(), "no build of the current sources in build/native: run `make native`"
    assert native.compiled(streams.processor), streams.processor.__file__
    assert native.compiled(experiments.attribution), experiments.attribution.__file__


def test_a_build_is_used_only_for_the_sources_and_interpreter_it_was_made_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    for package in native.PACKAGES:
        (tmp_path / package / "sub").mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "sub" / "m.py").write_text("X = 1\n")
    manifest = native.build_dir(tmp_path) / "manifest.json"
    assert not native.usable(tmp_path)  # no build
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps(native.fingerprint(tmp_path)))
    assert native.usable(tmp_path)
    monkeypatch.setenv(native.PURE_ENV, "1")
    assert not native.usable(tmp_path)
    monkeypatch.setenv(native.PURE_ENV, "0")
    assert native.usable(tmp_path)
    (tmp_path / "streams" / "sub" / "m.py").write_text("X = 2\n")  # an edit in a module not compiled
    assert not native.usable(tmp_path)
    (tmp_path / "streams" / "sub" / "m.py").write_text("X = 1\n")
    assert native.usable(tmp_path)
    (tmp_path / "experiments" / "new.py").write_text("")  # a module added
    assert not native.usable(tmp_path)
    manifest.write_text(json.dumps({**native.fingerprint(tmp_path), "ext_suffix": ".cpython-312-x86_64.so"}))
    assert not native.usable(tmp_path)
    manifest.write_text("{not json")
    assert not native.usable(tmp_path)


def test_an_edited_source_makes_the_package_load_its_python(tmp_path: Path) -> None:
    # A copy of the checkout's packages and build, where one source is then edited.
    for package in native.PACKAGES:
        shutil.copytree(native.ROOT / package, tmp_path / package)
    shutil.copytree(native.build_dir(), native.build_dir(tmp_path))
    probe = "import streams.processor as p, experiments.native as n; print(n.compiled(p))"
    if native.usable():
        assert python("-c", probe, pure=False, cwd=tmp_path).stdout.strip() == "True"
    with (tmp_path / "streams" / "processor.py").open("a") as f:
        f.write("\n# edited\n")
    shown = python("-c", probe, pure=False, cwd=tmp_path)
    assert shown.stdout.strip() == "False", shown.stderr


def test_the_compiled_and_python_processors_compute_the_same(tmp_path: Path) -> None:
    # Everything the processor returns and keeps, to the last bit of every sum, on a simulated pilot:
    # every event delivered twice (the second time in reverse order, so also late ones, refused),
    # and an erasure.
    spec = parse_pilot_spec(SPEC.read_text())
    end = datetime(2026, 3, 2, 12, tzinfo=UTC)
    events: list[dict[str, Any]] = generate(BEHAVIOURS["bike-share"], spec, end - timedelta(days=6), end, 300, seed=11)
    path = tmp_path / "events.json"
    path.write_bytes(orjson.dumps({"events": events, "clock": end.timestamp()}))
    runs = {}
    for pure in (False, True):
        done = python("-m", "tests.support.native_run", str(path), pure=pure)
        assert done.returncode == 0, done.stderr
        runs[pure] = orjson.loads(done.stdout)
    assert runs[True]["compiled"] == [False, False]
    if not os.environ.get(native.PURE_ENV):
        assert runs[False]["compiled"] == [True, True]
    assert runs[False]["applied"] > 1500
    assert runs[False]["duplicates"] > 1500
    assert runs[False]["dead_letters"] and runs[False]["texts"]
    assert runs[False] == {**runs[True], "compiled": runs[False]["compiled"]}


@pytest.mark.skipif(bool(os.environ.get(native.PURE_ENV)), reason="RHIZOME_PURE_PYTHON asks for the Python modules")
def test_the_build_loads_beside_the_packages_pip_installs(tmp_path: Path) -> None:
    # As the container image uses it (infra/docker/Dockerfile): made from the sources, as make makes it,
    # then copied beside the packages pip installed from the project's wheel, which must load it. The
    # build keeps only what is loaded.
    assert sorted(p.name for p in native.build_dir().iterdir()) == ["lib", "manifest.json", "shared"]
    # pip builds the wheel where the project is (setuptools writes build/lib/ and the egg-info there): a
    # copy of what the wheel is made of, so that the checkout is left as it was.
    project, site = tmp_path / "project", tmp_path / "site-packages"
    packages = tomllib.loads((native.ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for name in (pattern.rstrip("*") for pattern in packages["find"]["include"]):
        shutil.copytree(native.ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(native.ROOT / name, project / name)
    installed = python("-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(project), pure=False)
    assert installed.returncode == 0, installed.stderr
    shutil.copytree(native.build_dir(), native.build_dir(site))
    probe = "import streams.processor as p, experiments.native as n; print(n.ROOT, n.compiled(p))"
    shown = python("-c", probe, pure=False, cwd=tmp_path, packages=site)
    assert shown.stdout.split() == [str(site), "True"], shown.stderr
