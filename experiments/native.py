"""The stream processor's hot path compiled to C with mypyc, and its native core in Rust (streams/core),
used only when built from these very sources.

`make` (tools/build_native.py) compiles the modules in `COMPILED`, unchanged Python, into
build/native/, with a manifest naming the SHA-256 of every source of the `experiments` and `streams`
packages at the time. Each of the two packages adds the build to its import path (`extend`) only when
that manifest matches the sources found now, on this Python: a build older than any edit, made for
another interpreter, or absent (no C compiler) is never loaded, and the same modules run as Python,
slower (measured in the README) but with the same results. `RHIZOME_PURE_PYTHON=1` forces Python.

The native core (`rhizome_core`, streams/core) is built by cargo beside the compiled modules, into
build/native/shared, from the same fingerprint (which also covers the core's Rust sources): `core`
returns it when the build is usable and holds it, None otherwise (the processor then decodes and applies
every record in Python, with the same results, slower).

Why every source and not just the compiled ones: compiled code checks the types it receives from the
modules it calls, and may take in their constants; any edit in the two packages asks for a new build.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import sysconfig
from collections.abc import MutableSequence
from pathlib import Path
from types import ModuleType
from typing import Any

#: The modules compiled, as paths from the repository's root.
COMPILED = ("experiments/attribution.py", "streams/processor.py")
#: The packages whose sources a build is made from (see the module's docstring).
PACKAGES = ("experiments", "streams")
ROOT = Path(__file__).resolve().parent.parent
PURE_ENV = "RHIZOME_PURE_PYTHON"
#: The native core's module, and its sources (a Cargo package) beside the Python ones.
CORE = "rhizome_core"
CORE_DIR = Path("streams") / "core"
#: The files a build is made from: Python modules, and the core's Rust sources and manifest (with its lock).
SOURCE_SUFFIXES = (".py", ".rs")
SOURCE_NAMES = ("Cargo.toml", "Cargo.lock")


def build_dir(root: Path = ROOT) -> Path:
    return root / "build" / "native"


def fingerprint(root: Path = ROOT) -> dict[str, str]:
    """What a build is valid for: this interpreter's extension suffix and the SHA-256 of the packages'
    sources (every .py file, and the native core's .rs, Cargo.toml and Cargo.lock, by path)."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        sources = (
            p
            for p in (root / package).rglob("*")
            if (p.suffix in SOURCE_SUFFIXES or p.name in SOURCE_NAMES) and p.is_file()
        )
        for path in sorted(sources):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return {"ext_suffix": str(sysconfig.get_config_var("EXT_SUFFIX")), "sources": digest.hexdigest()}


def usable(root: Path = ROOT) -> bool:
    """Returns True when a build of exactly the current sources, for this interpreter, is there."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return False
    try:
        recorded = json.loads((build_dir(root) / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(recorded == fingerprint(root))


_USABLE: bool | None = None


def _loadable() -> bool:
    """Returns True when the build is usable (checked once a process), and then puts its shared
    directory (the runtime the compiled modules share, and the core) on the import path."""
    global _USABLE
    if _USABLE is None:
        _USABLE = usable()
    if _USABLE:
        shared = str(build_dir() / "shared")
        if shared not in sys.path:
            sys.path.append(shared)
    return _USABLE


def extend(package: str, path: MutableSequence[str]) -> None:
    """Puts the build's modules of `package` ahead of its sources when the build is usable (called by
    the package's `__init__`, with its `__path__`)."""
    if _loadable():
        path.insert(0, str(build_dir() / "lib" / package))


def compiled(module: ModuleType) -> bool:
    """Returns True when the module was loaded from a compiled build rather than its source."""
    return Path(module.__file__ or "").suffix != ".py"


def core_module() -> ModuleType | None:
    """Returns the native core's module (`rhizome_core`) when the build is usable and holds it, else None."""
    if not _loadable():
        return None
    try:
        return importlib.import_module(CORE)
    except ImportError:
        return None


def core(limit: int) -> Any | None:
    """Returns a new native core (`rhizome_core.Core`, keeping up to `limit` participants' states parsed)
    when the build is usable and holds one, else None."""
    module = core_module()
    return None if module is None else module.Core(limit)
