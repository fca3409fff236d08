"""The DICOM rules both read paths follow: the pydicom path (read.py + convert.py)
and the fast path (fastread.py + fastjson.py) take them from here, so that their
output stays byte-identical.

A leaf module: it imports nothing of fastdump and nothing of pydicom, so the
fast path can start without pydicom. Where a rule restates one of pydicom's
constants, ``tests/test_dicom.py`` checks that they still agree.
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

# --- tags ---------------------------------------------------------------------

TRANSFER_SYNTAX = 0x00020010
CHARSET = 0x00080005  # Specific Character Set: how every text value is decoded
PIXEL_REPRESENTATION = 0x00280103  # decides 'US or SS' values
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # reading stops here
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF
# Tags whose VR is 'US or SS' in the dictionary (pydicom resolves them with
# Pixel Representation).
US_OR_SS = frozenset({0x00189810, 0x00221452, 0x00280104, 0x00280105, 0x00280106, 0x00280107,
                      0x00280108, 0x00280109, 0x00280110, 0x00280111, 0x00280120, 0x00280121,
                      0x00281101, 0x00281102, 0x00281103, 0x00283002, 0x00409211, 0x00409216,
                      0x00603004, 0x00603006})
# LUT Descriptors: pydicom reads their first value as unsigned whatever the VR.
LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})


def is_private_creator(tag: int) -> bool:
    """(gggg,0010-00FF) of an odd group: names who owns a block of private elements."""
    return bool(tag >> 16 & 1) and 0x10 <= tag & 0xFFFF < 0x100


def private_creator_of(tag: int) -> int:
    """The private creator element that reserves the block of private ``tag``."""
    return (tag & 0xFFFF0000) | ((tag & 0xFFFF) >> 8)


# --- transfer syntaxes ----------------------------------------------------------

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
# The bulk threshold in a deflated file: every value is written inline, since no
# offset in the file points at a value of its compressed bytes (a BulkDataURI would)
NO_BULK = sys.maxsize


# --- VRs ------------------------------------------------------------------------

# Long values of these are never read but written as BulkDataURIs: the binary
# VRs (pydicom's BYTES_VR and the ambiguous binary VRs) ...
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW",
                        "US or SS or OW"})
# ... and with --bulk-any-vr every VR PS3.18 F.2.7 allows as bulk data.
BULK_ANY_VRS = BINARY_VRS | frozenset(
    {"DS", "FL", "FD", "IS", "LT", "SL", "SS", "ST", "SV", "UC", "UL", "UR", "US", "UT", "UV"})
# Numbers JSON cannot hold as the file does. pydicom's to_json_dict writes NaN and
# infinity as null (what orjson makes of them) and an IS that is not a whole number
# truncated (2.5 as 2); such an element keeps its raw bytes, as a value that does not
# convert, and the record's warnings say why.
FLOAT_VRS = frozenset({"DS", "FL", "FD"})
NOT_FINITE = "NaN or infinity, which JSON has no number for (written, it would be null)"
NOT_WHOLE = ("an IS that is not a whole number, or past a float's precision (written, it "
             "would be truncated)")
AMBIGUOUS_VRS = frozenset({"US or SS", "OB or OW", "US or OW", "US or SS or OW"})
# Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR",
                             "UT", "UV"})
VR_NAMES = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT",
                      "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST",
                      "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"})
# The numeric VRs: struct format of one value, and its size in bytes
NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q",
                  "UV": "Q"}
NUMBER_SIZES = {vr: struct.calcsize("<" + fmt) for vr, fmt in NUMBER_FORMATS.items()}
TEXT_VR_DELIMS = {0x0D, 0x0A, 0x09, 0x0C}  # pydicom's: text VRs end a charset run here


def inline_max(bulk_threshold: int) -> int:
    """Longest binary value (bytes) written inline for a base64 bulk threshold.

    pydicom compares the *base64* length with the threshold, so the raw limit
    is three quarters of it; anything longer is never read.
    """
    return (bulk_threshold // 4) * 3


def bulk_uri(uri: str, offset: int, length: int) -> str:
    """A BulkDataURI: the value's bytes are ``length`` bytes at ``offset`` of ``uri``."""
    return f"{uri}?offset={offset}&length={length}"


# --- character sets ---------------------------------------------------------------

DEFAULT_ENCODING = "iso8859"  # pydicom's codec for the default repertoire (ISO-IR 6)
# Codecs (as pydicom's convert_encodings names them) that decode any byte: text in
# them never fails to decode, so it needs no check.
NEVER_FAILING = frozenset({DEFAULT_ENCODING, "latin_1", "iso8859_1", "iso-8859-1"})


def never_fails(encodings: str | list[str]) -> bool:
    """True when every codec of a dataset's character sets decodes any byte."""
    if isinstance(encodings, str):
        return encodings in NEVER_FAILING
    return all(e in NEVER_FAILING for e in encodings)


def is_latin1(encodings: str | list[str]) -> bool:
    """One character set whose codec decodes bytes as latin-1 does (the default one,
    ISO_IR 100): text in it is decoded straight, unless it holds ISO 2022 escapes."""
    if isinstance(encodings, str):
        return encodings in NEVER_FAILING
    return len(encodings) == 1 and encodings[0] in NEVER_FAILING


# --- files ------------------------------------------------------------------------

# Groups a DICOM stream without preamble can plausibly start with: the file
# meta group, or the first groups of a dataset (identifying, patient...).
_FIRST_GROUPS = {0x0002, 0x0008}
# The first bytes a file's reason is taken from: the preamble and marker, and a tar
# archive's "ustar" at offset 257
HEAD = 262
# What a file that is not DICOM is, by its first bytes, and how to get at the DICOM
# files it may hold: archives kept packed are common (.dcm.gz, a study exported as a
# ZIP). A .nii.gz is gzipped too: the advice is for the DICOM files among them.
_PACKED = (
    (b"\x1f\x8b", 0, "it is gzip-compressed; if it holds a DICOM file (a .dcm.gz), "
                     "decompress it (gunzip) to dump it"),
    (b"PK\x03\x04", 0, "it is a ZIP archive; if it holds DICOM files, extract them (unzip) "
                      "to dump them"),
    (b"PK\x05\x06", 0, "it is an empty ZIP archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "it is a 7-Zip archive; if it holds DICOM files, extract them "
                               "(7z x) to dump them"),
    (b"ustar", 257, "it is a tar archive; if it holds DICOM files, extract them (tar xf) "
                    "to dump them"),
    (b"\xfd7zXZ\x00", 0, "it is xz-compressed; if it holds a DICOM file, decompress it "
                        "(unxz) to dump it"),
    (b"\x28\xb5\x2f\xfd", 0, "it is zstd-compressed; if it holds a DICOM file, decompress "
                             "it (unzstd) to dump it"),
)
# bzip2: its magic, a block size, then a block's magic or the end's (an empty stream)
_BZIP2 = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")
_BZIP2_WHAT = ("it is bzip2-compressed; if it holds a DICOM file, decompress it (bunzip2) "
               "to dump it")


_NO_MARKER = "no 'DICM' marker at offset 128 and no DICOM element at offset 0"


def has_preamble(head: bytes) -> bool:
    """The 128-byte preamble and the ``DICM`` marker (``head``: the file's first bytes)."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def not_dicom_reason(head: bytes) -> str | None:
    """Why a file whose first :data:`HEAD` bytes are ``head`` is not DICOM, or None if it
    may be. A packed file (gzip, ZIP, tar ...) is named as such, with the way to unpack it."""
    if not head:
        return "not a DICOM file: the file is empty"
    if not has_preamble(head) and not looks_like_raw_dataset(head):
        return f"not a DICOM file: {_packed(head) or _NO_MARKER}"
    return None


def _packed(head: bytes) -> str | None:
    for magic, at, what in _PACKED:
        if head.startswith(magic, at):
            return what
    return _BZIP2_WHAT if _BZIP2.match(head) else None


def looks_like_raw_dataset(head: bytes) -> bool:
    """True when the bytes start with a plausible element (no preamble, no meta)."""
    if len(head) < 8:
        return False
    group_le, group_be = struct.unpack("<H", head[:2])[0], struct.unpack(">H", head[:2])[0]
    return group_le in _FIRST_GROUPS or group_be in _FIRST_GROUPS


def truncated_value(tag: int, length: int, start: int, size: int) -> str:
    """Why a file is truncated, when an element's value runs past its end."""
    return (f"the file is truncated: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
            f"declares {length} bytes at offset {start}, but the file ends at {size}")


def truncated_or_invalid_vr(tag: int, vr: bytes, length: int, start: int, size: int) -> str:
    """Why a file is truncated, when an element's value runs past its end as pydicom
    read it: as implicit VR in an explicit VR dataset, its VR bytes not being a VR.
    Its length is then made of those bytes too: damage is likelier than a cut."""
    return (f"the file is truncated, or damaged: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
            f"has no valid VR ({vr!r}) and, read as implicit VR as pydicom reads it, "
            f"declares {length} bytes at offset {start}, but the file ends at {size}")


def truncated_header(offset: int) -> str:
    """Why a file is truncated, when it ends inside an element's header."""
    return f"the file is truncated: it ends inside an element header at offset {offset}"


def truncated_inside(size: int) -> str:
    """Why a file is truncated, when it ends inside an element pydicom was reading."""
    return f"the file is truncated: it ends at offset {size}, inside an element"


# Reads up to n bytes at an offset: fewer only at the end of the file
ReadAt = Callable[[int, int], bytes]


def pixel_data_overrun(head: bytes, pos: int, size: int, implicit: bool,
                       big_endian: bool, read_at: ReadAt | None = None) -> str | None:
    """Why the file is truncated, when the top-level Pixel Data element at ``pos``
    (``head``: its first 12 bytes, fewer at the end of the file) declares more
    bytes than the file holds; None when it fits.

    Reading stops at Pixel Data and never reads its value, but a file cut inside
    it (a transfer that stopped) is as truncated as a file cut in its header.
    Encapsulated pixel data (undefined length) is checked by
    :func:`fragments_overrun` when ``read_at`` is given.
    """
    order = ">" if big_endian else "<"
    if len(head) < 8:
        return None
    group, elem = struct.unpack_from(order + "HH", head)
    tag = group << 16 | elem
    if tag not in PIXEL_TAGS:
        return None
    start = pos + 8
    if implicit:
        length = struct.unpack_from(order + "L", head, 4)[0]
    else:
        vr = head[4:6].decode("latin-1")
        if vr not in VR_NAMES:
            return None
        if vr in LONG_LENGTH_VRS:
            if len(head) < 12:
                return truncated_header(pos)
            length, start = struct.unpack_from(order + "L", head, 8)[0], pos + 12
        else:
            length = struct.unpack_from(order + "H", head, 6)[0]
    if length == UNDEFINED_LENGTH:
        return None if read_at is None else fragments_overrun(read_at, start, size, order)
    if start + length <= size:
        return None
    return truncated_value(tag, length, start, size)


def fragments_overrun(read_at: ReadAt, start: int, size: int, order: str) -> str | None:
    """Why the file is truncated, when the items of encapsulated Pixel Data (its
    offset table and fragments, from ``start``) run past its end or the file ends
    before their sequence delimiter; None when they end in the file.

    A file that ends with the delimiter is taken as whole after one read of its
    last 8 bytes; only other files (elements after Pixel Data, or a cut) have
    their item headers walked, one read each. Items that are not items (a corrupt
    value) are not a truncation this can tell: None.
    """
    delimiter = struct.pack(order + "HHL", 0xFFFE, 0xE0DD, 0)
    if size - start >= 8 and read_at(size - 8, 8) == delimiter:
        return None
    pos = start
    while pos < size:
        head = read_at(pos, 8)
        if len(head) < 8:
            return truncated_header(pos)
        group, elem, length = struct.unpack(order + "HHL", head)
        if group << 16 | elem != ITEM or length == UNDEFINED_LENGTH:
            return None  # the delimiter: whole; anything else: not a cut this can tell
        if pos + 8 + length > size:
            return truncated_value(ITEM, length, pos + 8, size)
        pos += 8 + length
    return (f"the file is truncated: its encapsulated Pixel Data (items from offset {start}) "
            f"has no sequence delimiter before the file ends at {size}")


def record(path: str, size: int, mtime: float | None, meta: dict[str, Any],
           dataset: dict[str, Any], warnings: list[dict[str, str]] | None = None
           ) -> dict[str, Any]:
    """A dump.jsonl record. Key order is part of the output: keep it."""
    out: dict[str, Any] = {"path": path, "size": size, "mtime": mtime, "meta": meta,
                           "dataset": dataset}
    if warnings:
        out["warnings"] = warnings
    return out


# --- caches -------------------------------------------------------------------------

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(dict, Generic[K, V]):
    """``cache[key]`` is ``compute(key)``, remembered for up to ``limit`` keys.

    A dict, so a hit costs a plain dict lookup; bounded, so a stream of odd
    files (random private tags) cannot grow a worker's memory without end.
    """

    def __init__(self, compute: Callable[[K], V], limit: int = 100_000) -> None:
        super().__init__()
        self._compute = compute
        self._limit = limit

    def __missing__(self, key: K) -> V:
        value = self._compute(key)
        if len(self) < self._limit:
            self[key] = value
        return value


def _key(tag: int) -> str:
    return f"{tag:08X}"


# "0008103E": the DICOM JSON key of a tag
TAG_KEYS: BoundedCache[int, str] = BoundedCache(_key, 200_000)
