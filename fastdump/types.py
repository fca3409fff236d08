"""The values that cross between fastdump's layers: what the walk finds, what a
worker is asked and answers, what a run reports.

Near the bottom of the layers: it imports only the leaf :mod:`fastdump.dicom`.
Entries and outcomes are flat named tuples because batches of them are pickled
to and from the workers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from ._version import __version__
from .dicom import BINARY_VRS, BULK_ANY_VRS, inline_max
from .errors import OptionError

FETCH_CONCURRENCY = 64  # default header requests in flight per worker (object stores): enough
# for a store 100 ms away (README, "Many requests in flight")

Stat = tuple[int | None, float | None]  # (size, mtime) as a ledger records them


class Entry(NamedTuple):
    """A regular file to dump. ``path`` is absolute; size and mtime come from the walk."""

    path: str
    size: int
    mtime: float | None


@dataclass(frozen=True, slots=True)
class Problem:
    """Something found by the walk that cannot be dumped: it becomes an error record."""

    path: str
    error: str
    size: int | None = None
    mtime: float | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A directory entry that is not a regular file (symlink not followed, FIFO, socket...)."""

    path: str
    reason: str


Found = Entry | Problem | Skipped
Batch = list[Entry | Problem]


@dataclass(frozen=True, slots=True)
class ReadSettings:
    """How one file is read: the same for every file of a run, and for both read paths."""

    bulk_threshold: int = 1024  # base64 length above which a value is a BulkDataURI
    tags: frozenset[int] | None = None  # --tags: only these top-level elements
    bulk_any_vr: bool = False  # --bulk-any-vr: long values of any VR PS3.18 allows as bulk

    def __post_init__(self) -> None:
        threshold = self.bulk_threshold
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
            raise OptionError(f"--bulk-threshold must be 0 or more bytes, not {threshold!r}")

    @property
    def inline_max(self) -> int:
        """Longest binary value (bytes) written inline."""
        return inline_max(self.bulk_threshold)

    @property
    def bulk_vrs(self) -> frozenset[str]:
        return BULK_ANY_VRS if self.bulk_any_vr else BINARY_VRS

    def recorded(self) -> dict[str, Any]:
        """These settings as OUTDIR's ``fastdump.json`` keeps them: records made with other
        settings would not mix with them (see :meth:`fastdump.formats.Format.claim`)."""
        tags = None if self.tags is None else [f"{t:08X}" for t in sorted(self.tags)]
        return {"tags": tags, "bulk_threshold": self.bulk_threshold,
                "bulk_any_vr": self.bulk_any_vr}


def read_options_text(recorded: dict[str, Any]) -> str:
    """``ReadSettings.recorded()`` as the options of ``fastdump dump`` that give it."""
    words = []
    if recorded.get("tags") is not None:
        words.append(f"--tags {','.join(recorded['tags'])}")
    words.append(f"--bulk-threshold {recorded.get('bulk_threshold')}")
    if recorded.get("bulk_any_vr"):
        words.append("--bulk-any-vr")
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class Options:
    """What each worker needs to know about the run."""

    read: ReadSettings = ReadSettings()
    file_timeout: float | None = 300.0
    format: str = "jsonl"
    columns: tuple[str, ...] | None = None  # --format parquet: the tag columns
    # --fetch-concurrency: header requests in flight per worker, for URLs
    fetch_concurrency: int = FETCH_CONCURRENCY


class Outcome(NamedTuple):
    """A worker's answer for one file: ``payload`` when ok, ``error_line`` when not.

    ``size`` and ``mtime`` are those the worker read (the file may have changed
    since the walk). ``fallback`` names why the file left the fast path, if it did.
    """

    path: str
    size: int | None
    mtime: float | None
    payload: Any = None
    error_line: bytes | None = None
    fallback: str | None = None


class Lines(NamedTuple):
    """A batch's outcomes, packed by its worker for a format whose records are lines.

    Sent back as a handful of objects instead of one per file, and the records
    written with one call: in the parent, unpickling an outcome per file was
    ~17 µs, the largest share of its time on a run of small files.
    """

    records: bytes  # the dumped files' lines, joined in batch order
    dumped: int  # how many lines ``records`` holds
    errors: list[bytes]  # the error lines of the files that could not be dumped
    fallbacks: list[str]  # why files left the fast path, one entry per file that did
    nbytes: int  # the size of the batch's files, summed


# What a worker answers for a batch
BatchResult = list[Outcome] | Lines


SKIPPED_EXAMPLES = 20  # skipped entries named in summary.json


@dataclass
class Summary:
    """What a run did. Also written to OUTDIR/summary.json."""

    out_dir: str
    format: str
    files: int = 0  # regular files found by the walk
    ok: int = 0  # dumped this run
    errors: int = 0  # reported in errors.jsonl this run
    error_kinds: dict[str, int] = field(default_factory=dict)  # of those, by error type
    skipped: int = 0  # symlinks not followed, FIFOs, sockets...
    # the first SKIPPED_EXAMPLES of them, {"path", "reason"}: capped, as a million symlinks
    # would otherwise make a summary as long as the archive's listing
    skipped_examples: list[dict[str, str]] = field(default_factory=list)
    unchanged: int = 0  # already in OUTDIR with the same size and mtime (--resume)
    new: int = 0
    changed: int = 0
    gone: int = 0  # in OUTDIR from an earlier run, no longer in the archive
    # in OUTDIR from an earlier run, still there but not reached by this run's PATHs (or
    # --files-from list): kept as they were (--resume)
    not_reached: int = 0
    # What OUTDIR holds once the run is over: records (ok, and with --resume the unchanged
    # files' kept) and error lines; None for a run that did not finish
    out_dir_records: int | None = None
    out_dir_errors: int | None = None
    bytes: int = 0  # size of the files read this run
    seconds: float = 0.0
    files_per_s: float = 0.0
    mb_per_s: float = 0.0
    jobs: int = 1
    fallbacks: int = 0  # files the fast path left to pydicom
    fallback_reasons: dict[str, int] = field(default_factory=dict)  # why, counted
    interrupted: bool = False
    signal: str | None = None  # the signal that stopped the run ("SIGTERM"), if one did
    error: str | None = None  # why OUTDIR could not be written, if it could not
    shard: str | None = None  # "I/N" for a --shard run
    fastdump_version: str = __version__
    pydicom_version: str = ""
    hot_path: str = ""  # "compiled" or "pure": which fastread/fastjson ran (hotpath.py)
    extra: dict = field(default_factory=dict)

    def count_error(self, kind: str) -> None:
        """One more line in errors.jsonl, of this error type."""
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def to_dict(self) -> dict:
        return asdict(self)
