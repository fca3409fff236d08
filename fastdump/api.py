"""Single-file and streaming entry points, for use from Python."""

from __future__ import annotations

import errno
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from .record import FileTimeout, describe_failure, error_record
from .record import read_record as _read
from .selection import parse_tags
from .source import is_url
from .types import Entry, Problem, ReadSettings
from .walk import PathArg, path_args, walk

TagSpec = str | Iterable[str | int] | None


def read_record(
    path: PathArg, *, bulk_threshold: int = 1024, tags: TagSpec = None,
    bulk_any_vr: bool = False,
) -> dict[str, Any]:
    """One file's record as written to dump.jsonl: path, size, mtime, meta, dataset.

    ``tags`` (``"PatientID,0020000D"`` or a list of keywords/ints) keeps only
    those top-level elements. ``bulk_any_vr``: values longer than the threshold
    of every VR PS3.18 allows as bulk data (DS, FL, FD, UT, ...) are not read
    but written as ``BulkDataURI``, not only binary ones. Raises
    :class:`~fastdump.errors.NotDicomError` for a file that is not DICOM,
    :class:`~fastdump.errors.TruncatedError` (with ``.reason`` and ``.partial``)
    for a truncated one, and ``OSError`` when it cannot be read (a directory, a
    FIFO). ``path`` may be a URL (``s3://bucket/key.dcm``), read as ``dump`` reads it.
    """
    settings = _settings(bulk_threshold, tags, bulk_any_vr)
    return _quietly_read(_entry(path), settings)


def read_tags(
    path: PathArg, *, bulk_threshold: int = 1024, tags: TagSpec = None,
    bulk_any_vr: bool = False,
) -> dict[str, Any]:
    """One file's dataset as a DICOM JSON Model object (PS3.18 Annex F.2).

    Binary values longer than ``bulk_threshold`` (base64 bytes, as in pydicom)
    are not read: they appear as ``BulkDataURI`` pointing at their bytes.
    ``tags``: only those top-level elements, as in :func:`read_record`.
    """
    return read_record(path, bulk_threshold=bulk_threshold, tags=tags,
                       bulk_any_vr=bulk_any_vr)["dataset"]


def iter_records(
    paths: PathArg | Iterable[PathArg],
    *,
    bulk_threshold: int = 1024,
    tags: TagSpec = None,
    bulk_any_vr: bool = False,
    follow_symlinks: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield a record, or an error record, per file under ``paths`` (one path, or several).

    An error record is the errors.jsonl line: ``{"path", "size", "mtime",
    "error"}`` and, for a truncated file, ``"partial"``. Runs in this process,
    one file at a time: for a notebook or a quick look; use
    :func:`fastdump.dump` for whole archives.
    """
    settings = _settings(bulk_threshold, tags, bulk_any_vr)
    for found in walk(path_args(paths), follow_symlinks=follow_symlinks):
        if isinstance(found, Problem):
            yield error_record(found.path, found.error, found.size, found.mtime)
        elif isinstance(found, Entry):
            yield _one(found, settings)


def _entry(path: PathArg) -> Entry:
    """The file (or object, for a URL) ``read_record`` reads, as the walk would find it."""
    (name,) = path_args([path])  # (a str, bytes or Path, and not empty)
    if is_url(name):
        from .remote import url_entry  # fsspec: only for URLs

        return url_entry(name)
    name = os.path.abspath(name)
    st = os.stat(name)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a directory: iter_records() reads its files", name)
    if not stat.S_ISREG(st.st_mode):  # opening a FIFO would wait for a writer
        raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", name)
    return Entry(name, st.st_size, st.st_mtime)


def _settings(bulk_threshold: int, tags: TagSpec, bulk_any_vr: bool) -> ReadSettings:
    return ReadSettings(bulk_threshold=bulk_threshold, tags=parse_tags(tags),
                        bulk_any_vr=bulk_any_vr)


def _quietly_read(entry: Entry, settings: ReadSettings) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bad values surface as the record's "warnings"
        return _read(entry.path, entry.size, entry.mtime, settings)[0]


def _one(entry: Entry, settings: ReadSettings) -> dict[str, Any]:
    try:
        return _quietly_read(entry, settings)
    except (Exception, FileTimeout) as exc:  # noqa: BLE001 - a bad file is a record
        reason, partial = describe_failure(exc)
        return error_record(entry.path, reason, entry.size, entry.mtime, partial)
