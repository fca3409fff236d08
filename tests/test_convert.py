"""The dataset in each record equals pydicom's own to_json_dict, file by file."""

from __future__ import annotations

import base64
import os
import warnings

import pydicom
import pytest
from pydicom.data import get_charset_files

import fastdump
from fastdump import record
from fastdump.errors import TruncatedError

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
