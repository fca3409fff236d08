"""Single-file and streaming entry points, for use from Python."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from . import record
from .selection import parse_tags
from .walk import Entry, Problem, walk


def read_record(
    path: str | os.PathLike, *, bulk_threshold: int = 1024,
    tags: str | Iterable[str | int] | None = None, bulk_any_vr: bool = False,
) -> dict[str, Any]:
    """One file's record as written to dump.jsonl: path, size, mtime, meta, dataset.

    ``tags`` (``"PatientID,0020000D"`` or a list of keywords/ints) keeps only
    those top-level elements. ``bulk_any_vr``: values longer than the threshold
    of every VR PS3.18 allows as bulk data (DS, FL, FD, UT, ...) are not read
    but written as ``BulkDataURI``, not only binary ones. Raises
    :class:`~fastdump.errors.NotDicomError` for a file that is not DICOM, and
    ``OSError`` when it cannot be read.
    """
    selected = parse_tags(tags)
    path = os.path.abspath(os.fspath(path))
    st = os.stat(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return record.read_record(path, st.st_size, st.st_mtime, bulk_threshold, selected,
                                  bulk_any_vr)


def read_tags(
    path: str | os.PathLike, *, bulk_threshold: int = 1024,
    tags: str | Iterable[str | int] | None = None, bulk_any_vr: bool = False,
) -> dict[str, Any]:
    """One file's dataset as a DICOM JSON Model object (PS3.18 Annex F.2).

    Binary values longer than ``bulk_threshold`` (base64 bytes, as in pydicom)
    are not read: they appear as ``BulkDataURI`` pointing at their bytes.
    ``tags``: only those top-level elements, as in :func:`read_record`.
    """
    return read_record(path, bulk_threshold=bulk_threshold, tags=tags,
                       bulk_any_vr=bulk_any_vr)["dataset"]


def iter_records(
    paths: Iterable[str | os.PathLike],
    *,
    bulk_threshold: int = 1024,
    follow_symlinks: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield a record (or an error record with ``"error"``) per file under ``paths``.

    Runs in this process, one file at a time: for a notebook or a quick look.
    Use :func:`fastdump.dump` for whole archives.
    """
    for found in walk((os.fspath(p) for p in paths), follow_symlinks=follow_symlinks):
        if isinstance(found, Problem):
            yield record.error_record(found.path, found.error, found.size, found.mtime)
        elif isinstance(found, Entry):
            yield _one(found, bulk_threshold)


def _one(entry: Entry, bulk_threshold: int) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return record.read_record(entry.path, entry.size, entry.mtime, bulk_threshold)
    except Exception as exc:  # noqa: BLE001 - a bad file is a record, not a crash
        return record.error_record(entry.path, f"{type(exc).__name__}: {exc}",
                                   entry.size, entry.mtime)
