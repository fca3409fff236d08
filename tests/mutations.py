"""A seeded corpus of damaged DICOM files: real files with byte-level mutations.

Each mutation aims at what a reader must get right: element headers (VRs,
lengths), values (digits, padding, separators, character sets) and the end of
the file. The same seed always gives the same files.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom

VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
       b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
       b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV", b"XX", b"\x00\x00"]
VALUE_BYTES = b" \\\x00=^0123456789.-+eEAZaz\x1b\xe9\xff\t"


def elements(path: str) -> list[tuple[int, int, int]]:
    """(header offset, value offset, length) of the top-level elements pydicom finds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, defer_size=64)
        except Exception:  # noqa: BLE001 - an unreadable original gives random mutations
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
    """One mutation of ``data``: (what was done, the new bytes)."""
    buf = bytearray(data)
    kind = rng.choice(["vr", "value", "value", "value", "length", "byte", "truncate"])
    if not elems or kind == "byte":
        at = rng.randrange(len(buf))
        buf[at] = rng.randrange(256)
        return f"byte {at}", bytes(buf)
    head, start, length, explicit = rng.choice(elems)
    if kind == "truncate":
        at = rng.randrange(max(1, min(len(buf), start + max(length, 0) % 0xFFFFFFFF + 16)))
        return f"truncate {at}", bytes(buf[:at])
    if kind == "vr" and explicit:
        buf[head + 4:head + 6] = rng.choice(VRS)
        return f"vr at {head}", bytes(buf)
    if kind == "length":
        at = head + (4 if not explicit else 6)
        if at + 2 <= len(buf):
            buf[at:at + 2] = rng.randrange(0, 80).to_bytes(2, "little")
        return f"length at {head}", bytes(buf)
    if 0 < length < 0xFFFFFFFF and start + length <= len(buf):
        for _ in range(rng.randint(1, 3)):
            at = start + rng.randrange(length)
            buf[at] = rng.choice(VALUE_BYTES)
        return f"value at {start}", bytes(buf)
    at = rng.randrange(len(buf))
    buf[at] ^= 0xFF
    return f"flip {at}", bytes(buf)


def corpus(
    sources: list[str], out_dir: Path, count: int, seed: int = 3
) -> Iterator[tuple[str, str]]:
    """Write ``count`` mutated files into ``out_dir``; yield (path, description)."""
    rng = random.Random(seed)
    cache: dict[str, tuple[bytes, list]] = {}
    for n in range(count):
        source = rng.choice(sources)
        if source not in cache:
            with open(source, "rb") as fp:
                data = fp.read(1 << 20)
            cache[source] = (data, elements(source))
        data, elems = cache[source]
        if not data:
            continue
        what, mutated = mutate(data, elems, rng)
        path = out_dir / f"m{n:05d}_{os.path.basename(source)}"
        path.write_bytes(mutated)
        yield str(path), f"{os.path.basename(source)}: {what}"
