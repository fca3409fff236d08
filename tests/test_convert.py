"""The dataset in each record equals pydicom's own to_json_dict, file by file."""

from __future__ import annotations

import base64
import os
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files
from pydicom.datadict import DicomDictionary, RepeatersDictionary, dictionary_VR
from pydicom.valuerep import AMBIGUOUS_VR, VR

import fastdump
from fastdump import record
from fastdump.errors import TruncatedError
from fastdump.lines import dumps_line

from . import badfiles
from .conftest import PYDICOM_FILES, pydicom_file
from .helpers import FAST, PYDICOM, bulk_bytes, count_reads

PIXEL_TAGS = 0x7FE00008  # Float/Double/Pixel Data and anything after them: not read


def oracle(path: str, threshold: int = 1024) -> dict | None:
    """pydicom's to_json_dict, or None when pydicom itself cannot convert the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            try:
                ds = pydicom.dcmread(path)
            except pydicom.errors.InvalidDicomError:
                ds = pydicom.dcmread(path, force=True)  # no preamble: fastdump reads these
            return ds.to_json_dict(threshold, lambda elem: "bulk")
        except Exception:
            return None


def normalized(dataset: dict, top: bool = True) -> dict:
    out = {}
    for key, element in dataset.items():
        if top and int(key, 16) >= PIXEL_TAGS:
            continue
        element = dict(element)
        if "BulkDataURI" in element:
            element["BulkDataURI"] = "bulk"
        if element.get("vr") == "SQ":
            element["Value"] = [normalized(item, False) for item in element.get("Value", [])]
        out[key] = element
    return out


CHARSET_FILES = sorted(f for f in get_charset_files() if f.endswith(".dcm"))


def converted_by_pydicom() -> list[str]:
    found = []
    for path in PYDICOM_FILES + CHARSET_FILES:
        expected = oracle(path)
        if expected is not None and len(expected) > 1:  # a forced read of text gives 0-1 junk
            found.append(path)
    return found


CONVERTIBLE = converted_by_pydicom()


def test_most_test_files_are_convertible():
    # The fidelity check below covers this many real files; it must not silently shrink.
    assert len(CONVERTIBLE) >= 180


# pydicom silently converts what it can of these; fastdump reports them as truncated
# (an errors.jsonl line) and keeps what could be read in "partial".
TRUNCATED = {"rtplan_truncated.dcm", "MR_truncated.dcm"}  # the latter in its Pixel Data


@pytest.mark.parametrize("path", CONVERTIBLE, ids=os.path.basename)
def test_dataset_equals_pydicom_to_json_dict(path):
    if os.path.basename(path) in TRUNCATED:
        with pytest.raises(TruncatedError, match="truncated") as caught:
            fastdump.read_record(path)
        record = caught.value.partial
    else:
        record = fastdump.read_record(path)
    assert normalized(record["dataset"]) == normalized(oracle(path))
    assert "warnings" not in record


@pytest.mark.parametrize("threshold", [0, 64, 1024, 1 << 20])
def test_bulk_threshold_decides_inline_or_uri(threshold):
    path = pydicom_file("MR_small.dcm")
    assert normalized(fastdump.read_tags(path, bulk_threshold=threshold)) == normalized(
        oracle(path, threshold)
    )


BULKY = ["CT_small.dcm", "examples_overlay.dcm", "nested_priv_SQ.dcm", "waveform_ecg.dcm",
         "meta_missing_tsyntax.dcm", "priv_SQ.dcm"]


def check_uris(ours: dict, ds: pydicom.Dataset) -> int:
    """Compare every BulkDataURI's bytes with pydicom's value; return how many."""
    checked = 0
    for key, element in ours.items():
        if "BulkDataURI" in element:
            assert bulk_bytes(element["BulkDataURI"]) == ds[int(key, 16)].value, key
            checked += 1
        elif element.get("vr") == "SQ":
            for item, ds_item in zip(element["Value"], ds[int(key, 16)].value, strict=True):
                checked += check_uris(item, ds_item)
    return checked


@pytest.mark.parametrize("name", BULKY)
def test_bulk_data_uri_locates_the_bytes(name):
    path = pydicom_file(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
    assert check_uris(fastdump.read_tags(path, bulk_threshold=8), ds) > 0


def test_bulk_values_are_not_read(tmp_path, monkeypatch):
    # A file with a 4 MB private OB value: dumping it must read a few KB, not MB,
    # on the fast path and on the pydicom path alike.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(pydicom_file("CT_small.dcm"), stop_before_pixels=True)
    ds.add_new(0x00091010, "LO", "FASTDUMP TEST")
    ds.add_new(0x00091011, "OB", bytes(4_000_000))
    path = tmp_path / "big.dcm"
    ds.save_as(path)
    reads = count_reads(monkeypatch)
    element = fastdump.read_tags(path)["00091011"]
    assert reads.readers == [FAST]  # the fast path alone read the file
    assert bulk_bytes(element["BulkDataURI"]) == bytes(4_000_000)
    assert 0 < reads.bytes < 200_000  # the header and a read-ahead, not the 4 MB
    reads.reset()
    monkeypatch.setattr(record, "config_is_default", lambda: False)  # the pydicom path
    assert fastdump.read_tags(path)["00091011"] == element
    assert reads.readers == [PYDICOM]
    assert 0 < reads.bytes < 200_000


def test_invalid_value_is_kept_raw_with_a_warning():
    # badVR.dcm has an IS value '1A': pydicom's to_json_dict raises and loses the file.
    path = pydicom_file("badVR.dcm")
    assert oracle(path) is None
    record = fastdump.read_record(path)
    assert record["warnings"], "the bad element must be reported"
    bad = record["warnings"][0]["tag"]
    element = record["dataset"][bad]
    assert element["vr"] == "UN"
    ds = pydicom.dcmread(path)
    assert base64.b64decode(element["InlineBinary"]) == ds.get_item(int(bad, 16)).value
    # everything else is still there
    assert set(record["dataset"]) == {f"{tag:08X}" for tag in ds.keys() if tag < PIXEL_TAGS}


def test_meta_is_the_file_meta_group():
    record = fastdump.read_record(pydicom_file("CT_small.dcm"))
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    assert record["meta"] == ds.file_meta.to_json_dict()
    assert record["size"] == os.path.getsize(pydicom_file("CT_small.dcm"))


def test_file_without_preamble_is_read():
    record = fastdump.read_record(pydicom_file("ExplVR_LitEndNoMeta.dcm"))
    assert record["dataset"]["00080016"]["vr"] == "UI"
    assert record["meta"] == {}


@pytest.mark.parametrize("data", [b"", b"hello world\n" * 30, bytes(range(256)) * 4])
def test_not_dicom_raises_not_dicom_error(tmp_path, data):
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    with pytest.raises(fastdump.NotDicomError, match="not a DICOM file"):
        fastdump.read_tags(path)


# Every tag whose dictionary VR is ambiguous and binary ('OB or OW', 'US or OW',
# 'US or SS or OW'), repeating groups (50xx, 60xx, 7Fxx) at their first group. (A
# 'US or SS' that pydicom leaves ambiguous fails its conversion: UN, with a warning.)
# Pixel Data is never read.
BINARY_AMBIGUOUS = {str(vr) for vr in AMBIGUOUS_VR} - {"US or SS"}
AMBIGUOUS_TAGS = sorted(
    tag for tag in {tag for tag, entry in DicomDictionary.items() if entry[0] in BINARY_AMBIGUOUS}
    | {int(mask.replace("xx", "00"), 16) for mask, entry in RepeatersDictionary.items()
       if entry[0] in BINARY_AMBIGUOUS}
    if tag < PIXEL_TAGS
)
VALID_VRS = {str(vr) for vr in VR} - {str(vr) for vr in AMBIGUOUS_VR}


def with_implicit_elements(path: str, elements: dict[int, bytes], out: Path) -> str:
    """A copy of an Implicit VR Little Endian file with top-level ``elements`` spliced in,
    each before the first element whose tag is greater (tags the file has are left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, defer_size=0)
    assert ds.original_encoding == (True, True), "an Implicit VR Little Endian file"
    data = Path(path).read_bytes()
    # where each element starts: 8 bytes (its tag and length) before its value
    values_at = {tag: getattr(ds.get_item(tag), "value_tell", None) or ds[tag].file_tell
                 for tag in ds.keys()}  # (the first is a raw element, the second converted)
    starts = {tag: at - 8 for tag, at in values_at.items()}
    pieces, at = [], 0
    for tag in sorted(set(elements) - set(ds.keys())):
        start = min((o for t, o in starts.items() if t > tag), default=len(data))
        pieces += [data[at:start], badfiles.element(tag, elements[tag])]
        at = start
    out.write_bytes(b"".join(pieces) + data[at:])
    return str(out)


def vrs_of(dataset: dict) -> set[str]:
    found = set()
    for element in dataset.values():
        found.add(element["vr"])
        for item in element.get("Value", []) if element["vr"] == "SQ" else []:
            found |= vrs_of(item)
    return found


@pytest.mark.parametrize("threshold", [16, 1 << 20])  # the value as a BulkDataURI, inline
@pytest.mark.parametrize("tag", AMBIGUOUS_TAGS, ids="{:08X}".format)
def test_a_binary_value_of_ambiguous_vr_gets_a_vr(tmp_path, monkeypatch, tag, threshold):
    # An Implicit VR file has no VR of its own, and pydicom's dictionary leaves some tags
    # one it cannot resolve (Curve Data, 50xx,3000, is 'OB or OW'), which its to_json_dict
    # writes: not a VR, for a DICOM JSON reader. PS3.5 A.1: such data is OW in Implicit VR.
    value = bytes(range(64))
    path = with_implicit_elements(pydicom_file("MR_small_implicit.dcm"), {tag: value},
                                  tmp_path / "ambiguous.dcm")
    expected, key = oracle(path, threshold), f"{tag:08X}"
    reads, lines = count_reads(monkeypatch), []
    for forced in (False, True):  # as read, then through the pydicom path only
        monkeypatch.setattr(record, "config_is_default", lambda forced=forced: not forced)
        reads.reset()
        ours = fastdump.read_record(path, bulk_threshold=threshold)
        lines.append(dumps_line(ours))
        # 'OB or OW' is OW on the fast path too; the other ambiguous VRs are left to pydicom
        assert reads.readers == ([PYDICOM] if forced else [FAST] if dictionary_VR(tag) == "OB or OW"
                                 else [FAST, PYDICOM])
        assert vrs_of(ours["dataset"]) <= VALID_VRS
        element = ours["dataset"][key]
        uri = element.get("BulkDataURI")
        assert (bulk_bytes(uri) if uri else base64.b64decode(element["InlineBinary"])) == value
        if expected is None:  # pydicom cannot convert it (LUT Data without its descriptor)
            assert element["vr"] == "UN"
            assert [w["tag"] for w in ours["warnings"]] == [key]
            continue
        vr = expected[key]["vr"]
        assert element["vr"] == ("OW" if vr in AMBIGUOUS_VR else vr)
        assert normalized(ours["dataset"]) == normalized(expected | {key: element})
        assert "warnings" not in ours
    assert lines[0] == lines[1]  # the two read paths, byte for byte


def test_pydicom_leaves_these_vrs_ambiguous(tmp_path):
    # What the test above stands on: without it, it would check no ambiguous VR at all.
    values = {tag: bytes(range(64)) for tag in (0x00143050, 0x50003000)}
    path = with_implicit_elements(pydicom_file("MR_small_implicit.dcm"), values,
                                  tmp_path / "ambiguous.dcm")
    assert {oracle(path)[f"{tag:08X}"]["vr"] for tag in values} == {"OB or OW"}
