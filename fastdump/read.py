"""The pydicom path, part 1: one file -> a pydicom Dataset of its header, stopping
before Pixel Data.

Values longer than the inline limit are not read: pydicom records where they
are (offset and length) and :mod:`fastdump.convert` turns them into
BulkDataURIs without ever touching their bytes.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO, cast

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import read_partial, read_sequence
from pydicom.fileutil import read_undefined_length_value
from pydicom.tag import SequenceDelimiterTag

from . import dicom
from .errors import NotDicomError, TruncatedError
from .selection import read_selected
from .source import BoundedReader
from .types import ReadSettings


def read_dataset(fp: BoundedReader, settings: ReadSettings) -> Dataset:
    """Read the header of ``fp``; raise :class:`NotDicomError` if it is not DICOM.

    Pass an open file (from :func:`fastdump.source.opened`) and keep it open
    while converting: pydicom reads deferred text values from it. With
    ``settings.tags`` (--tags), only those top-level elements (and what they
    need) are read.
    """
    head = fp.read(dicom.HEAD)
    fp.seek(0)
    reason = dicom.not_dicom_reason(head)
    if reason:
        raise NotDicomError(reason)
    preamble = dicom.has_preamble(head)
    ds = _read(fp, settings.inline_max or None, preamble, settings)
    if settings.inline_max and is_deflated(ds):
        fp.seek(0)  # again, every value read: see dicom.NO_BULK
        ds = _read(fp, None, preamble, settings)
    return ds


def is_deflated(ds: Dataset) -> bool:
    """Whether the dataset was deflated in its file: its values are all written inline."""
    meta = getattr(ds, "file_meta", None)
    return meta is not None and meta.get("TransferSyntaxUID") == dicom.DEFLATED_LE


def _read(fp: BoundedReader, defer: int | None, preamble: bool,
          settings: ReadSettings) -> Dataset:
    try:
        if settings.tags:
            return read_selected(fp, defer, not preamble, settings.tags)
        return pydicom.dcmread(fp, stop_before_pixels=True, defer_size=defer,
                               force=not preamble)
    except InvalidDicomError as exc:
        raise NotDicomError(f"not a DICOM file: {exc}") from exc
    except (struct.error, BytesLengthException, OSError) as exc:
        if not _cut_short(exc, fp):
            raise
        # pydicom names a few cuts by what it could not unpack (in the file meta
        # header's first elements, in an item's header): the cause is the file's end.
        raise TruncatedError(dicom.truncated_inside(fp.size)) from exc


def _cut_short(exc: Exception, fp: BoundedReader) -> bool:
    """Whether pydicom failed because it reached the end of the file: not a
    failing disk (an OSError with an errno), and nothing left to read."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return False
    try:
        return fp.tell() >= fp.size
    except (OSError, ValueError):
        return False


def check_complete(ds: Dataset, fp: BoundedReader, pixels: bool = True,
                   fragments: bool = True) -> str | None:
    """Why the file is truncated, or None if it holds every byte its elements declare.

    pydicom stops quietly at the end of a file, even inside an element: a
    truncated transfer would otherwise look like a smaller, valid header.
    Call it before converting: it needs the raw elements' offsets. ``pixels``:
    check the Pixel Data element where reading stopped (not with --tags, which
    reads no further than the tags it selects). ``fragments``: check that
    encapsulated Pixel Data ends in the file too (not for objects in a store, where
    reading the last bytes is one more request per object). With ``pixels`` off
    (--tags), an empty ``ds`` may be a file without the selected tags, not a cut one.
    """
    if len(ds) == 0:
        if cut := _meta_cut(ds, fp):
            return cut
        if pixels or _ends_after_meta(ds, fp):
            return "the file ends before its first dataset element"
        return None
    if is_deflated(ds):
        return None  # offsets count in the inflated stream; zlib reports cut streams itself
    meta = getattr(ds, "file_meta", None)
    stopped_at, end, last_open = fp.tell(), 0, (-1, "")
    implicit, little = _encoding_read(ds, fp)
    groups = [(meta, False, True), (ds, implicit, little)] if meta is not None else [
        (ds, implicit, little)]
    for group, group_implicit, group_little in groups:
        for tag in list(group.keys()):
            elem = group.get_item(tag, keep_deferred=True)
            start, length = _extent(elem, fp, bool(group_implicit), bool(group_little))
            if start is None:
                continue
            if length == dicom.UNDEFINED_LENGTH:
                last_open = max(last_open, (start, elem.VR))
                continue
            if start + length > fp.size:
                if not group_implicit and elem.VR is None and start >= 4:
                    fp.seek(start - 4)  # (where an explicit VR header has its VR)
                    return dicom.truncated_or_invalid_vr(tag, fp.read(2), length, start,
                                                         fp.size)
                return dicom.truncated_value(tag, length, start, fp.size)
            end = max(end, start + length)
    if stopped_at == fp.size and last_open[0] > end:
        end = _undefined_end(fp, *last_open, bool(implicit), bool(little))
    if stopped_at == fp.size and 0 < fp.size - end < 8:
        # pydicom read to the end of the file, but the last bytes made no element.
        return dicom.truncated_header(end)
    if pixels and stopped_at < fp.size:
        fp.seek(stopped_at)
        head = fp.read(12)
        problem = dicom.pixel_data_overrun(head, stopped_at, fp.size, bool(implicit),
                                           not little, _read_at(fp) if fragments else None)
        fp.seek(stopped_at)
        return problem
    return None


def _encoding_read(ds: Dataset, fp: BoundedReader) -> tuple[bool | None, bool | None]:
    """Whether pydicom read the dataset's elements as implicit VR, and little endian.

    pydicom checks the first element's VR itself and reads implicit VR where the
    transfer syntax says explicit if it finds so (it warns), but ``original_encoding``
    still names the transfer syntax's: the Pixel Data header of such a file was then
    read as explicit, and a cut inside its fragments went unseen (the fast path,
    which checks the same way pydicom reads, said truncated).
    """
    for tag in ds.keys():
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement):
            return raw.is_implicit_VR, raw.is_little_endian
    implicit, little = ds.original_encoding
    if implicit is None:
        return implicit, little
    # No raw element left to say (--tags kept the Specific Character Set alone, which
    # pydicom converts): its check of the first element's VR bytes, made again. The
    # transfer syntax's encoding made an explicit VR header's length of the VR's bytes,
    # and a file that was not cut was said to be.
    fp.seek(_meta_end(ds, fp) + 4)
    vr = fp.read(2)
    if len(vr) == 2:
        implicit = not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)
    return implicit, little


def _meta_end(ds: Dataset, fp: BoundedReader) -> int:
    """Where the dataset starts: after the file meta group's last element (or the
    preamble, in a file without meta group)."""
    end = max((start + length for _, start, length in _meta_extents(ds, fp)), default=0)
    if end:
        return end
    fp.seek(0)
    return 132 if dicom.has_preamble(fp.read(dicom.HEAD)) else 0


def _meta_cut(ds: Dataset, fp: BoundedReader) -> str | None:
    """Why a file cut in its meta group is truncated: the element cut (pydicom reads the
    value there is, or an empty one, and stops there), or the header cut after it."""
    end = 0
    for tag, start, length in _meta_extents(ds, fp):
        if start + length > fp.size:
            return dicom.truncated_value(tag, length, start, fp.size)
        end = max(end, start + length)
    if end and 0 < fp.size - end < 8:
        return dicom.truncated_header(end)
    return None


def _meta_extents(ds: Dataset, fp: BoundedReader) -> list[tuple[int, int, int]]:
    """(tag, value offset, length) of the file meta elements of a defined length."""
    meta = getattr(ds, "file_meta", None)
    extents: list[tuple[int, int, int]] = []
    if meta is None:
        return extents
    for tag in list(meta.keys()):
        start, length = _extent(meta.get_item(tag, keep_deferred=True), fp, False, True)
        if start is not None and length != dicom.UNDEFINED_LENGTH:
            extents.append((tag, start, length))
    return extents


def _extent(elem: Any, fp: BoundedReader, implicit: bool, little: bool
            ) -> tuple[int | None, int]:
    """Where an element's value starts, and its length as the file declares it.

    pydicom keeps most elements raw, with both; those it converts while reading
    (Specific Character Set, sequences of undefined length) keep only where their
    value starts: their length is read again from the header before it.
    """
    start = getattr(elem, "value_tell", None)
    if start is not None:
        return start, elem.length
    start = getattr(elem, "file_tell", None)
    if start is None:
        return None, 0
    wide = implicit or elem.VR in dicom.LONG_LENGTH_VRS
    fp.seek(start - (4 if wide else 2))
    field = fp.read(4 if wide else 2)
    if len(field) != (4 if wide else 2):
        return None, 0
    return start, struct.unpack(("<" if little else ">") + ("I" if wide else "H"), field)[0]


def _undefined_end(fp: BoundedReader, start: int, vr: str, implicit: bool, little: bool
                   ) -> int:
    """Where an element of undefined length ends (after its delimiter): pydicom reads
    it again, as it read it the first time; 0 if it cannot say."""
    fp.seek(start)
    try:
        if vr == "SQ":
            read_sequence(cast("BinaryIO", fp), implicit, little, dicom.UNDEFINED_LENGTH,
                          "iso8859")
        else:
            read_undefined_length_value(cast("BinaryIO", fp), little, SequenceDelimiterTag)
    except Exception:  # (it read the same bytes once already)
        return 0
    return fp.tell()


def _ends_after_meta(ds: Dataset, fp: BoundedReader) -> bool:
    """Whether the file holds no whole element after its meta group (or preamble):
    pydicom read again, up to the first element's header, which it leaves unread
    (deflated, the whole inflated stream: its end is not the file's; they are few)."""
    fp.seek(0)
    force = not dicom.has_preamble(fp.read(dicom.HEAD))
    fp.seek(0)
    try:
        if is_deflated(ds):
            return len(pydicom.dcmread(fp, stop_before_pixels=True, force=force)) == 0
        read_partial(cast("BinaryIO", fp), lambda tag, vr, length: True, force=force)
    except Exception:  # (it read the same bytes once already; if not now, say nothing)
        return False
    return fp.size - fp.tell() < 8


def _read_at(fp: BoundedReader) -> dicom.ReadAt:
    def read(pos: int, n: int) -> bytes:
        fp.seek(pos)
        return fp.read(n)

    return read
