"""fastdump: every tag of every file of a DICOM archive, as data, in parallel.

>>> import fastdump
>>> dataset = fastdump.read_tags("image.dcm")          # doctest: +SKIP
>>> summary = fastdump.dump(["archive/"], "out/")      # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import iter_records, read_record, read_tags  # noqa: E402
from .errors import (  # noqa: E402
    FastdumpError,
    InputNotFoundError,
    MergeError,
    NotDicomError,
    OptionError,
    OutputDirError,
    OutputWriteError,
    SchedulerError,
    TruncatedError,
)
from .merge import merge  # noqa: E402
from .runner import FORMATS, Summary, dump  # noqa: E402

__all__ = [
    "FORMATS",
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
