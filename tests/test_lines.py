"""The lines fastdump writes: each starts with path, size and mtime, which a ledger
reads back without parsing the record behind them."""

from __future__ import annotations

import base64
import json
import os

import orjson
import pydicom
import pytest

import fastdump
from fastdump.lines import dumps_json, dumps_line, error_kind, exact, parse_prefix
from fastdump.record import error_record, read_record
from fastdump.types import ReadSettings

from .badfiles import implicit_file, nested_sequences, text_element
from .helpers import run_cli


def test_parse_prefix_reads_path_size_mtime():
    line = dumps_line({"path": "/a/b.dcm", "size": 12, "mtime": 1.5, "dataset": {}})
    assert parse_prefix(line) == ("/a/b.dcm", (12, 1.5))
    err = dumps_line(error_record("/x", "OSError: gone", None, None))
    assert parse_prefix(err) == ("/x", (None, None))
    assert parse_prefix(b'{"path":"/a", "truncat') is None
    assert parse_prefix(b"garbage") is None


def test_a_name_that_is_not_utf8_is_written_as_valid_utf8_and_kept_exactly():
    path = os.fsdecode(b"/data/caf\xe9.dcm")
    line = dumps_line({"path": path, "size": 1, "mtime": 2.0, "error": f"OSError: {path}"})
    line.decode("utf-8")  # no invalid UTF-8, and no lone surrogate escapes either:
    record = orjson.loads(line)  # orjson (like DuckDB) refuses those
    assert record["path"] == "/data/caf\\xe9.dcm" == record["error"][len("OSError: "):]
    assert list(record)[:4] == ["path", "size", "mtime", "path_base64"]
    assert base64.b64decode(record["path_base64"]) == b"/data/caf\xe9.dcm"
    assert exact(record, "path") == path
    assert parse_prefix(line) == (path, (1, 2.0))


def test_a_line_written_before_names_were_made_valid_utf8_is_still_read():
    path = os.fsdecode(b"/data/caf\xe9.dcm")
    old = json.dumps({"path": path, "size": 1, "mtime": 2.0}, separators=(",", ":")).encode()
    assert b"\\udce9" in old
    assert parse_prefix(old) == (path, (1, 2.0))


def test_summary_json_of_a_name_that_is_not_utf8():
    path = os.fsdecode(b"/data/f\xffifo")
    text = dumps_json({"skipped_examples": [{"path": path, "reason": "not a regular file"}]})
    (example,) = orjson.loads(text)["skipped_examples"]
    assert example["path"] == "/data/f\\xffifo" and exact(example, "path") == path
    assert dumps_json({"a": "é"}) == orjson.dumps({"a": "é"})


def test_other_names_are_written_as_they_are():
    for path in ("/data/café.dcm", "/data/back\\xe9slash.dcm", "/data/tab\there.dcm"):
        line = dumps_line({"path": path, "size": 1, "mtime": 2.0})
        assert orjson.loads(line) == {"path": path, "size": 1, "mtime": 2.0}
        assert parse_prefix(line) == (path, (1, 2.0))


def test_error_kind_is_the_error_type():
    odd = os.fsdecode(b"/data/caf\xe9: x.dcm")  # a ':' in the name, and not UTF-8
    line = dumps_line(error_record(odd, "TruncatedError: ends at 12", 3, 4.0))
    assert error_kind(line) == "TruncatedError"
    assert error_kind(dumps_line(error_record("/x", "FileTimeout", None, None))) == "FileTimeout"
    assert error_kind(b'{"path":"/x","size":1,"mtime":2.0}') == "unknown"


@pytest.mark.parametrize("out", ["dir", "-"])
def test_a_record_nested_deeper_than_orjson_writes_is_written_all_the_same(tmp_path, out):
    # 90 nested sequences: 270 levels of JSON, past orjson's 255 (before: an error line,
    # "TypeError: Recursion limit reached", for a file pydicom reads)
    path = tmp_path / "deep.dcm"
    path.write_bytes(implicit_file(nested_sequences(90)))
    st = path.stat()
    expected, _ = read_record(str(path), st.st_size, st.st_mtime, ReadSettings())
    if out == "-":
        result = run_cli("dump", path, "-o", "-", "--no-progress")
        assert result.returncode == 0, result.stderr
        (line,) = result.stdout.splitlines()
    else:
        summary = fastdump.dump([path], tmp_path / "o", progress=False)
        assert (summary.ok, summary.errors) == (1, 0)
        (line,) = (tmp_path / "o" / "dump.jsonl").read_text().splitlines()
    assert json.loads(line) == json.loads(json.dumps(expected))
    deepest = json.loads(line)["dataset"]
    for _ in range(90):
        deepest = deepest["00081140"]["Value"][0]
    assert deepest == {"00100020": {"vr": "LO", "Value": ["DEEP"]}}


def test_an_integer_beyond_64_bits_is_written_not_an_error(tmp_path):
    # an IS of 21 digits, which pydicom converts to a Python int (before: the whole file
    # an error line, "TypeError: Integer exceeds 64-bit range")
    path = tmp_path / "in" / "big.dcm"
    path.parent.mkdir()
    path.write_bytes(implicit_file(text_element(0x00200013, b"100000000000000000000")))
    summary = fastdump.dump([path.parent], tmp_path / "o", progress=False)
    assert (summary.ok, summary.errors) == (1, 0)
    (line,) = (tmp_path / "o" / "dump.jsonl").read_text().splitlines()
    dataset = json.loads(line)["dataset"]
    with pytest.warns(UserWarning):  # pydicom's: longer than an IS may be
        assert dataset == pydicom.dcmread(path, force=True).to_json_dict()
    assert dataset["00200013"] == {"vr": "IS", "Value": [10**20]}  # as pydicom converts it
