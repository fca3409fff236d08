"""One file -> a pydicom Dataset of its header, stopping before Pixel Data.

Values longer than the deferral size are not read: pydicom records where they
are (offset and length) and :mod:`fastdump.convert` turns binary ones into
BulkDataURIs without ever touching their bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO
from urllib.parse import quote_from_bytes

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from .errors import NotDicomError

# Groups a DICOM stream without preamble can plausibly start with: the file
# meta group, or the first groups of a dataset (identifying, patient...).
_FIRST_GROUPS = {0x0002, 0x0008}


def defer_size(bulk_threshold: int) -> int:
    """Largest binary value (bytes) written inline for a base64 bulk threshold.

    pydicom compares the *base64* length with the threshold, so the raw limit
    is three quarters of it; anything longer is deferred and never read.
    """
    return (bulk_threshold // 4) * 3


def open_source(path: str, size: int | None = None, buffered: bool = True) -> BinaryIO:
    """Open a file to dump for reading. Every reader of DICOM bytes goes through here.

    URLs (``s3://...``) are opened through fsspec, fetching only what is read;
    ``size``, when known from the listing, spares a request to learn it.
    ``buffered=False`` suits a reader that reads in large blocks itself: a local
    file is then read with one system call per read.
    """
    if "://" in path:
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

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self.size = size
        self.name = getattr(raw, "name", None)

    def read(self, n: int = -1) -> bytes:
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


def read_dataset(
    fp: BoundedReader, bulk_threshold: int, tags: frozenset[int] | None = None
) -> Dataset:
    """Read the header of ``fp``; raise :class:`NotDicomError` if it is not DICOM.

    Pass an open file (from :func:`opened`) and keep it open while converting:
    pydicom reads deferred text values from it. With ``tags`` (--tags), only
    those top-level elements (and what they need) are read.
    """
    head = fp.read(132)
    fp.seek(0)
    if len(head) == 0:
        raise NotDicomError("not a DICOM file: the file is empty")
    has_preamble = len(head) == 132 and head[128:132] == b"DICM"
    if not has_preamble and not _looks_like_raw_dataset(head):
        raise NotDicomError(
            "not a DICOM file: no 'DICM' marker at offset 128 and no DICOM element at offset 0"
        )
    try:
        if tags:
            from .selection import read_selected

            return read_selected(fp, defer_size(bulk_threshold) or None, not has_preamble, tags)
        ds = pydicom.dcmread(
            fp,
            stop_before_pixels=True,
            defer_size=defer_size(bulk_threshold) or None,
            force=not has_preamble,
        )
    except InvalidDicomError as exc:
        raise NotDicomError(f"not a DICOM file: {exc}") from exc
    return ds


def check_complete(ds: Dataset, fp: BoundedReader) -> str | None:
    """Why the file is truncated, or None if it holds every byte its elements declare.

    pydicom stops quietly at the end of a file, even inside an element: a
    truncated transfer would otherwise look like a smaller, valid header.
    Call it before converting: it needs the raw elements' offsets.
    """
    if len(ds) == 0:
        return "the file ends before its first dataset element"
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return None  # offsets count in the inflated stream; zlib reports cut streams itself
    stopped_at, end = fp.tell(), 0
    for group in (meta, ds):
        for tag in list(group.keys()) if group is not None else ():
            raw = group.get_item(tag, keep_deferred=True)
            start, length = getattr(raw, "value_tell", None), getattr(raw, "length", 0)
            if start is None or length == 0xFFFFFFFF:
                continue
            if start + length > fp.size:
                return (f"the file is truncated: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
                        f"declares {length} bytes at offset {start}, but the file ends at "
                        f"{fp.size}")
            end = max(end, start + length)
    if stopped_at == fp.size and 0 < fp.size - end < 8:
        # pydicom read to the end of the file, but the last bytes made no element.
        return f"the file is truncated: it ends inside an element header at offset {end}"
    return None


def _looks_like_raw_dataset(head: bytes) -> bool:
    """True when the bytes start with a plausible element (no preamble, no meta)."""
    if len(head) < 8:
        return False
    group_le, group_be = struct.unpack("<H", head[:2])[0], struct.unpack(">H", head[:2])[0]
    return group_le in _FIRST_GROUPS or group_be in _FIRST_GROUPS


def file_uri(path: str) -> str:
    """The ``file://`` URI of ``path`` (percent-encoded; non-UTF-8 names survive).

    A path that is already a URL (``s3://...``) is its own URI.
    """
    if "://" in path:
        return path
    # What pathlib's as_uri() gives, at a quarter of its cost (once per file).
    return "file://" + quote_from_bytes(os.fsencode(os.path.abspath(path)))
