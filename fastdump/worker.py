"""What runs in the workers: a batch of files -> a batch of outcomes, serialized.

Everything a worker returns is already bytes (or a Parquet row), so the
parent only writes. A bad file never raises here: it becomes an outcome
holding its errors.jsonl line.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from . import compat
from .errors import TruncatedError
from .formats import get_format
from .lines import dumps_line
from .record import (
    FileTimeout,
    describe_failure,
    error_record,
    read_record_pydicom,
    try_fast_record,
)
from .source import LocalReadAhead, ReadAhead, is_url, reading_ahead
from .types import Batch, BatchResult, Entry, Lines, Options, Outcome, Problem

# Local read-ahead hints (source.LocalReadAhead) cost an open per file: a worker
# gives them while its batches wait on their reads. They start when a batch spends
# more than WAIT_ON of its time blocked (on its reads: a cold disk, a network
# filesystem) and stop when every file they were given for was in the page cache
# already (where the system cannot tell: when a batch is blocked less than WAIT_OFF).
WAIT_ON, WAIT_OFF = 0.25, 0.10
_reads_wait = True  # in this process, did the last local batch wait on its reads?


def read_batch(entries: Batch, opts: Options,
               process: Callable[[Batch, Options], list[Outcome]] | None = None) -> BatchResult:
    """``process`` (:func:`process_batch`), its outcomes packed as :class:`Lines` for a
    format whose records are lines: what the pool runs, and the parent takes the
    batch at one go."""
    outcomes = (process or process_batch)(entries, opts)
    if not get_format(opts.format).records_are_lines:
        return outcomes
    ok = [o.payload for o in outcomes if o.error_line is None]
    return Lines(b"".join(ok), len(ok),
                 [o.error_line for o in outcomes if o.error_line is not None],
                 [o.fallback for o in outcomes if o.fallback is not None],
                 sum(o.size or 0 for o in outcomes))


def process_batch(entries: Batch, opts: Options) -> list[Outcome]:
    """Read, convert and serialize a batch of files. Never raises for a bad file."""
    serialize = get_format(opts.format).serializer(opts)
    ahead, local = _read_ahead(entries, opts)
    started = _clocks() if local else None
    with warnings.catch_warnings(), _alarm_raises_timeout() as alarm, \
            reading_ahead(ahead) if ahead is not None else nullcontext():
        # pydicom warns for every odd value it meets; bad values surface as
        # record warnings instead.
        warnings.simplefilter("ignore")
        timeout = opts.file_timeout if alarm else None
        outcomes = [_process_one(entry, opts, serialize, timeout) for entry in entries]
    if started is not None:
        _note_blocked(started, _clocks(),
                      ahead.cold if isinstance(ahead, LocalReadAhead) else None)
    return outcomes


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
            deadline = time.monotonic() + timeout
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            record, fallback = try_fast_record(entry.path, entry.size, entry.mtime, opts.read)
            if record is None:
                record = read_record_pydicom(entry.path, entry.size, entry.mtime, opts.read)
            payload = serialize(record)
            if timeout and time.monotonic() > deadline:
                # The alarm went off in an import, which it let finish: the rest of
                # the file may have taken less than its next tick.
                raise FileTimeout()
            return Outcome(entry.path, entry.size, entry.mtime, payload=payload,
                           fallback=fallback)
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except (Exception, FileTimeout) as exc:  # noqa: BLE001 - any failure is this file's line
        reason, partial = describe_failure(exc, opts.file_timeout)
        if is_url(entry.path) and isinstance(exc, (OSError, TruncatedError)) \
                and not isinstance(exc, FileNotFoundError):
            # read as listed: an object replaced since looks cut, or out of range
            changed = _changed_since_listed(entry)
            reason, partial = (changed, None) if changed else (reason, partial)
        return failed(entry, reason, partial, fallback)


def _changed_since_listed(entry: Entry) -> str | None:
    """Why an object failed, when it is not the object that was listed any more (one
    more request, for an object that failed only)."""
    from .remote import url_entry

    try:
        now = url_entry(entry.path, fresh=True)  # (a read in the walk's process: its cache)
    except Exception:  # noqa: BLE001 - then its own error says more
        return None
    if (now.size, now.mtime) == (entry.size, entry.mtime):
        return None
    return f"OSError: {compat.changed_since_listed(now.size, entry.size)}"


def _read_ahead(entries: Batch, opts: Options) -> tuple[ReadAhead | None, bool]:
    """How the batch's next files are read ahead of the one being parsed, and whether
    it is a batch of local files (more than one).

    URLs: their headers fetched, many at a time. Local files: the kernel asked
    to read the next ones, while the batches before waited on their reads.
    """
    files = [e for e in entries if isinstance(e, Entry)]
    urls = [e for e in files if is_url(e.path)]
    if urls:
        if opts.fetch_concurrency < 1:
            return None, False
        from .remote import Heads  # fsspec: only for URLs

        try:
            return Heads(urls, opts.fetch_concurrency), False
        except Exception:  # noqa: BLE001 - each object then opened alone says what is wrong
            return None, False
    local = len(files) > 1
    if local and _reads_wait and hasattr(os, "posix_fadvise"):
        return LocalReadAhead([e.path for e in files]), local
    return None, local


def _clocks() -> tuple[float, float]:
    """(wall clock, time this thread ran or was ready to run) in seconds.

    Their difference is the time it was blocked: on reads, for a worker
    reading local files. Linux says how long a thread waited for a CPU
    (/proc/thread-self/schedstat), so a busy machine does not look like a
    slow disk; elsewhere the thread's CPU time stands in.
    """
    wall = time.perf_counter()
    try:
        with open("/proc/thread-self/schedstat", "rb") as fp:
            on_cpu, queued = fp.read().split()[:2]
        return wall, (int(on_cpu) + int(queued)) / 1e9
    except (OSError, ValueError):
        return wall, time.thread_time()


def _note_blocked(started: tuple[float, float], ended: tuple[float, float],
                  cold: bool | None) -> None:
    """After a local batch: read ahead in the next one while reads wait.

    ``cold``: whether the read-ahead of this batch met files outside the
    page cache (None: no read-ahead, or the system cannot tell).
    """
    global _reads_wait
    wall = ended[0] - started[0]
    blocked = (wall - (ended[1] - started[1])) / wall if wall > 0 else 0.0
    if cold is not None:
        # Files all cached: the hints bought nothing, whatever else blocked the batch
        # (a slow open on a network filesystem is not helped by them).
        _reads_wait = cold
    elif blocked > WAIT_ON:
        _reads_wait = True
    elif blocked < WAIT_OFF:
        _reads_wait = False


def _restat(entry: Entry) -> Entry:
    """The file's size and mtime now: a file that changed since the walk is recorded as read."""
    if is_url(entry.path):
        return entry  # object stores: the listing's values are the ones to trust
    st = os.stat(entry.path)
    if not stat.S_ISREG(st.st_mode):  # opening a FIFO put there since the walk would block
        raise OSError(errno.EINVAL, "not a regular file any more: it was replaced after the "
                                    "walk found it")
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
        if compat.in_import(frame):
            # Cut in half, an import leaves its module half-initialized for every later
            # file of this worker: let it finish, and give up on the file right after.
            signal.setitimer(signal.ITIMER_REAL, 0.001)
            return
        raise FileTimeout()

    previous = signal.signal(signal.SIGALRM, _expire)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
