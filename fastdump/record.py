"""One file -> its record: the fast path first, the pydicom path for the rest.

The pydicom path (:mod:`fastdump.read` + :mod:`fastdump.convert`) is the
reference; the fast path (:mod:`fastdump.fastread` + :mod:`fastdump.fastjson`)
must give byte-identical records and says :class:`~fastdump.fastread.Unsupported`
for what it does not reproduce. Any other failure of the fast path is a bug:
in strict mode (``FASTDUMP_STRICT=1``, on in the test suite) it raises
:class:`~fastdump.errors.FastPathError`; otherwise the file goes through pydicom
and is counted, so a bug shows in ``summary.json`` instead of only as slowness.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import sys
import zlib
from typing import Any

from . import dicom
from .errors import FastPathError, NotDicomError, TruncatedError
from .fastjson import fast_record
from .fastread import PYDICOM_SETTINGS, Unsupported, config_is_default
from .source import file_uri, is_url, opened
from .types import ReadSettings


def read_record(path: str, size: int, mtime: float | None,
                settings: ReadSettings) -> tuple[dict[str, Any], str | None]:
    """Read one file into a record: path, size, mtime, meta, dataset (+ warnings).

    Returns the record and, when the fast path did not read it, why (the
    reason's class, as counted in ``summary.json``'s ``fallback_reasons``).
    """
    record, fallback = try_fast_record(path, size, mtime, settings)
    if record is None:
        record = read_record_pydicom(path, size, mtime, settings)
    return record, fallback


def try_fast_record(path: str, size: int, mtime: float | None, settings: ReadSettings
                    ) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """The fast path's record, or None and why the pydicom path must read the file."""
    if not config_is_default():
        return None, PYDICOM_SETTINGS
    try:
        return fast_record(path, size, mtime, settings), None
    except Unsupported as exc:
        return None, exc.kind
    except (OSError, NotDicomError, TruncatedError, MemoryError, RecursionError):
        raise  # the file or the machine, not the fast path: pydicom would fail the same
    except Exception as exc:
        if strict():
            raise FastPathError(f"{path}: {type(exc).__name__}: {exc}") from exc
        return None, f"fast path error: {type(exc).__name__}"


def read_record_pydicom(path: str, size: int, mtime: float | None,
                        settings: ReadSettings) -> dict[str, Any]:
    """:func:`read_record` through pydicom: the reference the fast path must equal."""
    from .convert import Context, dataset_to_json  # pydicom: imported when first needed
    from .read import check_complete, is_deflated, read_dataset
    from .selection import select, selected_warnings

    tags = settings.tags
    ctx = Context(uri=file_uri(path), settings=settings)
    with opened(path, size) as fp:  # open while converting: deferred text values are read from it
        ds = read_dataset(fp, settings)
        deflated = is_deflated(ds)
        # (pydicom inflates a deflated file whole, however little of it it reads)
        read_to_end = fp.tell() >= fp.size and not deflated
        if deflated:
            ctx.settings = dataclasses.replace(settings, bulk_threshold=dicom.NO_BULK)
        problem = check_complete(ds, fp, pixels=not tags, fragments=not is_url(path))
        if tags and read_to_end and problem is None:
            problem = _cut_before_selection_end(fp, settings)
        meta = dataset_to_json(ds.file_meta, ctx) if getattr(ds, "file_meta", None) else {}
        dataset = dataset_to_json(ds, ctx)
    if tags:
        dataset = select({"dataset": dataset}, tags)["dataset"]
        ctx.warnings = selected_warnings(ctx.warnings, tags)
    if problem:
        raise TruncatedError(problem, {"meta": meta, "dataset": dataset})
    return dicom.record(path, size, mtime, meta, dataset, ctx.warnings)


def _cut_before_selection_end(fp: Any, settings: ReadSettings) -> str | None:
    """Why a file --tags read to its end is truncated, or None: the elements it steps
    over unread are read now, as a full dump reads them.

    pydicom's selective read skips an unselected value without looking at its
    length: one cut by the end of the file ends the read as quietly as the file's
    own end does, and the selected elements after it were missing without a word.
    Only files with no element past the selection read to the end (most stop early).
    """
    from .read import check_complete, read_dataset

    fp.seek(0)
    whole = read_dataset(fp, dataclasses.replace(settings, tags=None))
    return check_complete(whole, fp, pixels=False, fragments=False)


def _elsewhere() -> str:
    """On a Dask worker, the other reason a file the walk found is not there."""
    if "distributed" not in sys.modules:
        return ""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):  # not in a task of a worker
        return ""
    return (f", or Dask worker {name} does not see it (every worker must mount the archive "
            "at the same path)")


def strict() -> bool:
    """Strict mode: a fast-path failure other than Unsupported raises (``FASTDUMP_STRICT=1``)."""
    return os.environ.get("FASTDUMP_STRICT", "") not in ("", "0")


def error_record(path: str, error: str, size: int | None, mtime: float | None,
                 partial: dict | None = None) -> dict[str, Any]:
    """An errors.jsonl line; ``partial`` keeps what could be read of a truncated file."""
    record: dict[str, Any] = {"path": path, "size": size, "mtime": mtime, "error": error}
    if partial:
        record["partial"] = partial
    return record


class FileTimeout(BaseException):
    """A file took longer than --file-timeout. BaseException so pydicom cannot swallow it."""


def describe_failure(exc: BaseException, file_timeout: float | None = None
                     ) -> tuple[str, dict | None]:
    """Why a file could not be read, as errors.jsonl says it: ``(reason, partial)``.

    The one description of a failure, for the workers and for
    :func:`fastdump.iter_records` alike.
    """
    if isinstance(exc, TruncatedError):
        return f"TruncatedError: {exc.reason}", exc.partial
    if isinstance(exc, FileNotFoundError):
        return ("FileNotFoundError: the file was deleted or moved after the walk found it"
                f"{_elsewhere()}", None)
    if isinstance(exc, PermissionError):
        return (f"PermissionError: {exc.strerror} (fastdump runs as user id {os.getuid()})",
                None)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}", None
    if isinstance(exc, zlib.error):
        return f"DeflateError: the deflated dataset does not inflate ({exc})", None
    if isinstance(exc, struct.error):
        return f"CorruptError: an element's bytes do not match its VR ({exc})", None
    if isinstance(exc, FileTimeout):
        limit = f"{file_timeout:g} s" if file_timeout else "the time limit"
        return f"FileTimeout: reading took longer than {limit} (--file-timeout)", None
    if isinstance(exc, MemoryError):
        return "MemoryError: the file needs more memory than the worker may use", None
    if isinstance(exc, RecursionError):
        return "RecursionError: sequences nested too deeply to convert", None
    return f"{type(exc).__name__}: {exc}", None
