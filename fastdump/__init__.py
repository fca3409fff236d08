"""fastdump: every tag of every file of a DICOM archive, as data, in parallel.

>>> import fastdump
>>> dataset = fastdump.read_tags("image.dcm")          # doctest: +SKIP
>>> summary = fastdump.dump(["archive/"], "out/")      # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# first: under FASTDUMP_PURE=1 it makes the imports below take fastread and fastjson
# from their .py files, not the compiled modules
from . import hotpath  # noqa: F401
from ._version import __version__
from .errors import (
    FastdumpError,
    FastPathError,
    InputNotFoundError,
    MergeError,
    NotDicomError,
    OptionError,
    OutputDirError,
    OutputWriteError,
    SchedulerError,
    TruncatedError,
    WorkersError,
)

# merge is the name of a module too: importing it anywhere would rebind fastdump.merge to the
# module if it were imported lazily like the rest
from .merge import merge
from .types import Summary

if TYPE_CHECKING:
    from .api import iter_records, read_record, read_tags
    from .runner import FORMATS, dump

# The rest is imported when first used: `fastdump dump` imports the package, and
# must not pay for the API's reader before it needs it.
_LAZY = {"iter_records": "api", "read_record": "api", "read_tags": "api", "FORMATS": "runner",
         "dump": "runner"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found here from now on, without this function
    return value

__all__ = [
    "FORMATS",
    "FastPathError",
    "FastdumpError",
    "InputNotFoundError",
    "MergeError",
    "NotDicomError",
    "OptionError",
    "OutputDirError",
    "OutputWriteError",
    "SchedulerError",
    "Summary",
    "TruncatedError",
    "WorkersError",
    "__version__",
    "dump",
    "iter_records",
    "merge",
    "read_record",
    "read_tags",
]
