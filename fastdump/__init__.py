"""fastdump: every tag of every file of a DICOM archive, as data, in parallel.

>>> import fastdump
>>> dataset = fastdump.read_tags("image.dcm")          # doctest: +SKIP
>>> summary = fastdump.dump(["archive/"], "out/")      # doctest: +SKIP
"""

from __future__ import annotations

# first: under FASTDUMP_PURE=1 it makes the imports below take fastread and fastjson
# from their .py files, not the compiled modules
from . import hotpath  # noqa: F401
from ._version import __version__
from .api import iter_records, read_record, read_tags
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
)
from .merge import merge
from .runner import FORMATS, dump
from .types import Summary

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
    "__version__",
    "dump",
    "iter_records",
    "merge",
    "read_record",
    "read_tags",
]
