"""One file -> one record (or one error), serialized in the worker.

This module runs inside the worker processes: everything it returns is
already bytes, so the parent only writes.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from .convert import BINARY_VRS, BULK_ANY_VRS, Context, dataset_to_json
from .errors import TruncatedError
from .fastjson import try_fast_record
from .read import check_complete, file_uri, opened, read_dataset
from .selection import select
from .walk import Entry, Problem


class FileTimeout(BaseException):
    """A file took longer than --file-timeout. BaseException so pydicom cannot swallow it."""


@dataclass(frozen=True)
class Options:
    """What each worker needs to know about the run."""

    bulk_threshold: int = 1024
    file_timeout: float | None = 300.0
    format: str = "jsonl"
    columns: tuple[str, ...] | None = None  # --format parquet: the tag columns
    tags: frozenset[int] | None = None  # --tags: only these top-level elements
    bulk_any_vr: bool = False  # --bulk-any-vr: long values of any VR PS3.18 allows as bulk


def read_record(
    path: str, size: int, mtime: float, bulk_threshold: int, tags: frozenset[int] | None = None,
    bulk_any_vr: bool = False,
) -> dict[str, Any]:
    """Read one file into a record: path, size, mtime, meta, dataset (+ warnings).

    The fast path (:mod:`fastdump.fastjson`) reads most files; whatever it does
    not reproduce exactly goes through pydicom. ``tags``: only those elements.
    ``bulk_any_vr``: long values of every VR PS3.18 allows become BulkDataURIs.
    """
    bulk_vrs = BULK_ANY_VRS if bulk_any_vr else BINARY_VRS
    record = try_fast_record(path, size, mtime, bulk_threshold, tags, bulk_vrs)
    if record is not None:
        return record
    return read_record_pydicom(path, size, mtime, bulk_threshold, tags, bulk_vrs)


def read_record_pydicom(
    path: str, size: int, mtime: float, bulk_threshold: int, tags: frozenset[int] | None = None,
    bulk_vrs: frozenset[str] = BINARY_VRS,
) -> dict[str, Any]:
    """:func:`read_record` through pydicom: the reference the fast path must equal."""
    ctx = Context(uri=file_uri(path), bulk_threshold=bulk_threshold, bulk_vrs=bulk_vrs)
    with opened(path, size) as fp:  # open while converting: deferred text values are read from it
        ds = read_dataset(fp, bulk_threshold, tags)
        # (with --tags, a file holding none of them is an empty selection, not a truncation)
        problem = check_complete(ds, fp) if not tags or len(ds) else None
        meta = dataset_to_json(ds.file_meta, ctx) if getattr(ds, "file_meta", None) else {}
        dataset = dataset_to_json(ds, ctx)
    if tags:
        dataset = select({"dataset": dataset}, tags)["dataset"]
        ctx.warnings = select({"dataset": {}, "warnings": ctx.warnings}, tags).get("warnings", [])
    if problem:
        raise TruncatedError(problem, {"meta": meta, "dataset": dataset})
    record: dict[str, Any] = {
        "path": path,
        "size": size,
        "mtime": mtime,
        "meta": meta,
        "dataset": dataset,
    }
    if ctx.warnings:
        record["warnings"] = ctx.warnings
    return record


def error_record(
    path: str, error: str, size: int | None, mtime: float | None, partial: dict | None = None
) -> dict[str, Any]:
    """An errors.jsonl line; ``partial`` keeps what could be read of a truncated file."""
    record = {"path": path, "size": size, "mtime": mtime, "error": error}
    if partial:
        record["partial"] = partial
    return record


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON line. Paths that are not valid UTF-8 keep their surrogate escapes."""
    try:
        return orjson.dumps(record, default=_json_default, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # orjson refuses lone surrogates (undecodable file names); the standard
        # library writes them as \\udcXX escapes, which read back to the same str.
        text = json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=_json_default)
        return text.encode() + b"\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        import base64

        return base64.b64encode(obj).decode("ascii")
    return str(obj)


class Outcome(NamedTuple):
    """A worker's answer for one file: ``payload`` when ok, ``error_line`` when not.

    Flat, so that a batch of them pickles as little more than its bytes.
    ``size`` and ``mtime`` are those the worker read (the file may have changed
    since the walk).
    """

    path: str
    size: int | None
    mtime: float | None
    payload: Any = None
    error_line: bytes | None = None

    @property
    def entry(self) -> Entry:
        return Entry(self.path, self.size, self.mtime)


def process_batch(entries: list[Entry | Problem], opts: Options) -> list[Outcome]:
    """Read, convert and serialize a batch of files. Never raises for a bad file."""
    from .writers import serializer_for  # the worker imports only its format's needs

    serialize = serializer_for(opts.format, opts)
    with warnings.catch_warnings(), _alarm_raises_timeout() as alarm:
        # pydicom warns for every odd value it meets; bad values surface as
        # record warnings instead.
        warnings.simplefilter("ignore")
        timeout = opts.file_timeout if alarm else None
        return [_process_one(entry, opts, serialize, timeout) for entry in entries]


def _process_one(
    entry: Entry | Problem, opts: Options, serialize: Callable, timeout: float | None
) -> Outcome:
    if isinstance(entry, Problem):
        return failed(entry, entry.error)
    try:
        entry = _restat(entry)
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            record = read_record(entry.path, entry.size, entry.mtime, opts.bulk_threshold,
                                 opts.tags, opts.bulk_any_vr)
            return Outcome(entry.path, entry.size, entry.mtime, payload=serialize(record))
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except TruncatedError as exc:
        return failed(entry, f"TruncatedError: {exc.args[0]}", partial=exc.args[1])
    except FileNotFoundError:
        reason = "FileNotFoundError: the file was deleted or moved after the walk found it"
    except PermissionError as exc:
        reason = f"PermissionError: {exc.strerror} (fastdump runs as user id {os.getuid()})"
    except OSError as exc:
        reason = f"{type(exc).__name__}: {exc.strerror or exc}"
    except zlib.error as exc:
        reason = f"DeflateError: the deflated dataset does not inflate ({exc})"
    except struct.error as exc:
        reason = f"CorruptError: an element's bytes do not match its VR ({exc})"
    except FileTimeout:
        reason = f"FileTimeout: reading took longer than {opts.file_timeout:g} s (--file-timeout)"
    except MemoryError:
        reason = "MemoryError: the file needs more memory than the worker may use"
    except RecursionError:
        reason = "RecursionError: sequences nested too deeply to convert"
    except Exception as exc:  # noqa: BLE001 - any failure is this file's error record
        reason = f"{type(exc).__name__}: {exc}"
    return failed(entry, reason)


def _restat(entry: Entry) -> Entry:
    """The file's size and mtime now: a file that changed since the walk is recorded as read."""
    if "://" in entry.path:
        return entry  # object stores: the listing's values are the ones to trust
    st = os.stat(entry.path)
    if (st.st_size, st.st_mtime) == (entry.size, entry.mtime):
        return entry
    return Entry(entry.path, st.st_size, st.st_mtime)


def failed(entry: Entry | Problem, reason: str, partial: dict | None = None) -> Outcome:
    """The outcome of a file that could not be dumped."""
    line = dumps_line(error_record(entry.path, reason, entry.size, entry.mtime, partial))
    return Outcome(entry.path, entry.size, entry.mtime, error_line=line)


@contextmanager
def _alarm_raises_timeout() -> Iterator[bool]:
    """While active, SIGALRM raises FileTimeout; yields whether per-file limits can work.

    Installed once per batch (each file then only arms the timer): SIGALRM only
    works in a process's main thread, true in pool workers and in the CLI; a
    library caller on another thread gets no per-file limit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return

    def _expire(signum: int, frame: Any) -> None:
        raise FileTimeout()

    previous = signal.signal(signal.SIGALRM, _expire)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
