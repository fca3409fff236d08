"""One file's bytes -> its raw elements, for the little-endian transfer syntaxes.

The fast counterpart of :func:`fastdump.read.read_dataset`: it parses the
header once from a few large reads, never reads a binary value above the
bulk threshold (it seeks past it), and stops at top-level Pixel Data. It
mirrors the parts of pydicom's reader that decide what an element *is*
(transfer syntax, the implicit/explicit VR sniffing of each dataset, implicit
VR lookup in the public and private dictionaries, UN replacement, ambiguous
VRs) and raises :class:`Unsupported` for everything else, so the caller can
hand the file to pydicom, whose output is the reference.

Compiled hot path: setup.py compiles this module with Cython in pure-Python
mode, its C types declared in ``fastread.pxd`` beside it. The same file runs as
plain Python (no compiler, or ``FASTDUMP_PURE=1``). Where the fastest code
differs, an ``if cython.compiled:`` branch reads element headers byte by byte
(C, no objects made) and the other branch uses ``struct`` (fastest in Python);
both must give the same result, and the test suite runs in both modes. The
compiled code does no bounds checks: every byte it reads is inside the buffer
by the checks (``need()``, ``buf_end``) that guard the Python code too.
"""

from __future__ import annotations

import functools
import struct
import sys
import zlib
from typing import IO, Any

try:
    import cython  # compiled (setup.py): cython.compiled is True, its branches are C
except ImportError:  # plain Python, Cython not installed
    from .hotpath import NoCython as cython

from . import charset, dicom, dictionary, source
from .dicom import (
    CHARSET,
    DEFAULT_ENCODING,
    EXPLICIT_BE,
    IMPLICIT_LE,
    ITEM,
    ITEM_END,
    PIXEL_REPRESENTATION,
    PIXEL_TAGS,
    SEQUENCE_END,
    UNDEFINED_LENGTH,
    BoundedCache,
    private_creator_of,
)
from .errors import NotDicomError
from .types import ReadSettings

COMPILED: bool = cython.compiled  # True in the compiled module (see setup.py)

FIRST_READ = 1 << 15  # most headers fit in the first read (small files are read whole)
FIRST_READ_TAGS = 1 << 13  # --tags: the selected elements are usually in the first KBs
AFTER_SEEK = 1 << 14  # after skipping a bulk value, read little: the header may end soon
MAX_READ = 1 << 20

_AMBIGUOUS = dicom.AMBIGUOUS_VRS
_VR_NAMES = {vr.encode(): sys.intern(vr) for vr in dicom.VR_NAMES}
_LONG = frozenset(vr.encode() for vr in dicom.LONG_LENGTH_VRS)
_MAX_DEPTH = 64
# (typed copies of dicom's tags, for the compiled code's C comparisons)
_CHARSET, _PIXEL_REPRESENTATION = CHARSET, PIXEL_REPRESENTATION
_ITEM, _ITEM_END, _SEQUENCE_END, _UNDEFINED = ITEM, ITEM_END, SEQUENCE_END, UNDEFINED_LENGTH
_FIRST_PIXEL_TAG = min(PIXEL_TAGS)  # compiled: "tag in PIXEL_TAGS" only past it


class _ByteOrder:
    """The unpackers of element headers and numbers in one byte order."""

    __slots__ = ("tag_length", "explicit_head", "u32", "u16")

    def __init__(self, order: str) -> None:
        self.tag_length = struct.Struct(order + "HHL").unpack_from  # implicit VR header
        self.explicit_head = struct.Struct(order + "HH2sH").unpack_from
        self.u32 = struct.Struct(order + "L").unpack_from
        self.u16 = struct.Struct(order + "H").unpack_from


LITTLE, BIG = _ByteOrder("<"), _ByteOrder(">")
_tag_length, _u32, _u16 = LITTLE.tag_length, LITTLE.u32, LITTLE.u16
# the skip loop compares VRs as 16-bit numbers: cheaper than 2-byte strings
_explicit_head_u16 = struct.Struct("<HHHH").unpack_from
_LONG_U16 = frozenset(_u16(vr)[0] for vr in _LONG)
_SHORT_U16 = frozenset(_u16(vr)[0] for vr in _VR_NAMES if vr not in _LONG)
_SQ_U16 = _u16(b"SQ")[0]

# What an explicit VR's two bytes say of the element: not a VR, a VR with a 16-bit
# length, one with a 32-bit length, and the two that need more than their length.
_NO_VR, _SHORT, _LONG_VR, _SQ, _UN = 0, 1, 2, 3, 4
_RAW_KIND = {raw: _SQ if raw == b"SQ" else _UN if raw == b"UN" else _LONG_VR if raw in _LONG
             else _SHORT for raw in _VR_NAMES}
# The compiled code reads the two letters as an index into these tables,
# (letter0 - 'A') * 26 + letter1 - 'A', instead of making a bytes object per element.
_VR_TABLE: list[str | None] = [None] * 676  # -> the VR
_VR_KIND: bytes = bytes(  # -> its _RAW_KIND
    _RAW_KIND.get(bytes((65 + n // 26, 65 + n % 26)), _NO_VR) for n in range(676))
for _raw, _name in _VR_NAMES.items():
    _VR_TABLE[(_raw[0] - 65) * 26 + _raw[1] - 65] = _name
del _raw, _name


# Why a file leaves the fast path: the kinds counted in summary.json's fallback_reasons.
BIG_ENDIAN = "big endian"
DEFLATE = "deflate"
ISO_2022 = "ISO 2022 escapes"
INVALID_TEXT = "text invalid in its character set"
CHARSET_KIND = "character set"
TRUNCATED = "truncated"
MALFORMED = "malformed structure"
STRUCTURE = "unusual structure"
UNKNOWN_VR = "unknown VR"
AMBIGUOUS_VR = "ambiguous VR"
UN_ELEMENT = "UN element"
PRIVATE_CREATOR = "private creator"
REJECTED_VALUE = "value pydicom rejects"
PYDICOM_SETTINGS = "pydicom settings"


class Unsupported(Exception):
    """The file (or one of its elements) is outside what the fast path reproduces.

    ``kind`` is one of the constants above: the class of reason, counted per run.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


class RawDataset:
    """The elements of one dataset (the file's, or a sequence item's).

    ``elements`` holds ``(tag, vr, value, offset, length)`` tuples in file
    order: ``value`` is the value's bytes, ``None`` for a binary value that
    was not read (it is ``length`` bytes at file offset ``offset``), or a list
    of :class:`RawDataset` items for a sequence.
    """

    __slots__ = ("elements", "encodings", "implicit", "big_endian", "from_un", "unknown_names")

    def __init__(self, encodings: Any, implicit: bool, big_endian: bool = False) -> None:
        self.elements: list[tuple] = []
        self.encodings = encodings  # Python codecs, as pydicom's convert_encodings gives
        self.implicit = implicit
        self.big_endian = big_endian  # Explicit VR Big Endian: numbers and headers swapped
        # tags of IS and DS elements whose explicit VR was UN (None: none), as pydicom's
        # record of a value it cannot convert names the VR the file gave
        self.from_un: set[int] | None = None
        # its Specific Character Set's names that are not DICOM's, for the warnings
        self.unknown_names: list[str] | None = None


class Header:
    """A file's meta group and dataset, as raw elements; ``truncated``: why the
    file is truncated past them (its Pixel Data is cut), or None; ``inflated``:
    the dataset was deflated, and every value is read (see :meth:`_Parser.inflate`)."""

    __slots__ = ("meta", "dataset", "truncated", "inflated")

    def __init__(self, meta: RawDataset, dataset: RawDataset,
                 truncated: str | None = None, inflated: bool = False) -> None:
        self.meta = meta
        self.dataset = dataset
        self.truncated = truncated
        self.inflated = inflated


def config_is_default() -> bool:
    """True when pydicom is configured as the fast path assumes (its defaults).

    A process that never imported pydicom cannot have changed its settings.
    """
    if "pydicom" not in sys.modules:
        return True
    import pydicom.uid
    from pydicom import config
    from pydicom.hooks import hooks, raw_element_value, raw_element_vr

    return (
        config.settings.reading_validation_mode == config.WARN
        and config.settings.infer_sq_for_un_vr
        and config.replace_un_with_known_vr
        and config.assume_implicit_vr_switch
        and not config.convert_wrong_length_to_UN
        and not config.datetime_conversion
        and not config.use_DS_decimal
        and not config.use_DS_numpy
        and not config.use_IS_numpy
        and not config.use_none_as_empty_text_VR_value
        and config.data_element_callback is None
        and hooks.raw_element_vr is raw_element_vr
        and hooks.raw_element_value is raw_element_value
        and not hooks.raw_element_kwargs
        and not pydicom.uid.PrivateTransferSyntaxes
    )


def read_header(path: str, settings: ReadSettings, size: int | None = None) -> Header:
    """Parse the header of ``path``; raise :class:`Unsupported` if it needs pydicom.

    With ``settings.tags``, only those top-level elements are kept (plus what
    their interpretation needs) and parsing stops after the largest of them.
    ``size``, known from the walk, spares object stores a request to learn it.
    """
    # unbuffered: the parser reads in large blocks itself
    with source.open_source(path, size, buffered=False) as fp:
        # encapsulated Pixel Data's end is not checked in a store: one more request each
        return _Parser(fp, settings, size, not source.is_url(path)).header()


class _Parser:
    def __init__(self, fp: IO[bytes], settings: ReadSettings, size: int | None = None,
                 fragments: bool = True) -> None:
        tags = settings.tags
        self.bulk_vrs = settings.bulk_vrs  # VRs whose long values are never read
        self.fp = fp
        if size is None:
            size = fp.seek(0, 2)
            fp.seek(0)
        self.size = size  # a file shorter than this is left to pydicom (see need())
        # --tags usually stops a few KB in: a smaller first read is enough
        first = FIRST_READ_TAGS if tags else FIRST_READ
        self.buf = fp.read(size if size <= 2 * first else first)
        self.base = 0  # file offset of buf[0]
        self.buf_end = len(self.buf)  # file offset just past the buffer
        self.fp_pos = len(self.buf)  # where the file object is now
        self.chunk = first  # grows while reading on, so long headers take few reads
        self.defer = settings.inline_max
        self.tags = tags
        self.bound = max(max(tags), CHARSET) if tags else 0xFFFFFFFF
        self.stops = _skip_stops(tags) if tags else None  # --tags: see skip_unselected()
        self.packed_stops = _packed(self.stops) if self.stops else b""  # the same, for C
        self.skip_bound = min(self.bound, 0xFFFDFFFF)  # items and delimiters are never skipped
        self.saw_element = False  # any element at the top level, selected or not
        self.inflated = False  # deflated: offsets count in the inflated stream
        self.pixel_at = -1  # where the top-level Pixel Data element starts, if reached
        self.fragments = fragments  # check that encapsulated Pixel Data ends in the file
        self.cut: str | None = None  # why the file is truncated, when a value is cut
        self.in_cut = False  # parsing a sequence the end of the file cuts

    # -- bytes --------------------------------------------------------------

    def need(self, pos: int, n: int) -> int:
        """Make sure bytes [pos, pos+n) are buffered; return pos's index in buf."""
        if self.base <= pos and pos + n <= self.buf_end:
            return pos - self.base
        if pos < 0 or pos + n > self.size:
            raise Unsupported(TRUNCATED, "an element runs past the end of the file")
        end_buffered = self.buf_end
        if self.base <= pos <= end_buffered:
            keep, start = self.buf[pos - self.base:], end_buffered
            self.chunk = min(2 * self.chunk, MAX_READ)
        else:
            keep, start = b"", pos
            self.chunk = AFTER_SEEK
        if self.fp_pos != start:
            self.fp.seek(start)
        want = min(max(pos + n - start, self.chunk), self.size - start)
        data = self.fp.read(want)
        self.fp_pos = start + len(data)
        self.buf = keep + data
        self.base = pos
        self.buf_end = pos + len(self.buf)
        if pos + n > self.buf_end:
            raise Unsupported(TRUNCATED, "the file is shorter than its size said")
        return 0

    def value(self, pos: int, length: int) -> bytes:
        i = self.need(pos, length)
        return self.buf[i:i + length]

    def read_at(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``pos``: fewer only at the end of the file."""
        return self.value(pos, min(n, self.size - pos))

    def sniff_implicit(self, pos: int, assumed: bool) -> bool:
        """pydicom's check of a dataset's first element: is its VR implicit?"""
        if pos + 6 > self.size:
            return assumed
        i = self.need(pos, 6)
        b0, b1 = self.buf[i + 4], self.buf[i + 5]
        return not (0x40 < b0 < 0x5B and 0x40 < b1 < 0x5B)

    # -- file structure -----------------------------------------------------

    def header(self) -> Header:
        head = self.buf[:dicom.HEAD]
        reason = dicom.not_dicom_reason(head)
        if reason:
            raise NotDicomError(reason)  # what the pydicom path says, without pydicom
        preamble = dicom.has_preamble(head)
        pos = 132 if preamble else 0
        meta = RawDataset(DEFAULT_ENCODING, False)
        if pos + 6 <= self.size and _u16(self.value(pos, 2))[0] == 2:
            if self.sniff_implicit(pos, False):
                raise Unsupported(STRUCTURE, "file meta group in implicit VR")
            pos = self.parse(meta, pos, -1, top=False, meta_group=True, depth=0)
        ts = _transfer_syntax(meta)
        if pos + 4 <= self.size and _u16(self.value(pos, 2))[0] == 0:
            raise Unsupported(STRUCTURE, "command set elements")
        big_endian = ts == EXPLICIT_BE
        if pos < self.size:
            if ts is None:
                big_endian = self._guessed_big_endian(pos)
            elif ts == dicom.DEFLATED_LE:
                pos = self.inflate(pos)
        implicit = self.sniff_implicit(pos, ts is None or ts == IMPLICIT_LE)
        if big_endian and implicit:
            raise Unsupported(BIG_ENDIAN, "implicit VR big endian")
        dataset = RawDataset(DEFAULT_ENCODING, implicit, big_endian)
        self.parse(dataset, pos, -1, top=True, meta_group=False, depth=0)
        if not self.saw_element:
            raise Unsupported(TRUNCATED, "no dataset element")
        if self.cut is not None:
            return Header(meta, dataset, self.cut, self.inflated)
        return Header(meta, dataset, self.pixel_data_overrun(dataset), self.inflated)

    def pixel_data_overrun(self, dataset: RawDataset) -> str | None:
        """Why the file is truncated, when its Pixel Data runs past its end
        (as :func:`fastdump.read.check_complete` says it): not with --tags, which
        stops before, nor deflated, whose offsets count in the inflated stream."""
        at = self.pixel_at
        if at < 0 or self.tags or self.inflated:
            return None
        head = self.value(at, min(12, self.size - at))
        reason = dicom.pixel_data_overrun(head, at, self.size, dataset.implicit,
                                          dataset.big_endian,
                                          self.read_at if self.fragments else None)
        if reason is not None and len(head) < (8 if dataset.implicit else 12):  # (its header)
            raise Unsupported(TRUNCATED, "the file ends inside the Pixel Data element's header")
        return reason

    def inflate(self, pos: int) -> int:
        """Deflated Explicit VR Little Endian: the rest of the file, inflated, becomes
        the bytes parsed; returns where the dataset starts in them (0).

        No value is left out as bulk data: no offset in the file points at a value
        of its compressed bytes, and the values are in memory anyway.
        A stream that does not inflate is left to pydicom, whose error the record keeps.
        """
        try:
            data = zlib.decompress(self.value(pos, self.size - pos), -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise Unsupported(DEFLATE, f"the dataset does not inflate: {exc}") from exc
        self.buf, self.base = data, 0
        self.size = self.buf_end = self.fp_pos = len(data)
        self.inflated = True
        self.defer = dicom.inline_max(dicom.NO_BULK)  # every value read
        return 0

    def _guessed_big_endian(self, pos: int) -> bool:
        """No transfer syntax: pydicom guesses big endian from a valid VR after a group
        number that reads large in little endian (0x0008 big endian reads 0x0800)."""
        if pos + 6 > self.size:
            raise Unsupported(TRUNCATED, "too short to guess the transfer syntax")
        group, _, vr = struct.unpack("<HH2s", self.value(pos, 6))
        return vr in _VR_NAMES and group >= 1024

    def parse(
        self, ds: RawDataset, pos: int, end: int, *, top: bool = False,
        meta_group: bool = False, depth: int = 0,
    ) -> int:
        """Parse elements into ``ds`` from ``pos`` up to ``end`` (-1: to a delimiter).

        Returns the position after the dataset (after its item delimiter).
        """
        if depth > _MAX_DEPTH:
            raise Unsupported(MALFORMED, "sequences nested too deeply")
        size = self.size
        implicit = ds.implicit
        big = ds.big_endian
        order = BIG if big else LITTLE
        tag_length, explicit_head, u32 = order.tag_length, order.explicit_head, order.u32
        out = ds.elements
        creators: dict[int, Any] = {}
        selected = self.tags if top else None
        skipping = selected is not None and not big  # --tags: skip_unselected() (little endian)
        bound = self.bound if top else 0xFFFFFFFF
        previous = -1
        seen_sequence = False
        ambiguous = False
        stopped_at = -1  # first tag not read, when stopped by --tags
        vr_kinds = _VR_KIND  # (compiled: a C pointer to its bytes)
        # refreshed after anything that may refill the buffer
        buf, base, buf_end = self.buf, self.base, self.buf_end
        while True:
            if skipping:
                pos, previous, skipped_sequence = self.skip_unselected(pos, previous, implicit)
                seen_sequence = seen_sequence or skipped_sequence
                buf, base, buf_end = self.buf, self.base, self.buf_end
            if end >= 0 and pos >= end:
                if pos != end:
                    raise Unsupported(MALFORMED, "an element overruns its item")
                break
            if pos + 8 > size:
                # (in a cut sequence, pydicom stops quietly at an element's cut header)
                if not (top or meta_group or self.in_cut) or (top and pos < size):
                    raise Unsupported(TRUNCATED, "file ends inside an element")
                if self.in_cut:
                    pos = size  # (pydicom has read the header's bytes there are)
                break
            if pos < base or pos + 8 > buf_end:
                self.need(pos, 8)
                buf, base, buf_end = self.buf, self.base, self.buf_end
            i = pos - base
            # (vr None: implicit VR, or not a VR, refused below once the tag is checked)
            if cython.compiled:  # the element's header read in place: no objects made
                group = _get16(buf, i, big)
                elem = _get16(buf, i + 2, big)
                if implicit:
                    length = _get32(buf, i + 4, big)
                    vr = None
                    kind = _NO_VR
                else:
                    at = _vr_index(buf, i + 4)
                    vr = _VR_TABLE[at] if at >= 0 else None
                    kind = vr_kinds[at] if at >= 0 else _NO_VR
                    length = _get16(buf, i + 6, big)
            elif implicit:
                group, elem, length = tag_length(buf, i)
                vr = None
                kind = _NO_VR
            else:
                group, elem, raw_vr, length = explicit_head(buf, i)
                vr = _VR_NAMES.get(raw_vr)
                kind = _RAW_KIND.get(raw_vr, _NO_VR)
            tag = group << 16 | elem
            if meta_group and group != 2:
                break
            if tag == _ITEM_END:
                if end >= 0 or top or meta_group:
                    raise Unsupported(MALFORMED, "item delimiter outside an undefined-length item")
                if kind >= _LONG_VR:
                    # its length field spells a VR of long length (OB, SQ...): pydicom reads
                    # the header as an element's, 4 bytes more, and reads on from there
                    raise Unsupported(MALFORMED, f"item delimiter with the length {vr}")
                return pos + 8
            if top and tag >= _FIRST_PIXEL_TAG and tag in PIXEL_TAGS:
                self.pixel_at = pos
                break
            if tag > bound:
                stopped_at = tag
                # an element all the same: a file whose first one is past the selection
                # has an empty selection, as the pydicom path says, and is not truncated
                self.saw_element = self.saw_element or top
                break
            if tag <= previous:
                raise Unsupported(MALFORMED, "elements out of order or repeated")
            previous = tag
            if top:
                self.saw_element = True
            if group == 0xFFFE:
                raise Unsupported(MALFORMED, "item tag where an element was expected")
            head = 8
            if not implicit:
                if vr is None:
                    raise Unsupported(UNKNOWN_VR, f"unknown VR {buf[i + 4:i + 6]!r}")
                if kind >= _LONG_VR:
                    if pos + 12 > buf_end:
                        length = u32(self.value(pos + 8, 4))[0]
                        buf, base, buf_end = self.buf, self.base, self.buf_end
                    elif cython.compiled:
                        length = _get32(buf, i + 8, big)
                    else:
                        length = u32(buf, i + 8)[0]
                    head = 12
            value_pos = pos + head
            # (group & 1 and 0x10 <= elem < 0x100: dicom.is_private_creator(tag), inlined)
            if (selected is not None and tag not in selected and length != _UNDEFINED
                    and not (group & 1 and 0x10 <= elem < 0x100)
                    and tag != _CHARSET and tag != _PIXEL_REPRESENTATION):
                # --tags: an element nobody asked for, that interprets no other: skip it
                # without even resolving its VR
                seen_sequence = seen_sequence or kind == _SQ
                pos = value_pos + length
                if pos > size:
                    raise Unsupported(TRUNCATED, "a value runs past the end of the file")
                continue
            sequence = kind == _SQ
            ambiguous_vr = False  # (explicit VRs never are)
            if vr is None or kind == _UN:  # implicit VR, or UN: the VR pydicom gives it
                vr = self.resolve_vr(tag, vr, length, value_pos, creators, order)
                buf, base, buf_end = self.buf, self.base, self.buf_end
                if kind == _UN and (vr == "IS" or vr == "DS"):
                    if ds.from_un is None:
                        ds.from_un = set()
                    ds.from_un.add(tag)
                if vr == "OB or OW":
                    # PS3.5 A.1: in Implicit VR such data is OW (the pydicom path writes
                    # OW too, where pydicom leaves the VR ambiguous: see convert.py)
                    if not implicit:
                        raise Unsupported(AMBIGUOUS_VR, f"'OB or OW' element {tag:08X}")
                    vr = "OW"
                sequence = vr == "SQ"
                ambiguous_vr = vr in _AMBIGUOUS
            keep = selected is None or tag in selected
            if length == _UNDEFINED and not sequence:
                # encapsulated pixel data outside Pixel Data (an icon's, in its sequence)
                if (vr != "OB" and vr != "OW" or meta_group or group & 1 and elem < 0x100
                        or tag == _CHARSET or tag == _PIXEL_REPRESENTATION):
                    raise Unsupported(MALFORMED, f"undefined length {vr} value")
                length = self.items_length(value_pos, big)
                if keep:
                    # (pydicom reads it whole in an item, defers it at the top level;
                    # either way the converter inlines it or not by its length)
                    value = None if length > self.defer else self.value(value_pos, length)
                    out.append((tag, vr, value, value_pos, length))
                buf, base, buf_end = self.buf, self.base, self.buf_end
                pos = value_pos + length + 8  # after its sequence delimiter
                continue
            if length == _UNDEFINED:
                items, pos = self.items(value_pos, -1, ds, depth)
                buf, base, buf_end = self.buf, self.base, self.buf_end
                seen_sequence = True
                if keep:
                    out.append((tag, "SQ", items, value_pos, length))
                continue
            pos = value_pos + length
            if pos > size:  # the end of the file cuts the value: see cut_value()
                out.append(self.cut_value(ds, tag, vr, kind, value_pos, length, top, depth))
                buf, base, buf_end = self.buf, self.base, self.buf_end
                pos = size  # (the last element: the loop ends with it)
                continue
            if sequence:
                seen_sequence = True
                if keep:
                    in_cut = self.in_cut
                    self.in_cut = False  # it ends before the file does: nothing in it is cut
                    items, _ = self.items(value_pos, pos, ds, depth)
                    self.in_cut = in_cut
                    buf, base, buf_end = self.buf, self.base, self.buf_end
                    out.append((tag, vr, items, value_pos, length))
                continue
            is_creator = group & 1 and 0x10 <= elem < 0x100  # dicom.is_private_creator(tag)
            if not (keep or is_creator or tag == _CHARSET or tag == _PIXEL_REPRESENTATION):
                continue
            if ambiguous_vr:
                if not top or length > self.defer:
                    raise Unsupported(AMBIGUOUS_VR, f"{vr} here")
                ambiguous = True
                value = self.value(value_pos, length)
                buf, base, buf_end = self.buf, self.base, self.buf_end
            elif length > self.defer and vr in self.bulk_vrs and not meta_group:
                value = None  # never read: written as a BulkDataURI
            elif base <= value_pos and pos <= buf_end:
                if cython.compiled:
                    value = _slice(buf, value_pos - base, pos - base)
                else:
                    value = buf[value_pos - base:pos - base]
            else:
                value = self.value(value_pos, length)
                buf, base, buf_end = self.buf, self.base, self.buf_end
            if is_creator:
                if value is None:  # (a damaged VR, under --bulk-any-vr) pydicom converts it
                    # for each element of its block, and one it cannot convert makes them UN
                    raise Unsupported(PRIVATE_CREATOR, "private creator left unread")
                creators[tag] = _creator(value, vr, ds.encodings)
            if tag == _CHARSET:
                if seen_sequence:
                    raise Unsupported(CHARSET_KIND, "Specific Character Set after a sequence")
                ds.encodings, ds.unknown_names = _encodings(value, vr)
            if keep:
                out.append((tag, vr, value, value_pos, length))
            elif tag == _PIXEL_REPRESENTATION:
                out.append((tag, vr, value, value_pos, length, "aux"))  # for 'US or SS'
        if ambiguous:
            _resolve_us_ss(ds, 0 <= stopped_at <= _PIXEL_REPRESENTATION, order)
        if selected is not None:
            ds.elements = [e for e in out if len(e) == 5]
        return pos

    def cut_value(
        self, ds: RawDataset, tag: int, vr: str, kind: int, value_pos: int, length: int,
        top: bool, depth: int,
    ) -> tuple:
        """The element whose value the end of the file cuts, as pydicom reads it.

        pydicom takes the bytes there are (a defined-length sequence: the items in
        them, up to an element's cut header) and :func:`fastdump.read.check_complete`
        names the top-level element. Left to pydicom: --tags, deflated files, a cut
        that reaches the meta group, values that interpret others, and values long
        enough that pydicom defers them or their VR depends on their length.
        """
        if not (top and not self.tags and not self.inflated or self.in_cut) or kind == _UN:
            raise Unsupported(TRUNCATED, "a value runs past the end of the file")
        size = self.size
        if top:
            self.cut = dicom.truncated_value(tag, length, value_pos, size)
        if vr == "SQ":
            self.in_cut = True
            items, _ = self.items(value_pos, size, ds, depth)
            return (tag, vr, items, value_pos, length)
        # (pydicom defers long values at the top level, and the pydicom path writes
        # the declared length of a long non-binary value under --bulk-any-vr)
        long = length > self.defer
        if (long and (top and self.defer or vr in self.bulk_vrs and vr not in dicom.BINARY_VRS)
                or vr in _AMBIGUOUS or tag == _CHARSET or tag == _PIXEL_REPRESENTATION
                or dicom.is_private_creator(tag)):
            raise Unsupported(TRUNCATED, f"cut {vr} value pydicom reads differently")
        # (its length: the bytes pydicom read, which it converts)
        return (tag, vr, self.value(value_pos, size - value_pos), value_pos, size - value_pos)

    def skip_unselected(self, pos: int, previous: int, implicit: bool) -> tuple[int, int, bool]:
        """--tags: step over top-level elements nobody asked for, as fast as Python can.

        Stops before the first element :meth:`parse` must look at (one in
        ``self.stops``, out of order, odd, past the buffer or the selection) and
        returns ``(pos, previous tag, whether a sequence was skipped)``. Little endian.
        """
        buf, base, size = self.buf, self.base, self.size
        stops, bound = self.stops or frozenset(), self.skip_bound
        packed_stops = self.packed_stops
        last = self.buf_end - 12  # an element header (at most 12 bytes) must be buffered
        start = pos
        sequence = False
        while pos <= last:
            if cython.compiled:  # read in place, as in parse()
                i = pos - base
                if i < 0:
                    break
                group = _le16(buf, i)
                elem = _le16(buf, i + 2)
                if implicit:
                    length = _le32(buf, i + 4)
                    head = 8
                else:
                    kind = _vr_kind_at(buf, i + 4)
                    if kind == _SHORT:
                        length = _le16(buf, i + 6)
                        head = 8
                    elif kind >= _LONG_VR:
                        length = _le32(buf, i + 8)
                        head = 12
                        sequence = sequence or kind == _SQ
                    else:
                        break
            elif implicit:
                group, elem, length = _tag_length(buf, pos - base)
                head = 8
            else:
                group, elem, vr, length = _explicit_head_u16(buf, pos - base)
                if vr in _SHORT_U16:
                    head = 8
                elif vr in _LONG_U16:
                    length = _u32(buf, pos - base + 8)[0]
                    head = 12
                    sequence = sequence or vr == _SQ_U16
                else:
                    break
            tag = group << 16 | elem
            if tag <= previous or tag > bound or length == _UNDEFINED:
                break
            if cython.compiled:
                if _in_packed(packed_stops, tag):
                    break
            elif tag in stops:
                break
            after = pos + head + length
            if after > size:
                break
            previous = tag
            pos = after
        if pos != start:
            self.saw_element = True
        return pos, previous, sequence

    def items(
        self, pos: int, end: int, parent: RawDataset, depth: int
    ) -> tuple[list[RawDataset], int]:
        """Parse a sequence's items from ``pos`` to ``end`` (-1: to its delimiter)."""
        items: list[RawDataset] = []
        big_endian = parent.big_endian
        while True:
            if end >= 0 and pos >= end:
                if pos != end:
                    raise Unsupported(MALFORMED, "an item overruns its sequence")
                return items, pos
            tag, length = self.item_head(pos, big_endian)
            if tag == _SEQUENCE_END:
                if end >= 0:
                    raise Unsupported(MALFORMED, "sequence delimiter in a defined-length sequence")
                return items, pos + 8
            if tag != _ITEM:
                raise Unsupported(MALFORMED, "sequence item without an item tag")
            start = pos + 8
            # pydicom lets items of an explicit VR sequence be implicit VR
            implicit = parent.implicit or self.sniff_implicit(start, False)
            if implicit and big_endian:
                raise Unsupported(BIG_ENDIAN, "implicit VR item in a big endian dataset")
            item = RawDataset(parent.encodings, implicit, big_endian)
            if length == _UNDEFINED:
                pos = self.parse(item, start, -1, top=False, meta_group=False, depth=depth + 1)
            else:
                pos = start + length
                if end >= 0 and pos > end:
                    # pydicom reads a defined-length sequence's value first: an item
                    # claiming more ends with it (an element across that end does not
                    # fit the item, and is left to pydicom)
                    pos = end
                self.parse(item, start, pos, top=False, meta_group=False, depth=depth + 1)
            items.append(item)

    def items_length(self, pos: int, big_endian: bool) -> int:
        """The length of an undefined-length value that is not a sequence, from ``pos``
        to its sequence delimiter, as pydicom reads it: encapsulated items.

        Anything else (pydicom then scans for the delimiter's bytes) is left to pydicom.
        """
        start = pos
        while True:
            tag, length = self.item_head(pos, big_endian)
            if tag == _SEQUENCE_END:
                return pos - start
            if tag != _ITEM or length == _UNDEFINED:
                raise Unsupported(MALFORMED, "undefined length value that is not items")
            pos += 8 + length

    def item_head(self, pos: int, big_endian: bool) -> tuple[int, int]:
        """(tag, length) of the item header or delimiter at ``pos``."""
        i = self.need(pos, 8)
        if cython.compiled:
            buf = self.buf
            return (_get16(buf, i, big_endian) << 16 | _get16(buf, i + 2, big_endian),
                    _get32(buf, i + 4, big_endian))
        group, elem, length = (BIG if big_endian else LITTLE).tag_length(self.buf, i)
        return group << 16 | elem, length

    def resolve_vr(
        self, tag: int, vr: str | None, length: int, value_pos: int,
        creators: dict[int, Any], order: _ByteOrder,
    ) -> str:
        """The VR pydicom gives an implicit-VR element (``vr`` None) or a UN one."""
        private = tag >> 16 & 1
        if vr is None and length == _UNDEFINED:
            found = _DICTIONARY_VR[tag]
            if found is None:
                # pydicom looks ahead: items make it a sequence
                if order.tag_length(self.value(value_pos, 8), 0)[:2] == (0xFFFE, 0xE000):
                    return "SQ"
                raise Unsupported(UNKNOWN_VR, "undefined length element of unknown VR")
            return found
        if vr is None:
            found = _DICTIONARY_VR[tag]
            if found is not None:
                return found
            if private:
                return _private_vr(tag, creators)
            return "UL" if tag & 0xFFFF == 0 else "UN"
        if length == _UNDEFINED:
            return "SQ"  # explicit UN of undefined length is a sequence (PS3.5 6.2.2)
        if private:
            found = _private_vr(tag, creators)
        elif length < 0xFFFF:
            found = _DICTIONARY_VR[tag] or "UN"
        else:
            raise Unsupported(UN_ELEMENT, "long UN element")
        if found in _AMBIGUOUS:
            raise Unsupported(UN_ELEMENT, f"UN element that pydicom reads as {found}")
        # "SQ": pydicom reads the value's items as those of any defined-length sequence
        return found


# -- the compiled code's reading of numbers and VRs, straight from a buffer's bytes ----------
# (plain Python runs them too, but struct is faster there: its branches use struct)


def _get16(buf: bytes, i: int, big: bool) -> int:
    """The unsigned 16-bit number at ``buf[i:i + 2]``, in either byte order."""
    if big:
        return buf[i] << 8 | buf[i + 1]
    return buf[i] | buf[i + 1] << 8


def _get32(buf: bytes, i: int, big: bool) -> int:
    """The unsigned 32-bit number at ``buf[i:i + 4]`` (64-bit C locals: no overflow)."""
    b0, b1, b2, b3 = buf[i], buf[i + 1], buf[i + 2], buf[i + 3]
    if big:
        return b0 << 24 | b1 << 16 | b2 << 8 | b3
    return b3 << 24 | b2 << 16 | b1 << 8 | b0


def _le16(buf: bytes, i: int) -> int:
    return buf[i] | buf[i + 1] << 8


def _le32(buf: bytes, i: int) -> int:
    high = buf[i + 3]  # (a 64-bit C local: no overflow)
    return buf[i] | buf[i + 1] << 8 | buf[i + 2] << 16 | high << 24


def _slice(buf: bytes, start: int, stop: int) -> bytes:
    """``buf[start:stop]``; compiled, straight from the bytes (no slice object)."""
    return buf[start:stop]


def _vr_index(buf: bytes, i: int) -> int:
    """The index in _VR_TABLE of the two letters at ``buf[i:i + 2]``, -1 if not letters."""
    c0 = buf[i] - 65
    c1 = buf[i + 1] - 65
    if 0 <= c0 < 26 and 0 <= c1 < 26:
        return c0 * 26 + c1
    return -1


def _vr_kind_at(buf: bytes, i: int) -> int:
    """The _RAW_KIND of the two bytes at ``buf[i]`` (_NO_VR if they name no VR)."""
    at = _vr_index(buf, i)
    kinds = _VR_KIND
    return kinds[at] if at >= 0 else 0


def _in_packed(packed: bytes, tag: int) -> bool:
    """``tag in`` the tags :func:`_packed` packed (compiled: no int object made)."""
    for at in range(0, len(packed), 4):
        stop = _le32(packed, at)
        if stop >= tag:  # sorted
            return stop == tag
    return False


@functools.lru_cache(maxsize=64)  # one selection per run: computed once, not per file
def _skip_stops(tags: frozenset[int]) -> frozenset[int]:
    """The top-level tags the --tags skip loop hands to parse(): the selected ones,
    those that interpret them (character set, pixel representation, the private
    creator of each selected private tag), and Pixel Data, where reading ends."""
    creators = {private_creator_of(tag) for tag in tags if tag >> 16 & 1}
    return tags | creators | {CHARSET, PIXEL_REPRESENTATION} | PIXEL_TAGS


@functools.lru_cache(maxsize=64)
def _packed(tags: frozenset[int]) -> bytes:
    """``tags`` sorted, as 32-bit little endian numbers (see :func:`_in_packed`)."""
    return struct.pack(f"<{len(tags)}L", *sorted(tags))


def _transfer_syntax(meta: RawDataset) -> str | None:
    for tag, vr, value, *_ in meta.elements:
        if tag == dicom.TRANSFER_SYNTAX:
            if vr != "UI":
                raise Unsupported(STRUCTURE, "Transfer Syntax UID with a VR other than UI")
            text = value.decode(DEFAULT_ENCODING).rstrip("\0 ")
            if "\\" in text:
                raise Unsupported(STRUCTURE, "multi-valued Transfer Syntax UID")
            return text.strip()
    return None


def _encodings(value: bytes | None, vr: str) -> tuple[Any, list[str] | None]:
    """The Python codecs of a Specific Character Set, as pydicom's convert_encodings,
    and its names that are not DICOM's (None: none)."""
    if vr != "CS" or value is None:
        raise Unsupported(CHARSET_KIND, "Specific Character Set with a VR other than CS")
    items = value.decode(DEFAULT_ENCODING).rstrip(" \x00").split("\\")
    try:
        encodings, unknown = charset.read_as(items)
    except charset.NotAsPydicom as exc:  # pydicom decides what happens then
        raise Unsupported(CHARSET_KIND, str(exc)) from exc
    return encodings, unknown or None


def decode_text(value: bytes, encodings: Any, latin1: bool) -> str:
    """A text value decoded exactly as pydicom decodes it, or Unsupported.

    ``latin1``: :func:`fastdump.dicom.is_latin1` of ``encodings``, computed once
    per dataset. In a character set that can fail, fastdump keeps the raw bytes
    of a value pydicom cannot decode cleanly (see :mod:`fastdump.convert`):
    such files are left to that path.
    """
    if b"\x1b" in value:
        return _decode_iso_2022(value, encodings)
    if latin1:
        return value.decode("latin-1")
    encoding = encodings if isinstance(encodings, str) else encodings[0]
    try:
        return value.decode(encoding)
    except (UnicodeError, LookupError) as exc:
        raise Unsupported(INVALID_TEXT, f"text not valid in {encoding}") from exc


def _decode_iso_2022(value: bytes, encodings: Any) -> str:
    """Text with ISO 2022 escape sequences as pydicom decodes it, or Unsupported where
    pydicom would warn (it then replaces bytes; fastdump's pydicom path keeps them raw)."""
    try:
        return charset.decode_escaped(value, encodings, dicom.TEXT_VR_DELIMS)
    except charset.NotAsPydicom as exc:
        raise Unsupported(ISO_2022, str(exc)) from exc


def _creator(value: bytes | None, vr: str, encodings: Any) -> Any:
    """A private creator's value as pydicom would compare it (None if unusable)."""
    if value is None or vr != "LO":
        return None
    parts = decode_text(value, encodings, dicom.is_latin1(encodings)).split("\\")
    if len(parts) != 1:
        return None
    return parts[0].rstrip("\0 ")


def _private_dictionary_vr(key: tuple[int, str]) -> str:
    return dictionary.private_vr(*key) or "UN"


# pydicom's dictionary lookups, remembered: a worker meets the same tags in every file
_DICTIONARY_VR = BoundedCache(dictionary.dictionary_vr)
_PRIVATE_VR = BoundedCache(_private_dictionary_vr)


_UNSEEN = object()  # no such private creator in the dataset


def _private_vr(tag: int, creators: dict[int, Any]) -> str:
    """pydicom's hooks._private_vr_for_tag, from the creators seen so far."""
    elem = tag & 0xFFFF
    if 0x10 <= elem < 0x100:
        return "LO"
    if not elem & 0xFF00:
        return "UN"
    creator = creators.get((tag & 0xFFFF0000) | (elem >> 8), _UNSEEN)  # private_creator_of
    if creator is _UNSEEN:
        return "UN"
    if creator is None:
        raise Unsupported(PRIVATE_CREATOR, "private creator pydicom would read differently")
    found = _PRIVATE_VR[tag, creator]
    if found in _AMBIGUOUS:
        raise Unsupported(AMBIGUOUS_VR, f"private element with ambiguous VR {found}")
    return found


def _resolve_us_ss(ds: RawDataset, unknown: bool, order: _ByteOrder) -> None:
    """'US or SS' at the top level: US unless Pixel Representation says signed."""
    pixel_rep = 0
    for tag, vr, value, *_ in ds.elements:
        if tag == PIXEL_REPRESENTATION:
            if vr != "US" or value is None or len(value) != 2:
                raise Unsupported(AMBIGUOUS_VR, "unusual Pixel Representation")
            pixel_rep = order.u16(value)[0]
    if unknown:
        raise Unsupported(AMBIGUOUS_VR, "'US or SS' element before an unread Pixel Representation")
    elements = ds.elements
    for n, element in enumerate(elements):
        tag, vr, value = element[0], element[1], element[2]
        if vr == "OB or OW":
            continue
        if vr in _AMBIGUOUS:
            # a signed LUT Descriptor keeps its first value signed here, where pydicom
            # converts the bytes late, and unsigned in an explicit SS: left to pydicom
            if vr != "US or SS" or tag in dicom.LUT_DESCRIPTORS and pixel_rep != 0:
                raise Unsupported(AMBIGUOUS_VR, f"{vr} of {tag:08X}")
            if b"\\" in value or len(value) % 2:
                raise Unsupported(AMBIGUOUS_VR, "'US or SS' value pydicom splits or rejects")
            elements[n] = (tag, "US" if pixel_rep == 0 else "SS") + tuple(element[2:])
