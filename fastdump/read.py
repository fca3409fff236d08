"""One file -> a pydicom Dataset of its header, stopping before Pixel Data.

Values longer than the deferral size are not read: pydicom records where they
are (offset and length) and :mod:`fastdump.convert` turns binary ones into
BulkDataURIs without ever touching their bytes.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

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


def open_source(path: str) -> BinaryIO:
    """Open a file to dump for reading. Every reader of DICOM bytes goes through here."""
    return open(path, "rb")


def read_dataset(path: str, bulk_threshold: int) -> Dataset:
    """Read the header of ``path``; raise :class:`NotDicomError` if it is not DICOM."""
    with open_source(path) as fp:
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
            return pydicom.dcmread(
                fp,
                stop_before_pixels=True,
                defer_size=defer_size(bulk_threshold) or None,
                force=not has_preamble,
            )
        except InvalidDicomError as exc:
            raise NotDicomError(f"not a DICOM file: {exc}") from exc


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
    from pathlib import Path

    if "://" in path:
        return path

    return Path(os.path.abspath(path)).as_uri()
