"""A corpus of broken files, made deterministically from real ones.

Every case is the bytes of one file and the kind of outcome it must get:
"error" (one line in errors.jsonl) or "either" (a record, possibly with
warnings, or an error: what matters is exactly one line and no crash).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable

import pydicom

from .conftest import pydicom_file

CT = "CT_small.dcm"  # explicit VR little endian, with preamble and meta
PLAN = "rtplan.dcm"  # implicit VR little endian, nested sequences
PIXEL_DATA = 0x7FE00010


def original(name: str) -> bytes:
    with open(pydicom_file(name), "rb") as fp:
        return fp.read()


def value_offset(name: str, tag: int) -> tuple[int, int]:
    """(file offset of the value, its length) of a top-level element."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(pydicom_file(name), defer_size=None)
    raw = ds.get_item(tag, keep_deferred=True)
    return raw.value_tell, raw.length


def with_length(name: str, tag: int, length: int) -> bytes:
    """The file with the 4-byte length field of an implicit VR element replaced."""
    data = bytearray(original(name))
    offset, _ = value_offset(name, tag)
    data[offset - 4:offset] = struct.pack("<I", length)
    return bytes(data)


def truncated_at(name: str, tag: int, into: int) -> bytes:
    offset, _ = value_offset(name, tag)
    return original(name)[: offset + into]


def implicit_file(body: bytes) -> bytes:
    """A DICOM file (preamble, meta) with an implicit VR little endian dataset ``body``."""
    return with_meta(body, "1.2.840.10008.1.2")


def with_meta(body: bytes, transfer_syntax: str) -> bytes:
    ts = transfer_syntax.encode()
    ts += b"\0" * (len(ts) % 2)
    meta = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(ts)) + ts
    group_length = b"\x02\x00\x00\x00UL\x04\x00" + struct.pack("<I", len(meta))
    return b"\0" * 128 + b"DICM" + group_length + meta + body


def element(tag: int, value: bytes, length: int | None = None) -> bytes:
    """An implicit VR little endian element."""
    size = len(value) if length is None else length
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, size) + value


UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


def explicit_element(tag: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element of a VR with a 2-byte length."""
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(value)) + value


def nested_sequences(depth: int, delimited: bool = True) -> bytes:
    inner = element(0x00100020, b"DEEP")
    for _ in range(depth):
        item = element(ITEM, inner, UNDEFINED) + (element(ITEM_END, b"") if delimited else b"")
        inner = element(0x00081140, item, UNDEFINED) + (element(SEQ_END, b"") if delimited else b"")
    return inner


def text_element(tag: int, text: bytes) -> bytes:
    return element(tag, text + b" " * (len(text) % 2))


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def tarred(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def empty_7z() -> bytes:
    """An empty 7-Zip archive: its 32-byte start header, pointing at no next header."""
    next_header = bytes(20)  # offset, size, CRC: none
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(next_header)) \
        + next_header


# An empty zstd frame, as `zstd -c < /dev/null` writes it (no zstd in the standard library)
EMPTY_ZSTD = bytes.fromhex("28b52ffd2400010000" "99e9d851")


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# name -> (bytes factory, expected outcome)
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "zero-byte.dcm": (lambda: b"", "error"),
    "one-byte.dcm": (lambda: b"\x08", "error"),
    "cut-in-preamble.dcm": (lambda: original(CT)[:50], "error"),
    "cut-at-marker.dcm": (lambda: original(CT)[:131], "error"),
    "cut-in-meta.dcm": (lambda: original(CT)[:150], "error"),
    # cuts pydicom names by what it could not unpack: the meta group length's value,
    # the next element's header, an item's tag in an undefined-length sequence
    "cut-in-meta-value.dcm": (lambda: original("JPEG2000.dcm")[:143], "error"),
    "cut-in-meta-header.dcm": (lambda: original("JPEG2000.dcm")[:152], "error"),
    "cut-in-item-header.dcm": (lambda: original("JPEG2000.dcm")[:887], "error"),
    "random.dcm": (lambda: random_bytes(1, 20_000), "error"),
    "text.dcm": (lambda: b"PatientName=Doe^John\n" * 100, "error"),
    "no-dicm-marker.dcm": (lambda: original(CT)[:128] + b"XXXX" + original(CT)[132:], "error"),
    "gzipped.dcm.gz": (lambda: gzip.compress(original(CT)), "error"),
    "study.zip": (lambda: zipped(CT, original(CT)), "error"),
    "study.tar": (lambda: tarred(CT, original(CT)), "error"),
    "ct.dcm.bz2": (lambda: bz2.compress(original(CT)), "error"),
    "ct.dcm.xz": (lambda: lzma.compress(original(CT)), "error"),
    "empty.7z": (empty_7z, "error"),
    "empty.zst": (lambda: EMPTY_ZSTD, "error"),
    "cut-in-element-header.dcm": (lambda: truncated_at(CT, 0x00100010, -5), "either"),
    "cut-in-value.dcm": (lambda: truncated_at(CT, 0x00100010, 7), "either"),
    "cut-in-sequence.dcm": (lambda: truncated_at(PLAN, 0x300A00B0, 300), "either"),
    # Pixel Data is never read, but a file cut inside it is truncated all the same
    "cut-in-pixel-data.dcm": (lambda: truncated_at(CT, PIXEL_DATA, 1000), "error"),
    "cut-in-pixel-data-implicit.dcm": (
        lambda: truncated_at("MR_small_implicit.dcm", PIXEL_DATA, 1), "error"),
    "cut-in-pixel-data-big-endian.dcm": (
        lambda: truncated_at("MR_small_bigendian.dcm", PIXEL_DATA, 8191), "error"),
    # ... and so is a file cut inside encapsulated Pixel Data, or before its delimiter
    "cut-in-fragment.dcm": (
        lambda: truncated_at("SC_rgb_rle_2frame.dcm", PIXEL_DATA, 100), "error"),
    "cut-before-delimiter.dcm": (lambda: original("SC_rgb_rle_2frame.dcm")[:-8], "error"),
    "length-past-eof.dcm": (lambda: with_length(PLAN, 0x300A00B0, 50_000_000), "either"),
    "length-fffffffe.dcm": (lambda: with_length(PLAN, 0x00100010, 0xFFFFFFFE), "either"),
    "undefined-length-text.dcm": (lambda: with_length(PLAN, 0x00100010, UNDEFINED), "either"),
    "no-delimiters.dcm": (lambda: implicit_file(
        text_element(0x00080060, b"CT") + nested_sequences(3, delimited=False)), "either"),
    "nested-600-deep.dcm": (lambda: implicit_file(nested_sequences(600)), "either"),
    "unknown-charset.dcm": (lambda: implicit_file(
        text_element(0x00080005, b"ISO_IR 999") + text_element(0x00100010, b"M\xfcller")),
        "either"),
    "malformed-charset.dcm": (lambda: implicit_file(
        text_element(0x00080005, b"\xff\xfe\x00") + text_element(0x00100010, b"Doe")), "either"),
    "invalid-utf8.dcm": (lambda: implicit_file(
        text_element(0x00080005, b"ISO_IR 192") + text_element(0x00100010, b"Bad\xff\xfe")),
        "either"),
    "deflate-broken.dcm": (lambda: with_meta(random_bytes(2, 4000), "1.2.840.10008.1.2.1.99"),
                           "error"),
}
