"""The private names of faust, mode and aiokafka that the worker relies on (streams/delivery.py, the only
module that uses any, docs/faust-integration.md): each is still there, unchanged, in the installed
releases. An upgrade that removes or changes one fails here, naming it and the releases."""

from __future__ import annotations

import ast
import importlib.metadata
from dataclasses import replace
from pathlib import Path

import pytest

from streams import delivery
from streams.delivery import CHECKED_AGAINST, PRIVATE_NAMES, PrivateName, integration_problems

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("faust", "mode", "aiokafka")


def test_every_private_name_the_worker_relies_on_holds_in_the_installed_releases() -> None:
    problems = integration_problems()
    assert not problems, "the faust integration must be checked again:\n" + "\n".join(problems)


def test_the_releases_checked_are_the_ones_pinned() -> None:
    pins = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )  # fmt: skip
    assert {name: pins[name] for name in CHECKED_AGAINST} == CHECKED_AGAINST
    assert {name: importlib.metadata.version(name) for name in CHECKED_AGAINST} == CHECKED_AGAINST


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (
            replace(next(n for n in PRIVATE_NAMES if n.name == "_read_offset"), name="_read_offsets"),
            "faust.transport.consumer:Consumer._read_offsets (the read position per partition) is gone: "
            "faust-streaming 0.15.3 is installed, this integration was checked against 0.15.3",
        ),
        (
            replace(next(n for n in PRIVATE_NAMES if n.name == "_add_gap"), parameters=("self", "tp", "gap")),
            "faust.transport.consumer:Consumer._add_gap (offsets a commit may pass) takes "
            "(self, tp, offset_from, offset_to) where (self, tp, gap) was checked: faust-streaming 0.15.3",
        ),
        (
            replace(next(n for n in PRIVATE_NAMES if n.name == "_proc_fetch_request"), source="0123456789ab"),
            "aiokafka.consumer.fetcher:Fetcher._proc_fetch_request (extended: marks batch records) changed: "
            "its source digest is 59bf948fff47, 0123456789ab was checked: aiokafka 0.14.0 is installed",
        ),
        (
            PrivateName("mode-streaming", "mode.utils.futures", "notify_all", "a function mode no longer has"),
            "mode.utils.futures.notify_all (a function mode no longer has) is gone: mode-streaming 0.7.1 is "
            "installed, this integration was checked against 0.7.1",
        ),
        (
            PrivateName("aiokafka", "aiokafka.consumer.fetcher:Prefetcher", "_records", "a class gone"),
            "aiokafka.consumer.fetcher:Prefetcher._records (a class gone) aiokafka.consumer.fetcher:Prefetcher is "
            "gone: aiokafka 0.14.0",
        ),
    ],
)
def test_a_name_gone_or_changed_is_reported_with_its_release(changed: PrivateName, expected: str) -> None:
    [problem] = integration_problems([changed])
    assert problem.startswith(expected), problem


def private_uses(path: Path) -> set[str]:
    """Returns the underscore attributes a module uses, and its imports from faust, mode and aiokafka
    ("import MODULE")."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.add(node.attr)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            found.update(f"import {node.module}" for alias in node.names if node.module)
    return found


def test_no_other_module_of_ours_uses_a_private_name_of_faust_mode_or_aiokafka() -> None:
    # Only streams/delivery.py imports from faust's, mode's or aiokafka's modules; the app imports faust.
    ours = {*ROOT.glob("streams/*.py"), *ROOT.glob("services/**/*.py"), *ROOT.glob("experiments/**/*.py")}
    offenders = {}
    for path in sorted(ours - {ROOT / "streams" / "delivery.py"}):
        imports = {use for use in private_uses(path) if use.startswith("import ")}
        if imports:
            offenders[str(path.relative_to(ROOT))] = sorted(imports)
    assert offenders == {}


def test_the_names_delivery_uses_are_all_declared() -> None:
    declared = {n.name for n in PRIVATE_NAMES}
    own = {name for name in vars(delivery.BatchConsumer) | vars(delivery.BatchApp) if name.startswith("_")}
    own |= {"_made_here"}
    used = {use for use in private_uses(Path(delivery.__file__)) if not use.startswith("import ")}
    assert used - declared - own == set()
