"""What runs in the workers: a batch of files -> a batch of outcomes, serialized.

Everything a worker returns is already bytes (or a Parquet row), so the
parent only writes. A bad file never raises here: it becomes an outcome
holding its errors.jsonl line.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from .formats import get_format
from .lines import dumps_line
from .record import (
    FileTimeout,
    describe_failure,
    error_record,
    read_record_pydicom,
    try_fast_record,
)
from .source import is_url, reading_ahead
from .types import Batch, Entry, Options, Outcome, Problem


def process_batch(entries: Batch, opts: Options) -> list[Outcome]:
    """Read, convert and serialize a batch of files. Never raises for a bad file."""
    serialize = get_format(opts.format).serializer(opts)
    with warnings.catch_warnings(), _alarm_raises_timeout() as alarm, _fetch_ahead(entries, opts):
        # pydicom warns for every odd value it meets; bad values surface as
        # record warnings instead.
        warnings.simplefilter("ignore")
        timeout = opts.file_timeout if alarm else None
        return [_process_one(entry, opts, serialize, timeout) for entry in entries]


def _process_one(
    entry: Entry | Problem, opts: Options, serialize: Callable[[dict], Any],
    timeout: float | None,
) -> Outcome:
    if isinstance(entry, Problem):
        return failed(entry, entry.error)
    fallback = None  # why the fast path left the file to pydicom, if it did
    try:
        entry = _restat(entry)
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            record, fallback = try_fast_record(entry.path, entry.size, entry.mtime, opts.read)
            if record is None:
                record = read_record_pydicom(entry.path, entry.size, entry.mtime, opts.read)
            return Outcome(entry.path, entry.size, entry.mtime, payload=serialize(record),
                           fallback=fallback)
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except (Exception, FileTimeout) as exc:  # noqa: BLE001 - any failure is this file's line
        reason, partial = describe_failure(exc, opts.file_timeout)
        return failed(entry, reason, partial, fallback)


def _fetch_ahead(entries: Batch, opts: Options) -> AbstractContextManager[Any]:
    """The headers of the batch's URLs, fetched many at a time while the files are read."""
    urls = [e for e in entries if isinstance(e, Entry) and is_url(e.path)]
    if not urls or opts.fetch_concurrency < 1:
        return nullcontext()
    from .remote import Heads  # fsspec: only for URLs

    return reading_ahead(Heads(urls, opts.fetch_concurrency))


def _restat(entry: Entry) -> Entry:
    """The file's size and mtime now: a file that changed since the walk is recorded as read."""
    if is_url(entry.path):
        return entry  # object stores: the listing's values are the ones to trust
    st = os.stat(entry.path)
    if (st.st_size, st.st_mtime) == (entry.size, entry.mtime):
        return entry
    return Entry(entry.path, st.st_size, st.st_mtime)


def failed(entry: Entry | Problem, reason: str, partial: dict | None = None,
           fallback: str | None = None) -> Outcome:
    """The outcome of a file that could not be dumped."""
    line = dumps_line(error_record(entry.path, reason, entry.size, entry.mtime, partial))
    return Outcome(entry.path, entry.size, entry.mtime, error_line=line, fallback=fallback)


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
