"""Exception types. Each message says what was wrong and what to do about it.

A bad DICOM file is never an exception for the caller: it becomes a line in
``errors.jsonl``. These exceptions are for problems with the request itself.
"""


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
    """Raised inside a worker for a file that does not parse as DICOM."""


class TruncatedError(Exception):
    """A file that ends before the elements it declares. ``args``: (reason, partial record)."""
