"""The lines fastdump writes: each starts with path, size and mtime, which a ledger
reads back without parsing the record behind them."""

from __future__ import annotations

import json
import os

from fastdump.lines import dumps_line, parse_prefix
from fastdump.record import error_record


def test_parse_prefix_reads_path_size_mtime():
    line = dumps_line({"path": "/a/b.dcm", "size": 12, "mtime": 1.5, "dataset": {}})
    assert parse_prefix(line) == ("/a/b.dcm", (12, 1.5))
    err = dumps_line(error_record("/x", "OSError: gone", None, None))
    assert parse_prefix(err) == ("/x", (None, None))
    assert parse_prefix(b'{"path":"/a", "truncat') is None
    assert parse_prefix(b"garbage") is None


def test_non_utf8_path_round_trips():
    path = os.fsdecode(b"/data/caf\xe9.dcm")
    line = dumps_line({"path": path, "size": 1, "mtime": 2.0})
    assert json.loads(line)["path"] == path
    assert parse_prefix(line) == (path, (1, 2.0))
    assert os.fsencode(json.loads(line)["path"]) == b"/data/caf\xe9.dcm"
