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


class NotDicomError(Exception):
    """Raised inside a worker for a file that does not parse as DICOM."""
