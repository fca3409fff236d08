"""Exception types. Each message says what was wrong and what to do about it.

A bad DICOM file is never an exception for the caller of :func:`fastdump.dump`:
it becomes a line in ``errors.jsonl``. The :class:`FastdumpError` family is for
problems with the request itself; :class:`NotDicomError` and
:class:`TruncatedError` are what reading one file raises
(:func:`fastdump.read_record`).
"""

from __future__ import annotations

from typing import Any


class FastdumpError(Exception):
    """Base class: the run could not start or continue as asked."""


class InputNotFoundError(FastdumpError):
    """A PATH given on the command line (or to :func:`fastdump.dump`) does not exist."""


class OutputDirError(FastdumpError):
    """OUTDIR cannot be used: it is a file, not writable, or holds another run."""


class OptionError(FastdumpError):
    """An option has a value fastdump cannot use."""


class SchedulerError(FastdumpError):
    """The Dask cluster (--scheduler) cannot be reached, has no workers or lacks fastdump."""


class MergeError(FastdumpError):
    """``fastdump merge`` cannot join its inputs: mixed formats, a file twice, a run unfinished."""


class NotDicomError(Exception):
    """A file that does not parse as DICOM."""


class TruncatedError(Exception):
    """A file that ends before the elements it declares.

    ``reason`` says where it ends; ``partial`` holds what could be read
    (``{"meta": ..., "dataset": ...}``), as errors.jsonl's ``"partial"``.
    """

    def __init__(self, reason: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(reason, partial)
        self.reason = reason
        self.partial = partial

    def __str__(self) -> str:
        return self.reason


class FastPathError(Exception):
    """The fast path failed in a way other than "unsupported": a bug in fastdump.

    Raised only in strict mode (``FASTDUMP_STRICT=1``, set by the test suite);
    otherwise the file is read through pydicom and counted in the summary's
    ``fallbacks`` as ``"fast path error: <type>"``.
    """
