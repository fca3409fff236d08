"""Which hot path runs: fastread and fastjson compiled by Cython, or their .py source.

``pip install .`` compiles :mod:`fastdump.fastread` and :mod:`fastdump.fastjson`
where it can (setup.py); the .py files stay beside the compiled modules and
give the same output. ``FASTDUMP_PURE=1`` in the environment makes this
process, and the worker processes that inherit its environment, import the .py
files instead: importing this module (``fastdump/__init__.py`` does it first)
puts a finder in front of Python's for those two modules.

A compiled module next to its .py shadows it: after editing fastread.py,
fastjson.py or their .pxd, an in-place build (``pip install -e .``) is stale
until rebuilt. setup.py records a hash of the sources it compiled
(:data:`SOURCES_RECORD`); :func:`stale_sources` compares it with the sources now.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

PURE_ENV = "FASTDUMP_PURE"
COMPILED_MODULES = ("fastread", "fastjson")
# each compiled module's sources: what makes its build stale when edited
SOURCES = ("fastread.py", "fastread.pxd", "fastjson.py", "fastjson.pxd")
SOURCES_RECORD = "_compiled_sources.json"  # written by setup.py beside the compiled modules
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class NoCython:
    """Stands in for the ``cython`` module where Cython is not installed.

    The hot path's modules ask ``cython.compiled`` only when run as plain
    Python, where it is False (compiled, Cython answers it at compile time).
    """

    compiled = False


def pure_requested() -> bool:
    """Whether ``FASTDUMP_PURE`` asks for the .py hot path ("", "0": no)."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


class _PureFinder:
    """Finds fastdump.fastread and fastdump.fastjson as their .py source, never compiled.

    (A meta path finder is anything with ``find_spec``: importlib.abc's base class
    would cost every run its import.)
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __package__ or name not in COMPILED_MODULES:
            return None
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(PACKAGE_DIR, name + ".py"))


def _install_pure_finder() -> None:
    if not any(isinstance(finder, _PureFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PureFinder())


def hot_path() -> str:
    """ "compiled" if both modules of the hot path import compiled, else "pure".

    Asks where they would be imported from, without importing them.
    """
    for name in COMPILED_MODULES:
        spec = importlib.util.find_spec(f"{__package__}.{name}")
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return "pure"
    return "compiled"


def describe() -> str:
    """The hot path as ``fastdump --version`` says it."""
    return "compiled hot path" if hot_path() == "compiled" else "pure-Python hot path"


def source_hashes(directory: str = PACKAGE_DIR) -> dict[str, str]:
    """sha256 of each hot path source in ``directory`` (what setup.py records)."""
    import hashlib

    hashes = {}
    for name in SOURCES:
        try:
            with open(os.path.join(directory, name), "rb") as f:
                hashes[name] = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:  # (an install without the .pxd files)
            hashes[name] = "missing"
    return hashes


def compiled_files(directory: str = PACKAGE_DIR) -> list[str]:
    """The compiled hot path modules in ``directory`` (any Python version's)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES) + (".so", ".pyd")
    return sorted(name for name in os.listdir(directory)
                  if name.split(".")[0] in COMPILED_MODULES and name.endswith(suffixes))


def stale_sources(directory: str = PACKAGE_DIR) -> list[str]:
    """The sources in ``directory`` edited since its compiled modules were built.

    Empty when nothing there is compiled. A build with no record of its sources
    counts as stale in all of them.
    """
    if not compiled_files(directory):
        return []
    import json

    try:
        with open(os.path.join(directory, SOURCES_RECORD), "rb") as f:
            built = json.load(f)
    except (OSError, ValueError):
        built = {}
    now = source_hashes(directory)
    return [name for name in SOURCES if built.get(name) != now[name]]


# Before anything imports fastread or fastjson (fastdump/__init__.py imports this first):
# under FASTDUMP_PURE=1 they must come from their .py, in this process and its workers.
if pure_requested():
    _install_pure_finder()
