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

    exit_code = 2  # of the command, which prints the message as one line


class InputNotFoundError(FastdumpError):
    """A PATH given on the command line (or to :func:`fastdump.dump`) does not exist."""


class OutputDirError(FastdumpError):
    """OUTDIR cannot be used: it is a file, not writable, or holds another run."""


class OutputWriteError(OutputDirError):
    """Writing OUTDIR failed mid-run: disk full, quota, read-only, removed, I/O error.

    What is in OUTDIR is whole lines, and ``--resume`` finishes the run once the
    cause is fixed. ``errno`` is the system's error number (None if unknown),
    ``path`` the file that could not be written. The command exits with
    :attr:`exit_code`, distinct from the 2 of a request that cannot be carried out.
    """

    exit_code = 74  # EX_IOERR of sysexits.h: an error while doing I/O on some file

    def __init__(self, message: str, *, out_dir: str, errno: int | None = None,
                 path: str | None = None) -> None:
        super().__init__(message)
        self.out_dir = out_dir
        self.errno = errno
        self.path = path


class OptionError(FastdumpError):
    """An option has a value fastdump cannot use."""


class SchedulerError(FastdumpError):
    """The Dask cluster (--scheduler) cannot be reached, has no workers or lacks fastdump."""


class WorkersError(FastdumpError):
    """Worker processes could not be started (the system refused: too many open files).

    The records written so far stay; the command exits with :attr:`exit_code`.
    """

    exit_code = 71  # EX_OSERR of sysexits.h: a system error, such as cannot fork


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
