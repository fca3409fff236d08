"""The fast path (fastread + fastjson) gives byte-for-byte what the pydicom path gives.

The reference is :func:`fastdump.record.read_record_pydicom` (pydicom's
to_json_dict plus fastdump's BulkDataURIs and raw-bytes fallback): every
file of pydicom's test and charset corpora, at several bulk thresholds, and a
seeded corpus of mutated files, compared file by file after orjson.dumps.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import warnings
import zlib

import orjson
import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.encaps import parse_fragments

import fastdump
from fastdump import charset, fastjson, record
from fastdump.fastread import Unsupported, read_header
from fastdump.selection import parse_tags, select
from fastdump.types import ReadSettings

from .badfiles import explicit_element, implicit_file, text_element, with_meta
from .conftest import PYDICOM_FILES, pydicom_file
from .helpers import FAST, PYDICOM, SIX_TAGS, bulk_bytes, count_reads, read_jsonl
from .mutations import corpus

ALL_FILES = PYDICOM_FILES + sorted(f for f in get_charset_files() if os.path.isfile(f))
THRESHOLDS = [0, 8, 1024, 1 << 20]


def settings(threshold: int = 1024, tags=None, bulk_any_vr: bool = False) -> ReadSettings:
    return ReadSettings(bulk_threshold=threshold, tags=tags, bulk_any_vr=bulk_any_vr)


def outcome(fn, path: str, threshold: int = 1024, tags=None, bulk_any_vr: bool = False
            ) -> bytes | str:
    """The serialized record, or the error the same way fastdump would name it."""
    st = os.stat(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            got = fn(path, st.st_size, st.st_mtime, settings(threshold, tags, bulk_any_vr))
            return orjson.dumps(got[0] if isinstance(got, tuple) else got)
        except Unsupported:
            return "Unsupported"
        except Exception as exc:  # noqa: BLE001 - errors are outcomes too
            return f"{type(exc).__name__}: {exc}"


def fast(path: str, threshold: int = 1024, tags=None, bulk_any_vr: bool = False
         ) -> bytes | str:
    return outcome(fastjson.fast_record, path, threshold, tags, bulk_any_vr)


def reference(path: str, threshold: int = 1024, tags=None, bulk_any_vr: bool = False
              ) -> bytes | str:
    return outcome(record.read_record_pydicom, path, threshold, tags, bulk_any_vr)


@pytest.mark.parametrize("path", ALL_FILES, ids=os.path.basename)
def test_fast_path_equals_pydicom_path(path):
    compared = 0
    # --bulk-any-vr at threshold 0 leaves out Pixel Representation too, which pydicom
    # converts early when a sequence precedes it (the pydicom path wrote it inline then)
    for threshold, bulk_any_vr in itertools.product(THRESHOLDS, (False, True)):
        got = fast(path, threshold, bulk_any_vr=bulk_any_vr)
        if got != "Unsupported":
            assert got == reference(path, threshold, bulk_any_vr=bulk_any_vr), (
                f"bulk threshold {threshold}, bulk_any_vr={bulk_any_vr}")
            compared += 1
    if not compared:
        # a file the fast path leaves to pydicom: it says why, and read_record gives
        # the pydicom path's outcome
        st = os.stat(path)
        fast_record, reason = record.try_fast_record(path, st.st_size, st.st_mtime, settings())
        assert fast_record is None and reason, reason
        assert outcome(record.read_record, path) == reference(path)


def fast_files() -> list[str]:
    return [p for p in ALL_FILES if isinstance(fast(p), bytes)]


def test_most_files_take_the_fast_path():
    taken = fast_files()
    # pydicom's corpus is full of oddities (big endian, deflate, ISO 2022, broken
    # files); the fast path must still read the large majority itself.
    assert len(taken) >= 155, len(taken)
    headers = [read_header(p, settings()) for p in taken]
    implicit = sum(h.dataset.implicit for h in headers)
    with_sequences = sum(any(e[1] == "SQ" for e in h.dataset.elements) for h in headers)
    not_latin1 = sum(h.dataset.encodings not in ("iso8859", ["iso8859"], ["latin_1"])
                     for h in headers)
    assert implicit >= 10 and with_sequences >= 40 and not_latin1 >= 10, (
        implicit, with_sequences, not_latin1)


def test_read_record_uses_the_fast_path_and_falls_back_for_the_rest(monkeypatch):
    via_pydicom = []
    original = record.read_record_pydicom

    def counting(path, *args):
        via_pydicom.append(path)
        return original(path, *args)

    expected = {path: reference(path) for path in ALL_FILES}
    monkeypatch.setattr(record, "read_record_pydicom", counting)
    taken = {p for p in ALL_FILES if fast(p) != "Unsupported"}  # a record, or NotDicomError
    for path in ALL_FILES:
        assert outcome(record.read_record, path, 1024) == expected[path], path
    assert set(via_pydicom) == set(ALL_FILES) - taken
    assert len(via_pydicom) < len(ALL_FILES) - 150


def test_pydicom_settings_the_fast_path_does_not_mirror_turn_it_off(monkeypatch):
    path = pydicom_file("CT_small.dcm")
    size = os.path.getsize(path)
    assert record.try_fast_record(path, size, 0.0, settings())[0] is not None
    monkeypatch.setattr(pydicom.config, "use_DS_decimal", True)
    assert record.try_fast_record(path, size, 0.0, settings()) == (None, "pydicom settings")


# --- a mutated corpus ----------------------------------------------------------


# A longer campaign: FASTDUMP_MUTATED_FILES=30000 FASTDUMP_MUTATED_SEED=7 (see README)
MUTATED_FILES = int(os.environ.get("FASTDUMP_MUTATED_FILES", "600"))
MUTATED_SEED = int(os.environ.get("FASTDUMP_MUTATED_SEED", "20260"))


@pytest.fixture(scope="module")
def mutated(tmp_path_factory) -> list[tuple[str, str]]:
    sources = [p for p in ALL_FILES if os.path.getsize(p) < 2_000_000 and p.endswith(".dcm")]
    # 600: a third of them cut, or damaged in ways only pydicom reports; the
    # fast path must still take at least 150
    return list(corpus(sources, tmp_path_factory.mktemp("mutated"), MUTATED_FILES,
                       seed=MUTATED_SEED))


def test_mutated_files_equal_the_pydicom_path(mutated):
    taken = 0
    for path, what in mutated:
        got = fast(path)
        expected = reference(path)
        if got != "Unsupported":
            taken += 1
            assert got == expected, what
        # whichever path reads it, the outcome is the pydicom path's
        assert outcome(record.read_record, path, 1024) == expected, what
    assert taken >= 150, taken  # mutations of values must not all fall back


@pytest.mark.parametrize(("threshold", "bulk_any_vr"), [(8, False), (1 << 20, False), (8, True)])
def test_mutated_files_at_other_thresholds(mutated, threshold, bulk_any_vr):
    compared = 0
    for path, what in mutated[:max(150, MUTATED_FILES // 4)]:
        got = fast(path, threshold, bulk_any_vr=bulk_any_vr)
        if got != "Unsupported":
            assert got == reference(path, threshold, bulk_any_vr=bulk_any_vr), what
            compared += 1
    assert compared >= 60, compared  # not all left to pydicom: the test compared something


def test_mutated_files_with_tags(mutated):
    tags = parse_tags(SIX_TAGS + ",PatientName,ReferencedImageSequence")
    compared = 0
    for path, what in mutated[:max(200, MUTATED_FILES // 4)]:
        got = fast(path, 1024, tags)
        if got != "Unsupported":
            assert got == reference(path, 1024, tags), what
            compared += 1
    assert compared >= 75, compared


# --- reading -------------------------------------------------------------------


def test_the_header_is_read_once(monkeypatch):
    path = pydicom_file("CT_small.dcm")  # 39 KB, pixel data at the end
    expected = reference(path)
    reads = count_reads(monkeypatch)
    assert fast(path) == expected != "Unsupported"
    assert reads.readers == [FAST]
    assert reads.calls == 1 and reads.bytes <= os.path.getsize(path)


def test_bulk_values_in_sequences_are_not_read(tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    item = pydicom.Dataset()
    item.add_new(0x00091010, "LO", "FASTDUMP TEST")
    item.add_new(0x00091011, "OB", bytes(3_000_000))
    item.add_new(0x00091012, "OB", bytes(range(100)))
    ds.add_new(0x00091001, "LO", "AFTER")  # an element after the big value is still read
    ds.add_new(0x00089215, "SQ", pydicom.Sequence([item]))
    path = tmp_path / "nested-bulk.dcm"
    ds.save_as(path, enforce_file_format=True)
    reads = count_reads(monkeypatch)
    got = orjson.loads(fast(str(path)))
    assert reads.readers == [FAST] and reads.bytes < 200_000
    element = got["dataset"]["00089215"]["Value"][0]["00091011"]
    assert element["BulkDataURI"].endswith("&length=3000000")
    assert got["dataset"]["00091001"]["Value"] == ["AFTER"]
    assert orjson.dumps(got) == reference(str(path))


def test_a_huge_length_field_allocates_nothing(tmp_path):
    data = bytearray(open(pydicom_file("CT_small.dcm"), "rb").read())
    at = data.index(b"\x10\x00\x10\x00PN")  # Patient's Name, explicit VR
    data[at + 4:at + 8] = b"OB\x00\x00"
    data[at + 8:at + 12] = (0xFFFFFFF0).to_bytes(4, "little")
    path = tmp_path / "huge.dcm"
    path.write_bytes(bytes(data[:at + 200]))
    assert fast(str(path)) == "Unsupported"  # past the end of the file: pydicom reports it
    assert reference(str(path)).startswith("TruncatedError")


def test_an_item_longer_than_its_sequence_ends_with_the_sequence(tmp_path):
    # pydicom reads a defined-length sequence's bytes, then its items from them:
    # DICOMDIR-nooffset's last item claims 24 bytes more than its sequence holds
    nooffset = pydicom_file("DICOMDIR-nooffset")
    got = fast(nooffset)
    assert isinstance(got, bytes) and got == reference(nooffset)
    source = get_testdata_file("DICOMDIR")  # the sequence is the last element
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(source)
    item = ds.DirectoryRecordSequence[-1].seq_item_tell
    data = bytearray(open(source, "rb").read())
    assert data[item:item + 4] == b"\xfe\xff\x00\xe0"
    length = int.from_bytes(data[item + 4:item + 8], "little")
    longer = tmp_path / "item-claims-more"
    longer.write_bytes(data[:item + 4] + (length + 100).to_bytes(4, "little") + data[item + 8:])
    got = fast(str(longer))
    assert isinstance(got, bytes) and got == reference(str(longer))
    # an element across the sequence's end is not the item's: left to pydicom
    sequence = data.rindex(b"\x04\x00\x20\x12SQ\x00\x00", 0, item)
    shorter = bytearray(data)
    declared = int.from_bytes(data[sequence + 8:sequence + 12], "little")
    shorter[sequence + 8:sequence + 12] = (declared - 4).to_bytes(4, "little")
    (tmp_path / "element-across").write_bytes(shorter)
    assert fast(str(tmp_path / "element-across")) == "Unsupported"


def failure(fn, path: str, tags=None, threshold: int = 1024, bulk_any_vr: bool = False
            ) -> tuple[str, bytes] | bytes:
    """The record, or the error as errors.jsonl gives it: reason and partial record."""
    st = os.stat(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            got = fn(path, st.st_size, st.st_mtime, settings(threshold, tags, bulk_any_vr))
            return orjson.dumps(got[0] if isinstance(got, tuple) else got)
        except Exception as exc:  # noqa: BLE001 - errors are outcomes too
            reason, partial = record.describe_failure(exc)
            return reason, orjson.dumps(partial)


# explicit VR little endian (OW), implicit VR, big endian, odd-length OB; and Float Pixel Data
PIXEL_FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
               "SC_rgb_small_odd.dcm", "float"]


def float_pixel_data(folder) -> str:
    """CT_small's header with a Float Pixel Data (7FE0,0008) element."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    ds.add_new(0x7FE00008, "OF", bytes(range(256)) * 16)
    path = folder / "float-pixels.dcm"
    ds.save_as(path, enforce_file_format=True)
    return str(path)


@pytest.mark.parametrize("name", PIXEL_FILES)
def test_a_file_cut_inside_its_pixel_data_is_truncated_in_both_paths(name, tmp_path):
    source = float_pixel_data(tmp_path) if name == "float" else pydicom_file(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(source, defer_size=None)
    tag = next(t for t in (0x7FE00008, 0x7FE00009, 0x7FE00010) if t in ds)
    pixels = ds.get_item(tag, keep_deferred=True)
    start, length = pixels.value_tell, pixels.length
    data = open(source, "rb").read()
    assert start + length <= len(data) and length not in (0, 0xFFFFFFFF)
    header = start - (8 if ds.original_encoding[0] else 12)  # its VRs have 4-byte lengths
    # every cut from the element's tag to its last byte, sampled
    cuts = sorted({*range(header, start + 2), start + length // 2, start + length - 1})
    for cut in cuts:
        path = tmp_path / f"cut-{cut}.dcm"
        path.write_bytes(data)
        whole = orjson.loads(fast(str(path)))  # its BulkDataURIs name this path
        path.write_bytes(data[:cut])
        got, expected = failure(fastjson.fast_record, str(path)), failure(
            record.read_record_pydicom, str(path))
        if got == ("Unsupported", b"null") or isinstance(got, tuple) and got[0].startswith(
                "Unsupported"):
            got = failure(record.read_record, str(path))  # the cut header: left to pydicom
        assert got == expected, cut
        if cut >= start:  # inside the value: an error, that keeps the whole header
            reason, partial = got
            assert reason == (f"TruncatedError: the file is truncated: element "
                              f"({tag >> 16:04X},{tag & 0xFFFF:04X}) "
                              f"declares {length} bytes at offset {start}, but the file ends "
                              f"at {cut}"), cut
            assert orjson.loads(partial)["dataset"] == whole["dataset"]
            assert orjson.loads(partial)["meta"] == whole["meta"]
        # --tags reads no further than the tags it selects: the cut is not seen
        tags = parse_tags(SIX_TAGS)
        assert failure(fastjson.fast_record, str(path), tags) == failure(
            record.read_record_pydicom, str(path), tags)


# encapsulated: one fragment, two frames, 15 fragments, elements after Pixel Data, and
# a fragment that holds the sequence delimiter's bytes
ENCAPSULATED_FILES = ["JPEG2000.dcm", "SC_rgb_rle_2frame.dcm", "rtdose_rle.dcm",
                      "MR_small_RLE.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"]


def items_of(source: str) -> tuple[list[tuple[int, int]], int]:
    """Where the items of a file's encapsulated Pixel Data start, with their lengths, and
    where its sequence delimiter starts: as pydicom reads them (the oracle)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(source, defer_size=None)
    raw = ds.get_item(0x7FE00010, keep_deferred=True)
    assert raw.length == 0xFFFFFFFF
    _, offsets = parse_fragments(raw.value)
    items = [(raw.value_tell + at, int.from_bytes(raw.value[at + 4:at + 8], "little"))
             for at in offsets]
    return items, raw.value_tell + len(raw.value)


# SC_rgb_jpeg.dcm: an implicit VR dataset under an explicit VR transfer syntax, which
# pydicom reads as implicit (with a warning)
@pytest.mark.parametrize("name", [*ENCAPSULATED_FILES, "SC_rgb_jpeg.dcm"])
def test_a_file_cut_inside_its_encapsulated_pixel_data_is_truncated_in_both_paths(
        name, tmp_path):
    source = pydicom_file(name)
    items, delimiter = items_of(source)
    data = open(source, "rb").read()

    def no_delimiter(end: int) -> str:
        return (f"the file is truncated: its encapsulated Pixel Data (items from offset "
                f"{items[0][0]}) has no sequence delimiter before the file ends at {end}")

    expected: dict[int, str] = {}  # cut -> the reason
    for at, length in items:
        expected[at] = no_delimiter(at)
        for cut in (at + 1, at + 7):
            expected[cut] = ("the file is truncated: it ends inside an element header at "
                             f"offset {at}")
        for cut in (at + 8, at + 8 + length // 2, at + 7 + length) if length else ():
            expected[cut] = (f"the file is truncated: element (FFFE,E000) declares {length} "
                             f"bytes at offset {at + 8}, but the file ends at {cut}")
    expected[delimiter] = no_delimiter(delimiter)
    expected[delimiter + 3] = ("the file is truncated: it ends inside an element header at "
                               f"offset {delimiter}")
    whole_path = tmp_path / "whole.dcm"
    whole_path.write_bytes(data)
    whole = orjson.loads(fast(str(whole_path)))
    assert whole == orjson.loads(reference(str(whole_path)))  # whole: no error in either
    for cut, reason in sorted(expected.items()):
        path = tmp_path / f"cut-{cut}.dcm"
        path.write_bytes(data[:cut])
        got = failure(fastjson.fast_record, str(path))
        assert got == failure(record.read_record_pydicom, str(path)), cut
        assert got[0] == f"TruncatedError: {reason}", cut
        partial = orjson.loads(got[1])
        assert partial["meta"] == whole["meta"], cut
        # the BulkDataURIs name the file: the rest of the header is the whole file's
        assert orjson.dumps(partial["dataset"]).replace(b"cut-%d" % cut, b"whole") == \
            orjson.dumps(whole["dataset"]), cut


def top_level_values(source: str) -> list[tuple[int, int, int, bool]]:
    """``(tag, value start, length, whether a sequence)`` of a file's top-level elements
    of defined, non-zero length, as pydicom reads them (the oracle)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(source, defer_size=None, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - a file pydicom cannot read has none to cut
            return []
    if ds.file_meta.get("TransferSyntaxUID") == pydicom.uid.DeflatedExplicitVRLittleEndian:
        return []  # its offsets count in the inflated stream
    found = []
    for tag in ds.keys():
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.length not in (0, 0xFFFFFFFF):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    vr = ds[tag].VR  # (an implicit VR file's raw elements have none)
                except Exception:  # noqa: BLE001 - not a value pydicom converts
                    continue
            found.append((int(tag), raw.value_tell, raw.length, vr == "SQ"))
    return found


def cuts_of(source: str, data: bytes,
            rng: random.Random) -> tuple[set[int], set[int], set[int]]:
    """Where to cut a file: every byte around the start of its first defined-length
    sequence (the third set), random points in it and in the next one (the second set),
    and into a few other values. (Every byte around the second sequence's start too,
    and 30 points in each, took CI 85 s a mode: the pydicom path's reads of them.)"""
    values = top_level_values(source)
    cuts, sampled, around = set(), set(), set()
    for nth, (_, start, length, _) in enumerate([v for v in values if v[3]][:2]):
        inside = range(start, min(start + length, len(data)))
        sampled |= set(rng.sample(inside, min(12, len(inside))))
        around |= set(range(start - 12, start + 20)) if nth == 0 else set()
    others = [v for v in values if not v[3]]
    for _, start, length, _ in rng.sample(others, min(4, len(others))):
        cuts |= {start + 1, start + length // 2}
    cuts |= sampled | around
    return {c for c in cuts if 0 < c < len(data)}, sampled, around - sampled


SETTINGS = ((0, False), (1024, False), (8, True))  # (bulk threshold, any VR)


def test_files_cut_inside_a_value_equal_the_pydicom_path(tmp_path):
    """pydicom reads what there is of a value the end of the file cuts (of a sequence:
    the items in it): cut every file of the corpora (at each byte around the start of
    a sequence, at random points in it and in other values), the fast path gives the
    pydicom path's error and partial record, or leaves the file to it."""
    rng = random.Random(20261201)
    taken = left = 0  # of the sampled cuts, with the default settings
    for source in ALL_FILES:
        data = open(source, "rb").read()
        cuts, sampled, around = cuts_of(source, data, rng)
        values = {start: (tag, length) for tag, start, length, _ in top_level_values(source)}
        if not isinstance(reference(source), bytes):
            values = {}  # (not a DICOM file, or a broken one: no message to expect)
        for cut in sorted(cuts):
            path = tmp_path / f"cut-{cut}.dcm"
            path.write_bytes(data[:cut])
            # (threshold 0: pydicom defers nothing; 8 with --bulk-any-vr: most values
            # are long, text too. A cut in a sequence's first bytes cuts no value over
            # 1024 bytes long: there, 0 would read as 1024 does)
            for threshold, any_vr in SETTINGS[1:] if cut in around else SETTINGS:
                got = failure(fastjson.fast_record, str(path), None, threshold, any_vr)
                expected = failure(record.read_record_pydicom, str(path), None,
                                   threshold, any_vr)
                where = (f"{os.path.basename(source)} cut at {cut} (threshold {threshold}"
                         f"{', any VR' if any_vr else ''})")
                if isinstance(got, tuple) and got[0].startswith("Unsupported"):
                    left += threshold == 1024 and cut in sampled
                    assert failure(record.read_record, str(path), None, threshold,
                                   any_vr) == expected, where
                    continue
                taken += threshold == 1024 and cut in sampled
                assert got == expected, where
                start = max((s for s in values if s <= cut), default=-1)
                if start >= 0 and start + values[start][1] > cut:  # in that value
                    tag, length = values[start]
                    assert got[0] == (
                        f"TruncatedError: the file is truncated: element "
                        f"({tag >> 16:04X},{tag & 0xFFFF:04X}) declares {length} bytes "
                        f"at offset {start}, but the file ends at {cut}"), where
            path.unlink()
    print(f"cut files, sampled cuts: {taken} read by the fast path, {left} left to pydicom")
    # a random cut is mostly in an element's value, which pydicom reads as it is; cut
    # headers of items (pydicom: OSError) and of long VRs (struct.error) are left to it
    assert taken >= 5 * left and taken >= 400, (taken, left)


def test_a_file_cut_inside_a_sequence_is_read_without_pydicom():
    code = ("import sys; from fastdump import record; from fastdump.types import ReadSettings\n"
            "try:\n"
            f"    record.read_record({pydicom_file('rtplan_truncated.dcm')!r}, 2129, None, "
            "ReadSettings())\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc.partial['dataset']['300A00B0']['vr'])\n"
            "assert 'pydicom' not in sys.modules, sorted(m for m in sys.modules if 'pydicom' in m)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "TruncatedError SQ\n"


def test_items_that_are_not_items_are_no_truncation(tmp_path):
    """A corrupt item tag is not a cut this check can tell: the header is dumped."""
    source = pydicom_file("SC_rgb_rle_2frame.dcm")
    items, _ = items_of(source)
    data = bytearray(open(source, "rb").read())
    at = items[-1][0]
    data[at:at + 4] = b"\x00\x00\x00\x00"
    path = tmp_path / "corrupt-item.dcm"
    path.write_bytes(bytes(data[:-20]))  # cut too: the walk stops at the corrupt item
    assert fast(str(path)) == reference(str(path))
    assert orjson.loads(fast(str(path)))["path"] == str(path)


def with_encapsulated_elsewhere(name: str, folder, value: bytes | None = None) -> str:
    """A real file with its encapsulated Pixel Data (``value``: other bytes) also in
    an Icon Image Sequence item, as vendors write thumbnails, and in a private
    element of undefined length at the top level (not valid DICOM, read by pydicom)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(pydicom_file(name), defer_size=None)
    value = ds.PixelData if value is None else value
    icon = pydicom.Dataset()
    icon.Rows, icon.Columns = 8, 8
    icon.add_new(0x7FE00010, "OB", value)
    icon["PixelData"].is_undefined_length = True
    ds.IconImageSequence = pydicom.Sequence([icon])
    ds.add_new(0x00091010, "LO", "FASTDUMP TEST")
    ds.add_new(0x00091011, "OB", value)
    ds[0x00091011].is_undefined_length = True
    path = os.path.join(folder, f"icon-{name}")
    ds.save_as(path)
    return path


def uri_bytes_and_values(record_line: bytes, path: str) -> list[tuple[bytes, bytes]]:
    """(the bytes each BulkDataURI of the two elements points at, pydicom's value)."""
    dataset = orjson.loads(record_line)["dataset"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
    icon = dataset["00880200"]["Value"][0]["7FE00010"]
    return [(bulk_bytes(icon["BulkDataURI"]), ds.IconImageSequence[0].PixelData),
            (bulk_bytes(dataset["00091011"]["BulkDataURI"]), ds[0x00091011].value)]


@pytest.mark.parametrize("name", ENCAPSULATED_FILES)
def test_encapsulated_values_outside_pixel_data_take_the_fast_path(name, tmp_path):
    # The last of ENCAPSULATED_FILES has a fragment holding the delimiter's bytes: the
    # value ends at the delimiter after its items, not at the first such bytes.
    path = with_encapsulated_elsewhere(name, tmp_path)
    for threshold in THRESHOLDS:
        got = fast(path, threshold)
        assert isinstance(got, bytes), (threshold, got)
        assert got == reference(path, threshold), threshold
    for located, value in uri_bytes_and_values(fast(path, 8), path):
        assert located == value and len(value) > 8
    tags = parse_tags("ImageType,IconImageSequence,SOPInstanceUID")  # (0009,1011) skipped
    assert fast(path, tags=tags) == reference(path, tags=tags)
    assert "00091011" not in orjson.loads(fast(path, tags=tags))["dataset"]


def test_undefined_length_values_that_are_not_items_are_left_to_pydicom(tmp_path):
    # pydicom then scans for the delimiter's bytes: the fast path does not mirror that
    items = b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\x00\xe0\x20\x00\x00\x00" + bytes(32)
    path = with_encapsulated_elsewhere("JPEG2000.dcm", tmp_path, items)
    data = open(path, "rb").read()
    assert data.count(items) == 2  # the icon's and the private element's
    with open(path, "wb") as f:  # their first item tag made another tag
        f.write(data.replace(items, b"\x08\x00\x10\x00" + items[4:]))
    assert fast(path) == "Unsupported"
    assert outcome(record.read_record, path) == reference(path)
    assert orjson.loads(reference(path))["dataset"]["00091011"]["vr"] == "OB"


def sequences_written_as_un(path: str) -> bytes | None:
    """The file with each top-level defined-length sequence's VR written as UN, if it
    is explicit VR little endian and has one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not a file to rewrite
            return None
    if ds.original_encoding != (False, True):
        return None
    data = bytearray(open(path, "rb").read())
    found = False
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.VR == "SQ" and raw.length != 0xFFFFFFFF:
            assert data[raw.value_tell - 8:raw.value_tell - 6] == b"SQ"
            data[raw.value_tell - 8:raw.value_tell - 6] = b"UN"
            found = True
    return bytes(data) if found else None


def test_sequences_written_as_un_are_read_as_pydicom_reads_them(tmp_path):
    # pydicom gives a UN element its dictionary VR; for SQ it reads the value's items
    # (rtdose_rle.dcm has one, of implicit VR items)
    compared = 0
    for path in ["rtdose_rle.dcm", "rtdose_rle_1frame.dcm"]:
        assert isinstance(fast(pydicom_file(path)), bytes), path
    for number, path in enumerate(PYDICOM_FILES):
        data = sequences_written_as_un(path) if os.path.getsize(path) < 2_000_000 else None
        if data is None:
            continue
        rewritten = tmp_path / f"{number}-{os.path.basename(path)}"
        rewritten.write_bytes(data)
        got = fast(str(rewritten))
        if got != "Unsupported":
            assert got == reference(str(rewritten)), path
            assert isinstance(got, bytes) and b'"vr":"SQ"' in got, path
            compared += 1
    assert compared >= 15, compared


EXPLICIT_LE_UID = b"1.2.840.10008.1.2.1\x00"
DEFLATED_UID = b"1.2.840.10008.1.2.1.99"


def deflated(data: bytes) -> bytes | None:
    """The file as Deflated Explicit VR Little Endian, if it is explicit VR little
    endian with a preamble and a meta group: its meta group with the transfer syntax
    changed, then its dataset's bytes (damaged or not) deflated."""
    if data[128:132] != b"DICM" or data[132:138] != b"\x02\x00\x00\x00UL":
        return None
    start = 144 + int.from_bytes(data[140:144], "little")
    pos, meta, found = 144, b"", False
    while pos < start:
        head = data[pos:pos + 8]
        if len(head) < 8 or head[:2] != b"\x02\x00":
            return None
        if head[4:6] in (b"OB", b"OW", b"UN", b"UT", b"SQ"):
            length, value_at = int.from_bytes(data[pos + 8:pos + 12], "little"), pos + 12
        else:
            length, value_at = int.from_bytes(head[6:8], "little"), pos + 8
        value = data[value_at:value_at + length]
        if head[2:4] == b"\x10\x00":  # (0002,0010) Transfer Syntax UID
            if value != EXPLICIT_LE_UID:
                return None
            found = True
            meta += head[:6] + len(DEFLATED_UID).to_bytes(2, "little") + DEFLATED_UID
        else:
            meta += data[pos:value_at + length]
        pos = value_at + length
    if not found or pos != start:
        return None
    squeeze = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = squeeze.compress(data[start:]) + squeeze.flush()
    group_length = b"\x02\x00\x00\x00UL\x04\x00" + len(meta).to_bytes(4, "little")
    return data[:132] + group_length + meta + body


def test_deflated_files_take_the_fast_path_and_equal_the_pydicom_path(tmp_path):
    # No offset in a deflated file points at a value of its compressed bytes: every
    # value is written inline, whatever the bulk threshold (a BulkDataURI, counting in
    # the inflated stream, gave compressed bytes), in both paths
    dfl = pydicom_file("image_dfl.dcm")
    assert isinstance(fast(dfl), bytes) and fast(dfl) == reference(dfl)
    compared = same_as_inline = 0
    for number, path in enumerate(PYDICOM_FILES):
        data = deflated(open(path, "rb").read()) if os.path.getsize(path) < 2_000_000 else None
        if data is None:
            continue
        copy = tmp_path / f"{number}-{os.path.basename(path)}"
        copy.write_bytes(data)
        inline = reference(path, 1 << 40)  # the file as it was, every value inline
        for threshold, bulk_any_vr in ((0, True), (8, False), (1024, False)):
            got = fast(str(copy), threshold, bulk_any_vr=bulk_any_vr)
            if got != "Unsupported":
                assert got == reference(str(copy), threshold, bulk_any_vr=bulk_any_vr), (
                    path, threshold)
                compared += 1
                assert b"BulkDataURI" not in got, (path, threshold)
                if isinstance(got, bytes) and isinstance(inline, bytes):
                    assert orjson.loads(got)["dataset"] == orjson.loads(inline)["dataset"]
                    same_as_inline += 1
        tags = parse_tags(SIX_TAGS + ",PatientName,ReferencedImageSequence")
        got = fast(str(copy), 1024, tags)
        if got != "Unsupported":
            assert got == reference(str(copy), 1024, tags), (path, "tags")
    assert compared >= 90 and same_as_inline >= 90, (compared, same_as_inline)


def test_damaged_deflated_datasets_equal_the_pydicom_path(mutated, tmp_path):
    # the mutated corpus's damage, inside the deflated stream
    compared = fell_back = 0
    for number, (path, what) in enumerate(mutated):
        data = deflated(open(path, "rb").read())
        if data is None:
            continue
        copy = tmp_path / f"{number}-{os.path.basename(path)}"
        copy.write_bytes(data)
        got = fast(str(copy))
        expected = reference(str(copy))
        if got == "Unsupported":
            fell_back += 1
        else:
            assert got == expected, what
            compared += 1
        assert outcome(record.read_record, str(copy), 1024) == expected, what
    assert compared >= 50 and fell_back >= 10, (compared, fell_back)


def test_a_deflated_stream_that_does_not_inflate_is_left_to_pydicom(tmp_path):
    data = open(pydicom_file("image_dfl.dcm"), "rb").read()
    cut = tmp_path / "cut-stream.dcm"
    cut.write_bytes(data[:len(data) // 2])
    st = cut.stat()
    assert record.try_fast_record(str(cut), st.st_size, st.st_mtime, settings()) == (
        None, "deflate")
    assert outcome(record.read_record, str(cut)) == reference(str(cut))
    assert "incomplete or truncated stream" in str(reference(str(cut)))  # zlib.error


def respelt(name: str, how: str) -> str:
    """``name`` as a writer may spell it, in as many bytes: a misspelling pydicom
    corrects (``ISO-IR 100``), or an unknown name (``ISO_IR 10X``) it reads as latin-1."""
    if how == "misspelt":
        return name.replace("ISO_IR", "ISO-IR").replace("ISO 2022 IR", "ISO 2022-IR")
    return name[:-1] + "X" if name and name != "ISO_IR 6" else name


@pytest.mark.parametrize("how", ["misspelt", "unknown"])
def test_misspelt_and_unknown_character_sets_take_the_fast_path(how, tmp_path):
    # A writer that misspells Specific Character Set does so in every file of an archive:
    # such files are read on the fast path, as pydicom reads them, and the record names
    # each name and how it was read (the charset files, renamed in place)
    compared = 0
    tags = parse_tags("SpecificCharacterSet,PatientName")
    for number, path in enumerate(ALL_FILES):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = pydicom.dcmread(path, stop_before_pixels=True, force=True).get(
                "SpecificCharacterSet")
        names = [value] if isinstance(value, str) else list(value or [])
        # (an unknown name among ISO 2022's leaves escaped text that pydicom decodes only
        # with a warning: such files stay on the pydicom path)
        names = [n for n in names if n in charset.PYTHON_ENCODING and respelt(n, how) != n
                 and not (how == "unknown" and n.startswith("ISO 2022"))]
        if not names or not isinstance(fast(path), bytes):
            continue
        data = open(path, "rb").read()
        for name in names:
            data = data.replace(name.encode(), respelt(name, how).encode())
        copy = tmp_path / f"{number}-{os.path.basename(path)}"
        copy.write_bytes(data)
        got = fast(str(copy))
        assert isinstance(got, bytes), (path, got)
        assert got == reference(str(copy)), path
        assert fast(str(copy), 1024, tags) == reference(str(copy), 1024, tags), path
        said = [w["error"] for w in orjson.loads(got)["warnings"] if w["tag"] == "00080005"]
        assert all(f"{respelt(n, how)!r} is not a DICOM character set" in w
                   for w, n in zip(said, names, strict=True)), (path, said)
        expected = "the common misspelling corrected" if how == "misspelt" else "latin-1"
        assert all(expected in w for w in said), said
        compared += 1
    assert compared >= 60, compared


def test_a_python_codec_as_character_set_is_left_to_pydicom(tmp_path):
    # pydicom decodes with Python's codec of that name, without a word: the pydicom path
    # reads it, and the record says how the text was decoded
    path = tmp_path / "utf-8.dcm"
    path.write_bytes(implicit_file(text_element(0x00080005, b"utf-8")
                                   + text_element(0x00100010, "Müller".encode())))
    st = path.stat()
    assert record.try_fast_record(str(path), st.st_size, st.st_mtime, settings()) == (
        None, "character set")
    got = orjson.loads(outcome(record.read_record, str(path)))
    assert got["dataset"]["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Müller"}]}
    assert got["warnings"] == [{"tag": "00080005", "vr": "CS", "error": (
        "UnknownCharset: 'utf-8' is not a DICOM character set; pydicom decoded the text "
        "with Python's codec 'utf-8', which may be wrong")}]


def test_a_character_set_name_python_refuses_is_left_to_pydicom(tmp_path):
    # a NUL in the name: Python's codec lookup raises ValueError, not LookupError (the
    # fast path failed with it, "ValueError: embedded null character": a FastPathError)
    path = tmp_path / "nul.dcm"
    path.write_bytes(implicit_file(text_element(0x00080005, b"ISO_IR\x00100")
                                   + text_element(0x00100010, b"Smith")))
    st = path.stat()
    assert record.try_fast_record(str(path), st.st_size, st.st_mtime, settings()) == (
        None, "character set")
    assert outcome(record.read_record, str(path)) == reference(str(path))


def test_a_url_with_a_backslash_is_one_value(tmp_path):
    # UR is never multi-valued (PS3.5): pydicom reads the backslash as part of the value
    path = tmp_path / "ur.dcm"
    path.write_bytes(implicit_file(text_element(0x00081190, b"http://a/x\\b/y ")))
    got = fast(str(path))
    assert got == reference(str(path))
    assert orjson.loads(got)["dataset"]["00081190"] == {"vr": "UR", "Value": ["http://a/x\\b/y"]}


def test_tags_of_an_explicit_vr_dataset_under_an_implicit_transfer_syntax(tmp_path):
    # pydicom reads the dataset as explicit VR (it warns). With --tags it kept the
    # Specific Character Set alone, which it converts: the pydicom path took the
    # transfer syntax's encoding to check the file, read that element's "CS" as its
    # length, and said the file was truncated
    path = tmp_path / "explicit.dcm"
    path.write_bytes(implicit_file(explicit_element(0x00080005, b"CS", b"ISO_IR 100")
                                   + explicit_element(0x00100010, b"PN", b"Doe^J ")))
    for tags in ("PatientID", "PatientName"):
        got = reference(str(path), tags=parse_tags(tags))
        assert isinstance(got, bytes), got
        assert got == fast(str(path), tags=parse_tags(tags))
    assert "00100010" in orjson.loads(got)["dataset"]


def test_tags_of_a_deflated_file_damaged_past_them(tmp_path):
    # --tags does not look past the last selected tag. pydicom inflates a deflated file
    # whole, so the pydicom path took it for one read to its end, read it all again to
    # check for a cut, and called the damage after the selection a truncated file
    body = (explicit_element(0x00100020, b"LO", b"ID1 ")
            + b"\x40\x00\x75\x02SQ\0\0\xff\xff\xff\xff\xfe\xff")  # an item's tag cut
    deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    path = tmp_path / "deflated.dcm"
    path.write_bytes(with_meta(deflate.compress(body) + deflate.flush(), "1.2.840.10008.1.2.1.99"))
    got = reference(str(path), tags=parse_tags("PatientID"))
    assert isinstance(got, bytes), got
    assert got == fast(str(path), tags=parse_tags("PatientID"))
    assert orjson.loads(got)["dataset"] == {"00100020": {"vr": "LO", "Value": ["ID1"]}}
    assert reference(str(path)).startswith("TruncatedError: the file is truncated")


@pytest.mark.parametrize("length", [b"\0\0\0\0", b"SQ\0\0", b"UN\x10\0", b"CS\0\0"])
def test_an_item_delimiter_with_a_length_is_read_as_pydicom_reads_it(length, tmp_path):
    # pydicom reads an explicit VR item delimiter's header as an element's: where its
    # length field spells a VR of long length, 4 bytes more, and reads on misaligned
    sequence = (b"\x08\x00\x15\x11SQ\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
                + explicit_element(0x00081150, b"UI", b"1.2.3\0")
                + b"\xfe\xff\x0d\xe0" + length + b"\xfe\xff\xdd\xe0\0\0\0\0")
    path = tmp_path / "delimiter.dcm"
    path.write_bytes(with_meta(explicit_element(0x00080060, b"CS", b"CT")
                               + sequence + explicit_element(0x00100010, b"PN", b"Doe^J "),
                               "1.2.840.10008.1.2.1"))
    got = fast(str(path))
    assert (got == "Unsupported") == (length[:2] in (b"SQ", b"UN"))
    assert outcome(record.read_record, str(path)) == reference(str(path))
    if got != "Unsupported":
        assert got == reference(str(path))


def test_a_private_creator_left_unread_is_left_to_pydicom(tmp_path):
    # A creator of a damaged VR (UL, 22 bytes) is bulk data under --bulk-any-vr; pydicom
    # converts it for each element of its block, fails, and writes them as UN
    path = tmp_path / "creator.dcm"
    path.write_bytes(with_meta(explicit_element(0x00190010, b"UL", b"SonoSite Private Data ")
                               + explicit_element(0x00191050, b"LT", b"<?xml version='1.0'?>"),
                               "1.2.840.10008.1.2.1"))
    for threshold, bulk_any_vr in ((1024, False), (8, True)):
        expected = reference(str(path), threshold, bulk_any_vr=bulk_any_vr)
        assert fast(str(path), threshold, bulk_any_vr=bulk_any_vr) == "Unsupported"
        assert outcome(record.read_record, str(path), threshold,
                       bulk_any_vr=bulk_any_vr) == expected
    assert orjson.loads(expected)["dataset"]["00191050"]["vr"] == "UN"


def test_long_values_of_the_meta_group_stay_inline_under_bulk_any_vr(tmp_path):
    # pydicom reads the file meta group whole: under --bulk-any-vr a long ST there (a
    # damaged VR) is written as read, in both paths (the pydicom path made some of them
    # BulkDataURIs, as pydicom had left them raw)
    data = open(pydicom_file("CT_small.dcm"), "rb").read()
    assert data.count(b"\x02\x00\x12\x00UI") == 1
    path = tmp_path / "meta-st.dcm"
    path.write_bytes(data.replace(b"\x02\x00\x12\x00UI", b"\x02\x00\x12\x00ST"))
    for threshold in (0, 8):
        got = fast(str(path), threshold, bulk_any_vr=True)
        assert got == reference(str(path), threshold, bulk_any_vr=True), threshold
        assert orjson.loads(got)["meta"]["00020012"] == {
            "vr": "ST", "Value": ["1.3.6.1.4.1.5962.2"]}, threshold


@pytest.mark.parametrize("pixel_representation", [0, 1])
def test_palette_descriptors_in_implicit_vr(pixel_representation, tmp_path):
    # In implicit VR a palette's LUT Descriptors are 'US or SS' (an ultrasound machine's
    # palette-colour files, every one): unsigned pixels take the fast path; signed ones
    # stay with pydicom, which keeps the first value signed there (explicit SS: unsigned)
    ds = pydicom.dcmread(pydicom_file("examples_palette.dcm"))
    ds.PixelRepresentation = pixel_representation
    path = tmp_path / "palette-implicit.dcm"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(path, implicit_vr=True, little_endian=True)
    got, expected = fast(str(path)), reference(str(path))
    descriptor = orjson.loads(expected)["dataset"]["00281101"]
    if pixel_representation == 0:
        assert got == expected and descriptor == {"vr": "US", "Value": [256, 0, 16]}
        assert fast(str(path), 8) == reference(str(path), 8)
    else:
        assert got == "Unsupported" and descriptor["vr"] == "SS"
        assert outcome(record.read_record, str(path)) == expected
    assert fast(str(path), 0) == "Unsupported"  # would be bulk data: pydicom decides


# --- --tags ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", [SIX_TAGS, "PatientName,ReferencedImageSequence,00291010",
                                  "SmallestImagePixelValue,SpecificCharacterSet"])
def test_tags_give_the_full_dumps_elements(spec):
    tags = parse_tags(spec)
    compared = 0
    for path in ALL_FILES:
        full = reference(path)
        if not isinstance(full, bytes):
            continue
        expected = orjson.dumps(select(orjson.loads(full), tags))
        assert reference(path, 1024, tags) == expected, path  # pydicom, specific_tags
        got = fast(path, 1024, tags)
        if got != "Unsupported":
            assert got == expected, path
            compared += 1
    assert compared >= 150


def test_a_file_whose_first_element_is_past_the_selection_is_an_empty_selection():
    # priv_SQ.dcm holds only group 3F03: the fast path took it for a file without a
    # dataset element, and left it to pydicom counted as a "truncated" fallback
    path = pydicom_file("priv_SQ.dcm")
    tags = parse_tags(SIX_TAGS)
    got = fast(path, 1024, tags)
    assert got == reference(path, 1024, tags)
    assert isinstance(got, bytes) and orjson.loads(got)["dataset"] == {}


def implicit_copies(paths: list[str], folder) -> list[str]:
    """Implicit VR little endian copies of ``paths`` (those pydicom can rewrite)."""
    copies = []
    for n, path in enumerate(paths):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
                copy = str(folder / f"{n}.dcm")
                ds.save_as(copy, implicit_vr=True, little_endian=True)
        except Exception:  # noqa: BLE001 - compressed, odd VRs...: not needed here
            continue
        copies.append(copy)
    return copies


def test_tags_of_private_elements_file_by_file(tmp_path):
    # a selected private element needs its creator: the skip loop must not pass it by
    compared = implicit = 0
    paths = [p for p in ALL_FILES if isinstance(reference(p), bytes)]
    for path in paths + implicit_copies(paths, tmp_path):
        full = reference(path)
        if not isinstance(full, bytes):
            continue
        private = [key for key in orjson.loads(full)["dataset"]
                   if int(key[:4], 16) & 1 and int(key[4:], 16) >= 0x1000]
        if not private:
            continue
        tags = frozenset({int(private[0], 16), int(private[-1], 16), 0x00200013})
        got = fast(path, 1024, tags)
        if got != "Unsupported":
            assert got == orjson.dumps(select(orjson.loads(full), tags)), path
            compared += 1
            implicit += read_header(path, settings(1024, tags)).dataset.implicit
    assert compared >= 40 and implicit >= 15


def test_tags_stop_reading_after_the_last_selected_tag(tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    for n in range(0x10, 0x80):  # a 300 KB private block after the patient module
        ds.add_new(0x00431000 | n, "LT", "x" * 2400)
    path = tmp_path / "big-header.dcm"
    ds.save_as(path, enforce_file_format=True)
    reads = count_reads(monkeypatch)
    dataset = fastdump.read_tags(path, tags="PatientID,StudyInstanceUID")
    assert set(dataset) == {"00100020", "0020000D"}
    assert reads.readers == [FAST] and reads.bytes < 100_000
    # the pydicom path stops there too
    reads.reset()
    monkeypatch.setattr(record, "config_is_default", lambda: False)
    assert fastdump.read_tags(path, tags="PatientID,StudyInstanceUID") == dataset
    assert reads.readers == [PYDICOM] and reads.bytes < 100_000


def test_dump_with_tags(archive, tmp_path):
    summary = fastdump.dump([archive / "pydicom"], tmp_path / "out", jobs=1, progress=False,
                            tags="PatientID,Modality")
    assert summary.ok > 150
    records = read_jsonl(tmp_path / "out" / "dump.jsonl")
    assert len(records) == summary.ok
    for rec in records:
        assert set(rec["dataset"]) <= {"00100020", "00080060"}
    assert sum("00080060" in rec["dataset"] for rec in records) > 100
