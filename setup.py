"""The compiled hot path: fastdump/fastread.py and fastdump/fastjson.py, compiled by Cython.

Cython's pure-Python mode: the .py files are the one source of truth (their C
types are in the .pxd files beside them) and run unchanged as plain Python.
``pip install .`` compiles them when it can (Cython is a build requirement, in
pyproject.toml); when it cannot (no C compiler, no Cython, a compile error) it
says so and installs the pure-Python package, which gives the same output, only
slower. ``fastdump --version`` tells which one is installed. FASTDUMP_PURE=1 at
build time skips compiling; at run time it makes an installed compiled package
run the .py files (see fastdump/__init__.py).

Developers: ``pip install -e .`` puts the compiled modules next to the .py files,
where Python imports them before the .py: after editing fastread.py, fastjson.py
or a .pxd, run ``pip install -e .`` again (the tests fail on a stale build).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = ["fastdump/fastread.py", "fastdump/fastjson.py"]
# what fastdump/hotpath.py compares with the sources to find a stale build (keep in step)
SOURCES = ("fastread.py", "fastread.pxd", "fastjson.py", "fastjson.pxd")
SOURCES_RECORD = "_compiled_sources.json"
PURE_NOTE = ("fastdump: installing the pure-Python hot path (the same output, slower): {}. "
             "`fastdump --version` says which hot path is installed.")


def _say(message: str) -> None:
    print(f"\n*** {message}\n", file=sys.stderr, flush=True)


class OptionalBuildExt(build_ext):
    """Compiles the hot path; if any of it fails, none of it is installed, with a note."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler (or a broken one): go pure
            self._give_up(exc)

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except Exception as exc:  # noqa: BLE001 - the same
            self._give_up(exc)
        else:
            self._record_sources()
            _say("fastdump: compiled hot path built: " + ", ".join(
                self.get_ext_fullpath(ext.name) for ext in self.extensions))

    def _record_paths(self) -> list[str]:
        # beside the compiled modules: in build_lib, and in the package itself when they
        # are copied there (pip install -e .)
        built = os.path.dirname(self.get_ext_fullpath("fastdump.fastread"))
        in_place = self.inplace or getattr(self, "editable_mode", False)
        return [os.path.join(built, SOURCES_RECORD)] + (
            [os.path.join("fastdump", SOURCES_RECORD)] if in_place else [])

    def _record_sources(self) -> None:
        """The hashes of the sources just compiled, for the stale build check."""
        hashes = {}
        for name in SOURCES:
            with open(os.path.join("fastdump", name), "rb") as f:
                hashes[name] = hashlib.sha256(f.read()).hexdigest()
        for path in self._record_paths():
            with open(path, "w") as f:
                json.dump(hashes, f, indent=1, sort_keys=True)

    def _give_up(self, exc: BaseException) -> None:
        # a half-built hot path would mix compiled and pure modules: remove what was
        # built, and an earlier build in place, which would shadow the .py files
        for ext in self.extensions:
            path = self.get_ext_fullpath(ext.name)
            if os.path.exists(path):
                os.remove(path)
        self.extensions = []
        remove_in_place_build()
        _say(PURE_NOTE.format(f"compiling failed ({type(exc).__name__}: {exc})"))

    def get_outputs(self) -> list[str]:
        built = super().get_outputs() + (self._record_paths()[:1] if self.extensions else [])
        return [path for path in built if os.path.exists(path)]


def remove_in_place_build() -> None:
    """Removes compiled modules left in fastdump/ by an earlier pip install -e .

    Installing pure, they would shadow the .py files (and be stale).
    """
    for name in os.listdir("fastdump"):
        module, _, suffix = name.partition(".")
        if (module in ("fastread", "fastjson") and suffix.endswith(("so", "pyd"))
                or name == SOURCES_RECORD):
            os.remove(os.path.join("fastdump", name))


def ext_modules() -> list:
    if os.environ.get("FASTDUMP_PURE", "") not in ("", "0"):
        _say(PURE_NOTE.format("FASTDUMP_PURE is set"))
        remove_in_place_build()
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _say(PURE_NOTE.format("Cython is not installed"))
        remove_in_place_build()
        return []
    try:
        return cythonize(
            COMPILED,
            language_level=3,
            compiler_directives={
                # types come from the .pxd files only: an annotation such as "int" in the
                # .py means any Python int, not a C long that could overflow
                "annotation_typing": False,
                "binding": False,  # plain builtin functions: smaller, faster to call
                "embedsignature": False,
            },
            quiet=True,
            build_dir="build/cython",  # the generated .c files: not beside the sources
        )
    except Exception as exc:  # noqa: BLE001 - Cython refused the sources: go pure
        _say(PURE_NOTE.format(f"Cython failed ({type(exc).__name__}: {exc})"))
        remove_in_place_build()
        return []


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
