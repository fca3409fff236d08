"""IS and DS values outside the plain forms: the fast path gives the pydicom path's record.

pydicom converts each value; when one fails it reads the whole value as text, and its
``to_json_dict`` then fails on it: the pydicom path keeps such an element as UN with
its bytes inline and names the failure in the record's warnings
(:func:`fastdump.convert._raw_fallback`). Each value below is written into real files
(explicit and implicit VR, at the top level and inside a sequence item) and read by
both paths, file by file.
"""

from __future__ import annotations

import base64
import os
import struct
import warnings

import orjson
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from fastdump import dicom, record

from .conftest import pydicom_file
from .test_fastread import fast, outcome, reference

SERIES_NUMBER, SLICE_THICKNESS = 0x00200011, 0x00180050  # IS, DS
REFERENCED_IMAGES = 0x00081140  # a sequence

# text pydicom reads as numbers, reads as text, or fails on; with odd lengths, NULs,
# blanks among several values, Latin-1 bytes, what float() and int() accept and not
VALUES = [b"1A", b"1.0", b"1e3", b" 12", b"+5", b"1_0", b"nan", b"inf", b"-inf", b"1.5",
          b"1\\2A", b"1.5\\1A", b"\\", b"1\\\\2", b" \\1", b"12\x00\\3", b"\t", b"1 2",
          b"0x10", b"\xa05", b"99999999999999999999", b"-0", b"1,5", b"1.5.5", b"abc",
          b"e", b".", b"+", b"  1A  ", b"1A\x00", b"2\\nan", b"1\\ 2 \\3", b"7\\x",
          b"1e400", b"\xe9", b"1\\1.5\\1A"]


def files_with(value: bytes, folder) -> list[str]:
    """CT_small.dcm with an IS and a DS element holding ``value``, at the top level and
    in a sequence item, written explicit and implicit VR."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    # pydicom will not hold such values as IS or DS: written as SH, then relabelled
    ds[SERIES_NUMBER] = DataElement(SERIES_NUMBER, "SH", value)
    ds[SLICE_THICKNESS] = DataElement(SLICE_THICKNESS, "SH", value)
    item = Dataset()
    item[SERIES_NUMBER] = DataElement(SERIES_NUMBER, "SH", value)
    item[SLICE_THICKNESS] = DataElement(SLICE_THICKNESS, "SH", value)
    ds[REFERENCED_IMAGES] = DataElement(REFERENCED_IMAGES, "SQ", Sequence([item]))
    paths = []
    for name, syntax in (("explicit", ExplicitVRLittleEndian),
                         ("implicit", ImplicitVRLittleEndian)):
        ds.file_meta.TransferSyntaxUID = syntax
        path = folder / f"{name}.dcm"
        ds.save_as(path, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
        data = path.read_bytes()
        if name == "explicit":
            for tag, vr in ((SERIES_NUMBER, b"IS"), (SLICE_THICKNESS, b"DS")):
                head = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
                data = data.replace(head + b"SH", head + vr)
        path.write_bytes(data)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[2:-1])
def test_odd_is_and_ds_values_equal_the_pydicom_path(value, tmp_path):
    compared = 0
    for path in files_with(value, tmp_path):
        expected = reference(path)
        got = fast(path)
        if got != "Unsupported":
            assert got == expected, path
            compared += 1
        assert outcome(record.read_record, path, 1024) == expected, path
    if value in (b"1A", b"1\\\\2", b"1.5\\1A", b"abc", b"\t", b"1\\2A", b"7\\x"):
        assert compared == 2, "values pydicom fails on take the fast path"


def test_the_fast_path_names_the_failure_as_the_pydicom_path_does(tmp_path):
    explicit, implicit = files_with(b"1.5\\1A", tmp_path)
    for path, vr in ((explicit, "IS"), (implicit, "UN")):  # no VR in the file: UN
        got = orjson.loads(fast(path))
        assert got["dataset"]["00200011"] == {"vr": "UN", "InlineBinary": "MS41XDFB"}
        # the first value int() rejects: "1.5" (pydicom read it as a number, then the
        # whole value as text, as "1A" is not one)
        warned = {w["tag"]: w for w in got["warnings"]}
        assert warned["00200011"] == {
            "tag": "00200011", "vr": vr,
            "error": "ValueError: invalid literal for int() with base 10: '1.5'"}
        assert set(warned) == {
            "00180050", "00200011", "00081140[0].00180050", "00081140[0].00200011"}
        assert got["dataset"]["00180050"]["vr"] == "UN"  # DS: float("1A") fails


def test_an_is_read_from_an_explicit_un_element_names_un(tmp_path):
    data = open(pydicom_file("badVR.dcm"), "rb").read()  # (0028,0008) IS "1A"
    at = data.index(b"\x28\x00\x08\x00IS")
    length = int.from_bytes(data[at + 6:at + 8], "little")
    un = tmp_path / "un.dcm"
    un.write_bytes(data[:at + 4] + b"UN\x00\x00" + length.to_bytes(4, "little") + data[at + 8:])
    for path in (pydicom_file("badVR.dcm"), str(un)):
        got = fast(path)
        assert isinstance(got, bytes) and got == reference(path), path
    assert orjson.loads(fast(str(un)))["warnings"][0]["vr"] == "UN"


def test_tags_keep_the_warnings_of_the_selected_elements(tmp_path):
    from fastdump.selection import parse_tags

    for path in files_with(b"1A", tmp_path):
        for spec in ("SeriesNumber", "SliceThickness,PatientName", "PatientName"):
            tags = parse_tags(spec)
            got = fast(path, 1024, tags)
            assert isinstance(got, bytes) and got == reference(path, 1024, tags), spec
            assert ("warnings" in orjson.loads(got)) == (spec != "PatientName"), spec


def test_a_long_rejected_value_is_left_to_pydicom(tmp_path):
    # pydicom defers a value longer than the inline limit: its record points at the bytes
    explicit, _ = files_with(b"1A" * 600, tmp_path)
    assert fast(explicit) == "Unsupported"
    assert fast(explicit, 1 << 20) == reference(explicit, 1 << 20)
    st = os.stat(explicit)
    assert record.try_fast_record(explicit, st.st_size, st.st_mtime,
                                  record.ReadSettings())[1] == "value pydicom rejects"


# text pydicom converts to numbers JSON cannot hold as written: NaN and infinity (its
# to_json_dict writes null), an IS that is not whole or past a float's precision (it
# writes it truncated: 1.5 as 1, 99999999999999999999 as 10**20)
ALTERED = {b"nan": "NOT_FINITE", b"-inf": "NOT_FINITE", b"1e400": "NOT_FINITE",
           b"2\\nan": "NOT_FINITE", b"1.5": "NOT_WHOLE", b"99999999999999999999": "NOT_WHOLE",
           b"1\\1.5": "NOT_WHOLE"}


@pytest.mark.parametrize("value", ALTERED, ids=lambda v: repr(v)[2:-1])
def test_numbers_json_would_alter_keep_their_bytes_and_say_why(value, tmp_path):
    """They were written null, or truncated, without a word."""
    explicit, implicit = files_with(value, tmp_path)
    which = "DS" if ALTERED[value] == "NOT_FINITE" else "IS"
    key = "00180050" if which == "DS" else "00200011"
    inline = base64.b64encode(value + b" " * (len(value) % 2)).decode()
    for path, vr in ((explicit, which), (implicit, "UN")):
        for read in (fast, reference):
            got = orjson.loads(read(path))
            assert got["dataset"][key] == {"vr": "UN", "InlineBinary": inline}, path
            assert got["dataset"]["00081140"]["Value"][0][key] == got["dataset"][key]
            error = f"ValueError: {getattr(dicom, ALTERED[value])}"
            assert {"tag": key, "vr": vr, "error": error} in got["warnings"], got["warnings"]


@pytest.mark.parametrize("vr, fmt, number", [("FD", "<d", float("nan")),
                                             ("FL", "<f", float("-inf"))])
def test_binary_floats_json_cannot_hold_keep_their_bytes(vr, fmt, number, tmp_path):
    tag = 0x00189087 if vr == "FD" else 0x00089459  # Diffusion b-value; a frame rate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    ds[tag] = DataElement(tag, vr, number)
    path = tmp_path / "float.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)
    key = f"{tag:08X}"
    got = fast(str(path))
    assert got == reference(str(path))
    record_ = orjson.loads(got)
    raw = base64.b64encode(struct.pack(fmt, number)).decode()
    assert record_["dataset"][key] == {"vr": "UN", "InlineBinary": raw}
    assert {"tag": key, "vr": vr, "error": f"ValueError: {dicom.NOT_FINITE}"} \
        in record_["warnings"]
