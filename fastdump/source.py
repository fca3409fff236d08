"""Where a file's bytes come from: every reader of DICOM bytes opens files here.

Local paths are opened directly; URLs (``s3://...`` and other fsspec
protocols) through :mod:`fastdump.remote`, fetching only what is read. While a
worker reads a batch of URLs, their first blocks are fetched ahead, many at a
time (:func:`reading_ahead`), and opening one serves its block from memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Protocol
from urllib.parse import quote_from_bytes


class ReadAhead(Protocol):
    """Files fetched ahead of their reading (:class:`fastdump.remote.Heads`)."""

    def open(self, path: str, size: int | None = None) -> IO[bytes] | None: ...

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
    if is_url(path):
        ahead = _ahead.get()
        if ahead is not None:
            fp = ahead.open(path, size)
            if fp is not None:
                return fp
        from .remote import open_url

        return open_url(path, size)
    return open(path, "rb", buffering=-1 if buffered else 0)


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

    A path that is already a URL (``s3://...``) is its own URI.
    """
    if is_url(path):
        return path
    # What pathlib's as_uri() gives, at a quarter of its cost (once per file).
    return "file://" + quote_from_bytes(os.fsencode(os.path.abspath(path)))
