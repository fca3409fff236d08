"""A seeded corpus of damaged DICOM files: real files with byte-level mutations.

Each file gets one to three mutations. Some aim at what a reader must get
right, using where pydicom finds the elements: element headers (VRs, lengths),
values (digits, padding, separators, character sets) and the end of the file.
Others are blind, as damage in the wild is: bytes overwritten, the file cut
anywhere, a hostile 32-bit length, random bytes inserted, a region repeated
(repeated elements, items), a VR written over anything. Others aim at the
structure: an item's length changed, a delimiter removed or moved, the Specific
Character Set or the Transfer Syntax UID replaced by another. The same seed always
gives the same files.
"""

from __future__ import annotations

import os
import random
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom

VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
       b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
       b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV", b"XX", b"\x00\x00"]
VALUE_BYTES = b" \\\x00=^0123456789.-+eEAZaz\x1b\xe9\xff\t"
# Aimed at the elements pydicom finds (values three times as often), then blind.
AIMED = ["vr", "value", "value", "value", "length", "truncate"]
BLIND = ["bytes", "cut", "hostile length", "insert", "repeat", "any vr"]
# At the structure: items and delimiters, and the two elements that say how the rest reads
STRUCTURE = ["item length", "delimiter gone", "delimiter moved", "character set",
             "transfer syntax"]
ITEM, ITEM_END, SEQUENCE_END = b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0"
CHARSETS = [b"ISO_IR 100", b"ISO_IR 192", b"ISO 2022 IR 87", b"GB18030", b"ISO_IR 13",
            b"\\ISO 2022 IR 149", b"ISO_IR 144", b"ISO 2022 IR 6\\ISO 2022 IR 100", b"BOGUS"]
TRANSFER_SYNTAXES = [b"1.2.840.10008.1.2", b"1.2.840.10008.1.2.1", b"1.2.840.10008.1.2.2",
                     b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.4.50", b"1.2.3"]
PER_FOLDER = 500  # files per folder of a corpus, so that a dump walks several


def elements(path: str) -> list[tuple[int, int, int, bool]]:
    """(header offset, value offset, length, explicit VR) of the top-level elements
    pydicom finds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, defer_size=64)
        except Exception:  # noqa: BLE001 - an unreadable original gets blind mutations only
            return []
    found = []
    for group in (getattr(ds, "file_meta", None), ds):
        for tag in list(group.keys()) if group is not None else ():
            raw = group.get_item(tag, keep_deferred=True)
            start = getattr(raw, "value_tell", None)
            if start is None:
                continue
            explicit = not getattr(raw, "is_implicit_VR", True)
            long = explicit and raw.VR in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV",
                                           "UC", "UN", "UR", "UT", "UV")
            found.append((start - (12 if long else 8), start, raw.length, explicit))
    return found


def mutate(data: bytes, elems: list, rng: random.Random) -> tuple[str, bytes]:
    """One to three mutations of ``data``: (what was done, the new bytes)."""
    buf = bytearray(data)
    done = []
    for _ in range(rng.randint(1, 3)):
        if not buf:
            break
        done.append(_mutate_once(buf, elems, rng))
    return "; ".join(done), bytes(buf)


def _mutate_once(buf: bytearray, elems: list, rng: random.Random) -> str:
    """One mutation of ``buf``, in place; what was done.

    An earlier mutation that moved bytes leaves the element offsets stale: the
    aimed mutations then hit near an element, which is damage too.
    """
    kind = rng.choice(AIMED + BLIND + STRUCTURE)
    if kind in AIMED and not elems:
        kind = rng.choice(BLIND)
    if kind in BLIND:
        return _blind(buf, kind, rng)
    if kind in STRUCTURE:
        return _structure(buf, kind, rng)
    head, start, length, explicit = rng.choice(elems)
    if kind == "truncate":
        at = rng.randrange(max(1, min(len(buf), start + max(length, 0) % 0xFFFFFFFF + 16)))
        del buf[at:]
        return f"truncate {at}"
    if kind == "vr" and explicit and head + 6 <= len(buf):
        buf[head + 4:head + 6] = rng.choice(VRS)
        return f"vr at {head}"
    if kind == "length":
        at = head + (4 if not explicit else 6)
        if at + 2 <= len(buf):
            buf[at:at + 2] = rng.randrange(0, 80).to_bytes(2, "little")
        return f"length at {head}"
    if 0 < length < 0xFFFFFFFF and start + length <= len(buf):
        for _ in range(rng.randint(1, 3)):
            at = start + rng.randrange(length)
            buf[at] = rng.choice(VALUE_BYTES)
        return f"value at {start}"
    at = rng.randrange(len(buf))
    buf[at] ^= 0xFF
    return f"flip {at}"


def _blind(buf: bytearray, kind: str, rng: random.Random) -> str:
    pos = rng.randrange(len(buf))
    if kind == "bytes":  # bytes overwritten
        for _ in range(rng.randint(1, 16)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return f"bytes near {pos}"
    if kind == "cut":  # truncated anywhere
        del buf[pos:]
        return f"cut at {pos}"
    if kind == "hostile length":  # a length field set to a hostile value
        if pos + 4 <= len(buf):
            buf[pos:pos + 4] = struct.pack("<I", rng.choice(
                [0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, len(buf) * 3, 0]))
        return f"hostile length at {pos}"
    if kind == "insert":  # random bytes inserted
        buf[pos:pos] = rng.randbytes(rng.randint(1, 64))
        return f"insert at {pos}"
    if kind == "repeat":  # a region repeated (repeated elements, items)
        end = min(len(buf), pos + rng.randint(8, 512))
        buf[pos:pos] = buf[pos:end]
        return f"repeat {pos}-{end}"
    if pos + 2 <= len(buf):  # a VR written over anything
        buf[pos:pos + 2] = rng.choice([b"SQ", b"UN", b"OB", b"DS", b"XX", b"\0\0"])
    return f"any vr at {pos}"


def _structure(buf: bytearray, kind: str, rng: random.Random) -> str:
    """Items' lengths and delimiters (found by their bytes, at any depth), or the value of
    Specific Character Set or Transfer Syntax UID replaced in its length."""
    if kind in ("character set", "transfer syntax"):
        head, names = ((b"\x08\x00\x05\x00", CHARSETS) if kind == "character set"
                       else (b"\x02\x00\x10\x00", TRANSFER_SYNTAXES))
        at = buf.find(head)
        if at < 0 or at + 8 > len(buf):
            return f"no {kind}"
        explicit = b"A" <= buf[at + 4:at + 5] <= b"Z"
        length = (struct.unpack_from("<H", buf, at + 6)[0] if explicit
                  else struct.unpack_from("<I", buf, at + 4)[0])
        name = rng.choice(names)
        if 0 < length < 128 and at + 8 + length <= len(buf):
            pad = b" " if kind == "character set" else b"\0"
            buf[at + 8:at + 8 + length] = (name + pad * length)[:length]
        return f"{kind} {name!r}"
    marks = [ITEM] if kind == "item length" else [ITEM, ITEM_END, SEQUENCE_END]
    found = [i for mark in marks for i in _offsets(buf, mark)]
    if not found:
        return f"no item for {kind}"
    at = rng.choice(found)
    if kind == "item length":
        buf[at + 4:at + 8] = struct.pack("<I", rng.choice(
            [0xFFFFFFFF, 0, 2, 8, 100, rng.randrange(4000)]))
        return f"item length at {at}"
    piece = bytes(buf[at:at + 8])
    del buf[at:at + 8]
    if kind == "delimiter moved":
        to = min(len(buf), max(0, at + rng.randint(-200, 200)))
        buf[to:to] = piece
        return f"delimiter moved {at} -> {to}"
    return f"delimiter gone at {at}"


def _offsets(buf: bytearray, mark: bytes, most: int = 200) -> list[int]:
    found: list[int] = []
    at = buf.find(mark)
    while at >= 0 and len(found) < most:
        found.append(at)
        at = buf.find(mark, at + 1)
    return found


def corpus(sources: list[str], out_dir: Path, count: int, seed: int, head: int = 1 << 20
           ) -> Iterator[tuple[str, str]]:
    """Write ``count`` mutated files of the first ``head`` bytes of ``sources`` (empty
    ones left out) into folders of ``out_dir``; yield (path, description) for each."""
    rng = random.Random(seed)
    sources = [s for s in sources if os.path.getsize(s) > 0]
    cache: dict[str, tuple[bytes, list]] = {}
    for n in range(count):
        source = rng.choice(sources)
        if source not in cache:
            with open(source, "rb") as fp:
                data = fp.read(head)
            cache[source] = (data, [e for e in elements(source) if e[0] + 8 <= len(data)])
        data, elems = cache[source]
        what, mutated = mutate(data, elems, rng)
        folder = out_dir / f"{n // PER_FOLDER:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"m{n:05d}_{os.path.basename(source)}"
        path.write_bytes(mutated)
        yield str(path), f"{os.path.basename(source)}: {what}"
