"""read (the pydicom path): a file cut short is a TruncatedError wherever pydicom stops."""

from __future__ import annotations

import errno
import io
import struct

import pydicom
import pytest
from pydicom.filereader import data_element_generator

from fastdump import record
from fastdump.errors import NotDicomError, TruncatedError
from fastdump.read import _cut_short
from fastdump.source import BoundedReader
from fastdump.types import ReadSettings

from .badfiles import explicit_element, original, with_meta

# (pydicom warns of the cut values it reads, a UI of '1.')
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Files whose cuts pydicom names by what it could not unpack: the meta group length's
# value (BytesLengthException), the next element's header (struct.error), an item's
# header in an undefined-length sequence ("No tag to read"); the first cut element after an
# undefined-length sequence (reportsi.dcm) or inside Specific Character Set, which pydicom
# converts as it reads (CT_small.dcm), both left out of the record unsaid before.
NAMES = ["JPEG2000.dcm", "SC_rgb_gdcm_KY.dcm", "JPEGLSNearLossless_08.dcm", "CT_small.dcm",
         "reportsi.dcm"]


def element_ends(data: bytes) -> set[int]:
    """Where the file's top-level dataset elements end: the only cuts that leave a
    whole header, shorter, which nothing says was cut."""
    implicit, little = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).original_encoding
    fp = io.BytesIO(data)
    fp.seek(144 + struct.unpack("<I", data[140:144])[0])  # after the meta group
    ends = set()
    for _ in data_element_generator(fp, bool(implicit), bool(little)):
        ends.add(fp.tell())
    return ends


def reason(path: str, size: int, read, settings: ReadSettings | None = None) -> str:
    try:
        read(path, size, None, settings or ReadSettings())
    except (TruncatedError, NotDicomError) as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # anything else is what the test looks for
        return record.describe_failure(exc)[0]
    return "read"


@pytest.mark.parametrize("read", [record.read_record, record.read_record_pydicom],
                         ids=["fast-path-first", "pydicom-path"])
@pytest.mark.parametrize("name", NAMES)
def test_every_cut_in_the_header_is_named_truncated(tmp_path, name, read):
    data = original(name)
    cuts = [*range(128, 640), *range(640, min(len(data), 2000), 5)]
    named = {}
    for cut in cuts:
        path = tmp_path / f"{cut}.dcm"
        path.write_bytes(data[:cut])
        named[cut] = reason(str(path), cut, read)
    ends = element_ends(data)
    others = {cut: why for cut, why in named.items()
              if not why.startswith(("TruncatedError: ", "NotDicomError: "))
              and not (why == "read" and cut in ends)}
    assert not others, others
    assert sum(why.startswith("TruncatedError: ") for why in named.values()) > len(cuts) // 2


def test_the_reason_says_where_the_file_ends(tmp_path):
    path = tmp_path / "cut.dcm"
    path.write_bytes(original("JPEG2000.dcm")[:887])  # inside an item's tag
    assert reason(str(path), 887, record.read_record_pydicom) == (
        "TruncatedError: the file is truncated: it ends at offset 887, inside an element")


@pytest.mark.parametrize("cut, why", [
    (140, "element (0002,0000) declares 4 bytes at offset 140, but the file ends at 140"),
    (150, "it ends inside an element header at offset 144"),
    (160, "it ends inside an element header at offset 158")])
def test_a_cut_in_the_meta_group_names_where(tmp_path, cut, why):
    """It said 'the file ends before its first dataset element', and showed the cut
    group length as an empty element."""
    path = tmp_path / "cut.dcm"
    path.write_bytes(original("CT_small.dcm")[:cut])
    for read in (record.read_record, record.read_record_pydicom):
        assert reason(str(path), cut, read) == f"TruncatedError: the file is truncated: {why}"


def test_an_element_without_a_valid_vr_says_so(tmp_path):
    # pydicom reads an element whose VR bytes are not a VR as implicit VR (fo-dicom's
    # GH179A.dcm: Pixel Padding Value with the VR "  "): its length is then made of the
    # VR's bytes and the real length, past the end of a file that was not cut
    body = (explicit_element(0x00080060, b"CS", b"CT") + b"\x28\x00\x20\x01  \x02\x00\0\0"
            + explicit_element(0x00281050, b"DS", b"-2"))
    path = tmp_path / "vr.dcm"
    data = with_meta(body, "1.2.840.10008.1.2.1")
    path.write_bytes(data)
    start = len(data) - len(body) + 10 + 8
    for read in (record.read_record, record.read_record_pydicom):
        assert reason(str(path), len(data), read) == (
            "TruncatedError: the file is truncated, or damaged: element (0028,0120) has no "
            f"valid VR (b'  ') and, read as implicit VR as pydicom reads it, declares "
            f"{0x22020} bytes at offset {start}, but the file ends at {len(data)}")


def test_a_failing_disk_or_damage_before_the_end_is_not_a_cut():
    data = io.BytesIO(b"\0" * 100)
    fp = BoundedReader(data, 100)
    data.seek(100)
    assert _cut_short(struct.error("unpack requires a buffer of 4 bytes"), fp)
    assert _cut_short(OSError("No tag to read at file position 64"), fp)
    assert not _cut_short(OSError(errno.EIO, "Input/output error"), fp)
    data.seek(40)
    assert not _cut_short(struct.error("unpack requires a buffer of 4 bytes"), fp)


def meta_only(name: str) -> bytes:
    """The file's preamble and meta group, and nothing after them."""
    data = original(name)
    group_length = struct.unpack("<I", data[140:144])[0]
    return data[:144 + group_length]


@pytest.mark.parametrize("read", [record.read_record, record.read_record_pydicom],
                         ids=["fast-path-first", "pydicom-path"])
@pytest.mark.parametrize("name", ["CT_small.dcm", "image_dfl.dcm"])  # (and deflated)
def test_with_tags_a_file_without_a_dataset_is_truncated_too(tmp_path, name, read):
    cut = tmp_path / "meta-only.dcm"
    cut.write_bytes(meta_only(name))
    whole = tmp_path / "whole.dcm"
    whole.write_bytes(original(name))
    truncated = "TruncatedError: the file ends before its first dataset element"
    # a full dump; a tag the files hold; RTPlanLabel, which neither holds
    for tags in (None, frozenset({0x00100020}), frozenset({0x300A0002})):
        settings = ReadSettings(tags=tags)
        assert reason(str(cut), cut.stat().st_size, read, settings) == truncated, tags
    got = read(str(whole), whole.stat().st_size, None, ReadSettings(tags=frozenset({0x300A0002})))
    got = got[0] if isinstance(got, tuple) else got  # (read_record says how it read it too)
    assert got["dataset"] == {} and got["meta"]  # none of the tags: a record, not a cut
