"""Where a file's bytes come from: every reader of DICOM bytes opens files here.

Local paths are opened directly; URLs (``s3://...`` and other fsspec
protocols) through :mod:`fastdump.remote`, fetching only what is read. While a
worker reads a batch (:func:`reading_ahead`), the next files are read ahead:
the first blocks of URLs are fetched, many at a time, and opening one serves
its block from memory; for local files, the kernel is asked to read the next
ones while this one is parsed (:class:`LocalReadAhead`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Protocol
from urllib.parse import quote, quote_from_bytes


class ReadAhead(Protocol):
    """The files of a batch read ahead of their parsing (:class:`fastdump.remote.Heads`,
    :class:`LocalReadAhead`)."""

    def open(self, path: str, size: int | None = None) -> IO[bytes] | None:
        """``path`` opened from what was read ahead, or None: open it as usual."""

    def close(self) -> None: ...


# this thread's read-ahead (a Dask worker runs batches in several threads)
_ahead: ContextVar[ReadAhead | None] = ContextVar("fastdump_read_ahead", default=None)


@contextmanager
def reading_ahead(ahead: ReadAhead) -> Iterator[None]:
    """While active, :func:`open_source` opens the files ``ahead`` holds from it.

    ``ahead`` is closed at the end."""
    token = _ahead.set(ahead)
    try:
        yield
    finally:
        _ahead.reset(token)
        ahead.close()


def is_url(path: str) -> bool:
    """True for ``protocol://...`` inputs, which are read through fsspec."""
    return "://" in path


def open_source(path: str, size: int | None = None, buffered: bool = True) -> IO[bytes]:
    """Open a file to dump for reading.

    ``size``, when known from the listing, spares an object store a request to
    learn it. ``buffered=False`` suits a reader that reads in large blocks
    itself: a local file is then read with one system call per read.
    """
    ahead = _ahead.get()
    if ahead is not None:
        fp = ahead.open(path, size)
        if fp is not None:
            return fp
    if is_url(path):
        from .remote import open_url

        return open_url(path, size)
    return open(path, "rb", buffering=-1 if buffered else 0)


class LocalReadAhead:
    """The kernel told to read the first bytes of the next local files of a batch.

    Opening file ``i`` makes sure that the files up to ``i + window`` have been
    hinted (``posix_fadvise(WILLNEED)`` on their first ``first`` bytes), so on
    a cold disk or a network filesystem their reads are under way, together,
    while this one is parsed. Only a hint: files are opened and read as without
    it, and a file that cannot be opened here is left to the real open to
    report. A file already in the page cache (asked without waiting:
    ``preadv(RWF_NOWAIT)`` of one byte, which also starts reading a file that
    is not) needs no hint; ``cold`` says whether any file was not cached (None
    where the system cannot tell), so that the worker stops hinting when all
    are (:func:`fastdump.worker.process_batch`).
    """

    WINDOW = 64
    FIRST = 1 << 16  # the fast parser's first read (32 KB), whole small files

    def __init__(self, paths: list[str], window: int | None = None, first: int = FIRST) -> None:
        self._paths = paths
        self._window = window or self.WINDOW
        self._first = first
        self._cursor = 0  # the file being read
        self._hinted = 0  # files before this one have been hinted
        self._probe = bytearray(1) if hasattr(os, "RWF_NOWAIT") else None
        self.cold: bool | None = False if self._probe is not None else None

    def open(self, path: str, size: int | None = None) -> IO[bytes] | None:
        """Hint the files ahead of ``path``; None: open it as usual."""
        paths = self._paths
        for i in range(self._cursor, len(paths)):
            if paths[i] == path:
                self._cursor = i
                if self._hinted <= i + self._window // 2:
                    self._hint(i + 1, i + 1 + self._window)
                break
        return None

    def _hint(self, start: int, end: int) -> None:
        paths, first, probe = self._paths, self._first, self._probe
        for i in range(max(start, self._hinted), min(end, len(paths))):
            try:
                # O_NONBLOCK: a FIFO put in a file's place since the walk must not block
                fd = os.open(paths[i], os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                if probe is not None:
                    try:
                        if os.preadv(fd, [probe], 0, os.RWF_NOWAIT):
                            continue  # in the page cache already (or empty: nothing to read)
                        self.cold = True
                    except BlockingIOError:
                        self.cold = True
                    except OSError:  # this filesystem cannot tell
                        probe = self._probe = None
                        self.cold = None
                os.posix_fadvise(fd, 0, first, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)
        self._hinted = max(self._hinted, end)

    def close(self) -> None:
        pass


class BoundedReader:
    """A file whose reads never ask for more than what is left in it.

    A corrupt length field (0xFFFFFFF0 in a 2 KB file) would otherwise make
    ``read(length)`` allocate gigabytes. Not an ``io.BufferedReader``, so
    pydicom reads deferred values through this object while it is open
    instead of reopening the file by name.
    """

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self._raw = raw
        self.size = size
        self.name = getattr(raw, "name", None)

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self.size - self._raw.tell())
        return self._raw.read(left if n is None or n < 0 or n > left else n)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    @property
    def closed(self) -> bool:
        return self._raw.closed


@contextmanager
def opened(path: str, size: int | None = None) -> Iterator[BoundedReader]:
    """``path`` opened through :func:`open_source`, reads capped at its size."""
    with open_source(path, size) as raw:
        size = raw.seek(0, os.SEEK_END)
        raw.seek(0)
        yield BoundedReader(raw, size)


def file_uri(path: str) -> str:
    """The ``file://`` URI of ``path`` (percent-encoded; non-UTF-8 names survive).

    An object in a store (``s3://bucket/key``) keeps its scheme and bucket, its key
    percent-encoded as a file's path is (a ``#``, ``?``, ``%`` or space in it would
    otherwise end or change the URI); an ``http(s)://`` URL is its own URI already.
    """
    if is_url(path):
        scheme, _, rest = path.partition("://")
        if scheme in ("http", "https"):
            return path
        bucket, slash, key = rest.partition("/")
        return f"{scheme}://{bucket}{slash}{quote(key, safe='/')}"
    # What pathlib's as_uri() gives, at a quarter of its cost (once per file).
    return "file://" + quote_from_bytes(os.fsencode(os.path.abspath(path)))
