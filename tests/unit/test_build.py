"""The repository holds sources only: build outputs (the broker's jars, compiled modules) are fetched or
made by `make`, ignored by git, and `make clean` deletes nothing else."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Binaries and the sources of a second implementation: none belongs in the repository.
BUILT = re.compile(r"\.(jar|so|pyd|rs)$")
#: What `rhizome up` and `rhizome demo` keep (the database, the broker's data): never a build output.
STATE = ".rhizome"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def make_plan(*args: str) -> str:
    """Returns what `make -n ARGS` prints, as a top-level make would (not the one running `make test`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout


def cleaned() -> list[str]:
    """Returns the paths `make clean` deletes, as make would run it."""
    recipe = make_plan("clean")
    words = shlex.split(recipe)
    assert words[:2] == ["rm", "-rf"], f"make clean runs {recipe!r}, expected one `rm -rf PATH...`"
    return words[2:]


def cleaning_problems(paths: list[str]) -> list[str]:
    """Returns why deleting `paths` would lose something that is not a build output."""
    problems = []
    for path in paths:
        if Path(path).parts[:1] == (STATE,):
            problems.append(f"{path}: the state of rhizome up/demo, not a build output")
        tracked = git("ls-files", "--", path).stdout.split()
        if tracked:
            problems.append(f"{path}: holds {len(tracked)} tracked files, such as {tracked[0]}")
        if git("check-ignore", "--no-index", "-q", f"{path}/").returncode != 0:
            problems.append(f"{path}: not ignored by git, so it may hold work not committed yet")
    return problems


def test_no_binary_or_second_implementation_is_tracked() -> None:
    tracked = [path for path in git("ls-files").stdout.splitlines() if BUILT.search(path)]
    assert not tracked, f"tracked build outputs or Rust sources: {tracked[:5]}"


def test_the_kafka_jars_are_ignored_and_fetched_by_make() -> None:
    assert git("check-ignore", "--no-index", "-q", "infra/kafka/target/dependency/kafka_2.13-4.4.0.jar").returncode == 0
    # test, demo and bench depend on the jars' target, which fetches them with Maven.
    plan = make_plan("-p", "kafka-jars")
    for goal in ("test", "demo", "bench"):
        prerequisites = re.search(rf"^{goal}: (.*)$", plan, re.MULTILINE)
        assert prerequisites and "infra/kafka/target/dependency/.complete" in prerequisites[1], goal


def test_make_clean_deletes_only_untracked_build_outputs() -> None:
    paths = cleaned()
    assert "infra/kafka/target" in paths and ".venv" in paths
    assert cleaning_problems(paths) == []


def test_a_clean_that_would_delete_tracked_files_or_state_is_caught() -> None:
    problems = cleaning_problems(["infra/kafka", ".rhizome", "docs"])
    assert any(p.startswith("infra/kafka: holds") for p in problems), problems
    assert any(p.startswith(".rhizome: the state") for p in problems), problems
    assert any(p.startswith("docs: not ignored") for p in problems), problems
